//! The real `grantledger ledger` binary against a real nats-server:
//! - 10,000 requests, each published 1 to 3 times in random order, are each
//!   decided exactly once;
//! - killed with SIGKILL at random moments under load, 10 rounds: after the
//!   restarts every input is decided exactly once, the log verifies, and
//!   LEDGER_EVENTS holds exactly the log's events in order;
//! - nats-server restarted under load: nothing lost, nothing decided twice;
//! - events committed but never published (a crash between the two) are
//!   published at the next start;
//! - SIGTERM exits 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use async_nats::jetstream;
use grantledger_events::{Causation, Event, TenantId, Timestamp};
use grantledger_ledger::{Input, Ledger};
use grantledger_log::{Log, LogOptions};
use grantledger_testkit::NatsServer;

mod common;

use common::{XorShift, spawn_ledger, terminate};

const BIN: &str = env!("CARGO_BIN_EXE_grantledger");

fn request(id: usize) -> String {
    format!(
        r#"{{"request_id":"req-{id}","tenant":"acme","principal":{{"id":"svc-{id}","kind":"workload","owner":"team-a"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"batch job"}}"#
    )
}

async fn connect(url: &str) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());
    (client, js)
}

async fn wait_for_streams(js: &jetstream::Context) {
    let deadline = Instant::now() + Duration::from_secs(10);
    // The ledger creates GRANT_INPUT, LEDGER_EVENTS, then GRANT_EXPIRY.
    while js.get_stream("GRANT_INPUT").await.is_err()
        || js.get_stream("LEDGER_EVENTS").await.is_err()
        || js.get_stream("GRANT_EXPIRY").await.is_err()
    {
        assert!(Instant::now() < deadline, "the ledger made no streams");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until LEDGER_EVENTS holds `expected` messages, failing on more
/// (something decided twice) or on a timeout.
async fn wait_for_events(js: &jetstream::Context, expected: u64, within: Duration) {
    let mut stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
    let deadline = Instant::now() + within;
    loop {
        let messages = match stream.info().await {
            Ok(info) => info.state.messages,
            Err(_) => 0, // the server restarting
        };
        assert!(messages <= expected, "{messages} events, expected {expected}: something was decided twice");
        if messages == expected {
            break;
        }
        assert!(Instant::now() < deadline, "only {messages} of {expected} events after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a late duplicate the chance to (wrongly) add events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stream.info().await.expect("info").state.messages, expected, "events after the count settled");
}

/// Decides and commits requests `ids` straight into the log, as the service
/// would, with no NATS involved: the state a crash between the commit and
/// the publish leaves.
fn commit_without_the_service(data: &Path, ids: std::ops::Range<usize>) {
    let mut ledger = Ledger::open(data, TenantId::new("acme").expect("tenant"), LogOptions::default()).expect("open");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let mut batch = ledger.begin(Timestamp(now.as_millis() as i64)).expect("batch");
    for id in ids {
        let request: grantledger_events::SubmitRequest = serde_json::from_str(&request(id)).expect("request");
        batch
            .stage(Input {
                command: grantledger_core::Command::Submit(request),
                producer: "test".to_owned(),
                causation: Causation::Input(format!("test:{id}")),
            })
            .expect("staged");
    }
    batch.commit().expect("committed");
}

/// Decisions per request id in the log, after checking the chain.
fn decisions_per_request(data: &Path) -> BTreeMap<String, usize> {
    let verify = Command::new(BIN).args(["verify", "--data"]).arg(data).output().expect("verify");
    assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
    let log = Log::open_read_only(data).expect("open the log");
    let mut decisions = BTreeMap::new();
    for record in log.iter_from(1) {
        let record = record.expect("record");
        let envelope =
            grantledger_ledger::decode_record(record.header.version, record.header.sequence, &record.body).expect("decodes");
        if let Event::DecisionRecorded(decision) = &envelope.event {
            *decisions.entry(decision.request_id.as_str().to_owned()).or_insert(0) += 1;
        }
    }
    decisions
}

fn assert_each_decided_once(decisions: &BTreeMap<String, usize>, requests: usize) {
    assert_eq!(decisions.len(), requests, "every request decided");
    for i in 0..requests {
        let id = format!("req-{i}");
        assert_eq!(decisions.get(&id), Some(&1), "`{id}` decided exactly once");
    }
}

/// LEDGER_EVENTS holds each of the log's records exactly once, in any
/// order (a NATS restart can reorder in-flight publishes), each with its
/// sequence in `Grantledger-Sequence`, `acme:<sequence>` as `Nats-Msg-Id`
/// and the record's hash in the body.
async fn assert_stream_holds_log(js: &jetstream::Context, data: &Path) {
    let mut stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
    let held = stream.info().await.expect("info").state.messages;
    let log = Log::open_read_only(data).expect("open the log");
    let mut hashes = BTreeMap::new();
    for record in log.iter_from(1) {
        let record = record.expect("record");
        let hash: String = record.header.hash.iter().map(|b| format!("{b:02x}")).collect();
        hashes.insert(record.header.sequence, hash);
    }
    assert_eq!(held, hashes.len() as u64, "as many events in the stream as records in the log");
    for position in 1..=held {
        let message = stream.get_raw_message(position).await.expect("message");
        let sequence: u64 =
            message.headers.get("Grantledger-Sequence").expect("sequence").as_str().parse().expect("a number");
        assert_eq!(message.headers.get("Nats-Msg-Id").expect("msg id").as_str(), format!("acme:{sequence}"));
        let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        let hash = hashes.remove(&sequence).unwrap_or_else(|| panic!("record {sequence} twice in the stream"));
        assert_eq!(body["hash"], hash.as_str(), "stream message for {sequence} is the log's record {sequence}");
    }
    assert!(hashes.is_empty(), "records missing from the stream: {:?}", hashes.keys().collect::<Vec<_>>());
}

/// LEDGER_EVENTS holds exactly the log's records, in order, each with its
/// sequence in `Grantledger-Sequence` and `acme:<sequence>` as `Nats-Msg-Id`.
async fn assert_stream_mirrors_log(js: &jetstream::Context, data: &Path) {
    let stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
    let log = Log::open_read_only(data).expect("open the log");
    let head = log.head().sequence;
    for record in log.iter_from(1) {
        let record = record.expect("record");
        let sequence = record.header.sequence;
        let message = stream.get_raw_message(sequence).await.expect("message");
        assert_eq!(message.headers.get("Nats-Msg-Id").expect("msg id").as_str(), format!("acme:{sequence}"));
        assert_eq!(message.headers.get("Grantledger-Sequence").expect("sequence").as_str(), sequence.to_string());
        let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        let hash: String = record.header.hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(body["hash"], hash.as_str(), "stream message {sequence} is the log's record {sequence}");
    }
    assert_eq!(stream.get_raw_message(head + 1).await.ok().map(|m| m.subject.to_string()), None, "nothing beyond the head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_published_one_to_three_times_in_random_order_are_each_decided_once() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let (_client, js) = connect(&server.url()).await;
    let ledger = spawn_ledger(&data, &server.url());
    wait_for_streams(&js).await;

    const REQUESTS: usize = 10_000;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut messages: Vec<usize> =
        (0..REQUESTS).flat_map(|id| std::iter::repeat_n(id, 1 + rng.below(3) as usize)).collect();
    rng.shuffle(&mut messages);
    let published = messages.len();
    // No Nats-Msg-Id: JetStream's duplicate window does not help; only the
    // ledger's own request-id index stands between a copy and a second decision.
    let mut acks = Vec::with_capacity(1024);
    for id in messages {
        acks.push(js.publish("grants.requests.acme", request(id).into()).await.expect("publish"));
        if acks.len() == 1024 {
            for ack in acks.drain(..) {
                ack.await.expect("input stored");
            }
        }
    }
    for ack in acks {
        ack.await.expect("input stored");
    }

    // 1 catalog event + 3 per request (submitted, decision, issued).
    wait_for_events(&js, 1 + 3 * REQUESTS as u64, Duration::from_secs(240)).await;
    terminate(ledger);
    assert!(published > REQUESTS * 3 / 2, "the test published duplicates ({published} messages)");
    assert_each_decided_once(&decisions_per_request(&data), REQUESTS);
    assert_stream_mirrors_log(&js, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_under_load_ten_rounds_then_every_input_decided_once() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let (_client, js) = connect(&server.url()).await;

    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 300;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut ledger = spawn_ledger(&data, &server.url());
    wait_for_streams(&js).await;
    let mut next = 0;
    for _round in 0..ROUNDS {
        // The kill lands at a random point of the round's publishing, after
        // a random pause: sometimes mid-batch, mid-publish or mid-ack.
        let kill_after = rng.below(PER_ROUND as u64) as usize;
        let pause = Duration::from_millis(rng.below(150));
        let mut acks = Vec::new();
        for i in 0..PER_ROUND {
            let id = next + i;
            // Each request 1 to 3 times, no Nats-Msg-Id: only the ledger dedupes.
            for _ in 0..(1 + id % 3) {
                acks.push(js.publish("grants.requests.acme", request(id).into()).await.expect("publish"));
            }
            if i == kill_after {
                tokio::time::sleep(pause).await;
                ledger.kill().expect("SIGKILL");
                ledger.wait().expect("reaped");
                ledger = spawn_ledger(&data, &server.url());
            }
        }
        for ack in acks {
            ack.await.expect("input stored");
        }
        next += PER_ROUND;
    }

    wait_for_events(&js, 1 + 3 * (ROUNDS * PER_ROUND) as u64, Duration::from_secs(120)).await;
    terminate(ledger);
    assert_each_decided_once(&decisions_per_request(&data), ROUNDS * PER_ROUND);
    assert_stream_mirrors_log(&js, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_under_load_loses_nothing_and_decides_nothing_twice() {
    let mut server = NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let (_client, js) = connect(&url).await;
    let ledger = spawn_ledger(&data, &url);
    wait_for_streams(&js).await;

    // A producer that keeps publishing while the server goes away and comes
    // back: it retries each request until JetStream acknowledges it, with
    // Nats-Msg-Id = request id as a real producer would.
    const REQUESTS: usize = 2_000;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producer = {
        let js = js.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut retried = 0usize;
            for id in 0..REQUESTS {
                loop {
                    let mut headers = HeaderMap::new();
                    headers.insert("Nats-Msg-Id", format!("req-{id}").as_str());
                    let sent = js.publish_with_headers("grants.requests.acme", headers, request(id).into()).await;
                    let acked = match sent {
                        Ok(ack) => tokio::time::timeout(Duration::from_secs(2), ack).await.ok().and_then(|a| a.ok()),
                        Err(_) => None,
                    };
                    if acked.is_some() {
                        break;
                    }
                    retried += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sent.store(id + 1, std::sync::atomic::Ordering::SeqCst);
            }
            retried
        })
    };
    // Restart the server twice while the producer and the ledger are busy.
    for restart in 1..=2 {
        // Restart once a third, then two thirds, of the requests are in.
        while sent.load(std::sync::atomic::Ordering::SeqCst) < restart * REQUESTS / 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server = tokio::task::spawn_blocking(move || {
            server.restart();
            server
        })
        .await
        .expect("restart");
    }
    let at_second_restart = sent.load(std::sync::atomic::Ordering::SeqCst);
    let retried = producer.await.expect("producer");
    assert!(at_second_restart < REQUESTS, "the second restart came while the producer was still publishing");

    // Inputs whose acks were lost in a restart come back after ack_wait (30 s)
    // as duplicates; the count must not move when they do.
    wait_for_events(&js, 1 + 3 * REQUESTS as u64, Duration::from_secs(120)).await;
    terminate(ledger);
    assert_each_decided_once(&decisions_per_request(&data), REQUESTS);
    assert_stream_holds_log(&js, &data).await;
    eprintln!("producer retried {retried} publishes across the restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_but_never_published_are_published_at_the_next_start() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let (_client, js) = connect(&server.url()).await;
    let ledger = spawn_ledger(&data, &server.url());
    wait_for_streams(&js).await;
    for id in 0..20 {
        js.publish("grants.requests.acme", request(id).into()).await.expect("publish").await.expect("stored");
    }
    wait_for_events(&js, 1 + 3 * 20, Duration::from_secs(30)).await;
    terminate(ledger);

    // A crash after the commit and before the publish leaves records in the
    // log that the stream never saw: make exactly that state.
    commit_without_the_service(&data, 20..25);
    let ledger = spawn_ledger(&data, &server.url());
    wait_for_events(&js, 1 + 3 * 25, Duration::from_secs(30)).await;
    terminate(ledger);
    assert_each_decided_once(&decisions_per_request(&data), 25);
    assert_stream_mirrors_log(&js, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holes_a_nats_restart_left_in_ledger_events_are_filled_at_the_next_start() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let (_client, js) = connect(&server.url()).await;
    let ledger = spawn_ledger(&data, &server.url());
    wait_for_streams(&js).await;
    for id in 0..10 {
        js.publish("grants.requests.acme", request(id).into()).await.expect("publish").await.expect("stored");
    }
    wait_for_events(&js, 1 + 3 * 10, Duration::from_secs(30)).await;
    terminate(ledger);

    // Five more requests committed (records 32..=46), of which only the last
    // record reached the stream: what a restart of nats-server can leave
    // when publishes in flight on the old connection are lost and later
    // ones reach the new server.
    commit_without_the_service(&data, 10..15);
    let show = Command::new(BIN).args(["show", "--from", "46", "--limit", "1", "--data"]).arg(&data).output().expect("show");
    assert!(show.status.success());
    let line = String::from_utf8(show.stdout).expect("utf-8");
    let committed: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    assert_eq!(committed["sequence"], 46);
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "acme:46");
    headers.insert("Grantledger-Sequence", "46");
    // The last of a request's three records: its issuance.
    let subject = "ledger.events.acme.grant_issued";
    js.publish_with_headers(subject, headers, line.trim().to_owned().into()).await.expect("publish").await.expect("stored");

    let ledger = spawn_ledger(&data, &server.url());
    wait_for_events(&js, 1 + 3 * 15, Duration::from_secs(30)).await;
    terminate(ledger);
    assert_stream_holds_log(&js, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_signs_checkpoints_keeps_publishes_and_writes_them() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let (key, public, file) = (dir.path().join("ledger.key"), dir.path().join("ledger.pub"), dir.path().join("checkpoint.txt"));
    let out = Command::new(BIN)
        .args(["keys", "generate", "--name", "ledger.example.com/acme", "--private"])
        .arg(&key)
        .arg("--public")
        .arg(&public)
        .output()
        .expect("keys");
    assert!(out.status.success());
    let ledger = Command::new(BIN)
        .args(["ledger", "--data"])
        .arg(&data)
        .args(["--nats", &server.url(), "--tenant", "acme", "--checkpoint-every", "10", "--checkpoint-key"])
        .arg(&key)
        .arg("--checkpoint-file")
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the ledger");
    let (_client, js) = connect(&server.url()).await;
    wait_for_streams(&js).await;
    for id in 0..10 {
        js.publish("grants.requests.acme", request(id).into()).await.expect("publish").await.expect("stored");
    }
    // 31 records; a checkpoint after each batch that brings 10 or more new
    // records (how the inputs fall into batches decides how many).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
        let events = stream.info_with_subjects("ledger.events.acme.>").await.expect("info");
        let held: usize = events.map(|entry| entry.map(|(_, n)| n).unwrap_or(0)).collect::<Vec<_>>().await.iter().sum();
        if held == 31 && file.exists() {
            break;
        }
        assert!(Instant::now() < deadline, "{held} of 31 events, checkpoint file there: {}", file.exists());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    terminate(ledger);

    let written = std::fs::read_to_string(&file).expect("the checkpoint file");
    let size: u64 = written.lines().nth(1).expect("a size line").parse().expect("a number");
    assert!((10..=31).contains(&size), "checkpointed at {size}: {written}");
    let stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
    let published = stream.get_last_raw_message_by_subject("ledger.checkpoints").await.expect("a published checkpoint");
    assert_eq!(std::str::from_utf8(&published.payload).expect("text"), written);

    // The auditor's view: the log extends it, and evidence is proved against
    // the copy the log kept.
    let verify = Command::new(BIN)
        .args(["verify", "--data"])
        .arg(&data)
        .arg("--checkpoint")
        .arg(&file)
        .arg("--public-key")
        .arg(&public)
        .output()
        .expect("verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let bundle = Command::new(BIN).args(["evidence", "--grant", "grant:req-3", "--data"]).arg(&data).output().expect("evidence");
    assert!(bundle.status.success(), "{}", String::from_utf8_lossy(&bundle.stderr));
    let bundle_file = dir.path().join("bundle.json");
    std::fs::write(&bundle_file, &bundle.stdout).expect("write");
    let checked = Command::new(BIN).arg("verify-bundle").arg(&bundle_file).arg("--public-key").arg(&public).output().expect("verify-bundle");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
}

#[test]
fn an_identity_issuers_file_that_does_not_load_is_refused_by_name_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuers = dir.path().join("issuers.toml");
    std::fs::write(&issuers, "this is = not [toml").expect("write");
    let data = dir.path().join("ledger");
    let output = Command::new(BIN)
        .args(["ledger", "--data"])
        .arg(&data)
        .args(["--nats", "nats://127.0.0.1:1", "--identity-issuers"])
        .arg(&issuers)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--identity-issuers") && stderr.contains("issuers.toml"), "{stderr}");
    assert!(!data.exists(), "nothing was created");
}
