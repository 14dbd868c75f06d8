//! `comity-testnet`: local blocs of real Comity nodes, and benchmarks against them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use comity_protocol::Jurisdiction;
use comity_testnet::Bloc;
use comity_testnet::bench::converge::{self, ConvergeOptions};
use comity_testnet::bench::evidence::{self, EvidenceOptions};
use comity_testnet::bench::exchange::{self, ExchangeOptions};
use comity_testnet::bench::hostile::{self, HostileOptions};
use comity_testnet::faults::{Fault, Rate, Share, Span};

#[derive(Debug, Parser)]
#[command(
    name = "comity-testnet",
    version,
    about = "Local Comity blocs for development, demos, tests and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a bloc and start one `comity run` per jurisdiction: on 127.0.0.1, or each in a
    /// network namespace of its own (`--links netns`).
    Up {
        /// Comma-separated jurisdictions, e.g. FR,DE,IT.
        #[arg(long, value_delimiter = ',', required = true)]
        jurisdictions: Vec<Jurisdiction>,
        /// Directory for the bloc (one sub-directory per member).
        #[arg(long)]
        dir: PathBuf,
        /// Bloc id, carried in the Kademlia protocol name.
        #[arg(long, default_value = "testnet")]
        bloc: String,
        /// Share of the members that must sign each new version of the bloc configuration.
        #[arg(long, default_value = "2/3")]
        threshold: comity_protocol::bloc::Threshold,
        /// Seconds to wait for every member to see every other.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// How members reach each other: `proxy`, through the testnet's link layer (a
        /// userspace proxy per pair, which `fault` can slow, blackhole or cut); `netns`, each
        /// member in a network namespace of its own on a bridge, where `fault` loses,
        /// blackholes and cuts real packets (nftables; needs root; delay needs tc netem); or
        /// `direct`, on loopback with nothing between them.
        #[arg(long, value_enum, default_value_t = LinkMode::Proxy)]
        links: LinkMode,
        /// Puts each member's store on a small filesystem of its own (ext4 on a loop device,
        /// this many MiB; needs root), which `fault disk-full` can fill and `fault slow-disk`
        /// slow. A new store takes about 11 MiB (RocksDB preallocates 9 MiB of write-ahead
        /// log): give it 48 or more.
        #[arg(long)]
        disk_mib: Option<u64>,
    },
    /// Puts a fault on a running testnet's links or members, or lifts it; each is recorded
    /// with its time in the testnet's event log (`DIR/events.log`).
    Fault {
        #[arg(long)]
        dir: PathBuf,
        #[command(subcommand)]
        fault: FaultCommand,
    },
    /// The link layer of a testnet started with `up --links proxy` (started by it).
    #[command(hide = true)]
    Links {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Prepare and start a new member that joins a running testnet by its trust anchor, as a
    /// new country would. It is refused until the members apply a proposal adding its card
    /// (`comity bloc propose --add DIR/XX/member.toml`, then `comity bloc sign` by enough
    /// members).
    Join {
        #[arg(long)]
        dir: PathBuf,
        /// The new member's jurisdiction.
        #[arg(long)]
        jurisdiction: Jurisdiction,
        /// The member it first connects to, to pull the bloc's configuration from.
        #[arg(long)]
        via: Jurisdiction,
    },
    /// Start a testnet that operators join from machines of their own: founders listening on
    /// an address of this machine that theirs reach, and a join kit (`DIR/JOIN.md`,
    /// `DIR/join.json`: the bloc, its anchor, the founders' addresses) to send them. See
    /// docs/testnet.md.
    Share {
        /// The founding members run here, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        jurisdictions: Vec<Jurisdiction>,
        #[arg(long)]
        dir: PathBuf,
        /// The address of this machine the other machines reach (it must be one of its own).
        #[arg(long)]
        address: std::net::IpAddr,
        #[arg(long, default_value = "testnet")]
        bloc: String,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Admit a member of a shared testnet by its card (`member.toml` from its operator): the
    /// founders propose it and sign.
    Admit {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        card: PathBuf,
    },
    /// Stop the nodes of a bloc started with `up`.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Scenarios: steps, faults and workloads from a TOML file, with invariants checked.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Benchmarks, each beside a baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Runs a scenario (e.g. testnet/scenarios/blackout.toml) in a new testnet and checks its
    /// invariants while it runs and at the end; exits non-zero on any violation.
    Run {
        file: PathBuf,
        /// The shortened form (the file's `[short]` overrides), as the test suite runs it.
        #[arg(long)]
        short: bool,
        /// Directory for the testnet (kept, for its logs); a new one under the system's
        /// temporary directory otherwise.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print one JSON object (figures and every violation) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LinkMode {
    Proxy,
    Netns,
    Direct,
}

#[derive(Debug, Subcommand)]
enum FaultCommand {
    /// Slows, narrows or loses what crosses the link between two members (both ways); with
    /// no option, makes it clean again.
    Link {
        a: Jurisdiction,
        b: Jurisdiction,
        /// Added to each direction, e.g. 200ms.
        #[arg(long)]
        delay: Option<Span>,
        /// Up to this much more or less than the delay, per segment.
        #[arg(long)]
        jitter: Option<Span>,
        /// Share lost, e.g. 10%: through the proxies, of segments, each delivered after TCP's
        /// retransmission timeout (a proxy carries a stream); in a `--links netns` testnet,
        /// of real packets, each way.
        #[arg(long)]
        loss: Option<Share>,
        /// Bytes per second each way, e.g. 1MiB/s.
        #[arg(long)]
        bandwidth: Option<Rate>,
    },
    /// The link between two members forwards nothing and closes nothing.
    Blackhole { a: Jurisdiction, b: Jurisdiction },
    /// Cuts every link between groups: `partition FR,DE '|' IT` (or `FR,DE IT`).
    Partition {
        #[arg(required = true, num_args = 1..)]
        groups: Vec<String>,
    },
    /// Resets the connections between two members once.
    Reset { a: Jurisdiction, b: Jurisdiction },
    /// Every link clean again.
    Heal,
    /// The links that are not clean.
    Show,
    /// Kills a member's process (SIGKILL).
    Kill { member: Jurisdiction },
    /// Stops a member if it runs, and starts it again.
    Restart { member: Jurisdiction },
    /// Moves a member's clock, e.g. `--skew +5m` or `--skew -1h`.
    Clock {
        member: Jurisdiction,
        #[arg(long, allow_hyphen_values = true)]
        skew: Span,
    },
    /// Fills a member's small disk (`up --disk-mib`) to the last byte.
    DiskFull { member: Jurisdiction },
    /// Gives a member's small disk back its space.
    DiskFree { member: Jurisdiction },
    /// Slows a member's small disk (`up --disk-mib`): so many operations a second each way,
    /// and optionally so many bytes (the kernel's block-I/O throttling; needs root).
    SlowDisk {
        member: Jurisdiction,
        #[arg(long, default_value_t = comity_testnet::faults::SLOW_DISK_IOPS)]
        iops: u32,
        /// Bytes per second each way, e.g. 2MiB/s.
        #[arg(long)]
        bandwidth: Option<Rate>,
    },
    /// Gives a member's small disk its full speed back.
    FastDisk { member: Jurisdiction },
}

impl FaultCommand {
    fn fault(self) -> anyhow::Result<Option<Fault>> {
        Ok(Some(match self {
            FaultCommand::Link {
                a,
                b,
                delay,
                jitter,
                loss,
                bandwidth,
            } => Fault::Link {
                a,
                b,
                delay,
                jitter,
                loss,
                bandwidth,
            },
            FaultCommand::Blackhole { a, b } => Fault::Blackhole { a, b },
            FaultCommand::Partition { groups } => Fault::partition(&groups)?,
            FaultCommand::Reset { a, b } => Fault::Reset { a, b },
            FaultCommand::Heal => Fault::Heal,
            FaultCommand::Show => return Ok(None),
            FaultCommand::Kill { member } => Fault::Kill { member },
            FaultCommand::Restart { member } => Fault::Restart { member },
            FaultCommand::Clock { member, skew } => Fault::Clock { member, skew },
            FaultCommand::DiskFull { member } => Fault::DiskFull { member },
            FaultCommand::DiskFree { member } => Fault::DiskFree { member },
            FaultCommand::SlowDisk {
                member,
                iops,
                bandwidth,
            } => Fault::SlowDisk {
                member,
                iops,
                bandwidth,
            },
            FaultCommand::FastDisk { member } => Fault::FastDisk { member },
        }))
    }
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Replicas identical after a partition with pending events; sustained requests/s beside
    /// echo round trips/s.
    Converge {
        /// Events written during the partition (half on each side).
        #[arg(long, default_value_t = 1000)]
        pending: usize,
        /// Requests sent for the sustained throughput (one push round trip each), and as many
        /// echo round trips for the baseline.
        #[arg(long, default_value_t = 1000)]
        sustained: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One evidence package between two real nodes: throughput and peak memory growth, vs
    /// scp over loopback and a raw TCP copy of the same file.
    Evidence {
        /// Package size, e.g. 1GiB, 4GiB, 512MiB.
        #[arg(long, default_value = "1GiB", value_parser = evidence::parse_size)]
        size: u64,
        /// Directory for the files (needs about four times the size free); a temporary
        /// directory by default.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The bloc's chunk size in bytes (a multiple of 32 KiB); the roster default otherwise.
        #[arg(long)]
        chunk_bytes: Option<u32>,
        /// Chunks pulled at once; the node's default otherwise.
        #[arg(long)]
        parallel: Option<usize>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Request → verified signed receipt between two real nodes, vs a bare libp2p echo.
    Exchange {
        /// Requests measured one at a time.
        #[arg(long, default_value_t = 300)]
        sequential: usize,
        /// Requests per concurrency level (16 and 64 in flight).
        #[arg(long, default_value_t = 2000)]
        per_level: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Blocs of growing size: time to full connectivity, memory and idle CPU per node, and
    /// request latency between random pairs under a steady workload, per size.
    Scale {
        /// Bloc sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5,10,20,30,50")]
        members: Vec<usize>,
        /// Seconds after everyone is connected before idle CPU is measured.
        #[arg(long, default_value_t = 45)]
        settle_secs: u64,
        /// Seconds of quiet over which idle CPU is measured.
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// Requests of the steady workload per size, one after another.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Milliseconds between two requests.
        #[arg(long, default_value_t = 50)]
        pace_ms: u64,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The hostile member of `bench hostile`, in a process of its own (started by it).
    #[command(hide = true)]
    Attacker {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        seconds: u64,
        #[arg(long)]
        in_flight: usize,
        #[arg(long, value_delimiter = ',')]
        floods: Vec<String>,
    },
    /// Three honest members and a hostile one flooding a victim with everything a member can
    /// send: the victim's disk and memory growth, and honest p99 under attack vs before it.
    Hostile {
        /// Length of the attack, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Length of the quiet phase before it, in seconds.
        #[arg(long, default_value_t = 20)]
        quiet_seconds: u64,
        /// Each honest sender's pace: one request per this many milliseconds.
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        /// Messages each flood keeps in flight.
        #[arg(long, default_value_t = 8)]
        in_flight: usize,
        /// Floods to run, comma-separated (all by default): new_cases, forged_events,
        /// garbage, oversized, pulls, consistency, evidence, reports, checkpoints.
        #[arg(long, value_delimiter = ',')]
        floods: Vec<String>,
        /// The victim's rate budget per member (exchange requests per second; 0: none), for
        /// comparing budgets; the node's default otherwise.
        #[arg(long)]
        victim_rate: Option<u32>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            jurisdictions,
            dir,
            bloc,
            threshold,
            timeout,
            links,
            disk_mib,
        } => {
            up(
                jurisdictions,
                dir,
                bloc,
                threshold,
                timeout,
                links,
                disk_mib,
            )
            .await
        }
        Command::Fault { dir, fault } => {
            let mut bloc = Bloc::open(&dir)?;
            let result = match fault.fault()? {
                Some(fault) => {
                    let done = bloc.apply(&fault).await;
                    if done.is_ok() {
                        println!("{fault}");
                    }
                    done
                }
                None => Ok(()),
            };
            // A restarted member keeps running after this command.
            bloc.detach();
            result?;
            if bloc.has_link_layer() {
                let answer = bloc
                    .control_links(comity_testnet::links::Control::Show)
                    .await?;
                if answer.impaired.is_empty() {
                    println!("every link is clean");
                }
                for (a, b, conditions) in answer.impaired {
                    println!("  {a} ↔ {b}: {}", conditions.describe());
                }
            }
            Ok(())
        }
        Command::Links { dir } => comity_testnet::links::serve_testnet(&dir).await,
        Command::Share {
            jurisdictions,
            dir,
            address,
            bloc,
            timeout,
        } => {
            if dir.join("testnet.json").exists() {
                anyhow::bail!("{} already holds a testnet", dir.display());
            }
            std::net::TcpListener::bind((address, 0)).with_context(|| {
                format!("{address} is not an address of this machine: give one the others reach")
            })?;
            let mut net = Bloc::create_on(&dir, &jurisdictions, &bloc, address, |_| {}).await?;
            net.start_all()?;
            if let Err(e) = net.wait_connected(Duration::from_secs(timeout)).await {
                net.stop_all();
                return Err(e);
            }
            let kit = net.join_kit()?;
            std::fs::write(dir.join("join.json"), serde_json::to_string_pretty(&kit)?)?;
            let instructions = kit.instructions(&dir);
            std::fs::write(dir.join("JOIN.md"), &instructions)?;
            net.detach();
            println!("{instructions}");
            println!(
                "the founders run here; send {} to the operators; stop with `comity-testnet down --dir {}`",
                dir.join("JOIN.md").display(),
                dir.display()
            );
            Ok(())
        }
        Command::Admit { dir, card } => {
            let net = Bloc::open(&dir)?;
            let text = std::fs::read_to_string(&card)
                .with_context(|| format!("cannot read the card {}", card.display()))?;
            let version = net.admit(&text).await?;
            println!("admitted: the bloc's configuration is now version {version}");
            Ok(())
        }
        Command::Scenario(ScenarioCommand::Run {
            file,
            short,
            dir,
            json,
        }) => {
            use comity_testnet::scenario;
            let plan = scenario::Scenario::load(&file, short)?;
            let dir = match dir {
                Some(d) => d,
                None => scenario::default_dir(&plan.name)?,
            };
            if !json {
                eprintln!("testnet in {}", dir.display());
            }
            // Interrupted, the run stops its testnet (dropped with it) before exiting.
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut progress = |step: &str| {
                if !json {
                    eprintln!("… {step}");
                }
            };
            let report = tokio::select! {
                report = scenario::run(&plan, short, &dir, &mut progress) => report?,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the testnet is stopped, its logs kept in {}", dir.display()),
                _ = terminate.recv() => anyhow::bail!("terminated; the testnet is stopped, its logs kept in {}", dir.display()),
            };
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", scenario_table(&report));
                for u in &report.lifecycles_unfinished {
                    println!("unfinished: {u}");
                }
                if report.violations.is_empty() {
                    println!("every invariant held");
                }
                for v in &report.violations {
                    println!("VIOLATION: {v}");
                }
            }
            if !report.violations.is_empty() {
                anyhow::bail!(
                    "{} invariant(s) violated in scenario {}",
                    report.violations.len(),
                    report.name
                );
            }
            Ok(())
        }
        Command::Join {
            dir,
            jurisdiction,
            via,
        } => {
            let mut bloc = Bloc::open(&dir)?;
            bloc.prepare_member(jurisdiction.as_str(), via.as_str())
                .await?;
            bloc.start(jurisdiction.as_str())?;
            bloc.wait_up(jurisdiction.as_str(), Duration::from_secs(30))
                .await?;
            // It keeps running after this command; `down` stops it with the others.
            bloc.detach();
            let node = bloc.node(jurisdiction.as_str());
            println!(
                "{jurisdiction} is up ({}), trusting only the bloc's anchor; it is refused until the members add it.",
                node.admin_url()
            );
            println!("  its card:   {}", node.dir.join("member.toml").display());
            println!("  its config: {}", node.config.display());
            Ok(())
        }
        Command::Down { dir } => {
            let mut bloc = Bloc::open(&dir)?;
            let stopped = bloc.stop_recorded();
            if comity_testnet::links::stop_testnet(&dir)? {
                println!("link layer: stopped");
            }
            let disks = bloc.unmount_disks();
            let namespaces = bloc.remove_namespaces();
            if namespaces > 0 {
                println!("network namespaces: {namespaces} removed, and their bridge");
            }
            for (j, was_running) in stopped {
                println!(
                    "{j}: {}",
                    if was_running {
                        "stopped"
                    } else {
                        "was not running"
                    }
                );
            }
            if disks > 0 {
                println!(
                    "data kept in {}, but for the stores on the {disks} small disks, which are gone",
                    dir.display()
                );
            } else {
                println!("data kept in {}", dir.display());
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Scale {
            members,
            settle_secs,
            idle_secs,
            requests,
            pace_ms,
            json,
        }) => {
            use comity_testnet::bench::scale;
            let options = scale::ScaleOptions {
                members,
                settle_secs,
                idle_secs,
                requests,
                pace: Duration::from_millis(pace_ms),
            };
            let report = scale::run(&options, &mut |step| {
                if !json {
                    eprintln!("… {step}");
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                    "members",
                    "connected in",
                    "memory per node: RSS, PSS, own (max)",
                    "idle CPU per node (mean / max)",
                    "idle, all nodes",
                    "send → receipt p50 / p99",
                ]);
                for p in &report.points {
                    t.add_row(vec![
                        p.members.to_string(),
                        format!("{:.1} s", p.connect_secs),
                        format!(
                            "{:.1}, {:.1}, {:.1} ({:.1}) MiB",
                            p.rss_mib_mean, p.pss_mib_mean, p.anon_mib_mean, p.anon_mib_max
                        ),
                        format!(
                            "{:.2} / {:.2} % of a core",
                            p.idle_cpu_percent_mean, p.idle_cpu_percent_max
                        ),
                        format!(
                            "{:.1} % of {} cores",
                            p.idle_cpu_percent_of_machine, report.cores
                        ),
                        format!("{:.1} / {:.1} ms", p.p50_ms, p.p99_ms),
                    ]);
                }
                println!("{t}");
                println!(
                    "from the smallest bloc to the largest ({:.1}× the members): a node's own memory {:.2}×, idle CPU per node {:.2}×",
                    report.size_growth, report.rss_growth, report.idle_cpu_growth
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Converge {
            pending,
            sustained,
            json,
        }) => {
            let options = ConvergeOptions { pending, sustained };
            let report = converge::run(&options, &mut |step| {
                if !json {
                    eprintln!("… {step}");
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY)
                    .set_header(vec!["measure", "comity", "baseline", "target"]);
                t.add_row(vec![
                    format!(
                        "converge after partition ({} pending events)",
                        report.pending_events
                    ),
                    format!("{:.0} ms", report.converge_ms),
                    String::new(),
                    "≤ 5000 ms".into(),
                ]);
                t.add_row(vec![
                    format!(
                        "sustained, 64 in flight ({} requests; {} echo round trips)",
                        report.sustained_requests, report.sustained_requests
                    ),
                    format!("{:.0} requests/s", report.requests_per_s),
                    format!(
                        "{:.0} bare echo round trips/s ({:.3}×)",
                        report.baseline_round_trips_per_s, report.ratio
                    ),
                    String::new(),
                ]);
                println!("{t}");
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Evidence {
            size,
            dir,
            chunk_bytes,
            parallel,
            json,
        }) => {
            let options = EvidenceOptions {
                size,
                dir,
                chunk_bytes,
                parallel,
            };
            let report = evidence::run(&options, &mut |step| {
                if !json {
                    eprintln!("… {step}");
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY)
                    .set_header(vec!["measure", "value", "target"]);
                let rows = [
                    (
                        "end to end: first byte uploaded → FR holds it verified",
                        format!("{:.0} MB/s", report.end_to_end_mb_per_s),
                        String::new(),
                    ),
                    (
                        "end to end vs scp (same run)",
                        format!("{:.2}×", report.ratio_end_to_end_vs_scp),
                        "≥ 1.5×".into(),
                    ),
                    (
                        "scp (loopback, default cipher), mean of 2",
                        format!(
                            "{:.0} MB/s ({:.0} before, {:.0} after)",
                            report.scp_mb_per_s,
                            report.scp_runs_mb_per_s[0],
                            report.scp_runs_mb_per_s[1]
                        ),
                        String::new(),
                    ),
                    (
                        "raw TCP copy (loopback)",
                        format!("{:.0} MB/s", report.raw_tcp_mb_per_s),
                        String::new(),
                    ),
                    (
                        "component: upload + sealing at DE",
                        format!("{:.0} MB/s", report.seal_mb_per_s),
                        String::new(),
                    ),
                    (
                        "baseline: sealed, then transferred (same run)",
                        format!(
                            "{:.0} MB/s (sealing {:.0}, transfer {:.0})",
                            report.sequential_end_to_end_mb_per_s,
                            report.sequential_seal_mb_per_s,
                            report.sequential_transfer_mb_per_s
                        ),
                        String::new(),
                    ),
                    (
                        "chunks pulled while sealing, confirmed",
                        format!(
                            "{} of {}",
                            report.chunks_pulled_while_sealing, report.chunks
                        ),
                        String::new(),
                    ),
                    (
                        "component: transfer, whole (one pull)",
                        format!(
                            "{:.0} MB/s ({:.2}× scp)",
                            report.transfer_mb_per_s, report.ratio_transfer_vs_scp
                        ),
                        String::new(),
                    ),
                    (
                        "component: opening (comity evidence fetch)",
                        format!("{:.0} MB/s", report.open_mb_per_s),
                        String::new(),
                    ),
                    (
                        "peak RSS growth, sender",
                        format!("{:.1} MiB", report.peak_rss_sender_mb),
                        "≤ 64 MiB".into(),
                    ),
                    (
                        "peak RSS growth, receiver",
                        format!("{:.1} MiB", report.peak_rss_receiver_mb),
                        "≤ 64 MiB".into(),
                    ),
                ];
                for (name, value, target) in rows {
                    t.add_row(vec![name.to_string(), value, target]);
                }
                println!("{t}");
                println!(
                    "{} bytes in chunks of {} bytes, {} cores",
                    report.size_bytes, report.chunk_bytes, report.cores
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Attacker {
            dir,
            seconds,
            in_flight,
            floods,
        }) => {
            let sent =
                hostile::attacker(&dir, Duration::from_secs(seconds), in_flight, &floods).await?;
            println!("{}", serde_json::to_string(&sent)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Hostile {
            seconds,
            quiet_seconds,
            interval_ms,
            in_flight,
            floods,
            victim_rate,
            json,
        }) => {
            if let Some(unknown) = floods
                .iter()
                .find(|f| !hostile::FLOODS.contains(&f.as_str()))
            {
                anyhow::bail!(
                    "no flood named {unknown:?}: choose among {}",
                    hostile::FLOODS.join(", ")
                );
            }
            let mut options = HostileOptions {
                attack: Duration::from_secs(seconds),
                quiet: Duration::from_secs(quiet_seconds),
                interval: Duration::from_millis(interval_ms),
                in_flight,
                victim_rate,
                ..HostileOptions::default()
            };
            if !floods.is_empty() {
                options.floods = floods;
            }
            let report = hostile::run(&options, &mut |step| {
                if !json {
                    eprintln!("… {step}");
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", hostile_table(&report));
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Exchange {
            sequential,
            per_level,
            json,
        }) => {
            let options = ExchangeOptions {
                sequential,
                per_level,
            };
            let report = exchange::run(&options, &mut |step| {
                if !json {
                    eprintln!("… {step}");
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                    "measure",
                    "comity",
                    "bare libp2p echo",
                    "ratio",
                ]);
                let row = |name: &str, a: f64, b: f64, unit: &str| {
                    vec![
                        name.to_string(),
                        format!("{a:.2} {unit}"),
                        format!("{b:.2} {unit}"),
                        format!("{:.2}", a / b),
                    ]
                };
                t.add_row(row(
                    "officer path p50 (draft+approve+send → receipt)",
                    report.officer_path_p50_ms,
                    report.baseline_p50_ms,
                    "ms",
                ));
                t.add_row(row(
                    "officer path p99",
                    report.officer_path_p99_ms,
                    report.baseline_p99_ms,
                    "ms",
                ));
                t.add_row(row(
                    "p50 latency (send → receipt)",
                    report.p50_ms,
                    report.baseline_p50_ms,
                    "ms",
                ));
                t.add_row(row(
                    "p99 latency (send → receipt)",
                    report.p99_ms,
                    report.baseline_p99_ms,
                    "ms",
                ));
                t.add_row(row(
                    "1 in flight",
                    report.rps_1,
                    report.baseline_rps_1,
                    "req/s",
                ));
                t.add_row(row(
                    "16 in flight",
                    report.rps_16,
                    report.baseline_rps_16,
                    "req/s",
                ));
                t.add_row(row(
                    "64 in flight",
                    report.rps_64,
                    report.baseline_rps_64,
                    "req/s",
                ));
                println!("{t}");
                println!(
                    "frame {} bytes, {} cores; {} requests one at a time per latency figure, {} per level at 16 and 64 in flight (the same for the echo); targets: p50 ≤ 1.0 ms, rps_64 ≥ 5000, ratio_64 ≥ 0.3",
                    report.frame_bytes, report.cores, report.sequential, report.per_level
                );
            }
            Ok(())
        }
    }
}

async fn up(
    jurisdictions: Vec<Jurisdiction>,
    dir: PathBuf,
    bloc_id: String,
    threshold: comity_protocol::bloc::Threshold,
    timeout: u64,
    links: LinkMode,
    disk_mib: Option<u64>,
) -> anyhow::Result<()> {
    if dir.join("testnet.json").exists() {
        anyhow::bail!(
            "{} already holds a testnet; run `comity-testnet down --dir {}` and remove it first",
            dir.display(),
            dir.display()
        );
    }
    let mut bloc = if links == LinkMode::Netns {
        Bloc::create_in_namespaces(&dir, &jurisdictions, &bloc_id, |_| {}).await
    } else {
        Bloc::create_with(&dir, &jurisdictions, &bloc_id, |_| {}).await
    }
    .context("generating the bloc")?;
    if threshold != bloc.rules.threshold {
        bloc.set_threshold(threshold)?;
    }
    let prepared = async {
        if let Some(mib) = disk_mib {
            let members: Vec<String> = bloc.nodes.keys().map(|j| j.to_string()).collect();
            for j in members {
                bloc.small_disk(&j, mib)?;
            }
        }
        if links == LinkMode::Proxy {
            bloc.route_through_links()?;
            comity_testnet::links::spawn_testnet(&dir).await?;
        }
        bloc.start_all()?;
        bloc.wait_connected(Duration::from_secs(timeout)).await
    };
    // Interrupted while it starts, it removes what it made (nodes, proxies, disks, namespaces).
    let prepared = async {
        tokio::select! {
            done = prepared => done,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; what was started is stopped")),
        }
    };
    if let Err(e) = prepared.await {
        bloc.stop_all();
        let _ = comity_testnet::links::stop_testnet(&dir);
        bloc.unmount_disks();
        bloc.remove_namespaces();
        return Err(e);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "member",
        "peer id",
        "admin API",
        "token file",
        "config",
    ]);
    for node in bloc.nodes.values() {
        t.add_row(vec![
            node.jurisdiction.to_string(),
            node.peer_id.clone(),
            node.admin_url(),
            format!(
                "{}\n{}",
                node.token_file.display(),
                node.approver_token_file.display()
            ),
            node.config.display().to_string(),
        ]);
    }
    println!("{t}");
    println!(
        "all {} members connected; stop them with `comity-testnet down --dir {}`",
        bloc.nodes.len(),
        dir.display()
    );
    if let Some(fabric) = bloc.namespaces() {
        println!(
            "each member runs in a network namespace of its own, on the bridge {} ({}/24):",
            fabric.bridge,
            fabric.host()
        );
        for (j, place) in &fabric.members {
            println!("  {j}: {} at {}", place.namespace, place.address);
        }
        if let Some(place) = fabric.members.values().next() {
            match comity_testnet::netns::netem_missing(&place.namespace) {
                Some(problem) => println!(
                    "this kernel has no netem ({problem}): links can lose, blackhole and cut packets, not delay them (use --links proxy for delay)"
                ),
                None => println!("this kernel has netem"),
            }
        }
    }
    if links != LinkMode::Direct {
        println!(
            "put faults with `comity-testnet fault --dir {} …` (recorded in {})",
            dir.display(),
            dir.join(comity_testnet::EVENTS_FILE).display()
        );
    }
    bloc.detach();
    Ok(())
}

fn scenario_table(report: &comity_testnet::scenario::ScenarioReport) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_header(vec!["scenario", &report.name, report.form]);
    let rss = report.max_rss_mib.values().cloned().fold(0.0_f64, f64::max);
    let rows = [
        ("members", report.members.to_string()),
        ("ran for", format!("{:.1} s", report.seconds)),
        ("requests acknowledged", report.acknowledged.to_string()),
        (
            "sends refused to the officer",
            report.not_acknowledged.to_string(),
        ),
        (
            "lifecycles completed / unfinished",
            format!(
                "{} / {}",
                report.lifecycles_completed,
                report.lifecycles_unfinished.len()
            ),
        ),
        (
            "send → acknowledged p50 / p99",
            format!("{:.1} / {:.1} ms", report.send_p50_ms, report.send_p99_ms),
        ),
        (
            "settled, from the last step's start",
            format!("{:.1} s", report.settled_secs),
        ),
        ("largest RSS of a node", format!("{rss:.1} MiB")),
        ("violations", report.violations.len().to_string()),
    ];
    for (what, figure) in rows {
        t.add_row(vec![what.to_owned(), figure, String::new()]);
    }
    t
}

fn hostile_table(report: &hostile::HostileReport) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_header(vec!["measure", "figure", "target"]);
    let rows = [
        (
            "victim disk growth",
            format!("{:.1} MiB", report.victim_disk_growth_mb),
            "≤ 64 MiB",
        ),
        (
            "victim RSS growth",
            format!("{:.1} MiB", report.victim_rss_growth_mb),
            "≤ 64 MiB",
        ),
        (
            "honest p99, quiet",
            format!("{:.2} ms", report.quiet_p99_ms),
            "",
        ),
        (
            "honest p99, under attack",
            format!("{:.2} ms", report.honest_p99_ms),
            "",
        ),
        (
            "honest p99 ratio",
            format!("{:.2}", report.honest_p99_ratio),
            "≤ 3",
        ),
        ("kept serving", report.kept_serving.to_string(), "true"),
    ];
    for (name, figure, target) in rows {
        t.add_row(vec![name.to_string(), figure, target.to_string()]);
    }
    for (kind, count) in &report.floods {
        t.add_row(vec![
            format!("flood {kind}"),
            format!("{} sent, {} answered", count.sent, count.answered),
            String::new(),
        ]);
    }
    t
}
