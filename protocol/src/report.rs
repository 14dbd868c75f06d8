//! Transparency reports: aggregate statistics of one member's cases over a period, with no
//! personal data, and the signed form in which members publish them to the bloc.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::Signable;
use crate::ids::{Jurisdiction, Timestamp};

/// A reporting period: a year (`2026`), a quarter (`2026-Q3`) or a month (`2026-11`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Period {
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

impl std::str::FromStr for Period {
    type Err = String;
    /// Exactly `YYYY`, `YYYY-Qn` or `YYYY-MM` (a year from 1970, two-digit months): one name
    /// per period, so that a period cannot be stored again under another spelling.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a period: write 2026, 2026-Q3 or 2026-11");
        let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        let (year, rest) = s.split_once('-').map_or((s, None), |(y, r)| (y, Some(r)));
        if !digits(year, 4) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        if year < 1970 {
            return Err(bad());
        }
        let (first, months) = match rest {
            None => (1, 12),
            Some(q) if q.len() == 2 && q.starts_with('Q') => match q.as_bytes()[1] {
                n @ b'1'..=b'4' => (3 * (n - b'1') + 1, 3),
                _ => return Err(bad()),
            },
            Some(m) if digits(m, 2) => match m.parse::<u8>() {
                Ok(m @ 1..=12) => (m, 1),
                _ => return Err(bad()),
            },
            Some(_) => return Err(bad()),
        };
        let start = |y: i32, m: u8| -> Result<Timestamp, String> {
            let (y, m) = if m > 12 { (y + 1, m - 12) } else { (y, m) };
            format!("{y:04}-{m:02}-01T00:00:00Z")
                .parse()
                .map_err(|_| bad())
        };
        Ok(Period {
            name: s.to_owned(),
            from: start(year, first)?,
            to: start(year, first + months)?,
        })
    }
}

/// Counts of requests, by side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub jurisdiction: String,
    pub period: Option<Period>,
    /// Requests submitted in the period, sent and received.
    pub requests: Counts,
    pub by_partner: BTreeMap<String, Counts>,
    pub by_instrument: BTreeMap<String, Counts>,
    pub by_data_category: BTreeMap<String, Counts>,
    /// `accepted`, `partially-accepted`, `refused`, `withdrawn`, `pending`.
    pub by_outcome: BTreeMap<String, Counts>,
    /// Minutes from delivery to decision, and from decision to fulfilment (integers: the
    /// report is signed in canonical CBOR, which has no floats).
    pub decision_minutes_median: Option<u64>,
    pub decision_minutes_p90: Option<u64>,
    pub fulfilment_minutes_median: Option<u64>,
    pub fulfilment_minutes_p90: Option<u64>,
    /// Cases of the period past a deadline now.
    pub overdue: u64,
    /// Cases whose content this node destroyed in the period.
    pub purges: u64,
    /// Received requests the policy refused that officers went on with by an override
    /// (four-eyes, with a stated reason), and the overrides themselves.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overridden_cases: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overrides: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A member's report for a period, signed and published to the bloc.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishedReport {
    pub issuer: Jurisdiction,
    pub issued_at: Timestamp,
    pub report: Report,
}

impl Signable for PublishedReport {
    const CONTENT_TYPE: &'static str = "application/comity.report.v1+cbor";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_has_one_name() {
        let year: Period = "2026".parse().unwrap();
        assert_eq!(year.from.to_string(), "2026-01-01T00:00:00.000Z");
        assert_eq!(year.to.to_string(), "2027-01-01T00:00:00.000Z");
        let q4: Period = "2026-Q4".parse().unwrap();
        assert_eq!(q4.from.to_string(), "2026-10-01T00:00:00.000Z");
        assert_eq!(q4.to.to_string(), "2027-01-01T00:00:00.000Z");
        let december: Period = "2026-12".parse().unwrap();
        assert_eq!(december.to.to_string(), "2027-01-01T00:00:00.000Z");
        for other_spelling in [
            "+2026",
            "02026",
            "0002026",
            " 2026",
            "2026 ",
            "2026-1",
            "2026-001",
            "2026-+1",
            "2026-Q+1",
            "2026-Q01",
            "2026-q1",
            "2026-Q0",
            "2026-Q5",
            "2026-00",
            "2026-13",
            "1969",
            "2026-",
            "-2026",
            "",
            "２０２６",
        ] {
            assert!(
                other_spelling.parse::<Period>().is_err(),
                "{other_spelling:?} accepted"
            );
        }
    }
}
