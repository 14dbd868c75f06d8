//! The one byte encoding of every signed or hashed value: deterministic CBOR (RFC 8949
//! §4.2.1, "core deterministic encoding"), and bounded decoding.
//!
//! Signatures and hashes cover bytes, not values, so two nodes (or two implementations) must
//! produce identical bytes for identical values. Serde emits struct fields in declaration
//! order and maps in whatever order they were built; here map entries are sorted by the bytes
//! of their encoded keys, which makes the result independent of both. ciborium already emits
//! shortest-form integers and lengths and definite-length items. Floats are refused: the
//! protocol has none, and their shortest-form rules are where implementations disagree.

use ciborium::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why a value could not be encoded or bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error(
        "cannot encode a floating-point number: Comity messages use integers only (e.g. milliseconds, months)"
    )]
    Float,
    #[error("a map has the key {key} twice; each key may appear once in a signed message")]
    DuplicateKey { key: String },
    #[error("cannot encode value as CBOR: {0}")]
    Encode(String),
    #[error("message is {len} bytes, over the limit of {max}; the sender must split or shorten it")]
    TooLarge { len: usize, max: usize },
    #[error("malformed CBOR message: {0}")]
    Decode(String),
    #[error(
        "{count} unexpected bytes after the end of the CBOR message; frames carry exactly one item"
    )]
    TrailingBytes { count: usize },
    #[error(
        "CBOR message is not in canonical form (RFC 8949 §4.2.1): re-encode it with sorted map keys and shortest-form lengths"
    )]
    NonCanonical,
}

/// Encodes `value` in core deterministic CBOR.
pub fn to_canonical_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let value = Value::serialized(value).map_err(|e| CodecError::Encode(e.to_string()))?;
    let value = canonicalize(value)?;
    encode(&value)
}

/// Decodes one CBOR item of type `T` from `bytes`, refusing more than `max_len` bytes (before
/// parsing anything) and anything after the item. Does not require canonical form; use
/// [`from_canonical_cbor`] where the exact bytes matter.
pub fn from_cbor<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut rest = bytes;
    let value = ciborium::from_reader(&mut rest).map_err(describe_decode_error)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}

/// Like [`from_cbor`], and also refuses bytes that are not the canonical encoding of what they
/// contain, so that a value has exactly one accepted encoding.
pub fn from_canonical_cbor<T: DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, CodecError> {
    let value: Value = from_cbor(bytes, max_len)?;
    if encode(&canonicalize(value)?)? != bytes {
        return Err(CodecError::NonCanonical);
    }
    from_cbor(bytes, max_len)
}

/// The head of a definite-length byte string of `len` bytes, in shortest form (RFC 8949 §3.1).
pub fn bstr_head(len: usize) -> Vec<u8> {
    let len = len as u64;
    match len {
        0..=23 => vec![0x40 | len as u8],
        24..=0xff => vec![0x58, len as u8],
        0x100..=0xffff => [&[0x59][..], &(len as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[0x5a][..], &(len as u32).to_be_bytes()].concat(),
        _ => [&[0x5b][..], &len.to_be_bytes()].concat(),
    }
}

/// Whether `bytes` is exactly one CBOR item in core deterministic encoding, without floats.
pub fn is_canonical(bytes: &[u8]) -> bool {
    let Ok(value) = from_cbor::<Value>(bytes, usize::MAX) else {
        return false;
    };
    matches!(canonicalize(value).and_then(|v| encode(&v)), Ok(again) if again == bytes)
}

fn encode(value: &Value) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Sorts every map by encoded key, recursively; refuses floats and duplicate keys.
fn canonicalize(value: Value) -> Result<Value, CodecError> {
    Ok(match value {
        Value::Float(_) => return Err(CodecError::Float),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(canonicalize)
                .collect::<Result<_, _>>()?,
        ),
        Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonicalize(*inner)?)),
        Value::Map(entries) => {
            let mut keyed = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let k = canonicalize(k)?;
                keyed.push((encode(&k)?, k, canonicalize(v)?));
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(w) = keyed.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(CodecError::DuplicateKey {
                    key: format!("{:?}", w[0].1),
                });
            }
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        other => other,
    })
}

fn describe_decode_error(e: ciborium::de::Error<std::io::Error>) -> CodecError {
    use ciborium::de::Error;
    CodecError::Decode(match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the message ends in the middle of an item (truncated frame?)".to_owned()
        }
        Error::Io(io) => format!("read error: {io}"),
        Error::Syntax(offset) => format!("invalid CBOR syntax at byte {offset}"),
        Error::Semantic(Some(offset), msg) => format!("{msg} (at byte {offset})"),
        Error::Semantic(None, msg) => msg,
        Error::RecursionLimitExceeded => "nested too deeply".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_sort_by_encoded_bytes_so_shorter_keys_come_first() {
        let mut m = BTreeMap::new();
        m.insert("bb", 1u8);
        m.insert("a", 2);
        m.insert("ccc", 3);
        m.insert("b", 4);
        let bytes = to_canonical_cbor(&m).unwrap();
        let back: Value = from_cbor(&bytes, 100).unwrap();
        let keys: Vec<_> = back
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["a", "b", "bb", "ccc"]);
        assert!(is_canonical(&bytes));
    }

    #[test]
    fn floats_and_duplicates_are_refused() {
        assert_eq!(to_canonical_cbor(&1.5f64), Err(CodecError::Float));
        let dup = Value::Map(vec![
            (Value::Text("a".into()), Value::Integer(1.into())),
            (Value::Text("a".into()), Value::Integer(2.into())),
        ]);
        assert!(matches!(
            to_canonical_cbor(&dup),
            Err(CodecError::DuplicateKey { .. })
        ));
        let mut raw = Vec::new();
        ciborium::into_writer(&dup, &mut raw).unwrap();
        assert!(!is_canonical(&raw));
    }

    #[test]
    fn non_canonical_forms_are_detected() {
        // {"b": 1, "a": 2}: keys out of order.
        let unsorted = [0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02];
        assert!(!is_canonical(&unsorted));
        assert!(from_cbor::<BTreeMap<String, u8>>(&unsorted, 100).is_ok());
        assert_eq!(
            from_canonical_cbor::<BTreeMap<String, u8>>(&unsorted, 100),
            Err(CodecError::NonCanonical)
        );
        // 1 encoded on two bytes instead of one.
        assert!(!is_canonical(&[0x18, 0x01]));
        assert!(is_canonical(&[0x01]));
        // Indefinite-length array [1].
        assert!(!is_canonical(&[0x9f, 0x01, 0xff]));
    }

    #[test]
    fn decoding_is_bounded_and_exact() {
        let bytes = to_canonical_cbor(&"hello").unwrap();
        assert_eq!(
            from_cbor::<String>(&bytes, 3),
            Err(CodecError::TooLarge { len: 6, max: 3 })
        );
        let mut extra = bytes.clone();
        extra.push(0x00);
        assert_eq!(
            from_cbor::<String>(&extra, 100),
            Err(CodecError::TrailingBytes { count: 1 })
        );
        assert!(!is_canonical(&extra));
        let err = from_cbor::<String>(&bytes[..3], 100).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(matches!(
            from_cbor::<u8>(&bytes, 100),
            Err(CodecError::Decode(_))
        ));
    }
}
