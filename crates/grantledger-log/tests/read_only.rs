//! Opening a log read-only (for verify, show, replay) changes no file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::{body_matches_sequence, build_log};
use grantledger_log::{Log, verify};

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            files.insert(entry.path(), (metadata.len(), metadata.modified().unwrap()));
        }
    }
    files
}

#[test]
fn reading_a_log_read_only_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    // Part of the log flushed to table files, part only in the WAL, so that the
    // read-only open has a WAL to replay.
    {
        let mut log = build_log(dir.path(), 300);
        drop(log);
        log = Log::open(dir.path(), Default::default()).unwrap();
        common::append_records(&mut log, 50, 7);
    }
    let before = listing(dir.path());
    let has = |extension: &str| {
        before
            .keys()
            .any(|path| path.extension().is_some_and(|e| e == extension))
    };
    assert!(
        has("sst") && has("log"),
        "expected table files and a WAL: {before:?}"
    );
    let dir_modified = std::fs::metadata(dir.path()).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for _ in 0..3 {
        let log = Log::open_read_only(dir.path()).unwrap();
        assert_eq!(log.head().sequence, 350);
        assert_eq!(
            verify(&log, |_, _| {}, body_matches_sequence)
                .unwrap()
                .records,
            350
        );
        assert_eq!(log.iter_from(1).count(), 350);
        assert!(log.read(175).unwrap().is_some());
        assert!(
            !log.sequences_for_principal(b"alice", 10)
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(listing(dir.path()), before);
    assert_eq!(
        std::fs::metadata(dir.path()).unwrap().modified().unwrap(),
        dir_modified
    );
}

#[test]
fn opening_a_missing_directory_read_only_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("a").join("b");
    assert!(Log::open_read_only(&missing).is_err());
    assert!(!dir.path().join("a").exists());
    // A directory that exists but is empty stays empty.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(Log::open_read_only(&empty).is_err());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}
