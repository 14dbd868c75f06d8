//! The receiving side of `/comity/exchange/2.0.0`: pushes of case events, and pulls.
//!
//! A push is answered with a signed receipt only after its events (and, for a new request,
//! the case and this node's `received` event) are synced to disk together; a message id seen
//! before gets the original receipt back and is not processed again. Anything wrong gets a
//! `Rejection` that says what, and stores nothing.

use std::sync::Arc;
use std::time::Duration;

use comity_protocol::{
    CaseId, EventPush, ExchangeRequest, ExchangeResponse, Hash32, MessageId, Receipt, Receipted,
    RejectCode, Rejection, SignedEnvelope, from_cbor, limits, to_canonical_cbor,
};
use libp2p::PeerId;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

use super::budget::Budget;
use super::core::{self, IngestError, Plan, Via};
use super::record::message_key;
use super::shell::{GUARD_TAKEN, Load};
use super::{CaseError, Cases};
use crate::network::InboundRequest;
use crate::roster::Member;
use crate::store::Cf;

/// Inbound requests handled at once; more wait in the network's bounded queue.
pub(super) const MAX_CONCURRENT: usize = 128;

pub(super) async fn serve(cases: Cases, mut inbound: mpsc::Receiver<InboundRequest>) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let budget = cases.inner.budget.clone();
    while let Some(request) = inbound.recv().await {
        let peer = request.peer;
        let share = cases.request_share();
        let (admitted, turned_away) = {
            let mut budget = budget.lock().expect("budget lock");
            (
                budget.admit(peer, share),
                budget.report(std::time::Instant::now()),
            )
        };
        for (peer, n) in turned_away {
            warn!(%peer, turned_away = n, share, "a member had more requests in hand than its share; the rest were told to retry");
        }
        if !admitted {
            // Answered at once, without waiting for a place: the member's flood waits on
            // itself, not on the others.
            busy(&cases, request, "of your requests").await;
            continue;
        }
        // Shares can add up to more than the places (each member has 16 at least): an
        // admitted request that finds none free is told to retry, and waits on nobody.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(Place(budget.clone(), peer));
            busy(&cases, request, "requests").await;
            continue;
        };
        let place = Place(budget.clone(), peer);
        let cases = cases.clone();
        tokio::spawn(async move {
            let response = cases.receive(peer, &request.frame).await;
            let frame = to_canonical_cbor(&response).expect("responses always encode");
            let mut started = request.started;
            if started.keeps_cases()
                && ExchangeRequest::peek_kind(&request.frame) == Some("push")
                && let Some(case) = case_of(&request.frame)
            {
                started.about(case);
            }
            let network = &cases.inner.network;
            network
                .respond((started, &request.frame), request.channel, frame)
                .await;
            drop((place, permit));
        });
    }
}

/// Tells a member to retry shortly: this node holds as many `what` as it takes at once.
async fn busy(cases: &Cases, request: InboundRequest, what: &str) {
    let reply = reject(
        RejectCode::Unavailable,
        format!("this node is handling as many {what} as it takes at once; retry shortly"),
    );
    let frame = to_canonical_cbor(&reply).expect("responses always encode");
    let network = &cases.inner.network;
    network
        .respond((request.started, &request.frame), request.channel, frame)
        .await;
}

/// A member's place in hand, given back when its request is answered (or its task fails).
struct Place(Arc<std::sync::Mutex<Budget>>, libp2p::PeerId);

impl Drop for Place {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .done(&self.1);
    }
}

/// This node could not answer `what` for a reason of its own: the member is told to retry,
/// and the detail (which may name paths or disks) stays in this node's log.
fn unavailable(e: &dyn std::fmt::Display, what: &str) -> ExchangeResponse {
    warn!(error = %e, what, "could not answer a member");
    reject(
        RejectCode::Unavailable,
        format!("this node cannot answer {what} now; retry later"),
    )
}

pub(super) fn reject(code: RejectCode, detail: impl Into<String>) -> ExchangeResponse {
    ExchangeResponse::Rejected(Rejection {
        code,
        detail: detail.into(),
    })
}

impl IngestError {
    fn into_response(self) -> ExchangeResponse {
        match self {
            IngestError::Missing(n) => reject(
                RejectCode::Unavailable,
                format!("{n} linked event(s) not held yet; pulling them, retry"),
            ),
            IngestError::Refused(code, why) => reject(code, why),
            IngestError::Equivocation(e) => reject(RejectCode::Invalid, e.reason),
            IngestError::Unavailable(why) => reject(RejectCode::Unavailable, why),
        }
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
            // Counted per member and code (`comity refusals`), audited and logged once per
            // interval: one line per message would let a member fill this node's log.
            debug!(%peer, code = %r.code, reason = detail, bytes = frame.len(), "refused exchange request");
        }
        response
    }

    async fn receive_inner(&self, peer: PeerId, frame: &[u8]) -> ExchangeResponse {
        // Queries beyond the member's rate are turned away before they are decoded (a pull
        // can list thousands of cases): decoding is most of what they cost.
        let peeked = ExchangeRequest::peek_kind(frame);
        let query = |kind: &str| matches!(kind, "pull" | "policy" | "consistency");
        if peeked.is_some_and(query) && !self.within_query_rate(peer) {
            return self.over_query_rate();
        }
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
        // A query whose kind could not be read ahead (a form other than the canonical one).
        if peeked.is_none()
            && !matches!(request, ExchangeRequest::Push(_))
            && !self.within_query_rate(peer)
        {
            return self.over_query_rate();
        }
        let envelope = match request {
            ExchangeRequest::Push(envelope) => envelope,
            ExchangeRequest::Pull(pull) => {
                // Store reads (and the unsealing of the cases it sends) off the async workers,
                // where they would hold up every other member's requests.
                let (cases, asker) = (self.clone(), member.clone());
                let answer =
                    tokio::task::spawn_blocking(move || cases.answer_pull(&asker, &pull)).await;
                return match answer {
                    Ok(Ok((page, bytes))) => {
                        // Paid for by the size of the answer: the reading is what costs.
                        let now = std::time::Instant::now();
                        let mut budget = self.inner.budget.lock().expect("budget lock");
                        budget.charge_query(peer, bytes, now);
                        ExchangeResponse::Events(page)
                    }
                    Ok(Err(e)) => unavailable(&e, "a pull"),
                    Err(e) => unavailable(&e, "a pull"),
                };
            }
            ExchangeRequest::Policy => {
                return match self.signed_policy() {
                    Ok(summary) => ExchangeResponse::Policy(summary),
                    Err(e) => unavailable(&e, "the policy summary"),
                };
            }
            ExchangeRequest::Consistency { old, new } => {
                return match crate::audit::consistency(&self.inner.store, old, new) {
                    Ok(proof) => ExchangeResponse::Consistency(proof.proof),
                    Err(e) => unavailable(&e, "a consistency proof"),
                };
            }
            // Answered above; kept so that the match stays exhaustive without a panic.
            ExchangeRequest::Bloc { have } => {
                return ExchangeResponse::Bloc(self.inner.governance.answer_pull(have).await);
            }
        };
        self.receive_push(&roster, &member, peer, envelope).await
    }

    fn over_query_rate(&self) -> ExchangeResponse {
        reject(
            RejectCode::Unavailable,
            format!(
                "over your rate of queries at this node ({} per second: pulls, proofs, policy); retry shortly",
                self.inner.budget.lock().expect("budget lock").query_rate()
            ),
        )
    }

    /// Whether a query of `peer` is within its member's rate; what goes over is logged once per
    /// interval with counts.
    fn within_query_rate(&self, peer: PeerId) -> bool {
        let now = std::time::Instant::now();
        let (within, over) = {
            let mut budget = self.inner.budget.lock().expect("budget lock");
            (budget.query(peer, now), budget.report_queries(now))
        };
        for (peer, n) in over {
            warn!(%peer, queries_turned_away = n, "a member queried beyond its rate; the rest were told to retry");
        }
        within
    }

    /// A push: its envelope checked against the member's keys, then its events taken in, once
    /// (a message id seen before gets its original receipt back).
    async fn receive_push(
        &self,
        roster: &crate::roster::Roster,
        member: &Member,
        peer: PeerId,
        envelope: SignedEnvelope,
    ) -> ExchangeResponse {
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
        // A new case counts against its member's daily quota.
        let mut opening = None;
        if matches!(self.record_closed(&push.case_id), Ok(None)) {
            match self.may_open(member) {
                Ok(place) => opening = Some(place),
                Err(full) => return *full,
            }
        }
        let via = Via::Push {
            message_id: push.message_id,
            body_hash,
        };
        let mut attempts = 0;
        loop {
            let result = self
                .ingest(member, push.case_id, push.events.clone(), via.clone())
                .await;
            match result {
                Ok(plan) => {
                    if plan.record.is_some()
                        && let Some(opening) = opening.take()
                    {
                        opening.keep();
                    }
                    return match plan.reply {
                        Some(reply) => ExchangeResponse::Receipt(reply),
                        None => reject(RejectCode::Unavailable, "no receipt was planned; retry"),
                    };
                }
                Err(IngestError::Equivocation(e)) => {
                    self.keep_equivocation(member, push.case_id, &e).await;
                    return IngestError::Equivocation(e).into_response();
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
                    if let Some(response) = self.replay_receipt(&push.message_id, &body_hash) {
                        return response;
                    }
                }
                Err(e) => return e.into_response(),
            }
        }
    }

    /// Verifies `events` of `case_id` from `member` and stores the new ones in one batch with
    /// what they imply (see [`core::receive`]).
    pub(super) async fn ingest(
        &self,
        member: &Member,
        case_id: CaseId,
        events: Vec<SignedEnvelope>,
        via: Via<'_>,
    ) -> Result<Plan, IngestError> {
        let from = &member.jurisdiction;
        let plan = self
            .run(case_id, Load::Log, |ctx, case| {
                core::receive(ctx, case, from, events, via)
            })
            .await?;
        if let Some(record) = &plan.record {
            for effect in &plan.effects {
                if let core::Effect::Shred(_) = effect {
                    info!(case = %case_id, "case content destroyed after the requester's purge");
                }
            }
            if plan.received > 0 || plan.events.len() > plan.received {
                info!(case = %case_id, from = %from, events = plan.received, own = plan.events.len() - plan.received, state = record.state_code(), "events stored");
            }
        }
        Ok(plan)
    }

    /// Takes one of `member`'s new cases for today, if its daily quota has room (read from
    /// the index once a day, then counted here). The place is given back unless the case is
    /// opened. Over the quota, the member is told to retry, and its outbox does so until the
    /// next day.
    pub(super) fn may_open(&self, member: &Member) -> Result<Opening<'_>, Box<ExchangeResponse>> {
        let quota = self.inner.new_cases_per_day;
        let today = super::index::day_of(self.now());
        let mut opened = self.inner.opened_today.lock().expect("quota lock");
        let count = match opened.get(&member.jurisdiction) {
            Some((day, n)) if *day == today => *n,
            _ => {
                let n = super::index::opened_on(&self.inner.store, &member.jurisdiction, today)
                    .map_err(|e| Box::new(unavailable(&e, "a new request")))?;
                u32::try_from(n).unwrap_or(u32::MAX)
            }
        };
        if count >= quota {
            let mut warned = self.inner.quota_warned.lock().expect("quota lock");
            warned.retain(|(_, day)| *day == today);
            if warned.insert((member.jurisdiction.clone(), today)) {
                warn!(member = %member.jurisdiction, quota, "a member reached its daily quota of new requests; more are told to retry tomorrow");
            }
            opened.insert(member.jurisdiction.clone(), (today, count));
            return Err(Box::new(reject(
                RejectCode::Unavailable,
                format!(
                    "{} opened {quota} requests here today, its daily quota ([safeguards] max_new_cases_per_member_per_day); retry tomorrow",
                    member.jurisdiction
                ),
            )));
        }
        opened.insert(member.jurisdiction.clone(), (today, count + 1));
        Ok(Opening {
            cases: self,
            member: member.jurisdiction.clone(),
            day: today,
            kept: false,
        })
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
            Err(e) => return Some(unavailable(&e, "a receipt given before")),
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
                // case again (duplicates are harmless to the sender), as many as a reply holds.
                let events = core::within_reply(self.own_events(&r.case_id).unwrap_or_default());
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

/// A new case a member may open today, held while it is taken in: given back on drop unless
/// the case was opened (`keep`).
pub(super) struct Opening<'a> {
    cases: &'a Cases,
    member: comity_protocol::Jurisdiction,
    day: i64,
    kept: bool,
}

impl Opening<'_> {
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut opened = self
            .cases
            .inner
            .opened_today
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((day, n)) = opened.get_mut(&self.member)
            && *day == self.day
        {
            *n = n.saturating_sub(1);
        }
    }
}
