use super::*;
use coset::{CborSerializable, CoseSign1Builder};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Note {
    text: String,
}
impl Signable for Note {
    const CONTENT_TYPE: &'static str = "application/comity.test-note.v1+cbor";
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct OtherNote {
    text: String,
}
impl Signable for OtherNote {
    const CONTENT_TYPE: &'static str = "application/comity.test-other.v1+cbor";
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn note() -> Note {
    Note {
        text: "hello".into(),
    }
}

/// Decodes and opens `bytes` as a `Note` signed by `key`.
fn accept(bytes: &[u8], key: &SigningKey) -> Result<Note, EnvelopeError> {
    SignedEnvelope::from_bytes(bytes, 4096)?.open(&key.verifying_key())
}

#[test]
fn sign_then_open() {
    let k = key(1);
    let env = SignedEnvelope::sign(&note(), &k).unwrap();
    assert_eq!(env.open::<Note>(&k.verifying_key()).unwrap(), note());
    let bytes = env.to_bytes();
    assert_eq!(bytes[0], 0xd2, "tag 18 (COSE_Sign1)");
    let again = SignedEnvelope::from_bytes(&bytes, 1024).unwrap();
    assert_eq!(again, env);
    assert_eq!(env.body_hash(), Hash32::of(&env.body));
    assert!(
        crate::canonical::is_deterministic(&bytes),
        "the whole COSE structure is deterministic CBOR"
    );
}

#[test]
fn the_cose_structure_is_standard() {
    let k = key(1);
    let env = SignedEnvelope::sign(&note(), &k).unwrap();
    let cose = CoseSign1::from_tagged_slice(&env.to_bytes()).unwrap();
    let h = &cose.protected.header;
    assert_eq!(
        h.alg,
        Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA))
    );
    assert_eq!(
        h.content_type,
        Some(coset::ContentType::Text(Note::CONTENT_TYPE.into()))
    );
    assert_eq!(h.key_id, k.verifying_key().to_bytes().to_vec());
    assert!(cose.unprotected.is_empty());
    // coset's own check of the Sig_structure agrees with ours.
    cose.verify_signature(b"", |sig, data| {
        k.verifying_key()
            .verify_strict(data, &ed25519_dalek::Signature::from_slice(sig).unwrap())
    })
    .unwrap();
}

#[test]
fn each_check_has_its_error() {
    let k = key(1);
    let env = SignedEnvelope::sign(&note(), &k).unwrap();
    let vk = k.verifying_key();

    assert!(matches!(
        env.open::<OtherNote>(&vk),
        Err(EnvelopeError::WrongContentType { .. })
    ));

    let other = key(2).verifying_key();
    assert!(matches!(
        env.open::<Note>(&other),
        Err(EnvelopeError::UnexpectedSigner { .. })
    ));

    // Relabelling the content type breaks the signature: it is in the protected header.
    let mut relabelled = env.clone();
    relabelled.content_type = OtherNote::CONTENT_TYPE.into();
    assert_eq!(
        relabelled.open::<OtherNote>(&vk),
        Err(EnvelopeError::BadSignature)
    );

    // Claiming another signer breaks the signature too: the key id is protected.
    let mut reattributed = env.clone();
    reattributed.signer = PublicKey::from(&other);
    assert_eq!(
        reattributed.open::<Note>(&other),
        Err(EnvelopeError::BadSignature)
    );

    // A validly signed but non-canonical body is refused.
    let body = vec![0xa1, 0x64, b't', b'e', b'x', b't', 0x78, 0x01, b'x'];
    let signer = PublicKey::from(&vk);
    let sig = k.sign(&sign1_tbs(Note::CONTENT_TYPE, &signer, &body));
    let loose = SignedEnvelope {
        body,
        signature: Signature64(sig.to_bytes()),
        ..env.clone()
    };
    assert_eq!(loose.open::<Note>(&vk), Err(EnvelopeError::NonCanonical));
}

#[test]
fn other_byte_forms_of_the_same_object_are_refused() {
    let k = key(1);
    let env = SignedEnvelope::sign(&note(), &k).unwrap();
    let mut cose = CoseSign1::from_tagged_slice(&env.to_bytes()).unwrap();

    // Untagged.
    let untagged = cose.clone().to_vec().unwrap();
    assert!(matches!(
        SignedEnvelope::from_bytes(&untagged, 4096),
        Err(EnvelopeError::Malformed(_))
    ));

    // An unprotected header parameter (still a valid COSE_Sign1, same signature).
    cose.unprotected = HeaderBuilder::new().key_id(vec![1]).build();
    let extra = cose.clone().to_tagged_vec().unwrap();
    assert_eq!(
        SignedEnvelope::from_bytes(&extra, 4096),
        Err(EnvelopeError::NonCanonical)
    );

    // A protected header with another parameter, re-signed by the same key.
    let mut cose = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::EdDSA)
                .content_type(Note::CONTENT_TYPE.into())
                .key_id(k.verifying_key().to_bytes().to_vec())
                .iv(vec![0; 12])
                .build(),
        )
        .payload(env.body.clone())
        .create_signature(b"", |data| k.sign(data).to_bytes().to_vec())
        .build();
    assert_eq!(
        SignedEnvelope::from_bytes(&cose.clone().to_tagged_vec().unwrap(), 4096),
        Err(EnvelopeError::NonCanonical)
    );

    // Another algorithm.
    cose.protected = ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES256)
            .content_type(Note::CONTENT_TYPE.into())
            .key_id(k.verifying_key().to_bytes().to_vec())
            .build(),
    };
    assert_eq!(
        SignedEnvelope::from_bytes(&cose.to_tagged_vec().unwrap(), 4096),
        Err(EnvelopeError::UnsupportedAlgorithm)
    );

    // A non-shortest length for the payload (0x58 0x07 instead of 0x47 for 7 bytes... here:
    // the payload's length written with one extra byte).
    let bytes = env.to_bytes();
    let payload_at = bytes
        .windows(env.body.len())
        .position(|w| w == env.body.as_slice())
        .unwrap();
    let head = bytes[payload_at - 1];
    assert!(env.body.len() < 24 && head == 0x40 | env.body.len() as u8);
    let mut long = bytes[..payload_at - 1].to_vec();
    long.extend_from_slice(&[0x58, env.body.len() as u8]);
    long.extend_from_slice(&bytes[payload_at..]);
    assert_eq!(
        SignedEnvelope::from_bytes(&long, 4096),
        Err(EnvelopeError::NonCanonical)
    );

    // Size is checked before anything is parsed.
    assert!(matches!(
        SignedEnvelope::from_bytes(&bytes, 10),
        Err(EnvelopeError::TooLarge { max: 10, .. })
    ));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [
        &[][..],
        &[0xd2],
        &[0xd2, 0x84],
        &[0xff; 64],
        b"{\"cose\":1}",
    ] {
        assert!(SignedEnvelope::from_bytes(bytes, 4096).is_err());
        assert!(MultiSigned::from_bytes(bytes, 4096).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A flipped bit anywhere in the object is refused, by the decoder or by the check.
    #[test]
    fn a_flipped_bit_anywhere_is_refused(seed in any::<u8>(), text in ".{0,40}") {
        let k = key(seed);
        let bytes = SignedEnvelope::sign(&Note { text }, &k).unwrap().to_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(accept(&flipped, &k).is_err(), "bit {bit} flipped was accepted");
        }
        prop_assert!(accept(&bytes, &k).is_ok());
    }

    /// The directly assembled `Sig_structure` is exactly `coset`'s.
    #[test]
    fn sig_structure_is_cosets(
        seed in any::<u8>(),
        kind in "[a-z-]{1,40}",
        len in prop_oneof![0usize..30, 250usize..300, 65_530usize..65_540, 70_000usize..70_001],
    ) {
        let signer = PublicKey::from(&key(seed).verifying_key());
        let content_type = format!("application/comity.{kind}.v1+cbor");
        let body = vec![seed; len];
        let cosets = coset::sig_structure_data(
            coset::SignatureContext::CoseSign1,
            sign1_protected(&content_type, &signer),
            None,
            &[],
            &body,
        );
        prop_assert_eq!(sign1_tbs(&content_type, &signer, &body), cosets);
    }

    /// The directly assembled object is exactly what `coset` encodes.
    #[test]
    fn cose_bytes_are_cosets(
        seed in any::<u8>(),
        kind in "[a-z-]{1,40}",
        len in prop_oneof![0usize..30, 250usize..300, 65_530usize..65_540, 70_000usize..70_001],
    ) {
        let envelope = SignedEnvelope {
            content_type: format!("application/comity.{kind}.v1+cbor"),
            signer: PublicKey::from(&key(seed).verifying_key()),
            body: vec![seed; len],
            signature: Signature64([seed; 64]),
        };
        prop_assert_eq!(envelope.to_bytes(), envelope.to_bytes_by_coset());
    }

    #[test]
    fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = SignedEnvelope::from_bytes(&bytes, 4096);
        let _ = MultiSigned::from_bytes(&bytes, 4096);
    }
}

#[test]
fn wire_and_json_forms() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    struct Carrier {
        inner: SignedEnvelope,
    }
    let env = SignedEnvelope::sign(&note(), &key(1)).unwrap();
    let carrier = Carrier { inner: env.clone() };
    let cbor = to_canonical_cbor(&carrier).unwrap();
    let value: ciborium::Value = crate::from_cbor(&cbor, 4096).unwrap();
    let (_, inner) = &value.as_map().unwrap()[0];
    assert_eq!(
        inner.as_bytes(),
        Some(&env.to_bytes()),
        "inside a message, an object is the byte string of its COSE bytes"
    );
    assert_eq!(crate::from_cbor::<Carrier>(&cbor, 4096).unwrap(), carrier);

    let json = serde_json::to_value(&env).unwrap();
    assert_eq!(json["signer"], serde_json::json!(env.signer.to_string()));
    assert_eq!(json["content_type"], serde_json::json!(Note::CONTENT_TYPE));
    assert_eq!(
        serde_json::from_value::<SignedEnvelope>(json.clone()).unwrap(),
        env
    );
    let mut lying = json;
    lying["content_type"] = serde_json::json!(OtherNote::CONTENT_TYPE);
    assert!(serde_json::from_value::<SignedEnvelope>(lying).is_err());
}

#[test]
fn key_text_round_trips() {
    let pk = PublicKey::from(&key(3).verifying_key());
    assert_eq!(pk.to_string().parse::<PublicKey>().unwrap(), pk);
    assert!("zz".parse::<PublicKey>().is_err());
    // Not every 32 bytes are a point; find one that is not and check BadKey.
    let bad = (0u8..=255)
        .map(|b| PublicKey([b; 32]))
        .find(|k| VerifyingKey::from_bytes(&k.0).is_err())
        .expect("some constant byte pattern is not a curve point");
    assert_eq!(bad.verifying_key(), Err(EnvelopeError::BadKey));
}

#[test]
fn multi_signed_needs_its_threshold_of_listed_keys() {
    let (a, b, c, outsider) = (key(1), key(2), key(3), key(4));
    let listed: BTreeSet<PublicKey> = [&a, &b, &c]
        .iter()
        .map(|k| PublicKey::from(&k.verifying_key()))
        .collect();

    let mut object = MultiSigned::new(&note()).unwrap();
    object.add_signature(&c);
    object.add_signature(&outsider);
    assert_eq!(
        object.open::<Note>(&listed, 2),
        Err(EnvelopeError::BelowThreshold {
            valid: 1,
            threshold: 2
        }),
        "an outsider's signature counts for nothing"
    );
    object.add_signature(&a);
    object.add_signature(&a); // again: still one signature per key
    let (body, signers) = object.open::<Note>(&listed, 2).unwrap();
    assert_eq!(body, note());
    assert_eq!(signers.len(), 2);

    let bytes = object.to_bytes();
    assert_eq!(bytes[..2], [0xd8, 98], "tag 98 (COSE_Sign)");
    assert!(crate::canonical::is_deterministic(&bytes));
    let back = MultiSigned::from_bytes(&bytes, 4096).unwrap();
    assert_eq!(back, object);

    // The order signatures were added in does not change the bytes.
    let mut other_order = MultiSigned::new(&note()).unwrap();
    for k in [&a, &outsider, &c] {
        other_order.add_signature(k);
    }
    assert_eq!(other_order.to_bytes(), bytes);

    // A listed signer's altered signature is an error, not a vote less.
    let mut tampered = object.clone();
    tampered.signatures[0].1.0[0] ^= 1;
    let listed_all: BTreeSet<_> = tampered.signatures.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        tampered.open::<Note>(&listed_all, 1),
        Err(EnvelopeError::BadSignature)
    );
    // A body swap is caught by every signature.
    let mut swapped = object.clone();
    swapped.body = to_canonical_cbor(&Note { text: "bye".into() }).unwrap();
    assert_eq!(
        swapped.open::<Note>(&listed, 1),
        Err(EnvelopeError::BadSignature)
    );
    // Out-of-order signatures are another byte form.
    let mut unsorted = object.clone();
    unsorted.signatures.reverse();
    assert_eq!(
        MultiSigned::from_bytes(&unsorted.to_bytes(), 4096),
        Err(EnvelopeError::NonCanonical)
    );
    assert!(matches!(
        object.open::<OtherNote>(&listed, 1),
        Err(EnvelopeError::WrongContentType { .. })
    ));
}
