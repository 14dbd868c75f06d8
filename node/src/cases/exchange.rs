//! The executing side of `/comity/exchange/1.0.0`: check, store, receipt.
//!
//! A request is answered with a signed receipt only after the case and the receipt are synced
//! to disk together; a message id seen before gets the original receipt back and is not
//! processed again. Anything wrong gets a `Rejection` that says what, and stores nothing.

use std::sync::Arc;
use std::time::Duration;

use comity_protocol::{
    ExchangeRequest, ExchangeResponse, MessageId, Receipt, RejectCode, Rejection, RequestMessage,
    SignedEnvelope, Timestamp, from_cbor, limits, to_canonical_cbor,
};
use libp2p::PeerId;
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

use super::Cases;
use super::record::{CaseRecord, CaseState, Delivery, Role, case_key, message_key};
use crate::network::InboundRequest;
use crate::store::{Batch, Cf, StoreError};

/// Inbound requests handled at once; more wait in the network's bounded queue.
const MAX_CONCURRENT: usize = 256;

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

fn reject(code: RejectCode, detail: impl Into<String>) -> ExchangeResponse {
    ExchangeResponse::Rejected(Rejection {
        code,
        detail: detail.into(),
    })
}

impl Cases {
    /// Handles one request frame from `peer`; always returns something to answer.
    pub(super) async fn receive(&self, peer: PeerId, frame: &[u8]) -> ExchangeResponse {
        let response = self.receive_inner(peer, frame).await;
        if let ExchangeResponse::Rejected(r) = &response {
            // Details of malformed or invalid requests may quote their contents (a selector
            // that fails validation): the requester gets them, the log only the code.
            let detail = match r.code {
                RejectCode::Malformed | RejectCode::Invalid => "(withheld from logs)",
                _ => r.detail.as_str(),
            };
            warn!(%peer, code = %r.code, reason = detail, bytes = frame.len(), "refused exchange request; nothing stored");
        }
        response
    }

    async fn receive_inner(&self, peer: PeerId, frame: &[u8]) -> ExchangeResponse {
        let Some((member, key)) = self.inner.roster.by_peer(&peer) else {
            // The allow-list refuses such connections; this is the second lock on the door.
            return reject(
                RejectCode::UnknownSigner,
                "peer is not a member of the bloc roster",
            );
        };
        let request = match from_cbor::<ExchangeRequest>(frame, limits::MAX_REQUEST_FRAME) {
            Ok(r) => r,
            Err(e) => return reject(RejectCode::Malformed, format!("cannot decode request: {e}")),
        };
        let ExchangeRequest::Submit(envelope) = request;
        if envelope.signer != *key {
            return reject(
                RejectCode::UnknownSigner,
                format!(
                    "envelope signed by {}, but the connection is from {} ({})",
                    envelope.signer, member.jurisdiction, peer
                ),
            );
        }
        let verifying = match key.verifying_key() {
            Ok(k) => k,
            Err(e) => return reject(RejectCode::UnknownSigner, e.to_string()),
        };
        let message: RequestMessage = match envelope.open(&verifying) {
            Ok(m) => m,
            Err(comity_protocol::EnvelopeError::BadSignature) => {
                return reject(
                    RejectCode::BadSignature,
                    "signature does not verify with the sender's roster key",
                );
            }
            Err(e) => return reject(RejectCode::Malformed, e.to_string()),
        };
        let req = &message.request;
        if req.requesting != member.jurisdiction || req.executing != self.inner.jurisdiction {
            return reject(
                RejectCode::Misaddressed,
                format!(
                    "request from {} to {} arrived from {} at {}",
                    req.requesting, req.executing, member.jurisdiction, self.inner.jurisdiction
                ),
            );
        }
        if let Err(problems) = req.validate() {
            return reject(RejectCode::Invalid, problems.to_string());
        }
        self.store_received(message, envelope).await
    }

    async fn store_received(
        &self,
        message: RequestMessage,
        envelope: SignedEnvelope,
    ) -> ExchangeResponse {
        let body_hash = envelope.body_hash();
        let message_id = message.message_id;
        let case_id = message.case_id;
        // Two attempts of the same message may race; the store's guard lets one win and the
        // other is answered from what the winner stored.
        for _ in 0..50 {
            if let Some(response) = self.replay_receipt(&message_id, &body_hash) {
                return response;
            }
            let _guard = self.lock(&case_id).lock().await;
            match self.get(&case_id) {
                Ok(Some(existing)) if existing.message_id != Some(message_id) => {
                    return reject(
                        RejectCode::Malformed,
                        format!("case id {case_id} is already in use by another message"),
                    );
                }
                Ok(_) => {}
                Err(e) => return reject(RejectCode::Unavailable, e.to_string()),
            }
            let receipt = Receipt {
                message_id,
                case_id,
                body_hash,
                receiver: self.inner.jurisdiction.clone(),
                received_at: Timestamp::now(),
            };
            let receipt = match SignedEnvelope::sign(&receipt, self.inner.identity.signing_key()) {
                Ok(r) => r,
                Err(e) => return reject(RejectCode::Unavailable, e.to_string()),
            };
            let record = CaseRecord {
                case_id,
                role: Role::Executing,
                counterparty: message.request.requesting.clone(),
                state: CaseState::Received,
                created_at: message.sent_at,
                updated_at: Timestamp::now(),
                request: message.request.clone(),
                message_id: Some(message_id),
                envelope: Some(envelope.clone()),
                receipt: Some(receipt.clone()),
                delivery: Delivery::default(),
            };
            let mut batch = Batch::new();
            batch.require_absent(Cf::Inbox, message_key(&message_id));
            batch.put(Cf::Inbox, message_key(&message_id), receipt.to_bytes());
            batch.put(Cf::Cases, case_key(&case_id), record.encode());
            match self.inner.store.commit(batch).await {
                Ok(()) => {
                    info!(case = %case_id, message = %message_id, from = %record.counterparty, "request received and receipted");
                    return ExchangeResponse::Receipt(receipt);
                }
                Err(StoreError::Exists(_)) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                Err(e) => {
                    return reject(
                        RejectCode::Unavailable,
                        format!("the executing node could not store the request, retry later: {e}"),
                    );
                }
            }
        }
        reject(RejectCode::Unavailable, "message is being processed; retry")
    }

    /// The receipt we already gave for `message_id`, if any.
    fn replay_receipt(
        &self,
        message_id: &MessageId,
        body_hash: &comity_protocol::Hash32,
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
                Some(ExchangeResponse::Receipt(receipt))
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
