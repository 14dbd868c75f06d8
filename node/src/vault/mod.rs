//! Encryption at rest: one data key per case, wrapped by the node's master key, both kept
//! outside RocksDB. Case content (requests, events, queued pushes) is sealed with its case's key
//! (XChaCha20-Poly1305) before it reaches the store, so neither the SST files nor the WAL ever
//! hold it in clear. Deleting a case's key file (crypto-shredding) makes that content
//! unreadable for good, even with the master key: the key never was in RocksDB.
//!
//! Key files are written durably (fsync of each file, then of the directory) before they are
//! handed out: a background thread keeps a pool of spare keys ready, so that a new case costs
//! no fsync. A case's record names its key; key files no record names are spares.

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
    shared: std::sync::Arc<Shared>,
}

struct Shared {
    master: XChaCha20Poly1305,
    dir: PathBuf,
    keys: Mutex<HashMap<String, [u8; 32]>>,
    /// Durable key files no case uses yet.
    spare: Mutex<Vec<String>>,
    stop: std::sync::atomic::AtomicBool,
}

/// Spare keys kept ready, and how many are made at once when the pool runs low.
const POOL_LOW: usize = 512;
const POOL_BATCH: usize = 256;

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Vault {
    /// Makes the master key file (mode 0600) if it does not exist: `comity init` does, so that
    /// operators can back it up before the first case.
    pub fn create_master_key(path: &Path) -> Result<(), VaultError> {
        if !path.exists() {
            crate::roster::write_private(path, &rand::random::<[u8; 32]>()).map_err(io(path))?;
        }
        Ok(())
    }

    /// Opens the vault: the master key file (created, mode 0600, if missing) and the directory
    /// of keys. `in_use` are the key ids cases name; every other key file is a spare.
    pub fn open(
        master_path: &Path,
        dir: &Path,
        in_use: &std::collections::HashSet<String>,
    ) -> Result<Self, VaultError> {
        use std::os::unix::fs::PermissionsExt;
        Self::create_master_key(master_path)?;
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
        let mut spare = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                // A key a crash interrupted before it was whole: never handed out.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(id) = name.strip_suffix(".key") else {
                continue;
            };
            if !in_use.contains(id) {
                spare.push(id.to_owned());
            }
        }
        let shared = std::sync::Arc::new(Shared {
            master: XChaCha20Poly1305::new(&master.into()),
            dir: dir.to_owned(),
            keys: Mutex::new(HashMap::new()),
            spare: Mutex::new(spare),
            stop: std::sync::atomic::AtomicBool::new(false),
        });
        let pool = shared.clone();
        std::thread::Builder::new()
            .name("vault-keys".into())
            .spawn(move || {
                while !pool.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let low = pool.spare.lock().expect("vault lock").len() < POOL_LOW;
                    if low && let Err(e) = pool.refill(POOL_BATCH) {
                        tracing::warn!(error = %e, "could not make spare case keys");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
            .map_err(io(dir))?;
        Ok(Self { shared })
    }

    /// A key for a new case: a spare if one is ready, else made now. Its id goes into the
    /// case's record, in the same batch as anything sealed with it.
    pub fn new_key(&self) -> Result<String, VaultError> {
        if let Some(id) = self.shared.spare.lock().expect("vault lock").pop() {
            return Ok(id);
        }
        // The pool ran dry: make this one now (two fsyncs), for this caller alone.
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.shared.write_key(&id, &rand::random(), true)?;
        self.shared.sync_dir()?;
        Ok(id)
    }

    /// Seals `plaintext` of `case` with the key `key_id`.
    pub fn seal(
        &self,
        key_id: &str,
        case: &CaseId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.shared.seal(key_id, case, plaintext)
    }

    /// Opens what `seal` sealed.
    pub fn unseal(
        &self,
        key_id: &str,
        case: &CaseId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.shared.unseal(key_id, case, sealed)
    }

    /// Destroys a key: everything sealed with it is unreadable from now on.
    pub fn shred(&self, key_id: &str) -> Result<(), VaultError> {
        self.shared.shred(key_id)
    }
}

impl Shared {
    /// Makes `n` durable key files and adds them to the spares. The files are written without
    /// a sync each, then made durable together by one `syncfs`: one journal commit for the
    /// batch instead of one per key, which would compete with the store's own syncs.
    fn refill(&self, n: usize) -> Result<(), VaultError> {
        let mut made = Vec::with_capacity(n);
        for _ in 0..n {
            let id = hex::encode(rand::random::<[u8; 16]>());
            let key: [u8; 32] = rand::random();
            self.write_key(&id, &key, false)?;
            made.push(id);
        }
        let dir = std::fs::File::open(&self.dir).map_err(io(&self.dir))?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)).map_err(|e| VaultError::Io {
            path: self.dir.clone(),
            source: std::io::Error::from(e),
        })?;
        self.spare.lock().expect("vault lock").extend(made);
        Ok(())
    }

    fn key_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// A key from the cache or its file.
    fn key(&self, id: &str, case: &CaseId) -> Result<[u8; 32], VaultError> {
        if let Some(key) = self.keys.lock().expect("vault lock").get(id) {
            return Ok(*key);
        }
        let path = self.key_path(id);
        let key = match std::fs::read(&path) {
            Ok(wrapped) => self.unwrap_key(id, case, &wrapped)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::Shredded(*case));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        self.keys
            .lock()
            .expect("vault lock")
            .insert(id.to_owned(), key);
        Ok(key)
    }

    /// Writes a key file; with `sync`, durably on its own.
    fn write_key(&self, id: &str, key: &[u8; 32], sync: bool) -> Result<(), VaultError> {
        let nonce: [u8; 24] = rand::random();
        let wrapped = self
            .master
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("cannot wrap a key"),
            })?;
        // Written under a temporary name and renamed once synced: a file with a key's name is
        // always whole, whatever moment a crash picks.
        let temporary = self.dir.join(format!(".{id}.tmp"));
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io(&temporary))?;
        file.write_all(&nonce).map_err(io(&temporary))?;
        file.write_all(&wrapped).map_err(io(&temporary))?;
        if sync {
            file.sync_all().map_err(io(&temporary))?;
        }
        let path = self.key_path(id);
        std::fs::rename(&temporary, &path).map_err(io(&path))
    }

    fn sync_dir(&self) -> Result<(), VaultError> {
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    fn unwrap_key(&self, id: &str, case: &CaseId, wrapped: &[u8]) -> Result<[u8; 32], VaultError> {
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
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Corrupt(*case))?;
        key.as_slice()
            .try_into()
            .map_err(|_| VaultError::Corrupt(*case))
    }

    fn seal(&self, id: &str, case: &CaseId, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let key = self.key(id, case)?;
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

    fn unseal(&self, id: &str, case: &CaseId, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < 25 || sealed[0] != SEALED_V1 {
            return Err(VaultError::Corrupt(*case));
        }
        let key = self.key(id, case)?;
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

    fn shred(&self, id: &str) -> Result<(), VaultError> {
        self.keys.lock().expect("vault lock").remove(id);
        let path = self.key_path(id);
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
    use std::collections::HashSet;

    #[test]
    fn sealed_content_opens_until_shredded_and_never_after() {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("master.key");
        let keys = dir.path().join("keys");
        let case = CaseId::new();
        let (key_id, sealed) = {
            let vault = Vault::open(&master, &keys, &HashSet::new()).unwrap();
            let key_id = vault.new_key().unwrap();
            let sealed = vault
                .seal(&key_id, &case, b"selector alice@example.org")
                .unwrap();
            assert!(!sealed.windows(5).any(|w| w == b"alice"));
            assert_eq!(
                vault.unseal(&key_id, &case, &sealed).unwrap(),
                b"selector alice@example.org"
            );
            (key_id, sealed)
        };
        // A fresh process with the same master key opens it; the key in use is not a spare.
        let in_use: HashSet<String> = [key_id.clone()].into();
        let vault = Vault::open(&master, &keys, &in_use).unwrap();
        assert_eq!(
            vault.unseal(&key_id, &case, &sealed).unwrap(),
            b"selector alice@example.org"
        );
        for _ in 0..10 {
            assert_ne!(
                vault.new_key().unwrap(),
                key_id,
                "a key in use is never handed out again"
            );
        }
        // Another case id does not open it (the case is authenticated data).
        assert!(vault.unseal(&key_id, &CaseId::new(), &sealed).is_err());
        vault.shred(&key_id).unwrap();
        assert!(matches!(
            vault.unseal(&key_id, &case, &sealed),
            Err(VaultError::Shredded(_))
        ));
        let reopened = Vault::open(&master, &keys, &in_use).unwrap();
        assert!(matches!(
            reopened.unseal(&key_id, &case, &sealed),
            Err(VaultError::Shredded(_))
        ));
    }
}
