//! `comity run`: wires the store, the network, the case service and the admin API, and stops
//! them in order on SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::bloc::{Governance, GovernanceSettings};
use crate::cases::record::CaseRecord;
use crate::cases::{CaseSettings, Cases};
use crate::config::Config;
use crate::identity::NodeIdentity;
use crate::network::{self, BehaviourConfig, NetworkSettings};
use crate::store::Store;

/// A started node: what `run` waits on and `recover` drives.
struct Started {
    cases: Cases,
    network: network::Client,
    store: Store,
    stop: watch::Sender<bool>,
    network_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Started {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.network_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.admin_task).await;
    }
}

/// `comity run`: starts the node and serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let Started {
        stop,
        network_task,
        mut admin_task,
        ..
    } = start(&config, false).await?;
    let reason = tokio::select! {
        signal = shutdown_signal() => signal?,
        result = &mut admin_task => {
            result.context("admin API task failed")??;
            "admin API stopped"
        }
    };
    info!(reason, "shutting down");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), network_task).await;
    info!("stopped");
    Ok(())
}

async fn start(config: &Config, recovering: bool) -> anyhow::Result<Started> {
    let config = config.clone();
    let identity = NodeIdentity::load(&config.key_path(), &config.signing_key_path())?;
    let admin_tls = admin_tls(&config)?;
    if config.testing.faults {
        tracing::warn!("fault injection is enabled ([testing] faults): testnets only");
    }
    let (policy, policy_text) = read_policy(&config)?;
    let store = Store::open(&config.store_path())?;
    if crate::audit::record_policy(&store, policy_text.as_deref()).await? {
        info!("the policy in force is recorded in the audit log, its file kept as a version");
    }
    let vault = open_vault(&config, &store)?;
    let governance = open_governance(&config, &store, &identity)?;
    governance.persist_start().await?;
    let roster = governance.roster();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // Bound before anything starts, so that a port in use stops the start with a clear error.
    let metrics_listener = match config.metrics.listen {
        Some(listen) => Some(admin::metrics::bind(listen).await?),
        None => None,
    };
    let (tap, exchanges) = crate::opmon::Tap::new(governance.membership(), config.log.mode);
    tokio::spawn(crate::opmon::run(
        store.clone(),
        exchanges,
        crate::opmon::Retention {
            days: config.opmon.retention_days.max(1),
            max_records: config.opmon.max_records.max(1),
        },
    ));
    let (client, event_loop, network::Inbound { exchange, evidence }) =
        network::new(network_settings(&config, &identity, &governance, tap))?;
    let network_task = tokio::spawn(event_loop.run(stopped(stop_rx.clone())));
    governance.start(client.clone());

    let mut settings = case_settings(&config, policy);
    if recovering {
        // Every shared case comes back at once: the daily quota of new cases is for members'
        // new requests, not for this node's own history.
        settings.new_cases_per_member_per_day = u32::MAX;
    }
    let cases = Cases::start(
        store.clone(),
        vault,
        identity.clone(),
        governance.clone(),
        client.clone(),
        exchange,
        settings,
    )
    .await?;
    let evidence = crate::evidence::Evidence::start(
        crate::evidence::EvidenceSettings {
            dir: config.evidence_path(),
            sealing_key: config.sealing_key_path(),
            parallel: config.evidence.parallel,
        },
        store.clone(),
        cases.clone(),
        client.clone(),
        evidence,
        identity.clone(),
    )?;
    spawn_audit(&config, &store, &identity, &client, &governance);
    // This node's transparency reports for the current periods, signed and published to the
    // bloc (and kept, so that the bloc-wide view includes ours).
    tokio::spawn(crate::report::run_publisher(
        cases.clone(),
        store.clone(),
        identity.clone(),
        client.clone(),
        Duration::from_secs(config.audit.report_secs.max(1)),
    ));
    spawn_dashboard(&config, &cases, &store);
    let admin_state = AdminState {
        cases: cases.clone(),
        evidence,
        store: store.clone(),
        network: client.clone(),
        faults: config.testing.faults,
        ready_probe: Default::default(),
    };
    if let Some(listener) = metrics_listener {
        info!(listen = %config.metrics.listen.unwrap_or(config.admin.listen), "metrics serving (/metrics, /health, /ready)");
        let metrics =
            admin::metrics::serve(listener, admin_state.clone(), stopped(stop_rx.clone()));
        tokio::spawn(async move {
            if let Err(e) = metrics.await {
                tracing::error!(error = %e, "the metrics listener stopped; the node goes on without it");
            }
        });
    }
    let admin_task = tokio::spawn(admin::serve(
        config.admin.listen,
        admin_tls,
        admin_state,
        stopped(stop_rx.clone()),
    ));
    info!(
        jurisdiction = %config.node.jurisdiction,
        peer_id = %identity.peer_id(),
        bloc = roster.bloc(),
        version = roster.version(),
        members = roster.members().len(),
        "node started"
    );
    Ok(Started {
        cases,
        network: client,
        store,
        stop: stop_tx,
        network_task,
        admin_task,
    })
}

/// Marks a store that `recover --from-peers` rebuilt: it may run again on it (to add what
/// members unreachable the first time hold).
const RECOVERED_KEY: &[u8] = b"recovered-from-peers";

/// What `recover --from-peers` rebuilt, member by member.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub members: Vec<RecoveredMember>,
    /// The first admin's token, when the store held no officer (shown once).
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RecoveredMember {
    pub jurisdiction: comity_protocol::Jurisdiction,
    /// `None`: not reached in time; its cases were not pulled.
    pub reached: Option<RecoveredFrom>,
}

#[derive(Debug, Clone)]
pub struct RecoveredFrom {
    /// Cases this node now shares with the member, and the events pulled from it.
    pub cases: usize,
    pub events: usize,
    /// Why the last pull stopped short, if it did.
    pub problem: Option<String>,
}

/// `comity recover --from-peers`: rebuilds the case logs of a node whose store was lost by
/// pulling every case it shares from its members, each event's signature verified as any
/// pull's. Starts the node (admin API included), waits up to `wait` for the members, pulls
/// from each until nothing is missing, and stops.
pub async fn recover(config: Config, wait: Duration) -> anyhow::Result<Recovered> {
    {
        let store = Store::open(&config.store_path())?;
        let recovered_before = store
            .get(crate::store::Cf::Settings, RECOVERED_KEY)?
            .is_some();
        let held = store.count(crate::store::Cf::Cases)?;
        if held > 0 && !recovered_before {
            bail!(
                "the store at {} holds {held} case(s): recovery from peers rebuilds a store that was lost. Move it aside (or restore a backup with `comity restore`) and run again",
                config.store_path().display()
            );
        }
        let mut batch = crate::store::Batch::new();
        batch.put(
            crate::store::Cf::Settings,
            RECOVERED_KEY.to_vec(),
            comity_protocol::Timestamp::now()
                .as_millis()
                .to_be_bytes()
                .to_vec(),
        );
        store.commit(batch).await?;
    }
    let started = start(&config, true).await?;
    let admin_token = match crate::admin::officers::list(&started.store)?.is_empty() {
        true => Some(
            crate::admin::officers::add(
                &started.store,
                "admin",
                crate::admin::officers::Role::Admin,
            )
            .await?
            .1,
        ),
        false => None,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let me = config.node.jurisdiction.clone();
    let mut members = Vec::new();
    for member in started
        .cases
        .roster()
        .members()
        .iter()
        .filter(|m| m.jurisdiction != me)
        .cloned()
    {
        let peer = member.peer_id.to_string();
        let reached = loop {
            let connected = started
                .network
                .status()
                .await
                .is_some_and(|s| s.connected.contains(&peer));
            if connected || tokio::time::Instant::now() >= deadline {
                break connected;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if !reached {
            members.push(RecoveredMember {
                jurisdiction: member.jurisdiction.clone(),
                reached: None,
            });
            continue;
        }
        let (mut events, mut problem) = (0, None);
        for attempt in 0..5u64 {
            match started.cases.recover_from(&member).await {
                Ok(0) => {
                    problem = None;
                    break;
                }
                Ok(n) => {
                    events += n;
                    problem = None;
                }
                Err(e) => {
                    problem = Some(e);
                    tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
                }
            }
        }
        let cases = started.cases.shared_count(&member.jurisdiction)?;
        info!(member = %member.jurisdiction, cases, events, "recovered from member");
        members.push(RecoveredMember {
            jurisdiction: member.jurisdiction.clone(),
            reached: Some(RecoveredFrom {
                cases,
                events,
                problem,
            }),
        });
    }
    started.stop().await;
    Ok(Recovered {
        members,
        admin_token,
    })
}

/// The bloc's governance, from the store and the `[bloc]` section.
fn open_governance(
    config: &Config,
    store: &Store,
    identity: &NodeIdentity,
) -> anyhow::Result<Governance> {
    Governance::open(
        store.clone(),
        identity.clone(),
        config.node.jurisdiction.clone(),
        GovernanceSettings {
            bloc_id: config.bloc.id.clone(),
            anchor: config.bloc.anchor,
            genesis: config.genesis_path(),
            bootstrap: config.bloc.bootstrap.clone(),
            signing_key: config.signing_key_path(),
            transport_key: config.key_path(),
            announce: Duration::from_secs(config.bloc.announce_secs.max(1)),
            compare: Duration::from_secs(config.bloc.compare_secs.max(1)),
            clock: crate::clock::Clock::system(),
        },
    )
}

/// The node's policy and the hash of its file, if it has one; a policy with problems stops
/// the start with the list of them.
fn read_policy(config: &Config) -> anyhow::Result<(Option<crate::policy::Policy>, Option<String>)> {
    let mut policy_text = None;
    let policy = match std::fs::read_to_string(config.policy_path()) {
        Ok(text) => {
            policy_text = Some(text.clone());
            let policy = crate::policy::parse(&text).map_err(|problems| {
                let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                anyhow::anyhow!(
                    "policy {} has problems:\n{}\n(check it with `comity policy check`)",
                    config.policy_path().display(),
                    list.join("\n")
                )
            })?;
            for partner in policy.expired(comity_protocol::Timestamp::now()) {
                tracing::warn!(%partner, "the agreement with this partner has expired: its requests will be refused");
            }
            Some(policy)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if config.node.policy_mode != crate::config::PolicyMode::ManualReview {
                bail!(
                    "no policy file at {}: a node checks incoming requests against its policy. Write one (see docs/examples/policy.toml; check it with `comity policy check`), or set `policy_mode = \"manual-review\"` in [node] to leave every request to a reviewer, unchecked",
                    config.policy_path().display()
                );
            }
            warn!(path = %config.policy_path().display(), "manual review ([node] policy_mode): no policy file, incoming requests are left to reviewers unchecked");
            None
        }
        Err(e) => bail!("cannot read policy {}: {e}", config.policy_path().display()),
    };
    Ok((policy, policy_text))
}

/// The vault of case keys: keys that cases name are in use, any other is a spare.
fn open_vault(config: &Config, store: &Store) -> anyhow::Result<crate::vault::Vault> {
    let in_use = store
        .scan(crate::store::Cf::Cases)?
        .iter()
        .filter_map(|(_, v)| crate::cases::record::decode::<CaseRecord>(v).ok())
        .map(|record| record.key_id)
        .collect();
    Ok(crate::vault::Vault::open(
        &config.master_key_path(),
        &config.keys_path(),
        &in_use,
    )?)
}

fn network_settings(
    config: &Config,
    identity: &NodeIdentity,
    governance: &Governance,
    tap: crate::opmon::Tap,
) -> NetworkSettings {
    NetworkSettings {
        identity: identity.clone(),
        membership: governance.membership(),
        bootstrap: crate::bloc::bootstrap_peers(&config.bloc.bootstrap),
        listen: config.network.listen.clone(),
        behaviour: BehaviourConfig {
            bloc: governance.roster().bloc().to_owned(),
            mdns: config.network.mdns,
            max_connections: config.network.max_connections,
            max_connections_per_peer: config.network.max_connections_per_peer,
            max_pending_incoming: config.network.max_pending_incoming,
            request_timeout: Duration::from_secs(config.network.request_timeout_secs.max(1)),
            frames: Default::default(),
            rates: crate::network::admission::Rates {
                exchange: config.network.requests_per_second_per_member,
                evidence: config.network.evidence_requests_per_second_per_member,
                gossip: config.network.gossip_per_second_per_member,
            },
            ping_interval: Duration::from_secs(config.network.ping_interval_secs.max(1)),
            dead_after: Duration::from_secs(
                config
                    .network
                    .dead_after_secs
                    .max(config.network.ping_interval_secs + 1),
            ),
        },
        routes: config.network.routes.clone(),
        redial_interval: Duration::from_secs(config.network.redial_interval_secs.max(1)),
        tap,
    }
}

/// An unchanged checkpoint or report is gossiped again after this many of its periods (5 min
/// for checkpoints, 30 min for reports, by default): see `network::republish`.
pub const UNCHANGED_REPUBLISH_TICKS: u32 = 30;

/// Signed checkpoints of the audit log, as it grows, announced to the bloc for witnessing;
/// the collection of members' reports; the witnessing of their checkpoints.
fn spawn_audit(
    config: &Config,
    store: &Store,
    identity: &NodeIdentity,
    client: &network::Client,
    governance: &Governance,
) {
    {
        let (store, identity, network) = (store.clone(), identity.clone(), client.clone());
        let jurisdiction = config.node.jurisdiction.clone();
        let every = Duration::from_secs(config.audit.checkpoint_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut republish =
                crate::network::republish::Republish::new(every * UNCHANGED_REPUBLISH_TICKS, every);
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
                let key = identity.signing_key();
                match crate::audit::checkpoint(&store, &jurisdiction, &key).await {
                    Ok(Some(c)) => tracing::debug!(size = c.tree_size, "audit checkpoint signed"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "audit checkpoint failed"),
                }
                // A new one at once; the same one again now and then, for members that joined
                // late or missed it.
                if let Ok(Some(latest)) = crate::audit::latest_checkpoint(&store) {
                    let bytes = latest.to_bytes();
                    let hash = *blake3::hash(&bytes).as_bytes();
                    if republish.due("checkpoint", hash, std::time::Instant::now())
                        && !network.publish(bytes).await
                    {
                        republish.unsent("checkpoint");
                    }
                }
            }
        });
    }
    tokio::spawn(crate::report::run_collector(
        store.clone(),
        client.clone(),
        governance.membership(),
    ));
    tokio::spawn(crate::audit::witness::run(
        store.clone(),
        client.clone(),
        governance.membership(),
        identity.clone(),
        config.node.jurisdiction.clone(),
    ));
}

fn case_settings(config: &Config, policy: Option<crate::policy::Policy>) -> CaseSettings {
    CaseSettings {
        initial_backoff: config.outbox.initial_backoff(),
        max_backoff: config.outbox.max_backoff(),
        max_in_flight: config.outbox.max_in_flight.max(1),
        not_delivered_after: Duration::from_secs(config.outbox.not_delivered_after_secs),
        disclosure_approval: config.safeguards.disclosure_approval.clone(),
        policy,
        retention_sweep: Duration::from_secs(config.safeguards.retention_sweep_secs.max(1)),
        cases_per_pull: config
            .testing
            .cases_per_pull
            .unwrap_or(crate::cases::CASES_PER_PULL),
        anti_entropy: Duration::from_secs(config.network.anti_entropy_secs.max(1)),
        fulfilments: std::sync::Arc::new(crate::evidence::Announcer),
        give_up_after: Duration::from_secs(config.outbox.give_up_after_secs.max(1)),
        new_cases_per_member_per_day: config.safeguards.max_new_cases_per_member_per_day,
        queries_per_second_per_member: config.network.queries_per_second_per_member,
    }
}

/// The read-only dashboard, if configured: its failure does not stop the node.
fn spawn_dashboard(config: &Config, cases: &Cases, store: &Store) {
    if let Some(listen) = config.dashboard.listen {
        let dashboard = crate::dashboard::serve(
            listen,
            config.dashboard.clone(),
            cases.clone(),
            store.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = dashboard.await {
                tracing::error!(error = %e, "the dashboard stopped; the node goes on without it");
            }
        });
    }
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Room a node needs free on its store's file system to start and take writes: RocksDB
/// preallocates its write-ahead log (about 1.1 × one memtable of 8 MiB) and flushes memtables
/// of up to 32 MiB in all, beside its manifest and logs.
pub const ROOM_NEEDED: u64 = 64 << 20;

/// `comity config check`: everything `comity run` reads before it starts, read and checked
/// the same way, without starting (the store is not opened: a running node holds it). Returns
/// what was checked, one line each; the first problem is the error.
pub fn check(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut checked = Vec::new();
    let identity = NodeIdentity::load(&config.key_path(), &config.signing_key_path())?;
    checked.push(format!(
        "keys: {} (PeerId {})",
        config.key_path().display(),
        identity.peer_id()
    ));
    let tls = admin_tls(config)?;
    checked.push(format!(
        "admin API: {} ({})",
        config.admin.listen,
        if tls.is_some() {
            "https"
        } else {
            "http, loopback"
        }
    ));
    let (policy, _) = read_policy(config)?;
    checked.push(match policy {
        Some(_) => "policy: read and valid".into(),
        None => "policy: none, manual review ([node] policy_mode): every request goes to reviewers unchecked".into(),
    });
    let store = config.store_path();
    let free = free_room(&store)?;
    anyhow::ensure!(
        free >= ROOM_NEEDED,
        "only {} MiB free for the store at {}: a node needs {} MiB to start and take writes; free some space",
        free >> 20,
        store.display(),
        ROOM_NEEDED >> 20
    );
    checked.push(format!(
        "store: {} ({} MiB free, {} MiB needed)",
        store.display(),
        free >> 20,
        ROOM_NEEDED >> 20
    ));
    Ok(checked)
}

/// Bytes free to this process on the file system of `path` (or of its nearest existing parent).
pub(crate) fn free_room(path: &std::path::Path) -> anyhow::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("."));
    let stats = nix::sys::statvfs::statvfs(existing)
        .map_err(|e| anyhow::anyhow!("cannot read free space at {}: {e}", existing.display()))?;
    // The field types are the platform's (`fsblkcnt_t`, `c_ulong`).
    Ok(stats.blocks_available() as u64 * stats.fragment_size() as u64)
}

/// The admin API's TLS from the config, checked before anything starts: beyond loopback it
/// is required, and both files must be given and make a TLS identity.
fn admin_tls(config: &Config) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    let tls = match (&config.admin.tls_cert, &config.admin.tls_key) {
        (Some(cert), Some(key)) => Some(
            admin::tls::load(&config.resolve(cert), &config.resolve(key))
                .map_err(anyhow::Error::msg)?,
        ),
        (None, None) => None,
        _ => anyhow::bail!("[admin] needs both tls_cert and tls_key, or neither"),
    };
    if let Some(problem) = admin::tls::exposure_problem(config.admin.listen, tls.is_some()) {
        anyhow::bail!(problem);
    }
    Ok(tls)
}
