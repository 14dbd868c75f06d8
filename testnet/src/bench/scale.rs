//! `comity-testnet bench scale`: blocs of growing size on this machine, each measured the same
//! way — time until every member sees every other, resident memory and idle CPU per node, and
//! request latency between random pairs under a steady workload — so that the per-node cost
//! can be read against the number of members (the smallest bloc is the baseline the others
//! are set against).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_protocol::Jurisdiction;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::percentile_ms;
use crate::Bloc;

/// Sixty jurisdictions, in the order blocs of growing size take them.
pub const JURISDICTIONS: [&str; 60] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "AL", "AM", "AZ", "BA", "CH",
    "GE", "IS", "LI", "MC", "MD", "ME", "MK", "NO", "RS", "SM", "TR", "UA", "GB", "AD", "CA", "US",
    "JP", "AU", "NZ", "KR", "BR", "AR", "CL", "MX", "ZA", "MA", "SN", "IN",
];

#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Bloc sizes, measured one after another.
    pub members: Vec<usize>,
    /// Seconds after everyone is connected before idle CPU is measured: the pulls and
    /// comparisons on connect, and the first announcements, are over by then.
    pub settle_secs: u64,
    /// Seconds of quiet over which idle CPU is measured.
    pub idle_secs: u64,
    /// Requests of the steady workload, sent one after another between random pairs.
    pub requests: usize,
    /// Time between two requests of the workload.
    pub pace: Duration,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self {
            members: vec![5, 10, 20, 30, 50],
            settle_secs: 45,
            idle_secs: 30,
            requests: 200,
            pace: Duration::from_millis(50),
        }
    }
}

/// One bloc size's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePoint {
    pub members: usize,
    /// From the members started to every one of them seeing every other.
    pub connect_secs: f64,
    /// Resident memory per node after the idle window, MiB. RSS counts the pages of the
    /// binary every node maps (shared between the nodes of one machine); the proportional
    /// share (PSS) and the node's own memory (anonymous) are what one more node costs.
    pub rss_mib_mean: f64,
    pub rss_mib_max: f64,
    pub pss_mib_mean: f64,
    pub anon_mib_mean: f64,
    pub anon_mib_max: f64,
    /// CPU per idle node, in % of one core, over the idle window.
    pub idle_cpu_percent_mean: f64,
    pub idle_cpu_percent_max: f64,
    /// All the nodes together while idle, in % of the machine (all its cores).
    pub idle_cpu_percent_of_machine: f64,
    /// An approved draft sent → its verified receipt, between random pairs, one at a time.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScaleReport {
    pub points: Vec<ScalePoint>,
    /// Per-node memory (its own) and idle CPU of the largest bloc over those of the
    /// smallest: with growth no faster than linear, at most the ratio of their sizes.
    pub rss_growth: f64,
    pub idle_cpu_growth: f64,
    pub size_growth: f64,
    pub cores: usize,
}

/// CPU time a process has used, in clock ticks (utime + stime).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A figure of a `/proc` file of lines like `Name:   1234 kB`, in MiB.
pub(crate) fn proc_mib(file: &str, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Resident, proportional and anonymous memory of a process, MiB.
fn memory_mib(pid: u32) -> Option<(f64, f64, f64)> {
    Some((
        proc_mib(&format!("/proc/{pid}/status"), "VmRSS")?,
        proc_mib(&format!("/proc/{pid}/smaps_rollup"), "Pss")?,
        proc_mib(&format!("/proc/{pid}/status"), "RssAnon")?,
    ))
}

fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn max(values: &[f64]) -> f64 {
    values.iter().cloned().fold(f64::NAN, f64::max)
}

/// One bloc of `n` members, measured.
async fn point(
    n: usize,
    options: &ScaleOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ScalePoint> {
    let dir = tempfile::tempdir()?;
    let jurisdictions: Vec<Jurisdiction> = JURISDICTIONS[..n]
        .iter()
        .map(|j| j.parse())
        .collect::<Result<_, _>>()?;
    let mut bloc = Bloc::create_with(dir.path(), &jurisdictions, "testnet", |c| {
        crate::production_pacing(c, n)
    })
    .await?;
    let started = Instant::now();
    bloc.start_all()?;
    bloc.wait_connected(Duration::from_secs(120 + 4 * n as u64))
        .await?;
    let connect_secs = started.elapsed().as_secs_f64();
    progress(&format!("{n} members connected in {connect_secs:.1} s"));

    // Settle (pulls on connect, first announcements), then measure a quiet window.
    tokio::time::sleep(Duration::from_secs(options.settle_secs)).await;
    let pids: BTreeMap<Jurisdiction, u32> = jurisdictions
        .iter()
        .map(|j| Ok((j.clone(), bloc.pid(j.as_str())?)))
        .collect::<anyhow::Result<_>>()?;
    let before: BTreeMap<&Jurisdiction, u64> = pids
        .iter()
        .filter_map(|(j, pid)| Some((j, cpu_ticks(*pid)?)))
        .collect();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.idle_secs)).await;
    let seconds = window.elapsed().as_secs_f64();
    let tick = ticks_per_second();
    let idle: Vec<f64> = pids
        .iter()
        .filter_map(|(j, pid)| {
            let used = cpu_ticks(*pid)?.checked_sub(*before.get(j)?)?;
            Some(used as f64 / tick / seconds * 100.0)
        })
        .collect();
    let memory: Vec<(f64, f64, f64)> = pids.values().filter_map(|p| memory_mib(*p)).collect();
    let rss: Vec<f64> = memory.iter().map(|m| m.0).collect();
    let pss: Vec<f64> = memory.iter().map(|m| m.1).collect();
    let anon: Vec<f64> = memory.iter().map(|m| m.2).collect();
    if idle.len() != n || rss.len() != n {
        bail!("a node of the {n}-member bloc exited while idle; see the node.log files");
    }
    progress(&format!(
        "{n} members idle: {:.2} % of a core, {:.1} MiB resident ({:.1} MiB its own) per node",
        mean(&idle),
        mean(&rss),
        mean(&anon)
    ));

    // A steady workload between random pairs.
    let mut latencies = Vec::with_capacity(options.requests);
    let mut rng = rand::thread_rng();
    for _ in 0..options.requests {
        let pair: Vec<&Jurisdiction> = jurisdictions.choose_multiple(&mut rng, 2).collect();
        let (from, to) = (pair[0].as_str(), pair[1].as_str());
        let mut request = comity_protocol::examples::sample_request();
        request.requesting = pair[0].clone();
        request.executing = pair[1].clone();
        let drafts =
            super::approved_drafts_of(&bloc.client(from), &bloc.approver(from), request, 1).await?;
        let sent = Instant::now();
        let case = bloc
            .client(from)
            .send(drafts[0], Some(Duration::from_secs(30)))
            .await
            .with_context(|| format!("{from} → {to}"))?;
        if case.summary.state != "delivered" {
            bail!(
                "{from} → {to}: not delivered within 30 s ({})",
                case.summary.state
            );
        }
        latencies.push(sent.elapsed());
        tokio::time::sleep(options.pace).await;
    }
    latencies.sort();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    bloc.stop_all();
    Ok(ScalePoint {
        members: n,
        connect_secs,
        rss_mib_mean: mean(&rss),
        rss_mib_max: max(&rss),
        pss_mib_mean: mean(&pss),
        anon_mib_mean: mean(&anon),
        anon_mib_max: max(&anon),
        idle_cpu_percent_mean: mean(&idle),
        idle_cpu_percent_max: max(&idle),
        idle_cpu_percent_of_machine: idle.iter().sum::<f64>() / cores as f64,
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        requests: latencies.len(),
    })
}

pub async fn run(
    options: &ScaleOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ScaleReport> {
    if options
        .members
        .iter()
        .any(|n| *n < 2 || *n > JURISDICTIONS.len())
    {
        bail!(
            "bloc sizes must be between 2 and {} members",
            JURISDICTIONS.len()
        );
    }
    let mut sizes = options.members.clone();
    sizes.sort();
    sizes.dedup();
    let mut points = Vec::new();
    for n in sizes {
        points.push(point(n, options, progress).await?);
    }
    let (first, last) = (&points[0], &points[points.len() - 1]);
    let report = ScaleReport {
        rss_growth: last.anon_mib_mean / first.anon_mib_mean,
        idle_cpu_growth: last.idle_cpu_percent_mean / first.idle_cpu_percent_mean,
        size_growth: last.members as f64 / first.members as f64,
        cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        points,
    };
    super::every_figure_present(&report)?;
    Ok(report)
}
