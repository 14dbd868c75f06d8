//! The signed unit of the case log: one [`CaseEvent`], what it says ([`EventKind`]) and which
//! side may say it ([`Side`]).
//!
//! These are wire types: their canonical CBOR is signed and hashed into an [`EventId`], so a
//! field or variant can be added only under a new [`CaseEvent::CONTENT_TYPE`].

use crate::envelope::Signable;
use crate::ids::{CaseId, Hash32, Jurisdiction, Timestamp};
use crate::limits::MAX_TEXT;
use crate::request::AssistanceRequest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// BLAKE3 of the canonical bytes ([`crate::SignedEnvelope::to_bytes`]) of an event's envelope.
///
/// Hashing the whole envelope, signature included, rather than the body means that two
/// replicas holding the same id hold byte-identical evidence of who said what.
pub type EventId = Hash32;

/// One change to a case, as signed by the jurisdiction that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseEvent {
    pub case_id: CaseId,
    pub author: Jurisdiction,
    /// 1-based, contiguous per author: the author's n-th event in this case. Two events with
    /// one (author, seq) are an equivocation, which replicas refuse.
    pub seq: u64,
    /// The heads of the log the author had seen when writing it (sorted, no duplicates).
    /// Includes the author's own previous event when `seq > 1`; empty only for the genesis.
    /// These links are what makes "concurrent" decidable: an event has seen exactly its
    /// causal past.
    pub links: Vec<EventId>,
    pub at: Timestamp,
    pub kind: EventKind,
}

impl Signable for CaseEvent {
    const CONTENT_TYPE: &'static str = "application/comity.event.v1+cbor";
}

/// What an event says happened. Each kind may be authored by one side only
/// ([`EventKind::allowed_author`]), so that neither side can forge the other's steps.
/// Four-eyes on the requesting side, as the requesting node attests it in the signed
/// submission: the officer who drafted the request and the other officer who approved it
/// (named as their node knows them), and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub drafted_by: String,
    pub approved_by: String,
    pub approved_at: Timestamp,
}

impl Approval {
    fn problem(&self) -> Option<String> {
        let name_ok = |n: &str| !n.trim().is_empty() && n.len() <= crate::limits::MAX_NAME;
        if !name_ok(&self.drafted_by) || !name_ok(&self.approved_by) {
            return Some("the approval must name its drafter and its approver".to_owned());
        }
        (self.drafted_by == self.approved_by).then(|| {
            format!(
                "the request was approved by its own drafter {:?}: four-eyes needs another officer",
                self.drafted_by
            )
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum EventKind {
    /// The genesis: the requester's request. Seq 1, no links, `request.requesting == author`.
    /// Boxed because a request is many times larger than any other event, and every event
    /// would otherwise take that much memory; the wire form is the same.
    Submitted {
        request: Box<AssistanceRequest>,
        /// Four-eyes: who drafted it and which other officer approved it.
        approval: Approval,
    },
    /// The executing side's signed statement that it received and stored the request.
    Received,
    /// The executing side's automatic policy check: on arrival, and again while the case is
    /// pending when the policy changes or an agreement expires. A `refused` outcome does not
    /// refuse the case, but the executing node lets an officer accept or fulfil it only with
    /// an override ([`EventKind::PolicyOverridden`]).
    PolicyChecked {
        outcome: PolicyOutcome,
        rules: Vec<String>,
    },
    /// Four-eyes on the executing side: an officer asked to go on despite the policy's
    /// refusal, for a stated reason, and another officer approved it. Covers the policy
    /// check before it, not a later one.
    PolicyOverridden {
        reason: String,
        requested_by: String,
        approved_by: String,
    },
    /// The executing side's decision. Final: a later decision is recorded but not applied.
    Decided {
        decision: Decision,
    },
    ClarificationRequested {
        question: String,
    },
    Clarified {
        answer: String,
    },
    /// The executing side delivered the evidence (or states that there is none).
    Fulfilled {
        manifest_root: Option<Hash32>,
        note: String,
    },
    EvidenceAcknowledged {
        manifest_root: Option<Hash32>,
    },
    /// The requesting node's statement that the package named by `manifest_root` arrived
    /// whole: every chunk matched the signed manifest. Recorded by the node, not an officer.
    EvidenceReceived {
        manifest_root: Hash32,
    },
    /// Negotiation: the requester accepts the narrower scope of a partial acceptance.
    ScopeAccepted,
    /// Negotiation: after a partial acceptance or a clarification, the requester makes a new
    /// version of its request inside the same case (four-eyes, like the first), which the
    /// executing side checks and decides on again. The parties cannot change.
    Amended {
        request: Box<AssistanceRequest>,
        approval: Approval,
    },
    /// The requester withdraws the request. Beats any concurrent executing-side step.
    Withdrawn {
        reason: String,
    },
    Closed,
    Preserved {
        until: Timestamp,
    },
    PreservationExtended {
        until: Timestamp,
    },
    PreservationReleased,
    /// The requester destroyed the received data at the end of its retention.
    Purged,
    /// The executing side destroyed its own records of the case (the request, its decision
    /// and fulfilment) at the end of its own retention, which the requester's purge does not
    /// shorten.
    RecordsDestroyed,
}

/// The automatic policy check's verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PolicyOutcome {
    Passed,
    /// A person must look at it (e.g. dual criminality could not be established).
    Referred,
    /// The rules say refuse; a reviewer still decides.
    Refused,
}

/// The executing side's decision on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Decision {
    Accept,
    /// Accepted for part of what was asked; `scope` says which part.
    Partial {
        scope: String,
    },
    /// Refused; `reasons` is non-empty, because a refusal without grounds cannot be contested.
    Refuse {
        reasons: Vec<String>,
    },
}

/// Which party may author a kind of event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    Requester,
    Executing,
    Either,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Side::Requester => "the requesting side",
            Side::Executing => "the executing side",
            Side::Either => "either side",
        })
    }
}

impl EventKind {
    /// The kind's kebab-case name, as on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            EventKind::Submitted { .. } => "submitted",
            EventKind::Received => "received",
            EventKind::PolicyChecked { .. } => "policy-checked",
            EventKind::PolicyOverridden { .. } => "policy-overridden",
            EventKind::Decided { .. } => "decided",
            EventKind::ClarificationRequested { .. } => "clarification-requested",
            EventKind::Clarified { .. } => "clarified",
            EventKind::Fulfilled { .. } => "fulfilled",
            EventKind::EvidenceAcknowledged { .. } => "evidence-acknowledged",
            EventKind::EvidenceReceived { .. } => "evidence-received",
            EventKind::ScopeAccepted => "scope-accepted",
            EventKind::Amended { .. } => "amended",
            EventKind::Withdrawn { .. } => "withdrawn",
            EventKind::Closed => "closed",
            EventKind::Preserved { .. } => "preserved",
            EventKind::PreservationExtended { .. } => "preservation-extended",
            EventKind::PreservationReleased => "preservation-released",
            EventKind::Purged => "purged",
            EventKind::RecordsDestroyed => "records-destroyed",
        }
    }

    /// Which side may author this kind: the requester submits, clarifies, acknowledges,
    /// withdraws and purges; the executing side receipts, checks, decides, asks, fulfils and
    /// preserves; either may close or release a preservation.
    pub fn allowed_author(&self) -> Side {
        match self {
            EventKind::Submitted { .. }
            | EventKind::Clarified { .. }
            | EventKind::EvidenceAcknowledged { .. }
            | EventKind::EvidenceReceived { .. }
            | EventKind::Withdrawn { .. }
            | EventKind::ScopeAccepted
            | EventKind::Amended { .. }
            | EventKind::Purged => Side::Requester,
            EventKind::Received
            | EventKind::PolicyChecked { .. }
            | EventKind::PolicyOverridden { .. }
            | EventKind::Decided { .. }
            | EventKind::ClarificationRequested { .. }
            | EventKind::Fulfilled { .. }
            | EventKind::Preserved { .. }
            | EventKind::PreservationExtended { .. }
            | EventKind::RecordsDestroyed => Side::Executing,
            EventKind::Closed | EventKind::PreservationReleased => Side::Either,
        }
    }

    /// Shape rules a signed event must meet whatever the state of the case: what is wrong,
    /// or `None`. Checked on insert so that a malformed event never enters either replica.
    pub(crate) fn problem(&self) -> Option<String> {
        let too_long = |field: &str, text: &str| {
            (text.len() > MAX_TEXT).then(|| {
                format!(
                    "{field} is {} bytes, over the limit of {MAX_TEXT}; shorten it",
                    text.len()
                )
            })
        };
        match self {
            EventKind::Submitted { approval, .. } => approval.problem(),
            EventKind::Amended { request, approval } => approval.problem().or_else(|| {
                request
                    .validate()
                    .err()
                    .map(|e| format!("the amended request is invalid: {e}"))
            }),
            EventKind::Decided {
                decision: Decision::Refuse { reasons },
            } => {
                if reasons.iter().all(|r| r.trim().is_empty()) {
                    return Some("a refusal must state at least one non-empty reason".to_owned());
                }
                reasons.iter().find_map(|r| too_long("a refusal reason", r))
            }
            EventKind::Decided {
                decision: Decision::Partial { scope },
            } => too_long("the scope of a partial acceptance", scope),
            EventKind::PolicyChecked { rules, .. } => {
                rules.iter().find_map(|r| too_long("a policy rule", r))
            }
            EventKind::PolicyOverridden {
                reason,
                requested_by,
                approved_by,
            } => {
                let name_ok = |n: &str| !n.trim().is_empty() && n.len() <= crate::limits::MAX_NAME;
                if reason.trim().is_empty() {
                    Some("an override must state its reason".to_owned())
                } else if !name_ok(requested_by) || !name_ok(approved_by) {
                    Some("an override must name who asked for it and who approved it".to_owned())
                } else if requested_by == approved_by {
                    Some(format!(
                        "{requested_by} asked for the override and cannot approve it: four-eyes needs another officer"
                    ))
                } else {
                    too_long("the override's reason", reason)
                }
            }
            EventKind::ClarificationRequested { question } => too_long("the question", question),
            EventKind::Clarified { answer } => too_long("the answer", answer),
            EventKind::Fulfilled { note, .. } => too_long("the fulfilment note", note),
            EventKind::Withdrawn { reason } => too_long("the withdrawal reason", reason),
            _ => None,
        }
    }
}
