//! Fault injection for testnets (`[testing] faults`): a filter between the evidence service
//! and the network that makes the sending side misbehave on purpose — a tampered or truncated
//! chunk, a forged manifest, a slow sender. The service itself has no branch for any of it.

use serde::{Deserialize, Serialize};

use comity_protocol::evidence::EvidenceResponse;
use comity_protocol::to_canonical_cbor;

use super::serve::Answer;

/// Testnets only: what the sending side does wrong on purpose.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceFaults {
    /// Flip a byte of this chunk when serving it.
    pub tamper_chunk: Option<u64>,
    /// Serve this chunk cut short.
    pub truncate_chunk: Option<u64>,
    /// Serve the manifest with a signature that does not verify.
    pub forge_manifest: bool,
    /// Wait this long before serving each chunk (to interrupt a transfer halfway).
    pub delay_ms: Option<u64>,
    /// Offer nothing and serve no chunk before the manifest is signed (as a sender that does
    /// not stage): the whole transfer runs after the fulfilment.
    pub no_staging: bool,
}

impl EvidenceFaults {
    /// Whether any fault is set.
    pub fn is_set(&self) -> bool {
        self.tamper_chunk.is_some()
            || self.truncate_chunk.is_some()
            || self.forge_manifest
            || self.delay_ms.is_some()
            || self.no_staging
    }

    /// What the member is sent instead of `answer`.
    pub(super) async fn filter(&self, answer: Answer) -> Answer {
        match answer {
            Answer::Manifest(mut envelope) if self.forge_manifest => {
                envelope.signature.0[0] ^= 1;
                Answer::Manifest(envelope)
            }
            Answer::Chunk { index, len, frame } => {
                if let Some(ms) = self.delay_ms {
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                Answer::Chunk {
                    index,
                    len,
                    frame: self.chunk(index, len, frame),
                }
            }
            other => other,
        }
    }

    /// A chunk's frame (its last `len` bytes are the sealed chunk), altered as set.
    fn chunk(&self, index: u64, len: usize, mut frame: Vec<u8>) -> Vec<u8> {
        if self.tamper_chunk == Some(index) {
            let at = frame.len() - len / 2;
            frame[at] ^= 0x40;
        }
        if self.truncate_chunk == Some(index) {
            let start = frame.len() - len;
            let cut = frame[start..start + len / 2].to_vec();
            frame = to_canonical_cbor(&EvidenceResponse::Chunk(cut)).unwrap_or_default();
        }
        frame
    }
}
