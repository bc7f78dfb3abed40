//! The log handle: create, open, append, read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use grantledger_merkle::{Blake3, CompactRange};
use rocksdb::{ColumnFamily, DB, DBRawIterator, WriteBatch, WriteOptions};

use crate::check::{Link, check_record_value};
use crate::error::{
    AppendError, AppendErrorKind, OpenError, OpenErrorKind, ReadError, ReadErrorKind,
};
use crate::header::{
    BODY_BYTES_MAX, HEADER_BYTES, Record, RecordHeader, VERSION_CURRENT, hash_record, hashed_prefix,
};
use crate::layout::{
    self, CF_MERKLE, CF_META, CF_RECORDS, COLUMN_FAMILIES, FORMAT_MARKER, INDEX_KEY_BYTES_MAX,
    INDEX_PRINCIPALS_MAX, IndexName, MERKLE_LEVEL_MIN, META_HEAD_BYTES, META_KEY_FORMAT,
    META_KEY_HEAD, META_KEY_TREE, RECORD_KEY_BYTES,
};
use crate::rule;
use crate::tree::{TreeNodes, TreeState};

/// How a writer uses the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Most records [`Log::append_batch`] accepts at once.
    pub batch_records_max: usize,
    /// Whether each append waits for the WAL to reach the disk (`fdatasync`) before it
    /// returns. Only `false` for building throwaway logs (benchmarks, fixtures): with
    /// `false`, a power loss can lose appends that already returned.
    pub sync: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            batch_records_max: 4096,
            sync: true,
        }
    }
}

/// One record to append. The log assigns its sequence, parent and hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewRecord<'a> {
    /// The ledger's time, UTC milliseconds; never earlier than the previous record's.
    pub time_ms: i64,
    /// What the body is.
    pub kind: u16,
    /// The opaque body, at most [`BODY_BYTES_MAX`] bytes.
    pub body: &'a [u8],
    /// The secondary index keys the record is found under.
    pub index: IndexKeys<'a>,
}

/// The secondary index keys of one record. Each key is 1 to [`INDEX_KEY_BYTES_MAX`] bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexKeys<'a> {
    /// The access request the record belongs to.
    pub request: Option<&'a [u8]>,
    /// The grant the record belongs to.
    pub grant: Option<&'a [u8]>,
    /// Principals the record concerns, at most [`INDEX_PRINCIPALS_MAX`].
    pub principal: &'a [&'a [u8]],
    /// The resource the record concerns.
    pub resource: Option<&'a [u8]>,
}

/// The last record of the log, as the `meta` column family stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// Sequence of the last record; 0 when the log is empty.
    pub sequence: u64,
    /// Hash of the last record; zero when the log is empty.
    pub hash: [u8; 32],
    /// Time of the last record; 0 when the log is empty.
    pub time_ms: i64,
}

impl Head {
    /// The head of a log with no records.
    pub const EMPTY: Head = Head {
        sequence: 0,
        hash: [0; 32],
        time_ms: 0,
    };
}

/// One partition of the ledger: a RocksDB database in one directory, written by one writer.
pub struct Log {
    db: DB,
    path: PathBuf,
    options: LogOptions,
    head: Head,
    // INVARIANT: when `Maintained`, the range's size is `head.sequence`.
    tree: TreeState,
    read_only: bool,
    poisoned: bool,
}

impl Log {
    /// Creates a new, empty log in `dir`, creating the directory if needed. Refuses a
    /// directory that already has anything in it.
    pub fn create(dir: &Path, options: LogOptions) -> Result<Log, OpenError> {
        Log::create_with_tree(dir, options, true)
    }

    /// Creates a log that keeps no Merkle tree: its appends write no tree nodes and no
    /// frontier, and it cannot produce roots or proofs, nor be reopened with [`Log::open`].
    ///
    /// This exists only as the peer of the `merkle_log` benchmark, which measures what
    /// maintaining the tree costs an append by timing the same appends with and without
    /// it. Nothing else may use it: a log without its tree is not a grantledger log.
    pub fn create_without_merkle_tree(dir: &Path, options: LogOptions) -> Result<Log, OpenError> {
        Log::create_with_tree(dir, options, false)
    }

    fn create_with_tree(dir: &Path, options: LogOptions, tree: bool) -> Result<Log, OpenError> {
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(OpenError::new(
                        OpenErrorKind::DirectoryNotEmpty,
                        format!(
                            "refusing to create a log in `{}`: the directory is not empty",
                            dir.display()
                        ),
                    ));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                create_directory_durably(dir).map_err(|error| {
                    OpenError::with_source(
                        OpenErrorKind::Io,
                        format!("cannot create log directory `{}`: {error}", dir.display()),
                        error,
                    )
                })?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
                return Err(not_a_directory(dir));
            }
            Err(error) => {
                return Err(OpenError::with_source(
                    OpenErrorKind::Io,
                    format!("cannot read log directory `{}`: {error}", dir.display()),
                    error,
                ));
            }
        }
        let mut db_options = layout::rocksdb_options();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_error_if_exists(true);
        let db = DB::open_cf_descriptors(&db_options, dir, layout::column_family_descriptors())
            .map_err(|error| storage_open_error(dir, error))?;
        // The format marker and the empty head go in one synced batch: a directory either
        // is a complete empty log or has no format marker and is refused by `open`.
        let mut batch = WriteBatch::default();
        let meta = column_family(&db, CF_META);
        batch.put_cf(meta, META_KEY_FORMAT, FORMAT_MARKER);
        batch.put_cf(meta, META_KEY_HEAD, layout::encode_head(&Head::EMPTY));
        let tree = if tree {
            let range = CompactRange::new();
            batch.put_cf(meta, META_KEY_TREE, layout::encode_tree_frontier(&range));
            TreeState::Maintained(range)
        } else {
            TreeState::Disabled
        };
        let mut write_options = WriteOptions::default();
        write_options.set_sync(true);
        db.write_opt(batch, &write_options)
            .map_err(|error| storage_open_error(dir, error))?;
        Ok(Log {
            db,
            path: dir.to_path_buf(),
            options,
            head: Head::EMPTY,
            tree,
            read_only: false,
            poisoned: false,
        })
    }

    /// Opens an existing log for writing. Checks that the directory holds a grantledger
    /// log and that the stored head describes the last record (sequence, hash, time), and
    /// that the last record itself is valid. Restores the Merkle tree's frontier from
    /// `meta/tree` and checks it against the stored nodes and the record hashes of the
    /// last partial block (at most `popcount(head)` point reads and one short scan), so
    /// that appends extend the right tree without reading anything.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Log, OpenError> {
        check_is_log_directory(dir)?;
        let db = DB::open_cf_descriptors(
            &layout::rocksdb_options(),
            dir,
            layout::column_family_descriptors(),
        )
        .map_err(|error| storage_open_error(dir, error))?;
        check_format_marker(&db, dir)?;
        let head = read_meta_head(&db, dir)?;
        let last = read_last_record_head(&db, dir)?;
        if head != last {
            return Err(OpenError::new(
                OpenErrorKind::HeadMismatch,
                format!(
                    "log head in `{}` does not match the last record: the head says {}, the last record is {}",
                    dir.display(),
                    describe_head(&head),
                    describe_head(&last)
                ),
            ));
        }
        let range = restore_tree_frontier(&db, dir, head.sequence)?;
        Ok(Log {
            db,
            path: dir.to_path_buf(),
            options,
            head,
            tree: TreeState::Maintained(range),
            read_only: false,
            poisoned: false,
        })
    }

    /// Opens an existing log for reading (verify, show, replay). Creates and writes
    /// nothing, and works while a writer has the log open (it sees the log as it was when
    /// opened). Checks only that the directory holds a grantledger log: a log whose head
    /// or records are damaged still opens, so that [`crate::verify`] can name the damage.
    /// If the stored head cannot be decoded, [`Log::head`] falls back to the last record.
    pub fn open_read_only(dir: &Path) -> Result<Log, OpenError> {
        check_is_log_directory(dir)?;
        // INVARIANT: `create_if_missing` is off (the default), so RocksDB's read-only open
        // neither creates the directory nor writes an info log.
        let db = DB::open_cf_descriptors_read_only(
            &layout::rocksdb_options(),
            dir,
            layout::column_family_descriptors(),
            false,
        )
        .map_err(|error| storage_open_error(dir, error))?;
        check_format_marker(&db, dir)?;
        let head = match read_meta_head(&db, dir) {
            Ok(head) => head,
            Err(_) => last_record_position(&db).map_err(|error| storage_open_error(dir, error))?,
        };
        Ok(Log {
            db,
            path: dir.to_path_buf(),
            options: LogOptions::default(),
            head,
            tree: TreeState::ReadOnly,
            read_only: true,
            poisoned: false,
        })
    }

    /// The last record's sequence, hash and time (as of the last append through this
    /// handle, or as of opening).
    pub fn head(&self) -> Head {
        self.head
    }

    /// The directory of the log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle was opened with [`Log::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// Appends `records` in order, as one RocksDB write batch holding the records, their
    /// index entries, the Merkle tree nodes they complete (levels [`MERKLE_LEVEL_MIN`] and
    /// up), the tree's new frontier and the new head, written with `sync` per
    /// [`LogOptions::sync`]. Extending the tree reads nothing: the frontier is in memory.
    /// Returns the headers once the write has returned, that is, once the batch is durable
    /// when `sync` is on. An empty batch is a no-op.
    ///
    /// Refuses (and writes nothing) a batch over `batch_records_max`, a body over
    /// [`BODY_BYTES_MAX`], a time earlier than the previous record's, and index keys
    /// that are empty, over [`INDEX_KEY_BYTES_MAX`] or more than [`INDEX_PRINCIPALS_MAX`]
    /// principals. After a failed write the handle refuses all further appends.
    pub fn append_batch(
        &mut self,
        records: &[NewRecord<'_>],
    ) -> Result<Vec<RecordHeader>, AppendError> {
        self.append_batch_versioned(VERSION_CURRENT, records)
    }

    /// [`Log::append_batch`] with header version `version` (the codec the caller encoded
    /// the bodies with), which must be one of the format's.
    pub fn append_batch_versioned(
        &mut self,
        version: u8,
        records: &[NewRecord<'_>],
    ) -> Result<Vec<RecordHeader>, AppendError> {
        if !crate::header::version_known(version) {
            return Err(AppendError::new(
                AppendErrorKind::VersionUnknown,
                format!("header version `{version}` is not one of the format's (1, 2, 3)"),
            ));
        }
        if self.read_only {
            return Err(AppendError::new(
                AppendErrorKind::ReadOnly,
                format!("the log in `{}` was opened read-only", self.path.display()),
            ));
        }
        if self.poisoned {
            return Err(AppendError::new(
                AppendErrorKind::Poisoned,
                format!(
                    "an earlier write to the log in `{}` failed; reopen the log",
                    self.path.display()
                ),
            ));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.check_batch(records)?;
        let Some(last_sequence) = self.head.sequence.checked_add(records.len() as u64) else {
            return Err(AppendError::new(
                AppendErrorKind::SequenceExhausted,
                format!(
                    "the log is at sequence `{}` and cannot take `{}` more records",
                    self.head.sequence,
                    records.len()
                ),
            ));
        };

        let records_cf = column_family(&self.db, CF_RECORDS);
        let meta_cf = column_family(&self.db, CF_META);
        let merkle_cf = column_family(&self.db, CF_MERKLE);
        let index_cfs = IndexName::ALL.map(|index| column_family(&self.db, index.column_family()));
        let value_bytes_total: usize = records
            .iter()
            .map(|record| HEADER_BYTES + record.body.len() + 64)
            .sum();
        let mut batch = WriteBatch::with_capacity_bytes(value_bytes_total + 128);
        let mut headers = Vec::with_capacity(records.len());
        let mut value = Vec::with_capacity(HEADER_BYTES + 512);
        let mut index_key = Vec::with_capacity(64);
        let mut parent = self.head.hash;
        // Extended on a copy (at most 64 hashes), kept only once the batch is written.
        let mut range = match &self.tree {
            TreeState::Maintained(range) => Some(range.clone()),
            TreeState::ReadOnly | TreeState::Disabled => None,
        };
        for (sequence, record) in (self.head.sequence + 1..=last_sequence).zip(records) {
            let mut header = RecordHeader {
                version,
                sequence,
                time_ms: record.time_ms,
                kind: record.kind,
                // INVARIANT: check_batch refused bodies over BODY_BYTES_MAX, which fits in a u32.
                body_len: record.body.len() as u32,
                parent,
                hash: [0; 32],
            };
            let mut header_bytes = header.encode();
            header.hash = hash_record(hashed_prefix(&header_bytes), record.body);
            header_bytes[HEADER_BYTES - 32..].copy_from_slice(&header.hash);
            value.clear();
            value.extend_from_slice(&header_bytes);
            value.extend_from_slice(record.body);
            batch.put_cf(records_cf, layout::record_key(sequence), &value);
            if let Some(range) = range.as_mut() {
                let leaf_hash = layout::merkle_leaf_hash(&header.hash);
                range.append(&Blake3, leaf_hash, |node_id, hash| {
                    if node_id.level >= MERKLE_LEVEL_MIN {
                        batch.put_cf(merkle_cf, layout::merkle_node_key(node_id), hash);
                    }
                });
            }

            let single_keys = [
                (IndexName::Request, record.index.request),
                (IndexName::Grant, record.index.grant),
                (IndexName::Resource, record.index.resource),
            ];
            for (index, key) in single_keys {
                if let Some(key) = key {
                    index_key.clear();
                    layout::index_entry_key(key, sequence, &mut index_key);
                    batch.put_cf(index_cfs[index as usize], &index_key, []);
                }
            }
            for key in record.index.principal {
                index_key.clear();
                layout::index_entry_key(key, sequence, &mut index_key);
                batch.put_cf(index_cfs[IndexName::Principal as usize], &index_key, []);
            }
            parent = header.hash;
            headers.push(header);
        }
        let last = headers.last().expect("the batch is not empty");
        let head = Head {
            sequence: last.sequence,
            hash: last.hash,
            time_ms: last.time_ms,
        };
        batch.put_cf(meta_cf, META_KEY_HEAD, layout::encode_head(&head));
        if let Some(range) = &range {
            batch.put_cf(meta_cf, META_KEY_TREE, layout::encode_tree_frontier(range));
        }

        let mut write_options = WriteOptions::default();
        write_options.set_sync(self.options.sync);
        if let Err(error) = self.db.write_opt(batch, &write_options) {
            // Whether the batch reached the disk is unknown (a failed fsync may or may not
            // have persisted it), so the in-memory head can no longer be trusted.
            self.poisoned = true;
            return Err(AppendError::with_source(
                AppendErrorKind::Storage,
                format!(
                    "writing records `{}` to `{}` failed: {error}",
                    self.head.sequence + 1,
                    last_sequence
                ),
                error,
            ));
        }
        self.head = head;
        if let Some(range) = range {
            // INVARIANT: the range grew by one leaf per record, so its size is the head's.
            debug_assert_eq!(range.size(), head.sequence);
            self.tree = TreeState::Maintained(range);
        }
        Ok(headers)
    }

    /// The record at `sequence`, or `None` if there is none. Checks the record on its own
    /// (header, length, hash) but not its link to the previous record; `verify` does that.
    pub fn read(&self, sequence: u64) -> Result<Option<Record>, ReadError> {
        let records_cf = column_family(&self.db, CF_RECORDS);
        let value = self
            .db
            .get_pinned_cf(records_cf, layout::record_key(sequence))
            .map_err(|error| storage_read_error(sequence, error))?;
        let Some(value) = value else { return Ok(None) };
        let (header, body) = check_record_value(sequence, &value, Link::Unchecked)
            .map_err(|broken| corrupt_read_error(sequence, broken.rule, &broken.detail))?;
        Ok(Some(Record {
            header,
            body: body.to_vec(),
        }))
    }

    /// The records from `sequence` (0 is read as 1) up to the head as of this call, in
    /// order. Checks every record and its link to the previous one; the first problem is
    /// returned as an error and ends the iteration.
    pub fn iter_from(&self, sequence: u64) -> RecordIter<'_> {
        RecordIter::new(self, sequence.max(1))
    }

    /// Sequences of records indexed under request id `key`, in order, at most `limit`.
    pub fn sequences_for_request(&self, key: &[u8], limit: usize) -> Result<Vec<u64>, ReadError> {
        self.sequences_for(IndexName::Request, key, 0, limit)
    }

    /// Sequences of records indexed under grant id `key`, in order, at most `limit`.
    pub fn sequences_for_grant(&self, key: &[u8], limit: usize) -> Result<Vec<u64>, ReadError> {
        self.sequences_for(IndexName::Grant, key, 0, limit)
    }

    /// Sequences of records indexed under principal `key`, in order, at most `limit`.
    pub fn sequences_for_principal(&self, key: &[u8], limit: usize) -> Result<Vec<u64>, ReadError> {
        self.sequences_for(IndexName::Principal, key, 0, limit)
    }

    /// Sequences of records indexed under resource `key`, in order, at most `limit`.
    pub fn sequences_for_resource(&self, key: &[u8], limit: usize) -> Result<Vec<u64>, ReadError> {
        self.sequences_for(IndexName::Resource, key, 0, limit)
    }

    /// Sequences of at least `from_sequence` indexed under `key` in `index`, in order, at
    /// most `limit`. Page through with `from_sequence = last + 1`.
    pub fn sequences_for(
        &self,
        index: IndexName,
        key: &[u8],
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<u64>, ReadError> {
        if key.is_empty() || key.len() > INDEX_KEY_BYTES_MAX || limit == 0 {
            // Appends refuse such keys, so nothing can be indexed under them.
            return Ok(Vec::new());
        }
        let mut prefix = Vec::with_capacity(2 + key.len() + 8);
        layout::index_prefix(key, &mut prefix);
        let prefix_len = prefix.len();
        prefix.extend_from_slice(&from_sequence.to_be_bytes());
        let mut iterator = self
            .db
            .raw_iterator_cf(column_family(&self.db, index.column_family()));
        iterator.seek(&prefix);
        let mut sequences = Vec::new();
        while let Some(entry) = iterator.key() {
            let Some(sequence_bytes) = entry.strip_prefix(&prefix[..prefix_len]) else {
                break;
            };
            // INVARIANT: the length prefix makes entries of one key exactly prefix || u64,
            // so anything longer or shorter is not one of ours and not this key's.
            let Ok(sequence_bytes) = <[u8; 8]>::try_from(sequence_bytes) else {
                break;
            };
            sequences.push(u64::from_be_bytes(sequence_bytes));
            if sequences.len() == limit {
                break;
            }
            iterator.next();
        }
        iterator.status().map_err(|error| {
            ReadError::with_source(
                ReadErrorKind::Storage,
                format!(
                    "reading the `{}` index failed: {error}",
                    index.column_family()
                ),
                error,
            )
        })?;
        Ok(sequences)
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn tree_state(&self) -> &TreeState {
        &self.tree
    }
}

/// The iterator returned by [`Log::iter_from`].
pub struct RecordIter<'a> {
    iterator: DBRawIterator<'a>,
    next_sequence: u64,
    last_sequence: u64,
    previous: Option<([u8; 32], i64)>,
    failed: Option<ReadError>,
    done: bool,
}

impl<'a> RecordIter<'a> {
    fn new(log: &'a Log, first_sequence: u64) -> RecordIter<'a> {
        let last_sequence = log.head.sequence;
        let mut read_options = layout::scan_read_options();
        read_options
            .set_iterate_upper_bound(layout::record_key(last_sequence.saturating_add(1)).to_vec());
        let mut iterator = log
            .db
            .raw_iterator_cf_opt(column_family(&log.db, CF_RECORDS), read_options);
        let mut failed = None;
        // The first record's link is checked against its predecessor, read here; record 1
        // links to the genesis parent, which `previous = None` stands for.
        let mut previous = None;
        if first_sequence > 1 && first_sequence <= last_sequence {
            match log.read(first_sequence - 1) {
                Ok(Some(record)) => previous = Some((record.header.hash, record.header.time_ms)),
                Ok(None) => {
                    failed = Some(corrupt_read_error(
                        first_sequence - 1,
                        rule::SEQUENCE_MISSING,
                        "record is missing",
                    ))
                }
                Err(error) => failed = Some(error),
            }
        }
        iterator.seek(layout::record_key(first_sequence));
        RecordIter {
            iterator,
            next_sequence: first_sequence,
            last_sequence,
            previous,
            failed,
            done: false,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if self.next_sequence > self.last_sequence {
            return Ok(None);
        }
        let sequence = self.next_sequence;
        let Some((key, value)) = self.iterator.item() else {
            self.iterator
                .status()
                .map_err(|error| storage_read_error(sequence, error))?;
            return Err(corrupt_read_error(
                sequence,
                rule::SEQUENCE_MISSING,
                "the log ends before its head",
            ));
        };
        if layout::sequence_from_record_key(key) != Some(sequence) {
            return Err(corrupt_read_error(
                sequence,
                rule::SEQUENCE_MISSING,
                &format!("the next key is `{}`", hex::encode(key)),
            ));
        }
        // INVARIANT: `previous` is `None` only for sequence 1 (see `new`), so every record's
        // link is checked.
        let link = Link::from_previous(self.previous.as_ref());
        let (header, body) = check_record_value(sequence, value, link)
            .map_err(|broken| corrupt_read_error(sequence, broken.rule, &broken.detail))?;
        self.previous = Some((header.hash, header.time_ms));
        self.next_sequence += 1;
        let record = Record {
            header,
            body: body.to_vec(),
        };
        self.iterator.next();
        Ok(Some(record))
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl Log {
    fn check_batch(&self, records: &[NewRecord<'_>]) -> Result<(), AppendError> {
        if records.len() > self.options.batch_records_max {
            return Err(AppendError::new(
                AppendErrorKind::BatchTooLarge,
                format!(
                    "a batch of `{}` records is over batch_records_max `{}`",
                    records.len(),
                    self.options.batch_records_max
                ),
            ));
        }
        let mut previous_time_ms = (self.head.sequence > 0).then_some(self.head.time_ms);
        for (position, record) in records.iter().enumerate() {
            if record.body.len() > BODY_BYTES_MAX as usize {
                return Err(AppendError::new(
                    AppendErrorKind::BodyTooLarge,
                    format!(
                        "record `{position}` of the batch has a body of `{}` bytes, over body_bytes_max `{BODY_BYTES_MAX}`",
                        record.body.len()
                    ),
                ));
            }
            if let Some(previous) = previous_time_ms
                && record.time_ms < previous
            {
                return Err(AppendError::new(
                    AppendErrorKind::TimeWentBackwards,
                    format!(
                        "record `{position}` of the batch has time_ms `{}`, earlier than the previous record's time_ms `{previous}`",
                        record.time_ms
                    ),
                ));
            }
            previous_time_ms = Some(record.time_ms);
            check_index_keys(position, &record.index)?;
        }
        Ok(())
    }
}

fn check_index_keys(position: usize, index: &IndexKeys<'_>) -> Result<(), AppendError> {
    if index.principal.len() > INDEX_PRINCIPALS_MAX {
        return Err(AppendError::new(
            AppendErrorKind::IndexKeysInvalid,
            format!(
                "record `{position}` of the batch has `{}` principals, over index_principals_max `{INDEX_PRINCIPALS_MAX}`",
                index.principal.len()
            ),
        ));
    }
    let keys = [
        ("request", index.request),
        ("grant", index.grant),
        ("resource", index.resource),
    ]
    .into_iter()
    .filter_map(|(name, key)| key.map(|key| (name, key)))
    .chain(index.principal.iter().map(|key| ("principal", *key)));
    for (name, key) in keys {
        if key.is_empty() || key.len() > INDEX_KEY_BYTES_MAX {
            return Err(AppendError::new(
                AppendErrorKind::IndexKeysInvalid,
                format!(
                    "record `{position}` of the batch has a {name} index key of `{}` bytes; keys are 1 to index_key_bytes_max `{INDEX_KEY_BYTES_MAX}` bytes",
                    key.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Creates `dir` and syncs its parent, so that the directory entry itself survives a
/// power loss (RocksDB syncs the files inside it).
fn create_directory_durably(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn column_family<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    // INVARIANT: every log is opened with all of COLUMN_FAMILIES (create makes them, open
    // checks them first), so the handle exists.
    db.cf_handle(name)
        .expect("the log was opened with all its column families")
}

fn check_is_log_directory(dir: &Path) -> Result<(), OpenError> {
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(not_a_directory(dir)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(OpenError::new(
                OpenErrorKind::DirectoryMissing,
                format!("log directory `{}` does not exist", dir.display()),
            ));
        }
        Err(error) => {
            return Err(OpenError::with_source(
                OpenErrorKind::Io,
                format!("cannot read log directory `{}`: {error}", dir.display()),
                error,
            ));
        }
    }
    // Listing column families only reads CURRENT and the MANIFEST; it fails when there is
    // no RocksDB database here at all.
    let families = DB::list_cf(&rocksdb::Options::default(), dir).map_err(|error| {
        OpenError::with_source(
            OpenErrorKind::NotALog,
            format!(
                "`{}` is not a grantledger log: it holds no readable database",
                dir.display()
            ),
            error,
        )
    })?;
    if let Some(missing) = COLUMN_FAMILIES
        .iter()
        .find(|name| !families.iter().any(|family| family == *name))
    {
        return Err(OpenError::new(
            OpenErrorKind::NotALog,
            format!(
                "`{}` is not a grantledger log: it has no column family `{missing}`",
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn check_format_marker(db: &DB, dir: &Path) -> Result<(), OpenError> {
    let marker = db
        .get_pinned_cf(column_family(db, CF_META), META_KEY_FORMAT)
        .map_err(|error| storage_open_error(dir, error))?;
    match marker {
        None => Err(OpenError::new(
            OpenErrorKind::NotALog,
            format!(
                "`{}` is not a grantledger log: it has no format marker",
                dir.display()
            ),
        )),
        Some(marker) if *marker != *FORMAT_MARKER => Err(OpenError::new(
            OpenErrorKind::UnsupportedFormat,
            format!(
                "the log in `{}` has format `{}`; this build reads `{}`",
                dir.display(),
                String::from_utf8_lossy(&marker),
                String::from_utf8_lossy(FORMAT_MARKER)
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn read_meta_head(db: &DB, dir: &Path) -> Result<Head, OpenError> {
    let stored = db
        .get_pinned_cf(column_family(db, CF_META), META_KEY_HEAD)
        .map_err(|error| storage_open_error(dir, error))?;
    let Some(stored) = stored else {
        return Err(OpenError::new(
            OpenErrorKind::HeadCorrupt,
            format!("the log in `{}` has no stored head", dir.display()),
        ));
    };
    layout::decode_head(&stored).ok_or_else(|| {
        OpenError::new(
            OpenErrorKind::HeadCorrupt,
            format!(
                "the stored head of the log in `{}` is `{}` bytes, expected `{META_HEAD_BYTES}`",
                dir.display(),
                stored.len()
            ),
        )
    })
}

/// The head the last record implies, after checking that record on its own.
fn read_last_record_head(db: &DB, dir: &Path) -> Result<Head, OpenError> {
    let mut iterator = db.raw_iterator_cf(column_family(db, CF_RECORDS));
    iterator.seek_to_last();
    let Some((key, value)) = iterator.item() else {
        iterator
            .status()
            .map_err(|error| storage_open_error(dir, error))?;
        return Ok(Head::EMPTY);
    };
    let corrupt = |rule: &str, detail: &str| {
        OpenError::new(
            OpenErrorKind::RecordCorrupt,
            format!(
                "the last record of the log in `{}` breaks rule `{rule}`: {detail}",
                dir.display()
            ),
        )
    };
    let Some(sequence) = layout::sequence_from_record_key(key) else {
        return Err(corrupt(
            rule::KEY_NOT_SEQUENCE,
            &format!(
                "key `{}` is not `{RECORD_KEY_BYTES}` bytes",
                hex::encode(key)
            ),
        ));
    };
    let (header, _) = check_record_value(sequence, value, Link::Unchecked)
        .map_err(|broken| corrupt(broken.rule, &broken.detail))?;
    Ok(Head {
        sequence: header.sequence,
        hash: header.hash,
        time_ms: header.time_ms,
    })
}

/// Best-effort position of the last record, for a read-only handle whose stored head is
/// unreadable.
fn last_record_position(db: &DB) -> Result<Head, rocksdb::Error> {
    let mut iterator = db.raw_iterator_cf(column_family(db, CF_RECORDS));
    iterator.seek_to_last();
    let head = match iterator.item() {
        Some((key, value)) if value.len() >= HEADER_BYTES => {
            let header_bytes: &[u8; HEADER_BYTES] =
                value[..HEADER_BYTES].try_into().expect("length checked");
            let header = RecordHeader::decode(header_bytes);
            Head {
                sequence: layout::sequence_from_record_key(key).unwrap_or(header.sequence),
                hash: header.hash,
                time_ms: header.time_ms,
            }
        }
        Some((key, _)) => Head {
            sequence: layout::sequence_from_record_key(key).unwrap_or(0),
            ..Head::EMPTY
        },
        None => Head::EMPTY,
    };
    iterator.status()?;
    Ok(head)
}

/// The stored tree frontier, checked to be the compact range of the first `size` records
/// according to the stored nodes and record hashes.
fn restore_tree_frontier(db: &DB, dir: &Path, size: u64) -> Result<CompactRange, OpenError> {
    let mismatch = |detail: String| {
        OpenError::new(
            OpenErrorKind::TreeMismatch,
            format!(
                "the merkle tree frontier of the log in `{}` {detail}",
                dir.display()
            ),
        )
    };
    let stored = db
        .get_pinned_cf(column_family(db, CF_META), META_KEY_TREE)
        .map_err(|error| storage_open_error(dir, error))?
        .ok_or_else(|| mismatch("is not stored".to_string()))?;
    let (stored_size, stored_peaks) = layout::decode_tree_frontier(&stored).ok_or_else(|| {
        mismatch(format!(
            "is `{}` bytes, not 8 plus 32 per set bit of its size",
            stored.len()
        ))
    })?;
    if stored_size != size {
        return Err(mismatch(format!(
            "is at size `{stored_size}` but the head is at sequence `{size}`"
        )));
    }
    let range = CompactRange::from_store(&TreeNodes::new(db, size), size)
        .map_err(|error| mismatch(format!("cannot be checked: {error}")))?;
    let peak_ids = CompactRange::peak_ids(size);
    for ((node_id, stored), computed) in peak_ids.iter().zip(&stored_peaks).zip(range.peaks()) {
        if stored != computed {
            return Err(mismatch(format!(
                "has `{}` for node level `{}` index `{}`, but the stored nodes and records give `{}`",
                hex::encode(stored),
                node_id.level,
                node_id.index,
                hex::encode(computed)
            )));
        }
    }
    Ok(range)
}

fn describe_head(head: &Head) -> String {
    format!(
        "sequence `{}` hash `{}` time_ms `{}`",
        head.sequence,
        hex::encode(head.hash),
        head.time_ms
    )
}

fn not_a_directory(dir: &Path) -> OpenError {
    OpenError::new(
        OpenErrorKind::NotADirectory,
        format!("`{}` is not a directory", dir.display()),
    )
}

fn storage_open_error(dir: &Path, error: rocksdb::Error) -> OpenError {
    OpenError::with_source(
        OpenErrorKind::Storage,
        format!("cannot open the log in `{}`: {error}", dir.display()),
        error,
    )
}

fn storage_read_error(sequence: u64, error: rocksdb::Error) -> ReadError {
    ReadError::with_source(
        ReadErrorKind::Storage,
        format!("reading record `{sequence}` failed: {error}"),
        error,
    )
}

pub(crate) fn corrupt_read_error(sequence: u64, rule: &str, detail: &str) -> ReadError {
    ReadError::new(
        ReadErrorKind::Corrupt,
        format!("record `{sequence}` breaks rule `{rule}`: {detail}"),
    )
}
