//! `comity init`: a new node directory with its key, config, roster and store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use comity_protocol::Jurisdiction;
use libp2p::{Multiaddr, PeerId};

use crate::admin::officers::{self, Role};
use crate::config::Config;
use crate::identity::NodeIdentity;
use crate::roster::{Member, Roster, write_private};
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
    /// Write the first admin token to this file (0600) instead of only returning it.
    pub token_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Initialized {
    pub config_path: PathBuf,
    pub peer_id: PeerId,
    pub member: Member,
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
    create_private_dir(dir)?;
    let config = Config::new(
        options.jurisdiction.clone(),
        options.listen.clone(),
        options.admin,
    );
    let identity = NodeIdentity::create(&dir.join(&config.node.key_file))?;
    let sealing_key = crate::evidence::create_sealing_key(&dir.join(&config.node.sealing_key))?;
    let member = Member {
        jurisdiction: options.jurisdiction.clone(),
        name: options
            .name
            .clone()
            .unwrap_or_else(|| options.jurisdiction.to_string()),
        peer_id: identity.peer_id(),
        addresses: vec![options.listen.clone()],
        sealing_key: Some(sealing_key),
    };
    // Until the bloc's roster replaces it, the node's roster lists only itself.
    let roster =
        Roster::new(options.bloc.clone(), vec![member.clone()]).map_err(|e| anyhow::anyhow!(e))?;
    std::fs::write(dir.join(&config.node.roster), roster.to_toml())?;
    std::fs::write(
        dir.join(MEMBER_FILE),
        format!(
            "# This node's entry for the bloc roster: send it to the bloc's roster keeper.\n{}",
            roster.to_toml()
        ),
    )?;
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
        peer_id: identity.peer_id(),
        member,
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
