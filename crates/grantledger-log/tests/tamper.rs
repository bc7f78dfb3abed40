//! Tampering done directly through RocksDB, as someone with write access to the files
//! could: `verify` must name exactly the record that was touched.

mod common;

use std::path::Path;

use common::{body_matches_sequence, build_log, open_raw, raw_meta_cf, raw_records_cf, raw_value};
use grantledger_log::{Log, VerifyFailure, layout, rule, verify};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const RECORDS: u64 = 200;

fn verify_dir(dir: &Path) -> Result<u64, VerifyFailure> {
    let log = Log::open_read_only(dir).expect("a tampered log still opens read-only");
    verify(&log, |_, _| {}, body_matches_sequence).map(|report| report.records)
}

/// A 200-record log plus a RocksDB handle held open on it, so that each single-byte
/// tampering is one put and each check a fresh read-only open (which replays the WAL).
struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    db: rocksdb::DB,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        drop(build_log(&path, RECORDS));
        let db = open_raw(&path);
        assert_eq!(verify_dir(&path), Ok(RECORDS));
        Fixture {
            _dir: dir,
            path,
            db,
        }
    }

    fn put(&self, sequence: u64, value: &[u8]) {
        self.db
            .put_cf(
                raw_records_cf(&self.db),
                layout::record_key(sequence),
                value,
            )
            .unwrap();
    }

    /// Flips `mask` into byte `offset` of record `sequence`, verifies, restores.
    fn flip_and_verify(
        &self,
        sequence: u64,
        offset: usize,
        mask: u8,
    ) -> Result<u64, VerifyFailure> {
        let original = raw_value(&self.db, sequence);
        let mut tampered = original.clone();
        tampered[offset] ^= mask;
        self.put(sequence, &tampered);
        let result = verify_dir(&self.path);
        self.put(sequence, &original);
        result
    }
}

#[test]
fn flipping_any_byte_of_chosen_records_names_that_record() {
    let fixture = Fixture::new();
    // First, middle and last record, every byte of header and body, two different masks.
    for sequence in [1, 100, RECORDS] {
        let length = raw_value(&fixture.db, sequence).len();
        assert!(length > 87, "record {sequence} should have a body to flip");
        for offset in 0..length {
            let mask = if offset % 2 == 0 { 0x01 } else { 0x80 };
            let failure = fixture.flip_and_verify(sequence, offset, mask).unwrap_err();
            assert_eq!(
                failure.sequence, sequence,
                "byte {offset} of record {sequence}: {failure}"
            );
        }
    }
    assert_eq!(verify_dir(&fixture.path), Ok(RECORDS));
}

#[test]
fn flipping_a_random_byte_of_any_record_names_that_record() {
    let fixture = Fixture::new();
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (1..=RECORDS, any::<prop::sample::Index>(), 1u8..=255);
    runner
        .run(&strategy, |(sequence, position, mask)| {
            let length = raw_value(&fixture.db, sequence).len();
            let offset = position.index(length);
            let failure = fixture.flip_and_verify(sequence, offset, mask).unwrap_err();
            prop_assert_eq!(
                failure.sequence,
                sequence,
                "byte {} mask {:#x}: {}",
                offset,
                mask,
                failure
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(verify_dir(&fixture.path), Ok(RECORDS));
}

#[test]
fn each_header_field_breaks_its_own_rule() {
    let fixture = Fixture::new();
    let rows: [(usize, u8, &str); 8] = [
        (0, 0x01, rule::UNKNOWN_VERSION),
        (8, 0x01, rule::KEY_SEQUENCE_MISMATCH),
        (16, 0x01, rule::HASH_MISMATCH), // time_ms
        (18, 0x01, rule::HASH_MISMATCH), // kind
        (22, 0x01, rule::BODY_LENGTH_MISMATCH),
        (19, 0x10, rule::BODY_LENGTH_OVER_MAX),
        (30, 0x01, rule::PARENT_MISMATCH),
        (60, 0x01, rule::HASH_MISMATCH), // the hash itself
    ];
    for (offset, mask, expected_rule) in rows {
        let failure = fixture.flip_and_verify(50, offset, mask).unwrap_err();
        assert_eq!(
            (failure.sequence, failure.rule),
            (50, expected_rule),
            "offset {offset}: {failure}"
        );
    }
    let failure = fixture.flip_and_verify(50, 100, 0x01).unwrap_err();
    assert_eq!(
        (failure.sequence, failure.rule),
        (50, rule::HASH_MISMATCH),
        "body: {failure}"
    );
}

#[test]
fn a_rehashed_record_is_caught_by_the_next_parent_or_by_the_head() {
    let fixture = Fixture::new();
    // Someone who recomputes the hash after changing the body breaks the next link.
    for sequence in [70, RECORDS] {
        let original = raw_value(&fixture.db, sequence);
        let mut header = grantledger_log::RecordHeader::decode(original[..87].try_into().unwrap());
        let mut body = original[87..].to_vec();
        body[0] ^= 0xFF;
        header.hash = header.compute_hash(&body);
        let mut forged = header.encode().to_vec();
        forged.extend_from_slice(&body);
        fixture.put(sequence, &forged);
        let log = Log::open_read_only(&fixture.path).unwrap();
        let failure = verify(&log, |_, _| {}, |_| Ok(())).unwrap_err();
        drop(log);
        fixture.put(sequence, &original);
        if sequence < RECORDS {
            assert_eq!(
                (failure.sequence, failure.rule),
                (sequence + 1, rule::PARENT_MISMATCH),
                "{failure}"
            );
        } else {
            assert_eq!(
                (failure.sequence, failure.rule),
                (RECORDS, rule::HEAD_MISMATCH),
                "{failure}"
            );
        }
    }
}

#[test]
fn a_body_check_rejection_names_the_record() {
    let fixture = Fixture::new();
    let log = Log::open_read_only(&fixture.path).unwrap();
    let failure = verify(
        &log,
        |_, _| {},
        |record| {
            if record.header.sequence == 77 {
                Err("not an event".to_string())
            } else {
                Ok(())
            }
        },
    )
    .unwrap_err();
    assert_eq!(
        (failure.sequence, failure.rule, failure.detail.as_str()),
        (77, rule::BODY_REJECTED, "not an event")
    );
}

/// Tampering that needs a fresh log each time: delete, swap, truncate, head edits.
fn tamper(edit: impl FnOnce(&rocksdb::DB)) -> VerifyFailure {
    let dir = tempfile::tempdir().unwrap();
    drop(build_log(dir.path(), RECORDS));
    {
        let db = open_raw(dir.path());
        edit(&db);
    }
    verify_dir(dir.path()).unwrap_err()
}

#[test]
fn deleting_a_record_in_the_middle_names_it() {
    for sequence in [1, 2, 99, 199] {
        let failure = tamper(|db| {
            db.delete_cf(raw_records_cf(db), layout::record_key(sequence))
                .unwrap()
        });
        assert_eq!(
            (failure.sequence, failure.rule),
            (sequence, rule::SEQUENCE_MISSING),
            "{failure}"
        );
    }
    let failure = tamper(|db| {
        db.delete_range_cf(
            raw_records_cf(db),
            layout::record_key(40),
            layout::record_key(60),
        )
        .unwrap()
    });
    assert_eq!(
        (failure.sequence, failure.rule),
        (40, rule::SEQUENCE_MISSING),
        "{failure}"
    );
}

#[test]
fn swapping_two_records_names_the_first_of_the_two() {
    for (first, second) in [(10, 11), (30, 150), (1, RECORDS)] {
        let failure = tamper(|db| {
            let a = raw_value(db, first);
            let b = raw_value(db, second);
            db.put_cf(raw_records_cf(db), layout::record_key(first), b)
                .unwrap();
            db.put_cf(raw_records_cf(db), layout::record_key(second), a)
                .unwrap();
        });
        assert_eq!(
            (failure.sequence, failure.rule),
            (first, rule::KEY_SEQUENCE_MISMATCH),
            "{failure}"
        );
    }
}

#[test]
fn deleting_records_off_the_end_is_a_head_mismatch_naming_the_first_missing() {
    for deleted in [1, 5] {
        let failure = tamper(|db| {
            for sequence in RECORDS - deleted + 1..=RECORDS {
                db.delete_cf(raw_records_cf(db), layout::record_key(sequence))
                    .unwrap();
            }
        });
        assert_eq!(
            (failure.sequence, failure.rule),
            (RECORDS - deleted + 1, rule::HEAD_MISMATCH),
            "{failure}"
        );
    }
}

#[test]
fn a_stored_head_that_disagrees_with_the_records_is_named() {
    type HeadEdit = fn(&mut Vec<u8>);
    let head_edits: [(HeadEdit, u64); 4] = [
        (|head| head[7] -= 1, RECORDS), // head behind: record 200 is not covered
        (|head| head[7] += 1, RECORDS + 1), // head ahead: record 201 is missing
        (|head| head[20] ^= 1, RECORDS), // hash
        (|head| head[47] ^= 1, RECORDS), // time
    ];
    for (edit, expected) in head_edits {
        let failure = tamper(|db| {
            let mut head = db
                .get_cf(raw_meta_cf(db), layout::META_KEY_HEAD)
                .unwrap()
                .unwrap();
            edit(&mut head);
            db.put_cf(raw_meta_cf(db), layout::META_KEY_HEAD, head)
                .unwrap();
        });
        assert_eq!(
            (failure.sequence, failure.rule),
            (expected, rule::HEAD_MISMATCH),
            "{failure}"
        );
    }
    let failure = tamper(|db| {
        db.put_cf(raw_meta_cf(db), layout::META_KEY_HEAD, b"short")
            .unwrap()
    });
    assert_eq!(
        (failure.sequence, failure.rule),
        (RECORDS, rule::HEAD_MISMATCH),
        "{failure}"
    );
}

#[test]
fn keys_that_are_not_sequences_are_named() {
    let failure = tamper(|db| {
        db.put_cf(raw_records_cf(db), [0, 0, 0, 0, 0, 0, 0, 5, 0], b"x")
            .unwrap()
    });
    assert_eq!(
        (failure.sequence, failure.rule),
        (6, rule::KEY_NOT_SEQUENCE),
        "{failure}"
    );
    let failure = tamper(|db| {
        db.put_cf(raw_records_cf(db), layout::record_key(0), b"x")
            .unwrap()
    });
    assert_eq!(
        (failure.sequence, failure.rule),
        (1, rule::KEY_NOT_SEQUENCE),
        "{failure}"
    );
    let failure = tamper(|db| {
        db.put_cf(raw_records_cf(db), layout::record_key(5), [1u8; 20])
            .unwrap()
    });
    assert_eq!(
        (failure.sequence, failure.rule),
        (5, rule::HEADER_TRUNCATED),
        "{failure}"
    );
}
