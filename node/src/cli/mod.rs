//! The `comity` command line: operator commands (`init`, `run`) and officer commands, which
//! are clients of the node's admin API. Read commands print tables, or JSON with `--json`.

mod args;
mod audit;
mod bloc;
mod evidence;
mod export;
mod output;
mod report;
mod request;

pub use request::{RequestFormat, parse_request};

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

pub use args::*;

use crate::admin::api::{AdminClient, CaseFilter, NewRequest};
use crate::config::Config;
use crate::init::{self, InitOptions};

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
        Command::Recover {
            from_peers: _,
            config,
            wait,
            save_token,
        } => {
            let config = Config::load(&config)?;
            crate::telemetry::init(
                &config.log.filter,
                cli.log_format.unwrap_or(config.log.format),
            );
            let recovered =
                crate::daemon::recover(config, std::time::Duration::from_secs(wait)).await?;
            output::recovered(&recovered, save_token.as_deref())
        }
        Command::TlsCert { dir, names } => tls_cert(&dir, names),
        Command::Completions { shell } => {
            let mut command = <args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "comity", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { out } => {
            std::fs::create_dir_all(&out)?;
            let command = <args::Cli as clap::CommandFactory>::command();
            clap_mangen::generate_to(command, &out)
                .with_context(|| format!("writing man pages into {}", out.display()))?;
            Ok(())
        }
        Command::Config(ConfigCommand::Check { config }) => {
            let loaded = Config::load(&config)?;
            for line in crate::daemon::check(&loaded)? {
                println!("ok  {line}");
            }
            println!("{}: ready to run", config.display());
            Ok(())
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
        Command::Officer(command) => officer(command).await,
        Command::Audit(AuditCommand::Entries { from, limit, read }) => {
            let entries = client(&read.connection)?.audit_entries(from, limit).await?;
            output::audit_entries(&entries, read.json)
        }
        Command::Audit(command) => audit::run(command),
        Command::Report(command) => report::run(command).await,
        Command::Policy(PolicyCommand::Check { file }) => report::check_policy(&file),
        Command::Policy(PolicyCommand::History(read)) => {
            let versions = client(&read.connection)?.policy_history().await?;
            output::policy_history(&versions, read.json)
        }
        Command::Policy(PolicyCommand::Diff { from, to, read }) => {
            let versions = client(&read.connection)?.policy_history().await?;
            let to = to.or(versions.last().map(|v| v.version));
            let from = from.or(to.map(|t| t.saturating_sub(1)));
            let find = |n: Option<u64>| versions.iter().find(|v| Some(v.version) == n);
            let (Some(old), Some(new)) = (find(from), find(to)) else {
                bail!(
                    "no such versions: the node has {} (see `comity policy history`)",
                    versions.len()
                );
            };
            print!("{}", output::policy_diff(old, new));
            Ok(())
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
        Command::Backup {
            out,
            include_master_key,
            connection,
        } => backup(&out, include_master_key, &connection).await,
        Command::Restore {
            from,
            data_dir,
            master_key,
            verify_only,
        } => restore(&from, &data_dir, master_key.as_deref(), verify_only),
        Command::Opmon {
            since,
            member,
            case,
            limit,
            read,
        } => {
            let query = crate::opmon::Query {
                since,
                member,
                case,
                limit: Some(limit),
            };
            let records = client(&read.connection)?.opmon(&query).await?;
            output::opmon(&records, read.json)
        }
        Command::Refusals(read) => {
            let client = client(&read.connection)?;
            let refusals = client.refusals().await?;
            let equivocations = client.equivocations().await?;
            output::refusals(&refusals, &equivocations, read.json)
        }
        Command::Inbox(read) => {
            let cases = client(&read.connection)?.inbox().await?;
            output::case_list(&cases, read.json)
        }
        Command::Case(command) => case(command).await,
        Command::Evidence(command) => evidence_command(command).await,
        Command::Request(command) => request_command(command).await,
    }
}

/// Shows what a change to the officers did; a new officer's token is shown once (and saved
/// to `save_token`, mode 0600, when given).
fn officer_change(
    change: crate::admin::api::OfficerChange,
    save_token: Option<&std::path::Path>,
    as_json: bool,
) -> anyhow::Result<()> {
    use crate::admin::api::OfficerChange;
    if let (OfficerChange::Added { token, .. }, Some(path)) = (&change, save_token) {
        crate::roster::write_private(path, format!("{token}\n").as_bytes())
            .with_context(|| format!("cannot write the token file {}", path.display()))?;
    }
    if as_json {
        return output::json(&change);
    }
    match change {
        OfficerChange::Added { officer, token } => {
            println!(
                "Officer {} ({}) added, appointed by {}.",
                officer.name,
                officer.role,
                officer.appointed_by.join(" and ")
            );
            println!("Token (shown once; only its hash is stored):");
            println!("  {token}");
            if let Some(path) = save_token {
                println!("  also written to {} (mode 0600)", path.display());
            }
        }
        OfficerChange::Revoked { officer } => println!(
            "Officer {} revoked by {}; its token no longer works.",
            officer.name,
            officer.revoked_by.join(" and ")
        ),
        OfficerChange::Pending { pending } => println!(
            "The {} of {} ({}) is proposed by {}; it takes effect when another admin approves it: `comity officer approve {}`.",
            pending.change, pending.name, pending.role, pending.proposed_by, pending.name
        ),
    }
    Ok(())
}

async fn officer(command: OfficerCommand) -> anyhow::Result<()> {
    match command {
        OfficerCommand::Add {
            name,
            role,
            save_token,
            read,
        } => {
            let change = client(&read.connection)?
                .appoint_officer(&name, role)
                .await?;
            officer_change(change, save_token.as_deref(), read.json)
        }
        OfficerCommand::List(read) => {
            let client = client(&read.connection)?;
            let officers = client.officers().await?;
            let pending = client.pending_officers().await?;
            output::officers(&officers, &pending, read.json)
        }
        OfficerCommand::Revoke { name, read } => {
            let change = client(&read.connection)?.revoke_or_propose(&name).await?;
            officer_change(change, None, read.json)
        }
        OfficerCommand::Approve {
            name,
            save_token,
            read,
        } => {
            let change = client(&read.connection)?.approve_officer(&name).await?;
            officer_change(change, save_token.as_deref(), read.json)
        }
    }
}

async fn case(command: CaseCommand) -> anyhow::Result<()> {
    match command {
        CaseCommand::List {
            state,
            overdue,
            lapsing,
            read,
        } => {
            let filter = CaseFilter {
                state,
                overdue,
                lapsing,
            };
            let cases = client(&read.connection)?.cases_filtered(&filter).await?;
            output::case_list(&cases, read.json)
        }
        CaseCommand::Export {
            id,
            out,
            purpose,
            with_evidence,
            wait,
            connection,
        } => {
            let client = client(&connection)?.with_purpose(purpose);
            export::run(&client, id, &out, with_evidence, Duration::from_secs(wait)).await
        }
        CaseCommand::Log { id, purpose, read } => {
            let log = client(&read.connection)?
                .with_purpose(purpose)
                .log(id)
                .await?;
            output::case_log(&log, read.json)
        }
        CaseCommand::Show { id, purpose, read } => {
            let case = client(&read.connection)?
                .with_purpose(purpose)
                .case(id)
                .await?;
            output::case_detail(&case, read.json)
        }
        CaseCommand::Approve { id, read } => approve(id, &read).await,
        CaseCommand::Amend {
            id,
            file,
            cancel,
            read,
        } => {
            let client = client(&read.connection)?;
            let case = match file {
                _ if cancel => client.cancel_pending(id, "amend").await?,
                Some(file) => {
                    let me = client.status().await?.jurisdiction;
                    client.amend(id, request::from_file(&file, me)?).await?
                }
                None => bail!("give --file FILE or --cancel"),
            };
            output::case_detail(&case, read.json)
        }
        CaseCommand::Override {
            id,
            reason,
            approve,
            cancel,
            read,
        } => {
            let client = client(&read.connection)?;
            let case = match (reason, approve, cancel) {
                (Some(reason), _, _) => client.request_override(id, &reason).await?,
                (None, true, _) => client.approve_override(id).await?,
                (None, false, true) => client.cancel_pending(id, "override").await?,
                (None, false, false) => bail!("give --reason …, --approve or --cancel"),
            };
            output::case_detail(&case, read.json)
        }
        CaseCommand::Retry { id, read } => {
            let case = client(&read.connection)?.retry(id).await?;
            output::case_detail(&case, read.json)
        }
        CaseCommand::Fulfil {
            id,
            note,
            evidence: files,
            read,
        } if !files.is_empty() => {
            evidence::fulfil(&client(&read.connection)?, id, note, &files, read.json).await
        }
        step => {
            let Some((id, action, read)) = step.action()? else {
                unreachable!("read commands are matched above")
            };
            let case = client(&read.connection)?.act(id, &action).await?;
            output::case_detail(&case, read.json)
        }
    }
}

async fn approve(id: comity_protocol::CaseId, read: &ReadArgs) -> anyhow::Result<()> {
    let case = client(&read.connection)?.approve(id).await?;
    output::case_detail(&case, read.json)
}

async fn evidence_command(command: EvidenceCommand) -> anyhow::Result<()> {
    match command {
        EvidenceCommand::Fetch {
            id,
            out,
            purpose,
            read,
        } => {
            let client = client(&read.connection)?.with_purpose(purpose);
            evidence::fetch(&client, id, &out, read.json).await
        }
        EvidenceCommand::Status { id, follow, read } => {
            evidence::status(&client(&read.connection)?, id, follow, read.json).await
        }
    }
}

async fn request_command(command: RequestCommand) -> anyhow::Result<()> {
    match command {
        RequestCommand::Approve { id, read } => approve(id, &read).await,
        RequestCommand::Precheck { id, read } => {
            let precheck = client(&read.connection)?.precheck(id).await?;
            output::precheck(&precheck, read.json)
        }
        RequestCommand::Send { id, wait, read } => {
            let case = client(&read.connection)?
                .send(id, wait.map(Duration::from_secs))
                .await?;
            output::case_detail(&case, read.json)?;
            // Asked to wait for delivery and it did not come: say so, and fail like `curl -f`.
            let delivered = case.receipt.as_ref().is_some_and(|r| r.signature_valid);
            match wait {
                Some(secs) if !delivered => anyhow::bail!(
                    "not delivered within {secs} s: the request is in the outbox and is retried;                      follow it with `comity case show {id}`"
                ),
                _ => Ok(()),
            }
        }
        RequestCommand::New(args) => {
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
    println!(
        "Back up: the keys (node.key, signing.key, sealing.key), the vault (keys/) and the store with `comity backup --out DIR -c {}`; keep master.key offline, apart from backups (docs/operations.md).",
        done.config_path.display()
    );
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

async fn backup(
    out: &Path,
    include_master_key: bool,
    connection: &Connection,
) -> anyhow::Result<()> {
    let path = connection
        .config
        .clone()
        .unwrap_or_else(|| "comity.toml".into());
    let config = Config::load(&path)?;
    let out = std::path::absolute(out)?;
    let config = &config;
    let manifest =
        crate::backup::backup(config, &out, include_master_key, |store_dir| async move {
            // The running node takes the checkpoint (it holds the store); a stopped node's store
            // is opened here.
            match client(connection)?.backup_checkpoint().await {
                Ok(taken) => {
                    // Taken beside the store (all a sandboxed node may write): copied into
                    // the backup, then removed.
                    crate::backup::copy_checkpoint(&taken, &store_dir)?;
                    if let Err(e) = std::fs::remove_dir_all(&taken) {
                        eprintln!(
                            "warning: cannot remove the node's checkpoint {}: {e}; remove it by hand",
                            taken.display()
                        );
                    }
                    Ok(crate::backup::Taken::Live)
                }
                Err(crate::admin::api::ClientError::Connect { .. }) => {
                    let store = crate::store::Store::open(&config.store_path())?;
                    store.checkpoint_to(&store_dir)?;
                    Ok(crate::backup::Taken::Stopped)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "backed up {} to {} ({} files, {} MiB; store checkpoint taken {})",
        manifest.jurisdiction,
        out.display(),
        manifest.files.len(),
        bytes >> 20,
        if manifest.taken_live {
            "by the running node"
        } else {
            "from the stopped node's store"
        }
    );
    if manifest.master_key_included {
        println!("the master key is in it: guard this backup as the master key itself");
    } else {
        println!(
            "the master key ({}) is not in it: keep its own copy offline, apart from this backup; restore asks for it",
            config.master_key_path().display()
        );
    }
    Ok(())
}

fn restore(
    from: &Path,
    data_dir: &Path,
    master_key: Option<&Path>,
    verify_only: bool,
) -> anyhow::Result<()> {
    if verify_only {
        let (manifest, problems) = crate::backup::verify(from)?;
        if !problems.is_empty() {
            bail!("the backup is damaged:\n  {}", problems.join("\n  "));
        }
        println!(
            "{}: a whole backup of {} taken at {} ({} files)",
            from.display(),
            manifest.jurisdiction,
            manifest.created_at,
            manifest.files.len()
        );
        return Ok(());
    }
    let (manifest, config) = crate::backup::restore(from, data_dir, master_key)?;
    println!(
        "restored {} (backup of {}) into {}",
        manifest.jurisdiction,
        manifest.created_at,
        data_dir.display()
    );
    println!(
        "Next: `comity config check -c {0}`, then `comity run -c {0}`: the node catches up with its members as they connect. Work done after the backup is pulled back from the members for shared cases; local-only records since then (drafts, officers, access log) are not.",
        config.display()
    );
    Ok(())
}

fn client(connection: &Connection) -> anyhow::Result<AdminClient> {
    let config = match &connection.config {
        Some(path) => Some(Config::load(path)?),
        None if Path::new("comity.toml").exists() => Some(Config::load(Path::new("comity.toml"))?),
        None => None,
    };
    let own_cert = config
        .as_ref()
        .and_then(|c| c.admin.tls_cert.as_ref().map(|p| c.resolve(p)));
    let base = match (&connection.admin, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => {
            // On the node's own host: a node listening on every address is reached on
            // loopback, which its certificate always names.
            let mut at = config.admin.listen;
            if at.ip().is_unspecified() {
                at.set_ip(match at {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let scheme = if own_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{at}")
        }
        (None, None) => {
            bail!("no admin API given: pass -c CONFIG or --admin URL (or set COMITY_CONFIG)")
        }
    };
    let ca_file = connection.ca_file.clone().or(own_cert);
    let token = match (&connection.token, &connection.token_file) {
        (Some(token), _) => token.clone(),
        (None, Some(path)) => read_token(path)?,
        (None, None) => match config.as_ref().map(|c| c.base_dir.join("admin.token")) {
            Some(path) if path.exists() => read_token(&path)?,
            _ => bail!("no token: pass --token-file FILE or set COMITY_TOKEN_FILE"),
        },
    };
    if !base.starts_with("https://") {
        if connection.ca_file.is_some() {
            bail!("{base} is plain http, but a CA file was given: use the https:// address");
        }
        if !is_loopback_url(&base) {
            bail!(
                "{base} is plain http beyond loopback: the token would cross the network in \
                 clear. Use https:// with --ca-file (the node serves beyond loopback only \
                 with TLS)"
            );
        }
        return Ok(AdminClient::new(base, token));
    }
    let Some(ca_file) = ca_file else {
        bail!(
            "{base} is https: pass --ca-file with the node's certificate (or its CA), or -c with \
             the node's config"
        );
    };
    let pem = std::fs::read(&ca_file)
        .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
    AdminClient::with_ca(base, token, &pem).with_context(|| format!("{}", ca_file.display()))
}

/// Whether a URL's host is this machine's loopback (where a token in clear stays), read as
/// the http client reads it (WHATWG URL parsing: `0x7f.1` is 127.0.0.1, a name ending in
/// `.example.org` is a name).
fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `comity tls-cert`: a self-signed pair for the admin API, and how to use it.
fn tls_cert(dir: &Path, mut names: Vec<String>) -> anyhow::Result<()> {
    for always in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == always) {
            names.push(always.to_owned());
        }
    }
    let (cert, key) = crate::admin::tls::self_signed(&names).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            bail!(
                "{} exists: remove it first, or choose another --dir",
                path.display()
            );
        }
    }
    crate::roster::write_private(&key_path, key.as_bytes())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    std::fs::write(&cert_path, cert)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    println!(
        "wrote {} and {} (mode 0600) for {}\n\nIn the node's config:\n  [admin]\n  listen = \"0.0.0.0:7701\"\n  tls_cert = \"{}\"\n  tls_key = \"{}\"\n\nOfficers elsewhere pin the certificate:\n  comity status --admin https://HOST:7701 --ca-file cert.pem --token-file TOKEN",
        cert_path.display(),
        key_path.display(),
        names.join(", "),
        cert_path.display(),
        key_path.display()
    );
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    /// Clap's own checks of every command (names used twice, conflicting flags…), which a
    /// release build skips: `officer add` once had two `--token-file`s and panicked in debug.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn only_loopback_hosts_may_be_spoken_to_in_clear() {
        for url in [
            "http://127.0.0.1:7701",
            "http://127.0.0.1:7701/v1/status",
            "http://localhost:7701",
            "http://[::1]:7701",
            "http://127.9.9.9",
            "http://0x7f.1:7701",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:7701",
            "http://node.example.org:7701",
            "http://[2001:db8::1]:7701",
            "http://127.0.0.1.example.org:7701",
            "http://0.0.0.0:7701",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
