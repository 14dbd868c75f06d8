//! The receiving side of `/comity/exchange/2.0.0`: pushes of case events, and pulls.
//!
//! A push is answered with a signed receipt only after its events (and, for a new request,
//! the case and this node's `received` event) are synced to disk together; a message id seen
//! before gets the original receipt back and is not processed again. Anything wrong gets a
//! `Rejection` that says what, and stores nothing.

use std::sync::Arc;
use std::time::Duration;

use comity_protocol::{
    CaseEvent, CaseId, CaseLog, EventError, EventKind, EventPush, ExchangeRequest,
    ExchangeResponse, Hash32, Inserted, MessageId, Receipt, Receipted, RejectCode, Rejection,
    SignedEnvelope, Timestamp, from_cbor, limits, to_canonical_cbor,
};
use libp2p::PeerId;
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

use super::record::{
    CaseRecord, Delivery, LogSummary, Refusal, Role, case_key, encode, event_key, message_key,
    refusal_key,
};
use super::{CaseError, Cases};
use crate::network::InboundRequest;
use crate::roster::Member;
use crate::store::{Batch, Cf, StoreError};

/// A refusal identical to one recorded less than this long ago is not recorded again.
const REFUSAL_REPEAT_WINDOW: Duration = Duration::from_secs(3600);
/// Distinct recent refusals remembered for that.
const MAX_RECENT_REFUSALS: usize = 10_000;

/// Inbound requests handled at once; more wait in the network's bounded queue.
const MAX_CONCURRENT: usize = 128;

pub(super) async fn serve(cases: Cases, mut inbound: mpsc::Receiver<InboundRequest>) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    while let Some(request) = inbound.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let cases = cases.clone();
        tokio::spawn(async move {
            let response = cases.receive(request.peer, &request.frame).await;
            let frame = to_canonical_cbor(&response).expect("responses always encode");
            cases.inner.network.respond(request.channel, frame).await;
            drop(permit);
        });
    }
}

pub(super) fn reject(code: RejectCode, detail: impl Into<String>) -> ExchangeResponse {
    ExchangeResponse::Rejected(Rejection {
        code,
        detail: detail.into(),
    })
}

/// Why events from a peer could not be taken in.
pub(super) enum IngestError {
    /// Links point to events we do not hold: retry after a pull.
    Missing(usize),
    /// Refused for good: the code and a reason.
    Refused(RejectCode, String),
    Unavailable(String),
}

impl IngestError {
    fn into_response(self) -> ExchangeResponse {
        match self {
            IngestError::Missing(n) => reject(
                RejectCode::Unavailable,
                format!("{n} linked event(s) not held yet; pulling them, retry"),
            ),
            IngestError::Refused(code, why) => reject(code, why),
            IngestError::Unavailable(why) => reject(RejectCode::Unavailable, why),
        }
    }
}

impl IngestError {
    pub(super) fn describe(&self) -> String {
        match self {
            IngestError::Missing(n) => format!("{n} linked event(s) missing"),
            IngestError::Refused(code, why) => format!("{code}: {why}"),
            IngestError::Unavailable(why) => why.clone(),
        }
    }
}

impl From<crate::vault::VaultError> for IngestError {
    fn from(e: crate::vault::VaultError) -> Self {
        IngestError::Unavailable(e.to_string())
    }
}

impl From<CaseError> for IngestError {
    fn from(e: CaseError) -> Self {
        IngestError::Unavailable(e.to_string())
    }
}

impl Cases {
    /// Handles one request frame from `peer`; always returns something to answer.
    pub(super) async fn receive(&self, peer: PeerId, frame: &[u8]) -> ExchangeResponse {
        let response = self.receive_inner(peer, frame).await;
        if let ExchangeResponse::Rejected(r) = &response
            && r.code != RejectCode::Unavailable
        {
            self.record_refusal(peer, case_of(frame), r.code, &r.detail)
                .await;
        }
        if let ExchangeResponse::Rejected(r) = &response {
            // Details of malformed or invalid requests may quote their contents (a selector
            // that fails validation): the requester gets them, the log only the code.
            let detail = match r.code {
                RejectCode::Malformed | RejectCode::Invalid => "(withheld from logs)",
                _ => r.detail.as_str(),
            };
            warn!(%peer, code = %r.code, reason = detail, bytes = frame.len(), "refused exchange request");
        }
        response
    }

    async fn receive_inner(&self, peer: PeerId, frame: &[u8]) -> ExchangeResponse {
        let request = match from_cbor::<ExchangeRequest>(frame, limits::MAX_REQUEST_FRAME) {
            Ok(r) => r,
            Err(e) => return reject(RejectCode::Malformed, format!("cannot decode request: {e}")),
        };
        // The bloc configuration is public to every peer the allow-list admits: a member whose
        // transport key just rotated (its old PeerId is still admitted for a moment) learns
        // of the version that moved it.
        if let ExchangeRequest::Bloc { have } = request {
            return ExchangeResponse::Bloc(self.inner.governance.answer_pull(have).await);
        }
        let roster = self.roster();
        let Some((member, _)) = roster.by_peer(&peer) else {
            // The allow-list refuses such connections; this is the second lock on the door.
            return reject(
                RejectCode::UnknownSigner,
                "peer is not an admitted member of the bloc",
            );
        };
        let member = member.clone();
        let envelope = match request {
            ExchangeRequest::Push(envelope) => envelope,
            ExchangeRequest::Pull(pull) => {
                return match self.answer_pull(&member, &pull) {
                    Ok(page) => ExchangeResponse::Events(page),
                    Err(e) => reject(RejectCode::Unavailable, e.to_string()),
                };
            }
            ExchangeRequest::Policy => {
                return match self.signed_policy() {
                    Ok(summary) => ExchangeResponse::Policy(summary),
                    Err(e) => reject(RejectCode::Unavailable, e.to_string()),
                };
            }
            ExchangeRequest::Consistency { old, new } => {
                return match crate::audit::consistency(&self.inner.store, old, new) {
                    Ok(proof) => ExchangeResponse::Consistency(proof.proof),
                    Err(e) => reject(RejectCode::Unavailable, e.to_string()),
                };
            }
            // Answered above; kept so that the match stays exhaustive without a panic.
            ExchangeRequest::Bloc { have } => {
                return ExchangeResponse::Bloc(self.inner.governance.answer_pull(have).await);
            }
        };
        // The push must be signed by a key of the member at the other end of the connection:
        // its current key, or a key it retired after the push was made.
        if roster
            .note(&member.jurisdiction, &envelope.signer)
            .is_none()
        {
            return reject(
                RejectCode::UnknownSigner,
                format!(
                    "push signed by {}, which is not a key of {} ({peer})",
                    envelope.signer, member.jurisdiction
                ),
            );
        }
        let verifying = match envelope.signer.verifying_key() {
            Ok(k) => k,
            Err(e) => return reject(RejectCode::UnknownSigner, e.to_string()),
        };
        let push: EventPush = match envelope.open(&verifying) {
            Ok(m) => m,
            Err(comity_protocol::EnvelopeError::BadSignature) => {
                return reject(
                    RejectCode::BadSignature,
                    "signature does not verify with the sender's roster key",
                );
            }
            Err(e) => return reject(RejectCode::Malformed, e.to_string()),
        };
        if let Err(e) = roster.accepts(&member.jurisdiction, &envelope.signer, push.sent_at) {
            return reject(RejectCode::UnknownSigner, format!("push refused: {e}"));
        }
        if push.events.is_empty() {
            return reject(RejectCode::Malformed, "a push carries at least one event");
        }
        let body_hash = envelope.body_hash();
        if let Some(response) = self.replay_receipt(&push.message_id, &body_hash) {
            return response;
        }
        let message_id = push.message_id;
        let case_id = push.case_id;
        let mut attempts = 0;
        loop {
            let receipt = Receipt {
                message_id,
                case_id,
                body_hash,
                receiver: self.inner.jurisdiction.clone(),
                received_at: Timestamp::now(),
            };
            let receipt = match SignedEnvelope::sign(&receipt, &self.inner.identity.signing_key()) {
                Ok(r) => r,
                Err(e) => return reject(RejectCode::Unavailable, e.to_string()),
            };
            let result = self
                .ingest(
                    &member,
                    case_id,
                    push.events.clone(),
                    Some((message_id, &receipt)),
                    None,
                )
                .await;
            match result {
                Ok(ingested) => {
                    return ExchangeResponse::Receipt(Receipted {
                        receipt,
                        events: ingested.answer,
                    });
                }
                Err(IngestError::Missing(n)) => {
                    // The sender is ahead of us in this case: fetch what we lack from it.
                    self.request_sync(member.peer_id);
                    return IngestError::Missing(n).into_response();
                }
                Err(IngestError::Unavailable(why)) if why == GUARD_TAKEN && attempts < 50 => {
                    // The same message is being stored by a concurrent attempt.
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    if let Some(response) = self.replay_receipt(&message_id, &body_hash) {
                        return response;
                    }
                }
                Err(e) => return e.into_response(),
            }
        }
    }

    /// Verifies `events` of `case_id` from `member` and stores the new ones in one batch
    /// (with `receipt` under the push's message id, when it came as a push). A new request
    /// creates the case and this node's `received` event: returned to go back with the receipt
    /// of a push, or pushed through the outbox when the events came by a pull.
    pub(super) async fn ingest(
        &self,
        member: &Member,
        case_id: CaseId,
        events: Vec<SignedEnvelope>,
        receipt: Option<(MessageId, &SignedEnvelope)>,
        delivered: Option<Delivered<'_>>,
    ) -> Result<Ingested, IngestError> {
        let guard = self.lock(&case_id).lock().await;
        let existing = self.get(&case_id)?;
        if existing.as_ref().is_some_and(|r| r.purged_at.is_some()) {
            // Its content is destroyed here: nothing can be added; the push is receipted so
            // that the sender stops, and nothing else is kept.
            if let Some((message_id, receipt)) = receipt {
                let mut batch = Batch::new();
                batch.require_absent(Cf::Inbox, message_key(&message_id));
                batch.put(Cf::Inbox, message_key(&message_id), receipt.to_bytes());
                self.inner.store.commit(batch).await.map_err(|e| match e {
                    StoreError::Exists(_) => IngestError::Unavailable(GUARD_TAKEN.into()),
                    e => IngestError::Unavailable(e.to_string()),
                })?;
            }
            return Ok(Ingested::default());
        }
        // A new request pushed to this node starts a case: not on an expired bloc
        // configuration (cases under way go on).
        if existing.is_none()
            && receipt.is_some()
            && let Err(reason) = self.inner.governance.may_start_requests()
        {
            return Err(IngestError::Refused(RejectCode::Invalid, reason));
        }
        let mut log = if existing.is_some() {
            self.load_log(&case_id)?
        } else {
            CaseLog::new(case_id)
        };
        let first_new = log.len();
        let roster = self.roster();
        let mut fresh = Vec::new();
        let mut pushed = Vec::new();
        for envelope in events {
            match log.insert(envelope.clone(), Self::key_of(&roster)) {
                Ok(Inserted::New(id)) => {
                    pushed.push(id);
                    fresh.push(envelope)
                }
                Ok(Inserted::Duplicate(id)) => pushed.push(id),
                Err(EventError::MissingLinks(ids)) => return Err(IngestError::Missing(ids.len())),
                // An event of a case whose request we have not received yet: pull it first.
                Err(EventError::MissingGenesis { .. }) => return Err(IngestError::Missing(1)),
                Err(EventError::Envelope(comity_protocol::EnvelopeError::BadSignature)) => {
                    return Err(IngestError::Refused(
                        RejectCode::BadSignature,
                        "an event's signature does not verify with its author's roster key".into(),
                    ));
                }
                // Decoding errors may quote the body: code `malformed`, whose detail stays out
                // of logs and refusal records.
                Err(e @ EventError::Envelope(_)) => {
                    return Err(IngestError::Refused(RejectCode::Malformed, e.to_string()));
                }
                Err(e @ (EventError::UnknownAuthor(_) | EventError::Key { .. })) => {
                    return Err(IngestError::Refused(
                        RejectCode::UnknownSigner,
                        e.to_string(),
                    ));
                }
                Err(e) => return Err(IngestError::Refused(RejectCode::Invalid, e.to_string())),
            }
        }
        let view = log.view();
        let (Some(requesting), Some(executing)) = (view.requesting.clone(), view.executing.clone())
        else {
            return Err(IngestError::Refused(
                RejectCode::Malformed,
                "no request (genesis event) for this case".into(),
            ));
        };
        let me = &self.inner.jurisdiction;
        let counterparty = if *me == executing {
            requesting.clone()
        } else if *me == requesting {
            executing.clone()
        } else {
            return Err(IngestError::Refused(
                RejectCode::Misaddressed,
                format!("case between {requesting} and {executing} is not for {me}"),
            ));
        };
        if counterparty != member.jurisdiction {
            return Err(IngestError::Refused(
                RejectCode::Misaddressed,
                format!(
                    "case with {counterparty} arrived from {}",
                    member.jurisdiction
                ),
            ));
        }
        let mut batch = Batch::new();
        let mut pushes = Vec::new();
        let mut answer = Vec::new();
        // The push that carries the request is the one whose receipt proves its delivery; a
        // pull may have brought the request first, so the record may exist without it.
        let carries_genesis = view.entries.first().is_some_and(|g| pushed.contains(&g.id));
        let mut record = match existing {
            Some(mut record) => {
                if record.role == Role::Executing
                    && record.receipt.is_none()
                    && carries_genesis
                    && let Some((message_id, signed)) = receipt
                {
                    record.genesis_message = Some(message_id);
                    record.receipt = Some(signed.clone());
                }
                record
            }
            None => {
                let request = genesis_request(&log).ok_or_else(|| {
                    IngestError::Refused(RejectCode::Malformed, "genesis without a request".into())
                })?;
                if let Err(problems) = request.validate() {
                    return Err(IngestError::Refused(
                        RejectCode::Invalid,
                        problems.to_string(),
                    ));
                }
                CaseRecord {
                    case_id,
                    role: if *me == executing {
                        Role::Executing
                    } else {
                        Role::Requester
                    },
                    counterparty: counterparty.clone(),
                    created_at: view.submitted_at.unwrap_or_else(Timestamp::now),
                    updated_at: Timestamp::now(),
                    summary: super::record::RequestSummary::of(&request),
                    request: Some(request),
                    sealed_request: Vec::new(),
                    purged_at: None,
                    key_id: self.inner.vault.new_key()?,
                    genesis_message: receipt.map(|(id, _)| id),
                    receipt: receipt.map(|(_, r)| r.clone()),
                    delivery: Delivery::default(),
                    log: LogSummary::default(),
                    drafted_by: None,
                    approval: genesis_approval(&log),
                    disclosure_approval: None,
                }
            }
        };
        // The executing side states, signed, that it holds the request, and checks it
        // against its policy at once: the requester sees both with the receipt.
        let mut own = Vec::new();
        let received = view
            .entries
            .iter()
            .any(|e| e.author == *me && e.kind == "received");
        if record.role == Role::Executing && !received {
            let mut kinds = vec![EventKind::Received];
            if let Some(policy) = &self.inner.policy {
                let request = record.request.as_ref().ok_or_else(|| {
                    IngestError::Unavailable("the request's content is not open".into())
                })?;
                let check = policy.check(request, &counterparty, Timestamp::now());
                info!(case = %case_id, outcome = crate::policy::outcome_code(check.outcome), rules = check.rules.len(), "policy checked");
                kinds.push(EventKind::PolicyChecked {
                    outcome: check.outcome,
                    rules: check.event_rules(),
                });
            }
            for kind in kinds {
                let event = log.next_event(me, kind, Timestamp::now());
                let envelope = self.sign(&event).map_err(IngestError::from)?;
                self.insert_own(&mut log, envelope.clone())?;
                fresh.push(envelope.clone());
                own.push(envelope);
            }
        }
        if !own.is_empty() {
            if receipt.is_some() {
                answer.extend(own);
            } else {
                pushes.push(
                    self.push_entry(
                        case_id,
                        &counterparty,
                        own,
                        false,
                        Timestamp::now(),
                        &record.key_id,
                    )
                    .map_err(IngestError::from)?,
                );
            }
        }
        if fresh.is_empty() && receipt.is_none() && delivered.is_none() {
            return Ok(Ingested::default());
        }
        for (i, envelope) in fresh.iter().enumerate() {
            batch.put(
                Cf::Events,
                event_key(&case_id, first_new + i),
                self.inner
                    .vault
                    .seal(&record.key_id, &case_id, &envelope.to_bytes())?,
            );
            crate::audit::record_event(&mut batch, envelope);
        }
        let had_root = record.log.manifest_root.is_some();
        record.log = LogSummary::of(&log);
        record.updated_at = Timestamp::now();
        // The requester destroyed the data at the end of its retention: so does this node.
        let purging = log.view().purged_at.is_some() && record.purged_at.is_none();
        if purging {
            record.purged_at = Some(record.updated_at);
            record.request = None;
            record.sealed_request.clear();
        }
        if let Some(delivered) = &delivered {
            delivered.apply(&mut record, &mut batch);
        }
        // A fulfilment that names a package: its transfer is recorded with the event, so that
        // it starts (or resumes after a crash) once this batch is stored.
        let announced =
            record.role == Role::Requester && record.log.manifest_root.is_some() && !had_root;
        if announced && let Some(root) = record.log.manifest_root {
            crate::evidence::announce(&mut batch, case_id, root, &counterparty);
        }
        batch.put(Cf::Cases, case_key(&case_id), self.encode_record(&record)?);
        for entry in &pushes {
            batch.put(
                Cf::Outbox,
                message_key(&entry.message_id),
                self.encode_outbox(entry)?,
            );
        }
        if let Some((message_id, receipt)) = receipt {
            batch.require_absent(Cf::Inbox, message_key(&message_id));
            batch.put(Cf::Inbox, message_key(&message_id), receipt.to_bytes());
        }
        match self.inner.store.commit(batch).await {
            Ok(()) => {}
            Err(StoreError::Exists(_)) => return Err(IngestError::Unavailable(GUARD_TAKEN.into())),
            Err(e) => {
                return Err(IngestError::Unavailable(format!(
                    "could not store the events, retry later: {e}"
                )));
            }
        }
        if purging {
            self.inner.vault.shred(&record.key_id)?;
            info!(case = %case_id, "case content destroyed after the requester's purge (key shredded)");
        }
        drop(guard);
        if record.log.manifest_root.is_some() {
            self.inner.evidence_wake.notify_one();
        }
        let new = fresh.len();
        info!(case = %case_id, from = %member.jurisdiction, events = new, state = record.state_code(), "events stored");
        self.dispatch(pushes).await;
        Ok(Ingested { new, answer })
    }

    /// The receipt we already gave for `message_id`, if any.
    fn replay_receipt(
        &self,
        message_id: &MessageId,
        body_hash: &Hash32,
    ) -> Option<ExchangeResponse> {
        let stored = match self.inner.store.get(Cf::Inbox, &message_key(message_id)) {
            Ok(Some(bytes)) if !bytes.is_empty() => bytes,
            Ok(_) => return None,
            Err(e) => return Some(reject(RejectCode::Unavailable, e.to_string())),
        };
        let receipt = match SignedEnvelope::from_bytes(&stored, limits::MAX_RESPONSE_FRAME) {
            Ok(r) => r,
            Err(e) => {
                return Some(reject(
                    RejectCode::Unavailable,
                    format!("stored receipt unreadable: {e}"),
                ));
            }
        };
        let original: Result<Receipt, _> =
            receipt.open(&self.inner.identity.signing_key().verifying_key());
        match original {
            Ok(r) if r.body_hash == *body_hash => {
                info!(message = %message_id, "duplicate message answered with its original receipt");
                // The first answer may have been lost with its stream: send our events of the
                // case again (duplicates are harmless to the sender).
                let events = self.own_events(&r.case_id).unwrap_or_default();
                Some(ExchangeResponse::Receipt(Receipted { receipt, events }))
            }
            Ok(_) => Some(reject(
                RejectCode::Malformed,
                format!("message id {message_id} was already received with different content"),
            )),
            Err(e) => Some(reject(
                RejectCode::Unavailable,
                format!("stored receipt unreadable: {e}"),
            )),
        }
    }
}

impl Cases {
    /// The events of a case that this node authored.
    fn own_events(
        &self,
        case_id: &comity_protocol::CaseId,
    ) -> Result<Vec<SignedEnvelope>, CaseError> {
        let me = self.inner.identity.public_key();
        Ok(self
            .load_log(case_id)?
            .envelopes()
            .into_iter()
            .filter(|e| e.signer == me)
            .collect())
    }
}

/// A push of ours that the member receipted, recorded in the same batch as the events it
/// answered with (one synced write instead of two).
#[derive(Clone, Copy, Debug)]
pub(super) struct Delivered<'a> {
    pub entry: &'a super::record::OutboxEntry,
    pub receipt: &'a SignedEnvelope,
}

impl Delivered<'_> {
    /// The outbox entry is done; for a request, its receipt is the proof of delivery.
    pub(super) fn apply(&self, record: &mut CaseRecord, batch: &mut Batch) {
        if self.entry.genesis {
            record.receipt = Some(self.receipt.clone());
            record.delivery.attempts += 1;
            record.delivery.last_attempt = Some(Timestamp::now());
            record.delivery.last_error = None;
        }
        self.apply_to_outbox(batch);
    }

    pub(super) fn apply_to_outbox(&self, batch: &mut Batch) {
        batch.delete(Cf::Outbox, message_key(&self.entry.message_id));
    }
}

/// What `ingest` stored.
#[derive(Debug, Default)]
pub(super) struct Ingested {
    /// Events that were new to this node.
    pub new: usize,
    /// Events this node wrote in answer, to return with the receipt.
    pub answer: Vec<SignedEnvelope>,
}

/// A concurrent attempt of the same message holds its inbox key.
const GUARD_TAKEN: &str = "message is being stored by another attempt; retry";

fn genesis_request(log: &CaseLog) -> Option<comity_protocol::AssistanceRequest> {
    log.envelopes().into_iter().find_map(|envelope| {
        let event: CaseEvent = from_cbor(&envelope.body, limits::MAX_REQUEST_FRAME).ok()?;
        match event.kind {
            EventKind::Submitted { request, .. } => Some(*request),
            _ => None,
        }
    })
}

/// The case a push is about, if the frame can be read that far (for the refusal record).
fn case_of(frame: &[u8]) -> Option<CaseId> {
    match from_cbor::<ExchangeRequest>(frame, limits::MAX_REQUEST_FRAME).ok()? {
        ExchangeRequest::Push(envelope) => {
            from_cbor::<EventPush>(&envelope.body, limits::MAX_REQUEST_FRAME)
                .ok()
                .map(|p| p.case_id)
        }
        ExchangeRequest::Pull(_)
        | ExchangeRequest::Policy
        | ExchangeRequest::Consistency { .. }
        | ExchangeRequest::Bloc { .. } => None,
    }
}

impl Cases {
    /// Keeps a refusal (synced) so that operators and auditors can see what was refused from
    /// whom and why; the refused message itself is not applied.
    pub(super) async fn record_refusal(
        &self,
        peer: PeerId,
        case_id: Option<CaseId>,
        code: RejectCode,
        reason: &str,
    ) {
        // Refusal records are read by auditors, who never see content: the details of
        // malformed or invalid messages may quote it, so only field names are kept.
        let reason = match code {
            RejectCode::Malformed => {
                "malformed (details withheld: they may quote the content)".to_owned()
            }
            RejectCode::Invalid => withheld_problems(reason),
            _ => reason.to_owned(),
        };
        // The same refusal again (an invalid event offered by every pull, say) is recorded
        // once per window, so that a faulty member cannot grow the log without end.
        {
            let mut recent = self.inner.recent_refusals.lock().expect("refusals lock");
            let key = (peer, case_id, code, reason.clone());
            let now = std::time::Instant::now();
            if recent
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < REFUSAL_REPEAT_WINDOW)
            {
                tracing::debug!(%peer, %code, "refusal already recorded in this window");
                return;
            }
            if recent.len() >= MAX_RECENT_REFUSALS {
                recent.retain(|_, at| now.duration_since(*at) < REFUSAL_REPEAT_WINDOW);
                if recent.len() >= MAX_RECENT_REFUSALS {
                    recent.clear();
                }
            }
            recent.insert(key, now);
        }
        let refusal = Refusal {
            at: Timestamp::now(),
            peer: peer.to_string(),
            member: self
                .inner
                .governance
                .roster()
                .by_peer(&peer)
                .map(|(m, _)| m.jurisdiction.clone()),
            case_id,
            code,
            reason,
        };
        let mut batch = Batch::new();
        batch.put(Cf::Refusals, refusal_key(&refusal), encode(&refusal));
        crate::audit::record(
            &mut batch,
            crate::audit::AuditWhat::Refusal {
                peer: refusal.peer.clone(),
                code: refusal.code.to_string(),
                case_id: refusal.case_id,
            },
        );
        if let Err(e) = self.inner.store.commit(batch).await {
            warn!(%peer, error = %e, "could not record a refusal");
        }
    }

    /// Every refusal recorded, oldest first.
    pub fn refusals(&self) -> Result<Vec<Refusal>, CaseError> {
        self.inner
            .store
            .scan(Cf::Refusals)?
            .iter()
            .map(|(_, v)| super::record::decode(v).map_err(CaseError::from))
            .collect()
    }
}

fn genesis_approval(log: &CaseLog) -> Option<comity_protocol::Approval> {
    log.envelopes().into_iter().find_map(|envelope| {
        let event: CaseEvent = from_cbor(&envelope.body, limits::MAX_REQUEST_FRAME).ok()?;
        match event.kind {
            EventKind::Submitted { approval, .. } => Some(approval),
            _ => None,
        }
    })
}

/// `field: problem; field: problem` → the fields only (problems may quote content).
fn withheld_problems(detail: &str) -> String {
    let fields: Vec<&str> = detail
        .split("; ")
        .filter_map(|p| p.split_once(": ").map(|(field, _)| field.trim()))
        .filter(|f| !f.is_empty() && !f.contains(' '))
        .collect();
    if fields.is_empty() {
        "invalid (details withheld: they may quote the content)".to_owned()
    } else {
        format!(
            "invalid fields: {} (details withheld: they may quote the content)",
            fields.join(", ")
        )
    }
}
