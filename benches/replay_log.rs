//! How fast `grantledger replay` folds a realistic log through the state
//! machine, beside `verify` (the chain check with body decoding, as
//! `grantledger verify` runs it) over the same log, in the same run.
//!
//! Builds a log with the simulator's workload (`GRANTLEDGER_BENCH_REQUESTS`
//! requests, default 100,000, about 4.8 records each), then times, in
//! alternation, `GRANTLEDGER_BENCH_ROUNDS` times (default 3), on one thread:
//! - `verify + decode`: `grantledger_log::verify` with a body check that
//!   decodes every envelope;
//! - `replay`: `grantledger_ledger::fold`, which reads, decodes and applies
//!   every event (re-checking every decision against the catalog).
//!
//! `cargo bench --bench replay_log`.

use std::time::{Duration, Instant};

use grantledger_core::{Catalog, Command, DEFAULT_CATALOG, Workload};
use grantledger_events::{Causation, PrincipalId, TenantId, Timestamp, decode_body};
use grantledger_ledger::{Input, Ledger, fold};
use grantledger_log::{Log, LogOptions, verify};

fn main() {
    let requests = env_u64("GRANTLEDGER_BENCH_REQUESTS", 100_000);
    let rounds = env_u64("GRANTLEDGER_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let records = build(dir.path(), requests);
    println!(
        "replay_log: simulated {requests} requests into {records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = Log::open_read_only(dir.path()).unwrap();
    let digest = fold(&log, None, u64::MAX, |_| {}).unwrap().digest();

    let mut verify_times = Vec::new();
    let mut replay_times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let report = verify(&log, |_, _| {}, |record| {
            decode_body(record.header.version, &record.body).map(drop).map_err(|e| e.to_string())
        })
        .unwrap();
        verify_times.push(started.elapsed());
        assert_eq!(report.records, records);

        let started = Instant::now();
        let state = fold(&log, None, u64::MAX, |_| {}).unwrap();
        replay_times.push(started.elapsed());
        assert_eq!(state.digest(), digest, "replay is not deterministic");
    }
    let verify_median = median(verify_times);
    let replay_median = median(replay_times);
    let rate = |time: Duration| records as f64 / time.as_secs_f64();
    println!("{:<18} {:>14} {:>14}", "pass", "records/s", "median s");
    println!("{:<18} {:>14.0} {:>14.3}", "verify + decode", rate(verify_median), verify_median.as_secs_f64());
    println!("{:<18} {:>14.0} {:>14.3}", "replay", rate(replay_median), replay_median.as_secs_f64());
    println!(
        "replay takes {:.2}x the time of verify + decode over the same {records} records",
        replay_median.as_secs_f64() / verify_median.as_secs_f64()
    );
}

fn build(dir: &std::path::Path, requests: u64) -> u64 {
    let options = LogOptions { sync: false, ..LogOptions::default() };
    let mut ledger = Ledger::create(dir, TenantId::new("bench").unwrap(), options).unwrap();
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let mut workload = Workload::new(1, &catalog);
    let mut now = Timestamp(1_767_225_600_000);
    let input = |command| Input { command, producer: "bench".into(), causation: Causation::Timer };
    let mut batch = ledger.begin(now).unwrap();
    let published_by = PrincipalId::new("catalog-admin").unwrap();
    batch.stage(input(Command::PublishCatalog { text: DEFAULT_CATALOG.into(), published_by })).unwrap();
    batch.commit().unwrap();
    let mut submitted = 0;
    while submitted < requests {
        let mut batch = ledger.begin(now).unwrap();
        let mut next = batch.time();
        while batch.len() < 256 && submitted < requests {
            let (command, after) = workload.next(batch.state(), batch.time());
            next = next.max(after);
            submitted += u64::from(matches!(command, Command::Submit(_)));
            let _ = batch.stage(input(command));
        }
        batch.commit().unwrap();
        now = next;
    }
    ledger.log().head().sequence
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
