//! `comity-testnet bench converge`: how fast two real nodes' replicas become identical after a
//! partition with pending events on both sides, and the sustained event throughput between
//! them; beside a bare libp2p echo of push-sized frames as the baseline. Like for like: one
//! request is one push and its signed receipt (one round trip, whatever events it carries),
//! against one echo round trip.

use std::time::{Duration, Instant};

use anyhow::Context;
use comity_node::admin::api::{Action, AdminClient};
use comity_protocol::{CaseId, Decision};
use futures::StreamExt;
use serde::Serialize;

use super::echo::{EchoClient, serve};
use super::{Drafts, approved_drafts};
use crate::Bloc;

#[derive(Clone, Debug)]
pub struct ConvergeOptions {
    /// Events written during the partition, half on each side.
    pub pending: usize,
    /// Requests sent for the sustained phase, 64 in flight (each one push and its receipt).
    pub sustained: usize,
}

impl Default for ConvergeOptions {
    fn default() -> Self {
        Self {
            pending: 1000,
            sustained: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConvergeReport {
    pub converge_ms: f64,
    pub pending_events: usize,
    /// Requests per second, 64 in flight, from sending to both replicas identical and both
    /// outboxes empty: each a push and its verified, durable receipt (one round trip).
    pub requests_per_s: f64,
    pub sustained_requests: usize,
    /// Bare libp2p request-response round trips per second, 64 in flight, push-sized frames,
    /// as many as Comity's requests.
    pub baseline_round_trips_per_s: f64,
    /// `requests_per_s` over `baseline_round_trips_per_s`.
    pub ratio: f64,
    pub cores: usize,
}

async fn send(client: &AdminClient, drafts: &Drafts, wait: Option<u64>) -> anyhow::Result<CaseId> {
    let id = drafts.next()?;
    client.send(id, wait.map(Duration::from_millis)).await?;
    Ok(id)
}

/// Polls until both replicas of every case agree; returns how long it took.
async fn until_converged(bloc: &Bloc, timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let pending: usize = {
            let mut n = 0;
            for j in ["FR", "DE"] {
                n += bloc.client(j).status().await?.outbox_depth;
            }
            n
        };
        if pending == 0 && bloc.divergence().await?.is_empty() {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < timeout,
            "replicas did not converge within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(
    options: &ConvergeOptions,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<ConvergeReport> {
    let dir = tempfile::tempdir()?;
    // The engine's capacity is measured: no rate budget caps the members.
    let mut bloc = Bloc::create_with(
        dir.path(),
        &["FR".parse()?, "DE".parse()?],
        "testnet",
        super::unbudgeted,
    )
    .await?;
    bloc.log_filter = "warn".into();
    bloc.start_all()?;
    bloc.wait_connected(Duration::from_secs(30))
        .await
        .context("starting the two nodes")?;
    let (fr, de) = (bloc.client("FR"), bloc.client("DE"));
    let half = options.pending / 2;
    // Four-eyes happens before: drafts are approved outside the measured parts.
    log("preparing approved drafts");
    let drafts = Drafts::new(
        approved_drafts(&fr, &bloc.approver("FR"), half * 2 + options.sustained).await?,
    );

    log(&format!("creating {half} delivered cases"));
    let earlier: Vec<CaseId> = futures::stream::iter(0..half)
        .map(|_| send(&fr, &drafts, Some(30_000)))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    until_converged(&bloc, Duration::from_secs(60)).await?;

    log(&format!(
        "partition: {half} new requests at FR, {half} decisions at DE"
    ));
    bloc.partition("FR", "DE", true).await?;
    let decide = Action::Decide {
        decision: Decision::Accept,
    };
    let new_cases = futures::stream::iter(0..half)
        .map(|_| send(&fr, &drafts, None))
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let decisions = futures::stream::iter(earlier.iter())
        .map(|id| de.act(*id, &decide))
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let (new_cases, decisions) = tokio::join!(new_cases, decisions);
    for created in new_cases {
        created?;
    }
    for decided in decisions {
        decided?;
    }

    log("healing the partition");
    bloc.partition("FR", "DE", false).await?;
    let converge = until_converged(&bloc, Duration::from_secs(120)).await?;

    log(&format!(
        "sustained: {} requests, 64 in flight",
        options.sustained
    ));
    let start = Instant::now();
    let created: Vec<anyhow::Result<CaseId>> = futures::stream::iter(0..options.sustained)
        .map(|_| send(&fr, &drafts, None))
        .buffer_unordered(64)
        .collect()
        .await;
    for c in created {
        c?;
    }
    until_converged(&bloc, Duration::from_secs(120)).await?;
    let sustained = start.elapsed();
    bloc.stop_all();

    log("baseline: bare libp2p echo, 64 in flight");
    let frame_len = super::push_frame_len()?;
    let (peer, addr) = serve().await?;
    let echo = EchoClient::connect(peer, addr).await?;
    let frame = vec![0x5a; frame_len];
    let count = options.sustained;
    let start = Instant::now();
    let echoed: Vec<anyhow::Result<Vec<u8>>> = futures::stream::iter(0..count)
        .map(|_| echo.echo(frame.clone()))
        .buffer_unordered(64)
        .collect()
        .await;
    for e in echoed {
        e?;
    }
    let baseline = count as f64 / start.elapsed().as_secs_f64();

    let requests_per_s = options.sustained as f64 / sustained.as_secs_f64();
    let report = ConvergeReport {
        converge_ms: converge.as_secs_f64() * 1000.0,
        pending_events: half * 2,
        requests_per_s,
        sustained_requests: options.sustained,
        baseline_round_trips_per_s: baseline,
        ratio: requests_per_s / baseline,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    super::every_figure_present(&report)?;
    Ok(report)
}
