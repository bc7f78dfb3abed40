//! The system of record: a blake3 hash-chained, group-committed log of opaque records in
//! RocksDB.
//!
//! A log is one partition of the ledger, kept in one directory and written by one writer.
//! It knows nothing about events: it stores opaque bodies, each tagged with a `u16` kind,
//! in one order. The writer assigns every record its sequence number (from 1, without
//! gaps) and takes the ledger time from the caller, refusing a time earlier than the
//! previous record's. Every record carries the hash of the record before it, so changing,
//! removing or reordering any stored record breaks the chain, and [`verify`] names the
//! first sequence number where it breaks.
//!
//! [`Log::append_batch`] writes many records, their secondary index entries (request,
//! grant, principal, resource) and the new head in one RocksDB write batch, synced to
//! disk before it returns: nothing may be acknowledged to anyone before its batch is
//! durable. [`Log::open_read_only`] is for auditors and replays: it writes nothing.
//!
//! The log also keeps an RFC 9162 Merkle tree (blake3, from `grantledger-merkle`) over the
//! record hashes, so that anyone holding a signed root can be shown, with `O(log n)`
//! hashes, that a record is in the log ([`Log::inclusion_proof`]) and that the log only
//! grew since that root ([`Log::consistency_proof`]); a hash chain alone shows neither a
//! cut-off end nor a rewrite with every hash recomputed. Appends extend the tree from a
//! frontier kept in memory and in `meta/tree`, and store its nodes from level
//! [`layout::MERKLE_LEVEL_MIN`] up in the same batch; [`verify`] rebuilds it and compares.
//!
//! The on-disk format is documented byte for byte in `schemas/LOG_FORMAT.md`, and the
//! names and encodings are public in [`layout`] and [`RecordHeader`], so that tools which
//! are not ours can read and check a log. This crate does no async work, knows no NATS and
//! never decodes a body.

pub mod layout;
pub mod rule;

/// The Merkle tree crate whose hasher, digests and pure verifiers the log's roots and
/// proofs are made for; re-exported so that a caller checks them with the very same code.
pub use grantledger_merkle as merkle;

pub use crate::error::{
    AppendError, AppendErrorKind, Cause, Error, OpenError, OpenErrorKind, ReadError, ReadErrorKind,
    TreeError, TreeErrorKind,
};
pub use crate::header::{
    BODY_BYTES_MAX, GENESIS_PARENT, HASH_DOMAIN_TAG, HEADER_BYTES, HEADER_HASHED_BYTES, Record,
    RecordHeader, VERSION_BINCODE_2_STANDARD, VERSION_BINCODE_2_STANDARD_LAYOUT_2,
    VERSION_BINCODE_2_STANDARD_LAYOUT_3, VERSION_CURRENT,
    version_known,
};
pub use crate::checkpoints::{CHECKPOINT_BYTES_MAX, META_KEY_CHECKPOINT_PREFIX};
pub use crate::layout::IndexName;
pub use crate::log::{Head, IndexKeys, Log, LogOptions, NewRecord, RecordIter};
pub use crate::verify::{VERIFY_PROGRESS_RECORDS, VerifyFailure, VerifyReport, verify};

mod check;
mod checkpoints;
mod error;
mod header;
mod log;
mod tree;
mod verify;

// The ledger service moves its `Log` into a dedicated writer thread, and readers share one.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
};
