//! `grantledger policy check|test`, as real processes, on the example policy
//! directory of grantledger-policy (the reference articles' situations); and
//! `grantledger policy publish --nats` / `grantledger catalog publish
//! --nats` against a running `grantledger ledger` on a real nats-server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use grantledger_testkit::NatsServer;

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

/// Waits until the ledger made its streams and LEDGER_EVENTS holds `events`
/// messages.
fn wait_for_events(url: &str, events: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .expect("connect");
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let held = match js.get_stream("LEDGER_EVENTS").await {
                Ok(mut stream) => stream.info().await.map(|info| info.state.messages).unwrap_or(0),
                Err(_) => 0,
            };
            let input = js.get_stream("GRANT_INPUT").await.is_ok();
            if input && held == events {
                return;
            }
            assert!(Instant::now() < deadline, "LEDGER_EVENTS holds {held} events, expected {events}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn policy_and_catalog_publish_through_a_running_ledger_print_the_sequence_and_hash_or_the_refusal() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let ledger = common::spawn_ledger(&data, &url);
    wait_for_events(&url, 1); // the built-in catalog

    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let workloads_only = "@id(\"workloads-read-db\")\npermit (principal is Workload, action == Action::\"request\", resource in Entitlement::\"db-prod-read\");\n";
    let good = write("good.cedar", workloads_only);
    let publish = |policies: &Path, extra: &[&str]| {
        let mut args = vec!["policy", "publish", "--nats", &url, "--policies", policies.to_str().unwrap(), "--by", "alice"];
        args.extend_from_slice(extra);
        grantledger(&args)
    };

    // Committed: the sequence and the hash the decisions will cite.
    let out = publish(&good, &["--timeout", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = grantledger_events::policy_hash(workloads_only, None);
    assert_eq!(text(&out.stdout), format!("published policy {hash} at sequence 2\n"));

    // Refused by the ledger: reason and Cedar's message, exit 2.
    let bad = write("bad.cedar", "@id(\"badge\")\npermit (principal, action == Action::\"request\", resource) when { context.badge_color == \"red\" };\n");
    let out = publish(&bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refused by the ledger: policy_invalid") && stderr.contains("badge_color"), "{stderr}");
    assert!(stderr.contains("bad.cedar"), "{stderr}");

    // A catalog, the same way (it keeps the entry the policy set names).
    let stricter = grantledger_core::DEFAULT_CATALOG.replacen(
        "approval = \"auto\"",
        "approval = { approvers = 2, group = \"dba\" }",
        1,
    );
    let catalog = write("catalog.toml", &stricter);
    let out = grantledger(&["catalog", "publish", "--nats", &url, "--catalog", catalog.to_str().unwrap(), "--by", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("published catalog ") && stdout.ends_with(" at sequence 3\n"), "{stdout}");
    let broken = write("broken.toml", "[[entitlement]]\nid = ");
    let out = grantledger(&["catalog", "publish", "--nats", &url, "--catalog", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refused by the ledger: catalog_invalid"), "{}", text(&out.stderr));

    // --data and --nats exclude each other; one of them is needed.
    let out = publish(&good, &["--data", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot be used with"), "{}", text(&out.stderr));
    let out = grantledger(&["policy", "publish", "--policies", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--data"), "{}", text(&out.stderr));

    // No ledger running: the input is stored, no receipt comes within the
    // bound, and the error names the subject; the ledger decides it once it
    // runs again.
    common::terminate(ledger);
    let everyone = write("everyone.cedar", "@id(\"everyone-reads-db\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"db-prod-read\");\n");
    let out = publish(&everyone, &["--timeout", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no receipt on `_INBOX.") && stderr.contains("`grants.policy.acme`"), "{stderr}");
    assert!(stderr.contains("is `grantledger ledger` running for tenant `acme`?"), "{stderr}");
    let ledger = common::spawn_ledger(&data, &url);
    wait_for_events(&url, 4);
    common::terminate(ledger);
    let out = grantledger(&["show", "--data", data.to_str().unwrap(), "--from", "4"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("policy_published") && shown.contains("everyone-reads-db"), "{shown}");

    // No server there: the error names the URL.
    let out = grantledger(&["policy", "publish", "--nats", "nats://127.0.0.1:1", "--policies", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nats://127.0.0.1:1"), "{}", text(&out.stderr));
}

#[test]
fn policy_and_catalog_publish_into_a_stopped_ledgers_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let out = grantledger(&["simulate", "--data", data.to_str().unwrap(), "--requests", "5", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let head = |data: &Path| {
        let out = grantledger(&["verify", "--data", data.to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "{}", text(&out.stdout));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["records"].as_u64().unwrap()
    };
    let before = head(&data);

    let policy_text = "@id(\"everyone-reads-db\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"db-prod-read\");\n";
    let policies = dir.path().join("p.cedar");
    std::fs::write(&policies, policy_text).unwrap();
    let out = grantledger(&["policy", "publish", "--data", data.to_str().unwrap(), "--policies", policies.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = grantledger_events::policy_hash(policy_text, None);
    assert_eq!(text(&out.stdout), format!("published policy {hash} at sequence {}\n", before + 1));

    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, grantledger_core::DEFAULT_CATALOG.replacen("approval = \"auto\"", "approval = \"deny\"", 1)).unwrap();
    let out = grantledger(&["catalog", "publish", "--data", data.to_str().unwrap(), "--catalog", catalog.to_str().unwrap(), "--by", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with(&format!(" at sequence {}\n", before + 2)), "{}", text(&out.stdout));

    // Refused: exit 2 naming the file and the rule, nothing written.
    std::fs::write(&catalog, "[[entitlement]]\nid = ").unwrap();
    let out = grantledger(&["catalog", "publish", "--data", data.to_str().unwrap(), "--catalog", catalog.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("catalog.toml` refused (catalog_invalid)"), "{}", text(&out.stderr));
    assert_eq!(head(&data), before + 2);
    let out = grantledger(&["replay", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
