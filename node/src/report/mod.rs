//! Transparency reports: aggregate statistics of the cases this node is party to, computed from
//! their logs' summaries, with no personal data — counts by partner, instrument, data category
//! and outcome; time to decision and to fulfilment; overdue cases; purges.
//!
//! Pure: it reads case records handed to it and formats the result.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comity_protocol::{Decision, Timestamp};
use serde::{Deserialize, Serialize};

use crate::cases::record::{CaseRecord, Role};

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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Hours from delivery to decision, and from decision to fulfilment.
    pub decision_hours_median: Option<f64>,
    pub decision_hours_p90: Option<f64>,
    pub fulfilment_hours_median: Option<f64>,
    pub fulfilment_hours_p90: Option<f64>,
    /// Cases of the period past a deadline now.
    pub overdue: u64,
    /// Cases whose content this node destroyed in the period.
    pub purges: u64,
}

fn bump(map: &mut BTreeMap<String, Counts>, key: String, role: Role) {
    let counts = map.entry(key).or_default();
    match role {
        Role::Requester => counts.sent += 1,
        Role::Executing => counts.received += 1,
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    Some((sorted[rank.min(sorted.len() - 1)] * 10.0).round() / 10.0)
}

/// Computes the report of `records` submitted within `period`. `overdue` tells whether a case
/// is past a deadline now.
pub fn compute(
    jurisdiction: &str,
    records: &[CaseRecord],
    period: Option<&Period>,
    overdue: impl Fn(&CaseRecord) -> bool,
) -> Report {
    let within = |t: Option<Timestamp>| match (period, t) {
        (None, Some(_)) => true,
        (Some(p), Some(t)) => p.from <= t && t < p.to,
        (_, None) => false,
    };
    let mut report = Report {
        jurisdiction: jurisdiction.to_owned(),
        period: period.cloned(),
        ..Report::default()
    };
    let (mut decision, mut fulfilment) = (Vec::new(), Vec::new());
    for r in records {
        if within(r.purged_at) {
            report.purges += 1;
        }
        if !within(r.log.submitted_at) {
            continue;
        }
        match r.role {
            Role::Requester => report.requests.sent += 1,
            Role::Executing => report.requests.received += 1,
        }
        bump(&mut report.by_partner, r.counterparty.to_string(), r.role);
        bump(
            &mut report.by_instrument,
            r.summary.instrument.to_string(),
            r.role,
        );
        for category in &r.summary.data_categories {
            bump(&mut report.by_data_category, category.to_string(), r.role);
        }
        let outcome = match (&r.log.decision, r.log.state) {
            (Some(Decision::Accept), _) => "accepted",
            (Some(Decision::Partial { .. }), _) => "partially-accepted",
            (Some(Decision::Refuse { .. }), _) => "refused",
            (None, Some(comity_protocol::CaseState::Withdrawn)) => "withdrawn",
            _ => "pending",
        };
        bump(&mut report.by_outcome, outcome.to_owned(), r.role);
        let hours = |from: Option<Timestamp>, to: Option<Timestamp>| {
            Some((to?.as_millis() - from?.as_millis()) as f64 / 3_600_000.0)
        };
        if let Some(h) = hours(r.log.delivered_at.or(r.log.submitted_at), r.log.decided_at) {
            decision.push(h);
        }
        if let Some(h) = hours(r.log.decided_at, r.log.fulfilled_at) {
            fulfilment.push(h);
        }
        if overdue(r) {
            report.overdue += 1;
        }
    }
    decision.sort_by(f64::total_cmp);
    fulfilment.sort_by(f64::total_cmp);
    report.decision_hours_median = percentile(&decision, 50.0);
    report.decision_hours_p90 = percentile(&decision, 90.0);
    report.fulfilment_hours_median = percentile(&fulfilment, 50.0);
    report.fulfilment_hours_p90 = percentile(&fulfilment, 90.0);
    report
}

impl Report {
    /// Every count as rows of (dimension, value, sent, received).
    fn rows(&self) -> Vec<(&'static str, String, u64, u64)> {
        let mut rows = vec![(
            "total",
            "requests".to_owned(),
            self.requests.sent,
            self.requests.received,
        )];
        for (dimension, map) in [
            ("partner", &self.by_partner),
            ("instrument", &self.by_instrument),
            ("data-category", &self.by_data_category),
            ("outcome", &self.by_outcome),
        ] {
            for (value, c) in map {
                rows.push((dimension, value.clone(), c.sent, c.received));
            }
        }
        rows
    }

    fn figures(&self) -> Vec<(&'static str, String)> {
        let hours = |h: Option<f64>| h.map(|h| format!("{h} h")).unwrap_or_else(|| "-".into());
        vec![
            (
                "time to decision, median",
                hours(self.decision_hours_median),
            ),
            (
                "time to decision, 90th percentile",
                hours(self.decision_hours_p90),
            ),
            (
                "time to fulfilment, median",
                hours(self.fulfilment_hours_median),
            ),
            (
                "time to fulfilment, 90th percentile",
                hours(self.fulfilment_hours_p90),
            ),
            ("overdue now", self.overdue.to_string()),
            ("purges", self.purges.to_string()),
        ]
    }

    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(["dimension", "value", "sent", "received"]);
        for (dimension, value, sent, received) in self.rows() {
            let _ =
                writer.write_record([dimension, &value, &sent.to_string(), &received.to_string()]);
        }
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    pub fn to_table(&self) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
            .set_header(vec!["dimension", "value", "sent", "received"]);
        for (dimension, value, sent, received) in self.rows() {
            table.add_row(vec![
                dimension.to_string(),
                value,
                sent.to_string(),
                received.to_string(),
            ]);
        }
        let mut out = format!(
            "Transparency report of {}{}\n{table}\n",
            self.jurisdiction,
            self.period
                .as_ref()
                .map(|p| format!(", {}", p.name))
                .unwrap_or_default()
        );
        for (name, value) in self.figures() {
            let _ = writeln!(out, "{name:<38} {value}");
        }
        out
    }

    pub fn to_html(&self) -> String {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut out = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Transparency report of {j}</title></head><body>\n<h1>Transparency report of {j}{p}</h1>\n<table>\n<tr><th>dimension</th><th>value</th><th>sent</th><th>received</th></tr>\n",
            j = escape(&self.jurisdiction),
            p = self
                .period
                .as_ref()
                .map(|p| format!(", {}", escape(&p.name)))
                .unwrap_or_default(),
        );
        for (dimension, value, sent, received) in self.rows() {
            let _ = writeln!(
                out,
                "<tr><td>{dimension}</td><td>{}</td><td>{sent}</td><td>{received}</td></tr>",
                escape(&value)
            );
        }
        out.push_str("</table>\n<dl>\n");
        for (name, value) in self.figures() {
            let _ = writeln!(out, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
        }
        out.push_str("</dl>\n</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_to_their_bounds() {
        let q: Period = "2026-Q4".parse().unwrap();
        assert_eq!(q.from, "2026-10-01T00:00:00Z".parse().unwrap());
        assert_eq!(q.to, "2027-01-01T00:00:00Z".parse().unwrap());
        let m: Period = "2026-02".parse().unwrap();
        assert_eq!(m.to, "2026-03-01T00:00:00Z".parse().unwrap());
        let y: Period = "2026".parse().unwrap();
        assert_eq!(y.to, "2027-01-01T00:00:00Z".parse().unwrap());
        assert!("2026-Q5".parse::<Period>().is_err());
        assert!("last year".parse::<Period>().is_err());
    }
}
