//! Helpers shared by this crate's integration tests.

#![allow(dead_code)] // Each test file uses a different part.

use std::future::IntoFuture;
use std::time::Duration;

/// The bound on any one step of a test that talks to nats-server.
pub const STEP_WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test when it takes longer than [`STEP_WAIT`].
pub async fn within<T>(what: &str, future: impl IntoFuture<Output = T>) -> T {
    match tokio::time::timeout(STEP_WAIT, future.into_future()).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {STEP_WAIT:?}"),
    }
}

/// A plain client of `url`, connected within [`STEP_WAIT`].
pub async fn connect(url: &str) -> async_nats::Client {
    let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2));
    within("connect", options.connect(url))
        .await
        .expect("connect to the test's nats-server")
}

/// Publishes through JetStream and waits for the stream's ack.
pub async fn publish_acked(
    jetstream: &async_nats::jetstream::Context,
    subject: String,
    payload: &'static str,
) -> async_nats::jetstream::publish::PublishAck {
    let ack = within("publish", jetstream.publish(subject, payload.into()))
        .await
        .expect("publish");
    within("publish ack", ack)
        .await
        .expect("the stream acknowledges")
}
