//! The roster: this node's view of the bloc's current configuration — which jurisdictions are
//! admitted, under which PeerId, at which addresses, signing with which key.
//!
//! A roster is derived from a verified [`BlocConfig`] (see `crate::bloc`) and replaced as a
//! whole, live, when a new version applies: holders of a [`Membership`] see the change at
//! once. Members that left or whose key was revoked stay in the configuration (their old
//! signatures still verify) but are not admitted here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use comity_protocol::bloc::{BlocConfig, KeyNote, KeyRefusal, Verified};
use comity_protocol::{Hash32, Jurisdiction, PublicKey, Timestamp};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

pub use comity_protocol::bloc::{Deadlines, EvidenceLimits, Settings};

/// The settings of a bloc that has no configuration yet.
static DEFAULT_SETTINGS: std::sync::LazyLock<Settings> =
    std::sync::LazyLock::new(Settings::default);

/// One admitted member, as the current configuration gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
    /// The X25519 key evidence for this member is sealed to. Without it, no evidence can be
    /// delivered to this member.
    pub sealing_key: Option<comity_protocol::evidence::SealingKey>,
}

/// The current configuration with lookups by PeerId and by jurisdiction.
#[derive(Clone, Debug)]
pub struct Roster {
    bloc: String,
    verified: Option<Arc<Verified>>,
    members: Vec<Member>,
    keys: Vec<PublicKey>,
    by_peer: HashMap<PeerId, usize>,
    by_jurisdiction: HashMap<Jurisdiction, usize>,
}

/// The PeerId of an Ed25519 transport key.
pub fn peer_of(key: &PublicKey) -> Option<PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(libp2p::identity::PublicKey::from(ed).to_peer_id())
}

impl Roster {
    /// A node that holds no configuration yet (it is joining): nobody is admitted.
    pub fn empty(bloc: &str) -> Self {
        Self {
            bloc: bloc.to_owned(),
            verified: None,
            members: Vec::new(),
            keys: Vec::new(),
            by_peer: HashMap::new(),
            by_jurisdiction: HashMap::new(),
        }
    }

    pub fn from_config(verified: Arc<Verified>) -> Self {
        let config = &verified.config;
        let mut roster = Self::empty(&config.bloc);
        for m in config.admitted() {
            let (Some(peer_id), Some(key)) = (peer_of(&m.transport_key), m.current_key()) else {
                continue;
            };
            let member = Member {
                jurisdiction: m.jurisdiction.clone(),
                name: m.name.clone(),
                peer_id,
                addresses: m.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                sealing_key: m.sealing_key,
            };
            let i = roster.members.len();
            roster.by_peer.insert(peer_id, i);
            roster.by_jurisdiction.insert(m.jurisdiction.clone(), i);
            roster.members.push(member);
            roster.keys.push(*key);
        }
        roster.verified = Some(verified);
        roster
    }

    pub fn bloc(&self) -> &str {
        &self.bloc
    }

    /// The verified configuration this roster comes from (`None` while joining).
    pub fn verified(&self) -> Option<&Verified> {
        self.verified.as_deref()
    }

    pub fn config(&self) -> Option<&BlocConfig> {
        self.verified.as_deref().map(|v| &v.config)
    }

    pub fn version(&self) -> u64 {
        self.config().map_or(0, |c| c.version)
    }

    pub fn hash(&self) -> Option<Hash32> {
        self.verified.as_deref().map(|v| v.hash)
    }

    pub fn evidence(&self) -> EvidenceLimits {
        self.config()
            .map_or_else(EvidenceLimits::default, |c| c.settings.evidence)
    }

    pub fn deadlines(&self) -> Deadlines {
        self.settings().deadlines
    }

    /// The bloc-wide settings: deadlines, instrument rules, evidence limits.
    pub fn settings(&self) -> &Settings {
        self.config().map_or(&DEFAULT_SETTINGS, |c| &c.settings)
    }

    /// Admitted members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// An admitted member by PeerId, with its current signing key.
    pub fn by_peer(&self, peer: &PeerId) -> Option<(&Member, &PublicKey)> {
        self.by_peer
            .get(peer)
            .map(|&i| (&self.members[i], &self.keys[i]))
    }

    /// An admitted member by jurisdiction, with its current signing key.
    pub fn by_jurisdiction(&self, j: &Jurisdiction) -> Option<(&Member, &PublicKey)> {
        self.by_jurisdiction
            .get(j)
            .map(|&i| (&self.members[i], &self.keys[i]))
    }

    /// Whether `key` may stand for `author` on a new object made at `made` (see
    /// [`BlocConfig::accepts`]).
    pub fn accepts(
        &self,
        author: &Jurisdiction,
        key: &PublicKey,
        made: Timestamp,
    ) -> Result<(), KeyRefusal> {
        match self.config() {
            Some(c) => c.accepts(author, key, made),
            None => Err(KeyRefusal::NotAMember(author.clone())),
        }
    }

    /// How `key` stands for `author` now, for an object already held; `None` when it was
    /// never the author's key.
    pub fn note(&self, author: &Jurisdiction, key: &PublicKey) -> Option<KeyNote> {
        self.config()?.note(author, key)
    }

    /// The key as a verifying key, if `key` may stand for `author` on a new object.
    pub fn verifying(
        &self,
        author: &Jurisdiction,
        key: &PublicKey,
        made: Timestamp,
    ) -> Option<ed25519_dalek::VerifyingKey> {
        self.accepts(author, key, made).ok()?;
        key.verifying_key().ok()
    }

    /// A message on the bloc's gossip topic from `peer`, as the member who sent it, that
    /// member's key and the envelope; `None` when the peer is not a member, its key is
    /// unusable or the bytes are not an envelope. The envelope is not yet opened.
    pub fn member_message(
        &self,
        peer: &PeerId,
        data: &[u8],
    ) -> Option<(
        &Member,
        ed25519_dalek::VerifyingKey,
        comity_protocol::SignedEnvelope,
    )> {
        let (member, key) = self.by_peer(peer)?;
        let key = key.verifying_key().ok()?;
        let envelope = comity_protocol::SignedEnvelope::from_bytes(
            data,
            comity_protocol::limits::MAX_RESPONSE_FRAME,
        )
        .ok()?;
        Some((member, key, envelope))
    }
}

/// The live roster: every holder sees a new configuration as soon as it applies.
#[derive(Clone, Debug)]
pub struct Membership(watch::Receiver<Arc<Roster>>);

impl Membership {
    pub fn new(roster: Roster) -> (watch::Sender<Arc<Roster>>, Self) {
        let (tx, rx) = watch::channel(Arc::new(roster));
        (tx, Self(rx))
    }

    /// A membership that never changes (tests).
    pub fn fixed(roster: Roster) -> Self {
        // A receiver keeps the last value after its sender is gone.
        Self::new(roster).1
    }

    /// The roster now.
    pub fn current(&self) -> Arc<Roster> {
        self.0.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn watch(&self) -> watch::Receiver<Arc<Roster>> {
        self.0.clone()
    }
}

/// The Ed25519 public key inlined in a PeerId, if it is an Ed25519 identity.
pub fn member_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    // Multihash code 0 is the identity hash: the digest is the protobuf-encoded public key.
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let ed = key.try_into_ed25519().ok()?;
    Some(PublicKey(ed.to_bytes()))
}

/// Writes `contents` to `path` readable by the owner only (keys, tokens).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_yields_the_transport_key() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let ed = key.clone().try_into_ed25519().unwrap();
        let public = PublicKey(ed.public().to_bytes());
        assert_eq!(member_key(&key.public().to_peer_id()), Some(public));
        assert_eq!(peer_of(&public), Some(key.public().to_peer_id()));
    }
}
