//! Walking the whole chain and naming the first record that breaks a rule.

use std::fmt;

use crate::check::{Broken, Link, check_record_value};
use crate::header::{Record, RecordHeader};
use crate::layout::{self, CF_META, CF_RECORDS, META_HEAD_BYTES, META_KEY_HEAD, RECORD_KEY_BYTES};
use crate::log::Log;
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

fn storage_failure(sequence: u64, error: &rocksdb::Error) -> VerifyFailure {
    VerifyFailure {
        sequence,
        rule: rule::STORAGE_ERROR,
        detail: format!("reading the log failed: {error}"),
    }
}
