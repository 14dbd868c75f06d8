//! The policy monitor: pending cases are checked again against the policy in force, so that
//! a policy change or an agreement's expiry reaches the cases already under it. At start (the
//! policy may have changed, agreements may have expired while the node was down) every
//! pending received case is checked; then, at each sweep, the cases of partners whose
//! agreement expired since the last one. A case whose outcome changes gets a signed
//! `policy-checked` event (`core::recheck`); a refusal blocks it until an override.

use std::collections::BTreeSet;

use comity_protocol::{Jurisdiction, PolicyOutcome};
use tracing::{info, warn};

use super::record::Role;
use super::shell::Load;
use super::{Cases, core};

pub(super) async fn run(cases: Cases) {
    let Some(policy) = cases.policy().cloned() else {
        return; // manual review: nothing to check against
    };
    cases.recheck_pending(None).await;
    let mut last = cases.now();
    let mut sweep = tokio::time::interval(cases.inner.retention_sweep);
    loop {
        sweep.tick().await;
        let now = cases.now();
        let lapsed: BTreeSet<Jurisdiction> = policy
            .agreements
            .iter()
            .filter(|a| a.expires.is_some_and(|e| last <= e && e < now))
            .map(|a| a.partner.clone())
            .collect();
        for partner in &lapsed {
            warn!(%partner, "the agreement with this partner expired: its pending cases are checked again");
        }
        if !lapsed.is_empty() {
            cases.recheck_pending(Some(&lapsed)).await;
        }
        last = now;
    }
}

impl Cases {
    /// Checks again every pending case received from `partners` (all, with `None`).
    async fn recheck_pending(&self, partners: Option<&BTreeSet<Jurisdiction>>) {
        let records = match self.list() {
            Ok(records) => records,
            Err(e) => {
                warn!(error = %e, "policy monitor could not list the cases");
                return;
            }
        };
        let (mut checked, mut blocked) = (0, 0);
        for record in records {
            if record.role != Role::Executing
                || record.purged_at.is_some()
                || partners.is_some_and(|p| !p.contains(&record.counterparty))
            {
                continue;
            }
            let case_id = record.case_id;
            match self.run(case_id, Load::Log, core::recheck).await {
                Ok(plan) => {
                    let Some(after) = plan.record else { continue };
                    checked += 1;
                    let outcome = after.log.policy.map(crate::policy::outcome_code);
                    if after.log.policy == Some(PolicyOutcome::Refused) {
                        blocked += 1;
                        warn!(case = %case_id, "the policy now refuses this pending case: flagged, its next step needs an override");
                    } else {
                        info!(case = %case_id, outcome, "pending case checked again against the policy");
                    }
                }
                Err(e) => {
                    warn!(case = %case_id, error = %e, "policy monitor could not check a case")
                }
            }
        }
        if checked > 0 {
            info!(
                changed = checked,
                blocked, "policy monitor: pending cases checked again"
            );
        }
    }
}
