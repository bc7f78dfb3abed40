//! One error type per operation, each with a closed set of kinds.

use std::fmt;

/// Opening or creating a log failed.
pub type OpenError = Error<OpenErrorKind>;
/// Appending a batch failed; nothing of the batch was written.
pub type AppendError = Error<AppendErrorKind>;
/// Reading records or index entries failed.
pub type ReadError = Error<ReadErrorKind>;
/// A Merkle root or proof could not be produced.
pub type TreeError = Error<TreeErrorKind>;

/// Why [`crate::Log::create`], [`crate::Log::open`] or [`crate::Log::open_read_only`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenErrorKind {
    /// The directory does not exist.
    DirectoryMissing,
    /// The path exists but is not a directory.
    NotADirectory,
    /// `create` was given a directory that already has files in it.
    DirectoryNotEmpty,
    /// The directory holds no grantledger log (no database, missing column families,
    /// no format marker).
    NotALog,
    /// The format marker names a format this build does not read.
    UnsupportedFormat,
    /// The stored head cannot be decoded.
    HeadCorrupt,
    /// The stored head does not describe the last record.
    HeadMismatch,
    /// The last record is not a valid record.
    RecordCorrupt,
    /// The stored Merkle tree frontier is missing, cannot be decoded, is not at the head's
    /// size, or disagrees with the stored nodes and record hashes it summarises.
    TreeMismatch,
    /// The file system refused (creating the directory, listing it).
    Io,
    /// RocksDB refused, for example because another process holds the log open for writing.
    Storage,
}

/// Why [`crate::Log::append_batch`] refused a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppendErrorKind {
    /// The log was opened read-only.
    ReadOnly,
    /// An earlier write failed; whether it reached the disk is unknown, so this handle
    /// refuses further appends. Reopen the log: open checks the head against the records.
    Poisoned,
    /// More records than `batch_records_max`.
    BatchTooLarge,
    /// A body over `BODY_BYTES_MAX`.
    BodyTooLarge,
    /// A record's time is earlier than the previous record's.
    TimeWentBackwards,
    /// An index key is empty or over `INDEX_KEY_BYTES_MAX`, or there are more principals
    /// than `INDEX_PRINCIPALS_MAX`.
    IndexKeysInvalid,
    /// The sequence number would overflow.
    SequenceExhausted,
    /// The header version asked for is not one of the format's.
    VersionUnknown,
    /// A checkpoint to store is empty, too large, or of a tree size the log
    /// does not have.
    CheckpointInvalid,
    /// RocksDB refused the write.
    Storage,
}

/// Why a read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadErrorKind {
    /// A stored record breaks a format rule; the message names the sequence and the rule.
    Corrupt,
    /// RocksDB refused the read.
    Storage,
}

/// Why [`crate::Log::merkle_root`], [`crate::Log::inclusion_proof`] or
/// [`crate::Log::consistency_proof`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TreeErrorKind {
    /// A tree size beyond the log's tree size (its head sequence) was asked for.
    SizeBeyondTree,
    /// The leaf index is not below the tree size.
    IndexBeyondSize,
    /// A consistency proof to a smaller tree was asked for.
    Size2LessThanSize1,
    /// A consistency proof from the empty tree to a non-empty one was asked for; every tree
    /// extends the empty tree, so such a proof would prove nothing.
    Size1Zero,
    /// This handle keeps no tree (see [`crate::Log::create_without_merkle_tree`]).
    TreeDisabled,
    /// A stored node or record header that the answer needs is missing or malformed.
    Corrupt,
    /// RocksDB refused the read.
    Storage,
}

/// An error of kind `K`, with a message that follows the project's style: lowercase, no
/// final period, values in backticks.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error<K: fmt::Debug> {
    kind: K,
    message: String,
    #[source]
    source: Option<Cause>,
}

impl<K: fmt::Debug + Copy> Error<K> {
    /// What went wrong, as a closed set of cases to match on.
    pub fn kind(&self) -> K {
        self.kind
    }

    pub(crate) fn new(kind: K, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: K,
        message: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// The lower-level error behind an [`Error`], if any.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// From RocksDB.
    #[error(transparent)]
    Rocksdb(#[from] rocksdb::Error),
    /// From the file system.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
