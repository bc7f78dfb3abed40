//! Durable append throughput of `grantledger-log`, beside raw RocksDB writes of exactly the
//! same bytes with the same database options and the same `WriteOptions`, in the same run.
//!
//! Two comparisons, each with `sync = true` (the production setting) and `sync = false`:
//! - `records`: records without index keys, against raw `WriteBatch`es holding exactly the
//!   `records` column family keys and values the log writes (the log also puts its 48-byte
//!   head once per batch, which this baseline leaves out);
//! - `indexed`: records with a request, a grant, a principal and a resource key each,
//!   against raw batches holding the same records, the same index entries and the head.
//!
//! Runs alternate between the log and the raw baseline (and swap order every round), each
//! on a fresh directory, to spread noise evenly. The raw baseline's keys and values are
//! computed before timing; the log's hashing and encoding are inside its timing.
//!
//! `cargo bench --bench log_append`. Scale with environment variables:
//! `GRANTLEDGER_BENCH_ROUNDS` (default 5), `GRANTLEDGER_BENCH_BATCH_RECORDS` (1024),
//! `GRANTLEDGER_BENCH_SYNC_BATCHES` (128 batches per run with sync), and
//! `GRANTLEDGER_BENCH_NOSYNC_BATCHES` (192 without).

use std::path::Path;
use std::time::{Duration, Instant};

use grantledger_log::{
    GENESIS_PARENT, HEADER_BYTES, Head, IndexKeys, Log, LogOptions, NewRecord, RecordHeader,
    VERSION_CURRENT, layout,
};
use rocksdb::{DB, WriteBatch, WriteOptions};

fn main() {
    let rounds = env_usize("GRANTLEDGER_BENCH_ROUNDS", 5);
    let batch_records = env_usize("GRANTLEDGER_BENCH_BATCH_RECORDS", 1024);
    let sync_batches = env_usize("GRANTLEDGER_BENCH_SYNC_BATCHES", 128);
    let nosync_batches = env_usize("GRANTLEDGER_BENCH_NOSYNC_BATCHES", 192);
    println!(
        "log_append: {rounds} rounds, batches of {batch_records} records, bodies 150..250 bytes (mean ~200)"
    );
    println!(
        "{:<9} {:<6} {:>8} {:>14} {:>14} {:>11} {:>11} {:>10}",
        "variant", "sync", "records", "log rec/s", "raw rec/s", "log ms", "raw ms", "log/raw"
    );
    for sync in [true, false] {
        let batches = if sync { sync_batches } else { nosync_batches };
        for indexed in [false, true] {
            let workload = Workload::new(batches, batch_records, indexed);
            let mut log_times = Vec::new();
            let mut raw_times = Vec::new();
            for round in 0..rounds {
                if round % 2 == 0 {
                    log_times.push(run_log(&workload, sync));
                    raw_times.push(run_raw(&workload, sync));
                } else {
                    raw_times.push(run_raw(&workload, sync));
                    log_times.push(run_log(&workload, sync));
                }
            }
            let log_time = median(&mut log_times);
            let raw_time = median(&mut raw_times);
            let records = (batches * batch_records) as f64;
            println!(
                "{:<9} {:<6} {:>8} {:>14.0} {:>14.0} {:>11.1} {:>11.1} {:>10.2}",
                if indexed { "indexed" } else { "records" },
                sync,
                batches * batch_records,
                records / log_time.as_secs_f64(),
                records / raw_time.as_secs_f64(),
                log_time.as_secs_f64() * 1e3,
                raw_time.as_secs_f64() * 1e3,
                log_time.as_secs_f64() / raw_time.as_secs_f64()
            );
        }
    }
    println!(
        "log/raw is the median log time over the median raw time: 1.00 = as fast as raw RocksDB"
    );
}

/// The records to append, and the exact bytes the log will write for them.
struct Workload {
    bodies: Vec<Vec<u8>>,
    batch_records: usize,
    indexed: bool,
    /// Per batch, the puts in the order the log makes them.
    raw_batches: Vec<Vec<RawPut>>,
}

/// One put of the raw baseline: column family (an index into `layout::COLUMN_FAMILIES`),
/// key, value.
type RawPut = (usize, Vec<u8>, Vec<u8>);

const TIME_MS_START: i64 = 1_700_000_000_000;
const PRINCIPALS: [&[u8]; 1] = [b"user:alice@example.com"];
const RESOURCE: &[u8] = b"postgres://prod/orders";

impl Workload {
    fn new(batches: usize, batch_records: usize, indexed: bool) -> Workload {
        let count = batches * batch_records;
        let mut state = 0x1234_5678_9abc_def0_u64;
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let length = 150 + (i * 7919) % 101;
                // Half random, half structured, roughly like a bincode event.
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
        let mut workload = Workload {
            bodies,
            batch_records,
            indexed,
            raw_batches: Vec::new(),
        };
        workload.raw_batches = workload.expected_bytes();
        workload
    }

    fn time_ms(sequence: u64) -> i64 {
        TIME_MS_START + (sequence / 8) as i64
    }

    fn request_key(sequence: u64) -> Vec<u8> {
        format!("req-{:016x}", sequence / 4).into_bytes()
    }

    fn grant_key(sequence: u64) -> Vec<u8> {
        format!("grant-{:016x}", sequence / 4).into_bytes()
    }

    /// Calls `f` with each batch of records, built the way a caller would.
    fn for_each_batch(&self, mut f: impl FnMut(&[NewRecord<'_>])) {
        for (batch_index, bodies) in self.bodies.chunks(self.batch_records).enumerate() {
            let first = (batch_index * self.batch_records) as u64 + 1;
            let keys: Vec<(Vec<u8>, Vec<u8>)> = (first..first + bodies.len() as u64)
                .map(|sequence| {
                    (
                        Workload::request_key(sequence),
                        Workload::grant_key(sequence),
                    )
                })
                .collect();
            let records: Vec<NewRecord<'_>> = bodies
                .iter()
                .zip(first..)
                .zip(&keys)
                .map(|((body, sequence), (request, grant))| NewRecord {
                    time_ms: Workload::time_ms(sequence),
                    kind: (sequence % 13) as u16,
                    body,
                    index: if self.indexed {
                        IndexKeys {
                            request: Some(request),
                            grant: Some(grant),
                            principal: &PRINCIPALS,
                            resource: Some(RESOURCE),
                        }
                    } else {
                        IndexKeys::default()
                    },
                })
                .collect();
            f(&records);
        }
    }

    /// The keys and values the log writes, computed independently with the public layout.
    fn expected_bytes(&self) -> Vec<Vec<RawPut>> {
        let mut batches = Vec::new();
        let mut parent = GENESIS_PARENT;
        let mut sequence = 0u64;
        self.for_each_batch(|records| {
            let mut puts = Vec::new();
            let mut head = Head::EMPTY;
            for record in records {
                sequence += 1;
                let mut header = RecordHeader {
                    version: VERSION_CURRENT,
                    sequence,
                    time_ms: record.time_ms,
                    kind: record.kind,
                    body_len: record.body.len() as u32,
                    parent,
                    hash: [0; 32],
                };
                header.hash = header.compute_hash(record.body);
                let mut value = header.encode().to_vec();
                value.extend_from_slice(record.body);
                puts.push((
                    family_index(layout::CF_RECORDS),
                    layout::record_key(sequence).to_vec(),
                    value,
                ));
                if self.indexed {
                    let index = record.index;
                    let entries = [
                        (layout::CF_INDEX_REQUEST, index.request.unwrap()),
                        (layout::CF_INDEX_GRANT, index.grant.unwrap()),
                        (layout::CF_INDEX_RESOURCE, index.resource.unwrap()),
                        (layout::CF_INDEX_PRINCIPAL, index.principal[0]),
                    ];
                    for (family, key) in entries {
                        let mut entry = Vec::new();
                        layout::index_entry_key(key, sequence, &mut entry);
                        puts.push((family_index(family), entry, Vec::new()));
                    }
                }
                parent = header.hash;
                head = Head {
                    sequence,
                    hash: header.hash,
                    time_ms: header.time_ms,
                };
            }
            if self.indexed {
                puts.push((
                    family_index(layout::CF_META),
                    layout::META_KEY_HEAD.to_vec(),
                    layout::encode_head(&head).to_vec(),
                ));
            }
            batches.push(puts);
        });
        batches
    }
}

fn run_log(workload: &Workload, sync: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        batch_records_max: workload.batch_records,
        sync,
    };
    let mut log = Log::create(dir.path(), options).unwrap();
    let mut elapsed = Duration::ZERO;
    workload.for_each_batch(|records| {
        let started = Instant::now();
        log.append_batch(records).unwrap();
        elapsed += started.elapsed();
    });
    check_same_bytes(&log, workload);
    elapsed
}

fn run_raw(workload: &Workload, sync: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let db = open_raw_like_the_log(dir.path());
    let handles: Vec<_> = layout::COLUMN_FAMILIES
        .iter()
        .map(|name| db.cf_handle(name).unwrap())
        .collect();
    let mut write_options = WriteOptions::default();
    write_options.set_sync(sync);
    let started = Instant::now();
    for puts in &workload.raw_batches {
        let mut batch = WriteBatch::default();
        for (family, key, value) in puts {
            batch.put_cf(handles[*family], key, value);
        }
        db.write_opt(batch, &write_options).unwrap();
    }
    started.elapsed()
}

/// The database `Log::create` makes, minus the log: same options, same column families.
fn open_raw_like_the_log(dir: &Path) -> DB {
    let mut options = layout::rocksdb_options();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    DB::open_cf_descriptors(&options, dir, layout::column_family_descriptors()).unwrap()
}

/// The comparison is only fair if the log wrote the bytes the baseline writes.
fn check_same_bytes(log: &Log, workload: &Workload) {
    for (batch, sequence) in [
        (0, 1u64),
        (workload.raw_batches.len() - 1, log.head().sequence),
    ] {
        let record = log.read(sequence).unwrap().unwrap();
        let mut value = record.header.encode().to_vec();
        value.extend_from_slice(&record.body);
        let expected = workload.raw_batches[batch]
            .iter()
            .find(|(family, key, _)| {
                *family == family_index(layout::CF_RECORDS)
                    && key[..] == layout::record_key(sequence)
            })
            .unwrap();
        assert_eq!(value.len(), HEADER_BYTES + record.body.len());
        assert_eq!(
            value, expected.2,
            "the log and the baseline disagree on record {sequence}"
        );
    }
}

fn family_index(name: &str) -> usize {
    layout::COLUMN_FAMILIES
        .iter()
        .position(|family| *family == name)
        .unwrap()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
