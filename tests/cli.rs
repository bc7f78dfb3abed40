//! End-to-end tests of the `grantledger` binary: real processes, a real
//! RocksDB log in a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok_json(args: &[&str]) -> Value {
    let output = grantledger(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn simulate(dir: &Path, requests: &str, seed: &str) -> Value {
    ok_json(&[
        "simulate", "--data", dir.to_str().unwrap(), "--requests", requests, "--seed", seed, "--json",
    ])
}

#[test]
fn simulate_then_verify_replay_and_show_agree() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("log");
    let summary = simulate(&data, "400", "7");
    let records = summary["records"].as_u64().unwrap();
    assert!(records > 400 * 2, "every request makes at least two records: {summary}");
    assert_eq!(summary["requests"], 400);
    // The workload exercises the whole lifecycle.
    for kind in ["grant_issued", "decision_recorded", "approval_recorded", "grant_revoked", "revocation_confirmed"] {
        assert!(summary["events"][kind].as_u64().unwrap_or(0) > 0, "no `{kind}` in {summary}");
    }

    let data_arg = data.to_str().unwrap();
    let verified = ok_json(&["verify", "--data", data_arg, "--json"]);
    assert_eq!(verified["records"], records);
    assert_eq!(verified["head"], summary["head"]);

    let replayed = ok_json(&["replay", "--data", data_arg, "--json"]);
    assert_eq!(replayed["records"], records);
    assert_eq!(replayed["digests"]["grant_state"], summary["state_digest"]);

    let partial = ok_json(&["replay", "--data", data_arg, "--to", "10", "--json"]);
    assert_eq!(partial["sequence"], 10);
    assert_ne!(partial["digests"]["grant_state"], summary["state_digest"]);

    let output = grantledger(&["show", "--data", data_arg, "--from", "1", "--limit", "5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["sequence"], index as u64 + 1);
        assert_eq!(line["envelope"]["tenant"], "acme");
    }
    assert!(lines[0]["envelope"]["event"]["catalog_published"].is_object(), "{}", lines[0]);
}

#[test]
fn the_same_seed_gives_the_same_records_and_head() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b, c) = (temp.path().join("a"), temp.path().join("b"), temp.path().join("c"));
    let first = simulate(&a, "300", "42");
    let second = simulate(&b, "300", "42");
    let other = simulate(&c, "300", "43");
    assert_eq!(first["head"], second["head"]);
    assert_ne!(first["head"], other["head"]);

    let show_all = |dir: &Path| {
        let output = grantledger(&["show", "--data", dir.to_str().unwrap(), "--limit", "1000000"]);
        assert!(output.status.success());
        output.stdout
    };
    let (shown_a, shown_b) = (show_all(&a), show_all(&b));
    assert_eq!(shown_a.iter().filter(|&&byte| byte == b'\n').count() as u64, first["records"].as_u64().unwrap());
    assert!(shown_a == shown_b, "the same seed gave different records");
}

#[test]
fn bad_catalogs_are_refused_naming_the_value_and_nothing_is_written() {
    let base = r#"
[groups]
dba = ["dana", "dmitri"]

[[entitlement]]
id = "db-read"
resource = "db/prod/*"
actions = ["read"]
ttl_default_s = 3600
ttl_max_s = 28800
principal_kinds = ["human"]
approval = "auto"
"#;
    let cases = [
        (base.replace("approval = \"auto\"", "approval = \"auto\"\ncolour = \"red\""), "colour"),
        (base.replace("ttl_default_s = 3600", "ttl_default_s = 0"), "ttl_default_s"),
        (base.replace("ttl_default_s = 3600", "ttl_default_s = -5"), "-5"),
        (base.replace("ttl_default_s = 3600", "ttl_default_s = 30000"), "30000"),
        (base.replace("[\"human\"]", "[\"robot\"]"), "robot"),
        (base.replace("approval = \"auto\"", "approval = { approvers = 2, group = \"nobody\" }"), "nobody"),
        ("this is not toml [".to_string(), "catalog"),
    ];
    let temp = tempfile::tempdir().unwrap();
    for (index, (catalog, named)) in cases.iter().enumerate() {
        let catalog_path = temp.path().join(format!("catalog-{index}.toml"));
        std::fs::write(&catalog_path, catalog).unwrap();
        let data = temp.path().join(format!("data-{index}"));
        let output = grantledger(&[
            "simulate", "--data", data.to_str().unwrap(), "--requests", "10",
            "--catalog", catalog_path.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2), "case {index}: {}", stderr(&output));
        assert!(stderr(&output).contains(named), "case {index}: `{named}` not named in: {}", stderr(&output));
        assert!(!data.exists(), "case {index}: a refused catalog wrote `{}`", data.display());
    }
}

#[test]
fn missing_or_foreign_data_directories_are_clear_errors() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("missing");
    for command in ["verify", "replay", "show"] {
        let output = grantledger(&[command, "--data", missing.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{command}: {}", stderr(&output));
        assert!(stderr(&output).contains("missing"), "{command}: {}", stderr(&output));
        assert!(!missing.exists(), "{command} created the directory it was asked to read");
    }

    let foreign = temp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "not a log").unwrap();
    let output = grantledger(&["verify", "--data", foreign.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let names: Vec<_> = std::fs::read_dir(&foreign).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")], "verify wrote into a foreign directory");

    // simulate refuses to write over anything.
    let output = grantledger(&["simulate", "--data", foreign.to_str().unwrap(), "--requests", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not empty"), "{}", stderr(&output));
}

#[test]
fn a_flipped_byte_makes_verify_fail_naming_the_record() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("log");
    simulate(&data, "50", "3");
    {
        let cfs = grantledger_log::layout::column_family_descriptors();
        let db = rocksdb::DB::open_cf_descriptors(&grantledger_log::layout::rocksdb_options(), &data, cfs).unwrap();
        let records = db.cf_handle(grantledger_log::layout::CF_RECORDS).unwrap();
        let key = grantledger_log::layout::record_key(17);
        let mut value = db.get_cf(&records, key).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        db.put_cf(&records, key, value).unwrap();
    }
    let output = grantledger(&["verify", "--data", data.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let failure: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(failure["sequence"], 17);
    assert_eq!(failure["rule"], "hash_mismatch");
    assert!(stderr(&output).contains("`17`"), "{}", stderr(&output));
}
