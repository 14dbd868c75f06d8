//! Messages between nodes: the signed bodies (an event push, a receipt) and the wire types of
//! the `/comity/exchange/2.0.0` request/response protocol that carries them.
//!
//! Everything that travels between two nodes about a case is a case event (see
//! [`crate::caselog`]); the genesis event carries the assistance request itself. Events travel
//! in signed pushes, each acknowledged by a signed receipt, and a node that has been away pulls
//! what it lacks.
//!
//! Wire types are encoded with [`crate::to_canonical_cbor`] and decoded with
//! [`crate::from_cbor`] bounded by [`crate::limits::MAX_REQUEST_FRAME`] or
//! [`crate::limits::MAX_RESPONSE_FRAME`]. Enums are externally tagged with kebab-case names,
//! e.g. `{"push": {...envelope...}}`.

use std::collections::BTreeMap;

use crate::envelope::{Signable, SignedEnvelope};
use crate::ids::{CaseId, Hash32, Jurisdiction, MessageId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One delivery of case events from the node that sends it: the unit the outbox retries and
/// the receiver acknowledges with a [`Receipt`]. Each event inside is signed by its own author;
/// the push is signed by the sending node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPush {
    pub message_id: MessageId,
    pub case_id: CaseId,
    pub sent_at: Timestamp,
    /// Signed `CaseEvent`s of `case_id`, in an order the receiver can insert one by one.
    pub events: Vec<SignedEnvelope>,
}

impl Signable for EventPush {
    const CONTENT_TYPE: &'static str = "application/comity.push.v1+cbor";
}

/// What a replica of one case already holds: per author, the highest contiguous sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseHave {
    pub case_id: CaseId,
    pub have: BTreeMap<Jurisdiction, u64>,
}

/// A request for the events the asking node lacks: of the cases it lists, those beyond what it
/// has, and of every other case the two nodes share, all of them. With `range`, only the
/// shared cases whose ids fall in it are considered: a node sharing more cases than one frame
/// can list pulls range by range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub cases: Vec<CaseHave>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<CaseRange>,
}

/// Case ids from `from` (inclusive) to `to` (exclusive); an open end has no bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRange {
    pub from: Option<CaseId>,
    pub to: Option<CaseId>,
}

impl CaseRange {
    pub fn contains(&self, id: &CaseId) -> bool {
        self.from.as_ref().is_none_or(|from| id >= from)
            && self.to.as_ref().is_none_or(|to| id < to)
    }

    /// Ranges that cover every case id, each holding at most `per_range` of the sorted `ids`.
    pub fn covering(ids: &[CaseId], per_range: usize) -> Vec<CaseRange> {
        let per_range = per_range.max(1);
        let starts: Vec<CaseId> = ids
            .iter()
            .skip(per_range)
            .step_by(per_range)
            .copied()
            .collect();
        let mut ranges = Vec::with_capacity(starts.len() + 1);
        let mut from = None;
        for start in starts {
            ranges.push(CaseRange {
                from,
                to: Some(start),
            });
            from = Some(start);
        }
        ranges.push(CaseRange { from, to: None });
        ranges
    }
}

/// Events answering a [`PullRequest`]. `more` says the page was cut at the frame limit: pull
/// again (with the new version vectors) for the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsPage {
    pub events: Vec<SignedEnvelope>,
    pub more: bool,
    /// The answering node's clock when it answered: the asker measures the member's clock
    /// from it (a member pulls on every connection, so clocks are compared on connect). Not
    /// signed; the connection is the member's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<crate::Timestamp>,
}

/// The executing node's signed statement that it received message `message_id` with body
/// hash `body_hash` at time `received_at`. The requester keeps it as proof of delivery that
/// it can show to a third party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    const CONTENT_TYPE: &'static str = "application/comity.receipt.v1+cbor";
}

/// What one node asks of another over the exchange protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExchangeRequest {
    /// Deliver a signed [`EventPush`]; answered with a [`Receipt`] or a rejection.
    Push(SignedEnvelope),
    /// Ask for missing events; answered with an [`EventsPage`]. The asker is the connected,
    /// roster-admitted peer: the answer only ever holds cases it is party to.
    Pull(PullRequest),
    /// Ask for the member's signed [`crate::policy::PolicySummary`], to pre-check a draft.
    Policy,
    /// Ask a member to prove that its audit log at checkpoint size `old` is a prefix of its
    /// log at checkpoint size `new` (witnessing).
    Consistency { old: u64, new: u64 },
    /// Ask for the bloc configurations after version `have`, and the open proposals
    /// (answered with a [`BlocPage`]).
    Bloc { have: u64 },
}

impl ExchangeRequest {
    /// The name of the request in `frame` (`push`, `pull`, `policy`, `consistency`, `bloc`),
    /// read from its first bytes without decoding the rest: what a budget needs to know before
    /// paying for the decoding. `None` when the frame does not start as a request does.
    pub fn peek_kind(frame: &[u8]) -> Option<&str> {
        peek_variant(frame).map(|(name, _)| name)
    }
}

/// The variant name an externally tagged enum in canonical CBOR starts with (`push`,
/// `chunk`, `rejected`…), read without decoding the rest.
pub fn peek_variant_name(frame: &[u8]) -> Option<&str> {
    peek_variant(frame).map(|(name, _)| name)
}

/// The variant name an externally tagged enum in canonical CBOR starts with, and the bytes
/// after it (the variant's content). A variant with content is a map of one entry keyed by
/// its name; a unit variant is its name alone. Names are short texts (one header byte).
fn peek_variant(frame: &[u8]) -> Option<(&str, &[u8])> {
    match frame.first()? {
        0xa1 => short_text(&frame[1..]),
        _ => short_text(frame),
    }
}

/// A text of at most 23 bytes (one header byte) at the start of `bytes`, and what follows.
fn short_text(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&head, rest) = bytes.split_first()?;
    let len = usize::from(head & 0x1f);
    if head >> 5 != 3 || len > 23 {
        return None;
    }
    let text = std::str::from_utf8(rest.get(..len)?).ok()?;
    Some((text, &rest[len..]))
}

impl ExchangeResponse {
    /// What the response in `frame` is (`receipt`, `rejected`, `events`, …) and, for a
    /// rejection, its code, read from the first bytes without decoding the rest: what the
    /// node's operational records keep of an answer (never its content).
    pub fn peek_outcome(frame: &[u8]) -> Option<(&str, Option<&str>)> {
        let (kind, rest) = peek_variant(frame)?;
        if kind != "rejected" {
            return Some((kind, None));
        }
        // A `Rejection` is a map of two entries; canonical order puts `code` first.
        let code = rest
            .split_first()
            .filter(|(head, _)| **head == 0xa2)
            .and_then(|(_, fields)| short_text(fields))
            .filter(|(key, _)| *key == "code")
            .and_then(|(_, value)| short_text(value))
            .map(|(code, _)| code);
        Some((kind, code))
    }
}

/// The answer to an [`ExchangeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExchangeResponse {
    /// A signed [`Receipt`]: the message was received and stored.
    Receipt(Receipted),
    /// The message was not taken in; nothing was stored.
    Rejected(Rejection),
    /// Events for a [`PullRequest`].
    Events(EventsPage),
    /// The member's signed policy summary; `None` when it publishes none.
    Policy(Option<SignedEnvelope>),
    /// A consistency proof between two of the member's checkpoints.
    Consistency(crate::merkle::ConsistencyProof),
    /// Bloc configurations for a [`ExchangeRequest::Bloc`].
    Bloc(BlocPage),
}

/// Bloc configurations a member holds beyond the asker's version, oldest first, and the
/// proposals it holds for the next one. Each is a `COSE_Sign` ([`crate::MultiSigned`]) that
/// the asker verifies from its own trust anchor; nothing here is trusted as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocPage {
    /// The answering member's current version and its hash.
    pub head: Option<(u64, crate::Hash32)>,
    pub configs: Vec<serde_bytes::ByteBuf>,
    pub proposals: Vec<serde_bytes::ByteBuf>,
    /// More configurations follow: ask again from the last one.
    pub more: bool,
}

/// The answer to a push that was taken in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipted {
    /// The signed [`Receipt`] of the push.
    pub receipt: SignedEnvelope,
    /// Events the receiver wrote in answer (its signed `received` statement for a new
    /// request), so that the sender has them at once instead of by a later push or pull.
    pub events: Vec<SignedEnvelope>,
}

/// Why a node refused a message at the door. Refusals on the merits (the request is lawful
/// but declined) are case events, not rejections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub code: RejectCode,
    /// Human-readable explanation, at most [`crate::limits::MAX_TEXT`] bytes. Never contains
    /// the content of the request.
    pub detail: String,
}

/// Machine-readable reason for a [`Rejection`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

    #[test]
    fn a_requests_kind_is_read_from_its_first_bytes() {
        let requests = [
            (ExchangeRequest::Policy, "policy"),
            (ExchangeRequest::Bloc { have: 7 }, "bloc"),
            (
                ExchangeRequest::Consistency { old: 1, new: 2 },
                "consistency",
            ),
            (
                ExchangeRequest::Pull(PullRequest {
                    cases: Vec::new(),
                    range: None,
                }),
                "pull",
            ),
        ];
        for (request, kind) in requests {
            let frame = to_canonical_cbor(&request).unwrap();
            assert_eq!(ExchangeRequest::peek_kind(&frame), Some(kind));
        }
        for garbage in [
            &[][..],
            &[0xa1],
            &[0xa1, 0x78, 0x40],
            &[0x00, 0x01],
            &[0x64, b'p'],
        ] {
            assert_eq!(ExchangeRequest::peek_kind(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn a_responses_outcome_and_refusal_code_are_read_from_its_first_bytes() {
        for code in [
            RejectCode::Malformed,
            RejectCode::TooLarge,
            RejectCode::UnknownSigner,
            RejectCode::BadSignature,
            RejectCode::Misaddressed,
            RejectCode::Invalid,
            RejectCode::Unavailable,
        ] {
            let frame = to_canonical_cbor(&ExchangeResponse::Rejected(Rejection {
                code,
                detail: "a long explanation that is never read ahead".into(),
            }))
            .unwrap();
            assert_eq!(
                ExchangeResponse::peek_outcome(&frame),
                Some(("rejected", Some(code.code())))
            );
        }
        let frame = to_canonical_cbor(&ExchangeResponse::Policy(None)).unwrap();
        assert_eq!(
            ExchangeResponse::peek_outcome(&frame),
            Some(("policy", None))
        );
        assert_eq!(ExchangeResponse::peek_outcome(&[0xa1, 0x01]), None);
        // A rejection whose fields are not where they belong: the kind, without a code.
        assert_eq!(
            ExchangeResponse::peek_outcome(&[
                0xa1, 0x68, b'r', b'e', b'j', b'e', b'c', b't', b'e', b'd', 0x00
            ]),
            Some(("rejected", None))
        );
    }
    use crate::caselog::{CaseEvent, EventKind};
    use crate::examples::sample_request;
    use crate::limits::{MAX_NAME, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, MAX_SELECTORS, MAX_TEXT};
    use crate::{Authority, DataCategory, Selector, from_cbor, to_canonical_cbor};
    use ed25519_dalek::SigningKey;

    fn genesis(request: crate::AssistanceRequest, key: &SigningKey) -> SignedEnvelope {
        let event = CaseEvent {
            case_id: CaseId::from_parts(1_790_000_000_000, 2),
            author: request.requesting.clone(),
            seq: 1,
            links: vec![],
            at: Timestamp::from_millis(1_790_000_000_000),
            kind: EventKind::Submitted {
                request: Box::new(request),
                approval: crate::examples::sample_approval(),
            },
        };
        SignedEnvelope::sign(&event, key).unwrap()
    }

    fn push(events: Vec<SignedEnvelope>) -> EventPush {
        EventPush {
            message_id: MessageId::from_parts(1_790_000_000_000, 1),
            case_id: CaseId::from_parts(1_790_000_000_000, 2),
            sent_at: Timestamp::from_millis(1_790_000_000_000),
            events,
        }
    }

    #[test]
    fn exchange_messages_round_trip() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let message = push(vec![genesis(sample_request(), &key)]);
        let env = SignedEnvelope::sign(&message, &key).unwrap();
        let req = ExchangeRequest::Push(env.clone());
        let bytes = to_canonical_cbor(&req).unwrap();
        assert_eq!(
            from_cbor::<ExchangeRequest>(&bytes, MAX_REQUEST_FRAME).unwrap(),
            req
        );
        let opened: EventPush = env.open(&key.verifying_key()).unwrap();
        assert_eq!(opened, message);

        let pull = ExchangeRequest::Pull(PullRequest {
            cases: vec![CaseHave {
                case_id: message.case_id,
                have: [("FR".parse().unwrap(), 3)].into_iter().collect(),
            }],
            range: None,
        });
        let bytes = to_canonical_cbor(&pull).unwrap();
        assert_eq!(
            from_cbor::<ExchangeRequest>(&bytes, MAX_REQUEST_FRAME).unwrap(),
            pull
        );

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

    #[test]
    fn case_ranges_partition_every_id_with_bounded_lists() {
        let mut ids: Vec<CaseId> = (0..10).map(|_| CaseId::new()).collect();
        ids.sort();
        for per in [1, 3, 4, 10, 11] {
            let ranges = CaseRange::covering(&ids, per);
            for id in &ids {
                assert_eq!(ranges.iter().filter(|r| r.contains(id)).count(), 1, "{per}");
            }
            for r in &ranges {
                assert!(ids.iter().filter(|id| r.contains(id)).count() <= per);
            }
            assert!(ranges.first().unwrap().from.is_none());
            assert!(ranges.last().unwrap().to.is_none());
        }
        // No shared case yet: one range, everything.
        assert_eq!(
            CaseRange::covering(&[], 5),
            vec![CaseRange {
                from: None,
                to: None
            }]
        );
        // The wire form of a pull without a range is what it was.
        let plain = to_canonical_cbor(&PullRequest {
            cases: vec![],
            range: None,
        })
        .unwrap();
        assert!(!plain.windows(5).any(|w| w == b"range"));
    }

    /// The limits must fit each other: the largest request validation allows, as a signed
    /// genesis in a signed push, still fits in a request frame, and a receipt in a response.
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
        let message = push(vec![genesis(r, &key)]);
        let env = SignedEnvelope::sign(&message, &key).unwrap();
        let frame = to_canonical_cbor(&ExchangeRequest::Push(env.clone())).unwrap();
        assert!(frame.len() <= MAX_REQUEST_FRAME, "{} bytes", frame.len());
        // And it decodes back: byte strings past ciborium's 4 KiB scratch buffer included.
        let back: ExchangeRequest = crate::from_cbor(&frame, MAX_REQUEST_FRAME).unwrap();
        let ExchangeRequest::Push(back) = back else {
            panic!("not a push")
        };
        assert_eq!(back.body, env.body);
        let opened: EventPush = back.open(&key.verifying_key()).unwrap();
        assert_eq!(opened.events.len(), 1);

        let receipt = Receipt {
            message_id: message.message_id,
            case_id: message.case_id,
            body_hash: env.body_hash(),
            receiver: "DE-BUNDESAMT12".parse().unwrap(),
            received_at: Timestamp::from_millis(i64::MAX),
        };
        let env = SignedEnvelope::sign(&receipt, &key).unwrap();
        let frame = to_canonical_cbor(&ExchangeResponse::Receipt(Receipted {
            receipt: env,
            events: vec![],
        }))
        .unwrap();
        assert!(frame.len() <= MAX_RESPONSE_FRAME);
    }
}
