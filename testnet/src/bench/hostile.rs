//! `comity-testnet bench hostile`: three honest members and one hostile member. The hostile
//! member holds a real member's keys (it is admitted: its pushes pass the door) and floods one
//! victim with everything a compromised member can send, all at once, for a minute: new cases,
//! forged events, garbage and oversized frames, pulls, consistency and evidence requests,
//! reports for every period, and equivocating checkpoints. The honest members meanwhile send
//! requests to the victim at a steady pace, as they did in a quiet phase just before: their
//! p99 latency under attack is set beside the quiet one, and the victim's disk and memory
//! growth are measured from outside its process. The hostile member runs in a process of its
//! own at the lowest CPU priority (`SCHED_IDLE`), standing in for its own machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use comity_node::admin::api::AdminClient;
use comity_node::identity::NodeIdentity;
use comity_node::network::codec::FrameCodec;
use comity_protocol::audit::Checkpoint;
use comity_protocol::evidence::EvidenceRequest;
use comity_protocol::messages::{CaseHave, PullRequest};
use comity_protocol::report::{Period, PublishedReport};
use comity_protocol::{
    CaseId, ExchangeRequest, Hash32, Jurisdiction, SignedEnvelope, Timestamp, limits,
    to_canonical_cbor,
};
use futures::StreamExt;
use libp2p::PeerId;
use rand::{Rng, RngCore};
use serde::Serialize;

use super::{Drafts, percentile_ms};
use crate::Bloc;
use crate::peer::{RawPeer, genesis, signed_push};

#[derive(Clone, Debug)]
pub struct HostileOptions {
    /// How long the attack lasts.
    pub attack: Duration,
    /// How long the quiet phase before it lasts.
    pub quiet: Duration,
    /// Each honest sender sends one request per interval (one at a time).
    pub interval: Duration,
    /// Requests each flood keeps in flight.
    pub in_flight: usize,
    /// The floods to run (all of [`FLOODS`] by default).
    pub floods: Vec<String>,
    /// The victim's rate budget per member for exchange requests; its default otherwise.
    pub victim_rate: Option<u32>,
}

/// Every flood the hostile member can run.
pub const FLOODS: [&str; 9] = [
    "new_cases",
    "forged_events",
    "garbage",
    "oversized",
    "pulls",
    "consistency",
    "evidence",
    "reports",
    "checkpoints",
];

impl Default for HostileOptions {
    fn default() -> Self {
        Self {
            attack: Duration::from_secs(60),
            quiet: Duration::from_secs(20),
            interval: Duration::from_millis(50),
            in_flight: 8,
            floods: FLOODS.iter().map(|f| f.to_string()).collect(),
            victim_rate: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct FloodCount {
    /// Messages sent.
    pub sent: u64,
    /// Answered (whatever the answer: a rejection is an answer).
    pub answered: u64,
    /// Not answered: the stream was refused, reset or timed out.
    pub unanswered: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostileReport {
    /// The victim's store and files, grown over the attack (bytes written, as file lengths).
    pub victim_disk_growth_mb: f64,
    /// The victim's resident memory at its peak during the attack, over its level before.
    pub victim_rss_growth_mb: f64,
    pub victim_rss_before_mb: f64,
    pub victim_rss_peak_mb: f64,
    /// Honest requests (send → verified receipt) at the victim during the attack.
    pub honest_p50_ms: f64,
    pub honest_p99_ms: f64,
    /// The same, in the quiet phase before the attack.
    pub quiet_p50_ms: f64,
    pub quiet_p99_ms: f64,
    /// `honest_p99_ms` over `quiet_p99_ms`.
    pub honest_p99_ratio: f64,
    pub honest_requests: usize,
    pub quiet_requests: usize,
    /// The victim's rate budget per member for exchange requests (0: none).
    pub victim_rate_per_s: u32,
    /// Honest requests that failed or got no verified receipt in 30 s, and status probes of
    /// the victim's admin API that failed, during the attack: both 0 when it kept serving.
    pub honest_failures: u64,
    pub status_failures: u64,
    pub kept_serving: bool,
    /// Cases the hostile member opened at the victim, as the victim counts them.
    pub hostile_cases_opened: usize,
    pub attack_secs: f64,
    pub floods: BTreeMap<String, FloodCount>,
    pub cores: usize,
}

const HONEST: [&str; 2] = ["FR", "IT"];
const VICTIM: &str = "DE";
const HOSTILE: &str = "PL";

pub async fn run(
    options: &HostileOptions,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<HostileReport> {
    let dir = tempfile::tempdir()?;
    let members: Vec<Jurisdiction> = ["FR", "DE", "IT", HOSTILE]
        .iter()
        .map(|j| j.parse())
        .collect::<Result<_, _>>()?;
    let rate = options.victim_rate;
    let mut bloc = Bloc::create_with(dir.path(), &members, "testnet", |config| {
        if let (Some(rate), VICTIM) = (rate, config.node.jurisdiction.as_str()) {
            config.network.requests_per_second_per_member = rate;
        }
    })
    .await?;
    bloc.log_filter = "warn".into();
    bloc.start_all()?;
    bloc.wait_connected(Duration::from_secs(30))
        .await
        .context("starting the four nodes")?;
    // The hostile member's node stops; its keys play the attacker (`attacker`, below).
    bloc.stop(HOSTILE)?;

    let per_sender = ((options.quiet + options.attack).as_millis()
        / options.interval.as_millis().max(1)) as usize
        + 50;
    log(&format!(
        "preparing {per_sender} approved drafts at each of FR and IT"
    ));
    let mut senders = Vec::new();
    for from in HONEST {
        let (client, approver) = (bloc.client(from), bloc.approver(from));
        let ids = drafts(&client, &approver, from, per_sender).await?;
        senders.push((client, Arc::new(Drafts::new(ids))));
    }

    log(&format!("quiet phase, {:?}", options.quiet));
    let quiet = honest_phase(&senders, options.interval, options.quiet).await;
    let victim = bloc.node(VICTIM);
    let pid = victim.pid.context("the victim runs")?;
    let (disk_before, rss_before) = (disk_bytes(&victim.dir)?, rss_bytes(pid)?);

    log(&format!("attack phase, {:?}", options.attack));
    let started = Instant::now();
    let deadline = started + options.attack;
    let victim_client = bloc.client(VICTIM);
    let (honest, floods, (rss_peak, status_failures)) = tokio::join!(
        honest_phase(&senders, options.interval, options.attack),
        attack_from_own_process(&bloc.dir, options),
        watch_victim(&victim_client, pid, deadline),
    );
    let floods = floods?;
    let attack_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        floods.values().any(|f| f.sent > 0),
        "no flood ran: choose among {}",
        FLOODS.join(", ")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let disk_after = disk_bytes(&bloc.node(VICTIM).dir)?;
    let hostile_j: Jurisdiction = HOSTILE.parse()?;
    let hostile_cases_opened = victim_client
        .cases()
        .await?
        .iter()
        .filter(|c| c.counterparty == hostile_j)
        .count();
    bloc.stop_all();

    let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let report = HostileReport {
        victim_disk_growth_mb: mb(disk_after.saturating_sub(disk_before)),
        victim_rss_growth_mb: mb(rss_peak.max(rss_before) - rss_before),
        victim_rss_before_mb: mb(rss_before),
        victim_rss_peak_mb: mb(rss_peak),
        honest_p50_ms: percentile_ms(&honest.latencies, 50.0),
        honest_p99_ms: percentile_ms(&honest.latencies, 99.0),
        quiet_p50_ms: percentile_ms(&quiet.latencies, 50.0),
        quiet_p99_ms: percentile_ms(&quiet.latencies, 99.0),
        honest_p99_ratio: percentile_ms(&honest.latencies, 99.0)
            / percentile_ms(&quiet.latencies, 99.0),
        honest_requests: honest.latencies.len(),
        victim_rate_per_s: rate.unwrap_or_else(|| {
            comity_node::config::NetworkSection::default().requests_per_second_per_member
        }),
        quiet_requests: quiet.latencies.len(),
        honest_failures: honest.failures,
        status_failures,
        kept_serving: honest.failures == 0 && status_failures == 0 && quiet.failures == 0,
        hostile_cases_opened,
        attack_secs,
        floods,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    super::every_figure_present(&report)?;
    Ok(report)
}

/// Runs the hostile member in a process of its own, at the lowest CPU priority: in a bloc it
/// runs on its own machine, and what its floods cost is the victim's work, not the attacker's
/// share of the victim's cores. `SCHED_IDLE` (`chrt --idle 0`) gives way at once to any other
/// process that wakes, as a machine of its own would; `nice -n 19` (used where `chrt` is
/// missing) still lets it finish its time slice (3 ms) before the victim's threads run, which
/// shows in the victim's tail latency. Returns what each flood sent.
async fn attack_from_own_process(
    dir: &Path,
    options: &HostileOptions,
) -> anyhow::Result<BTreeMap<String, FloodCount>> {
    let exe = std::env::current_exe()?;
    let mut output = None;
    for lowest in [&["chrt", "--idle", "0"][..], &["nice", "-n", "19"][..]] {
        let attempt = tokio::process::Command::new(lowest[0])
            .args(&lowest[1..])
            .arg(&exe)
            .args(["bench", "attacker", "--dir"])
            .arg(dir)
            .args(["--seconds", &options.attack.as_secs().to_string()])
            .args(["--in-flight", &options.in_flight.to_string()])
            .args(["--floods", &options.floods.join(",")])
            .stderr(std::process::Stdio::inherit())
            .output()
            .await;
        match attempt {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => {
                output = Some(other.context("starting the hostile member's process")?);
                break;
            }
        }
    }
    let output = output.context("neither chrt nor nice is installed")?;
    anyhow::ensure!(
        output.status.success(),
        "the hostile member's process failed ({})",
        output.status
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The hostile member's process: floods the victim of the bloc at `dir` for `length`, with the
/// keys of the hostile member (whose node is down), and returns what each flood sent.
pub async fn attacker(
    dir: &Path,
    length: Duration,
    in_flight: usize,
    floods: &[String],
) -> anyhow::Result<BTreeMap<String, FloodCount>> {
    let bloc = Bloc::open(dir)?;
    let hostile = NodeIdentity::load_dir(&bloc.node(HOSTILE).dir)?;
    let attacker = Attacker::start(&bloc, hostile).await?;
    Ok(attacker
        .flood(floods, Instant::now() + length, in_flight)
        .await)
}

/// `n` approved drafts from `from` to the victim.
async fn drafts(
    client: &AdminClient,
    approver: &AdminClient,
    from: &str,
    n: usize,
) -> anyhow::Result<Vec<CaseId>> {
    let mut request = comity_protocol::examples::sample_request();
    request.requesting = from.parse()?;
    request.executing = VICTIM.parse()?;
    super::approved_drafts_of(client, approver, request, n).await
}

struct Phase {
    latencies: Vec<Duration>,
    failures: u64,
}

/// Each honest sender sends one prepared request per `interval`, one at a time, for `length`.
async fn honest_phase(
    senders: &[(AdminClient, Arc<Drafts>)],
    interval: Duration,
    length: Duration,
) -> Phase {
    let deadline = Instant::now() + length;
    let runs = senders.iter().map(|(client, drafts)| async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut latencies, mut failures) = (Vec::new(), 0);
        while Instant::now() < deadline {
            tick.tick().await;
            let Ok(id) = drafts.next() else { break };
            let t = Instant::now();
            match client.send(id, Some(Duration::from_secs(30))).await {
                Ok(case) if case.receipt.as_ref().is_some_and(|r| r.signature_valid) => {
                    latencies.push(t.elapsed())
                }
                _ => failures += 1,
            }
        }
        (latencies, failures)
    });
    let mut phase = Phase {
        latencies: Vec::new(),
        failures: 0,
    };
    for (latencies, failures) in futures::future::join_all(runs).await {
        phase.latencies.extend(latencies);
        phase.failures += failures;
    }
    phase.latencies.sort();
    phase
}

/// Samples the victim's resident memory and probes its admin API until `deadline`: the peak
/// RSS and the number of probes that failed.
async fn watch_victim(client: &AdminClient, pid: u32, deadline: Instant) -> (u64, u64) {
    let (mut peak, mut failures) = (0, 0);
    while Instant::now() < deadline {
        peak = peak.max(rss_bytes(pid).unwrap_or(0));
        if tokio::time::timeout(Duration::from_secs(5), client.status())
            .await
            .map_or(true, |r| r.is_err())
        {
            failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (peak, failures)
}

/// Resident memory of a process, from `/proc`.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb * 1024)
}

/// Bytes of the files under `dir`, as written (their length): RocksDB preallocates its
/// write-ahead log, so blocks on disk would hide what a flood made it write.
fn disk_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(_) => continue, // removed meanwhile (a compacted table file)
        };
        total += if meta.is_dir() {
            disk_bytes(&entry.path()).unwrap_or(0)
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The hostile member: its own keys, two connections to the victim (one whose codec lets it
/// send frames past the limits), and its place on the bloc's gossip topic.
struct Attacker {
    identity: NodeIdentity,
    me: Jurisdiction,
    victim: PeerId,
    peer: RawPeer,
    unbounded: RawPeer,
}

impl Attacker {
    async fn start(bloc: &Bloc, identity: NodeIdentity) -> anyhow::Result<Self> {
        let roster = crate::genesis_roster(&bloc.node(VICTIM).dir)?;
        let victim: Jurisdiction = VICTIM.parse()?;
        let member = roster.by_jurisdiction(&victim).context("DE")?.0.clone();
        let peer = RawPeer::start_in_bloc(&bloc.bloc_id, identity.clone(), &member).await?;
        let unbounded = RawPeer::start_with_limits(
            identity.clone(),
            &member,
            FrameCodec {
                max_request: 8 << 20,
                max_response: 8 << 20,
                response_capacity: 0,
            },
        )
        .await?;
        Ok(Self {
            identity,
            me: HOSTILE.parse()?,
            victim: member.peer_id,
            peer,
            unbounded,
        })
    }

    /// Every flood at once until `deadline`; what each sent and what was answered.
    async fn flood(
        &self,
        kinds: &[String],
        deadline: Instant,
        in_flight: usize,
    ) -> BTreeMap<String, FloodCount> {
        let runs = kinds.iter().map(|kind| async move {
            let count = self.one_flood(kind, deadline, in_flight).await;
            (kind.to_string(), count)
        });
        futures::future::join_all(runs).await.into_iter().collect()
    }

    async fn one_flood(&self, kind: &str, deadline: Instant, in_flight: usize) -> FloodCount {
        let (sent, answered) = (AtomicU64::new(0), AtomicU64::new(0));
        let gossip = matches!(kind, "reports" | "checkpoints");
        futures::stream::iter(std::iter::from_fn(|| {
            (Instant::now() < deadline).then_some(())
        }))
        .for_each_concurrent(if gossip { 1 } else { in_flight }, |()| async {
            sent.fetch_add(1, Ordering::Relaxed);
            if gossip {
                self.peer.publish(self.gossip(kind)).await;
                // Gossip is fire and forget: pace it so that the flood is the victim's
                // work, not the publisher's queue.
                tokio::time::sleep(Duration::from_millis(2)).await;
                answered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let (frame, oversized) = self.frame(kind);
            let via = if oversized {
                &self.unbounded
            } else {
                &self.peer
            };
            let answer = match kind {
                "evidence" => {
                    let request = EvidenceRequest::Manifest {
                        case_id: CaseId::new(),
                    };
                    via.evidence(self.victim, &request).await.map(|_| ())
                }
                _ => via
                    .send_frame(self.victim, frame)
                    .await
                    .map(|_| ())
                    .map_err(Into::into),
            };
            if answer.is_ok() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
        let (sent, answered) = (sent.into_inner(), answered.into_inner());
        FloodCount {
            sent,
            answered,
            unanswered: sent - answered,
        }
    }

    /// One exchange frame of a flood, and whether it is past the frame limit.
    fn frame(&self, kind: &str) -> (Vec<u8>, bool) {
        let mut rng = rand::thread_rng();
        let key = self.identity.signing_key();
        let frame = |request: &ExchangeRequest| to_canonical_cbor(request).expect("encodes");
        match kind {
            "new_cases" | "forged_events" => {
                let case_id = CaseId::new();
                let mut request = comity_protocol::examples::sample_request();
                request.requesting = self.me.clone();
                request.executing = VICTIM.parse().expect("DE");
                let author = if kind == "new_cases" {
                    (*key).clone()
                } else {
                    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
                };
                let event = genesis(&author, case_id, request);
                let push = signed_push(&key, case_id, vec![event]);
                (frame(&ExchangeRequest::Push(push)), false)
            }
            "garbage" => {
                let mut bytes = vec![0u8; rng.gen_range(1..64 << 10)];
                rng.fill_bytes(&mut bytes);
                (bytes, false)
            }
            "oversized" => (
                vec![0xa5; limits::MAX_REQUEST_FRAME + 1 + rng.gen_range(0..1 << 20)],
                true,
            ),
            "pulls" => {
                let cases = (0..512)
                    .map(|_| CaseHave {
                        case_id: CaseId::new(),
                        have: BTreeMap::from([(self.me.clone(), rng.gen_range(0..1 << 20))]),
                    })
                    .collect();
                (
                    frame(&ExchangeRequest::Pull(PullRequest { cases, range: None })),
                    false,
                )
            }
            "consistency" => {
                let old = rng.gen_range(0..1 << 40);
                (
                    frame(&ExchangeRequest::Consistency {
                        old,
                        new: old + rng.gen_range(1..1 << 40),
                    }),
                    false,
                )
            }
            _ => (frame(&ExchangeRequest::Bloc { have: 0 }), false),
        }
    }

    /// A signed report (for any period of the last five years, or a malformed one) or a
    /// checkpoint of the hostile member's log (one size, ever new roots: equivocation).
    fn gossip(&self, kind: &str) -> Vec<u8> {
        let mut rng = rand::thread_rng();
        let key = self.identity.signing_key();
        if kind == "checkpoints" {
            let mut root = [0u8; 32];
            rng.fill_bytes(&mut root);
            let checkpoint = Checkpoint {
                log: self.me.clone(),
                tree_size: 1000,
                root: Hash32(root),
                at: Timestamp::now(),
            };
            return SignedEnvelope::sign(&checkpoint, &key)
                .expect("signs")
                .to_bytes();
        }
        let year = rng.gen_range(2021..=2026);
        let name = match rng.gen_range(0..4) {
            0 => format!("{year}"),
            1 => format!("{year}-Q{}", rng.gen_range(1..=4)),
            2 => format!("{year}-{:02}", rng.gen_range(1..=12)),
            _ => format!("+{year:05}"),
        };
        let mut report = comity_node::report::compute(self.me.as_str(), &[], None, |_| false);
        // A malformed name over a real year's bounds: what a strict parser must refuse.
        report.period = format!("{year}")
            .parse::<Period>()
            .ok()
            .map(|p| Period { name, ..p });
        report.requests.sent = rng.gen_range(0..1 << 30);
        let published = PublishedReport {
            issuer: self.me.clone(),
            issued_at: Timestamp::now(),
            report,
        };
        SignedEnvelope::sign(&published, &key)
            .expect("signs")
            .to_bytes()
    }
}
