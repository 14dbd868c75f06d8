//! Serde helpers that put binary values on the wire as CBOR byte strings.
//!
//! Serde's default for `[u8; N]` and `Vec<u8>` is an array of integers, which is larger and
//! which a second implementation could easily encode differently. Binary formats (ciborium says
//! it is not human-readable) get a byte string; human-readable formats (the JSON admin API) get
//! lowercase hex, which people can copy and compare.

use serde::de::{Error as _, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// `#[serde(with = "crate::bytes::fixed")]` for `[u8; N]`.
pub(crate) mod fixed {
    use super::*;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        super::vec::serialize(bytes.as_slice(), serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let bytes = super::vec::deserialize(deserializer)?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| D::Error::custom(format!("expected exactly {N} bytes, found {len}")))
    }
}

/// `#[serde(with = "crate::bytes::vec")]` for `Vec<u8>`.
pub(crate) mod vec {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor {
                human_readable: true,
            })
        } else {
            // `byte_buf`, not `bytes`: ciborium lends only byte strings that fit its 4 KiB
            // scratch buffer and refuses longer ones as `bytes`.
            deserializer.deserialize_byte_buf(BytesVisitor {
                human_readable: false,
            })
        }
    }
}

/// Accepts a byte string in binary formats and hex text in human-readable ones, and nothing
/// else: accepting text or an array of integers in CBOR would give one value two encodings.
struct BytesVisitor {
    human_readable: bool,
}

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string (or lowercase hex in JSON)")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        if !self.human_readable {
            return Err(E::invalid_type(serde::de::Unexpected::Str(v), &self));
        }
        hex::decode(v).map_err(|e| E::custom(format!("invalid hex: {e}")))
    }
}
