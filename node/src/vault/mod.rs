//! Encryption at rest: one data key per case, wrapped by the node's master key, both kept
//! outside RocksDB. Case content (requests, events, queued pushes) is sealed with its case's key
//! (XChaCha20-Poly1305) before it reaches the store, so neither the SST files nor the WAL ever
//! hold it in clear. Deleting a case's key file (crypto-shredding) makes that content
//! unreadable for good, even with the master key: the key never was in RocksDB.
//!
//! Keys live in one file of fixed-size slots (`keys/slots`), each a case key wrapped by the
//! master key with the slot's id as authenticated data. A background thread appends spare slots
//! in batches, one `fdatasync` per batch, before they are handed out in order: a new case costs
//! no file creation and no sync. Shredding overwrites the slot with zeros and syncs it, so the
//! key's bytes are gone from the file (a deleted file would leave them in free blocks). Slots
//! are never reused: a shredded slot reads as shredded for good. A case's record names its
//! slot (`s` and the slot number); slots past the highest one in use are spares.
//!
//! Stores made before the slot file keep one file per key (`keys/<id>.key`); those keys open
//! and shred as before, and no new one is made.

use std::collections::HashMap;
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
    /// The slot file, and how many slots it holds.
    slots: std::fs::File,
    slot_count: Mutex<u64>,
    /// The same count, for readers: they never wait on an appender's sync.
    readable: std::sync::atomic::AtomicU64,
    /// Durable slots no case uses yet, handed out lowest first.
    spare: Mutex<std::collections::VecDeque<u64>>,
    /// Wakes the key thread: the spares ran low, or the vault is dropped.
    low: std::sync::Condvar,
    stop: std::sync::atomic::AtomicBool,
}

/// A slot: a state byte (1: a key; 0: shredded or never written), the nonce, the wrapped key
/// and its tag, padded.
const SLOT: usize = 80;
const SLOT_KEY: u8 = 1;

fn slot_id(index: u64) -> String {
    format!("s{index}")
}

/// The slot an id names, if it names one (older ids name key files).
fn slot_of(id: &str) -> Option<u64> {
    id.strip_prefix('s')?.parse().ok()
}

/// Spare keys kept ready, and how many are made at once when the pool runs low.
const POOL_LOW: usize = 512;
const POOL_BATCH: usize = 256;
/// The first pause of the key thread after a failure, and the longest (it doubles between).
const POOL_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
const POOL_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(30);

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
        // Under the lock, so that the thread cannot miss it between its check and its wait.
        let _spare = self.shared.spare.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.low.notify_all();
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
        Self::remove_unfinished_files(dir)?;
        let slots_path = dir.join("slots");
        use std::os::unix::fs::OpenOptionsExt;
        let slots = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&slots_path)
            .map_err(io(&slots_path))?;
        let len = slots.metadata().map_err(io(&slots_path))?.len();
        // A batch a crash cut short may end in part of a slot: the tail goes.
        let mut count = len / SLOT as u64;
        if len % SLOT as u64 != 0 {
            slots
                .set_len(count * SLOT as u64)
                .map_err(io(&slots_path))?;
        }
        // Slots a case names but the file lacks (a key directory restored from an older
        // backup than the store): the file grows to cover them, as shredded slots, so that no
        // id a case names is ever handed out again.
        let highest = in_use.iter().filter_map(|id| slot_of(id)).max();
        if let Some(highest) = highest
            && highest >= count
        {
            count = highest + 1;
            slots
                .set_len(count * SLOT as u64)
                .map_err(io(&slots_path))?;
            slots.sync_data().map_err(io(&slots_path))?;
        }
        let shared = std::sync::Arc::new(Shared {
            master: XChaCha20Poly1305::new(&master.into()),
            dir: dir.to_owned(),
            keys: Mutex::new(HashMap::new()),
            slots,
            slot_count: Mutex::new(count),
            readable: std::sync::atomic::AtomicU64::new(count),
            // Slots past the highest in use, left from the last run, are not handed out: a
            // crash between a batch's write and its sync may have left them torn. Fresh
            // batches follow them.
            spare: Mutex::new(std::collections::VecDeque::new()),
            low: std::sync::Condvar::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
        });
        let pool = shared.clone();
        std::thread::Builder::new()
            .name("vault-keys".into())
            .spawn(move || {
                // It sleeps until the spares run low (an idle node wakes it never); on a full
                // disk (or any failure) it backs off, doubling up to 30 s, and says so once
                // per streak, not fifty times a second.
                let mut pause = POOL_PAUSE;
                while !pool.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let low = {
                        let spare = pool.spare.lock().expect("vault lock");
                        let spare = pool
                            .low
                            .wait_while(spare, |s| {
                                s.len() >= POOL_LOW
                                    && !pool.stop.load(std::sync::atomic::Ordering::Relaxed)
                            })
                            .expect("vault lock");
                        spare.len() < POOL_LOW
                    };
                    match low.then(|| pool.refill(POOL_BATCH)) {
                        Some(Err(e)) => {
                            if pause == POOL_PAUSE {
                                tracing::warn!(error = %e, "could not make spare case keys; new cases make theirs one by one, and this retries with backoff");
                            }
                            pause = (pause * 2).min(POOL_MAX_PAUSE);
                        }
                        Some(Ok(())) if pause != POOL_PAUSE => {
                            tracing::info!("spare case keys made again");
                            pause = POOL_PAUSE;
                        }
                        _ => {}
                    }
                    if pause != POOL_PAUSE {
                        std::thread::sleep(pause);
                    }
                }
            })
            .map_err(io(dir))?;
        Ok(Self { shared })
    }

    /// A key for a new case: a spare if one is ready, else made now. Its id goes into the
    /// case's record, in the same batch as anything sealed with it.
    pub fn new_key(&self) -> Result<String, VaultError> {
        loop {
            let taken = {
                let mut spare = self.shared.spare.lock().expect("vault lock");
                let taken = spare.pop_front();
                if spare.len() < POOL_LOW {
                    self.shared.low.notify_one();
                }
                taken
            };
            if let Some(index) = taken {
                return Ok(slot_id(index));
            }
            // The pool ran dry: make a slot now (one sync).
            self.shared.append_slots(1)?;
        }
    }

    /// Whether the key `key_id` is held (not shredded, not missing).
    pub fn holds(&self, key_id: &str) -> bool {
        self.shared.key(key_id, &CaseId::from_parts(0, 0)).is_ok()
    }

    /// Deletes key files that a crash left unfinished (`.tmp`): they were never handed out.
    /// Whole key files of an older store are kept, named by a case or not: a case record that
    /// cannot be read must not cost its key.
    fn remove_unfinished_files(dir: &Path) -> Result<(), VaultError> {
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(".tmp")) {
                std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(())
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
    /// Makes `n` durable slots and adds them to the spares.
    fn refill(&self, n: usize) -> Result<(), VaultError> {
        self.append_slots(n)
    }

    /// Appends `n` slots, each a new wrapped key, and syncs them: written in one write, made
    /// durable by one `fdatasync`, before they join the spares (in slot order, so that slots
    /// are handed out lowest first and those past the highest in use are the spares).
    fn append_slots(&self, n: usize) -> Result<(), VaultError> {
        use std::os::unix::fs::FileExt;
        let path = self.dir.join("slots");
        // One appender at a time: the count is taken and advanced under its lock.
        let mut count = self.slot_count.lock().expect("vault lock");
        let start = *count;
        let mut bytes = Vec::with_capacity(n * SLOT);
        for index in start..start + n as u64 {
            let wrapped = self.wrap(&slot_id(index), &rand::random())?;
            bytes.push(SLOT_KEY);
            bytes.extend_from_slice(&wrapped);
            bytes.resize(bytes.len() + SLOT - 1 - wrapped.len(), 0);
        }
        self.slots
            .write_all_at(&bytes, start * SLOT as u64)
            .map_err(io(&path))?;
        self.slots.sync_data().map_err(io(&path))?;
        *count = start + n as u64;
        self.readable
            .store(*count, std::sync::atomic::Ordering::Release);
        self.spare
            .lock()
            .expect("vault lock")
            .extend(start..start + n as u64);
        Ok(())
    }

    /// The nonce and the master key's encryption of `key`, bound to its id.
    fn wrap(&self, id: &str, key: &[u8; 32]) -> Result<Vec<u8>, VaultError> {
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
        let mut out = nonce.to_vec();
        out.extend_from_slice(&wrapped);
        Ok(out)
    }

    /// A slot's wrapped key; `None` once shredded (or never written).
    fn read_slot(&self, index: u64) -> Result<Option<Vec<u8>>, VaultError> {
        use std::os::unix::fs::FileExt;
        if index >= self.readable.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(None);
        }
        let mut slot = [0u8; SLOT];
        let path = self.dir.join("slots");
        self.slots
            .read_exact_at(&mut slot, index * SLOT as u64)
            .map_err(io(&path))?;
        Ok((slot[0] == SLOT_KEY).then(|| slot[1..1 + 24 + 48].to_vec()))
    }

    fn key_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// A key from the cache or its file.
    fn key(&self, id: &str, case: &CaseId) -> Result<[u8; 32], VaultError> {
        if let Some(key) = self.keys.lock().expect("vault lock").get(id) {
            return Ok(*key);
        }
        let wrapped = match slot_of(id) {
            Some(index) => self.read_slot(index)?,
            None => {
                let path = self.key_path(id);
                match std::fs::read(&path) {
                    Ok(wrapped) => Some(wrapped),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(io(&path)(e)),
                }
            }
        };
        let key = match wrapped {
            Some(wrapped) => self.unwrap_key(id, case, &wrapped)?,
            None => return Err(VaultError::Shredded(*case)),
        };
        self.keys
            .lock()
            .expect("vault lock")
            .insert(id.to_owned(), key);
        Ok(key)
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
        if let Some(index) = slot_of(id) {
            use std::os::unix::fs::FileExt;
            if index >= self.readable.load(std::sync::atomic::Ordering::Acquire) {
                return Ok(());
            }
            let path = self.dir.join("slots");
            self.slots
                .write_all_at(&[0u8; SLOT], index * SLOT as u64)
                .map_err(io(&path))?;
            return self.slots.sync_data().map_err(io(&path));
        }
        // A key file of an older store: overwritten in place and synced before it is
        // unlinked, so that its blocks do not keep the wrapped key until reused.
        let path = self.key_path(id);
        let file = match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&path)(e)),
        };
        {
            use std::os::unix::fs::FileExt;
            let len = file.metadata().map_err(io(&path))?.len();
            file.write_all_at(&vec![0u8; len as usize], 0)
                .map_err(io(&path))?;
            file.sync_data().map_err(io(&path))?;
        }
        drop(file);
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

    #[test]
    fn keys_live_in_slots_that_shredding_zeroes_and_older_key_files_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("master.key");
        let keys = dir.path().join("keys");
        let case = CaseId::new();
        let vault = Vault::open(&master, &keys, &HashSet::new()).unwrap();
        let ids: Vec<String> = (0..3).map(|_| vault.new_key().unwrap()).collect();
        assert_eq!(ids, ["s0", "s1", "s2"], "handed out lowest first");
        let sealed = vault.seal(&ids[1], &case, b"content").unwrap();
        let file = std::fs::read(keys.join("slots")).unwrap();
        assert_eq!(file.len() % SLOT, 0);
        assert_eq!(file[SLOT], SLOT_KEY);
        drop(vault);

        // An older store's key file, in use, and one no readable case names.
        let old_id = "00112233445566778899aabbccddeeff";
        let spare_id = "ffeeddccbbaa99887766554433221100";
        let reopened = Vault::open(&master, &keys, &HashSet::new()).unwrap();
        for id in [old_id, spare_id] {
            let wrapped = reopened.shared.wrap(id, &[7; 32]).unwrap();
            std::fs::write(keys.join(format!("{id}.key")), wrapped).unwrap();
        }
        drop(reopened);
        let in_use: HashSet<String> = [ids[1].clone(), old_id.to_owned()].into();
        let vault = Vault::open(&master, &keys, &in_use).unwrap();
        assert!(
            keys.join(format!("{spare_id}.key")).exists(),
            "key files are never deleted but by a shred"
        );
        assert!(vault.holds(old_id));
        let old_sealed = vault.seal(old_id, &case, b"old").unwrap();
        // Slots of the last run are never handed out again (they may be torn): new ones follow.
        let before = std::fs::metadata(keys.join("slots")).unwrap().len() / SLOT as u64;
        let next = slot_of(&vault.new_key().unwrap()).unwrap();
        assert!(next >= before, "{next} < {before}");
        assert_eq!(vault.unseal(&ids[1], &case, &sealed).unwrap(), b"content");

        // A second name for the old key file shows what its blocks hold after the shred.
        let witness = dir.path().join("witness-link");
        std::fs::hard_link(keys.join(format!("{old_id}.key")), &witness).unwrap();
        vault.shred(&ids[1]).unwrap();
        vault.shred(old_id).unwrap();
        assert!(!vault.holds(&ids[1]) && !vault.holds(old_id));
        assert!(!keys.join(format!("{old_id}.key")).exists());
        let left = std::fs::read(&witness).unwrap();
        assert!(
            !left.is_empty() && left.iter().all(|b| *b == 0),
            "an old key file is overwritten before it is unlinked"
        );
        assert!(matches!(
            vault.unseal(old_id, &case, &old_sealed),
            Err(VaultError::Shredded(_))
        ));
        let file = std::fs::read(keys.join("slots")).unwrap();
        assert!(
            file[SLOT..2 * SLOT].iter().all(|b| *b == 0),
            "the key's bytes are gone"
        );
        drop(vault);
        let vault = Vault::open(&master, &keys, &in_use).unwrap();
        assert!(matches!(
            vault.unseal(&ids[1], &case, &sealed),
            Err(VaultError::Shredded(_))
        ));
        // A batch cut short by a crash: the partial slot is dropped at the next open.
        drop(vault);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(keys.join("slots"))
            .unwrap();
        std::io::Write::write_all(&mut file, &[1, 2, 3]).unwrap();
        let vault = Vault::open(&master, &keys, &in_use).unwrap();
        assert_eq!(
            std::fs::metadata(keys.join("slots")).unwrap().len() % SLOT as u64,
            0
        );
        assert!(vault.new_key().unwrap().starts_with('s'));
    }

    #[test]
    fn a_key_directory_older_than_the_store_never_hands_out_an_id_a_case_names() {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("master.key");
        let keys = dir.path().join("keys");
        drop(Vault::open(&master, &keys, &HashSet::new()).unwrap());
        // A case names slot 100000; the slot file is far shorter (restored from an old backup).
        let in_use: HashSet<String> = ["s100000".to_owned()].into();
        let vault = Vault::open(&master, &keys, &in_use).unwrap();
        let case = CaseId::new();
        assert!(!vault.holds("s100000"), "its key is lost, and says so");
        let fresh = slot_of(&vault.new_key().unwrap()).unwrap();
        assert!(fresh > 100_000, "{fresh}");
        let sealed = vault.seal(&slot_id(fresh), &case, b"x").unwrap();
        vault.shred("s100000").unwrap();
        assert_eq!(vault.unseal(&slot_id(fresh), &case, &sealed).unwrap(), b"x");
    }
}
