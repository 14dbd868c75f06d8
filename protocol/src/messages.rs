//! Messages between nodes: the signed bodies (a request, a receipt) and the wire types of the
//! `/comity/exchange/1.0.0` request/response protocol that carries them.
//!
//! Wire types are encoded with [`crate::to_canonical_cbor`] and decoded with
//! [`crate::from_cbor`] bounded by [`crate::limits::MAX_REQUEST_FRAME`] or
//! [`crate::limits::MAX_RESPONSE_FRAME`]. Enums are externally tagged with kebab-case names,
//! e.g. `{"submit": {...envelope...}}`.

use crate::envelope::{Signable, SignedEnvelope};
use crate::ids::{CaseId, Hash32, Jurisdiction, MessageId, Timestamp};
use crate::request::AssistanceRequest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A request as sent: the request itself plus the identifiers and time the sender gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMessage {
    pub message_id: MessageId,
    pub case_id: CaseId,
    pub sent_at: Timestamp,
    pub request: AssistanceRequest,
}

impl Signable for RequestMessage {
    const DOMAIN: &'static str = "comity/request/v1";
}

/// The executing node's signed statement that it received message `message_id` with body
/// hash `body_hash` at time `received_at`. The requester keeps it as proof of delivery that
/// it can show to a third party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub message_id: MessageId,
    pub case_id: CaseId,
    /// BLAKE3 of the received envelope's body bytes ([`SignedEnvelope::body_hash`]).
    pub body_hash: Hash32,
    pub receiver: Jurisdiction,
    pub received_at: Timestamp,
}

impl Signable for Receipt {
    const DOMAIN: &'static str = "comity/receipt/v1";
}

/// What one node asks of another over the exchange protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExchangeRequest {
    /// Deliver a signed [`RequestMessage`].
    Submit(SignedEnvelope),
}

/// The answer to an [`ExchangeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExchangeResponse {
    /// A signed [`Receipt`]: the message was received and stored.
    Receipt(SignedEnvelope),
    /// The message was not taken in; nothing was stored.
    Rejected(Rejection),
}

/// Why a node refused a message at the door. Refusals on the merits (the request is lawful
/// but declined) are case events, not rejections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub code: RejectCode,
    /// Human-readable explanation, at most [`crate::limits::MAX_TEXT`] bytes. Never contains
    /// the content of the request.
    pub detail: String,
}

/// Machine-readable reason for a [`Rejection`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectCode {
    /// The frame could not be decoded.
    Malformed,
    /// The frame exceeded the size limit.
    TooLarge,
    /// The signer is not in this node's roster.
    UnknownSigner,
    /// The signature did not verify.
    BadSignature,
    /// The request is addressed to another jurisdiction.
    Misaddressed,
    /// The request failed validation.
    Invalid,
    /// The node cannot take messages now (overloaded, shutting down); retry later.
    Unavailable,
}

impl RejectCode {
    /// Whether the sender may usefully send the same message again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RejectCode::Unavailable)
    }

    pub fn code(&self) -> &'static str {
        match self {
            RejectCode::Malformed => "malformed",
            RejectCode::TooLarge => "too-large",
            RejectCode::UnknownSigner => "unknown-signer",
            RejectCode::BadSignature => "bad-signature",
            RejectCode::Misaddressed => "misaddressed",
            RejectCode::Invalid => "invalid",
            RejectCode::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::sample_request;
    use crate::limits::{MAX_NAME, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, MAX_SELECTORS, MAX_TEXT};
    use crate::{Authority, DataCategory, Selector, from_cbor, to_canonical_cbor};
    use ed25519_dalek::SigningKey;

    fn request_message() -> RequestMessage {
        RequestMessage {
            message_id: MessageId::from_parts(1_790_000_000_000, 1),
            case_id: CaseId::from_parts(1_790_000_000_000, 2),
            sent_at: Timestamp::from_millis(1_790_000_000_000),
            request: sample_request(),
        }
    }

    #[test]
    fn exchange_messages_round_trip() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let env = SignedEnvelope::sign(&request_message(), &key).unwrap();
        let req = ExchangeRequest::Submit(env.clone());
        let bytes = to_canonical_cbor(&req).unwrap();
        assert_eq!(
            from_cbor::<ExchangeRequest>(&bytes, MAX_REQUEST_FRAME).unwrap(),
            req
        );
        let opened: RequestMessage = env.open(&key.verifying_key()).unwrap();
        assert_eq!(opened, request_message());

        let rejected = ExchangeResponse::Rejected(Rejection {
            code: RejectCode::UnknownSigner,
            detail: "signer not in roster".into(),
        });
        let json = serde_json::to_value(&rejected).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"rejected": {"code": "unknown-signer", "detail": "signer not in roster"}})
        );
        let bytes = to_canonical_cbor(&rejected).unwrap();
        assert_eq!(
            from_cbor::<ExchangeResponse>(&bytes, MAX_RESPONSE_FRAME).unwrap(),
            rejected
        );
        let unknown = serde_json::json!({"fetch": {}});
        assert!(serde_json::from_value::<ExchangeRequest>(unknown).is_err());
    }

    /// The limits must fit each other: the largest request validation allows, signed and
    /// wrapped, still fits in a request frame, and a receipt fits in a response frame.
    #[test]
    fn largest_valid_request_fits_in_a_frame() {
        let long = |n: usize| "x".repeat(n);
        let mut r = sample_request();
        let authority = Authority {
            name: long(MAX_NAME),
            role: long(MAX_NAME),
            contact: long(MAX_NAME),
        };
        r.issuing_authority = authority.clone();
        r.validating_authority = Some(authority);
        r.offence.description = long(MAX_TEXT);
        r.offence.max_penalty_months = Some(120);
        r.necessity = long(MAX_TEXT);
        r.purpose = long(MAX_TEXT);
        r.confidentiality.delay_user_notification = true;
        r.confidentiality.reason = Some(long(MAX_TEXT));
        r.data_categories = DataCategory::ALL.to_vec();
        r.selectors = (0..MAX_SELECTORS)
            .map(|i| Selector::Account {
                provider: format!("{i:03}{}", long(MAX_NAME - 3)),
                account: long(MAX_NAME),
            })
            .collect();
        assert_eq!(r.validate(), Ok(()));
        let key = SigningKey::from_bytes(&[1; 32]);
        let message = RequestMessage {
            request: r,
            ..request_message()
        };
        let env = SignedEnvelope::sign(&message, &key).unwrap();
        let frame = to_canonical_cbor(&ExchangeRequest::Submit(env.clone())).unwrap();
        assert!(frame.len() <= MAX_REQUEST_FRAME, "{} bytes", frame.len());

        let receipt = Receipt {
            message_id: message.message_id,
            case_id: message.case_id,
            body_hash: env.body_hash(),
            receiver: "DE-BUNDESAMT12".parse().unwrap(),
            received_at: Timestamp::from_millis(i64::MAX),
        };
        let env = SignedEnvelope::sign(&receipt, &key).unwrap();
        let frame = to_canonical_cbor(&ExchangeResponse::Receipt(env)).unwrap();
        assert!(frame.len() <= MAX_RESPONSE_FRAME);
    }
}
