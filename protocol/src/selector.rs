//! Selectors: the typed identifiers a request asks about (an e-mail address, a phone number,
//! an IP address at a time, ...), their validation and their command-line text form.
//!
//! A selector is the part of a request that points at a person, so it is checked strictly:
//! a malformed one either identifies nobody or, worse, somebody else.
//!
//! On the wire a selector is an adjacently tagged map, `{"type": "email", "value":
//! "alice@example.org"}`, with `value` a map for the IP and account forms. The tag names are
//! the same as the prefixes of the text form.

use crate::ids::Timestamp;
use crate::limits::MAX_NAME;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use thiserror::Error;

/// A typed identifier of the data subject or of the data sought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(
    tag = "type",
    content = "value",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum Selector {
    /// An e-mail address: one `@`, a local part of 1 to 64 bytes, a valid domain.
    Email(String),
    /// A phone number in E.164: `+`, then 8 to 15 digits, the first not 0.
    Phone(String),
    /// An IP address, optionally with a port, at a point in time. The time is required: an
    /// address without one identifies nobody (addresses are shared and reassigned), and a port
    /// is often needed too behind carrier-grade NAT.
    Ip {
        #[serde(with = "ip_as_text")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "203.0.113.7"))]
        address: IpAddr,
        port: Option<u16>,
        at: Timestamp,
    },
    /// A handset IMEI: 15 digits with a valid Luhn check digit, or 14 digits without it.
    Imei(String),
    /// A subscriber IMSI: 14 or 15 digits.
    Imsi(String),
    /// An account at a named provider, e.g. a user name on a social network.
    Account { provider: String, account: String },
    /// A domain name: LDH labels of 1 to 63 bytes, at least two labels, at most 253 bytes.
    Domain(String),
}

/// Why a selector was refused, phrased so the person who typed it can correct it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    #[error(
        "unknown selector type {0:?}: use email:, phone:, ip:, imei:, imsi:, account: or domain:"
    )]
    UnknownType(String),
    #[error("missing selector type: write it as TYPE:VALUE, for example email:alice@example.org")]
    MissingType,
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> SelectorError {
    SelectorError::Invalid(msg.into())
}

impl Selector {
    /// The tag used on the wire and as the text prefix.
    pub fn type_code(&self) -> &'static str {
        match self {
            Selector::Email(_) => "email",
            Selector::Phone(_) => "phone",
            Selector::Ip { .. } => "ip",
            Selector::Imei(_) => "imei",
            Selector::Imsi(_) => "imsi",
            Selector::Account { .. } => "account",
            Selector::Domain(_) => "domain",
        }
    }

    /// Checks the value against the rules of its type. Deserializing does not run this (serde
    /// cannot report every problem at once); [`crate::AssistanceRequest::validate`] does.
    pub fn check(&self) -> Result<(), SelectorError> {
        match self {
            Selector::Email(v) => check_email(v),
            Selector::Phone(v) => check_phone(v),
            Selector::Ip { address, port, .. } => {
                if address.is_unspecified() {
                    return Err(invalid(format!(
                        "{address} is the unspecified address: give the address actually seen"
                    )));
                }
                if *port == Some(0) {
                    return Err(invalid(
                        "port 0 is never a real connection's port, so leave the port out if unknown",
                    ));
                }
                Ok(())
            }
            Selector::Imei(v) => check_imei(v),
            Selector::Imsi(v) => {
                if (14..=15).contains(&v.len()) && all_digits(v) {
                    Ok(())
                } else {
                    Err(invalid(format!("IMSI {v:?} must be 14 or 15 digits")))
                }
            }
            Selector::Account { provider, account } => {
                check_name("provider", provider)?;
                if provider.contains('/') {
                    return Err(invalid(format!(
                        "provider {provider:?} must not contain '/'"
                    )));
                }
                check_name("account", account)
            }
            Selector::Domain(v) => check_domain(v),
        }
    }

    /// A key under which two selectors naming the same thing compare equal: domain names are
    /// case-insensitive, so `alice@Example.org` duplicates `alice@example.org`.
    pub(crate) fn identity_key(&self) -> String {
        match self {
            Selector::Email(v) => match v.rsplit_once('@') {
                Some((local, domain)) => format!("email:{local}@{}", domain.to_ascii_lowercase()),
                None => self.to_string(),
            },
            Selector::Domain(v) => format!("domain:{}", v.to_ascii_lowercase()),
            _ => self.to_string(),
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn check_name(what: &str, v: &str) -> Result<(), SelectorError> {
    if v.trim().is_empty() {
        return Err(invalid(format!("{what} must not be empty")));
    }
    if v.len() > MAX_NAME {
        return Err(invalid(format!("{what} is longer than {MAX_NAME} bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

fn check_domain(v: &str) -> Result<(), SelectorError> {
    if v.len() > 253 {
        return Err(invalid(format!("domain {v:?} is longer than 253 bytes")));
    }
    let labels: Vec<&str> = v.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid(format!(
            "domain {v:?} needs at least two labels, like example.org"
        )));
    }
    for label in labels {
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ldh
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(invalid(format!(
                "domain {v:?} has an invalid label {label:?}: labels are 1 to 63 letters, digits or inner hyphens (write internationalised names in their xn-- form)"
            )));
        }
    }
    Ok(())
}

fn check_email(v: &str) -> Result<(), SelectorError> {
    let Some((local, domain)) = v.split_once('@') else {
        return Err(invalid(format!("e-mail address {v:?} has no '@'")));
    };
    if domain.contains('@') {
        return Err(invalid(format!(
            "e-mail address {v:?} has more than one '@'"
        )));
    }
    if local.is_empty() || local.len() > 64 {
        return Err(invalid(format!(
            "e-mail address {v:?}: the part before '@' must be 1 to 64 bytes"
        )));
    }
    if local.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(format!(
            "e-mail address {v:?} contains spaces or control characters"
        )));
    }
    check_domain(domain)
}

fn check_phone(v: &str) -> Result<(), SelectorError> {
    let digits = v.strip_prefix('+').unwrap_or("");
    if !(8..=15).contains(&digits.len()) || !all_digits(digits) || digits.starts_with('0') {
        return Err(invalid(format!(
            "phone number {v:?} must be in E.164 form: '+', the country code, then the number, 8 to 15 digits in all, without spaces (e.g. +33612345678)"
        )));
    }
    Ok(())
}

fn check_imei(v: &str) -> Result<(), SelectorError> {
    if !all_digits(v) || !(14..=15).contains(&v.len()) {
        return Err(invalid(format!(
            "IMEI {v:?} must be 15 digits (or 14 without the check digit)"
        )));
    }
    if v.len() == 15 && !luhn_valid(v) {
        return Err(invalid(format!(
            "IMEI {v:?} has a wrong check digit (a typing error?) a typing error"
        )));
    }
    Ok(())
}

/// The Luhn check used by IMEIs: doubling every second digit from the right.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Text form of the IP part: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_ip_and_port(s: &str) -> Result<(IpAddr, Option<u16>), SelectorError> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>().map(|ip| (ip, None)).map_err(|_| {
        invalid(format!(
            "{s:?} is not an IP address: write 192.0.2.1, 192.0.2.1:443 or [2001:db8::1]:443"
        ))
    })
}

impl FromStr for Selector {
    type Err = SelectorError;

    /// Parses the command-line form `TYPE:VALUE`, e.g. `email:alice@example.org`,
    /// `ip:[2001:db8::1]:443@2026-10-01T10:00:00Z` or `account:provider/name`, and checks it.
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        let (kind, value) = s.split_once(':').ok_or(SelectorError::MissingType)?;
        let selector = match kind.to_ascii_lowercase().as_str() {
            "email" => Selector::Email(value.to_owned()),
            "phone" => Selector::Phone(value.to_owned()),
            "imei" => Selector::Imei(value.to_owned()),
            "imsi" => Selector::Imsi(value.to_owned()),
            "domain" => Selector::Domain(value.to_owned()),
            "account" => {
                let (provider, account) = value.split_once('/').ok_or_else(|| {
                    invalid(format!("account {value:?} must be written provider/name"))
                })?;
                Selector::Account {
                    provider: provider.to_owned(),
                    account: account.to_owned(),
                }
            }
            "ip" => {
                let (addr, at) = value.rsplit_once('@').ok_or_else(|| {
                    invalid(format!(
                        "ip:{value} has no time, and an IP address identifies nobody without one: write ip:{value}@2026-10-01T10:00:00Z"
                    ))
                })?;
                let (address, port) = parse_ip_and_port(addr)?;
                let at = at
                    .parse::<Timestamp>()
                    .map_err(|e| invalid(e.to_string()))?;
                Selector::Ip { address, port, at }
            }
            _ => return Err(SelectorError::UnknownType(kind.to_owned())),
        };
        selector.check()?;
        Ok(selector)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let code = self.type_code();
        match self {
            Selector::Email(v)
            | Selector::Phone(v)
            | Selector::Imei(v)
            | Selector::Imsi(v)
            | Selector::Domain(v) => write!(f, "{code}:{v}"),
            Selector::Account { provider, account } => write!(f, "{code}:{provider}/{account}"),
            Selector::Ip { address, port, at } => match (address, port) {
                (IpAddr::V6(a), Some(p)) => write!(f, "{code}:[{a}]:{p}@{at}"),
                (a, Some(p)) => write!(f, "{code}:{a}:{p}@{at}"),
                (a, None) => write!(f, "{code}:{a}@{at}"),
            },
        }
    }
}

/// IP addresses as text on every format. Serde's own binary form is an enum of byte arrays,
/// which other CBOR implementations would have to imitate exactly.
mod ip_as_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::net::IpAddr;

    pub(super) fn serialize<S: Serializer>(ip: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(ip)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("{text:?} is not an IP address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let table = [
            "email:alice@example.org",
            "phone:+33612345678",
            "ip:192.0.2.1:443@2026-10-01T10:00:00.000Z",
            "ip:192.0.2.1@2026-10-01T10:00:00.000Z",
            "ip:[2001:db8::1]:443@2026-10-01T10:00:00.000Z",
            "ip:2001:db8::1@2026-10-01T10:00:00.000Z",
            "imei:490154203237518",
            "imei:49015420323751",
            "imsi:208150123456789",
            "account:mastodon.social/alice",
            "account:example-chat/team/alice",
            "domain:example.org",
        ];
        for text in table {
            let s: Selector = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.to_string(), text);
            let cbor = crate::to_canonical_cbor(&s).unwrap();
            assert_eq!(
                crate::from_cbor::<Selector>(&cbor, 1024).unwrap(),
                s,
                "{text}"
            );
        }
    }

    #[test]
    fn text_form_accepts_short_times_and_brackets() {
        let s: Selector = "ip:[2001:db8::1]@2026-10-01T10:00:00Z".parse().unwrap();
        let Selector::Ip { address, port, at } = s else {
            panic!()
        };
        assert_eq!(address, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(port, None);
        assert_eq!(at.as_millis(), 1_790_848_800_000);
    }

    #[test]
    fn invalid_selectors_are_refused_with_a_reason() {
        let table = [
            ("alice@example.org", "TYPE:VALUE"),
            ("fax:123", "unknown selector type"),
            ("email:alice", "no '@'"),
            ("email:a@b@example.org", "more than one"),
            ("email:@example.org", "1 to 64"),
            ("email:alice@localhost", "two labels"),
            ("email:alice@-bad.org", "invalid label"),
            ("phone:0612345678", "E.164"),
            ("phone:+0612345678", "E.164"),
            ("phone:+3361234", "E.164"),
            ("phone:+33 612345678", "E.164"),
            ("ip:192.0.2.1", "identifies nobody"),
            ("ip:192.0.2.1:443", "identifies nobody"),
            ("ip:192.0.2.300@2026-10-01T10:00:00Z", "not an IP address"),
            ("ip:192.0.2.1@yesterday", "invalid timestamp"),
            ("ip:0.0.0.0@2026-10-01T10:00:00Z", "unspecified"),
            ("ip:192.0.2.1:0@2026-10-01T10:00:00Z", "port 0"),
            ("imei:490154203237519", "check digit"),
            ("imei:4901542032", "15 digits"),
            ("imsi:2081501234", "14 or 15"),
            ("account:alice", "provider/name"),
            ("account:/alice", "provider must not be empty"),
            ("account:example/", "account must not be empty"),
            ("domain:example", "two labels"),
            ("domain:exa_mple.org", "invalid label"),
            ("domain:example..org", "invalid label"),
        ];
        for (text, expected) in table {
            let err = text.parse::<Selector>().unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{text}: got {err:?}, expected {expected:?}"
            );
        }
        let long_label = format!("domain:{}.org", "a".repeat(64));
        assert!(long_label.parse::<Selector>().is_err());
        let long_domain = format!("domain:{}org", "abcdefghi.".repeat(26));
        assert!(long_domain.parse::<Selector>().is_err());
    }

    #[test]
    fn wire_form_is_adjacently_tagged() {
        let email: Selector = "email:alice@example.org".parse().unwrap();
        assert_eq!(
            serde_json::to_value(&email).unwrap(),
            serde_json::json!({"type": "email", "value": "alice@example.org"})
        );
        let ip: Selector = "ip:192.0.2.1:443@2026-10-01T10:00:00Z".parse().unwrap();
        let json = serde_json::to_value(&ip).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "ip", "value": {"address": "192.0.2.1", "port": 443, "at": 1_790_848_800_000_i64}})
        );
        let bytes = crate::to_canonical_cbor(&ip).unwrap();
        assert_eq!(crate::from_cbor::<Selector>(&bytes, 1024).unwrap(), ip);
        let unknown = serde_json::json!({"type": "email", "value": "a@example.org", "extra": 1});
        assert!(serde_json::from_value::<Selector>(unknown).is_err());
    }
}
