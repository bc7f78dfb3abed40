//! Signed checkpoints and evidence, as an auditor uses them, with real
//! processes: `keys generate`, `checkpoint`, `verify --checkpoint`,
//! `evidence`, `verify-bundle`; and the attacks a checkpoint exists for:
//! records cut off the end, and a middle record rewritten with the whole
//! chain (and Merkle tree) recomputed after it.

use std::path::Path;
use std::process::{Command, Output};

use grantledger_events::{decode_body, encode_body};
use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord};

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger")).args(args).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Copies `source`'s first `keep` records into a new log at `target`,
/// through the log's own append (so hashes, the chain and the tree are
/// recomputed), replacing the body of record `rewrite` (if any) with the
/// same event under another producer: a history an attacker with write
/// access and the code could make.
fn copy_log(source: &Path, target: &Path, keep: u64, rewrite: Option<u64>) {
    let from = Log::open_read_only(source).unwrap();
    let mut to = Log::create(target, LogOptions::default()).unwrap();
    let mut records = Vec::new();
    for record in from.iter_from(1).take(keep as usize) {
        let record = record.unwrap();
        let mut body = record.body.clone();
        if Some(record.header.sequence) == rewrite {
            let mut envelope = decode_body(record.header.version, &body).unwrap();
            envelope.producer = "someone-else".into();
            body = encode_body(&envelope);
        }
        records.push((record.header.version, record.header.time_ms, record.header.kind, body));
    }
    for chunk in records.chunks(256) {
        let batch: Vec<NewRecord<'_>> = chunk
            .iter()
            .map(|(_, time_ms, kind, body)| NewRecord { time_ms: *time_ms, kind: *kind, body, index: IndexKeys::default() })
            .collect();
        // The copy keeps each record's codec version (every record of a
        // simulated log has the same one).
        to.append_batch_versioned(chunk[0].0, &batch).unwrap();
    }
}

#[test]
fn an_auditor_checks_a_log_against_a_checkpoint_and_a_bundle_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let (key, public) = (dir.path().join("ledger.key"), dir.path().join("ledger.pub"));
    let out = grantledger(&["simulate", "--data", s(&data), "--requests", "150"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = grantledger(&["keys", "generate", "--name", "ledger.example.com/acme", "--private", s(&key), "--public", s(&public)]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let checkpoint = dir.path().join("checkpoint.txt");
    let out = grantledger(&["checkpoint", "--data", s(&data), "--key", s(&key), "--out", s(&checkpoint)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), std::fs::read_to_string(&checkpoint).unwrap());
    let size: u64 = text(&out.stdout).lines().nth(1).unwrap().parse().unwrap();
    let again = grantledger(&["checkpoint", "--data", s(&data), "--key", s(&key), "--out", s(&checkpoint)]);
    assert_eq!(again.status.code(), Some(2), "an auditor's checkpoint file is never overwritten");

    let out = grantledger(&["verify", "--data", s(&data), "--checkpoint", s(&checkpoint), "--public-key", s(&public), "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["checkpoint"].as_str().unwrap().contains("append-only extension"), "{report}");

    // A grant's evidence, proved against the stored checkpoint, checked offline.
    let bundle = dir.path().join("bundle.json");
    let out = grantledger(&["evidence", "--data", s(&data), "--grant", "grant:req-00000001"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(&bundle, &out.stdout).unwrap();
    let out = grantledger(&["verify-bundle", s(&bundle), "--public-key", s(&public), "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tree_size"], size);
    let kinds: Vec<String> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["envelope"]["event"].as_object().unwrap().keys().next().unwrap().clone())
        .collect();
    assert_eq!(kinds[..2], ["request_submitted", "decision_recorded"], "the chain starts with the request: {kinds:?}");
    let unknown = grantledger(&["evidence", "--data", s(&data), "--grant", "grant:no-such-request"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("grant:no-such-request"));

    // Records cut off the end: the checkpoint names the truncation.
    for cut in [1u64, 17, 100] {
        let truncated = dir.path().join(format!("truncated-{cut}"));
        copy_log(&data, &truncated, size - cut, None);
        let out = grantledger(&["verify", "--data", s(&truncated)]);
        assert!(out.status.success(), "the shorter chain is intact by itself");
        let out = grantledger(&["verify", "--data", s(&truncated), "--checkpoint", s(&checkpoint), "--public-key", s(&public)]);
        assert_eq!(out.status.code(), Some(1), "cut {cut}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("truncated"), "cut {cut}: {}", text(&out.stderr));
    }

    // A middle record rewritten, every later hash and the tree recomputed:
    // the chain verifies, the checkpoint does not.
    let rewritten = dir.path().join("rewritten");
    copy_log(&data, &rewritten, size, Some(size / 2));
    let out = grantledger(&["verify", "--data", s(&rewritten)]);
    assert!(out.status.success(), "a recomputed chain passes a chain check: {}", text(&out.stderr));
    let out = grantledger(&["verify", "--data", s(&rewritten), "--checkpoint", s(&checkpoint), "--public-key", s(&public)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rewritten"), "{}", text(&out.stderr));

    // An identical copy passes: the check is about content, not the directory.
    let copy = dir.path().join("copy");
    copy_log(&data, &copy, size, None);
    let out = grantledger(&["verify", "--data", s(&copy), "--checkpoint", s(&checkpoint), "--public-key", s(&public)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn why_bundle_proves_the_grants_behind_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let (key, public) = (dir.path().join("ledger.key"), dir.path().join("ledger.pub"));
    assert!(grantledger(&["simulate", "--data", s(&data), "--requests", "150", "--seed", "3"]).status.success());
    assert!(grantledger(&["keys", "generate", "--name", "ledger.example.com/acme", "--private", s(&key), "--public", s(&public)]).status.success());
    assert!(grantledger(&["checkpoint", "--data", s(&data), "--key", s(&key)]).status.success());

    // A grant that lasted: ask during it.
    let shown = grantledger(&["show", "--data", s(&data), "--limit", "100000"]);
    let records: Vec<serde_json::Value> = text(&shown.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ended = |grant: &str| {
        records
            .iter()
            .filter_map(|r| r["envelope"]["event"].get("grant_revoked").filter(|g| g["grant_id"] == grant).map(|_| r["time"].as_i64().unwrap()))
            .min()
            .unwrap_or(i64::MAX)
    };
    let issued = records
        .iter()
        .filter_map(|r| r["envelope"]["event"].get("grant_issued"))
        .find(|g| ended(g["grant_id"].as_str().unwrap()).min(g["expires_at"].as_i64().unwrap()) > g["issued_at"].as_i64().unwrap() + 1000)
        .expect("a grant that lasted more than a second")
        .clone();
    let at = chrono::DateTime::from_timestamp_millis(issued["issued_at"].as_i64().unwrap() + 500).unwrap().to_rfc3339();
    let principal = issued["principal"]["id"].as_str().unwrap();
    let resource = issued["resource"].as_str().unwrap();
    let out = grantledger(&["why", "--data", s(&data), "--principal", principal, "--resource", resource, "--at", &at, "--bundle"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundle = dir.path().join("why.json");
    std::fs::write(&bundle, &out.stdout).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(value["subject"].to_string().contains(principal), "{}", value["subject"]);
    let grant_id = issued["grant_id"].as_str().unwrap();
    assert!(
        value["events"].as_array().unwrap().iter().any(|e| e["event"]["envelope"]["event"]["grant_issued"]["grant_id"] == grant_id),
        "the issuance of {grant_id} is in the bundle"
    );
    let out = grantledger(&["verify-bundle", s(&bundle), "--public-key", s(&public)]);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // No access, nothing to bundle: a clear error.
    let out = grantledger(&["why", "--data", s(&data), "--principal", "nobody", "--resource", resource, "--at", &at, "--bundle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no grant to bundle"), "{}", text(&out.stderr));
}
