//! Retention that deletes: when a case's retention ends, the requesting node destroys its
//! content (crypto-shredding: the case's key is deleted) and records a signed `purged` event,
//! which the executing node follows by destroying its own copy.

use tracing::{info, warn};

use super::Cases;
use super::record::Role;
use comity_protocol::EventKind;

pub(super) async fn run(cases: Cases) {
    let mut sweep = tokio::time::interval(cases.inner.retention_sweep);
    loop {
        sweep.tick().await;
        let records = match cases.list() {
            Ok(records) => records,
            Err(e) => {
                warn!(error = %e, "retention sweep could not list cases");
                continue;
            }
        };
        let now = cases.now();
        for record in records {
            if record.purged_at.is_some() {
                // Finish a purge a crash interrupted: the key must be gone.
                if let Err(e) = cases.inner.vault.shred(&record.key_id) {
                    warn!(case = %record.case_id, error = %e, "could not destroy a purged case's key");
                }
                continue;
            }
            if record.role != Role::Requester || record.log.state.is_none() {
                continue;
            }
            let Some(until) = cases.retention_until(&record) else {
                continue;
            };
            if now > until {
                match cases
                    .act(record.case_id, EventKind::Purged, "retention")
                    .await
                {
                    Ok(_) => {
                        info!(case = %record.case_id, %until, "retention ended: content destroyed")
                    }
                    Err(e) => {
                        warn!(case = %record.case_id, error = %e, "retention purge failed; will retry")
                    }
                }
            }
        }
    }
}
