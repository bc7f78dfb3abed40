//! What an auditor verifies with no database: signed checkpoints and evidence bundles.
//!
//! grantledger's log keeps an RFC 9162 Merkle tree (Blake3) over its record hashes and
//! periodically signs its root. This crate holds everything needed to check those
//! signatures and proofs offline, and nothing that touches storage:
//!
//! - [`keys`]: Ed25519 signer and verifier keys in the text formats of C2SP signed-note
//!   and Go's `golang.org/x/mod/sumdb/note` (`PRIVATE+KEY+<name>+<id>+<key>` and
//!   `<name>+<id>+<key>`), generation from the OS's random source, rotation by key ID.
//! - [`checkpoint`]: checkpoints in the C2SP tlog-checkpoint format (origin, size, root,
//!   and a `time_ms` extension line), signed as C2SP notes byte-exactly as Go's `note`
//!   package signs them, verified against a set of trusted keys.
//! - [`consistency`]: whether a log extends a trusted checkpoint, telling "truncated" from
//!   "history rewritten".
//! - [`record`]: the record rules of `schemas/LOG_FORMAT.md` (header, body length,
//!   record hash), reimplemented so that this crate needs no log code, and the record's
//!   leaf in the tree (leaf index `sequence - 1`, leaf data = the record hash).
//! - [`bundle`]: evidence bundles (`grantledger-evidence-bundle/1`, documented in
//!   `schemas/EVIDENCE_BUNDLE.md`): records with inclusion proofs against a signed
//!   checkpoint, a builder for the ledger and a verifier for auditors.
//!
//! ```
//! use grantledger_merkle::{Blake3, CompactRange, MemoryNodeStore, inclusion_proof};
//! use grantledger_proof::{Bundle, BundleBuilder, Checkpoint, SignerKey, Subject, record};
//!
//! // A one-record log: an 87-byte header with version 1, sequence 1, an empty body.
//! let mut stored = vec![0u8; record::HEADER_BYTES];
//! stored[0] = 1;
//! stored[8] = 1;
//! let hash = record::record_hash(&stored);
//! stored[55..].copy_from_slice(&hash);
//!
//! let mut store = MemoryNodeStore::new();
//! let mut tree = CompactRange::new();
//! tree.append(&Blake3, record::leaf_hash(&hash), |id, node| store.insert(id, *node));
//!
//! let key = SignerKey::from_seed("ledger.example.com/acme", [7; 32]).unwrap();
//! let checkpoint = Checkpoint {
//!     origin: "ledger.example.com/acme".to_string(),
//!     tree_size: 1,
//!     root_hash: tree.root(&Blake3),
//!     time_ms: 1_700_000_000_000,
//! };
//! let signed = checkpoint.sign(&key).unwrap();
//!
//! let mut builder = BundleBuilder::new(signed, Subject::Grant { grant_id: "g-1".into() });
//! let proof = inclusion_proof(&Blake3, &store, 0, 1).unwrap();
//! builder.push_event(&stored, &proof, serde_json::json!({"note": "for people"})).unwrap();
//! let json = builder.build().unwrap().to_json();
//!
//! // The auditor: the JSON file and the verifier key, nothing else.
//! let report = Bundle::from_json(&json).unwrap().verify(&[key.verifier_key()]).unwrap();
//! assert_eq!(report.events[0].header.sequence, 1);
//! ```
//!
//! Deliberately absent: no RocksDB, no log crate, no NATS, no clock, no network. Keys are
//! generated from the OS random source and may be read from and written to files; nothing
//! else does IO.

pub mod bundle;
pub mod checkpoint;
pub mod consistency;
mod error;
pub mod keys;
mod note;
pub mod record;
pub mod schema;

pub use bundle::{
    BUNDLE_EVENTS_MAX, BUNDLE_FORMAT, BUNDLE_JSON_BYTES_MAX, Bundle, BundleBuilder, BundleError,
    BundleErrorKind, BundleEvent, BundleReport, EventLocation, PROOF_HASHES_MAX, SUBJECT_BYTES_MAX,
    Subject, VerifiedEvent,
};
pub use checkpoint::{Checkpoint, SignedCheckpoint, TIME_EXTENSION_PREFIX, VerifiedCheckpoint};
pub use consistency::{check_extends, check_extends_signed};
pub use error::{
    CheckpointError, CheckpointErrorKind, ConsistencyError, ConsistencyErrorKind, Error, KeyError,
    KeyErrorKind,
};
pub use keys::{ALGORITHM_ED25519, KEY_NAME_BYTES_MAX, KeyId, SignerKey, VerifierKey};
pub use note::{NOTE_BYTES_MAX, SIGNATURE_LINE_PREFIX, SIGNATURES_MAX};
