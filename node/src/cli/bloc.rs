//! `comity bloc …`: the bloc configuration. Founders form a genesis offline (`genesis`, each
//! signs with `sign-genesis`, `assemble` merges); members then propose and sign changes
//! through their node (`propose`, `sign`), and read where the bloc stands (`status`,
//! `history`, `show`, `proposals`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use comity_protocol::bloc::{Rules, Settings, Threshold};
use comity_protocol::{Jurisdiction, PublicKey};

use super::{ReadArgs, client};
use crate::bloc::{BlocStatus, ProposalView, ProposeRequest, VersionView, files};
use crate::config::Config;
use crate::identity::NodeIdentity;

#[derive(Debug, Subcommand)]
pub enum BlocCommand {
    /// Version, hash, expiry, trust anchor, members and their keys, what each member holds.
    Status(ReadArgs),
    /// Every version from the genesis, with who signed it and what it changed.
    History(ReadArgs),
    /// One version in full (the current one by default).
    Show {
        version: Option<u64>,
        /// Only what changed from the version before.
        #[arg(long)]
        diff: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Open proposals: what they change, who signed, how many signatures they need.
    Proposals(ReadArgs),
    /// Proposes the next version, signed by this node (governor).
    Propose(ProposeArgs),
    /// Adds this node's signature to an open proposal (governor); named by its version, or
    /// by its hash when several are open.
    Sign {
        which: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// This node's signed card (member.toml) with its current keys: to join a bloc, or with
    /// new addresses or name for `comity bloc propose --update`. Reads the key files; the node
    /// need not run.
    Card {
        /// The node's config file.
        #[arg(short, long, default_value = "comity.toml")]
        config: PathBuf,
        /// Addresses where members reach this node (default: its listen addresses).
        #[arg(long, value_name = "MULTIADDR")]
        address: Vec<String>,
        /// The member's name (default: the jurisdiction).
        #[arg(long)]
        name: Option<String>,
        /// With a new signing key (kept as `signing.key.next` until the version that applies
        /// the card makes it this node's key): how a member whose key was revoked comes back.
        #[arg(long)]
        new_signing_key: bool,
        /// Write it here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Hands the node a configuration received out of band (a version it missed while
    /// partitioned, or a proposal): verified from the anchor like any other (governor).
    Import {
        file: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Forms a new bloc's genesis from the founders' member.toml files (no signature yet).
    /// Each founder then signs it with `sign-genesis`, and `assemble` merges the copies.
    Genesis {
        /// The bloc id (a-z, 0-9, '-').
        #[arg(long)]
        bloc: String,
        #[arg(long = "member", value_name = "MEMBER.toml", required = true)]
        members: Vec<PathBuf>,
        /// Share of the members that must sign each next version.
        #[arg(long, default_value = "2/3")]
        threshold: Threshold,
        /// Days each version is valid.
        #[arg(long, default_value_t = 90)]
        lifetime_days: u32,
        /// Bloc-wide settings: deadlines.normal_hours=240, evidence.chunk_bytes=262144…
        #[arg(long, value_name = "NAME=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs a genesis offline with a node's signing key (the node need not run).
    SignGenesis {
        file: PathBuf,
        /// The node's config file.
        #[arg(short, long, default_value = "comity.toml")]
        config: PathBuf,
        /// Where to write the signed copy (default: the file itself).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Merges the founders' signed copies of a genesis, checks that every founder signed, and
    /// prints the bloc's trust anchor.
    Assemble {
        #[arg(required = true)]
        copies: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `comity bloc propose` changes (at least one).
#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// Add a member from its signed member.toml.
    #[arg(long, value_name = "MEMBER.toml")]
    pub add: Vec<PathBuf>,
    /// Replace a member's card (new addresses or sealing key) with its new signed
    /// member.toml (`comity bloc card`).
    #[arg(long, value_name = "MEMBER.toml")]
    pub update: Vec<PathBuf>,
    /// Mark a member as left (it is disconnected and refused once applied).
    #[arg(long, value_name = "XX")]
    pub remove: Vec<Jurisdiction>,
    /// Rotate this node's own key: `signing` or `transport`.
    #[arg(long, value_name = "KIND")]
    pub rotate_key: Option<String>,
    /// Revoke a member's signing key as compromised: XX:KEY (hex).
    #[arg(long, value_name = "XX:KEY")]
    pub revoke_key: Vec<String>,
    /// Change a setting: deadlines.normal_hours=720, rules.threshold=3/5…
    #[arg(long, value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Extend the expiry (every new version is issued with a fresh one).
    #[arg(long)]
    pub renew: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

fn setting(text: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        anyhow::anyhow!("--set {text}: write NAME=VALUE, e.g. deadlines.normal_hours=720")
    })?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

pub async fn run(command: BlocCommand) -> anyhow::Result<()> {
    match command {
        BlocCommand::Status(read) => {
            let status = client(&read.connection)?.bloc_status().await?;
            print_status(&status, read.json)
        }
        BlocCommand::History(read) => {
            let history = client(&read.connection)?.bloc_history().await?;
            if read.json {
                return super::output::json(&history);
            }
            for v in &history {
                print_version(v);
            }
            Ok(())
        }
        BlocCommand::Show {
            version,
            diff,
            read,
        } => show(version, diff, read).await,
        BlocCommand::Proposals(read) => {
            let proposals = client(&read.connection)?.bloc_proposals().await?;
            if read.json {
                return super::output::json(&proposals);
            }
            if proposals.is_empty() {
                println!("no open proposal");
            }
            for p in &proposals {
                print_proposal(p);
            }
            Ok(())
        }
        BlocCommand::Propose(args) => propose(args).await,
        BlocCommand::Sign { which, read } => {
            let view = client(&read.connection)?.bloc_sign(&which).await?;
            if read.json {
                return super::output::json(&view);
            }
            print_proposal(&view);
            Ok(())
        }
        BlocCommand::Card {
            config,
            address,
            name,
            new_signing_key,
            out,
        } => card(config, address, name, new_signing_key, out),
        BlocCommand::Import { file, read } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let outcome = client(&read.connection)?.bloc_import(&bytes).await?;
            if read.json {
                return super::output::json(&outcome);
            }
            println!("{}", outcome["outcome"].as_str().unwrap_or_default());
            Ok(())
        }
        BlocCommand::Genesis {
            bloc,
            members,
            threshold,
            lifetime_days,
            set,
            out,
        } => genesis(bloc, members, threshold, lifetime_days, set, out),
        BlocCommand::SignGenesis { file, config, out } => {
            let config = Config::load(&config)?;
            let identity = NodeIdentity::load(&config.key_path(), &config.signing_key_path())?;
            let mut signed = files::read_config(&file)?;
            let j = files::sign_genesis(&mut signed, &identity)?;
            let out = out.unwrap_or(file);
            std::fs::write(&out, signed.to_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("Signed for {j}: {}", out.display());
            Ok(())
        }
        BlocCommand::Assemble { copies, out } => assemble(copies, out),
    }
}

/// A `member.toml`, checked here (its card verifies and says what its text says) before it
/// is sent.
fn read_card(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    files::parse_member_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(text)
}

fn apply_setting(settings: &mut Settings, name: &str, value: &str) -> anyhow::Result<()> {
    let n: u64 = value
        .parse()
        .map_err(|_| anyhow::anyhow!("--set {name}={value}: not a whole number"))?;
    match name {
        "deadlines.normal_hours" => settings.deadlines.normal_hours = n,
        "deadlines.urgent_hours" => settings.deadlines.urgent_hours = n,
        "deadlines.emergency_hours" => settings.deadlines.emergency_hours = n,
        "evidence.max_package_bytes" => settings.evidence.max_package_bytes = n,
        "evidence.chunk_bytes" => settings.evidence.chunk_bytes = u32::try_from(n)?,
        _ => anyhow::bail!(
            "--set {name}: settings are deadlines.normal_hours, deadlines.urgent_hours, deadlines.emergency_hours, evidence.max_package_bytes, evidence.chunk_bytes"
        ),
    }
    Ok(())
}

fn write_new(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn print_version(v: &VersionView) {
    println!(
        "version {}  {}  issued {}  expires {}",
        v.version, v.hash, v.issued_at, v.expires_at
    );
    println!(
        "  signed by {}",
        v.signed_by
            .iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for change in &v.changes {
        println!("  {change}");
    }
}

fn print_proposal(p: &ProposalView) {
    let state = if p.applied {
        "APPLIED".to_owned()
    } else {
        format!("{} of {} signatures", p.signed_by.len(), p.needed)
    };
    println!("proposal for version {}  {}  {state}", p.version, p.hash);
    println!(
        "  signed by {}",
        p.signed_by
            .iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for change in &p.changes {
        println!("  {change}");
    }
}

fn print_status(s: &BlocStatus, json: bool) -> anyhow::Result<()> {
    if json {
        return super::output::json(s);
    }
    println!("bloc {}  anchor {}", s.bloc, s.anchor);
    match (s.version, s.hash) {
        (Some(v), Some(h)) => println!("version {v}  {h}"),
        _ => {
            println!("no configuration yet: joining (pulling the chain from the bootstrap members)")
        }
    }
    if let (Some(issued), Some(expires), Some(days)) = (s.issued_at, s.expires_at, s.days_left) {
        let note = if s.expired {
            "  EXPIRED: no new request can start; renew with `comity bloc propose --renew`"
                .to_owned()
        } else if s.expiring_soon {
            format!("  expires in {days} days: renew with `comity bloc propose --renew`")
        } else {
            format!("  ({days} days left)")
        };
        println!("issued {issued}  expires {expires}{note}");
    }
    if let (Some(t), Some(n)) = (&s.threshold, s.needed) {
        println!("threshold {t}: the next version needs {n} signatures");
    }
    println!(
        "signed by {}",
        s.signed_by
            .iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("open proposals {}", s.proposals);
    for fork in &s.forks {
        println!("FORK {fork}");
    }
    for m in &s.members {
        let state = match (m.admitted, m.left) {
            (true, _) => "admitted".to_owned(),
            (false, Some(v)) => format!("left in version {v}"),
            (false, None) => "NOT admitted (key revoked)".to_owned(),
        };
        let head = match (&m.head, s.version, s.hash) {
            (Some(h), Some(_), Some(hash)) if h.hash == hash => {
                format!("holds v{} (same)", h.version)
            }
            (Some(h), Some(v), _) if h.version < v => format!("holds v{} (behind)", h.version),
            (Some(h), Some(v), _) if h.version > v => format!("holds v{} (ahead)", h.version),
            (Some(h), _, _) => format!("holds v{} {} (DIFFERS)", h.version, h.hash),
            (None, _, _) => String::new(),
        };
        println!(
            "  {:<6} {:<24} {state}  {head}",
            m.jurisdiction.to_string(),
            m.name
        );
        for k in &m.keys {
            let note = match (k.retired, k.revoked) {
                (_, Some(v)) => format!("revoked in version {v}"),
                (Some(v), None) => format!("retired in version {v}"),
                (None, None) => "current".to_owned(),
            };
            println!(
                "         key {}  from version {}  {note}",
                k.key, k.introduced
            );
        }
    }
    Ok(())
}

async fn show(version: Option<u64>, diff: bool, read: ReadArgs) -> anyhow::Result<()> {
    let client = client(&read.connection)?;
    let n = match version {
        Some(n) => n,
        None => client
            .bloc_status()
            .await?
            .version
            .ok_or_else(|| anyhow::anyhow!("this node holds no bloc configuration yet"))?,
    };
    let mut v = client.bloc_version(n).await?;
    if diff {
        v.config = None;
    }
    if read.json {
        return super::output::json(&v);
    }
    print_version(&v);
    if let Some(config) = &v.config {
        println!("{}", serde_json::to_string_pretty(config)?);
    }
    Ok(())
}

async fn propose(args: ProposeArgs) -> anyhow::Result<()> {
    let ProposeArgs {
        add,
        update,
        remove,
        rotate_key,
        revoke_key,
        set,
        renew,
        read,
    } = args;
    let mut request = ProposeRequest {
        remove,
        rotate_key,
        renew,
        ..ProposeRequest::default()
    };
    for path in &add {
        request.add.push(read_card(path)?);
    }
    for path in &update {
        request.update.push(read_card(path)?);
    }
    for r in revoke_key {
        let (j, key) = r
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--revoke-key {r}: write XX:KEY"))?;
        let j: Jurisdiction = j.parse()?;
        let key: PublicKey = key
            .parse()
            .map_err(|e| anyhow::anyhow!("--revoke-key {r}: {e}"))?;
        request.revoke.push((j, key));
    }
    for s in set {
        request.set.push(setting(&s)?);
    }
    let view = client(&read.connection)?.bloc_propose(&request).await?;
    if read.json {
        return super::output::json(&view);
    }
    print_proposal(&view);
    Ok(())
}

fn card(
    config: PathBuf,
    address: Vec<String>,
    name: Option<String>,
    new_signing_key: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    let identity = NodeIdentity::load(&config.key_path(), &config.signing_key_path())?;
    let signing = if new_signing_key {
        let pending = crate::bloc::pending_key_path(&config.signing_key_path());
        if !pending.exists() {
            crate::identity::create_key_file(&pending, &rand::random())?;
        }
        ed25519_dalek::SigningKey::from_bytes(&crate::identity::read_key_file(&pending)?)
    } else {
        (*identity.signing_key()).clone()
    };
    let sealing = crate::evidence::read_sealing_public(&config.sealing_key_path())?;
    let addresses = if address.is_empty() {
        config
            .network
            .listen
            .iter()
            .map(|a| a.to_string())
            .collect()
    } else {
        address
    };
    let name = name.unwrap_or_else(|| config.node.jurisdiction.to_string());
    let (_, text) = files::member_file_with_keys(
        &signing,
        &identity.transport_signing_key(),
        &config.bloc.id,
        &config.node.jurisdiction,
        &name,
        &addresses,
        Some(sealing),
    );
    files::parse_member_file(&text).map_err(anyhow::Error::msg)?;
    match out {
        Some(path) => {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("card written to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn genesis(
    bloc: String,
    members: Vec<PathBuf>,
    threshold: Threshold,
    lifetime_days: u32,
    set: Vec<String>,
    out: PathBuf,
) -> anyhow::Result<()> {
    let texts = members
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rules = Rules {
        threshold,
        lifetime_days,
        ..Rules::default()
    };
    let mut settings = Settings::default();
    for s in set {
        let (name, value) = setting(&s)?;
        apply_setting(&mut settings, &name, &value)?;
    }
    let blank = files::genesis(&bloc, &texts, rules, settings)?;
    write_new(&out, &blank.to_bytes())?;
    println!(
        "Genesis of bloc {bloc} with {} founders written to {}.",
        texts.len(),
        out.display()
    );
    println!(
        "Each founder signs it: comity bloc sign-genesis {} -c comity.toml --out XX.cbor",
        out.display()
    );
    println!("then: comity bloc assemble XX.cbor YY.cbor … --out genesis.cbor");
    Ok(())
}

fn assemble(copies: Vec<PathBuf>, out: PathBuf) -> anyhow::Result<()> {
    let copies = copies
        .iter()
        .map(|p| files::read_config(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (genesis, anchor) = files::assemble(&copies)?;
    write_new(&out, &genesis.to_bytes())?;
    println!("Genesis signed by every founder: {}", out.display());
    println!("Trust anchor: {anchor}");
    println!(
        "Put it beside each founder's comity.toml (as genesis.cbor) and set [bloc] anchor = \"{anchor}\";"
    );
    println!(
        "new members join with: comity init --bloc-anchor {anchor} --bootstrap /ip4/…/tcp/…/p2p/PEERID"
    );
    Ok(())
}
