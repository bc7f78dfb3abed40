//! The append-only tree builder: a compact range over the leaves `[0, size)`.

use crate::hasher::{Digest, MerkleHasher};
use crate::math;
use crate::node::{NodeId, NodeStore};

/// The state needed to keep appending to a tree and to compute its root: the hashes of the
/// complete subtrees that cover the leaves `[0, size)`, one per set bit of `size`, largest
/// (leftmost) first. That is at most 64 hashes, whatever the size.
///
/// [`CompactRange::append`] takes the next leaf hash and reports every node that the leaf
/// completes: the leaf's own node, then each parent it closes. A storage layer writes
/// those nodes (once each, see [`crate::node`]) in the same batch as the record, which is
/// all that [`crate::inclusion_proof`] and [`crate::consistency_proof`] later need. Over
/// `n` appends that is fewer than `2n` writes, amortised two per leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    // INVARIANT: peaks.len() == size.count_ones(), and peaks[i] is the hash of the i-th
    // node (left to right) of the covering of [0, size) by complete subtrees.
    peaks: Vec<Digest>,
}

impl CompactRange {
    /// The range of the empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Rebuilds the range of a tree of `size` leaves from a store, for example when the log
    /// reopens: reads the `popcount(size)` nodes that cover `[0, size)`.
    pub fn from_store<S: NodeStore>(store: &S, size: u64) -> Result<CompactRange, S::Error> {
        let peaks = store.node_hashes(&CompactRange::peak_ids(size))?;
        Ok(CompactRange { size, peaks })
    }

    /// The nodes whose hashes make up the range of a tree of `size` leaves, largest first.
    pub fn peak_ids(size: u64) -> Vec<NodeId> {
        let mut node_ids = Vec::with_capacity(size.count_ones() as usize);
        math::covering_nodes(0..size, |node_id| node_ids.push(node_id));
        node_ids
    }

    /// How many leaves have been appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of the nodes named by [`CompactRange::peak_ids`] for the current size.
    pub fn peaks(&self) -> &[Digest] {
        &self.peaks
    }

    /// Appends the leaf with hash `leaf_hash` at index `self.size()`, and calls
    /// `on_node_complete` for each node that became complete, lowest first: the leaf node
    /// `(0, size)`, then one parent per merge. Panics if the tree already holds `u64::MAX`
    /// leaves.
    pub fn append<H: MerkleHasher>(
        &mut self,
        hasher: &H,
        leaf_hash: Digest,
        mut on_node_complete: impl FnMut(NodeId, &Digest),
    ) {
        assert!(self.size < u64::MAX, "the tree is full");
        let mut node_id = NodeId::leaf(self.size);
        let mut hash = leaf_hash;
        on_node_complete(node_id, &hash);
        // Each trailing one bit of the old size is a peak of the same height as the new
        // node, immediately to its left: merge them.
        for _ in 0..self.size.trailing_ones() {
            let left = self.peaks.pop().expect("one peak per set bit of size");
            hash = hasher.hash_children(&left, &hash);
            node_id = node_id.parent();
            on_node_complete(node_id, &hash);
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The root of the tree of `self.size()` leaves (RFC 9162 `MTH`).
    pub fn root<H: MerkleHasher>(&self, hasher: &H) -> Digest {
        fold_from_right(hasher, &self.peaks).unwrap_or_else(|| hasher.empty_root())
    }
}

/// The RFC 9162 hash of a run of adjacent complete subtrees given left to right, largest
/// first: `H(h[0], H(h[1], ... H(h[n-2], h[n-1])))`. `None` for an empty run.
pub(crate) fn fold_from_right<H: MerkleHasher>(hasher: &H, hashes: &[Digest]) -> Option<Digest> {
    let (last, rest) = hashes.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |right, left| hasher.hash_children(left, &right)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hasher::Blake3;
    use crate::node::MemoryNodeStore;

    #[test]
    fn append_emits_the_leaf_then_each_completed_parent() {
        let mut range = CompactRange::new();
        let mut emitted = Vec::new();
        for leaf in 0..4u8 {
            range.append(&Blake3, [leaf; 32], |node_id, _| emitted.push(node_id));
        }
        assert_eq!(
            emitted,
            [
                NodeId::leaf(0),
                NodeId::leaf(1),
                NodeId::new(1, 0),
                NodeId::leaf(2),
                NodeId::leaf(3),
                NodeId::new(1, 1),
                NodeId::new(2, 0),
            ]
        );
        assert_eq!(range.peaks().len(), 1);
    }

    #[test]
    fn from_store_restores_the_range_for_further_appends() {
        let mut store = MemoryNodeStore::new();
        let mut range = CompactRange::new();
        for leaf in 0..11u8 {
            range.append(&Blake3, Blake3.hash_leaf(&[leaf]), |id, hash| {
                store.insert(id, *hash)
            });
        }
        let mut restored = CompactRange::from_store(&store, 11).expect("all peaks are stored");
        assert_eq!(restored, range);
        restored.append(&Blake3, [0; 32], |_, _| {});
        range.append(&Blake3, [0; 32], |_, _| {});
        assert_eq!(restored.root(&Blake3), range.root(&Blake3));
    }

    #[test]
    fn the_empty_range_has_the_empty_root() {
        assert_eq!(CompactRange::new().root(&Blake3), Blake3.empty_root());
    }
}
