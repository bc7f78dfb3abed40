//! The rule codes `verify` (and corrupt-record read errors) name. Each is the rule that
//! was broken, spelled the same in `schemas/LOG_FORMAT.md`.

/// A `records` key is not 8 bytes, or is sequence 0.
pub const KEY_NOT_SEQUENCE: &str = "key_not_sequence";
/// The next key is not the next sequence: the named sequence is missing.
pub const SEQUENCE_MISSING: &str = "sequence_missing";
/// The header's sequence is not the sequence of its key.
pub const KEY_SEQUENCE_MISMATCH: &str = "key_sequence_mismatch";
/// The value is shorter than a header.
pub const HEADER_TRUNCATED: &str = "header_truncated";
/// The header's version is not one this build knows.
pub const UNKNOWN_VERSION: &str = "unknown_version";
/// The header's sequence is 0; sequences start at 1.
pub const SEQUENCE_ZERO: &str = "sequence_zero";
/// The header's `body_len` is over `BODY_BYTES_MAX`.
pub const BODY_LENGTH_OVER_MAX: &str = "body_length_over_max";
/// The header's `body_len` is not the length of the bytes after the header.
pub const BODY_LENGTH_MISMATCH: &str = "body_length_mismatch";
/// The header's `parent` is not the previous record's hash (or not zero for sequence 1).
pub const PARENT_MISMATCH: &str = "parent_mismatch";
/// The header's `hash` is not the hash of the header and body.
pub const HASH_MISMATCH: &str = "hash_mismatch";
/// The record's time is earlier than the previous record's.
pub const TIME_WENT_BACKWARDS: &str = "time_went_backwards";
/// The stored head does not describe the last record.
pub const HEAD_MISMATCH: &str = "head_mismatch";
/// The caller's body check rejected the body.
pub const BODY_REJECTED: &str = "body_rejected";
/// RocksDB reported an error while reading (for example a block checksum failure).
pub const STORAGE_ERROR: &str = "storage_error";
/// A Merkle node that the records imply is not stored in the `merkle` column family.
pub const MERKLE_NODE_MISSING: &str = "merkle_node_missing";
/// A stored Merkle node's hash is not the hash the records imply.
pub const MERKLE_NODE_MISMATCH: &str = "merkle_node_mismatch";
/// The `merkle` column family holds a key that is not a node of the tree over the
/// records: beyond the tree size, below the stored levels, or malformed.
pub const MERKLE_NODE_UNEXPECTED: &str = "merkle_node_unexpected";
/// The stored tree frontier (`meta/tree`) is not the compact range of the records.
pub const MERKLE_FRONTIER_MISMATCH: &str = "merkle_frontier_mismatch";
