//! Merkle tree hashing, inclusion proofs and consistency proofs, exactly as RFC 9162
//! (Certificate Transparency 2.0, §2.1), which keeps the tree of RFC 6962.
//!
//! The audit log is a Merkle tree so that a node can prove an entry is in it (an inclusion
//! proof) and that a later log extends an earlier one without rewriting it (a consistency
//! proof). Leaves and interior nodes are hashed with distinct prefixes, so a leaf can never be
//! passed off as a node:
//!
//! * leaf hash: `SHA-256(0x00 || data)`;
//! * node hash: `SHA-256(0x01 || left || right)`;
//! * the hash of the empty tree is `SHA-256("")`.
//!
//! **Why SHA-256 when the rest of Comity uses BLAKE3** (see [`Hash32::of`]): following RFC 9162
//! to the letter lets anyone check the log with existing transparency-log tooling and with the
//! public test vectors of the Certificate Transparency reference implementation. [`Hash32`]
//! only carries the 32 bytes here; in this module they are SHA-256 values, never BLAKE3.
//!
//! Proofs list hashes from the leaf (or the old subtree) upwards, as RFC 9162 defines them.
//! Verification follows the algorithms of §2.1.3.2 and §2.1.4.2 step by step, after checking
//! the proof's length up front so that a malformed proof is refused with a precise error and
//! without hashing. Pure code: no I/O.

use crate::ids::Hash32;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a Merkle proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MerkleError {
    #[error("leaf index {index} is out of range for a tree of {tree_size} leaves")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeLargerThanNew { old_size: u64, new_size: u64 },
    #[error("proof has {got} hashes, but a valid proof for these sizes has exactly {expected}")]
    BadProofLength { expected: usize, got: usize },
    #[error("inclusion proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("consistency proof does not lead to the expected old root hash")]
    OldRootMismatch,
    #[error("consistency proof does not lead to the expected new root hash")]
    NewRootMismatch,
}

/// Hash of a leaf whose content is `data`: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root hash of the empty tree: `SHA-256("")`.
pub fn empty_root() -> [u8; 32] {
    Sha256::digest([]).into()
}

/// Merkle Tree Hash (RFC 9162 §2.1.1) of a tree whose leaf hashes are `leaves`, in order.
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Inclusion proof (RFC 9162 §2.1.3.1, `PATH`) of the leaf at `index` in the tree of `leaves`.
pub fn inclusion_proof(leaves: &[[u8; 32]], index: u64) -> Result<Vec<[u8; 32]>, MerkleError> {
    let tree_size = len_u64(leaves);
    let m = usize::try_from(index)
        .ok()
        .filter(|&m| m < leaves.len())
        .ok_or(MerkleError::IndexOutOfRange { index, tree_size })?;
    let mut proof = Vec::with_capacity(inclusion_proof_len(index, tree_size));
    path(m, leaves, &mut proof);
    Ok(proof)
}

/// Checks that `proof` shows the leaf `leaf_hash` at `index` in the tree of `tree_size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &[u8; 32],
    index: u64,
    tree_size: u64,
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> Result<(), MerkleError> {
    // 1. The index must be within the tree.
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_proof_len(index, tree_size);
    if proof.len() != expected {
        return Err(MerkleError::BadProofLength {
            expected,
            got: proof.len(),
        });
    }
    // 2. and 3.
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf_hash;
    // 4.
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::BadProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    if sn != 0 {
        return Err(MerkleError::BadProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Consistency proof (RFC 9162 §2.1.4.1, `PROOF`) between the tree of the first `old_size`
/// leaves and the tree of all `leaves`. Empty when `old_size` is 0 or the whole tree.
pub fn consistency_proof(leaves: &[[u8; 32]], old_size: u64) -> Result<Vec<[u8; 32]>, MerkleError> {
    let new_size = len_u64(leaves);
    let m = usize::try_from(old_size)
        .ok()
        .filter(|&m| m <= leaves.len())
        .ok_or(MerkleError::OldSizeLargerThanNew { old_size, new_size })?;
    let mut proof = Vec::with_capacity(consistency_proof_len(old_size, new_size));
    if m > 0 {
        subproof(m, leaves, true, &mut proof);
    }
    Ok(proof)
}

/// Checks that `proof` shows the tree of `new_size` leaves with root `new_root` extends the
/// tree of `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
///
/// RFC 9162 defines the algorithm for `0 < old_size < new_size`. At the edges, as other
/// implementations do: equal sizes need an empty proof and equal roots; an old size of 0 needs
/// an empty proof and `old_root` equal to [`empty_root`], since every tree extends the empty one.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &[u8; 32],
    new_root: &[u8; 32],
    proof: &[[u8; 32]],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::OldSizeLargerThanNew { old_size, new_size });
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(MerkleError::BadProofLength {
            expected,
            got: proof.len(),
        });
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::NewRootMismatch)
        };
    }
    if old_size == 0 {
        return if *old_root == empty_root() {
            Ok(())
        } else {
            Err(MerkleError::OldRootMismatch)
        };
    }
    let bad_length = MerkleError::BadProofLength {
        expected,
        got: proof.len(),
    };
    // 1. (an empty proof cannot pass the length check, but stay literal) and 2.
    if proof.is_empty() {
        return Err(bad_length);
    }
    let seed = old_size.is_power_of_two().then_some(old_root);
    let mut path = seed.into_iter().chain(proof);
    // 3.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    // 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    let first = path.next().ok_or_else(|| bad_length.clone())?;
    let (mut fr, mut sr) = (*first, *first);
    // 6.
    for c in path {
        if sn == 0 {
            return Err(bad_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7.
    if sn != 0 {
        return Err(bad_length);
    }
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::NewRootMismatch);
    }
    Ok(())
}

/// Number of hashes in every valid inclusion proof for `index` in a tree of `tree_size`
/// leaves (0 if the index is out of range): one per level below the point where the paths to
/// `index` and to the last leaf part, plus one per left sibling above it.
pub fn inclusion_proof_len(index: u64, tree_size: u64) -> usize {
    if index >= tree_size {
        return 0;
    }
    let (inner, border) = decompose(index, tree_size);
    (inner + border) as usize
}

/// Number of hashes in every valid consistency proof from `old_size` to `new_size` (0 if
/// `old_size` is 0, equal to `new_size` or larger).
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size >= new_size {
        return 0;
    }
    let (inner, border) = decompose(old_size - 1, new_size);
    // The old tree's last complete subtree of 2^shift leaves is the proof's starting point;
    // it is sent unless it is the whole old tree, whose root the verifier already has.
    let shift = old_size.trailing_zeros();
    let start = u32::from(!old_size.is_power_of_two());
    (start + inner - shift + border) as usize
}

/// Splits the audit path of `index` in a tree of `size` leaves into the levels where it runs
/// beside the path to the last leaf (`inner`) and the left siblings above them (`border`).
fn decompose(index: u64, size: u64) -> (u32, u32) {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner, border)
}

/// The largest power of two smaller than `n`, for `n >= 2`.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn len_u64(leaves: &[[u8; 32]]) -> u64 {
    u64::try_from(leaves.len()).unwrap_or(u64::MAX)
}

/// `PATH(m, D[n])` of RFC 9162 §2.1.3.1, appended to `out`.
fn path(m: usize, leaves: &[[u8; 32]], out: &mut Vec<[u8; 32]>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// `SUBPROOF(m, D[n], b)` of RFC 9162 §2.1.4.1, appended to `out`; `0 < m <= n`.
fn subproof(m: usize, leaves: &[[u8; 32]], b: bool, out: &mut Vec<[u8; 32]>) {
    let n = leaves.len();
    if m == n {
        if !b {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], b, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

fn to_hashes(proof: Vec<[u8; 32]>) -> Vec<Hash32> {
    proof.into_iter().map(Hash32).collect()
}

fn to_arrays(path: &[Hash32]) -> Vec<[u8; 32]> {
    path.iter().map(|h| h.0).collect()
}

/// An inclusion proof with the sizes it is for, to send or store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    /// SHA-256 hashes, from the leaf's sibling up to the root's child.
    pub path: Vec<Hash32>,
}

impl InclusionProof {
    /// The proof for the leaf at `index` in the tree of `leaves`.
    pub fn generate(leaves: &[[u8; 32]], index: u64) -> Result<Self, MerkleError> {
        Ok(Self {
            index,
            tree_size: len_u64(leaves),
            path: to_hashes(inclusion_proof(leaves, index)?),
        })
    }

    /// See [`verify_inclusion`].
    pub fn verify(&self, leaf_hash: &[u8; 32], root: &[u8; 32]) -> Result<(), MerkleError> {
        verify_inclusion(
            leaf_hash,
            self.index,
            self.tree_size,
            &to_arrays(&self.path),
            root,
        )
    }
}

/// A consistency proof with the sizes it is for, to send or store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    /// SHA-256 hashes, as RFC 9162 orders them.
    pub path: Vec<Hash32>,
}

impl ConsistencyProof {
    /// The proof that the tree of `leaves` extends the tree of its first `old_size` leaves.
    pub fn generate(leaves: &[[u8; 32]], old_size: u64) -> Result<Self, MerkleError> {
        Ok(Self {
            old_size,
            new_size: len_u64(leaves),
            path: to_hashes(consistency_proof(leaves, old_size)?),
        })
    }

    /// See [`verify_consistency`].
    pub fn verify(&self, old_root: &[u8; 32], new_root: &[u8; 32]) -> Result<(), MerkleError> {
        verify_consistency(
            self.old_size,
            self.new_size,
            old_root,
            new_root,
            &to_arrays(&self.path),
        )
    }
}

/// The right edge of a Merkle tree (a "compact range" from 0): the roots of the perfect
/// subtrees that the binary decomposition of its size gives, largest first. It is all that
/// appending leaves and computing the root need, so that a growing log's root costs
/// O(log n) per leaf instead of a pass over every leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Frontier {
    size: u64,
    peaks: Vec<[u8; 32]>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: [u8; 32]) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a peak of the same height as `node`.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The RFC 9162 root of the leaves pushed so far.
    pub fn root(&self) -> [u8; 32] {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }

    /// Whether the peaks fit the size (a stored frontier read back).
    pub fn is_well_formed(&self) -> bool {
        self.peaks.len() == self.size.count_ones() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<[u8; 32]> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_is_largest_power_of_two_below() {
        let table = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (300, 256)];
        for (n, k) in table {
            assert_eq!(split(n), k, "n = {n}");
        }
    }

    #[test]
    fn proof_lengths_match_the_recursive_definitions() {
        for n in 0..=70u64 {
            let ls = leaves(n);
            for i in 0..n {
                let proof = inclusion_proof(&ls, i).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(i, n), "index {i} size {n}");
            }
            for m in 0..=n {
                let proof = consistency_proof(&ls, m).unwrap();
                assert_eq!(proof.len(), consistency_proof_len(m, n), "old {m} new {n}");
            }
        }
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let ls = leaves(5);
        assert_eq!(
            inclusion_proof(&ls, 5),
            Err(MerkleError::IndexOutOfRange {
                index: 5,
                tree_size: 5
            })
        );
        assert_eq!(
            inclusion_proof(&[], 0),
            Err(MerkleError::IndexOutOfRange {
                index: 0,
                tree_size: 0
            })
        );
        assert_eq!(
            consistency_proof(&ls, 6),
            Err(MerkleError::OldSizeLargerThanNew {
                old_size: 6,
                new_size: 5
            })
        );
        assert_eq!(
            verify_consistency(6, 5, &root(&ls), &root(&ls), &[]),
            Err(MerkleError::OldSizeLargerThanNew {
                old_size: 6,
                new_size: 5
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn a_frontier_has_the_root_of_every_prefix(n in 0usize..300) {
            let leaves: Vec<[u8; 32]> = (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let mut frontier = Frontier::default();
            proptest::prop_assert_eq!(frontier.root(), root(&[]));
            for (i, leaf) in leaves.iter().enumerate() {
                frontier.push(*leaf);
                proptest::prop_assert!(frontier.is_well_formed());
                proptest::prop_assert_eq!(frontier.root(), root(&leaves[..=i]));
            }
        }
    }
}
