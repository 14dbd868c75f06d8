//! Evidence delivery: the executing side seals an officer's files into a package, signs its
//! manifest and records the fulfilment; the requesting side pulls the sealed chunks over
//! `/comity/evidence/2.0.0`, checks each against the manifest, resumes after any interruption,
//! records a signed `evidence-received`, and opens the package only for an authorised officer.
//!
//! Packages live as files under the evidence directory, sealed end to end to the requesting
//! jurisdiction's sealing key: the sender cannot read what it queued, and the receiver keeps it
//! sealed until an officer fetches it. Records in `Cf::Evidence` say where each transfer
//! stands; the manifest in them is sealed with the case's data key, so purging the case makes
//! the package unreadable even before its file is deleted. This module logs identifiers and
//! sizes only, never file names or content.

mod direct;
mod faults;
mod keys;
mod open;
mod package;
pub mod record;
mod serve;
mod tables;
mod transfer;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comity_protocol::evidence::{EvidenceManifest, SealingKey};
use comity_protocol::{CaseId, Jurisdiction, SignedEnvelope};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::cases::Cases;
use crate::cases::record::{CaseRecord, Role};
use crate::identity::NodeIdentity;
use crate::network;
use crate::store::{Store, StoreError};

pub use faults::EvidenceFaults;
use keys::load_or_create_sealing_key;
pub use keys::{create_sealing_key, read_sealing_public};
pub use open::{FileStream, PackageIndex};
pub use package::{Fulfilled, Upload, UploadFile, UploadTicket};
pub use record::{Direction, EvidenceStatus, PackageRecord, PackageState, announce};

/// How often every package is looked at (and orphaned files deleted), beside the sweeps of
/// the packages that need tending.
const FULL_SWEEP: Duration = Duration::from_secs(3600);

/// What the case service tells of fulfilments that name a package (see
/// [`crate::cases::Fulfilments`]).
#[derive(Debug, Default)]
pub struct Announcer;

impl crate::cases::Fulfilments for Announcer {
    fn announced(
        &self,
        batch: &mut crate::store::Batch,
        case_id: comity_protocol::CaseId,
        root: comity_protocol::Hash32,
        from: &comity_protocol::Jurisdiction,
        at: comity_protocol::Timestamp,
    ) {
        announce(batch, case_id, root, from, at);
    }

    fn purged(&self, batch: &mut crate::store::Batch, case_id: comity_protocol::CaseId) {
        record::purged(batch, &case_id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("no evidence package for case {0} on this node")]
    NotFound(CaseId),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(
        "evidence for case {case} is not complete: {verified} of {total} chunks verified; `comity evidence status {case}` shows progress"
    )]
    Incomplete {
        case: CaseId,
        verified: u64,
        total: u64,
    },
    #[error("the package is damaged: {0}; nothing was written out")]
    Damaged(String),
    #[error("evidence storage: {0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Case(#[from] crate::cases::CaseError),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> EvidenceError {
    move |e| {
        if e.raw_os_error() == Some(nix::libc::ENOSPC) {
            EvidenceError::Io(format!(
                "{what}: the disk is full; free space under the evidence directory and retry"
            ))
        } else {
            EvidenceError::Io(format!("{what}: {e}"))
        }
    }
}

/// Live progress of an incoming transfer (not stored: rebuilt from the file on restart).
#[derive(Clone, Debug, Default)]
struct Progress {
    verified: u64,
    bytes_verified: u64,
    fetched: u64,
    /// Pulls that reached the chunks, and when the first of them started.
    pulls: u32,
    first_started: Option<Instant>,
    started: Option<Instant>,
    bytes_at_start: u64,
    /// Chunks pulled while the package was sealed that the manifest confirmed.
    staged: u64,
    /// Which chunks are verified, while this process pulls the package.
    bitmap: Option<Vec<bool>>,
}

/// First and longest wait before a stopped transfer is tried again (sooner when its sender
/// reconnects).
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(120);
/// Age after which a package file no record names is deleted.
pub(super) const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The evidence service: a cheap, cloneable handle.
#[derive(Clone, Debug)]
pub struct Evidence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    cases: Cases,
    network: network::Client,
    membership: crate::roster::Membership,
    identity: NodeIdentity,
    jurisdiction: Jurisdiction,
    sealing_private: [u8; 32],
    sealing_public: SealingKey,
    dir: PathBuf,
    parallel: usize,
    progress: Mutex<HashMap<CaseId, Progress>>,
    served: Mutex<HashMap<CaseId, u64>>,
    /// Incoming transfers running now: one task per case.
    running: Mutex<HashSet<CaseId>>,
    /// Transfers that stopped without progress: how many times in a row, and when to retry.
    backoff: Mutex<HashMap<CaseId, (u32, Instant)>>,
    uploads: Mutex<HashMap<String, Upload>>,
    /// Cases whose package is being uploaded and sealed now: one at a time per case.
    uploading: Mutex<HashSet<CaseId>>,
    /// Sent packages as served (without their manifests), so that a chunk request does not
    /// decode the stored record.
    serving: Mutex<HashMap<CaseId, Arc<PackageRecord>>>,
    /// Outgoing packages being sealed now, whose chunks the requester may pull as they are
    /// sealed (`EvidenceRequest::Staged`).
    staging: Mutex<HashMap<CaseId, Arc<package::Staging>>>,
    /// Requests for staged chunks not sealed yet, waiting now, by member.
    staged_waiting: Mutex<HashMap<Jurisdiction, usize>>,
    /// Incoming packages offered before their fulfilment: the hashes of the chunks pulled so
    /// far, checked against the signed manifest once it arrives.
    prefetched: Mutex<HashMap<CaseId, transfer::Prefetched>>,
    faults: Mutex<EvidenceFaults>,
    /// Wakes the transfer and cleanup loop (a fulfilment or a receipt arrived).
    wake: Arc<Notify>,
}

/// Everything the evidence service needs to start.
#[derive(Debug)]
pub struct EvidenceSettings {
    pub dir: PathBuf,
    pub sealing_key: PathBuf,
    pub parallel: usize,
}

impl Evidence {
    pub fn start(
        settings: EvidenceSettings,
        store: Store,
        cases: Cases,
        network: network::Client,
        inbound: tokio::sync::mpsc::Receiver<network::InboundRequest>,
        identity: NodeIdentity,
    ) -> Result<Self, EvidenceError> {
        for sub in ["in", "out"] {
            std::fs::create_dir_all(settings.dir.join(sub))
                .map_err(io(format!("cannot create {}", settings.dir.display())))?;
        }
        let (sealing_private, public) = load_or_create_sealing_key(&settings.sealing_key)?;
        let membership = cases.governance().membership();
        let jurisdiction = cases.jurisdiction().clone();
        match membership
            .current()
            .by_jurisdiction(&jurisdiction)
            .and_then(|(m, _)| m.sealing_key)
        {
            Some(listed) if listed == public => {}
            Some(listed) => warn!(
                %listed, ours = %public,
                "the bloc configuration lists another sealing key for this node: evidence sealed to it cannot be opened here; propose a new card (`comity bloc propose`) or restore the sealing key file"
            ),
            None => warn!(
                sealing_key = %public,
                "the bloc configuration lists no sealing key for this node: no evidence can be delivered to it until its card with `sealing_key` is applied"
            ),
        }
        let wake = cases.evidence_wake();
        let evidence = Self {
            inner: Arc::new(Inner {
                store,
                cases,
                network,
                membership,
                identity,
                jurisdiction,
                sealing_private,
                sealing_public: public,
                dir: settings.dir,
                parallel: settings.parallel.clamp(1, 64),
                progress: Mutex::new(HashMap::new()),
                served: Mutex::new(HashMap::new()),
                running: Mutex::new(HashSet::new()),
                backoff: Mutex::new(HashMap::new()),
                uploads: Mutex::new(HashMap::new()),
                uploading: Mutex::new(HashSet::new()),
                serving: Mutex::new(HashMap::new()),
                staging: Mutex::new(HashMap::new()),
                staged_waiting: Mutex::new(HashMap::new()),
                prefetched: Mutex::new(HashMap::new()),
                faults: Mutex::new(EvidenceFaults::default()),
                wake,
            }),
        };
        tokio::spawn(serve::serve(evidence.clone(), inbound));
        tokio::spawn(evidence.clone().run());
        Ok(evidence)
    }

    /// Starts transfers of announced or interrupted packages, and tidies up: a sent package
    /// whose arrival was confirmed, or any package of a purged case, is deleted. Each sweep
    /// reads only the packages that need tending; every package, and the files no record
    /// names, are looked at on start and hourly.
    async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut full = tokio::time::interval(FULL_SWEEP);
        let mut connections = self.inner.network.connections();
        loop {
            let swept = tokio::select! {
                _ = full.tick() => self.sweep_all().await,
                _ = tick.tick() => self.sweep().await,
                _ = self.inner.wake.notified() => self.sweep().await,
                Ok(peer) = connections.recv() => {
                    self.reconnected(peer);
                    self.sweep().await
                }
            };
            if let Err(e) = swept {
                warn!(error = %e, "evidence sweep failed; retrying");
            }
        }
    }

    /// Every package held, and the files no record names.
    async fn sweep_all(&self) -> Result<(), EvidenceError> {
        // Offers whose fulfilment never came (the upload failed): their files are orphans.
        self.inner
            .prefetched
            .lock()
            .expect("lock")
            .retain(|_, p| p.current());
        let records = self.records()?;
        let known: HashSet<String> = records.iter().map(|r| r.case_id.to_string()).collect();
        // One package that cannot be tended does not hold up the others.
        for record in records {
            let case_id = record.case_id;
            if let Err(e) = self.tend(record).await {
                warn!(case = %case_id, error = %e, "evidence package not tended; tried again next sweep");
            }
        }
        self.delete_orphans(&known)
    }

    /// The packages that need tending, and those of cases purged since.
    async fn sweep(&self) -> Result<(), EvidenceError> {
        let (open, purged) = self.tending()?;
        for case_id in purged {
            match self.record(&case_id)? {
                Some(record) => self.forget(&record, "its case was purged").await?,
                None => self.clear_purged(&case_id).await?,
            }
        }
        for case_id in open {
            match self.record(&case_id)? {
                Some(record) => self.tend(record).await?,
                None => self.mark_open(&case_id, false).await?,
            }
        }
        Ok(())
    }

    /// Does what one package needs now, and notes whether it will need more.
    async fn tend(&self, record: PackageRecord) -> Result<(), EvidenceError> {
        let case = self.inner.cases.record_closed(&record.case_id)?;
        let Some(case) = case.filter(|c| c.purged_at.is_none()) else {
            return self.forget(&record, "its case was purged").await;
        };
        let open = match record.direction {
            Direction::Outgoing => {
                // Confirmed, or never recorded (a crash between sealing and the event).
                let named = case.log.manifest_root == Some(record.root);
                let age = self.inner.cases.now().as_millis() - record.created_at.as_millis();
                if !named && age > 600_000 {
                    return self.forget(&record, "no fulfilment names it").await;
                }
                if named && case.log.evidence_received_at.is_some() && !record.delivered {
                    self.delete_file(&record)?;
                    let mut record = record.clone();
                    record.delivered = true;
                    self.put(&record).await?;
                    info!(case = %record.case_id, root = %record.root, "sent package deleted: the requester confirmed its arrival");
                    return Ok(());
                }
                !record.delivered
            }
            Direction::Incoming => {
                if record.state != PackageState::Complete {
                    self.spawn_transfer(record.case_id);
                    true
                } else if case.log.evidence_received_at.is_none() {
                    self.confirm(&record).await;
                    true
                } else {
                    false
                }
            }
        };
        self.mark_open(&record.case_id, open).await
    }

    /// Deletes package files no record names (a crash between writing a file and recording
    /// it, or after a purge), once they are an hour old and no upload is writing them.
    fn delete_orphans(&self, known: &HashSet<String>) -> Result<(), EvidenceError> {
        let mut uploading: HashSet<String> = self
            .inner
            .uploading
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.to_string())
            .collect();
        uploading.extend(
            self.inner
                .prefetched
                .lock()
                .expect("lock")
                .keys()
                .map(|c| c.to_string()),
        );
        for sub in ["in", "out"] {
            let Ok(entries) = std::fs::read_dir(self.inner.dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let case = name.split('.').next().unwrap_or_default().to_owned();
                if known.contains(&case) || uploading.contains(&case) {
                    continue;
                }
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > ORPHAN_AGE);
                if old {
                    std::fs::remove_file(entry.path())
                        .map_err(io(format!("cannot delete {}", entry.path().display())))?;
                    info!(file = %name, "evidence file without a record deleted");
                }
            }
        }
        Ok(())
    }

    /// A member is back: transfers from it resume now, not at the end of their backoff.
    fn reconnected(&self, peer: libp2p::PeerId) {
        let roster = self.inner.membership.current();
        let Some((member, _)) = roster.by_peer(&peer) else {
            return;
        };
        let backing_off: Vec<CaseId> = self
            .inner
            .backoff
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .collect();
        let waiting: Vec<CaseId> = backing_off
            .into_iter()
            .filter(|case| {
                self.record(case)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.counterparty == member.jurisdiction)
            })
            .collect();
        let mut backoff = self.inner.backoff.lock().expect("lock");
        for case in waiting {
            backoff.remove(&case);
        }
    }

    fn spawn_transfer(&self, case_id: CaseId) {
        if self
            .inner
            .backoff
            .lock()
            .expect("lock")
            .get(&case_id)
            .is_some_and(|(_, at)| Instant::now() < *at)
        {
            return;
        }
        if !self.inner.running.lock().expect("lock").insert(case_id) {
            return;
        }
        let evidence = self.clone();
        tokio::spawn(async move {
            // Whatever happens to this task (a panic included), the case may run again.
            let _running = Running(evidence.clone(), case_id);
            let verified = |e: &Evidence| {
                e.inner
                    .progress
                    .lock()
                    .expect("lock")
                    .get(&case_id)
                    .map_or(0, |p| p.verified)
            };
            let before = verified(&evidence);
            match transfer::pull(&evidence, case_id).await {
                Ok(()) => {
                    evidence
                        .inner
                        .backoff
                        .lock()
                        .expect("lock")
                        .remove(&case_id);
                }
                Err(e) => {
                    // Retried sooner while it makes progress, later and later while it does not.
                    let progressed = verified(&evidence) > before;
                    let delay = {
                        let mut backoff = evidence.inner.backoff.lock().expect("lock");
                        let failures = match backoff.get(&case_id) {
                            Some((n, _)) if !progressed => n + 1,
                            _ => 1,
                        };
                        let delay = RETRY_FIRST
                            .saturating_mul(1 << (failures - 1).min(6))
                            .min(RETRY_MAX);
                        backoff.insert(case_id, (failures, Instant::now() + delay));
                        delay
                    };
                    warn!(case = %case_id, error = %e, retry_in_s = delay.as_secs(), "evidence transfer stopped; it resumes later");
                    // Before the case may run again, so that a new pull's record is not
                    // overwritten by this one's.
                    let _ = evidence.note_error(&case_id, &e.to_string()).await;
                }
            }
        });
    }

    /// Records the signed `evidence-received` for a complete package (retried by the sweep
    /// until it is in the log).
    async fn confirm(&self, record: &PackageRecord) {
        let kind = comity_protocol::EventKind::EvidenceReceived {
            manifest_root: record.root,
        };
        match self.inner.cases.act(record.case_id, kind, "node").await {
            Ok(_) => {
                info!(case = %record.case_id, root = %record.root, "evidence received and confirmed to the sender")
            }
            Err(e) => {
                warn!(case = %record.case_id, error = %e, "could not record evidence-received yet")
            }
        }
    }

    /// What a case bundle carries of a case's package: its signed manifest (checked again)
    /// and, when this node still holds the whole sealed package, the file of sealed chunks.
    /// `None` when no manifest is held yet.
    pub fn for_export(
        &self,
        case_id: &CaseId,
    ) -> Result<Option<(SignedEnvelope, EvidenceManifest, Option<PathBuf>)>, EvidenceError> {
        let Some(record) = self.record(case_id)? else {
            return Ok(None);
        };
        let case = self
            .inner
            .cases
            .get(case_id)?
            .ok_or(crate::cases::CaseError::NotFound(*case_id))?;
        let (envelope, manifest) = match self.manifest(&record, &case) {
            Ok(found) => found,
            Err(EvidenceError::Incomplete { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let whole = record.state == PackageState::Complete && !record.delivered;
        let path = whole.then(|| self.package_path(record.direction, case_id, false));
        Ok(Some((envelope, manifest, path)))
    }

    /// Where a case's package stands, for officers and operators.
    pub fn status(&self, case_id: &CaseId) -> Result<EvidenceStatus, EvidenceError> {
        let record = self
            .record(case_id)?
            .ok_or(EvidenceError::NotFound(*case_id))?;
        let case = self.inner.cases.get(case_id)?;
        let progress = self
            .inner
            .progress
            .lock()
            .expect("lock")
            .get(case_id)
            .cloned()
            .unwrap_or_default();
        let served = *self
            .inner
            .served
            .lock()
            .expect("lock")
            .get(case_id)
            .unwrap_or(&0);
        let complete = record.state == PackageState::Complete;
        let (verified, bytes_verified, fetched, pulls, staged) = if complete {
            (
                record.chunks,
                record.sealed_bytes,
                record.chunks_fetched,
                record.pulls,
                record.chunks_staged,
            )
        } else {
            (
                progress.verified,
                progress.bytes_verified,
                progress.fetched,
                progress.pulls,
                progress.staged,
            )
        };
        let rate = progress
            .started
            .filter(|_| !complete)
            .map(|at| at.elapsed().as_secs_f64())
            .filter(|s| *s > 0.2)
            .map(|s| (bytes_verified.saturating_sub(progress.bytes_at_start)) as f64 / s);
        let eta = rate
            .filter(|r| *r > 0.0)
            .map(|r| record.sealed_bytes.saturating_sub(bytes_verified) as f64 / r);
        Ok(EvidenceStatus {
            case_id: *case_id,
            direction: record.direction,
            root: record.root,
            counterparty: record.counterparty.clone(),
            state: record.state,
            total_bytes: record.total_bytes,
            sealed_bytes: record.sealed_bytes,
            chunks: record.chunks,
            chunks_verified: verified,
            bytes_verified,
            chunks_fetched: fetched,
            pulls,
            chunks_staged: staged,
            chunks_served: served,
            rate_bytes_per_s: rate,
            eta_secs: eta,
            created_at: record.created_at,
            completed_at: record.completed_at,
            transfer_ms: record.transfer_ms,
            received_confirmed: case.is_some_and(|c| {
                c.log.manifest_root == Some(record.root) && c.log.evidence_received_at.is_some()
            }),
            last_error: record.last_error,
        })
    }

    /// The public key evidence for this node is sealed to.
    pub fn sealing_key(&self) -> SealingKey {
        self.inner.sealing_public
    }

    /// Testnets only: sets what the sending side does wrong.
    pub fn set_faults(&self, faults: EvidenceFaults) {
        warn!(?faults, "fault injection: evidence serving");
        *self.inner.faults.lock().expect("lock") = faults;
    }

    fn roster_key(&self, j: &Jurisdiction) -> Option<SealingKey> {
        self.inner
            .membership
            .current()
            .by_jurisdiction(j)
            .and_then(|(m, _)| m.sealing_key)
    }

    fn case_for(&self, case_id: &CaseId, role: Role) -> Result<CaseRecord, EvidenceError> {
        let case = self
            .inner
            .cases
            .get(case_id)?
            .ok_or(crate::cases::CaseError::NotFound(*case_id))?;
        if case.role != role {
            return Err(EvidenceError::Refused(format!(
                "this node is the {} side of case {case_id}",
                case.role
            )));
        }
        Ok(case)
    }
}

/// Marks a case's transfer as running until dropped.
pub(super) struct Running(pub(super) Evidence, pub(super) CaseId);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.inner.running.lock().expect("lock").remove(&self.1);
    }
}
