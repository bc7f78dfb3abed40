//! Generation from a node store: the append-only builder emits exactly the complete
//! subtrees, proofs at any past size come out as the RFC defines them, and a proof in a
//! tree of a million leaves reads `O(log n)` nodes.

mod common;

use std::collections::BTreeSet;

use common::{
    build_store, naive_consistency_proof, naive_inclusion_proof, naive_root, numbered_leaf_hashes,
};
use grantledger_merkle::{
    Blake3, CompactRange, MemoryNodeStore, MerkleHasher, NodeId, NodeMissingError, PlanErrorKind,
    ProveError, Sha256, consistency_plan, consistency_proof, inclusion_plan, inclusion_proof,
    root_at, verify_consistency, verify_inclusion,
};

/// Reads allowed per proof: one complete node per level on the path, plus the complete
/// subtrees that make up the one ephemeral node, each at most 64.
const PROOF_READS_MAX: u64 = 2 * 64;

#[test]
fn append_emits_every_complete_node_exactly_once() {
    let mut range = CompactRange::new();
    let mut emitted = BTreeSet::new();
    for size in 1..=300u64 {
        range.append(
            &Blake3,
            Blake3.hash_leaf(&size.to_be_bytes()),
            |node_id, _| {
                assert!(emitted.insert(node_id), "{node_id:?} emitted twice");
            },
        );
        let complete: BTreeSet<NodeId> = (0..=8u8)
            .flat_map(|level| (0..size >> level).map(move |index| NodeId::new(level, index)))
            .collect();
        assert_eq!(emitted, complete, "size {size}");
        assert!(complete.iter().all(|node_id| node_id.is_complete_in(size)));
        assert_eq!(
            emitted.len() as u64,
            2 * size - u64::from(size.count_ones())
        );
    }
}

/// Every inclusion proof for every index of every size up to 64, read from one store of
/// 64 leaves, equals the RFC's `PATH` computed by the naive recursion, and verifies.
#[test]
fn inclusion_proofs_at_every_past_size_equal_the_naive_path() {
    let leaf_hashes = numbered_leaf_hashes(&Sha256, 64);
    let (store, _) = build_store(&Sha256, &leaf_hashes);
    for size in 1..=64usize {
        let root = naive_root(&Sha256, &leaf_hashes[..size]);
        assert_eq!(
            root_at(&Sha256, &store, size as u64).unwrap(),
            root,
            "size {size}"
        );
        for index in 0..size {
            let proof = inclusion_proof(&Sha256, &store, index as u64, size as u64).unwrap();
            let expected = naive_inclusion_proof(&Sha256, index, &leaf_hashes[..size]);
            assert_eq!(proof, expected, "index {index}, size {size}");
            let leaf_hash = &leaf_hashes[index];
            verify_inclusion(&Sha256, index as u64, size as u64, leaf_hash, &proof, &root).unwrap();
        }
    }
}

#[test]
fn consistency_proofs_between_every_pair_of_past_sizes_equal_the_naive_proof() {
    let leaf_hashes = numbered_leaf_hashes(&Sha256, 64);
    let (store, _) = build_store(&Sha256, &leaf_hashes);
    for size2 in 1..=64usize {
        let root2 = naive_root(&Sha256, &leaf_hashes[..size2]);
        for size1 in 1..=size2 {
            let root1 = naive_root(&Sha256, &leaf_hashes[..size1]);
            let proof = consistency_proof(&Sha256, &store, size1 as u64, size2 as u64).unwrap();
            let expected = naive_consistency_proof(&Sha256, size1, &leaf_hashes[..size2]);
            assert_eq!(proof, expected, "sizes {size1} -> {size2}");
            verify_consistency(&Sha256, size1 as u64, size2 as u64, &proof, &root1, &root2)
                .unwrap();
        }
    }
}

/// A million leaves: roots, inclusion proofs and consistency proofs at the latest and at
/// past sizes each read at most `2 * 64` nodes (in fact about `2 * log2 n`).
#[test]
fn proofs_in_a_million_leaf_tree_read_o_log_n_nodes() {
    const LEAVES: u64 = 1_000_000;
    let past_sizes = [1, 2, 3, 1 << 19, (1 << 19) + 1, 999_999, 654_321, LEAVES];
    let mut store = MemoryNodeStore::new();
    let mut range = CompactRange::new();
    let mut roots = Vec::new();
    for leaf in 0..LEAVES {
        range.append(
            &Blake3,
            Blake3.hash_leaf(&leaf.to_be_bytes()),
            |node_id, hash| store.insert(node_id, *hash),
        );
        if past_sizes.contains(&range.size()) {
            roots.push((range.size(), range.root(&Blake3)));
        }
    }
    assert!(store.node_count() < 2 * LEAVES as usize);
    let reads_log_bound = 2 * u64::from(64 - LEAVES.leading_zeros());
    let mut reads_max = 0;

    for &(size, root) in &roots {
        store.reset_read_count();
        assert_eq!(root_at(&Blake3, &store, size).unwrap(), root, "size {size}");
        assert_eq!(
            store.read_count(),
            u64::from(size.count_ones()),
            "root reads, size {size}"
        );

        for index in [0, size / 3, size / 2, size.saturating_sub(2), size - 1] {
            store.reset_read_count();
            let proof = inclusion_proof(&Blake3, &store, index, size).unwrap();
            let reads = store.read_count();
            assert_eq!(
                reads,
                inclusion_plan(index, size).unwrap().node_ids().len() as u64
            );
            assert!(
                reads <= PROOF_READS_MAX && reads <= reads_log_bound,
                "{reads} reads"
            );
            reads_max = reads_max.max(reads);
            let leaf_hash = Blake3.hash_leaf(&index.to_be_bytes());
            verify_inclusion(&Blake3, index, size, &leaf_hash, &proof, &root).unwrap();
        }

        for &(size1, root1) in roots.iter().filter(|(size1, _)| *size1 <= size) {
            store.reset_read_count();
            let proof = consistency_proof(&Blake3, &store, size1, size).unwrap();
            let reads = store.read_count();
            assert_eq!(
                reads,
                consistency_plan(size1, size).unwrap().node_ids().len() as u64
            );
            assert!(
                reads <= PROOF_READS_MAX && reads <= reads_log_bound,
                "{reads} reads"
            );
            reads_max = reads_max.max(reads);
            verify_consistency(&Blake3, size1, size, &proof, &root1, &root).unwrap();
        }
    }
    // The unbalanced right edge is where the extra reads come from; make sure one of the
    // sizes exercised it.
    assert!(
        reads_max > 20,
        "the largest proof read only {reads_max} nodes"
    );
}

#[test]
fn a_node_the_store_lacks_is_a_store_error_and_bad_sizes_are_plan_errors() {
    let (store, _) = build_store(&Blake3, &numbered_leaf_hashes(&Blake3, 5));
    match inclusion_proof(&Blake3, &store, 0, 8) {
        Err(ProveError::Store(NodeMissingError { node_id })) => {
            assert_eq!(node_id, NodeId::new(2, 1))
        }
        other => panic!("expected a missing node, got {other:?}"),
    }
    match inclusion_proof(&Blake3, &store, 5, 5) {
        Err(ProveError::Plan(error)) => {
            assert_eq!(error.kind(), PlanErrorKind::IndexBeyondSize);
            assert_eq!(error.to_string(), "leaf index `5` is beyond tree size `5`");
        }
        other => panic!("expected a plan error, got {other:?}"),
    }
    let kind = |result: Result<Vec<_>, ProveError<NodeMissingError>>| match result {
        Err(ProveError::Plan(error)) => error.kind(),
        other => panic!("expected a plan error, got {other:?}"),
    };
    assert_eq!(
        kind(consistency_proof(&Blake3, &store, 4, 3)),
        PlanErrorKind::Size2LessThanSize1
    );
    assert_eq!(
        kind(consistency_proof(&Blake3, &store, 0, 3)),
        PlanErrorKind::Size1Zero
    );
    assert!(consistency_proof(&Blake3, &store, 0, 0).unwrap().is_empty());
    assert!(consistency_proof(&Blake3, &store, 5, 5).unwrap().is_empty());
}

/// A proof made with one hash function does not verify with the other.
#[test]
fn a_proof_is_bound_to_its_hasher() {
    let leaves: Vec<Vec<u8>> = (0..10u8).map(|leaf| vec![leaf]).collect();
    let blake3_hashes: Vec<_> = leaves.iter().map(|leaf| Blake3.hash_leaf(leaf)).collect();
    let (store, range) = build_store(&Blake3, &blake3_hashes);
    let proof = inclusion_proof(&Blake3, &store, 3, 10).unwrap();
    let root = range.root(&Blake3);
    verify_inclusion(&Blake3, 3, 10, &blake3_hashes[3], &proof, &root).unwrap();
    assert!(verify_inclusion(&Sha256, 3, 10, &blake3_hashes[3], &proof, &root).is_err());
    let sha256_leaf = Sha256.hash_leaf(&leaves[3]);
    assert!(verify_inclusion(&Blake3, 3, 10, &sha256_leaf, &proof, &root).is_err());
}
