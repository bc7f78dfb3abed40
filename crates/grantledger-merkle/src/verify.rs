//! Pure proof verification: no store, no IO, only the hasher and the values given.
//!
//! The algorithms are those of RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2
//! (consistency). Before chaining, the proof length is checked against the exact length
//! of the path for the given index and size (or sizes), so a truncated or extended proof
//! fails with [`ProofErrorKind::ProofLengthWrong`] rather than with a root mismatch.

use crate::error::{self, ProofError, ProofErrorKind};
use crate::hasher::{DIGEST_BYTES, Digest, MerkleHasher};
use crate::math;

/// Verifies that `leaf_hash` is the leaf at `index` in the tree of `size` leaves whose
/// root is `root`, using the inclusion proof (RFC 9162 `PATH`, lowest level first).
///
/// Preconditions, each checked and reported as an error, never a panic:
/// - `index < size` (so `size > 0`), else [`ProofErrorKind::IndexBeyondSize`];
/// - `proof.len()` is the path length for `index` in a tree of `size`, else
///   [`ProofErrorKind::ProofLengthWrong`].
///
/// `leaf_hash` is the leaf's hash (`hasher.hash_leaf(data)`), not its data. The root is
/// trusted only as far as its source is (a signed checkpoint): this function says that the
/// leaf is in *that* tree.
pub fn verify_inclusion<H: MerkleHasher>(
    hasher: &H,
    index: u64,
    size: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
    root: &Digest,
) -> Result<(), ProofError> {
    let calculated = root_from_inclusion_proof(hasher, index, size, leaf_hash, proof)?;
    if calculated != *root {
        return Err(ProofError::new(
            ProofErrorKind::RootMismatch,
            "inclusion proof does not lead to the expected root".to_string(),
        ));
    }
    Ok(())
}

/// The root that an inclusion proof leads to, for a leaf at `index` in a tree of `size`
/// leaves. Same preconditions as [`verify_inclusion`]; compare the result to a trusted root.
pub fn root_from_inclusion_proof<H: MerkleHasher>(
    hasher: &H,
    index: u64,
    size: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
) -> Result<Digest, ProofError> {
    if index >= size {
        return Err(ProofError::new(
            ProofErrorKind::IndexBeyondSize,
            error::index_beyond_size(index, size),
        ));
    }
    let length_expected = math::inclusion_proof_len(index, size);
    if proof.len() != length_expected {
        return Err(proof_length_wrong(proof.len(), length_expected));
    }

    // RFC 9162 section 2.1.3.2, steps 2 to 5. `node` is the index of the running hash at
    // the current level, `last` the index of the last node of the tree at that level.
    let mut node = index;
    let mut last = size - 1;
    let mut running = *leaf_hash;
    for sibling in proof {
        if last == 0 {
            return Err(proof_length_wrong(proof.len(), length_expected));
        }
        if node & 1 == 1 || node == last {
            running = hasher.hash_children(sibling, &running);
            // A right-edge node without a right sibling is carried up unchanged until it
            // becomes a right child (or reaches the left edge).
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            running = hasher.hash_children(&running, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(proof_length_wrong(proof.len(), length_expected));
    }
    Ok(running)
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1`
/// leaves with root `root1`: the first `size1` leaves are the same, in the same order.
///
/// Preconditions, each checked and reported as an error, never a panic:
/// - `size1 <= size2`, else [`ProofErrorKind::Size2LessThanSize1`];
/// - if `size1 == size2`, the proof is empty (else [`ProofErrorKind::ProofLengthWrong`])
///   and `root1 == root2` (else [`ProofErrorKind::RootMismatch`]); this holds for
///   `size1 == size2 == 0` as well;
/// - otherwise `size1 > 0`, else [`ProofErrorKind::Size1Zero`]: every tree extends the
///   empty tree, so such a proof would prove nothing;
/// - `proof.len()` is the length of RFC 9162 `PROOF(size1, D[size2])`, else
///   [`ProofErrorKind::ProofLengthWrong`].
///
/// A proof that does not lead back to `root1` fails with
/// [`ProofErrorKind::FirstRootMismatch`]; one that does but does not lead to `root2` fails
/// with [`ProofErrorKind::RootMismatch`].
pub fn verify_consistency<H: MerkleHasher>(
    hasher: &H,
    size1: u64,
    size2: u64,
    proof: &[Digest],
    root1: &Digest,
    root2: &Digest,
) -> Result<(), ProofError> {
    let calculated = root_from_consistency_proof(hasher, size1, size2, proof, root1)?;
    if calculated != *root2 {
        return Err(ProofError::new(
            ProofErrorKind::RootMismatch,
            "consistency proof does not lead to the expected second root".to_string(),
        ));
    }
    Ok(())
}

/// The root of the tree of `size2` leaves that a consistency proof leads to, starting from
/// the tree of `size1` leaves with root `root1`. Same preconditions as
/// [`verify_consistency`]; `root1` is checked here, compare the result to a trusted `root2`.
pub fn root_from_consistency_proof<H: MerkleHasher>(
    hasher: &H,
    size1: u64,
    size2: u64,
    proof: &[Digest],
    root1: &Digest,
) -> Result<Digest, ProofError> {
    if size2 < size1 {
        return Err(ProofError::new(
            ProofErrorKind::Size2LessThanSize1,
            error::size2_less_than_size1(size1, size2),
        ));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(proof_length_wrong(proof.len(), 0));
        }
        return Ok(*root1);
    }
    if size1 == 0 {
        return Err(ProofError::new(
            ProofErrorKind::Size1Zero,
            error::size1_zero(size2),
        ));
    }
    let length_expected = math::consistency_proof_len(size1, size2);
    if proof.len() != length_expected {
        return Err(proof_length_wrong(proof.len(), length_expected));
    }

    // RFC 9162 section 2.1.4.2. When size1 is a power of two the first tree is a complete
    // subtree of the second, the proof leaves its root out, and root1 is the seed.
    let (seed, rest) = if size1.is_power_of_two() {
        (*root1, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let mut node = size1 - 1;
    let mut last = size2 - 1;
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    let mut running1 = seed;
    let mut running2 = seed;
    for hash in rest {
        if last == 0 {
            return Err(proof_length_wrong(proof.len(), length_expected));
        }
        if node & 1 == 1 || node == last {
            running1 = hasher.hash_children(hash, &running1);
            running2 = hasher.hash_children(hash, &running2);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            running2 = hasher.hash_children(&running2, hash);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(proof_length_wrong(proof.len(), length_expected));
    }
    if running1 != *root1 {
        return Err(ProofError::new(
            ProofErrorKind::FirstRootMismatch,
            "consistency proof does not lead back to the first root".to_string(),
        ));
    }
    Ok(running2)
}

/// A [`Digest`] from a byte string of exactly [`DIGEST_BYTES`] bytes, for proofs and roots
/// that arrive as bytes (an evidence file, a JSON document).
pub fn digest_from_slice(bytes: &[u8]) -> Result<Digest, ProofError> {
    bytes.try_into().map_err(|_| {
        ProofError::new(
            ProofErrorKind::DigestLengthWrong,
            format!(
                "a hash has `{}` bytes, expected `{DIGEST_BYTES}`",
                bytes.len()
            ),
        )
    })
}

fn proof_length_wrong(length: usize, length_expected: usize) -> ProofError {
    ProofError::new(
        ProofErrorKind::ProofLengthWrong,
        format!("proof has `{length}` hashes, expected `{length_expected}`"),
    )
}
