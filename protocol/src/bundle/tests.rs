use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn a_part_head_gives_back_its_length(len in prop_oneof![0usize..30, 250usize..300, 65530usize..65600]) {
        let bytes = vec![7u8; len];
        let encoded = encode_part(&bytes);
        let (n, head) = part_len(&encoded).unwrap();
        prop_assert_eq!(n as usize, len);
        prop_assert_eq!(&encoded[head..], &bytes[..]);
        // The same head ciborium would write: a part is a plain CBOR byte string.
        let value: ciborium::Value = crate::from_cbor(&encoded, len + 16).unwrap();
        prop_assert_eq!(value.as_bytes().map(Vec::len), Some(len));
    }
}

#[test]
fn what_is_not_a_byte_string_has_no_part_length() {
    assert_eq!(part_len(&[]), None);
    assert_eq!(part_len(&[0x60]), None, "a text string");
    assert_eq!(part_len(&[0x5f]), None, "an indefinite byte string");
    assert_eq!(part_len(&[0x59, 0x01]), None, "a head cut short");
}

#[test]
fn garbage_and_foreign_headers_are_reported_not_panicked_on() {
    for bytes in [
        &b""[..],
        b"not a bundle",
        &[0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40],
    ] {
        let mut v = Verifier::new(false);
        assert!(!v.header(bytes));
        let report = v.finish();
        assert!(!report.ok());
        assert!(report.first_failure().unwrap().problem.is_some());
    }
    // A validly signed object of another kind is not a bundle header.
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let receipt = Receipt {
        message_id: MessageId::from_parts(1, 1),
        case_id: CaseId::from_parts(1, 2),
        body_hash: Hash32::of(b""),
        receiver: "DE".parse().unwrap(),
        received_at: Timestamp::from_millis(1),
    };
    let bytes = SignedEnvelope::sign(&receipt, &key).unwrap().to_bytes();
    let mut v = Verifier::new(false);
    assert!(!v.header(&bytes));
    assert!(
        v.finish().checks[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("not a case bundle header")
    );
}

#[test]
fn a_header_signed_by_another_key_than_the_exporters_is_refused() {
    let exporter = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let forger = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let header = BundleHeader {
        case_id: CaseId::from_parts(1, 2),
        exported_by: "DE".parse().unwrap(),
        exported_at: Timestamp::from_millis(1),
        state: None,
        genesis_message: None,
        members: vec![BundleMember {
            jurisdiction: "DE".parse().unwrap(),
            name: "Germany".into(),
            signing_key: PublicKey::from(&exporter.verifying_key()),
            note: None,
        }],
        parts: vec![],
    };
    let mut v = Verifier::new(false);
    assert!(v.header(&SignedEnvelope::sign(&header, &exporter).unwrap().to_bytes()));
    let mut v = Verifier::new(false);
    assert!(!v.header(&SignedEnvelope::sign(&header, &forger).unwrap().to_bytes()));
    let report = v.finish();
    assert!(!report.ok());
}
