//! Opening a received package for an authorised officer: the file table, then each file's
//! bytes, chunk by chunk. Every chunk is checked against the signed manifest and opened
//! (authenticated decryption) before any of its bytes leave; a damaged package stops the
//! stream and is recorded, so an officer never gets bytes that were not sealed by the sender.

use std::os::unix::fs::FileExt;

use comity_protocol::evidence::{self as wire, FileEntry, Opener};
use comity_protocol::{CaseId, Hash32, Jurisdiction};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Direction, Evidence, EvidenceError, PackageState};
use crate::cases::record::Role;

/// Plaintext pieces in flight to an officer.
const STREAM_QUEUE: usize = 4;

/// The contents of a received package, as an officer sees them.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageIndex {
    pub case_id: CaseId,
    pub root: Hash32,
    pub from: Jurisdiction,
    pub total_bytes: u64,
    pub files: Vec<FileEntry>,
}

/// One file's bytes as they are opened; an `Err` item ends the stream (the package is damaged).
#[derive(Debug)]
pub struct FileStream {
    pub entry: FileEntry,
    pub pieces: mpsc::Receiver<Result<Vec<u8>, String>>,
}

struct Opened {
    index: PackageIndex,
    opener: Opener,
    manifest: comity_protocol::evidence::EvidenceManifest,
}

impl Evidence {
    fn open_package(&self, case_id: &CaseId) -> Result<Opened, EvidenceError> {
        let record = self
            .record(case_id)?
            .filter(|r| r.direction == Direction::Incoming)
            .ok_or(EvidenceError::NotFound(*case_id))?;
        if record.state == PackageState::Announced {
            return Err(EvidenceError::Refused(format!(
                "evidence for case {case_id} is announced but its manifest has not arrived yet; `comity evidence status {case_id}` shows why"
            )));
        }
        if record.state != PackageState::Complete {
            let verified = self
                .inner
                .progress
                .lock()
                .expect("lock")
                .get(case_id)
                .map(|p| p.verified)
                .unwrap_or(0);
            return Err(EvidenceError::Incomplete {
                case: *case_id,
                verified,
                total: record.chunks,
            });
        }
        let case = self.case_for(case_id, Role::Requester)?;
        let (_, manifest) = self.manifest(&record, &case)?;
        let path = self.package_path(Direction::Incoming, case_id, false);
        let on_disk = std::fs::metadata(&path)
            .map_err(|e| {
                EvidenceError::Damaged(format!(
                    "the sealed package {} is missing: {e}",
                    path.display()
                ))
            })?
            .len();
        if on_disk != manifest.sealed_total() {
            return Err(EvidenceError::Damaged(format!(
                "the sealed package is {on_disk} bytes on disk, the manifest says {} (truncated or damaged at rest)",
                manifest.sealed_total()
            )));
        }
        let prologue = wire::prologue(&manifest.case_id, &manifest.from, &manifest.to);
        let opener = Opener::new(
            &self.inner.sealing_private,
            &manifest.handshake,
            &prologue,
            manifest.chunk_size,
        )
        .map_err(|e| EvidenceError::Damaged(e.to_string()))?;
        let files = opener
            .open_index(&manifest.sealed_index)
            .map_err(|e| EvidenceError::Damaged(e.to_string()))?;
        // The sender checked all this; a faulty or hostile one may not have, and these names
        // become files in an officer's directory.
        if let Some(problem) = files.iter().find_map(|f| wire::file_name_problem(&f.name)) {
            return Err(EvidenceError::Damaged(problem));
        }
        let mut names = std::collections::HashSet::new();
        if let Some(twice) = files.iter().find(|f| !names.insert(f.name.to_lowercase())) {
            return Err(EvidenceError::Damaged(format!(
                "the file table names {:?} twice",
                twice.name
            )));
        }
        if files.len() != manifest.file_count as usize {
            return Err(EvidenceError::Damaged(format!(
                "the file table lists {} files, the manifest says {}",
                files.len(),
                manifest.file_count
            )));
        }
        let sum = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.size));
        if sum != Some(manifest.total_bytes) {
            return Err(EvidenceError::Damaged(
                "the file sizes do not add up to the package size".into(),
            ));
        }
        Ok(Opened {
            index: PackageIndex {
                case_id: *case_id,
                root: record.root,
                from: record.counterparty,
                total_bytes: manifest.total_bytes,
                files,
            },
            opener,
            manifest,
        })
    }

    /// The file table of a received, complete package.
    pub fn index(&self, case_id: &CaseId) -> Result<PackageIndex, EvidenceError> {
        Ok(self.open_package(case_id)?.index)
    }

    /// Streams file `n` of a received package, opened and checked chunk by chunk.
    pub fn open_file(&self, case_id: &CaseId, n: usize) -> Result<FileStream, EvidenceError> {
        let opened = self.open_package(case_id)?;
        let files = &opened.index.files;
        let entry = files.get(n).cloned().ok_or_else(|| {
            EvidenceError::Refused(format!(
                "the package has {} files; there is no file {n}",
                files.len()
            ))
        })?;
        let start: u64 = files[..n].iter().map(|f| f.size).sum();
        let end = start + entry.size;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let path = self.package_path(Direction::Incoming, case_id, false);
        let evidence = self.clone();
        let case_id = *case_id;
        tokio::task::spawn_blocking(move || {
            let manifest = &opened.manifest;
            let chunk = u64::from(manifest.chunk_size);
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("cannot read the package: {e}")));
                    return;
                }
            };
            let (mut sealed, mut plain) = (Vec::new(), Vec::new());
            let first = start / chunk;
            let last = if end == start {
                first
            } else {
                (end - 1) / chunk
            };
            for i in first..=last.min(manifest.chunks.len().saturating_sub(1) as u64) {
                if entry.size == 0 {
                    break;
                }
                sealed.resize(manifest.sealed_chunk_len(i), 0);
                let checked = file
                    .read_exact_at(&mut sealed, wire::sealed_offset(manifest.chunk_size, i))
                    .map_err(|e| format!("chunk {i} cannot be read: {e}"))
                    .and_then(|()| {
                        if Hash32(*blake3::hash(&sealed).as_bytes()) == manifest.chunks[i as usize]
                        {
                            Ok(())
                        } else {
                            Err(format!(
                                "chunk {i} no longer matches the manifest (damaged at rest)"
                            ))
                        }
                    })
                    .and_then(|()| {
                        opened
                            .opener
                            .open_chunk(i, &sealed, &mut plain)
                            .map_err(|e| e.to_string())
                    });
                if let Err(why) = checked {
                    warn!(case = %case_id, chunk = i, "received package is damaged; the file is not served");
                    let rt = tokio::runtime::Handle::current();
                    let _ = rt.block_on(
                        evidence.note_error(&case_id, &format!("the package is damaged: {why}")),
                    );
                    let _ = tx.blocking_send(Err(why));
                    return;
                }
                let chunk_start = i * chunk;
                let from = start.saturating_sub(chunk_start) as usize;
                let to = ((end - chunk_start) as usize).min(plain.len());
                if tx.blocking_send(Ok(plain[from..to].to_vec())).is_err() {
                    return;
                }
            }
        });
        info!(case = %case_id, file = n, bytes = entry.size, "evidence file opened for an officer");
        Ok(FileStream { entry, pieces: rx })
    }
}
