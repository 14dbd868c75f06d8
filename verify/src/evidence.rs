//! `comity-verify bundle FILE --open-evidence DIR --sealing-key KEY`: opens the sealed evidence a
//! bundle carries, for whoever holds the requesting member's sealing key (a court the
//! requester hands it to). Every file is checked against the BLAKE3 hash in the sealed file
//! table of the signed manifest; the files appear only once all of them verified.

use std::fs::File;
use std::io::{BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use comity_protocol::bundle::{BundleHeader, PartKind};
use comity_protocol::evidence::{EvidenceManifest, Opener, file_name_problem, prologue};
use comity_protocol::{Hash32, SignedEnvelope, from_cbor, limits};

use crate::{Item, read_item};

/// Reads a sealing key file: 64 hex characters, as `comity init` writes it.
fn sealing_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the sealing key {}", path.display()))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| {
            format!(
                "{} is not a sealing key (64 hex characters)",
                path.display()
            )
        })
}

/// Opens every file of the bundle's package into `out` (made here; refused if it exists).
/// Call only on a bundle that verified.
pub fn open(bundle: &Path, key: &Path, out: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    if out.exists() {
        bail!("{} already exists; choose another directory", out.display());
    }
    let private = sealing_key(key)?;
    let mut reader = BufReader::with_capacity(1 << 20, File::open(bundle)?);
    let Item::Bytes(header) = read_item(&mut reader, limits::MAX_REQUEST_FRAME as u64)? else {
        bail!("not a case bundle");
    };
    let header: BundleHeader = from_cbor(
        &SignedEnvelope::from_bytes(&header, limits::MAX_REQUEST_FRAME)?.body,
        limits::MAX_REQUEST_FRAME,
    )?;
    let staging = out.with_extension("partial");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
    }
    let opened = (|| {
        let mut manifest: Option<EvidenceManifest> = None;
        let mut opener: Option<Opener> = None;
        let mut files = Vec::new();
        let mut current: Option<(usize, File, blake3::Hasher, u64)> = None;
        let mut chunk_index = 0u64;
        let mut next = 0usize;
        let mut plain = Vec::new();
        for part in &header.parts {
            let Item::Bytes(bytes) = read_item(&mut reader, part.len)? else {
                bail!("the bundle ends early");
            };
            match part.kind {
                PartKind::Manifest => {
                    let m: EvidenceManifest = from_cbor(
                        &SignedEnvelope::from_bytes(&bytes, bytes.len())?.body,
                        bytes.len(),
                    )?;
                    let o = Opener::new(
                        &private,
                        &m.handshake,
                        &prologue(&m.case_id, &m.from, &m.to),
                        m.chunk_size,
                    )
                    .context("this sealing key does not open the package (it is sealed to the requesting member's key)")?;
                    files = o.open_index(&m.sealed_index)?;
                    for f in &files {
                        if let Some(problem) = file_name_problem(&f.name) {
                            bail!("the file table names an unsafe file: {problem}");
                        }
                    }
                    manifest = Some(m);
                    opener = Some(o);
                }
                PartKind::Chunk => {
                    let o = opener.as_ref().context("a chunk before the manifest")?;
                    o.open_chunk(chunk_index, &bytes, &mut plain)?;
                    chunk_index += 1;
                    let mut rest = plain.as_slice();
                    while !rest.is_empty() {
                        if current.is_none() {
                            if next >= files.len() {
                                bail!("the package holds more bytes than its file table lists");
                            }
                            current = Some(create(&staging, &files, next)?);
                            next += 1;
                        }
                        let (n, file, hasher, written) = current.as_mut().expect("just made");
                        let take = (files[*n].size - *written).min(rest.len() as u64) as usize;
                        file.write_all(&rest[..take])?;
                        hasher.update(&rest[..take]);
                        *written += take as u64;
                        rest = &rest[take..];
                        if *written == files[*n].size {
                            let (n, file, hasher, _) = current.take().expect("just used");
                            finish(&files[n], file, hasher)?;
                        }
                    }
                }
                _ => {}
            }
        }
        if manifest.is_none() {
            bail!("the bundle carries no evidence manifest");
        }
        if chunk_index == 0 && files.iter().any(|f| f.size > 0) {
            bail!("the bundle carries no sealed chunks: export it with --with-evidence");
        }
        if let Some((n, ..)) = current {
            bail!(
                "{} is incomplete: the package ends inside it",
                files[n].name
            );
        }
        // Files of no bytes after the last byte (or a package of empty files).
        for n in next..files.len() {
            if files[n].size != 0 {
                bail!("{} is missing: the package ends before it", files[n].name);
            }
            let (_, file, hasher, _) = create(&staging, &files, n)?;
            finish(&files[n], file, hasher)?;
        }
        Ok(files.iter().map(|f| (f.name.clone(), f.size)).collect())
    })();
    match opened {
        Ok(files) => {
            std::fs::rename(&staging, out)?;
            Ok(files)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

type Open = (usize, File, blake3::Hasher, u64);

/// Creates file `n` of the file table in `dir`, owner-only.
fn create(
    dir: &Path,
    files: &[comity_protocol::evidence::FileEntry],
    n: usize,
) -> anyhow::Result<Open> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(&files[n].name))
        .with_context(|| format!("cannot create {}", files[n].name))?;
    Ok((n, file, blake3::Hasher::new(), 0))
}

fn finish(
    entry: &comity_protocol::evidence::FileEntry,
    file: File,
    hasher: blake3::Hasher,
) -> anyhow::Result<()> {
    file.sync_all()?;
    let hash = Hash32(*hasher.finalize().as_bytes());
    if hash != entry.blake3 {
        bail!(
            "{} does not match the sealed file table (BLAKE3 {hash}, expected {})",
            entry.name,
            entry.blake3
        );
    }
    Ok(())
}
