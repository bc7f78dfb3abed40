//! Appending, reopening, reading back, and the batches the log refuses.

mod common;

use common::{append_records, body_for, body_matches_sequence, build_log, kind_for, time_for};
use grantledger_log::{
    AppendErrorKind, BODY_BYTES_MAX, GENESIS_PARENT, Head, IndexKeys, Log, LogOptions, NewRecord,
    ReadErrorKind, VERSION_CURRENT, verify,
};

fn record(time_ms: i64, body: &[u8]) -> NewRecord<'_> {
    NewRecord {
        time_ms,
        kind: 1,
        body,
        index: IndexKeys::default(),
    }
}

#[test]
fn appended_batches_read_back_after_reopen_with_the_same_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let head_before_close = {
        let mut log = Log::create(&path, LogOptions::default()).unwrap();
        assert_eq!(log.head(), Head::EMPTY);
        append_records(&mut log, 150, 64);
        append_records(&mut log, 1, 1);
        append_records(&mut log, 49, 10);
        log.head()
    };
    assert_eq!(head_before_close.sequence, 200);

    let log = Log::open(&path, LogOptions::default()).unwrap();
    assert_eq!(log.head(), head_before_close);
    let mut parent = GENESIS_PARENT;
    for sequence in 1..=200 {
        let record = log.read(sequence).unwrap().expect("record exists");
        assert_eq!(record.header.sequence, sequence);
        assert_eq!(record.header.version, VERSION_CURRENT);
        assert_eq!(record.header.time_ms, time_for(sequence));
        assert_eq!(record.header.kind, kind_for(sequence));
        assert_eq!(record.header.parent, parent);
        assert_eq!(record.header.hash, record.header.compute_hash(&record.body));
        assert_eq!(record.header.invalid(), None);
        assert_eq!(record.body, body_for(sequence));
        parent = record.header.hash;
    }
    assert_eq!(parent, head_before_close.hash);
    assert!(log.read(0).unwrap().is_none());
    assert!(log.read(201).unwrap().is_none());

    let all: Vec<_> = log.iter_from(0).map(Result::unwrap).collect();
    assert_eq!(all.len(), 200);
    assert!(
        all.iter()
            .zip(1..)
            .all(|(record, sequence)| record.header.sequence == sequence)
    );
    let tail: Vec<u64> = log
        .iter_from(190)
        .map(|record| record.unwrap().header.sequence)
        .collect();
    assert_eq!(tail, (190..=200).collect::<Vec<_>>());
    assert_eq!(log.iter_from(201).count(), 0);

    let mut progress = Vec::new();
    let report = verify(
        &log,
        |checked, total| progress.push((checked, total)),
        body_matches_sequence,
    )
    .unwrap();
    assert_eq!(progress.last(), Some(&(200, 200)));
    assert_eq!(report.records, 200);
    assert_eq!(report.head_hash, head_before_close.hash);
    assert_eq!(report.head_time_ms, head_before_close.time_ms);
}

#[test]
fn appends_continue_the_chain_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    drop(build_log(dir.path(), 10));
    let mut log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let before = log.head();
    append_records(&mut log, 5, 2);
    let eleven = log.read(11).unwrap().unwrap();
    assert_eq!(eleven.header.parent, before.hash);
    drop(log);
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(log.head().sequence, 15);
    assert_eq!(
        verify(&log, |_, _| {}, body_matches_sequence)
            .unwrap()
            .records,
        15
    );
}

#[test]
fn time_going_backwards_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), LogOptions::default()).unwrap();
    log.append_batch(&[record(1_000, b"a"), record(1_000, b"b")])
        .unwrap();
    let head = log.head();

    // Against the previous batch.
    let error = log.append_batch(&[record(999, b"c")]).unwrap_err();
    assert_eq!(error.kind(), AppendErrorKind::TimeWentBackwards);
    let message = error.to_string();
    assert!(
        message.contains("`999`") && message.contains("`1000`"),
        "{message}"
    );

    // Inside one batch: the good first record must not be written either.
    let error = log
        .append_batch(&[record(2_000, b"d"), record(1_500, b"e")])
        .unwrap_err();
    assert_eq!(error.kind(), AppendErrorKind::TimeWentBackwards);
    assert!(
        error.to_string().contains("`1500`") && error.to_string().contains("`2000`"),
        "{error}"
    );

    assert_eq!(log.head(), head);
    assert!(log.read(3).unwrap().is_none());
    drop(log);
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.head(), head);
    assert!(log.read(3).unwrap().is_none());
}

#[test]
fn oversized_batches_bodies_and_index_keys_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        batch_records_max: 4,
        sync: true,
    };
    let mut log = Log::create(dir.path(), options.clone()).unwrap();
    let body = [7u8; 10];
    let five = [record(1, &body); 5];

    let error = log.append_batch(&five).unwrap_err();
    assert_eq!(error.kind(), AppendErrorKind::BatchTooLarge);
    assert_eq!(
        error.to_string(),
        "a batch of `5` records is over batch_records_max `4`"
    );

    let big = vec![0u8; BODY_BYTES_MAX as usize + 1];
    let error = log
        .append_batch(&[record(1, &body), record(1, &big)])
        .unwrap_err();
    assert_eq!(error.kind(), AppendErrorKind::BodyTooLarge);
    assert!(
        error
            .to_string()
            .contains(&format!("`{}`", BODY_BYTES_MAX + 1)),
        "{error}"
    );

    let long_key = vec![b'k'; 1025];
    let bad_index = [
        IndexKeys {
            request: Some(&long_key),
            ..IndexKeys::default()
        },
        IndexKeys {
            grant: Some(b""),
            ..IndexKeys::default()
        },
    ];
    for index in bad_index {
        let error = log
            .append_batch(&[NewRecord {
                index,
                ..record(1, &body)
            }])
            .unwrap_err();
        assert_eq!(error.kind(), AppendErrorKind::IndexKeysInvalid, "{error}");
    }
    let many: Vec<&[u8]> = vec![b"p"; 65];
    let error = log
        .append_batch(&[NewRecord {
            index: IndexKeys {
                principal: &many,
                ..IndexKeys::default()
            },
            ..record(1, &body)
        }])
        .unwrap_err();
    assert_eq!(error.kind(), AppendErrorKind::IndexKeysInvalid);

    assert_eq!(log.head(), Head::EMPTY);
    assert!(log.append_batch(&[]).unwrap().is_empty());
    let exactly_max = [record(1, &body); 4];
    assert_eq!(log.append_batch(&exactly_max).unwrap().len(), 4);
    let largest = vec![1u8; BODY_BYTES_MAX as usize];
    assert_eq!(
        log.append_batch(&[record(1, &largest)]).unwrap()[0].body_len,
        BODY_BYTES_MAX
    );
    drop(log);
    let log = Log::open(dir.path(), options).unwrap();
    assert_eq!(log.head().sequence, 5);
    verify(&log, |_, _| {}, |_| Ok(())).unwrap();
}

#[test]
fn index_lookups_find_every_record_in_order_and_respect_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), LogOptions::default()).unwrap();
    let principals: [&[u8]; 2] = [b"alice", b"bob"];
    let records = [
        NewRecord {
            time_ms: 1,
            kind: 1,
            body: b"1",
            index: IndexKeys {
                request: Some(b"r1"),
                grant: None,
                principal: &principals,
                resource: Some(b"db"),
            },
        },
        NewRecord {
            time_ms: 2,
            kind: 2,
            body: b"2",
            index: IndexKeys {
                request: Some(b"r1"),
                grant: Some(b"g1"),
                principal: &principals[..1],
                resource: Some(b"db"),
            },
        },
        // `r` is a prefix of `r1`: it must not see r1's entries.
        NewRecord {
            time_ms: 3,
            kind: 3,
            body: b"3",
            index: IndexKeys {
                request: Some(b"r"),
                ..IndexKeys::default()
            },
        },
        NewRecord {
            time_ms: 4,
            kind: 4,
            body: b"4",
            index: IndexKeys {
                grant: Some(b"g1"),
                ..IndexKeys::default()
            },
        },
    ];
    log.append_batch(&records).unwrap();
    assert_eq!(log.sequences_for_request(b"r1", 10).unwrap(), [1, 2]);
    assert_eq!(log.sequences_for_request(b"r", 10).unwrap(), [3]);
    assert_eq!(log.sequences_for_request(b"r1", 1).unwrap(), [1]);
    assert_eq!(log.sequences_for_grant(b"g1", 10).unwrap(), [2, 4]);
    assert_eq!(log.sequences_for_principal(b"alice", 10).unwrap(), [1, 2]);
    assert_eq!(log.sequences_for_principal(b"bob", 10).unwrap(), [1]);
    assert_eq!(log.sequences_for_resource(b"db", 10).unwrap(), [1, 2]);
    assert!(log.sequences_for_resource(b"nope", 10).unwrap().is_empty());
    assert_eq!(
        log.sequences_for(grantledger_log::IndexName::Grant, b"g1", 3, 10)
            .unwrap(),
        [4]
    );

    let dir2 = tempfile::tempdir().unwrap();
    let mut big = build_log(dir2.path(), 100);
    assert_eq!(
        big.sequences_for_request(&common::request_key(40), 100)
            .unwrap(),
        [40, 41, 42, 43]
    );
    assert_eq!(
        big.sequences_for_principal(b"svc:deployer", 1000)
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        big.sequences_for_principal(b"alice", 1000).unwrap().len(),
        100
    );
    append_records(&mut big, 1, 1);
    assert_eq!(
        big.sequences_for_principal(b"alice", 1000).unwrap().len(),
        101
    );
}

#[test]
fn read_only_handles_refuse_appends_and_see_the_log_as_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = build_log(dir.path(), 20);
    let reader = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head(), writer.head());
    append_records(&mut writer, 5, 5);
    // The reader does not see appends made after it opened, and stops at its head.
    assert_eq!(reader.iter_from(1).count(), 20);
    verify(&reader, |_, _| {}, body_matches_sequence).unwrap();

    let mut reader = reader;
    let error = reader.append_batch(&[record(i64::MAX, b"x")]).unwrap_err();
    assert_eq!(error.kind(), AppendErrorKind::ReadOnly);
}

#[test]
fn iteration_reports_a_corrupt_record_once_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    drop(build_log(dir.path(), 30));
    {
        let db = common::open_raw(dir.path());
        let mut value = common::raw_value(&db, 12);
        let last = value.len() - 1;
        value[last] ^= 1;
        db.put_cf(
            common::raw_records_cf(&db),
            grantledger_log::layout::record_key(12),
            value,
        )
        .unwrap();
    }
    let log = Log::open_read_only(dir.path()).unwrap();
    let results: Vec<_> = log.iter_from(10).collect();
    assert_eq!(results.len(), 3);
    assert!(results[..2].iter().all(Result::is_ok));
    let error = results[2].as_ref().unwrap_err();
    assert_eq!(error.kind(), ReadErrorKind::Corrupt);
    assert!(
        error
            .to_string()
            .starts_with("record `12` breaks rule `hash_mismatch`"),
        "{error}"
    );
    assert_eq!(log.read(12).unwrap_err().kind(), ReadErrorKind::Corrupt);
    assert!(log.read(11).unwrap().is_some());
    // Starting just after the bad record checks the link to it, and fails there.
    let error = log.iter_from(13).next().unwrap().unwrap_err();
    assert!(error.to_string().starts_with("record `12`"), "{error}");
}
