//! Proof generation from a [`NodeStore`] of complete subtrees, with `O(log n)` reads.
//!
//! Each hash of an RFC 9162 proof is the Merkle Tree Hash of some range of leaves. When that
//! range is a complete subtree, the hash is one stored node. At most one range of a proof is
//! not complete: the one that reaches the unbalanced right edge of the tree. Its hash is
//! recomputed from the complete subtrees that cover it, one per set bit of its size. So an
//! inclusion or consistency proof reads at most `2 * 64` nodes, and about `2 * log2(n)`.
//!
//! Generation happens in two steps, so a store can batch its reads: a [`ProofPlan`] names
//! the nodes (pure arithmetic on the sizes), then [`ProofPlan::assemble`] turns their hashes
//! into the proof.

use std::ops::Range;

use crate::compact::CompactRange;
use crate::error::{self, PlanError, PlanErrorKind, ProveError};
use crate::hasher::{Digest, MerkleHasher};
use crate::math::{self, Step};
use crate::node::{NodeId, NodeStore};

/// The nodes to read for one proof, and how to turn their hashes into the proof.
///
/// `node_ids()` lists complete subtrees in proof order (lowest level first). Each one is a
/// proof hash by itself, except those in `ephemeral_range()`: they cover the one proof
/// range that is not a complete subtree, listed right to left (smallest first), and fold
/// into a single proof hash. The layout matches transparency-dev/merkle's `proof.Nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofPlan {
    node_ids: Vec<NodeId>,
    // INVARIANT: either empty, or at least two nodes that cover one RFC 9162 subtree,
    // listed right to left.
    ephemeral: Range<usize>,
}

/// The plan of an inclusion proof (RFC 9162 `PATH`) for the leaf at `index` in the tree of
/// `size` leaves. Requires `index < size`.
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, PlanError> {
    if index >= size {
        return Err(PlanError::new(
            PlanErrorKind::IndexBeyondSize,
            error::index_beyond_size(index, size),
        ));
    }
    let mut steps = Vec::with_capacity(64);
    math::inclusion_steps(index, size, |step| steps.push(step));
    Ok(ProofPlan::from_steps_root_first(&steps))
}

/// The plan of a consistency proof (RFC 9162 `PROOF`) from the tree of `size1` leaves to
/// the tree of `size2` leaves. Requires `0 < size1 <= size2`, or `size1 == size2 == 0`;
/// equal sizes give the empty proof.
pub fn consistency_plan(size1: u64, size2: u64) -> Result<ProofPlan, PlanError> {
    if size2 < size1 {
        return Err(PlanError::new(
            PlanErrorKind::Size2LessThanSize1,
            error::size2_less_than_size1(size1, size2),
        ));
    }
    if size1 == size2 {
        return Ok(ProofPlan::from_steps_root_first(&[]));
    }
    if size1 == 0 {
        return Err(PlanError::new(
            PlanErrorKind::Size1Zero,
            error::size1_zero(size2),
        ));
    }
    let mut steps = Vec::with_capacity(64);
    math::consistency_steps(size1, size2, |step| steps.push(step));
    Ok(ProofPlan::from_steps_root_first(&steps))
}

impl ProofPlan {
    fn from_steps_root_first(steps: &[Step]) -> ProofPlan {
        let mut node_ids = Vec::with_capacity(steps.len() + 64);
        let mut ephemeral = 0..0;
        let mut covering = Vec::with_capacity(64);
        for step in steps.iter().rev() {
            covering.clear();
            math::covering_nodes(step.clone(), |node_id| covering.push(node_id));
            if covering.len() > 1 {
                assert!(
                    ephemeral.is_empty(),
                    "an RFC 9162 proof has one incomplete subtree"
                );
                ephemeral = node_ids.len()..node_ids.len() + covering.len();
            }
            node_ids.extend(covering.iter().rev());
        }
        ProofPlan {
            node_ids,
            ephemeral,
        }
    }

    /// The nodes to read, in proof order. See [`ProofPlan`].
    pub fn node_ids(&self) -> &[NodeId] {
        &self.node_ids
    }

    /// The positions in [`ProofPlan::node_ids`] that fold into one proof hash; empty when
    /// every proof hash is a stored node (for example in a tree whose size is a power of two).
    pub fn ephemeral_range(&self) -> Range<usize> {
        self.ephemeral.clone()
    }

    /// How many hashes the proof has.
    pub fn proof_len(&self) -> usize {
        self.node_ids.len() - self.ephemeral.len() + usize::from(!self.ephemeral.is_empty())
    }

    /// The proof, from the hashes of [`ProofPlan::node_ids`] in the same order. Panics if
    /// `node_hashes` has a different length than `node_ids()`.
    pub fn assemble<H: MerkleHasher>(&self, hasher: &H, node_hashes: &[Digest]) -> Vec<Digest> {
        assert_eq!(
            node_hashes.len(),
            self.node_ids.len(),
            "one hash per planned node"
        );
        let mut proof = Vec::with_capacity(self.proof_len());
        proof.extend_from_slice(&node_hashes[..self.ephemeral.start]);
        if let Some((smallest, larger)) = node_hashes[self.ephemeral.clone()].split_first() {
            // Listed right to left, so each next node is the left neighbour of what has been
            // folded so far.
            let folded = larger
                .iter()
                .fold(*smallest, |right, left| hasher.hash_children(left, &right));
            proof.push(folded);
        }
        proof.extend_from_slice(&node_hashes[self.ephemeral.end..]);
        proof
    }

    /// Reads the planned nodes from `store` in one [`NodeStore::node_hashes`] call and
    /// assembles the proof.
    pub fn prove<H: MerkleHasher, S: NodeStore>(
        &self,
        hasher: &H,
        store: &S,
    ) -> Result<Vec<Digest>, S::Error> {
        let node_hashes = store.node_hashes(&self.node_ids)?;
        Ok(self.assemble(hasher, &node_hashes))
    }
}

/// The inclusion proof for the leaf at `index` in the tree of `size` leaves, read from
/// `store`, which must hold every node complete at `size`. Verify it with
/// [`crate::verify_inclusion`].
pub fn inclusion_proof<H: MerkleHasher, S: NodeStore>(
    hasher: &H,
    store: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Digest>, ProveError<S::Error>> {
    inclusion_plan(index, size)?
        .prove(hasher, store)
        .map_err(ProveError::Store)
}

/// The consistency proof from the tree of `size1` leaves to the tree of `size2` leaves,
/// read from `store`, which must hold every node complete at `size2`. Verify it with
/// [`crate::verify_consistency`].
pub fn consistency_proof<H: MerkleHasher, S: NodeStore>(
    hasher: &H,
    store: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Digest>, ProveError<S::Error>> {
    consistency_plan(size1, size2)?
        .prove(hasher, store)
        .map_err(ProveError::Store)
}

/// The root of the tree of `size` leaves (RFC 9162 `MTH`), from the `popcount(size)` stored
/// nodes that cover it. `size` may be any size the store holds, not only the latest.
pub fn root_at<H: MerkleHasher, S: NodeStore>(
    hasher: &H,
    store: &S,
    size: u64,
) -> Result<Digest, S::Error> {
    Ok(CompactRange::from_store(store, size)?.root(hasher))
}

/// The root of the tree whose leaves have the given hashes (RFC 9162 `MTH`), in `O(n)`
/// time and `O(log n)` memory. For rebuilding a tree from a log, not for proofs.
pub fn root_from_leaf_hashes<H: MerkleHasher>(hasher: &H, leaf_hashes: &[Digest]) -> Digest {
    let mut range = CompactRange::new();
    for leaf_hash in leaf_hashes {
        range.append(hasher, *leaf_hash, |_, _| {});
    }
    range.root(hasher)
}
