//! The store on a disk that fills up for real: RocksDB runs out of space in the middle of its
//! work (here, writing the table a full memtable is flushed to), the writes are refused with
//! the disk named ("No space left on device"), and once space is freed the store takes writes
//! again by itself (RocksDB's error handler checks for free space every few seconds and
//! resumes) with nothing acknowledged lost. A node on a full disk depends on this: the
//! testnet's `disk-full` scenario never pushes its store that far. Needs root (a tmpfs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use comity_node::store::{Batch, Cf, Store};

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn new(dir: &Path, mib: u64) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn value(i: u64) -> Vec<u8> {
    // Incompressible, so that what is written is what takes space.
    let mut v = vec![0u8; 64 << 10];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in &mut v {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

async fn write(store: &Store, i: u64) -> Result<(), comity_node::store::StoreError> {
    let mut batch = Batch::new();
    batch.put(Cf::Settings, format!("k{i:08}"), value(i));
    store.commit(batch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ran_out_of_space_takes_writes_again_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let _disk = SmallDisk::new(dir.path(), 40);
    let filler = dir.path().join("filler");
    // Room that is given back later.
    std::fs::write(&filler, vec![1u8; 12 << 20]).unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();

    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2_000u64 {
        match write(&store, i).await {
            Ok(()) => acknowledged.push(i),
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled");
    eprintln!(
        "{} writes of 64 KiB acknowledged, then: {refused}",
        acknowledged.len()
    );
    assert!(refused.contains("No space left"), "{refused}");

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut next = acknowledged.len() as u64 + 10_000;
    loop {
        match write(&store, next).await {
            Ok(()) => {
                acknowledged.push(next);
                break;
            }
            Err(e) => assert!(
                freed.elapsed() < Duration::from_secs(30),
                "the store still refuses writes 30 s after space was freed: {e}"
            ),
        }
        next += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "writes taken again {:?} after space was freed",
        freed.elapsed()
    );
    drop(store);

    let store = Store::open(&dir.path().join("store")).unwrap();
    for i in acknowledged {
        assert!(
            store
                .get(Cf::Settings, format!("k{i:08}").as_bytes())
                .unwrap()
                .is_some(),
            "acknowledged write {i} lost"
        );
    }
}
