//! The record rules, reimplemented from `schemas/LOG_FORMAT.md`, against the golden
//! vectors (real records written by the log) and the document's worked example.

mod common;

use common::{golden_records, make_record};
use grantledger_proof::record::{
    self, BODY_BYTES_MAX, HEADER_BYTES, RecordHeader, RecordRule, check_record,
};

#[test]
fn golden_records_pass_and_their_hashes_match() {
    let golden = golden_records();
    assert!(golden.len() >= 4, "the golden file holds a chain");
    let mut parent = [0u8; 32];
    for (position, row) in golden.iter().enumerate() {
        let header = check_record(&row.stored).unwrap_or_else(|e| panic!("{}: {e}", row.name));
        assert_eq!(header.sequence, position as u64 + 1, "{}", row.name);
        assert_eq!(header.hash, row.record_hash, "{}", row.name);
        assert_eq!(
            record::record_hash(&row.stored),
            row.record_hash,
            "{}",
            row.name
        );
        assert_eq!(header.parent, parent, "{}: chained", row.name);
        assert_eq!(header.body_len as usize, row.stored.len() - HEADER_BYTES);
        assert_eq!(header.leaf_index(), position as u64);
        parent = header.hash;
    }
}

/// The worked example of `schemas/LOG_FORMAT.md`, record 1 and record 2.
#[test]
fn the_log_format_worked_example_checks() {
    let header_1 = "0100000000000000010000018bcfe568000003000000110000000000000000000000000000000000000000000000000000000000000000\
                    beb89539e7662cfaa687e3ba09fe81f406be5f471cbea684ea5d58d25fd983af";
    let mut record_1 = hex::decode(header_1).unwrap();
    record_1.extend(b"hello grantledger");
    let header = check_record(&record_1).unwrap();
    assert_eq!(header.time_ms, 1_700_000_000_000);
    assert_eq!(header.kind, 3);
    assert_eq!(header.body_len, 17);

    let record_2 = hex::decode(
        "0100000000000000020000018bcfe568fa000400000000\
         beb89539e7662cfaa687e3ba09fe81f406be5f471cbea684ea5d58d25fd983af\
         2c16d2e3f16e176c3b0c8b0565e26ea72bed61833c8a936462559ffb93cb17c9",
    )
    .unwrap();
    let header = check_record(&record_2).unwrap();
    assert_eq!(header.sequence, 2);
    assert_eq!(header.parent, record::record_hash(&record_1));
    // The test helper writes the same bytes from the same rules.
    assert_eq!(
        make_record(1, 1_700_000_000_000, 3, [0; 32], b"hello grantledger"),
        record_1
    );
}

#[test]
fn every_changed_byte_of_a_golden_record_is_refused() {
    for row in golden_records() {
        for position in 0..row.stored.len() {
            let mut changed = row.stored.clone();
            changed[position] ^= 0x01;
            assert!(
                check_record(&changed).is_err(),
                "{} byte {position} changed and accepted",
                row.name
            );
        }
    }
}

#[test]
fn broken_records_name_the_rule_of_the_log_format() {
    let good = make_record(7, 1_000, 2, [9; 32], b"body");
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        edit(&mut bytes);
        bytes
    };
    let rehash = |bytes: &mut Vec<u8>| {
        let hash = record::record_hash(bytes);
        bytes[55..87].copy_from_slice(&hash);
    };
    let rows: Vec<(Vec<u8>, RecordRule)> = vec![
        (good[..86].to_vec(), RecordRule::HeaderTruncated),
        (
            with(&|b| {
                b[0] = 4;
                rehash(b)
            }),
            RecordRule::UnknownVersion,
        ),
        (
            with(&|b| {
                b[1..9].fill(0);
                rehash(b)
            }),
            RecordRule::SequenceZero,
        ),
        (
            with(&|b| {
                b[19..23].copy_from_slice(&(BODY_BYTES_MAX + 1).to_be_bytes());
                rehash(b)
            }),
            RecordRule::BodyLengthOverMax,
        ),
        (
            with(&|b| {
                b.push(0);
            }),
            RecordRule::BodyLengthMismatch,
        ),
        (
            with(&|b| {
                b.pop();
            }),
            RecordRule::BodyLengthMismatch,
        ),
        (
            with(&|b| {
                b[90] ^= 1;
            }),
            RecordRule::HashMismatch,
        ),
        (
            with(&|b| {
                b[60] ^= 1;
            }),
            RecordRule::HashMismatch,
        ),
    ];
    for (bytes, rule) in rows {
        let error = check_record(&bytes).unwrap_err();
        assert_eq!(error.rule(), rule, "{error}");
    }
    assert_eq!(RecordRule::HashMismatch.code(), "hash_mismatch");
    assert!(check_record(&good).is_ok());
    assert_eq!(RecordHeader::decode(&good[..86]), None);
}

#[test]
fn the_leaf_of_a_record_is_its_hash_with_the_rfc9162_leaf_prefix() {
    let hash = [0xab; 32];
    let mut input = vec![0x00];
    input.extend(hash);
    assert_eq!(record::leaf_hash(&hash), *blake3::hash(&input).as_bytes());
    assert_eq!(record::leaf_index(1), 0);
    assert_eq!(record::leaf_index(10_000_000), 9_999_999);
}
