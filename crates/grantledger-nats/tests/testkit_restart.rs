//! The test helper's restart, seen by a JetStream client: acknowledged
//! messages survive a restart and a kill, and a connected client carries on.
//! (These live here because this crate has the client; the testkit has none.)

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use grantledger_nats::{GRANT_INPUT_STREAM, StreamsConfig, ensure_streams, requests_subject};
use grantledger_testkit::NatsServer;

use common::{connect, publish_acked, within};

async fn stored_payload(jetstream: &jetstream::Context, sequence: u64) -> String {
    let stream = within("get stream", jetstream.get_stream(GRANT_INPUT_STREAM))
        .await
        .expect("stream");
    let message = within("get message", stream.get_raw_message(sequence))
        .await
        .expect("message");
    String::from_utf8(message.payload.to_vec()).expect("utf-8 payload")
}

async fn message_count(jetstream: &jetstream::Context) -> u64 {
    let stream = within("get stream", jetstream.get_stream(GRANT_INPUT_STREAM))
        .await
        .expect("stream");
    stream.cached_info().state.messages
}

#[tokio::test]
async fn restart_keeps_jetstream_data() {
    let mut server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    within(
        "ensure_streams",
        ensure_streams(&jetstream, &StreamsConfig::default()),
    )
    .await
    .unwrap();
    let ack = publish_acked(
        &jetstream,
        requests_subject("acme").unwrap(),
        "before restart",
    )
    .await;

    server.restart();

    let jetstream = jetstream::new(connect(&server.url()).await);
    assert_eq!(message_count(&jetstream).await, 1);
    assert_eq!(
        stored_payload(&jetstream, ack.sequence).await,
        "before restart"
    );
}

#[tokio::test]
async fn kill_then_restart_keeps_acknowledged_messages() {
    let mut server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    within(
        "ensure_streams",
        ensure_streams(&jetstream, &StreamsConfig::default()),
    )
    .await
    .unwrap();
    let ack = publish_acked(&jetstream, requests_subject("acme").unwrap(), "before kill").await;

    // SIGKILL: the process dies, the operating system keeps what it wrote.
    server.kill();
    server.restart();

    let jetstream = jetstream::new(connect(&server.url()).await);
    assert_eq!(message_count(&jetstream).await, 1);
    assert_eq!(
        stored_payload(&jetstream, ack.sequence).await,
        "before kill"
    );
}

#[tokio::test]
async fn a_connected_client_reconnects_after_a_restart() {
    let mut server = NatsServer::start();
    let client = connect(&server.url()).await;
    let jetstream = jetstream::new(client.clone());
    within(
        "ensure_streams",
        ensure_streams(&jetstream, &StreamsConfig::default()),
    )
    .await
    .unwrap();
    publish_acked(&jetstream, requests_subject("acme").unwrap(), "first").await;

    server.restart();

    // The same client, once it has reconnected: poll with a deadline.
    let deadline = Instant::now() + common::STEP_WAIT;
    loop {
        let subject = requests_subject("acme").unwrap();
        let published = async {
            let ack = jetstream.publish(subject, "second".into()).await.ok()?;
            ack.await.ok()
        };
        if let Ok(Some(ack)) = tokio::time::timeout(Duration::from_secs(1), published).await {
            assert_eq!(ack.sequence, 2, "the stream goes on where it was");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not reconnect within {:?}",
            common::STEP_WAIT
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored_payload(&jetstream, 1).await, "first");
}
