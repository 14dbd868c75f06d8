//! Transparency reports: aggregate statistics of one member's cases over a period, with no
//! personal data, and the signed form in which members publish them to the bloc.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::Signable;
use crate::ids::{Jurisdiction, Timestamp};

/// A reporting period: a year (`2026`), a quarter (`2026-Q3`) or a month (`2026-11`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a period: write 2026, 2026-Q3 or 2026-11");
        let (year, rest) = s.split_once('-').map_or((s, None), |(y, r)| (y, Some(r)));
        let year: i32 = year.parse().map_err(|_| bad())?;
        let (first, months) = match rest {
            None => (1, 12),
            Some(q) if q.starts_with('Q') => {
                let q: u8 = q[1..].parse().map_err(|_| bad())?;
                if !(1..=4).contains(&q) {
                    return Err(bad());
                }
                (3 * (q - 1) + 1, 3)
            }
            Some(m) => {
                let m: u8 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&m) {
                    return Err(bad());
                }
                (m, 1)
            }
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
pub struct Counts {
    pub sent: u64,
    pub received: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A member's report for a period, signed and published to the bloc.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedReport {
    pub issuer: Jurisdiction,
    pub issued_at: Timestamp,
    pub report: Report,
}

impl Signable for PublishedReport {
    const CONTENT_TYPE: &'static str = "application/comity.report.v1+cbor";
}
