//! Walking the whole chain and naming the first record that breaks a rule.

use std::fmt;

use grantledger_merkle::{Blake3, CompactRange, Digest, LEVEL_MAX, NodeId};
use rocksdb::{DB, DBRawIteratorWithThreadMode, SnapshotWithThreadMode};

use crate::check::{Broken, Link, check_record_value};
use crate::header::{Record, RecordHeader};
use crate::layout::{
    self, CF_MERKLE, CF_META, CF_RECORDS, MERKLE_LEVEL_MIN, MERKLE_NODE_KEY_BYTES, META_HEAD_BYTES,
    META_KEY_HEAD, META_KEY_TREE, RECORD_KEY_BYTES,
};
use crate::log::Log;
use crate::tree::TreeState;
use crate::{Head, rule};

/// What a successful [`verify`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records were checked (the head's sequence).
    pub records: u64,
    /// Hash of the last record, zero for an empty log.
    pub head_hash: [u8; 32],
    /// Time of the last record, 0 for an empty log.
    pub head_time_ms: i64,
}

/// The first record that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The first bad sequence: the record that breaks the rule, or the first one missing.
    /// 0 only when the log has no records and its stored head is unreadable.
    pub sequence: u64,
    /// The rule broken, one of the codes in [`crate::rule`].
    pub rule: &'static str,
    /// What exactly is wrong, for people.
    pub detail: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "record `{}` breaks rule `{}`: {}",
            self.sequence, self.rule, self.detail
        )
    }
}

impl std::error::Error for VerifyFailure {}

/// How often `verify` reports progress, in records.
pub const VERIFY_PROGRESS_RECORDS: u64 = 1 << 16;

/// Walks the `records` column family in key order from one consistent snapshot and checks
/// every record: key, header, length, hash, parent link, time order; then `check_body` on
/// the body; then that the stored head describes the last record. Returns the first
/// record that breaks a rule.
///
/// It rebuilds the Merkle tree from the record hashes as it walks, and compares each
/// stored node (levels `MERKLE_LEVEL_MIN` and up) the moment the record that completes it
/// has been checked; a node that is missing or differs is reported at that record's
/// sequence. After the walk it checks the stored tree frontier (`meta/tree`) and that the
/// `merkle` column family holds nothing beyond the tree. The stored nodes are read in key
/// order, one sequential iterator per level, so this adds no random reads to the walk.
/// A log made by `Log::create_without_merkle_tree` is walked without the tree checks.
///
/// `progress(checked, total)` is called every [`VERIFY_PROGRESS_RECORDS`] records and at
/// the end; `total` is the stored head's sequence (0 if it is unreadable).
pub fn verify(
    log: &Log,
    mut progress: impl FnMut(u64, u64),
    mut check_body: impl FnMut(&Record) -> Result<(), String>,
) -> Result<VerifyReport, VerifyFailure> {
    let db = log.db();
    let records_cf = db
        .cf_handle(CF_RECORDS)
        .expect("the log was opened with all its column families");
    let meta_cf = db
        .cf_handle(CF_META)
        .expect("the log was opened with all its column families");
    let snapshot = db.snapshot();

    let stored_head = snapshot
        .get_pinned_cf(meta_cf, META_KEY_HEAD)
        .map_err(|error| storage_failure(0, &error))?
        .map(|bytes| layout::decode_head(&bytes).ok_or(bytes.len()));
    let total = match stored_head {
        Some(Ok(head)) => head.sequence,
        _ => 0,
    };

    let mut iterator = snapshot.raw_iterator_cf_opt(records_cf, layout::scan_read_options());
    iterator.seek_to_first();

    // Reused for every record so that a long walk does not allocate per record.
    let mut scratch = Record {
        header: RecordHeader::decode(&[0; crate::HEADER_BYTES]),
        body: Vec::new(),
    };
    let mut previous: Option<([u8; 32], i64)> = None;
    let mut expected: u64 = 1;
    let mut tree = match log.tree_state() {
        TreeState::Disabled => None,
        TreeState::Maintained(_) | TreeState::ReadOnly => Some(TreeCheck::new(db, &snapshot)),
    };
    while let Some((key, value)) = iterator.item() {
        let sequence = check_key(expected, key)?;
        let fail = |broken: Broken| VerifyFailure {
            sequence,
            rule: broken.rule,
            detail: broken.detail,
        };
        let (header, body) =
            check_record_value(sequence, value, Link::from_previous(previous.as_ref()))
                .map_err(fail)?;
        scratch.header = header;
        scratch.body.clear();
        scratch.body.extend_from_slice(body);
        check_body(&scratch).map_err(|detail| VerifyFailure {
            sequence,
            rule: rule::BODY_REJECTED,
            detail,
        })?;
        if let Some(tree) = tree.as_mut() {
            tree.append(sequence, &header.hash)?;
        }
        previous = Some((header.hash, header.time_ms));
        if sequence % VERIFY_PROGRESS_RECORDS == 0 {
            progress(sequence, total);
        }
        expected += 1;
        iterator.next();
    }
    iterator
        .status()
        .map_err(|error| storage_failure(expected, &error))?;
    let last = match previous {
        Some((hash, time_ms)) => Head {
            sequence: expected - 1,
            hash,
            time_ms,
        },
        None => Head::EMPTY,
    };
    progress(last.sequence, total);
    check_head(stored_head, &last)?;
    if let Some(tree) = tree {
        tree.finish(&snapshot, meta_cf)?;
    }
    Ok(VerifyReport {
        records: last.sequence,
        head_hash: last.hash,
        head_time_ms: last.time_ms,
    })
}

/// Checks that the next key is the record key of `expected`, and returns `expected`.
fn check_key(expected: u64, key: &[u8]) -> Result<u64, VerifyFailure> {
    let Some(sequence) = layout::sequence_from_record_key(key) else {
        return Err(VerifyFailure {
            sequence: expected,
            rule: rule::KEY_NOT_SEQUENCE,
            detail: format!(
                "key `{}` is not `{RECORD_KEY_BYTES}` bytes",
                hex::encode(key)
            ),
        });
    };
    if sequence == expected {
        return Ok(sequence);
    }
    if sequence > expected {
        return Err(VerifyFailure {
            sequence: expected,
            rule: rule::SEQUENCE_MISSING,
            detail: format!("expected sequence `{expected}`, found `{sequence}`"),
        });
    }
    // Keys come in increasing order and every earlier 8-byte key matched its expected
    // sequence, so a smaller key can only be sequence 0.
    Err(VerifyFailure {
        sequence: expected,
        rule: rule::KEY_NOT_SEQUENCE,
        detail: format!("key is sequence `{sequence}`; sequences start at `1`"),
    })
}

/// Checks the stored head against the last record walked. Names the first sequence that
/// is missing (head ahead of the records), the first one the head does not cover (head
/// behind), or the last one (same sequence, different hash or time).
fn check_head(stored_head: Option<Result<Head, usize>>, last: &Head) -> Result<(), VerifyFailure> {
    let head = match stored_head {
        Some(Ok(head)) => head,
        Some(Err(length)) => {
            return Err(VerifyFailure {
                sequence: last.sequence,
                rule: rule::HEAD_MISMATCH,
                detail: format!(
                    "the stored head is `{length}` bytes, expected `{META_HEAD_BYTES}`"
                ),
            });
        }
        None => {
            return Err(VerifyFailure {
                sequence: last.sequence,
                rule: rule::HEAD_MISMATCH,
                detail: "there is no stored head".to_string(),
            });
        }
    };
    if head == *last {
        return Ok(());
    }
    let sequence = if head.sequence > last.sequence {
        last.sequence + 1
    } else if head.sequence < last.sequence {
        head.sequence + 1
    } else {
        last.sequence
    };
    Err(VerifyFailure {
        sequence,
        rule: rule::HEAD_MISMATCH,
        detail: format!(
            "the stored head is sequence `{}` hash `{}` time_ms `{}`, the last record is sequence `{}` hash `{}` time_ms `{}`",
            head.sequence,
            hex::encode(head.hash),
            head.time_ms,
            last.sequence,
            hex::encode(last.hash),
            last.time_ms
        ),
    })
}

/// The tree rebuilt during the walk, and one iterator per stored level that follows it.
struct TreeCheck<'a> {
    range: CompactRange,
    merkle_cf: &'a rocksdb::ColumnFamily,
    snapshot: &'a SnapshotWithThreadMode<'a, DB>,
    // `levels[level - MERKLE_LEVEL_MIN]`: positioned at the next stored node of that level,
    // created when the first node of the level completes.
    levels: Vec<Option<DBRawIteratorWithThreadMode<'a, DB>>>,
}

impl<'a> TreeCheck<'a> {
    fn new(db: &'a DB, snapshot: &'a SnapshotWithThreadMode<'a, DB>) -> TreeCheck<'a> {
        TreeCheck {
            range: CompactRange::new(),
            merkle_cf: db
                .cf_handle(CF_MERKLE)
                .expect("the log was opened with all its column families"),
            snapshot,
            levels: Vec::new(),
        }
    }

    /// Adds the leaf of record `sequence` and checks every stored node it completes.
    fn append(&mut self, sequence: u64, record_hash: &[u8; 32]) -> Result<(), VerifyFailure> {
        let mut failure = None;
        let (levels, merkle_cf, snapshot) = (&mut self.levels, self.merkle_cf, self.snapshot);
        self.range.append(
            &Blake3,
            layout::merkle_leaf_hash(record_hash),
            |node_id, hash| {
                if node_id.level < MERKLE_LEVEL_MIN || failure.is_some() {
                    return;
                }
                let slot = usize::from(node_id.level - MERKLE_LEVEL_MIN);
                if levels.len() <= slot {
                    levels.resize_with(slot + 1, || None);
                }
                let iterator = levels[slot]
                    .get_or_insert_with(|| level_iterator(snapshot, merkle_cf, node_id.level));
                failure = check_node(iterator, sequence, node_id, hash).err();
            },
        );
        failure.map_or(Ok(()), Err)
    }

    /// After the walk: the stored frontier is the rebuilt one, and the `merkle` column
    /// family holds no node beyond the tree, below the stored levels or with a bad key.
    fn finish(
        self,
        snapshot: &SnapshotWithThreadMode<'_, DB>,
        meta_cf: &rocksdb::ColumnFamily,
    ) -> Result<(), VerifyFailure> {
        let size = self.range.size();
        let frontier_failure = |detail: String| VerifyFailure {
            sequence: size,
            rule: rule::MERKLE_FRONTIER_MISMATCH,
            detail,
        };
        let stored = snapshot
            .get_pinned_cf(meta_cf, META_KEY_TREE)
            .map_err(|error| storage_failure(size, &error))?
            .ok_or_else(|| frontier_failure("there is no stored merkle tree frontier".into()))?;
        let expected = layout::encode_tree_frontier(&self.range);
        if *stored != *expected {
            return Err(frontier_failure(format!(
                "the stored merkle tree frontier is `{}`, the records give `{}`",
                hex::encode(&*stored),
                hex::encode(&expected)
            )));
        }

        let unexpected = |sequence: u64, key: &[u8], why: &str| VerifyFailure {
            sequence,
            rule: rule::MERKLE_NODE_UNEXPECTED,
            detail: format!("merkle key `{}` {why}", hex::encode(key)),
        };
        let mut iterator = snapshot.raw_iterator_cf(self.merkle_cf);
        iterator.seek_to_first();
        if let Some(key) = iterator.key()
            && key.first().is_none_or(|level| *level < MERKLE_LEVEL_MIN)
        {
            return Err(unexpected(
                size,
                key,
                &format!("is below the lowest stored level `{MERKLE_LEVEL_MIN}`"),
            ));
        }
        for level in MERKLE_LEVEL_MIN..=LEVEL_MAX {
            let first_beyond = NodeId::new(level, size >> level);
            iterator.seek(layout::merkle_node_key(first_beyond));
            if let Some(key) = iterator.key()
                && key.first() == Some(&level)
            {
                return Err(unexpected(
                    size + 1,
                    key,
                    &format!("is not a node of the tree of size `{size}`"),
                ));
            }
        }
        iterator.seek([LEVEL_MAX + 1]);
        if let Some(key) = iterator.key() {
            return Err(unexpected(size + 1, key, "is above the highest level `63`"));
        }
        iterator
            .status()
            .map_err(|error| storage_failure(size, &error))?;
        Ok(())
    }
}

fn level_iterator<'a>(
    snapshot: &'a SnapshotWithThreadMode<'a, DB>,
    merkle_cf: &'a rocksdb::ColumnFamily,
    level: u8,
) -> DBRawIteratorWithThreadMode<'a, DB> {
    let mut read_options = layout::scan_read_options();
    // Nodes are small and the walk touches each once: a modest read-ahead suffices.
    read_options.set_readahead_size(256 << 10);
    read_options.set_iterate_upper_bound(vec![level + 1]);
    let mut iterator = snapshot.raw_iterator_cf_opt(merkle_cf, read_options);
    iterator.seek(layout::merkle_node_key(NodeId::new(level, 0)));
    iterator
}

/// Checks that `iterator` is at the stored node `node_id` with hash `hash`, and advances it.
fn check_node(
    iterator: &mut DBRawIteratorWithThreadMode<'_, DB>,
    sequence: u64,
    node_id: NodeId,
    hash: &Digest,
) -> Result<(), VerifyFailure> {
    let expected_key = layout::merkle_node_key(node_id);
    let named = format!(
        "merkle node level `{}` index `{}`",
        node_id.level, node_id.index
    );
    let Some((key, value)) = iterator.item() else {
        iterator
            .status()
            .map_err(|error| storage_failure(sequence, &error))?;
        return Err(VerifyFailure {
            sequence,
            rule: rule::MERKLE_NODE_MISSING,
            detail: format!("{named} is not stored"),
        });
    };
    if key != expected_key {
        let (rule, detail) = if key.len() != MERKLE_NODE_KEY_BYTES {
            (
                rule::MERKLE_NODE_UNEXPECTED,
                format!(
                    "merkle key `{}` is not `{MERKLE_NODE_KEY_BYTES}` bytes",
                    hex::encode(key)
                ),
            )
        } else if key > &expected_key[..] {
            (rule::MERKLE_NODE_MISSING, format!("{named} is not stored"))
        } else {
            (
                rule::MERKLE_NODE_UNEXPECTED,
                format!(
                    "merkle key `{}` is stored before {named} but is not a node the records give",
                    hex::encode(key)
                ),
            )
        };
        return Err(VerifyFailure {
            sequence,
            rule,
            detail,
        });
    }
    if value != hash {
        return Err(VerifyFailure {
            sequence,
            rule: rule::MERKLE_NODE_MISMATCH,
            detail: format!(
                "{named} is stored as `{}`, the records give `{}`",
                hex::encode(value),
                hex::encode(hash)
            ),
        });
    }
    iterator.next();
    Ok(())
}

fn storage_failure(sequence: u64, error: &rocksdb::Error) -> VerifyFailure {
    VerifyFailure {
        sequence,
        rule: rule::STORAGE_ERROR,
        detail: format!("reading the log failed: {error}"),
    }
}
