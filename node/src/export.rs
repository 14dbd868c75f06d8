//! Case bundles (`comity case export`): everything needed to verify a case without the network
//! or either node, gathered from this node's store and signed by it. The format and its checks
//! are `comity_protocol::bundle`; this module only collects the parts.
//!
//! It reads content (the signed events carry the request), so the admin API logs the read
//! with its stated purpose before a byte leaves. It never writes to the store.

use std::path::PathBuf;

use comity_protocol::bundle::{BundleHeader, BundleMember, Part, PartKind, encode_part};
use comity_protocol::canonical::bstr_head;
use comity_protocol::evidence::EvidenceManifest;
use comity_protocol::{CaseId, Hash32, Timestamp, to_canonical_cbor};

use crate::audit::{self, AuditError};
use crate::cases::{CaseError, Cases};
use crate::evidence::{Evidence, EvidenceError};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Case(#[from] CaseError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("the audit log: {0}")]
    Audit(#[from] AuditError),
    #[error(
        "event {0} of the case is not in this node's audit log; the store may be damaged (run `comity audit verify`)"
    )]
    NotAudited(Hash32),
    #[error(
        "--with-evidence: this node no longer holds the sealed package (the executing side deletes its copy once the requester confirms it arrived); export from the requesting node"
    )]
    NoPackage,
}

/// A bundle ready to be written: the encoded items held in memory (the header, events,
/// receipt, manifest and proofs: kilobytes), and the sealed package to stream after them.
#[derive(Debug)]
pub struct Bundle {
    pub items: Vec<u8>,
    pub evidence: Option<EvidenceFile>,
}

/// The sealed chunks to append, read from the package file in manifest order.
#[derive(Debug)]
pub struct EvidenceFile {
    pub path: PathBuf,
    pub chunk_lens: Vec<usize>,
}

impl Bundle {
    /// Bytes of the whole bundle.
    pub fn len(&self) -> u64 {
        let chunks = self.evidence.as_ref().map_or(0, |e| {
            e.chunk_lens
                .iter()
                .map(|n| (bstr_head(*n).len() + *n) as u64)
                .sum()
        });
        self.items.len() as u64 + chunks
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gathers case `case_id` into a bundle signed by this node.
pub fn build(
    cases: &Cases,
    evidence: &Evidence,
    store: &Store,
    case_id: CaseId,
    with_evidence: bool,
    now: Timestamp,
) -> Result<Bundle, ExportError> {
    let record = cases.get(&case_id)?.ok_or(CaseError::NotFound(case_id))?;
    // Every signature checked again before this node vouches for the bundle.
    let log = cases.verify_log(&case_id)?;
    let events = log.envelopes();
    let package = evidence.for_export(&case_id)?;

    let entries = audit::case_event_entries(store, &case_id)?;
    let indices = events
        .iter()
        .map(|e| {
            let id = Hash32::of(&e.to_bytes());
            entries.get(&id).copied().ok_or(ExportError::NotAudited(id))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let proofs = audit::prove_all(store, &indices)?;

    let mut parts: Vec<(PartKind, Vec<u8>)> = Vec::new();
    parts.extend(events.iter().map(|e| (PartKind::Event, e.to_bytes())));
    if let Some(receipt) = &record.receipt {
        parts.push((PartKind::Receipt, receipt.to_bytes()));
    }
    let mut chunk_parts = Vec::new();
    let mut evidence_file = None;
    if let Some((envelope, manifest, path)) = package {
        parts.push((PartKind::Manifest, envelope.to_bytes()));
        if with_evidence {
            let path = path.ok_or(ExportError::NoPackage)?;
            let chunk_lens = chunk_lens(&manifest);
            chunk_parts = manifest
                .chunks
                .iter()
                .zip(&chunk_lens)
                .map(|(hash, len)| Part {
                    kind: PartKind::Chunk,
                    len: *len as u64,
                    blake3: *hash,
                })
                .collect();
            evidence_file = Some(EvidenceFile { path, chunk_lens });
        }
    } else if with_evidence {
        return Err(ExportError::NoPackage);
    }
    for proof in &proofs {
        parts.push((
            PartKind::Proof,
            to_canonical_cbor(proof).map_err(|e| CaseError::Encode(e.to_string()))?,
        ));
    }

    let members = bundle_members(&cases.roster());
    let header = BundleHeader {
        case_id,
        exported_by: cases.jurisdiction().clone(),
        exported_at: now,
        state: log.view().state.map(|s| s.code().to_owned()),
        genesis_message: record.genesis_message,
        members,
        parts: parts
            .iter()
            .map(|(kind, bytes)| Part::of(*kind, bytes))
            .chain(chunk_parts)
            .collect(),
    };
    let signed = cases.sign_object(&header)?;
    let mut items = encode_part(&signed.to_bytes());
    for (_, bytes) in &parts {
        items.extend_from_slice(&encode_part(bytes));
    }
    Ok(Bundle {
        items,
        evidence: evidence_file,
    })
}

/// Every key of every member, present and past, with how it stands now: events signed before
/// a rotation still check with the key of their time, the audit proofs' cosigners are named,
/// and a revoked key is said to be one.
fn bundle_members(roster: &crate::roster::Roster) -> Vec<BundleMember> {
    roster
        .config()
        .map(|config| {
            config
                .members
                .iter()
                .flat_map(|m| {
                    m.signing_keys.iter().map(|k| BundleMember {
                        jurisdiction: m.jurisdiction.clone(),
                        name: m.name.clone(),
                        signing_key: k.key,
                        note: match config.note(&m.jurisdiction, &k.key) {
                            Some(comity_protocol::bloc::KeyNote::Current) | None => None,
                            Some(note) => Some(note.to_string()),
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn chunk_lens(manifest: &EvidenceManifest) -> Vec<usize> {
    (0..manifest.chunks.len() as u64)
        .map(|i| manifest.sealed_chunk_len(i))
        .collect()
}
