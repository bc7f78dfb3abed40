//! The published probe files of transparency-dev/merkle (`testdata/inclusion/**` and
//! `testdata/consistency/**`): a happy path per vector and its tampered variants
//! (`modified-proof`, wrong sizes and indices, truncated and extended proofs, wrong and
//! swapped roots), each with the expected outcome. Every file must give its expected
//! outcome here, except the few listed in `TYPED_API_DEVIATIONS`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{base64_decode, hex_digest, testdata_path};
use grantledger_merkle::{
    Digest, MemoryNodeStore, MerkleHasher, ProofError, ProofErrorKind, Sha256, consistency_proof,
    digest_from_slice, inclusion_proof, verify_consistency, verify_inclusion,
};
use serde::Deserialize;

/// Files whose expected outcome is `wantErr: false` but whose roots are not 32-byte hashes
/// (Go test placeholders such as `"don't care 1"`). transparency-dev compares such byte
/// strings as they are; this crate types roots as 32-byte digests, so they are refused
/// when decoded ([`ProofErrorKind::DigestLengthWrong`]) and never reach verification. The
/// rule they exercise (equal sizes, empty proof, equal roots: consistent) is checked with
/// real digests in `equal_sizes_with_equal_roots_and_an_empty_proof_are_consistent`.
const TYPED_API_DEVIATIONS: &[&str] = &[
    "consistency/additional/sizes-are-equal-and-proof-is-empty-where-both-sizes-are-one.json",
    "consistency/additional/sizes-are-equal-and-proof-is-empty-where-both-sizes-are-zero.json",
    "consistency/additional/sizes-are-equal-and-proof-is-not-empty-where-both-sizes-are-one.json",
    "consistency/additional/sizes-are-equal-and-proof-is-not-empty-where-both-sizes-are-zero.json",
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
    "consistency/additional/sizes-are-equal-zero-and-proof-is-empty.json",
];

const PROBE_ROOT: &str = "transparency-dev-merkle";

/// The Go test's `sha256SomeHash`, used by its generator for "random root" and "inserted
/// component".
const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
struct InclusionProbe {
    // Older files of the repository spell the field `leafIndex`.
    #[serde(rename = "leafIdx", alias = "leafIndex")]
    leaf_index: u64,
    #[serde(rename = "treeSize")]
    tree_size: u64,
    root: String,
    #[serde(rename = "leafHash")]
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
struct ConsistencyProbe {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

/// The probe files of one family (`inclusion` or `consistency`), keyed by their path in
/// the family's directory.
fn probe_files<T: serde::de::DeserializeOwned>(family: &str) -> BTreeMap<String, T> {
    let mut files = BTreeMap::new();
    let family_directory = testdata_path(PROBE_ROOT).join(family);
    collect_json(&family_directory, &mut |path| {
        let relative = path
            .strip_prefix(&family_directory)
            .expect("under testdata")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(path).expect("probe file is readable");
        let probe = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"));
        files.insert(relative, probe);
    });
    files
}

fn collect_json(directory: &Path, on_file: &mut impl FnMut(&Path)) {
    let mut entries: Vec<_> = std::fs::read_dir(directory)
        .unwrap_or_else(|e| panic!("{directory:?}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_json(&path, on_file);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            on_file(&path);
        }
    }
}

/// Decodes a base64 field into a digest; a wrong length is the crate's own error.
fn digest(field: &str) -> Result<Digest, ProofError> {
    digest_from_slice(&base64_decode(field))
}

fn digests(fields: &Option<Vec<String>>) -> Result<Vec<Digest>, ProofError> {
    fields.iter().flatten().map(|field| digest(field)).collect()
}

fn run_inclusion(probe: &InclusionProbe) -> Result<(), ProofError> {
    let root = digest(&probe.root)?;
    let leaf_hash = digest(&probe.leaf_hash)?;
    let proof = digests(&probe.proof)?;
    verify_inclusion(
        &Sha256,
        probe.leaf_index,
        probe.tree_size,
        &leaf_hash,
        &proof,
        &root,
    )
}

fn run_consistency(probe: &ConsistencyProbe) -> Result<(), ProofError> {
    let root1 = digest(&probe.root1)?;
    let root2 = digest(&probe.root2)?;
    let proof = digests(&probe.proof)?;
    verify_consistency(&Sha256, probe.size1, probe.size2, &proof, &root1, &root2)
}

#[test]
fn every_published_inclusion_probe_gives_its_expected_outcome() {
    let probes: BTreeMap<String, InclusionProbe> = probe_files("inclusion");
    assert_eq!(probes.len(), 98, "the copied probe set is complete");
    let mut failures = Vec::new();
    for (path, probe) in &probes {
        let outcome = run_inclusion(probe);
        if outcome.is_err() != probe.want_err {
            failures.push(format!("{path} ({}): {outcome:?}", probe.desc));
        }
    }
    assert!(
        failures.is_empty(),
        "probes with the wrong outcome:\n{}",
        failures.join("\n")
    );
    let happy = probes.values().filter(|probe| !probe.want_err).count();
    assert_eq!(happy, 6, "five happy paths and one single-entry tree");
}

#[test]
fn every_published_consistency_probe_gives_its_expected_outcome() {
    let probes: BTreeMap<String, ConsistencyProbe> = probe_files("consistency");
    assert_eq!(probes.len(), 102, "the copied probe set is complete");
    let mut failures = Vec::new();
    for (path, probe) in &probes {
        let outcome = run_consistency(probe);
        let relative = format!("consistency/{path}");
        if TYPED_API_DEVIATIONS.contains(&relative.as_str()) {
            assert!(
                !probe.want_err,
                "{path} is listed as a deviation but expects an error"
            );
            let kind = outcome.as_ref().map_err(ProofError::kind);
            assert_eq!(kind, Err(ProofErrorKind::DigestLengthWrong), "{path}");
            continue;
        }
        if outcome.is_err() != probe.want_err {
            failures.push(format!("{path} ({}): {outcome:?}", probe.desc));
        }
    }
    assert!(
        failures.is_empty(),
        "probes with the wrong outcome:\n{}",
        failures.join("\n")
    );
}

#[test]
fn equal_sizes_with_equal_roots_and_an_empty_proof_are_consistent() {
    for size in [0, 1, 7] {
        let root = Sha256.hash_leaf(&[size as u8]);
        verify_consistency(&Sha256, size, size, &[], &root, &root).unwrap();
    }
}

/// The happy paths are proofs over the RFC 6962 reference tree: this crate, generating from
/// its own node store over those eight leaves, produces exactly the published proofs.
#[test]
fn published_happy_paths_are_what_this_crate_generates() {
    let store = reference_tree_store();
    let inclusion: BTreeMap<String, InclusionProbe> = probe_files("inclusion");
    for (path, probe) in inclusion
        .iter()
        .filter(|(path, _)| path.ends_with("/happy-path.json"))
    {
        let generated = inclusion_proof(&Sha256, &store, probe.leaf_index, probe.tree_size)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(Ok(generated), digests(&probe.proof), "{path}");
    }
    let consistency: BTreeMap<String, ConsistencyProbe> = probe_files("consistency");
    for (path, probe) in consistency
        .iter()
        .filter(|(path, _)| path.ends_with("/happy-path.json"))
    {
        let generated = consistency_proof(&Sha256, &store, probe.size1, probe.size2)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(Ok(generated), digests(&probe.proof), "{path}");
    }
}

fn reference_tree_store() -> MemoryNodeStore {
    let inputs = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
    ];
    let mut leaf_hashes: Vec<Digest> = inputs
        .iter()
        .map(|input| Sha256.hash_leaf(&hex::decode(input).unwrap()))
        .collect();
    leaf_hashes.push(Sha256.hash_leaf(&hex::decode("606162636465666768696a6b6c6d6e6f").unwrap()));
    common::build_store(&Sha256, &leaf_hashes).0
}

/// The tampered files were copied by hand from the published repository. Each must be
/// exactly one of the variants that transparency-dev's generator (`cmd/proofgen`, and the
/// `corrupt*Proof` helpers of `proof/verify_test.go` before it) derives from its directory's
/// happy path; and every such variant must have been copied. This catches a mistyped
/// character in a copied hash, which would otherwise still fail verification, for the wrong
/// reason, and go unnoticed.
#[test]
fn tampered_inclusion_files_are_exactly_the_generator_variants_of_their_happy_path() {
    let probes: BTreeMap<String, InclusionProbe> = probe_files("inclusion");
    for directory in ["0", "1", "2", "3", "4"] {
        let happy = &probes[&format!("{directory}/happy-path.json")];
        let mut expected = inclusion_variants(happy);
        for (path, probe) in probes.iter().filter(|(path, _)| {
            path.starts_with(&format!("{directory}/")) && !path.ends_with("/happy-path.json")
        }) {
            let key = inclusion_key(probe);
            let position = expected
                .iter()
                .position(|variant| inclusion_key(variant) == key);
            let position = position.unwrap_or_else(|| panic!("{path} is no generator variant"));
            expected.remove(position);
        }
        let missing: Vec<&str> = expected
            .iter()
            .map(|variant| variant.desc.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "directory {directory} lacks variants {missing:?}"
        );
    }
}

#[test]
fn tampered_consistency_files_are_exactly_the_generator_variants_of_their_happy_path() {
    let probes: BTreeMap<String, ConsistencyProbe> = probe_files("consistency");
    for directory in ["0", "1", "2", "3", "4"] {
        let happy = &probes[&format!("{directory}/happy-path.json")];
        let mut expected = consistency_variants(happy);
        for (path, probe) in probes.iter().filter(|(path, _)| {
            path.starts_with(&format!("{directory}/")) && !path.ends_with("/happy-path.json")
        }) {
            let key = consistency_key(probe);
            let position = expected
                .iter()
                .position(|variant| consistency_key(variant) == key);
            let position = position.unwrap_or_else(|| panic!("{path} is no generator variant"));
            expected.remove(position);
        }
        let missing: Vec<&str> = expected
            .iter()
            .map(|variant| variant.desc.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "directory {directory} lacks variants {missing:?}"
        );
    }
}

/// A probe's content without its description, decoded, with a missing proof read as empty
/// (Go writes a nil slice as `null` and an empty one as `[]`): the two sizes (or index and
/// size), the two hashes, the proof, and the expected outcome.
type ProbeKey = (u64, u64, Vec<u8>, Vec<u8>, Vec<Vec<u8>>, bool);

fn inclusion_key(probe: &InclusionProbe) -> ProbeKey {
    (
        probe.leaf_index,
        probe.tree_size,
        base64_decode(&probe.root),
        base64_decode(&probe.leaf_hash),
        probe
            .proof
            .iter()
            .flatten()
            .map(|hash| base64_decode(hash))
            .collect(),
        probe.want_err,
    )
}

fn consistency_key(probe: &ConsistencyProbe) -> ProbeKey {
    (
        probe.size1,
        probe.size2,
        base64_decode(&probe.root1),
        base64_decode(&probe.root2),
        probe
            .proof
            .iter()
            .flatten()
            .map(|hash| base64_decode(hash))
            .collect(),
        probe.want_err,
    )
}

fn encode(bytes: &[u8]) -> String {
    // Only for building expected variants: re-encode so they compare through the same
    // decoding as the copied files.
    const SYMBOLS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .fold(0u32, |group, &byte| (group << 8) | u32::from(byte))
            << (8 * (3 - chunk.len()));
        for position in 0..=chunk.len() {
            out.push(char::from(
                SYMBOLS[(group >> (18 - 6 * position)) as usize & 63],
            ));
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

fn inclusion_variants(happy: &InclusionProbe) -> Vec<InclusionProbe> {
    let some_hash = encode(&hex_digest(SOME_HASH));
    let empty_root = encode(&Sha256.empty_root());
    let proof: Vec<String> = happy.proof.clone().unwrap_or_default();
    let variant =
        |desc: &str, index: u64, size: u64, root: &str, leaf: &str, proof: Option<Vec<String>>| {
            InclusionProbe {
                leaf_index: index,
                tree_size: size,
                root: root.to_string(),
                leaf_hash: leaf.to_string(),
                proof,
                desc: desc.to_string(),
                want_err: true,
            }
        };
    let (index, size, root, leaf) = (
        happy.leaf_index,
        happy.tree_size,
        &happy.root,
        &happy.leaf_hash,
    );
    let same = happy.proof.clone();
    let with = |front: &[&str], back: &[&str]| {
        let mut hashes: Vec<String> = front.iter().map(|hash| hash.to_string()).collect();
        hashes.extend(proof.iter().cloned());
        hashes.extend(back.iter().map(|hash| hash.to_string()));
        Some(hashes)
    };
    let mut variants = vec![
        variant(
            "leafIdx sub 1",
            index.wrapping_sub(1),
            size,
            root,
            leaf,
            same.clone(),
        ),
        variant("leafIdx plus 1", index + 1, size, root, leaf, same.clone()),
        variant("leafIdx XOR 2", index ^ 2, size, root, leaf, same.clone()),
        variant("treeSize mul 2", index, size * 2, root, leaf, same.clone()),
        variant("treeSize div 2", index, size / 2, root, leaf, same.clone()),
        variant(
            "wrong leaf",
            index,
            size,
            root,
            &encode(b"WrongLeaf"),
            same.clone(),
        ),
        variant("empty root", index, size, &empty_root, leaf, same.clone()),
        variant("random root", index, size, &some_hash, leaf, same.clone()),
        variant(
            "trailing garbage",
            index,
            size,
            root,
            leaf,
            with(&[], &[""]),
        ),
        variant("trailing root", index, size, root, leaf, with(&[], &[root])),
        variant(
            "preceding garbage",
            index,
            size,
            root,
            leaf,
            with(&[""], &[]),
        ),
        variant(
            "preceding root",
            index,
            size,
            root,
            leaf,
            with(&[root], &[]),
        ),
    ];
    for position in 0..proof.len() {
        let mut bytes = base64_decode(&proof[position]);
        bytes[0] ^= 8;
        let mut modified = proof.clone();
        modified[position] = encode(&bytes);
        variants.push(variant(
            "modified proof bit 3",
            index,
            size,
            root,
            leaf,
            Some(modified),
        ));
    }
    if !proof.is_empty() {
        let removed = proof[..proof.len() - 1].to_vec();
        variants.push(variant(
            "removed component",
            index,
            size,
            root,
            leaf,
            Some(removed),
        ));
    }
    if proof.len() > 1 {
        let mut inserted = vec![proof[0].clone(), some_hash.clone()];
        inserted.extend(proof[1..].iter().cloned());
        variants.push(variant(
            "inserted component",
            index,
            size,
            root,
            leaf,
            Some(inserted),
        ));
    }
    variants
}

fn consistency_variants(happy: &ConsistencyProbe) -> Vec<ConsistencyProbe> {
    // The generator makes no variants of a happy path with an empty proof.
    let Some(proof) = happy.proof.clone().filter(|proof| !proof.is_empty()) else {
        return Vec::new();
    };
    let wrong_root = encode(b"WrongRoot");
    let variant =
        |desc: &str, size1: u64, size2: u64, root1: &str, root2: &str, proof: Vec<String>| {
            ConsistencyProbe {
                size1,
                size2,
                root1: root1.to_string(),
                root2: root2.to_string(),
                proof: Some(proof),
                desc: desc.to_string(),
                want_err: true,
            }
        };
    let (size1, size2, root1, root2) = (happy.size1, happy.size2, &happy.root1, &happy.root2);
    let with = |front: &[&str], back: &[&str]| {
        let mut hashes: Vec<String> = front.iter().map(|hash| hash.to_string()).collect();
        hashes.extend(proof.iter().cloned());
        hashes.extend(back.iter().map(|hash| hash.to_string()));
        hashes
    };
    let mut variants = vec![
        variant("size1 sub 1", size1 - 1, size2, root1, root2, proof.clone()),
        variant(
            "size1 plus 1",
            size1 + 1,
            size2,
            root1,
            root2,
            proof.clone(),
        ),
        variant("size1 XOR 2", size1 ^ 2, size2, root1, root2, proof.clone()),
        variant("size2 mul 2", size1, size2 * 2, root1, root2, proof.clone()),
        variant("size2 div 2", size1, size2 / 2, root1, root2, proof.clone()),
        variant(
            "wrong root1",
            size1,
            size2,
            &wrong_root,
            root2,
            proof.clone(),
        ),
        variant(
            "wrong root2",
            size1,
            size2,
            root1,
            &wrong_root,
            proof.clone(),
        ),
        variant("swapped roots", size1, size2, root2, root1, proof.clone()),
        variant("empty proof", size1, size2, root1, root2, Vec::new()),
        variant(
            "trailing garbage",
            size1,
            size2,
            root1,
            root2,
            with(&[], &[""]),
        ),
        variant(
            "trailing root1",
            size1,
            size2,
            root1,
            root2,
            with(&[], &[root1]),
        ),
        variant(
            "trailing root2",
            size1,
            size2,
            root1,
            root2,
            with(&[], &[root2]),
        ),
        variant(
            "preceding garbage",
            size1,
            size2,
            root1,
            root2,
            with(&[""], &[]),
        ),
        variant(
            "preceding root1",
            size1,
            size2,
            root1,
            root2,
            with(&[root1], &[]),
        ),
        variant(
            "preceding root2",
            size1,
            size2,
            root1,
            root2,
            with(&[root2], &[]),
        ),
        variant(
            "preceding proof 0",
            size1,
            size2,
            root1,
            root2,
            with(&[&proof[0]], &[]),
        ),
        variant(
            "truncated proof",
            size1,
            size2,
            root1,
            root2,
            proof[..proof.len() - 1].to_vec(),
        ),
    ];
    for position in 0..proof.len() {
        let mut bytes = base64_decode(&proof[position]);
        bytes[0] ^= 16;
        let mut modified = proof.clone();
        modified[position] = encode(&bytes);
        variants.push(variant(
            "modified proof bit 4",
            size1,
            size2,
            root1,
            root2,
            modified,
        ));
    }
    variants
}

#[test]
fn base64_helpers_agree_with_the_go_encodings_in_the_files() {
    assert_eq!(base64_decode(""), b"");
    assert_eq!(base64_decode("V3JvbmdMZWFm"), b"WrongLeaf");
    assert_eq!(base64_decode("ZG9uJ3QgY2FyZSAx"), b"don't care 1");
    assert_eq!(encode(b"WrongRoot"), "V3JvbmdSb290");
    assert_eq!(
        encode(&Sha256.empty_root()),
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
    assert_eq!(
        encode(&hex_digest(SOME_HASH)),
        "q6yroAAAAAAAAAAAAAAAAAAAAAAAAAAAAGAGHgASNFY="
    );
}
