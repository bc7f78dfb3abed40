//! How fast `grantledger verify` walks a warm log, beside a plain RocksDB iteration over
//! the same `records` column family and the `iter_from` replay path.
//!
//! Builds a log of `GRANTLEDGER_BENCH_RECORDS` records (default 1,000,000; bodies of 100
//! to 300 bytes; appended without sync, which does not change what is stored), compacts
//! it, reopens it read-only, warms it, then times in alternation, `GRANTLEDGER_BENCH_ROUNDS`
//! times (default 3), on one thread:
//! - `raw iteration`: a RocksDB raw iterator over `records` reading every key and value,
//!   with the same read options (`layout::scan_read_options`);
//! - `verify`: `grantledger_log::verify` with a body check that accepts everything;
//! - `iter_from`: `Log::iter_from(1)`, which checks each record and copies its body out.
//!
//! `cargo bench --bench verify_log`.

use std::path::Path;
use std::time::{Duration, Instant};

use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord, layout, verify};
use rocksdb::DB;

fn main() {
    let records = env_u64("GRANTLEDGER_BENCH_RECORDS", 1_000_000);
    let rounds = env_u64("GRANTLEDGER_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    build(dir.path(), records);
    compact(dir.path());
    println!(
        "verify_log: built and compacted {records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let raw = DB::open_cf_descriptors_read_only(
        &layout::rocksdb_options(),
        dir.path(),
        layout::column_family_descriptors(),
        false,
    )
    .unwrap();
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(log.head().sequence, records);
    // Warm the page cache and the block cache.
    raw_iteration(&raw);
    verify(&log, |_, _| {}, |_| Ok(())).unwrap();

    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut cpu_times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        let (started, cpu_started) = (Instant::now(), thread_cpu_time());
        let (count, bytes) = raw_iteration(&raw);
        times[0].push(started.elapsed());
        cpu_times[0].push(thread_cpu_time().saturating_sub(cpu_started));
        assert_eq!(count, records);
        assert!(bytes > 0);

        let (started, cpu_started) = (Instant::now(), thread_cpu_time());
        let report = verify(&log, |_, _| {}, |_| Ok(())).unwrap();
        times[1].push(started.elapsed());
        cpu_times[1].push(thread_cpu_time().saturating_sub(cpu_started));
        assert_eq!(report.records, records);

        let (started, cpu_started) = (Instant::now(), thread_cpu_time());
        let replayed = log
            .iter_from(1)
            .map(|record| record.unwrap().body.len() as u64)
            .sum::<u64>();
        times[2].push(started.elapsed());
        cpu_times[2].push(thread_cpu_time().saturating_sub(cpu_started));
        assert!(replayed > 0);
    }
    let baseline = median(&mut times[0]);
    println!(
        "{:<15} {:>14} {:>10} {:>12} {:>16}",
        "pass", "records/s", "ms", "vs raw", "records/cpu-s"
    );
    for ((name, samples), cpu_samples) in ["raw iteration", "verify", "iter_from"]
        .iter()
        .zip(times.iter_mut())
        .zip(cpu_times.iter_mut())
    {
        let time = median(samples);
        let cpu_time = median(cpu_samples);
        println!(
            "{:<15} {:>14.0} {:>10.1} {:>12.2} {:>16.0}",
            name,
            records as f64 / time.as_secs_f64(),
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / baseline.as_secs_f64(),
            records as f64 / cpu_time.as_secs_f64()
        );
    }
    println!(
        "vs raw is the median time over the raw iteration's: 1.00 = as fast as reading the bytes"
    );
    println!(
        "records/cpu-s divides by the time the thread was on a CPU, which other processes do not inflate"
    );
}

fn build(dir: &Path, records: u64) {
    let options = LogOptions {
        batch_records_max: 4096,
        sync: false,
    };
    let mut log = Log::create(dir, options).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = 1u64;
    while next <= records {
        let end = (next + 4096).min(records + 1);
        let bodies: Vec<Vec<u8>> = (next..end)
            .map(|sequence| {
                let length = 100 + (sequence * 7919 % 201) as usize;
                (0..length)
                    .map(|j| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        if j % 2 == 0 {
                            (state >> 56) as u8
                        } else {
                            b'a' + (j % 26) as u8
                        }
                    })
                    .collect()
            })
            .collect();
        let requests: Vec<Vec<u8>> = (next..end)
            .map(|sequence| format!("req-{:016x}", sequence / 4).into_bytes())
            .collect();
        let batch: Vec<NewRecord<'_>> = bodies
            .iter()
            .zip(&requests)
            .zip(next..)
            .map(|((body, request), sequence)| NewRecord {
                time_ms: 1_700_000_000_000 + (sequence / 16) as i64,
                kind: (sequence % 13) as u16,
                body,
                index: IndexKeys {
                    request: Some(request),
                    ..IndexKeys::default()
                },
            })
            .collect();
        log.append_batch(&batch).unwrap();
        next = end;
    }
}

/// A long-lived log has most of its records in table files: flush and compact so that
/// every run reads the same, settled shape.
fn compact(dir: &Path) {
    let db = DB::open_cf_descriptors(
        &layout::rocksdb_options(),
        dir,
        layout::column_family_descriptors(),
    )
    .unwrap();
    for name in layout::COLUMN_FAMILIES {
        let family = db.cf_handle(name).unwrap();
        db.flush_cf(family).unwrap();
        db.compact_range_cf(family, None::<&[u8]>, None::<&[u8]>);
    }
}

/// Reads every key and value of `records`; returns how many and how many bytes.
fn raw_iteration(db: &DB) -> (u64, u64) {
    // The same read options verify and replay use.
    let mut iterator = db.raw_iterator_cf_opt(
        db.cf_handle(layout::CF_RECORDS).unwrap(),
        layout::scan_read_options(),
    );
    iterator.seek_to_first();
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some((key, value)) = iterator.item() {
        count += 1;
        // Touch the bytes so the loop is not just pointer chasing.
        bytes += key[7] as u64 + value.len() as u64 + value[value.len() - 1] as u64;
        iterator.next();
    }
    iterator.status().unwrap();
    (count, bytes)
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
