//! Transparency reports: aggregate statistics of the cases this node is party to, computed from
//! their logs' summaries, with no personal data — counts by partner, instrument, data category
//! and outcome; time to decision and to fulfilment; overdue cases; purges; overrides of the
//! policy (four-eyes).
//!
//! Computing and formatting are pure; `publish` and `collect` move signed reports through the
//! bloc's gossip topic, so that every member keeps every member's reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comity_protocol::Timestamp;
pub use comity_protocol::report::{Counts, Period, PublishedReport, Report};

use comity_protocol::{Jurisdiction, SignedEnvelope, limits};

use crate::cases::record::{CaseRecord, Role};
use crate::store::{Batch, Cf, Store};

fn bump(map: &mut BTreeMap<String, Counts>, key: String, role: Role) {
    let counts = map.entry(key).or_default();
    match role {
        Role::Requester => counts.sent += 1,
        Role::Executing => counts.received += 1,
    }
}

fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * (sorted.len() - 1) + 50) / 100;
    Some(sorted[rank.min(sorted.len() - 1)])
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
        if r.role == Role::Executing && r.log.overrides > 0 {
            report.overridden_cases += 1;
            report.overrides += u64::from(r.log.overrides);
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
            (Some(kind), _) => kind.outcome(),
            (None, Some(comity_protocol::CaseState::Withdrawn)) => "withdrawn",
            _ => "pending",
        };
        bump(&mut report.by_outcome, outcome.to_owned(), r.role);
        let minutes = |from: Option<Timestamp>, to: Option<Timestamp>| {
            Some((to?.as_millis().saturating_sub(from?.as_millis()).max(0) / 60_000) as u64)
        };
        if let Some(m) = minutes(r.log.delivered_at.or(r.log.submitted_at), r.log.decided_at) {
            decision.push(m);
        }
        if let Some(m) = minutes(r.log.decided_at, r.log.fulfilled_at) {
            fulfilment.push(m);
        }
        if overdue(r) {
            report.overdue += 1;
        }
    }
    decision.sort_unstable();
    fulfilment.sort_unstable();
    report.decision_minutes_median = percentile(&decision, 50);
    report.decision_minutes_p90 = percentile(&decision, 90);
    report.fulfilment_minutes_median = percentile(&fulfilment, 50);
    report.fulfilment_minutes_p90 = percentile(&fulfilment, 90);
    report
}

/// How reports are shown: a table, CSV or HTML.
pub trait ReportFormats {
    fn to_csv(&self) -> String;
    fn to_table(&self) -> String;
    fn to_html(&self) -> String;
}

/// Every count as rows of (dimension, value, sent, received).
fn rows(report: &Report) -> Vec<(&'static str, String, u64, u64)> {
    let mut rows = vec![(
        "total",
        "requests".to_owned(),
        report.requests.sent,
        report.requests.received,
    )];
    for (dimension, map) in [
        ("partner", &report.by_partner),
        ("instrument", &report.by_instrument),
        ("data-category", &report.by_data_category),
        ("outcome", &report.by_outcome),
    ] {
        for (value, c) in map {
            rows.push((dimension, value.clone(), c.sent, c.received));
        }
    }
    rows
}

fn figures(report: &Report) -> Vec<(&'static str, String)> {
    let minutes = |m: Option<u64>| m.map(|m| format!("{m} min")).unwrap_or_else(|| "-".into());
    vec![
        (
            "time to decision, median",
            minutes(report.decision_minutes_median),
        ),
        (
            "time to decision, 90th percentile",
            minutes(report.decision_minutes_p90),
        ),
        (
            "time to fulfilment, median",
            minutes(report.fulfilment_minutes_median),
        ),
        (
            "time to fulfilment, 90th percentile",
            minutes(report.fulfilment_minutes_p90),
        ),
        ("overdue now", report.overdue.to_string()),
        ("purges", report.purges.to_string()),
        (
            "policy overrides (cases)",
            format!("{} ({})", report.overrides, report.overridden_cases),
        ),
    ]
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl ReportFormats for Report {
    fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(["dimension", "value", "sent", "received"]);
        for (dimension, value, sent, received) in rows(self) {
            let _ =
                writer.write_record([dimension, &value, &sent.to_string(), &received.to_string()]);
        }
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    fn to_table(&self) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
            .set_header(vec!["dimension", "value", "sent", "received"]);
        for (dimension, value, sent, received) in rows(self) {
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
        for (name, value) in figures(self) {
            let _ = writeln!(out, "{name:<38} {value}");
        }
        out
    }

    fn to_html(&self) -> String {
        let mut out = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Transparency report of {j}</title></head><body>\n{body}</body></html>\n",
            j = escape(&self.jurisdiction),
            body = html_section(self),
        );
        out.shrink_to_fit();
        out
    }
}

/// One report as an HTML section (a table of counts and the figures), for pages that show
/// several.
pub fn html_section(report: &Report) -> String {
    let mut out = format!(
        "<h2>{j}{p}</h2>\n<table>\n<tr><th>dimension</th><th>value</th><th>sent</th><th>received</th></tr>\n",
        j = escape(&report.jurisdiction),
        p = report
            .period
            .as_ref()
            .map(|p| format!(", {}", escape(&p.name)))
            .unwrap_or_default(),
    );
    for (dimension, value, sent, received) in rows(report) {
        let _ = writeln!(
            out,
            "<tr><td>{dimension}</td><td>{}</td><td>{sent}</td><td>{received}</td></tr>",
            escape(&value)
        );
    }
    out.push_str("</table>\n<dl>\n");
    for (name, value) in figures(report) {
        let _ = writeln!(out, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
    }
    out.push_str("</dl>\n");
    out
}

/// The periods a node publishes reports for: the current month, quarter and year.
pub fn current_periods(now: Timestamp) -> Vec<Period> {
    let text = now.to_string();
    let (year, month) = (&text[..4], &text[5..7]);
    let quarter = (month.parse::<u8>().unwrap_or(1) - 1) / 3 + 1;
    [
        format!("{year}-{month}"),
        format!("{year}-Q{quarter}"),
        year.to_owned(),
    ]
    .iter()
    .filter_map(|p| p.parse().ok())
    .collect()
}

fn report_key(period: &str, member: &Jurisdiction) -> Vec<u8> {
    format!("{period}/{member}").into_bytes()
}

/// This node's report of its cases for `period` (every case when `None`).
pub fn of_cases(
    cases: &crate::cases::Cases,
    period: Option<&Period>,
) -> Result<Report, crate::cases::CaseError> {
    let records = match period {
        Some(p) => cases.active_since(p.from)?,
        None => cases.list()?,
    };
    let now = cases.now();
    Ok(compute(
        cases.jurisdiction().as_str(),
        &records,
        period,
        |r| cases.due(r, now).overdue.is_some(),
    ))
}

/// Every `every`, signs this node's reports for the current periods, keeps them beside the
/// members' and publishes them to the bloc.
pub async fn run_publisher(
    cases: crate::cases::Cases,
    store: Store,
    identity: crate::identity::NodeIdentity,
    network: crate::network::Client,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    let mut republish = crate::network::republish::Republish::new(
        every * crate::daemon::UNCHANGED_REPUBLISH_TICKS,
        every,
    );
    let mut connections = network.connections();
    loop {
        if !crate::network::republish::tick_or_connection(
            &mut tick,
            &mut connections,
            &mut republish,
        )
        .await
        {
            return;
        }
        let now = cases.now();
        let periods = current_periods(now);
        // One read of the cases active this year serves the three periods.
        let Some(from) = periods.iter().map(|p| p.from).min() else {
            continue;
        };
        let records = match cases.active_since(from) {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "could not compute this node's reports");
                continue;
            }
        };
        for period in periods {
            let report = compute(
                cases.jurisdiction().as_str(),
                &records,
                Some(&period),
                |r| cases.due(r, now).overdue.is_some(),
            );
            // Its figures, not the time it is issued at, say whether it changed.
            let Ok(figures) = comity_protocol::to_canonical_cbor(&report) else {
                continue;
            };
            if !republish.due(
                &period.name,
                *blake3::hash(&figures).as_bytes(),
                std::time::Instant::now(),
            ) {
                continue;
            }
            let published = PublishedReport {
                issuer: cases.jurisdiction().clone(),
                issued_at: now,
                report,
            };
            let Ok(signed) = SignedEnvelope::sign(&published, &identity.signing_key()) else {
                continue;
            };
            if let Err(e) = collect(
                &store,
                cases.jurisdiction(),
                signed.clone(),
                &published,
                now,
            )
            .await
            {
                tracing::warn!(error = %e, "could not keep this node's report");
            }
            if !network.publish(signed.to_bytes()).await {
                republish.unsent(&period.name);
            }
        }
    }
}

/// How far back a member's report is still kept: a member publishes only its current
/// periods, so older ones can only be replays; the bound keeps what one member can make every
/// other store (one report per period name, and names are canonical).
const KEPT_YEARS: i64 = 5;

/// Whether a report of `period` is kept at `now`: a canonical name that spells its bounds, a
/// period that has begun (a day of clock skew aside) and ended less than `KEPT_YEARS` ago.
pub fn keeps_period(period: &Period, now: Timestamp) -> bool {
    const DAY_MS: i64 = 86_400_000;
    let oldest = Timestamp::from_millis(now.as_millis().saturating_sub(KEPT_YEARS * 366 * DAY_MS));
    let skew = Timestamp::from_millis(now.as_millis().saturating_add(DAY_MS));
    period.name.parse::<Period>().ok().as_ref() == Some(period)
        && period.from <= skew
        && period.to >= oldest
}

/// Keeps a member's signed report if it is newer than the one held.
pub async fn collect(
    store: &Store,
    member: &Jurisdiction,
    envelope: SignedEnvelope,
    report: &PublishedReport,
    now: Timestamp,
) -> Result<bool, crate::store::StoreError> {
    let Some(period) = &report.report.period else {
        return Ok(false);
    };
    if !keeps_period(period, now) {
        return Ok(false);
    }
    let key = report_key(&period.name, member);
    if let Some(held) = store.get(Cf::Reports, &key)?
        && let Ok(held) = SignedEnvelope::from_bytes(&held, limits::MAX_RESPONSE_FRAME)
        && let Ok(held) =
            comity_protocol::from_cbor::<PublishedReport>(&held.body, limits::MAX_RESPONSE_FRAME)
        && held.issued_at >= report.issued_at
    {
        return Ok(false);
    }
    let mut batch = Batch::new();
    batch.put(Cf::Reports, key, envelope.to_bytes());
    store.commit(batch).await?;
    Ok(true)
}

/// The reports members published for `period` (already verified when collected).
pub fn collected(store: &Store, period: &str) -> Vec<Report> {
    store
        .scan_prefix(Cf::Reports, format!("{period}/").as_bytes())
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, v)| SignedEnvelope::from_bytes(v, limits::MAX_RESPONSE_FRAME).ok())
        .filter_map(|e| {
            comity_protocol::from_cbor::<PublishedReport>(&e.body, limits::MAX_RESPONSE_FRAME).ok()
        })
        .map(|p| p.report)
        .collect()
}

/// The reports of `period` that members published, each with its signed bytes as kept.
pub fn collected_signed(store: &Store, period: &str) -> Vec<(PublishedReport, Vec<u8>)> {
    store
        .scan_prefix(Cf::Reports, format!("{period}/").as_bytes())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, v)| {
            let envelope = SignedEnvelope::from_bytes(&v, limits::MAX_RESPONSE_FRAME).ok()?;
            let published = comity_protocol::from_cbor::<PublishedReport>(
                &envelope.body,
                limits::MAX_RESPONSE_FRAME,
            )
            .ok()?;
            Some((published, v))
        })
        .collect()
}

/// Whether a report that `signer` signed speaks of `signer` alone: a member publishes its own
/// figures, never another's (neither as the issuer nor as the report's jurisdiction).
fn attributed_to(signer: &Jurisdiction, published: &PublishedReport) -> Result<(), String> {
    if published.issuer != *signer {
        return Err(format!(
            "signed by {signer} but issued in the name of {}",
            published.issuer
        ));
    }
    if published.report.jurisdiction != signer.to_string() {
        return Err(format!(
            "signed by {signer} but gives the figures of {:?}",
            published.report.jurisdiction
        ));
    }
    Ok(())
}

/// Keeps the members' reports published on the bloc's gossip topic.
pub async fn run_collector(
    store: Store,
    network: crate::network::Client,
    membership: crate::roster::Membership,
) {
    let mut gossip = network.gossip();
    loop {
        let (source, data) = match gossip.recv().await {
            Ok(message) => message,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        };
        let roster = membership.current();
        let Some((member, verifying, envelope)) = roster.member_message(&source, &data) else {
            continue;
        };
        if envelope.content_type != <PublishedReport as comity_protocol::Signable>::CONTENT_TYPE {
            continue;
        }
        let published: PublishedReport = match envelope.open(&verifying) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(member = %member.jurisdiction, error = %e, "report refused: it does not verify");
                continue;
            }
        };
        if let Err(why) = attributed_to(&member.jurisdiction, &published) {
            tracing::warn!(member = %member.jurisdiction, %why, "report refused");
            continue;
        }
        if let Err(e) = collect(
            &store,
            &member.jurisdiction,
            envelope,
            &published,
            Timestamp::now(),
        )
        .await
        {
            tracing::warn!(error = %e, "could not keep a member's report");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(period: Option<&str>, at: &str, sent: u64) -> (SignedEnvelope, PublishedReport) {
        let mut report = compute("DE", &[], None, |_| false);
        report.period = period.map(|p| p.parse().unwrap());
        report.requests.sent = sent;
        let published = PublishedReport {
            issuer: "DE".parse().unwrap(),
            issued_at: at.parse().unwrap(),
            report,
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        (SignedEnvelope::sign(&published, &key).unwrap(), published)
    }

    #[test]
    fn a_report_must_speak_of_its_signer_alone() {
        let de: Jurisdiction = "DE".parse().unwrap();
        let fr: Jurisdiction = "FR".parse().unwrap();
        let (_, own) = published(Some("2026-11"), "2026-11-26T10:00:00Z", 5);
        assert_eq!(attributed_to(&de, &own), Ok(()));
        // Published by FR in DE's name, or by DE with FR's figures: refused.
        assert!(
            attributed_to(&fr, &own)
                .unwrap_err()
                .contains("in the name of DE")
        );
        let mut figures_of_fr = own.clone();
        figures_of_fr.report.jurisdiction = "FR".into();
        assert!(
            attributed_to(&de, &figures_of_fr)
                .unwrap_err()
                .contains("figures of \"FR\"")
        );
    }

    #[tokio::test]
    async fn the_newest_report_of_a_period_is_kept_and_malformed_periods_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let de: Jurisdiction = "DE".parse().unwrap();
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let collect = |e, p| {
            let (store, de) = (store.clone(), de.clone());
            async move { collect(&store, &de, e, &p, now).await.unwrap() }
        };
        let (e, p) = published(Some("2026-11"), "2026-11-26T10:00:00Z", 5);
        assert!(collect(e, p).await);
        let (e, p) = published(Some("2026-11"), "2026-11-26T09:00:00Z", 1);
        assert!(!collect(e, p).await, "older");
        let (e, p) = published(None, "2026-11-26T11:00:00Z", 1);
        assert!(!collect(e, p).await, "no period");
        let (e, mut p) = published(Some("2026-11"), "2026-11-26T11:00:00Z", 1);
        p.report.period.as_mut().unwrap().name = "2026-11/FR".into();
        assert!(!collect(e, p).await, "forged name");
        // The same month under another spelling, a future month, one ended over five years
        // ago: none is kept (each would be a new key, written with a synced batch).
        for (name, from, to) in [
            ("+2026-11", "2026-11-01", "2026-12-01"),
            ("2027-01", "2027-01-01", "2027-02-01"),
            ("2021-01", "2021-01-01", "2021-02-01"),
        ] {
            let (e, mut p) = published(Some("2026-11"), "2026-11-26T11:00:00Z", 1);
            let at = |d: &str| format!("{d}T00:00:00Z").parse().unwrap();
            p.report.period = Some(Period {
                name: name.into(),
                from: at(from),
                to: at(to),
            });
            assert!(!collect(e, p).await, "{name} kept");
        }
        let (e, p) = published(Some("2024-03"), "2026-11-26T11:00:00Z", 1);
        assert!(
            collect(e, p).await,
            "a past period within five years is kept"
        );
        let held = collected(&store, "2026-11");
        assert_eq!((held.len(), held[0].requests.sent), (1, 5));
        assert!(collected(&store, "2026-10").is_empty());
    }

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
