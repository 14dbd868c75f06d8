//! The command line's grammar: every command, its arguments and its help.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use comity_protocol::{CaseId, Decision, Jurisdiction, Timestamp};
use libp2p::Multiaddr;

use super::{bloc, request};
use crate::admin::api::Action;
use crate::admin::officers::Role;
use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "comity",
    version,
    about = "Comity: lawful cross-border evidence requests between jurisdictions, peer to peer"
)]
pub struct Cli {
    /// Log output format (for `run`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether this is the daemon (`comity run`) rather than a command that prints and ends.
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Run { .. })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node: transport, signing, sealing and master keys (0600), commented config,
    /// signed member card (member.toml), store and the first admin token.
    Init(InitArgs),
    /// Run the node daemon until SIGINT or SIGTERM.
    Run {
        /// The node's config file.
        #[arg(short, long, env = "COMITY_CONFIG", default_value = "comity.toml")]
        config: PathBuf,
    },
    /// Check a node's configuration as `run` would read it, without starting it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the completion script of `comity` for a shell, e.g.
    /// `comity completions bash > /etc/bash_completion.d/comity`.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages of `comity` and every subcommand into a directory (packaging).
    #[command(hide = true)]
    Manpages {
        #[arg(long)]
        out: PathBuf,
    },
    /// Rebuild a lost store from the members: start the node, pull every case it shares with
    /// each member (every signature verified, case keys from the vault), list what came back
    /// and from whom, and stop. The store must be absent, empty, or made by an earlier
    /// recovery (run it again to add members that were unreachable). Stop `comity run` first.
    Recover {
        /// Pull from the bloc's members (the one source there is; required, to say so).
        #[arg(long, required = true)]
        from_peers: bool,
        /// The node's config file.
        #[arg(short, long, env = "COMITY_CONFIG", default_value = "comity.toml")]
        config: PathBuf,
        /// Seconds to wait for members to connect before pulling from those that did.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        /// Write the new admin token (made when the store held no officer) to this file
        /// (mode 0600) as well as showing it.
        #[arg(long)]
        save_token: Option<PathBuf>,
    },
    /// Make a self-signed certificate and key (PEM, key mode 0600) for the admin API over
    /// https, and say how to use them: beyond loopback, the node serves its API only with TLS.
    TlsCert {
        /// Directory to write cert.pem and key.pem into.
        #[arg(long, default_value = "admin-tls")]
        dir: PathBuf,
        /// Host names and IP addresses the API is reached by (repeat); localhost and
        /// 127.0.0.1 are always included.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// This node: jurisdiction, PeerId, addresses, members connected, outbox depth.
    Status(ReadArgs),
    /// The bloc's members and whether each is connected.
    Peers(ReadArgs),
    /// Draft and send assistance requests.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Cases this node is party to.
    #[command(subcommand)]
    Case(CaseCommand),
    /// Requests received from other jurisdictions.
    Inbox(ReadArgs),
    /// Messages and events refused from peers, with the reason (never applied), and members'
    /// equivocations (two different events signed as one number, both kept). With --json, an
    /// object: {"refusals": [...], "equivocations": [...]}.
    Refusals(ReadArgs),
    /// Back up this node into a new directory: a consistent checkpoint of its store (taken by
    /// the running node, or from the store when the node is stopped), its keys, vault, policy,
    /// genesis, evidence and a config pointing inside, with a manifest of hashes (admins).
    /// The master key is left out unless --include-master-key: keep it offline, apart.
    Backup {
        /// The directory to write (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Also copy the master key (then guard the backup as the master key itself).
        #[arg(long)]
        include_master_key: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Restore a backup into a data directory that holds no node, after checking every file
    /// against the backup's manifest. Start it with `comity run -c DATA_DIR/comity.toml`: it
    /// catches up with its members as they connect.
    Restore {
        /// The backup directory (with its backup.json).
        #[arg(long)]
        from: PathBuf,
        /// Where to restore the node (created if missing; must hold no store or config).
        #[arg(long)]
        data_dir: PathBuf,
        /// The master key file, when the backup does not hold it; checked against the
        /// fingerprint the backup recorded.
        #[arg(long)]
        master_key: Option<PathBuf>,
        /// Only check the backup against its manifest; restore nothing.
        #[arg(long)]
        verify_only: bool,
    },
    /// The record of every exchange with members: who, which way, what kind, sizes, when the
    /// request and its answer left or arrived, and the outcome; never content (auditors,
    /// admins). The id is the same in the member's own records of the exchange.
    Opmon {
        /// Only exchanges answered since then: an RFC 3339 time, or an age such as 30m, 6h, 2d.
        #[arg(long, value_parser = parse_since)]
        since: Option<comity_protocol::Timestamp>,
        /// Only exchanges with this member (jurisdiction code).
        #[arg(long)]
        member: Option<String>,
        /// Only exchanges about this case (recorded with `[log] mode = "full"`).
        #[arg(long)]
        case: Option<comity_protocol::CaseId>,
        /// The newest this many (at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Every read of case content: officer, time, case, stated purpose (auditors).
    AccessLog {
        /// Only reads of this case.
        #[arg(long)]
        case: Option<CaseId>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Officers and their roles (admin).
    #[command(subcommand)]
    Officer(OfficerCommand),
    /// This node's policy: check a file, or explain a case's check.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log: verify it, prove an entry, prove two checkpoints consistent, check a
    /// proof. Reads the store read-only: the node may keep running.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Reports without personal data (auditors).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Evidence packages: how far a transfer is, and opening a received one.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// The bloc configuration: who is a member, with which keys and rules; form a bloc,
    /// propose and sign changes.
    #[command(subcommand)]
    Bloc(bloc::BlocCommand),
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Open a received package: every file is verified against the signed manifest and
    /// written to --out only if all are intact. The read is recorded in the access log.
    Fetch {
        id: CaseId,
        /// Directory to write the files into (created if missing; must not hold them yet).
        #[arg(long)]
        out: PathBuf,
        /// Why you open this evidence (recorded in the access log).
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Where a case's package stands: chunks verified, rate, ETA, last error.
    Status {
        id: CaseId,
        /// Follow the transfer with a progress bar until it is complete.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Requests sent and received by partner, instrument, data category and outcome; time to
    /// decision and to fulfilment; overdue cases; purges.
    Transparency {
        /// 2026, 2026-Q3 or 2026-11; every case when left out.
        #[arg(long)]
        period: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        #[command(flatten)]
        connection: Connection,
    },
    /// The transparency reports every member of the bloc published for a period, signed by
    /// that member and verified on arrival (this node's own included).
    Bloc {
        /// 2026, 2026-Q3 or 2026-11 (members publish the current month, quarter and year).
        #[arg(long)]
        period: String,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole log: every entry and every signed checkpoint.
    Verify {
        #[arg(short, long, env = "COMITY_CONFIG", default_value = "comity.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print an inclusion proof of entry N against a signed checkpoint (JSON).
    Prove {
        entry: u64,
        #[arg(short, long, env = "COMITY_CONFIG", default_value = "comity.toml")]
        config: PathBuf,
    },
    /// Print a consistency proof between the checkpoints at two tree sizes (JSON).
    Consistency {
        old: u64,
        new: u64,
        #[arg(short, long, env = "COMITY_CONFIG", default_value = "comity.toml")]
        config: PathBuf,
    },
    /// Read the audit log's entries through the admin API (auditors, oversight): who did
    /// what to which case, as identifiers only.
    Entries {
        /// The first entry's index.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Check a proof printed by `prove` or `consistency`, offline, with the node's public key.
    Check {
        file: PathBuf,
        /// The node's signing key (hex) of the checkpoint's time, as the bloc configuration
        /// lists it (`comity bloc status`).
        #[arg(long)]
        signer: comity_protocol::PublicKey,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read the config file and what it names (keys, TLS files, policy) and the room free for
    /// the store; every problem as `run` would report it, but without starting.
    Check {
        /// The node's config file.
        #[arg(short, long, env = "COMITY_CONFIG", default_value = "comity.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file: every problem, with its field and line.
    Check { file: PathBuf },
    /// Every version of this node's policy (one per start with a changed file), with what
    /// changed, rule by rule.
    History(ReadArgs),
    /// The difference between two versions of the policy file, line by line (by default the
    /// one before the last, and the last), with the rules that changed.
    Diff {
        /// The older version (default: the one before `--to`).
        #[arg(long)]
        from: Option<u64>,
        /// The newer version (default: the last).
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Which rules fired on a case's arrival, and why (reads the signed log).
    Explain {
        id: CaseId,
        /// Why you read this case (recorded in the access log).
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OfficerCommand {
    /// Appoint an officer with its own token (shown once, stored hashed). Auditors,
    /// oversight and governors (and admins, once there are two) take two admins: this
    /// proposes, and another admin approves with `comity officer approve NAME`.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Also write the new officer's token to this file (mode 0600). Not `--token-file`,
        /// which names the token this command authenticates with.
        #[arg(long, value_name = "FILE")]
        save_token: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Every officer, with role, who appointed it, whether and by whom revoked, and the
    /// changes waiting for a second admin.
    List(ReadArgs),
    /// Revoke an officer: its token stops working at once (for the roles that take two
    /// admins, once another admin approves).
    Revoke {
        name: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Approve another admin's proposed appointment or revocation (four-eyes). An
    /// appointment's token is shown once, here.
    Approve {
        name: String,
        /// Also write the new officer's token to this file (mode 0600).
        #[arg(long, value_name = "FILE")]
        save_token: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The jurisdiction this node speaks for (ISO 3166-1 alpha-2, e.g. FR).
    #[arg(long)]
    pub jurisdiction: Jurisdiction,
    /// Directory for the node's keys, config, member card and store (created, mode 0700).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Peer-to-peer listen address.
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4001")]
    pub listen: Multiaddr,
    /// Admin API address (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:7701")]
    pub admin: SocketAddr,
    /// Human name of the member, for its card (defaults to the jurisdiction code).
    #[arg(long)]
    pub name: Option<String>,
    /// Bloc id.
    #[arg(long, default_value = "local")]
    pub bloc: String,
    /// Join an existing bloc: the hash of its genesis (its trust anchor), received out of
    /// band from the bloc. The node trusts only configurations chained to it.
    #[arg(long, value_name = "HASH")]
    pub bloc_anchor: Option<comity_protocol::Hash32>,
    /// When joining: a member to pull the configuration from, as /ip4/…/tcp/…/p2p/PEERID.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Write the first admin token to this file (mode 0600) as well as showing it.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// How a client command reaches the admin API.
#[derive(Debug, Args, Clone)]
pub struct Connection {
    /// The node's config file, to find its admin address (and an `admin.token` beside it).
    #[arg(short, long, env = "COMITY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Admin API URL, overriding the config (e.g. http://127.0.0.1:7701).
    #[arg(long, env = "COMITY_ADMIN")]
    pub admin: Option<String>,
    /// Bearer token. Prefer --token-file: a token on the command line shows in `ps`.
    #[arg(long, env = "COMITY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (mode 0600).
    #[arg(long, env = "COMITY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// For an https admin API: the node's certificate (pinned) or the CA that issued it, PEM.
    /// With -c and a config that sets [admin] tls_cert, that certificate is pinned.
    #[arg(long, env = "COMITY_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Draft a request from flags or from a TOML/JSON file.
    New(Box<request::NewArgs>),
    /// Check a draft against the executing member's published policy, before it is sent.
    Precheck {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Approve a draft that another officer drafted (four-eyes; `approver` role).
    Approve {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Sign a draft and queue it for delivery.
    Send {
        id: CaseId,
        /// Wait up to this many seconds for the executing side's verified receipt.
        #[arg(long)]
        wait: Option<u64>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Cases, newest first, with their deadlines.
    List {
        /// Only cases in this state (draft, submitted, delivered, under-review, accepted, …).
        #[arg(long)]
        state: Option<String>,
        /// Only cases past a decision or fulfilment deadline.
        #[arg(long)]
        overdue: bool,
        /// Only cases whose preservation ends within seven days.
        #[arg(long)]
        lapsing: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// One case with its content, receipt and whether the signatures verify. The read is
    /// recorded in the access log with the purpose you state.
    Show {
        id: CaseId,
        /// Why you read this case (recorded in the access log).
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// The case's signed log: every event, its author, time and whether it applied. The read
    /// is recorded in the access log with the purpose you state.
    Log {
        id: CaseId,
        /// Why you read this log (recorded in the access log).
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// The case as one self-contained, signed bundle for a court or an auditor: every signed
    /// event, the receipt, the evidence manifest, an audit-log proof of every event with the
    /// other members' cosignatures, and the keys to check them. `comity-verify bundle FILE`
    /// checks it anywhere, offline. The read is recorded in the access log.
    Export {
        id: CaseId,
        /// Where to write the bundle (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Why you export this case (recorded in the access log).
        #[arg(long)]
        purpose: String,
        /// Also carry the sealed evidence chunks (still sealed to the requesting member).
        #[arg(long)]
        with_evidence: bool,
        /// How long to wait for the audit log's next signed checkpoint if the case's latest
        /// events are not under one yet.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Executing side: accept, accept in part, or refuse.
    Decide {
        id: CaseId,
        #[arg(long, group = "decision")]
        accept: bool,
        /// Accept in part; --reason says which part.
        #[arg(long, group = "decision")]
        partial: bool,
        #[arg(long, group = "decision")]
        refuse: bool,
        /// The grounds of a refusal (repeatable), or the scope of a partial acceptance.
        #[arg(long)]
        reason: Vec<String>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Executing side: ask a question (--question); requesting side: answer it (--answer).
    Clarify {
        id: CaseId,
        #[arg(long, group = "text", required = true)]
        question: Option<String>,
        #[arg(long, group = "text")]
        answer: Option<String>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Requesting side: withdraw the request.
    Withdraw {
        id: CaseId,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Either side: close a case that is over (acknowledged, refused or withdrawn).
    Close {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Executing side: approve disclosing the case's data (four-eyes; `approver` role). The
    /// officer who then fulfils must be another one.
    Approve {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Executing side: go on with a case the policy refused. One officer asks, with a reason
    /// (`--reason`); another approves (`--approve`), and the node signs the override into
    /// the case's log. Only then can the case be accepted or fulfilled.
    Override {
        id: CaseId,
        /// Why this request should go on despite the policy (recorded, sealed, in the log).
        #[arg(long, group = "step")]
        reason: Option<String>,
        /// Approve the override another officer asked for (four-eyes).
        #[arg(long, group = "step")]
        approve: bool,
        /// Withdraw the override asked for, before it is approved.
        #[arg(long, group = "step")]
        cancel: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Send again the messages of a case that its member did not acknowledge in time
    /// (`[outbox] give_up_after_secs`), once the member is back.
    Retry {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Executing side: deliver the evidence. With --evidence, the files are sealed to the
    /// requesting jurisdiction, signed in a manifest, and pulled by its node; without, the
    /// fulfilment only records that the data were provided another way.
    Fulfil {
        id: CaseId,
        #[arg(long, default_value = "")]
        note: String,
        /// Files to deliver (repeatable, or several after one flag).
        #[arg(long, num_args = 1..)]
        evidence: Vec<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Requesting side: destroy the case's content now (its key is shredded), before its
    /// retention ends. A signed `purged` event tells the other side, which does the same.
    Purge {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Requesting side: acknowledge the evidence.
    Acknowledge {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Requesting side: accept the narrower scope of a partial acceptance.
    AcceptScope {
        id: CaseId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Requesting side: after a partial acceptance or a clarification, draft a new version of
    /// the request from a TOML or JSON file (the whole request, as `request new --file`). It
    /// is signed into the case when another officer approves it: `comity request approve ID`.
    Amend {
        id: CaseId,
        #[arg(long, required_unless_present = "cancel")]
        file: Option<PathBuf>,
        /// Withdraw the drafted amendment instead, before it is approved.
        #[arg(long, conflicts_with = "file")]
        cancel: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Preservation: preserve (for the instrument's period, or until a date), extend, or
    /// release.
    Preserve {
        id: CaseId,
        /// Executing side: data preserved until this time (RFC 3339). Without it, and without
        /// --extend-until or --release, for the period the instrument's rules give
        /// (eu-epoc-pr, budapest-art29: 60 days).
        #[arg(long, group = "preservation")]
        until: Option<Timestamp>,
        /// Executing side: extend the preservation to this time, within the instrument's cap
        /// (eu-epoc-pr: 30 days beyond the first 60).
        #[arg(long, group = "preservation")]
        extend_until: Option<Timestamp>,
        /// Either side: the preservation is no longer needed.
        #[arg(long, group = "preservation")]
        release: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
}

impl CaseCommand {
    /// The officer's step as an admin API action, for the commands that take one.
    pub(super) fn action(&self) -> anyhow::Result<Option<(CaseId, Action, &ReadArgs)>> {
        Ok(Some(match self {
            CaseCommand::Decide {
                id,
                accept,
                partial,
                refuse,
                reason,
                read,
            } => {
                let decision = if *accept {
                    Decision::Accept
                } else if *partial {
                    Decision::Partial {
                        scope: reason.join("; "),
                    }
                } else if *refuse {
                    if reason.is_empty() {
                        bail!("a refusal needs its grounds: add --reason (repeatable)");
                    }
                    Decision::Refuse {
                        reasons: reason.clone(),
                    }
                } else {
                    bail!("say --accept, --partial or --refuse");
                };
                (*id, Action::Decide { decision }, read)
            }
            CaseCommand::Clarify {
                id,
                question,
                answer,
                read,
            } => match (question, answer) {
                (Some(question), _) => (
                    *id,
                    Action::RequestClarification {
                        question: question.clone(),
                    },
                    read,
                ),
                (None, Some(answer)) => (
                    *id,
                    Action::Clarify {
                        answer: answer.clone(),
                    },
                    read,
                ),
                (None, None) => {
                    bail!("give --question (executing side) or --answer (requesting side)")
                }
            },
            CaseCommand::Withdraw { id, reason, read } => (
                *id,
                Action::Withdraw {
                    reason: reason.clone(),
                },
                read,
            ),
            CaseCommand::Close { id, read } => (*id, Action::Close, read),
            CaseCommand::Fulfil { id, note, read, .. } => {
                (*id, Action::Fulfil { note: note.clone() }, read)
            }
            CaseCommand::Acknowledge { id, read } => (*id, Action::Acknowledge, read),
            CaseCommand::AcceptScope { id, read } => (*id, Action::AcceptScope, read),
            CaseCommand::Purge { id, read } => (*id, Action::Purge, read),
            CaseCommand::Preserve {
                id,
                until,
                extend_until,
                release,
                read,
            } => {
                let action = match (until, extend_until, release) {
                    (until @ Some(_), _, _) => Action::Preserve { until: *until },
                    (None, Some(until), _) => Action::ExtendPreservation { until: *until },
                    (None, None, true) => Action::ReleasePreservation,
                    (None, None, false) => Action::Preserve { until: None },
                };
                (*id, action, read)
            }
            CaseCommand::List { .. }
            | CaseCommand::Show { .. }
            | CaseCommand::Log { .. }
            | CaseCommand::Export { .. }
            | CaseCommand::Approve { .. }
            | CaseCommand::Override { .. }
            | CaseCommand::Amend { .. }
            | CaseCommand::Retry { .. } => {
                return Ok(None);
            }
        }))
    }
}

/// `--since`: an RFC 3339 time, or an age before now (`90s`, `30m`, `6h`, `2d`).
fn parse_since(text: &str) -> Result<comity_protocol::Timestamp, String> {
    if let Ok(at) = text.parse() {
        return Ok(at);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 => {
            let ago = std::time::Duration::from_secs(n.saturating_mul(seconds));
            let now = comity_protocol::Timestamp::now().as_millis();
            let ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
            Ok(comity_protocol::Timestamp::from_millis(
                now.saturating_sub(ms),
            ))
        }
        _ => Err(format!(
            "`{text}` is neither an RFC 3339 time (2026-11-30T09:00:00Z) nor an age such as 30m, 6h or 2d"
        )),
    }
}
