//! The auditor material checked into `replay/` verifies, as its README says:
//! the log against the signed checkpoint, the replay, and every bundle.

use std::path::Path;
use std::process::{Command, Output};

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger")).args(args).output().expect("the binary runs")
}

#[test]
fn the_checked_in_log_checkpoint_and_bundles_verify() {
    let replay = Path::new(env!("CARGO_MANIFEST_DIR")).join("replay");
    let path = |name: &str| replay.join(name).to_str().unwrap().to_owned();
    let out = grantledger(&["verify", "--data", &path("log"), "--checkpoint", &path("checkpoint.txt"), "--public-key", &path("ledger.pub"), "--json"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 83);

    let out = grantledger(&["replay", "--data", &path("log"), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Written in codec 1, before the policy engine: every decision is the
    // catalog's and re-runs to the same answer.
    let out = grantledger(&["replay", "--data", &path("log"), "--recheck", "--json"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decisions_by_policy"], 0, "{report}");
    assert!(report["decisions_by_catalog"].as_u64().unwrap() > 0, "{report}");

    let mut bundles = 0;
    for entry in std::fs::read_dir(replay.join("bundles")).unwrap() {
        let bundle = entry.unwrap().path();
        let out = grantledger(&["verify-bundle", bundle.to_str().unwrap(), "--public-key", &path("ledger.pub")]);
        assert!(out.status.success(), "{}: {}", bundle.display(), String::from_utf8_lossy(&out.stdout));
        bundles += 1;
    }
    assert_eq!(bundles, 3);
    // Reading it changed nothing: no lock or info log appears in the checked-in directory.
    assert!(!replay.join("log/LOCK").exists() && !replay.join("log/LOG").exists());
}
