//! Retention that deletes: when a case's retention ends, the requesting node destroys its
//! content (crypto-shredding: the case's key is deleted) and records a signed `purged` event,
//! which the executing node follows by destroying its own copy.

use tracing::{info, warn};

use super::{Cases, index};
use crate::store::Batch;
use comity_protocol::EventKind;

pub(super) async fn run(cases: Cases) {
    let mut sweep = tokio::time::interval(cases.inner.retention_sweep);
    loop {
        sweep.tick().await;
        cases.finish_purges().await;
        let now = cases.now();
        let due = match index::retention_due(&cases.inner.store, now) {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "retention sweep could not read the index");
                continue;
            }
        };
        for case_id in due {
            // The index says so; the record decides (an index from another build may be stale).
            match cases.record_closed(&case_id) {
                Ok(Some(record))
                    if record.purged_at.is_none()
                        && cases
                            .retention_until(&record)
                            .is_some_and(|until| now > until) => {}
                Ok(_) => continue,
                Err(e) => {
                    warn!(case = %case_id, error = %e, "retention sweep could not read a case");
                    continue;
                }
            }
            match cases.act(case_id, EventKind::Purged, "retention").await {
                Ok(record) => {
                    let until = cases.retention_until(&record);
                    info!(case = %case_id, until = until.map(|u| u.to_string()), "retention ended: content destroyed");
                }
                Err(e) => {
                    warn!(case = %case_id, error = %e, "retention purge failed; will retry")
                }
            }
        }
    }
}

impl Cases {
    /// Destroys the keys of purged cases that a crash (or a failed shred) left behind.
    async fn finish_purges(&self) {
        let pending = match index::to_shred(&self.inner.store) {
            Ok(pending) => pending,
            Err(e) => {
                warn!(error = %e, "could not read the purged cases' keys to destroy");
                return;
            }
        };
        for (case_id, key_id) in pending {
            if let Err(e) = self.inner.vault.shred(&key_id) {
                warn!(case = %case_id, error = %e, "could not destroy a purged case's key");
                continue;
            }
            let mut batch = Batch::new();
            index::shredded(&mut batch, &case_id);
            if let Err(e) = self.inner.store.commit(batch).await {
                warn!(case = %case_id, error = %e, "could not record a destroyed key");
            }
        }
    }
}
