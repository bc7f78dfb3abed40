//! Opening something that is not a healthy log fails with a clear error.

mod common;

use common::{build_log, open_raw, raw_meta_cf};
use grantledger_log::{Log, LogOptions, OpenErrorKind, layout};

fn open_kind(dir: &std::path::Path) -> (OpenErrorKind, String) {
    let error = Log::open(dir, LogOptions::default())
        .err()
        .expect("open must fail");
    (error.kind(), error.to_string())
}

#[test]
fn a_missing_directory_is_named_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (kind, message) = open_kind(&missing);
    assert_eq!(kind, OpenErrorKind::DirectoryMissing);
    assert_eq!(
        message,
        format!("log directory `{}` does not exist", missing.display())
    );
    let error = Log::open_read_only(&missing).err().unwrap();
    assert_eq!(error.kind(), OpenErrorKind::DirectoryMissing);
    assert!(!missing.exists());
}

#[test]
fn a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").unwrap();
    assert_eq!(open_kind(&file).0, OpenErrorKind::NotADirectory);
    assert_eq!(
        Log::create(&file, LogOptions::default())
            .err()
            .unwrap()
            .kind(),
        OpenErrorKind::NotADirectory
    );
}

#[test]
fn a_directory_without_a_log_is_not_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::NotALog);
    assert!(message.contains("is not a grantledger log"), "{message}");
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    assert_eq!(open_kind(dir.path()).0, OpenErrorKind::NotALog);
    assert_eq!(
        Log::open_read_only(dir.path()).err().unwrap().kind(),
        OpenErrorKind::NotALog
    );
}

#[test]
fn another_rocksdb_database_is_not_a_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::NotALog);
    assert!(message.contains("no column family `records`"), "{message}");

    // All the column families but no format marker: still not ours.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = layout::rocksdb_options();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        rocksdb::DB::open_cf_descriptors(&options, dir.path(), layout::column_family_descriptors())
            .unwrap();
    }
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::NotALog);
    assert!(message.contains("no format marker"), "{message}");
}

#[test]
fn an_unknown_format_marker_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    drop(build_log(dir.path(), 3));
    {
        let db = open_raw(dir.path());
        db.put_cf(
            raw_meta_cf(&db),
            layout::META_KEY_FORMAT,
            b"grantledger-log/9",
        )
        .unwrap();
    }
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::UnsupportedFormat);
    assert!(message.contains("`grantledger-log/9`"), "{message}");
}

#[test]
fn a_corrupted_head_is_refused_naming_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let head = build_log(dir.path(), 10).head();
    let stored = |db: &rocksdb::DB| {
        db.get_cf(raw_meta_cf(db), layout::META_KEY_HEAD)
            .unwrap()
            .unwrap()
    };

    // A head that decodes but is one behind the records.
    {
        let db = open_raw(dir.path());
        let mut bytes = stored(&db);
        bytes[7] = 9;
        db.put_cf(raw_meta_cf(&db), layout::META_KEY_HEAD, &bytes)
            .unwrap();
    }
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::HeadMismatch);
    assert!(message.contains("the head says sequence `9`"), "{message}");
    assert!(
        message.contains("the last record is sequence `10`"),
        "{message}"
    );
    assert!(message.contains(&hex::encode(head.hash)), "{message}");
    // Read-only opens still work, so that verify can name the damage.
    assert_eq!(Log::open_read_only(dir.path()).unwrap().head().sequence, 9);

    // A head of the wrong length.
    {
        let db = open_raw(dir.path());
        db.put_cf(raw_meta_cf(&db), layout::META_KEY_HEAD, b"garbage")
            .unwrap();
    }
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::HeadCorrupt);
    assert!(message.contains("is `7` bytes, expected `48`"), "{message}");
    assert_eq!(Log::open_read_only(dir.path()).unwrap().head(), head);

    // No head at all.
    {
        let db = open_raw(dir.path());
        db.delete_cf(raw_meta_cf(&db), layout::META_KEY_HEAD)
            .unwrap();
    }
    assert_eq!(open_kind(dir.path()).0, OpenErrorKind::HeadCorrupt);
}

#[test]
fn a_corrupt_last_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(build_log(dir.path(), 10));
    {
        let db = open_raw(dir.path());
        let mut value = common::raw_value(&db, 10);
        value[90] ^= 4;
        db.put_cf(common::raw_records_cf(&db), layout::record_key(10), value)
            .unwrap();
    }
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::RecordCorrupt);
    assert!(message.contains("rule `hash_mismatch`"), "{message}");
}

#[test]
fn create_refuses_a_non_empty_directory_but_takes_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), b"").unwrap();
    let error = Log::create(dir.path(), LogOptions::default())
        .err()
        .unwrap();
    assert_eq!(error.kind(), OpenErrorKind::DirectoryNotEmpty);
    assert_eq!(
        error.to_string(),
        format!(
            "refusing to create a log in `{}`: the directory is not empty",
            dir.path().display()
        )
    );

    let empty = tempfile::tempdir().unwrap();
    drop(Log::create(empty.path(), LogOptions::default()).unwrap());
    assert_eq!(
        Log::create(empty.path(), LogOptions::default())
            .err()
            .unwrap()
            .kind(),
        OpenErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        Log::open(empty.path(), LogOptions::default())
            .unwrap()
            .head(),
        grantledger_log::Head::EMPTY
    );
}

#[test]
fn a_second_writer_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = build_log(dir.path(), 1);
    let (kind, message) = open_kind(dir.path());
    assert_eq!(kind, OpenErrorKind::Storage);
    assert!(message.contains("lock"), "{message}");
}
