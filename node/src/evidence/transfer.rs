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
use comity_protocol::{CaseId, Hash32, from_cbor, to_canonical_cbor};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tracing::{info, warn};

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
    reserve(partial, record.sealed_bytes)?;
    record.state = PackageState::Transferring;
    record.last_error = None;
    evidence.put_with_manifest(record, sealed_manifest).await?;
    inner.progress.lock().expect("lock").insert(
        case_id,
        Progress {
            bitmap: Some(vec![false; record.chunks as usize]),
            ..Progress::default()
        },
    );
    info!(case = %case_id, root = %record.root, bytes = record.total_bytes, chunks = record.chunks, "evidence manifest verified; pulling chunks");
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
            reserve(partial, record.sealed_bytes)?;
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
    let (elapsed, fetched, pulls) = {
        let progress = inner.progress.lock().expect("lock");
        let p = progress.get(&case_id).cloned().unwrap_or_default();
        let elapsed = p.first_started.map(|at| at.elapsed()).unwrap_or_default();
        (elapsed, p.fetched, p.pulls)
    };
    record.state = PackageState::Complete;
    record.completed_at = Some(inner.cases.now());
    record.transfer_ms = Some(elapsed.as_millis() as u64);
    record.chunks_fetched = fetched;
    record.pulls = pulls;
    record.last_error = None;
    evidence.put(&record).await?;
    let mb_per_s = record.sealed_bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-3);
    info!(case = %case_id, root = %record.root, bytes = record.sealed_bytes, ms = elapsed.as_millis() as u64, pulls, mb_per_s = format!("{mb_per_s:.0}"), "evidence package received whole");
    inner.progress.lock().expect("lock").remove(&case_id);
    evidence.confirm(&record).await;
    Ok(())
}

/// Creates the partial package file with its whole size reserved, so that a full disk is found
/// before the first byte moves.
fn reserve(partial: &std::path::Path, bytes: u64) -> Result<(), EvidenceError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(partial)
        .map_err(io(format!("cannot create {}", partial.display())))?;
    if bytes > 0 {
        nix::fcntl::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, bytes as i64)
            .map_err(|e| {
                io(format!("cannot reserve {bytes} bytes for the package"))(std::io::Error::from(e))
            })?;
    }
    Ok(())
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
    // The common case, a chunk, is checked and written where it lies in the frame; anything
    // else is decoded.
    let (frame, range) = match wire::chunk_in_frame(&response) {
        Some(range) => (response, range),
        None => match from_cbor::<EvidenceResponse>(&response, MAX_EVIDENCE_RESPONSE) {
            Ok(EvidenceResponse::Chunk(bytes)) => {
                let range = 0..bytes.len();
                (bytes, range)
            }
            Ok(EvidenceResponse::Refused { reason }) => {
                return Err(ChunkFailure::Unreachable(format!(
                    "chunk {index} refused: {reason}"
                )));
            }
            _ => {
                return Err(ChunkFailure::Bad(
                    index,
                    format!("the answer for chunk {index} is not a chunk"),
                ));
            }
        },
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
