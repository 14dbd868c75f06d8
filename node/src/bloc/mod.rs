//! Bloc governance on this node: the configuration chain it verified from the bloc's trust
//! anchor, the proposals it holds, and the live roster every other part reads.
//!
//! Configurations and proposals travel on the bloc's governance gossip topic, and a node pulls
//! what it misses from each member as it connects (`ExchangeRequest::Bloc`). Whatever the
//! source, everything goes through [`Governance::offer`]: the pure [`Chain`] decides, this
//! module stores what it decided (synced, with an audit entry), publishes the new roster, and
//! completes this node's own key rotation when the version naming its new key applies.

pub mod files;
mod gossip;
mod keys;
mod views;
mod votes;

pub use gossip::bootstrap_peers;
pub use keys::{own_keys, pending_key_path};
pub use views::{BlocStatus, KeyView, MemberView, VersionView};
pub use votes::{ProposalView, ProposeRequest};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use comity_protocol::bloc::{
    self, Amendment, BlocConfig, Chain, MemberCard, Offered, Verified, config_hash,
};
use comity_protocol::{Hash32, Jurisdiction, MultiSigned, Timestamp};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};
use tracing::{debug, info, warn};

use crate::identity::NodeIdentity;
use crate::network;
use crate::roster::{Membership, Roster};
use crate::store::{Batch, Cf, Store, StoreError};

/// A proposal that has not reached the threshold this long after it was issued lapses.
const PROPOSAL_LIFETIME: Duration = Duration::from_secs(14 * 86_400);

/// Configurations sent in answer to one pull, at most (the asker asks again for more).
const PULL_BATCH_BYTES: usize = 768 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Bloc(#[from] bloc::BlocError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

/// Where the node finds its bloc at start.
#[derive(Clone, Debug)]
pub struct GovernanceSettings {
    pub bloc_id: String,
    pub anchor: Option<Hash32>,
    pub genesis: PathBuf,
    pub bootstrap: Vec<Multiaddr>,
    pub signing_key: PathBuf,
    pub transport_key: PathBuf,
    pub announce: Duration,
    /// How often every connected member's chain is compared with ours (pulled), beyond the
    /// pulls on connect and on announcements heard.
    pub compare: Duration,
    /// The node's clock, shared with every other service.
    pub clock: crate::clock::Clock,
}

/// What a member's pull answer said of its chain, for `comity peers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PeerHead {
    pub version: u64,
    pub hash: Hash32,
    pub at: Timestamp,
}

#[derive(Clone)]
pub struct Governance {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    identity: NodeIdentity,
    jurisdiction: Jurisdiction,
    settings: GovernanceSettings,
    chain: Mutex<Chain>,
    roster: watch::Sender<Arc<Roster>>,
    membership: Membership,
    network: std::sync::OnceLock<network::Client>,
    peers: std::sync::Mutex<BTreeMap<Jurisdiction, PeerHead>>,
    /// When the log last warned of expiry (at most once an hour).
    expiry_warned: std::sync::Mutex<Option<std::time::Instant>>,
    /// When every connected member's chain was last compared with ours.
    compared: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("jurisdiction", &self.inner.jurisdiction)
            .field("version", &self.roster().version())
            .finish_non_exhaustive()
    }
}

fn version_key(v: u64) -> Vec<u8> {
    let mut k = b"v".to_vec();
    k.extend_from_slice(&v.to_be_bytes());
    k
}
fn proposal_key(h: &Hash32) -> Vec<u8> {
    [b"p".as_slice(), h.as_bytes()].concat()
}
fn fork_key(h: &Hash32) -> Vec<u8> {
    [b"f".as_slice(), h.as_bytes()].concat()
}
const ANCHOR_KEY: &[u8] = b"anchor";

fn decode(bytes: &[u8]) -> Result<MultiSigned, GovernanceError> {
    MultiSigned::from_bytes(bytes, bloc::MAX_CONFIG_BYTES + 64 * 1024)
        .map_err(|e| GovernanceError::Refused(format!("not a bloc configuration: {e}")))
}

impl Governance {
    /// Loads the chain from the store (or starts it from the genesis file), checks that this
    /// node's keys are the ones its configuration names, and returns the live membership.
    pub fn open(
        store: Store,
        identity: NodeIdentity,
        jurisdiction: Jurisdiction,
        settings: GovernanceSettings,
    ) -> anyhow::Result<Self> {
        let stored_anchor = store
            .get(Cf::Bloc, ANCHOR_KEY)?
            .map(|b| <[u8; 32]>::try_from(b.as_slice()).map(Hash32))
            .transpose()
            .map_err(|_| anyhow::anyhow!("the stored trust anchor is damaged"))?;
        let genesis = match std::fs::read(&settings.genesis) {
            Ok(bytes) => Some(
                decode(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", settings.genesis.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot read {}: {e}", settings.genesis.display()),
        };
        let anchor = match (stored_anchor, settings.anchor, &genesis) {
            (Some(stored), Some(configured), _) if stored != configured => anyhow::bail!(
                "the store trusts bloc anchor {stored}, but the config names {configured}; a node belongs to one bloc (use a new data directory for another)"
            ),
            (Some(stored), _, _) => stored,
            (None, Some(configured), _) => configured,
            (None, None, Some(g)) => {
                let anchor = config_hash(g);
                info!(%anchor, "no trust anchor configured: adopting the genesis file's hash (check it with the other founders)");
                anchor
            }
            (None, None, None) => anyhow::bail!(
                "no bloc configuration: found no genesis file ({}) and no [bloc] anchor; found a bloc with `comity bloc genesis` (founders) or join one with `comity init --bloc-anchor HASH --bootstrap MULTIADDR`",
                settings.genesis.display()
            ),
        };
        let mut chain = Chain::new(anchor);
        let mut stored = 0;
        for (_, bytes) in store.scan_prefix(Cf::Bloc, b"v")? {
            let signed = decode(&bytes)?;
            match chain.offer(&signed) {
                Offered::Applied(_) => stored += 1,
                other => anyhow::bail!(
                    "the stored bloc configuration chain does not verify ({other:?}); the store may be damaged"
                ),
            }
        }
        if stored == 0
            && let Some(g) = &genesis
            && let Offered::Refused(e) = chain.offer(g)
        {
            anyhow::bail!("the genesis {} is refused: {e}", settings.genesis.display());
        }
        // Forks seen before stay alerted across restarts.
        for (_, bytes) in store.scan_prefix(Cf::Bloc, b"f")? {
            if let Ok(signed) = decode(&bytes) {
                let _ = chain.offer(&signed);
            }
        }
        for (_, bytes) in store.scan_prefix(Cf::Bloc, b"p")? {
            if let Ok(signed) = decode(&bytes) {
                let _ = chain.offer(&signed);
            }
        }
        let roster = match chain.head() {
            Some(head) => Roster::from_config(Arc::new(head.clone())),
            None => Roster::empty(&settings.bloc_id),
        };
        if !settings.bloc_id.is_empty() && roster.bloc() != settings.bloc_id {
            anyhow::bail!(
                "the bloc configuration is for bloc {:?}, but [bloc] id is {:?}",
                roster.bloc(),
                settings.bloc_id
            );
        }
        let (tx, membership) = Membership::new(roster);
        let governance = Self {
            inner: Arc::new(Inner {
                store,
                identity,
                jurisdiction,
                settings,
                chain: Mutex::new(chain),
                roster: tx,
                membership,
                network: std::sync::OnceLock::new(),
                peers: std::sync::Mutex::new(BTreeMap::new()),
                expiry_warned: std::sync::Mutex::new(None),
                compared: std::sync::Mutex::new(None),
            }),
        };
        governance.check_own_keys()?;
        Ok(governance)
    }

    /// The node's clock (see `crate::clock`): bloc expiry and case deadlines read the same.
    pub fn now(&self) -> Timestamp {
        self.inner.settings.clock.now()
    }

    pub fn clock(&self) -> &crate::clock::Clock {
        &self.inner.settings.clock
    }

    /// Fault injection (testnets): moves the node's clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.settings.clock.advance(by);
    }

    /// Fault injection (testnets): moves the node's clock by `ms`, either way.
    pub fn shift_clock(&self, ms: i64) {
        self.inner.settings.clock.shift(ms);
    }

    /// The version and hash `member` last said it holds.
    pub fn peer_head(&self, member: &Jurisdiction) -> Option<PeerHead> {
        self.inner
            .peers
            .lock()
            .expect("peers lock")
            .get(member)
            .cloned()
    }

    /// The jurisdiction this node speaks for.
    pub fn jurisdiction(&self) -> &Jurisdiction {
        &self.inner.jurisdiction
    }

    pub fn membership(&self) -> Membership {
        self.inner.membership.clone()
    }

    pub fn roster(&self) -> Arc<Roster> {
        self.inner.membership.current()
    }

    /// Persists a genesis adopted from a file (once) and the anchor.
    pub async fn persist_start(&self) -> Result<(), GovernanceError> {
        let chain = self.inner.chain.lock().await;
        let mut batch = Batch::new();
        batch.put(
            Cf::Bloc,
            ANCHOR_KEY.to_vec(),
            chain.anchor().as_bytes().to_vec(),
        );
        if let Some(g) = chain.version(1)
            && self.inner.store.get(Cf::Bloc, &version_key(1))?.is_none()
        {
            batch.put(Cf::Bloc, version_key(1), g.signed.to_bytes());
            crate::audit::record(
                &mut batch,
                crate::audit::AuditWhat::BlocConfig {
                    version: 1,
                    hash: g.hash,
                    signers: g.signers.clone(),
                },
            );
        }
        self.inner.store.commit(batch).await?;
        Ok(())
    }

    /// Takes in a configuration from anywhere (gossip, a pull, an officer) and acts on what
    /// the chain decided.
    pub async fn offer(&self, signed: &MultiSigned, from: &str) -> Offered {
        let mut chain = self.inner.chain.lock().await;
        let outcome = chain.offer(signed);
        let mut batch = Batch::new();
        match &outcome {
            Offered::Applied(versions) => {
                self.store_applied(&mut batch, &chain, versions, from);
            }
            Offered::Proposal {
                hash,
                valid,
                needed,
            } => {
                let merged = chain
                    .proposals()
                    .find(|(h, _)| *h == hash)
                    .map(|(_, p)| p.to_bytes());
                // Re-announcements bring the same proposal again and again: it is written only
                // when it gained a signature.
                if let Some(bytes) = merged {
                    let stored = self.inner.store.get(Cf::Bloc, &proposal_key(hash));
                    if !matches!(stored, Ok(Some(ref s)) if *s == bytes) {
                        batch.put(Cf::Bloc, proposal_key(hash), bytes);
                    }
                }
                debug!(%hash, valid, needed, %from, "bloc proposal held");
            }
            Offered::Fork {
                version,
                held,
                other,
            } => {
                // Alerted once, when first seen; it stays in status until resolved.
                if !matches!(
                    self.inner.store.get(Cf::Bloc, &fork_key(other)),
                    Ok(Some(_))
                ) {
                    batch.put(Cf::Bloc, fork_key(other), signed.to_bytes());
                    warn!(version, %held, %other, %from, "FORK: two validly signed bloc configurations of the same version; both are kept as evidence — the members must resolve it");
                } else {
                    debug!(version, %other, %from, "the fork's other configuration again");
                }
            }
            // A member that is behind announces its (older) version every few seconds: that
            // is worth a debug line, not a warning each time. An officer's import of an old
            // version is a replay and warned of.
            Offered::Refused(e @ bloc::BlocError::Rollback { .. })
                if !from.starts_with("officer ") =>
            {
                debug!(%from, error = %e, "an older bloc configuration announced (the member is behind): nothing applied");
            }
            Offered::Refused(e) => {
                warn!(%from, error = %e, "bloc configuration refused; nothing applied");
            }
            Offered::Early { version } => {
                debug!(version, %from, "bloc configuration held until its predecessors arrive")
            }
            Offered::Current => {}
        }
        if !batch.is_empty()
            && let Err(e) = self.inner.store.commit(batch).await
        {
            // The chain in memory is ahead of the store: this node acts on the new version,
            // and after a restart pulls it again from the members.
            tracing::error!(error = %e, "cannot store the bloc configuration; it applies in memory and will be pulled again after a restart");
        }
        // Still under the chain's lock: rosters are published in version order, and this
        // node's own rotations complete one at a time.
        if let (Offered::Applied(_), Some(head)) = (&outcome, chain.head()) {
            self.applied(head.clone());
        }
        drop(chain);
        outcome
    }

    /// Puts in `batch` the versions just applied, with their audit entries, and drops the
    /// proposals the new head made stale.
    fn store_applied(&self, batch: &mut Batch, chain: &bloc::Chain, versions: &[u64], from: &str) {
        for v in versions {
            let verified = chain.version(*v).expect("applied");
            batch.put(Cf::Bloc, version_key(*v), verified.signed.to_bytes());
            crate::audit::record(
                batch,
                crate::audit::AuditWhat::BlocConfig {
                    version: *v,
                    hash: verified.hash,
                    signers: verified.signers.clone(),
                },
            );
            info!(version = v, hash = %verified.hash, signers = %verified.signers.iter().map(|j| j.to_string()).collect::<Vec<_>>().join(","), %from, "bloc configuration applied");
        }
        // Proposals the new head made stale are gone from the chain: drop them here.
        for (key, _) in self
            .inner
            .store
            .scan_prefix(Cf::Bloc, b"p")
            .unwrap_or_default()
        {
            let held = key
                .get(1..)
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .map(Hash32);
            if !held.is_some_and(|h| chain.proposals().any(|(p, _)| *p == h)) {
                batch.delete(Cf::Bloc, key);
            }
        }
    }

    /// A new head: this node's rotation completes if it names the new key, then every holder
    /// of the membership sees the new roster.
    fn applied(&self, head: Verified) {
        if let Some(me) = head.config.member(&self.inner.jurisdiction) {
            if let Some(key) = me.current_key()
                && *key != self.inner.identity.public_key()
                && let Err(e) = self.complete_rotation(key)
            {
                warn!(error = %e, "cannot complete this node's signing key rotation");
            }
            if me.transport_key != self.inner.identity.transport_key() {
                match self.complete_transport_rotation(&me.transport_key) {
                    Ok(true) => {
                        // After a moment, so that the version that made the change reaches the
                        // members over the old connections first.
                        if let Some(network) = self.inner.network.get().cloned() {
                            let keypair = self.inner.identity.keypair();
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                network.rekey(keypair).await;
                            });
                        }
                    }
                    Ok(false) => warn!(
                        "the bloc configuration gives this member a transport key this node does not hold"
                    ),
                    Err(e) => {
                        warn!(error = %e, "cannot complete this node's transport key rotation")
                    }
                }
            }
        }
        let newer = head.config.version > self.inner.roster.borrow().version();
        if newer {
            let _ = self
                .inner
                .roster
                .send(Arc::new(Roster::from_config(Arc::new(head))));
        }
    }

    /// Whether a new request may start now; the reason in words when it may not.
    pub fn may_start_requests(&self) -> Result<(), String> {
        may_start_requests(&self.roster(), self.now())
    }
}

/// Whether new requests may start under `roster` at `now`: not while joining, and not once
/// the configuration expired (cases under way go on).
pub fn may_start_requests(roster: &Roster, now: Timestamp) -> Result<(), String> {
    let Some(config) = roster.config() else {
        return Err("this node holds no bloc configuration yet; it is still joining".into());
    };
    if config.is_expired(now) {
        return Err(format!(
            "the bloc configuration (version {}) expired at {}: no new request can start until the members renew it — a governor runs `comity bloc propose --renew`, and enough members `comity bloc sign {}`; cases under way go on",
            config.version,
            config.expires_at,
            config.version + 1
        ));
    }
    Ok(())
}
