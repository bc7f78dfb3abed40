//! Projector benchmarks, each figure beside a peer measured in the same run:
//!
//! 1. apply rate: events per second each projection folds from a simulated
//!    log into its RocksDB (synced writes of up to 4096 events), beside the
//!    core's in-memory `fold` of the same log;
//! 2. the expiry storm: 1,000,000 live grants, 100,000 expiring in one
//!    second: the time until all 100,000 are handed out as due timers, and
//!    until all 100,000 committed revocations are handed out for publication
//!    and marked published; bytes per live grant (process RSS growth and
//!    the store's size);
//! 3. `why` latency (p50/p99/max) on the largest simulated log built here,
//!    beside reading the same request's records straight from the log's
//!    request index.
//!
//! Sizes come from the environment: `GRANTLEDGER_BENCH_APPLY_REQUESTS`
//! (default 100,000), `GRANTLEDGER_BENCH_STORM_LIVE` (1,000,000),
//! `GRANTLEDGER_BENCH_STORM_EXPIRING` (100,000),
//! `GRANTLEDGER_BENCH_WHY_REQUESTS` (default 500,000), and
//! `GRANTLEDGER_BENCH_SECTIONS` (default `apply,storm,why`).
//!
//! Run: `cargo bench --workspace --bench projections`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use grantledger_events::{Committed, Event, GrantId, RequestId, RevocationReason, Timestamp};
use grantledger_ledger::fold;
use grantledger_log::Log;
use grantledger_projector::{
    AuditEvidence, CurrentGrants, DUE_BATCH_MAX, ExpiryTimers, Projection, Projector,
    ProjectorOptions, committed_from_record,
};
use hdrhistogram::Histogram;

fn main() {
    let sections =
        std::env::var("GRANTLEDGER_BENCH_SECTIONS").unwrap_or_else(|_| "apply,storm,why".into());
    // The storm runs first, in a fresh process, so its RSS growth is its own.
    if sections.contains("storm") {
        storm(
            env_u64("GRANTLEDGER_BENCH_STORM_LIVE", 1_000_000),
            env_u64("GRANTLEDGER_BENCH_STORM_EXPIRING", 100_000),
        );
    }
    if sections.contains("apply") {
        apply_rates(env_u64("GRANTLEDGER_BENCH_APPLY_REQUESTS", 100_000));
    }
    if sections.contains("why") {
        why_latency(env_u64("GRANTLEDGER_BENCH_WHY_REQUESTS", 500_000));
    }
}

fn apply_rates(requests: u64) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let records = simulate(&dir.path().join("log"), requests, 1);
    println!(
        "apply: simulated {requests} requests = {records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = Log::open_read_only(&dir.path().join("log")).unwrap();
    let core = median_of(3, || {
        let started = Instant::now();
        fold(&log, None, u64::MAX, |_| {}).unwrap();
        started.elapsed()
    });
    let rate = |elapsed: Duration| records as f64 / elapsed.as_secs_f64();
    println!(
        "{:<34} {:>12} {:>10} {:>12}",
        "apply (from the log, decode incl.)", "events/s", "seconds", "vs core"
    );
    println!(
        "{:<34} {:>12.0} {:>10.3} {:>12}",
        "core fold (in memory, peer)",
        rate(core),
        core.as_secs_f64(),
        "1.00x"
    );
    fn project<P: Projection>(log: &Log, dir: &std::path::Path) -> Duration {
        let started = Instant::now();
        Projector::<P>::rebuild(log, &dir.join(P::NAME), |_| {}).unwrap();
        started.elapsed()
    }
    for (name, elapsed) in [
        (
            "current-grants (synced)",
            project::<CurrentGrants>(&log, dir.path()),
        ),
        (
            "expiry-timers (synced)",
            project::<ExpiryTimers>(&log, dir.path()),
        ),
        (
            "audit-evidence (synced)",
            project::<AuditEvidence>(&log, dir.path()),
        ),
    ] {
        println!(
            "{:<34} {:>12.0} {:>10.3} {:>11.2}x",
            name,
            rate(elapsed),
            elapsed.as_secs_f64(),
            core.as_secs_f64() / elapsed.as_secs_f64()
        );
    }
}

fn storm(live: u64, expiring: u64) {
    assert!(expiring <= live);
    let dir = tempfile::tempdir().unwrap();
    let rss_before = rss_bytes();
    let mut projector =
        Projector::<ExpiryTimers>::open_with(dir.path(), ProjectorOptions::default()).unwrap();
    let issued = START;
    let second = issued.plus_ms(3_600_000);
    let started = Instant::now();
    let mut chunk = Vec::with_capacity(4096);
    let mut sequence = 0u64;
    for index in 0..live {
        let request = format!("req-{index:08}");
        let expires = if index < expiring {
            second.plus_ms((index % 1000) as i64)
        } else {
            second.plus_ms(86_400_000 + (index % 86_400_000) as i64)
        };
        let resource =
            ["db/prod/orders", "deploy/prod/api", "k8s/prod/ns-payments"][(index % 3) as usize];
        let principal = format!("svc-{:04}", index % 5000);
        sequence += 1;
        chunk.push(committed(
            sequence,
            issued,
            &request,
            grant_issued(&request, &principal, resource, &["read"], issued, expires),
        ));
        if chunk.len() == 4096 {
            projector.apply(&chunk).unwrap();
            chunk.clear();
        }
    }
    projector.apply(&chunk).unwrap();
    chunk.clear();
    let load = started.elapsed();
    let rss_after = rss_bytes();
    println!(
        "storm: {live} live grants applied in {:.1} s ({:.0} events/s, synced batches of 4096)",
        load.as_secs_f64(),
        live as f64 / load.as_secs_f64()
    );

    // Due timers, as the runtime would drain them at the storm's second.
    let now = second.plus_ms(999);
    let started = Instant::now();
    let mut due = Vec::with_capacity(expiring as usize);
    loop {
        let batch = projector.due(now, DUE_BATCH_MAX).unwrap();
        if batch.is_empty() {
            break;
        }
        due.extend(batch.into_iter().filter_map(|timer| timer.grant_id().cloned()));
    }
    let due_time = started.elapsed();
    assert_eq!(
        due.len() as u64,
        expiring,
        "every expiring grant is due once"
    );

    // The ledger records the expiries; the projector applies them and hands
    // them out for publication until the outbox is empty.
    let revocations: Vec<Committed> = due
        .iter()
        .map(|grant_id: &GrantId| {
            sequence += 1;
            let request: RequestId = grant_id.request().unwrap();
            committed(
                sequence,
                now,
                request.as_str(),
                grant_revoked(request.as_str(), RevocationReason::Expired),
            )
        })
        .collect();
    let started = Instant::now();
    for chunk in revocations.chunks(4096) {
        projector.apply(chunk).unwrap();
    }
    let mut published = 0usize;
    loop {
        let batch = projector.to_publish(DUE_BATCH_MAX).unwrap();
        if batch.is_empty() {
            break;
        }
        let ids: Vec<u64> = batch.iter().map(|publication| publication.id).collect();
        published += projector.mark_published(&ids).unwrap();
    }
    let publish_time = started.elapsed();
    assert_eq!(published as u64, expiring);

    projector.compact().unwrap();
    let store = projector.store_bytes();
    let rss_growth = rss_after.saturating_sub(rss_before);
    println!("{:<58} {:>12}", "storm figure", "value");
    println!(
        "{:<58} {:>12.3} s",
        format!("all {expiring} due timers handed out (batches of {DUE_BATCH_MAX})"),
        due_time.as_secs_f64()
    );
    println!(
        "{:<58} {:>12.3} s",
        format!("{expiring} revocations applied + handed out + marked"),
        publish_time.as_secs_f64()
    );
    println!(
        "{:<58} {:>12.3} s",
        "storm total (due + apply revocations + publish)",
        (due_time + publish_time).as_secs_f64()
    );
    println!(
        "{:<58} {:>12.1} B",
        "RSS growth per live grant (process, after load)",
        rss_growth as f64 / live as f64
    );
    println!(
        "{:<58} {:>12.1} B",
        "store size per live grant (compacted SST + memtables)",
        store as f64 / live as f64
    );
}

fn why_latency(requests: u64) {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let started = Instant::now();
    let records = simulate(&log_dir, requests, 2);
    println!(
        "why: simulated {requests} requests = {records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = Log::open_read_only(&log_dir).unwrap();
    let started = Instant::now();
    let projector =
        Projector::<AuditEvidence>::rebuild(&log, &dir.path().join("audit"), |_| {}).unwrap();
    let rebuild = started.elapsed();
    println!(
        "why: audit-evidence rebuilt in {:.1} s ({:.0} events/s), store {:.1} MB",
        rebuild.as_secs_f64(),
        records as f64 / rebuild.as_secs_f64(),
        projector.store_bytes() as f64 / 1e6
    );
    // Questions: random issued grants, at a random time in their first hour
    // (most in force, some not), read straight from the log.
    let mut rng = Rng(3);
    let mut questions = Vec::new();
    while questions.len() < 20_000 {
        let sequence = 1 + rng.below(records);
        let record = log.read(sequence).unwrap().unwrap();
        let committed = committed_from_record(&record).unwrap();
        if let Event::GrantIssued(grant) = committed.envelope.event {
            let at = Timestamp(grant.issued_at.0 + rng.below(3_600_000) as i64);
            questions.push((grant.principal.id, grant.resource, at, grant.request_id));
        }
    }
    let mut why = Histogram::<u64>::new(3).unwrap();
    let mut peer = Histogram::<u64>::new(3).unwrap();
    let mut had_access = 0;
    for (principal, resource, at, request) in &questions {
        let started = Instant::now();
        let answer = projector.why(principal, resource, *at).unwrap();
        why.record(started.elapsed().as_nanos() as u64).unwrap();
        had_access += usize::from(answer.had_access);
        // The peer: one request's records from the log's own index, read
        // and decoded; what a chain costs without the projection (and
        // without finding which grants were in force).
        let started = Instant::now();
        let sequences = log
            .sequences_for_request(request.as_str().as_bytes(), 256)
            .unwrap();
        for sequence in sequences {
            let record = log.read(sequence).unwrap().unwrap();
            std::hint::black_box(committed_from_record(&record).unwrap());
        }
        peer.record(started.elapsed().as_nanos() as u64).unwrap();
    }
    let us = |histogram: &Histogram<u64>, quantile: f64| {
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    };
    println!(
        "why: {} questions on a {records}-record log, {had_access} with access",
        questions.len()
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "latency (µs)", "p50", "p99", "max"
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "why(principal, resource, at)",
        us(&why, 0.5),
        us(&why, 0.99),
        why.max() as f64 / 1000.0
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "peer: log index + read + decode one request",
        us(&peer, 0.5),
        us(&peer, 0.99),
        peer.max() as f64 / 1000.0
    );
    println!(
        "why p99 is {:.2}x the peer's p99",
        us(&why, 0.99) / us(&peer, 0.99)
    );
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn median_of(runs: usize, mut run: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| run()).collect();
    times.sort();
    times[runs / 2]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
