//! The evidence service's table (`Cf::Evidence`): package records under `{case}` and each
//! package's sealed manifest under `{case}/manifest`, with the files they stand for. Every
//! read and write of a package's bookkeeping goes through here.

use std::path::PathBuf;
use std::sync::Arc;

use comity_protocol::evidence::EvidenceManifest;
use comity_protocol::{CaseId, SignedEnvelope};
use tracing::info;

use super::record::{OPEN, PURGED, manifest_key, open_key, purged_key, record_key};
use super::{Direction, Evidence, EvidenceError, PackageRecord, io};
use crate::cases::record::{CaseRecord, decode, encode};
use crate::store::{Batch, Cf};

impl Evidence {
    pub fn records(&self) -> Result<Vec<PackageRecord>, EvidenceError> {
        Ok(self
            .inner
            .store
            .scan(Cf::Evidence)?
            .iter()
            // Manifests are kept beside the records, under `CASE/manifest`.
            .filter(|(k, _)| !k.contains(&b'/'))
            .filter_map(|(_, v)| decode::<PackageRecord>(v).ok())
            .collect())
    }

    /// A sent package's record as served: cached.
    pub(super) fn served(
        &self,
        case_id: &CaseId,
    ) -> Result<Option<Arc<PackageRecord>>, EvidenceError> {
        if let Some(record) = self.inner.serving.lock().expect("lock").get(case_id) {
            return Ok(Some(record.clone()));
        }
        let Some(record) = self.record(case_id)? else {
            return Ok(None);
        };
        if record.direction != Direction::Outgoing {
            return Ok(None);
        }
        let record = Arc::new(record);
        self.inner
            .serving
            .lock()
            .expect("lock")
            .insert(*case_id, record.clone());
        Ok(Some(record))
    }

    pub fn record(&self, case_id: &CaseId) -> Result<Option<PackageRecord>, EvidenceError> {
        match self.inner.store.get(Cf::Evidence, &record_key(case_id))? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(crate::cases::CaseError::from)?)),
            None => Ok(None),
        }
    }

    /// Stores a record; a sent package whose arrival was confirmed needs no more tending.
    pub(super) async fn put(&self, record: &PackageRecord) -> Result<(), EvidenceError> {
        let mut batch = Batch::new();
        put_record(&mut batch, record);
        Ok(self.inner.store.commit(batch).await?)
    }

    /// The packages that need tending, and those whose case was purged.
    pub(super) fn tending(&self) -> Result<(Vec<CaseId>, Vec<CaseId>), EvidenceError> {
        let ids = |prefix: &[u8]| -> Result<Vec<CaseId>, EvidenceError> {
            Ok(self
                .inner
                .store
                .scan_prefix(Cf::Evidence, prefix)?
                .iter()
                .filter_map(|(k, _)| std::str::from_utf8(&k[prefix.len()..]).ok()?.parse().ok())
                .collect())
        };
        Ok((ids(OPEN)?, ids(PURGED)?))
    }

    /// Marks a package as needing tending or not, writing only when that changes.
    pub(super) async fn mark_open(
        &self,
        case_id: &CaseId,
        open: bool,
    ) -> Result<(), EvidenceError> {
        let key = open_key(case_id);
        if self.inner.store.get(Cf::Evidence, &key)?.is_some() == open {
            return Ok(());
        }
        let mut batch = Batch::new();
        if open {
            batch.put(Cf::Evidence, key, Vec::new());
        } else {
            batch.delete(Cf::Evidence, key);
        }
        Ok(self.inner.store.commit(batch).await?)
    }

    /// A purge mark left by a case whose package is already gone.
    pub(super) async fn clear_purged(&self, case_id: &CaseId) -> Result<(), EvidenceError> {
        let mut batch = Batch::new();
        batch.delete(Cf::Evidence, purged_key(case_id));
        batch.delete(Cf::Evidence, open_key(case_id));
        Ok(self.inner.store.commit(batch).await?)
    }

    /// Stores a record with the package's signed manifest (sealed with the case's key), which
    /// is kept under a key of its own: sweeps and lists read records, never manifests.
    pub(super) async fn put_with_manifest(
        &self,
        record: &PackageRecord,
        sealed_manifest: Vec<u8>,
    ) -> Result<(), EvidenceError> {
        let mut batch = Batch::new();
        put_record(&mut batch, record);
        batch.put(Cf::Evidence, manifest_key(&record.case_id), sealed_manifest);
        Ok(self.inner.store.commit(batch).await?)
    }

    pub(super) async fn note_error(
        &self,
        case_id: &CaseId,
        error: &str,
    ) -> Result<(), EvidenceError> {
        if let Some(mut record) = self.record(case_id)? {
            record.last_error = Some(error.to_owned());
            self.put(&record).await?;
        }
        Ok(())
    }

    pub(super) async fn forget(
        &self,
        record: &PackageRecord,
        why: &str,
    ) -> Result<(), EvidenceError> {
        self.inner
            .serving
            .lock()
            .expect("lock")
            .remove(&record.case_id);
        self.delete_file(record)?;
        let mut batch = Batch::new();
        batch.delete(Cf::Evidence, record_key(&record.case_id));
        batch.delete(Cf::Evidence, manifest_key(&record.case_id));
        batch.delete(Cf::Evidence, open_key(&record.case_id));
        batch.delete(Cf::Evidence, purged_key(&record.case_id));
        self.inner.store.commit(batch).await?;
        info!(case = %record.case_id, root = %record.root, "evidence package deleted: {why}");
        Ok(())
    }

    pub(super) fn delete_file(&self, record: &PackageRecord) -> Result<(), EvidenceError> {
        for path in [
            self.package_path(record.direction, &record.case_id, false),
            self.package_path(record.direction, &record.case_id, true),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("cannot delete {}", path.display()))(e)),
            }
        }
        Ok(())
    }

    /// Where a package's sealed bytes live; `partial` while it is written or pulled.
    pub(super) fn package_path(
        &self,
        direction: Direction,
        case_id: &CaseId,
        partial: bool,
    ) -> PathBuf {
        let sub = match direction {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
        };
        let ext = if partial { "part" } else { "sealed" };
        self.inner.dir.join(sub).join(format!("{case_id}.{ext}"))
    }

    /// The stored manifest of a package, opened with the case's key and re-checked.
    pub(super) fn manifest(
        &self,
        record: &PackageRecord,
        case: &CaseRecord,
    ) -> Result<(SignedEnvelope, EvidenceManifest), EvidenceError> {
        let Some(sealed) = self
            .inner
            .store
            .get(Cf::Evidence, &manifest_key(&record.case_id))?
        else {
            return Err(EvidenceError::Incomplete {
                case: record.case_id,
                verified: 0,
                total: record.chunks,
            });
        };
        let bytes = self
            .inner
            .cases
            .vault()
            .unseal(&case.key_id, &case.case_id, &sealed)?;
        let envelope =
            SignedEnvelope::from_bytes(&bytes, comity_protocol::limits::MAX_REQUEST_FRAME)
                .map_err(|e| EvidenceError::Damaged(format!("stored manifest: {e}")))?;
        let signer = match record.direction {
            Direction::Outgoing => &self.inner.jurisdiction,
            Direction::Incoming => &record.counterparty,
        };
        // Checked when it arrived: it reads with the key that signed it, if that was ever the
        // signer's (rotated or revoked since, it still reads).
        let key = self
            .inner
            .membership
            .current()
            .note(signer, &envelope.signer)
            .and_then(|_| envelope.signer.verifying_key().ok())
            .ok_or_else(|| {
                EvidenceError::Refused(format!(
                    "the stored manifest is signed by {}, which was never {signer}'s key",
                    envelope.signer
                ))
            })?;
        let manifest = envelope
            .open::<EvidenceManifest>(&key)
            .map_err(|e| EvidenceError::Damaged(format!("stored manifest: {e}")))?;
        Ok((envelope, manifest))
    }
}

/// A record in `batch`, marked as needing tending unless it is a sent package whose arrival
/// was confirmed (a received one is settled by the sweep, which sees the case's log).
fn put_record(batch: &mut Batch, record: &PackageRecord) {
    batch.put(Cf::Evidence, record_key(&record.case_id), encode(record));
    if record.direction == Direction::Outgoing && record.delivered {
        batch.delete(Cf::Evidence, open_key(&record.case_id));
    } else {
        batch.put(Cf::Evidence, open_key(&record.case_id), Vec::new());
    }
}
