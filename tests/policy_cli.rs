//! `grantledger policy check|test`, as real processes, on the example policy
//! directory of grantledger-policy (the reference articles' situations).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn grantledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantledger")).args(args).output().expect("the binary runs")
}

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/grantledger-policy/policies")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const REQUEST: &str = r#"{"principal":{"id":"alice","kind":"human","groups":["payments"]},"action":"request","entitlement":"repo-admin","resource":"git/acme/payments-api","actions":["admin"],"justification":"rotate the deploy key","context":{"in_maintenance_window":true,"device_managed":true,"change_record":"CHG-1042"}}"#;

fn check(dir: &Path, request: &str, policies_file: &Path) -> Output {
    let file = dir.join("request.json");
    std::fs::write(&file, request).unwrap();
    let p = policies();
    grantledger(&[
        "policy", "check", "--json",
        "--catalog", p.join("catalog.toml").to_str().unwrap(),
        "--exceptions", p.join("exceptions.toml").to_str().unwrap(),
        "--policies", policies_file.to_str().unwrap(),
        "--request", file.to_str().unwrap(),
        "--at", "2026-11-21T02:00:00Z",
    ])
}

#[test]
fn policy_check_prints_the_decision_with_its_policies_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), REQUEST, &policies().join("policies.cedar"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["outcome"], "allow");
    assert_eq!(decision["determining_policies"], serde_json::json!(["repo-admin-payments-api-with-change"]));

    // Outside the maintenance window the same request is forbidden, citing the forbid.
    let outside = REQUEST.replace(r#""in_maintenance_window":true"#, r#""in_maintenance_window":false"#);
    let out = check(dir.path(), &outside, &policies().join("policies.cedar"));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["outcome"], "deny");
    assert!(decision["reasons"].as_array().unwrap().contains(&"outside_maintenance_window".into()), "{decision}");

    // A context value of the wrong type is refused, naming the field.
    let wrong = REQUEST.replace(r#""device_managed":true"#, r#""device_managed":"yes""#);
    let out = check(dir.path(), &wrong, &policies().join("policies.cedar"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("device_managed"), "{}", text(&out.stderr));
}

#[test]
fn a_policy_that_does_not_validate_is_refused_with_cedars_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.cedar");
    std::fs::write(&bad, "@id(\"typo\")\npermit(principal, action, resource) when { context.no_such_field };\n").unwrap();
    let out = check(dir.path(), REQUEST, &bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("typo") && stderr.contains("no_such_field"), "{stderr}");
}

#[test]
fn policy_test_passes_the_example_directory_and_fails_a_wrong_expectation() {
    let out = grantledger(&["policy", "test", policies().to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("0 failed"), "{}", text(&out.stdout));

    // A copy of the directory with one expectation turned around.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(policies()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let case = dir.path().join("maintenance-window.test.toml");
    let original = std::fs::read_to_string(&case).unwrap();
    let changed = original.replacen("expect = \"deny\"", "expect = \"allow\"", 1);
    assert_ne!(original, changed);
    std::fs::write(&case, changed).unwrap();
    let out = grantledger(&["policy", "test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("FAIL"), "{}", text(&out.stdout));

    let out = grantledger(&["policy", "test", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
