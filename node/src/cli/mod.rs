//! The `comity` command line: operator commands (`init`, `run`) and officer commands, which
//! are clients of the node's admin API. Read commands print tables, or JSON with `--json`.

mod bloc;
mod evidence;
mod export;
mod output;
mod request;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use comity_protocol::{CaseId, Decision, Jurisdiction, Timestamp};
use libp2p::Multiaddr;

use crate::admin::api::{Action, AdminClient, CaseFilter, NewRequest};
use crate::admin::officers::Role;
use crate::config::{Config, LogFormat};
use crate::init::{self, InitOptions};
use crate::report::ReportFormats;

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
    /// Messages and events refused from peers, with the reason (never applied).
    Refusals(ReadArgs),
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
pub enum PolicyCommand {
    /// Check a policy file: every problem, with its field and line.
    Check { file: PathBuf },
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
    /// Create an officer with its own token (shown once, stored hashed).
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Also write the token to this file (mode 0600).
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Every officer, with role and whether revoked.
    List(ReadArgs),
    /// Revoke an officer: its token stops working at once.
    Revoke {
        name: String,
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
    /// Preservation: preserve until a date, extend, or release.
    Preserve {
        id: CaseId,
        /// Executing side: data preserved until this time (RFC 3339).
        #[arg(long, group = "preservation", required = true)]
        until: Option<Timestamp>,
        /// Executing side: extend the preservation to this time.
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
    fn action(&self) -> anyhow::Result<Option<(CaseId, Action, &ReadArgs)>> {
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
            CaseCommand::Purge { id, read } => (*id, Action::Purge, read),
            CaseCommand::Preserve {
                id,
                until,
                extend_until,
                release,
                read,
            } => {
                let action = match (until, extend_until, release) {
                    (Some(until), _, _) => Action::Preserve { until: *until },
                    (None, Some(until), _) => Action::ExtendPreservation { until: *until },
                    (None, None, true) => Action::ReleasePreservation,
                    _ => bail!("give --until, --extend-until or --release"),
                };
                (*id, action, read)
            }
            CaseCommand::List { .. }
            | CaseCommand::Show { .. }
            | CaseCommand::Log { .. }
            | CaseCommand::Export { .. }
            | CaseCommand::Approve { .. } => {
                return Ok(None);
            }
        }))
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => init_node(args).await,
        Command::Run { config } => {
            let config = Config::load(&config)?;
            crate::telemetry::init(
                &config.log.filter,
                cli.log_format.unwrap_or(config.log.format),
            );
            crate::daemon::run(config).await
        }
        Command::Status(read) => {
            let status = client(&read.connection)?.status().await?;
            output::status(&status, read.json)
        }
        Command::Bloc(command) => bloc::run(command).await,
        Command::Peers(read) => {
            let peers = client(&read.connection)?.peers().await?;
            output::peers(&peers, read.json)
        }
        Command::Officer(OfficerCommand::Add {
            name,
            role,
            token_file,
            read,
        }) => {
            let added = client(&read.connection)?.add_officer(&name, role).await?;
            if let Some(path) = &token_file {
                crate::roster::write_private(path, format!("{}\n", added.token).as_bytes())
                    .with_context(|| format!("cannot write the token file {}", path.display()))?;
            }
            if read.json {
                return output::json(&added);
            }
            println!(
                "Officer {} ({}) added.",
                added.officer.name, added.officer.role
            );
            println!("Token (shown once; only its hash is stored):");
            println!("  {}", added.token);
            if let Some(path) = token_file {
                println!("  also written to {} (mode 0600)", path.display());
            }
            Ok(())
        }
        Command::Officer(OfficerCommand::List(read)) => {
            let officers = client(&read.connection)?.officers().await?;
            output::officers(&officers, read.json)
        }
        Command::Officer(OfficerCommand::Revoke { name, read }) => {
            let revoked = client(&read.connection)?.revoke_officer(&name).await?;
            if read.json {
                return output::json(&revoked);
            }
            println!(
                "Officer {} revoked; its token no longer works.",
                revoked.name
            );
            Ok(())
        }
        Command::Audit(command) => audit(command),
        Command::Report(ReportCommand::Transparency {
            period,
            format,
            connection,
        }) => {
            let report = client(&connection)?.transparency(period.as_deref()).await?;
            match format {
                ReportFormat::Table => print!("{}", report.to_table()),
                ReportFormat::Json => output::json(&report)?,
                ReportFormat::Csv => print!("{}", report.to_csv()),
                ReportFormat::Html => print!("{}", report.to_html()),
            }
            Ok(())
        }
        Command::Report(ReportCommand::Bloc {
            period,
            format,
            connection,
        }) => {
            let reports = client(&connection)?.bloc_reports(&period).await?;
            if reports.is_empty() && !matches!(format, ReportFormat::Json) {
                eprintln!("No member has published a report for {period} yet.");
            }
            match format {
                ReportFormat::Json => output::json(&reports)?,
                ReportFormat::Table => {
                    for report in &reports {
                        println!("{}", report.to_table());
                    }
                }
                ReportFormat::Csv => {
                    // One table: the member's jurisdiction leads each row.
                    let mut first = true;
                    for report in &reports {
                        for (i, line) in report.to_csv().lines().enumerate() {
                            if i == 0 {
                                if first {
                                    println!("member,{line}");
                                    first = false;
                                }
                                continue;
                            }
                            println!("{},{line}", report.jurisdiction);
                        }
                    }
                }
                ReportFormat::Html => {
                    print!(
                        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Transparency reports, {period}</title></head><body>\n"
                    );
                    for report in &reports {
                        print!("{}", crate::report::html_section(report));
                    }
                    println!("</body></html>");
                }
            }
            Ok(())
        }
        Command::Policy(PolicyCommand::Check { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            match crate::policy::parse(&text) {
                Ok(policy) => {
                    println!(
                        "{}: valid ({} agreement(s), {} refused offence categor(ies), dual criminality {})",
                        file.display(),
                        policy.agreements.len(),
                        policy.refused_offences.len(),
                        if policy.dual_criminality.is_some() {
                            "checked"
                        } else {
                            "not checked"
                        }
                    );
                    for partner in policy.expired(comity_protocol::Timestamp::now()) {
                        println!("warning: the agreement with {partner} has expired");
                    }
                    Ok(())
                }
                Err(problems) => {
                    for p in &problems {
                        eprintln!("{}:{}: {}: {}", file.display(), p.line, p.field, p.problem);
                    }
                    bail!("{} problem(s) in {}", problems.len(), file.display())
                }
            }
        }
        Command::Policy(PolicyCommand::Explain { id, purpose, read }) => {
            let log = client(&read.connection)?
                .with_purpose(purpose)
                .log(id)
                .await?;
            output::policy_explain(&log, read.json)
        }
        Command::AccessLog { case, read } => {
            let records = client(&read.connection)?.access_log(case).await?;
            output::access_log(&records, read.json)
        }
        Command::Refusals(read) => {
            let refusals = client(&read.connection)?.refusals().await?;
            output::refusals(&refusals, read.json)
        }
        Command::Inbox(read) => {
            let cases = client(&read.connection)?.inbox().await?;
            output::case_list(&cases, read.json)
        }
        Command::Case(CaseCommand::List {
            state,
            overdue,
            read,
        }) => {
            let filter = CaseFilter { state, overdue };
            let cases = client(&read.connection)?.cases_filtered(&filter).await?;
            output::case_list(&cases, read.json)
        }
        Command::Case(CaseCommand::Export {
            id,
            out,
            purpose,
            with_evidence,
            wait,
            connection,
        }) => {
            let client = client(&connection)?.with_purpose(purpose);
            export::run(&client, id, &out, with_evidence, Duration::from_secs(wait)).await
        }
        Command::Case(CaseCommand::Log { id, purpose, read }) => {
            let log = client(&read.connection)?
                .with_purpose(purpose)
                .log(id)
                .await?;
            output::case_log(&log, read.json)
        }
        Command::Case(CaseCommand::Show { id, purpose, read }) => {
            let case = client(&read.connection)?
                .with_purpose(purpose)
                .case(id)
                .await?;
            output::case_detail(&case, read.json)
        }
        Command::Request(RequestCommand::Approve { id, read })
        | Command::Case(CaseCommand::Approve { id, read }) => {
            let case = client(&read.connection)?.approve(id).await?;
            output::case_detail(&case, read.json)
        }
        Command::Case(CaseCommand::Fulfil {
            id,
            note,
            evidence: files,
            read,
        }) if !files.is_empty() => {
            evidence::fulfil(&client(&read.connection)?, id, note, &files, read.json).await
        }
        Command::Evidence(EvidenceCommand::Fetch {
            id,
            out,
            purpose,
            read,
        }) => {
            let client = client(&read.connection)?.with_purpose(purpose);
            evidence::fetch(&client, id, &out, read.json).await
        }
        Command::Evidence(EvidenceCommand::Status { id, follow, read }) => {
            evidence::status(&client(&read.connection)?, id, follow, read.json).await
        }
        Command::Case(step) => {
            let Some((id, action, read)) = step.action()? else {
                unreachable!("read commands are matched above")
            };
            let case = client(&read.connection)?.act(id, &action).await?;
            output::case_detail(&case, read.json)
        }
        Command::Request(RequestCommand::Precheck { id, read }) => {
            let precheck = client(&read.connection)?.precheck(id).await?;
            output::precheck(&precheck, read.json)
        }
        Command::Request(RequestCommand::Send { id, wait, read }) => {
            let case = client(&read.connection)?
                .send(id, wait.map(Duration::from_secs))
                .await?;
            output::case_detail(&case, read.json)
        }
        Command::Request(RequestCommand::New(args)) => {
            let client = client(&args.read.connection)?;
            let jurisdiction = client.status().await?.jurisdiction;
            let request = request::build(&args, jurisdiction)?;
            let case = client.create_request(&NewRequest { request }).await?;
            output::case_detail(&case, args.read.json)
        }
    }
}

async fn init_node(args: InitArgs) -> anyhow::Result<()> {
    let done = init::init(InitOptions {
        jurisdiction: args.jurisdiction,
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        admin: args.admin,
        name: args.name,
        bloc: args.bloc,
        anchor: args.bloc_anchor,
        bootstrap: args.bootstrap,
        token_file: args.token_file.clone(),
    })
    .await?;
    println!(
        "Initialised {} in {}",
        done.jurisdiction,
        args.data_dir.display()
    );
    println!("  PeerId       {}", done.peer_id);
    println!("  signing key  {}", done.signing_key);
    println!(
        "  sealing key  {} (evidence for this jurisdiction is sealed to it)",
        done.sealing_key
    );
    println!("  config       {}", done.config_path.display());
    println!(
        "  member card  {} (signed; send it to the bloc)",
        done.member_file.display()
    );
    println!();
    println!("Admin token (shown once; only its hash is stored):");
    println!("  {}", done.token);
    if let Some(path) = args.token_file {
        println!("  also written to {} (mode 0600)", path.display());
    }
    println!();
    if args.bloc_anchor.is_some() {
        println!(
            "Next: `comity run -c {}`; once a member's proposal adding this card applies, the node pulls and verifies the bloc's configuration by itself",
            done.config_path.display()
        );
    } else {
        println!(
            "Next: found the bloc with the other founders (`comity bloc genesis`, `sign-genesis`, `assemble`), put genesis.cbor beside {}, then `comity run`",
            done.config_path.display()
        );
    }
    Ok(())
}

fn client(connection: &Connection) -> anyhow::Result<AdminClient> {
    let config = match &connection.config {
        Some(path) => Some(Config::load(path)?),
        None if Path::new("comity.toml").exists() => Some(Config::load(Path::new("comity.toml"))?),
        None => None,
    };
    let base = match (&connection.admin, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => format!("http://{}", config.admin.listen),
        (None, None) => {
            bail!("no admin API given: pass -c CONFIG or --admin URL (or set COMITY_CONFIG)")
        }
    };
    let token = match (&connection.token, &connection.token_file) {
        (Some(token), _) => token.clone(),
        (None, Some(path)) => read_token(path)?,
        (None, None) => match config.as_ref().map(|c| c.base_dir.join("admin.token")) {
            Some(path) if path.exists() => read_token(&path)?,
            _ => bail!("no token: pass --token-file FILE or set COMITY_TOKEN_FILE"),
        },
    };
    Ok(AdminClient::new(base, token))
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "token file {} is readable by others; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let token = std::fs::read_to_string(path)?;
    Ok(token.trim().to_owned())
}

fn audit(command: AuditCommand) -> anyhow::Result<()> {
    use crate::audit;
    let open =
        |config: &Path| -> anyhow::Result<(crate::store::Store, Vec<ed25519_dalek::VerifyingKey>)> {
            let config = Config::load(config)?;
            let identity = crate::identity::NodeIdentity::load(
                &config.key_path(),
                &config.signing_key_path(),
            )?;
            let store = crate::store::Store::open_read_only(&config.store_path())?;
            // Every signing key this node has had, as its bloc configuration records them.
            let mut keys = crate::bloc::own_keys(&store, &config.node.jurisdiction)?;
            keys.push(identity.signing_key().verifying_key());
            Ok((store, keys))
        };
    match command {
        AuditCommand::Verify { config, json } => {
            let (store, key) = open(&config)?;
            let report = audit::verify(&store, &key)?;
            if json {
                output::json(&report)?;
            } else {
                println!(
                    "{} entries, {} signed checkpoint(s)",
                    report.entries, report.checkpoints
                );
                for problem in &report.problems {
                    println!("PROBLEM: {problem}");
                }
            }
            if report.problems.is_empty() {
                if !json {
                    println!("the audit log verifies");
                }
                Ok(())
            } else {
                bail!(
                    "the audit log does not verify: {} problem(s)",
                    report.problems.len()
                )
            }
        }
        AuditCommand::Prove { entry, config } => {
            let (store, _) = open(&config)?;
            output::json(&audit::prove(&store, entry)?)
        }
        AuditCommand::Consistency { old, new, config } => {
            let (store, _) = open(&config)?;
            output::json(&audit::consistency(&store, old, new)?)
        }
        AuditCommand::Check { file, signer } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let key = signer
                .verifying_key()
                .map_err(|e| anyhow::anyhow!("--signer: {e}"))?;
            if let Ok(proof) = serde_json::from_str::<audit::EntryProof>(&text) {
                let (checkpoint, cosigners) = audit::check_entry(&proof, &key)
                    .map_err(|e| anyhow::anyhow!("the proof does not hold: {e}"))?;
                for line in audit::entry_statements(&proof, &checkpoint, &cosigners) {
                    println!("{line}");
                }
                return Ok(());
            }
            let proof: audit::CheckpointConsistency =
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is neither an entry nor a consistency proof",
                        file.display()
                    )
                })?;
            let (old, new) = audit::check_consistency(&proof, &key)
                .map_err(|e| anyhow::anyhow!("the proof does not hold: {e}"))?;
            println!("{}", audit::consistency_statement(&old, &new));
            Ok(())
        }
    }
}
