//! Helpers shared by the integration tests: an independent, naive RFC 9162 oracle, test
//! data loading, and decoding.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

use grantledger_merkle::{CompactRange, Digest, MemoryNodeStore, MerkleHasher};

/// The absolute path of a file under the crate's `testdata/`.
pub fn testdata_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(relative)
}

/// Reads and parses a JSON file under `testdata/`.
pub fn read_testdata_json<T: serde::de::DeserializeOwned>(relative: &str) -> T {
    let path = testdata_path(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A 32-byte digest from 64 hex digits; panics on anything else (test data is trusted).
pub fn hex_digest(text: &str) -> Digest {
    hex::decode(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .try_into()
        .unwrap_or_else(|bytes: Vec<u8>| panic!("{text:?} has {} bytes", bytes.len()))
}

/// Decodes standard, padded base64 (what Go's `encoding/json` writes for `[]byte`).
pub fn base64_decode(text: &str) -> Vec<u8> {
    fn value(symbol: u8) -> u32 {
        match symbol {
            b'A'..=b'Z' => u32::from(symbol - b'A'),
            b'a'..=b'z' => u32::from(symbol - b'a') + 26,
            b'0'..=b'9' => u32::from(symbol - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("{symbol:?} is not a base64 symbol"),
        }
    }
    let bytes = text.as_bytes();
    assert!(
        bytes.len().is_multiple_of(4),
        "{text:?} is not padded base64"
    );
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let padding = chunk
            .iter()
            .rev()
            .take_while(|&&symbol| symbol == b'=')
            .count();
        assert!(padding <= 2, "{text:?} has too much padding");
        let mut group = 0u32;
        for &symbol in &chunk[..4 - padding] {
            group = (group << 6) | value(symbol);
        }
        group <<= 6 * padding as u32;
        let decoded = [(group >> 16) as u8, (group >> 8) as u8, group as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    out
}

/// RFC 9162 section 2.1.1 `MTH`, written as the RFC writes it: recursion on the largest
/// power of two smaller than `n`. Deliberately shares no code with the crate.
pub fn naive_root<H: MerkleHasher>(hasher: &H, leaf_hashes: &[Digest]) -> Digest {
    match leaf_hashes.len() {
        0 => hasher.empty_root(),
        1 => leaf_hashes[0],
        n => {
            let k = naive_split(n);
            hasher.hash_children(
                &naive_root(hasher, &leaf_hashes[..k]),
                &naive_root(hasher, &leaf_hashes[k..]),
            )
        }
    }
}

/// RFC 9162 section 2.1.3.1 `PATH(m, D[n])`.
pub fn naive_inclusion_proof<H: MerkleHasher>(
    hasher: &H,
    index: usize,
    leaf_hashes: &[Digest],
) -> Vec<Digest> {
    let n = leaf_hashes.len();
    assert!(index < n);
    if n == 1 {
        return Vec::new();
    }
    let k = naive_split(n);
    if index < k {
        let mut path = naive_inclusion_proof(hasher, index, &leaf_hashes[..k]);
        path.push(naive_root(hasher, &leaf_hashes[k..]));
        path
    } else {
        let mut path = naive_inclusion_proof(hasher, index - k, &leaf_hashes[k..]);
        path.push(naive_root(hasher, &leaf_hashes[..k]));
        path
    }
}

/// RFC 9162 section 2.1.4.1 `PROOF(m, D[n])` for `0 < m <= n`.
pub fn naive_consistency_proof<H: MerkleHasher>(
    hasher: &H,
    size1: usize,
    leaf_hashes: &[Digest],
) -> Vec<Digest> {
    fn subproof<H: MerkleHasher>(
        hasher: &H,
        m: usize,
        leaves: &[Digest],
        first_root_known: bool,
    ) -> Vec<Digest> {
        let n = leaves.len();
        if m == n {
            return if first_root_known {
                Vec::new()
            } else {
                vec![naive_root(hasher, leaves)]
            };
        }
        let k = naive_split(n);
        if m <= k {
            let mut proof = subproof(hasher, m, &leaves[..k], first_root_known);
            proof.push(naive_root(hasher, &leaves[k..]));
            proof
        } else {
            let mut proof = subproof(hasher, m - k, &leaves[k..], false);
            proof.push(naive_root(hasher, &leaves[..k]));
            proof
        }
    }
    assert!(0 < size1 && size1 <= leaf_hashes.len());
    subproof(hasher, size1, leaf_hashes, true)
}

fn naive_split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Leaf hashes of the leaves `0..count`, each leaf's data its index in big-endian bytes.
pub fn numbered_leaf_hashes<H: MerkleHasher>(hasher: &H, count: u64) -> Vec<Digest> {
    (0..count)
        .map(|i| hasher.hash_leaf(&i.to_be_bytes()))
        .collect()
}

/// A store holding every complete node of the tree over `leaf_hashes`, built the way the
/// log builds it: one append at a time.
pub fn build_store<H: MerkleHasher>(
    hasher: &H,
    leaf_hashes: &[Digest],
) -> (MemoryNodeStore, CompactRange) {
    let mut store = MemoryNodeStore::new();
    let mut range = CompactRange::new();
    for leaf_hash in leaf_hashes {
        range.append(hasher, *leaf_hash, |node_id, hash| {
            store.insert(node_id, *hash)
        });
    }
    (store, range)
}
