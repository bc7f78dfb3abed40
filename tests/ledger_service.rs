//! The real `grantledger ledger` binary against a real nats-server: killed
//! with SIGKILL under load for a few rounds, then every input is decided
//! exactly once, the log verifies, and LEDGER_EVENTS holds exactly the log's
//! events in order (`Nats-Msg-Id` = sequence). SIGTERM exits 0.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use grantledger_testkit::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_grantledger");

fn start(data: &Path, url: &str) -> Child {
    Command::new(BIN)
        .args(["ledger", "--data"])
        .arg(data)
        .args(["--nats", url, "--tenant", "acme"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the ledger")
}

fn request(id: usize) -> String {
    format!(
        r#"{{"request_id":"req-{id}","tenant":"acme","principal":{{"id":"svc-{id}","kind":"workload","owner":"team-a"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"batch job"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_then_every_input_decided_once() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("ledger");
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(server.url())
        .await
        .expect("connect");
    let js = jetstream::new(client.clone());

    const ROUNDS: usize = 3;
    const PER_ROUND: usize = 300;
    let mut ledger = start(&data, &server.url());
    let mut next = 0;
    for round in 0..ROUNDS {
        // Wait for the streams (created by the ledger on its first start).
        let deadline = Instant::now() + Duration::from_secs(10);
        while js.get_stream("GRANT_INPUT").await.is_err() {
            assert!(Instant::now() < deadline, "the ledger made no streams");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut acks = Vec::new();
        for i in 0..PER_ROUND {
            let id = next + i;
            // Each request 1 to 3 times, no Nats-Msg-Id: only the ledger dedupes.
            for _ in 0..(1 + id % 3) {
                acks.push(
                    js.publish("grants.requests.acme", request(id).into())
                        .await
                        .expect("publish"),
                );
            }
            if i == PER_ROUND / 2 {
                tokio::time::sleep(Duration::from_millis(20 + 37 * round as u64)).await;
                ledger.kill().expect("SIGKILL");
                ledger.wait().expect("reaped");
                ledger = start(&data, &server.url());
            }
        }
        for ack in acks {
            ack.await.expect("input stored");
        }
        next += PER_ROUND;
    }

    // 1 catalog event + 3 per request (submitted, decision, issued).
    let expected = 1 + 3 * (ROUNDS * PER_ROUND) as u64;
    let mut stream = js.get_stream("LEDGER_EVENTS").await.expect("stream");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let messages = stream.info().await.expect("info").state.messages;
        if messages >= expected {
            assert_eq!(messages, expected, "nothing decided twice");
            break;
        }
        assert!(Instant::now() < deadline, "only {messages} of {expected} events after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a late duplicate the chance to (wrongly) add events, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Command::new("kill").args(["-TERM", &ledger.id().to_string()]).status().expect("kill -TERM");
    let status = ledger.wait().expect("reaped");
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert_eq!(stream.info().await.expect("info").state.messages, expected);

    // LEDGER_EVENTS holds exactly the log's events, in order.
    for sequence in 1..=expected {
        let message = stream.get_raw_message(sequence).await.expect("message");
        assert_eq!(message.headers.get("Nats-Msg-Id").expect("msg id").as_str(), sequence.to_string());
    }
    let verify = Command::new(BIN).args(["verify", "--data"]).arg(&data).output().expect("verify");
    assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
    let show = Command::new(BIN)
        .args(["show", "--from", &expected.to_string(), "--limit", "5", "--data"])
        .arg(&data)
        .output()
        .expect("show");
    assert!(show.status.success());
}
