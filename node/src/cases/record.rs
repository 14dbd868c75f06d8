//! The stored record of one case on this node: the local bookkeeping around its signed log.
//!
//! The lifecycle is not stored here: it is the fold of the case log (`comity_protocol::caselog`),
//! kept in the `events` column family. The record caches a summary of that fold, rewritten in
//! the same batch as every event, so that listing cases needs no log replay.

use std::collections::BTreeMap;

use comity_protocol::{
    AssistanceRequest, CaseId, CaseLog, CaseState, Decision, EventId, Hash32, Jurisdiction,
    MessageId, SignedEnvelope, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Which side of the case this node is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// We drafted and sent the request.
    Requester,
    /// We received the request and are asked to execute it.
    Executing,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Requester => "requester",
            Role::Executing => "executing",
        })
    }
}

/// The parts of a request that carry no personal data: kept in clear for lists and deadlines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    pub requesting: Jurisdiction,
    pub executing: Jurisdiction,
    pub instrument: comity_protocol::Instrument,
    pub kind: comity_protocol::RequestKind,
    pub urgency: comity_protocol::Urgency,
    pub data_categories: Vec<comity_protocol::DataCategory>,
    pub retention_days: u32,
}

impl RequestSummary {
    pub fn of(request: &AssistanceRequest) -> Self {
        Self {
            requesting: request.requesting.clone(),
            executing: request.executing.clone(),
            instrument: request.instrument,
            kind: request.kind,
            urgency: request.urgency,
            data_categories: request.data_categories.clone(),
            retention_days: request.retention_days,
        }
    }
}

/// Delivery attempts of the request itself (requester side).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub attempts: u32,
    pub queued_at: Option<Timestamp>,
    pub last_attempt: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The executing side refused the message itself (not the request's merits).
    pub refused: Option<String>,
    /// Pushes of this case the member never acknowledged, no longer sent: why, and since when.
    #[serde(default)]
    pub given_up: Option<String>,
}

/// The fold of the case log, as of the last event stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// `None` while the case is a draft (no log yet).
    pub state: Option<CaseState>,
    pub submitted_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub decided_at: Option<Timestamp>,
    pub fulfilled_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// The kind of the decision only: its texts (refusal reasons, the scope of a partial
    /// acceptance) are content, sealed in the case's log with the rest of it, and destroyed
    /// with the case's key.
    #[serde(default, deserialize_with = "decision_kind")]
    pub decision: Option<DecisionKind>,
    pub events: usize,
    pub heads: Vec<EventId>,
    /// Per author, the highest contiguous sequence held: what a pull sends.
    pub have: BTreeMap<Jurisdiction, u64>,
    /// The evidence package the fulfilment named.
    #[serde(default)]
    pub manifest_root: Option<Hash32>,
    /// When the requester's node stated that the package arrived whole.
    #[serde(default)]
    pub evidence_received_at: Option<Timestamp>,
    /// Data kept from deletion: until when, and whether released.
    #[serde(default)]
    pub preservation: Option<comity_protocol::Preservation>,
    /// The version of the request in force (1, then one more per amendment).
    #[serde(default)]
    pub request_version: u32,
    /// When the requester accepted the narrower scope of a partial acceptance.
    #[serde(default)]
    pub scope_accepted_at: Option<Timestamp>,
    /// When the requester destroyed what it received (its signed `purged`).
    #[serde(default)]
    pub requester_purged_at: Option<Timestamp>,
    /// Policy checks applied so far: an override asked for one check covers no later one.
    #[serde(default)]
    pub policy_checks: u32,
    /// The latest policy check's outcome, and whether an override covers it.
    #[serde(default)]
    pub policy: Option<comity_protocol::PolicyOutcome>,
    #[serde(default)]
    pub overridden: bool,
    /// Overrides of the policy applied in this case.
    #[serde(default)]
    pub overrides: u32,
}

impl CaseRecord {
    /// Drops what waits for an approval and no longer can apply: an amendment of a case no
    /// longer open to one, an override of a refusal that a later check replaced (or that no
    /// longer blocks).
    pub fn drop_stale_requests(&mut self) {
        use comity_protocol::CaseState as S;
        if self.pending_amendment.is_some()
            && !matches!(
                self.log.state,
                Some(S::PartiallyAccepted | S::ClarificationRequested | S::Clarified)
            )
        {
            self.pending_amendment = None;
        }
        if self
            .override_request
            .as_ref()
            .is_some_and(|o| o.for_check != self.log.policy_checks || !self.log.policy_blocks())
        {
            self.override_request = None;
        }
    }
}

impl LogSummary {
    /// Whether the policy's latest check refused the case and no override covers it: an
    /// officer may refuse it, but not accept or fulfil it.
    pub fn policy_blocks(&self) -> bool {
        self.policy == Some(comity_protocol::PolicyOutcome::Refused) && !self.overridden
    }
}

/// What was decided, without the decision's texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    Accept,
    Partial,
    Refuse,
}

impl DecisionKind {
    pub fn of(decision: &Decision) -> Self {
        match decision {
            Decision::Accept => DecisionKind::Accept,
            Decision::Partial { .. } => DecisionKind::Partial,
            Decision::Refuse { .. } => DecisionKind::Refuse,
        }
    }

    /// The state code a case with this decision has: `accepted`, `partially-accepted`,
    /// `refused`.
    pub fn outcome(&self) -> &'static str {
        match self {
            DecisionKind::Accept => "accepted",
            DecisionKind::Partial => "partially-accepted",
            DecisionKind::Refuse => "refused",
        }
    }
}

/// Reads the decision of a record written by this version (its kind) or by an earlier one,
/// which kept the whole decision in the clear: only its kind is kept, and the record is
/// rewritten without the texts when the node starts (`Cases::open`).
fn decision_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DecisionKind>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Kind(DecisionKind),
        Whole(Decision),
    }
    Ok(Option::<Stored>::deserialize(d)?.map(|s| match s {
        Stored::Kind(kind) => kind,
        Stored::Whole(decision) => DecisionKind::of(&decision),
    }))
}

impl LogSummary {
    pub fn of(log: &CaseLog) -> Self {
        Self::from_view(&log.view(), log)
    }

    /// The summary from a view of `log` already folded.
    pub fn from_view(view: &comity_protocol::CaseView, log: &CaseLog) -> Self {
        Self {
            state: view.state,
            submitted_at: view.submitted_at,
            delivered_at: view.delivered_at,
            decided_at: view.decided_at,
            fulfilled_at: view.fulfilled_at,
            closed_at: view.closed_at,
            decision: view.decision.as_ref().map(DecisionKind::of),
            manifest_root: view.manifest_root,
            evidence_received_at: view.evidence_received_at,
            preservation: view.preservation,
            requester_purged_at: view.purged_at,
            policy_checks: view.policy_checks,
            request_version: view.request_version,
            scope_accepted_at: view.scope_accepted_at,
            policy: view.policy,
            overridden: view.overridden,
            overrides: view.overrides,
            events: log.len(),
            heads: view.heads.clone(),
            have: log.version_vector(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case_id: CaseId,
    pub role: Role,
    pub counterparty: Jurisdiction,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The request's content, opened from `sealed_request`; `None` once purged (or when the
    /// record was read without opening it).
    #[serde(skip)]
    pub request: Option<AssistanceRequest>,
    /// The request sealed with the case's key (see `vault`): what the store holds.
    #[serde(default, with = "serde_bytes")]
    pub sealed_request: Vec<u8>,
    /// What lists and deadlines need of the request, without its content.
    pub summary: RequestSummary,
    /// When this node destroyed the case's content (crypto-shredding).
    #[serde(default)]
    pub purged_at: Option<Timestamp>,
    /// The case's data key in the vault (an id, not the key).
    #[serde(default)]
    pub key_id: String,
    /// The push that carried the request, and the counterparty's signed receipt of it.
    pub genesis_message: Option<MessageId>,
    pub receipt: Option<SignedEnvelope>,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub log: LogSummary,
    /// The officer who drafted the request (requesting side).
    #[serde(default)]
    pub drafted_by: Option<String>,
    /// Four-eyes: the approval the request is sent with (requesting side).
    #[serde(default)]
    pub approval: Option<comity_protocol::Approval>,
    /// Four-eyes on disclosure: who approved it, and when (executing side).
    #[serde(default)]
    pub disclosure_approval: Option<(String, Timestamp)>,
    /// An officer's request to go on despite the policy's refusal, awaiting another officer's
    /// approval (executing side).
    #[serde(default)]
    pub override_request: Option<OverrideRequest>,
    /// A new version of the request drafted by an officer, awaiting another officer's
    /// approval before it is signed into the log (requesting side).
    #[serde(default)]
    pub pending_amendment: Option<PendingAmendment>,
}

/// An amendment of the request, until another officer approves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingAmendment {
    pub drafted_by: String,
    pub drafted_at: Timestamp,
    /// The new version: content, sealed with the case's key in the store (`sealed`); `None`
    /// when the record was read without opening it.
    #[serde(skip)]
    pub request: Option<AssistanceRequest>,
    #[serde(default, with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A request to override the policy's refusal of a case, until another officer approves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideRequest {
    pub requested_by: String,
    pub requested_at: Timestamp,
    /// How many policy checks the case had when it was asked: a later check voids it.
    #[serde(default)]
    pub for_check: u32,
    /// The stated reason: content, sealed with the case's key in the store
    /// (`sealed_reason`); `None` when the record was read without opening it.
    #[serde(skip)]
    pub reason: Option<String>,
    #[serde(default, with = "serde_bytes")]
    pub sealed_reason: Vec<u8>,
}

impl CaseRecord {
    /// `draft` before submission, else the lifecycle state of the log.
    pub fn state_code(&self) -> &'static str {
        match self.log.state {
            None => "draft",
            Some(state) => state.code(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("stored record is corrupt: {0}")]
pub struct CorruptRecord(pub String);

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    ciborium::into_writer(value, &mut out).expect("records always serialise");
    out
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CorruptRecord> {
    ciborium::from_reader(bytes).map_err(|e| CorruptRecord(e.to_string()))
}

/// A push waiting in the outbox for its signed receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub message_id: MessageId,
    pub case_id: CaseId,
    pub to: Jurisdiction,
    /// BLAKE3 of the signed push body: the receipt must name exactly this.
    pub body_hash: Hash32,
    /// Whether this push carries the request itself (its receipt is the proof of delivery).
    pub genesis: bool,
    /// The encoded `ExchangeRequest`, exactly as every attempt sends it. Sealed with the
    /// case's key in the store when `sealed` (it carries case content).
    #[serde(with = "serde_bytes")]
    pub frame: Vec<u8>,
    #[serde(default)]
    pub sealed: bool,
    /// The frame carries no case content (a `purged` event): stored in clear, so that it can
    /// still be delivered once the case's key is destroyed.
    #[serde(default)]
    pub clear: bool,
    /// The case's data key, which a sealed frame opens with.
    #[serde(default)]
    pub key_id: String,
    pub queued_at: Timestamp,
    pub events: usize,
    /// Not acknowledged for longer than the outbox waits: kept, shown on the case, and not
    /// sent again until an officer asks (`comity case retry`).
    #[serde(default)]
    pub dead: bool,
}

/// Store keys: the ULID text form, which sorts by creation time like the ULID itself.
pub fn case_key(id: &CaseId) -> Vec<u8> {
    id.to_string().into_bytes()
}

pub fn message_key(id: &MessageId) -> Vec<u8> {
    id.to_string().into_bytes()
}

/// Events of a case, in the order they were stored (an order in which each event's links
/// precede it, so the log can be rebuilt by inserting them in key order).
pub fn event_key(case: &CaseId, index: usize) -> Vec<u8> {
    format!("{case}/{index:08}").into_bytes()
}

pub fn events_prefix(case: &CaseId) -> Vec<u8> {
    format!("{case}/").into_bytes()
}

/// A message or event refused from a peer: never applied, kept for operators and auditors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at: Timestamp,
    pub peer: String,
    pub member: Option<Jurisdiction>,
    pub case_id: Option<CaseId>,
    pub code: comity_protocol::RejectCode,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of an earlier version kept the whole decision: it still reads, as its kind,
    /// and written again it holds no trace of the decision's texts.
    #[test]
    fn a_legacy_decision_reads_as_its_kind_and_is_written_without_its_texts() {
        #[derive(Serialize)]
        struct Legacy {
            decision: Option<Decision>,
            events: usize,
            heads: Vec<EventId>,
            have: BTreeMap<Jurisdiction, u64>,
            state: Option<CaseState>,
            submitted_at: Option<Timestamp>,
            delivered_at: Option<Timestamp>,
            decided_at: Option<Timestamp>,
            fulfilled_at: Option<Timestamp>,
            closed_at: Option<Timestamp>,
        }
        for (decision, kind) in [
            (
                Decision::Refuse {
                    reasons: vec!["secret-reason-text".into()],
                },
                DecisionKind::Refuse,
            ),
            (
                Decision::Partial {
                    scope: "secret-scope-text".into(),
                },
                DecisionKind::Partial,
            ),
            (Decision::Accept, DecisionKind::Accept),
        ] {
            let legacy = encode(&Legacy {
                decision: Some(decision),
                events: 3,
                heads: Vec::new(),
                have: BTreeMap::new(),
                state: None,
                submitted_at: None,
                delivered_at: None,
                decided_at: None,
                fulfilled_at: None,
                closed_at: None,
            });
            let read: LogSummary = decode(&legacy).unwrap();
            assert_eq!(read.decision, Some(kind));
            assert_eq!(read.events, 3);
            let again = encode(&read);
            assert!(!again.windows(6).any(|w| w == b"secret"));
            assert_eq!(decode::<LogSummary>(&again).unwrap(), read);
        }
    }
}
