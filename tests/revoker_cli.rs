//! The real `grantledger revoker` binary, with `--exec`, against a real
//! nats-server and the real `grantledger ledger`:
//! - grants issued and revoked by the ledger, their notices removed by a
//!   shell hook that fails some first attempts, the revoker killed with
//!   SIGKILL mid-way and restarted: the log records exactly one
//!   RevocationConfirmed per grant, failures as RevocationFailed, every
//!   confirmation on the wire carries `<tenant>:confirmed:<grant_id>` as
//!   `Nats-Msg-Id` (so JetStream drops a report repeated across the crash),
//!   and a confirmation that gets past JetStream anyway is refused by the
//!   ledger as `revocation_already_confirmed`;
//! - SIGTERM exits 0;
//! - a subject not of the form exits 2 naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use grantledger_events::{Committed, Event, GrantIssued};
use grantledger_log::Log;
use grantledger_nats::revoker::ExpiryNotice;
use grantledger_testkit::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_grantledger");
const GRANTS: usize = 40;
const STEP: Duration = Duration::from_secs(20);

fn terminate(mut child: Child, what: &str) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("reaped");
    assert!(status.success(), "{what}: SIGTERM exits 0, got {status}");
}

fn start_revoker(url: &str, hook: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("revoker log");
    Command::new(BIN)
        .args([
            "revoker",
            "--nats",
            url,
            "--subject",
            "grants.expiry.acme.db",
        ])
        .arg("--exec")
        .arg(format!("sh {}", hook.display()))
        .args(["--worker", "e2e-worker", "--concurrency", "4"])
        .args(["--backoff-initial", "0.05", "--backoff-max", "0.2"])
        .args(["--ack-wait", "1", "--timeout", "5"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the revoker")
}

/// The hook: records its stdin, fails the first attempt for grants whose
/// id ends in 0, 3 or 6 (with a message on stderr), succeeds otherwise.
fn write_hook(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("hook.sh");
    let script = format!(
        r#"input=$(cat)
grant=$(printf '%s' "$input" | sed 's/.*"grant_id":"\([^"]*\)".*/\1/')
echo "$grant" >> {dir}/calls
sleep 0.05
calls=$(grep -c "^$grant\$" {dir}/calls)
case "$grant" in
  *0|*3|*6)
    if [ "$calls" -eq 1 ]; then
      echo "connecting to db" >&2
      echo "target refused $grant: role is locked" >&2
      exit 3
    fi;;
esac
printf '%s\n' "$input" >> {dir}/removed
"#,
        dir = dir.display()
    );
    std::fs::write(&path, script).expect("hook");
    path
}

fn request(index: usize) -> String {
    format!(
        r#"{{"request_id":"r-{index}","tenant":"acme","principal":{{"id":"svc-{index}","kind":"workload","owner":"team-a"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"batch job"}}"#
    )
}

async fn publish(js: &jetstream::Context, subject: &str, message_id: &str, body: String) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id);
    let ack = js
        .publish_with_headers(subject.to_owned(), headers, body.into())
        .await
        .expect("publish");
    tokio::time::timeout(STEP, ack)
        .await
        .expect("ack in time")
        .expect("acked");
}

/// Every message of LEDGER_EVENTS, decoded.
async fn ledger_events(js: &jetstream::Context) -> Vec<(u64, Committed)> {
    let mut stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut events = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.expect("message");
        if message.subject.starts_with("ledger.events.") {
            events.push((
                sequence,
                serde_json::from_slice(&message.payload).expect("committed"),
            ));
        }
    }
    events
}

/// Waits until LEDGER_EVENTS holds `count` events of `kind`.
async fn wait_for_kind(js: &jetstream::Context, kind: &str, count: usize) -> Vec<(u64, Committed)> {
    let deadline = Instant::now() + STEP;
    loop {
        let events = ledger_events(js).await;
        let seen = events
            .iter()
            .filter(|(_, committed)| event_name(&committed.envelope.event) == kind)
            .count();
        if seen >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {count} `{kind}` events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::GrantIssued(_) => "grant_issued",
        Event::GrantRevoked(_) => "grant_revoked",
        Event::RevocationConfirmed(_) => "revocation_confirmed",
        Event::RevocationFailed(_) => "revocation_failed",
        _ => "other",
    }
}

/// A confirmation seen on `grants.revocations.acme`, with its `Nats-Msg-Id`.
#[derive(Debug)]
struct Wire {
    kind: String,
    grant_id: String,
    message_id: String,
}

async fn collect_wire(
    subscriber: &mut async_nats::Subscriber,
    wire: &mut Vec<Wire>,
    for_at_most: Duration,
) {
    while let Ok(Some(message)) = tokio::time::timeout(for_at_most, subscriber.next()).await {
        let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        wire.push(Wire {
            kind: body["type"].as_str().unwrap_or_default().to_owned(),
            grant_id: body["grant_id"].as_str().unwrap_or_default().to_owned(),
            message_id: message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Nats-Msg-Id"))
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default(),
        });
    }
}

fn confirmed_grants(wire: &[Wire]) -> BTreeSet<String> {
    wire.iter()
        .filter(|seen| seen.kind == "confirmed")
        .map(|seen| seen.grant_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hook_end_to_end_with_the_ledger_and_a_sigkill() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let ledger = Command::new(BIN)
        .args(["ledger", "--data"])
        .arg(&data)
        .args(["--nats", &url, "--tenant", "acme"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the ledger");
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url.as_str())
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());
    let deadline = Instant::now() + STEP;
    while js.get_stream("GRANT_EXPIRY").await.is_err() {
        assert!(Instant::now() < deadline, "the ledger made no streams");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Grants issued, then ended by their tasks completing.
    for index in 0..GRANTS {
        publish(
            &js,
            "grants.requests.acme",
            &format!("r-{index}"),
            request(index),
        )
        .await;
    }
    wait_for_kind(&js, "grant_issued", GRANTS).await;
    for index in 0..GRANTS {
        let signal =
            format!(r#"{{"type":"task_complete","grant_id":"grant:r-{index}","by":"team-a"}}"#);
        publish(&js, "grants.signals.acme", &format!("done-{index}"), signal).await;
    }
    let events = wait_for_kind(&js, "grant_revoked", GRANTS).await;

    // The test plays the expiry projector: one notice per revoked grant.
    let issued: BTreeMap<String, GrantIssued> = events
        .iter()
        .filter_map(|(_, committed)| match &committed.envelope.event {
            Event::GrantIssued(issued) => Some((issued.grant_id.to_string(), issued.clone())),
            _ => None,
        })
        .collect();
    let mut notices = BTreeMap::new();
    for (_, committed) in &events {
        if let Event::GrantRevoked(revoked) = &committed.envelope.event {
            let grant = &issued[revoked.grant_id.as_str()];
            let notice = ExpiryNotice {
                tenant: committed.envelope.tenant.clone(),
                grant_id: grant.grant_id.clone(),
                request_id: grant.request_id.clone(),
                principal: grant.principal.clone(),
                entitlement: grant.entitlement.clone(),
                resource: grant.resource.clone(),
                actions: grant.actions.clone(),
                reason: revoked.reason,
                expires_at_ms: grant.expires_at.0,
                revoked_sequence: committed.sequence,
            };
            notices.insert(grant.grant_id.to_string(), notice);
        }
    }
    assert_eq!(notices.len(), GRANTS);

    let mut reports = client
        .subscribe("grants.revocations.acme")
        .await
        .expect("subscribe");
    let mut rejections = client
        .subscribe("grants.rejections.acme")
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    for (grant_id, notice) in &notices {
        let body = serde_json::to_string(notice).unwrap();
        publish(
            &js,
            "grants.expiry.acme.db",
            &format!("acme:expiry:{grant_id}"),
            body,
        )
        .await;
    }

    // Run, kill mid-way, run again.
    let hook = write_hook(dir.path());
    let revoker_log = dir.path().join("revoker.log");
    let mut first = start_revoker(&url, &hook, &revoker_log);
    let mut wire = Vec::new();
    let deadline = Instant::now() + STEP;
    while confirmed_grants(&wire).len() < GRANTS / 4 {
        assert!(
            Instant::now() < deadline,
            "no progress; see {}",
            revoker_log.display()
        );
        collect_wire(&mut reports, &mut wire, Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let confirmed_before_crash = confirmed_grants(&wire).len();
    assert!(
        confirmed_before_crash < GRANTS,
        "the crash came too late to matter"
    );

    let second = start_revoker(&url, &hook, &revoker_log);
    let deadline = Instant::now() + STEP;
    while confirmed_grants(&wire).len() < GRANTS {
        assert!(
            Instant::now() < deadline,
            "{} of {GRANTS} confirmed; see {}",
            confirmed_grants(&wire).len(),
            revoker_log.display()
        );
        collect_wire(&mut reports, &mut wire, Duration::from_millis(50)).await;
    }
    wait_for_kind(&js, "revocation_confirmed", GRANTS).await;
    collect_wire(&mut reports, &mut wire, Duration::from_millis(500)).await;
    terminate(second, "revoker");

    // On the wire: every confirmation carries the id JetStream dedupes on.
    for seen in &wire {
        let expected = match seen.kind.as_str() {
            "confirmed" => format!("acme:confirmed:{}", seen.grant_id),
            _ => {
                assert!(
                    seen.message_id
                        .starts_with(&format!("acme:failed:{}:", seen.grant_id)),
                    "{seen:?}"
                );
                continue;
            }
        };
        assert_eq!(seen.message_id, expected);
    }
    let confirmations_on_wire = wire.iter().filter(|seen| seen.kind == "confirmed").count();
    eprintln!(
        "{confirmed_before_crash} confirmed before the SIGKILL; {confirmations_on_wire} confirmations published for {GRANTS} grants"
    );

    // The hook got each notice exactly as published on its stdin.
    let removed = std::fs::read_to_string(dir.path().join("removed")).expect("removed");
    let mut removed_grants = BTreeSet::new();
    for line in removed.lines() {
        let notice: ExpiryNotice = serde_json::from_str(line).expect("the notice on stdin");
        assert_eq!(&notice, &notices[notice.grant_id.as_str()]);
        removed_grants.insert(notice.grant_id.to_string());
    }
    assert_eq!(removed_grants.len(), GRANTS);

    // A confirmation past JetStream's duplicate window (a new Nats-Msg-Id)
    // is refused by the ledger.
    publish(
        &js,
        "grants.revocations.acme",
        "replayed-after-the-window",
        r#"{"type":"confirmed","grant_id":"grant:r-1","worker":"e2e-worker"}"#.to_owned(),
    )
    .await;
    let deadline = Instant::now() + STEP;
    let reason = loop {
        let message = tokio::time::timeout(deadline - Instant::now(), rejections.next())
            .await
            .expect("a rejection in time")
            .expect("a rejection");
        let notice: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if notice["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("grant:r-1")
            || notice["reason"] == "revocation_already_confirmed"
        {
            break notice["reason"].as_str().unwrap_or_default().to_owned();
        }
    };
    assert_eq!(reason, "revocation_already_confirmed");
    terminate(ledger, "ledger");

    // The system of record: one confirmation per grant, failures recorded
    // with the hook's stderr, only for grants whose hook failed.
    let log = Log::open_read_only(&data).expect("open the log");
    let mut confirmations: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for record in log.iter_from(1) {
        let record = record.expect("record");
        let envelope = grantledger_ledger::decode_record(
            record.header.version,
            record.header.sequence,
            &record.body,
        )
        .expect("decodes");
        match envelope.event {
            Event::RevocationConfirmed(confirmed) => {
                assert_eq!(confirmed.worker, "e2e-worker");
                *confirmations
                    .entry(confirmed.grant_id.to_string())
                    .or_default() += 1;
            }
            Event::RevocationFailed(failed) => failures.push(failed),
            _ => {}
        }
    }
    assert_eq!(confirmations.len(), GRANTS, "{confirmations:?}");
    assert!(
        confirmations.values().all(|count| *count == 1),
        "{confirmations:?}"
    );
    assert!(
        !failures.is_empty(),
        "the hook failed for 12 grants' first attempts"
    );
    for failed in &failures {
        let grant = failed.grant_id.as_str();
        assert!(grant.ends_with(['0', '3', '6']), "{grant} never failed");
        assert!(failed.attempt >= 1);
        assert!(
            failed
                .error
                .contains(&format!("target refused {grant}: role is locked")),
            "{}",
            failed.error
        );
        assert!(failed.error.contains("exit status: 3"), "{}", failed.error);
    }
}

#[test]
fn a_subject_not_of_the_form_exits_2_naming_it() {
    let rows = [
        ("grants.expiry.acme", "the resource kind is missing"),
        ("grants.expiry..db", "the tenant is missing"),
        ("grants.expiry.*.db", "tenant `*` holds `*`"),
        (
            "ledger.events.acme",
            "it does not start with `grants.expiry.`",
        ),
    ];
    for (subject, rule) in rows {
        // Port 1: the refusal must come before any connection attempt.
        let output = Command::new(BIN)
            .args([
                "revoker",
                "--nats",
                "nats://127.0.0.1:1",
                "--subject",
                subject,
                "--exec",
                "true",
            ])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{subject}: {stderr}");
        assert!(
            stderr.contains(&format!("`{subject}`")) && stderr.contains(rule),
            "{subject}: {stderr}"
        );
    }
    let output = Command::new(BIN)
        .args([
            "revoker",
            "--nats",
            "nats://127.0.0.1:1",
            "--subject",
            "grants.expiry.acme.db",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "a hook is required");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--exec") && stderr.contains("--webhook"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_end_to_end() {
    use std::sync::{Arc, Mutex};

    let server = NatsServer::start();
    let url = server.url();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url.as_str())
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());
    grantledger_nats::ensure_streams(&js, &grantledger_nats::StreamsConfig::default())
        .await
        .expect("streams");

    // The target: refuses each grant's first call, accepts the next.
    let calls: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/revoke",
        axum::routing::post(move |axum::Json(notice): axum::Json<ExpiryNotice>| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                let count = seen.entry(notice.grant_id.to_string()).or_default();
                *count += 1;
                if *count == 1 {
                    (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "role is locked",
                    )
                } else {
                    (axum::http::StatusCode::OK, "removed")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let webhook = format!("http://{}/revoke", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut reports = client
        .subscribe("grants.revocations.acme")
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    for index in 0..5 {
        let notice = format!(
            r#"{{"tenant":"acme","grant_id":"grant:w-{index}","request_id":"w-{index}","principal":{{"id":"svc","kind":"workload","owner":"team-a"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"reason":"manual","expires_at_ms":1,"revoked_sequence":{index}}}"#
        );
        publish(
            &js,
            "grants.expiry.acme.db",
            &format!("acme:expiry:grant:w-{index}"),
            notice,
        )
        .await;
    }
    let revoker = Command::new(BIN)
        .args([
            "revoker",
            "--nats",
            &url,
            "--subject",
            "grants.expiry.acme.db",
            "--webhook",
            &webhook,
        ])
        .args([
            "--worker",
            "hook-worker",
            "--backoff-initial",
            "0.05",
            "--timeout",
            "5",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the revoker");

    let mut confirmed = BTreeSet::new();
    let mut failed = BTreeMap::new();
    while confirmed.len() < 5 {
        let message = tokio::time::timeout(STEP, reports.next())
            .await
            .expect("a report in time")
            .expect("a report");
        let report: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let grant = report["grant_id"].as_str().unwrap().to_owned();
        match report["type"].as_str().unwrap() {
            "confirmed" => {
                assert_eq!(report["worker"], "hook-worker");
                assert!(
                    failed.contains_key(&grant),
                    "{grant} confirmed before its failure"
                );
                confirmed.insert(grant);
            }
            "failed" => {
                assert_eq!(report["attempt"], 1, "{report}");
                let error = report["error"].as_str().unwrap();
                assert!(
                    error.contains("500") && error.contains("role is locked"),
                    "{error}"
                );
                failed.insert(grant, report);
            }
            other => panic!("unexpected report type `{other}`"),
        }
    }
    terminate(revoker, "revoker");
    assert_eq!(failed.len(), 5);
    assert!(calls.lock().unwrap().values().all(|count| *count == 2));
}
