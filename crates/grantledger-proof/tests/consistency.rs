//! Append-only checks against a trusted checkpoint: truncated and rewritten logs each
//! fail with their own message, including a rewrite whose hash chain was recomputed.

mod common;

use common::{MemoryLog, ORIGIN, verifier};
use grantledger_merkle::{Blake3, consistency_proof};
use grantledger_proof::{ConsistencyErrorKind, SignerKey, check_extends, check_extends_signed};

fn log_of(count: u64) -> MemoryLog {
    let mut log = MemoryLog::new();
    for n in 1..=count {
        log.append_body(1_000 + n as i64, 2, format!("event {n}").as_bytes());
    }
    log
}

fn proof(log: &MemoryLog, size1: u64, size2: u64) -> Vec<grantledger_merkle::Digest> {
    if size1 == 0 || size1 == size2 {
        return Vec::new();
    }
    consistency_proof(&Blake3, &log.store, size1, size2).unwrap()
}

#[test]
fn a_log_that_grew_extends_every_older_checkpoint() {
    let log = log_of(40);
    for old in 0..=40 {
        let trusted = log.signed_checkpoint(old, 5_000);
        let checkpoint = check_extends_signed(
            &trusted,
            &[verifier()],
            40,
            &log.root_at(40),
            &proof(&log, old, 40),
        )
        .unwrap_or_else(|e| panic!("{old} -> 40: {e}"));
        assert_eq!(checkpoint.tree_size, old);
        // The signature is checked once; the proofs to every other size with the result.
        for new in old..=40 {
            check_extends(&checkpoint, new, &log.root_at(new), &proof(&log, old, new))
                .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
        }
    }
}

#[test]
fn truncation_by_1_to_100_records_is_reported_as_truncation() {
    let log = log_of(150);
    let trusted = log.signed_checkpoint(150, 5_000);
    for cut in 1..=100u64 {
        let size = 150 - cut;
        let error = check_extends_signed(&trusted, &[verifier()], size, &log.root_at(size), &[])
            .unwrap_err();
        assert_eq!(error.kind(), ConsistencyErrorKind::Truncated, "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "the log was truncated: checkpoint size 150 > log size {size} (origin `{ORIGIN}`)"
            )
        );
    }
}

/// The attacker rewrites record 5 of 20 and recomputes every later hash, so the chain is
/// consistent with itself; then appends more. Against a checkpoint taken before the
/// rewrite, every later size fails as a rewrite, whatever proof is offered.
#[test]
fn a_rewritten_history_with_a_recomputed_chain_is_reported_as_rewritten() {
    let honest = log_of(20);
    let trusted = honest.signed_checkpoint(12, 5_000);

    let mut forged = MemoryLog::new();
    for n in 1..=30u64 {
        let body = if n == 5 {
            "event 5, rewritten".to_string()
        } else {
            format!("event {n}")
        };
        forged.append_body(1_000 + n as i64, 2, body.as_bytes());
    }
    for size in 12..=30 {
        let error = check_extends_signed(
            &trusted,
            &[verifier()],
            size,
            &forged.root_at(size),
            &proof(&forged, 12, size),
        )
        .unwrap_err();
        assert_eq!(
            error.kind(),
            ConsistencyErrorKind::HistoryRewritten,
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "history rewritten: consistency proof fails between 12 and {size}"
            )),
            "{message}"
        );
    }
    // The honest log's proof does not rescue the forged root either.
    let error = check_extends(
        trusted.unverified_checkpoint(),
        20,
        &forged.root_at(20),
        &proof(&honest, 12, 20),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ConsistencyErrorKind::HistoryRewritten);
}

#[test]
fn a_rewrite_at_the_same_size_and_a_changed_proof_are_rewrites() {
    let log = log_of(16);
    let trusted = log.checkpoint(9, 5_000);
    let other = {
        let mut other = MemoryLog::new();
        for n in 1..=16u64 {
            other.append_body(1_000 + n as i64, 3, format!("event {n}").as_bytes());
        }
        other
    };
    let error = check_extends(&trusted, 9, &other.root_at(9), &[]).unwrap_err();
    assert_eq!(error.kind(), ConsistencyErrorKind::HistoryRewritten);

    let good = proof(&log, 9, 16);
    assert!(check_extends(&trusted, 16, &log.root_at(16), &good).is_ok());
    for position in 0..good.len() {
        let mut changed = good.clone();
        changed[position][0] ^= 1;
        let error = check_extends(&trusted, 16, &log.root_at(16), &changed).unwrap_err();
        assert_eq!(
            error.kind(),
            ConsistencyErrorKind::HistoryRewritten,
            "{error}"
        );
    }
    let mut short = good.clone();
    short.pop();
    let error = check_extends(&trusted, 16, &log.root_at(16), &short).unwrap_err();
    assert!(error.to_string().contains("proof_length_wrong"), "{error}");
}

#[test]
fn an_untrusted_checkpoint_is_rejected_before_any_proof() {
    let log = log_of(8);
    let stranger = SignerKey::from_seed(ORIGIN, [0x77; 32]).unwrap();
    let signed = log.checkpoint(4, 5_000).sign(&stranger).unwrap();
    let error = check_extends_signed(
        &signed,
        &[verifier()],
        8,
        &log.root_at(8),
        &proof(&log, 4, 8),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ConsistencyErrorKind::CheckpointRejected);
    assert!(
        error.to_string().contains("no_trusted_signature"),
        "{error}"
    );
}

#[test]
fn the_empty_checkpoint_is_extended_by_anything_but_takes_no_proof() {
    let log = log_of(3);
    let trusted = log.checkpoint(0, 0);
    assert!(check_extends(&trusted, 3, &log.root_at(3), &[]).is_ok());
    let error = check_extends(&trusted, 3, &log.root_at(3), &[[0; 32]]).unwrap_err();
    assert_eq!(error.kind(), ConsistencyErrorKind::HistoryRewritten);
}
