//! `/comity/evidence/2.0.0`, the receiving side (the sending side is `serve.rs`): it pulls a
//! package's chunks, several at once, checks every chunk against the manifest before keeping
//! it, and resumes from the chunks already on disk after a disconnect or a restart of either
//! side.
//!
//! Resuming needs no bookkeeping that could disagree with the data: on restart the partial file
//! is read back and every chunk whose bytes match the manifest's hash counts as received.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use comity_protocol::evidence::{
    self as wire, EvidenceManifest, EvidenceRequest, EvidenceResponse, MAX_EVIDENCE_RESPONSE,
    Opener,
};
use comity_protocol::{CaseId, Hash32, Jurisdiction, from_cbor, to_canonical_cbor};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tracing::{debug, info, warn};

use super::{Direction, Evidence, EvidenceError, PackageRecord, PackageState, Progress, io};
use crate::cases::record::Role;

/// Times one chunk may fail its check before the transfer stops (and retries later).
const MAX_BAD_CHUNK: u32 = 3;
/// Why a pulled chunk was not kept.
enum ChunkFailure {
    /// The sender's bytes do not match the manifest: retried a few times, then the transfer
    /// stops with this reason.
    Bad(u64, String),
    /// The sender could not be asked or did not answer: the transfer resumes later.
    Unreachable(String),
    Local(EvidenceError),
}

/// An incoming package pulled as it was sealed, before its fulfilment named it: what was
/// offered, and the BLAKE3 hash of each chunk written so far. Nothing here is trusted: when
/// the signed manifest arrives, the chunks whose hashes it names count as received.
#[derive(Debug)]
pub(super) struct Prefetched {
    from: Jurisdiction,
    chunk_size: u32,
    total_bytes: u64,
    hashes: Vec<Option<Hash32>>,
    /// Still pulling.
    active: bool,
    offered_at: Instant,
}

impl Prefetched {
    /// Worth keeping: still pulling, or offered within the hour (the fulfilment may follow).
    pub(super) fn current(&self) -> bool {
        self.active || self.offered_at.elapsed() < super::ORPHAN_AGE
    }
}

/// An executing member's offer of the package it is sealing.
struct Offer<'a> {
    case_id: CaseId,
    from: &'a Jurisdiction,
    chunk_size: u32,
    total_bytes: u64,
}

impl Offer<'_> {
    /// Why the offer is not taken, if it is not: from the case's executing member (this node
    /// requested it), in the bloc's chunks and within its largest package, while nothing is
    /// announced for the case, and within the member's share of offers running at once.
    fn problem(
        &self,
        executing: &Jurisdiction,
        limits: &crate::roster::EvidenceLimits,
        announced: bool,
        taken_from_member: usize,
    ) -> Option<String> {
        let (case_id, from) = (self.case_id, self.from);
        if executing != from {
            return Some(format!("case {case_id} is not shared with {from}"));
        }
        if self.chunk_size != limits.chunk_bytes || self.total_bytes == 0 {
            return Some(format!(
                "an offer of {} bytes in chunks of {} does not fit the bloc's chunks of {}",
                self.total_bytes, self.chunk_size, limits.chunk_bytes
            ));
        }
        if self.total_bytes > limits.max_package_bytes {
            return Some(format!(
                "{} bytes is more than the bloc's largest package ({})",
                self.total_bytes, limits.max_package_bytes
            ));
        }
        if announced {
            return Some(format!("a package for case {case_id} is already announced"));
        }
        if taken_from_member >= MAX_PREFETCH_PER_MEMBER {
            return Some(format!(
                "{from} already has {MAX_PREFETCH_PER_MEMBER} packages pulled as they are sealed"
            ));
        }
        None
    }
}

/// Offers taken at once from one member (each reserves its package's space).
const MAX_PREFETCH_PER_MEMBER: usize = 2;
/// A prefetch that gets no chunk for this long stops (the fulfilment still starts the
/// transfer).
const PREFETCH_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

impl Evidence {
    /// An executing member offers the package it is sealing for a case this node requested:
    /// taken (its chunks pulled as they are sealed) if the offer fits the case and the bloc's
    /// limits and nothing is held for the case yet.
    pub(super) fn take_offer(
        &self,
        (from, peer): (Jurisdiction, libp2p::PeerId),
        case_id: CaseId,
        chunk_size: u32,
        total_bytes: u64,
    ) -> Result<(), String> {
        let case = self
            .case_for(&case_id, Role::Requester)
            .map_err(|e| e.to_string())?;
        let offer = Offer {
            case_id,
            from: &from,
            chunk_size,
            total_bytes,
        };
        let taken_from = self
            .inner
            .prefetched
            .lock()
            .expect("lock")
            .values()
            .filter(|p| p.from == from && p.active)
            .count();
        let announced = self.record(&case_id).map_err(|e| e.to_string())?.is_some();
        let limits = self.inner.membership.current().evidence();
        if let Some(problem) = offer.problem(&case.counterparty, &limits, announced, taken_from) {
            if case.counterparty != from {
                warn!(case = %case_id, member = %from, "evidence offer from a member not party to the case refused");
            }
            return Err(problem);
        }
        if !self.inner.running.lock().expect("lock").insert(case_id) {
            return Err(format!("case {case_id}'s package is being pulled already"));
        }
        let running = super::Running(self.clone(), case_id);
        let chunks = wire::chunk_count(total_bytes, chunk_size);
        let sealed_total: u64 = (0..chunks)
            .map(|i| wire::sealed_len(wire::plain_len(total_bytes, chunk_size, i)) as u64)
            .sum();
        let partial = self.package_path(Direction::Incoming, &case_id, true);
        reserve(&partial, sealed_total, Keep::Nothing).map_err(|e| e.to_string())?;
        self.inner.prefetched.lock().expect("lock").insert(
            case_id,
            Prefetched {
                from,
                chunk_size,
                total_bytes,
                hashes: vec![None; chunks as usize],
                active: true,
                offered_at: Instant::now(),
            },
        );
        self.inner.progress.lock().expect("lock").insert(
            case_id,
            Progress {
                first_started: Some(Instant::now()),
                ..Progress::default()
            },
        );
        info!(case = %case_id, bytes = total_bytes, chunks, "evidence offered: pulling chunks as they are sealed");
        let evidence = self.clone();
        tokio::spawn(async move {
            let _running = running;
            let pulled = prefetch(&evidence, case_id, peer, &partial).await;
            info!(case = %case_id, pulled, "evidence chunks pulled before the fulfilment");
            // The fulfilment may have come meanwhile: the sweep starts its transfer.
            drop(_running);
            evidence.inner.wake.notify_one();
        });
        Ok(())
    }
}

/// Pulls every full chunk of an offered package as it is sealed (the short last one is left
/// for the transfer), `parallel` at a time, writing each in place and noting its hash. Stops
/// at the first refusal or failure, or when nothing came for [`PREFETCH_IDLE`]. Returns the
/// chunks written.
async fn prefetch(
    evidence: &Evidence,
    case_id: CaseId,
    peer: libp2p::PeerId,
    partial: &std::path::Path,
) -> u64 {
    let inner = &evidence.inner;
    let Some((chunk_size, total_bytes, chunks)) = inner
        .prefetched
        .lock()
        .expect("lock")
        .get(&case_id)
        .map(|p| (p.chunk_size, p.total_bytes, p.hashes.len() as u64))
    else {
        return 0;
    };
    let Ok(file) = super::direct::PackageWriter::open(partial) else {
        return 0;
    };
    let file = Arc::new(file);
    let full = wire::sealed_len(chunk_size as usize);
    let mut queue = 0..chunks.saturating_sub(1);
    let mut again: Vec<u64> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    let mut pulled = 0u64;
    let mut last_progress = Instant::now();
    loop {
        while in_flight.len() < inner.parallel {
            let Some(index) = again.pop().or_else(|| queue.next()) else {
                break;
            };
            let (evidence, file) = (evidence.clone(), file.clone());
            in_flight.push(async move {
                let outcome =
                    staged_chunk(&evidence, peer, case_id, index, full, chunk_size, &file).await;
                (index, outcome)
            });
        }
        let Some((index, outcome)) = in_flight.next().await else {
            break;
        };
        match outcome {
            Ok(StagedChunk::Kept(hash)) => {
                pulled += 1;
                last_progress = Instant::now();
                if let Some(p) = inner.prefetched.lock().expect("lock").get_mut(&case_id) {
                    p.hashes[index as usize] = Some(hash);
                }
                if let Some(p) = inner.progress.lock().expect("lock").get_mut(&case_id) {
                    p.fetched += 1;
                }
            }
            // Not sealed yet: ask again, unless the sender has been silent too long.
            Ok(StagedChunk::NotYet) if last_progress.elapsed() < PREFETCH_IDLE => again.push(index),
            Ok(StagedChunk::NotYet) => break,
            // Left for the transfer, which checks it against the manifest.
            Ok(StagedChunk::Skipped(why)) => {
                debug!(case = %case_id, index, %why, "chunk pulled ahead of the fulfilment not kept")
            }
            Err(why) => {
                debug!(case = %case_id, index, %why, "pulling ahead of the fulfilment stopped");
                break;
            }
        }
    }
    if let Some(p) = inner.prefetched.lock().expect("lock").get_mut(&case_id) {
        p.active = false;
    }
    let _ = total_bytes;
    pulled
}

/// An answer to a chunk request.
enum Answered {
    /// The frame, and where the sealed chunk lies in it (the common case: checked and written
    /// in place, not copied).
    Chunk(Vec<u8>, std::ops::Range<usize>),
    /// Any other answer, decoded (`None`: not an answer at all).
    Other(Option<EvidenceResponse>),
}

fn chunk_or_answer(response: Vec<u8>) -> Answered {
    if let Some(range) = wire::chunk_in_frame(&response) {
        return Answered::Chunk(response, range);
    }
    match from_cbor::<EvidenceResponse>(&response, MAX_EVIDENCE_RESPONSE) {
        Ok(EvidenceResponse::Chunk(bytes)) => {
            let range = 0..bytes.len();
            Answered::Chunk(bytes, range)
        }
        Ok(other) => Answered::Other(Some(other)),
        Err(_) => Answered::Other(None),
    }
}

/// What came of asking for a chunk while its package was sealed.
enum StagedChunk {
    /// Written in place, with this hash (checked when the manifest arrives).
    Kept(Hash32),
    /// Not sealed yet.
    NotYet,
    /// Not kept, and why (the transfer fetches it).
    Skipped(String),
}

/// Asks for staged chunk `index`. An error stops pulling ahead (the sender refused or is out
/// of reach).
async fn staged_chunk(
    evidence: &Evidence,
    peer: libp2p::PeerId,
    case_id: CaseId,
    index: u64,
    len: usize,
    chunk_size: u32,
    file: &Arc<super::direct::PackageWriter>,
) -> Result<StagedChunk, String> {
    let frame = to_canonical_cbor(&EvidenceRequest::Staged { case_id, index })
        .map_err(|e| e.to_string())?;
    let response = evidence
        .inner
        .network
        .evidence_request(peer, frame)
        .await
        .map_err(|e| e.to_string())?;
    let (frame, range) = match chunk_or_answer(response) {
        Answered::Chunk(frame, range) => (frame, range),
        Answered::Other(Some(EvidenceResponse::NotYet)) => return Ok(StagedChunk::NotYet),
        Answered::Other(Some(EvidenceResponse::Refused { reason })) => return Err(reason),
        Answered::Other(_) => {
            return Err(format!(
                "the answer for staged chunk {index} is not a chunk"
            ));
        }
    };
    if range.len() != len {
        return Ok(StagedChunk::Skipped(format!(
            "{} bytes, not {len}",
            range.len()
        )));
    }
    let offset = wire::sealed_offset(chunk_size, index);
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        let bytes = &frame[range];
        let hash = Hash32(*blake3::hash(bytes).as_bytes());
        file.write_at(bytes, offset).map_err(|e| e.to_string())?;
        crate::network::codec::recycle(frame);
        Ok(StagedChunk::Kept(hash))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Pulls the package of `case_id` to the end, or until something stops it (the sweep starts
/// it again).
pub(super) async fn pull(evidence: &Evidence, case_id: CaseId) -> Result<(), EvidenceError> {
    let inner = &evidence.inner;
    let Some(mut record) = evidence.record(&case_id)? else {
        return Ok(());
    };
    if record.state == PackageState::Complete || record.direction != Direction::Incoming {
        return Ok(());
    }
    let case = evidence.case_for(&case_id, Role::Requester)?;
    let roster = inner.membership.current();
    let (member, _) = roster
        .by_jurisdiction(&record.counterparty)
        .ok_or_else(|| {
            EvidenceError::Refused(format!(
                "{} is not an admitted member of the bloc",
                record.counterparty
            ))
        })?;
    let peer = member.peer_id;
    let partial = evidence.package_path(Direction::Incoming, &case_id, true);

    if record.state == PackageState::Announced {
        fetch_manifest(evidence, &mut record, &case, peer, &roster, &partial).await?;
    }
    let (manifest, have) = resume(evidence, &record, &case, &partial).await?;
    let hashes = Arc::new(manifest.chunks.clone());
    let missing: Vec<u64> = (0..record.chunks).filter(|i| !have[*i as usize]).collect();
    if !missing.is_empty() {
        info!(case = %case_id, missing = missing.len(), of = record.chunks, "pulling evidence chunks");
    }
    let file = Arc::new(
        super::direct::PackageWriter::open(&partial)
            .map_err(io(format!("cannot open {}", partial.display())))?,
    );
    fetch_missing(evidence, &record, peer, missing, &hashes, &file).await?;
    finish(evidence, record, &file, &partial).await
}

/// Fetches the package's signed manifest from the sender, checks it against the fulfilment
/// and the sender's key, stores it sealed and reserves the space the package needs.
async fn fetch_manifest(
    evidence: &Evidence,
    record: &mut PackageRecord,
    case: &crate::cases::record::CaseRecord,
    peer: libp2p::PeerId,
    roster: &crate::roster::Roster,
    partial: &std::path::Path,
) -> Result<(), EvidenceError> {
    let inner = &evidence.inner;
    let case_id = record.case_id;
    let frame = to_canonical_cbor(&EvidenceRequest::Manifest { case_id })
        .map_err(|e| EvidenceError::Io(e.to_string()))?;
    let response = inner
        .network
        .evidence_request(peer, frame)
        .await
        .map_err(|e| {
            EvidenceError::Io(format!(
                "cannot fetch the manifest from {}: {e}",
                record.counterparty
            ))
        })?;
    let envelope = match from_cbor::<EvidenceResponse>(&response, MAX_EVIDENCE_RESPONSE) {
        Ok(EvidenceResponse::Manifest(envelope)) => envelope,
        Ok(EvidenceResponse::Refused { reason }) => {
            return Err(EvidenceError::Refused(format!(
                "{} refused the manifest: {reason}",
                record.counterparty
            )));
        }
        _ => {
            return Err(EvidenceError::Refused(format!(
                "{} answered the manifest request with something else",
                record.counterparty
            )));
        }
    };
    let manifest = check_manifest(evidence, record, &envelope, roster)?;
    let sealed_manifest = inner
        .cases
        .vault()
        .seal(&case.key_id, &case_id, &envelope.to_bytes())?;
    record.total_bytes = manifest.total_bytes;
    record.sealed_bytes = manifest.sealed_total();
    record.chunks = manifest.chunks.len() as u64;
    record.chunk_size = manifest.chunk_size;
    // Chunks pulled while the package was sealed count if the manifest names their hashes.
    let staged: Option<Vec<bool>> = inner
        .prefetched
        .lock()
        .expect("lock")
        .get(&case_id)
        .filter(|p| {
            !p.active
                && p.chunk_size == manifest.chunk_size
                && p.total_bytes == manifest.total_bytes
                && p.hashes.len() == manifest.chunks.len()
        })
        .map(|p| {
            p.hashes
                .iter()
                .zip(&manifest.chunks)
                .map(|(got, named)| got.as_ref() == Some(named))
                .collect()
        });
    // A file already here (pulled ahead of the fulfilment before a restart, or renamed by a
    // crash): kept, and every chunk of it checked against the manifest before it counts.
    let final_path = evidence.package_path(Direction::Incoming, &case_id, false);
    if !partial.exists() && final_path.exists() {
        std::fs::rename(&final_path, partial)
            .map_err(io(format!("cannot rename {}", final_path.display())))?;
    }
    let kept = staged.is_some() || partial.exists();
    let keep = if kept { Keep::Held } else { Keep::Nothing };
    reserve(partial, record.sealed_bytes, keep)?;
    record.state = PackageState::Transferring;
    record.last_error = None;
    evidence.put_with_manifest(record, sealed_manifest).await?;
    inner.prefetched.lock().expect("lock").remove(&case_id);
    let staged_count = staged
        .as_ref()
        .map_or(0, |s| s.iter().filter(|h| **h).count());
    {
        let mut progress = inner.progress.lock().expect("lock");
        let before = progress.remove(&case_id).unwrap_or_default();
        progress.insert(
            case_id,
            Progress {
                // Without hashes from this process, `resume` reads the kept file back.
                bitmap: match staged {
                    Some(staged) => Some(staged),
                    None if kept => None,
                    None => Some(vec![false; record.chunks as usize]),
                },
                first_started: before.first_started,
                fetched: before.fetched,
                staged: staged_count as u64,
                ..Progress::default()
            },
        );
    }
    info!(case = %case_id, root = %record.root, bytes = record.total_bytes, chunks = record.chunks, already = staged_count, "evidence manifest verified; pulling chunks");
    Ok(())
}

/// Where an interrupted transfer stands: the manifest, and which chunks of the partial file
/// already verify (all of them are checked again).
async fn resume(
    evidence: &Evidence,
    record: &PackageRecord,
    case: &crate::cases::record::CaseRecord,
    partial: &std::path::Path,
) -> Result<(EvidenceManifest, Vec<bool>), EvidenceError> {
    let inner = &evidence.inner;
    let case_id = record.case_id;
    // A crash between renaming the finished file and recording it: take it back as partial
    // (every chunk is verified again below). A partial file that went missing is made again.
    let final_path = evidence.package_path(Direction::Incoming, &case_id, false);
    if !partial.exists() {
        if final_path.exists() {
            std::fs::rename(&final_path, partial)
                .map_err(io(format!("cannot rename {}", final_path.display())))?;
        } else {
            reserve(partial, record.sealed_bytes, Keep::Nothing)?;
            inner.progress.lock().expect("lock").remove(&case_id);
        }
    }
    let (_, manifest) = evidence.manifest(record, case)?;
    let hashes = Arc::new(manifest.chunks.clone());
    let have = verified_chunks(evidence, record, &hashes, partial).await?;
    {
        let mut progress = inner.progress.lock().expect("lock");
        let p = progress.entry(case_id).or_default();
        p.verified = have.iter().filter(|h| **h).count() as u64;
        p.bytes_verified = (0..record.chunks)
            .filter(|i| have[*i as usize])
            .map(|i| manifest.sealed_chunk_len(i) as u64)
            .sum();
        p.started = Some(Instant::now());
        p.first_started.get_or_insert_with(Instant::now);
        p.pulls += 1;
        p.bytes_at_start = p.bytes_verified;
        p.bitmap = Some(have.clone());
    }
    Ok((manifest, have))
}

/// Fetches the `missing` chunks, `parallel` at a time, each verified against the manifest
/// before it is written; a chunk refused too often stops the transfer.
async fn fetch_missing(
    evidence: &Evidence,
    record: &PackageRecord,
    peer: libp2p::PeerId,
    missing: Vec<u64>,
    hashes: &Arc<Vec<Hash32>>,
    file: &Arc<super::direct::PackageWriter>,
) -> Result<(), EvidenceError> {
    let inner = &evidence.inner;
    let case_id = record.case_id;
    let mut queue = missing.into_iter();
    let mut in_flight = FuturesUnordered::new();
    let mut bad: HashMap<u64, u32> = HashMap::new();
    let mut retry: Vec<u64> = Vec::new();
    // The last chunk, when short, is written through the page cache; it shares a page with
    // the chunk before it, so it goes alone, after every other chunk is written.
    let last = record.chunks.checked_sub(1);
    loop {
        while in_flight.len() < inner.parallel {
            let Some(index) = retry.pop().or_else(|| queue.next()) else {
                break;
            };
            if Some(index) == last && !in_flight.is_empty() {
                retry.push(index);
                break;
            }
            in_flight.push(fetch_chunk(
                evidence.clone(),
                peer,
                record.clone(),
                index,
                hashes.clone(),
                file.clone(),
            ));
        }
        let Some(outcome) = in_flight.next().await else {
            break;
        };
        match outcome {
            Ok((index, len)) => {
                let mut progress = inner.progress.lock().expect("lock");
                let p = progress.entry(case_id).or_default();
                p.verified += 1;
                p.fetched += 1;
                p.bytes_verified += len as u64;
                if let Some(bitmap) = &mut p.bitmap {
                    bitmap[index as usize] = true;
                }
            }
            Err(ChunkFailure::Bad(index, why)) => {
                inner
                    .progress
                    .lock()
                    .expect("lock")
                    .entry(case_id)
                    .or_default()
                    .fetched += 1;
                let count = bad.entry(index).or_default();
                *count += 1;
                warn!(case = %case_id, index, attempt = *count, "evidence chunk refused: it does not match the signed manifest");
                if *count >= MAX_BAD_CHUNK {
                    return Err(EvidenceError::Damaged(format!(
                        "chunk {index} from {} was refused {MAX_BAD_CHUNK} times: {why}; the sender's copy is damaged or was tampered with",
                        record.counterparty
                    )));
                }
                retry.push(index);
            }
            Err(ChunkFailure::Unreachable(why)) => {
                return Err(EvidenceError::Io(format!(
                    "transfer from {} interrupted: {why}",
                    record.counterparty
                )));
            }
            Err(ChunkFailure::Local(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Every chunk is here and verified: makes the package durable, records it complete and
/// confirms its arrival with a signed event.
async fn finish(
    evidence: &Evidence,
    mut record: PackageRecord,
    file: &Arc<super::direct::PackageWriter>,
    partial: &std::path::Path,
) -> Result<(), EvidenceError> {
    let inner = &evidence.inner;
    let case_id = record.case_id;
    let final_path = evidence.package_path(Direction::Incoming, &case_id, false);
    // Every chunk is here and verified: make it durable, then say so.
    {
        let file = file.clone();
        tokio::task::spawn_blocking(move || file.sync())
            .await
            .map_err(|e| EvidenceError::Io(e.to_string()))?
            .map_err(io("cannot sync the package"))?;
    }
    std::fs::rename(partial, &final_path)
        .map_err(io(format!("cannot rename {}", partial.display())))?;
    super::package::sync_dir(&final_path)?;
    // The whole transfer, every attempt of this process, and what it took.
    let (elapsed, fetched, pulls, staged) = {
        let progress = inner.progress.lock().expect("lock");
        let p = progress.get(&case_id).cloned().unwrap_or_default();
        let elapsed = p.first_started.map(|at| at.elapsed()).unwrap_or_default();
        (elapsed, p.fetched, p.pulls, p.staged)
    };
    record.state = PackageState::Complete;
    record.completed_at = Some(inner.cases.now());
    record.transfer_ms = Some(elapsed.as_millis() as u64);
    record.chunks_fetched = fetched;
    record.pulls = pulls;
    record.chunks_staged = staged;
    record.last_error = None;
    evidence.put(&record).await?;
    let mb_per_s = record.sealed_bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-3);
    info!(case = %case_id, root = %record.root, bytes = record.sealed_bytes, ms = elapsed.as_millis() as u64, pulls, mb_per_s = format!("{mb_per_s:.0}"), "evidence package received whole");
    inner.progress.lock().expect("lock").remove(&case_id);
    evidence.confirm(&record).await;
    Ok(())
}

/// The partial package file at its whole size, reserved, so that a full disk is found before
/// the first byte moves. `keep`: what the file holds stays (chunks pulled while it was sealed,
/// or found after a restart); otherwise it starts empty.
fn reserve(partial: &std::path::Path, bytes: u64, keep: Keep) -> Result<(), EvidenceError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(keep == Keep::Nothing)
        .write(true)
        .open(partial)
        .map_err(io(format!("cannot open {}", partial.display())))?;
    if keep == Keep::Held {
        file.set_len(bytes)
            .map_err(io(format!("cannot size {}", partial.display())))?;
    }
    if bytes > 0 {
        nix::fcntl::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, bytes as i64)
            .map_err(|e| {
                io(format!("cannot reserve {bytes} bytes for the package"))(std::io::Error::from(e))
            })?;
    }
    Ok(())
}

/// What [`reserve`] keeps of a partial file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    Held,
}

/// Checks a fetched manifest before anything is pulled: the executing member's signature, the
/// exact package the fulfilment named, this case and parties, the bloc's limits, and that it
/// opens with this node's sealing key from the sender's roster sealing key.
fn check_manifest(
    evidence: &Evidence,
    record: &PackageRecord,
    envelope: &comity_protocol::SignedEnvelope,
    roster: &crate::roster::Roster,
) -> Result<EvidenceManifest, EvidenceError> {
    let from = &record.counterparty;
    // The manifest was made when the package was sealed, perhaps before a rotation: any key
    // of the sender that was not revoked checks it (the fulfilment that names its root was
    // checked under the key rules when it arrived).
    let key = match roster.note(from, &envelope.signer) {
        Some(comity_protocol::bloc::KeyNote::Revoked(change)) => {
            return Err(EvidenceError::Refused(format!(
                "the manifest from {from} is refused: signed by a key revoked in version {}",
                change.version
            )));
        }
        Some(_) => envelope.signer.verifying_key().ok(),
        None => None,
    };
    let key = key.ok_or_else(|| {
        EvidenceError::Refused(format!(
            "the manifest from {from} is refused: signed by {}, which is not {from}'s roster key",
            envelope.signer
        ))
    })?;
    let manifest = envelope.open::<EvidenceManifest>(&key).map_err(|e| {
        EvidenceError::Refused(format!(
            "the manifest from {from} is refused: {e} (checked with {from}'s roster key)"
        ))
    })?;
    let root = EvidenceManifest::root(envelope);
    if root != record.root {
        return Err(EvidenceError::Refused(format!(
            "the manifest from {from} is refused: it is package {root}, not the {} the fulfilment named",
            record.root
        )));
    }
    let me = &evidence.inner.jurisdiction;
    if manifest.case_id != record.case_id || &manifest.from != from || &manifest.to != me {
        return Err(EvidenceError::Refused(format!(
            "the manifest from {from} is refused: it is for case {} from {} to {}",
            manifest.case_id, manifest.from, manifest.to
        )));
    }
    let limits = evidence.inner.membership.current().evidence();
    if let Some(problem) = manifest.problem(limits.max_package_bytes, limits.chunk_bytes) {
        let why = format!("the manifest from {from} is refused before transfer: {problem}");
        return Err(if manifest.total_bytes > limits.max_package_bytes {
            EvidenceError::TooLarge(why)
        } else {
            EvidenceError::Refused(why)
        });
    }
    let prologue = wire::prologue(&manifest.case_id, &manifest.from, &manifest.to);
    let opener = Opener::new(
        &evidence.inner.sealing_private,
        &manifest.handshake,
        &prologue,
        manifest.chunk_size,
    )
    .map_err(|e| EvidenceError::Refused(format!("the package from {from} is refused: {e}")))?;
    if evidence.roster_key(from).map(|k| k.0) != Some(*opener.sender()) {
        return Err(EvidenceError::Refused(format!(
            "the package from {from} is refused: it was not sealed with {from}'s roster sealing key"
        )));
    }
    Ok(manifest)
}

/// Which chunks of the partial file already hold what the manifest says: the ones this
/// process pulled, or, after a restart, the ones found on disk.
async fn verified_chunks(
    evidence: &Evidence,
    record: &PackageRecord,
    hashes: &Arc<Vec<Hash32>>,
    partial: &std::path::Path,
) -> Result<Vec<bool>, EvidenceError> {
    if let Some(bitmap) = evidence
        .inner
        .progress
        .lock()
        .expect("lock")
        .get(&record.case_id)
        .and_then(|p| p.bitmap.clone())
    {
        return Ok(bitmap);
    }
    let (path, record, hashes) = (partial.to_owned(), record.clone(), hashes.clone());
    let started = Instant::now();
    let found = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        let mut buf = Vec::new();
        let mut have = vec![false; record.chunks as usize];
        for (i, slot) in have.iter_mut().enumerate() {
            let i = i as u64;
            let len = wire::sealed_len(wire::plain_len(record.total_bytes, record.chunk_size, i));
            buf.resize(len, 0);
            if file
                .read_exact_at(&mut buf, wire::sealed_offset(record.chunk_size, i))
                .is_ok()
            {
                *slot = Hash32(*blake3::hash(&buf).as_bytes()) == hashes[i as usize];
            }
        }
        Ok::<_, std::io::Error>(have)
    })
    .await
    .map_err(|e| EvidenceError::Io(e.to_string()))?;
    let have = match found {
        Ok(have) => have,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![false; record.chunks as usize],
        Err(e) => return Err(io("cannot read the partial package")(e)),
    };
    let count = have.iter().filter(|h| **h).count();
    info!(case = %record.case_id, verified = count, of = record.chunks, ms = started.elapsed().as_millis() as u64, "resuming evidence transfer from the chunks on disk");
    Ok(have)
}

/// Asks for one chunk, checks its length and hash against the manifest and writes it in
/// place. Returns its index and length.
async fn fetch_chunk(
    evidence: Evidence,
    peer: libp2p::PeerId,
    record: PackageRecord,
    index: u64,
    hashes: Arc<Vec<Hash32>>,
    file: Arc<super::direct::PackageWriter>,
) -> Result<(u64, usize), ChunkFailure> {
    let frame = to_canonical_cbor(&EvidenceRequest::Chunk {
        case_id: record.case_id,
        root: record.root,
        index,
    })
    .map_err(|e| ChunkFailure::Local(EvidenceError::Io(e.to_string())))?;
    let response = evidence
        .inner
        .network
        .evidence_request(peer, frame)
        .await
        .map_err(|e| ChunkFailure::Unreachable(e.to_string()))?;
    let (frame, range) = match chunk_or_answer(response) {
        Answered::Chunk(frame, range) => (frame, range),
        Answered::Other(Some(EvidenceResponse::Refused { reason })) => {
            return Err(ChunkFailure::Unreachable(format!(
                "chunk {index} refused: {reason}"
            )));
        }
        Answered::Other(_) => {
            return Err(ChunkFailure::Bad(
                index,
                format!("the answer for chunk {index} is not a chunk"),
            ));
        }
    };
    let len = range.len();
    let expected = wire::sealed_len(wire::plain_len(
        record.total_bytes,
        record.chunk_size,
        index,
    ));
    if len != expected {
        return Err(ChunkFailure::Bad(
            index,
            format!("chunk {index} is {len} bytes, the manifest says {expected} (truncated)"),
        ));
    }
    let offset = wire::sealed_offset(record.chunk_size, index);
    tokio::task::spawn_blocking(move || {
        let bytes = &frame[range];
        if Hash32(*blake3::hash(bytes).as_bytes()) != hashes[index as usize] {
            return Err(ChunkFailure::Bad(
                index,
                format!("chunk {index}'s BLAKE3 hash is not the manifest's (altered)"),
            ));
        }
        file.write_at(bytes, offset)
            .map_err(|e| ChunkFailure::Local(io("cannot write the package")(e)))?;
        crate::network::codec::recycle(frame);
        Ok((index, len))
    })
    .await
    .map_err(|e| ChunkFailure::Local(EvidenceError::Io(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::EvidenceLimits;

    fn j(code: &str) -> Jurisdiction {
        code.parse().unwrap()
    }

    #[test]
    fn an_offer_is_taken_only_from_the_executing_member_within_the_limits() {
        let limits = EvidenceLimits {
            max_package_bytes: 1 << 30,
            chunk_bytes: 1 << 20,
        };
        let de = j("DE");
        let offer = |total_bytes, chunk_size| Offer {
            case_id: CaseId::new(),
            from: &de,
            chunk_size,
            total_bytes,
        };
        let fine = offer(5 << 20, 1 << 20);
        assert_eq!(fine.problem(&de, &limits, false, 0), None);
        assert_eq!(
            fine.problem(&de, &limits, false, MAX_PREFETCH_PER_MEMBER - 1),
            None
        );
        let said = |o: &Offer, executing: &str, announced, running| {
            o.problem(&j(executing), &limits, announced, running)
                .unwrap()
        };
        assert!(said(&fine, "IT", false, 0).contains("not shared with DE"));
        assert!(said(&fine, "DE", true, 0).contains("already announced"));
        assert!(said(&fine, "DE", false, MAX_PREFETCH_PER_MEMBER).contains("already has 2"));
        assert!(said(&offer(5 << 20, 64 << 10), "DE", false, 0).contains("chunks of 1048576"));
        assert!(said(&offer(0, 1 << 20), "DE", false, 0).contains("does not fit"));
        assert!(said(&offer((1 << 30) + 1, 1 << 20), "DE", false, 0).contains("largest package"));
    }
}
