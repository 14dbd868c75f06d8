//! Retention that deletes: when a case's retention ends here, this node destroys its content
//! (crypto-shredding: the case's key is deleted) and records a signed event: `purged` on the
//! requesting side, at the end of the request's retention (capped by this node's policy);
//! `records-destroyed` on the executing side, at the end of its own retention of its records,
//! which the requester's purge does not shorten.
//!
//! The same sweep ends preservations: the executing node warns before one lapses and, at its
//! end, records a signed `preservation-released` event, so that both sides see the data is no
//! longer kept from deletion.

use std::collections::HashSet;

use comity_protocol::{CaseId, Timestamp};
use tracing::{info, warn};

use super::{Cases, index};
use crate::store::Batch;
use comity_protocol::EventKind;

pub(super) async fn run(cases: Cases) {
    let mut sweep = tokio::time::interval(cases.inner.retention_sweep);
    let mut warned = HashSet::new();
    loop {
        sweep.tick().await;
        cases.finish_purges().await;
        cases.lapse_preservations(&mut warned).await;
        let now = cases.now();
        let due = match index::retention_keys_due(&cases.inner.store, now) {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "retention sweep could not read the index");
                continue;
            }
        };
        for ((key, keyed), case_id) in due {
            // The index says so; the record decides (an index from another build may be stale).
            match cases.record_closed(&case_id) {
                Ok(Some(record))
                    if record.purged_at.is_none()
                        && cases
                            .retention_until(&record)
                            .is_some_and(|until| now > until) => {}
                Ok(record) => {
                    // Its retention moved (an amendment, a preservation) or it is gone: the
                    // entry for its present end, if any, stands for it.
                    let current = record.as_ref().and_then(|r| cases.retention_until(r));
                    if record.is_none_or(|r| r.purged_at.is_some()) || current != keyed {
                        let mut batch = Batch::new();
                        index::forget(&mut batch, key);
                        if let Err(e) = cases.inner.store.commit(batch).await {
                            warn!(case = %case_id, error = %e, "could not drop a stale retention entry");
                        }
                    }
                    continue;
                }
                Err(e) => {
                    warn!(case = %case_id, error = %e, "retention sweep could not read a case");
                    continue;
                }
            }
            // Each side destroys its own copy, and says so in a signed event.
            let kind = match cases.record_closed(&case_id) {
                Ok(Some(r)) if r.role == super::record::Role::Executing => {
                    EventKind::RecordsDestroyed
                }
                _ => EventKind::Purged,
            };
            match cases.act(case_id, kind, "retention").await {
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
    /// Releases, with a signed event, every preservation of ours that has reached its end, and
    /// warns once (per run of the node) about those that end within the warning period.
    async fn lapse_preservations(&self, warned: &mut HashSet<(CaseId, Timestamp)>) {
        let now = self.now();
        let ending = match index::preservations_ending(
            &self.inner.store,
            now.saturating_add(super::PRESERVATION_WARNING),
        ) {
            Ok(ending) => ending,
            Err(e) => {
                warn!(error = %e, "preservation sweep could not read the index");
                return;
            }
        };
        for (key, case_id) in ending {
            let record = match self.record_closed(&case_id) {
                Ok(record) => record,
                Err(e) => {
                    warn!(case = %case_id, error = %e, "preservation sweep could not read a case");
                    continue;
                }
            };
            let active = record
                .as_ref()
                .filter(|r| r.purged_at.is_none())
                .and_then(|r| r.log.preservation)
                .filter(|p| !p.released);
            let keyed = index::preservation_end(&key);
            match active {
                // The key this preservation is indexed by, not yet at its end: warn once.
                Some(p) if Some(p.until) == keyed && p.until >= now => {
                    if warned.insert((case_id, p.until)) {
                        warn!(case = %case_id, until = %p.until, "preservation lapses soon: extend it (`comity case preserve --extend-until`) or let it lapse");
                    }
                    continue;
                }
                Some(p) if Some(p.until) == keyed => {
                    match self
                        .act(
                            case_id,
                            EventKind::PreservationReleased,
                            "preservation-lapse",
                        )
                        .await
                    {
                        Ok(_) => {
                            info!(case = %case_id, until = %p.until, "preservation lapsed: release recorded")
                        }
                        Err(e) => {
                            warn!(case = %case_id, error = %e, "preservation lapse could not be recorded; will retry");
                            continue;
                        }
                    }
                }
                // Extended (a later key stands for it), released, purged or gone.
                _ => {}
            }
            let mut batch = Batch::new();
            index::forget(&mut batch, key);
            if let Err(e) = self.inner.store.commit(batch).await {
                warn!(case = %case_id, error = %e, "could not drop a done preservation's index entry");
            }
        }
    }

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
