//! Signed objects: COSE (RFC 9052), so that anyone can check them later with any COSE library.
//!
//! Signatures are made at the application level, independent of the transport (libp2p's
//! Noise authenticates a session, not a message), so that a request or a receipt can be shown
//! to a third party long after the connection is gone: non-repudiation of origin and of
//! receipt. Every object one party signs is a tagged `COSE_Sign1` (tag 18):
//!
//! ```text
//! 18([ protected: bstr .cbor { 1: -8 (EdDSA), 3: "application/comity.<kind>.v1+cbor", 4: kid },
//!      unprotected: {},
//!      payload: bstr (the canonical CBOR body),
//!      signature: bstr (Ed25519 over Sig_structure ["Signature1", protected, h'', payload]) ])
//! ```
//!
//! The content type names the kind of object inside the signed protected header, so a
//! signature over one kind can never be passed off as another; the key id is the signer's
//! 32-byte Ed25519 public key. Objects that several parties sign use [`MultiSigned`], a
//! `COSE_Sign` (tag 98) with one signature per signer.
//!
//! Each object has exactly one accepted byte form: decoding re-encodes what it read and
//! refuses anything that differs (other header parameters, non-shortest lengths, another
//! order), so an event's id and a checkpoint's leaf — hashes of the exact bytes — are stable.

use crate::canonical::{CodecError, bstr_head, to_canonical_cbor};
use crate::ids::{Hash32, IdError, parse_hex};
use crate::limits::MAX_REQUEST_FRAME;
use coset::{
    CborSerializable, CoseSign, CoseSign1, CoseSignature, Header, HeaderBuilder, ProtectedHeader,
    TaggedCborSerializable, iana,
};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// CBOR tag of a `COSE_Sign1` (RFC 9052 §4.2).
pub const COSE_SIGN1_TAG: u64 = 18;
/// CBOR tag of a `COSE_Sign` (RFC 9052 §4.1).
pub const COSE_SIGN_TAG: u64 = 98;

/// A kind of object that is signed.
pub trait Signable: Serialize + DeserializeOwned {
    /// Media type naming the kind, e.g. `application/comity.event.v1+cbor`, carried as the
    /// COSE content type in the signed protected header. Unique per type; it must change
    /// whenever the body's meaning changes.
    const CONTENT_TYPE: &'static str;
}

/// Why a signed object was not accepted. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    #[error("object is {len} bytes, over the limit of {max}; the sender must split or shorten it")]
    TooLarge { len: usize, max: usize },
    #[error(
        "not a Comity COSE object ({0}); it may come from an older node (before COSE signatures): upgrade it"
    )]
    Malformed(String),
    #[error("signature algorithm is not EdDSA (COSE alg -8); Comity signs with Ed25519 only")]
    UnsupportedAlgorithm,
    #[error("the protected header names no content type, so the kind of object is unknown")]
    MissingContentType,
    #[error("the key id is not a 32-byte Ed25519 public key")]
    BadKeyId,
    #[error("object is a {found:?} where a {expected:?} was expected")]
    WrongContentType { expected: String, found: String },
    #[error("object is signed by {found}, not by the expected key {expected}")]
    UnexpectedSigner {
        expected: PublicKey,
        found: PublicKey,
    },
    #[error(
        "signature does not verify: the object was altered or was not signed by the stated key"
    )]
    BadSignature,
    #[error(
        "object is not in its one canonical encoding (RFC 8949 §4.2 deterministic CBOR, exactly the headers Comity signs); the signer must encode it deterministically"
    )]
    NonCanonical,
    #[error("only {valid} valid signatures from listed keys, {threshold} needed")]
    BelowThreshold { valid: usize, threshold: usize },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("public key is not a valid Ed25519 point")]
    BadKey,
}

/// An Ed25519 public key: a byte string on the wire, lowercase hex in text.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicKey(#[serde(with = "crate::bytes::fixed")] pub [u8; 32]);

impl PublicKey {
    pub fn verifying_key(&self) -> Result<VerifyingKey, EnvelopeError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| EnvelopeError::BadKey)
    }
}

impl From<&VerifyingKey> for PublicKey {
    fn from(k: &VerifyingKey) -> Self {
        Self(k.to_bytes())
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(k: VerifyingKey) -> Self {
        Self(k.to_bytes())
    }
}

/// An Ed25519 signature: a byte string on the wire, lowercase hex in text.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Signature64(#[serde(with = "crate::bytes::fixed")] pub [u8; 64]);

macro_rules! hex_text {
    ($name:ident, $what:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_hex($what, s).map(Self)
            }
        }
    };
}

hex_text!(PublicKey, "public key");
hex_text!(Signature64, "signature");

/// A `COSE_Sign1`: one signer's signed object. `body` is the canonical CBOR of a [`Signable`]
/// value, kept as bytes so that the signature can be checked again later on exactly what was
/// signed. The fields are the whole object: its bytes ([`SignedEnvelope::to_bytes`]) are a
/// function of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEnvelope {
    /// The media type naming the kind of object ([`Signable::CONTENT_TYPE`]).
    pub content_type: String,
    /// The key id: who signed.
    pub signer: PublicKey,
    pub body: Vec<u8>,
    pub signature: Signature64,
}

/// The protected header of a one-signer object: algorithm, content type, key id.
fn sign1_protected(content_type: &str, signer: &PublicKey) -> ProtectedHeader {
    ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .content_type(content_type.to_owned())
            .key_id(signer.0.to_vec())
            .build(),
    }
}

/// The bytes an Ed25519 signature of a `COSE_Sign1` covers (RFC 9052 §4.4 `Sig_structure`):
/// `["Signature1", protected, h'', payload]`. It is built for every signature and every check,
/// so it is assembled directly around the protected header `coset` encodes, rather than through
/// `coset`'s value tree (a copy of the payload and some 11,000 instructions more per call);
/// `sig_structure_is_cosets` tests it byte for byte against `coset::sig_structure_data`.
fn sign1_tbs(content_type: &str, signer: &PublicKey, body: &[u8]) -> Vec<u8> {
    let protected = sign1_protected(content_type, signer)
        .header
        .to_vec()
        .expect("a header of an algorithm, a text and a byte string always encodes");
    let mut tbs = Vec::with_capacity(32 + protected.len() + body.len());
    tbs.push(0x84); // array of 4
    tbs.push(0x6a); // text of 10
    tbs.extend_from_slice(b"Signature1");
    tbs.extend_from_slice(&bstr_head(protected.len()));
    tbs.extend_from_slice(&protected);
    tbs.push(0x40); // external_aad: empty byte string
    tbs.extend_from_slice(&bstr_head(body.len()));
    tbs.extend_from_slice(body);
    tbs
}

fn verify_ed25519(
    signer: &PublicKey,
    message: &[u8],
    signature: &Signature64,
) -> Result<(), EnvelopeError> {
    let key = signer.verifying_key()?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(message, &signature)
        .map_err(|_| EnvelopeError::BadSignature)
}

/// Algorithm, content type and key id of a parsed header, each checked.
fn header_parts(header: &Header) -> Result<(Option<String>, PublicKey), EnvelopeError> {
    if header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
        return Err(EnvelopeError::UnsupportedAlgorithm);
    }
    let content_type = match &header.content_type {
        Some(coset::ContentType::Text(text)) => Some(text.clone()),
        Some(_) => return Err(EnvelopeError::MissingContentType),
        None => None,
    };
    let kid: [u8; 32] = header
        .key_id
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadKeyId)?;
    Ok((content_type, PublicKey(kid)))
}

fn check_len(bytes: &[u8], max: usize) -> Result<(), EnvelopeError> {
    if bytes.len() > max {
        return Err(EnvelopeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

fn signature64(bytes: &[u8]) -> Result<Signature64, EnvelopeError> {
    bytes
        .try_into()
        .map(Signature64)
        .map_err(|_| EnvelopeError::Malformed(format!("a {}-byte signature", bytes.len())))
}

impl SignedEnvelope {
    /// Encodes `body` canonically and signs it with `key`.
    pub fn sign<T: Signable>(body: &T, key: &SigningKey) -> Result<Self, CodecError> {
        let body = to_canonical_cbor(body)?;
        let signer = PublicKey::from(&key.verifying_key());
        let signature = key.sign(&sign1_tbs(T::CONTENT_TYPE, &signer, &body));
        Ok(Self {
            content_type: T::CONTENT_TYPE.to_owned(),
            signer,
            body,
            signature: Signature64(signature.to_bytes()),
        })
    }

    /// Checks everything and decodes the body: that the body is a `T`, that `expected_signer`
    /// signed it (strict verification, which refuses weak keys and malleable signatures), and
    /// that the body is canonical. The one path by which every signed kind is accepted.
    pub fn open<T: Signable>(&self, expected_signer: &VerifyingKey) -> Result<T, EnvelopeError> {
        if self.content_type != T::CONTENT_TYPE {
            return Err(EnvelopeError::WrongContentType {
                expected: T::CONTENT_TYPE.to_owned(),
                found: self.content_type.clone(),
            });
        }
        let expected = PublicKey::from(expected_signer);
        if self.signer != expected {
            return Err(EnvelopeError::UnexpectedSigner {
                expected,
                found: self.signer,
            });
        }
        self.verify_signature()?;
        signed_body(&self.body)
    }

    /// Checks the signature against the object's own key id and content type, without
    /// decoding the body. Useful to archive or forward an object; to act on one, use
    /// [`SignedEnvelope::open`] with the key the roster expects.
    pub fn verify_signature(&self) -> Result<(), EnvelopeError> {
        verify_ed25519(
            &self.signer,
            &sign1_tbs(&self.content_type, &self.signer, &self.body),
            &self.signature,
        )
    }

    /// BLAKE3 of the body bytes (the COSE payload): what a receipt quotes to say what was
    /// received.
    pub fn body_hash(&self) -> Hash32 {
        Hash32::of(&self.body)
    }

    /// The tagged `COSE_Sign1`, as sent on the wire, stored and hashed. Hashing an event's id
    /// and storing an object call it several times per message, so it is assembled directly
    /// around the protected header `coset` encodes; `cose_bytes_are_cosets` tests it byte for
    /// byte against `coset`'s own encoding, and decoding is `coset`'s.
    pub fn to_bytes(&self) -> Vec<u8> {
        let protected = sign1_protected(&self.content_type, &self.signer)
            .header
            .to_vec()
            .expect("a header of an algorithm, a text and a byte string always encodes");
        let mut out = Vec::with_capacity(16 + protected.len() + self.body.len() + 64);
        out.push(0xd2); // tag 18
        out.push(0x84); // array of 4
        out.extend_from_slice(&bstr_head(protected.len()));
        out.extend_from_slice(&protected);
        out.push(0xa0); // unprotected: empty map
        out.extend_from_slice(&bstr_head(self.body.len()));
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&[0x58, 0x40]); // byte string of 64
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// The same bytes as [`SignedEnvelope::to_bytes`], through `coset`'s encoder.
    #[cfg(test)]
    fn to_bytes_by_coset(&self) -> Vec<u8> {
        CoseSign1 {
            protected: sign1_protected(&self.content_type, &self.signer),
            unprotected: Header::default(),
            payload: Some(self.body.clone()),
            signature: self.signature.0.to_vec(),
        }
        .to_tagged_vec()
        .expect("a COSE_Sign1 of byte strings and a text always encodes")
    }

    /// Decodes a tagged `COSE_Sign1`, refusing more than `max_len` bytes (before parsing
    /// anything) and any byte form other than the one [`SignedEnvelope::to_bytes`] gives.
    /// Does not check the signature.
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Self, EnvelopeError> {
        check_len(bytes, max_len)?;
        let cose = CoseSign1::from_tagged_slice(bytes)
            .map_err(|e| EnvelopeError::Malformed(format!("not a tagged COSE_Sign1: {e}")))?;
        let (content_type, signer) = header_parts(&cose.protected.header)?;
        let envelope = Self {
            content_type: content_type.ok_or(EnvelopeError::MissingContentType)?,
            signer,
            body: cose
                .payload
                .ok_or_else(|| EnvelopeError::Malformed("a detached payload".into()))?,
            signature: signature64(&cose.signature)?,
        };
        if envelope.to_bytes() != bytes {
            return Err(EnvelopeError::NonCanonical);
        }
        Ok(envelope)
    }
}

/// A signed body as `T`, accepted only in its one canonical encoding.
fn signed_body<T: Signable>(body: &[u8]) -> Result<T, EnvelopeError> {
    crate::canonical::from_canonical_cbor(body, MAX_REQUEST_FRAME).map_err(|e| match e {
        CodecError::NonCanonical => EnvelopeError::NonCanonical,
        other => other.into(),
    })
}

/// In CBOR, an object travels inside other messages as a byte string holding its exact COSE
/// bytes (`bstr .cbor COSE_Sign1_Tagged`), so that it can be hashed and re-checked as signed.
/// In JSON (the admin API) it is shown as its content type, signer and COSE bytes in hex.
impl Serialize for SignedEnvelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            JsonView {
                content_type: self.content_type.clone(),
                signer: self.signer,
                cose: hex::encode(self.to_bytes()),
            }
            .serialize(serializer)
        } else {
            serializer.serialize_bytes(&self.to_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for SignedEnvelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let view = JsonView::deserialize(deserializer)?;
            let bytes = hex::decode(&view.cose).map_err(D::Error::custom)?;
            let envelope =
                SignedEnvelope::from_bytes(&bytes, MAX_REQUEST_FRAME).map_err(D::Error::custom)?;
            if envelope.content_type != view.content_type || envelope.signer != view.signer {
                return Err(D::Error::custom(
                    "content_type or signer differs from the COSE object's own",
                ));
            }
            Ok(envelope)
        } else {
            let bytes = crate::bytes::vec::deserialize(deserializer)?;
            SignedEnvelope::from_bytes(&bytes, MAX_REQUEST_FRAME).map_err(D::Error::custom)
        }
    }
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
struct JsonView {
    content_type: String,
    signer: PublicKey,
    cose: String,
}

/// A `COSE_Sign`: one object signed by several parties (the bloc configuration), one
/// signature each. The body's protected header carries the content type; each signature's
/// protected header carries the algorithm and the signer's key id. Signatures are kept sorted
/// by key id, one per key, so the object has one byte form whatever order they were added in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiSigned {
    pub content_type: String,
    pub body: Vec<u8>,
    /// Signatures by key id, sorted and unique.
    pub signatures: Vec<(PublicKey, Signature64)>,
}

fn sign_body_protected(content_type: &str) -> ProtectedHeader {
    ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .content_type(content_type.to_owned())
            .build(),
    }
}

fn signer_protected(signer: &PublicKey) -> ProtectedHeader {
    ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(signer.0.to_vec())
            .build(),
    }
}

impl MultiSigned {
    /// Encodes `body` canonically, with no signature yet.
    pub fn new<T: Signable>(body: &T) -> Result<Self, CodecError> {
        Ok(Self {
            content_type: T::CONTENT_TYPE.to_owned(),
            body: to_canonical_cbor(body)?,
            signatures: Vec::new(),
        })
    }

    /// The bytes one signer's signature covers (`Sig_structure` with context "Signature").
    fn tbs(&self, signer: &PublicKey) -> Vec<u8> {
        coset::sig_structure_data(
            coset::SignatureContext::CoseSignature,
            sign_body_protected(&self.content_type),
            Some(signer_protected(signer)),
            &[],
            &self.body,
        )
    }

    /// Adds (or replaces) `key`'s signature.
    pub fn add_signature(&mut self, key: &SigningKey) {
        let signer = PublicKey::from(&key.verifying_key());
        let signature = Signature64(key.sign(&self.tbs(&signer)).to_bytes());
        self.insert_signature(signer, signature);
    }

    /// Adds a signature made elsewhere (unchecked here: `open` and `verify_signatures` check
    /// it), keeping the order and one per key.
    pub fn insert_signature(&mut self, signer: PublicKey, signature: Signature64) {
        match self.signatures.binary_search_by(|(k, _)| k.cmp(&signer)) {
            Ok(at) => self.signatures[at].1 = signature,
            Err(at) => self.signatures.insert(at, (signer, signature)),
        }
    }

    /// Checks that the object is a `T` and that at least `threshold` distinct keys of
    /// `allowed` signed it, then decodes the body. A signature by a key not in `allowed` is
    /// ignored (it vouches for nothing); a signature by a listed key that does not verify is
    /// an error (the object was altered).
    pub fn open<T: Signable>(
        &self,
        allowed: &BTreeSet<PublicKey>,
        threshold: usize,
    ) -> Result<(T, Vec<PublicKey>), EnvelopeError> {
        if self.content_type != T::CONTENT_TYPE {
            return Err(EnvelopeError::WrongContentType {
                expected: T::CONTENT_TYPE.to_owned(),
                found: self.content_type.clone(),
            });
        }
        let mut signers = Vec::new();
        for (key, signature) in &self.signatures {
            if allowed.contains(key) {
                verify_ed25519(key, &self.tbs(key), signature)?;
                signers.push(*key);
            }
        }
        if signers.len() < threshold.max(1) {
            return Err(EnvelopeError::BelowThreshold {
                valid: signers.len(),
                threshold: threshold.max(1),
            });
        }
        Ok((signed_body(&self.body)?, signers))
    }

    /// Each signature checked against its own key id, whoever that is: for showing an object
    /// to someone who will judge the keys themselves. To act on one, use [`MultiSigned::open`].
    pub fn verify_signatures(&self) -> Vec<(PublicKey, Result<(), EnvelopeError>)> {
        self.signatures
            .iter()
            .map(|(key, signature)| (*key, verify_ed25519(key, &self.tbs(key), signature)))
            .collect()
    }

    /// The tagged `COSE_Sign`.
    pub fn to_bytes(&self) -> Vec<u8> {
        CoseSign {
            protected: sign_body_protected(&self.content_type),
            unprotected: Header::default(),
            payload: Some(self.body.clone()),
            signatures: self
                .signatures
                .iter()
                .map(|(key, signature)| CoseSignature {
                    protected: signer_protected(key),
                    unprotected: Header::default(),
                    signature: signature.0.to_vec(),
                })
                .collect(),
        }
        .to_tagged_vec()
        .expect("a COSE_Sign of byte strings and a text always encodes")
    }

    /// Decodes a tagged `COSE_Sign` in its one canonical form. Does not check signatures.
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Self, EnvelopeError> {
        check_len(bytes, max_len)?;
        let cose = CoseSign::from_tagged_slice(bytes)
            .map_err(|e| EnvelopeError::Malformed(format!("not a tagged COSE_Sign: {e}")))?;
        let content_type = match &cose.protected.header.content_type {
            Some(coset::ContentType::Text(text)) => text.clone(),
            _ => return Err(EnvelopeError::MissingContentType),
        };
        let signatures = cose
            .signatures
            .iter()
            .map(|s| {
                let (_, key) = header_parts(&s.protected.header)?;
                Ok((key, signature64(&s.signature)?))
            })
            .collect::<Result<Vec<_>, EnvelopeError>>()?;
        let object = Self {
            content_type,
            body: cose
                .payload
                .ok_or_else(|| EnvelopeError::Malformed("a detached payload".into()))?,
            signatures,
        };
        if !object.signatures.is_sorted_by(|a, b| a.0 < b.0) || object.to_bytes() != bytes {
            return Err(EnvelopeError::NonCanonical);
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests;
