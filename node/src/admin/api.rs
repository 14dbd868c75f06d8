//! The admin API's request and response types, and the typed client that the CLI, the testnet
//! and any case-management system use. Defined once, for both ends.

use comity_protocol::{
    AssistanceRequest, CaseId, Decision, EventId, EventKind, FieldProblem, Jurisdiction, LogEntry,
    MessageId, Receipt, SignedEnvelope, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::officers::{Officer, Role as OfficerRole};

pub use super::client::{AdminClient, ClientError};

pub const API_PREFIX: &str = "/v1";

/// Which side of a case this node is on, as the API shows it (the stored record has its own
/// type: the two may change apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CaseRole {
    /// This node drafted and sent the request.
    Requester,
    /// This node received the request and is asked to execute it.
    Executing,
}

impl From<crate::cases::record::Role> for CaseRole {
    fn from(role: crate::cases::record::Role) -> Self {
        match role {
            crate::cases::record::Role::Requester => Self::Requester,
            crate::cases::record::Role::Executing => Self::Executing,
        }
    }
}

impl std::fmt::Display for CaseRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Requester => "requester",
            Self::Executing => "executing",
        })
    }
}

/// `POST /v1/cases/{id}/evidence`: the files of a package, announced before their bytes.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewEvidence {
    pub files: Vec<crate::evidence::UploadFile>,
    #[serde(default)]
    pub note: String,
}

/// Where to send the announced files' bytes.
pub type EvidenceUpload = crate::evidence::UploadTicket;

/// A sealed package and the fulfilment that names it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FulfilledView {
    pub case: CaseDetail,
    pub root: comity_protocol::Hash32,
    pub total_bytes: u64,
    pub sealed_bytes: u64,
    pub chunks: u64,
    /// Milliseconds the node took to receive and seal the bytes.
    pub seal_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusView {
    pub jurisdiction: Jurisdiction,
    pub bloc: String,
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub members: Vec<PeerView>,
    pub outbox_depth: usize,
    /// Members' latest checkpoints this node checked and cosigned: (member, size, when).
    #[serde(default)]
    pub witnessed: Vec<(String, u64, Timestamp)>,
    /// Members that cosigned this node's own audit log: (witness, tree size, when), the latest.
    #[serde(default)]
    pub cosigned_by: Vec<(String, u64, Timestamp)>,
    /// Contradictions found in members' audit logs (evidence kept).
    #[serde(default)]
    pub audit_alerts: Vec<String>,
    /// Members that signed two different events as the same number (evidence kept; see
    /// `GET /v1/equivocations`).
    #[serde(default)]
    pub equivocations: Vec<String>,
    /// The key evidence for this node is sealed to, and whether the roster lists it.
    #[serde(default)]
    pub sealing_key: Option<String>,
    #[serde(default)]
    pub sealing_key_in_roster: bool,
    /// The bloc configuration in force here: version, hash, expiry.
    #[serde(default)]
    pub bloc_version: u64,
    #[serde(default)]
    pub bloc_hash: Option<comity_protocol::Hash32>,
    #[serde(default)]
    pub bloc_expires_at: Option<Timestamp>,
    /// Warnings about the bloc configuration: expiry near or past, forks.
    #[serde(default)]
    pub bloc_alerts: Vec<String>,
    /// Members whose clocks are off from this node's by more than 30 s (measured on
    /// receipts): what each side shows an officer drifts apart.
    #[serde(default)]
    pub clock_alerts: Vec<String>,
    /// Whether the store took a small synced write just now (false: full disk, read-only
    /// file system, permissions; nothing new can be saved).
    #[serde(default = "yes")]
    pub store_writable: bool,
    /// `policy` (incoming requests are checked, refusals bind) or `manual-review` (no policy:
    /// the operator chose to leave every request to reviewers, unchecked).
    #[serde(default)]
    pub policy_mode: String,
    /// Agreements in the policy, and the partners whose agreement has expired.
    #[serde(default)]
    pub policy_agreements: usize,
    #[serde(default)]
    pub expired_agreements: Vec<Jurisdiction>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerView {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub peer_id: String,
    pub connected: bool,
    pub addresses: Vec<String>,
    /// Replication lag: our pushes (and the events in them) this member has not receipted yet.
    #[serde(default)]
    pub pending_pushes: usize,
    #[serde(default)]
    pub pending_events: usize,
    /// The bloc configuration this member said it holds when last asked, compared with ours:
    /// "same", "behind", "ahead" or "DIFFERS" (a split view: see `comity bloc status`).
    #[serde(default)]
    pub bloc_version: Option<u64>,
    #[serde(default)]
    pub bloc_agreement: Option<String>,
    /// Its requests this node has in hand now, against its share of the places, and those it
    /// sent beyond its share since the node started (answered `unavailable`).
    #[serde(default)]
    pub requests_in_hand: usize,
    #[serde(default)]
    pub request_share: usize,
    #[serde(default)]
    pub requests_turned_away: u64,
    /// Its rate budget at this node (messages per second: exchange, evidence, gossip; 0 is
    /// none), and what it sent beyond it since the node started, answered "retry shortly"
    /// unread (gossip: dropped).
    #[serde(default)]
    pub rate_budget: Option<RateUsage>,
    /// How far its clock is ahead of this node's (negative: behind), in milliseconds, as last
    /// measured (on connect, by the pull each side makes, and on each receipt); none before.
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
}

/// One member's rate budget and what it sent beyond it, per door.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateUsage {
    pub exchange_per_s: u32,
    pub evidence_per_s: u32,
    pub gossip_per_s: u32,
    pub exchange_over: u64,
    pub evidence_over: u64,
    pub gossip_over: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewRequest {
    pub request: AssistanceRequest,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendCase {
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// The purpose an officer states to read case content (`?purpose=`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurposeQuery {
    #[serde(default)]
    pub purpose: Option<String>,
}

/// `POST /v1/cases/{id}/override`: why the case should go on despite the policy's refusal.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequestBody {
    pub reason: String,
}

/// `GET /v1/reports/transparency?period=2026-Q3`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    #[serde(default)]
    pub period: Option<String>,
}

/// `GET /v1/audit/entries?from=&limit=`: a page of the audit log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The first entry's index (0: the first entry of the log).
    #[serde(default)]
    pub from: u64,
    /// At most this many entries (1 to 1,000; 100 by default).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// One entry of the audit log, with its index (for `comity audit prove`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub index: u64,
    #[serde(flatten)]
    pub entry: comity_protocol::audit::AuditEntry,
}

/// `GET /v1/access-log?case=`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    #[serde(default)]
    pub case: Option<String>,
}

/// Filters of `GET /v1/cases`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseFilter {
    /// Lifecycle state code (`draft`, `submitted`, `delivered`, `accepted`, …).
    #[serde(default)]
    pub state: Option<String>,
    /// Only cases past a decision or fulfilment deadline.
    #[serde(default)]
    pub overdue: bool,
    /// Only cases whose preservation ends within the warning period.
    #[serde(default)]
    pub lapsing: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseSummary {
    pub case_id: CaseId,
    pub role: CaseRole,
    pub counterparty: Jurisdiction,
    /// `draft`, or the lifecycle state of the case log.
    pub state: String,
    pub kind: String,
    pub instrument: String,
    pub urgency: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When the next step is due (a decision, or fulfilment).
    pub due: Option<Timestamp>,
    /// The rule that set `due`: the instrument's text or the bloc's setting.
    #[serde(default)]
    pub due_rule: Option<String>,
    /// What is overdue, if anything: `decision` or `fulfilment`.
    pub overdue: Option<String>,
    /// A sent request with no receipt after the configured time (still retried).
    pub not_delivered: bool,
    /// Until when the case's data may be kept (its content is destroyed then).
    pub retention_until: Option<Timestamp>,
    /// When this node destroyed the case's content.
    pub purged_at: Option<Timestamp>,
    /// The policy's latest check of a received request: `passed`, `referred`, `refused`.
    #[serde(default)]
    pub policy: Option<String>,
    /// The policy refused it and no override covers that: it can be refused, not accepted or
    /// fulfilled, until an officer's override is approved by another.
    #[serde(default)]
    pub policy_blocked: bool,
    /// Data kept from deletion for this case, if any.
    #[serde(default)]
    pub preservation: Option<PreservationView>,
    /// Events in this node's replica of the log, and its heads: two replicas with the same
    /// heads hold the same log.
    pub events: usize,
    pub heads: Vec<EventId>,
}

/// An amendment of the request: its version, who drafted and approved it, and what changed.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AmendmentView {
    pub version: u32,
    pub at: Timestamp,
    pub drafted_by: String,
    pub approved_by: Option<String>,
    pub changes: Vec<String>,
}

/// An override of the policy awaiting approval.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverrideView {
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub reason: Option<String>,
}

/// A preservation and the rule it runs under.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreservationView {
    pub since: Option<Timestamp>,
    pub until: Timestamp,
    /// Released by an officer, or lapsed at `until` (the executing node then records the
    /// release itself).
    pub released_at: Option<Timestamp>,
    /// The latest end extensions may reach, where the rule caps them.
    pub latest_end: Option<Timestamp>,
    /// Still in force, and ends within the warning period: extend it or let it lapse.
    pub lapses_soon: bool,
    /// The instrument's preservation rule, or the bloc's for it.
    pub rule: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// The push that carried the request.
    pub message_id: Option<MessageId>,
    /// The request's content: only in answer to a read that stated its purpose (which is
    /// recorded in the access log), never in answers to actions.
    pub request: Option<AssistanceRequest>,
    pub delivery: DeliveryView,
    pub decision: Option<Decision>,
    /// Four-eyes: who drafted and who approved the request (as the requesting node attests).
    pub approval: Option<comity_protocol::Approval>,
    /// Four-eyes on the executing side: who approved disclosing the data, and when.
    pub disclosure_approval: Option<(String, Timestamp)>,
    /// How many overrides of the policy the case has had.
    #[serde(default)]
    pub overrides: u32,
    /// The version of the request in force (1, then one more per amendment), and when the
    /// requester accepted a partial acceptance's scope.
    #[serde(default)]
    pub request_version: u32,
    #[serde(default)]
    pub scope_accepted_at: Option<Timestamp>,
    /// Each amendment and what it changed (content: only on a read that stated its purpose).
    #[serde(default)]
    pub amendments: Vec<AmendmentView>,
    /// An amendment drafted and awaiting another officer's approval (requesting side); what
    /// it changes only on a read that stated its purpose.
    #[serde(default)]
    pub pending_amendment: Option<AmendmentView>,
    /// An override asked for and awaiting another officer's approval: who asked, and when
    /// (its reason only on a read that stated its purpose).
    #[serde(default)]
    pub override_request: Option<OverrideView>,
    /// The counterparty's signed receipt of the request, and whether it verifies.
    pub receipt: Option<ReceiptView>,
    /// The receipt exactly as received, for showing to a third party.
    pub signed_receipt: Option<SignedEnvelope>,
    /// The evidence package the fulfilment named, and when the requester's node stated that
    /// it arrived whole.
    #[serde(default)]
    pub manifest_root: Option<comity_protocol::Hash32>,
    #[serde(default)]
    pub evidence_received_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptView {
    /// The signing key, hex.
    pub signer: String,
    /// The member that key belongs (or belonged) to in the bloc configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_jurisdiction: Option<Jurisdiction>,
    pub signature_valid: bool,
    /// Why the receipt does not verify, if it does not.
    pub problem: Option<String>,
    pub receipt: Option<Receipt>,
    /// Set when the key that signed it is no longer the receiver's current key: e.g.
    /// "signed by a key later revoked (version 4)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_note: Option<String>,
}

/// A case's signed log, in fold order. Every event shown was verified against its author's
/// roster key when it was stored and again when the log was read.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogView {
    pub case_id: CaseId,
    pub state: Option<String>,
    pub heads: Vec<EventId>,
    pub entries: Vec<LogEntry>,
    /// The events themselves, as signed, in the same order.
    pub envelopes: Vec<SignedEnvelope>,
    /// For each event, in the same order: how its signing key stands now when it is no
    /// longer its author's current key ("signed by a key later revoked (version 4)").
    #[serde(default)]
    pub key_notes: Vec<Option<String>>,
}

/// An officer's step in a case (`POST /v1/cases/{id}/act`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Executing side: accept, accept in part, or refuse with reasons.
    Decide {
        decision: Decision,
    },
    /// Executing side: ask the requester a question.
    RequestClarification {
        question: String,
    },
    /// Requesting side: answer the question.
    Clarify {
        answer: String,
    },
    /// Requesting side: withdraw the request.
    Withdraw {
        reason: String,
    },
    /// Either side, once the case is over.
    Close,
    /// Executing side: the data were provided.
    Fulfil {
        note: String,
    },
    /// Requesting side: the evidence arrived.
    Acknowledge,
    /// Requesting side: the narrower scope of a partial acceptance is accepted.
    AcceptScope,
    /// Executing side: data preserved until a date (by default, for the period the
    /// instrument's rules give); extended to a later one, up to their cap.
    Preserve {
        #[serde(default)]
        until: Option<Timestamp>,
    },
    ExtendPreservation {
        until: Timestamp,
    },
    /// Either side: the preservation is no longer needed.
    ReleasePreservation,
    /// Requesting side: destroy the case's content now, before its retention ends.
    Purge,
}

impl Action {
    /// The event this step signs. `preserve_until` gives the end of a preservation that names
    /// none (the instrument's period), or why there is none.
    pub fn into_event(
        self,
        preserve_until: impl FnOnce() -> Result<Timestamp, String>,
    ) -> Result<EventKind, String> {
        Ok(match self {
            Action::Decide { decision } => EventKind::Decided { decision },
            Action::RequestClarification { question } => {
                EventKind::ClarificationRequested { question }
            }
            Action::Clarify { answer } => EventKind::Clarified { answer },
            Action::Withdraw { reason } => EventKind::Withdrawn { reason },
            Action::Close => EventKind::Closed,
            Action::Fulfil { note } => EventKind::Fulfilled {
                manifest_root: None,
                note,
            },
            Action::AcceptScope => EventKind::ScopeAccepted,
            Action::Acknowledge => EventKind::EvidenceAcknowledged {
                manifest_root: None,
            },
            Action::Preserve { until: Some(until) } => EventKind::Preserved { until },
            Action::Preserve { until: None } => EventKind::Preserved {
                until: preserve_until()?,
            },
            Action::ExtendPreservation { until } => EventKind::PreservationExtended { until },
            Action::ReleasePreservation => EventKind::PreservationReleased,
            Action::Purge => EventKind::Purged,
        })
    }
}

impl Action {
    /// The roles that may take this step.
    pub fn roles(&self) -> &'static [OfficerRole] {
        match self {
            Action::Decide { .. }
            | Action::RequestClarification { .. }
            | Action::Fulfil { .. }
            | Action::Preserve { .. }
            | Action::ExtendPreservation { .. } => &[OfficerRole::Reviewer],
            Action::Clarify { .. }
            | Action::Withdraw { .. }
            | Action::Acknowledge
            | Action::AcceptScope
            | Action::Purge => &[OfficerRole::Requester],
            Action::Close | Action::ReleasePreservation => {
                &[OfficerRole::Requester, OfficerRole::Reviewer]
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewOfficer {
    pub name: String,
    pub role: OfficerRole,
}

/// A new officer and its token: shown this once, stored only hashed.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewOfficerToken {
    pub officer: Officer,
    pub token: String,
}

/// What a change to the officers did: an officer made (its token shown once), revoked, or a
/// change that waits for a second admin.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum OfficerChange {
    Added {
        officer: Officer,
        token: String,
    },
    Revoked {
        officer: Officer,
    },
    Pending {
        pending: super::officers::PendingChange,
    },
}

impl From<super::officers::Outcome> for OfficerChange {
    fn from(o: super::officers::Outcome) -> Self {
        use super::officers::Outcome;
        match o {
            Outcome::Added(officer, token) => OfficerChange::Added { officer, token },
            Outcome::Revoked(officer) => OfficerChange::Revoked { officer },
            Outcome::Pending(pending) => OfficerChange::Pending { pending },
        }
    }
}

/// The delivery of a request, as the API shows it (requesting side).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub attempts: u32,
    pub queued_at: Option<Timestamp>,
    pub last_attempt: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The executing side refused the message itself (not the request's merits).
    pub refused: Option<String>,
    /// Messages of the case its member never acknowledged, no longer sent (see `retry`).
    #[serde(default)]
    pub given_up: Option<String>,
}

impl From<&crate::cases::record::Delivery> for DeliveryView {
    fn from(d: &crate::cases::record::Delivery) -> Self {
        Self {
            attempts: d.attempts,
            queued_at: d.queued_at,
            last_attempt: d.last_attempt,
            last_error: d.last_error.clone(),
            refused: d.refused.clone(),
            given_up: d.given_up.clone(),
        }
    }
}

/// `GET /v1/refusals`: a message or event refused from a peer, never applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefusalView {
    pub at: Timestamp,
    pub peer: String,
    pub member: Option<Jurisdiction>,
    pub case_id: Option<CaseId>,
    pub code: comity_protocol::RejectCode,
    pub reason: String,
}

/// `GET /v1/equivocations`: two different events a member signed as the same number of its
/// own in one case, both signed envelopes kept as evidence.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EquivocationView {
    pub at: Timestamp,
    /// The member that sent the second one.
    pub from: Jurisdiction,
    pub author: Jurisdiction,
    pub case_id: CaseId,
    pub seq: u64,
    pub existing: SignedEnvelope,
    pub offered: SignedEnvelope,
}

impl From<crate::cases::EquivocationRecord> for EquivocationView {
    fn from(e: crate::cases::EquivocationRecord) -> Self {
        Self {
            at: e.at,
            from: e.from,
            author: e.author,
            case_id: e.case_id,
            seq: e.seq,
            existing: e.existing,
            offered: e.offered,
        }
    }
}

impl EquivocationView {
    /// One line for status and lists.
    pub fn describe(&self) -> String {
        format!(
            "{} signed two different events as its number {} in case {} (from {} at {}; both kept)",
            self.author, self.seq, self.case_id, self.from, self.at
        )
    }
}

impl From<crate::cases::record::Refusal> for RefusalView {
    fn from(r: crate::cases::record::Refusal) -> Self {
        Self {
            at: r.at,
            peer: r.peer,
            member: r.member,
            case_id: r.case_id,
            code: r.code,
            reason: r.reason,
        }
    }
}

/// `POST /v1/faults` (testnets only): the faults to put in force on the link to a member
/// (`{"member": "DE", "link": {"cut": true}}`; a link with no fault named is restored).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub member: Jurisdiction,
    #[serde(default)]
    pub link: crate::network::LinkFault,
}

/// Every error the API returns: a machine code, a reason a person can act on, and for invalid
/// requests every field-level problem.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    pub error: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

/// Verifies a stored receipt against the executing member's key, for display.
pub fn receipt_view(
    receipt: &SignedEnvelope,
    key: Option<(&comity_protocol::PublicKey, &Jurisdiction)>,
    key_note: Option<String>,
) -> ReceiptView {
    let signer = receipt.signer.to_string();
    let signer_jurisdiction = key.map(|(_, j)| j.clone());
    let Some((key, _)) = key else {
        return ReceiptView {
            signer_jurisdiction,
            signer,
            signature_valid: false,
            problem: Some(
                "the receipt's signer is not a key the bloc configuration gives its receiver"
                    .into(),
            ),
            receipt: None,
            key_note,
        };
    };
    match key
        .verifying_key()
        .map_err(|e| e.to_string())
        .and_then(|k| receipt.open::<Receipt>(&k).map_err(|e| e.to_string()))
    {
        Ok(body) => ReceiptView {
            signer_jurisdiction,
            signer,
            signature_valid: true,
            problem: None,
            receipt: Some(body),
            key_note,
        },
        Err(problem) => ReceiptView {
            signer_jurisdiction,
            signer,
            signature_valid: false,
            problem: Some(problem),
            receipt: None,
            key_note,
        },
    }
}
