//! `comity-testnet bench exchange`: request → verified signed receipt between two real node
//! processes, with durable writes, beside a bare libp2p echo of the same frame size. Two
//! latencies: `p50_ms`, an approved draft sent → its verified receipt (what the protocol
//! costs), and `officer_path_p50_ms`, the officer's whole path — draft, a second officer's
//! approval, send → verified receipt — which is what a user waits for. Throughput runs the
//! same number of requests per level for Comity and the echo.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_node::admin::api::AdminClient;
use futures::StreamExt;
use serde::Serialize;

use super::echo::{EchoClient, serve};
use super::{Drafts, approved_drafts, percentile_ms};
use crate::Bloc;

#[derive(Clone, Debug)]
pub struct ExchangeOptions {
    /// Requests measured one at a time for the latency percentiles.
    pub sequential: usize,
    /// Requests per concurrency level for the throughput figures.
    pub per_level: usize,
}

impl Default for ExchangeOptions {
    fn default() -> Self {
        Self {
            sequential: 300,
            per_level: 2000,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ExchangeReport {
    /// Draft, approval by a second officer, send → verified receipt, one at a time.
    pub officer_path_p50_ms: f64,
    pub officer_path_p99_ms: f64,
    /// An approved draft sent → verified receipt, one at a time.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rps_1: f64,
    pub rps_16: f64,
    pub rps_64: f64,
    pub baseline_p50_ms: f64,
    pub baseline_p99_ms: f64,
    pub baseline_rps_1: f64,
    pub baseline_rps_16: f64,
    pub baseline_rps_64: f64,
    pub ratio_64: f64,
    pub frame_bytes: usize,
    /// Requests measured one at a time (each latency figure, and `rps_1`).
    pub sequential: usize,
    /// Requests measured at 16 and at 64 in flight, each, for Comity and for the echo.
    pub per_level: usize,
    /// Comity requests measured in all (warm-up excluded).
    pub requests: usize,
    pub cores: usize,
}

/// Runs `total` calls of `op` with `concurrency` in flight; returns each latency and the wall time.
async fn load<F, Fut>(
    concurrency: usize,
    total: usize,
    op: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..total)
        .map(|_| {
            let fut = op();
            async move {
                let t = Instant::now();
                fut.await?;
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let mut latencies = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    latencies.sort();
    Ok((latencies, elapsed))
}

/// The measured operation: send an approved draft and wait for the verified receipt.
async fn comity_request(client: &AdminClient, drafts: &Drafts) -> anyhow::Result<()> {
    let id = drafts.next()?;
    let case = client.send(id, Some(Duration::from_secs(30))).await?;
    verified(&case)
}

/// Whether the case came back with a receipt that verified.
fn verified(case: &comity_node::admin::api::CaseDetail) -> anyhow::Result<()> {
    match &case.receipt {
        Some(r) if r.signature_valid => Ok(()),
        _ => bail!(
            "case {} has no verified receipt after the wait ({})",
            case.summary.case_id,
            case.summary.state
        ),
    }
}

/// The officer's whole path: draft, approval by another officer, send → verified receipt.
async fn officer_path(client: &AdminClient, approver: &AdminClient) -> anyhow::Result<()> {
    let mut request = comity_protocol::examples::sample_request();
    request.requesting = "FR".parse()?;
    request.executing = "DE".parse()?;
    let case =
        crate::send_request(client, approver, request, Some(Duration::from_secs(30))).await?;
    verified(&case)
}

pub async fn run(
    options: &ExchangeOptions,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<ExchangeReport> {
    let dir = tempfile::tempdir()?;
    let jurisdictions = ["FR".parse()?, "DE".parse()?];
    // The engine's capacity is measured: no rate budget caps the members.
    let mut bloc =
        Bloc::create_with(dir.path(), &jurisdictions, "testnet", super::unbudgeted).await?;
    bloc.log_filter = "warn".into();
    bloc.start_all()?;
    bloc.wait_connected(Duration::from_secs(30))
        .await
        .context("starting the two nodes")?;
    let fr = bloc.client("FR");
    let approver = bloc.approver("FR");
    // For send → receipt, drafts are approved beforehand; the officer path below times
    // drafting and approval too.
    let phases = 200 + options.sequential * 2 + options.per_level * 2;
    log(&format!("preparing {phases} approved drafts"));
    let drafts = Drafts::new(approved_drafts(&fr, &approver, phases).await?);

    log("warming up");
    load(16, 200, || comity_request(&fr, &drafts)).await?;

    log("comity: the officer's path, sequential");
    let (officer, _) = load(1, options.sequential, || officer_path(&fr, &approver)).await?;
    log("comity: send → receipt, sequential");
    let (seq, _) = load(1, options.sequential, || comity_request(&fr, &drafts)).await?;
    let mut rps = Vec::new();
    for level in [1usize, 16, 64] {
        log(&format!("comity: {level} in flight"));
        let total = if level == 1 {
            options.sequential
        } else {
            options.per_level
        };
        let (_, elapsed) = load(level, total, || comity_request(&fr, &drafts)).await?;
        rps.push(total as f64 / elapsed.as_secs_f64());
    }
    bloc.stop_all();

    let frame_bytes = super::push_frame_len()?;
    let (peer, addr) = serve().await?;
    let echo = EchoClient::connect(peer, addr).await?;
    let frame = vec![0x5a; frame_bytes];
    log("baseline: warming up");
    load(16, 500, || echo_once(&echo, &frame)).await?;
    log("baseline: sequential latency");
    let (base_seq, _) = load(1, options.sequential, || echo_once(&echo, &frame)).await?;
    let mut base_rps = Vec::new();
    for level in [1usize, 16, 64] {
        log(&format!("baseline: {level} in flight"));
        let total = if level == 1 {
            options.sequential
        } else {
            options.per_level
        };
        let (_, elapsed) = load(level, total, || echo_once(&echo, &frame)).await?;
        base_rps.push(total as f64 / elapsed.as_secs_f64());
    }

    let report = ExchangeReport {
        officer_path_p50_ms: percentile_ms(&officer, 50.0),
        officer_path_p99_ms: percentile_ms(&officer, 99.0),
        p50_ms: percentile_ms(&seq, 50.0),
        p99_ms: percentile_ms(&seq, 99.0),
        rps_1: rps[0],
        rps_16: rps[1],
        rps_64: rps[2],
        baseline_p50_ms: percentile_ms(&base_seq, 50.0),
        baseline_p99_ms: percentile_ms(&base_seq, 99.0),
        baseline_rps_1: base_rps[0],
        baseline_rps_16: base_rps[1],
        baseline_rps_64: base_rps[2],
        ratio_64: rps[2] / base_rps[2],
        frame_bytes,
        sequential: options.sequential,
        per_level: options.per_level,
        requests: options.sequential * 3 + options.per_level * 2,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    super::every_figure_present(&report)?;
    Ok(report)
}

async fn echo_once(echo: &EchoClient, frame: &[u8]) -> anyhow::Result<()> {
    echo.echo(frame.to_vec()).await.map(|_| ())
}
