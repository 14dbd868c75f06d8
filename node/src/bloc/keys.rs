//! This node's own keys: a rotation's next key waits in a `*.next` file until the version
//! that introduces it applies here, and then replaces the current one.

use super::*;

impl Governance {
    /// The configuration must name this node's transport key and signing key. A rotation
    /// that applied while the node was down is completed here.
    pub(super) fn check_own_keys(&self) -> anyhow::Result<()> {
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
    pub(super) fn complete_transport_rotation(
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
    pub(super) fn complete_rotation(
        &self,
        key: &comity_protocol::PublicKey,
    ) -> anyhow::Result<bool> {
        let Some(seed) = take_pending_key(&self.inner.settings.signing_key, key)? else {
            return Ok(false);
        };
        self.inner
            .identity
            .set_signing_key(ed25519_dalek::SigningKey::from_bytes(&seed));
        info!(key = %key, "signing key rotated: this node now signs with its new key");
        Ok(true)
    }

    /// A key for this node's rotation of the key file `current`: the one already pending, or
    /// a new one (0600).
    pub(super) fn pending_key(
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
}

/// If the key pending beside the key file `current` is `key`, moves it over `current` (the old
/// secret is then gone) and returns its seed; `None` when no such key is pending.
pub(super) fn take_pending_key(
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
pub(super) fn sync_dir(path: &std::path::Path) {
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
