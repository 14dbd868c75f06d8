//! Scenarios as data: a TOML file of steps — workloads of requests between members, faults at
//! given times, waits, governance changes — run against a real testnet, with invariants
//! checked continuously while it runs and once more at the end:
//!
//! - every acknowledged request is held by both parties, exactly once;
//! - no member lists a case twice, and no case a member listed disappears from it;
//! - the replicas of every case are identical;
//! - every outbox drained (a message given up is no longer in it, and its case says why);
//! - every member's audit log verifies;
//! - every member within its memory budget, if the scenario sets one.
//!
//! A file may carry a `[short]` table: overrides, by step name, that make a scenario of
//! minutes into one the test suite can run (`--short`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_node::admin::api::{Action, AdminClient};
use comity_protocol::{CaseId, Jurisdiction};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::Bloc;
use crate::faults::{Fault, Span};

/// A scenario as its file says it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The founding members.
    pub members: Vec<Jurisdiction>,
    /// Whether members reach each other through the link layer (needed by link faults).
    #[serde(default = "yes")]
    pub links: bool,
    /// Each member in a network namespace of its own (`up --links netns`, needs root): link
    /// faults act on real packets in the kernel instead of the proxies (which this replaces).
    #[serde(default)]
    pub netns: bool,
    /// Each member's store on a small disk of this many MiB (needed by disk faults).
    #[serde(default)]
    pub disk_mib: Option<u64>,
    /// Outbox retries: the first delay (doubling up to the node's cap), if not the default.
    #[serde(default)]
    pub initial_backoff: Option<Span>,
    /// Time allowed, after the last step, for every outbox to drain and every replica to
    /// agree before the final checks.
    #[serde(default = "default_settle")]
    pub settle: Span,
    /// `production`: members announce and run their safety nets at a real bloc's pace (every
    /// 30, 60 and 300 s); `testnet` (the default): every few seconds, for quick scenarios. A
    /// bloc of dozens on one machine needs the first.
    #[serde(default)]
    pub pacing: Pacing,
    /// Each node's resident memory must stay under this many MiB.
    #[serde(default)]
    pub max_rss_mib: Option<u64>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    /// Overrides of the shortened form, by step name (read by [`Scenario::load`]).
    #[serde(default)]
    pub short: toml::Table,
}

fn yes() -> bool {
    true
}

fn default_settle() -> Span {
    Span(60_000)
}

/// One step: when it starts (since the scenario's start; at once after the one before
/// otherwise) and what it does.
#[derive(Clone, Debug, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub at: Option<Span>,
    #[serde(flatten)]
    pub action: StepAction,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum StepAction {
    /// Requests sent in the background while the next steps run.
    Workload(Workload),
    /// A fault, as `comity-testnet fault` takes it.
    Fault {
        #[serde(flatten)]
        fault: Fault,
    },
    /// Nothing for a while.
    Wait {
        #[serde(rename = "for")]
        span: Span,
    },
    /// Until every workload so far has sent its requests and driven their cases.
    AwaitWorkloads,
    /// A new member prepared with the bloc's anchor, started, and added by governance.
    Join {
        member: Jurisdiction,
        via: Jurisdiction,
    },
    /// A member removed by governance (the others sign), then stopped.
    Remove { member: Jurisdiction },
    /// Sabotage, to show the checks work: the `nth` acknowledged request deleted from the
    /// stores of both its parties behind their backs (each stopped, edited, started).
    DeleteCase { nth: usize },
}

/// Requests between members, sent one after another at a pace.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Requests sent in all.
    pub requests: usize,
    /// Requester → executing pairs, as "FR>DE"; random pairs of running members otherwise.
    #[serde(default)]
    pub pairs: Vec<String>,
    /// Time between two sends.
    #[serde(default)]
    pub pace: Option<Span>,
    /// How far each case is taken: sent; accepted by the executing side; fulfilled (the
    /// data provided).
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pacing {
    #[default]
    Testnet,
    Production,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    #[default]
    Send,
    Accept,
    Fulfil,
}

impl Scenario {
    /// Reads a scenario file; with `short`, its `[short]` overrides applied to the steps they
    /// name.
    pub fn load(path: &Path, short: bool) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?;
        Self::parse(&text, short).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str, short: bool) -> anyhow::Result<Self> {
        let mut table: toml::Table = text.parse()?;
        if short {
            let overrides = table
                .get("short")
                .and_then(|s| s.as_table())
                .cloned()
                .unwrap_or_default();
            let mut used = BTreeSet::new();
            for (key, value) in &overrides {
                match value {
                    // A step by its name.
                    toml::Value::Table(fields) => {
                        let steps = table
                            .get_mut("step")
                            .and_then(|s| s.as_array_mut())
                            .context("[short] names steps, but the scenario has none")?;
                        for step in steps.iter_mut().filter_map(|s| s.as_table_mut()) {
                            if step.get("name").and_then(|n| n.as_str()) == Some(key) {
                                step.extend(fields.clone());
                                used.insert(key.clone());
                            }
                        }
                    }
                    // A setting of the scenario itself.
                    other => {
                        table.insert(key.clone(), other.clone());
                        used.insert(key.clone());
                    }
                }
            }
            if let Some(unused) = overrides.keys().find(|k| !used.contains(*k)) {
                bail!("[short] overrides {unused:?}, which names no step of the scenario");
            }
        }
        let scenario = Scenario::deserialize(toml::Value::Table(table))?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.members.len() < 2 {
            bail!("a scenario needs at least two members");
        }
        let mut last = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(at) = step.at {
                if at.millis() < last {
                    bail!("step {} starts at {at}, before the step above it", i + 1);
                }
                last = at.millis();
            }
            if let StepAction::Workload(w) = &step.action {
                for pair in &w.pairs {
                    parse_pair(pair)?;
                }
            }
            if let StepAction::Wait { span } = &step.action {
                span.duration()?;
            }
        }
        Ok(())
    }
}

fn parse_pair(text: &str) -> anyhow::Result<(Jurisdiction, Jurisdiction)> {
    let (from, to) = text
        .split_once('>')
        .with_context(|| format!("{text:?} is not a pair like \"FR>DE\""))?;
    Ok((from.trim().parse()?, to.trim().parse()?))
}

/// What a run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub form: &'static str,
    pub members: usize,
    pub seconds: f64,
    /// Requests an officer was told were sent (a case id came back).
    pub acknowledged: usize,
    /// Requests whose sending failed with an error the officer saw (not a violation).
    pub not_acknowledged: usize,
    /// Cases taken as far as their workload's lifecycle asked.
    pub lifecycles_completed: usize,
    /// Cases taken only part of the way, each with the last error.
    pub lifecycles_unfinished: Vec<String>,
    /// Milliseconds from an officer's send to the case acknowledged, median and 99th.
    pub send_p50_ms: f64,
    pub send_p99_ms: f64,
    /// From the start of the last step (a heal, say) to every workload done, every outbox
    /// drained and every replica agreeing.
    pub settled_secs: f64,
    /// The largest resident memory seen per member, MiB.
    pub max_rss_mib: BTreeMap<String, f64>,
    /// The steps as they ran: seconds since the start and what.
    pub timeline: Vec<(f64, String)>,
    /// Every invariant found broken, each naming what broke it.
    pub violations: Vec<String>,
}

/// An acknowledged request.
#[derive(Clone, Debug)]
struct Sent {
    case: CaseId,
    from: Jurisdiction,
    to: Jurisdiction,
}

#[derive(Default)]
struct Shared {
    sent: Vec<Sent>,
    failed: usize,
    latencies: Vec<Duration>,
    completed: usize,
    unfinished: Vec<String>,
    violations: BTreeSet<String>,
    /// Cases each member has listed: one that disappears is lost.
    seen: BTreeMap<Jurisdiction, BTreeSet<CaseId>>,
    max_rss: BTreeMap<Jurisdiction, u64>,
    /// Members removed by governance: no longer checked.
    removed: BTreeSet<Jurisdiction>,
}

/// Runs `scenario` in a new testnet under `dir`, printing progress through `progress`.
pub async fn run(
    scenario: &Scenario,
    short: bool,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ScenarioReport> {
    let members = scenario.members.len();
    let (backoff, pacing) = (scenario.initial_backoff, scenario.pacing);
    let adjust = |c: &mut comity_node::config::Config| {
        if let Some(b) = backoff {
            c.outbox.initial_backoff_ms = b.millis().max(1) as u64;
        }
        if pacing == Pacing::Production {
            crate::production_pacing(c, members);
        }
    };
    let mut bloc = if scenario.netns {
        Bloc::create_in_namespaces(dir, &scenario.members, "testnet", adjust).await
    } else {
        Bloc::create_with(dir, &scenario.members, "testnet", adjust).await
    }
    .context("creating the testnet")?;
    if let Some(mib) = scenario.disk_mib {
        for j in &scenario.members {
            bloc.small_disk(j.as_str(), mib)?;
        }
    }
    if scenario.links && !scenario.netns {
        bloc.run_links().await?;
    }
    bloc.start_all()?;
    bloc.wait_connected(Duration::from_secs(60 + scenario.members.len() as u64))
        .await?;
    progress(&format!("{} members connected", scenario.members.len()));
    let bloc = Arc::new(tokio::sync::Mutex::new(bloc));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let started = Instant::now();
    let mut timeline = Vec::new();

    let monitor = tokio::spawn(watch(bloc.clone(), shared.clone(), scenario.max_rss_mib));
    let mut workloads = JoinSet::new();
    let mut last_step = Instant::now();
    // Cases are driven until the last step has started and the settling time passed (a case
    // sent into a ten-minute partition is accepted after it), and two minutes more.
    let last_at = scenario
        .steps
        .iter()
        .filter_map(|s| s.at)
        .map(|a| a.millis().max(0) as u64)
        .max()
        .unwrap_or(0);
    let lifecycle_deadline = started
        + Duration::from_millis(last_at)
        + scenario.settle.duration()?
        + Duration::from_secs(120);
    for (i, step) in scenario.steps.iter().enumerate() {
        if let Some(at) = step.at {
            let at = at.duration()?;
            tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        }
        let what = describe(step, i);
        last_step = Instant::now();
        progress(&what);
        timeline.push((started.elapsed().as_secs_f64(), what.clone()));
        match &step.action {
            StepAction::Workload(w) => {
                let members = scenario.members.clone();
                workloads.spawn(workload(
                    bloc.clone(),
                    shared.clone(),
                    w.clone(),
                    members,
                    lifecycle_deadline,
                ));
            }
            StepAction::Fault { fault } => {
                bloc.lock().await.apply(fault).await?;
            }
            StepAction::Wait { span } => tokio::time::sleep(span.duration()?).await,
            StepAction::AwaitWorkloads => {
                while let Some(done) = workloads.join_next().await {
                    done??;
                }
            }
            StepAction::Join { member, via } => join(&bloc, member, via).await?,
            StepAction::Remove { member } => {
                remove(&bloc, member).await?;
                shared.lock().unwrap().removed.insert(member.clone());
            }
            StepAction::DeleteCase { nth } => {
                let sent = shared.lock().unwrap().sent.get(*nth).cloned();
                let sent = sent.with_context(|| {
                    format!("delete-case: fewer than {} requests acknowledged", nth + 1)
                })?;
                delete_case(&bloc, &sent).await?;
            }
        }
    }
    progress("settling: workloads finishing, outboxes draining, replicas converging");
    while let Some(done) = workloads.join_next().await {
        done??;
    }
    let settled = settle(&bloc, &shared, scenario.settle.duration()?).await;
    let settled_secs = last_step.elapsed().as_secs_f64();
    monitor.abort();
    check(&bloc, &shared).await;
    if let Err(e) = settled {
        shared.lock().unwrap().violations.insert(e);
    }
    // The audit logs, read by `comity audit verify` with each node stopped.
    {
        let mut bloc = bloc.lock().await;
        let removed = shared.lock().unwrap().removed.clone();
        bloc.stop_all();
        let members: Vec<_> = bloc.nodes.values().cloned().collect();
        for node in members {
            if removed.contains(&node.jurisdiction) {
                continue;
            }
            if let Err(problem) = verify_audit(&bloc, &node.config).await {
                shared
                    .lock()
                    .unwrap()
                    .violations
                    .insert(format!("{}: {problem}", node.jurisdiction));
            }
        }
    }

    let shared = shared.lock().unwrap();
    let mut latencies = shared.latencies.clone();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * p / 100.0) as usize)
                    .min(latencies.len().saturating_sub(1)),
            )
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(ScenarioReport {
        name: scenario.name.clone(),
        form: if short { "short" } else { "full" },
        members: scenario.members.len(),
        seconds: started.elapsed().as_secs_f64(),
        acknowledged: shared.sent.len(),
        not_acknowledged: shared.failed,
        lifecycles_completed: shared.completed,
        lifecycles_unfinished: shared.unfinished.clone(),
        send_p50_ms: percentile(50.0),
        send_p99_ms: percentile(99.0),
        settled_secs,
        max_rss_mib: shared
            .max_rss
            .iter()
            .map(|(j, kib)| (j.to_string(), *kib as f64 / 1024.0))
            .collect(),
        timeline,
        violations: shared.violations.iter().cloned().collect(),
    })
}

fn describe(step: &Step, i: usize) -> String {
    let what = match &step.action {
        StepAction::Workload(w) => format!(
            "workload: {} requests, {}, lifecycle {:?}{}",
            w.requests,
            if w.pairs.is_empty() {
                "random pairs".to_owned()
            } else {
                w.pairs.join(" ")
            },
            w.lifecycle,
            w.pace
                .map(|p| format!(", one every {p}"))
                .unwrap_or_default()
        ),
        StepAction::Fault { fault } => format!("fault {fault}"),
        StepAction::Wait { span } => format!("wait {span}"),
        StepAction::AwaitWorkloads => "await the workloads".to_owned(),
        StepAction::Join { member, via } => format!("join {member} via {via} (governance)"),
        StepAction::Remove { member } => format!("remove {member} (governance)"),
        StepAction::DeleteCase { nth } => {
            format!("delete acknowledged request #{nth} behind its parties' backs")
        }
    };
    match &step.name {
        Some(name) => format!("step {} ({name}): {what}", i + 1),
        None => format!("step {}: {what}", i + 1),
    }
}

/// Members that run and were not removed, with their admin clients.
async fn running(
    bloc: &tokio::sync::Mutex<Bloc>,
    shared: &Mutex<Shared>,
) -> Vec<(Jurisdiction, AdminClient, Option<u32>)> {
    let removed = shared.lock().unwrap().removed.clone();
    let bloc = bloc.lock().await;
    bloc.nodes
        .values()
        .filter(|n| n.pid.is_some() && !removed.contains(&n.jurisdiction))
        .filter_map(|n| Some((n.jurisdiction.clone(), n.client().ok()?, n.pid)))
        .collect()
}

async fn workload(
    bloc: Arc<tokio::sync::Mutex<Bloc>>,
    shared: Arc<Mutex<Shared>>,
    w: Workload,
    members: Vec<Jurisdiction>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let pairs = w
        .pairs
        .iter()
        .map(|p| parse_pair(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pace = w.pace.map(|p| p.duration()).transpose()?;
    let mut mine = Vec::new();
    for i in 0..w.requests {
        let (from, to) = match pairs.get(i % pairs.len().max(1)) {
            Some(pair) => pair.clone(),
            None => {
                let removed = shared.lock().unwrap().removed.clone();
                let candidates: Vec<&Jurisdiction> =
                    members.iter().filter(|m| !removed.contains(*m)).collect();
                let mut two = candidates.choose_multiple(&mut rand::thread_rng(), 2);
                match (two.next(), two.next()) {
                    (Some(a), Some(b)) => ((*a).clone(), (*b).clone()),
                    _ => bail!("fewer than two members left for the workload"),
                }
            }
        };
        let (client, approver) = {
            let bloc = bloc.lock().await;
            (
                bloc.node(from.as_str()).client()?,
                bloc.node(from.as_str()).approver()?,
            )
        };
        let mut request = comity_protocol::examples::sample_request();
        request.requesting = from.clone();
        request.executing = to.clone();
        let started = Instant::now();
        match crate::send_request(&client, &approver, request, None).await {
            Ok(detail) => {
                let sent = Sent {
                    case: detail.summary.case_id,
                    from,
                    to,
                };
                let mut shared = shared.lock().unwrap();
                shared.latencies.push(started.elapsed());
                shared.sent.push(sent.clone());
                mine.push(sent);
            }
            Err(_) => shared.lock().unwrap().failed += 1,
        }
        if let Some(pace) = pace {
            tokio::time::sleep(pace).await;
        }
    }
    if w.lifecycle == Lifecycle::Send {
        return Ok(());
    }
    // One deadline for the whole phase: a member down for good costs it once, not per case.
    for sent in mine {
        if shared.lock().unwrap().removed.contains(&sent.to) {
            shared.lock().unwrap().unfinished.push(format!(
                "{} ({}→{}): the executing member was removed",
                sent.case, sent.from, sent.to
            ));
            continue;
        }
        let client = bloc.lock().await.node(sent.to.as_str()).client()?;
        match drive(&client, sent.case, w.lifecycle, deadline).await {
            Ok(()) => shared.lock().unwrap().completed += 1,
            Err(e) => shared
                .lock()
                .unwrap()
                .unfinished
                .push(format!("{} ({}→{}): {e:#}", sent.case, sent.from, sent.to)),
        }
    }
    Ok(())
}

/// The executing side takes a case as far as `lifecycle` says, retrying while it has not
/// received it yet or cannot be reached (faults), until `deadline`.
async fn drive(
    client: &AdminClient,
    case: CaseId,
    lifecycle: Lifecycle,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut steps = vec![Action::Decide {
        decision: comity_protocol::Decision::Accept,
    }];
    if lifecycle == Lifecycle::Fulfil {
        steps.push(Action::Fulfil {
            note: "records provided".into(),
        });
    }
    for action in steps {
        loop {
            match client.act(case, &action).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    Ok(())
}

/// Checks, every second while the scenario runs, what must hold at every moment.
async fn watch(
    bloc: Arc<tokio::sync::Mutex<Bloc>>,
    shared: Arc<Mutex<Shared>>,
    max_rss_mib: Option<u64>,
) {
    loop {
        for (j, client, pid) in running(&bloc, &shared).await {
            if let Some(kib) = pid.and_then(rss_kib) {
                let mut shared = shared.lock().unwrap();
                let max = shared.max_rss.entry(j.clone()).or_default();
                *max = (*max).max(kib);
                if let Some(budget) = max_rss_mib
                    && kib > budget * 1024
                {
                    shared.violations.insert(format!(
                        "{j} used {} MiB, over the budget of {budget} MiB",
                        kib / 1024
                    ));
                }
            }
            // A member down for a fault is not asked.
            let Ok(cases) = client.cases().await else {
                continue;
            };
            let listed: Vec<CaseId> = cases.iter().map(|c| c.case_id).collect();
            let unique: BTreeSet<CaseId> = listed.iter().copied().collect();
            let mut shared = shared.lock().unwrap();
            if unique.len() != listed.len() {
                for case in &unique {
                    if listed.iter().filter(|c| *c == case).count() > 1 {
                        shared
                            .violations
                            .insert(format!("{j} lists case {case} more than once"));
                    }
                }
            }
            let seen = shared.seen.entry(j.clone()).or_default().clone();
            for lost in seen.difference(&unique) {
                shared
                    .violations
                    .insert(format!("{j} lost case {lost}: listed before, gone now"));
            }
            shared.seen.entry(j).or_default().extend(unique);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A process's resident memory, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    crate::bench::scale::proc_mib(&format!("/proc/{pid}/status"), "VmRSS")
        .map(|mib| (mib * 1024.0) as u64)
}

/// Until every outbox is drained, every replica agrees and every acknowledged request is
/// held by both parties; what still differs after `timeout`.
async fn settle(
    bloc: &tokio::sync::Mutex<Bloc>,
    shared: &Mutex<Shared>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for (j, client, _) in running(bloc, shared).await {
            match client.status().await {
                Ok(s) if s.outbox_depth > 0 => {
                    waiting.push(format!("{j}'s outbox holds {}", s.outbox_depth))
                }
                Ok(_) => {}
                Err(e) => waiting.push(format!("{j} does not answer: {e}")),
            }
        }
        if waiting.is_empty() {
            match bloc.lock().await.divergence().await {
                Ok(d) => waiting.extend(d),
                Err(e) => waiting.push(format!("replicas not compared: {e:#}")),
            }
        }
        if waiting.is_empty() && missing(bloc, shared).await.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not settled {timeout:?} after the last step: {}",
                waiting.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Acknowledged requests a running party does not hold exactly once.
async fn missing(bloc: &tokio::sync::Mutex<Bloc>, shared: &Mutex<Shared>) -> Vec<String> {
    let mut lists: BTreeMap<Jurisdiction, Vec<CaseId>> = BTreeMap::new();
    for (j, client, _) in running(bloc, shared).await {
        if let Ok(cases) = client.cases().await {
            lists.insert(j, cases.into_iter().map(|c| c.case_id).collect());
        }
    }
    let sent = shared.lock().unwrap().sent.clone();
    let mut problems = Vec::new();
    for s in &sent {
        for party in [&s.from, &s.to] {
            let Some(list) = lists.get(party) else {
                continue; // removed, or down
            };
            match list.iter().filter(|c| **c == s.case).count() {
                1 => {}
                0 => problems.push(format!(
                    "acknowledged request {} ({}→{}) is not held by {party}",
                    s.case, s.from, s.to
                )),
                n => problems.push(format!(
                    "acknowledged request {} ({}→{}) is held {n} times by {party}",
                    s.case, s.from, s.to
                )),
            }
        }
    }
    problems
}

/// The invariants at the end.
async fn check(bloc: &tokio::sync::Mutex<Bloc>, shared: &Mutex<Shared>) {
    let mut found = missing(bloc, shared).await;
    match bloc.lock().await.divergence().await {
        Ok(d) => found.extend(d.into_iter().map(|d| format!("replicas differ: {d}"))),
        Err(e) => found.push(format!("replicas not compared: {e:#}")),
    }
    for (j, client, _) in running(bloc, shared).await {
        match client.status().await {
            Ok(s) if s.outbox_depth > 0 => found.push(format!(
                "{j}'s outbox still holds {} message(s)",
                s.outbox_depth
            )),
            Ok(_) => {}
            Err(e) => found.push(format!("{j} does not answer at the end: {e}")),
        }
    }
    shared.lock().unwrap().violations.extend(found);
}

/// `comity audit verify` on a stopped member.
async fn verify_audit(bloc: &Bloc, config: &Path) -> Result<(), String> {
    let out = tokio::process::Command::new(bloc.binary())
        .args(["audit", "verify", "--json", "-c"])
        .arg(config)
        .output()
        .await
        .map_err(|e| format!("cannot run comity audit verify: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let report: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    let problems = report
        .as_ref()
        .and_then(|r| r["problems"].as_array())
        .map(|p| {
            p.iter()
                .filter_map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_owned());
    Err(format!("the audit log does not verify: {problems}"))
}

async fn join(
    bloc: &tokio::sync::Mutex<Bloc>,
    member: &Jurisdiction,
    via: &Jurisdiction,
) -> anyhow::Result<()> {
    let mut bloc = bloc.lock().await;
    let card = bloc.prepare_member(member.as_str(), via.as_str()).await?;
    bloc.start(member.as_str())?;
    bloc.wait_up(member.as_str(), Duration::from_secs(30))
        .await?;
    let others: Vec<Jurisdiction> = bloc
        .nodes
        .values()
        .filter(|n| n.pid.is_some() && n.jurisdiction != *member)
        .map(|n| n.jurisdiction.clone())
        .collect();
    let request = comity_node::bloc::ProposeRequest {
        add: vec![card],
        ..Default::default()
    };
    bloc.govern(via, &others, &request).await?;
    bloc.wait_version(
        member.as_str(),
        current_version(&bloc, via).await?,
        Duration::from_secs(60),
    )
    .await
}

async fn remove(bloc: &tokio::sync::Mutex<Bloc>, member: &Jurisdiction) -> anyhow::Result<()> {
    let mut bloc = bloc.lock().await;
    let others: Vec<Jurisdiction> = bloc
        .nodes
        .values()
        .filter(|n| n.pid.is_some() && n.jurisdiction != *member)
        .map(|n| n.jurisdiction.clone())
        .collect();
    let proposer = others
        .first()
        .context("no member left to propose the removal")?
        .clone();
    let request = comity_node::bloc::ProposeRequest {
        remove: vec![member.clone()],
        ..Default::default()
    };
    bloc.govern(&proposer, &others, &request).await?;
    bloc.stop(member.as_str())?;
    Ok(())
}

async fn current_version(bloc: &Bloc, j: &Jurisdiction) -> anyhow::Result<u64> {
    bloc.client(j.as_str())
        .bloc_status()
        .await?
        .version
        .context("the member holds no configuration")
}

/// Deletes a case's record and events from both its parties' stores, each stopped for it.
async fn delete_case(bloc: &tokio::sync::Mutex<Bloc>, sent: &Sent) -> anyhow::Result<()> {
    use comity_node::store::{Batch, Cf, Store};
    let mut bloc = bloc.lock().await;
    for party in [&sent.from, &sent.to] {
        bloc.stop(party.as_str())?;
        {
            let store = Store::open(&bloc.node(party.as_str()).dir.join("store"))?;
            let mut batch = Batch::new();
            batch.delete(Cf::Cases, sent.case.to_string().into_bytes());
            for (key, _) in store.scan_prefix(Cf::Events, format!("{}/", sent.case).as_bytes())? {
                batch.delete(Cf::Events, key);
            }
            store.commit(batch).await?;
        }
        bloc.start(party.as_str())?;
        bloc.wait_up(party.as_str(), Duration::from_secs(30))
            .await?;
    }
    Ok(())
}

/// Where a scenario runs when no directory is given: a fresh one under the system's
/// temporary directory, kept for its logs.
pub fn default_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("comity-scenario-{name}-"))
        .tempdir()?;
    Ok(dir.keep())
}
