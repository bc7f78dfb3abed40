//! What the Merkle tree costs and what it gives, each beside a peer measured in the same run.
//!
//! 1. Append throughput with the tree maintained (`Log::create`) beside the same appends
//!    to a log without it (`Log::create_without_merkle_tree`, which exists for this peer
//!    only), synced and unsynced, in alternating rounds on fresh directories; the ratio is
//!    the median time with the tree over the median time without. Workload: bodies of 150
//!    to 250 bytes, each record indexed under a request, a principal and a resource.
//!    `GRANTLEDGER_BENCH_ROUNDS` (default 5) rounds; unsynced: 400 batches of 1024 records;
//!    synced: 200 batches of 256 records (`GRANTLEDGER_BENCH_SYNC_BATCHES`).
//! 2. Inclusion proof generation and verification latency on a log of
//!    `GRANTLEDGER_BENCH_PROOF_RECORDS` records (default 10,000,000) with bodies of
//!    `GRANTLEDGER_BENCH_PROOF_BODY_BYTES` to twice that (default 32; small so that the
//!    log fits a shared disk: about 1.3 GB), no index entries, built once, unsynced, in
//!    batches of 4096, under the target directory (`merkle_log_<records>_<body>/`) and
//!    reused by later runs. After a warm-up pass, `GRANTLEDGER_BENCH_PROOFS` (default 20,000)
//!    random leaves are proved at the current tree size, and as many at random past sizes
//!    (what a proof against an older checkpoint costs); consistency proofs between random
//!    sizes; each beside the peer `Log::read` of a random record. Percentiles from
//!    hdrhistogram, in microseconds.
//!
//! `cargo bench --workspace --bench merkle_log`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grantledger_log::merkle::{Blake3, verify_consistency, verify_inclusion};
use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord, layout};
use hdrhistogram::Histogram;

fn main() {
    let rounds = env_u64("GRANTLEDGER_BENCH_ROUNDS", 5);
    let sync_batches = env_u64("GRANTLEDGER_BENCH_SYNC_BATCHES", 200);
    let proof_records = env_u64("GRANTLEDGER_BENCH_PROOF_RECORDS", 10_000_000);
    let proof_body_bytes = env_u64("GRANTLEDGER_BENCH_PROOF_BODY_BYTES", 32);
    let proofs = env_u64("GRANTLEDGER_BENCH_PROOFS", 20_000);
    let only = std::env::var("GRANTLEDGER_BENCH_ONLY").unwrap_or_default();

    println!(
        "merkle_log: lowest stored tree level {} (nodes below it are recomputed from at most {} record headers)",
        layout::MERKLE_LEVEL_MIN,
        1u64 << layout::MERKLE_LEVEL_MIN
    );
    if only.is_empty() || only == "append" {
        append_throughput(false, 400, 1024, rounds);
        append_throughput(true, sync_batches, 256, rounds);
        println!(
            "tree/none is the median time with the tree over the median time without it: 1.00 = free"
        );
    }
    if only.is_empty() || only == "proofs" {
        proof_latency(proof_records, proof_body_bytes, proofs);
    }
}

// ---------------------------------------------------------------------------------------
// 1. Append throughput.

fn append_throughput(sync: bool, batches: u64, batch_records: u64, rounds: u64) {
    let workload = Workload::new(batches * batch_records);
    let mut with_tree = Vec::new();
    let mut without_tree = Vec::new();
    let mut with_tree_cpu = Vec::new();
    let mut without_tree_cpu = Vec::new();
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for tree in order {
            let (time, cpu) = run_appends(&workload, sync, batch_records, tree);
            if tree {
                with_tree.push(time);
                with_tree_cpu.push(cpu);
            } else {
                without_tree.push(time);
                without_tree_cpu.push(cpu);
            }
        }
    }
    let records = (batches * batch_records) as f64;
    let (tree_time, none_time) = (median(&mut with_tree), median(&mut without_tree));
    let (tree_cpu, none_cpu) = (median(&mut with_tree_cpu), median(&mut without_tree_cpu));
    println!(
        "append sync={sync:<5} {batches} batches x {batch_records}: with tree {:>9.0} records/s, without {:>9.0} records/s, tree/none {:.3} (thread cpu time: tree/none {:.3}, {:.0} vs {:.0} ns/record)",
        records / tree_time.as_secs_f64(),
        records / none_time.as_secs_f64(),
        tree_time.as_secs_f64() / none_time.as_secs_f64(),
        tree_cpu.as_secs_f64() / none_cpu.as_secs_f64(),
        tree_cpu.as_secs_f64() * 1e9 / records,
        none_cpu.as_secs_f64() * 1e9 / records,
    );
}

/// Appends the workload to a fresh log; returns wall time and the thread's CPU time spent
/// inside `append_batch`.
fn run_appends(
    workload: &Workload,
    sync: bool,
    batch_records: u64,
    tree: bool,
) -> (Duration, Duration) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = LogOptions {
        sync,
        batch_records_max: batch_records as usize,
        ..LogOptions::default()
    };
    let mut log = if tree {
        Log::create(dir.path(), options).unwrap()
    } else {
        Log::create_without_merkle_tree(dir.path(), options).unwrap()
    };
    let mut elapsed = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    let mut next = 0usize;
    while next < workload.bodies.len() {
        let end = (next + batch_records as usize).min(workload.bodies.len());
        let records = workload.records(next..end);
        let (started, cpu_started) = (Instant::now(), thread_cpu_time());
        log.append_batch(&records).unwrap();
        cpu += thread_cpu_time().saturating_sub(cpu_started);
        elapsed += started.elapsed();
        next = end;
    }
    assert_eq!(log.head().sequence, workload.bodies.len() as u64);
    if tree {
        // The tree is there: a proof of the last record verifies against the root.
        let size = log.tree_size();
        let record = log.read(size).unwrap().unwrap();
        let proof = log.inclusion_proof(size - 1, size).unwrap();
        let root = log.merkle_root(size).unwrap();
        verify_inclusion(
            &Blake3,
            size - 1,
            size,
            &layout::merkle_leaf_hash(&record.header.hash),
            &proof,
            &root,
        )
        .unwrap();
    }
    (elapsed, cpu)
}

struct Workload {
    bodies: Vec<Vec<u8>>,
    requests: Vec<Vec<u8>>,
}

const TIME_MS_START: i64 = 1_700_000_000_000;
const PRINCIPALS: [&[u8]; 1] = [b"user:alice@example.com"];
const RESOURCE: &[u8] = b"postgres://prod/orders";

impl Workload {
    fn new(count: u64) -> Workload {
        let mut state = 0x1234_5678_9abc_def0_u64;
        let bodies = (0..count)
            .map(|i| body(&mut state, 150 + (i as usize * 7919) % 101))
            .collect();
        let requests = (0..count)
            .map(|i| format!("req-{:016x}", i / 4).into_bytes())
            .collect();
        Workload { bodies, requests }
    }

    fn records(&self, range: std::ops::Range<usize>) -> Vec<NewRecord<'_>> {
        range
            .map(|i| NewRecord {
                time_ms: TIME_MS_START + (i / 8) as i64,
                kind: (i % 13) as u16,
                body: &self.bodies[i],
                index: IndexKeys {
                    request: Some(&self.requests[i]),
                    principal: &PRINCIPALS,
                    resource: Some(RESOURCE),
                    ..IndexKeys::default()
                },
            })
            .collect()
    }
}

/// Half random, half structured bytes, roughly like a bincode event.
fn body(state: &mut u64, length: usize) -> Vec<u8> {
    (0..length)
        .map(|j| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if j % 2 == 0 {
                (*state >> 56) as u8
            } else {
                b'a' + (j % 26) as u8
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 2. Proof latency on a big log.

fn proof_latency(records: u64, body_bytes: u64, proofs: u64) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("merkle_log_{records}_{body_bytes}"));
    let log = open_or_build(&dir, records, body_bytes);
    let size = log.tree_size();
    let mut rng = 0x5eed_u64;

    // Warm-up: the same kinds of reads as the measured passes, not timed.
    for _ in 0..proofs {
        let leaf = below(&mut rng, size);
        log.inclusion_proof(leaf, size).unwrap();
        log.read(leaf + 1).unwrap().unwrap();
    }

    let mut read = histogram();
    let mut generate = histogram();
    let mut check = histogram();
    let mut generate_past = histogram();
    let mut generate_consistency = histogram();
    let mut check_consistency = histogram();
    let mut proof_hashes = 0u64;
    let root = log.merkle_root(size).unwrap();
    for _ in 0..proofs {
        // Peer: one point read of a random record.
        let sequence = 1 + below(&mut rng, size);
        let started = Instant::now();
        std::hint::black_box(log.read(sequence).unwrap().unwrap());
        record_ns(&mut read, started);

        // An inclusion proof at the current size, and its verification.
        let leaf = below(&mut rng, size);
        let record = log.read(leaf + 1).unwrap().unwrap();
        let leaf_hash = layout::merkle_leaf_hash(&record.header.hash);
        let started = Instant::now();
        let proof = log.inclusion_proof(leaf, size).unwrap();
        record_ns(&mut generate, started);
        proof_hashes += proof.len() as u64;
        let started = Instant::now();
        verify_inclusion(&Blake3, leaf, size, &leaf_hash, &proof, &root).unwrap();
        record_ns(&mut check, started);

        // At a random past size, as against an older checkpoint (not a multiple of the
        // stored block, so the right edge is recomputed from record headers too).
        let past_size = 1 + below(&mut rng, size);
        let past_leaf = below(&mut rng, past_size);
        let started = Instant::now();
        let proof = log.inclusion_proof(past_leaf, past_size).unwrap();
        record_ns(&mut generate_past, started);
        assert!(!proof.is_empty() || past_size == 1);

        // A consistency proof from a random older size to the current one.
        let old_size = 1 + below(&mut rng, size);
        let started = Instant::now();
        let proof = log.consistency_proof(old_size, size).unwrap();
        record_ns(&mut generate_consistency, started);
        let old_root = log.merkle_root(old_size).unwrap();
        let started = Instant::now();
        verify_consistency(&Blake3, old_size, size, &proof, &old_root, &root).unwrap();
        record_ns(&mut check_consistency, started);
    }

    println!(
        "proofs on a log of {size} records ({proofs} samples each, warm; {:.1} hashes per inclusion proof):",
        proof_hashes as f64 / proofs as f64
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "operation", "p50 us", "p99 us", "p99.9 us", "max us", "p99/read p99"
    );
    let read_p99 = read.value_at_quantile(0.99) as f64;
    for (name, histogram) in [
        ("peer: Log::read of a random record", &read),
        ("inclusion proof, current size", &generate),
        ("verify_inclusion", &check),
        ("inclusion proof, random past size", &generate_past),
        (
            "consistency proof, random old -> current",
            &generate_consistency,
        ),
        ("verify_consistency", &check_consistency),
    ] {
        println!(
            "{:<42} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>12.2}",
            name,
            histogram.value_at_quantile(0.5) as f64 / 1e3,
            histogram.value_at_quantile(0.99) as f64 / 1e3,
            histogram.value_at_quantile(0.999) as f64 / 1e3,
            histogram.max() as f64 / 1e3,
            histogram.value_at_quantile(0.99) as f64 / read_p99,
        );
    }
}

/// Opens the proof log left by an earlier run, or builds it.
fn open_or_build(dir: &Path, records: u64, body_bytes: u64) -> Log {
    let options = LogOptions {
        sync: false,
        ..LogOptions::default()
    };
    if dir.exists() {
        match Log::open(dir, options.clone()) {
            Ok(log) if log.tree_size() == records => {
                println!("reusing the {records}-record log in `{}`", dir.display());
                return log;
            }
            Ok(log) => println!(
                "the log in `{}` has {} records, not {records}: rebuilding",
                dir.display(),
                log.tree_size()
            ),
            Err(error) => println!("cannot reuse `{}` ({error}): rebuilding", dir.display()),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
    let started = Instant::now();
    let mut log = Log::create(dir, options).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = 1u64;
    let mut bodies: Vec<Vec<u8>> = Vec::with_capacity(4096);
    while next <= records {
        let end = (next + 4096).min(records + 1);
        bodies.clear();
        for sequence in next..end {
            let length = body_bytes + sequence * 7919 % (body_bytes + 1);
            bodies.push(body(&mut state, length as usize));
        }
        let batch: Vec<NewRecord<'_>> = bodies
            .iter()
            .zip(next..)
            .map(|(body, sequence)| NewRecord {
                time_ms: TIME_MS_START + (sequence / 16) as i64,
                kind: (sequence % 13) as u16,
                body,
                index: IndexKeys::default(),
            })
            .collect();
        log.append_batch(&batch).unwrap();
        next = end;
    }
    println!(
        "built a {records}-record log in `{}` in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    log
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn record_ns(histogram: &mut Histogram<u64>, started: Instant) {
    let nanos = started.elapsed().as_nanos().clamp(1, 60_000_000_000) as u64;
    histogram.record(nanos).unwrap();
}

/// splitmix64, uniform enough below `bound` for picking positions.
fn below(state: &mut u64, bound: u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % bound
}

/// Time the calling thread has spent on a CPU, from `/proc/thread-self/schedstat` (Linux);
/// zero where that is not available.
fn thread_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
