//! `grantledger replay --projector`, `replay --json` and `why`, as real
//! processes on a simulated log.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger")).args(args).output().expect("the binary runs")
}

fn ok_json(args: &[&str]) -> Value {
    let out = grantledger(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn simulate(data: &Path) {
    let out = grantledger(&["simulate", "--data", data.to_str().unwrap(), "--requests", "400", "--seed", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn replay_prints_one_digest_per_projection_and_they_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    simulate(&data);
    let data = data.to_str().unwrap();
    let all = ok_json(&["replay", "--data", data, "--json"]);
    let head = all["sequence"].as_u64().unwrap();
    for name in ["current-grants", "expiry-timers", "audit-evidence"] {
        let digest = &all["digests"][name];
        assert_eq!(digest["sequence"], head, "{name} replayed to the head");
        // Rebuilt again, into a store of our own: the same digest, bit for bit.
        let store = dir.path().join(name);
        let one = ok_json(&["replay", "--data", data, "--projector", name, "--store", store.to_str().unwrap(), "--json"]);
        assert_eq!(&one, digest, "{name}");
        // The store is kept, and a second rebuild into it is refused.
        let again = grantledger(&["replay", "--data", data, "--projector", name, "--store", store.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(2), "a non-empty store is refused");
    }
    let unknown = grantledger(&["replay", "--data", data, "--projector", "no-such"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no-such"));
}

#[test]
fn why_says_who_had_access_when_with_the_evidence_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    simulate(&data);
    let data = data.to_str().unwrap();
    let shown = grantledger(&["show", "--data", data, "--limit", "100000"]);
    let records: Vec<Value> =
        String::from_utf8(shown.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // When each grant ended: its first revocation, else its expiry.
    let mut ended: BTreeMap<String, i64> = BTreeMap::new();
    for record in &records {
        if let Some(revoked) = record["envelope"]["event"].get("grant_revoked") {
            let grant = revoked["grant_id"].as_str().unwrap().to_owned();
            ended.entry(grant).or_insert(record["time"].as_i64().unwrap());
        }
    }
    let (issue_sequence, issued) = records
        .iter()
        .find_map(|record| {
            let issued = record["envelope"]["event"].get("grant_issued")?;
            let grant = issued["grant_id"].as_str()?;
            let end = ended.get(grant).copied().unwrap_or(i64::MAX).min(issued["expires_at"].as_i64()?);
            (end > issued["issued_at"].as_i64()? + 1000).then(|| (record["sequence"].as_u64().unwrap(), issued.clone()))
        })
        .expect("a grant that lasted more than a second");
    let principal = issued["principal"]["id"].as_str().unwrap();
    let resource = issued["resource"].as_str().unwrap();
    let rfc3339 = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();

    let during = rfc3339(issued["issued_at"].as_i64().unwrap() + 500);
    let answer = ok_json(&["why", "--data", data, "--principal", principal, "--resource", resource, "--at", &during, "--json"]);
    assert_eq!(answer["had_access"], true, "{answer}");
    assert!(answer.to_string().contains(&format!("\"sequence\":{issue_sequence}")), "the issuance is cited: {answer}");

    let at_expiry = rfc3339(issued["expires_at"].as_i64().unwrap());
    let answer = ok_json(&["why", "--data", data, "--principal", principal, "--resource", resource, "--at", &at_expiry, "--json"]);
    assert_eq!(answer["had_access"], false, "no access at expires_at exactly: {answer}");

    let out = grantledger(&["why", "--data", data, "--principal", principal, "--resource", resource, "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("yesterday"));
}
