//! Every kind of object Comity signs round-trips through its COSE form, is refused when
//! presented as another kind, and has content types that differ from each other.

use comity_protocol::audit::{Checkpoint, Cosignature};
use comity_protocol::evidence::EvidenceManifest;
use comity_protocol::policy::{Policy, PolicySummary};
use comity_protocol::report::{PublishedReport, Report};
use comity_protocol::{
    CaseEvent, CaseId, EnvelopeError, EventKind, EventPush, Hash32, Jurisdiction, MessageId,
    Receipt, Signable, SignedEnvelope, Timestamp,
};
use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

fn j(code: &str) -> Jurisdiction {
    code.parse().unwrap()
}

fn at() -> Timestamp {
    Timestamp::from_millis(1_790_000_000_000)
}

fn case() -> CaseId {
    CaseId::from_parts(1_790_000_000_000, 7)
}

/// Signs, encodes, decodes and opens `body`; then presents it as a `Receipt` (or, for a
/// receipt, as a `Checkpoint`) and checks that the content type refuses it.
fn round_trip<T: Signable + PartialEq + Debug + DeserializeOwned>(body: T) -> String {
    let key = SigningKey::from_bytes(&[3; 32]);
    let envelope = SignedEnvelope::sign(&body, &key).unwrap();
    let bytes = envelope.to_bytes();
    let back = SignedEnvelope::from_bytes(&bytes, 1 << 20).unwrap();
    assert_eq!(back, envelope);
    assert_eq!(back.to_bytes(), bytes, "one byte form");
    assert_eq!(back.open::<T>(&key.verifying_key()).unwrap(), body);
    let swapped = if T::CONTENT_TYPE == Receipt::CONTENT_TYPE {
        back.open::<Checkpoint>(&key.verifying_key()).map(|_| ())
    } else {
        back.open::<Receipt>(&key.verifying_key()).map(|_| ())
    };
    assert!(
        matches!(swapped, Err(EnvelopeError::WrongContentType { .. })),
        "{} accepted as another kind: {swapped:?}",
        T::CONTENT_TYPE
    );
    T::CONTENT_TYPE.to_owned()
}

#[test]
fn every_signed_kind_round_trips_and_refuses_to_pass_as_another() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let event = CaseEvent {
        case_id: case(),
        author: j("FR"),
        seq: 1,
        links: vec![],
        at: at(),
        kind: EventKind::Submitted {
            request: Box::new(comity_protocol::examples::sample_request()),
            approval: comity_protocol::examples::sample_approval(),
        },
    };
    let signed_event = SignedEnvelope::sign(&event, &key).unwrap();
    let types = [
        round_trip(event),
        round_trip(EventPush {
            message_id: MessageId::from_parts(1_790_000_000_000, 1),
            case_id: case(),
            sent_at: at(),
            events: vec![signed_event],
        }),
        round_trip(Receipt {
            message_id: MessageId::from_parts(1_790_000_000_000, 1),
            case_id: case(),
            body_hash: Hash32::of(b"push"),
            receiver: j("DE"),
            received_at: at(),
        }),
        round_trip(Checkpoint {
            log: j("DE"),
            tree_size: 3,
            root: Hash32::of(b"root"),
            at: at(),
        }),
        round_trip(Cosignature {
            log: j("DE"),
            tree_size: 3,
            root: Hash32::of(b"root"),
            witness: j("FR"),
            at: at(),
        }),
        round_trip(PublishedReport {
            issuer: j("DE"),
            issued_at: at(),
            report: Report {
                jurisdiction: "DE".into(),
                ..Report::default()
            },
        }),
        round_trip(PolicySummary {
            issuer: j("DE"),
            issued_at: at(),
            policy: Policy::default(),
        }),
        round_trip(EvidenceManifest {
            case_id: case(),
            from: j("DE"),
            to: j("FR"),
            created_at: at(),
            chunk_size: 1 << 20,
            total_bytes: 0,
            file_count: 0,
            handshake: vec![1, 2, 3],
            sealed_index: vec![4, 5],
            chunks: vec![],
        }),
        round_trip(comity_protocol::bundle::BundleHeader {
            case_id: case(),
            exported_by: j("FR"),
            exported_at: at(),
            state: Some("closed".into()),
            genesis_message: None,
            members: vec![],
            parts: vec![],
        }),
    ];
    let distinct: std::collections::BTreeSet<&String> = types.iter().collect();
    assert_eq!(distinct.len(), types.len(), "{types:?}");
    for t in &types {
        assert!(
            t.starts_with("application/comity.") && t.ends_with(".v1+cbor"),
            "{t}"
        );
    }
}
