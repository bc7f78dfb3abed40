//! Hash functions with the RFC 6962 / RFC 9162 domain separation.

use sha2::Digest as _;

/// A leaf or node hash. Every hasher in this crate produces 32 bytes.
pub type Digest = [u8; DIGEST_BYTES];

/// Length of a [`Digest`] in bytes.
pub const DIGEST_BYTES: usize = 32;

/// Prefix of a leaf hash input: `hash_leaf(d) = H(0x00 || d)` (RFC 9162 section 2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;

/// Prefix of an interior node hash input: `hash_children(l, r) = H(0x01 || l || r)`.
pub const NODE_PREFIX: u8 = 0x01;

/// The hash function of a Merkle tree, with leaf/node domain separation.
///
/// The prefixes make a leaf hash and a node hash different functions, so an interior
/// node cannot be passed off as a leaf (a second-preimage attack on the tree shape).
/// Every function in this crate is generic over the hasher; a proof made with one
/// hasher never verifies with another.
pub trait MerkleHasher {
    /// The hash of a leaf: `H(0x00 || data)`.
    fn hash_leaf(&self, data: &[u8]) -> Digest;

    /// The hash of an interior node: `H(0x01 || left || right)`.
    fn hash_children(&self, left: &Digest, right: &Digest) -> Digest;

    /// The root of the tree with no leaves: `H("")`, the hash of the empty string.
    fn empty_root(&self) -> Digest;
}

/// SHA-256 exactly as RFC 6962 and RFC 9162 use it. Checked against the published
/// Certificate Transparency vectors; grantledger itself uses [`Blake3`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sha256;

/// BLAKE3 (32-byte output) with the same domain separation as RFC 6962. This is the
/// hasher of grantledger's log tree, the same function as its record hash chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Blake3;

impl MerkleHasher for Sha256 {
    fn hash_leaf(&self, data: &[u8]) -> Digest {
        sha2::Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(data)
            .finalize()
            .into()
    }

    fn hash_children(&self, left: &Digest, right: &Digest) -> Digest {
        sha256_node(left, right)
    }

    fn empty_root(&self) -> Digest {
        sha2::Sha256::digest([]).into()
    }
}

impl MerkleHasher for Blake3 {
    fn hash_leaf(&self, data: &[u8]) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[LEAF_PREFIX]);
        hasher.update(data);
        *hasher.finalize().as_bytes()
    }

    fn hash_children(&self, left: &Digest, right: &Digest) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[NODE_PREFIX]);
        hasher.update(left);
        hasher.update(right);
        *hasher.finalize().as_bytes()
    }

    fn empty_root(&self) -> Digest {
        *blake3::hash(&[]).as_bytes()
    }
}

/// `SHA-256(0x01 || left || right)` over byte strings of any length. The trait takes
/// 32-byte digests only; this form exists so that the published RFC 6962 hasher vector,
/// whose children are 4-byte strings, can be checked against the very code the trait uses.
fn sha256_node(left: &[u8], right: &[u8]) -> Digest {
    sha2::Sha256::new()
        .chain_update([NODE_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of transparency-dev/merkle `rfc6962/rfc6962_test.go`
    /// (`TestRFC6962Hasher`), kept in `testdata/transparency-dev-merkle/rfc6962_hasher.json`.
    #[test]
    fn sha256_matches_the_published_rfc6962_hasher_vectors() {
        let text = include_str!("../testdata/transparency-dev-merkle/rfc6962_hasher.json");
        let vectors: serde_json::Value = serde_json::from_str(text).expect("vector file is json");
        let expected = |name: &str| -> Digest {
            let hex_text = vectors[name]["want"].as_str().expect("want is a string");
            hex::decode(hex_text)
                .expect("want is hex")
                .try_into()
                .expect("want is 32 bytes")
        };
        let input = |name: &str, field: &str| -> Vec<u8> {
            let hex_text = vectors[name][field].as_str().expect("input is a string");
            hex::decode(hex_text).expect("input is hex")
        };

        assert_eq!(Sha256.empty_root(), expected("empty_root"));
        assert_eq!(
            Sha256.hash_leaf(&input("empty_leaf", "leaf")),
            expected("empty_leaf")
        );
        assert_eq!(Sha256.hash_leaf(&input("leaf", "leaf")), expected("leaf"));
        assert_eq!(
            sha256_node(&input("node", "left"), &input("node", "right")),
            expected("node")
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        fn check<H: MerkleHasher>(hasher: &H) {
            let left = hasher.hash_leaf(b"Hello");
            let right = hasher.hash_leaf(b"World");
            assert_ne!(left, right);
            let node = hasher.hash_children(&left, &right);
            let mut concatenated = left.to_vec();
            concatenated.extend_from_slice(&right);
            assert_ne!(
                node,
                hasher.hash_leaf(&concatenated),
                "a node must not pass as a leaf"
            );
            assert_ne!(
                node,
                hasher.hash_children(&right, &left),
                "order must matter"
            );
            assert_ne!(hasher.empty_root(), hasher.hash_leaf(&[]));
        }
        check(&Sha256);
        check(&Blake3);
    }

    /// Blake3 must be the RFC 6962 construction with BLAKE3 in place of SHA-256: the same
    /// prefixes, fed through the blake3 crate's one-shot function.
    #[test]
    fn blake3_uses_the_rfc6962_prefixes() {
        let left = [7u8; 32];
        let right = [9u8; 32];
        let mut node_input = vec![NODE_PREFIX];
        node_input.extend_from_slice(&left);
        node_input.extend_from_slice(&right);
        assert_eq!(
            Blake3.hash_children(&left, &right),
            *blake3::hash(&node_input).as_bytes()
        );
        assert_eq!(
            Blake3.hash_leaf(b"abc"),
            *blake3::hash(b"\x00abc").as_bytes()
        );
        assert_eq!(Blake3.empty_root(), *blake3::hash(b"").as_bytes());
    }
}
