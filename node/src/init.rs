//! `comity init`: a new node directory with its keys, config, signed member card and store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use comity_protocol::{Hash32, Jurisdiction, PublicKey};
use libp2p::{Multiaddr, PeerId};

use crate::admin::officers::{self, Role};
use crate::config::Config;
use crate::identity::NodeIdentity;
use crate::roster::write_private;
use crate::store::Store;

pub const CONFIG_FILE: &str = "comity.toml";
pub const MEMBER_FILE: &str = "member.toml";

#[derive(Clone, Debug)]
pub struct InitOptions {
    pub jurisdiction: Jurisdiction,
    pub data_dir: PathBuf,
    pub listen: Multiaddr,
    pub admin: SocketAddr,
    pub name: Option<String>,
    pub bloc: String,
    /// The bloc's trust anchor, when joining an existing bloc.
    pub anchor: Option<Hash32>,
    /// Members to reach first, when joining (multiaddrs with /p2p/PEERID).
    pub bootstrap: Vec<Multiaddr>,
    /// Write the first admin token to this file (0600) instead of only returning it.
    pub token_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Initialized {
    pub config_path: PathBuf,
    pub jurisdiction: Jurisdiction,
    pub peer_id: PeerId,
    pub signing_key: PublicKey,
    pub sealing_key: comity_protocol::evidence::SealingKey,
    /// The signed card to send to the bloc.
    pub member_file: PathBuf,
    /// The first admin token, in clear: shown once, stored only hashed.
    pub token: String,
}

pub async fn init(options: InitOptions) -> anyhow::Result<Initialized> {
    let dir = &options.data_dir;
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        bail!(
            "{} already exists; a node is initialised once (remove the directory to start over)",
            config_path.display()
        );
    }
    if options.anchor.is_some() && options.bootstrap.is_empty() {
        bail!(
            "joining a bloc by its anchor needs at least one --bootstrap MULTIADDR/p2p/PEERID of a member"
        );
    }
    if let Some(bad) = options
        .bootstrap
        .iter()
        .find(|a| crate::bloc::bootstrap_peers(std::slice::from_ref(a)).is_empty())
    {
        bail!(
            "bootstrap address {bad} names no peer: end it with /p2p/PEERID (the member's PeerId)"
        );
    }
    create_private_dir(dir)?;
    let mut config = Config::new(
        options.jurisdiction.clone(),
        options.listen.clone(),
        options.admin,
    );
    config.bloc.id = options.bloc.clone();
    config.bloc.anchor = options.anchor;
    config.bloc.bootstrap = options.bootstrap.clone();
    let identity = NodeIdentity::create(dir)?;
    let sealing_key = crate::evidence::create_sealing_key(&dir.join(&config.node.sealing_key))?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| options.jurisdiction.to_string());
    let (_, text) = crate::bloc::files::member_file(
        &identity,
        &options.bloc,
        &options.jurisdiction,
        &name,
        &[options.listen.to_string()],
        Some(sealing_key),
    );
    std::fs::write(dir.join(MEMBER_FILE), text)?;
    // The master key that will wrap every case's data key: made now, so that operators can
    // back it up before the first case arrives.
    crate::vault::Vault::create_master_key(&dir.join(&config.node.master_key))?;
    let store = Store::open(&dir.join(&config.node.store_dir))?;
    let (_, token) = officers::add(&store, "admin", Role::Admin).await?;
    drop(store);
    if let Some(path) = &options.token_file {
        write_private(path, format!("{token}\n").as_bytes())
            .with_context(|| format!("cannot write the token file {}", path.display()))?;
    }
    std::fs::write(&config_path, config.to_commented_toml())?;
    Ok(Initialized {
        config_path,
        jurisdiction: options.jurisdiction,
        peer_id: identity.peer_id(),
        signing_key: identity.public_key(),
        sealing_key,
        member_file: dir.join(MEMBER_FILE),
        token,
    })
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}
