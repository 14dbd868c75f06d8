//! `/comity/evidence/2.0.0`, the sending side: it serves the signed manifest and sealed chunks
//! of its packages to the requesting member only, a bounded number at once.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use comity_protocol::evidence::{
    self as wire, EvidenceRequest, EvidenceResponse, MAX_EVIDENCE_REQUEST,
};
use comity_protocol::{from_cbor, to_canonical_cbor};
use tracing::{debug, warn};

use super::{Direction, Evidence};
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
        let case_id = match &request {
            EvidenceRequest::Manifest { case_id } | EvidenceRequest::Chunk { case_id, .. } => {
                *case_id
            }
        };
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
                if index >= record.chunks {
                    return refused(format!(
                        "chunk {index} does not exist: the package has {}",
                        record.chunks
                    ));
                }
                let path = self.package_path(Direction::Outgoing, &case_id, false);
                let offset = wire::sealed_offset(record.chunk_size, index);
                let len = wire::sealed_len(wire::plain_len(
                    record.total_bytes,
                    record.chunk_size,
                    index,
                ));
                let read = tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path)?;
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
        }
    }
}
