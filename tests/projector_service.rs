//! Projectors as services against a real nats-server: delivered twice, out
//! of order, NAKed, left to time out, with holes; killed with SIGKILL under
//! load; and the expiry path on an injected clock, through a revocation hook
//! that fails 30% of the time. Every time the projections end at the digest a
//! replay of the log from genesis gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use grantledger_events::{Event, GrantId, RequestId, TenantId, Timestamp};
use grantledger_ledger::Ledger;
use grantledger_log::{Log, LogOptions};
use grantledger_nats::ledger_service::{self, SEQUENCE_HEADER, ServiceConfig, event_msg_id};
use grantledger_nats::projector_service::{self, Chaos, ProjectorConfig, Status};
use grantledger_nats::revoker::{Worker, WorkerConfig};
use grantledger_nats::{
    Clock, LEDGER_EVENTS_STREAM, StreamsConfig, ensure_streams, ledger_events_subject,
    query_subject, requests_subject, signals_subject, status_subject,
};
use grantledger_projector::{PROJECTION_NAMES, rebuild_from_log};
use grantledger_testkit::NatsServer;

mod common;

use common::{XorShift, spawn_ledger, terminate};

const BIN: &str = env!("CARGO_BIN_EXE_grantledger");

async fn connect(url: &str) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(url)
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());
    (client, js)
}

/// The digest of every projection of the log in `data`, rebuilt from genesis.
fn replay_digests(log: &Log) -> BTreeMap<String, String> {
    PROJECTION_NAMES
        .iter()
        .map(|name| {
            let store = tempfile::tempdir().expect("tempdir");
            let digest =
                rebuild_from_log(log, name, &store.path().join("p"), |_| {}).expect("rebuild");
            (name.to_string(), digest.digest)
        })
        .collect()
}

/// A running projector's status, or `None` while it is not answering.
async fn status(client: &async_nats::Client, name: &str) -> Option<Status> {
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(status_subject("acme", name).unwrap(), "".into()),
    )
    .await
    .ok()?
    .ok()?;
    serde_json::from_slice(&reply.payload).ok()
}

/// Waits until every projection reports cursor `head` and its consumer has
/// nothing pending or unacknowledged; returns their statuses.
async fn converge(
    client: &async_nats::Client,
    js: &jetstream::Context,
    head: impl Fn() -> u64,
    within: Duration,
) -> BTreeMap<String, Status> {
    let deadline = Instant::now() + within;
    loop {
        let head = head();
        let mut done = BTreeMap::new();
        for name in PROJECTION_NAMES {
            let Some(status) = status(client, name).await else {
                continue;
            };
            let consumer = async {
                let stream = js.get_stream(LEDGER_EVENTS_STREAM).await.ok()?;
                let mut consumer: jetstream::consumer::PullConsumer = stream
                    .get_consumer(&format!("projector-{name}-acme"))
                    .await
                    .ok()?;
                consumer.info().await.ok().cloned()
            }
            .await;
            let settled =
                consumer.is_some_and(|info| info.num_pending == 0 && info.num_ack_pending == 0);
            if status.cursor == head && settled {
                done.insert(name.to_string(), status);
            }
        }
        if done.len() == PROJECTION_NAMES.len() {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "projections not at head {head} after {within:?}: settled {:?}",
            done.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers `grantledger.backfill.acme` from `ledger` as the ledger service
/// does, for tests that publish LEDGER_EVENTS themselves.
fn serve_backfill(client: async_nats::Client, ledger: Ledger) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut requests = client
            .subscribe("grantledger.backfill.acme")
            .await
            .expect("subscribe");
        while let Some(request) = requests.next().await {
            let reply = ledger_service::backfill(&ledger, &request.payload);
            let body = serde_json::to_vec(&reply).expect("json");
            client
                .publish(request.reply.expect("a reply subject"), body.into())
                .await
                .expect("reply");
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_twice_out_of_order_nakked_timed_out_and_missing_still_give_the_replay_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("log");
    let simulated = Command::new(BIN)
        .args(["simulate", "--requests", "400", "--seed", "11", "--data"])
        .arg(&log_dir)
        .stdout(Stdio::null())
        .status()
        .expect("simulate");
    assert!(simulated.success());
    let ledger = Ledger::open(
        &log_dir,
        TenantId::new("acme").unwrap(),
        LogOptions::default(),
    )
    .expect("open");
    let expected = replay_digests(ledger.log());
    let head = ledger.log().head().sequence;
    let records: Vec<(u64, String, Vec<u8>)> = ledger
        .log()
        .iter_from(1)
        .map(|record| {
            let committed =
                grantledger_ledger::committed(&record.expect("record")).expect("decodes");
            let subject =
                ledger_events_subject("acme", committed.envelope.event.kind().name()).unwrap();
            (
                committed.sequence,
                subject,
                serde_json::to_vec(&committed).unwrap(),
            )
        })
        .collect();

    let server = NatsServer::start();
    let (client, js) = connect(&server.url()).await;
    ensure_streams(&js, &StreamsConfig::default())
        .await
        .expect("streams");
    let _backfill = serve_backfill(client.clone(), ledger);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut projectors = Vec::new();
    let mut counters = BTreeMap::new();
    for (i, name) in PROJECTION_NAMES.iter().enumerate() {
        let mut config =
            ProjectorConfig::new(name, dir.path().join(name), server.url(), "acme".into());
        config.ack_wait = Duration::from_secs(1);
        config.idle_check = Duration::from_millis(500);
        // No timer comes due: the expiry duties stay out of this test.
        config.clock = Clock::manual(Timestamp(0)).0;
        config.chaos = Some(Chaos {
            seed: 7 + i as u64,
            nak_percent: 10,
            no_ack_percent: 10,
        });
        counters.insert(name.to_string(), config.counters.clone());
        let mut stopped = stopped.clone();
        projectors.push(tokio::spawn(projector_service::run(config, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }

    // Out of order in windows of 16, 30% sent twice (stored twice: another
    // Nats-Msg-Id), 3% never sent, the duplicates trailing by a window.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut order: Vec<usize> = (0..records.len()).collect();
    for window in order.chunks_mut(16) {
        for i in (1..window.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            window.swap(i, j);
        }
    }
    let mut plan = Vec::new();
    let mut late = Vec::new();
    for (n, &index) in order.iter().enumerate() {
        let roll = rng.below(100);
        if roll < 3 {
            continue;
        }
        plan.push((index, 0));
        if roll < 33 {
            late.push((index, 1));
        }
        if n % 16 == 15 {
            plan.append(&mut late);
        }
    }
    plan.append(&mut late);
    let mut acks = Vec::new();
    for (index, copy) in plan {
        let (sequence, subject, body) = &records[index];
        let mut headers = HeaderMap::new();
        let id = if copy == 0 {
            event_msg_id("acme", *sequence)
        } else {
            format!("acme:{sequence}:again")
        };
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert(SEQUENCE_HEADER, sequence.to_string().as_str());
        acks.push(
            js.publish_with_headers(subject.clone(), headers, body.clone().into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("stored");
    }

    let statuses = converge(&client, &js, || head, Duration::from_secs(120)).await;
    for (name, status) in &statuses {
        assert_eq!(
            &status.digest, &expected[name],
            "{name}: the running digest differs from the replay's"
        );
        let counters = &counters[name];
        assert!(
            counters.duplicates.load(Ordering::Relaxed) > 0,
            "{name}: no duplicate was delivered"
        );
        assert!(
            counters.gaps.load(Ordering::Relaxed) > 0,
            "{name}: no gap was met"
        );
        assert!(
            counters.backfilled.load(Ordering::Relaxed) > 0,
            "{name}: nothing was backfilled"
        );
    }
    stop.send(true).expect("stop");
    for projector in projectors {
        projector.await.expect("joined").expect("a clean stop");
    }
}

fn spawn_projector(name: &str, data: &Path, url: &str) -> Child {
    Command::new(BIN)
        .args(["project", name, "--data"])
        .arg(data)
        .args(["--nats", url, "--tenant", "acme", "--ack-wait", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start a projector")
}

/// The inputs of request `i`: auto-approved reads, denied exports,
/// two-approver writes (approved by two DBAs), and for every fourth
/// auto-approved grant a task-complete signal that revokes it.
fn inputs(i: usize) -> Vec<(String, String)> {
    let requests = requests_subject("acme").unwrap();
    let request = |entitlement: &str, resource: &str, actions: &str, extra: &str| {
        format!(
            r#"{{"request_id":"req-{i}","tenant":"acme","principal":{{"id":"user-{}","kind":"human"}},"entitlement":"{entitlement}","resource":"{resource}","actions":[{actions}],"justification":"load test"{extra}}}"#,
            i % 37
        )
    };
    match i % 5 {
        0 | 1 => {
            let mut out = vec![(
                requests,
                request(
                    "db-prod-read",
                    &format!("db/prod/db{}", i % 7),
                    r#""read""#,
                    "",
                ),
            )];
            if i % 4 == 0 {
                out.push((
                    signals_subject("acme").unwrap(),
                    format!(r#"{{"type":"task_complete","grant_id":"grant:req-{i}","by":"ci","detail":"done"}}"#),
                ));
            }
            out
        }
        2 => vec![(
            requests,
            request("repo-read", "git/acme/api", r#""read""#, ""),
        )],
        3 => vec![(
            requests,
            request("db-prod-export", "db/prod/db1", r#""read""#, ""),
        )],
        _ => {
            let approval = |approver: &str| {
                (
                    "grants.approvals.acme".to_owned(),
                    format!(
                        r#"{{"request_id":"req-{i}","approver":"{approver}","decision":"approve"}}"#
                    ),
                )
            };
            vec![
                (
                    requests,
                    request(
                        "db-prod-write",
                        "db/prod/db2",
                        r#""read","write""#,
                        r#","ticket":"CHG-1""#,
                    ),
                ),
                approval("dana"),
                approval("dora"),
            ]
        }
    }
}

/// The ledger's head, asked through its backfill responder.
async fn ledger_head(client: &async_nats::Client) -> Option<u64> {
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(
            "grantledger.backfill.acme",
            r#"{"from":1,"limit":1}"#.into(),
        ),
    )
    .await
    .ok()?
    .ok()?;
    let reply: ledger_service::BackfillReply = serde_json::from_slice(&reply.payload).ok()?;
    Some(reply.head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projectors_killed_with_sigkill_under_load_resume_and_converge_to_the_replay_digest() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger_dir = dir.path().join("ledger");
    let (client, js) = connect(&server.url()).await;
    let ledger = spawn_ledger(&ledger_dir, &server.url());
    let store = |name: &str| -> PathBuf { dir.path().join("projections").join(name) };
    let mut projectors: Vec<Child> = PROJECTION_NAMES
        .iter()
        .map(|name| spawn_projector(name, &store(name), &server.url()))
        .collect();

    const REQUESTS: usize = 2_000;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut kills = 0;
    let mut acks = Vec::new();
    let started = Instant::now();
    while js.get_stream("GRANT_INPUT").await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ledger made no streams"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..REQUESTS {
        for (subject, body) in inputs(i) {
            acks.push(js.publish(subject, body.into()).await.expect("publish"));
        }
        // About every 250 requests, one projector dies mid-stream (after a
        // random pause, so sometimes mid-batch) and starts again.
        if rng.below(250) == 0 {
            for ack in acks.drain(..) {
                ack.await.expect("input stored");
            }
            tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
            let victim = rng.below(PROJECTION_NAMES.len() as u64) as usize;
            projectors[victim].kill().expect("SIGKILL");
            projectors[victim].wait().expect("reaped");
            projectors[victim] = spawn_projector(
                PROJECTION_NAMES[victim],
                &store(PROJECTION_NAMES[victim]),
                &server.url(),
            );
            kills += 1;
        }
    }
    for ack in acks {
        ack.await.expect("input stored");
    }
    assert!(kills >= 3, "only {kills} kills: the test did not test");

    // The ledger's head stops moving once every input is decided.
    let mut head = 0;
    let mut still = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while still < 10 {
        let now = ledger_head(&client).await.unwrap_or(0);
        still = if now == head && now > 0 { still + 1 } else { 0 };
        head = now;
        assert!(Instant::now() < deadline, "the ledger did not settle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let statuses = converge(&client, &js, || head, Duration::from_secs(120)).await;

    // `why` asked of the running audit-evidence projector answers as the
    // log itself does (request 1995: a read of db/prod/db0 by user-34, not
    // revoked).
    let at = chrono::Utc::now().to_rfc3339();
    let why = |source: &[&str]| {
        let output = Command::new(BIN)
            .arg("why")
            .args(source)
            .args([
                "--principal",
                "user-34",
                "--resource",
                "db/prod/db0",
                "--at",
                &at,
                "--json",
            ])
            .output()
            .expect("why");
        assert!(
            output.status.success(),
            "why {source:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("json")
    };
    let running = why(&["--nats", &server.url()]);
    assert_eq!(running["had_access"], true, "{running}");
    assert_eq!(running["as_of_sequence"], head);

    for projector in projectors {
        terminate(projector);
    }
    terminate(ledger);
    assert_eq!(
        why(&["--data", ledger_dir.to_str().unwrap()]),
        running,
        "the running answer is the log's"
    );
    let replay = Command::new(BIN)
        .args(["replay", "--json", "--data"])
        .arg(&ledger_dir)
        .output()
        .expect("replay");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replay: serde_json::Value = serde_json::from_slice(&replay.stdout).expect("json");
    assert_eq!(
        replay["sequence"], head,
        "the replay's head is the one the projectors reached"
    );
    for (name, status) in statuses {
        assert_eq!(
            replay["digests"][&name]["digest"].as_str(),
            Some(status.digest.as_str()),
            "{name}: the running projector's digest at {head} differs from the replay's"
        );
    }
}

#[test]
fn an_unknown_projection_or_tenant_is_refused_by_name_before_connecting() {
    let output = Command::new(BIN)
        .args([
            "project",
            "grants-by-color",
            "--data",
            "/nonexistent",
            "--nats",
            "nats://127.0.0.1:1",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("grants-by-color") && stderr.contains("current-grants"),
        "{stderr}"
    );

    let output = Command::new(BIN)
        .args([
            "project",
            "current-grants",
            "--data",
            "/nonexistent",
            "--nats",
            "nats://127.0.0.1:1",
            "--tenant",
            "a.b",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--tenant") && stderr.contains("a.b"),
        "{stderr}"
    );
    assert!(!Path::new("/nonexistent").exists(), "nothing was created");

    // `why --nats` with no projector there says so.
    let output = Command::new(BIN)
        .args([
            "why",
            "--nats",
            "nats://127.0.0.1:1",
            "--principal",
            "p",
            "--resource",
            "r",
            "--at",
            "2026-01-01T00:00:00Z",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("127.0.0.1:1"));

    // A user without a password is refused by name, before connecting; the
    // password is read from the environment, where `ps` does not show it.
    for command in [&["project", "current-grants", "--data", "/nonexistent"][..], &["why", "--principal", "p", "--resource", "r", "--at", "2026-01-01T00:00:00Z"]] {
        let output = Command::new(BIN)
            .args(command)
            .args(["--nats", "nats://127.0.0.1:1", "--user", "projector"])
            .env_remove("GRANTLEDGER_NATS_PASSWORD")
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("`--user projector` needs a password") && stderr.contains("GRANTLEDGER_NATS_PASSWORD"),
            "{command:?}: {stderr}"
        );
    }
    assert!(!Path::new("/nonexistent").exists(), "nothing was created");
}

/// Every `RevocationConfirmed` in the log, by grant.
fn confirmations(log: &Log) -> BTreeMap<GrantId, usize> {
    let mut out = BTreeMap::new();
    for record in log.iter_from(1) {
        let committed = grantledger_ledger::committed(&record.expect("record")).expect("decodes");
        if let Event::RevocationConfirmed(confirmed) = committed.envelope.event {
            *out.entry(confirmed.grant_id).or_insert(0) += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_expire_on_the_injected_clock_and_a_hook_failing_30_percent_ends_every_one_confirmed_once()
 {
    const GRANTS: usize = 60;
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, js) = connect(&server.url()).await;
    // One manual clock for the ledger and the projectors: the test moves
    // time instead of sleeping through a TTL.
    let start = Timestamp(1_900_000_000_000);
    let (clock, time) = Clock::manual(start);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut config = ServiceConfig::new(dir.path().join("ledger"), server.url(), "acme".into());
    config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
    config.clock = clock.clone();
    let ledger = tokio::spawn(ledger_service::run(config, until_stopped()));
    let mut services = Vec::new();
    for name in ["current-grants", "expiry-timers"] {
        let mut config =
            ProjectorConfig::new(name, dir.path().join(name), server.url(), "acme".into());
        config.clock = clock.clone();
        config.expiry_tick = Duration::from_millis(50);
        services.push(tokio::spawn(projector_service::run(
            config,
            until_stopped(),
        )));
    }

    let started = Instant::now();
    while js.get_stream("GRANT_EXPIRY").await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ledger made no streams"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..GRANTS {
        let body = format!(
            r#"{{"request_id":"exp-{i}","tenant":"acme","principal":{{"id":"user-{i}","kind":"human"}},"entitlement":"db-prod-read","resource":"db/prod/db{}","actions":["read"],"justification":"expiry test","ttl_ms":600000}}"#,
            i % 3
        );
        js.publish(requests_subject("acme").unwrap(), body.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    // Every request issued: 1 catalog + 3 events each.
    let issued = 1 + 3 * GRANTS as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&client, "current-grants").await.map(|s| s.cursor) != Some(issued) {
        assert!(
            Instant::now() < deadline,
            "current-grants did not see every issue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expires_at = start.0 + 600_000;
    // `check` is false at `expires_at` exactly, with no revocation recorded
    // and no worker running; true one millisecond before.
    let check = |at_ms: i64| {
        let client = client.clone();
        async move {
            let body = format!(
                r#"{{"principal":"user-0","action":"read","resource":"db/prod/db0","at_ms":{at_ms}}}"#
            );
            let reply = client
                .request(query_subject("acme", "check").unwrap(), body.into())
                .await
                .expect("check");
            let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
            reply["allowed"]
                .as_bool()
                .unwrap_or_else(|| panic!("no answer: {reply}"))
        }
    };
    assert!(check(expires_at - 1).await, "a live grant is allowed");
    assert!(!check(expires_at).await, "false at expires_at exactly");
    assert_eq!(
        js.get_stream("GRANT_EXPIRY")
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .state
            .messages,
        0,
        "nothing is published before the time comes"
    );

    // The revocation worker: a hook failing on a seeded 30% of its calls.
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut worker_config = WorkerConfig::new(server.url(), "grants.expiry.acme.db".into());
    worker_config.backoff_initial = Duration::from_millis(20);
    worker_config.backoff_max = Duration::from_millis(100);
    worker_config.fetch_expiry = Duration::from_millis(200);
    let worker = Worker::connect(worker_config).await.expect("worker");
    let hook_calls = calls.clone();
    let hook_failures = failures.clone();
    let revoker = tokio::spawn(worker.run(
        move |_notice| {
            let n = hook_calls.fetch_add(1, Ordering::SeqCst);
            let mut rng =
                XorShift(0x5851_f42d_4c95_7f2d ^ (n + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let fail = rng.below(100) < 30;
            if fail {
                hook_failures.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                if fail {
                    Err("target unavailable".to_owned())
                } else {
                    Ok(())
                }
            }
        },
        until_stopped(),
    ));

    // Time comes: the expiry projector sends timers, the ledger records the
    // expiries, the notices go to the worker, the confirmations come back.
    time.set(Timestamp(expires_at));
    let debt_cleared = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = client
            .request(
                query_subject("acme", "debt").unwrap(),
                format!(r#"{{"at_ms":{}}}"#, expires_at + 1).into(),
            )
            .await
            .expect("debt");
        let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
        let debt = reply["debt"]
            .as_array()
            .unwrap_or_else(|| panic!("no debt answer: {reply}"))
            .len();
        let cursor = status(&client, "expiry-timers")
            .await
            .map(|s| s.cursor)
            .unwrap_or(0);
        // Each grant: expiry, then failures, then one confirmation.
        if debt == 0 && cursor > issued + GRANTS as u64 {
            break;
        }
        assert!(
            Instant::now() < debt_cleared,
            "{debt} grants still owed a confirmed revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late duplicates (a confirmation repeated after a redelivery) have had time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).expect("stop");
    ledger
        .await
        .expect("joined")
        .expect("ledger stopped cleanly");
    for service in services {
        service
            .await
            .expect("joined")
            .expect("projector stopped cleanly");
    }
    revoker.await.expect("joined");

    assert!(
        failures.load(Ordering::SeqCst) > 0,
        "the hook never failed: the test did not test"
    );
    let log = Log::open(&dir.path().join("ledger"), LogOptions::default()).expect("log");
    let confirmed = confirmations(&log);
    assert_eq!(confirmed.len(), GRANTS, "every grant confirmed revoked");
    assert!(
        confirmed.values().all(|&n| n == 1),
        "a grant confirmed twice: {confirmed:?}"
    );
    for i in 0..GRANTS {
        let grant = GrantId::for_request(&RequestId::new(format!("exp-{i}")).unwrap());
        assert!(confirmed.contains_key(&grant), "{grant} not confirmed");
    }
}

/// A scheduled request on the injected clock: decided at once but not
/// active, its start timer refused when it comes early, issued by the
/// expiry projector's start timer when the clock reaches the start, with
/// its TTL counted from the start; and a request left waiting for approvers
/// recorded expired at its request TTL and dropped from the pending view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_request_is_inactive_before_its_start_and_issued_when_the_injected_clock_reaches_it() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, js) = connect(&server.url()).await;
    let start = Timestamp(1_900_000_000_000);
    let starts_at = start.0 + 3_600_000;
    let (clock, time) = Clock::manual(start);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    // The default catalog, with a one-hour request TTL on the approved
    // production writes.
    let catalog = grantledger_core::DEFAULT_CATALOG.replace(
        "break_glass_ttl_max_s = 900   # 15 min, reviewed afterwards",
        "break_glass_ttl_max_s = 900   # 15 min, reviewed afterwards\nrequest_ttl_s = 3600",
    );
    assert_ne!(catalog, grantledger_core::DEFAULT_CATALOG);
    let mut config = ServiceConfig::new(dir.path().join("ledger"), server.url(), "acme".into());
    config.catalog = Some(catalog);
    config.clock = clock.clone();
    let ledger = tokio::spawn(ledger_service::run(config, until_stopped()));
    let mut services = Vec::new();
    for name in ["current-grants", "expiry-timers"] {
        let mut config =
            ProjectorConfig::new(name, dir.path().join(name), server.url(), "acme".into());
        config.clock = clock.clone();
        config.expiry_tick = Duration::from_millis(50);
        services.push(tokio::spawn(projector_service::run(config, until_stopped())));
    }
    let started = Instant::now();
    while js.get_stream("GRANT_EXPIRY").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "the ledger made no streams");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rejections = client
        .subscribe(grantledger_nats::rejections_subject("acme").unwrap())
        .await
        .expect("subscribe");

    // Allowed at once, to start in an hour, for ten minutes; and a write
    // that waits for two DBAs.
    let scheduled = format!(
        r#"{{"request_id":"window-1","tenant":"acme","principal":{{"id":"alice","kind":"human"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"maintenance window","ttl_ms":600000,"starts_at_ms":{starts_at}}}"#
    );
    let waiting = r#"{"request_id":"write-1","tenant":"acme","principal":{"id":"bob","kind":"human"},"entitlement":"db-prod-write","resource":"db/prod/orders","actions":["write"],"justification":"fix","ticket":"CHG-1"}"#;
    for body in [scheduled, waiting.to_owned()] {
        js.publish(requests_subject("acme").unwrap(), body.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    // Catalog, then a request and its decision each.
    let decided = 5;
    let wait_for = |name: &'static str, cursor: u64| {
        let client = client.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while status(&client, name).await.map(|s| s.cursor) != Some(cursor) {
                assert!(Instant::now() < deadline, "{name} did not reach {cursor}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("current-grants", decided).await;
    wait_for("expiry-timers", decided).await;
    let ask = |query: &'static str, body: String| {
        let client = client.clone();
        async move {
            let reply = client
                .request(query_subject("acme", query).unwrap(), body.into())
                .await
                .expect("query");
            serde_json::from_slice::<serde_json::Value>(&reply.payload).expect("json")
        }
    };
    let check = |at_ms: i64| {
        let ask = ask.clone();
        async move {
            let reply = ask(
                "check",
                format!(r#"{{"principal":"alice","action":"read","resource":"db/prod/orders","at_ms":{at_ms}}}"#),
            )
            .await;
            reply["allowed"].as_bool().unwrap_or_else(|| panic!("no answer: {reply}"))
        }
    };
    // Decided, not active: neither now nor at the start.
    assert!(!check(start.0).await);
    assert!(!check(starts_at).await);
    let listed = ask("scheduled", String::new()).await;
    assert_eq!(listed["scheduled"][0]["request_id"], "window-1", "{listed}");
    assert_eq!(listed["scheduled"][0]["starts_at"], starts_at, "{listed}");
    let pending = ask("pending", String::new()).await;
    assert_eq!(pending["pending"][0]["request_id"], "write-1", "{pending}");

    // One millisecond early, a start timer is refused by name (and the
    // projector sends none).
    time.set(Timestamp(starts_at - 1));
    js.publish(
        grantledger_nats::timers_subject("acme").unwrap(),
        r#"{"request_id":"window-1","kind":"start"}"#.into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let notice = tokio::time::timeout(Duration::from_secs(10), rejections.next())
        .await
        .expect("a rejection notice")
        .expect("a message");
    let notice: serde_json::Value = serde_json::from_slice(&notice.payload).expect("json");
    assert_eq!(notice["reason"], "start_not_due", "{notice}");
    assert!(notice["detail"].as_str().unwrap().contains("window-1"), "{notice}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&client, "current-grants").await.map(|s| s.cursor), Some(decided));
    assert!(!check(starts_at - 1).await);

    // The clock reaches the start (and the write's request TTL): the
    // projector sends both timers, the ledger issues the grant and records
    // the expiry.
    time.set(Timestamp(starts_at));
    wait_for("current-grants", decided + 2).await;
    wait_for("expiry-timers", decided + 2).await;
    assert!(check(starts_at).await, "active from its start");
    assert!(check(starts_at + 599_999).await);
    assert!(!check(starts_at + 600_000).await, "ten minutes from the start");
    assert_eq!(ask("scheduled", String::new()).await["scheduled"], serde_json::json!([]));
    assert_eq!(ask("pending", String::new()).await["pending"], serde_json::json!([]));

    stop.send(true).expect("stop");
    ledger.await.expect("joined").expect("ledger stopped cleanly");
    for service in services {
        service.await.expect("joined").expect("projector stopped cleanly");
    }
    let log = Log::open(&dir.path().join("ledger"), LogOptions::default()).expect("log");
    let mut issued = None;
    let mut expired = None;
    for record in log.iter_from(1) {
        let committed = grantledger_ledger::committed(&record.expect("record")).expect("decodes");
        match committed.envelope.event {
            Event::GrantIssued(grant) => issued = Some((committed.time, grant)),
            Event::RequestExpired(request) => expired = Some(request),
            _ => {}
        }
    }
    let (at, grant) = issued.expect("the scheduled grant was issued");
    assert_eq!(grant.request_id.as_str(), "window-1");
    assert_eq!((at.0, grant.issued_at.0, grant.expires_at.0), (starts_at, starts_at, starts_at + 600_000));
    let expired = expired.expect("the waiting request expired");
    assert_eq!(expired.request_id.as_str(), "write-1");
    assert_eq!(expired.reason, grantledger_events::RequestExpiryReason::RequestTtl);
    assert_eq!(expired.expired_at.0, start.0 + 3_600_000);
}
