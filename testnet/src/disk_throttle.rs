//! Slow disks: the kernel's block-I/O throttling (cgroup v1 `blkio.throttle.*`), put on the
//! loop device under one member's small disk. Rules in the root group apply to every write
//! that reaches the device, the kernel's writeback included, so a member's `fsync` waits as
//! it would on a slow disk; other devices are untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const BLKIO: &str = "/sys/fs/cgroup/blkio";
/// Loop devices' block major number.
const LOOP_MAJOR: u64 = 7;

/// The loop device a member's small disk is mounted from, as (major, minor).
pub fn device_of(mount: &Path) -> anyhow::Result<(u64, u64)> {
    use nix::sys::stat::{major, minor, stat};
    let here = stat(mount).with_context(|| format!("reading {}", mount.display()))?;
    let parent = mount.parent().unwrap_or(mount);
    let above = stat(parent).with_context(|| format!("reading {}", parent.display()))?;
    let device = here.st_dev;
    if device == above.st_dev || major(device) != LOOP_MAJOR {
        bail!(
            "{} is not a small disk of its own (no loop device is mounted there)",
            mount.display()
        );
    }
    Ok((major(device), minor(device)))
}

/// Limits `device` to `iops` operations and `bytes_per_sec` bytes a second, each way; 0 lifts
/// that limit.
pub fn set((major, minor): (u64, u64), iops: u32, bytes_per_sec: u64) -> anyhow::Result<()> {
    let root = PathBuf::from(BLKIO);
    if !root.join("blkio.throttle.write_iops_device").exists() {
        bail!(
            "this machine offers no block-I/O throttling ({BLKIO}/blkio.throttle.* is missing: \
             the kernel needs cgroup v1's blkio controller, CONFIG_BLK_DEV_THROTTLING); \
             slow-disk cannot be played here"
        );
    }
    for (file, value) in [
        ("blkio.throttle.read_iops_device", u64::from(iops)),
        ("blkio.throttle.write_iops_device", u64::from(iops)),
        ("blkio.throttle.read_bps_device", bytes_per_sec),
        ("blkio.throttle.write_bps_device", bytes_per_sec),
    ] {
        std::fs::write(root.join(file), format!("{major}:{minor} {value}"))
            .with_context(|| format!("writing {BLKIO}/{file} (needs root)"))?;
    }
    Ok(())
}

/// The limits in force on `device`: (iops, bytes per second) for writes, 0 for none.
pub fn current((major, minor): (u64, u64)) -> anyhow::Result<(u64, u64)> {
    let read = |file: &str| -> anyhow::Result<u64> {
        let text = std::fs::read_to_string(Path::new(BLKIO).join(file))?;
        let key = format!("{major}:{minor} ");
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    };
    Ok((
        read("blkio.throttle.write_iops_device")?,
        read("blkio.throttle.write_bps_device")?,
    ))
}
