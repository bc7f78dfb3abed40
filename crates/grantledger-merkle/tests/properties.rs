//! Property tests against the naive RFC 9162 oracle in `common`: random sizes up to 2000,
//! random indices, every single-bit flip of every proof hash.

mod common;

use common::{
    build_store, naive_consistency_proof, naive_inclusion_proof, naive_root, numbered_leaf_hashes,
};
use grantledger_merkle::{
    Blake3, CompactRange, Digest, MerkleHasher, Sha256, consistency_proof, inclusion_proof,
    root_from_leaf_hashes, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

const SIZE_MAX: u64 = 2000;

/// A tree size in `1..=SIZE_MAX` and a leaf index below it.
fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1..=SIZE_MAX).prop_flat_map(|size| (Just(size), 0..size))
}

/// Two tree sizes `1 <= size1 <= size2 <= SIZE_MAX`.
fn two_sizes() -> impl Strategy<Value = (u64, u64)> {
    (1..=SIZE_MAX).prop_flat_map(|size2| (1..=size2, Just(size2)))
}

/// Every copy of `proof` with exactly one bit flipped.
fn single_bit_flips(proof: &[Digest]) -> impl Iterator<Item = Vec<Digest>> + '_ {
    (0..proof.len()).flat_map(move |position| {
        (0..256).map(move |bit| {
            let mut flipped = proof.to_vec();
            flipped[position][bit / 8] ^= 1 << (bit % 8);
            flipped
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn generated_inclusion_proofs_verify_against_the_naive_root((size, index) in size_and_index()) {
        let leaf_hashes = numbered_leaf_hashes(&Blake3, size);
        let (store, range) = build_store(&Blake3, &leaf_hashes);
        let root = naive_root(&Blake3, &leaf_hashes);
        prop_assert_eq!(range.root(&Blake3), root);
        prop_assert_eq!(root_from_leaf_hashes(&Blake3, &leaf_hashes), root);

        let proof = inclusion_proof(&Blake3, &store, index, size).unwrap();
        prop_assert_eq!(&proof, &naive_inclusion_proof(&Blake3, index as usize, &leaf_hashes));
        let leaf_hash = &leaf_hashes[index as usize];
        prop_assert!(verify_inclusion(&Blake3, index, size, leaf_hash, &proof, &root).is_ok());

        // The same proof does not place a neighbouring leaf at this index, nor this leaf
        // at a neighbouring index.
        if size > 1 {
            let other = (index + 1) % size;
            let other_leaf = &leaf_hashes[other as usize];
            prop_assert!(verify_inclusion(&Blake3, index, size, other_leaf, &proof, &root).is_err());
            prop_assert!(verify_inclusion(&Blake3, other, size, leaf_hash, &proof, &root).is_err());
        }
    }

    #[test]
    fn generated_consistency_proofs_verify_against_the_naive_roots((size1, size2) in two_sizes()) {
        let leaf_hashes = numbered_leaf_hashes(&Sha256, size2);
        let (store, _) = build_store(&Sha256, &leaf_hashes);
        let root1 = naive_root(&Sha256, &leaf_hashes[..size1 as usize]);
        let root2 = naive_root(&Sha256, &leaf_hashes);

        let proof = consistency_proof(&Sha256, &store, size1, size2).unwrap();
        prop_assert_eq!(&proof, &naive_consistency_proof(&Sha256, size1 as usize, &leaf_hashes));
        prop_assert!(verify_consistency(&Sha256, size1, size2, &proof, &root1, &root2).is_ok());
        if size1 < size2 {
            prop_assert!(verify_consistency(&Sha256, size1, size2, &proof, &root2, &root1).is_err());
        }
    }
}

proptest! {
    // Each case verifies 256 variants per proof hash.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_single_bit_flip_of_an_inclusion_proof_fails((size, index) in size_and_index()) {
        let leaf_hashes = numbered_leaf_hashes(&Blake3, size);
        let (store, range) = build_store(&Blake3, &leaf_hashes);
        let root = range.root(&Blake3);
        let leaf_hash = &leaf_hashes[index as usize];
        let proof = inclusion_proof(&Blake3, &store, index, size).unwrap();
        prop_assert!(verify_inclusion(&Blake3, index, size, leaf_hash, &proof, &root).is_ok());
        for flipped in single_bit_flips(&proof) {
            prop_assert!(verify_inclusion(&Blake3, index, size, leaf_hash, &flipped, &root).is_err());
        }
    }

    #[test]
    fn every_single_bit_flip_of_a_consistency_proof_fails((size1, size2) in two_sizes()) {
        let leaf_hashes = numbered_leaf_hashes(&Blake3, size2);
        let (store, range) = build_store(&Blake3, &leaf_hashes);
        let root1 = root_from_leaf_hashes(&Blake3, &leaf_hashes[..size1 as usize]);
        let root2 = range.root(&Blake3);
        let proof = consistency_proof(&Blake3, &store, size1, size2).unwrap();
        prop_assert!(verify_consistency(&Blake3, size1, size2, &proof, &root1, &root2).is_ok());
        for flipped in single_bit_flips(&proof) {
            prop_assert!(verify_consistency(&Blake3, size1, size2, &flipped, &root1, &root2).is_err());
        }
    }
}

/// Every pair `1 <= size1 <= size2 <= 200`: the generated consistency proof verifies
/// between the roots the builder reported at those sizes.
#[test]
fn consistency_proofs_verify_for_every_pair_of_sizes_up_to_200() {
    const SIZE2_MAX: u64 = 200;
    let leaf_hashes = numbered_leaf_hashes(&Blake3, SIZE2_MAX);
    let (store, _) = build_store(&Blake3, &leaf_hashes);
    let mut range = CompactRange::new();
    let mut roots = vec![range.root(&Blake3)];
    for leaf_hash in &leaf_hashes {
        range.append(&Blake3, *leaf_hash, |_, _| {});
        roots.push(range.root(&Blake3));
    }
    for size2 in 1..=SIZE2_MAX {
        for size1 in 1..=size2 {
            let proof = consistency_proof(&Blake3, &store, size1, size2).unwrap();
            let (root1, root2) = (&roots[size1 as usize], &roots[size2 as usize]);
            verify_consistency(&Blake3, size1, size2, &proof, root1, root2)
                .unwrap_or_else(|e| panic!("{size1} -> {size2}: {e}"));
            if size1 < size2 {
                // Not consistent with any other earlier tree of the same size.
                let other_leaf = Blake3.hash_leaf(b"not in the log");
                let mut other = leaf_hashes[..size1 as usize].to_vec();
                other[(size1 - 1) as usize] = other_leaf;
                let other_root1 = root_from_leaf_hashes(&Blake3, &other);
                assert!(
                    verify_consistency(&Blake3, size1, size2, &proof, &other_root1, root2).is_err()
                );
            }
        }
    }
}
