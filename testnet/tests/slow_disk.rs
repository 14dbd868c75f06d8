//! A member on a slow disk: the fault throttles its loop device (and no other), the member
//! still stores what it is sent, `fast-disk` lifts the throttle, and so does tearing the
//! testnet down. Needs root (mount, block-I/O throttling).

mod common;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use comity_testnet::disk_throttle;
use comity_testnet::faults::Fault;
use common::*;

/// Writes `n` blocks of 4 KiB to a file on the disk, each synced before the next.
fn synced_writes(dir: &std::path::Path, n: usize) -> Duration {
    let path = dir.join("probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(nix::libc::O_DSYNC)
        .open(&path)
        .unwrap();
    let started = Instant::now();
    for _ in 0..n {
        file.write_all(&[7u8; 4096]).unwrap();
    }
    let took = started.elapsed();
    std::fs::remove_file(path).unwrap();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_slows_that_member_alone_and_is_lifted() {
    let (_dir, mut bloc) = bloc(&["FR", "DE"]).await;
    bloc.small_disk("DE", 48).unwrap();
    bloc.start_all().unwrap();
    bloc.wait_connected(Duration::from_secs(30)).await.unwrap();
    let store = bloc.node("DE").dir.join("store");
    let device = disk_throttle::device_of(&store).unwrap();
    assert_eq!(disk_throttle::current(device).unwrap(), (0, 0));

    let slow_fault = Fault::SlowDisk {
        member: j("DE"),
        iops: 5,
        bandwidth: None,
    };
    bloc.apply(&slow_fault).await.unwrap();
    assert_eq!(disk_throttle::current(device).unwrap(), (5, 0));
    // Four synced writes are at least four operations (ext4 adds its journal's): at 5 a
    // second, no less than 0.6 s however fast the machine (unthrottled: about 1 ms).
    let slow = synced_writes(&store, 4);
    assert!(slow >= Duration::from_millis(600), "{slow:?} at 5 IO/s");
    // FR's disk is not DE's.
    FR_untouched(&bloc, device);

    // The member still stores what it is sent (each write waits on the disk).
    let case = send(&bloc, "FR", "DE", Some(30_000)).await;
    assert!(case.receipt.is_some(), "no receipt: {:?}", case.delivery);
    assert_eq!(bloc.client("DE").cases().await.unwrap().len(), 1);

    bloc.apply(&Fault::FastDisk { member: j("DE") })
        .await
        .unwrap();
    assert_eq!(disk_throttle::current(device).unwrap(), (0, 0));
    let events = std::fs::read_to_string(bloc.dir.join(comity_testnet::EVENTS_FILE)).unwrap();
    assert!(events.contains("fault slow-disk DE 5 IO/s"), "{events}");

    // Slowed again and torn down: the throttle does not outlive the disk (the next user of
    // the loop device would get it).
    bloc.apply(&slow_fault).await.unwrap();
    bloc.stop_all();
    assert_eq!(bloc.unmount_disks(), 1);
    assert_eq!(disk_throttle::current(device).unwrap(), (0, 0));
}

#[allow(non_snake_case)]
fn FR_untouched(bloc: &comity_testnet::Bloc, device: (u64, u64)) {
    let fr = bloc.node("FR").dir.join("store");
    let err = disk_throttle::device_of(&fr).unwrap_err().to_string();
    assert!(err.contains("not a small disk"), "{err}");
    let rules =
        std::fs::read_to_string("/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device").unwrap();
    assert_eq!(
        rules.lines().count(),
        1,
        "only DE's loop device {device:?}: {rules}"
    );
}
