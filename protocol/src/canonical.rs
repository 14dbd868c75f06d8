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
/// decode to, so that a value has exactly one accepted encoding: what signed bodies are read
/// with. The in-place check refuses most other forms cheaply; the decoded value is then
/// encoded again and compared, because serde also reads a struct from an array of its fields
/// (found by fuzzing), which no check of the bytes alone can tell from a list.
pub fn from_canonical_cbor<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    check_canonical(bytes)?;
    let value = from_cbor(bytes, max_len)?;
    if to_canonical_cbor(&value)? != bytes {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
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
    check_canonical(bytes).is_ok()
}
/// Deepest nesting a canonical check follows (ciborium's own decoder stops at 256).
const MAX_DEPTH: usize = 128;

/// Checks that `bytes` are exactly one item in core deterministic CBOR without floats, reading
/// them in place: no value tree, no copy, no allocation. Refuses non-shortest heads,
/// indefinite lengths, unsorted or repeated map keys, floats, simple values other than
/// false, true and null, invalid UTF-8 and anything after the item.
///
/// Comity's profile is narrower than CBOR's: map keys are text strings and there are no tags
/// (signed objects inside messages travel as byte strings). Serde reads a field or variant
/// name from a byte string or an index as well as from text, and a decoder drops most tags:
/// each would give a message a second encoding, found by fuzzing.
pub fn check_canonical(bytes: &[u8]) -> Result<(), CodecError> {
    check(bytes, true)
}

/// Whether `bytes` are one item in core deterministic CBOR (RFC 8949 §4.2.1) without floats,
/// whatever its keys and tags: for COSE structures, whose headers have integer keys and which
/// are tagged. Comity's own messages are checked with [`check_canonical`].
pub fn is_deterministic(bytes: &[u8]) -> bool {
    check(bytes, false).is_ok()
}

fn check(bytes: &[u8], profile: bool) -> Result<(), CodecError> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        profile,
    };
    reader.item(0)?;
    match bytes.len() - reader.pos {
        0 => Ok(()),
        count => Err(CodecError::TrailingBytes { count }),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Comity's profile: text keys, no tags.
    profile: bool,
}

fn truncated() -> CodecError {
    CodecError::Decode("the message ends in the middle of an item (truncated frame?)".to_owned())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], CodecError> {
        let n = usize::try_from(n).map_err(|_| truncated())?;
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let taken = self.bytes.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(taken)
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The initial byte's major type and the argument of its head, refused unless in its
    /// shortest form.
    fn head(&mut self) -> Result<(u8, u64), CodecError> {
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            return match info {
                20..=22 => Ok((7, u64::from(info))),
                25..=27 => Err(CodecError::Float),
                _ => Err(CodecError::NonCanonical),
            };
        }
        let (arg, least) = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => (u64::from(self.take(1)?[0]), 24),
            25 => (u64::from(u16::from_be_bytes(self.fixed()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.fixed()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.fixed()?), 0x1_0000_0000),
            31 => return Err(CodecError::NonCanonical), // indefinite length
            _ => {
                return Err(CodecError::Decode(format!(
                    "reserved additional information {info} at byte {}",
                    self.pos - 1
                )));
            }
        };
        if arg < least {
            return Err(CodecError::NonCanonical);
        }
        Ok((major, arg))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        Ok(self.take(N as u64)?.try_into().expect("took N bytes"))
    }

    fn item(&mut self, depth: usize) -> Result<(), CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::Decode("nested too deeply".to_owned()));
        }
        let (major, arg) = self.head()?;
        match major {
            0 | 1 | 7 => Ok(()),
            2 => self.take(arg).map(drop),
            3 => std::str::from_utf8(self.take(arg)?)
                .map(drop)
                .map_err(|_| CodecError::Decode("a text string is not valid UTF-8".to_owned())),
            4 => {
                // Every item takes a byte at least: a count beyond what is left is a lie.
                if arg > self.remaining() {
                    return Err(truncated());
                }
                (0..arg).try_for_each(|_| self.item(depth + 1))
            }
            5 => {
                if arg.saturating_mul(2) > self.remaining() {
                    return Err(truncated());
                }
                let mut previous: Option<(usize, usize)> = None;
                for _ in 0..arg {
                    let start = self.pos;
                    if self.profile && self.bytes.get(start).is_none_or(|b| b >> 5 != 3) {
                        return Err(CodecError::NonCanonical);
                    }
                    self.item(depth + 1)?;
                    let key = (start, self.pos);
                    if let Some((a, b)) = previous {
                        match self.bytes[a..b].cmp(&self.bytes[key.0..key.1]) {
                            std::cmp::Ordering::Less => {}
                            std::cmp::Ordering::Equal => {
                                return Err(CodecError::DuplicateKey {
                                    key: format!("{:02x?}", &self.bytes[key.0..key.1]),
                                });
                            }
                            std::cmp::Ordering::Greater => return Err(CodecError::NonCanonical),
                        }
                    }
                    previous = Some(key);
                    self.item(depth + 1)?;
                }
                Ok(())
            }
            6 if self.profile || arg == 2 || arg == 3 => Err(CodecError::NonCanonical),
            6 => self.item(depth + 1),
            _ => unreachable!("a major type has three bits"),
        }
    }
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
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The check as it was: decode into a value tree, sort, encode again, compare; and
    /// Comity's profile: text keys, no tags.
    fn canonical_by_tree(bytes: &[u8]) -> bool {
        let Ok(value) = from_cbor::<Value>(bytes, usize::MAX) else {
            return false;
        };
        in_profile(&value)
            && matches!(canonicalize(value).and_then(|v| encode(&v)), Ok(again) if again == bytes)
    }

    fn in_profile(value: &Value) -> bool {
        match value {
            Value::Tag(..) => false,
            Value::Array(items) => items.iter().all(in_profile),
            Value::Map(entries) => entries
                .iter()
                .all(|(k, v)| matches!(k, Value::Text(_)) && in_profile(v)),
            _ => true,
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| Value::Integer(n.into())),
            any::<u64>().prop_map(|n| Value::Integer(n.into())),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            ".{0,30}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..8)
                    .prop_map(Value::Map),
                (100u64..1000, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
            ]
        })
    }

    proptest! {
        /// Read in place, the check agrees with re-encoding the value tree, for values encoded
        /// as they come (maps unsorted, keys perhaps repeated) and canonically.
        #[test]
        fn the_check_in_place_agrees_with_the_tree(v in value()) {
            let raw = encode(&v).unwrap();
            prop_assert_eq!(is_canonical(&raw), canonical_by_tree(&raw));
            if in_profile(&v) && let Ok(canonical) = canonicalize(v).and_then(|v| encode(&v)) {
                prop_assert!(is_canonical(&canonical));
            }
        }

        /// On any bytes at all, the check in place is never laxer than the tree.
        #[test]
        fn arbitrary_bytes_are_never_accepted_that_the_tree_refuses(
            bytes in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            if is_canonical(&bytes) {
                prop_assert!(canonical_by_tree(&bytes), "{:02x?}", bytes);
            }
        }
    }

    #[test]
    fn names_as_bytes_or_indexes_and_tags_are_second_encodings_and_refused() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        struct Named {
            a: u8,
        }
        let text = to_canonical_cbor(&Named { a: 1 }).unwrap();
        assert_eq!(text, [0xa1, 0x61, b'a', 0x01]);
        assert!(is_canonical(&text));
        // The same struct with its field name as a byte string, or as its index: serde reads
        // both (fuzzing found the first).
        for other in [[0xa1, 0x41, b'a', 0x01].as_slice(), &[0xa1, 0x00, 0x01]] {
            assert_eq!(
                check_canonical(other),
                Err(CodecError::NonCanonical),
                "{other:02x?}"
            );
        }
        // A struct variant as an array of its fields: canonical CBOR (an array), read by serde
        // as the variant (fuzzing found it); only encoding the value again tells.
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "kebab-case")]
        enum Asked {
            Bloc { have: u64 },
        }
        let map = to_canonical_cbor(&Asked::Bloc { have: 0 }).unwrap();
        let array = [0xa1, 0x64, b'b', b'l', b'o', b'c', 0x81, 0x00];
        assert!(is_canonical(&array));
        assert_eq!(
            from_cbor::<Asked>(&array, 16).unwrap(),
            Asked::Bloc { have: 0 }
        );
        assert_eq!(
            from_canonical_cbor::<Asked>(&array, 16),
            Err(CodecError::NonCanonical)
        );
        assert_eq!(
            from_canonical_cbor::<Asked>(&map, 16).unwrap(),
            Asked::Bloc { have: 0 }
        );
        // A tag around a value: a decoder drops it.
        assert_eq!(
            check_canonical(&[0xd8, 0x64, 0x01]),
            Err(CodecError::NonCanonical)
        );
        // COSE structures keep their integer keys and tags: deterministic, not Comity's profile.
        assert!(is_deterministic(&[0xd2, 0xa1, 0x01, 0x27]));
    }

    #[test]
    fn a_deep_or_lying_item_is_refused_without_reading_past_the_input() {
        // 2^64 - 1 array items announced in nine bytes.
        let liar = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(check_canonical(&liar), Err(CodecError::Decode(_))));
        let deep = [vec![0x81; 10_000], vec![0x00]].concat();
        assert!(matches!(check_canonical(&deep), Err(CodecError::Decode(_))));
        // Bignums are integers to a decoder: never canonical as tags.
        assert!(!is_canonical(&[0xc2, 0x41, 0x01]));
        assert_eq!(check_canonical(&[0xfa, 0, 0, 0, 0]), Err(CodecError::Float));
    }

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
