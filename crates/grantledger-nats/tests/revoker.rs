//! Revocation workers against a real nats-server: a webhook failing 30% of
//! the time still ends with exactly one confirmation per grant and failure
//! reports with increasing attempts; a malformed notice is terminated without
//! blocking the ones behind it; a slow handler keeps its notice and is
//! finished on shutdown; the worker runs under the shipped server config as
//! the `revocation_worker` role. The notice's JSON Schema is kept current.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use grantledger_events::{
    EntitlementId, GrantId, Principal, PrincipalId, PrincipalKind, RequestId, ResourceId,
    RevocationReason, TenantId,
};
use grantledger_nats::ledger_service::RevocationInput;
use grantledger_nats::revoker::{
    EXPIRY_NOTICE_SCHEMA_FILE, ExpiryNotice, Hook, RevocationReport, Worker, WorkerConfig,
    expiry_notice_schema,
};
use grantledger_nats::{
    GRANT_EXPIRY_STREAM, GRANT_INPUT_STREAM, StreamsConfig, ensure_streams, expiry_subject,
    revocations_subject,
};
use grantledger_testkit::NatsServer;

use common::{STEP_WAIT, connect, within};

const SUBJECT: &str = "grants.expiry.acme.db";

fn notice(index: usize, tenant: &str) -> ExpiryNotice {
    let request_id = format!("r-{index}");
    ExpiryNotice {
        tenant: TenantId::new(tenant).unwrap(),
        grant_id: GrantId::new(format!("grant:{request_id}")).unwrap(),
        request_id: RequestId::new(request_id).unwrap(),
        principal: Principal {
            id: PrincipalId::new(format!("svc-{index}")).unwrap(),
            kind: PrincipalKind::Workload,
            owner: Some(PrincipalId::new("team-data").unwrap()),
        },
        entitlement: EntitlementId::new("db-prod-read").unwrap(),
        resource: ResourceId::new("db/prod/orders").unwrap(),
        actions: vec!["read".to_owned()],
        reason: RevocationReason::Expired,
        expires_at_ms: 1_700_000_000_000 + index as i64,
        revoked_sequence: 10 + index as u64,
    }
}

/// A server with the three streams, and a JetStream context on it.
async fn setup() -> (NatsServer, async_nats::Client, jetstream::Context) {
    let server = NatsServer::start();
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    within("streams", ensure_streams(&js, &StreamsConfig::default()))
        .await
        .expect("streams");
    (server, client, js)
}

async fn publish_raw(js: &jetstream::Context, message_id: &str, body: Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", message_id);
    let ack = within(
        "publish",
        js.publish_with_headers(expiry_subject("acme", "db").unwrap(), headers, body.into()),
    )
    .await
    .expect("publish");
    within("publish ack", ack).await.expect("acked");
}

async fn publish_notice(js: &jetstream::Context, notice: &ExpiryNotice) {
    let id = format!("{}:expiry:{}", notice.tenant, notice.grant_id);
    publish_raw(js, &id, serde_json::to_vec(notice).unwrap()).await;
}

fn test_config(url: String) -> WorkerConfig {
    let mut config = WorkerConfig::new(url, SUBJECT.to_owned());
    config.worker_name = "test-worker".to_owned();
    config.backoff_initial = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(40);
    config.fetch_expiry = Duration::from_millis(200);
    config.concurrency = 8;
    config
}

/// One report as seen on the wire: its body and its `Nats-Msg-Id`.
struct Seen {
    report: RevocationReport,
    message_id: String,
}

async fn next_report(sub: &mut async_nats::Subscriber) -> Seen {
    let message = within("a report", sub.next()).await.expect("a report");
    // What the ledger parses, so the two formats cannot drift apart.
    serde_json::from_slice::<RevocationInput>(&message.payload).expect("the ledger accepts it");
    Seen {
        report: serde_json::from_slice(&message.payload).expect("a report"),
        message_id: message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Nats-Msg-Id"))
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default(),
    }
}

/// Waits until the worker's consumer holds nothing pending or unacknowledged.
async fn wait_consumer_drained(
    js: &jetstream::Context,
    durable: &str,
) -> jetstream::consumer::Info {
    let stream = js.get_stream(GRANT_EXPIRY_STREAM).await.expect("stream");
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(durable).await.expect("consumer");
    let deadline = tokio::time::Instant::now() + STEP_WAIT;
    loop {
        let info = consumer.info().await.expect("info").clone();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumer not drained: {} pending, {} unacknowledged",
            info.num_pending,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The webhook of the flaky test: fails 30% of the calls, picked by a
/// pseudo-random sequence over the call counter (the same every run).
#[derive(Default)]
struct FlakyTarget {
    calls_total: u64,
    calls_by_grant: HashMap<String, u32>,
    failures_total: u64,
}

async fn flaky_target(
    axum::extract::State(target): axum::extract::State<Arc<Mutex<FlakyTarget>>>,
    axum::Json(notice): axum::Json<ExpiryNotice>,
) -> axum::http::StatusCode {
    let mut target = target.lock().unwrap();
    target.calls_total += 1;
    *target
        .calls_by_grant
        .entry(notice.grant_id.to_string())
        .or_default() += 1;
    // splitmix64 of the call number: 30 of every 100 fail.
    let mut z = target.calls_total.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    if z % 100 < 30 {
        target.failures_total += 1;
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::NO_CONTENT
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_webhook_ends_with_one_confirmation_per_grant() {
    const NOTICES: usize = 200;
    let (server, client, js) = setup().await;
    let mut reports = client
        .subscribe(revocations_subject("acme").unwrap())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");

    let target = Arc::new(Mutex::new(FlakyTarget::default()));
    let app = axum::Router::new()
        .route("/revoke", axum::routing::post(flaky_target))
        .with_state(target.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/revoke", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    for index in 0..NOTICES {
        publish_notice(&js, &notice(index, "acme")).await;
    }
    let config = test_config(server.url());
    let durable = config.durable_name.clone();
    let counters = config.counters.clone();
    let worker = within("connect", Worker::connect(config))
        .await
        .expect("connect");
    let hook = Hook::webhook(url, Duration::from_secs(2)).expect("client");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(
        move |notice| {
            let hook = hook.clone();
            async move { hook.call(notice).await }
        },
        async move {
            let _ = stop_rx.await;
        },
    ));

    let mut confirmed: BTreeMap<String, u32> = BTreeMap::new();
    let mut attempts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut failed_total = 0u64;
    let mut note = |seen: Seen, confirmed: &mut BTreeMap<String, u32>| match seen.report {
        RevocationReport::Confirmed { grant_id, worker } => {
            assert_eq!(worker, "test-worker");
            assert_eq!(seen.message_id, format!("acme:confirmed:{grant_id}"));
            *confirmed.entry(grant_id.to_string()).or_default() += 1;
        }
        RevocationReport::Failed {
            grant_id,
            error,
            attempt,
            ..
        } => {
            assert!(error.contains("503"), "{error}");
            assert_eq!(seen.message_id, format!("acme:failed:{grant_id}:{attempt}"));
            assert!(
                !confirmed.contains_key(grant_id.as_str()),
                "{grant_id} failed after it was confirmed"
            );
            attempts
                .entry(grant_id.to_string())
                .or_default()
                .push(attempt);
            failed_total += 1;
        }
    };
    while confirmed.len() < NOTICES {
        let seen = next_report(&mut reports).await;
        note(seen, &mut confirmed);
    }
    let info = wait_consumer_drained(&js, &durable).await;
    // Everything was acknowledged, so nothing more can be reported; drain.
    if let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(300), reports.next()).await
    {
        panic!(
            "a report after every notice was acknowledged: {}",
            String::from_utf8_lossy(&message.payload)
        );
    }
    stop_tx.send(()).unwrap();
    within("worker stops", running).await.expect("worker task");

    // GRANT_INPUT (what the ledger consumes) holds every report once.
    let input = js
        .get_stream(GRANT_INPUT_STREAM)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(input.state.messages, NOTICES as u64 + failed_total);
    // Exactly one confirmation per grant, for every grant.
    assert_eq!(confirmed.len(), NOTICES);
    assert!(confirmed.values().all(|count| *count == 1), "{confirmed:?}");
    // Failures happened, were reported with attempts 1, 2, ... in order,
    // and each grant's webhook calls are its failures plus the success.
    let target = target.lock().unwrap();
    assert!(
        target.failures_total >= NOTICES as u64 / 5,
        "only {} of {} calls failed",
        target.failures_total,
        target.calls_total
    );
    assert_eq!(failed_total, target.failures_total);
    for (grant, calls) in &target.calls_by_grant {
        let seen = attempts.get(grant).cloned().unwrap_or_default();
        let expected: Vec<u32> = (1..*calls).collect();
        assert_eq!(seen, expected, "attempts of {grant}");
    }
    assert_eq!(target.calls_by_grant.len(), NOTICES);
    assert_eq!(counters.confirmed.load(Ordering::Relaxed), NOTICES as u64);
    assert_eq!(counters.failed.load(Ordering::Relaxed), failed_total);
    assert_eq!(counters.terminated.load(Ordering::Relaxed), 0);
    assert_eq!(info.num_ack_pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_notice_is_terminated_and_does_not_block() {
    let (server, client, js) = setup().await;
    let mut reports = client
        .subscribe(revocations_subject("acme").unwrap())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");

    // The bad ones first, ahead of the good ones, with one worker slot.
    publish_raw(&js, "bad-1", b"not json".to_vec()).await;
    publish_raw(&js, "bad-2", br#"{"bogus":1}"#.to_vec()).await;
    publish_notice(&js, &notice(99, "other-tenant")).await;
    for index in 0..5 {
        publish_notice(&js, &notice(index, "acme")).await;
    }
    let mut config = test_config(server.url());
    config.concurrency = 1;
    let durable = config.durable_name.clone();
    let counters = config.counters.clone();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let worker = within("connect", Worker::connect(config))
        .await
        .expect("connect");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let record = handled.clone();
    let running = tokio::spawn(worker.run(
        move |notice: ExpiryNotice| {
            record.lock().unwrap().push(notice.grant_id.to_string());
            async { Ok(()) }
        },
        async move {
            let _ = stop_rx.await;
        },
    ));

    let mut confirmed = Vec::new();
    for _ in 0..5 {
        match next_report(&mut reports).await.report {
            RevocationReport::Confirmed { grant_id, .. } => confirmed.push(grant_id.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<String> = (0..5).map(|index| format!("grant:r-{index}")).collect();
    assert_eq!(confirmed, expected);
    let info = wait_consumer_drained(&js, &durable).await;
    stop_tx.send(()).unwrap();
    within("worker stops", running).await.expect("worker task");
    // The handler never saw the three bad ones; they were terminated, not retried.
    assert_eq!(*handled.lock().unwrap(), expected);
    assert_eq!(counters.terminated.load(Ordering::Relaxed), 3);
    assert_eq!(counters.received.load(Ordering::Relaxed), 8);
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(info.delivered.stream_sequence, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handler_keeps_its_notice_and_finishes_on_shutdown() {
    let (server, client, js) = setup().await;
    let mut reports = client
        .subscribe(revocations_subject("acme").unwrap())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    publish_notice(&js, &notice(1, "acme")).await;

    let mut config = test_config(server.url());
    // Shorter than the handler: without progress acks the server would
    // redeliver the notice while the handler still runs.
    config.ack_wait = Duration::from_millis(600);
    let durable = config.durable_name.clone();
    let counters = config.counters.clone();
    let worker = within("connect", Worker::connect(config))
        .await
        .expect("connect");
    let (started_tx, started_rx) = tokio::sync::mpsc::channel::<()>(4);
    let calls = Arc::new(Mutex::new(0u32));
    let counted = calls.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(
        move |_notice| {
            *counted.lock().unwrap() += 1;
            let started = started_tx.clone();
            async move {
                let _ = started.send(()).await;
                tokio::time::sleep(Duration::from_millis(2_000)).await;
                Ok(())
            }
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut started_rx = started_rx;
    within("handler starts", started_rx.recv())
        .await
        .expect("started");
    // Two ack waits with the worker still pulling: without progress acks
    // the server would hand the notice out again meanwhile.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Shutdown while the handler runs: it is finished and reported.
    stop_tx.send(()).unwrap();
    within("worker stops", running).await.expect("worker task");
    match next_report(&mut reports).await.report {
        RevocationReport::Confirmed { grant_id, .. } => assert_eq!(grant_id.as_str(), "grant:r-1"),
        other => panic!("unexpected {other:?}"),
    }
    let info = wait_consumer_drained(&js, &durable).await;
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(counters.confirmed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_bad_subject_or_setting_is_refused_before_connecting() {
    // Nothing listens on port 1: a refusal that needed the server would be
    // a connection error instead.
    let mut config = WorkerConfig::new(
        "nats://127.0.0.1:1".to_owned(),
        "grants.expiry.acme".to_owned(),
    );
    let error = Worker::connect(config.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("`grants.expiry.acme`"),
        "{error}"
    );
    config.subject = SUBJECT.to_owned();
    config.concurrency = 0;
    let error = Worker::connect(config.clone())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        "concurrency `0` is invalid: must be between 1 and 256"
    );
    config.concurrency = 1;
    config.backoff_max = Duration::from_millis(1);
    let error = Worker::connect(config).await.err().expect("refused");
    assert!(
        error
            .to_string()
            .starts_with("backoff maximum delay `1ms` is invalid"),
        "{error}"
    );
}

#[test]
fn expiry_notice_schema_is_current() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(EXPIRY_NOTICE_SCHEMA_FILE);
    let generated = serde_json::to_value(expiry_notice_schema()).unwrap();
    let mut expected = serde_json::to_string_pretty(&generated).unwrap();
    expected.push('\n');
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    // Compared as JSON values, not text: the order of object keys depends
    // on whether another crate of the build turns on serde_json's
    // `preserve_order` (cedar-policy does), which is no change of schema.
    let stored_value = serde_json::from_str::<serde_json::Value>(&stored).ok();
    if stored_value.as_ref() != Some(&generated) {
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        } else {
            panic!(
                "`{}` is out of date: run with UPDATE_SCHEMAS=1 and review the diff",
                path.display()
            );
        }
    }
    // The schema refuses unknown fields, as the type does.
    let schema = generated;
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
    assert!(schema["required"].as_array().unwrap().len() >= 10);
}

/// The password of `user` in the shipped config, read from it so the test
/// follows it.
fn shipped_password(config_text: &str, user: &str) -> String {
    let field = format!("user: {user},");
    let line = config_text
        .lines()
        .find(|line| line.contains(&field))
        .unwrap_or_else(|| panic!("no user `{user}` in the config"));
    let after = line
        .split("password: \"")
        .nth(1)
        .expect("a quoted password");
    after.split('"').next().expect("a closing quote").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_as_the_shipped_revocation_worker_role() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats-server.conf");
    let config_text = std::fs::read_to_string(&path).expect("the shipped config");
    let for_test: String = config_text
        .lines()
        .filter(|line| !line.trim_start().starts_with("store_dir:"))
        .map(|line| format!("{line}\n"))
        .collect();
    let server = NatsServer::start_with_config(&for_test);
    let admin = async_nats::ConnectOptions::with_user_and_password(
        "admin".to_owned(),
        shipped_password(&config_text, "admin"),
    )
    .connect(server.url())
    .await
    .expect("admin connects");
    let js = jetstream::new(admin.clone());
    within("streams", ensure_streams(&js, &StreamsConfig::default()))
        .await
        .expect("streams");
    let mut reports = admin
        .subscribe(revocations_subject("acme").unwrap())
        .await
        .expect("subscribe");
    admin.flush().await.expect("flush");
    publish_notice(&js, &notice(1, "acme")).await;
    publish_raw(&js, "bad", b"not json".to_vec()).await;
    publish_notice(&js, &notice(2, "acme")).await;

    let mut config = test_config(server.url());
    config.user_password = Some((
        "revocation_worker".to_owned(),
        shipped_password(&config_text, "revocation_worker"),
    ));
    config.inbox_prefix = Some("_INBOX_WORKER".to_owned());
    let durable = config.durable_name.clone();
    let counters = config.counters.clone();
    let worker = within("connect", Worker::connect(config))
        .await
        .expect("the role may create its consumer");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let attempts = Arc::new(Mutex::new(0u32));
    let counted = attempts.clone();
    let running = tokio::spawn(worker.run(
        move |notice: ExpiryNotice| {
            let first = {
                let mut attempts = counted.lock().unwrap();
                *attempts += 1;
                *attempts == 1
            };
            async move {
                if first {
                    Err(format!("{} is locked", notice.grant_id))
                } else {
                    Ok(())
                }
            }
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    // A failure, then both confirmed: publish, PubAck, ack, NAK and TERM
    // all work within the role's permissions.
    let mut kinds = Vec::new();
    while kinds.iter().filter(|kind| **kind == "confirmed").count() < 2 {
        kinds.push(match next_report(&mut reports).await.report {
            RevocationReport::Confirmed { .. } => "confirmed",
            RevocationReport::Failed { attempt, .. } => {
                assert_eq!(attempt, 1);
                "failed"
            }
        });
    }
    assert_eq!(kinds.iter().filter(|kind| **kind == "failed").count(), 1);
    wait_consumer_drained(&js, &durable).await;
    stop_tx.send(()).unwrap();
    within("worker stops", running).await.expect("worker task");
    assert_eq!(counters.terminated.load(Ordering::Relaxed), 1);
    assert_eq!(counters.report_errors.load(Ordering::Relaxed), 0);
}
