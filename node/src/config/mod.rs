//! The node's configuration file (`comity.toml`): one `Config` with a section per subsystem.
//!
//! Every field has a default in code, so a config file only needs what differs. Relative paths
//! are resolved against the directory that holds the config file, so a node's directory can be
//! moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use comity_protocol::Jurisdiction;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

mod commented;

/// Errors reading or checking a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source} (create one with `comity init`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeSection,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub outbox: OutboxSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub safeguards: SafeguardsSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub dashboard: DashboardSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub opmon: OpmonSection,
    #[serde(default)]
    pub evidence: EvidenceSection,
    #[serde(default)]
    pub bloc: BlocSection,
    #[serde(default)]
    pub testing: TestingSection,
    /// Directory the config was read from; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Who this node is and where it keeps its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The jurisdiction this node speaks for, as in the bloc configuration.
    pub jurisdiction: Jurisdiction,
    /// Where the RocksDB store lives.
    #[serde(default = "defaults::store_dir")]
    pub store_dir: PathBuf,
    /// The node's Ed25519 transport key (mode 0600): its PeerId, for Noise handshakes.
    #[serde(default = "defaults::key_file")]
    pub key_file: PathBuf,
    /// The node's application signing key (mode 0600): events, receipts, checkpoints, its
    /// votes on the bloc configuration. The bloc configuration lists it; it rotates with
    /// `comity bloc propose --rotate-key signing`.
    #[serde(default = "defaults::signing_key_file")]
    pub signing_key_file: PathBuf,
    /// This node's policy (agreements, refusal grounds, dual criminality, minimisation).
    /// Incoming requests are checked against it on arrival, and again while pending when it
    /// changes or an agreement expires; a refusal binds until an override.
    #[serde(default = "defaults::policy_file")]
    pub policy: PathBuf,
    /// What the node does without a policy file: `policy` (the default) refuses to start,
    /// `manual-review` starts and leaves every incoming request to a reviewer, unchecked. A
    /// policy file, once written, applies whatever this says.
    #[serde(default)]
    pub policy_mode: PolicyMode,
    /// Master key wrapping the per-case data keys (mode 0600). Kept outside the store; back it
    /// up offline: without it no case content can be read.
    #[serde(default = "defaults::master_key")]
    pub master_key: PathBuf,
    /// Directory of per-case data keys (wrapped by the master key).
    #[serde(default = "defaults::keys_dir")]
    pub keys_dir: PathBuf,
    /// The X25519 key evidence for this jurisdiction is sealed to (mode 0600). Its public half
    /// is this member's sealing key in the bloc configuration.
    #[serde(default = "defaults::sealing_key")]
    pub sealing_key: PathBuf,
    /// Evidence packages, sealed: being sent, being received and received.
    #[serde(default = "defaults::evidence_dir")]
    pub evidence_dir: PathBuf,
}

/// Whether a node must run with a policy, or was set by its operator to review every request
/// by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyMode {
    /// The policy file must exist: the node does not start without it.
    #[default]
    Policy,
    /// No policy: every incoming request is left to a reviewer, unchecked. An explicit choice,
    /// shown by `comity status`.
    ManualReview,
}

/// The bloc this node belongs to: what it trusts, and where it first finds members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlocSection {
    /// The bloc id.
    pub id: String,
    /// The bloc's trust anchor: the hash of its genesis configuration, handed over out of
    /// band. The node trusts only configurations chained to it.
    pub anchor: Option<comity_protocol::Hash32>,
    /// A genesis configuration to start from (founders); must hash to `anchor` when both are
    /// set.
    pub genesis: PathBuf,
    /// Members to reach first (multiaddrs ending in /p2p/PEERID), to pull the configuration
    /// chain from when this node holds none yet.
    pub bootstrap: Vec<Multiaddr>,
    /// Seconds between re-announcements of the current version and open proposals.
    pub announce_secs: u64,
    /// Seconds between comparisons of every connected member's configuration chain with
    /// ours (beyond those on connect and on announcements heard).
    pub compare_secs: u64,
}

impl Default for BlocSection {
    fn default() -> Self {
        Self {
            id: String::new(),
            anchor: None,
            genesis: PathBuf::from("genesis.cbor"),
            bootstrap: Vec::new(),
            announce_secs: 30,
            compare_secs: 300,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    /// Multiaddresses to listen on for peer connections (TCP + Noise + Yamux).
    pub listen: Vec<Multiaddr>,
    /// Local discovery by mDNS; for local testnets only, never for a production bloc.
    pub mdns: bool,
    /// Most connections established in total, and with any one peer.
    pub max_connections: u32,
    pub max_connections_per_peer: u32,
    /// Most connections still in the handshake, so a flood of dials cannot exhaust us.
    pub max_pending_incoming: u32,
    /// How long a peer has to answer one exchange request.
    pub request_timeout_secs: u64,
    /// Each member's rate budget at this node, in messages per second (it may send two
    /// seconds' worth at once): exchange requests (pushes, pulls, …), evidence requests
    /// (manifests and chunks) and gossip (checkpoints, reports). Beyond it, requests are
    /// answered "retry shortly" without being read, and gossip is dropped; the counts are in
    /// `comity peers` and the log. 0 turns a budget off.
    pub requests_per_second_per_member: u32,
    pub evidence_requests_per_second_per_member: u32,
    pub gossip_per_second_per_member: u32,
    /// Of its exchange requests, the queries (pulls, proofs, the policy, the bloc
    /// configuration) a member may make a second: their answers cost reads that pushes do
    /// not (a pull counts one more for every 64 KiB of events it is answered with). Beyond
    /// it, answered "retry shortly".
    pub queries_per_second_per_member: u32,
    /// How often members that are not connected are dialled again.
    pub redial_interval_secs: u64,
    /// How often every connected member is asked for events of shared cases this node lacks
    /// (beyond the asks on connect and when a push names events it lacks): the safety net
    /// under the outbox.
    pub anti_entropy_secs: u64,
    /// How often each connection is pinged, and how long it may go without an answered ping
    /// before it is closed (its member shown disconnected and dialled again): a link that
    /// silently stops carrying packets is noticed within about `dead_after_secs` instead of
    /// TCP's many minutes. A slow answer still counts, so a loaded member is not cut off.
    pub ping_interval_secs: u64,
    pub dead_after_secs: u64,
    /// Addresses to reach members at instead of those they announce (a tunnel, a port
    /// forward, a testnet's link), by jurisdiction: only this address is dialled for the
    /// member, and what it announces is not learned.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub routes: std::collections::BTreeMap<comity_protocol::Jurisdiction, Multiaddr>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin API. Beyond loopback only with TLS (`tls_cert` and `tls_key`):
    /// the node refuses to start otherwise.
    pub listen: SocketAddr,
    /// TLS for the admin API: a PEM certificate (chain) and its PEM private key (mode 0600).
    /// `comity tls-cert` makes a self-signed pair, which the CLI pins with `--ca-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSection {
    /// First retry delay after a failed delivery; doubles up to `max_backoff_secs`.
    pub initial_backoff_ms: u64,
    pub max_backoff_secs: u64,
    /// Deliveries attempted at once across all peers.
    pub max_in_flight: usize,
    /// A request still without a receipt after this long is shown as "not delivered" (it is
    /// still retried).
    pub not_delivered_after_secs: u64,
    /// A message its member has not acknowledged after this long is no longer sent: it is
    /// kept and shown on its case until an officer sends it again (`comity case retry`).
    pub give_up_after_secs: u64,
}

/// Safeguards this node applies beyond what the protocol requires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafeguardsSection {
    /// Data categories whose disclosure needs an approver's approval before an officer other
    /// than that approver fulfils the request (four-eyes on the executing side).
    pub disclosure_approval: Vec<comity_protocol::DataCategory>,
    /// Seconds between looks for cases whose retention has ended (their content is then
    /// destroyed).
    pub retention_sweep_secs: u64,
    /// New requests one member may open at this node in a day (UTC); more are answered
    /// `unavailable` and arrive the next day (the sender's outbox retries them).
    pub max_new_cases_per_member_per_day: u32,
}

impl Default for SafeguardsSection {
    fn default() -> Self {
        Self {
            disclosure_approval: vec![comity_protocol::DataCategory::Content],
            retention_sweep_secs: 60,
            max_new_cases_per_member_per_day: 10_000,
        }
    }
}

/// The audit log's checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSection {
    /// Seconds between signed checkpoints of the audit log (when it grew), each published to
    /// the bloc at once; an unchanged one again every 30 of these, or when a member connects.
    pub checkpoint_secs: u64,
    /// Seconds between computations of this node's transparency reports, each signed and
    /// published when its figures changed; an unchanged one again every 30 of these, or when
    /// a member connects.
    pub report_secs: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            checkpoint_secs: 10,
            report_secs: 60,
        }
    }
}

/// The optional read-only dashboard: the bloc-wide statistics and every member's latest
/// cosigned checkpoint, on a port of its own, without login. Off unless `listen` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSection {
    pub listen: Option<SocketAddr>,
    /// `internal` (the default: reports and audit checkpoints, for the node's own network) or
    /// `public` (only the members' signed aggregate reports, and their signed bytes to check:
    /// safe to publish).
    pub mode: DashboardMode,
    /// Requests a second one client address may make (0: no limit); more are answered 429.
    pub requests_per_second_per_client: u32,
    /// Requests a second all clients together may make (0: no limit).
    pub requests_per_second: u32,
    /// How long browsers and caches may keep a page, in seconds.
    pub cache_secs: u32,
}

impl Default for DashboardSection {
    fn default() -> Self {
        Self {
            listen: None,
            mode: DashboardMode::Internal,
            requests_per_second_per_client: 5,
            requests_per_second: 100,
            cache_secs: 300,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DashboardMode {
    #[default]
    Internal,
    Public,
}

/// The Prometheus/OpenMetrics endpoint (`GET /metrics`, with `/health` and `/ready`), on a
/// port of its own, without a token: it carries counts, sizes, times and jurisdiction codes,
/// never a person, a selector or a case. Off unless `listen` is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: Option<SocketAddr>,
}

/// Operational monitoring: the record of every exchange (`comity opmon`), and how long it is
/// kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpmonSection {
    /// Records older than this many days are deleted.
    pub retention_days: u32,
    /// At most this many records are kept (about 150 bytes each); the oldest go first.
    pub max_records: usize,
}

impl Default for OpmonSection {
    fn default() -> Self {
        Self {
            retention_days: 30,
            max_records: 1_000_000,
        }
    }
}

/// Evidence transfers (the bloc's limits are in its configuration's `evidence` settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceSection {
    /// Chunks of a package pulled at once from the sending member.
    pub parallel: usize,
}

impl Default for EvidenceSection {
    fn default() -> Self {
        Self { parallel: 8 }
    }
}

/// Switches for testnets only. Never turn them on in a production node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestingSection {
    /// Lets the admin API cut and restore links to members (`POST /v1/faults`), so that
    /// partitions can be injected.
    pub faults: bool,
    /// Lists at most this many cases in one pull (default 4096), so that tests exercise
    /// pulls range by range without sharing thousands of cases.
    pub cases_per_pull: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `RUST_LOG`-style filter; the `RUST_LOG` environment variable overrides it.
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// What the node keeps of each exchange beyond the case itself: `full` (the exchange
    /// records name the case an exchange was about) or `metadata` (they never do).
    pub mode: crate::opmon::Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

mod defaults {
    use std::path::PathBuf;
    pub fn store_dir() -> PathBuf {
        PathBuf::from("store")
    }
    pub fn key_file() -> PathBuf {
        PathBuf::from("node.key")
    }
    pub fn signing_key_file() -> PathBuf {
        PathBuf::from("signing.key")
    }
    pub fn policy_file() -> PathBuf {
        PathBuf::from("policy.toml")
    }
    pub fn master_key() -> PathBuf {
        PathBuf::from("master.key")
    }
    pub fn keys_dir() -> PathBuf {
        PathBuf::from("keys")
    }
    pub fn sealing_key() -> PathBuf {
        PathBuf::from("sealing.key")
    }
    pub fn evidence_dir() -> PathBuf {
        PathBuf::from("evidence")
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/4001".parse().expect("static multiaddr")],
            mdns: false,
            max_connections: 512,
            max_connections_per_peer: 2,
            max_pending_incoming: 64,
            request_timeout_secs: 15,
            requests_per_second_per_member: 200,
            evidence_requests_per_second_per_member: 10_000,
            gossip_per_second_per_member: 20,
            queries_per_second_per_member: 20,
            redial_interval_secs: 3,
            anti_entropy_secs: 60,
            ping_interval_secs: 3,
            dead_after_secs: 10,
            routes: Default::default(),
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for OutboxSection {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 250,
            max_backoff_secs: 60,
            max_in_flight: 256,
            not_delivered_after_secs: 3600,
            // A week: a member down longer than that is a matter for its officers.
            give_up_after_secs: 7 * 86_400,
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Text,
            mode: crate::opmon::Mode::Full,
        }
    }
}

impl OutboxSection {
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms.max(1))
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_secs.max(1))
    }
}

impl Config {
    /// A fresh config for `comity init`.
    pub fn new(jurisdiction: Jurisdiction, listen: Multiaddr, admin: SocketAddr) -> Self {
        Self {
            node: NodeSection {
                jurisdiction,
                store_dir: defaults::store_dir(),
                key_file: defaults::key_file(),
                signing_key_file: defaults::signing_key_file(),
                policy: defaults::policy_file(),
                // A new node has no policy yet: its operator writes one, and until then
                // reviews every request by hand. The commented config says so.
                policy_mode: PolicyMode::ManualReview,
                master_key: defaults::master_key(),
                keys_dir: defaults::keys_dir(),
                sealing_key: defaults::sealing_key(),
                evidence_dir: defaults::evidence_dir(),
            },
            network: NetworkSection {
                listen: vec![listen],
                ..NetworkSection::default()
            },
            admin: AdminSection {
                listen: admin,
                tls_cert: None,
                tls_key: None,
            },
            outbox: OutboxSection::default(),
            log: LogSection::default(),
            safeguards: SafeguardsSection::default(),
            audit: AuditSection::default(),
            dashboard: DashboardSection::default(),
            metrics: MetricsSection::default(),
            opmon: OpmonSection::default(),
            evidence: EvidenceSection::default(),
            bloc: BlocSection::default(),
            testing: TestingSection::default(),
            base_dir: PathBuf::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Ok(config)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.resolve(&self.node.store_dir)
    }
    pub fn key_path(&self) -> PathBuf {
        self.resolve(&self.node.key_file)
    }
    pub fn signing_key_path(&self) -> PathBuf {
        self.resolve(&self.node.signing_key_file)
    }
    pub fn genesis_path(&self) -> PathBuf {
        self.resolve(&self.bloc.genesis)
    }
    pub fn policy_path(&self) -> PathBuf {
        self.resolve(&self.node.policy)
    }
    /// The master key that wraps the case keys (mode 0600; never in the store).
    pub fn master_key_path(&self) -> PathBuf {
        self.resolve(&self.node.master_key)
    }
    /// Per-case data keys, wrapped: deleting one destroys that case's content.
    pub fn keys_path(&self) -> PathBuf {
        self.resolve(&self.node.keys_dir)
    }
    /// The X25519 key evidence for this node is sealed to (mode 0600; never in the store).
    pub fn sealing_key_path(&self) -> PathBuf {
        self.resolve(&self.node.sealing_key)
    }
    pub fn evidence_path(&self) -> PathBuf {
        self.resolve(&self.node.evidence_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let config: Config = toml::from_str("[node]\njurisdiction = \"DE\"\n").unwrap();
        assert_eq!(config.admin.listen.ip().to_string(), "127.0.0.1");
        assert!(!config.network.mdns);
        assert_eq!(config.node.store_dir, PathBuf::from("store"));
    }

    #[test]
    fn unknown_field_is_refused_by_name() {
        let err = toml::from_str::<Config>("[node]\njurisdiction = \"DE\"\nmdsn = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mdsn"), "{err}");
    }

    #[test]
    fn routes_survive_the_commented_file_and_a_bad_address_is_named() {
        let mut config: Config = toml::from_str("[node]\njurisdiction = \"DE\"\n").unwrap();
        assert!(!config.to_commented_toml().contains("routes"));
        config.network.routes.insert(
            "FR".parse().unwrap(),
            "/ip4/10.1.2.3/tcp/4001".parse().unwrap(),
        );
        let back: Config = toml::from_str(&config.to_commented_toml()).unwrap();
        assert_eq!(back.network.routes, config.network.routes);
        let err = toml::from_str::<Config>(
            "[node]\njurisdiction = \"DE\"\n[network.routes]\nFR = \"10.1.2.3:4001\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("FR = \"10.1.2.3:4001\""), "{err}");
    }

    #[test]
    fn invalid_jurisdiction_is_refused() {
        assert!(toml::from_str::<Config>("[node]\njurisdiction = \"XX\"\n").is_err());
    }
}
