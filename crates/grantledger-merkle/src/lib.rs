//! RFC 9162-shaped Merkle trees over record hashes, generic over the hash function.
//!
//! This crate owns the tree math of grantledger's transparency log: the tree over record
//! hashes that lets an auditor check, offline and with `O(log n)` hashes, that a record is
//! in the log (an inclusion proof) and that a later log extends an earlier one without
//! rewriting it (a consistency proof).
//!
//! - [`MerkleHasher`], with the RFC 6962 / RFC 9162 domain separation (`H(0x00 || leaf)`,
//!   `H(0x01 || left || right)`, `H("")` for the empty tree), implemented by [`Blake3`]
//!   (what grantledger uses) and [`Sha256`] (exactly RFC 6962, checked against the
//!   published Certificate Transparency vectors).
//! - Verification: [`verify_inclusion`] and [`verify_consistency`], pure functions of the
//!   hasher, the sizes, the proof and the roots, modelled on transparency-dev's
//!   `merkle/proof/verify.go`. An auditor needs nothing else.
//! - Generation for a storage layer: [`CompactRange`] takes leaf hashes in order and emits
//!   each complete subtree as it completes, addressed by [`NodeId`] `(level, index)` (see
//!   [`node`] for the addressing and a key encoding); [`inclusion_proof`],
//!   [`consistency_proof`] and [`root_at`] read those nodes back through the [`NodeStore`]
//!   trait, `O(log n)` reads per proof, at any past tree size.
//!
//! ```
//! use grantledger_merkle::{
//!     Blake3, CompactRange, MemoryNodeStore, MerkleHasher, consistency_proof, inclusion_proof,
//!     verify_consistency, verify_inclusion,
//! };
//!
//! // The writer: append each record hash as a leaf, persist the nodes it completes.
//! let mut store = MemoryNodeStore::new();
//! let mut range = CompactRange::new();
//! let mut roots = Vec::new();
//! for record in [&b"first"[..], b"second", b"third"] {
//!     let leaf_hash = Blake3.hash_leaf(record);
//!     range.append(&Blake3, leaf_hash, |node_id, hash| store.insert(node_id, *hash));
//!     roots.push(range.root(&Blake3)); // what a checkpoint would sign
//! }
//!
//! // The server: proofs at any size the store covers.
//! let inclusion = inclusion_proof(&Blake3, &store, 1, 3).unwrap();
//! let consistency = consistency_proof(&Blake3, &store, 2, 3).unwrap();
//!
//! // The auditor, offline: only the hasher, the proof and the signed roots.
//! let leaf_hash = Blake3.hash_leaf(b"second");
//! verify_inclusion(&Blake3, 1, 3, &leaf_hash, &inclusion, &roots[2]).unwrap();
//! verify_consistency(&Blake3, 2, 3, &consistency, &roots[1], &roots[2]).unwrap();
//! ```
//!
//! Deliberately absent: this crate does no IO and has no storage engine. It knows nothing
//! of RocksDB, records, checkpoints or signatures; the log crate stores the nodes and signs
//! the roots. Nothing here reads a clock or the network, and nothing here panics on
//! malformed proofs: they are errors with a closed set of kinds ([`ProofErrorKind`]).

pub mod node;

mod compact;
mod error;
mod hasher;
mod math;
mod prove;
mod verify;

pub use compact::CompactRange;
pub use error::{
    Error, NodeMissingError, PlanError, PlanErrorKind, ProofError, ProofErrorKind, ProveError,
};
pub use hasher::{Blake3, DIGEST_BYTES, Digest, LEAF_PREFIX, MerkleHasher, NODE_PREFIX, Sha256};
pub use node::{LEVEL_MAX, MemoryNodeStore, NodeId, NodeStore};
pub use prove::{
    ProofPlan, consistency_plan, consistency_proof, inclusion_plan, inclusion_proof, root_at,
    root_from_leaf_hashes,
};
pub use verify::{
    digest_from_slice, root_from_consistency_proof, root_from_inclusion_proof, verify_consistency,
    verify_inclusion,
};
