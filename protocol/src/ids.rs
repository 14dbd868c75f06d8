//! Identifiers and scalar values every message carries: jurisdictions, case and message ids,
//! timestamps and content hashes.
//!
//! Each type validates itself when parsed or deserialized, so holding one means holding a
//! valid one; on the wire each has exactly one encoding, because signatures cover the bytes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use ulid::Ulid;

/// Why a textual identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("invalid jurisdiction {input:?}: {reason}")]
    Jurisdiction { input: String, reason: String },
    #[error(
        "invalid {what} {input:?}: expected a 26-character ULID such as 01KB0000000000000000000001 ({reason})"
    )]
    Ulid {
        what: &'static str,
        input: String,
        reason: String,
    },
    #[error(
        "invalid timestamp {input:?}: expected RFC 3339 such as 2026-10-01T10:00:00Z ({reason})"
    )]
    Timestamp { input: String, reason: String },
    #[error("invalid {what} {input:?}: expected {len} lowercase hex digits ({reason})")]
    Hex {
        what: &'static str,
        input: String,
        len: usize,
        reason: String,
    },
}

/// ISO 3166-1 alpha-2 codes officially assigned by the ISO 3166 Maintenance Agency (249
/// codes, sorted). Reserved codes such as `EU`, `UK` or `XK` are deliberately absent: a
/// jurisdiction must name a state or territory, and blocs name their bodies as `XX-BODY`.
#[rustfmt::skip]
pub const ASSIGNED_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ",
    "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW",
    "CX", "CY", "CZ",
    "DE", "DJ", "DK", "DM", "DO", "DZ",
    "EC", "EE", "EG", "EH", "ER", "ES", "ET",
    "FI", "FJ", "FK", "FM", "FO", "FR",
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT",
    "GU", "GW", "GY",
    "HK", "HM", "HN", "HR", "HT", "HU",
    "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT",
    "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ",
    "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS",
    "MT", "MU", "MV", "MW", "MX", "MY", "MZ",
    "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM",
    "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY",
    "QA",
    "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ",
    "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ",
    "UA", "UG", "UM", "US", "UY", "UZ",
    "VA", "VC", "VE", "VG", "VI", "VN", "VU",
    "WF", "WS",
    "YE", "YT",
    "ZA", "ZM", "ZW",
];

/// A jurisdiction: an assigned ISO 3166-1 alpha-2 code (`FR`), or a body defined by a bloc
/// within one (`FR-PNF`: the country code, a hyphen, then 2 to 12 upper-case letters or digits).
///
/// Stored upper-case. [`FromStr`] accepts lower case for people typing at a CLI; deserializing
/// does not, so a signed message has exactly one spelling of each jurisdiction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jurisdiction(String);

impl Jurisdiction {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166-1 alpha-2 country this jurisdiction belongs to (`FR` for `FR-PNF`).
    pub fn country(&self) -> &str {
        &self.0[..2]
    }

    /// The bloc-defined body, if this is one (`PNF` for `FR-PNF`).
    pub fn body(&self) -> Option<&str> {
        self.0.get(3..)
    }

    fn check(s: &str) -> Result<(), String> {
        let (country, body) = match s.split_once('-') {
            Some((c, b)) => (c, Some(b)),
            None => (s, None),
        };
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("expected a two-letter ISO 3166-1 code in upper case, such as FR, optionally followed by -BODY".into());
        }
        if ASSIGNED_ALPHA2.binary_search(&country).is_err() {
            return Err(format!(
                "{country} is not an assigned ISO 3166-1 alpha-2 code"
            ));
        }
        if let Some(body) = body {
            let ok_chars = body
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !(2..=12).contains(&body.len()) || !ok_chars {
                return Err(format!(
                    "body code {body:?} must be 2 to 12 upper-case letters or digits, as in FR-PNF"
                ));
            }
        }
        Ok(())
    }
}

impl FromStr for Jurisdiction {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::try_from(s.trim().to_ascii_uppercase())
    }
}

impl TryFrom<String> for Jurisdiction {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, IdError> {
        match Self::check(&s) {
            Ok(()) => Ok(Self(s)),
            Err(reason) => Err(IdError::Jurisdiction { input: s, reason }),
        }
    }
}

impl From<Jurisdiction> for String {
    fn from(j: Jurisdiction) -> String {
        j.0
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a ULID-backed identifier. ULIDs sort by creation time, which keeps case lists and
/// logs in a natural order, and need no coordination between nodes to stay unique.
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub Ulid);

        /// Read only in the form it is written (upper case): a ULID parser also takes lower
        /// case and look-alike letters, which would give one id several encodings in signed
        /// messages (found by fuzzing). Typed input (`FromStr`) stays lenient.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                let id: Self = text.parse().map_err(serde::de::Error::custom)?;
                if id.to_string() != text {
                    return Err(serde::de::Error::custom(format!(
                        "{} {text:?} is not in its one written form {id}",
                        $what
                    )));
                }
                Ok(id)
            }
        }

        impl $name {
            /// A fresh identifier for the current time.
            #[allow(clippy::new_without_default, reason = "a random id is not a default value")]
            pub fn new() -> Self {
                Self(Ulid::new())
            }

            /// A fixed identifier, for tests and golden vectors.
            pub const fn from_parts(ms: u64, random: u128) -> Self {
                Self(Ulid::from_parts(ms, random))
            }

            /// Creation time encoded in the identifier.
            pub fn timestamp(&self) -> Timestamp {
                Timestamp(i64::try_from(self.0.timestamp_ms()).unwrap_or(i64::MAX))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Ulid::from_string(s).map(Self).map_err(|e| IdError::Ulid {
                    what: $what,
                    input: s.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    };
}

ulid_id!(
    /// Identifies a case: one request and everything that follows from it, on both nodes.
    CaseId,
    "case id"
);
ulid_id!(
    /// Identifies one message, so a receiver can recognise a retransmission.
    MessageId,
    "message id"
);

/// A point in time as milliseconds since the Unix epoch, UTC.
///
/// An integer on the wire rather than text: it has one encoding, sorts numerically, and a
/// second implementation cannot disagree about time zones or fractional digits. Decoding also
/// accepts RFC 3339 text, for request files people write; a signed body holding text is still
/// refused, because it is not the canonical encoding.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Millis(i64),
            Text(String),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Millis(ms) => Ok(Timestamp(ms)),
            Repr::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Shape of [`Timestamp`]'s `Display`: always UTC, always milliseconds.
const DISPLAY_FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_offset_datetime(OffsetDateTime::now_utc())
    }

    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(&self) -> i64 {
        self.0
    }

    /// Truncates to the millisecond, the protocol's resolution.
    pub fn from_offset_datetime(t: OffsetDateTime) -> Self {
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        Self(i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX }))
    }

    /// Converts for display and calendar arithmetic. Values outside the years -9999..=9999
    /// (which no valid message contains) are clamped to that range rather than failing.
    pub fn to_offset_datetime(&self) -> OffsetDateTime {
        let min = time::PrimitiveDateTime::MIN.assume_utc();
        let max = time::PrimitiveDateTime::MAX.assume_utc();
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(if self.0 < 0 { min } else { max })
    }

    /// This time plus a duration, saturating rather than overflowing: deadlines are computed
    /// from peer-supplied times and must not panic.
    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let text = self
            .to_offset_datetime()
            .format(DISPLAY_FORMAT)
            .map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Timestamp {
    type Err = IdError;

    /// Parses RFC 3339 with any offset; precision below a millisecond is truncated.
    fn from_str(s: &str) -> Result<Self, IdError> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from_offset_datetime)
            .map_err(|e| IdError::Timestamp {
                input: s.to_owned(),
                reason: e.to_string(),
            })
    }
}

/// A 32-byte hash. BLAKE3 names message bodies (a receipt quotes the hash of what it
/// received), events and evidence; Merkle proofs (`crate::merkle`) carry SHA-256 values, as RFC
/// 9162 requires. A byte string on the wire, lowercase hex in text.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hash32(#[serde(with = "crate::bytes::fixed")] pub [u8; 32]);

impl Hash32 {
    /// BLAKE3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Hash32({self})")
    }
}

impl FromStr for Hash32 {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        parse_hex("hash", s).map(Self)
    }
}

/// Parses exactly `N` bytes of hex; shared by hashes, keys and signatures.
pub(crate) fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| IdError::Hex {
        what,
        input: s.to_owned(),
        len: N * 2,
        reason: e.to_string(),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_codes_are_sorted_and_unique() {
        assert!(ASSIGNED_ALPHA2.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn jurisdictions() {
        let table: &[(&str, Option<&str>)] = &[
            ("FR", Some("FR")),
            ("de", Some("DE")),
            (" fr-pnf ", Some("FR-PNF")),
            ("US-DOJ2024", Some("US-DOJ2024")),
            ("EU", None),  // reserved, not assigned
            ("UK", None),  // reserved, GB is assigned
            ("XX", None),  // unassigned
            ("FRA", None), // alpha-3
            ("F", None),
            ("", None),
            ("FR-", None),
            ("FR-P", None),
            ("FR-ABCDEFGHIJKLM", None),
            ("FR-P_F", None),
            ("FR-PNF-X", None),
        ];
        for (input, expected) in table {
            let got = input.parse::<Jurisdiction>().ok();
            assert_eq!(
                got.as_ref().map(|j| j.as_str()),
                *expected,
                "input {input:?}"
            );
        }
        let j: Jurisdiction = "FR-PNF".parse().unwrap();
        assert_eq!((j.country(), j.body()), ("FR", Some("PNF")));
    }

    #[test]
    fn jurisdiction_error_names_the_problem() {
        let err = "XX".parse::<Jurisdiction>().unwrap_err().to_string();
        assert!(err.contains("not an assigned ISO 3166-1"), "{err}");
    }

    #[test]
    fn jurisdiction_deserialize_is_strict() {
        let ok: Jurisdiction = serde_json::from_str("\"FR-PNF\"").unwrap();
        assert_eq!(ok.as_str(), "FR-PNF");
        assert!(serde_json::from_str::<Jurisdiction>("\"fr\"").is_err());
        assert!(serde_json::from_str::<Jurisdiction>("\"ZZ\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"FR-PNF\"");
    }

    #[test]
    fn a_ulid_id_is_read_from_the_wire_only_in_its_written_form() {
        let id = CaseId::from_parts(1_700_000_000_000, 42);
        let upper = crate::to_canonical_cbor(&id).unwrap();
        assert_eq!(crate::from_cbor::<CaseId>(&upper, 64).unwrap(), id);
        let lower = crate::to_canonical_cbor(&id.to_string().to_lowercase()).unwrap();
        let err = crate::from_cbor::<CaseId>(&lower, 64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("written form"), "{err}");
        // Typed by an officer, lower case is fine.
        assert_eq!(id.to_string().to_lowercase().parse::<CaseId>().unwrap(), id);
    }

    #[test]
    fn ulid_ids_round_trip() {
        let id = CaseId::from_parts(1_790_000_000_000, 42);
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text.parse::<CaseId>().unwrap(), id);
        assert_eq!(id.timestamp().as_millis(), 1_790_000_000_000);
        assert!("not-a-ulid".parse::<MessageId>().is_err());
        assert_ne!(MessageId::new(), MessageId::new());
    }

    #[test]
    fn timestamp_text() {
        let t = Timestamp::from_millis(1_795_735_321_123);
        assert_eq!(t.to_string(), "2026-11-26T23:22:01.123Z");
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        let offset: Timestamp = "2026-11-27T00:22:01.123+01:00".parse().unwrap();
        assert_eq!(offset, t);
        assert_eq!(
            Timestamp::from_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
        assert!("yesterday".parse::<Timestamp>().is_err());
        let from_text: Timestamp = serde_json::from_str("\"2026-11-26T23:22:01.123Z\"").unwrap();
        assert_eq!(from_text, Timestamp::from_millis(1_795_735_321_123));
        assert_eq!(serde_json::to_string(&from_text).unwrap(), "1795735321123");
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
        // Out-of-range values still display instead of panicking.
        let _ = Timestamp::from_millis(i64::MAX).to_string();
        assert_eq!(
            Timestamp::from_millis(i64::MAX).saturating_add(std::time::Duration::MAX),
            Timestamp::from_millis(i64::MAX)
        );
    }

    #[test]
    fn hash_text_and_wire() {
        let h = Hash32::of(b"comity");
        assert_eq!(h.to_string().parse::<Hash32>().unwrap(), h);
        assert!("abcd".parse::<Hash32>().is_err());
        let mut cbor = Vec::new();
        ciborium::into_writer(&h, &mut cbor).unwrap();
        // 0x58 0x20: a byte string of 32 bytes, not an array of integers.
        assert_eq!(&cbor[..2], &[0x58, 0x20]);
        assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{h}\""));
    }
}
