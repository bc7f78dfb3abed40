//! `simulate --policies` and `replay --recheck` with real processes: a log
//! whose requests the policy engine decided, every decision re-evaluated
//! from the log alone; and decisions altered with the whole chain (and
//! Merkle tree) recomputed to hide it, which `verify` and `replay` cannot
//! see and `replay --recheck` names by sequence number.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use grantledger_events::{DecisionBasis, Event, decode_body, encode_body};
use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord};
use serde_json::Value;

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger")).args(args).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/grantledger-policy/policies")
}

fn simulate_with_policy(data: &Path, requests: &str) -> Value {
    let dir = policies();
    let out = grantledger(&[
        "simulate",
        "--data",
        s(data),
        "--requests",
        requests,
        "--catalog",
        s(&dir.join("catalog.toml")),
        "--policies",
        s(&dir.join("policies.cedar")),
        "--exceptions",
        s(&dir.join("exceptions.toml")),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copies the log at `source` into a new log at `target` through the log's
/// own append (hashes, chain and tree recomputed), replacing the
/// determining policies of the decisions at `rewrite` with a policy id that
/// does not exist: a history rewritten by someone with the code.
fn copy_with_altered_decisions(source: &Path, target: &Path, rewrite: &[u64]) {
    let from = Log::open_read_only(source).unwrap();
    let mut to = Log::create(target, LogOptions::default()).unwrap();
    let mut records = Vec::new();
    for record in from.iter_from(1) {
        let record = record.unwrap();
        let mut body = record.body.clone();
        if rewrite.contains(&record.header.sequence) {
            let mut envelope = decode_body(record.header.version, &body).unwrap();
            let Event::DecisionRecorded(decision) = &mut envelope.event else { panic!("not a decision") };
            let DecisionBasis::Policy(basis) = &mut decision.basis else { panic!("not a policy decision") };
            basis.determining_policies = vec!["forged-permit".into()];
            body = encode_body(&envelope);
        }
        records.push((record.header.version, record.header.time_ms, record.header.kind, body));
    }
    for chunk in records.chunks(256) {
        let batch: Vec<NewRecord<'_>> = chunk
            .iter()
            .map(|(_, time_ms, kind, body)| NewRecord { time_ms: *time_ms, kind: *kind, body, index: IndexKeys::default() })
            .collect();
        to.append_batch_versioned(chunk[0].0, &batch).unwrap();
    }
}

/// The sequence numbers of the policy engine's decisions, in log order.
fn policy_decisions(data: &Path) -> Vec<u64> {
    let log = Log::open_read_only(data).unwrap();
    log.iter_from(1)
        .map(Result::unwrap)
        .filter(|record| {
            let envelope = decode_body(record.header.version, &record.body).unwrap();
            matches!(&envelope.event, Event::DecisionRecorded(d) if matches!(d.basis, DecisionBasis::Policy(_)))
        })
        .map(|record| record.header.sequence)
        .collect()
}

#[test]
fn recheck_passes_on_a_simulated_log_decided_by_the_policy_engine() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let summary = simulate_with_policy(&data, "400");
    assert_eq!(summary["events"]["policy_published"], 1, "{summary}");

    // The policy set is record 2, right after the catalog.
    let out = grantledger(&["show", "--data", s(&data), "--from", "2", "--limit", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let published = &shown["envelope"]["event"]["policy_published"];
    assert_eq!(published["policy_text"], std::fs::read_to_string(policies().join("policies.cedar")).unwrap());
    let hash = published["policy_hash"].as_str().unwrap().to_string();

    let decisions = policy_decisions(&data);
    // Every decision was the engine's (the workload re-sends some request
    // ids, which are refused as already decided).
    assert_eq!(decisions.len() as u64, summary["events"]["decision_recorded"].as_u64().unwrap(), "{summary}");
    assert!(decisions.len() > 350, "{summary}");
    let out = grantledger(&["show", "--data", s(&data), "--from", &decisions[0].to_string(), "--limit", "1"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let basis = &shown["envelope"]["event"]["decision_recorded"]["basis"]["policy"];
    assert_eq!(basis["policy_hash"], hash.as_str(), "{shown}");
    assert_eq!(basis["cedar_version"], "4.14.1");

    // Every outcome occurs, so the recheck has something to reproduce.
    let log = Log::open_read_only(&data).unwrap();
    let mut outcomes = std::collections::BTreeSet::new();
    for record in log.iter_from(1) {
        let record = record.unwrap();
        if let Event::DecisionRecorded(d) = decode_body(record.header.version, &record.body).unwrap().event {
            outcomes.insert(format!("{:?}", d.outcome).split([' ', '{']).next().unwrap().to_string());
        }
    }
    drop(log);
    assert_eq!(outcomes.len(), 3, "allow, needs approval and deny: {outcomes:?}");

    let out = grantledger(&["verify", "--data", s(&data)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = grantledger(&["replay", "--data", s(&data), "--recheck", "--json"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["decisions_by_policy"], decisions.len() as u64, "{report}");
    assert_eq!(report["differences"].as_array().unwrap().len(), 0);

    // A log from before any policy set rechecks too: its decisions are the catalog's.
    let plain = dir.path().join("plain");
    let out = grantledger(&["simulate", "--data", s(&plain), "--requests", "100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = grantledger(&["replay", "--data", s(&plain), "--recheck"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("0 decisions by the policy engine"), "{}", text(&out.stdout));
}

#[test]
fn recheck_fails_naming_every_altered_decision_even_with_the_chain_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    simulate_with_policy(&data, "200");
    let decisions = policy_decisions(&data);
    let altered = [decisions[3], decisions[decisions.len() / 2]];
    let forged = dir.path().join("forged");
    copy_with_altered_decisions(&data, &forged, &altered);

    // The chain is whole and every event follows the ledger's rules...
    let out = grantledger(&["verify", "--data", s(&forged)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = grantledger(&["replay", "--data", s(&forged)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ...but the decisions do not come out of the policy in force.
    let out = grantledger(&["replay", "--data", s(&forged), "--recheck"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    for sequence in altered {
        assert!(stderr.contains(&format!("decision at sequence `{sequence}`")), "{stderr}");
    }
    assert!(stderr.contains("forged-permit"), "{stderr}");
    assert!(stderr.contains(&format!("2 decisions differ, at sequences {}, {}", altered[0], altered[1])), "{stderr}");

    let out = grantledger(&["replay", "--data", s(&forged), "--recheck", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sequences: Vec<u64> =
        report["differences"].as_array().unwrap().iter().map(|d| d["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, altered.to_vec(), "{report}");
}

#[test]
fn simulate_refuses_a_policy_that_does_not_validate_naming_cedars_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let bad = dir.path().join("bad.cedar");
    std::fs::write(&bad, "@id(\"p\")\npermit (principal, action == Action::\"request\", resource) when { context.badge_color == \"red\" };\n").unwrap();
    let out = grantledger(&[
        "simulate",
        "--data",
        s(&data),
        "--requests",
        "10",
        "--catalog",
        s(&policies().join("catalog.toml")),
        "--policies",
        s(&bad),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("badge_color"), "{stderr}");
    assert!(!data.exists(), "nothing was written");
}

#[test]
fn policy_publish_puts_a_policy_set_in_force_and_refuses_one_that_does_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let catalog = policies().join("catalog.toml");
    let out = grantledger(&["simulate", "--data", s(&data), "--requests", "50", "--catalog", s(&catalog), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = Log::open_read_only(&data).unwrap().head().sequence;

    let bad = dir.path().join("bad.cedar");
    std::fs::write(&bad, "@id(\"p\")\npermit (principal, action == Action::\"request\", resource) when { context.badge_color == \"red\" };\n").unwrap();
    let out = grantledger(&["policy", "publish", "--data", s(&data), "--policies", s(&bad)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("policy_invalid") && text(&out.stderr).contains("badge_color"), "{}", text(&out.stderr));
    assert_eq!(Log::open_read_only(&data).unwrap().head().sequence, records, "nothing half-published");

    let out = grantledger(&[
        "policy",
        "publish",
        "--data",
        s(&data),
        "--policies",
        s(&policies().join("policies.cedar")),
        "--exceptions",
        s(&policies().join("exceptions.toml")),
        "--by",
        "priya",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("at sequence {}", records + 1)), "{}", text(&out.stdout));
    let out = grantledger(&["show", "--data", s(&data), "--from", &(records + 1).to_string()]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["envelope"]["event"]["policy_published"]["published_by"], "priya", "{shown}");
    // The same set again is refused: it is already in force.
    let out = grantledger(&["policy", "publish", "--data", s(&data), "--policies", s(&policies().join("policies.cedar")), "--exceptions", s(&policies().join("exceptions.toml"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("policy_already_in_force"), "{}", text(&out.stderr));

    let out = grantledger(&["replay", "--data", s(&data), "--recheck"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
}
