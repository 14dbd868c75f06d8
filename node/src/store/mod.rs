//! The node's durable state in RocksDB. This is the only module that imports `rocksdb`.
//!
//! Records are grouped in column families by kind. Every state change is one `Batch`, applied
//! atomically and synced to disk before `commit` returns, so nothing is acknowledged to a peer
//! or an officer that a crash could lose. One writer thread applies batches; batches that
//! arrive while a sync is in progress are merged into the next write (group commit), which is
//! what keeps many requests in flight cheap.

mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options};
use tokio::sync::{mpsc, oneshot};

/// Kinds of record, one column family each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// case id → case record (both requester and executing side).
    Cases,
    /// message id → a message awaiting a signed receipt from its peer.
    Outbox,
    /// message id → the receipt we gave for it: answers duplicates without reprocessing.
    Inbox,
    /// token hash → the officer it authenticates.
    Tokens,
    /// case id / index → signed case event, append-only.
    Events,
    /// time / id → a message or event refused from a peer, with the reason.
    Refusals,
    /// officer name → officer (role, created, revoked) and its token's hash.
    Officers,
    /// time / id → a read of case content: officer, case, stated purpose.
    Access,
    /// index (big-endian u64) → audit entry, append-only.
    Audit,
    /// index → the entry's RFC 9162 leaf hash, to name an altered entry.
    AuditLeaves,
    /// tree size (big-endian u64) → signed checkpoint of the audit log.
    Checkpoints,
    /// member → its latest checkpoint we checked, with our cosignature.
    Witness,
    /// time / id → two signed checkpoints of a member that contradict each other.
    WitnessEvidence,
    /// period / member → that member's latest signed transparency report for the period.
    Reports,
    /// witness → the latest cosignature of this node's own checkpoints by that member.
    Cosignatures,
    /// name → what this node last recorded of its own settings (the policy in force).
    Settings,
    /// case id → the evidence package of the case on this node (sent or received) and how far
    /// its transfer is.
    Evidence,
    /// The bloc configuration chain: `v`+version → a verified configuration (`COSE_Sign`),
    /// `p`+hash → an open proposal with the signatures gathered, `f`+hash → a fork's other
    /// configuration (evidence), `anchor` → the trust anchor.
    Bloc,
    /// Indexes of the cases, so that no periodic or per-message path reads every case:
    /// `m/`member`/`case → shared with that member; `r/`until`/`case → retention ends then;
    /// `s/`case → a purged case whose key is still to be destroyed (see `cases::index`).
    CaseIndex,
    /// answered-at (ms, big-endian) / sequence → one exchange's operational record: who,
    /// which way, what kind, sizes, times and outcome; never content (see `opmon`).
    Opmon,
}

impl Cf {
    pub const ALL: [Cf; 20] = [
        Cf::Cases,
        Cf::Outbox,
        Cf::Inbox,
        Cf::Tokens,
        Cf::Events,
        Cf::Refusals,
        Cf::Officers,
        Cf::Access,
        Cf::Audit,
        Cf::AuditLeaves,
        Cf::Checkpoints,
        Cf::Witness,
        Cf::WitnessEvidence,
        Cf::Reports,
        Cf::Cosignatures,
        Cf::Settings,
        Cf::Evidence,
        Cf::Bloc,
        Cf::CaseIndex,
        Cf::Opmon,
    ];

    fn name(self) -> &'static str {
        match self {
            Cf::Cases => "cases",
            Cf::Outbox => "outbox",
            Cf::Inbox => "inbox",
            Cf::Tokens => "tokens",
            Cf::Events => "events",
            Cf::Refusals => "refusals",
            Cf::Officers => "officers",
            Cf::Access => "access",
            Cf::Audit => "audit",
            Cf::AuditLeaves => "audit-leaves",
            Cf::Checkpoints => "checkpoints",
            Cf::Witness => "witness",
            Cf::WitnessEvidence => "witness-evidence",
            Cf::Reports => "reports",
            Cf::Cosignatures => "cosignatures",
            Cf::Settings => "settings",
            Cf::Evidence => "evidence",
            Cf::Bloc => "bloc",
            Cf::CaseIndex => "case-index",
            Cf::Opmon => "opmon",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {message} (is another `comity run` using it? is the disk full?)"
    )]
    Open { path: PathBuf, message: String },
    #[error(
        "the store at {path} is damaged: {message}. Nothing was changed. Restore the latest backup (`comity restore --from BACKUP --data-dir DIR`), or move the damaged store aside and rebuild the cases this node shares from its members (`comity recover --from-peers`)"
    )]
    Damaged { path: PathBuf, message: String },
    #[error("store write failed, nothing was saved: {0} (check free disk space and permissions)")]
    Write(String),
    #[error("store read failed: {0}")]
    Read(String),
    /// A batch's guard key was already present; carries the existing value.
    #[error("record already exists")]
    Exists(Vec<u8>),
    #[error("the store is shutting down")]
    Closed,
}

#[derive(Debug)]
enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
}

/// A stored key and value.
pub type Record = (Vec<u8>, Vec<u8>);

/// One atomic state change.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
    /// The batch applies only if this key is absent (checked in the writer, so two
    /// concurrent batches guarded by the same key cannot both apply).
    guard: Option<(Cf, Vec<u8>)>,
    /// Entries to append to the audit log; the writer numbers them, so that the log stays
    /// gap-free and in commit order.
    audit: Vec<Vec<u8>>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether the batch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.audit.is_empty() && self.guard.is_none()
    }
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(cf, key.into(), value.into()));
    }
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(cf, key.into()));
    }
    /// Appends an entry to the audit log in the same atomic write as the change it records.
    pub fn audit(&mut self, entry: Vec<u8>) {
        self.audit.push(entry);
    }

    /// Makes the batch conditional on `key` being absent from `cf`.
    pub fn require_absent(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.guard = Some((cf, key.into()));
    }
}

/// A cloneable handle on the store. The store closes when the last handle is dropped, after
/// its writer thread has applied every batch already queued.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<DB>,
    writer: Option<mpsc::Sender<writer::Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer loop; joining it releases its handle on the DB,
        // so the directory can be opened again as soon as this returns.
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Memory the store may hold, whatever members write: RocksDB's defaults (a 64 MiB memtable
/// and a 32 MiB block cache per column family) would let a flood of writes grow a node by
/// hundreds of MiB before anything is flushed.
const MEMTABLES_BYTES: usize = 32 << 20; // all memtables together; the largest is flushed past it
const MEMTABLE_BYTES: usize = 8 << 20; // one column family's
const BLOCK_CACHE_BYTES: usize = 32 << 20; // shared by every column family
const MANIFEST_PREALLOCATION: usize = 1 << 20;

impl Store {
    /// Opens (or creates) the store and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_open_files(512);
        options.set_keep_log_file_num(4);
        options.set_db_write_buffer_size(MEMTABLES_BYTES);
        // RocksDB preallocates each write-ahead log file at 1.1 × the largest memtable (capped
        // by the total) and the manifest at 4 MiB: with the default column family at its 64 MiB
        // default, a node could not start again with less than 36 MiB free; now about 10.
        options.set_manifest_preallocation_size(MANIFEST_PREALLOCATION);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        let names = std::iter::once(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .chain(Cf::ALL.iter().map(|cf| cf.name()));
        let descriptors = names.map(|name| {
            let mut options = Options::default();
            options.set_write_buffer_size(MEMTABLE_BYTES);
            options.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(name, options)
        });
        let db = DB::open_cf_descriptors(&options, path, descriptors)
            .map_err(|e| open_error(path, &e))?;
        let db = Arc::new(db);
        let (writer, thread) = writer::spawn(db.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                writer: Some(writer),
                thread: Some(thread),
                path: path.to_owned(),
            }),
        })
    }

    /// Opens a store read-only, beside a running node (for audits): it can read but never
    /// commit.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let options = Options::default();
        let names = Cf::ALL.iter().map(|cf| cf.name());
        let db = DB::open_cf_for_read_only(&options, path, names, false)
            .map_err(|e| open_error(path, &e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: Arc::new(db),
                writer: None,
                thread: None,
                path: path.to_owned(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Applies `batch` atomically and durably (fsync'd WAL) before returning.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        let writer = self.inner.writer.as_ref().ok_or(StoreError::Closed)?;
        writer
            .send(writer::Job { batch, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner
            .db
            .get_cf(handle(&self.inner.db, cf), key)
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    /// Every record of one kind, in key order.
    pub fn scan(&self, cf: Cf) -> Result<Vec<Record>, StoreError> {
        self.inner
            .db
            .iterator_cf(handle(&self.inner.db, cf), IteratorMode::Start)
            .map(|item| {
                item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(|e| StoreError::Read(e.to_string()))
            })
            .collect()
    }

    /// Every record of one kind whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
        let mode = IteratorMode::From(prefix, rocksdb::Direction::Forward);
        let mut records = Vec::new();
        for item in self.inner.db.iterator_cf(handle(&self.inner.db, cf), mode) {
            let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
            if !k.starts_with(prefix) {
                break;
            }
            records.push((k.into_vec(), v.into_vec()));
        }
        Ok(records)
    }

    /// Records whose keys are in `from..to`, in key order.
    pub fn scan_range(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<Vec<Record>, StoreError> {
        let mode = IteratorMode::From(from, rocksdb::Direction::Forward);
        let mut records = Vec::new();
        for item in self.inner.db.iterator_cf(handle(&self.inner.db, cf), mode) {
            let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
            if *k >= *to {
                break;
            }
            records.push((k.into_vec(), v.into_vec()));
        }
        Ok(records)
    }

    /// The record with the greatest key, if any.
    pub fn last(&self, cf: Cf) -> Result<Option<Record>, StoreError> {
        self.inner
            .db
            .iterator_cf(handle(&self.inner.db, cf), IteratorMode::End)
            .next()
            .transpose()
            .map(|r| r.map(|(k, v)| (k.into_vec(), v.into_vec())))
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    /// Visits the records of one kind whose keys are in `from..to`, in key order or (with
    /// `newest_first`) in reverse, until `visit` returns false: a bounded walk of a large
    /// table.
    pub fn visit(
        &self,
        cf: Cf,
        (from, to): (&[u8], &[u8]),
        newest_first: bool,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mode = match newest_first {
            false => IteratorMode::From(from, rocksdb::Direction::Forward),
            true => IteratorMode::From(to, rocksdb::Direction::Reverse),
        };
        for item in self.inner.db.iterator_cf(handle(&self.inner.db, cf), mode) {
            let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
            if *k < *from || *k >= *to {
                if newest_first && *k >= *to {
                    continue; // the reverse walk starts at `to` itself
                }
                break;
            }
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// A consistent copy of the whole store in `dir` (which must not exist), taken while the
    /// node runs: RocksDB hard-links the table files and copies the rest.
    pub fn checkpoint_to(&self, dir: &Path) -> Result<(), StoreError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.inner.db)
            .map_err(|e| StoreError::Read(e.to_string()))?;
        checkpoint
            .create_checkpoint(dir)
            .map_err(|e| StoreError::Write(format!("checkpoint to {}: {e}", dir.display())))
    }

    pub fn count(&self, cf: Cf) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self
            .inner
            .db
            .iterator_cf(handle(&self.inner.db, cf), IteratorMode::Start)
        {
            item.map_err(|e| StoreError::Read(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    }
}

/// Why a store did not open: damaged files (RocksDB found a checksum or format it cannot read)
/// are told apart from a store in use or a full disk, because what to do differs.
fn open_error(path: &Path, e: &rocksdb::Error) -> StoreError {
    let (path, message) = (path.to_owned(), e.to_string());
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StoreError::Damaged { path, message },
        _ => StoreError::Open { path, message },
    }
}

fn handle(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    // Every column family is created at open, so a missing handle is a bug, not an input error.
    db.cf_handle(cf.name())
        .expect("column family created at open")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_survive_reopen_and_guards_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = Batch::new();
            batch.require_absent(Cf::Inbox, b"m1".to_vec());
            batch.put(Cf::Inbox, b"m1".to_vec(), b"receipt".to_vec());
            batch.put(Cf::Cases, b"c1".to_vec(), b"case".to_vec());
            store.commit(batch).await.unwrap();

            let mut again = Batch::new();
            again.require_absent(Cf::Inbox, b"m1".to_vec());
            again.put(Cf::Cases, b"c2".to_vec(), b"other".to_vec());
            match store.commit(again).await {
                Err(StoreError::Exists(v)) => assert_eq!(v, b"receipt"),
                other => panic!("expected Exists, got {other:?}"),
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get(Cf::Cases, b"c1").unwrap().unwrap(), b"case");
        assert_eq!(store.get(Cf::Cases, b"c2").unwrap(), None);
        assert_eq!(store.count(Cf::Cases).unwrap(), 1);

        let mut events = Batch::new();
        for key in ["a/1", "a/2", "ab/1", "b/1"] {
            events.put(Cf::Events, key.as_bytes().to_vec(), b"e".to_vec());
        }
        store.commit(events).await.unwrap();
        let keys: Vec<Vec<u8>> = store
            .scan_prefix(Cf::Events, b"a/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
    }

    #[tokio::test]
    async fn concurrent_guarded_batches_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..32u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut batch = Batch::new();
                batch.require_absent(Cf::Inbox, b"same".to_vec());
                batch.put(Cf::Inbox, b"same".to_vec(), vec![i]);
                store.commit(batch).await.is_ok()
            }));
        }
        let mut applied = 0;
        for t in tasks {
            applied += t.await.unwrap() as usize;
        }
        assert_eq!(applied, 1);
    }

    #[test]
    fn second_open_of_a_live_store_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another `comity run`"), "{err}");
    }
}
