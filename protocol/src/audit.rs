//! The audit log's signed checkpoints: a node's statement that its append-only Merkle log
//! (RFC 9162 hashing, see [`crate::merkle`]) had `tree_size` entries with root `root` at `at`.
//! Anyone with the node's public key can check an inclusion or consistency proof against them.

use serde::{Deserialize, Serialize};

use crate::envelope::Signable;
use crate::ids::{Hash32, Jurisdiction, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    const DOMAIN: &'static str = "comity/checkpoint/v1";
}

/// A witness's countersignature of another member's checkpoint, made after checking that the
/// checkpoint is consistent with the last one the witness had seen of that member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cosignature {
    pub log: Jurisdiction,
    pub tree_size: u64,
    pub root: Hash32,
    pub witness: Jurisdiction,
    pub at: Timestamp,
}

impl Signable for Cosignature {
    const DOMAIN: &'static str = "comity/cosignature/v1";
}
