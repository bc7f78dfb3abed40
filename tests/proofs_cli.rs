//! `grantledger keys` and `grantledger verify-bundle`, as real processes, on a
//! bundle made from a real simulated log.

use std::path::Path;
use std::process::{Command, Output};

use grantledger_log::Log;
use grantledger_merkle::{Blake3, CompactRange, MemoryNodeStore, inclusion_proof};
use grantledger_proof::{BundleBuilder, Checkpoint, SignerKey, Subject, record};

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger")).args(args).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn keys_generate_writes_a_pair_refuses_to_overwrite_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("ledger.key");
    let public = dir.path().join("ledger.pub");
    let p = |path: &Path| path.to_str().unwrap().to_owned();
    let out = grantledger(&["keys", "generate", "--name", "ledger.example.com/acme", "--private", &p(&private), "--public", &p(&public)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public_text = std::fs::read_to_string(&public).unwrap();
    assert!(public_text.starts_with("ledger.example.com/acme+"), "{public_text}");
    assert_eq!(text(&out.stdout).trim(), public_text.trim());
    assert!(std::fs::read_to_string(&private).unwrap().starts_with("PRIVATE+KEY+ledger.example.com/acme+"));

    let out = grantledger(&["keys", "public", "--private", &p(&private)]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), public_text.trim(), "the public key derives from the private one");

    // A second key (rotation) gets another key ID; an existing file is never overwritten.
    let out = grantledger(&["keys", "generate", "--name", "ledger.example.com/acme", "--private", &p(&private), "--public", &p(&dir.path().join("new.pub"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ledger.key"), "names the file: {}", text(&out.stderr));
    let out = grantledger(&["keys", "generate", "--name", "bad name with spaces", "--private", &p(&dir.path().join("x.key")), "--public", &p(&dir.path().join("x.pub"))]);
    assert_eq!(out.status.code(), Some(2), "a key name with spaces is refused");
    assert!(text(&out.stderr).contains("bad name with spaces"), "{}", text(&out.stderr));
}

/// A bundle for one request's records, built like the ledger will: records
/// from the log, an in-memory tree over every record hash, a signed
/// checkpoint, the `show` JSON as the events for people.
fn bundle_for_request(data: &Path, key: &SignerKey) -> String {
    let log = Log::open_read_only(data).unwrap();
    let mut store = MemoryNodeStore::new();
    let mut tree = CompactRange::new();
    let mut records = Vec::new();
    for item in log.iter_from(1) {
        let item = item.unwrap();
        let mut stored = item.header.encode().to_vec();
        stored.extend_from_slice(&item.body);
        tree.append(&Blake3, record::leaf_hash(&item.header.hash), |id, node| store.insert(id, *node));
        records.push(stored);
    }
    let size = records.len() as u64;
    let checkpoint = Checkpoint {
        origin: key.name().to_owned(),
        tree_size: size,
        root_hash: tree.root(&Blake3),
        time_ms: log.head().time_ms,
    };
    let mut builder =
        BundleBuilder::new(checkpoint.sign(key).unwrap(), Subject::Grant { grant_id: "grant:r-000002".into() });
    // Records 2..=4 are the first request's submission, decision and issuance
    // (a grant or a denial, whichever the workload drew).
    for sequence in 2..=4u64 {
        let shown = grantledger(&["show", "--data", data.to_str().unwrap(), "--from", &sequence.to_string(), "--limit", "1"]);
        let event: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        let proof = inclusion_proof(&Blake3, &store, sequence - 1, size).unwrap();
        builder.push_event(&records[sequence as usize - 1], &proof, event).unwrap();
    }
    builder.build().unwrap().to_json()
}

#[test]
fn verify_bundle_accepts_a_true_bundle_and_names_what_is_wrong_with_a_false_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let out = grantledger(&["simulate", "--data", data.to_str().unwrap(), "--requests", "30"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = SignerKey::from_seed("ledger.example.com/acme", [42; 32]).unwrap();
    let public = dir.path().join("ledger.pub");
    key.verifier_key().write_new_file(&public).unwrap();
    let other = dir.path().join("other.pub");
    SignerKey::from_seed("ledger.example.com/acme", [43; 32]).unwrap().verifier_key().write_new_file(&other).unwrap();

    let bundle = dir.path().join("bundle.json");
    std::fs::write(&bundle, bundle_for_request(&data, &key)).unwrap();
    let run = |file: &Path, key: &Path| {
        grantledger(&["verify-bundle", file.to_str().unwrap(), "--public-key", key.to_str().unwrap(), "--json"])
    };
    let out = run(&bundle, &public);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["events"].as_array().unwrap().len(), 3);

    // Another key did not sign it.
    let out = run(&bundle, &other);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    // The event shown for people must say what the record says.
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    value["events"][1]["event"]["envelope"]["producer"] = "someone else".into();
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let out = run(&forged, &public);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["error"].as_str().unwrap().starts_with("event 3: the `event` shown differs"), "{report}");

    // A changed record byte breaks its hash.
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let record = value["events"][0]["record"].as_str().unwrap().to_owned();
    let flipped = if record.ends_with('0') { "1" } else { "0" };
    value["events"][0]["record"] = format!("{}{flipped}", &record[..record.len() - 1]).into();
    std::fs::write(&forged, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let out = run(&forged, &public);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    // Unreadable input is exit 2, naming the file.
    let out = run(&dir.path().join("missing.json"), &public);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.json"));
}
