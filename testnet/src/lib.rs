//! Local Comity blocs made of real `comity run` processes on 127.0.0.1.
//!
//! Used by `comity-testnet up/down`, the demo, the benchmarks and the integration tests. A
//! [`Bloc`] generates every member's keys, config and token, forms the bloc through a genesis
//! that every member signs (as founders do), and starts, stops or kills member processes on
//! demand (fault injection). Members join and keys rotate through governance, as in a real
//! bloc: [`Bloc::prepare_member`], [`Bloc::propose`], [`Bloc::sign`].

pub mod bench;
pub mod disk_throttle;
pub mod faults;
pub mod links;
pub mod netns;
pub mod peer;
pub mod scenario;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comity_node::admin::api::AdminClient;
use comity_node::bloc::{ProposalView, ProposeRequest};
use comity_node::init::{InitOptions, init};
pub use comity_node::network::LinkFault;
use comity_protocol::Jurisdiction;
use comity_protocol::bloc::{Rules, Settings, Threshold};
use serde::{Deserialize, Serialize};

/// The `comity` binary to start: `$COMITY_BIN`, else the one built beside this program.
pub fn comity_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("COMITY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    // Binaries live in target/<profile>/, test executables in target/<profile>/deps/.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("comity");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "cannot find the `comity` binary next to {}; build it with `cargo build -p comity-node` or set COMITY_BIN",
        exe.display()
    )
}

/// Sends a request the way officers must: drafted by `requester`, approved by `approver` (a
/// second officer: four-eyes), then sent, optionally waiting up to `wait` for the receipt.
pub async fn send_request(
    requester: &AdminClient,
    approver: &AdminClient,
    request: comity_protocol::AssistanceRequest,
    wait: Option<Duration>,
) -> anyhow::Result<comity_node::admin::api::CaseDetail> {
    let draft = requester
        .create_request(&comity_node::admin::api::NewRequest { request })
        .await?;
    approver.approve(draft.summary.case_id).await?;
    Ok(requester.send(draft.summary.case_id, wait).await?)
}

/// A free TCP port on loopback (bound and released), never one this process handed out
/// before: blocs made at once by parallel tests must not pick the same port.
/// A real bloc's pace for a node of a testnet of `members`: announcements and safety nets at
/// the nodes' defaults (every 30, 60 and 300 s), not the testnet's quick one, and room for a
/// connection each way with every other member. A bloc of dozens on one machine needs it.
pub fn production_pacing(config: &mut comity_node::config::Config, members: usize) {
    let (bloc, network) = (
        comity_node::config::BlocSection::default(),
        comity_node::config::NetworkSection::default(),
    );
    config.bloc.announce_secs = bloc.announce_secs;
    config.bloc.compare_secs = bloc.compare_secs;
    config.network.anti_entropy_secs = network.anti_entropy_secs;
    config.network.max_connections = config.network.max_connections.max(4 * members as u32);
}

pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port on loopback");
        let mut handed_out = HANDED_OUT.lock().expect("ports lock");
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// One member's directory under `dir`, made as its operator would with `comity init` (keys,
/// config, token, signed card), with an approver officer for four-eyes and the testnet's
/// settings (fault injection on, quick announcements), then `adjust`ed.
async fn init_member(
    dir: &Path,
    j: &Jurisdiction,
    bloc_id: &str,
    anchor: Option<comity_protocol::Hash32>,
    bootstrap: Vec<libp2p::Multiaddr>,
    at: Placement,
    adjust: &dyn Fn(&mut comity_node::config::Config),
) -> anyhow::Result<NodeInfo> {
    let Placement {
        listen_ip,
        admin_ip,
        namespace,
    } = at;
    let node_dir = dir.join(j.as_str());
    let p2p_port = free_port();
    let listen: libp2p::Multiaddr = match listen_ip {
        std::net::IpAddr::V4(ip) => format!("/ip4/{ip}/tcp/{p2p_port}"),
        std::net::IpAddr::V6(ip) => format!("/ip6/{ip}/tcp/{p2p_port}"),
    }
    .parse()?;
    let admin = SocketAddr::new(admin_ip, free_port());
    let token_file = node_dir.join("admin.token");
    std::fs::create_dir_all(&node_dir)?;
    let done = init(InitOptions {
        jurisdiction: j.clone(),
        data_dir: node_dir.clone(),
        listen: listen.clone(),
        admin,
        name: None,
        bloc: bloc_id.to_owned(),
        anchor,
        bootstrap,
        token_file: Some(token_file.clone()),
    })
    .await
    .with_context(|| format!("initialising {j}"))?;
    // Four-eyes needs a second officer: every testnet member gets an approver, and a second
    // admin for the appointments that take two (auditors, oversight, governors).
    let approver_token_file = node_dir.join("approver.token");
    let second_admin_token_file = node_dir.join("admin2.token");
    {
        use comity_node::admin::officers::{Role, add};
        let store = comity_node::store::Store::open(&node_dir.join("store"))?;
        for (name, role, file) in [
            ("approver", Role::Approver, &approver_token_file),
            ("admin2", Role::Admin, &second_admin_token_file),
        ] {
            let (_, token) = add(&store, name, role).await?;
            comity_node::roster::write_private(file, format!("{token}\n").as_bytes())?;
        }
    }
    let mut config = comity_node::config::Config::load(&done.config_path)?;
    // A testnet is where faults are injected (and only there).
    config.testing.faults = true;
    config.bloc.announce_secs = 2;
    // Tests wait seconds, not minutes, for what the safety nets heal.
    config.bloc.compare_secs = 2;
    config.network.anti_entropy_secs = 15;
    // Tests play a member by hand beside its running node (a raw peer with its keys): room for
    // those connections beside the two a member's node may hold (the default).
    config.network.max_connections_per_peer = 4;
    // Beyond loopback (a member in a namespace of its own), the admin API serves TLS with a
    // certificate the testnet's clients pin, as an operator's remote admin would.
    let admin_ca = if admin_ip.is_loopback() {
        None
    } else {
        let (cert, key) = comity_node::admin::tls::self_signed(&[admin_ip.to_string()])
            .map_err(|e| anyhow::anyhow!(e))?;
        let (cert_file, key_file) = (
            node_dir.join("admin-cert.pem"),
            node_dir.join("admin-key.pem"),
        );
        std::fs::write(&cert_file, cert)?;
        comity_node::roster::write_private(&key_file, key.as_bytes())?;
        config.admin.tls_cert = Some(cert_file.clone());
        config.admin.tls_key = Some(key_file);
        Some(cert_file)
    };
    adjust(&mut config);
    std::fs::write(&done.config_path, config.to_commented_toml())?;
    Ok(NodeInfo {
        jurisdiction: j.clone(),
        peer_id: done.peer_id.to_string(),
        log: node_dir.join("node.log"),
        dir: node_dir,
        config: done.config_path,
        token_file,
        approver_token_file,
        second_admin_token_file,
        admin,
        p2p_port,
        listen,
        pid: None,
        disk_mib: None,
        namespace,
        admin_ca,
    })
}

/// Where a new member listens and runs: its addresses for members and for the admin API, and
/// its network namespace, if it has one of its own.
struct Placement {
    listen_ip: std::net::IpAddr,
    admin_ip: std::net::IpAddr,
    namespace: Option<String>,
}

impl Placement {
    /// Admin API on loopback, members reached on `ip`.
    fn on(ip: std::net::IpAddr) -> Self {
        Self {
            listen_ip: ip,
            admin_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            namespace: None,
        }
    }

    fn inside(place: &netns::Place) -> Self {
        Self {
            listen_ip: place.address.into(),
            admin_ip: place.address.into(),
            namespace: Some(place.namespace.clone()),
        }
    }
}

/// The roster of a member's genesis (`genesis.cbor` in its directory): the bloc as it was
/// formed, for tests that play a member by hand.
pub fn genesis_roster(node_dir: &Path) -> anyhow::Result<comity_node::roster::Roster> {
    let signed = comity_node::bloc::files::read_config(&node_dir.join("genesis.cbor"))?;
    let anchor = comity_protocol::bloc::config_hash(&signed);
    let verified = comity_protocol::bloc::verify_genesis(&signed, &anchor)?;
    Ok(comity_node::roster::Roster::from_config(
        std::sync::Arc::new(verified),
    ))
}

/// The purpose testnet clients state when they read case content.
pub const TESTNET_PURPOSE: &str = "testnet";

/// One member of a local bloc, as saved in `testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    pub jurisdiction: Jurisdiction,
    pub peer_id: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub token_file: PathBuf,
    /// An officer with the `approver` role, for four-eyes approvals.
    pub approver_token_file: PathBuf,
    /// A second admin (`admin2`), for the appointments that take two.
    #[serde(default)]
    pub second_admin_token_file: PathBuf,
    pub admin: SocketAddr,
    pub p2p_port: u16,
    /// Where it listens for members: 127.0.0.1, or a shared testnet's address.
    #[serde(default = "loopback_listen")]
    pub listen: libp2p::Multiaddr,
    pub log: PathBuf,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The size of the member's small disk, if its store is on one (`Bloc::small_disk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mib: Option<u64>,
    /// The network namespace it runs in (`up --links netns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The certificate its admin API serves (beyond loopback), which its clients pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_ca: Option<PathBuf>,
}

fn loopback_listen() -> libp2p::Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().expect("static multiaddr")
}

/// What an operator needs to join a shared testnet from a machine of its own: the bloc's id,
/// its trust anchor, and members to reach first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinKit {
    pub bloc: String,
    pub anchor: comity_protocol::Hash32,
    pub bootstrap: Vec<libp2p::Multiaddr>,
}

impl JoinKit {
    /// The operator's steps, with this kit's values in them.
    pub fn instructions(&self, dir: &Path) -> String {
        let bootstrap: String = self
            .bootstrap
            .iter()
            .map(|b| format!(" \\\n    --bootstrap {b}"))
            .collect();
        format!(
            "# Joining the shared testnet `{bloc}`\n\n\
             The bloc's trust anchor is `{anchor}`: check it with the organiser over a second\n\
             channel (a call, a signed mail) before you use it.\n\n\
             1. Make your node, listening on an address the members can reach:\n\n\
             ```sh\n\
             comity init --jurisdiction XX --data-dir /srv/comity \\\n    \
             --listen /ip4/YOUR.PUBLIC.ADDRESS/tcp/4001 \\\n    \
             --bloc {bloc} --bloc-anchor {anchor}{bootstrap}\n\
             comity run -c /srv/comity/comity.toml\n\
             ```\n\n\
             2. Send your card, `/srv/comity/member.toml`, to the organiser. Until the bloc\n\
             signs it in, the members refuse your node.\n\n\
             3. The organiser admits it: `comity-testnet admit --dir {dir} --card member.toml`\n\
             (the founders propose it and sign). Within seconds your node pulls the new\n\
             configuration; `comity status -c /srv/comity/comity.toml` lists the members.\n",
            bloc = self.bloc,
            anchor = self.anchor,
            dir = dir.display(),
        )
    }
}

/// The file that fills a member's small disk.
const FILLER: &str = "filler";
/// The image file behind a member's small disk, in its directory.
const DISK_IMAGE: &str = "disk.img";

impl NodeInfo {
    pub fn admin_url(&self) -> String {
        match self.admin_ca {
            Some(_) => format!("https://{}", self.admin),
            None => format!("http://{}", self.admin),
        }
    }

    /// A client of its admin API with `token`, pinning its certificate if it serves TLS.
    fn admin_client(&self, token: &str) -> anyhow::Result<AdminClient> {
        let client = match &self.admin_ca {
            Some(ca) => {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                AdminClient::with_ca(self.admin_url(), token, &pem)?
            }
            None => AdminClient::new(self.admin_url(), token),
        };
        Ok(client.with_purpose(TESTNET_PURPOSE))
    }

    pub fn token(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(&self.token_file)?.trim().to_owned())
    }

    /// The admin API as this member's admin officer. Reads of case content state the purpose
    /// "testnet", which the access log records.
    pub fn client(&self) -> anyhow::Result<AdminClient> {
        self.admin_client(&self.token()?)
    }

    /// The admin API as this member's approver officer.
    pub fn approver(&self) -> anyhow::Result<AdminClient> {
        let token = std::fs::read_to_string(&self.approver_token_file)?;
        self.admin_client(token.trim())
    }

    /// The admin API as this member's second admin (`admin2`).
    pub fn second_admin(&self) -> anyhow::Result<AdminClient> {
        let token = std::fs::read_to_string(&self.second_admin_token_file)?;
        self.admin_client(token.trim())
    }

    /// Appoints an officer as the rules ask: by the admin, and for the roles that take two
    /// admins, approved by the second.
    pub async fn appoint(
        &self,
        name: &str,
        role: comity_node::admin::officers::Role,
    ) -> anyhow::Result<comity_node::admin::api::NewOfficerToken> {
        use comity_node::admin::api::{NewOfficerToken, OfficerChange};
        let mut change = self.client()?.appoint_officer(name, role).await?;
        if let OfficerChange::Pending { .. } = change {
            change = self.second_admin()?.approve_officer(name).await?;
        }
        match change {
            OfficerChange::Added { officer, token } => Ok(NewOfficerToken { officer, token }),
            other => anyhow::bail!("appointing {name} did not add it: {other:?}"),
        }
    }
}

/// A local bloc: its directory, its members, and the processes this value started.
#[derive(Debug)]
pub struct Bloc {
    pub dir: PathBuf,
    pub bloc_id: String,
    pub nodes: BTreeMap<Jurisdiction, NodeInfo>,
    children: BTreeMap<Jurisdiction, Child>,
    binary: PathBuf,
    /// Extra `RUST_LOG` for the nodes, e.g. "comity_node=debug".
    pub log_filter: String,
    /// The governance rules and settings of the genesis.
    pub rules: Rules,
    pub settings: Settings,
    /// The bloc's trust anchor (the genesis hash).
    pub anchor: Option<comity_protocol::Hash32>,
    /// The link layer, when this value runs it (tests): see [`Bloc::run_links`].
    links: Option<std::sync::Arc<links::Links>>,
    /// Whether dropping this value unmounts the members' small disks (it made them and was
    /// not detached).
    owns_disks: bool,
    /// The members' network namespaces, when each has its own (`up --links netns`).
    fabric: Option<netns::Fabric>,
    /// Whether dropping this value removes them (it made them and was not detached).
    owns_fabric: bool,
}

const STATE_FILE: &str = "testnet.json";
/// The routes of the link layer (`links::Route`s), when members reach each other through it.
pub const LINKS_FILE: &str = "links.json";
/// The control socket of a links process (`comity-testnet links`).
pub const LINKS_SOCKET: &str = "links.sock";
/// The testnet's event log: faults and scenario steps, one timestamped line each.
pub const EVENTS_FILE: &str = "events.log";

impl Bloc {
    /// Generates a bloc of `jurisdictions` under `dir`: one directory per member with key,
    /// config and token, and one roster naming them all.
    pub async fn create(dir: &Path, jurisdictions: &[Jurisdiction]) -> anyhow::Result<Self> {
        Self::create_with(dir, jurisdictions, "testnet", |_| {}).await
    }

    /// As `create`, letting the caller adjust each member's config before it is written.
    pub async fn create_with(
        dir: &Path,
        jurisdictions: &[Jurisdiction],
        bloc_id: &str,
        adjust: impl Fn(&mut comity_node::config::Config),
    ) -> anyhow::Result<Self> {
        Self::create_on(
            dir,
            jurisdictions,
            bloc_id,
            std::net::Ipv4Addr::LOCALHOST.into(),
            adjust,
        )
        .await
    }

    /// As `create_with`, the members listening on `ip` (an address of this machine that
    /// other machines reach) instead of loopback: a shared testnet.
    pub async fn create_on(
        dir: &Path,
        jurisdictions: &[Jurisdiction],
        bloc_id: &str,
        ip: std::net::IpAddr,
        adjust: impl Fn(&mut comity_node::config::Config),
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut nodes = BTreeMap::new();
        for j in jurisdictions {
            let at = Placement::on(ip);
            let node = init_member(dir, j, bloc_id, None, Vec::new(), at, &adjust).await?;
            nodes.insert(j.clone(), node);
        }
        Self::assemble(dir, bloc_id, nodes, None)
    }

    /// As `create_with`, each member in a network namespace of its own on a bridge made for
    /// the testnet (see [`netns`]): links lose, blackhole and cut real packets. Needs root.
    /// The namespaces and bridge are removed when this value is dropped (unless detached) or
    /// by `comity-testnet down`.
    pub async fn create_in_namespaces(
        dir: &Path,
        jurisdictions: &[Jurisdiction],
        bloc_id: &str,
        adjust: impl Fn(&mut comity_node::config::Config),
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let fabric = netns::Fabric::create(jurisdictions)?;
        // Saved before anything else can fail, so that `down` finds it.
        if let Err(e) = fabric.save(dir) {
            fabric.teardown();
            return Err(e);
        }
        let mut nodes = BTreeMap::new();
        for j in jurisdictions {
            let at = Placement::inside(fabric.place(j)?);
            match init_member(dir, j, bloc_id, None, Vec::new(), at, &adjust).await {
                Ok(node) => nodes.insert(j.clone(), node),
                Err(e) => {
                    fabric.teardown();
                    return Err(e);
                }
            };
        }
        Self::assemble(dir, bloc_id, nodes, Some(fabric))
    }

    fn assemble(
        dir: &Path,
        bloc_id: &str,
        nodes: BTreeMap<Jurisdiction, NodeInfo>,
        fabric: Option<netns::Fabric>,
    ) -> anyhow::Result<Self> {
        let owns_fabric = fabric.is_some();
        let mut bloc = Self {
            dir: dir.to_owned(),
            bloc_id: bloc_id.to_owned(),
            nodes,
            children: BTreeMap::new(),
            binary: comity_binary()?,
            log_filter: "info".into(),
            rules: Rules::default(),
            settings: Settings::default(),
            anchor: None,
            links: None,
            owns_disks: false,
            fabric,
            owns_fabric,
        };
        bloc.form_genesis()?;
        bloc.save()?;
        Ok(bloc)
    }

    /// Forms the bloc's genesis as founders do: from every member's signed card, signed by
    /// every member's own key, assembled; written beside each member's config with the anchor
    /// set. Done again (before the members first start) when the rules or settings change.
    pub fn form_genesis(&mut self) -> anyhow::Result<()> {
        use comity_node::bloc::files;
        let cards = self
            .nodes
            .values()
            .map(|n| std::fs::read_to_string(n.dir.join(comity_node::init::MEMBER_FILE)))
            .collect::<Result<Vec<_>, _>>()?;
        let blank = files::genesis(&self.bloc_id, &cards, self.rules, self.settings.clone())?;
        let copies = self
            .nodes
            .values()
            .map(|n| {
                let identity = comity_node::identity::NodeIdentity::load_dir(&n.dir)?;
                let mut copy = blank.clone();
                files::sign_genesis(&mut copy, &identity)?;
                Ok(copy)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (genesis, anchor) = files::assemble(&copies)?;
        for node in self.nodes.values() {
            let mut config = comity_node::config::Config::load(&node.config)?;
            config.bloc.anchor = Some(anchor);
            std::fs::write(&node.config, config.to_commented_toml())?;
            std::fs::write(node.dir.join("genesis.cbor"), genesis.to_bytes())?;
        }
        self.anchor = Some(anchor);
        Ok(())
    }

    /// The share of members that must sign each next version (before the members start).
    pub fn set_threshold(&mut self, threshold: Threshold) -> anyhow::Result<()> {
        self.rules.threshold = threshold;
        self.form_genesis()
    }

    /// Sets the bloc's `deadlines` in its genesis (before the members start).
    pub fn set_deadlines(
        &mut self,
        deadlines: comity_node::roster::Deadlines,
    ) -> anyhow::Result<()> {
        self.settings.deadlines = deadlines;
        self.form_genesis()
    }

    /// Sets the bloc's own figures for `instrument` in its genesis (before the members start),
    /// in place of the instrument's.
    pub fn set_instrument_rules(
        &mut self,
        instrument: comity_protocol::Instrument,
        rules: comity_protocol::bloc::InstrumentRules,
    ) -> anyhow::Result<()> {
        self.settings.instruments.insert(instrument, rules);
        self.form_genesis()
    }

    /// Prepares a new member that joins the running bloc by its anchor, as a new country
    /// would: its own directory, keys and token, bootstrapping from `via`. Returns its signed
    /// `member.toml`, which a member proposes adding; start it with [`Bloc::start`].
    pub async fn prepare_member(&mut self, j: &str, via: &str) -> anyhow::Result<String> {
        let jurisdiction: Jurisdiction = j.parse()?;
        let via = self.node(via).clone();
        let anchor = self
            .anchor
            .ok_or_else(|| anyhow::anyhow!("the bloc has no genesis yet"))?;
        let bootstrap = format!("{}/p2p/{}", via.listen, via.peer_id).parse()?;
        let at = match &self.fabric {
            Some(_) => {
                let mut fabric = netns::Fabric::load(&self.dir)?
                    .context("the testnet's namespaces file is gone")?;
                let added = fabric.add(&jurisdiction).map(Placement::inside);
                // Saved even if it failed half-way, so that teardown finds what was made.
                fabric.save(&self.dir)?;
                let at = added?;
                self.fabric = Some(fabric);
                at
            }
            None => Placement::on(std::net::Ipv4Addr::LOCALHOST.into()),
        };
        let node = init_member(
            &self.dir,
            &jurisdiction,
            &self.bloc_id.clone(),
            Some(anchor),
            vec![bootstrap],
            at,
            &|_| {},
        )
        .await?;
        let card = std::fs::read_to_string(node.dir.join(comity_node::init::MEMBER_FILE))?;
        self.nodes.insert(jurisdiction, node);
        self.save()?;
        Ok(card)
    }

    /// What an operator elsewhere needs to join: the bloc, its anchor, and every founder's
    /// address to reach first.
    pub fn join_kit(&self) -> anyhow::Result<JoinKit> {
        Ok(JoinKit {
            bloc: self.bloc_id.clone(),
            anchor: self.anchor.context("the bloc has no genesis yet")?,
            bootstrap: self
                .nodes
                .values()
                .map(|n| format!("{}/p2p/{}", n.listen, n.peer_id).parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// Admits a member by its card (`member.toml` text): the first running member proposes
    /// it, the others sign until it applies. Returns the new version.
    pub async fn admit(&self, card: &str) -> anyhow::Result<u64> {
        let running: Vec<Jurisdiction> = self
            .nodes
            .values()
            .filter(|n| n.pid.is_some())
            .map(|n| n.jurisdiction.clone())
            .collect();
        let proposer = running.first().context("no member runs to propose it")?;
        let request = ProposeRequest {
            add: vec![card.to_owned()],
            ..ProposeRequest::default()
        };
        self.govern(proposer, &running, &request).await
    }

    /// Proposes `request` at `proposer`, has the other `voters` sign until it applies, and
    /// waits until every voter holds the new version; that version.
    pub async fn govern(
        &self,
        proposer: &Jurisdiction,
        voters: &[Jurisdiction],
        request: &ProposeRequest,
    ) -> anyhow::Result<u64> {
        let proposed = self.propose(proposer.as_str(), request).await?;
        let version = proposed.version;
        let mut applied = proposed.applied;
        for voter in voters.iter().filter(|v| *v != proposer) {
            if applied {
                break;
            }
            applied = self
                .sign(voter.as_str(), &version.to_string())
                .await?
                .applied;
        }
        for voter in voters {
            self.wait_version(voter.as_str(), version, Duration::from_secs(60))
                .await?;
        }
        Ok(version)
    }

    /// Proposes the next bloc configuration through member `j`'s governor (its admin).
    pub async fn propose(&self, j: &str, request: &ProposeRequest) -> anyhow::Result<ProposalView> {
        Ok(self.client(j).bloc_propose(request).await?)
    }

    /// Member `j` signs the open proposal for `which` (a version, or a hash prefix), waiting
    /// up to a minute for the proposal to reach `j` (by gossip, re-announced every few
    /// seconds: a member starved on a loaded machine may miss several rounds).
    pub async fn sign(&self, j: &str, which: &str) -> anyhow::Result<ProposalView> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.client(j).bloc_sign(which).await {
                Err(comity_node::admin::api::ClientError::Api { status: 404, .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => return Ok(other?),
            }
        }
    }

    /// Waits until member `j` holds bloc configuration `version`.
    pub async fn wait_version(
        &self,
        j: &str,
        version: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = self.client(j).bloc_status().await
                && status.version >= Some(version)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{j} did not reach bloc configuration version {version} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id of a running member.
    pub fn pid(&self, j: &str) -> anyhow::Result<u32> {
        let key: Jurisdiction = j.parse()?;
        self.nodes
            .get(&key)
            .and_then(|n| n.pid)
            .ok_or_else(|| anyhow::anyhow!("{j} is not running"))
    }

    /// Sets the bloc's evidence `limits` in its genesis (before the members start).
    pub fn set_evidence_limits(
        &mut self,
        limits: comity_node::roster::EvidenceLimits,
    ) -> anyhow::Result<()> {
        self.settings.evidence = limits;
        self.form_genesis()
    }

    /// Reloads a bloc saved by `create`/`start` (for `comity-testnet down`).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no testnet at {} (missing {STATE_FILE})", dir.display()))?;
        let nodes: Vec<NodeInfo> = serde_json::from_str(&text)?;
        // The bloc id and anchor, as the members' configs hold them.
        let config = nodes
            .first()
            .map(|n| comity_node::config::Config::load(&n.config))
            .transpose()?;
        Ok(Self {
            dir: dir.to_owned(),
            bloc_id: config
                .as_ref()
                .map(|c| c.bloc.id.clone())
                .unwrap_or_default(),
            anchor: config.as_ref().and_then(|c| c.bloc.anchor),
            nodes: nodes
                .into_iter()
                .map(|n| (n.jurisdiction.clone(), n))
                .collect(),
            children: BTreeMap::new(),
            binary: comity_binary().unwrap_or_else(|_| PathBuf::from("comity")),
            log_filter: "info".into(),
            rules: Rules::default(),
            settings: Settings::default(),
            links: None,
            owns_disks: false,
            fabric: netns::Fabric::load(dir)?,
            owns_fabric: false,
        })
    }

    /// Puts a link of the link layer between every pair of members (before they start): each
    /// member's config routes every other member through its own proxy port, and the routes
    /// are saved in `links.json`. The proxies run in whatever process then calls
    /// [`Bloc::run_links`] (tests) or in `comity-testnet links` (the command line).
    pub fn route_through_links(&mut self) -> anyhow::Result<Vec<links::Route>> {
        let members: BTreeMap<Jurisdiction, SocketAddr> = self
            .nodes
            .iter()
            .map(|(j, n)| (j.clone(), SocketAddr::from(([127, 0, 0, 1], n.p2p_port))))
            .collect();
        let routes = links::plan(&members);
        for node in self.nodes.values() {
            let mut config = comity_node::config::Config::load(&node.config)?;
            config.network.routes = routes
                .iter()
                .filter(|r| r.from == node.jurisdiction)
                .map(|r| {
                    let addr: libp2p::Multiaddr =
                        format!("/ip4/127.0.0.1/tcp/{}", r.port).parse()?;
                    Ok((r.to.clone(), addr))
                })
                .collect::<anyhow::Result<_>>()?;
            std::fs::write(&node.config, config.to_commented_toml())?;
        }
        std::fs::write(
            self.dir.join(LINKS_FILE),
            serde_json::to_string_pretty(&routes)?,
        )?;
        Ok(routes)
    }

    /// Routes the members through the link layer and runs its proxies in this process.
    pub async fn run_links(&mut self) -> anyhow::Result<()> {
        let routes = self.route_through_links()?;
        self.links = Some(std::sync::Arc::new(links::Links::start(routes).await?));
        Ok(())
    }

    /// The `comity` binary the members run.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Whether members reach each other through a link layer (this value's or a process's).
    pub fn has_link_layer(&self) -> bool {
        self.links.is_some() || self.fabric.is_some() || self.dir.join(LINKS_FILE).exists()
    }

    /// The link layer this value runs.
    pub fn links(&self) -> &links::Links {
        self.links
            .as_deref()
            .expect("the bloc runs no link layer: call run_links before starting the members")
    }

    /// Puts `conditions` on the link between `a` and `b` (both ways), and records it.
    pub async fn link(
        &self,
        a: &str,
        b: &str,
        conditions: links::Conditions,
    ) -> anyhow::Result<()> {
        let (a, b) = (
            self.node(a).jurisdiction.clone(),
            self.node(b).jurisdiction.clone(),
        );
        let what = format!("link {a} {b}: {}", conditions.describe());
        self.control_links(links::Control::Set { a, b, conditions })
            .await?;
        self.record_event(&what)
    }

    /// Every link clean again, and recorded.
    pub async fn heal_links(&self) -> anyhow::Result<()> {
        self.control_links(links::Control::Heal).await?;
        self.record_event("heal")
    }

    /// Asks the link layer: the one this value runs, or the `comity-testnet links` process of
    /// the testnet in `dir`.
    pub async fn control_links(
        &self,
        command: links::Control,
    ) -> anyhow::Result<links::ControlAnswer> {
        let answer = match (&self.links, &self.fabric) {
            (Some(links), _) => links.apply(command),
            // The namespaces' conditions are in the kernel and in the file, which every
            // `fault` command reads and writes in turn.
            (None, Some(_)) => {
                let mut fabric = netns::Fabric::load(&self.dir)?
                    .context("the testnet's namespaces file is gone")?;
                let answer = fabric.apply(command);
                fabric.save(&self.dir)?;
                answer
            }
            (None, None) => {
                return links::control(&self.dir.join(LINKS_SOCKET), &command).await;
            }
        };
        match &answer.error {
            Some(e) => bail!("{e}"),
            None => Ok(answer),
        }
    }

    /// Puts a member's store on a small filesystem of its own (ext4 on a loop device, `mib`
    /// MiB, its image `disk.img` in the member's directory), so that
    /// its disk can be filled and freed ([`Bloc::fill_disk`]); before the member starts.
    /// Needs root (mount). What the store held is copied in; the tmpfs is unmounted when the
    /// testnet stops (`down`, or this value dropped), and the store with it.
    pub fn small_disk(&mut self, j: &str, mib: u64) -> anyhow::Result<()> {
        let node = self.node(j).clone();
        if node.pid.is_some() {
            bail!("{j} is running: give it a small disk before it starts");
        }
        let store = node.dir.join("store");
        let held = node.dir.join("store.moving");
        let image = node.dir.join(DISK_IMAGE);
        // A block device of its own (an ext4 image on a loop device), so that `slow-disk`
        // can throttle it without touching anyone else's.
        std::fs::File::create(&image)?.set_len(mib << 20)?;
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image)
            .output()
            .context("running mkfs.ext4 (e2fsprogs)")?;
        if !made.status.success() {
            let _ = std::fs::remove_file(&image);
            bail!(
                "cannot make a small disk for {j}: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            );
        }
        std::fs::rename(&store, &held)?;
        std::fs::create_dir(&store)?;
        let mounted = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&store)
            .output()
            .context("running mount")?;
        if !mounted.status.success() {
            std::fs::remove_dir(&store)?;
            std::fs::rename(&held, &store)?;
            let _ = std::fs::remove_file(&image);
            bail!(
                "cannot mount a small disk for {j} (needs root): {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            );
        }
        std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let _ = std::fs::remove_dir(store.join("lost+found"));
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", held.display()))
            .arg(&store)
            .status()?;
        if !copied.success() {
            bail!("cannot copy {j}'s store onto its small disk");
        }
        std::fs::remove_dir_all(&held)?;
        if let Some(n) = self.nodes.get_mut(&node.jurisdiction) {
            n.disk_mib = Some(mib);
        }
        self.owns_disks = true;
        self.save()
    }

    /// Fills a member's small disk to the last byte (a file `filler` beside its store).
    pub fn fill_disk(&self, j: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let node = self.node(j);
        if node.disk_mib.is_none() {
            bail!("{j} has no small disk to fill: start the testnet with `up --disk-mib N`");
        }
        let mut filler = std::fs::File::create(node.dir.join("store").join(FILLER))?;
        let block = vec![0u8; 1 << 16];
        loop {
            match filler.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // What is left of a block, to the byte.
        while let Ok(n) = filler.write(&[0u8]) {
            if n == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Gives a member's small disk back its space.
    pub fn free_disk(&self, j: &str) -> anyhow::Result<()> {
        let path = self.node(j).dir.join("store").join(FILLER);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Throttles a member's small disk to `iops` reads and writes a second and, if given,
    /// `bytes_per_sec` each way (the kernel's block-I/O throttling, on its loop device alone).
    pub fn slow_disk(&self, j: &str, iops: u32, bytes_per_sec: Option<u64>) -> anyhow::Result<()> {
        let device = self.disk_device(j)?;
        if iops == 0 {
            bail!("a disk at 0 operations a second would stop the member: give at least 1");
        }
        disk_throttle::set(device, iops, bytes_per_sec.unwrap_or(0))
    }

    /// Takes a member's small disk out of `slow_disk`'s throttling.
    pub fn fast_disk(&self, j: &str) -> anyhow::Result<()> {
        disk_throttle::set(self.disk_device(j)?, 0, 0)
    }

    /// The loop device under a member's small disk, as (major, minor).
    fn disk_device(&self, j: &str) -> anyhow::Result<(u64, u64)> {
        let node = self.node(j);
        if node.disk_mib.is_none() {
            bail!("{j} has no small disk to slow: start the testnet with `up --disk-mib N`");
        }
        disk_throttle::device_of(&node.dir.join("store"))
    }

    /// Unmounts the members' small disks (their processes stopped); how many there were.
    /// The members' network namespaces, if each has its own (`create_in_namespaces`).
    pub fn namespaces(&self) -> Option<&netns::Fabric> {
        self.fabric.as_ref()
    }

    /// Removes the members' namespaces and their bridge (after the members stopped); returns
    /// how many namespaces were removed.
    pub fn remove_namespaces(&mut self) -> usize {
        // The file has the members that joined since this value was made.
        let fabric = netns::Fabric::load(&self.dir)
            .ok()
            .flatten()
            .or_else(|| self.fabric.clone());
        let removed = fabric.map(|f| f.teardown()).unwrap_or(0);
        let _ = std::fs::remove_file(self.dir.join(netns::NETNS_FILE));
        self.fabric = None;
        self.owns_fabric = false;
        removed
    }

    pub fn unmount_disks(&mut self) -> usize {
        let mut unmounted = 0;
        for node in self.nodes.values_mut() {
            if node.disk_mib.take().is_some() {
                let store = node.dir.join("store");
                // A throttle outlives the mount: the next user of the loop device would get it.
                if let Ok(device) = disk_throttle::device_of(&store) {
                    let _ = disk_throttle::set(device, 0, 0);
                }
                let _ = Command::new("umount").arg(&store).status();
                let _ = std::fs::remove_file(node.dir.join(DISK_IMAGE));
                unmounted += 1;
            }
        }
        let _ = self.save();
        unmounted
    }

    /// Appends one timestamped line to the testnet's event log.
    pub fn record_event(&self, what: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(EVENTS_FILE))?;
        writeln!(file, "{} {what}", comity_protocol::Timestamp::now())?;
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let nodes: Vec<&NodeInfo> = self.nodes.values().collect();
        std::fs::write(
            self.dir.join(STATE_FILE),
            serde_json::to_string_pretty(&nodes)?,
        )?;
        Ok(())
    }

    pub fn node(&self, j: &str) -> &NodeInfo {
        self.nodes
            .iter()
            .find(|(k, _)| k.as_str() == j)
            .map(|(_, n)| n)
            .unwrap_or_else(|| panic!("{j} is not in this testnet"))
    }

    pub fn client(&self, j: &str) -> AdminClient {
        self.node(j).client().expect("token file readable")
    }

    /// Appoints an officer at member `j` (see [`NodeInfo::appoint`]).
    pub async fn appoint(
        &self,
        j: &str,
        name: &str,
        role: comity_node::admin::officers::Role,
    ) -> anyhow::Result<comity_node::admin::api::NewOfficerToken> {
        self.node(j).appoint(name, role).await
    }

    pub fn second_admin(&self, j: &str) -> AdminClient {
        self.node(j)
            .second_admin()
            .expect("second admin token file readable")
    }

    pub fn approver(&self, j: &str) -> AdminClient {
        self.node(j)
            .approver()
            .expect("approver token file readable")
    }

    /// Starts one member's `comity run` process; its output goes to `node.log`.
    pub fn start(&mut self, j: &str) -> anyhow::Result<()> {
        let node = self.node(j).clone();
        if self.children.contains_key(&node.jurisdiction) {
            bail!("{j} is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut command = match &node.namespace {
            // `ip netns exec` enters the namespace and execs the node: the pid is the node's.
            Some(namespace) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", namespace]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .arg("run")
            .arg("-c")
            .arg(&node.config)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        if let Some(n) = self.nodes.get_mut(&node.jurisdiction) {
            n.pid = Some(child.id());
        }
        self.children.insert(node.jurisdiction, child);
        self.save()
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let all: Vec<String> = self.nodes.keys().map(|j| j.to_string()).collect();
        for j in all {
            self.start(&j)?;
        }
        Ok(())
    }

    /// SIGKILL: the process gets no chance to flush or say goodbye.
    pub fn kill(&mut self, j: &str) -> anyhow::Result<()> {
        let key = self.node(j).jurisdiction.clone();
        if let Some(mut child) = self.children.remove(&key) {
            child.kill()?;
            child.wait()?;
        } else if let Some(pid) = self.node(j).pid.filter(|p| is_alive(*p)) {
            // Started by another process (`comity-testnet up`).
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while is_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.forget_pid(&key)
    }

    /// SIGTERM and wait for a graceful exit (SIGKILL after `grace`).
    /// Returns the exit status if the process was running and exited by itself.
    pub fn stop(&mut self, j: &str) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let key = self.node(j).jurisdiction.clone();
        let mut graceful = None;
        if let Some(mut child) = self.children.remove(&key) {
            let mut status = None;
            terminate(child.id(), &mut || {
                status = child.try_wait().ok().flatten();
                status.is_some()
            });
            graceful = status;
            let _ = child.kill();
            child.wait()?;
        } else if let Some(pid) = self.node(j).pid.filter(|p| is_alive(*p)) {
            // Started by another process (`comity-testnet up`).
            terminate(pid, &mut || !is_alive(pid));
        }
        self.forget_pid(&key)?;
        Ok(graceful)
    }

    fn forget_pid(&mut self, j: &Jurisdiction) -> anyhow::Result<()> {
        if let Some(node) = self.nodes.get_mut(j) {
            node.pid = None;
        }
        self.save()
    }

    pub fn stop_all(&mut self) {
        let running: Vec<String> = self.children.keys().map(|j| j.to_string()).collect();
        for j in running {
            let _ = self.stop(&j);
        }
    }

    /// Leaves the processes running after this value is dropped (`comity-testnet up`).
    pub fn detach(&mut self) {
        self.owns_disks = false;
        self.owns_fabric = false;
        for (_, child) in std::mem::take(&mut self.children) {
            drop(child);
        }
    }

    /// Stops processes recorded in `testnet.json` by pid (`comity-testnet down`).
    pub fn stop_recorded(&mut self) -> Vec<(Jurisdiction, bool)> {
        let mut stopped = Vec::new();
        for node in self.nodes.values_mut() {
            if let Some(pid) = node.pid.take() {
                let alive = is_alive(pid);
                if alive {
                    terminate(pid, &mut || !is_alive(pid));
                }
                stopped.push((node.jurisdiction.clone(), alive));
            }
        }
        let _ = self.save();
        stopped
    }

    /// Waits until every running member reports every other running member connected.
    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        let running: Vec<&NodeInfo> = self.nodes.values().filter(|n| n.pid.is_some()).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let mut missing = Vec::new();
            for node in &running {
                match node.client()?.status().await {
                    Ok(status) => {
                        for other in &running {
                            if other.jurisdiction == node.jurisdiction {
                                continue;
                            }
                            let seen = status
                                .members
                                .iter()
                                .any(|m| m.jurisdiction == other.jurisdiction && m.connected);
                            if !seen {
                                missing
                                    .push(format!("{}→{}", node.jurisdiction, other.jurisdiction));
                            }
                        }
                    }
                    Err(_) => missing.push(format!("{} (admin API not up)", node.jurisdiction)),
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "members not connected after {timeout:?}: {}; see the node.log files under {}",
                    missing.join(", "),
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until one member's admin API answers.
    pub async fn wait_up(&self, j: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let client = self.client(j);
        loop {
            if client.status().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{j} did not come up within {timeout:?}; see {}",
                    self.node(j).log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Cuts (or restores) the link between two running members, on both sides.
    pub async fn partition(&self, a: &str, b: &str, cut: bool) -> anyhow::Result<()> {
        let link = LinkFault {
            cut,
            ..LinkFault::default()
        };
        self.impair(a, b, link.clone()).await?;
        self.impair(b, a, link).await
    }

    /// Puts `fault` in force on what `from` sends to `to` (a default one restores the link).
    pub async fn impair(&self, from: &str, to: &str, fault: LinkFault) -> anyhow::Result<()> {
        self.client(from)
            .fault(self.node(to).jurisdiction.clone(), fault)
            .await?;
        Ok(())
    }

    /// Cases whose two replicas differ (heads or state), over the running members, as
    /// "case: FR … / DE …" lines. Empty when every shared case has converged.
    pub async fn divergence(&self) -> anyhow::Result<Vec<String>> {
        let running: Vec<&NodeInfo> = self.nodes.values().filter(|n| n.pid.is_some()).collect();
        let mut lists = BTreeMap::new();
        for node in &running {
            let cases: BTreeMap<_, _> = node
                .client()?
                .cases()
                .await?
                .into_iter()
                .map(|c| (c.case_id, c))
                .collect();
            lists.insert(node.jurisdiction.clone(), cases);
        }
        let mut differences = Vec::new();
        for (me, cases) in &lists {
            for case in cases.values() {
                if case.state == "draft"
                    || case.role != comity_node::admin::api::CaseRole::Requester
                {
                    continue;
                }
                let Some(theirs) = lists.get(&case.counterparty) else {
                    continue; // the other party is not running
                };
                match theirs.get(&case.case_id) {
                    None => differences.push(format!(
                        "{}: {me} {} / missing at {}",
                        case.case_id, case.state, case.counterparty
                    )),
                    Some(other) if other.heads != case.heads || other.state != case.state => {
                        differences.push(format!(
                            "{}: {me} {} ({} events) / {} {} ({} events)",
                            case.case_id,
                            case.state,
                            case.events,
                            case.counterparty,
                            other.state,
                            other.events
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(differences)
    }

    /// Waits until every shared case has converged on the running members.
    pub async fn wait_converged(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let differences = self.divergence().await?;
            if differences.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} case(s) not converged after {timeout:?}, e.g. {}",
                    differences.len(),
                    differences
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log(&self, j: &str) -> String {
        std::fs::read_to_string(&self.node(j).log).unwrap_or_default()
    }
}

impl Drop for Bloc {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.owns_disks {
            self.unmount_disks();
        }
        if self.owns_fabric {
            self.remove_namespaces();
        }
    }
}

pub(crate) fn is_alive(pid: u32) -> bool {
    // An exited orphan may linger as a zombie where nothing reaps it (containers): dead all the same.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        return !matches!(state, Some("Z") | Some("X"));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

pub(crate) fn terminate(pid: u32, exited: &mut dyn FnMut() -> bool) {
    use nix::sys::signal::{Signal, kill};
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if exited() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
}
