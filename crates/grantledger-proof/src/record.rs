//! The record rules an auditor checks without the log's code, reimplemented from
//! `schemas/LOG_FORMAT.md` (format 1), and the record's place in the Merkle tree.
//!
//! A stored record is an 87-byte header followed by `body_len` body bytes. All integers are
//! big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | `version` (1, 2 or 3: bincode `=2.0.1` standard config, first, second or third event layout) |
//! | 1 | 8 | `sequence` (u64, from 1) |
//! | 9 | 8 | `time_ms` (i64, UTC ms) |
//! | 17 | 2 | `kind` (u16) |
//! | 19 | 4 | `body_len` (u32, at most 1 MiB) |
//! | 23 | 32 | `parent` (previous record's hash) |
//! | 55 | 32 | `hash` |
//!
//! `hash = blake3("grantledger/record/v1\0" || header[0..55] || body)`.
//!
//! The Merkle tree: the record with sequence `s` is leaf index `s - 1` (sequences start at
//! 1 without gaps, leaves at 0), and the leaf's *data* is the record's 32-byte `hash`, so
//! the leaf hash is `blake3(0x00 || hash)` (RFC 9162 leaf domain separation). This crate
//! duplicates these few rules on purpose: it must not depend on the log crate (and so on
//! RocksDB), and a second implementation checked against the golden vectors in
//! `schemas/golden/records.json` keeps the document honest.

use grantledger_merkle::{Blake3, Digest, MerkleHasher as _};

/// Size of a record header in bytes.
pub const HEADER_BYTES: usize = 87;

/// How many leading header bytes the record hash covers: every field before `hash`.
pub const HEADER_HASHED_BYTES: usize = 55;

/// Prefix of every record hash input (22 bytes, the last one NUL).
pub const HASH_DOMAIN_TAG: &[u8; 22] = b"grantledger/record/v1\0";

/// Header version 1: bincode `=2.0.1`, standard config, first layout of the events.
pub const VERSION_BINCODE_2_STANDARD: u8 = 1;

/// Header version 2: the same codec, second layout of the events (decisions record
/// their basis; policy sets are published). The record rules are the same.
pub const VERSION_BINCODE_2_STANDARD_LAYOUT_2: u8 = 2;

/// Header version 3: the same codec, third layout of the events (requests may
/// carry a scheduled start; lapsed requests are recorded). The record rules are
/// the same.
pub const VERSION_BINCODE_2_STANDARD_LAYOUT_3: u8 = 3;

/// Largest body of log format 1, in bytes.
pub const BODY_BYTES_MAX: u32 = 1 << 20;

/// Largest record (header and body), in bytes.
pub const RECORD_BYTES_MAX: usize = HEADER_BYTES + BODY_BYTES_MAX as usize;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Body codec; 1 in format 1.
    pub version: u8,
    /// Position in the log, from 1.
    pub sequence: u64,
    /// Ledger time of the append, UTC milliseconds.
    pub time_ms: i64,
    /// Event kind code, assigned by the events crate.
    pub kind: u16,
    /// Body length in bytes.
    pub body_len: u32,
    /// The previous record's hash (zeros for sequence 1).
    pub parent: [u8; 32],
    /// The record hash this header claims.
    pub hash: [u8; 32],
}

/// Why a record's bytes break the format. [`RecordRule::code`] is the rule code of
/// `schemas/LOG_FORMAT.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordRule {
    /// Fewer than 87 bytes, or more than [`RECORD_BYTES_MAX`].
    HeaderTruncated,
    /// `version` is not 1, 2 or 3.
    UnknownVersion,
    /// `sequence` is 0.
    SequenceZero,
    /// `body_len` is over 1 MiB.
    BodyLengthOverMax,
    /// `body_len` is not the number of bytes after the header.
    BodyLengthMismatch,
    /// `hash` is not the record hash of the header and body.
    HashMismatch,
}

impl RecordRule {
    /// The rule's code, as `grantledger verify` reports it.
    pub fn code(self) -> &'static str {
        match self {
            RecordRule::HeaderTruncated => "header_truncated",
            RecordRule::UnknownVersion => "unknown_version",
            RecordRule::SequenceZero => "sequence_zero",
            RecordRule::BodyLengthOverMax => "body_length_over_max",
            RecordRule::BodyLengthMismatch => "body_length_mismatch",
            RecordRule::HashMismatch => "hash_mismatch",
        }
    }
}

/// A record's bytes broke a format rule; the message names the values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    rule: RecordRule,
    message: String,
}

impl RecordError {
    /// The rule that was broken.
    pub fn rule(&self) -> RecordRule {
        self.rule
    }
}

impl RecordHeader {
    /// Reads the header fields of the first 87 bytes of a record; `None` if there are fewer.
    pub fn decode(record: &[u8]) -> Option<RecordHeader> {
        let header: &[u8; HEADER_BYTES] = record.get(..HEADER_BYTES)?.try_into().ok()?;
        Some(RecordHeader {
            version: header[0],
            sequence: u64::from_be_bytes(array(&header[1..9])),
            time_ms: i64::from_be_bytes(array(&header[9..17])),
            kind: u16::from_be_bytes(array(&header[17..19])),
            body_len: u32::from_be_bytes(array(&header[19..23])),
            parent: array(&header[23..55]),
            hash: array(&header[55..87]),
        })
    }

    /// The Merkle leaf index of this record: `sequence - 1`.
    pub fn leaf_index(&self) -> u64 {
        leaf_index(self.sequence)
    }
}

/// Checks one stored record (header ‖ body) against the rules a record obeys on its own,
/// in the order of `schemas/LOG_FORMAT.md` (rules 3, 4, 6, 8), and returns its header.
/// Rules that need neighbours (parent, time order, gaps) are not checkable from one record.
pub fn check_record(record: &[u8]) -> Result<RecordHeader, RecordError> {
    let error = |rule: RecordRule, message: String| RecordError { rule, message };
    if record.len() > RECORD_BYTES_MAX {
        return Err(error(
            RecordRule::HeaderTruncated,
            format!(
                "record is `{}` bytes: at most `{RECORD_BYTES_MAX}` (87-byte header and 1 MiB body)",
                record.len()
            ),
        ));
    }
    let Some(header) = RecordHeader::decode(record) else {
        return Err(error(
            RecordRule::HeaderTruncated,
            format!(
                "record is `{}` bytes: shorter than the 87-byte header",
                record.len()
            ),
        ));
    };
    if header.version != VERSION_BINCODE_2_STANDARD
        && header.version != VERSION_BINCODE_2_STANDARD_LAYOUT_2
        && header.version != VERSION_BINCODE_2_STANDARD_LAYOUT_3
    {
        return Err(error(
            RecordRule::UnknownVersion,
            format!(
                "header version `{}` is not `1`, `2` or `3`, the versions of the log format",
                header.version
            ),
        ));
    }
    if header.sequence == 0 {
        return Err(error(
            RecordRule::SequenceZero,
            "header sequence is `0`: sequences start at 1".to_string(),
        ));
    }
    if header.body_len > BODY_BYTES_MAX {
        return Err(error(
            RecordRule::BodyLengthOverMax,
            format!(
                "header body_len `{}` is over the maximum `{BODY_BYTES_MAX}`",
                header.body_len
            ),
        ));
    }
    let body = &record[HEADER_BYTES..];
    if body.len() != header.body_len as usize {
        return Err(error(
            RecordRule::BodyLengthMismatch,
            format!(
                "header body_len `{}` is not the `{}` bytes that follow the header",
                header.body_len,
                body.len()
            ),
        ));
    }
    let computed = record_hash(record);
    if computed != header.hash {
        return Err(error(
            RecordRule::HashMismatch,
            format!(
                "header hash `{}` is not blake3(domain tag || header[0..55] || body) `{}`",
                hex::encode(header.hash),
                hex::encode(computed)
            ),
        ));
    }
    Ok(header)
}

/// `blake3(HASH_DOMAIN_TAG || record[0..55] || record[87..])`: the hash a record's header
/// must carry. `record` must be at least [`HEADER_BYTES`] long.
pub fn record_hash(record: &[u8]) -> [u8; 32] {
    assert!(
        record.len() >= HEADER_BYTES,
        "a record is at least its 87-byte header"
    );
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_DOMAIN_TAG);
    hasher.update(&record[..HEADER_HASHED_BYTES]);
    hasher.update(&record[HEADER_BYTES..]);
    *hasher.finalize().as_bytes()
}

/// The Merkle leaf index of the record with `sequence` (at least 1): `sequence - 1`.
pub fn leaf_index(sequence: u64) -> u64 {
    assert!(sequence >= 1, "sequences start at 1");
    sequence - 1
}

/// The Merkle leaf hash of a record: `blake3(0x00 || record hash)`.
pub fn leaf_hash(record_hash: &[u8; 32]) -> Digest {
    Blake3.hash_leaf(record_hash)
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes
        .try_into()
        .expect("offsets are constants that match the field sizes")
}
