//! Signed envelopes: a canonical CBOR body, who signed it, and an Ed25519 signature.
//!
//! Signatures are made at the application level, independent of the transport (libp2p's
//! Noise authenticates a session, not a message), so that a request or a receipt can be shown
//! to a third party long after the connection is gone: non-repudiation of origin and of
//! receipt. The signature covers `domain || 0x00 || body`; the domain separates message types
//! so that a signature over one kind of body can never be replayed as another.

use crate::canonical::{CodecError, from_cbor, is_canonical, to_canonical_cbor};
use crate::ids::{Hash32, IdError, parse_hex};
use crate::limits::MAX_REQUEST_FRAME;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A message type that travels in a [`SignedEnvelope`].
pub trait Signable: Serialize + DeserializeOwned {
    /// Domain-separation string, e.g. `comity/request/v1`. Must be unique per type and must
    /// change whenever the body's meaning changes.
    const DOMAIN: &'static str;
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    #[error(
        "envelope format version {found} is not supported (this node speaks version {supported}); upgrade the older node"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("envelope holds a {found:?} message where a {expected:?} message was expected")]
    WrongDomain { expected: String, found: String },
    #[error("envelope is signed by {found}, not by the expected key {expected}")]
    UnexpectedSigner {
        expected: PublicKey,
        found: PublicKey,
    },
    #[error("signature does not verify: the body was altered or was not signed by the stated key")]
    BadSignature,
    #[error("envelope body is not canonical CBOR; the signer must encode it deterministically")]
    NonCanonical,
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

/// A signed message. `body` is the canonical CBOR of a [`Signable`] value, kept as bytes so
/// that the signature can be checked again later on exactly what was signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEnvelope {
    pub version: u16,
    pub domain: String,
    pub signer: PublicKey,
    #[serde(with = "crate::bytes::vec")]
    pub body: Vec<u8>,
    pub signature: Signature64,
}

/// The bytes a signature covers.
fn signed_message(domain: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 1 + body.len());
    m.extend_from_slice(domain.as_bytes());
    m.push(0);
    m.extend_from_slice(body);
    m
}

impl SignedEnvelope {
    /// Encodes `body` canonically and signs it with `key`.
    pub fn sign<T: Signable>(body: &T, key: &SigningKey) -> Result<Self, CodecError> {
        let body = to_canonical_cbor(body)?;
        let signature = key.sign(&signed_message(T::DOMAIN, &body));
        Ok(Self {
            version: crate::FORMAT_VERSION,
            domain: T::DOMAIN.to_owned(),
            signer: PublicKey::from(&key.verifying_key()),
            body,
            signature: Signature64(signature.to_bytes()),
        })
    }

    /// Checks everything and decodes the body: the format version, that the body is a `T`,
    /// that `expected_signer` signed it (strict verification, which refuses weak keys and
    /// malleable signatures), and that the body is canonical.
    pub fn open<T: Signable>(&self, expected_signer: &VerifyingKey) -> Result<T, EnvelopeError> {
        if self.version != crate::FORMAT_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: self.version,
                supported: crate::FORMAT_VERSION,
            });
        }
        if self.domain != T::DOMAIN {
            return Err(EnvelopeError::WrongDomain {
                expected: T::DOMAIN.to_owned(),
                found: self.domain.clone(),
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
        if !is_canonical(&self.body) {
            return Err(EnvelopeError::NonCanonical);
        }
        Ok(from_cbor(&self.body, MAX_REQUEST_FRAME)?)
    }

    /// Checks the signature against the envelope's own `signer` and `domain`, without
    /// decoding the body. Useful to archive or forward an envelope; to act on one, use
    /// [`SignedEnvelope::open`] with the key the roster expects.
    pub fn verify_signature(&self) -> Result<(), EnvelopeError> {
        let key = self.signer.verifying_key()?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&signed_message(&self.domain, &self.body), &signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    /// BLAKE3 of the body bytes: what a receipt quotes to say what was received.
    pub fn body_hash(&self) -> Hash32 {
        Hash32::of(&self.body)
    }

    /// Canonical CBOR of the whole envelope, as sent on the wire and stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_canonical_cbor(self).expect("an envelope has no floats and no duplicate keys")
    }

    /// Decodes an envelope, refusing more than `max_len` bytes. Does not check the signature.
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Self, CodecError> {
        from_cbor(bytes, max_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Note {
        text: String,
    }
    impl Signable for Note {
        const DOMAIN: &'static str = "comity/test-note/v1";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OtherNote {
        text: String,
    }
    impl Signable for OtherNote {
        const DOMAIN: &'static str = "comity/test-other/v1";
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn note() -> Note {
        Note {
            text: "hello".into(),
        }
    }

    #[test]
    fn sign_then_open() {
        let k = key(1);
        let env = SignedEnvelope::sign(&note(), &k).unwrap();
        assert_eq!(env.open::<Note>(&k.verifying_key()).unwrap(), note());
        let again = SignedEnvelope::from_bytes(&env.to_bytes(), 1024).unwrap();
        assert_eq!(again, env);
        assert_eq!(env.body_hash(), Hash32::of(&env.body));
    }

    #[test]
    fn each_check_has_its_error() {
        let k = key(1);
        let env = SignedEnvelope::sign(&note(), &k).unwrap();
        let vk = k.verifying_key();

        let mut v = env.clone();
        v.version = 2;
        assert!(matches!(
            v.open::<Note>(&vk),
            Err(EnvelopeError::UnsupportedVersion { found: 2, .. })
        ));

        assert!(matches!(
            env.open::<OtherNote>(&vk),
            Err(EnvelopeError::WrongDomain { .. })
        ));

        let other = key(2).verifying_key();
        assert!(matches!(
            env.open::<Note>(&other),
            Err(EnvelopeError::UnexpectedSigner { .. })
        ));

        // Relabelling the domain breaks the signature: domains are signed.
        let mut relabelled = env.clone();
        relabelled.domain = OtherNote::DOMAIN.into();
        assert_eq!(
            relabelled.open::<OtherNote>(&vk),
            Err(EnvelopeError::BadSignature)
        );

        // A validly signed but non-canonical body is refused.
        let body = vec![0xa1, 0x64, b't', b'e', b'x', b't', 0x78, 0x01, b'x'];
        let sig = k.sign(&signed_message(Note::DOMAIN, &body));
        let loose = SignedEnvelope {
            body,
            signature: Signature64(sig.to_bytes()),
            ..env.clone()
        };
        assert_eq!(loose.open::<Note>(&vk), Err(EnvelopeError::NonCanonical));
    }

    #[test]
    fn wire_form_uses_byte_strings() {
        let env = SignedEnvelope::sign(&note(), &key(1)).unwrap();
        let value: ciborium::Value = crate::from_cbor(&env.to_bytes(), 1024).unwrap();
        for (k, v) in value.as_map().unwrap() {
            match k.as_text().unwrap() {
                "signer" => assert_eq!(v.as_bytes().map(Vec::len), Some(32)),
                "signature" => assert_eq!(v.as_bytes().map(Vec::len), Some(64)),
                "body" => assert!(v.is_bytes()),
                _ => {}
            }
        }
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["signer"], serde_json::json!(env.signer.to_string()));
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
}
