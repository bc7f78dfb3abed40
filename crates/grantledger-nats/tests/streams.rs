//! `ensure_streams` against a real nats-server: it creates the streams, is
//! idempotent, and refuses every kind of wrongly configured stream.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use grantledger_nats::{
    GRANT_EXPIRY_STREAM, GRANT_INPUT_STREAM, LEDGER_EVENTS_STREAM, StreamsConfig, StreamsErrorKind,
    ensure_streams, ledger_events_subject, requests_subject, stream_configs,
};
use grantledger_testkit::NatsServer;

use common::{connect, publish_acked, within};

async fn stream_config(jetstream: &jetstream::Context, name: &str) -> stream::Config {
    let stream = within("stream info", jetstream.get_stream(name))
        .await
        .expect("the stream exists");
    stream.cached_info().config.clone()
}

async fn delete_all_streams(jetstream: &jetstream::Context) {
    for name in [
        GRANT_INPUT_STREAM,
        LEDGER_EVENTS_STREAM,
        GRANT_EXPIRY_STREAM,
        "OTHER",
    ] {
        // Not every case creates every stream: a missing one is fine.
        let _ = within("delete stream", jetstream.delete_stream(name)).await;
    }
}

#[tokio::test]
async fn creates_the_three_streams_from_scratch() {
    let server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    let config = StreamsConfig {
        duplicate_window: Duration::from_secs(30),
        replicas: 1,
    };

    within("ensure_streams", ensure_streams(&jetstream, &config))
        .await
        .expect("streams created");

    let input = stream_config(&jetstream, GRANT_INPUT_STREAM).await;
    assert_eq!(
        input.subjects,
        [
            "grants.requests.*",
            "grants.approvals.*",
            "grants.signals.*",
            "grants.revocations.*",
            "grants.timers.*",
            "grants.policy.*"
        ]
    );
    let events = stream_config(&jetstream, LEDGER_EVENTS_STREAM).await;
    assert_eq!(events.subjects, ["ledger.events.>", "ledger.checkpoints"]);
    assert!(events.deny_delete && events.deny_purge && !events.allow_rollup);
    let expiry = stream_config(&jetstream, GRANT_EXPIRY_STREAM).await;
    assert_eq!(expiry.subjects, ["grants.expiry.>"]);
    for created in [&input, &events, &expiry] {
        assert_eq!(
            created.storage,
            stream::StorageType::File,
            "{}",
            created.name
        );
        assert_eq!(
            created.duplicate_window,
            Duration::from_secs(30),
            "{}",
            created.name
        );
    }

    // The subjects the design names land in the streams.
    let ack = publish_acked(&jetstream, requests_subject("acme").unwrap(), "{}").await;
    assert_eq!(ack.stream, GRANT_INPUT_STREAM);
    let ack = publish_acked(
        &jetstream,
        ledger_events_subject("acme", "grant_issued").unwrap(),
        "{}",
    )
    .await;
    assert_eq!(ack.stream, LEDGER_EVENTS_STREAM);
}

#[tokio::test]
async fn a_second_call_changes_nothing() {
    let server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    let config = StreamsConfig::default();
    within("ensure_streams", ensure_streams(&jetstream, &config))
        .await
        .expect("first call");
    publish_acked(&jetstream, requests_subject("acme").unwrap(), "{}").await;
    let created_before = within("info", jetstream.get_stream(GRANT_INPUT_STREAM))
        .await
        .unwrap()
        .cached_info()
        .created;

    // Again, and from a second process's point of view (a new connection).
    within("ensure_streams", ensure_streams(&jetstream, &config))
        .await
        .expect("second call");
    let other = jetstream::new(connect(&server.url()).await);
    within("ensure_streams", ensure_streams(&other, &config))
        .await
        .expect("third call");

    let info = within("info", jetstream.get_stream(GRANT_INPUT_STREAM))
        .await
        .unwrap();
    assert_eq!(
        info.cached_info().created,
        created_before,
        "the stream was not recreated"
    );
    assert_eq!(
        info.cached_info().state.messages,
        1,
        "its message is still there"
    );
}

/// One wrongly configured stream, made before `ensure_streams` runs.
struct Misconfiguration {
    stream: &'static str,
    spoil: fn(&mut stream::Config),
    kind: StreamsErrorKind,
    setting: &'static str,
    expected: &'static str,
    found: &'static str,
}

#[tokio::test]
async fn refuses_each_kind_of_misconfiguration() {
    let rows = [
        Misconfiguration {
            stream: GRANT_INPUT_STREAM,
            spoil: |config| config.subjects = vec!["grants.>".into()],
            kind: StreamsErrorKind::Subjects,
            setting: "subjects",
            expected: "grants.requests.*, grants.approvals.*, grants.signals.*, grants.revocations.*, grants.timers.*, grants.policy.*",
            found: "grants.>",
        },
        Misconfiguration {
            stream: GRANT_INPUT_STREAM,
            spoil: |config| {
                config
                    .subjects
                    .retain(|subject| subject != "grants.timers.*")
            },
            kind: StreamsErrorKind::Subjects,
            setting: "subjects",
            expected: "grants.requests.*, grants.approvals.*, grants.signals.*, grants.revocations.*, grants.timers.*, grants.policy.*",
            found: "grants.requests.*, grants.approvals.*, grants.signals.*, grants.revocations.*, grants.policy.*",
        },
        Misconfiguration {
            stream: GRANT_INPUT_STREAM,
            spoil: |config| config.storage = stream::StorageType::Memory,
            kind: StreamsErrorKind::Storage,
            setting: "storage",
            expected: "file",
            found: "memory",
        },
        Misconfiguration {
            stream: GRANT_EXPIRY_STREAM,
            spoil: |config| config.retention = stream::RetentionPolicy::Interest,
            kind: StreamsErrorKind::Retention,
            setting: "retention",
            expected: "limits",
            found: "interest",
        },
        Misconfiguration {
            stream: GRANT_EXPIRY_STREAM,
            spoil: |config| config.duplicate_window = Duration::from_secs(5),
            kind: StreamsErrorKind::DuplicateWindow,
            setting: "duplicate_window",
            expected: "120s",
            found: "5s",
        },
        Misconfiguration {
            stream: GRANT_EXPIRY_STREAM,
            spoil: |config| config.no_ack = true,
            kind: StreamsErrorKind::NoAck,
            setting: "no_ack",
            expected: "false",
            found: "true",
        },
        Misconfiguration {
            stream: LEDGER_EVENTS_STREAM,
            spoil: |config| config.storage = stream::StorageType::Memory,
            kind: StreamsErrorKind::Storage,
            setting: "storage",
            expected: "file",
            found: "memory",
        },
        Misconfiguration {
            stream: LEDGER_EVENTS_STREAM,
            spoil: |config| config.deny_delete = false,
            kind: StreamsErrorKind::DenyDelete,
            setting: "deny_delete",
            expected: "true",
            found: "false",
        },
        Misconfiguration {
            stream: LEDGER_EVENTS_STREAM,
            spoil: |config| config.deny_purge = false,
            kind: StreamsErrorKind::DenyPurge,
            setting: "deny_purge",
            expected: "true",
            found: "false",
        },
        // A rollup header would let a producer purge a tenant's unread
        // requests. (The server refuses rollups on LEDGER_EVENTS by itself
        // while it denies purges.)
        Misconfiguration {
            stream: GRANT_INPUT_STREAM,
            spoil: |config| config.allow_rollup = true,
            kind: StreamsErrorKind::AllowRollup,
            setting: "allow_rollup_hdrs",
            expected: "false",
            found: "true",
        },
        Misconfiguration {
            stream: LEDGER_EVENTS_STREAM,
            spoil: |config| config.max_messages_per_subject = 10,
            kind: StreamsErrorKind::Limit,
            setting: "max_msgs_per_subject",
            expected: "unlimited",
            found: "10",
        },
        Misconfiguration {
            stream: LEDGER_EVENTS_STREAM,
            spoil: |config| config.max_age = Duration::from_secs(3600),
            kind: StreamsErrorKind::Limit,
            setting: "max_age",
            expected: "unlimited",
            found: "3600s",
        },
    ];
    let server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    let config = StreamsConfig::default();

    for row in rows {
        delete_all_streams(&jetstream).await;
        let mut bad = stream_configs(&config)
            .into_iter()
            .find(|candidate| candidate.name == row.stream)
            .unwrap();
        (row.spoil)(&mut bad);
        within(
            "create the bad stream",
            jetstream.create_stream(bad.clone()),
        )
        .await
        .unwrap_or_else(|error| panic!("cannot pre-create {}: {error}", row.stream));

        let error = within("ensure_streams", ensure_streams(&jetstream, &config))
            .await
            .expect_err("a wrongly configured stream is refused");

        let case = format!("{} `{}`: {error}", row.stream, row.setting);
        assert_eq!(error.kind(), row.kind, "{case}");
        assert_eq!(error.stream(), row.stream, "{case}");
        assert_eq!(error.setting(), Some(row.setting), "{case}");
        assert_eq!(error.expected(), Some(row.expected), "{case}");
        assert_eq!(error.found(), Some(row.found), "{case}");
        assert!(
            error.to_string().contains(&format!("`{}`", row.stream)),
            "{case}"
        );
        // Refusing means leaving it as it is.
        let after = stream_config(&jetstream, row.stream).await;
        assert_eq!(after.subjects, bad.subjects, "{case}");
        assert_eq!(after.storage, bad.storage, "{case}");
        assert_eq!(after.deny_purge, bad.deny_purge, "{case}");
    }
}

#[tokio::test]
async fn a_stream_whose_subjects_overlap_cannot_be_created() {
    let server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    let squatter = stream::Config {
        name: "OTHER".into(),
        subjects: vec!["ledger.>".into()],
        ..Default::default()
    };
    within("create", jetstream.create_stream(squatter))
        .await
        .expect("the other stream");

    let error = within(
        "ensure_streams",
        ensure_streams(&jetstream, &StreamsConfig::default()),
    )
    .await
    .expect_err("overlapping subjects are refused by the server");

    assert_eq!(error.kind(), StreamsErrorKind::Create, "{error}");
    assert_eq!(error.stream(), LEDGER_EVENTS_STREAM);
    assert!(
        error
            .to_string()
            .starts_with("cannot create stream `LEDGER_EVENTS`: "),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_jetstream_is_a_lookup_error() {
    let server = NatsServer::start();
    // No JetStream answers in a domain that does not exist.
    let jetstream = jetstream::with_domain(connect(&server.url()).await, "nowhere");

    let error = within(
        "ensure_streams",
        ensure_streams(&jetstream, &StreamsConfig::default()),
    )
    .await
    .expect_err("nobody answers");

    assert_eq!(error.kind(), StreamsErrorKind::Lookup, "{error}");
    assert_eq!(error.stream(), GRANT_INPUT_STREAM);
    assert!(
        error
            .to_string()
            .starts_with("cannot look up stream `GRANT_INPUT`: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_sealed_stream_is_refused() {
    let server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    let config = StreamsConfig::default();
    within("ensure_streams", ensure_streams(&jetstream, &config))
        .await
        .expect("streams created");
    // A stream can only be sealed by an update.
    let mut sealed = stream_configs(&config)[2].clone();
    sealed.sealed = true;
    within("seal", jetstream.update_stream(sealed))
        .await
        .expect("the stream is sealed");

    let error = within("ensure_streams", ensure_streams(&jetstream, &config))
        .await
        .expect_err("nothing can be added to a sealed stream");

    assert_eq!(error.kind(), StreamsErrorKind::Sealed, "{error}");
    assert_eq!(error.stream(), GRANT_EXPIRY_STREAM);
    assert_eq!(
        (error.expected(), error.found()),
        (Some("false"), Some("true"))
    );
}

#[tokio::test]
async fn streams_made_for_another_deployment_config_are_refused() {
    let server = NatsServer::start();
    let jetstream = jetstream::new(connect(&server.url()).await);
    let single = StreamsConfig::default();
    within("ensure_streams", ensure_streams(&jetstream, &single))
        .await
        .expect("streams created");

    let clustered = StreamsConfig {
        replicas: 3,
        ..single.clone()
    };
    let error = within("ensure_streams", ensure_streams(&jetstream, &clustered))
        .await
        .expect_err("R1 streams where R3 is configured");
    assert_eq!(error.kind(), StreamsErrorKind::Replicas, "{error}");
    assert_eq!(error.stream(), GRANT_INPUT_STREAM);
    assert_eq!((error.expected(), error.found()), (Some("3"), Some("1")));

    let longer_window = StreamsConfig {
        duplicate_window: Duration::from_secs(600),
        ..single
    };
    let error = within("ensure_streams", ensure_streams(&jetstream, &longer_window))
        .await
        .expect_err("another duplicate window");
    assert_eq!(error.kind(), StreamsErrorKind::DuplicateWindow, "{error}");
    assert_eq!(
        error.to_string(),
        "stream `GRANT_INPUT` is misconfigured: `duplicate_window` is `120s`, expected `600s`"
    );
}
