//! The case engine's core: every rule of a case, as functions from a context, the case as
//! stored and one input to a [`Plan`] — with no I/O. No tokio, RocksDB or libp2p here: the
//! shell (`super::shell`) loads the case under its lock, calls one of these functions, commits
//! the plan in one batch and then runs its effects.
//!
//! Inputs: a draft ([`draft`]), an approval ([`approve`]), a send ([`send`]), an officer's step
//! or a retention purge ([`act`]), events received by push, pull or with a receipt
//! ([`receive`]), and the end of a delivery attempt ([`delivered`], [`refused`], [`failed`]).

mod delivery;
mod officer;
mod receive;
#[cfg(test)]
mod tests;

use comity_protocol::policy::Policy;
use comity_protocol::{
    CaseEvent, CaseId, CaseLog, DataCategory, EventId, EventPush, ExchangeRequest, Hash32,
    Inserted, Jurisdiction, MessageId, Receipted, SignedEnvelope, Timestamp, to_canonical_cbor,
};
use ed25519_dalek::SigningKey;

pub use delivery::{delivered, failed, given_up, refused, retried};
pub use officer::{
    Pending, accept_amendment, act, amend, approve, approve_override, cancel_pending,
    check_disclosure_approval, draft, recheck, request_override, send,
};
pub use receive::{Equivocation, IngestError, Via, receive, within_reply};

use super::CaseError;
use super::record::{CaseRecord, OutboxEntry};
use crate::roster::Roster;
use comity_protocol::audit::AuditWhat;

/// Everything a rule may read besides the case itself.
#[derive(Debug)]
pub struct Context<'a> {
    /// The jurisdiction this node speaks for.
    pub me: &'a Jurisdiction,
    /// The bloc's members and their keys, as the current configuration gives them.
    pub roster: &'a Roster,
    /// This node's current signing key.
    pub signer: &'a SigningKey,
    /// The node's policy, checked on every incoming request.
    pub policy: Option<&'a Policy>,
    /// Data categories whose disclosure needs a second officer's approval.
    pub disclosure_approval: &'a [DataCategory],
    /// The node's clock, read once by the shell.
    pub now: Timestamp,
    /// Why new requests may not start now (the bloc configuration expired), if so.
    pub closed: Option<String>,
}

/// What a rule decided: the shell stores all of it in one synced batch, then runs `effects`.
#[derive(Debug, Default)]
pub struct Plan {
    /// The record to store; `None` leaves the stored one as it is.
    pub record: Option<CaseRecord>,
    /// Events new to this node, each with its index in the case's stored order.
    pub events: Vec<(usize, SignedEnvelope)>,
    /// Pushes to queue, durably, and hand to the outbox worker after the commit.
    pub outbox_put: Vec<OutboxEntry>,
    /// Pushes that are done (receipted or refused for good).
    pub outbox_delete: Vec<MessageId>,
    /// A push's message id and the receipt given for it, stored only if the id is new.
    pub inbox: Option<(MessageId, SignedEnvelope)>,
    /// Audit entries besides one per new event.
    pub audit: Vec<AuditWhat>,
    /// A fulfilment named a package from this member: its transfer is recorded in the batch.
    pub announce: Option<(Hash32, Jurisdiction)>,
    /// The answer to a push: its receipt and this node's events written in answer.
    pub reply: Option<Receipted>,
    /// Events that came from the peer and were new.
    pub received: usize,
    pub effects: Vec<Effect>,
}

/// What runs after the batch is synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The case's content was purged: destroy its key.
    Shred(String),
    /// Officers waiting for the delivery of this case's request to end.
    WakeWaiters(CaseId),
    /// The evidence service: a package was announced or its arrival may be stated.
    WakeEvidence,
}

impl Plan {
    /// Whether committing this plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.record.is_none()
            && self.events.is_empty()
            && self.outbox_put.is_empty()
            && self.outbox_delete.is_empty()
            && self.inbox.is_none()
            && self.audit.is_empty()
    }
}

impl Context<'_> {
    fn sign(&self, event: &CaseEvent) -> Result<SignedEnvelope, CaseError> {
        SignedEnvelope::sign(event, self.signer).map_err(|e| CaseError::Encode(e.to_string()))
    }

    /// Signs this node's next event of kind `kind` and inserts it into `log`.
    fn append(
        &self,
        log: &mut CaseLog,
        kind: comity_protocol::EventKind,
    ) -> Result<(EventId, SignedEnvelope), CaseError> {
        let event = log.next_event(self.me, kind, self.now);
        let envelope = self.sign(&event)?;
        // Just signed here: its signature needs no check; every other rule of the log applies.
        match log.insert_stored(envelope.clone()) {
            Ok(Inserted::New(id)) | Ok(Inserted::Duplicate(id)) => Ok((id, envelope)),
            Err(e) => Err(CaseError::Refused(e.to_string())),
        }
    }

    /// A signed push of `events` to `to`, ready for the outbox.
    fn push(
        &self,
        record: &CaseRecord,
        events: Vec<SignedEnvelope>,
        genesis: bool,
    ) -> Result<OutboxEntry, CaseError> {
        let count = events.len();
        let push = EventPush {
            message_id: MessageId::new(),
            case_id: record.case_id,
            sent_at: self.now,
            events,
        };
        let envelope = SignedEnvelope::sign(&push, self.signer)
            .map_err(|e| CaseError::Encode(e.to_string()))?;
        let body_hash = envelope.body_hash();
        let frame = to_canonical_cbor(&ExchangeRequest::Push(envelope))
            .map_err(|e| CaseError::Encode(e.to_string()))?;
        Ok(OutboxEntry {
            message_id: push.message_id,
            case_id: record.case_id,
            to: record.counterparty.clone(),
            body_hash,
            genesis,
            frame,
            sealed: false,
            clear: false,
            key_id: record.key_id.clone(),
            queued_at: push.sent_at,
            events: count,
            dead: false,
        })
    }
}

/// The case as the shell loaded it: its record, if any, and its log (empty for a draft or a
/// case not held yet).
#[derive(Clone, Debug)]
pub struct Case {
    pub record: Option<CaseRecord>,
    pub log: CaseLog,
}

impl Case {
    pub fn new(case_id: CaseId) -> Self {
        Self {
            record: None,
            log: CaseLog::new(case_id),
        }
    }
}

/// The request in force in `log` (folded as `view`): the last applied amendment's, else the
/// submission's.
pub fn request_in_force(
    log: &CaseLog,
    view: &comity_protocol::CaseView,
) -> Option<comity_protocol::AssistanceRequest> {
    let entry = view
        .entries
        .iter()
        .rev()
        .find(|e| e.applied && (e.kind == "amended" || e.kind == "submitted"))?;
    match &log.get(&entry.id)?.0.kind {
        comity_protocol::EventKind::Submitted { request, .. }
        | comity_protocol::EventKind::Amended { request, .. } => Some((**request).clone()),
        _ => None,
    }
}

/// What changed from `old` to `new`, one line per field, for the officers who review an
/// amendment: `urgency: "normal" → "urgent"`; a long field just says it changed. Case content:
/// shown only where the request itself may be shown.
pub fn request_changes(
    old: &comity_protocol::AssistanceRequest,
    new: &comity_protocol::AssistanceRequest,
) -> Vec<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["the request changed".to_owned()];
    };
    let mut lines = Vec::new();
    for (field, before) in &old {
        let after = new.get(field).unwrap_or(&serde_json::Value::Null);
        if before == after {
            continue;
        }
        let (a, b) = (before.to_string(), after.to_string());
        if a.len() + b.len() <= 160 {
            lines.push(format!("{field}: {a} → {b}"));
        } else {
            lines.push(format!("{field}: changed"));
        }
    }
    lines
}

/// After an amendment: the record holds the new version of the request (sealed again when
/// stored) and its summary. Nothing when the version in force is the one held.
fn adopt_version(
    record: &mut CaseRecord,
    before: u32,
    log: &CaseLog,
    view: &comity_protocol::CaseView,
) {
    if view.request_version <= before.max(1) || record.purged_at.is_some() {
        return;
    }
    if let Some(request) = request_in_force(log, view) {
        record.summary = super::record::RequestSummary::of(&request);
        record.request = Some(request);
        record.sealed_request.clear();
    }
}

/// The record's content is gone: what happens to a case once purged, on either side.
fn purge(record: &mut CaseRecord, at: Timestamp) {
    record.purged_at = Some(at);
    record.request = None;
    record.sealed_request.clear();
}
