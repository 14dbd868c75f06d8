//! The audit log's signed checkpoints: a node's statement that its append-only Merkle log
//! (RFC 9162 hashing, see [`crate::merkle`]) had `tree_size` entries with root `root` at `at`.
//! Anyone with the node's public key can check an inclusion or consistency proof against them.
//!
//! The entries' format and the proofs live here, not in the node, so that a verifier with no
//! node (`comity-verify`) can check them.

use serde::{Deserialize, Serialize};

use crate::envelope::{Signable, SignedEnvelope};
use crate::ids::{CaseId, Hash32, Jurisdiction, Timestamp};
use crate::merkle::{self, ConsistencyProof, InclusionProof};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Whose log.
    pub log: Jurisdiction,
    pub tree_size: u64,
    /// RFC 9162 Merkle tree hash (SHA-256) of the first `tree_size` entries.
    pub root: Hash32,
    pub at: Timestamp,
}

impl Signable for Checkpoint {
    const CONTENT_TYPE: &'static str = "application/comity.checkpoint.v1+cbor";
}

/// A witness's countersignature of another member's checkpoint, made after checking that the
/// checkpoint is consistent with the last one the witness had seen of that member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Cosignature {
    pub log: Jurisdiction,
    pub tree_size: u64,
    pub root: Hash32,
    pub witness: Jurisdiction,
    pub at: Timestamp,
}

impl Signable for Cosignature {
    const CONTENT_TYPE: &'static str = "application/comity.cosignature.v1+cbor";
}

/// What one audit entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum AuditWhat {
    /// A case event stored (ours or a peer's).
    CaseEvent {
        case_id: CaseId,
        event_id: Hash32,
        author: Jurisdiction,
        kind: String,
    },
    /// An officer read a case's content.
    Access {
        officer: String,
        case_id: CaseId,
        read: String,
    },
    /// An officer was added or revoked, or that was proposed to a second admin; `by` names
    /// the admin or admins who did it.
    Officer {
        officer: String,
        role: String,
        change: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// An officer approved a draft or a disclosure (four-eyes).
    Approval { officer: String, case_id: CaseId },
    /// An officer withdrew what waited for a second officer's approval in a case: a drafted
    /// `amendment` or an asked `override` (`pending`).
    PendingWithdrawn {
        officer: String,
        case_id: CaseId,
        pending: String,
    },
    /// An officer asked to override the policy's refusal of a case (`step: requested`), or
    /// another officer approved that (`approved`).
    PolicyOverride {
        officer: String,
        case_id: CaseId,
        step: String,
    },
    /// The node started with a policy other than the one recorded last (changed, added or
    /// removed): the BLAKE3 hash of the `policy.toml` now in force, or none.
    Policy {
        policy_hash: Option<Hash32>,
        /// What changed, rule by rule (`comity policy history`); the file itself is kept as
        /// a version (`comity policy diff`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
    },
    /// A version of the bloc configuration applied on this node.
    BlocConfig {
        version: u64,
        hash: Hash32,
        signers: Vec<Jurisdiction>,
    },
    /// An officer proposed or signed a version of the bloc configuration.
    BlocVote {
        officer: String,
        version: u64,
        hash: Hash32,
        action: String,
    },
    /// A peer's message or event was refused. One entry per peer and code per hour: `repeats`
    /// counts the refusals of that kind since the previous entry, which were not recorded
    /// one by one (a member must not be able to grow every other member's log without end).
    Refusal {
        peer: String,
        code: String,
        case_id: Option<CaseId>,
        #[serde(default, skip_serializing_if = "is_zero")]
        repeats: u64,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub at: Timestamp,
    #[serde(flatten)]
    pub what: AuditWhat,
}

/// An inclusion proof of one entry, with the signed checkpoint it is proved against: enough
/// for anyone with the node's public key to check it. With the other members' cosignatures of
/// that checkpoint, when it has some: they vouch that the node showed them the same log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryProof {
    #[serde(with = "crate::bytes::vec")]
    pub entry: Vec<u8>,
    pub proof: InclusionProof,
    pub checkpoint: SignedEnvelope,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cosignatures: Vec<SignedEnvelope>,
}

/// A consistency proof between two checkpoints, with both signed checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointConsistency {
    pub proof: ConsistencyProof,
    pub old: SignedEnvelope,
    pub new: SignedEnvelope,
}

/// Checks an entry proof with the node's public key alone.
pub fn check_entry(
    proof: &EntryProof,
    signer: &ed25519_dalek::VerifyingKey,
) -> Result<(Checkpoint, Vec<(Cosignature, crate::PublicKey)>), String> {
    let checkpoint: Checkpoint = proof
        .checkpoint
        .open(signer)
        .map_err(|e| format!("checkpoint: {e}"))?;
    if proof.proof.tree_size != checkpoint.tree_size {
        return Err("the proof is for another tree size than the checkpoint".into());
    }
    proof
        .proof
        .verify(&merkle::leaf_hash(&proof.entry), &checkpoint.root.0)
        .map_err(|e| e.to_string())?;
    // Each cosignature must be signed by its stated key and be of this very checkpoint; whose
    // key it is, the reader checks against the bloc roster.
    let mut cosigners = Vec::new();
    for envelope in &proof.cosignatures {
        let key = envelope
            .signer
            .verifying_key()
            .map_err(|e| format!("cosignature: {e}"))?;
        let c: Cosignature = envelope
            .open(&key)
            .map_err(|e| format!("cosignature: {e}"))?;
        if c.log != checkpoint.log
            || c.tree_size != checkpoint.tree_size
            || c.root != checkpoint.root
        {
            return Err(format!(
                "the cosignature by {} is of another checkpoint ({} entries)",
                c.witness, c.tree_size
            ));
        }
        cosigners.push((c, envelope.signer));
    }
    Ok((checkpoint, cosigners))
}

/// What a checked entry proof establishes, one statement a line, for printing.
pub fn entry_statements(
    proof: &EntryProof,
    checkpoint: &Checkpoint,
    cosigners: &[(Cosignature, crate::PublicKey)],
) -> Vec<String> {
    let mut lines = vec![format!(
        "entry {} is in {}'s audit log of {} entries, as signed at {}",
        proof.proof.index, checkpoint.log, checkpoint.tree_size, checkpoint.at
    )];
    lines.extend(cosigners.iter().map(|(c, key)| {
        format!(
            "cosigned by {} at {} with key {key} (check it against the bloc roster)",
            c.witness, c.at
        )
    }));
    lines
}

/// What a checked consistency proof establishes, for printing.
pub fn consistency_statement(old: &Checkpoint, new: &Checkpoint) -> String {
    format!(
        "{}'s log of {} entries (signed {}) is a prefix of its log of {} entries (signed {})",
        new.log, old.tree_size, old.at, new.tree_size, new.at
    )
}

/// Checks a consistency proof with the node's public key alone.
pub fn check_consistency(
    proof: &CheckpointConsistency,
    signer: &ed25519_dalek::VerifyingKey,
) -> Result<(Checkpoint, Checkpoint), String> {
    let old: Checkpoint = proof
        .old
        .open(signer)
        .map_err(|e| format!("old checkpoint: {e}"))?;
    let new: Checkpoint = proof
        .new
        .open(signer)
        .map_err(|e| format!("new checkpoint: {e}"))?;
    if (proof.proof.old_size, proof.proof.new_size) != (old.tree_size, new.tree_size) {
        return Err("the proof is for other sizes than the checkpoints".into());
    }
    proof
        .proof
        .verify(&old.root.0, &new.root.0)
        .map_err(|e| e.to_string())?;
    Ok((old, new))
}
