//! Helpers shared by the integration tests: a small deterministic random source, record
//! bodies that say which sequence they belong to, and direct RocksDB access for tampering.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::Path;

use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord, Record, layout};

/// splitmix64: deterministic, seedable, good enough to pick positions.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0), with negligible bias for small bounds.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// A seed from the clock, printed so that a failure can be replayed with `seeded`.
    pub fn from_clock(name: &str) -> Rng {
        let seed = match std::env::var("GRANTLEDGER_TEST_SEED") {
            Ok(seed) => seed.parse().expect("GRANTLEDGER_TEST_SEED is a u64"),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is after 1970")
                .as_nanos() as u64,
        };
        eprintln!("{name}: GRANTLEDGER_TEST_SEED={seed}");
        Rng(seed)
    }
}

/// The body the tests store at `sequence`: its length varies with the sequence (0 to 299
/// bytes) and its bytes are derived from it, so a record in the wrong place is visible.
pub fn body_for(sequence: u64) -> Vec<u8> {
    let length = ((sequence * 37) % 300) as usize;
    let seed = blake3::hash(&sequence.to_be_bytes());
    let mut reader = blake3::Hasher::new_derive_key("grantledger-log tests body")
        .update(seed.as_bytes())
        .finalize_xof();
    let mut body = vec![0u8; length];
    reader.fill(&mut body);
    body
}

/// A `check_body` for `verify` that accepts exactly the bodies of [`body_for`].
pub fn body_matches_sequence(record: &Record) -> Result<(), String> {
    if record.body == body_for(record.header.sequence) {
        Ok(())
    } else {
        Err(format!(
            "body of record `{}` is not the expected one",
            record.header.sequence
        ))
    }
}

pub fn time_for(sequence: u64) -> i64 {
    // Non-decreasing, with runs of equal times.
    1_700_000_000_000 + (sequence / 3) as i64 * 7
}

pub fn kind_for(sequence: u64) -> u16 {
    (sequence % 11) as u16
}

pub fn request_key(sequence: u64) -> Vec<u8> {
    format!("request-{}", sequence / 4).into_bytes()
}

/// Appends records `head + 1 ..= head + count` with [`body_for`] bodies, in batches of
/// `batch_records`.
pub fn append_records(log: &mut Log, count: u64, batch_records: u64) {
    let mut next = log.head().sequence + 1;
    let end = next + count;
    while next < end {
        let batch_end = (next + batch_records).min(end);
        let bodies: Vec<Vec<u8>> = (next..batch_end).map(body_for).collect();
        let requests: Vec<Vec<u8>> = (next..batch_end).map(request_key).collect();
        let principals: [&[u8]; 2] = [b"alice", b"svc:deployer"];
        let records: Vec<NewRecord<'_>> = (next..batch_end)
            .zip(bodies.iter().zip(&requests))
            .map(|(sequence, (body, request))| NewRecord {
                time_ms: time_for(sequence),
                kind: kind_for(sequence),
                body,
                index: IndexKeys {
                    request: Some(request),
                    grant: (sequence % 5 == 0).then_some(b"grant-x".as_slice()),
                    principal: if sequence % 2 == 0 {
                        &principals
                    } else {
                        &principals[..1]
                    },
                    resource: Some(b"db:prod/orders"),
                },
            })
            .collect();
        let headers = log.append_batch(&records).expect("append");
        assert_eq!(headers.len() as u64, batch_end - next);
        next = batch_end;
    }
}

/// A fresh log of `count` records in `dir`.
pub fn build_log(dir: &Path, count: u64) -> Log {
    let mut log = Log::create(dir, LogOptions::default()).expect("create");
    append_records(&mut log, count, 64);
    log
}

/// Opens the log's RocksDB directly, with every column family, as a tool that is not ours
/// (or an attacker) would.
pub fn open_raw(dir: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf_descriptors(
        &layout::rocksdb_options(),
        dir,
        layout::column_family_descriptors(),
    )
    .expect("open raw rocksdb")
}

pub fn raw_records_cf(db: &rocksdb::DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(layout::CF_RECORDS)
        .expect("records column family")
}

pub fn raw_meta_cf(db: &rocksdb::DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(layout::CF_META).expect("meta column family")
}

pub fn raw_value(db: &rocksdb::DB, sequence: u64) -> Vec<u8> {
    db.get_cf(raw_records_cf(db), layout::record_key(sequence))
        .expect("get")
        .expect("record exists")
}
