//! `/comity/evidence/2.0.0`, the sending side: it serves the signed manifest and sealed chunks
//! of its packages to the requesting member only, a bounded number at once.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use comity_protocol::evidence::{
    self as wire, EvidenceRequest, EvidenceResponse, MAX_EVIDENCE_REQUEST,
};
use comity_protocol::{from_cbor, to_canonical_cbor};
use tracing::{debug, warn};

use comity_protocol::{CaseId, Jurisdiction};

use super::{Direction, Evidence, PackageRecord};
use crate::cases::record::Role;
use crate::network::InboundRequest;

/// Evidence requests answered at once; more wait in the network's bounded queue. Each holds
/// one chunk in memory.
const MAX_SERVING: usize = 32;

/// Answers evidence requests from members, each on its own task.
pub(super) async fn serve(
    evidence: Evidence,
    mut inbound: tokio::sync::mpsc::Receiver<InboundRequest>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_SERVING));
    while let Some(request) = inbound.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let evidence = evidence.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut answer = evidence.answer(request.peer, &request.frame).await;
            // Testnets only: the fault filter sits between the service and the network.
            let faults = evidence.inner.faults.lock().expect("lock").clone();
            if faults.is_set() {
                answer = faults.filter(answer).await;
            }
            let frame = match answer {
                Answer::Chunk { frame, .. } => frame,
                Answer::Manifest(envelope) => {
                    to_canonical_cbor(&EvidenceResponse::Manifest(envelope)).unwrap_or_default()
                }
                Answer::Message(response) => to_canonical_cbor(&response).unwrap_or_default(),
            };
            evidence
                .inner
                .network
                .evidence_respond((request.started, &request.frame), request.channel, frame)
                .await;
        });
    }
}

/// A response to send: a chunk already encoded (its bytes read straight into the frame, the
/// sealed chunk its last `len` bytes), the signed manifest, or any other message.
pub(super) enum Answer {
    Chunk {
        index: u64,
        len: usize,
        frame: Vec<u8>,
    },
    Manifest(comity_protocol::SignedEnvelope),
    Message(EvidenceResponse),
}

fn refused(reason: impl Into<String>) -> Answer {
    Answer::Message(EvidenceResponse::Refused {
        reason: reason.into(),
    })
}

impl Evidence {
    async fn answer(&self, peer: libp2p::PeerId, frame: &[u8]) -> Answer {
        let roster = self.inner.membership.current();
        let Some((member, _)) = roster.by_peer(&peer) else {
            return refused("not a member of the bloc");
        };
        let request: EvidenceRequest = match from_cbor(frame, MAX_EVIDENCE_REQUEST) {
            Ok(r) => r,
            Err(_) => {
                warn!(%peer, bytes = frame.len(), "malformed evidence request refused");
                return refused("malformed evidence request");
            }
        };
        let case_id = request.case_id();
        match request {
            EvidenceRequest::Offer {
                chunk_size,
                total_bytes,
                ..
            } => {
                let from = (member.jurisdiction.clone(), peer);
                return match self.take_offer(from, case_id, chunk_size, total_bytes) {
                    Ok(()) => Answer::Message(EvidenceResponse::Staging),
                    Err(reason) => {
                        debug!(case = %case_id, member = %member.jurisdiction, %reason, "evidence offer declined");
                        refused(reason)
                    }
                };
            }
            EvidenceRequest::Staged { index, .. } => {
                return self.staged(&member.jurisdiction, case_id, index).await;
            }
            EvidenceRequest::Manifest { .. } | EvidenceRequest::Chunk { .. } => {}
        }
        let record = match self.served(&case_id) {
            Ok(Some(r)) => r,
            Ok(None) => return refused(format!("no evidence package for case {case_id}")),
            Err(e) => return refused(format!("cannot read the package now: {e}")),
        };
        if record.counterparty != member.jurisdiction {
            warn!(case = %case_id, member = %member.jurisdiction, "evidence request from a member not party to the case refused");
            return refused(format!(
                "case {case_id} is not shared with {}",
                member.jurisdiction
            ));
        }
        match request {
            EvidenceRequest::Manifest { .. } => {
                let case = match self.case_for(&case_id, Role::Executing) {
                    Ok(c) => c,
                    Err(e) => return refused(e.to_string()),
                };
                match self.manifest(&record, &case) {
                    Ok((envelope, _)) => {
                        debug!(case = %case_id, "manifest served");
                        Answer::Manifest(envelope)
                    }
                    Err(e) => refused(e.to_string()),
                }
            }
            EvidenceRequest::Chunk { root, index, .. } => {
                if root != record.root {
                    return refused(format!(
                        "package {root} is not case {case_id}'s ({})",
                        record.root
                    ));
                }
                self.sealed_chunk(&record, index).await
            }
            EvidenceRequest::Offer { .. } | EvidenceRequest::Staged { .. } => {
                unreachable!("answered above")
            }
        }
    }

    /// Chunk `index` of a sealed package, read from its file.
    async fn sealed_chunk(&self, record: &PackageRecord, index: u64) -> Answer {
        if index >= record.chunks {
            return refused(format!(
                "chunk {index} does not exist: the package has {}",
                record.chunks
            ));
        }
        let path = self.package_path(Direction::Outgoing, &record.case_id, false);
        let read = tokio::task::spawn_blocking(move || std::fs::File::open(&path)).await;
        match read {
            Ok(Ok(file)) => {
                self.read_chunk(
                    record.case_id,
                    Arc::new(file),
                    record.chunk_size,
                    record.total_bytes,
                    index,
                )
                .await
            }
            Ok(Err(e)) => {
                warn!(case = %record.case_id, index, error = %e, "cannot open a sealed package");
                refused(format!("cannot read chunk {index} here: {e}"))
            }
            Err(e) => refused(e.to_string()),
        }
    }

    /// Reads chunk `index` of a package file straight into its response frame.
    async fn read_chunk(
        &self,
        case_id: CaseId,
        file: Arc<std::fs::File>,
        chunk_size: u32,
        total_bytes: u64,
        index: u64,
    ) -> Answer {
        let offset = wire::sealed_offset(chunk_size, index);
        let len = wire::sealed_len(wire::plain_len(total_bytes, chunk_size, index));
        let read = tokio::task::spawn_blocking(move || {
            let buffer = crate::network::codec::buffer(0);
            wire::chunk_frame_in(buffer, len, |out| file.read_exact_at(out, offset))
        })
        .await;
        let frame = match read {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                warn!(case = %case_id, index, error = %e, "cannot read a sealed chunk");
                return refused(format!("cannot read chunk {index} here: {e}"));
            }
            Err(e) => return refused(e.to_string()),
        };
        *self
            .inner
            .served
            .lock()
            .expect("lock")
            .entry(case_id)
            .or_default() += 1;
        Answer::Chunk { index, len, frame }
    }

    /// A chunk of the package being sealed for `case_id`, to its requester only: at once if
    /// it is sealed, else when it is (or `NotYet` after [`STAGED_WAIT`]). Once the package is
    /// sealed, from its file.
    async fn staged(&self, member: &Jurisdiction, case_id: CaseId, index: u64) -> Answer {
        if self.inner.faults.lock().expect("lock").no_staging {
            return refused("this sender serves chunks only by their package's root");
        }
        let staging = self
            .inner
            .staging
            .lock()
            .expect("lock")
            .get(&case_id)
            .cloned();
        let Some(staging) = staging else {
            return match self.served(&case_id) {
                Ok(Some(record)) if &record.counterparty == member => {
                    self.sealed_chunk(&record, index).await
                }
                Ok(Some(_)) => refused(format!("case {case_id} is not shared with {member}")),
                Ok(None) => refused(format!(
                    "no evidence package for case {case_id} is being sealed"
                )),
                Err(e) => refused(format!("cannot read the package now: {e}")),
            };
        };
        if &staging.counterparty != member {
            warn!(case = %case_id, %member, "staged chunk asked for by a member not party to the case; refused");
            return refused(format!("case {case_id} is not shared with {member}"));
        }
        let chunks = wire::chunk_count(staging.total_bytes, staging.chunk_size);
        if index >= chunks {
            return refused(format!(
                "chunk {index} does not exist: the package will have {chunks}"
            ));
        }
        // Each waiting request holds one of the service's answers in flight: a member may
        // keep only so many waiting, or it could hold them all from the other members.
        let _waiting = match StagedWaiting::enter(self, member, *staging.sealed.borrow() > index) {
            Some(w) => w,
            None => {
                warn!(case = %case_id, %member, "too many staged chunks asked for at once; refused");
                return refused(format!(
                    "more than {MAX_STAGED_WAITING} chunks asked for ahead of the sealing at once"
                ));
            }
        };
        let mut sealed = staging.sealed.clone();
        match tokio::time::timeout(STAGED_WAIT, sealed.wait_for(|n| *n > index)).await {
            Ok(Ok(_)) => {}
            // Not sealed in time: the requester asks again.
            Err(_) => return Answer::Message(EvidenceResponse::NotYet),
            // The sealing stopped: the upload failed, or it finished and the package is
            // served from its record.
            Ok(Err(_)) => {
                return refused(format!(
                    "the package for case {case_id} stopped being sealed; wait for its fulfilment"
                ));
            }
        }
        let Ok(file) = staging.file.try_clone() else {
            return refused("cannot read the package being sealed");
        };
        self.read_chunk(
            case_id,
            Arc::new(file),
            staging.chunk_size,
            staging.total_bytes,
            index,
        )
        .await
    }
}

/// Requests for chunks not sealed yet that one member may keep waiting at once (a requester
/// pulls `[evidence] parallel`, 8 by default, at a time).
const MAX_STAGED_WAITING: usize = 16;

/// One member's request waiting for a chunk to be sealed, counted while it waits.
struct StagedWaiting<'a> {
    evidence: &'a Evidence,
    member: Option<Jurisdiction>,
}

impl<'a> StagedWaiting<'a> {
    /// Counts a request from `member` that must wait (not one whose chunk is sealed already);
    /// `None` if the member has too many waiting.
    fn enter(evidence: &'a Evidence, member: &Jurisdiction, ready: bool) -> Option<Self> {
        if ready {
            return Some(Self {
                evidence,
                member: None,
            });
        }
        let mut waiting = evidence.inner.staged_waiting.lock().expect("lock");
        let count = waiting.entry(member.clone()).or_default();
        if *count >= MAX_STAGED_WAITING {
            return None;
        }
        *count += 1;
        Some(Self {
            evidence,
            member: Some(member.clone()),
        })
    }
}

impl Drop for StagedWaiting<'_> {
    fn drop(&mut self) {
        let Some(member) = self.member.take() else {
            return;
        };
        let mut waiting = self.evidence.inner.staged_waiting.lock().expect("lock");
        if let Some(count) = waiting.get_mut(&member) {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&member);
            }
        }
    }
}

/// How long a request for a chunk not sealed yet waits before it is answered `NotYet`: well
/// within the evidence protocol's request timeout (60 s).
const STAGED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
