//! Property tests of the encoding and signing rules two nodes must agree on.

use ciborium::Value;
use comity_protocol::examples::sample_request;
use comity_protocol::limits::MAX_REQUEST_FRAME;
use comity_protocol::{
    CaseEvent, CaseId, EventKind, EventPush, Hash32, Jurisdiction, MessageId, Receipt,
    SignedEnvelope, Timestamp, from_canonical_cbor, from_cbor, is_canonical, to_canonical_cbor,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Arbitrary float-free CBOR values with unique text keys in maps.
fn cbor_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        ".{0,12}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| {
                Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())
            }),
        ]
    })
}

/// The same value with the entries of every map in a different order.
fn reorder(value: &Value, seed: usize) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| reorder(v, seed)).collect()),
        Value::Map(entries) => {
            let mut entries: Vec<_> = entries
                .iter()
                .map(|(k, v)| (k.clone(), reorder(v, seed)))
                .collect();
            entries.reverse();
            if !entries.is_empty() {
                let n = seed % entries.len();
                entries.rotate_left(n);
            }
            Value::Map(entries)
        }
        other => other.clone(),
    }
}

fn receipt_strategy() -> impl Strategy<Value = Receipt> {
    (
        0u64..(1 << 48),
        any::<u128>(),
        any::<u128>(),
        any::<[u8; 32]>(),
        prop::sample::select(vec!["DE", "FR", "US", "GB", "FR-PNF", "NL-OM"]),
        any::<i64>(),
    )
        .prop_map(|(ms, m, c, hash, receiver, at)| Receipt {
            message_id: MessageId::from_parts(ms, m),
            case_id: CaseId::from_parts(ms, c),
            body_hash: Hash32(hash),
            receiver: receiver.parse::<Jurisdiction>().unwrap(),
            received_at: Timestamp::from_millis(at),
        })
}

proptest! {
    #[test]
    fn canonical_encoding_ignores_map_order(value in cbor_value(), seed in any::<usize>()) {
        let a = to_canonical_cbor(&value).unwrap();
        let b = to_canonical_cbor(&reorder(&value, seed)).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert!(is_canonical(&a));
        // Decoding and re-encoding gives the same bytes: the encoding is a fixed point.
        let back: Value = from_canonical_cbor(&a, usize::MAX).unwrap();
        prop_assert_eq!(to_canonical_cbor(&back).unwrap(), a);
    }

    #[test]
    fn hash_map_and_btree_map_encode_alike(entries in prop::collection::vec((".{0,10}", any::<u32>()), 0..20)) {
        let hashed: HashMap<String, u32> = entries.iter().cloned().collect();
        let sorted: BTreeMap<String, u32> = entries.into_iter().collect();
        prop_assert_eq!(to_canonical_cbor(&hashed).unwrap(), to_canonical_cbor(&sorted).unwrap());
    }

    #[test]
    fn sign_then_open_round_trips(receipt in receipt_strategy(), seed in any::<[u8; 32]>()) {
        let key = SigningKey::from_bytes(&seed);
        let env = SignedEnvelope::sign(&receipt, &key).unwrap();
        let wire = env.to_bytes();
        prop_assert!(comity_protocol::canonical::is_deterministic(&wire));
        let env = SignedEnvelope::from_bytes(&wire, wire.len()).unwrap();
        prop_assert_eq!(env.open::<Receipt>(&key.verifying_key()).unwrap(), receipt);
    }

    #[test]
    fn any_bit_flip_breaks_the_envelope(bit in 0usize..1_000_000) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let case_id = CaseId::from_parts(1_790_000_000_000, 2);
        let genesis = CaseEvent {
            case_id,
            author: sample_request().requesting,
            seq: 1,
            links: vec![],
            at: Timestamp::from_millis(1_790_000_000_000),
            kind: EventKind::Submitted {
                request: Box::new(sample_request()),
                approval: comity_protocol::examples::sample_approval(),
            },
        };
        let message = EventPush {
            message_id: MessageId::from_parts(1_790_000_000_000, 1),
            case_id,
            sent_at: Timestamp::from_millis(1_790_000_000_000),
            events: vec![SignedEnvelope::sign(&genesis, &key).unwrap()],
        };
        let mut env = SignedEnvelope::sign(&message, &key).unwrap();
        let body_bits = env.body.len() * 8;
        let bit = bit % (body_bits + 64 * 8);
        if bit < body_bits {
            env.body[bit / 8] ^= 1 << (bit % 8);
        } else {
            let b = bit - body_bits;
            env.signature.0[b / 8] ^= 1 << (b % 8);
        }
        prop_assert!(env.open::<EventPush>(&key.verifying_key()).is_err());
    }
}

#[test]
fn sample_request_survives_cbor_and_json() {
    let r = sample_request();
    let cbor = to_canonical_cbor(&r).unwrap();
    assert_eq!(
        from_cbor::<comity_protocol::AssistanceRequest>(&cbor, MAX_REQUEST_FRAME).unwrap(),
        r
    );
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        serde_json::from_str::<comity_protocol::AssistanceRequest>(&json).unwrap(),
        r
    );
}

#[test]
fn unknown_fields_are_refused() {
    let mut json = serde_json::to_value(sample_request()).unwrap();
    json["priority"] = serde_json::json!("high");
    let err = serde_json::from_value::<comity_protocol::AssistanceRequest>(json).unwrap_err();
    assert!(err.to_string().contains("priority"), "{err}");
}
