//! Shared by the integration tests and the benchmark: deterministic keys, records built
//! with the log format's rules (checked against the golden vectors), small in-memory logs,
//! and a sparse stand-in for a 10-million-leaf tree.

#![allow(dead_code)]

use std::collections::BTreeMap;

use grantledger_merkle::{
    Blake3, CompactRange, Digest, MemoryNodeStore, MerkleHasher, NodeId, NodeStore,
    inclusion_proof, root_at,
};
use grantledger_proof::record::{self, HASH_DOMAIN_TAG, HEADER_BYTES, HEADER_HASHED_BYTES};
use grantledger_proof::{Checkpoint, SignedCheckpoint, SignerKey, VerifierKey};

pub const ORIGIN: &str = "ledger.example.com/acme";

/// The log's signing key, from a fixed seed so that failures reproduce.
pub fn signer() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [0x11; 32]).unwrap()
}

pub fn verifier() -> VerifierKey {
    signer().verifier_key()
}

/// A golden record of `schemas/golden/records.json`: stored bytes and envelope JSON.
pub struct Golden {
    pub name: String,
    pub stored: Vec<u8>,
    pub record_hash: [u8; 32],
    pub envelope: serde_json::Value,
}

pub fn golden_records() -> Vec<Golden> {
    let text = include_str!("../../../../schemas/golden/records.json");
    let document: serde_json::Value = serde_json::from_str(text).unwrap();
    document["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut stored = hex::decode(row["header_hex"].as_str().unwrap()).unwrap();
            stored.extend(hex::decode(row["body_hex"].as_str().unwrap()).unwrap());
            Golden {
                name: row["name"].as_str().unwrap().to_string(),
                stored,
                record_hash: hex::decode(row["record_hash"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
                envelope: row["envelope"].clone(),
            }
        })
        .collect()
}

/// A record with a correct hash, written by the rules of `schemas/LOG_FORMAT.md`
/// independently of `grantledger_proof::record` (which the golden vectors check).
pub fn make_record(
    sequence: u64,
    time_ms: i64,
    kind: u16,
    parent: [u8; 32],
    body: &[u8],
) -> Vec<u8> {
    let mut stored = Vec::with_capacity(HEADER_BYTES + body.len());
    stored.push(1);
    stored.extend_from_slice(&sequence.to_be_bytes());
    stored.extend_from_slice(&time_ms.to_be_bytes());
    stored.extend_from_slice(&kind.to_be_bytes());
    stored.extend_from_slice(&(body.len() as u32).to_be_bytes());
    stored.extend_from_slice(&parent);
    assert_eq!(stored.len(), HEADER_HASHED_BYTES);
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_DOMAIN_TAG);
    hasher.update(&stored);
    hasher.update(body);
    stored.extend_from_slice(hasher.finalize().as_bytes());
    stored.extend_from_slice(body);
    stored
}

pub fn stored_hash(stored: &[u8]) -> [u8; 32] {
    stored[55..87].try_into().unwrap()
}

/// A grant's six-event chain (request, decision, approval, issuance, revocation,
/// confirmation), at sequences 1 to 6: the four golden records, then two more with golden
/// bodies, chained. Returns the stored records and their event JSON.
pub fn six_event_chain() -> Vec<(Vec<u8>, serde_json::Value)> {
    let golden = golden_records();
    let mut chain: Vec<(Vec<u8>, serde_json::Value)> = golden
        .iter()
        .map(|g| (g.stored.clone(), g.envelope.clone()))
        .collect();
    for source in [1usize, 3] {
        let previous = &chain.last().unwrap().0;
        let header = record::RecordHeader::decode(previous).unwrap();
        let body = &golden[source].stored[HEADER_BYTES..];
        let kind = record::RecordHeader::decode(&golden[source].stored)
            .unwrap()
            .kind;
        let stored = make_record(
            header.sequence + 1,
            header.time_ms + 1_000,
            kind,
            header.hash,
            body,
        );
        chain.push((stored, golden[source].envelope.clone()));
    }
    assert_eq!(chain.len(), 6);
    chain
}

/// A log held in memory: its records' tree nodes and roots at every size.
pub struct MemoryLog {
    pub records: Vec<Vec<u8>>,
    pub store: MemoryNodeStore,
    range: CompactRange,
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        MemoryLog {
            records: Vec::new(),
            store: MemoryNodeStore::new(),
            range: CompactRange::new(),
        }
    }

    pub fn from_records(records: &[Vec<u8>]) -> MemoryLog {
        let mut log = MemoryLog::new();
        for stored in records {
            log.append(stored.clone());
        }
        log
    }

    /// Appends a stored record whose sequence is the next one.
    pub fn append(&mut self, stored: Vec<u8>) {
        let header = record::check_record(&stored).unwrap();
        assert_eq!(header.sequence, self.records.len() as u64 + 1);
        let leaf = record::leaf_hash(&header.hash);
        let store = &mut self.store;
        self.range
            .append(&Blake3, leaf, |node_id, hash| store.insert(node_id, *hash));
        self.records.push(stored);
    }

    /// Appends a record with `body`, chained to the last one.
    pub fn append_body(&mut self, time_ms: i64, kind: u16, body: &[u8]) {
        let parent = self
            .records
            .last()
            .map(|r| stored_hash(r))
            .unwrap_or([0; 32]);
        let sequence = self.records.len() as u64 + 1;
        self.append(make_record(sequence, time_ms, kind, parent, body));
    }

    pub fn size(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn root_at(&self, size: u64) -> Digest {
        root_at(&Blake3, &self.store, size).unwrap()
    }

    pub fn inclusion_proof(&self, sequence: u64, size: u64) -> Vec<Digest> {
        inclusion_proof(&Blake3, &self.store, sequence - 1, size).unwrap()
    }

    pub fn checkpoint(&self, size: u64, time_ms: i64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.to_string(),
            tree_size: size,
            root_hash: self.root_at(size),
            time_ms,
        }
    }

    pub fn signed_checkpoint(&self, size: u64, time_ms: i64) -> SignedCheckpoint {
        self.checkpoint(size, time_ms).sign(&signer()).unwrap()
    }
}

/// A tree of any size whose only known leaves are a few records; every complete subtree
/// without one of them has a made-up hash. To a verifier it is indistinguishable from a
/// real log of that size (the made-up hashes stand for subtrees nobody sees), so it gives
/// real proof depths and sizes (24 hashes for a 10-million-leaf tree) without storing
/// 20 million nodes.
pub struct SparseTree {
    pub size: u64,
    leaves: BTreeMap<u64, Digest>,
}

impl SparseTree {
    pub fn new(size: u64, records: &[Vec<u8>]) -> SparseTree {
        let leaves = records
            .iter()
            .map(|stored| {
                let header = record::check_record(stored).unwrap();
                assert!(header.sequence <= size);
                (header.leaf_index(), record::leaf_hash(&header.hash))
            })
            .collect();
        SparseTree { size, leaves }
    }

    pub fn root(&self) -> Digest {
        root_at(&Blake3, self, self.size).unwrap()
    }

    pub fn inclusion_proof(&self, sequence: u64) -> Vec<Digest> {
        inclusion_proof(&Blake3, self, sequence - 1, self.size).unwrap()
    }
}

impl NodeStore for SparseTree {
    type Error = std::convert::Infallible;

    fn node_hash(&self, node_id: NodeId) -> Result<Digest, Self::Error> {
        let first = node_id.first_leaf();
        let end = first + node_id.leaf_count();
        if self.leaves.range(first..end).next().is_none() {
            let mut hasher = blake3::Hasher::new();
            hasher.update(b"sparse-tree filler");
            hasher.update(&[node_id.level]);
            hasher.update(&node_id.index.to_be_bytes());
            return Ok(*hasher.finalize().as_bytes());
        }
        if node_id.level == 0 {
            return Ok(self.leaves[&first]);
        }
        let left = self.node_hash(NodeId::new(node_id.level - 1, node_id.index * 2))?;
        let right = self.node_hash(NodeId::new(node_id.level - 1, node_id.index * 2 + 1))?;
        Ok(Blake3.hash_children(&left, &right))
    }
}

/// Flips bits of `byte` so that it differs, trying each mask in turn; used by tamper
/// tests to change one byte in two different ways.
pub const TAMPER_MASKS: [u8; 2] = [0x01, 0x80];
