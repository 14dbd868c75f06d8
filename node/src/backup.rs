//! `comity backup` and `comity restore`: a node's whole state in one directory, with a
//! manifest of every file's size and BLAKE3 hash.
//!
//! A backup holds a consistent RocksDB checkpoint of the store (taken by the running node, or
//! by the CLI when the node is stopped), then the vault's wrapped case keys, the node's
//! transport, signing and sealing keys, its policy, genesis, admin TLS files and evidence
//! packages, and a `comity.toml` whose paths point inside the backup. The vault is copied
//! after the checkpoint: a key made in between is a spare, a key destroyed in between leaves a
//! case as purged as it is on the node.
//!
//! The master key that wraps the case keys is left out unless asked for, as the threat model
//! advises (never keep it beside a copy of `keys/`): the manifest records its fingerprint, and
//! `restore` checks the key it is given against it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use comity_protocol::{Jurisdiction, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The manifest's file name, at the top of a backup.
pub const MANIFEST: &str = "backup.json";
const FORMAT: u32 = 1;

/// Where each part goes inside a backup (and inside a restored data directory).
mod layout {
    pub const CONFIG: &str = "comity.toml";
    pub const STORE: &str = "store";
    pub const KEYS: &str = "keys";
    pub const TRANSPORT_KEY: &str = "node.key";
    pub const SIGNING_KEY: &str = "signing.key";
    pub const SEALING_KEY: &str = "sealing.key";
    pub const MASTER_KEY: &str = "master.key";
    pub const POLICY: &str = "policy.toml";
    pub const GENESIS: &str = "genesis.cbor";
    pub const EVIDENCE: &str = "evidence";
    pub const TLS_CERT: &str = "admin-tls/cert.pem";
    pub const TLS_KEY: &str = "admin-tls/key.pem";
}

/// What a backup holds: every file with its size and hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub jurisdiction: Jurisdiction,
    pub created_at: Timestamp,
    pub comity_version: String,
    /// Whether the checkpoint was taken by the running node (`true`) or from a stopped one.
    pub taken_live: bool,
    /// BLAKE3 of the master key file, whether or not the backup holds it.
    pub master_key_fingerprint: String,
    pub master_key_included: bool,
    /// Every file but the manifest, by path inside the backup, sorted.
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

/// How the store's checkpoint is taken: by the running node, or from the stopped node's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Live,
    Stopped,
}

/// Writes a backup of the node configured by `config` into `out`, which must not exist or be
/// empty. `checkpoint` writes the store's checkpoint into the directory it is given (which
/// must not exist). Returns the manifest written.
pub async fn backup<F, Fut>(
    config: &Config,
    out: &Path,
    include_master_key: bool,
    checkpoint: F,
) -> anyhow::Result<Manifest>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Taken>>,
{
    prepare_empty_dir(out)?;
    let taken = checkpoint(out.join(layout::STORE)).await?;
    // RocksDB makes the checkpoint's directory with the default mode; its files are hard
    // links to the store's own, left as they are.
    std::fs::set_permissions(
        out.join(layout::STORE),
        std::fs::Permissions::from_mode(0o700),
    )?;
    let copy = |from: PathBuf, to: &str| -> anyhow::Result<()> {
        copy_tree(&from, &out.join(to)).with_context(|| format!("backing up {}", from.display()))
    };
    // After the checkpoint: see the module's note.
    copy(config.keys_path(), layout::KEYS)?;
    copy(config.key_path(), layout::TRANSPORT_KEY)?;
    copy(config.signing_key_path(), layout::SIGNING_KEY)?;
    copy(config.sealing_key_path(), layout::SEALING_KEY)?;
    let master = std::fs::read(config.master_key_path()).with_context(|| {
        format!(
            "reading the master key {}",
            config.master_key_path().display()
        )
    })?;
    if include_master_key {
        copy(config.master_key_path(), layout::MASTER_KEY)?;
    }
    for (from, to) in [
        (config.policy_path(), layout::POLICY),
        (config.genesis_path(), layout::GENESIS),
        (config.evidence_path(), layout::EVIDENCE),
        // The first admin's token, where `comity init` wrote it beside the config.
        (config.base_dir.join("admin.token"), "admin.token"),
    ] {
        if from.exists() {
            copy(from, to)?;
        }
    }
    let mut inside = config.clone();
    if let (Some(cert), Some(key)) = (&config.admin.tls_cert, &config.admin.tls_key) {
        copy(config.resolve(cert), layout::TLS_CERT)?;
        copy(config.resolve(key), layout::TLS_KEY)?;
        inside.admin.tls_cert = Some(layout::TLS_CERT.into());
        inside.admin.tls_key = Some(layout::TLS_KEY.into());
    }
    inside.node.store_dir = layout::STORE.into();
    inside.node.keys_dir = layout::KEYS.into();
    inside.node.key_file = layout::TRANSPORT_KEY.into();
    inside.node.signing_key_file = layout::SIGNING_KEY.into();
    inside.node.sealing_key = layout::SEALING_KEY.into();
    inside.node.master_key = layout::MASTER_KEY.into();
    inside.node.policy = layout::POLICY.into();
    inside.node.evidence_dir = layout::EVIDENCE.into();
    inside.bloc.genesis = layout::GENESIS.into();
    write_private(
        &out.join(layout::CONFIG),
        inside.to_commented_toml().as_bytes(),
    )?;

    let manifest = Manifest {
        format: FORMAT,
        jurisdiction: config.node.jurisdiction.clone(),
        created_at: Timestamp::now(),
        comity_version: env!("CARGO_PKG_VERSION").into(),
        taken_live: taken == Taken::Live,
        master_key_fingerprint: blake3::hash(&master).to_hex().to_string(),
        master_key_included: include_master_key,
        files: hash_tree(out)?,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    write_private(&out.join(MANIFEST), &json)?;
    Ok(manifest)
}

/// Checks every file of the backup in `from` against its manifest: the problems, one per file
/// (empty when the backup is whole).
pub fn verify(from: &Path) -> anyhow::Result<(Manifest, Vec<String>)> {
    let text = std::fs::read(from.join(MANIFEST))
        .with_context(|| format!("{} is not a Comity backup (no {MANIFEST})", from.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is unreadable", from.join(MANIFEST).display()))?;
    ensure!(
        manifest.format == FORMAT,
        "backup format {} is not one this version reads ({FORMAT})",
        manifest.format
    );
    let found = hash_tree(from)?;
    let mut problems = Vec::new();
    for expected in &manifest.files {
        match found.iter().find(|f| f.path == expected.path) {
            None => problems.push(format!("{}: missing", expected.path)),
            Some(f) if f.bytes != expected.bytes => problems.push(format!(
                "{}: {} bytes, the manifest says {}",
                expected.path, f.bytes, expected.bytes
            )),
            Some(f) if f.blake3 != expected.blake3 => problems.push(format!(
                "{}: contents differ from the manifest",
                expected.path
            )),
            Some(_) => {}
        }
    }
    for f in &found {
        if f.path != MANIFEST && !manifest.files.iter().any(|e| e.path == f.path) {
            problems.push(format!("{}: not in the manifest", f.path));
        }
    }
    Ok((manifest, problems))
}

/// Restores the backup in `from` into `data_dir` (created if missing; it must hold no node).
/// `master_key` is the master key file, when the backup does not hold it. Returns the
/// manifest and the restored config's path.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    master_key: Option<&Path>,
) -> anyhow::Result<(Manifest, PathBuf)> {
    let (manifest, problems) = verify(from)?;
    if !problems.is_empty() {
        bail!(
            "the backup in {} is damaged; nothing was restored:\n  {}",
            from.display(),
            problems.join("\n  ")
        );
    }
    let master = match (manifest.master_key_included, master_key) {
        (true, _) => None,
        (false, Some(path)) => Some(path.to_owned()),
        (false, None) if data_dir.join(layout::MASTER_KEY).exists() => None,
        (false, None) => bail!(
            "this backup does not hold the master key (kept apart, as docs/threat-model.md advises): give it with --master-key FILE"
        ),
    };
    if let Some(path) = &master {
        check_master(path, &manifest)?;
    } else if !manifest.master_key_included {
        check_master(&data_dir.join(layout::MASTER_KEY), &manifest)?;
    }
    for part in [layout::STORE, layout::CONFIG, layout::KEYS] {
        let target = data_dir.join(part);
        let occupied = match std::fs::read_dir(&target) {
            Ok(mut entries) => entries.next().is_some(),
            Err(_) => target.exists(),
        };
        ensure!(
            !occupied,
            "{} already exists: restore into an empty data directory, or move it aside first",
            target.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    for entry in &manifest.files {
        let target = data_dir.join(&entry.path);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        copy_file(&from.join(&entry.path), &target)?;
    }
    if let Some(path) = master {
        copy_file(&path, &data_dir.join(layout::MASTER_KEY))?;
    }
    Ok((manifest, data_dir.join(layout::CONFIG)))
}

fn check_master(path: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the master key {}", path.display()))?;
    ensure!(
        blake3::hash(&bytes).to_hex().as_str() == manifest.master_key_fingerprint,
        "{} is not the master key this backup was made with (its fingerprint differs): without the right one no case content can be read",
        path.display()
    );
    Ok(())
}

/// Copies a checkpoint the running node took (beside its store) into the backup's `store/`.
pub fn copy_checkpoint(taken: &Path, store_dir: &Path) -> anyhow::Result<()> {
    copy_tree(taken, store_dir)
        .with_context(|| format!("copying the node's checkpoint {}", taken.display()))
}

fn prepare_empty_dir(dir: &Path) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        ensure!(
            entries.next().is_none(),
            "{} is not empty: back up into a new directory",
            dir.display()
        );
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Copies a file, or a directory and everything in it; files mode 0600, directories 0700.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if !meta.is_dir() {
        if let Some(parent) = to.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        return copy_file(from, to);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source =
        std::fs::File::open(from).with_context(|| format!("reading {}", from.display()))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("writing {}", to.display()))?;
    std::io::copy(&mut source, &mut target)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    target.sync_all()?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Every file under `root` but the manifest, with its size and hash, sorted by path.
fn hash_tree(root: &Path) -> anyhow::Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .expect("walked from the root")
                .to_string_lossy()
                .into_owned();
            if relative == MANIFEST {
                continue;
            }
            let mut hasher = blake3::Hasher::new();
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let bytes = std::io::copy(&mut file, &mut hasher)?;
            files.push(FileEntry {
                path: relative,
                bytes,
                blake3: hasher.finalize().to_hex().to_string(),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &Path) -> Config {
        let mut config = Config::new(
            "FR".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/4100".parse().unwrap(),
            "127.0.0.1:7800".parse().unwrap(),
        );
        config.base_dir = dir.to_owned();
        for (file, bytes) in [
            ("node.key", &b"transport"[..]),
            ("signing.key", b"signing"),
            ("sealing.key", b"sealing"),
            ("master.key", b"master"),
            ("policy.toml", b"# policy"),
        ] {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        std::fs::write(dir.join("keys/slots"), [7u8; 96]).unwrap();
        config
    }

    async fn fake_checkpoint(at: PathBuf) -> anyhow::Result<Taken> {
        std::fs::create_dir(&at)?;
        std::fs::write(at.join("000001.sst"), b"table")?;
        Ok(Taken::Stopped)
    }

    #[tokio::test]
    async fn a_backup_restores_whole_and_holds_the_master_key_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let config = node(dir.path());
        let out = dir.path().join("backup");
        let manifest = backup(&config, &out, false, fake_checkpoint).await.unwrap();
        assert!(!manifest.master_key_included);
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        for expected in ["comity.toml", "keys/slots", "node.key", "store/000001.sst"] {
            assert!(paths.contains(&expected), "{expected} missing: {paths:?}");
        }
        assert!(!paths.contains(&"master.key"));
        for (path, mode) in [
            ("", 0o700),
            ("store", 0o700),
            ("keys", 0o700),
            ("node.key", 0o600),
        ] {
            let meta = std::fs::metadata(out.join(path)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{path}");
        }

        // Without the master key: refused, then restored with it.
        let target = dir.path().join("restored");
        let err = restore(&out, &target, None).unwrap_err().to_string();
        assert!(err.contains("--master-key"), "{err}");
        let wrong = dir.path().join("wrong.key");
        std::fs::write(&wrong, b"not it").unwrap();
        let err = restore(&out, &target, Some(&wrong))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the master key"), "{err}");
        let (_, config_path) =
            restore(&out, &target, Some(&dir.path().join("master.key"))).unwrap();
        let restored = Config::load(&config_path).unwrap();
        assert_eq!(std::fs::read(restored.key_path()).unwrap(), b"transport");
        assert_eq!(
            std::fs::read(restored.master_key_path()).unwrap(),
            b"master"
        );
        assert_eq!(
            std::fs::read(restored.store_path().join("000001.sst")).unwrap(),
            b"table"
        );
        let meta = std::fs::metadata(restored.master_key_path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Never over a node.
        let err = restore(&out, &target, Some(&dir.path().join("master.key")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[tokio::test]
    async fn a_damaged_backup_is_named_file_by_file_and_nothing_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let config = node(dir.path());
        let out = dir.path().join("backup");
        backup(&config, &out, true, fake_checkpoint).await.unwrap();
        std::fs::write(out.join("keys/slots"), [8u8; 96]).unwrap();
        std::fs::remove_file(out.join("node.key")).unwrap();
        std::fs::write(out.join("stray"), b"x").unwrap();
        let (_, problems) = verify(&out).unwrap();
        assert_eq!(
            problems,
            vec![
                "keys/slots: contents differ from the manifest".to_owned(),
                "node.key: missing".to_owned(),
                "stray: not in the manifest".to_owned(),
            ]
        );
        let target = dir.path().join("restored");
        let err = restore(&out, &target, None).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("node.key"), "{err}");
        assert!(!target.exists());
        // Into a directory that is not empty: refused.
        let err = backup(&config, &out, false, fake_checkpoint)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not empty"), "{err}");
    }
}
