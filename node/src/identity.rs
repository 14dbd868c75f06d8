//! The node's Ed25519 identity: one key for its PeerId (Noise handshakes) and for the
//! application-level signatures on envelopes and receipts, so that a roster entry is all a
//! peer needs to check both. Signatures are domain-separated from libp2p's own use of the key.

use std::path::Path;

use comity_protocol::PublicKey;
use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p::identity::Keypair;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read node key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("node key {path} must be 32 bytes (an Ed25519 seed), found {len}")]
    Length { path: String, len: usize },
    #[error(
        "node key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}` and consider the key exposed"
    )]
    Permissions { path: String, mode: u32 },
    #[error("cannot create node key {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Keypair,
    signing: SigningKey,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let mut secret = seed;
        let ed = libp2p::identity::ed25519::SecretKey::try_from_bytes(&mut secret)
            .expect("32 bytes is a valid ed25519 secret");
        let keypair = Keypair::from(libp2p::identity::ed25519::Keypair::from(ed));
        Self { keypair, signing }
    }

    pub fn generate() -> Self {
        Self::from_seed(rand::random())
    }

    /// Creates a new key file (mode 0600); refuses to overwrite an existing one.
    pub fn create(path: &Path) -> Result<Self, IdentityError> {
        let identity = Self::generate();
        crate::roster::write_private(path, identity.signing.as_bytes()).map_err(|source| {
            IdentityError::Create {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(identity)
    }

    pub fn load(path: &Path) -> Result<Self, IdentityError> {
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
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::Length {
                path: shown,
                len: bytes.len(),
            })?;
        Ok(Self::from_seed(seed))
    }

    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_reloads_to_the_same_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let created = NodeIdentity::create(&path).unwrap();
        let loaded = NodeIdentity::load(&path).unwrap();
        assert_eq!(created.peer_id(), loaded.peer_id());
        assert_eq!(
            crate::roster::member_key(&loaded.peer_id()),
            Some(loaded.public_key())
        );
        assert!(
            NodeIdentity::create(&path).is_err(),
            "never overwrites a key"
        );

        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeIdentity::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
