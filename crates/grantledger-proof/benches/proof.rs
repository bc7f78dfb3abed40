//! Costs of what an auditor does offline, each beside the bare primitive it cannot avoid,
//! measured in the same run:
//!
//! - checkpoint signing vs a bare Ed25519 signature of the same text;
//! - checkpoint parsing and verification vs a bare Ed25519 (strict) verification;
//! - a six-event grant bundle on a 10-million-record tree (24-hash proofs): JSON parse and
//!   full verification, vs its irreducible work (one Ed25519 verification, blake3 over the
//!   six records, the 6 x 24 node hashes).
//!
//! Criterion reports each figure; with `--bench`, a summary of ratios (ours / peer,
//! interleaved medians) and the bundle's size in bytes follow.
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/grantledger/target-proof cargo bench -p
//! grantledger-proof --bench proof`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{ORIGIN, SparseTree, signer, six_event_chain, verifier};
use criterion::Criterion;
use ed25519_dalek::Signer as _;
use grantledger_merkle::{Blake3, MerkleHasher as _};
use grantledger_proof::record::{self, RecordHeader};
use grantledger_proof::{Bundle, BundleBuilder, Checkpoint, SignedCheckpoint, Subject};

const TREE_SIZE: u64 = 10_000_000;

/// One timed piece of work, ours or a peer's.
type Work<'a> = Box<dyn Fn() + 'a>;

struct Setup {
    checkpoint: Checkpoint,
    signed: SignedCheckpoint,
    text: String,
    dalek_signing: ed25519_dalek::SigningKey,
    dalek_signature: ed25519_dalek::Signature,
    bundle: Bundle,
    bundle_json: String,
    records: Vec<Vec<u8>>,
    proof_hash_count: usize,
}

fn setup() -> Setup {
    let chain = six_event_chain();
    let records: Vec<Vec<u8>> = chain.iter().map(|(stored, _)| stored.clone()).collect();
    let tree = SparseTree::new(TREE_SIZE, &records);
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_string(),
        tree_size: TREE_SIZE,
        root_hash: tree.root(),
        time_ms: 1_800_000_000_000,
    };
    let signed = checkpoint.sign(&signer()).unwrap();
    let text = checkpoint.to_text().unwrap();
    let dalek_signing = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    let dalek_signature = dalek_signing.sign(text.as_bytes());
    let mut builder = BundleBuilder::new(
        signed.clone(),
        Subject::Grant {
            grant_id: "grant:req-0001".to_string(),
        },
    );
    let mut proof_hash_count = 0;
    for (stored, event) in &chain {
        let sequence = RecordHeader::decode(stored).unwrap().sequence;
        let proof = tree.inclusion_proof(sequence);
        proof_hash_count += proof.len();
        builder.push_event(stored, &proof, event.clone()).unwrap();
    }
    let bundle = builder.build().unwrap();
    let bundle_json = bundle.to_json();
    Setup {
        checkpoint,
        signed,
        text,
        dalek_signing,
        dalek_signature,
        bundle,
        bundle_json,
        records,
        proof_hash_count,
    }
}

/// The work no bundle verifier can skip: one signature, the record hashes, the proof
/// hashes.
fn irreducible_bundle_work(setup: &Setup, verifying: &ed25519_dalek::VerifyingKey) {
    verifying
        .verify_strict(setup.text.as_bytes(), &setup.dalek_signature)
        .unwrap();
    let mut running = [0u8; 32];
    for stored in &setup.records {
        running = record::record_hash(black_box(stored));
    }
    for _ in 0..setup.proof_hash_count {
        running = Blake3.hash_children(&running, black_box(&running));
    }
    black_box(running);
}

fn main() {
    let setup = setup();
    let trusted = [verifier()];
    let key = signer();
    let verifying = setup.dalek_signing.verifying_key();
    let mut criterion = Criterion::default().configure_from_args();

    {
        let mut group = criterion.benchmark_group("checkpoint");
        group.bench_function("sign (ours)", |b| {
            b.iter(|| black_box(&setup.checkpoint).sign(&key).unwrap())
        });
        group.bench_function("sign (peer: bare ed25519 sign)", |b| {
            b.iter(|| setup.dalek_signing.sign(black_box(setup.text.as_bytes())))
        });
        group.bench_function("parse and verify (ours)", |b| {
            b.iter(|| {
                SignedCheckpoint::parse(black_box(setup.signed.as_str()))
                    .unwrap()
                    .verify(&trusted)
                    .unwrap()
            })
        });
        group.bench_function("verify (peer: bare ed25519 verify_strict)", |b| {
            b.iter(|| {
                verifying
                    .verify_strict(black_box(setup.text.as_bytes()), &setup.dalek_signature)
                    .unwrap()
            })
        });
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("bundle, 6 events, 24-hash proofs");
        group.bench_function("verify (ours)", |b| {
            b.iter(|| black_box(&setup.bundle).verify(&trusted).unwrap())
        });
        group.bench_function("parse JSON and verify (ours)", |b| {
            b.iter(|| {
                Bundle::from_json(black_box(&setup.bundle_json))
                    .unwrap()
                    .verify(&trusted)
                    .unwrap()
            })
        });
        group.bench_function(
            "peer: 1 ed25519 verify + blake3 of 6 records + 144 node hashes",
            |b| b.iter(|| irreducible_bundle_work(&setup, &verifying)),
        );
        group.bench_function("peer: blake3 of the 6 records only", |b| {
            b.iter(|| {
                for stored in &setup.records {
                    black_box(record::record_hash(black_box(stored)));
                }
            })
        });
        group.finish();
    }
    criterion.final_summary();

    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    println!();
    println!("ratios (ours / peer; medians of 7 interleaved rounds, same process):");
    let rows: [(&str, Work, Work); 4] = [
        (
            "checkpoint sign / bare ed25519 sign",
            Box::new(|| {
                black_box(setup.checkpoint.sign(&key).unwrap());
            }),
            Box::new(|| {
                black_box(setup.dalek_signing.sign(setup.text.as_bytes()));
            }),
        ),
        (
            "checkpoint parse+verify / bare ed25519 verify_strict",
            Box::new(|| {
                SignedCheckpoint::parse(setup.signed.as_str())
                    .unwrap()
                    .verify(&trusted)
                    .unwrap();
            }),
            Box::new(|| {
                verifying
                    .verify_strict(setup.text.as_bytes(), &setup.dalek_signature)
                    .unwrap();
            }),
        ),
        (
            "bundle verify (parsed) / irreducible work",
            Box::new(|| {
                setup.bundle.verify(&trusted).unwrap();
            }),
            Box::new(|| irreducible_bundle_work(&setup, &verifying)),
        ),
        (
            "bundle JSON parse+verify / irreducible work",
            Box::new(|| {
                Bundle::from_json(&setup.bundle_json)
                    .unwrap()
                    .verify(&trusted)
                    .unwrap();
            }),
            Box::new(|| irreducible_bundle_work(&setup, &verifying)),
        ),
    ];
    for (name, ours, peer) in &rows {
        let (ours_ns, peer_ns) = interleaved_medians(ours.as_ref(), peer.as_ref());
        println!(
            "  {name:<55} {:>9.1} us / {:>9.1} us = {:.2}x",
            ours_ns / 1e3,
            peer_ns / 1e3,
            ours_ns / peer_ns
        );
    }
    let record_hex: usize = setup.bundle.events.iter().map(|e| e.record.len()).sum();
    let event_json: usize = setup
        .bundle
        .events
        .iter()
        .map(|e| serde_json::to_string_pretty(&e.event).unwrap().len())
        .sum();
    println!();
    println!(
        "bundle size, 6-event grant chain on a {TREE_SIZE}-record tree ({} proof hashes): {} bytes of JSON \
         ({} of record hex, {} of proof hex, ~{} of event JSON, {} of checkpoint note)",
        setup.proof_hash_count,
        setup.bundle_json.len(),
        record_hex,
        setup.proof_hash_count * 64,
        event_json,
        setup.signed.as_str().len()
    );
}

/// Median nanoseconds per call of `ours` and `peer`, timed in alternating rounds so that
/// frequency changes and noise hit both alike.
fn interleaved_medians(ours: &dyn Fn(), peer: &dyn Fn()) -> (f64, f64) {
    let time = |f: &dyn Fn()| {
        // Enough calls for about 50 ms at these costs.
        let calibrate = Instant::now();
        f();
        let once = calibrate.elapsed().as_nanos().max(1) as f64;
        let iterations = ((50e6 / once) as u64).clamp(10, 1_000_000);
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        start.elapsed().as_nanos() as f64 / iterations as f64
    };
    let mut ours_samples = Vec::new();
    let mut peer_samples = Vec::new();
    for _ in 0..7 {
        ours_samples.push(time(ours));
        peer_samples.push(time(peer));
    }
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    (median(&mut ours_samples), median(&mut peer_samples))
}
