//! SIGKILL at random moments never loses an append that returned, and never leaves a log
//! that fails verification.
//!
//! The test binary re-executes itself as the writer: with `CHILD_DIR_ENV` set, the same
//! test function appends in a loop and prints `durable <sequence>` after every append.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, body_for, body_matches_sequence, request_key};
use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord, verify};

const CHILD_DIR_ENV: &str = "GRANTLEDGER_LOG_CRASH_CHILD_DIR";
const TEST_NAME: &str = "sigkill_never_loses_an_acknowledged_append";
const ROUNDS: u32 = 20;
/// A child left behind by a failed parent stops by itself after this long.
const CHILD_RUN_MS_MAX: u64 = 20_000;

#[test]
fn sigkill_never_loses_an_acknowledged_append() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        run_child(Path::new(&dir));
        return;
    }
    let mut rng = Rng::from_clock(TEST_NAME);
    let dir = tempfile::tempdir().unwrap();
    drop(Log::create(dir.path(), LogOptions::default()).unwrap());
    let mut rounds_with_progress = 0;
    let mut killed_while_appending = 0;
    let mut previous_head = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads", "1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let durable = Arc::new(AtomicU64::new(0));
        let reader = {
            let durable = Arc::clone(&durable);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // With one test thread, libtest prints `test <name> ... `
                    // before the test runs, so the first report shares its
                    // line: the report is what follows the last `durable `.
                    // A line cut short by the kill does not parse and is not counted.
                    if let Some(sequence) = line
                        .rsplit_once("durable ")
                        .and_then(|(_, s)| s.parse::<u64>().ok())
                    {
                        durable.fetch_max(sequence, Ordering::SeqCst);
                    }
                }
            })
        };
        // Some kills land while the child is still opening the log, most while it appends.
        let delay_ms = if round % 5 == 0 {
            rng.below(60)
        } else {
            100 + rng.below(400)
        };
        let before = durable.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let reported_before_kill = durable.load(Ordering::SeqCst);
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        reader.join().unwrap();
        let reported = durable.load(Ordering::SeqCst);
        if reported > before {
            rounds_with_progress += 1;
        }
        if reported_before_kill > 0 {
            killed_while_appending += 1;
        }

        let log = Log::open(dir.path(), LogOptions::default()).unwrap_or_else(|error| {
            panic!("round {round}: reopening after the kill failed: {error}")
        });
        let head = log.head();
        assert!(
            head.sequence >= reported,
            "round {round}: the child reported `{reported}` durable but the log ends at `{}`",
            head.sequence
        );
        // At most one batch (64 records) can be durable without its line having been printed.
        let acknowledged = reported.max(previous_head);
        assert!(
            head.sequence <= acknowledged + 64,
            "round {round}: the log ends at `{}`, more than one batch past `{acknowledged}`",
            head.sequence
        );
        previous_head = head.sequence;
        let report = verify(&log, |_, _| {}, body_matches_sequence).unwrap_or_else(|failure| {
            panic!("round {round}: verify failed after the kill: {failure}")
        });
        assert_eq!(report.records, head.sequence);
        if head.sequence > 0 {
            let indexed = log
                .sequences_for_request(&request_key(head.sequence), 8)
                .unwrap();
            assert!(
                indexed.contains(&head.sequence),
                "round {round}: the last record is not indexed"
            );
        }
    }
    eprintln!(
        "{TEST_NAME}: {ROUNDS} kills, {rounds_with_progress} rounds appended, {killed_while_appending} kills while appending, final head `{}`",
        Log::open_read_only(dir.path()).unwrap().head().sequence
    );
    assert!(
        rounds_with_progress >= ROUNDS / 2,
        "only {rounds_with_progress} rounds appended anything"
    );
    assert!(
        killed_while_appending >= ROUNDS / 2,
        "only {killed_while_appending} kills landed while appending"
    );
}

/// The writer: appends groups of 1 to 64 records with sync on, forever (until killed, or
/// `CHILD_RUN_MS_MAX`), printing `durable <sequence>` after each append returns.
fn run_child(dir: &Path) {
    let started = Instant::now();
    let mut log = Log::open(dir, LogOptions::default()).expect("child opens the log");
    let mut rng = Rng(std::process::id() as u64);
    while started.elapsed() < Duration::from_millis(CHILD_RUN_MS_MAX) {
        let first = log.head().sequence + 1;
        let count = 1 + rng.below(64);
        let bodies: Vec<Vec<u8>> = (first..first + count).map(body_for).collect();
        let requests: Vec<Vec<u8>> = (first..first + count).map(request_key).collect();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // The ledger clock never goes back, even if the system clock does.
        let time_ms = now_ms.max(log.head().time_ms);
        let records: Vec<NewRecord<'_>> = bodies
            .iter()
            .zip(&requests)
            .map(|(body, request)| NewRecord {
                time_ms,
                kind: 7,
                body,
                index: IndexKeys {
                    request: Some(request),
                    ..IndexKeys::default()
                },
            })
            .collect();
        let headers = log.append_batch(&records).expect("child appends");
        println!("durable {}", headers.last().unwrap().sequence);
    }
}
