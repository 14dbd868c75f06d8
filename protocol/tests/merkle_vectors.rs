//! RFC 9162 Merkle tree: the public test vectors of the Certificate Transparency reference
//! implementation, exhaustive tampering checks on the 8-leaf tree, and property tests.
//!
//! Every test name starts with `merkle_` so that `cargo test -p comity-protocol merkle` runs them.

use comity_protocol::Hash32;
use comity_protocol::merkle::{
    ConsistencyProof, InclusionProof, MerkleError, consistency_proof, empty_root, inclusion_proof,
    leaf_hash, node_hash, root, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

/// Leaf data of the CT reference test tree.
const LEAF_DATA_HEX: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots of the trees of the first 1..=8 leaves.
const ROOTS_HEX: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

fn hs(texts: &[&str]) -> Vec<[u8; 32]> {
    texts.iter().map(|t| h(t)).collect()
}

fn ct_leaves() -> Vec<[u8; 32]> {
    LEAF_DATA_HEX
        .iter()
        .map(|d| leaf_hash(&hex::decode(d).unwrap()))
        .collect()
}

/// Every single-bit change of `hash` at a few byte positions.
fn tampered(hash: &[u8; 32]) -> impl Iterator<Item = [u8; 32]> + '_ {
    [0usize, 13, 31].into_iter().map(move |i| {
        let mut t = *hash;
        t[i] ^= 0x01;
        t
    })
}

#[test]
fn merkle_hash_primitives() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(root(&[]), empty_root());
    // The leaf hash of the empty string is the root of the one-leaf tree.
    assert_eq!(leaf_hash(b""), h(ROOTS_HEX[0]));
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    // Domain separation: a node is not the leaf of the same 64 bytes.
    let mut concat = a.to_vec();
    concat.extend_from_slice(&b);
    assert_ne!(node_hash(&a, &b), leaf_hash(&concat));
}

#[test]
fn merkle_roots_match_ct_vectors() {
    let leaves = ct_leaves();
    for (size, expected) in (1..=8).zip(ROOTS_HEX) {
        assert_eq!(
            hex::encode(root(&leaves[..size])),
            expected,
            "root of the tree of {size} leaves"
        );
    }
}

#[test]
fn merkle_inclusion_proofs_match_ct_vectors() {
    let leaves = ct_leaves();
    let cases: [(u64, usize, [&str; 3]); 2] = [
        (
            0,
            8,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (index, size, expected) in cases {
        let expected = hs(&expected);
        let tree = &leaves[..size];
        assert_eq!(
            inclusion_proof(tree, index).unwrap(),
            expected,
            "leaf {index} in tree of {size}"
        );
        // The vector verifies on its own, independently of our proof generation.
        let root = h(ROOTS_HEX[size - 1]);
        verify_inclusion(
            &leaves[index as usize],
            index,
            size as u64,
            &expected,
            &root,
        )
        .unwrap();
    }
}

#[test]
fn merkle_consistency_proof_matches_ct_vector() {
    let leaves = ct_leaves();
    let expected = hs(&[
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]);
    assert_eq!(consistency_proof(&leaves, 6).unwrap(), expected);
    verify_consistency(6, 8, &h(ROOTS_HEX[5]), &h(ROOTS_HEX[7]), &expected).unwrap();
}

#[test]
fn merkle_every_inclusion_proof_verifies_and_rejects_tampering() {
    let leaves = ct_leaves();
    for size in 1..=8usize {
        let tree = &leaves[..size];
        let root = root(tree);
        let n = size as u64;
        for index in 0..n {
            let leaf = &tree[index as usize];
            let proof = inclusion_proof(tree, index).unwrap();
            let ctx = format!("leaf {index} in tree of {size}");
            verify_inclusion(leaf, index, n, &proof, &root)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));

            for i in 0..proof.len() {
                for bad in tampered(&proof[i]) {
                    let mut p = proof.clone();
                    p[i] = bad;
                    assert_eq!(
                        verify_inclusion(leaf, index, n, &p, &root),
                        Err(MerkleError::RootMismatch),
                        "{ctx}: tampered proof hash {i}"
                    );
                }
            }
            for bad in tampered(leaf) {
                assert_eq!(
                    verify_inclusion(&bad, index, n, &proof, &root),
                    Err(MerkleError::RootMismatch),
                    "{ctx}: tampered leaf"
                );
            }
            for bad in tampered(&root) {
                assert_eq!(
                    verify_inclusion(leaf, index, n, &proof, &bad),
                    Err(MerkleError::RootMismatch),
                    "{ctx}: tampered root"
                );
            }
            for other in (0..=n + 1).filter(|&o| o != index) {
                assert!(
                    verify_inclusion(leaf, other, n, &proof, &root).is_err(),
                    "{ctx}: accepted at index {other}"
                );
            }
            // Truncated and extended proofs.
            if let Some((_, shorter)) = proof.split_last() {
                assert!(matches!(
                    verify_inclusion(leaf, index, n, shorter, &root),
                    Err(MerkleError::BadProofLength { .. })
                ));
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert!(matches!(
                verify_inclusion(leaf, index, n, &longer, &root),
                Err(MerkleError::BadProofLength { .. })
            ));
        }
        assert_eq!(
            inclusion_proof(tree, n),
            Err(MerkleError::IndexOutOfRange {
                index: n,
                tree_size: n
            })
        );
    }
}

#[test]
fn merkle_every_consistency_proof_verifies_and_rejects_tampering() {
    let leaves = ct_leaves();
    for new in 1..=8usize {
        let new_root = root(&leaves[..new]);
        for old in 1..=new {
            let old_root = root(&leaves[..old]);
            let (o, n) = (old as u64, new as u64);
            let proof = consistency_proof(&leaves[..new], o).unwrap();
            let ctx = format!("old {old} new {new}");
            verify_consistency(o, n, &old_root, &new_root, &proof)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(proof.is_empty(), old == new, "{ctx}");

            for i in 0..proof.len() {
                for bad in tampered(&proof[i]) {
                    let mut p = proof.clone();
                    p[i] = bad;
                    assert!(
                        verify_consistency(o, n, &old_root, &new_root, &p).is_err(),
                        "{ctx}: tampered proof hash {i}"
                    );
                }
            }
            for bad in tampered(&old_root) {
                assert!(
                    verify_consistency(o, n, &bad, &new_root, &proof).is_err(),
                    "{ctx}: tampered old root"
                );
            }
            for bad in tampered(&new_root) {
                assert!(
                    verify_consistency(o, n, &old_root, &bad, &proof).is_err(),
                    "{ctx}: tampered new root"
                );
            }
            if let Some((_, shorter)) = proof.split_last() {
                assert!(matches!(
                    verify_consistency(o, n, &old_root, &new_root, shorter),
                    Err(MerkleError::BadProofLength { .. })
                ));
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            assert!(matches!(
                verify_consistency(o, n, &old_root, &new_root, &longer),
                Err(MerkleError::BadProofLength { .. })
            ));
        }
        // Every tree extends the empty tree, and only the empty tree's root is accepted for it.
        assert!(consistency_proof(&leaves[..new], 0).unwrap().is_empty());
        verify_consistency(0, new as u64, &empty_root(), &new_root, &[]).unwrap();
        assert_eq!(
            verify_consistency(0, new as u64, &new_root, &new_root, &[]),
            Err(MerkleError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(new as u64 + 1, new as u64, &new_root, &new_root, &[]),
            Err(MerkleError::OldSizeLargerThanNew {
                old_size: new as u64 + 1,
                new_size: new as u64
            })
        );
    }
}

#[test]
fn merkle_proof_types_round_trip_and_verify() {
    let leaves = ct_leaves();
    let inclusion = InclusionProof::generate(&leaves, 5).unwrap();
    assert_eq!(inclusion.tree_size, 8);
    assert_eq!(inclusion.path[2], Hash32(h(ROOTS_HEX[3])));
    inclusion.verify(&leaves[5], &h(ROOTS_HEX[7])).unwrap();
    let json = serde_json::to_string(&inclusion).unwrap();
    assert!(json.contains(ROOTS_HEX[3]), "{json}");
    assert_eq!(
        serde_json::from_str::<InclusionProof>(&json).unwrap(),
        inclusion
    );
    let mut cbor = Vec::new();
    ciborium::into_writer(&inclusion, &mut cbor).unwrap();
    assert_eq!(
        ciborium::from_reader::<InclusionProof, _>(cbor.as_slice()).unwrap(),
        inclusion
    );

    let consistency = ConsistencyProof::generate(&leaves, 6).unwrap();
    assert_eq!((consistency.old_size, consistency.new_size), (6, 8));
    consistency
        .verify(&h(ROOTS_HEX[5]), &h(ROOTS_HEX[7]))
        .unwrap();
    assert_eq!(
        consistency.verify(&h(ROOTS_HEX[4]), &h(ROOTS_HEX[7])),
        Err(MerkleError::OldRootMismatch)
    );
    let json = serde_json::to_string(&consistency).unwrap();
    assert_eq!(
        serde_json::from_str::<ConsistencyProof>(&json).unwrap(),
        consistency
    );
}

#[test]
fn merkle_error_messages_are_clear() {
    let err = MerkleError::IndexOutOfRange {
        index: 9,
        tree_size: 8,
    };
    assert_eq!(
        err.to_string(),
        "leaf index 9 is out of range for a tree of 8 leaves"
    );
    let err = MerkleError::BadProofLength {
        expected: 3,
        got: 2,
    };
    assert!(err.to_string().contains("exactly 3"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn merkle_random_trees_all_proofs_verify(
        n in 1usize..=300,
        seed in any::<u64>(),
        olds in prop::collection::vec(any::<prop::sample::Index>(), 8),
    ) {
        let leaves: Vec<[u8; 32]> = (0..n as u64)
            .map(|i| {
                let mut data = seed.to_be_bytes().to_vec();
                data.extend_from_slice(&i.to_be_bytes());
                leaf_hash(&data)
            })
            .collect();
        let new_root = root(&leaves);
        for index in 0..n as u64 {
            let proof = inclusion_proof(&leaves, index).unwrap();
            prop_assert_eq!(
                verify_inclusion(&leaves[index as usize], index, n as u64, &proof, &new_root),
                Ok(())
            );
        }
        // Sampled old sizes, plus the edges 0, 1, n - 1 and n.
        let sampled = olds.iter().map(|i| i.index(n + 1));
        for old in sampled.chain([0, 1, n - 1, n]) {
            let proof = consistency_proof(&leaves, old as u64).unwrap();
            let old_root = root(&leaves[..old]);
            prop_assert_eq!(
                verify_consistency(old as u64, n as u64, &old_root, &new_root, &proof),
                Ok(())
            );
        }
    }
}
