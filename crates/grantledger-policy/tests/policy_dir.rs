//! The example policy directory's table tests, and the runner's own checks.

use std::path::Path;

use grantledger_policy::runner::run_dir;

fn example_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

#[test]
fn every_case_of_the_example_policy_directory_passes() {
    let report = run_dir(example_dir()).unwrap();
    assert!(
        report.cases.len() >= 30,
        "only {} cases",
        report.cases.len()
    );
    assert!(report.all_passed(), "\n{report}");
}

/// Copies the example directory (catalog, policies, exceptions; no tests)
/// into a temporary one.
fn copy_of_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["catalog.toml", "policies.cedar", "exceptions.toml"] {
        std::fs::copy(example_dir().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

#[test]
fn a_deliberately_wrong_expectation_fails_the_run_with_a_readable_diff() {
    let dir = copy_of_example();
    std::fs::write(
        dir.path().join("wrong.test.toml"),
        r#"
[[case]]
name = "an export expected to be allowed"
expect = "allow"
expect_reasons = ["auto_approved"]
[case.request]
principal = { id = "paula", kind = "human" }
action = "request"
entitlement = "db-prod-export"
resource = "db/prod/payments"
actions = ["export"]
justification = "analysis"
at = "2026-11-23T10:00:00Z"
"#,
    )
    .unwrap();
    let report = run_dir(dir.path()).unwrap();
    assert_eq!(report.cases.len(), 1);
    assert!(!report.all_passed());
    let shown = report.to_string();
    assert!(
        shown.contains("FAIL  wrong.test.toml: an export expected to be allowed"),
        "{shown}"
    );
    assert!(
        shown.contains("outcome: expected `allow`, got `deny`"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "missing [\"auto_approved\"], unexpected [\"entitlement_denies_self_service\", \"no_permit_matched\"]"
        ),
        "{shown}"
    );
    assert!(shown.ends_with("0 passed, 1 failed"), "{shown}");
}

#[test]
fn a_broken_directory_is_an_error_not_a_pass() {
    let dir = copy_of_example();
    std::fs::write(dir.path().join("broken.test.toml"), "[[case]]\nname = 3\n").unwrap();
    let error = run_dir(dir.path()).unwrap_err();
    assert_eq!(
        error.kind(),
        grantledger_policy::LoadErrorKind::TestsInvalid,
        "{error}"
    );
    assert!(error.message().contains("broken.test.toml"), "{error}");

    std::fs::remove_file(dir.path().join("broken.test.toml")).unwrap();
    let report = run_dir(dir.path()).unwrap();
    assert!(
        !report.all_passed(),
        "a directory without cases must not pass"
    );

    std::fs::write(
        dir.path().join("policies.cedar"),
        "@id(\"x\") permit(principal, action, resource) when { context.nope };",
    )
    .unwrap();
    let error = run_dir(dir.path()).unwrap_err();
    assert_eq!(error.policy_id(), Some("x"), "{error}");

    std::fs::remove_file(dir.path().join("policies.cedar")).unwrap();
    let error = run_dir(dir.path()).unwrap_err();
    assert_eq!(
        error.kind(),
        grantledger_policy::LoadErrorKind::Io,
        "{error}"
    );
    assert!(error.message().contains("policies.cedar"), "{error}");
}
