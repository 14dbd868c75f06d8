//! Sealing an officer's files into a package, as they are uploaded: the bytes are cut into
//! chunks, each sealed and hashed on a blocking thread and appended to the package file, so
//! memory holds a few chunks whatever the package size. Nothing is readable here afterwards:
//! the package is sealed to the requesting jurisdiction.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comity_protocol::evidence::{
    self as wire, EvidenceManifest, FileEntry, MAX_FILES, Sealer, chunk_count,
};
use comity_protocol::{CaseId, CaseState, EventKind, Hash32, Jurisdiction, SignedEnvelope};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::{Direction, Evidence, EvidenceError, PackageRecord, PackageState, io};
use crate::cases::record::{CaseRecord, Role};

/// Uploads not finished after this long are dropped.
const UPLOAD_TTL: Duration = Duration::from_secs(3600);
/// Uploads waiting for their bytes at once.
const MAX_UPLOADS: usize = 8;
/// Sealed chunks queued for the sealing thread.
const SEAL_QUEUE: usize = 4;

/// One file an officer announces before sending its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadFile {
    pub name: String,
    pub size: u64,
    pub media_type: String,
}

/// An announced package waiting for its bytes.
#[derive(Debug)]
pub struct Upload {
    case_id: CaseId,
    files: Vec<UploadFile>,
    note: String,
    officer: String,
    created: Instant,
}

/// What an officer is told when an upload is announced.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadTicket {
    pub upload: String,
    pub total_bytes: u64,
    pub chunk_bytes: u32,
    pub chunks: u64,
}

/// The outcome of a sealed and recorded package.
#[derive(Debug)]
pub struct Fulfilled {
    pub case: CaseRecord,
    pub record: PackageRecord,
}

impl Evidence {
    /// Checks that `officer` may fulfil `case_id` with these files now, and reserves an
    /// upload for their bytes. Everything that can be refused is refused here, before any
    /// byte is sent: state, four-eyes, names, the bloc's size limit, the recipient's key.
    pub fn begin_upload(
        &self,
        case_id: CaseId,
        files: Vec<UploadFile>,
        note: String,
        officer: &str,
    ) -> Result<UploadTicket, EvidenceError> {
        let case = self.case_for(&case_id, Role::Executing)?;
        match case.log.state {
            Some(CaseState::Accepted | CaseState::PartiallyAccepted) => {}
            _ => {
                return Err(EvidenceError::Refused(format!(
                    "case {case_id} is {}; evidence is delivered on an accepted case",
                    case.state_code()
                )));
            }
        }
        self.inner.cases.check_disclosure_approval(&case, officer)?;
        let limits = self.inner.membership.current().evidence();
        let total = check_package(&files, &note, limits.max_package_bytes)?;
        if self.roster_key(&case.counterparty).is_none() {
            return Err(EvidenceError::Refused(format!(
                "the roster lists no sealing key for {}: nothing can be sealed to it; ask the bloc to add `sealing_key` to its entry",
                case.counterparty
            )));
        }
        if let Some(existing) = self.record(&case_id)?
            && case.log.manifest_root == Some(existing.root)
        {
            return Err(EvidenceError::Refused(format!(
                "case {case_id} is already fulfilled with package {}",
                existing.root
            )));
        }
        if self
            .inner
            .uploading
            .lock()
            .expect("lock")
            .contains(&case_id)
        {
            return Err(EvidenceError::Refused(format!(
                "evidence for case {case_id} is being uploaded now; wait for that upload to finish or fail"
            )));
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let mut uploads = self.inner.uploads.lock().expect("lock");
        uploads.retain(|_, u| u.created.elapsed() < UPLOAD_TTL && u.case_id != case_id);
        if uploads.len() >= MAX_UPLOADS {
            return Err(EvidenceError::Refused(format!(
                "{MAX_UPLOADS} uploads are already waiting; retry when one is done"
            )));
        }
        uploads.insert(
            id.clone(),
            Upload {
                case_id,
                files,
                note,
                officer: officer.to_owned(),
                created: Instant::now(),
            },
        );
        info!(case = %case_id, bytes = total, "evidence upload announced");
        Ok(UploadTicket {
            upload: id,
            total_bytes: total,
            chunk_bytes: limits.chunk_bytes,
            chunks: chunk_count(total, limits.chunk_bytes),
        })
    }

    /// Receives the announced files' bytes (in order, back to back), seals them into the
    /// package, signs its manifest and records the fulfilment that names it.
    pub async fn upload<S, B, E>(
        &self,
        upload_id: &str,
        officer: &str,
        body: S,
    ) -> Result<Fulfilled, EvidenceError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let upload = self.take_upload(upload_id, officer)?;
        let case_id = upload.case_id;
        if !self.inner.uploading.lock().expect("lock").insert(case_id) {
            return Err(EvidenceError::Refused(format!(
                "evidence for case {case_id} is being uploaded now; wait for that upload to finish or fail"
            )));
        }
        let _uploading = Uploading(self.clone(), case_id);
        info!(case = %case_id, "evidence upload receiving");
        let case = self.case_for(&case_id, Role::Executing)?;
        let recipient = self
            .roster_key(&case.counterparty)
            .ok_or_else(|| EvidenceError::Refused("the recipient has no sealing key".into()))?;
        let chunk_size = self.inner.membership.current().evidence().chunk_bytes;
        let prologue = wire::prologue(&case_id, &self.inner.jurisdiction, &case.counterparty);
        let (sealer, handshake) = Sealer::new(
            &recipient.0,
            &self.inner.sealing_private,
            &prologue,
            chunk_size,
        )
        .map_err(|e| EvidenceError::Io(e.to_string()))?;
        let partial = self.package_path(Direction::Outgoing, &case_id, true);
        let file = std::fs::File::create(&partial)
            .map_err(io(format!("cannot create {}", partial.display())))?;
        let started = Instant::now();
        // The requester may pull chunks as they are sealed, and check them once the signed
        // manifest names their hashes.
        let (sealed_tx, sealed) = tokio::sync::watch::channel(0u64);
        let total_bytes: u64 = upload.files.iter().map(|f| f.size).sum();
        let staging = Staging {
            counterparty: case.counterparty.clone(),
            chunk_size,
            total_bytes,
            file: std::fs::File::open(&partial)
                .map_err(io(format!("cannot open {}", partial.display())))?,
            sealed,
        };
        self.inner
            .staging
            .lock()
            .expect("lock")
            .insert(case_id, Arc::new(staging));
        // Answered before the first chunk is sealed, so that the requester is ready for them;
        // not waited for long (the transfer starts from the fulfilment otherwise).
        let _ = tokio::time::timeout(OFFER_WAIT, self.offer(&case, chunk_size, total_bytes)).await;
        let packed = match pack(sealer, file, &upload.files, chunk_size, body, sealed_tx).await {
            Ok(packed) => packed,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                warn!(case = %case_id, error = %e, "evidence upload failed; its partial package is deleted");
                return Err(e);
            }
        };
        let (manifest, files) =
            self.sealed_manifest(&case, &upload.files, chunk_size, handshake, packed)?;
        let total = manifest.total_bytes;
        if let Some(problem) = manifest.problem(u64::MAX, chunk_size) {
            let _ = std::fs::remove_file(&partial);
            return Err(EvidenceError::Refused(problem));
        }
        let envelope = SignedEnvelope::sign(&manifest, &self.inner.identity.signing_key())
            .map_err(|e| EvidenceError::Io(e.to_string()))?;
        let root = EvidenceManifest::root(&envelope);
        let finished = self.package_path(Direction::Outgoing, &case_id, false);
        std::fs::rename(&partial, &finished)
            .map_err(io(format!("cannot rename {}", partial.display())))?;
        sync_dir(&finished)?;
        let record = PackageRecord {
            case_id,
            direction: Direction::Outgoing,
            root,
            counterparty: case.counterparty.clone(),
            state: PackageState::Complete,
            total_bytes: total,
            sealed_bytes: manifest.sealed_total(),
            chunks: manifest.chunks.len() as u64,
            chunk_size,
            created_at: self.inner.cases.now(),
            completed_at: Some(self.inner.cases.now()),
            transfer_ms: Some(started.elapsed().as_millis() as u64),
            last_error: None,
            delivered: false,
            chunks_fetched: 0,
            pulls: 0,
            chunks_staged: 0,
        };
        let sealed_manifest =
            self.inner
                .cases
                .vault()
                .seal(&case.key_id, &case_id, &envelope.to_bytes())?;
        self.put_with_manifest(&record, sealed_manifest).await?;
        let fulfilled = EventKind::Fulfilled {
            manifest_root: Some(root),
            note: upload.note,
        };
        match self.inner.cases.act(case_id, fulfilled, officer).await {
            Ok(case) => {
                info!(case = %case_id, %root, bytes = total, files = files.len(), chunks = record.chunks, ms = started.elapsed().as_millis() as u64, "evidence sealed; fulfilment recorded");
                Ok(Fulfilled { case, record })
            }
            Err(e) => {
                self.forget(&record, "its fulfilment was refused").await?;
                Err(e.into())
            }
        }
    }

    /// The announced upload `upload_id`, taken out of the waiting list: only by the officer
    /// who announced it.
    fn take_upload(&self, upload_id: &str, officer: &str) -> Result<Upload, EvidenceError> {
        let mut uploads = self.inner.uploads.lock().expect("lock");
        match uploads.get(upload_id) {
            Some(u) if u.officer == officer => Ok(uploads.remove(upload_id).expect("just found")),
            Some(_) => Err(EvidenceError::Refused(
                "this upload was announced by another officer".into(),
            )),
            None => Err(EvidenceError::Refused(format!(
                "no upload {upload_id}: it finished, expired, or was never announced; start again"
            ))),
        }
    }

    /// The signed-to-be manifest of a package just sealed for `case`, with its file table.
    fn sealed_manifest(
        &self,
        case: &CaseRecord,
        uploaded: &[UploadFile],
        chunk_size: u32,
        handshake: Vec<u8>,
        packed: Packed,
    ) -> Result<(EvidenceManifest, Vec<FileEntry>), EvidenceError> {
        let Packed {
            sealer,
            chunk_hashes,
            file_hashes,
        } = packed;
        let files: Vec<FileEntry> = uploaded
            .iter()
            .zip(&file_hashes)
            .map(|(f, hash)| FileEntry {
                name: f.name.clone(),
                size: f.size,
                media_type: f.media_type.clone(),
                blake3: *hash,
            })
            .collect();
        let manifest = EvidenceManifest {
            case_id: case.case_id,
            from: self.inner.jurisdiction.clone(),
            to: case.counterparty.clone(),
            created_at: self.inner.cases.now(),
            chunk_size,
            total_bytes: files.iter().map(|f| f.size).sum(),
            file_count: files.len() as u32,
            handshake,
            sealed_index: sealer
                .seal_index(&files)
                .map_err(|e| EvidenceError::Io(e.to_string()))?,
            chunks: chunk_hashes,
        };
        Ok((manifest, files))
    }
}

/// The sealing thread: hashes each file, seals and hashes each chunk as it comes and appends it
/// to `file` (counting it in `published`, for the requester pulling as it goes), then makes
/// the file durable.
fn seal_all(
    sealer: Sealer,
    mut out: std::fs::File,
    sizes: &[u64],
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    published: tokio::sync::watch::Sender<u64>,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
) -> Result<Packed, EvidenceError> {
    let mut hashers: Vec<blake3::Hasher> = sizes.iter().map(|_| blake3::Hasher::new()).collect();
    let (mut current, mut left) = (0usize, sizes.first().copied().unwrap_or(0));
    let mut chunk_hashes = Vec::new();
    let mut sealed = Vec::new();
    let mut index = 0u64;
    while let Some(plain) = rx.blocking_recv() {
        let mut rest = plain.as_slice();
        while !rest.is_empty() {
            while left == 0 && current + 1 < sizes.len() {
                current += 1;
                left = sizes[current];
            }
            let n = (left as usize).min(rest.len());
            hashers[current].update(&rest[..n]);
            left -= n as u64;
            rest = &rest[n..];
        }
        sealer
            .seal_chunk(index, &plain, &mut sealed)
            .map_err(|e| EvidenceError::Io(e.to_string()))?;
        chunk_hashes.push(Hash32(*blake3::hash(&sealed).as_bytes()));
        out.write_all(&sealed)
            .map_err(io("cannot write the package"))?;
        index += 1;
        published.send_replace(index);
        let mut plain = plain;
        plain.clear();
        let _ = spent.send(plain);
    }
    out.sync_all().map_err(io("cannot sync the package"))?;
    Ok(Packed {
        sealer,
        chunk_hashes,
        file_hashes: hashers
            .iter()
            .map(|h| Hash32(*h.finalize().as_bytes()))
            .collect(),
    })
}

/// Marks a case's package as being uploaded until dropped.
struct Uploading(Evidence, CaseId);

impl Drop for Uploading {
    fn drop(&mut self) {
        self.0.inner.uploading.lock().expect("lock").remove(&self.1);
        self.0.inner.staging.lock().expect("lock").remove(&self.1);
    }
}

/// How long an upload waits for the requester to answer its offer.
const OFFER_WAIT: Duration = Duration::from_secs(2);

/// A package being sealed, as the requester may pull it before its manifest is signed.
#[derive(Debug)]
pub(super) struct Staging {
    pub(super) counterparty: Jurisdiction,
    pub(super) chunk_size: u32,
    pub(super) total_bytes: u64,
    /// Open on the package file as it is written (and after it is renamed).
    pub(super) file: std::fs::File,
    /// Chunks sealed and written so far.
    pub(super) sealed: tokio::sync::watch::Receiver<u64>,
}

impl Evidence {
    /// Tells the requester that a package for `case` is being sealed, so that it can pull the
    /// chunks as they come. Nothing depends on the answer: without it, the transfer starts
    /// when the fulfilment arrives.
    async fn offer(&self, case: &CaseRecord, chunk_size: u32, total_bytes: u64) {
        if self.inner.faults.lock().expect("lock").no_staging {
            return;
        }
        let Some(peer) = self
            .inner
            .membership
            .current()
            .by_jurisdiction(&case.counterparty)
            .map(|(m, _)| m.peer_id)
        else {
            return;
        };
        let offer = comity_protocol::evidence::EvidenceRequest::Offer {
            case_id: case.case_id,
            chunk_size,
            total_bytes,
        };
        let Ok(frame) = comity_protocol::to_canonical_cbor(&offer) else {
            return;
        };
        let case_id = case.case_id;
        let answer = self.inner.network.evidence_request(peer, frame).await;
        let answer = answer.as_deref().ok().and_then(|a| {
            comity_protocol::from_cbor::<comity_protocol::evidence::EvidenceResponse>(
                a,
                comity_protocol::evidence::MAX_EVIDENCE_RESPONSE,
            )
            .ok()
        });
        match answer {
            Some(comity_protocol::evidence::EvidenceResponse::Staging) => {
                debug!(case = %case_id, "the requester pulls the package as it is sealed")
            }
            Some(comity_protocol::evidence::EvidenceResponse::Refused { reason }) => {
                debug!(case = %case_id, %reason, "the requester waits for the fulfilment")
            }
            _ => debug!(case = %case_id, "the requester did not answer the offer"),
        }
    }
}

struct Packed {
    sealer: Sealer,
    chunk_hashes: Vec<Hash32>,
    file_hashes: Vec<Hash32>,
}

/// Cuts the body into chunks and hands them to a sealing thread, which hashes each file,
/// seals and hashes each chunk and appends it to `file`, then makes it durable.
async fn pack<S, B, E>(
    sealer: Sealer,
    file: std::fs::File,
    files: &[UploadFile],
    chunk_size: u32,
    mut body: S,
    sealed: tokio::sync::watch::Sender<u64>,
) -> Result<Packed, EvidenceError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let declared: u64 = files.iter().map(|f| f.size).sum(); // checked when announced
    let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(SEAL_QUEUE);
    // Chunk buffers go back and forth: a new 1 MiB buffer per chunk costs a page fault per
    // page on first write (3 % of the machine's time in the evidence bench).
    let (spent_tx, spent) = std::sync::mpsc::channel::<Vec<u8>>();
    let worker =
        tokio::task::spawn_blocking(move || seal_all(sealer, file, &sizes, rx, sealed, spent_tx));
    let chunk = chunk_size as usize;
    let mut buffer = Vec::with_capacity(chunk);
    let mut received = 0u64;
    let mut failure = None;
    let mut worker_gone = false;
    while !worker_gone && let Some(piece) = body.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(e) => {
                failure = Some(EvidenceError::Refused(format!(
                    "the upload broke after {received} of {declared} bytes: {e}; nothing was recorded"
                )));
                break;
            }
        };
        let mut piece = piece.as_ref();
        received += piece.len() as u64;
        if received > declared {
            failure = Some(EvidenceError::Refused(format!(
                "the upload is longer than the {declared} bytes announced; nothing was recorded"
            )));
            break;
        }
        while !piece.is_empty() {
            let n = (chunk - buffer.len()).min(piece.len());
            buffer.extend_from_slice(&piece[..n]);
            piece = &piece[n..];
            if buffer.len() == chunk {
                let next = spent
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(chunk));
                let full = std::mem::replace(&mut buffer, next);
                if tx.send(full).await.is_err() {
                    // The sealing thread stopped (a full disk): its error is the answer.
                    worker_gone = true;
                    break;
                }
            }
        }
    }
    if worker_gone {
        // The sealing thread stopped (a full disk, say): its error is the answer.
        drop(tx);
        return match worker.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(EvidenceError::Io("the sealing thread stopped early".into())),
            Err(e) => Err(EvidenceError::Io(format!("the sealing thread failed: {e}"))),
        };
    }
    if failure.is_none() && received < declared {
        failure = Some(EvidenceError::Refused(format!(
            "the upload ended after {received} of the {declared} bytes announced; nothing was recorded"
        )));
    }
    if failure.is_none() && !buffer.is_empty() {
        let _ = tx.send(buffer).await;
    }
    drop(tx);
    let packed = worker
        .await
        .map_err(|e| EvidenceError::Io(format!("the sealing thread failed: {e}")))?;
    match failure {
        Some(e) => Err(e),
        None => packed,
    }
}

/// What an officer may put in one package: 1 to `MAX_FILES` files with unique, safe names and
/// real media types, a note within the text limit, a file table that fits its sealed index,
/// and at most `max_package_bytes` in all (the bloc's limit). Returns the total size.
pub(super) fn check_package(
    files: &[UploadFile],
    note: &str,
    max_package_bytes: u64,
) -> Result<u64, EvidenceError> {
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(EvidenceError::Refused(format!(
            "a package holds 1 to {MAX_FILES} files; {} given",
            files.len()
        )));
    }
    let mut names = std::collections::HashSet::new();
    for file in files {
        if let Some(problem) = wire::file_name_problem(&file.name) {
            return Err(EvidenceError::Refused(problem));
        }
        // Case-insensitively: the officer who opens it may be on such a filesystem.
        if !names.insert(file.name.to_lowercase()) {
            return Err(EvidenceError::Refused(format!(
                "file name {:?} appears twice (letter case aside); names in a package are unique",
                file.name
            )));
        }
        let media_ok = !file.media_type.is_empty()
            && file.media_type.len() <= 127
            && file.media_type.contains('/')
            && file.media_type.is_ascii();
        if !media_ok {
            return Err(EvidenceError::Refused(format!(
                "media type {:?} of {:?} is not a media type like application/pdf",
                file.media_type, file.name
            )));
        }
    }
    if note.len() > comity_protocol::limits::MAX_TEXT {
        return Err(EvidenceError::Refused(format!(
            "the note is {} bytes, over the limit of {}",
            note.len(),
            comity_protocol::limits::MAX_TEXT
        )));
    }
    // The file table is sealed into the manifest: check now that it will fit.
    let table: Vec<FileEntry> = files
        .iter()
        .map(|f| FileEntry {
            name: f.name.clone(),
            size: f.size,
            media_type: f.media_type.clone(),
            blake3: Hash32([0; 32]),
        })
        .collect();
    let table_len = comity_protocol::to_canonical_cbor(&table)
        .map(|t| wire::sealed_len(t.len()))
        .unwrap_or(usize::MAX);
    if table_len > wire::MAX_INDEX_BYTES {
        return Err(EvidenceError::Refused(format!(
            "the list of {} files takes {table_len} bytes sealed, over the limit of {}: deliver fewer files per package, or shorter names",
            files.len(),
            wire::MAX_INDEX_BYTES
        )));
    }
    let total = files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.size))
        .ok_or_else(|| {
            EvidenceError::TooLarge("the file sizes add up to more than 2^64 bytes".into())
        })?;
    if total > max_package_bytes {
        return Err(EvidenceError::TooLarge(format!(
            "the package is {total} bytes ({} files), over the bloc's limit of {} bytes ([evidence] max_package_bytes in the roster); deliver it in parts or ask the bloc to raise the limit",
            files.len(),
            max_package_bytes
        )));
    }
    Ok(total)
}

/// Makes a rename durable: syncs the directory holding `path`.
pub(super) fn sync_dir(path: &std::path::Path) -> Result<(), EvidenceError> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, media_type: &str) -> UploadFile {
        UploadFile {
            name: name.into(),
            size,
            media_type: media_type.into(),
        }
    }

    fn refused(files: &[UploadFile], note: &str, limit: u64) -> String {
        check_package(files, note, limit).unwrap_err().to_string()
    }

    #[test]
    fn a_sound_package_is_admitted_with_its_total_size() {
        let files = [
            file("report.pdf", 1_000, "application/pdf"),
            file("Logs.csv", 24, "text/csv"),
        ];
        assert_eq!(check_package(&files, "as requested", 1_024).unwrap(), 1_024);
    }

    #[test]
    fn each_flaw_of_a_package_is_refused_with_what_to_change() {
        let pdf = |name: &str| file(name, 1, "application/pdf");
        let limit = 1 << 20;
        assert!(refused(&[], "", limit).contains("1 to"));
        let many: Vec<_> = (0..=MAX_FILES).map(|i| pdf(&format!("f{i}"))).collect();
        assert!(refused(&many, "", limit).contains("1 to"));
        assert!(refused(&[pdf("a.pdf"), pdf("A.PDF")], "", limit).contains("appears twice"));
        assert!(!refused(&[pdf("../etc/passwd")], "", limit).is_empty());
        assert!(refused(&[file("a", 1, "pdf")], "", limit).contains("media type"));
        assert!(refused(&[file("a", 1, "")], "", limit).contains("media type"));
        let long = "x".repeat(comity_protocol::limits::MAX_TEXT + 1);
        assert!(refused(&[pdf("a")], &long, limit).contains("note"));
        assert!(refused(&[file("a", limit + 1, "text/plain")], "", limit).contains("limit"));
        let huge = [
            file("a", u64::MAX, "text/plain"),
            file("b", 1, "text/plain"),
        ];
        assert!(refused(&huge, "", u64::MAX).contains("2^64"));
    }
}
