//! The metrics listener (`[metrics] listen`): `GET /metrics` in the OpenMetrics text format,
//! and `/health` and `/ready` as on the admin API, without a token.
//!
//! Each scrape reads the node's state once (cases by state and role, outboxes, members and
//! their budgets, the audit log, the bloc configuration) and encodes it beside the counters
//! and histograms kept as things happen ([`crate::metrics`]). Labels are jurisdiction codes,
//! states and kinds: never a person, a selector or a case.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use comity_protocol::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::{AdminState, health};
use crate::store::Cf;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the metrics on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/health", get(health::alive))
        .route("/ready", get(health::ready))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener, so that a port in use stops the start with a clear error.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen} for metrics ([metrics] listen): {e} (is the port in use?)"
        )
    })
}

async fn scrape(State(state): State<AdminState>) -> Response {
    match Snapshot::read(&state).await {
        Ok(snapshot) => match crate::metrics::encode_with(Box::new(snapshot)) {
            Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
            Err(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "metrics scrape failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the node's state cannot be read now\n",
            )
                .into_response()
        }
    }
}

/// One member's figures at a scrape.
#[derive(Clone, Debug, Default)]
struct MemberFigures {
    connected: bool,
    outbox_messages: u64,
    outbox_events: u64,
    outbox_given_up: u64,
    oldest_queued_secs: f64,
    requests_in_hand: u64,
    request_share: u64,
    requests_turned_away: u64,
    /// Requests beyond the member's rate at the door: exchange, evidence, gossip.
    over_rate: [u64; 3],
}

/// What one scrape reads of the node's state.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    /// (state, role) → cases.
    cases: BTreeMap<(String, String), u64>,
    members: BTreeMap<String, MemberFigures>,
    bloc_version: Option<u64>,
    bloc_days_left: Option<i64>,
    bloc_expired: bool,
    audit_entries: u64,
    last_checkpoint_age_secs: Option<f64>,
}

impl Snapshot {
    async fn read(state: &AdminState) -> anyhow::Result<Self> {
        let net = state
            .network
            .status()
            .await
            .ok_or_else(|| anyhow::anyhow!("the network is stopping"))?;
        let bloc = state.cases.governance().status().await;
        let mut snapshot = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || Self::read_store(&state)).await??
        };
        snapshot.bloc_version = bloc.version;
        snapshot.bloc_days_left = bloc.days_left;
        snapshot.bloc_expired = bloc.expired;
        let roster = state.cases.roster();
        for member in roster.members() {
            if member.peer_id.to_string() == net.peer_id {
                continue;
            }
            let figures = snapshot
                .members
                .entry(member.jurisdiction.to_string())
                .or_default();
            let peer = member.peer_id.to_string();
            figures.connected = net.connected.contains(&peer);
            let (in_hand, share, turned_away) = state.cases.budget_usage(&member.peer_id);
            figures.requests_in_hand = in_hand as u64;
            figures.request_share = share as u64;
            figures.requests_turned_away = turned_away;
            if let Some((_, over)) = net.turned_away.iter().find(|(p, _)| *p == peer) {
                figures.over_rate = *over;
            }
        }
        Ok(snapshot)
    }

    /// The store's part: cases, outboxes, the audit log (off the async workers).
    fn read_store(state: &AdminState) -> anyhow::Result<Self> {
        let mut snapshot = Snapshot::default();
        for record in state.cases.list()? {
            let case_state = record
                .log
                .state
                .map(|s| s.to_string())
                .unwrap_or_else(|| "draft".into());
            *snapshot
                .cases
                .entry((case_state, record.role.to_string()))
                .or_default() += 1;
        }
        let now = Timestamp::now().as_millis();
        for (member, lag) in state.cases.outbox_by_member()? {
            let figures = snapshot.members.entry(member.to_string()).or_default();
            figures.outbox_given_up = lag.given_up as u64;
            figures.outbox_messages = (lag.pushes - lag.given_up) as u64;
            figures.outbox_events = (lag.events - lag.given_up_events) as u64;
            figures.oldest_queued_secs = lag.oldest.map_or(0.0, |at| {
                now.saturating_sub(at.as_millis()).max(0) as f64 / 1000.0
            });
        }
        snapshot.audit_entries = state
            .store
            .last(Cf::Audit)?
            .and_then(|(k, _)| <[u8; 8]>::try_from(&k[..]).ok())
            .map_or(0, |k| u64::from_be_bytes(k) + 1);
        snapshot.last_checkpoint_age_secs = crate::audit::latest_checkpoint(&state.store)?
            .and_then(|envelope| {
                comity_protocol::from_cbor::<comity_protocol::audit::Checkpoint>(
                    &envelope.body,
                    comity_protocol::limits::MAX_REQUEST_FRAME,
                )
                .ok()
            })
            .map(|c| now.saturating_sub(c.at.as_millis()).max(0) as f64 / 1000.0);
        Ok(snapshot)
    }
}

type Labels = Vec<(&'static str, String)>;

fn member(code: &str) -> Labels {
    vec![("member", code.to_owned())]
}

/// Encodes one family of gauges (or counters, with `counter`) from its rows.
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    counter: bool,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> fmt::Result {
    let kind = if counter {
        MetricType::Counter
    } else {
        MetricType::Gauge
    };
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    let rows: Vec<(Labels, f64)> = rows.into_iter().collect();
    if let [(labels, value)] = &rows[..]
        && labels.is_empty()
    {
        return encode_value(metric, counter, *value);
    }
    for (labels, value) in rows {
        encode_value(metric.encode_family(&labels)?, counter, value)?;
    }
    Ok(())
}

fn encode_value(
    encoder: prometheus_client::encoding::MetricEncoder,
    counter: bool,
    value: f64,
) -> fmt::Result {
    if counter {
        ConstCounter::new(value as u64).encode(encoder)
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Whole numbers are written as such (`3`, not `3.0`).
        ConstGauge::new(value as i64).encode(encoder)
    } else {
        ConstGauge::new(value).encode(encoder)
    }
}

fn one(value: f64) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value)]
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        let members = || self.members.iter();
        family(
            e,
            ("cases", "Cases held, by state and this node's role.", None),
            false,
            self.cases.iter().map(|((state, role), n)| {
                (
                    vec![("state", state.clone()), ("role", role.clone())],
                    *n as f64,
                )
            }),
        )?;
        family(
            e,
            (
                "member_connected",
                "Whether the member is connected (1) or not (0).",
                None,
            ),
            false,
            members().map(|(m, f)| (member(m), f64::from(u8::from(f.connected)))),
        )?;
        family(
            e,
            (
                "outbox_messages",
                "Messages waiting for the member's signed receipt.",
                None,
            ),
            false,
            members().map(|(m, f)| (member(m), f.outbox_messages as f64)),
        )?;
        family(
            e,
            (
                "replication_lag_events",
                "Case events sent to the member and not yet receipted by it.",
                None,
            ),
            false,
            members().map(|(m, f)| (member(m), f.outbox_events as f64)),
        )?;
        family(
            e,
            (
                "outbox_oldest_age",
                "Age of the oldest message waiting for the member (0 when none).",
                Some(&Unit::Seconds),
            ),
            false,
            members().map(|(m, f)| (member(m), f.oldest_queued_secs)),
        )?;
        family(
            e,
            (
                "outbox_given_up",
                "Messages no longer sent until an officer retries them (`comity case retry`).",
                None,
            ),
            false,
            members().map(|(m, f)| (member(m), f.outbox_given_up as f64)),
        )?;
        family(
            e,
            (
                "budget_requests_in_hand",
                "The member's requests this node is handling now.",
                None,
            ),
            false,
            members().map(|(m, f)| (member(m), f.requests_in_hand as f64)),
        )?;
        family(
            e,
            (
                "budget_request_share",
                "The member's share of the places for requests.",
                None,
            ),
            false,
            members().map(|(m, f)| (member(m), f.request_share as f64)),
        )?;
        family(
            e,
            (
                "budget_turned_away",
                "The member's requests answered `unavailable` since start: beyond its share of places (`places`) or its rate at the door (`exchange`, `evidence`, `gossip`).",
                None,
            ),
            true,
            members().flat_map(|(m, f)| {
                let budgets = [
                    ("places", f.requests_turned_away),
                    ("exchange", f.over_rate[0]),
                    ("evidence", f.over_rate[1]),
                    ("gossip", f.over_rate[2]),
                ];
                budgets.map(|(budget, n)| {
                    (
                        vec![("member", m.clone()), ("budget", budget.to_owned())],
                        n as f64,
                    )
                })
            }),
        )?;
        family(
            e,
            (
                "audit_log_entries",
                "Entries in this node's audit log.",
                None,
            ),
            false,
            one(self.audit_entries as f64),
        )?;
        if let Some(age) = self.last_checkpoint_age_secs {
            family(
                e,
                (
                    "audit_last_checkpoint_age",
                    "Age of this node's latest signed audit checkpoint.",
                    Some(&Unit::Seconds),
                ),
                false,
                one(age),
            )?;
        }
        if let Some(version) = self.bloc_version {
            family(
                e,
                (
                    "bloc_config_version",
                    "The bloc configuration version in force.",
                    None,
                ),
                false,
                one(version as f64),
            )?;
        }
        if let Some(days) = self.bloc_days_left {
            family(
                e,
                (
                    "bloc_config_days_to_expiry",
                    "Days until the bloc configuration in force expires (negative: expired).",
                    None,
                ),
                false,
                one(if self.bloc_expired {
                    days.min(-1)
                } else {
                    days
                } as f64),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_encodes_as_openmetrics_with_member_labels_only() {
        let mut snapshot = Snapshot::default();
        snapshot
            .cases
            .insert(("delivered".into(), "requester".into()), 3);
        snapshot.members.insert(
            "FI".into(),
            MemberFigures {
                connected: true,
                outbox_messages: 2,
                outbox_events: 5,
                oldest_queued_secs: 1.5,
                over_rate: [7, 0, 0],
                ..Default::default()
            },
        );
        snapshot.bloc_version = Some(4);
        snapshot.bloc_days_left = Some(12);
        let text = crate::metrics::encode_with(Box::new(snapshot)).unwrap();
        for line in [
            "comity_cases{state=\"delivered\",role=\"requester\"} 3",
            "comity_member_connected{member=\"FI\"} 1",
            "comity_outbox_messages{member=\"FI\"} 2",
            "comity_replication_lag_events{member=\"FI\"} 5",
            "comity_outbox_oldest_age_seconds{member=\"FI\"} 1.5",
            "comity_budget_turned_away_total{member=\"FI\",budget=\"exchange\"} 7",
            "comity_bloc_config_version 4",
            "comity_bloc_config_days_to_expiry 12",
            "# TYPE comity_store_commit_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // The families read at a scrape appear once, whatever was scraped before.
        let again = crate::metrics::encode_with(Box::new(Snapshot::default())).unwrap();
        assert_eq!(again.matches("# TYPE comity_cases gauge").count(), 1);
        assert!(!again.contains("member=\"FI\"} 2"));
    }
}
