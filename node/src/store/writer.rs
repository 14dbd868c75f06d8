//! The store's single writer thread: group commit of synced batches.
//!
//! Runs on its own OS thread because a synced RocksDB write blocks for the length of an fsync.
//! It takes every job waiting in its bounded queue, checks their guards, merges them into one
//! `WriteBatch` and syncs once; then answers each job.

use std::collections::HashSet;
use std::sync::Arc;

use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::{Batch, Cf, Op, StoreError, handle};

/// Most jobs merged into one synced write.
const MAX_GROUP: usize = 512;
/// Jobs that may wait for the writer; senders wait beyond that (backpressure).
const QUEUE: usize = 4096;

pub(super) struct Job {
    pub batch: Batch,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

pub(super) fn spawn(db: Arc<DB>) -> (mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let mut group = Vec::with_capacity(MAX_GROUP);
            let mut next_audit = next_audit_index(&db);
            while let Some(first) = rx.blocking_recv() {
                group.push(first);
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                write_group(&db, &mut group, &mut next_audit);
            }
            // All handles dropped: flush what RocksDB buffers before the thread ends.
            let _ = db.flush_wal(true);
        })
        .expect("spawn store writer thread");
    (tx, thread)
}

/// The index the next audit entry gets: one past the last stored.
fn next_audit_index(db: &DB) -> u64 {
    db.iterator_cf(handle(db, Cf::Audit), rocksdb::IteratorMode::End)
        .next()
        .and_then(|item| item.ok())
        .and_then(|(key, _)| <[u8; 8]>::try_from(&key[..]).ok())
        .map(|key| u64::from_be_bytes(key) + 1)
        .unwrap_or(0)
}

fn write_group(db: &DB, group: &mut Vec<Job>, next_audit: &mut u64) {
    let first_audit = *next_audit;
    let mut batch = WriteBatch::default();
    let mut accepted = Vec::with_capacity(group.len());
    let mut guarded: HashSet<(Cf, Vec<u8>)> = HashSet::new();
    for job in group.drain(..) {
        if let Some((cf, key)) = &job.batch.guard {
            let existing = match db.get_cf(handle(db, *cf), key) {
                Ok(v) => v,
                Err(e) => {
                    let _ = job.reply.send(Err(StoreError::Read(e.to_string())));
                    continue;
                }
            };
            if let Some(value) = existing {
                let _ = job.reply.send(Err(StoreError::Exists(value)));
                continue;
            }
            if !guarded.insert((*cf, key.clone())) {
                // Claimed by an earlier job of this same group: its value is not on disk yet,
                // so the caller retries and then finds it (an empty value means "in flight").
                let _ = job.reply.send(Err(StoreError::Exists(Vec::new())));
                continue;
            }
        }
        for op in &job.batch.ops {
            match op {
                Op::Put(cf, k, v) => batch.put_cf(handle(db, *cf), k, v),
                Op::Delete(cf, k) => batch.delete_cf(handle(db, *cf), k),
            }
        }
        for entry in &job.batch.audit {
            let key = next_audit.to_be_bytes();
            batch.put_cf(handle(db, Cf::Audit), key, entry);
            batch.put_cf(
                handle(db, Cf::AuditLeaves),
                key,
                comity_protocol::merkle::leaf_hash(entry),
            );
            *next_audit += 1;
        }
        accepted.push(job.reply);
    }
    if accepted.is_empty() {
        return;
    }
    let mut options = WriteOptions::default();
    options.set_sync(true);
    let started = std::time::Instant::now();
    let result = db
        .write_opt(batch, &options)
        .map_err(|e| StoreError::Write(e.to_string()));
    let metrics = crate::metrics::get();
    metrics
        .store_commit_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.store_group_size.observe(accepted.len() as f64);
    if result.is_err() {
        metrics.store_commit_failures.inc();
        // Nothing was written: the numbers are free again, and the log stays gap-free.
        *next_audit = first_audit;
    }
    for reply in accepted {
        let _ = reply.send(result.as_ref().map(|_| ()).map_err(clone_error));
    }
}

/// The group's one error, for each of its jobs: the same message, not wrapped again (which
/// read "store write failed, nothing was saved: store write failed, nothing was saved: …").
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Write(message) => StoreError::Write(message.clone()),
        other => StoreError::Write(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_of_a_failed_group_gets_the_error_once() {
        let error = StoreError::Write("IO error: No space left on device".into());
        assert_eq!(clone_error(&error).to_string(), error.to_string());
        assert_eq!(
            error.to_string().matches("nothing was saved").count(),
            1,
            "{error}"
        );
    }
}
