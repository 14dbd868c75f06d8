//! The lifecycle of a case and the transition rules the fold applies, event by event.
//!
//! This module decides only "given this state, does this event apply, and if not, why not".
//! It never looks at signatures, links or order: [`super::CaseLog`] has checked those and
//! hands events over in the deterministic fold order.

use super::event::{CaseEvent, Decision, EventId, EventKind};
use crate::ids::{CaseId, Jurisdiction, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a case stands in its lifecycle.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CaseState {
    Submitted,
    Delivered,
    UnderReview,
    Accepted,
    PartiallyAccepted,
    Refused,
    ClarificationRequested,
    Clarified,
    /// The requester made a new version of the request: to be checked and decided again.
    Amended,
    Fulfilled,
    EvidenceAcknowledged,
    Closed,
    Withdrawn,
}

impl CaseState {
    /// The state's kebab-case name, as on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            CaseState::Submitted => "submitted",
            CaseState::Delivered => "delivered",
            CaseState::UnderReview => "under-review",
            CaseState::Accepted => "accepted",
            CaseState::PartiallyAccepted => "partially-accepted",
            CaseState::Refused => "refused",
            CaseState::ClarificationRequested => "clarification-requested",
            CaseState::Clarified => "clarified",
            CaseState::Amended => "amended",
            CaseState::Fulfilled => "fulfilled",
            CaseState::EvidenceAcknowledged => "evidence-acknowledged",
            CaseState::Closed => "closed",
            CaseState::Withdrawn => "withdrawn",
        }
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The preservation sub-state, separate from the lifecycle: data can be kept from deletion
/// while the request itself is still under review.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Preservation {
    pub until: Timestamp,
    pub released: bool,
    /// When the case's first preservation started: extensions (and preservations started
    /// again after a release) are capped from here.
    #[serde(default)]
    pub since: Option<Timestamp>,
    /// When it ended early or lapsed (the `preservation-released` event).
    #[serde(default)]
    pub released_at: Option<Timestamp>,
}

/// One event as the fold saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub id: EventId,
    pub author: Jurisdiction,
    pub seq: u64,
    /// [`EventKind::code`].
    pub kind: String,
    pub at: Timestamp,
    /// Whether the event changed the case. A signed event that came too late (a decision
    /// after a withdrawal) is kept, because it is still evidence of what its author did.
    pub applied: bool,
    /// Why it was not applied.
    pub note: Option<String>,
}

/// The case as the fold of its log: identical on every replica holding the same events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseView {
    pub case_id: CaseId,
    pub requesting: Option<Jurisdiction>,
    pub executing: Option<Jurisdiction>,
    /// `None` before the genesis arrives.
    pub state: Option<CaseState>,
    pub submitted_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub decided_at: Option<Timestamp>,
    pub fulfilled_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub purged_at: Option<Timestamp>,
    /// When the executing side destroyed its own records of the case.
    #[serde(default)]
    pub records_destroyed_at: Option<Timestamp>,
    pub decision: Option<Decision>,
    pub preservation: Option<Preservation>,
    /// The evidence package the applied fulfilment named, if any.
    #[serde(default)]
    pub manifest_root: Option<crate::ids::Hash32>,
    /// When the requester's node stated that this package arrived whole.
    #[serde(default)]
    pub evidence_received_at: Option<Timestamp>,
    /// The outcome of the latest applied policy check, if any.
    #[serde(default)]
    pub policy: Option<super::PolicyOutcome>,
    /// Whether an override covers the latest policy check (a later check needs a new one).
    #[serde(default)]
    pub overridden: bool,
    /// Overrides applied in this case.
    #[serde(default)]
    pub overrides: u32,
    /// Which version of the request is in force: 1, then one more per applied amendment.
    #[serde(default)]
    pub request_version: u32,
    /// The applied amendments: when each was made.
    #[serde(default)]
    pub amended_at: Vec<Timestamp>,
    /// When the requester accepted the narrower scope of a partial acceptance.
    #[serde(default)]
    pub scope_accepted_at: Option<Timestamp>,
    /// The requester's sequence number of the latest applied amendment: an executing step
    /// that has not seen it is about an older version.
    #[serde(default)]
    pub amended_seq: Option<u64>,
    /// Policy checks applied: an override asked for one check covers no later one.
    #[serde(default)]
    pub policy_checks: u32,
    /// Every event, in fold order.
    pub entries: Vec<LogEntry>,
    pub heads: Vec<EventId>,
}

impl CaseView {
    pub(crate) fn empty(case_id: CaseId) -> Self {
        Self {
            case_id,
            requesting: None,
            executing: None,
            state: None,
            submitted_at: None,
            delivered_at: None,
            decided_at: None,
            fulfilled_at: None,
            closed_at: None,
            purged_at: None,
            records_destroyed_at: None,
            decision: None,
            preservation: None,
            manifest_root: None,
            evidence_received_at: None,
            policy: None,
            overridden: false,
            overrides: 0,
            request_version: 0,
            amended_at: Vec::new(),
            scope_accepted_at: None,
            amended_seq: None,
            policy_checks: 0,
            entries: Vec::new(),
            heads: Vec::new(),
        }
    }

    /// Applies one event, in fold order, and records it as an entry.
    /// `seen` counts, per author, the events in `event`'s causal past (itself included).
    pub(crate) fn fold(
        &mut self,
        id: EventId,
        event: &CaseEvent,
        seen: &std::collections::BTreeMap<Jurisdiction, u64>,
    ) {
        let outcome = self
            .unseen_amendment(event, seen)
            .and_then(|()| self.apply(event));
        self.entries.push(LogEntry {
            id,
            author: event.author.clone(),
            seq: event.seq,
            kind: event.kind.code().to_owned(),
            at: event.at,
            applied: outcome.is_ok(),
            note: outcome.err(),
        });
    }

    /// An executing-side step on the request made without having seen its latest amendment
    /// (concurrent with it) is about the old version: kept, not applied. Decisions, checks,
    /// questions and overrides speak of a version of the request.
    fn unseen_amendment(
        &self,
        event: &CaseEvent,
        seen: &std::collections::BTreeMap<Jurisdiction, u64>,
    ) -> Result<(), String> {
        let about_the_request = matches!(
            event.kind,
            EventKind::Decided { .. }
                | EventKind::PolicyChecked { .. }
                | EventKind::ClarificationRequested { .. }
                | EventKind::PolicyOverridden { .. }
                | EventKind::Fulfilled { .. }
        );
        match (&self.requesting, self.amended_seq) {
            (Some(requester), Some(seq))
                if about_the_request && seen.get(requester).copied().unwrap_or(0) < seq =>
            {
                Err(format!(
                    "made without seeing version {} of the request, which replaced the one it is about",
                    self.request_version
                ))
            }
            _ => Ok(()),
        }
    }

    /// Changes the view if `event` is a valid transition from where the case stands;
    /// otherwise says why not and changes nothing.
    fn apply(&mut self, event: &CaseEvent) -> Result<(), String> {
        use CaseState as S;
        let at = event.at;
        let Some(state) = self.state else {
            // The insert checks guarantee the genesis folds first; anything else here would
            // mean a broken invariant, which is reported rather than panicking.
            return match &event.kind {
                EventKind::Submitted { request, .. } => {
                    self.requesting = Some(request.requesting.clone());
                    self.executing = Some(request.executing.clone());
                    self.state = Some(S::Submitted);
                    self.submitted_at = Some(at);
                    self.request_version = 1;
                    Ok(())
                }
                _ => Err("the case has no submission yet".to_owned()),
            };
        };
        let cannot = |what: &str| match state {
            S::Withdrawn => Err("case already withdrawn".to_owned()),
            S::Closed => Err("case already closed".to_owned()),
            _ => Err(format!("cannot {what} a case that is {state}")),
        };
        let open = !matches!(state, S::Closed | S::Withdrawn);
        match &event.kind {
            EventKind::Submitted { .. } => return Err("case already submitted".to_owned()),
            EventKind::Received => {
                if self.delivered_at.is_some() {
                    return Err("receipt already recorded".to_owned());
                }
                self.delivered_at = Some(at);
                if state == S::Submitted {
                    self.state = Some(S::Delivered);
                }
            }
            EventKind::PolicyChecked { outcome, .. } => {
                match state {
                    S::Delivered | S::UnderReview | S::Clarified | S::Amended => {
                        self.state = Some(S::UnderReview)
                    }
                    // A pending case checked again (the policy changed, an agreement expired):
                    // the outcome is recorded, the lifecycle stays where it is.
                    S::ClarificationRequested | S::Accepted | S::PartiallyAccepted => {}
                    _ => return cannot("policy-check"),
                }
                self.policy = Some(*outcome);
                self.overridden = false;
                self.policy_checks += 1;
            }
            EventKind::PolicyOverridden { .. } => {
                if self.policy != Some(super::PolicyOutcome::Refused) {
                    return Err(
                        "nothing to override: the latest policy check did not refuse".into(),
                    );
                }
                if self.overridden {
                    return Err("the latest policy check is already overridden".into());
                }
                if !open {
                    return cannot("override the policy on");
                }
                self.overridden = true;
                self.overrides += 1;
            }
            EventKind::Decided { decision } => {
                if self.decision.is_some() {
                    return Err(
                        "decision already made: decisions are final (an amendment of the request opens a new one)"
                            .to_owned(),
                    );
                }
                match state {
                    S::Delivered | S::UnderReview | S::Clarified | S::Amended => {
                        self.state = Some(match decision {
                            Decision::Accept => S::Accepted,
                            Decision::Partial { .. } => S::PartiallyAccepted,
                            Decision::Refuse { .. } => S::Refused,
                        });
                        self.decision = Some(decision.clone());
                        self.decided_at = Some(at);
                    }
                    _ => return cannot("decide"),
                }
            }
            EventKind::ClarificationRequested { .. } => match state {
                S::Delivered | S::UnderReview | S::Clarified | S::Amended => {
                    self.state = Some(S::ClarificationRequested)
                }
                _ => return cannot("ask for clarification on"),
            },
            EventKind::Clarified { .. } => match state {
                S::ClarificationRequested => self.state = Some(S::Clarified),
                _ => return cannot("clarify"),
            },
            EventKind::Fulfilled { manifest_root, .. } => match state {
                S::Accepted | S::PartiallyAccepted => {
                    self.state = Some(S::Fulfilled);
                    self.fulfilled_at = Some(at);
                    self.manifest_root = *manifest_root;
                }
                _ => return cannot("fulfil"),
            },
            EventKind::EvidenceReceived { manifest_root } => {
                if self.manifest_root != Some(*manifest_root) {
                    return Err(format!(
                        "package {manifest_root} is not the one the fulfilment named"
                    ));
                }
                if self.evidence_received_at.is_some() {
                    return Err("the package's arrival is already recorded".to_owned());
                }
                self.evidence_received_at = Some(at);
            }
            EventKind::EvidenceAcknowledged { .. } => match state {
                S::Fulfilled => self.state = Some(S::EvidenceAcknowledged),
                _ => return cannot("acknowledge evidence on"),
            },
            EventKind::ScopeAccepted => match state {
                S::PartiallyAccepted if self.scope_accepted_at.is_none() => {
                    self.scope_accepted_at = Some(at)
                }
                S::PartiallyAccepted => return Err("the scope is already accepted".to_owned()),
                _ => return cannot("accept the scope of"),
            },
            EventKind::Amended { request, .. } => {
                if self.requesting.as_ref() != Some(&request.requesting)
                    || self.executing.as_ref() != Some(&request.executing)
                {
                    return Err("an amendment cannot change the parties of a case".to_owned());
                }
                match state {
                    S::PartiallyAccepted | S::ClarificationRequested | S::Clarified => {
                        // A new version: decided afresh, with none of the old decision's
                        // consequences (an override covered the old version's check).
                        self.state = Some(S::Amended);
                        self.decision = None;
                        self.decided_at = None;
                        self.scope_accepted_at = None;
                        // The old version's check says nothing of the new one.
                        self.policy = None;
                        self.overridden = false;
                        self.request_version += 1;
                        self.amended_seq = Some(event.seq);
                        self.amended_at.push(at);
                    }
                    _ => return cannot("amend"),
                }
            }
            EventKind::Withdrawn { .. } => {
                if !open {
                    return cannot("withdraw");
                }
                self.state = Some(S::Withdrawn);
            }
            EventKind::Closed => match state {
                S::EvidenceAcknowledged | S::Refused | S::Withdrawn => {
                    self.state = Some(S::Closed);
                    self.closed_at = Some(at);
                }
                _ => return cannot("close"),
            },
            EventKind::Preserved { until } => {
                if !open {
                    return cannot("preserve data for");
                }
                if matches!(self.preservation, Some(p) if !p.released) {
                    return Err("data already preserved: extend the preservation instead".into());
                }
                // A preservation started again after a release keeps the first start: the
                // instrument's cap counts from it.
                let since = self.preservation.and_then(|p| p.since).or(Some(at));
                self.preservation = Some(super::Preservation {
                    until: *until,
                    released: false,
                    since,
                    released_at: None,
                });
            }
            EventKind::PreservationExtended { until } => match &mut self.preservation {
                None => return Err("nothing is preserved: there is nothing to extend".into()),
                Some(p) if p.released => return Err("preservation already released".into()),
                Some(p) if *until <= p.until => {
                    return Err(format!(
                        "extension to {until} is not later than the current end {}",
                        p.until
                    ));
                }
                Some(p) => p.until = *until,
            },
            EventKind::PreservationReleased => match &mut self.preservation {
                None => return Err("nothing is preserved: there is nothing to release".into()),
                Some(p) if p.released => return Err("preservation already released".into()),
                Some(p) => {
                    p.released = true;
                    p.released_at = Some(at);
                }
            },
            EventKind::Purged => {
                if self.purged_at.is_some() {
                    return Err("data already purged".to_owned());
                }
                self.purged_at = Some(at);
            }
            EventKind::RecordsDestroyed => {
                if self.records_destroyed_at.is_some() {
                    return Err("records already destroyed".to_owned());
                }
                self.records_destroyed_at = Some(at);
            }
        }
        Ok(())
    }
}
