//! Is the log an append-only extension of a checkpoint the auditor kept?
//!
//! An auditor who holds an old signed checkpoint `(N, root_N)` asks the log for its size
//! `M`, its root `root_M` and the RFC 9162 consistency proof from `N` to `M`. Two ways of
//! cheating are told apart, because they call for different responses:
//!
//! - `M < N`: records were cut off the end ("the log was truncated");
//! - the proof does not connect `root_N` to `root_M`: the first `N` records are not the
//!   ones the checkpoint signed ("history rewritten"), however consistent the rewritten
//!   hash chain is with itself.
//!
//! `root_M` itself must come from somewhere trusted (a newer signed checkpoint, or the
//! auditor's own rebuild of the tree from the records): this module proves the link, not
//! the newer root.

use grantledger_merkle::{Blake3, Digest, verify_consistency};

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::error::{ConsistencyError, ConsistencyErrorKind};
use crate::keys::VerifierKey;

/// Checks that the tree of `log_size` leaves with root `log_root` extends the trusted
/// checkpoint, using the consistency proof from `trusted.tree_size` to `log_size`
/// (lowest level first, as [`grantledger_merkle::consistency_proof`] makes it).
pub fn check_extends(
    trusted: &Checkpoint,
    log_size: u64,
    log_root: &Digest,
    proof: &[Digest],
) -> Result<(), ConsistencyError> {
    let checkpoint_size = trusted.tree_size;
    if checkpoint_size > log_size {
        return Err(ConsistencyError::new(
            ConsistencyErrorKind::Truncated,
            format!(
                "the log was truncated: checkpoint size {checkpoint_size} > log size {log_size} (origin `{}`)",
                trusted.origin
            ),
        ));
    }
    if checkpoint_size == 0 {
        // Every tree extends the empty tree; RFC 9162 has no proof for it, so none is taken.
        if !proof.is_empty() {
            return Err(ConsistencyError::new(
                ConsistencyErrorKind::HistoryRewritten,
                format!(
                    "history rewritten: consistency proof fails between 0 and {log_size}: the proof from the empty tree is empty, this one has `{}` hashes",
                    proof.len()
                ),
            ));
        }
        return Ok(());
    }
    verify_consistency(
        &Blake3,
        checkpoint_size,
        log_size,
        proof,
        &trusted.root_hash,
        log_root,
    )
    .map_err(|error| {
        ConsistencyError::new(
            ConsistencyErrorKind::HistoryRewritten,
            format!(
                "history rewritten: consistency proof fails between {checkpoint_size} and {log_size} (origin `{}`, rule `{}`): {error}",
                trusted.origin,
                error.kind().code()
            ),
        )
    })
}

/// Verifies the signed checkpoint against the trusted keys, then [`check_extends`].
/// Returns the checkpoint that was trusted.
pub fn check_extends_signed(
    trusted: &SignedCheckpoint,
    trusted_keys: &[VerifierKey],
    log_size: u64,
    log_root: &Digest,
    proof: &[Digest],
) -> Result<Checkpoint, ConsistencyError> {
    let checkpoint = trusted.verify(trusted_keys).map_err(|error| {
        ConsistencyError::new(
            ConsistencyErrorKind::CheckpointRejected,
            format!(
                "the trusted checkpoint does not verify (rule `{}`): {error}",
                error.kind().code()
            ),
        )
    })?;
    check_extends(&checkpoint, log_size, log_root, proof)?;
    Ok(checkpoint)
}
