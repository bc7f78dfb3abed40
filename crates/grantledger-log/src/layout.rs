//! Names and byte encodings of everything the log stores in RocksDB.
//!
//! Public so that tools which are not ours (and our own tamper tests and benchmarks) can
//! read or rebuild the database byte for byte; `schemas/LOG_FORMAT.md` says the same in prose.

use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, Options, ReadOptions};

use grantledger_merkle::{Blake3, CompactRange, Digest, MerkleHasher, NodeId};

use crate::Head;

/// Records by sequence: key [`record_key`], value header || body.
pub const CF_RECORDS: &str = "records";
/// Request id → sequences: key [`index_entry_key`], value empty.
pub const CF_INDEX_REQUEST: &str = "idx_request";
/// Grant id → sequences: key [`index_entry_key`], value empty.
pub const CF_INDEX_GRANT: &str = "idx_grant";
/// Principal → sequences: key [`index_entry_key`], value empty.
pub const CF_INDEX_PRINCIPAL: &str = "idx_principal";
/// Resource → sequences: key [`index_entry_key`], value empty.
pub const CF_INDEX_RESOURCE: &str = "idx_resource";
/// Metadata: [`META_KEY_FORMAT`], [`META_KEY_HEAD`], [`META_KEY_TREE`]; keys starting
/// with `checkpoint/` are reserved for signed checkpoints.
pub const CF_META: &str = "meta";
/// Merkle tree nodes: key [`merkle_node_key`], value the node's 32-byte hash. Only the
/// complete subtrees at level [`MERKLE_LEVEL_MIN`] and above are stored; see
/// [`MERKLE_LEVEL_MIN`] for why and for how the lower levels are recomputed.
pub const CF_MERKLE: &str = "merkle";

/// Every column family a log has besides RocksDB's `default` (which stays empty).
pub const COLUMN_FAMILIES: [&str; 7] = [
    CF_RECORDS,
    CF_INDEX_REQUEST,
    CF_INDEX_GRANT,
    CF_INDEX_PRINCIPAL,
    CF_INDEX_RESOURCE,
    CF_META,
    CF_MERKLE,
];

/// Meta key whose value is [`FORMAT_MARKER`]; written once, when the log is created.
pub const META_KEY_FORMAT: &[u8] = b"format";
/// What a grantledger log of this format stores under [`META_KEY_FORMAT`]. Format 2 added
/// the Merkle tree ([`CF_MERKLE`], [`META_KEY_TREE`]); records and their hashes are as in
/// format 1.
pub const FORMAT_MARKER: &[u8] = b"grantledger-log/2";
/// Meta key whose value is the head, [`META_HEAD_BYTES`] long; see [`encode_head`].
pub const META_KEY_HEAD: &[u8] = b"head";
/// Size of the stored head: sequence u64 BE || hash 32 || time_ms i64 BE.
pub const META_HEAD_BYTES: usize = 48;

/// Meta key whose value is the Merkle tree's compact range (its frontier) at the head:
/// see [`encode_tree_frontier`]. Written in the same batch as the head, so an append
/// needs no reads to extend the tree.
pub const META_KEY_TREE: &[u8] = b"tree";

/// The lowest level of the Merkle tree whose nodes are stored in [`CF_MERKLE`].
///
/// Leaves (level 0) are `hash_leaf(record hash)`, and the record hash is already stored in
/// every record header, so storing leaves again would only duplicate it. Levels 1 to 5
/// are not stored either: a node below this level covers at most 32 records, and
/// whenever a proof needs one, the log reads the at most 64 record headers of its aligned
/// block of `2^MERKLE_LEVEL_MIN` leaves in one range scan (a few table blocks) and
/// recomputes it. Storing from level 6 up costs one 41-byte put per 32 records on append,
/// and a proof still needs `O(log n)` point reads plus that one scan.
///
/// Part of the format (readers must know which levels are stored); the trade-off is
/// written up in `schemas/LOG_FORMAT.md`, and `benches/merkle_log.rs` measures it.
pub const MERKLE_LEVEL_MIN: u8 = 6;

/// Size of a [`CF_MERKLE`] key: the level, then the index as u64 big-endian.
pub const MERKLE_NODE_KEY_BYTES: usize = 9;

/// The [`CF_MERKLE`] key of the complete subtree `(level, index)`: level as one byte, then
/// the index as u64 big-endian, so keys sort by level and, within a level, by index.
pub fn merkle_node_key(node_id: NodeId) -> [u8; MERKLE_NODE_KEY_BYTES] {
    node_id.to_key_bytes()
}

/// The stored form of the tree frontier: tree size u64 BE, then the hashes of the
/// complete subtrees covering leaves `[0, size)`, one per set bit of the size, largest
/// first (the peaks of a [`CompactRange`]).
pub fn encode_tree_frontier(range: &CompactRange) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + 32 * range.peaks().len());
    bytes.extend_from_slice(&range.size().to_be_bytes());
    for peak in range.peaks() {
        bytes.extend_from_slice(peak);
    }
    bytes
}

/// Reads a stored tree frontier: its size and peaks, or `None` if the length is not
/// `8 + 32 * popcount(size)`.
pub fn decode_tree_frontier(bytes: &[u8]) -> Option<(u64, Vec<Digest>)> {
    let (size_bytes, peak_bytes) = bytes.split_first_chunk::<8>()?;
    let size = u64::from_be_bytes(*size_bytes);
    if peak_bytes.len() != 32 * size.count_ones() as usize {
        return None;
    }
    let peaks = peak_bytes
        .chunks_exact(32)
        .map(|chunk| chunk.try_into().expect("32-byte chunks"))
        .collect();
    Some((size, peaks))
}

/// The Merkle leaf hash of a record: `blake3(0x00 || record hash)`, RFC 9162's leaf hash
/// with the record hash as the leaf's data. The leaf at index `i` is record `i + 1`.
pub fn merkle_leaf_hash(record_hash: &[u8; 32]) -> Digest {
    Blake3.hash_leaf(record_hash)
}

/// Size of a record key: the sequence as u64 big-endian, so key order is log order.
pub const RECORD_KEY_BYTES: usize = 8;

/// Longest index key (a request id, a grant id, a principal, a resource), in bytes.
pub const INDEX_KEY_BYTES_MAX: usize = 1024;
/// Most principals one record may be indexed under.
pub const INDEX_PRINCIPALS_MAX: usize = 64;

// INVARIANT: index keys are length-prefixed with a u16, so their bound must fit in one.
const _: () = assert!(INDEX_KEY_BYTES_MAX <= u16::MAX as usize);

/// Which secondary index to look in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexName {
    /// Request ids.
    Request,
    /// Grant ids.
    Grant,
    /// Principals (subjects, approvers, requesters).
    Principal,
    /// Resources.
    Resource,
}

impl IndexName {
    /// The column family that holds this index.
    pub fn column_family(self) -> &'static str {
        match self {
            IndexName::Request => CF_INDEX_REQUEST,
            IndexName::Grant => CF_INDEX_GRANT,
            IndexName::Principal => CF_INDEX_PRINCIPAL,
            IndexName::Resource => CF_INDEX_RESOURCE,
        }
    }
}

impl IndexName {
    /// Every index, in the order of their discriminants.
    pub const ALL: [IndexName; 4] = [
        IndexName::Request,
        IndexName::Grant,
        IndexName::Principal,
        IndexName::Resource,
    ];
}

// INVARIANT: `IndexName::ALL[i] as usize == i`, which `append_batch` relies on.
const _: () = {
    let mut i = 0;
    while i < IndexName::ALL.len() {
        assert!(IndexName::ALL[i] as usize == i);
        i += 1;
    }
};

/// The key of a record in [`CF_RECORDS`].
pub fn record_key(sequence: u64) -> [u8; RECORD_KEY_BYTES] {
    sequence.to_be_bytes()
}

/// The sequence a [`CF_RECORDS`] key names, or `None` if the key is not 8 bytes.
pub fn sequence_from_record_key(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// Appends the index entry key `u16 BE len(key) || key || sequence u64 BE` to `out`.
///
/// The length prefix makes the encoding self-delimiting: the entries for one key are
/// exactly the keys that start with [`index_prefix`] of it and are 8 bytes longer, and
/// they sort by sequence.
///
/// # Panics
/// If `key` is longer than [`INDEX_KEY_BYTES_MAX`]; appends check that first.
pub fn index_entry_key(key: &[u8], sequence: u64, out: &mut Vec<u8>) {
    index_prefix(key, out);
    out.extend_from_slice(&sequence.to_be_bytes());
}

/// Appends `u16 BE len(key) || key` to `out`.
///
/// # Panics
/// If `key` is longer than [`INDEX_KEY_BYTES_MAX`].
pub fn index_prefix(key: &[u8], out: &mut Vec<u8>) {
    assert!(
        key.len() <= INDEX_KEY_BYTES_MAX,
        "index key over index_key_bytes_max"
    );
    // INVARIANT: INDEX_KEY_BYTES_MAX fits in a u16 (checked at compile time above).
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
}

/// The stored form of a head.
pub fn encode_head(head: &Head) -> [u8; META_HEAD_BYTES] {
    let mut bytes = [0u8; META_HEAD_BYTES];
    bytes[0..8].copy_from_slice(&head.sequence.to_be_bytes());
    bytes[8..40].copy_from_slice(&head.hash);
    bytes[40..48].copy_from_slice(&head.time_ms.to_be_bytes());
    bytes
}

/// Reads a stored head, or `None` if it is not [`META_HEAD_BYTES`] long.
pub fn decode_head(bytes: &[u8]) -> Option<Head> {
    let bytes: &[u8; META_HEAD_BYTES] = bytes.try_into().ok()?;
    Some(Head {
        sequence: u64::from_be_bytes(bytes[0..8].try_into().ok()?),
        hash: bytes[8..40].try_into().ok()?,
        time_ms: i64::from_be_bytes(bytes[40..48].try_into().ok()?),
    })
}

/// The database options the log opens RocksDB with, minus `create_if_missing` and
/// `create_missing_column_families`, which only `Log::create` turns on.
///
/// Nothing here acknowledges a write before it is durable: the WAL is always on and
/// `sync` is decided per write. Benchmarks use the same options for their raw baseline.
pub fn rocksdb_options() -> Options {
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_max_background_jobs(2);
    options.set_keep_log_file_num(8);
    options.set_max_log_file_size(16 << 20);
    // Flushes and compactions write their table files back a megabyte at a
    // time instead of leaving tens of megabytes dirty for the kernel: a
    // synced commit's WAL fsync then never waits behind a burst of
    // writeback (the ledger's tail latency on a slow disk).
    options.set_bytes_per_sync(1 << 20);
    options
}

/// The column family descriptors to open a log with, in [`COLUMN_FAMILIES`] order.
///
/// `records` uses 16 KiB table blocks instead of RocksDB's 4 KiB: the log is mostly read
/// front to back (verify, replay), where fewer and larger blocks mean fewer reads and
/// better compression, while a single-record read still decompresses only 16 KiB.
pub fn column_family_descriptors() -> Vec<ColumnFamilyDescriptor> {
    COLUMN_FAMILIES
        .iter()
        .map(|name| {
            let mut options = rocksdb_options();
            if *name == CF_RECORDS {
                let mut table = BlockBasedOptions::default();
                table.set_block_size(RECORDS_BLOCK_BYTES);
                options.set_block_based_table_factory(&table);
            }
            ColumnFamilyDescriptor::new(*name, options)
        })
        .collect()
}

/// Read options for walking `records` front to back (verify, replay): read ahead, and
/// leave the block cache to point reads, since a walk would only churn it.
/// Checksums of table blocks are verified, as always.
pub fn scan_read_options() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_readahead_size(SCAN_READAHEAD_BYTES);
    options.fill_cache(false);
    options.set_verify_checksums(true);
    options
}

/// Table block size of the `records` column family.
const RECORDS_BLOCK_BYTES: usize = 16 << 10;
/// How far a front-to-back walk reads ahead.
const SCAN_READAHEAD_BYTES: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_are_self_delimiting() {
        let mut short = Vec::new();
        index_entry_key(b"ab", 7, &mut short);
        assert_eq!(short, [0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 0, 7]);
        // "ab" must not see the entries of "abc", although one is a prefix of the other.
        let mut prefix = Vec::new();
        index_prefix(b"ab", &mut prefix);
        let mut longer = Vec::new();
        index_entry_key(b"abc", 7, &mut longer);
        assert!(!longer.starts_with(&prefix));
    }

    #[test]
    fn tree_frontier_roundtrip_and_length_rule() {
        let mut range = CompactRange::new();
        assert_eq!(encode_tree_frontier(&range), [0; 8]);
        for leaf in 0..11u8 {
            range.append(&Blake3, merkle_leaf_hash(&[leaf; 32]), |_, _| {});
        }
        let bytes = encode_tree_frontier(&range);
        // 11 = 0b1011: three peaks.
        assert_eq!(bytes.len(), 8 + 3 * 32);
        assert_eq!(
            decode_tree_frontier(&bytes),
            Some((11, range.peaks().to_vec()))
        );
        assert_eq!(decode_tree_frontier(&bytes[..bytes.len() - 32]), None);
        assert_eq!(decode_tree_frontier(&bytes[..7]), None);
        let mut wrong_size = bytes.clone();
        wrong_size[7] = 12; // 0b1100: two peaks, but three are stored
        assert_eq!(decode_tree_frontier(&wrong_size), None);
    }

    #[test]
    fn head_roundtrip() {
        let head = Head {
            sequence: 9,
            hash: [3; 32],
            time_ms: -5,
        };
        assert_eq!(decode_head(&encode_head(&head)), Some(head));
        assert_eq!(decode_head(&[0; 47]), None);
    }
}
