//! Encryption at rest: one data key per case, wrapped by the node's master key, both kept
//! outside RocksDB. Case content (requests, events, queued pushes) is sealed with its case's key
//! (XChaCha20-Poly1305) before it reaches the store, so neither the SST files nor the WAL ever
//! hold it in clear. Deleting a case's key file (crypto-shredding) makes that content
//! unreadable for good, even with the master key: the key never was in RocksDB.
//!
//! Key files are written durably (temporary file, fsync, rename, fsync of the directory)
//! before anything sealed with them is stored.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use comity_protocol::CaseId;

/// Format of sealed values: this byte, a 24-byte nonce, then ciphertext and tag.
const SEALED_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the content of case {0} was destroyed (its key is shredded)")]
    Shredded(CaseId),
    #[error("sealed content of case {0} does not open: corrupt, or sealed with another key")]
    Corrupt(CaseId),
    #[error("key store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key {path} must be 32 bytes, mode 0600; {problem}")]
    Master { path: PathBuf, problem: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VaultError + '_ {
    move |source| VaultError::Io {
        path: path.to_owned(),
        source,
    }
}

pub struct Vault {
    master: XChaCha20Poly1305,
    dir: PathBuf,
    keys: Mutex<HashMap<CaseId, [u8; 32]>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault: the master key file (created, mode 0600, if missing) and the directory
    /// of case keys.
    pub fn open(master_path: &Path, dir: &Path) -> Result<Self, VaultError> {
        use std::os::unix::fs::PermissionsExt;
        if !master_path.exists() {
            crate::roster::write_private(master_path, &rand::random::<[u8; 32]>())
                .map_err(io(master_path))?;
        }
        let mode = std::fs::metadata(master_path)
            .map_err(io(master_path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(VaultError::Master {
                path: master_path.to_owned(),
                problem: format!(
                    "it is readable by others (mode {:o}); run chmod 600",
                    mode & 0o777
                ),
            });
        }
        let bytes = std::fs::read(master_path).map_err(io(master_path))?;
        let master: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Master {
                path: master_path.to_owned(),
                problem: format!("it holds {} bytes", bytes.len()),
            })?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Self {
            master: XChaCha20Poly1305::new(&master.into()),
            dir: dir.to_owned(),
            keys: Mutex::new(HashMap::new()),
        })
    }

    fn key_path(&self, case: &CaseId) -> PathBuf {
        self.dir.join(format!("{case}.key"))
    }

    /// The case's key: from the cache, its file, or (with `create`) made and stored durably.
    fn key(&self, case: &CaseId, create: bool) -> Result<[u8; 32], VaultError> {
        if let Some(key) = self.keys.lock().expect("vault lock").get(case) {
            return Ok(*key);
        }
        let path = self.key_path(case);
        let key = match std::fs::read(&path) {
            Ok(wrapped) => self.unwrap_key(case, &wrapped)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key: [u8; 32] = rand::random();
                self.store_key(case, &key)?;
                key
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::Shredded(*case));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        self.keys.lock().expect("vault lock").insert(*case, key);
        Ok(key)
    }

    fn store_key(&self, case: &CaseId, key: &[u8; 32]) -> Result<(), VaultError> {
        let nonce: [u8; 24] = rand::random();
        let wrapped = self
            .master
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: case.to_string().as_bytes(),
                },
            )
            .map_err(|_| VaultError::Corrupt(*case))?;
        let path = self.key_path(case);
        let temporary = self.dir.join(format!(".{case}.key.new"));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)
                .map_err(io(&temporary))?;
            file.write_all(&nonce).map_err(io(&temporary))?;
            file.write_all(&wrapped).map_err(io(&temporary))?;
            file.sync_all().map_err(io(&temporary))?;
        }
        std::fs::rename(&temporary, &path).map_err(io(&path))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), VaultError> {
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    fn unwrap_key(&self, case: &CaseId, wrapped: &[u8]) -> Result<[u8; 32], VaultError> {
        if wrapped.len() < 24 {
            return Err(VaultError::Corrupt(*case));
        }
        let (nonce, ciphertext) = wrapped.split_at(24);
        let key = self
            .master
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: case.to_string().as_bytes(),
                },
            )
            .map_err(|_| VaultError::Corrupt(*case))?;
        key.as_slice()
            .try_into()
            .map_err(|_| VaultError::Corrupt(*case))
    }

    /// Seals `plaintext` with the case's key (made on first use).
    pub fn seal(&self, case: &CaseId, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let key = self.key(case, true)?;
        let cipher = XChaCha20Poly1305::new(&key.into());
        let nonce: [u8; 24] = rand::random();
        let aad = case.to_string();
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Corrupt(*case))?;
        let mut sealed = Vec::with_capacity(1 + 24 + ciphertext.len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens what `seal` sealed for this case.
    pub fn unseal(&self, case: &CaseId, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < 25 || sealed[0] != SEALED_V1 {
            return Err(VaultError::Corrupt(*case));
        }
        let key = self.key(case, false)?;
        let cipher = XChaCha20Poly1305::new(&key.into());
        let aad = case.to_string();
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Corrupt(*case))
    }

    /// Destroys the case's key: everything sealed with it is unreadable from now on.
    pub fn shred(&self, case: &CaseId) -> Result<(), VaultError> {
        self.keys.lock().expect("vault lock").remove(case);
        let path = self.key_path(case);
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_content_opens_until_shredded_and_never_after() {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("master.key");
        let case = CaseId::new();
        let sealed = {
            let vault = Vault::open(&master, &dir.path().join("keys")).unwrap();
            let sealed = vault.seal(&case, b"selector alice@example.org").unwrap();
            assert!(!sealed.windows(5).any(|w| w == b"alice"));
            assert_eq!(
                vault.unseal(&case, &sealed).unwrap(),
                b"selector alice@example.org"
            );
            sealed
        };
        // A fresh process with the same master key opens it; another case's key does not.
        let vault = Vault::open(&master, &dir.path().join("keys")).unwrap();
        assert_eq!(
            vault.unseal(&case, &sealed).unwrap(),
            b"selector alice@example.org"
        );
        vault.seal(&CaseId::new(), b"other").unwrap();
        assert!(matches!(
            vault.unseal(&CaseId::new(), &sealed),
            Err(VaultError::Shredded(_))
        ));
        vault.shred(&case).unwrap();
        assert!(matches!(
            vault.unseal(&case, &sealed),
            Err(VaultError::Shredded(_))
        ));
        let reopened = Vault::open(&master, &dir.path().join("keys")).unwrap();
        assert!(matches!(
            reopened.unseal(&case, &sealed),
            Err(VaultError::Shredded(_))
        ));
    }
}
