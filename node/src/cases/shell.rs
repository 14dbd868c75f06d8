//! The one shell around the case core: take the case's lock, load it, ask the core for a plan,
//! commit the plan in one synced batch, release the lock, run the plan's effects.

use std::fmt::Debug;

use comity_protocol::{CaseId, CaseLog};
use tracing::info;

use super::core::{self, Case, Context, Effect, Plan};
use super::record::{case_key, event_key, message_key};
use super::{CaseError, Cases};
use crate::store::{Batch, Cf, StoreError};

/// What the shell loads before it asks the core.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    /// The record only (delivery bookkeeping, approvals, sending a draft).
    Record,
    /// The record and the case's log.
    Log,
}

/// A concurrent attempt of the same message holds its inbox key.
pub(super) const GUARD_TAKEN: &str = "message is being stored by another attempt; retry";

impl Cases {
    /// Runs `rule` on case `case_id` under its lock and stores what it planned; returns the
    /// plan once stored and its effects run.
    pub(super) async fn run<E>(
        &self,
        case_id: CaseId,
        load: Load,
        rule: impl FnOnce(&Context, Case) -> Result<Plan, E>,
    ) -> Result<Plan, E>
    where
        E: From<CaseError> + Debug,
    {
        let guard = self.lock(&case_id).lock().await;
        let case = self.load(case_id, load)?;
        let mut plan = self.with_context(|ctx| rule(ctx, case))?;
        self.store_plan(&mut plan).await?;
        drop(guard);
        self.after(&plan).await;
        Ok(plan)
    }

    /// Calls `f` with the context of this moment: the roster, the signing key and the clock.
    pub(super) fn with_context<T>(&self, f: impl FnOnce(&Context) -> T) -> T {
        let roster = self.roster();
        let signer = self.inner.identity.signing_key();
        let now = self.now();
        let ctx = Context {
            me: &self.inner.jurisdiction,
            roster: &roster,
            signer: &signer,
            policy: self.inner.policy.as_ref(),
            disclosure_approval: &self.inner.disclosure_approval,
            now,
            closed: crate::bloc::may_start_requests(&roster, now).err(),
        };
        f(&ctx)
    }

    fn load(&self, case_id: CaseId, load: Load) -> Result<Case, CaseError> {
        let record = self.get(&case_id)?;
        let log = match (&record, load) {
            (Some(_), Load::Log) => self.load_log(&case_id)?,
            _ => CaseLog::new(case_id),
        };
        Ok(Case { record, log })
    }

    /// Writes `plan` in one synced batch. A new case gets its key here, before anything of it
    /// is sealed. A push whose message id is already stored fails with [`GUARD_TAKEN`].
    pub(super) async fn store_plan(&self, plan: &mut Plan) -> Result<(), CaseError> {
        if plan.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        if let Some(record) = &mut plan.record
            && record.key_id.is_empty()
        {
            // A case new here: counted for its member's daily quota, by this node's clock.
            super::index::opened(&mut batch, record, self.now());
            record.key_id = self.inner.vault.new_key()?;
            for entry in &mut plan.outbox_put {
                entry.key_id.clone_from(&record.key_id);
            }
            // A case purged as it arrives: its events are sealed, then its key shredded.
            for effect in &mut plan.effects {
                if let Effect::Shred(key) = effect
                    && key.is_empty()
                {
                    key.clone_from(&record.key_id);
                }
            }
        }
        if !plan.events.is_empty() {
            let record = plan.record.as_ref().ok_or_else(|| {
                CaseError::Refused("events planned without their case's record".into())
            })?;
            for (index, envelope) in &plan.events {
                let sealed =
                    self.inner
                        .vault
                        .seal(&record.key_id, &record.case_id, &envelope.to_bytes())?;
                batch.put(Cf::Events, event_key(&record.case_id, *index), sealed);
                crate::audit::record_event(&mut batch, envelope);
            }
        }
        for what in &plan.audit {
            crate::audit::record(&mut batch, what.clone());
        }
        if let Some(record) = &plan.record {
            if let Some((root, from)) = &plan.announce {
                self.inner.fulfilments.announced(
                    &mut batch,
                    record.case_id,
                    *root,
                    from,
                    self.now(),
                );
            }
            if plan.effects.iter().any(|e| matches!(e, Effect::Shred(_))) {
                self.inner.fulfilments.purged(&mut batch, record.case_id);
                // The receipts given for its pushes go with it.
                super::index::forget_received(&self.inner.store, &mut batch, &record.case_id)?;
            }
            batch.put(
                Cf::Cases,
                case_key(&record.case_id),
                self.encode_record(record)?,
            );
            super::index::put(&mut batch, record, self.retention_cap());
        }
        for entry in &plan.outbox_put {
            batch.put(
                Cf::Outbox,
                message_key(&entry.message_id),
                self.encode_outbox(entry)?,
            );
        }
        for id in &plan.outbox_delete {
            batch.delete(Cf::Outbox, message_key(id));
        }
        if let Some((message_id, receipt)) = &plan.inbox {
            batch.require_absent(Cf::Inbox, message_key(message_id));
            // The push that purges its case is receipted but not kept, like every later one.
            let purging = plan.effects.iter().any(|e| matches!(e, Effect::Shred(_)));
            if let Some(record) = plan.record.as_ref().filter(|_| !purging) {
                batch.put(Cf::Inbox, message_key(message_id), receipt.to_bytes());
                super::index::received(&mut batch, &record.case_id, message_id);
            }
        }
        self.inner.store.commit(batch).await?;
        Ok(())
    }

    /// The plan's effects, once it is stored and the case's lock released.
    pub(super) async fn after(&self, plan: &Plan) {
        for effect in &plan.effects {
            match effect {
                Effect::Shred(key_id) => {
                    // The record says purged already: a failure here is finished by the
                    // retention sweep, which shreds the keys of purged cases again.
                    match self.inner.vault.shred(key_id) {
                        Ok(()) => info!(key = %key_id, "case content destroyed (key shredded)"),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not shred a purged case's key; the retention sweep retries")
                        }
                    }
                }
                Effect::WakeWaiters(case_id) => self.wake_waiters(case_id),
                Effect::WakeEvidence => self.inner.evidence_wake.notify_one(),
            }
        }
        self.dispatch(plan.outbox_put.clone()).await;
    }
}

impl From<CaseError> for core::IngestError {
    /// What the member that sent the events is told when this node cannot take them: a fixed
    /// text by kind of failure. The detail (a path, a disk error) stays in this node's log.
    fn from(e: CaseError) -> Self {
        if let CaseError::Store(StoreError::Exists(_)) = e {
            return core::IngestError::Unavailable(GUARD_TAKEN.into());
        }
        tracing::warn!(error = %e, "events not taken in; the sender will retry");
        core::IngestError::Unavailable(public_reason(&e).into())
    }
}

/// A failure of this node as another member may read it: no paths, no local detail.
pub(super) fn public_reason(e: &CaseError) -> &'static str {
    match e {
        CaseError::Store(_) => "the receiving node cannot store the events now; retry later",
        CaseError::Vault(crate::vault::VaultError::Shredded(_)) => {
            "the case's content was destroyed at the receiving node"
        }
        CaseError::Vault(_) => "the receiving node cannot open its case keys now; retry later",
        CaseError::Corrupt(_) | CaseError::Log(_) => {
            "the receiving node's copy of the case is damaged; its operator is told"
        }
        _ => "the receiving node cannot take the events now; retry later",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_failure_reaches_the_sender_without_its_detail() {
        let disk_full = CaseError::Vault(crate::vault::VaultError::Io {
            path: "/srv/comity/keys/.s1.tmp".into(),
            source: std::io::Error::other("No space left on device"),
        });
        let core::IngestError::Unavailable(told) = core::IngestError::from(disk_full) else {
            panic!("a local failure is worth a retry")
        };
        assert!(!told.contains("/srv") && !told.contains("space"), "{told}");
        let store = CaseError::Store(StoreError::Write(
            "IO error: /srv/comity/store/000012.log".into(),
        ));
        let core::IngestError::Unavailable(told) = core::IngestError::from(store) else {
            panic!("a local failure is worth a retry")
        };
        assert!(!told.contains("/srv"), "{told}");
        assert!(matches!(
            core::IngestError::from(CaseError::Store(StoreError::Exists(vec![]))),
            core::IngestError::Unavailable(g) if g == GUARD_TAKEN
        ));
    }
}
