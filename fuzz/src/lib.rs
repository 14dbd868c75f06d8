//! Fuzz targets: one function per decoder that takes bytes from a peer or from a file.
//!
//! Each takes arbitrary bytes, decodes them as the node or the verifier would, and checks what
//! must hold of anything that decodes (no panic anywhere; what decodes re-encodes to the same
//! bytes where the format has one form; two readers of one format agree). A broken property
//! panics, which libFuzzer reports as a crash with the input that caused it.
//!
//! The functions are shared by the libFuzzer programs in `fuzz_targets/` and by
//! `tests/corpus.rs`, which runs the checked-in corpus and every past crash as a plain test.

use comity_protocol::audit::{Checkpoint, Cosignature};
use comity_protocol::bloc::{self, BlocConfig, MemberCard};
use comity_protocol::bundle::{Verifier, part_len};
use comity_protocol::evidence::{EvidenceManifest, EvidenceRequest, EvidenceResponse};
use comity_protocol::report::{Period, PublishedReport};
use comity_protocol::{
    CaseEvent, CaseLog, EventPush, ExchangeRequest, ExchangeResponse, Jurisdiction, MultiSigned,
    SignedEnvelope, canonical, from_canonical_cbor, from_cbor, limits, to_canonical_cbor,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fuzz target: arbitrary bytes in, a panic if a property breaks.
pub type Target = fn(&[u8]);

/// Every target, by name: the fuzz programs, the corpus directories and the test all use it.
pub const TARGETS: &[(&str, Target)] = &[
    ("canonical", canonical),
    ("exchange_request", exchange_request),
    ("exchange_response", exchange_response),
    ("envelope", envelope),
    ("case_event", case_event),
    ("evidence", evidence),
    ("gossip", gossip),
    ("bloc", bloc),
    ("policy_file", policy_file),
    ("request_file", request_file),
    ("node_config", node_config),
    ("bundle", bundle),
];

/// Decodes `bytes` as `T` the way peers' messages are decoded; if that succeeds, the value's
/// canonical encoding must be read back by the strict reader (what signed bodies are read
/// with) as the same value, and the strict reader must take `bytes` as that value or not at
/// all.
fn round_trip<T>(bytes: &[u8], max: usize) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = from_cbor(bytes, max).ok()?;
    let again = to_canonical_cbor(&value).expect("a decoded value encodes");
    let back: T = from_canonical_cbor(&again, usize::MAX)
        .expect("a value's canonical encoding is read back strictly");
    assert_eq!(
        back, value,
        "a value changed through its canonical encoding"
    );
    if let Ok(strict) = from_canonical_cbor::<T>(bytes, max) {
        assert_eq!(strict, value, "the two readers read different values");
    }
    Some(value)
}

/// Envelope bodies read as `T` strictly, as `open` reads them after the signature check.
fn body<T: Serialize + DeserializeOwned>(envelope: &SignedEnvelope) -> Option<T> {
    from_canonical_cbor(&envelope.body, limits::MAX_REQUEST_FRAME).ok()
}

/// The in-place canonical check against a second reader: whatever it accepts, ciborium reads
/// as one item that the encoder writes back byte for byte.
pub fn canonical(data: &[u8]) {
    let in_place = canonical::check_canonical(data);
    if in_place.is_ok() {
        let mut rest = data;
        let value: ciborium::Value = ciborium::from_reader(&mut rest)
            .expect("what the canonical check accepts is one CBOR item");
        assert!(
            rest.is_empty(),
            "the canonical check accepted trailing bytes"
        );
        let mut again = Vec::new();
        ciborium::into_writer(&value, &mut again).expect("a decoded value encodes");
        assert_eq!(
            again, data,
            "the canonical check accepted a non-shortest form"
        );
    }
    let strict = from_canonical_cbor::<ciborium::Value>(data, usize::MAX);
    assert_eq!(
        strict.is_ok(),
        in_place.is_ok(),
        "the two strict readers disagree"
    );
}

/// An exchange request as the exchange service reads it, down to the events of a push.
pub fn exchange_request(data: &[u8]) {
    let Some(request) = round_trip::<ExchangeRequest>(data, limits::MAX_REQUEST_FRAME) else {
        return;
    };
    // The budgets read a request's kind before decoding it: never another kind, and always
    // the kind of a request in its canonical form.
    let kind = match &request {
        ExchangeRequest::Push(_) => "push",
        ExchangeRequest::Pull(_) => "pull",
        ExchangeRequest::Policy => "policy",
        ExchangeRequest::Consistency { .. } => "consistency",
        ExchangeRequest::Bloc { .. } => "bloc",
    };
    let peeked = ExchangeRequest::peek_kind(data);
    assert!(
        peeked.is_none_or(|p| p == kind),
        "peeked {peeked:?} of a {kind}"
    );
    if from_canonical_cbor::<ExchangeRequest>(data, limits::MAX_REQUEST_FRAME).is_ok() {
        assert_eq!(
            peeked,
            Some(kind),
            "the kind of a canonical request is not peeked"
        );
    }
    if let ExchangeRequest::Push(envelope) = request {
        let _ = envelope.verify_signature();
        if let Some(push) = body::<EventPush>(&envelope) {
            for event in &push.events {
                let _ = event.verify_signature();
                let _ = body::<CaseEvent>(event);
            }
        }
    }
}

/// An exchange response as the outbox, the puller, the pre-check and the witness read it.
pub fn exchange_response(data: &[u8]) {
    let Some(response) = round_trip::<ExchangeResponse>(data, limits::MAX_RESPONSE_FRAME) else {
        return;
    };
    if let ExchangeResponse::Events(page) = response {
        for envelope in page.events.iter() {
            let _ = body::<CaseEvent>(envelope);
        }
    }
}

/// COSE objects: a decoded object has exactly the bytes it came from.
pub fn envelope(data: &[u8]) {
    if let Ok(envelope) = SignedEnvelope::from_bytes(data, limits::MAX_REQUEST_FRAME) {
        assert_eq!(envelope.to_bytes(), data, "COSE_Sign1 has a second form");
        let _ = envelope.verify_signature();
    }
    if let Ok(signed) = MultiSigned::from_bytes(data, limits::MAX_REQUEST_FRAME) {
        assert_eq!(signed.to_bytes(), data, "COSE_Sign has a second form");
        let _ = signed.verify_signatures();
    }
}

/// Case events: one decoded alone, or a list of signed events folded into a case log as a
/// replica would (signatures aside, so that the fuzzer reaches the rules behind them).
pub fn case_event(data: &[u8]) {
    let _ = round_trip::<CaseEvent>(data, limits::MAX_REQUEST_FRAME);
    let Ok(events) = from_cbor::<Vec<SignedEnvelope>>(data, limits::MAX_REQUEST_FRAME) else {
        return;
    };
    let Some(first) = events.first().and_then(body::<CaseEvent>) else {
        return;
    };
    let mut log = CaseLog::new(first.case_id);
    for envelope in events {
        let _ = log.insert_stored(envelope);
    }
    let view = log.view();
    let _ = log.events_after(&Default::default());
    let _ = (view, log.heads(), log.version_vector());
}

/// Evidence protocol messages, the chunk fast path against the plain decoder, and manifests.
pub fn evidence(data: &[u8]) {
    let _ = round_trip::<EvidenceRequest>(data, limits::MAX_REQUEST_FRAME);
    let response =
        round_trip::<EvidenceResponse>(data, comity_protocol::evidence::MAX_EVIDENCE_RESPONSE);
    if let Some(range) = comity_protocol::evidence::chunk_in_frame(data) {
        match response {
            Some(EvidenceResponse::Chunk(bytes)) => {
                assert_eq!(&data[range], &bytes[..], "the fast path read other bytes")
            }
            other => panic!("the fast path took a frame the decoder reads as {other:?}"),
        }
    }
    if let Some(manifest) = round_trip::<EvidenceManifest>(data, limits::MAX_REQUEST_FRAME)
        && manifest.problem(16 << 30, 1 << 20).is_none()
    {
        for index in 0..manifest.total_bytes.div_ceil(1 << 20).min(4) {
            let _ = manifest.sealed_chunk_len(index);
        }
        let _ = manifest.sealed_total();
    }
}

/// What members publish on the bloc's topics: reports (with their period), checkpoints and
/// cosignatures, each inside a signed envelope.
pub fn gossip(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(period) = text.parse::<Period>()
    {
        assert_eq!(period.name, text);
        assert!(period.from < period.to, "a period must not be empty");
    }
    let Ok(envelope) = SignedEnvelope::from_bytes(data, limits::MAX_RESPONSE_FRAME) else {
        let _ = round_trip::<PublishedReport>(data, limits::MAX_RESPONSE_FRAME);
        return;
    };
    if let Some(report) = body::<PublishedReport>(&envelope)
        && let Some(period) = report.report.period
        && let Ok(parsed) = period.name.parse::<Period>()
    {
        let _ = comity_node::report::keeps_period(&parsed, report.issued_at);
    }
    let _ = body::<Checkpoint>(&envelope);
    let _ = body::<Cosignature>(&envelope);
}

/// Bloc configurations (signed by several members), member cards and member files.
pub fn bloc(data: &[u8]) {
    if let Ok(signed) = MultiSigned::from_bytes(data, limits::MAX_REQUEST_FRAME) {
        if let Ok(config) = bloc::peek(&signed) {
            let _ = config.settings.evidence.problem();
            let _ = config.check_shape();
        }
        let _ = bloc::verify_genesis(&signed, &bloc::config_hash(&signed));
    }
    if let Some(config) = round_trip::<BlocConfig>(data, limits::MAX_REQUEST_FRAME) {
        let _ = config.check_shape();
    }
    let _ = MemberCard::open(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = comity_node::bloc::files::parse_member_file(text);
    }
}

/// A policy file as `comity policy check` and the node read it.
pub fn policy_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = comity_node::policy::parse(text);
    }
}

/// A request drafted from a file, JSON or TOML, then validated.
pub fn request_file(data: &[u8]) {
    use comity_node::cli::{RequestFormat, parse_request};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let requesting: Jurisdiction = "FR".parse().expect("FR is a jurisdiction");
    for format in [RequestFormat::Json, RequestFormat::Toml] {
        if let Ok(request) = parse_request(text, format, requesting.clone()) {
            let _ = request.validate();
            let bytes = to_canonical_cbor(&request).expect("a request encodes");
            let _ = from_canonical_cbor::<comity_protocol::AssistanceRequest>(&bytes, usize::MAX)
                .expect("a request's canonical encoding decodes");
        }
    }
}

/// The node's configuration file.
pub fn node_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = toml::from_str::<comity_node::config::Config>(text)
    {
        let written = config.to_commented_toml();
        let _ = toml::from_str::<comity_node::config::Config>(&written)
            .expect("a configuration writes back as a readable file");
    }
}

/// A court bundle, read part by part as `comity-verify bundle` reads a file.
pub fn bundle(data: &[u8]) {
    let mut verifier = Verifier::new(false);
    let mut rest = data;
    let mut first = true;
    while let Some((len, head)) = part_len(rest) {
        let Some(part) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(head..head.checked_add(len)?))
        else {
            verifier.unreadable("a part runs past the end".into());
            break;
        };
        if first {
            first = false;
            if !verifier.header(part) {
                break;
            }
        } else {
            verifier.part(part);
        }
        rest = &rest[head + part.len()..];
    }
    if first {
        verifier.header(&[]);
    }
    let report = verifier.finish();
    let _ = report.ok();
}
