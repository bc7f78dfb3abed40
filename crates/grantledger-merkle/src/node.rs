//! Addressing of complete subtrees, and the store that holds their hashes.
//!
//! # Addressing
//!
//! A node is named by `(level, index)`. Level 0 holds the leaves; the node `(level,
//! index)` is the root of the *complete* subtree over the `2^level` leaves
//! `[index * 2^level, (index + 1) * 2^level)`. So `(0, i)` is leaf `i`'s hash, the parent of
//! `(level, index)` is `(level + 1, index / 2)`, and its children are `(level - 1, 2 * index)`
//! and `(level - 1, 2 * index + 1)`.
//!
//! A node exists in a tree of `size` leaves once it is complete, that is once
//! `(index + 1) * 2^level <= size`, and from then on its hash never changes: the log only
//! appends. A store therefore writes each node once and never updates it. Nodes that are
//! not complete (the "ephemeral" nodes on the right edge of an unbalanced tree) are never
//! stored: proof generation recomputes them from at most 64 complete nodes.
//!
//! Every level is dense and grows from index 0, so the nodes of level `l` in a tree of
//! `size` leaves are exactly the indices `0..size >> l`. A tree of `n` leaves has fewer
//! than `2n` stored nodes, and [`crate::CompactRange::append`] emits them at amortised two
//! per leaf.
//!
//! # Key encoding
//!
//! [`NodeId::to_key_bytes`] gives 9 bytes: the level, then the index as big-endian `u64`.
//! Byte order then sorts by level and, within a level, by index, so a RocksDB column family
//! keyed by it (under a partition prefix) keeps each level's nodes contiguous and in
//! append order, which suits its write path.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::NodeMissingError;
use crate::hasher::Digest;

/// The highest level a node can have: a tree holds fewer than `2^64` leaves.
pub const LEVEL_MAX: u8 = 63;

/// The address of a complete subtree: see the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves; 0 for a leaf.
    pub level: u8,
    /// Position within the level, counting from the left from 0.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`. Panics if `level > LEVEL_MAX` or if the node would
    /// cover leaves beyond `u64::MAX`.
    pub const fn new(level: u8, index: u64) -> NodeId {
        assert!(level <= LEVEL_MAX, "node level is above 63");
        assert!(
            level == 0 || index >> (64 - level as u32) == 0,
            "node covers leaves beyond u64"
        );
        NodeId { level, index }
    }

    /// The node of leaf `index`.
    pub const fn leaf(index: u64) -> NodeId {
        NodeId { level: 0, index }
    }

    /// The first leaf this node covers: `index * 2^level`.
    pub const fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// How many leaves this node covers: `2^level`.
    pub const fn leaf_count(self) -> u64 {
        1 << self.level
    }

    /// Whether this node is complete, and so stored, in a tree of `size` leaves.
    pub const fn is_complete_in(self, size: u64) -> bool {
        // first_leaf + leaf_count <= size, without overflowing.
        self.first_leaf() < size && size - self.first_leaf() >= self.leaf_count()
    }

    /// The parent node. Panics at `LEVEL_MAX`.
    pub const fn parent(self) -> NodeId {
        NodeId::new(self.level + 1, self.index >> 1)
    }

    /// The other child of this node's parent.
    pub const fn sibling(self) -> NodeId {
        NodeId {
            level: self.level,
            index: self.index ^ 1,
        }
    }

    /// The 9-byte storage key: level, then big-endian index. See the module documentation.
    pub fn to_key_bytes(self) -> [u8; 9] {
        let mut key = [0; 9];
        key[0] = self.level;
        key[1..].copy_from_slice(&self.index.to_be_bytes());
        key
    }

    /// The node a key made by [`NodeId::to_key_bytes`] names, or `None` if the bytes name
    /// no node.
    pub fn from_key_bytes(key: [u8; 9]) -> Option<NodeId> {
        let level = key[0];
        let index = u64::from_be_bytes(key[1..].try_into().expect("8 bytes"));
        if level > LEVEL_MAX || (level > 0 && index >> (64 - u32::from(level)) != 0) {
            return None;
        }
        Some(NodeId { level, index })
    }
}

/// Where complete-subtree hashes are read from when proofs and roots are generated.
///
/// An implementation must return, for every node complete in the tree sizes it is asked
/// about, the hash that [`crate::CompactRange::append`] emitted for that node. The log
/// crate implements it over RocksDB; [`MemoryNodeStore`] is the in-memory one for tests.
pub trait NodeStore {
    /// Why a read failed (an IO error, a missing node).
    type Error;

    /// The hash of the complete subtree `node_id`.
    fn node_hash(&self, node_id: NodeId) -> Result<Digest, Self::Error>;

    /// The hashes of several nodes, in the order asked. Proof generation asks for all the
    /// nodes of a proof in one call, so a store can batch the reads (a RocksDB `multi_get`).
    fn node_hashes(&self, node_ids: &[NodeId]) -> Result<Vec<Digest>, Self::Error> {
        node_ids
            .iter()
            .map(|&node_id| self.node_hash(node_id))
            .collect()
    }
}

/// A [`NodeStore`] in memory, one dense vector per level, that counts its reads. For
/// tests and tools; the log stores nodes in RocksDB.
#[derive(Debug, Default)]
pub struct MemoryNodeStore {
    levels: Vec<Vec<Digest>>,
    reads: AtomicU64,
}

impl MemoryNodeStore {
    /// An empty store.
    pub fn new() -> MemoryNodeStore {
        MemoryNodeStore::default()
    }

    /// Stores the hash of `node_id`. Nodes arrive in append order, as
    /// [`crate::CompactRange::append`] emits them: each one is the next index of its level.
    /// Storing a node again with the same hash is allowed; with a different hash it is a
    /// bug in the caller, and panics.
    pub fn insert(&mut self, node_id: NodeId, hash: Digest) {
        let level = usize::from(node_id.level);
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let nodes = &mut self.levels[level];
        let index = usize::try_from(node_id.index).expect("in-memory index fits usize");
        match index.cmp(&nodes.len()) {
            std::cmp::Ordering::Less => {
                assert_eq!(
                    nodes[index], hash,
                    "node {node_id:?} stored twice with different hashes"
                )
            }
            std::cmp::Ordering::Equal => nodes.push(hash),
            std::cmp::Ordering::Greater => {
                panic!("node {node_id:?} stored before the nodes to its left on its level")
            }
        }
    }

    /// How many nodes have been read since creation or the last [`Self::reset_read_count`].
    pub fn read_count(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Sets the read counter back to zero.
    pub fn reset_read_count(&self) {
        self.reads.store(0, Ordering::Relaxed);
    }

    /// How many nodes are stored.
    pub fn node_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }
}

impl NodeStore for MemoryNodeStore {
    type Error = NodeMissingError;

    fn node_hash(&self, node_id: NodeId) -> Result<Digest, NodeMissingError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        usize::try_from(node_id.index)
            .ok()
            .and_then(|index| self.levels.get(usize::from(node_id.level))?.get(index))
            .copied()
            .ok_or(NodeMissingError { node_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_covers_its_aligned_block_of_leaves() {
        let node = NodeId::new(3, 5);
        assert_eq!(node.first_leaf(), 40);
        assert_eq!(node.leaf_count(), 8);
        assert_eq!(node.parent(), NodeId::new(4, 2));
        assert_eq!(node.sibling(), NodeId::new(3, 4));
        assert!(!node.is_complete_in(47));
        assert!(node.is_complete_in(48));
        assert!(!NodeId::new(LEVEL_MAX, 1).is_complete_in(u64::MAX));
        assert!(NodeId::new(LEVEL_MAX, 0).is_complete_in(u64::MAX));
    }

    #[test]
    fn key_bytes_round_trip_and_sort_by_level_then_index() {
        let ids = [
            NodeId::new(0, 0),
            NodeId::new(0, 1),
            NodeId::new(0, 256),
            NodeId::new(1, 0),
        ];
        let keys: Vec<[u8; 9]> = ids.iter().map(|id| id.to_key_bytes()).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for (id, key) in ids.iter().zip(keys) {
            assert_eq!(NodeId::from_key_bytes(key), Some(*id));
        }
        assert_eq!(NodeId::from_key_bytes([64, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(NodeId::from_key_bytes([63, 0, 0, 0, 0, 0, 0, 0, 2]), None);
    }

    #[test]
    fn memory_store_counts_reads_and_reports_missing_nodes() {
        let mut store = MemoryNodeStore::new();
        store.insert(NodeId::leaf(0), [1; 32]);
        store.insert(NodeId::leaf(1), [2; 32]);
        store.insert(NodeId::new(1, 0), [3; 32]);
        store.insert(NodeId::leaf(1), [2; 32]);
        assert_eq!(store.node_count(), 3);
        assert_eq!(store.node_hash(NodeId::new(1, 0)), Ok([3; 32]));
        let missing = store.node_hash(NodeId::leaf(2)).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "no node is stored at level `0` index `2`"
        );
        assert_eq!(store.read_count(), 2);
        store.reset_read_count();
        assert_eq!(store.read_count(), 0);
    }
}
