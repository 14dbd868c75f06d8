//! The node's keys: its transport identity (an Ed25519 libp2p key: its PeerId, used by Noise)
//! and its application signing key (Ed25519: events, receipts, checkpoints, its votes on the
//! bloc configuration). They are separate so that each can rotate on its own; the bloc
//! configuration says which keys are this member's. The signing key can change while the node
//! runs (a rotation applies live): every holder of a `NodeIdentity` signs with the new one.

use std::path::Path;
use std::sync::{Arc, RwLock};

use comity_protocol::PublicKey;
use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p::identity::Keypair;

/// File names `comity init` uses in a node directory.
pub const TRANSPORT_KEY_FILE: &str = "node.key";
pub const SIGNING_KEY_FILE: &str = "signing.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key {path} must be 32 bytes (an Ed25519 seed), found {len}")]
    Length { path: String, len: usize },
    #[error(
        "key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}` and consider the key exposed"
    )]
    Permissions { path: String, mode: u32 },
    #[error("cannot create key {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Arc<RwLock<Keypair>>,
    signing: Arc<RwLock<Arc<SigningKey>>>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .field("signing_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

fn transport_keypair(seed: [u8; 32]) -> Keypair {
    let mut secret = seed;
    let ed = libp2p::identity::ed25519::SecretKey::try_from_bytes(&mut secret)
        .expect("32 bytes is a valid ed25519 secret");
    Keypair::from(libp2p::identity::ed25519::Keypair::from(ed))
}

impl NodeIdentity {
    pub fn from_seeds(transport: [u8; 32], signing: [u8; 32]) -> Self {
        Self {
            keypair: Arc::new(RwLock::new(transport_keypair(transport))),
            signing: Arc::new(RwLock::new(Arc::new(SigningKey::from_bytes(&signing)))),
        }
    }

    /// Both keys from one seed (the signing seed is derived): benchmarks and unit tests.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = *blake3::keyed_hash(&seed, b"comity signing key").as_bytes();
        Self::from_seeds(seed, signing)
    }

    pub fn generate() -> Self {
        Self::from_seeds(rand::random(), rand::random())
    }

    /// Creates both key files (mode 0600) in `dir`; refuses to overwrite existing ones.
    pub fn create(dir: &Path) -> Result<Self, IdentityError> {
        let transport: [u8; 32] = rand::random();
        let signing: [u8; 32] = rand::random();
        create_key_file(&dir.join(TRANSPORT_KEY_FILE), &transport)?;
        create_key_file(&dir.join(SIGNING_KEY_FILE), &signing)?;
        Ok(Self::from_seeds(transport, signing))
    }

    /// Loads the transport key and the signing key.
    pub fn load(transport: &Path, signing: &Path) -> Result<Self, IdentityError> {
        Ok(Self::from_seeds(
            read_key_file(transport)?,
            read_key_file(signing)?,
        ))
    }

    /// Loads both keys from a node directory with the default file names.
    pub fn load_dir(dir: &Path) -> Result<Self, IdentityError> {
        Self::load(&dir.join(TRANSPORT_KEY_FILE), &dir.join(SIGNING_KEY_FILE))
    }

    /// The transport key now (a rotation replaces it; the network then starts again with it).
    pub fn keypair(&self) -> Keypair {
        self.keypair.read().expect("transport key lock").clone()
    }

    /// Replaces the transport key (a transport rotation this node proposed has applied).
    pub fn set_transport_key(&self, seed: [u8; 32]) {
        *self.keypair.write().expect("transport key lock") = transport_keypair(seed);
    }

    /// The signing key now (a rotation replaces it for every holder).
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.signing.read().expect("signing key lock").clone()
    }

    /// Replaces the signing key, live (a rotation this node proposed has applied).
    pub fn set_signing_key(&self, key: SigningKey) {
        *self.signing.write().expect("signing key lock") = Arc::new(key);
    }

    /// The transport key as an Ed25519 signing key (to sign this member's card).
    pub fn transport_signing_key(&self) -> SigningKey {
        let ed = self
            .keypair()
            .try_into_ed25519()
            .expect("the transport key is Ed25519");
        SigningKey::from_bytes(&ed.secret().as_ref().try_into().expect("32 bytes"))
    }

    pub fn peer_id(&self) -> PeerId {
        self.keypair().public().to_peer_id()
    }

    /// The signing key's public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing_key().verifying_key().to_bytes())
    }

    /// The transport key's public half.
    pub fn transport_key(&self) -> PublicKey {
        crate::roster::member_key(&self.peer_id()).expect("an Ed25519 PeerId")
    }
}

/// Writes a new 32-byte key file (mode 0600, synced); never overwrites.
pub fn create_key_file(path: &Path, seed: &[u8; 32]) -> Result<(), IdentityError> {
    crate::roster::write_private(path, seed).map_err(|source| IdentityError::Create {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a 32-byte key file, refusing one that others can read.
pub fn read_key_file(path: &Path) -> Result<[u8; 32], IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| IdentityError::Read {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Permissions { path: shown, mode });
    }
    let bytes = std::fs::read(path).map_err(|source| IdentityError::Read {
        path: shown.clone(),
        source,
    })?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::Length {
            path: shown,
            len: bytes.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_private_and_reload_to_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let created = NodeIdentity::create(dir.path()).unwrap();
        let loaded = NodeIdentity::load_dir(dir.path()).unwrap();
        assert_eq!(created.peer_id(), loaded.peer_id());
        assert_eq!(created.public_key(), loaded.public_key());
        assert_ne!(loaded.public_key(), loaded.transport_key(), "two keys");
        assert_eq!(
            crate::roster::member_key(&loaded.peer_id()),
            Some(loaded.transport_key())
        );
        assert_eq!(
            PublicKey::from(&loaded.transport_signing_key().verifying_key()),
            loaded.transport_key()
        );
        assert!(
            NodeIdentity::create(dir.path()).is_err(),
            "never overwrites a key"
        );
        let clone = loaded.clone();
        let next = SigningKey::from_bytes(&[7; 32]);
        loaded.set_signing_key(next.clone());
        assert_eq!(clone.public_key(), PublicKey::from(&next.verifying_key()));

        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(SIGNING_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeIdentity::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
