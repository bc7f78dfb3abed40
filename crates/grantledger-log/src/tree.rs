//! The Merkle tree over the record hashes: roots and proofs at any size, read from the
//! `merkle` column family and, below [`MERKLE_LEVEL_MIN`], recomputed from record headers.
//!
//! The tree is grantledger-merkle's RFC 9162 tree with [`Blake3`]; leaf `i` is
//! [`layout::merkle_leaf_hash`] of record `i + 1`'s hash. The writer extends it with a
//! [`CompactRange`] kept in memory (and in `meta/tree`), writing each complete node at
//! level [`MERKLE_LEVEL_MIN`] or above once, in the batch of the record that completes it.

use std::collections::BTreeMap;

use grantledger_merkle::{
    Blake3, CompactRange, Digest, MerkleHasher, NodeId, NodeStore, PlanError, PlanErrorKind,
    consistency_plan, inclusion_plan,
};
use rocksdb::{DB, ReadOptions};

use crate::error::{TreeError, TreeErrorKind};
use crate::header::HEADER_BYTES;
use crate::layout::{self, CF_MERKLE, CF_RECORDS, MERKLE_LEVEL_MIN};
use crate::log::Log;

/// Leaves in one aligned block below [`MERKLE_LEVEL_MIN`]: the most record headers one
/// recomputation reads.
const BLOCK_LEAVES: u64 = 1 << MERKLE_LEVEL_MIN;

/// Where the writer's tree stands.
#[derive(Clone, Debug)]
pub(crate) enum TreeState {
    /// A writable handle: the compact range at the head, extended by every append.
    Maintained(CompactRange),
    /// A read-only handle: roots and proofs come from the store alone.
    ReadOnly,
    /// A log made by [`Log::create_without_merkle_tree`], for benchmarks only.
    Disabled,
}

impl Log {
    /// The number of leaves of the Merkle tree: one per record, so the head's sequence.
    pub fn tree_size(&self) -> u64 {
        self.head().sequence
    }

    /// The Merkle root (RFC 9162 `MTH`, blake3) of the first `size` records, for any
    /// `size` up to [`Log::tree_size`]; the empty tree's root for 0. This is what a
    /// checkpoint signs. Reads the `popcount(size)` stored nodes that cover the records
    /// and at most one block of fewer than `2^MERKLE_LEVEL_MIN` record headers at the
    /// right edge; the current size is answered from memory on a writable handle.
    pub fn merkle_root(&self, size: u64) -> Result<Digest, TreeError> {
        self.check_tree_size(size)?;
        if let TreeState::Maintained(range) = self.tree_state()
            && range.size() == size
        {
            return Ok(range.root(&Blake3));
        }
        let nodes = TreeNodes::new(self.db(), size);
        Ok(CompactRange::from_store(&nodes, size)?.root(&Blake3))
    }

    /// The inclusion proof (RFC 9162 `PATH`, lowest level first) of the record with
    /// sequence `leaf_index + 1` in the tree of the first `size` records. An auditor checks
    /// it with `grantledger_merkle::verify_inclusion` against a signed root of that size,
    /// with `layout::merkle_leaf_hash(record hash)` as the leaf hash.
    ///
    /// Costs one batched point read of at most `2 * 64` stored nodes (about `log2(size)`),
    /// plus one range scan of at most `2^MERKLE_LEVEL_MIN` record headers around the leaf
    /// and, when `size` is not a multiple of `2^MERKLE_LEVEL_MIN`, one more of the fewer
    /// headers at the tree's right edge.
    pub fn inclusion_proof(&self, leaf_index: u64, size: u64) -> Result<Vec<Digest>, TreeError> {
        self.check_tree_size(size)?;
        let plan = inclusion_plan(leaf_index, size).map_err(plan_error)?;
        Ok(plan.prove(&Blake3, &TreeNodes::new(self.db(), size))?)
    }

    /// The consistency proof (RFC 9162 `PROOF`) that the tree of the first `size2` records
    /// extends the tree of the first `size1`: what an auditor holding a checkpoint of
    /// `size1` asks for, and checks with `grantledger_merkle::verify_consistency`. Requires
    /// `0 < size1 <= size2 <= tree_size()` (or both 0); equal sizes give the empty proof.
    /// Same cost as [`Log::inclusion_proof`].
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Digest>, TreeError> {
        self.check_tree_size(size2)?;
        let plan = consistency_plan(size1, size2).map_err(plan_error)?;
        Ok(plan.prove(&Blake3, &TreeNodes::new(self.db(), size2))?)
    }

    fn check_tree_size(&self, size: u64) -> Result<(), TreeError> {
        if let TreeState::Disabled = self.tree_state() {
            return Err(TreeError::new(
                TreeErrorKind::TreeDisabled,
                format!(
                    "the log in `{}` was created without a merkle tree",
                    self.path().display()
                ),
            ));
        }
        if size > self.tree_size() {
            return Err(TreeError::new(
                TreeErrorKind::SizeBeyondTree,
                format!(
                    "tree size `{size}` is beyond the log's tree size `{}`",
                    self.tree_size()
                ),
            ));
        }
        Ok(())
    }
}

/// The nodes of the tree of the first `size` records, as the merkle crate's proof
/// generation reads them: stored nodes from `merkle`, lower ones recomputed from the
/// record headers of their block.
pub(crate) struct TreeNodes<'a> {
    db: &'a DB,
    size: u64,
}

impl<'a> TreeNodes<'a> {
    pub(crate) fn new(db: &'a DB, size: u64) -> TreeNodes<'a> {
        TreeNodes { db, size }
    }

    /// The nodes of the block of leaves `[block * BLOCK_LEAVES, ...)` that are complete
    /// in the tree of `self.size` leaves, by level: `levels[l][i]` is the node `(l, first
    /// index of the block at level l + i)`.
    fn block_levels(&self, block: u64) -> Result<Vec<Vec<Digest>>, TreeError> {
        let first_leaf = block * BLOCK_LEAVES;
        debug_assert!(first_leaf < self.size);
        let leaf_count = (self.size - first_leaf).min(BLOCK_LEAVES);
        let mut levels = vec![self.read_leaf_hashes(first_leaf, leaf_count)?];
        while levels.len() < usize::from(MERKLE_LEVEL_MIN) {
            let below = levels.last().expect("at least the leaves");
            if below.len() < 2 {
                break;
            }
            let next = below
                .chunks_exact(2)
                .map(|pair| Blake3.hash_children(&pair[0], &pair[1]))
                .collect();
            levels.push(next);
        }
        Ok(levels)
    }

    /// The leaf hashes of records `first_leaf + 1 ..= first_leaf + count`, from one range
    /// scan of `records`.
    fn read_leaf_hashes(&self, first_leaf: u64, count: u64) -> Result<Vec<Digest>, TreeError> {
        let first_sequence = first_leaf + 1;
        let end_sequence = first_sequence + count;
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(layout::record_key(end_sequence).to_vec());
        let records = column_family(self.db, CF_RECORDS);
        let mut iterator = self.db.raw_iterator_cf_opt(records, read_options);
        iterator.seek(layout::record_key(first_sequence));
        let mut leaves = Vec::with_capacity(count as usize);
        for sequence in first_sequence..end_sequence {
            let Some((key, value)) = iterator.item() else {
                iterator.status().map_err(|error| {
                    TreeError::with_source(
                        TreeErrorKind::Storage,
                        format!("reading record `{sequence}` for the merkle tree failed: {error}"),
                        error,
                    )
                })?;
                return Err(record_missing(sequence));
            };
            if layout::sequence_from_record_key(key) != Some(sequence) {
                return Err(record_missing(sequence));
            }
            let Some(header) = value.first_chunk::<HEADER_BYTES>() else {
                return Err(TreeError::new(
                    TreeErrorKind::Corrupt,
                    format!(
                        "record `{sequence}` is `{}` bytes, shorter than the `{HEADER_BYTES}` byte header",
                        value.len()
                    ),
                ));
            };
            let hash: &[u8; 32] = header[HEADER_BYTES - 32..]
                .try_into()
                .expect("the hash is the header's last 32 bytes");
            leaves.push(layout::merkle_leaf_hash(hash));
            iterator.next();
        }
        Ok(leaves)
    }
}

impl NodeStore for TreeNodes<'_> {
    type Error = TreeError;

    fn node_hash(&self, node_id: NodeId) -> Result<Digest, TreeError> {
        Ok(self.node_hashes(&[node_id])?[0])
    }

    fn node_hashes(&self, node_ids: &[NodeId]) -> Result<Vec<Digest>, TreeError> {
        let mut hashes = vec![[0; 32]; node_ids.len()];
        // Stored nodes: one batched point read.
        let stored: Vec<(usize, NodeId)> = node_ids
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, node_id)| node_id.level >= MERKLE_LEVEL_MIN)
            .collect();
        if !stored.is_empty() {
            let keys: Vec<_> = stored
                .iter()
                .map(|(_, node_id)| layout::merkle_node_key(*node_id))
                .collect();
            let merkle = column_family(self.db, CF_MERKLE);
            let values = self.db.batched_multi_get_cf(merkle, &keys, false);
            for ((position, node_id), value) in stored.iter().zip(values) {
                let value = value.map_err(|error| {
                    TreeError::with_source(
                        TreeErrorKind::Storage,
                        format!(
                            "reading merkle node level `{}` index `{}` failed: {error}",
                            node_id.level, node_id.index
                        ),
                        error,
                    )
                })?;
                hashes[*position] = match value {
                    Some(bytes) => bytes.as_ref().try_into().map_err(|_| {
                        TreeError::new(
                            TreeErrorKind::Corrupt,
                            format!(
                                "merkle node level `{}` index `{}` is `{}` bytes, expected `32`",
                                node_id.level,
                                node_id.index,
                                bytes.len()
                            ),
                        )
                    })?,
                    None => {
                        return Err(TreeError::new(
                            TreeErrorKind::Corrupt,
                            format!(
                                "merkle node level `{}` index `{}` is not stored, though the tree of size `{}` has it",
                                node_id.level, node_id.index, self.size
                            ),
                        ));
                    }
                };
            }
        }
        // Lower nodes: recomputed per block of leaves; a proof touches at most two blocks.
        let mut by_block: BTreeMap<u64, Vec<(usize, NodeId)>> = BTreeMap::new();
        for (position, node_id) in node_ids.iter().copied().enumerate() {
            if node_id.level < MERKLE_LEVEL_MIN {
                assert!(
                    node_id.is_complete_in(self.size),
                    "proof plans ask only for complete nodes"
                );
                by_block
                    .entry(node_id.first_leaf() / BLOCK_LEAVES)
                    .or_default()
                    .push((position, node_id));
            }
        }
        for (block, wanted) in by_block {
            let levels = self.block_levels(block)?;
            let first_leaf = block * BLOCK_LEAVES;
            for (position, node_id) in wanted {
                let offset = node_id.index - (first_leaf >> node_id.level);
                // INVARIANT: the node is complete in `size`, so its block has all its leaves
                // and `block_levels` computed it.
                hashes[position] = levels[usize::from(node_id.level)][offset as usize];
            }
        }
        Ok(hashes)
    }
}

fn plan_error(error: PlanError) -> TreeError {
    let kind = match error.kind() {
        PlanErrorKind::IndexBeyondSize => TreeErrorKind::IndexBeyondSize,
        PlanErrorKind::Size2LessThanSize1 => TreeErrorKind::Size2LessThanSize1,
        PlanErrorKind::Size1Zero => TreeErrorKind::Size1Zero,
    };
    TreeError::new(kind, error.to_string())
}

fn record_missing(sequence: u64) -> TreeError {
    TreeError::new(
        TreeErrorKind::Corrupt,
        format!("record `{sequence}` is missing, though the merkle tree needs its hash"),
    )
}

fn column_family<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    // INVARIANT: every log is opened with all of COLUMN_FAMILIES.
    db.cf_handle(name)
        .expect("the log was opened with all its column families")
}
