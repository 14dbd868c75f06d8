//! Bloc governance on this node: the configuration chain it verified from the bloc's trust
//! anchor, the proposals it holds, and the live roster every other part reads.
//!
//! Configurations and proposals travel on the bloc's governance gossip topic, and a node pulls
//! what it misses from each member as it connects (`ExchangeRequest::Bloc`). Whatever the
//! source, everything goes through [`Governance::offer`]: the pure [`Chain`] decides, this
//! module stores what it decided (synced, with an audit entry), publishes the new roster, and
//! completes this node's own key rotation when the version naming its new key applies.

pub mod files;

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
    /// The node's clock, shared with every other service.
    pub clock: crate::clock::Clock,
}

/// What a member's pull answer said of its chain, for `comity peers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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

/// If the key pending beside the key file `current` is `key`, moves it over `current` (the old
/// secret is then gone) and returns its seed; `None` when no such key is pending.
fn take_pending_key(
    current: &std::path::Path,
    key: &comity_protocol::PublicKey,
) -> std::io::Result<Option<[u8; 32]>> {
    let pending = pending_key_path(current);
    let Ok(seed) = crate::identity::read_key_file(&pending) else {
        return Ok(None);
    };
    let next = ed25519_dalek::SigningKey::from_bytes(&seed);
    if comity_protocol::PublicKey::from(&next.verifying_key()) != *key {
        return Ok(None);
    }
    std::fs::rename(&pending, current)?;
    sync_dir(current);
    Ok(Some(seed))
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &std::path::Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// The path of a signing key made for a rotation that has not applied yet.
pub fn pending_key_path(signing_key: &std::path::Path) -> PathBuf {
    let mut name = signing_key.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
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

    /// The configuration must name this node's transport key and signing key. A rotation
    /// that applied while the node was down is completed here.
    fn check_own_keys(&self) -> anyhow::Result<()> {
        let roster = self.roster();
        let Some(config) = roster.config() else {
            return Ok(());
        };
        let Some(me) = config.member(&self.inner.jurisdiction) else {
            warn!(jurisdiction = %self.inner.jurisdiction, version = config.version, "this node is not (yet) a member of the bloc: send member.toml to a member, who proposes adding it");
            return Ok(());
        };
        if me.left.is_some() {
            warn!("this member has left the bloc: no member accepts its connections");
            return Ok(());
        }
        let transport = self.inner.identity.transport_key();
        if me.transport_key != transport && !self.complete_transport_rotation(&me.transport_key)? {
            anyhow::bail!(
                "the bloc configuration (version {}) lists {}'s transport key as {}, but this node's key file holds {}; wrong key file?",
                config.version,
                me.jurisdiction,
                me.transport_key,
                transport
            );
        }
        match me.current_key() {
            Some(key) if *key == self.inner.identity.public_key() => Ok(()),
            Some(key) => {
                if self.complete_rotation(key)? {
                    return Ok(());
                }
                anyhow::bail!(
                    "the bloc configuration (version {}) lists {}'s signing key as {key}, but {} holds {}; wrong key file?",
                    config.version,
                    me.jurisdiction,
                    self.inner.settings.signing_key.display(),
                    self.inner.identity.public_key()
                )
            }
            None => {
                warn!(
                    "this member's signing key was revoked: it is not admitted until the bloc applies a new card; make one with `comity bloc card --new-signing-key` and hand it to a member, whose governor proposes `comity bloc propose --update`"
                );
                Ok(())
            }
        }
    }

    /// If the pending transport key is `key`, makes it the transport key (file and memory).
    /// The caller restarts the network under it (at start, the network is not up yet).
    fn complete_transport_rotation(
        &self,
        key: &comity_protocol::PublicKey,
    ) -> anyhow::Result<bool> {
        let Some(seed) = take_pending_key(&self.inner.settings.transport_key, key)? else {
            return Ok(false);
        };
        self.inner.identity.set_transport_key(seed);
        info!(peer_id = %self.inner.identity.peer_id(), "transport key rotated: this node's PeerId is now the new key's");
        Ok(true)
    }

    /// If the pending key is `key`, makes it the signing key (file and memory).
    fn complete_rotation(&self, key: &comity_protocol::PublicKey) -> anyhow::Result<bool> {
        let Some(seed) = take_pending_key(&self.inner.settings.signing_key, key)? else {
            return Ok(false);
        };
        self.inner
            .identity
            .set_signing_key(ed25519_dalek::SigningKey::from_bytes(&seed));
        info!(key = %key, "signing key rotated: this node now signs with its new key");
        Ok(true)
    }

    /// Starts the gossip listener, the pulls on connect and the periodic announcements.
    pub fn start(&self, network: network::Client) {
        let _ = self.inner.network.set(network.clone());
        let this = self.clone();
        let mut gossip = network.governance();
        tokio::spawn(async move {
            loop {
                match gossip.recv().await {
                    Ok((peer, data)) => {
                        let from = this.name_of(&peer);
                        match decode(&data) {
                            Ok(signed) => {
                                this.offer(&signed, &from).await;
                            }
                            Err(e) => warn!(%peer, error = %e, "governance message refused"),
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        debug!(missed = n, "governance messages missed; pulls catch up")
                    }
                    Err(_) => break,
                }
            }
        });
        let this = self.clone();
        let mut connections = network.connections();
        tokio::spawn(async move {
            loop {
                match connections.recv().await {
                    Ok(peer) => {
                        let this = this.clone();
                        tokio::spawn(async move { this.pull_from(peer).await });
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.inner.settings.announce);
            loop {
                tick.tick().await;
                this.announce().await;
            }
        });
    }

    fn name_of(&self, peer: &PeerId) -> String {
        self.roster()
            .by_peer(peer)
            .map_or_else(|| peer.to_string(), |(m, _)| m.jurisdiction.to_string())
    }

    /// Publishes the current version and the open proposals (members that missed them catch
    /// up), and warns as expiry nears.
    async fn announce(&self) {
        let Some(network) = self.inner.network.get() else {
            return;
        };
        let (head, proposals) = {
            let mut chain = self.inner.chain.lock().await;
            // Proposals lapse 14 days after they were issued.
            let oldest = Timestamp::from_millis(
                self.now()
                    .as_millis()
                    .saturating_sub(PROPOSAL_LIFETIME.as_millis() as i64),
            );
            let lapsed = chain.prune_proposals(oldest);
            if !lapsed.is_empty() {
                let mut batch = Batch::new();
                for h in &lapsed {
                    batch.delete(Cf::Bloc, proposal_key(h));
                    info!(proposal = %h, "bloc proposal lapsed unsigned after 14 days");
                }
                if let Err(e) = self.inner.store.commit(batch).await {
                    warn!(error = %e, "cannot drop lapsed proposals from the store");
                }
            }
            (
                chain.head().cloned(),
                chain
                    .proposals()
                    .map(|(_, p)| p.clone())
                    .collect::<Vec<_>>(),
            )
        };
        if let Some(head) = &head {
            let now = self.now();
            let days = head.config.days_left(now);
            let expired = head.config.is_expired(now);
            let soon = days < i64::from(head.config.rules.warn_days);
            // Warned in the log at most once an hour; status shows it all the time.
            let due = (expired || soon) && {
                let mut warned = self.inner.expiry_warned.lock().expect("expiry lock");
                let due = warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
                if due {
                    *warned = Some(std::time::Instant::now());
                }
                due
            };
            if due && expired {
                warn!(version = head.config.version, expired = %head.config.expires_at, "the bloc configuration has expired: no new request can start until the members renew it (`comity bloc propose --renew`)");
            } else if due {
                warn!(
                    version = head.config.version,
                    days_left = days,
                    "the bloc configuration expires soon: renew it with `comity bloc propose --renew`"
                );
            }
            network.publish_governance(head.signed.to_bytes()).await;
        }
        for p in proposals {
            network.publish_governance(p.to_bytes()).await;
        }
        // Compare with every connected member again: a member that stays on another version
        // (or another configuration of the same version) shows in `comity peers`.
        if let Some(status) = network.status().await {
            let roster = self.roster();
            for peer in status
                .connected
                .iter()
                .filter_map(|p| p.parse::<PeerId>().ok())
            {
                if roster.by_peer(&peer).is_some() {
                    let this = self.clone();
                    tokio::spawn(async move { this.pull_from(peer).await });
                }
            }
        }
    }

    /// Asks a newly connected peer for what it holds beyond our head.
    async fn pull_from(&self, peer: PeerId) {
        let Some(network) = self.inner.network.get() else {
            return;
        };
        let bootstrap = self
            .inner
            .settings
            .bootstrap
            .iter()
            .any(|a| peer_in(a) == Some(peer));
        if self.roster().by_peer(&peer).is_none() && !bootstrap {
            return;
        }
        for _ in 0..64 {
            let have = self.roster().version();
            let frame =
                comity_protocol::to_canonical_cbor(&comity_protocol::ExchangeRequest::Bloc {
                    have,
                })
                .expect("a request encodes");
            let response = match network.request(peer, frame).await {
                Ok(r) => r,
                Err(e) => {
                    debug!(%peer, error = %e, "bloc pull failed");
                    return;
                }
            };
            let page = match comity_protocol::from_cbor::<comity_protocol::ExchangeResponse>(
                &response,
                comity_protocol::limits::MAX_RESPONSE_FRAME,
            ) {
                Ok(comity_protocol::ExchangeResponse::Bloc(page)) => page,
                Ok(_) | Err(_) => {
                    debug!(%peer, "bloc pull: no usable answer");
                    return;
                }
            };
            let from = self.name_of(&peer);
            if let Some((version, hash)) = page.head
                && let Some((member, _)) = self.roster().by_peer(&peer)
            {
                self.inner.peers.lock().expect("peers lock").insert(
                    member.jurisdiction.clone(),
                    PeerHead {
                        version,
                        hash,
                        at: self.now(),
                    },
                );
            }
            let mut applied = false;
            for bytes in page.configs.iter().chain(&page.proposals) {
                match decode(bytes) {
                    Ok(signed) => {
                        if let Offered::Applied(_) = self.offer(&signed, &from).await {
                            applied = true;
                        }
                    }
                    Err(e) => warn!(%peer, error = %e, "pulled configuration refused"),
                }
            }
            if !page.more || !applied {
                return;
            }
        }
    }

    /// Answers a member's pull: configurations after `have`, open proposals, our head.
    pub async fn answer_pull(&self, have: u64) -> comity_protocol::BlocPage {
        let chain = self.inner.chain.lock().await;
        let mut configs = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for v in chain.versions().iter().filter(|v| v.config.version > have) {
            let encoded = v.signed.to_bytes();
            if bytes + encoded.len() > PULL_BATCH_BYTES && !configs.is_empty() {
                more = true;
                break;
            }
            bytes += encoded.len();
            configs.push(serde_bytes::ByteBuf::from(encoded));
        }
        let proposals = if more {
            Vec::new()
        } else {
            chain
                .proposals()
                .map(|(_, p)| p.to_bytes())
                .take_while(|p| {
                    bytes += p.len();
                    bytes <= PULL_BATCH_BYTES
                })
                .map(serde_bytes::ByteBuf::from)
                .collect()
        };
        comity_protocol::BlocPage {
            head: chain.head().map(|h| (h.config.version, h.hash)),
            configs,
            proposals,
            more,
        }
    }

    /// Takes in a configuration from anywhere (gossip, a pull, an officer) and acts on what
    /// the chain decided.
    pub async fn offer(&self, signed: &MultiSigned, from: &str) -> Offered {
        let mut chain = self.inner.chain.lock().await;
        let outcome = chain.offer(signed);
        let mut batch = Batch::new();
        match &outcome {
            Offered::Applied(versions) => {
                for v in versions {
                    let verified = chain.version(*v).expect("applied");
                    batch.put(Cf::Bloc, version_key(*v), verified.signed.to_bytes());
                    crate::audit::record(
                        &mut batch,
                        crate::audit::AuditWhat::BlocConfig {
                            version: *v,
                            hash: verified.hash,
                            signers: verified.signers.clone(),
                        },
                    );
                    info!(version = v, hash = %verified.hash, signers = ?verified.signers.iter().map(|j| j.to_string()).collect::<Vec<_>>(), %from, "bloc configuration applied");
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

    /// Proposes the next version with `amendments`, signed by this node (and, for a rotation,
    /// proven by the new key's card), and announces it.
    pub async fn propose(
        &self,
        change: &ProposeRequest,
        officer: &str,
    ) -> Result<ProposalView, GovernanceError> {
        let (head, already) = {
            let chain = self.inner.chain.lock().await;
            let head = chain.head().cloned().ok_or_else(|| {
                GovernanceError::Refused("this node holds no bloc configuration yet".into())
            })?;
            let already = chain.signed_other(&self.inner.identity.public_key(), &Hash32([0; 32]));
            (head, already)
        };
        if !head
            .config
            .member(&self.inner.jurisdiction)
            .is_some_and(|m| m.is_admitted())
        {
            return Err(GovernanceError::Refused(
                "this node is not an admitted member of the bloc: a member's governor proposes for it (`comity bloc propose --add` or `--update` with this node's card)".into(),
            ));
        }
        if let Some((version, other)) = already {
            return Err(GovernanceError::Refused(format!(
                "this member already signed proposal {other} for version {version}; a member signs one proposal per version (sign that one, or wait until it lapses after 14 days)"
            )));
        }
        let mut amendments = Vec::new();
        for card in &change.add {
            let card = files::parse_member_file(card).map_err(GovernanceError::Refused)?;
            amendments.push(Amendment::Add(card));
        }
        for card in &change.update {
            let card = files::parse_member_file(card).map_err(GovernanceError::Refused)?;
            amendments.push(Amendment::Update(card));
        }
        for j in &change.remove {
            amendments.push(Amendment::Remove(j.clone()));
        }
        for (j, key) in &change.revoke {
            amendments.push(Amendment::Revoke(j.clone(), *key));
        }
        for (name, value) in &change.set {
            amendments.push(Amendment::Set(name.clone(), value.clone()));
        }
        if let Some(kind) = change.rotate_key.as_deref() {
            let me = head
                .config
                .member(&self.inner.jurisdiction)
                .ok_or_else(|| {
                    GovernanceError::Refused(
                        "this node is not a member; it has no key to rotate".into(),
                    )
                })?;
            // The new key is made now (kept as `*.next` until the version applies); the card
            // that introduces it is signed by it and by the key that stays.
            let (signing, transport) = match kind {
                "signing" => (
                    self.pending_key(&self.inner.settings.signing_key)?,
                    self.inner.identity.transport_signing_key(),
                ),
                "transport" => (
                    (*self.inner.identity.signing_key()).clone(),
                    self.pending_key(&self.inner.settings.transport_key)?,
                ),
                other => {
                    return Err(GovernanceError::Refused(format!(
                        "--rotate-key {other}: write `signing` (the application signing key) or `transport` (the libp2p identity)"
                    )));
                }
            };
            let card = MemberCard {
                bloc: head.config.bloc.clone(),
                jurisdiction: me.jurisdiction.clone(),
                name: me.name.clone(),
                addresses: me.addresses.clone(),
                transport_key: comity_protocol::PublicKey::from(&transport.verifying_key()),
                signing_key: comity_protocol::PublicKey::from(&signing.verifying_key()),
                sealing_key: me.sealing_key,
                made_at: self.now(),
            };
            amendments.push(Amendment::Update(card.sign(&signing, &transport)));
        }
        if change.renew {
            amendments.push(Amendment::Renew);
        }
        if amendments.is_empty() {
            return Err(GovernanceError::Refused(
                "a proposal changes something: --add, --remove, --rotate-key, --revoke-key, --set or --renew".into(),
            ));
        }
        let next = head.config.amend(&head.hash, &amendments, self.now())?;
        let mut signed =
            MultiSigned::new(&next).map_err(|e| GovernanceError::Refused(e.to_string()))?;
        if head
            .config
            .member(&self.inner.jurisdiction)
            .is_some_and(|m| m.is_admitted())
        {
            signed.add_signature(&self.inner.identity.signing_key());
        }
        let hash = config_hash(&signed);
        self.vote(&signed, officer, "proposed").await?;
        // Held as a proposal, or (when this node's signature alone was the threshold) applied.
        match self.proposal(&hash).await {
            Some(view) => Ok(view),
            None => self.applied_view(&hash).await,
        }
    }

    /// A key for this node's rotation of the key file `current`: the one already pending, or
    /// a new one (0600).
    fn pending_key(
        &self,
        current: &std::path::Path,
    ) -> Result<ed25519_dalek::SigningKey, GovernanceError> {
        let path = pending_key_path(current);
        if let Ok(seed) = crate::identity::read_key_file(&path) {
            return Ok(ed25519_dalek::SigningKey::from_bytes(&seed));
        }
        let seed: [u8; 32] = rand::random();
        crate::identity::create_key_file(&path, &seed)
            .map_err(|e| GovernanceError::Io(e.to_string()))?;
        Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Takes in a configuration handed over out of band (`comity bloc import`): a version
    /// this node missed, or a proposal. It is verified like any other; nothing is trusted as
    /// given.
    pub async fn import(&self, bytes: &[u8], officer: &str) -> Result<String, GovernanceError> {
        let signed = decode(bytes)?;
        let version = bloc::peek(&signed)?.version;
        let from = format!("officer {officer} (import)");
        match self.offer(&signed, &from).await {
            Offered::Applied(versions) => Ok(format!("applied version(s) {versions:?}")),
            Offered::Proposal { valid, needed, .. } => Ok(format!(
                "held as a proposal for version {version}: {valid} of {needed} signatures"
            )),
            Offered::Early { version } => Ok(format!(
                "held: version {version} applies once the versions before it arrive"
            )),
            Offered::Current => Ok(format!("version {version} is already the current version")),
            Offered::Fork { version, other, .. } => Err(GovernanceError::Refused(format!(
                "version {version} differs from the one held ({other}): a fork, kept as evidence"
            ))),
            Offered::Refused(e) => Err(GovernanceError::Bloc(e)),
        }
    }

    /// Adds this node's signature to an open proposal, named by its version (when only one is
    /// open for it) or by its hash (or a prefix of it).
    pub async fn sign(&self, which: &str, officer: &str) -> Result<ProposalView, GovernanceError> {
        let roster = self.roster();
        if !roster
            .config()
            .and_then(|c| c.member(&self.inner.jurisdiction))
            .is_some_and(|m| m.is_admitted())
        {
            return Err(GovernanceError::Refused(
                "this node is not an admitted member: its signature would count for nothing".into(),
            ));
        }
        // A version number, or a hash prefix long enough not to name the wrong proposal.
        let by_version = which.parse::<u64>().ok().filter(|_| which.len() < 8);
        if by_version.is_none() && which.len() < 8 {
            return Err(GovernanceError::Refused(format!(
                "name a proposal by its version, or by at least 8 characters of its hash (not {which:?})"
            )));
        }
        let mut proposal = {
            let chain = self.inner.chain.lock().await;
            let matching: Vec<&MultiSigned> = chain
                .proposals()
                .filter(|(h, p)| match by_version {
                    Some(v) => bloc::peek(p).is_ok_and(|c| c.version == v),
                    None => h.to_string().starts_with(which),
                })
                .map(|(_, p)| p)
                .collect();
            let one = match matching.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(GovernanceError::NotFound(format!(
                        "no open proposal {which}; see `comity bloc proposals`"
                    )));
                }
                _ => {
                    return Err(GovernanceError::Refused(format!(
                        "{} proposals are open for {which}; name one by its hash",
                        matching.len()
                    )));
                }
            };
            let hash = config_hash(&one);
            if let Some((version, other)) =
                chain.signed_other(&self.inner.identity.public_key(), &hash)
            {
                return Err(GovernanceError::Refused(format!(
                    "this member already signed another proposal for version {version} ({other}); a member signs one proposal per version"
                )));
            }
            one
        };
        // Only what this node's clock can vouch for: a proposal issued in the future would
        // hold back every retirement time after it.
        let claimed = bloc::peek(&proposal)?;
        let now = self.now();
        if claimed.issued_at.as_millis() > now.as_millis() + 3_600_000 {
            return Err(GovernanceError::Refused(format!(
                "the proposal is issued at {}, in the future of this node's clock ({now}); it is not signed",
                claimed.issued_at
            )));
        }
        proposal.add_signature(&self.inner.identity.signing_key());
        let hash = config_hash(&proposal);
        self.vote(&proposal, officer, "signed").await?;
        match self.proposal(&hash).await {
            Some(view) => Ok(view),
            None => self.applied_view(&hash).await,
        }
    }

    /// Offers a configuration this node's officer made or signed, records the vote, and
    /// announces it.
    async fn vote(
        &self,
        signed: &MultiSigned,
        officer: &str,
        action: &str,
    ) -> Result<(), GovernanceError> {
        let hash = config_hash(signed);
        let version = bloc::peek(signed)?.version;
        match self.offer(signed, "this node").await {
            Offered::Refused(e) => return Err(GovernanceError::Bloc(e)),
            Offered::Fork { .. } | Offered::Current | Offered::Early { .. } => {
                return Err(GovernanceError::Refused(format!(
                    "version {version} is not the next version of this node's chain"
                )));
            }
            Offered::Applied(_) | Offered::Proposal { .. } => {}
        }
        let mut batch = Batch::new();
        crate::audit::record(
            &mut batch,
            crate::audit::AuditWhat::BlocVote {
                officer: officer.to_owned(),
                version,
                hash,
                action: action.to_owned(),
            },
        );
        self.inner.store.commit(batch).await?;
        info!(%officer, version, %hash, action, "bloc configuration vote");
        if let Some(network) = self.inner.network.get() {
            network.publish_governance(signed.to_bytes()).await;
        }
        Ok(())
    }

    /// A version that applied, as the proposal it was: who signed, how many were needed and
    /// what it changed.
    async fn applied_view(&self, hash: &Hash32) -> Result<ProposalView, GovernanceError> {
        let chain = self.inner.chain.lock().await;
        let v = chain
            .versions()
            .iter()
            .rev()
            .find(|v| v.hash == *hash)
            .ok_or_else(|| GovernanceError::NotFound("the proposal is gone".into()))?;
        let previous = v
            .config
            .version
            .checked_sub(1)
            .and_then(|p| chain.version(p));
        Ok(ProposalView {
            version: v.config.version,
            hash: v.hash,
            signed_by: v.signers.clone(),
            needed: previous.map_or(v.signers.len(), |p| p.config.required_signatures()),
            applied: true,
            changes: previous.map_or_else(Vec::new, |p| bloc::diff(&p.config, &v.config)),
        })
    }

    async fn proposal(&self, hash: &Hash32) -> Option<ProposalView> {
        self.proposals().await.into_iter().find(|p| p.hash == *hash)
    }

    /// Open proposals, with who signed and what they change.
    pub async fn proposals(&self) -> Vec<ProposalView> {
        let chain = self.inner.chain.lock().await;
        let Some(head) = chain.head() else {
            return Vec::new();
        };
        chain
            .proposals()
            .filter_map(|(hash, p)| {
                let config = bloc::peek(p).ok()?;
                let signed_by = bloc::count_signers(&head.config, p).unwrap_or_default();
                Some(ProposalView {
                    version: config.version,
                    hash: *hash,
                    signed_by,
                    needed: head.config.required_signatures(),
                    applied: false,
                    changes: bloc::diff(&head.config, &config),
                })
            })
            .collect()
    }

    /// The chain, genesis first.
    pub async fn history(&self) -> Vec<Verified> {
        self.inner.chain.lock().await.versions().to_vec()
    }

    pub async fn version(&self, n: u64) -> Option<Verified> {
        self.inner.chain.lock().await.version(n).cloned()
    }

    pub async fn status(&self) -> BlocStatus {
        let chain = self.inner.chain.lock().await;
        let head = chain.head();
        let now = self.now();
        let peers = self.inner.peers.lock().expect("peers lock").clone();
        BlocStatus {
            bloc: self.roster().bloc().to_owned(),
            anchor: *chain.anchor(),
            version: head.map(|h| h.config.version),
            hash: head.map(|h| h.hash),
            issued_at: head.map(|h| h.config.issued_at),
            expires_at: head.map(|h| h.config.expires_at),
            days_left: head.map(|h| h.config.days_left(now)),
            expired: head.is_some_and(|h| h.config.is_expired(now)),
            expiring_soon: head
                .is_some_and(|h| h.config.days_left(now) < i64::from(h.config.rules.warn_days)),
            threshold: head.map(|h| h.config.rules.threshold.to_string()),
            needed: head.map(|h| h.config.required_signatures()),
            signed_by: head.map(|h| h.signers.clone()).unwrap_or_default(),
            members: head
                .map(|h| {
                    h.config
                        .members
                        .iter()
                        .map(|m| MemberView {
                            jurisdiction: m.jurisdiction.clone(),
                            name: m.name.clone(),
                            admitted: m.is_admitted(),
                            left: m.left,
                            signing_key: m.current_key().copied(),
                            transport_key: m.transport_key,
                            keys: m
                                .signing_keys
                                .iter()
                                .map(|k| KeyView {
                                    key: k.key,
                                    introduced: k.introduced,
                                    retired: k.retired.map(|c| c.version),
                                    revoked: k.revoked.map(|c| c.version),
                                })
                                .collect(),
                            head: peers.get(&m.jurisdiction).cloned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            proposals: chain.proposals().count(),
            forks: chain
                .forks()
                .iter()
                .map(|(v, h, _)| format!("version {v}: another validly signed configuration {h}"))
                .collect(),
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

/// Every signing key `jurisdiction` has had, oldest first, as the newest configuration in the
/// store records them (read-only use: `comity audit verify`).
pub fn own_keys(
    store: &Store,
    jurisdiction: &Jurisdiction,
) -> Result<Vec<ed25519_dalek::VerifyingKey>, GovernanceError> {
    let Some((_, bytes)) = store.scan_prefix(Cf::Bloc, b"v")?.pop() else {
        return Ok(Vec::new());
    };
    let config = bloc::peek(&decode(&bytes)?)?;
    Ok(config
        .member(jurisdiction)
        .map(|m| {
            m.signing_keys
                .iter()
                .filter_map(|k| k.key.verifying_key().ok())
                .collect()
        })
        .unwrap_or_default())
}

fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The bootstrap peers named in multiaddrs (`/p2p/PEERID`).
pub fn bootstrap_peers(addrs: &[Multiaddr]) -> Vec<(PeerId, Multiaddr)> {
    addrs
        .iter()
        .filter_map(|a| peer_in(a).map(|p| (p, a.clone())))
        .collect()
}

/// What `comity bloc propose` asks for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// `member.toml` texts of members to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// `member.toml` texts that replace members' cards (new addresses, sealing key, keys),
    /// each signed by the keys it names.
    #[serde(default)]
    pub update: Vec<String>,
    #[serde(default)]
    pub remove: Vec<Jurisdiction>,
    /// `signing`: rotate this node's signing key.
    #[serde(default)]
    pub rotate_key: Option<String>,
    #[serde(default)]
    pub revoke: Vec<(Jurisdiction, comity_protocol::PublicKey)>,
    #[serde(default)]
    pub set: Vec<(String, String)>,
    #[serde(default)]
    pub renew: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProposalView {
    pub version: u64,
    pub hash: Hash32,
    pub signed_by: Vec<Jurisdiction>,
    pub needed: usize,
    pub applied: bool,
    pub changes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyView {
    pub key: comity_protocol::PublicKey,
    pub introduced: u64,
    pub retired: Option<u64>,
    pub revoked: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberView {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub admitted: bool,
    pub left: Option<u64>,
    pub signing_key: Option<comity_protocol::PublicKey>,
    pub transport_key: comity_protocol::PublicKey,
    pub keys: Vec<KeyView>,
    /// The version and hash this member last said it holds.
    pub head: Option<PeerHead>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlocStatus {
    pub bloc: String,
    pub anchor: Hash32,
    pub version: Option<u64>,
    pub hash: Option<Hash32>,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub days_left: Option<i64>,
    pub expired: bool,
    pub expiring_soon: bool,
    pub threshold: Option<String>,
    pub needed: Option<usize>,
    pub signed_by: Vec<Jurisdiction>,
    pub members: Vec<MemberView>,
    pub proposals: usize,
    pub forks: Vec<String>,
}

/// One version as `comity bloc history` and `show` give it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionView {
    pub version: u64,
    pub hash: Hash32,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub signed_by: Vec<Jurisdiction>,
    pub changes: Vec<String>,
    pub config: Option<BlocConfig>,
}

impl VersionView {
    pub fn of(v: &Verified, previous: Option<&Verified>, with_config: bool) -> Self {
        Self {
            version: v.config.version,
            hash: v.hash,
            issued_at: v.config.issued_at,
            expires_at: v.config.expires_at,
            signed_by: v.signers.clone(),
            changes: previous.map_or_else(
                || vec!["genesis".to_owned()],
                |p| bloc::diff(&p.config, &v.config),
            ),
            config: with_config.then(|| v.config.clone()),
        }
    }
}
