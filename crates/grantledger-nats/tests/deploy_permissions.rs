//! The shipped `deploy/nats-server.conf`, on a real nats-server: each role
//! can do its job, and the server refuses what the role may not do.
//!
//! A refusal is seen the way a client sees it: the server reports a
//! permission violation (`-ERR 'Permissions Violation for ...'`), delivered
//! by async-nats as a server-error event, and nothing reaches the stream.

mod common;

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use futures::StreamExt;
use grantledger_nats::{
    GRANT_EXPIRY_STREAM, GRANT_INPUT_STREAM, LEDGER_EVENTS_STREAM, StreamsConfig, ensure_streams,
};
use grantledger_testkit::NatsServer;
use tokio::sync::mpsc;

use common::{STEP_WAIT, publish_acked, within};

/// A role of the shipped config: its user and the inbox prefix it must use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Api,
    PolicyAuthor,
    Ledger,
    ExpiryProjector,
    Projector,
    RevocationWorker,
    Admin,
}

impl Role {
    const NOT_ADMIN: [Role; 7] = [
        Role::Producer,
        Role::Api,
        Role::PolicyAuthor,
        Role::Ledger,
        Role::ExpiryProjector,
        Role::Projector,
        Role::RevocationWorker,
    ];

    fn user(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Api => "api",
            Role::PolicyAuthor => "policy_author",
            Role::Ledger => "ledger",
            Role::ExpiryProjector => "expiry_projector",
            Role::Projector => "projector",
            Role::RevocationWorker => "revocation_worker",
            Role::Admin => "admin",
        }
    }

    /// A request this role may send and the server always answers, used to
    /// wait until the server has processed everything sent before it.
    fn round_trip_subject(self) -> &'static str {
        match self {
            // Four tokens: captured by no stream, so "no responders" answers.
            Role::Producer | Role::Api => "grants.requests.round.trip",
            Role::PolicyAuthor => "grants.policy.round.trip",
            Role::Ledger | Role::ExpiryProjector | Role::Projector => {
                "$JS.API.STREAM.INFO.LEDGER_EVENTS"
            }
            Role::RevocationWorker => "$JS.API.STREAM.INFO.GRANT_EXPIRY",
            Role::Admin => "$JS.API.INFO",
        }
    }

    fn inbox_prefix(self) -> &'static str {
        match self {
            Role::Producer | Role::Api | Role::Admin => "_INBOX",
            Role::PolicyAuthor => "_INBOX_POLICY",
            Role::Ledger => "_INBOX_LEDGER",
            Role::ExpiryProjector => "_INBOX_EXPIRY",
            Role::Projector => "_INBOX_PROJECTOR",
            Role::RevocationWorker => "_INBOX_WORKER",
        }
    }
}

/// A nats-server running the shipped config.
struct Deployment {
    server: NatsServer,
    config_text: String,
}

impl Deployment {
    fn start() -> Deployment {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats-server.conf");
        let config_text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read `{}`: {error}", path.display()));
        // The test helper gives the server its own store directory on the
        // command line, and nats-server refuses `store_dir` twice. The listen
        // address needs no edit: the command line overrides it.
        let for_test: String = config_text
            .lines()
            .filter(|line| !line.trim_start().starts_with("store_dir:"))
            .map(|line| format!("{line}\n"))
            .collect();
        Deployment {
            server: NatsServer::start_with_config(&for_test),
            config_text,
        }
    }

    /// The role's password, read from the config so the test follows it.
    fn password(&self, role: Role) -> String {
        let user_field = format!("user: {},", role.user());
        let line = self
            .config_text
            .lines()
            .find(|line| line.contains(&user_field))
            .unwrap_or_else(|| panic!("no user `{}` in the config", role.user()));
        let after = line
            .split("password: \"")
            .nth(1)
            .expect("a quoted password");
        after.split('"').next().expect("a closing quote").to_owned()
    }

    async fn connect(&self, role: Role) -> Session {
        let (events_sender, events) = mpsc::channel(SERVER_ERRORS_MAX);
        let options = ConnectOptions::new()
            .user_and_password(role.user().to_owned(), self.password(role))
            .custom_inbox_prefix(role.inbox_prefix())
            .connection_timeout(Duration::from_secs(2))
            // async-nats sends JetStream API calls as plain requests, bounded
            // by this, not by the JetStream context's timeout.
            .request_timeout(Some(JETSTREAM_REQUEST_WAIT))
            .event_callback(move |event| {
                let events_sender = events_sender.clone();
                async move {
                    if let Event::ServerError(error) = event {
                        // A full channel only loses errors no test waits for.
                        let _ = events_sender.try_send(error.to_string());
                    }
                }
            });
        let client = within("connect", options.connect(self.server.url()))
            .await
            .unwrap_or_else(|error| panic!("`{}` cannot connect: {error}", role.user()));
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(JETSTREAM_REQUEST_WAIT)
            .build(client.clone());
        Session {
            role,
            client,
            jetstream,
            server_errors: events,
        }
    }
}

/// The server errors one session keeps, at most.
const SERVER_ERRORS_MAX: usize = 256;

/// JetStream requests that the server drops for lack of permission get no
/// answer: they end at this timeout.
const JETSTREAM_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// One role's connection, and the server errors reported to it.
struct Session {
    role: Role,
    client: Client,
    jetstream: jetstream::Context,
    server_errors: mpsc::Receiver<String>,
}

impl Session {
    /// Waits until the server reports a permission violation for
    /// `operation` (`Publish` or `Subscription`) on `subject`.
    async fn expect_violation(&mut self, operation: &str, subject: &str) {
        let wanted =
            format!("permissions violation for {operation} to \"{subject}\"").to_lowercase();
        let role = self.role;
        let search = async {
            while let Some(error) = self.server_errors.recv().await {
                if error.to_lowercase().contains(&wanted) {
                    return;
                }
            }
            panic!("the connection of `{}` closed", role.user());
        };
        if tokio::time::timeout(STEP_WAIT, search).await.is_err() {
            panic!(
                "no permission violation for `{}`: {operation} to `{subject}`",
                role.user()
            );
        }
    }

    /// Publishes on plain NATS and waits for the server to refuse it.
    async fn expect_publish_refused(&mut self, subject: &str) {
        within(
            "publish",
            self.client.publish(subject.to_owned(), "refused".into()),
        )
        .await
        .expect("the client sends it");
        within("flush", self.client.flush()).await.expect("flush");
        self.expect_violation("Publish", subject).await;
    }

    /// Subscribes and waits for the server to refuse it.
    async fn expect_subscribe_refused(&mut self, subject: &str) {
        // The client's SUB always succeeds locally; the refusal comes back.
        let _subscription = within("subscribe", self.client.subscribe(subject.to_owned()))
            .await
            .expect("subscribe");
        within("flush", self.client.flush()).await.expect("flush");
        self.expect_violation("Subscription", subject).await;
    }

    /// Returns once the server has processed everything this session sent
    /// before: it handles one connection's messages in order, so its answer
    /// to a request comes after any error, and after any SUB took effect.
    /// (`flush` is no such barrier: it only empties the client's buffer.)
    async fn round_trip(&self) {
        let subject = self.role.round_trip_subject();
        match within("round trip", self.client.request(subject, "".into())).await {
            Ok(_) => {}
            Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
            Err(error) => panic!(
                "round trip of `{}` on `{subject}`: {error}",
                self.role.user()
            ),
        }
    }

    /// Asserts that the server reported no permission violation for
    /// anything this session sent so far.
    async fn expect_no_violation(&mut self) {
        self.round_trip().await;
        // The error reached the client before the answer did, but async-nats
        // hands it to the event callback on another task: give that task
        // its turn, briefly.
        let grace = tokio::time::timeout(EVENT_CALLBACK_GRACE, async {
            while let Some(error) = self.server_errors.recv().await {
                assert!(
                    !error.to_lowercase().contains("permissions violation"),
                    "`{}` was refused: {error}",
                    self.role.user()
                );
            }
        });
        let _ = grace.await;
    }
}

/// How long a server error may take from the connection to the event callback.
const EVENT_CALLBACK_GRACE: Duration = Duration::from_millis(50);

async fn message_count(jetstream: &jetstream::Context, stream: &str) -> u64 {
    within("stream info", jetstream.get_stream(stream))
        .await
        .expect("the stream exists")
        .cached_info()
        .state
        .messages
}

/// Starts the shipped config with the streams made by the ledger user.
async fn deployment_with_streams() -> Deployment {
    let deployment = Deployment::start();
    let ledger = deployment.connect(Role::Ledger).await;
    within(
        "ensure_streams",
        ensure_streams(&ledger.jetstream, &StreamsConfig::default()),
    )
    .await
    .expect("the ledger creates its streams");
    deployment
}

#[tokio::test]
async fn anonymous_clients_and_wrong_passwords_are_refused() {
    let deployment = Deployment::start();
    let anonymous = within("connect", async_nats::connect(deployment.server.url())).await;
    assert_eq!(
        anonymous.expect_err("no anonymous access").kind(),
        ConnectErrorKind::AuthorizationViolation
    );
    let wrong_password = ConnectOptions::new()
        .user_and_password("admin".into(), "not-the-password".into())
        .connect(deployment.server.url());
    let error = within("connect", wrong_password)
        .await
        .expect_err("wrong password");
    assert_eq!(error.kind(), ConnectErrorKind::AuthorizationViolation);
}

#[tokio::test]
async fn the_ledger_creates_and_checks_its_streams_and_publishes_events() {
    let deployment = Deployment::start();
    let mut ledger = deployment.connect(Role::Ledger).await;
    let config = StreamsConfig::default();

    within("create", ensure_streams(&ledger.jetstream, &config))
        .await
        .expect("created");
    within("check", ensure_streams(&ledger.jetstream, &config))
        .await
        .expect("checked");
    let ack = publish_acked(
        &ledger.jetstream,
        "ledger.events.acme.grant_issued".into(),
        "{}",
    )
    .await;
    assert_eq!(ack.stream, LEDGER_EVENTS_STREAM);
    let ack = publish_acked(&ledger.jetstream, "ledger.checkpoints".into(), "{}").await;
    assert_eq!(ack.stream, LEDGER_EVENTS_STREAM);
    within(
        "rejection",
        ledger.client.publish("grants.rejections.acme", "{}".into()),
    )
    .await
    .unwrap();
    ledger.expect_no_violation().await;
}

#[tokio::test]
async fn each_role_publishes_what_it_owns() {
    let deployment = deployment_with_streams().await;
    let rows: [(Role, &str, &str); 11] = [
        (Role::Producer, "grants.requests.acme", GRANT_INPUT_STREAM),
        (Role::Producer, "grants.signals.acme", GRANT_INPUT_STREAM),
        (Role::Api, "grants.requests.acme", GRANT_INPUT_STREAM),
        (Role::Api, "grants.approvals.acme", GRANT_INPUT_STREAM),
        // Catalogs and policy sets: the policy author and the admin only.
        (Role::PolicyAuthor, "grants.policy.acme", GRANT_INPUT_STREAM),
        (Role::Admin, "grants.policy.acme", GRANT_INPUT_STREAM),
        (
            Role::Ledger,
            "ledger.events.acme.decision_recorded",
            LEDGER_EVENTS_STREAM,
        ),
        (Role::Ledger, "ledger.checkpoints", LEDGER_EVENTS_STREAM),
        (
            Role::ExpiryProjector,
            "grants.timers.acme",
            GRANT_INPUT_STREAM,
        ),
        (
            Role::ExpiryProjector,
            "grants.expiry.acme.postgres",
            GRANT_EXPIRY_STREAM,
        ),
        (
            Role::RevocationWorker,
            "grants.revocations.acme",
            GRANT_INPUT_STREAM,
        ),
    ];
    for (role, subject, stream) in rows {
        let mut session = deployment.connect(role).await;
        let ack = publish_acked(&session.jetstream, subject.to_owned(), "{}").await;
        assert_eq!(ack.stream, stream, "`{}` on `{subject}`", role.user());
        session.expect_no_violation().await;
    }
}

#[tokio::test]
async fn publishing_outside_a_role_is_refused_and_reaches_no_stream() {
    let deployment = deployment_with_streams().await;
    let rows: [(Role, &[&str]); 7] = [
        (
            Role::Producer,
            &[
                // Nobody but a policy author (or admin) puts a policy in force.
                "grants.policy.acme",
                "ledger.events.acme.grant_issued",
                "ledger.checkpoints",
                "grants.approvals.acme",
                "grants.revocations.acme",
                "grants.timers.acme",
                "grants.expiry.acme.postgres",
                "grants.rejections.acme",
            ],
        ),
        (
            Role::Api,
            &[
                "grants.policy.acme",
                "ledger.events.acme.grant_issued",
                "grants.timers.acme",
                "grants.expiry.acme.postgres",
            ],
        ),
        (
            Role::PolicyAuthor,
            &[
                "grants.requests.acme",
                "grants.signals.acme",
                "grants.approvals.acme",
                "ledger.events.acme.policy_published",
                "grants.rejections.acme",
                "grants.query.acme.check",
            ],
        ),
        (
            Role::Ledger,
            &[
                "grants.policy.acme",
                "grants.requests.acme",
                "grants.timers.acme",
                "grants.expiry.acme.postgres",
            ],
        ),
        (
            Role::ExpiryProjector,
            &[
                "ledger.events.acme.grant_revoked",
                "grants.requests.acme",
                "grants.policy.acme",
            ],
        ),
        (
            Role::Projector,
            &[
                "ledger.events.acme.grant_issued",
                "grants.expiry.acme.postgres",
            ],
        ),
        (
            Role::RevocationWorker,
            &[
                "grants.expiry.acme.postgres",
                "ledger.events.acme.revocation_confirmed",
                "grants.requests.acme",
                "grants.policy.acme",
            ],
        ),
    ];
    for (role, subjects) in rows {
        let mut session = deployment.connect(role).await;
        for subject in subjects {
            session.expect_publish_refused(subject).await;
        }
    }

    let admin = deployment.connect(Role::Admin).await;
    for stream in [
        GRANT_INPUT_STREAM,
        LEDGER_EVENTS_STREAM,
        GRANT_EXPIRY_STREAM,
    ] {
        assert_eq!(message_count(&admin.jetstream, stream).await, 0, "{stream}");
    }
}

#[tokio::test]
async fn subscribing_outside_a_role_is_refused() {
    let deployment = Deployment::start();
    let rows: [(Role, &[&str]); 5] = [
        // Not the inputs of others, not the events, not another role's inbox,
        // where pulled messages and JetStream replies travel.
        (
            Role::Producer,
            &[
                "grants.>",
                "grants.requests.acme",
                "ledger.>",
                "_INBOX_LEDGER.>",
                ">",
            ],
        ),
        (
            Role::RevocationWorker,
            &["grants.>", "grants.requests.*", "ledger.>", "_INBOX.>"],
        ),
        (Role::Ledger, &["_INBOX.>", "grants.expiry.>"]),
        // Not the producers' inbox, and not the inputs.
        (
            Role::PolicyAuthor,
            &["_INBOX.>", "grants.>", "grants.policy.acme", "_INBOX_LEDGER.>"],
        ),
        (Role::Projector, &["ledger.>", "_INBOX_LEDGER.>"]),
    ];
    for (role, subjects) in rows {
        let mut session = deployment.connect(role).await;
        for subject in subjects {
            session.expect_subscribe_refused(subject).await;
        }
    }
}

#[tokio::test]
async fn only_admin_may_delete_or_purge_a_stream() {
    let deployment = deployment_with_streams().await;
    let ledger = deployment.connect(Role::Ledger).await;
    publish_acked(
        &ledger.jetstream,
        "ledger.events.acme.grant_issued".into(),
        "{}",
    )
    .await;
    let producer = deployment.connect(Role::Producer).await;
    publish_acked(&producer.jetstream, "grants.requests.acme".into(), "{}").await;

    // Through the client library, as a program would: the request is dropped
    // by the server, so the call fails (no answer) and the violation is reported.
    for role in [Role::Producer, Role::Ledger] {
        let mut session = deployment.connect(role).await;
        let stream = session
            .jetstream
            .get_stream_no_info(LEDGER_EVENTS_STREAM)
            .await
            .unwrap();
        assert!(
            within("purge", stream.purge()).await.is_err(),
            "{role:?} purged"
        );
        session
            .expect_violation("Publish", "$JS.API.STREAM.PURGE.LEDGER_EVENTS")
            .await;
        assert!(
            within(
                "delete",
                session.jetstream.delete_stream(LEDGER_EVENTS_STREAM)
            )
            .await
            .is_err(),
            "{role:?} deleted"
        );
        session
            .expect_violation("Publish", "$JS.API.STREAM.DELETE.LEDGER_EVENTS")
            .await;
    }
    // Every role but admin, every data-destroying call, on every stream.
    let destructive = [
        "$JS.API.STREAM.PURGE",
        "$JS.API.STREAM.DELETE",
        "$JS.API.STREAM.MSG.DELETE",
        "$JS.API.STREAM.UPDATE",
    ];
    for role in Role::NOT_ADMIN {
        let mut session = deployment.connect(role).await;
        for stream in [
            GRANT_INPUT_STREAM,
            LEDGER_EVENTS_STREAM,
            GRANT_EXPIRY_STREAM,
        ] {
            for api in destructive {
                session
                    .expect_publish_refused(&format!("{api}.{stream}"))
                    .await;
            }
        }
        session
            .expect_publish_refused("$JS.API.CONSUMER.DELETE.GRANT_INPUT.ledger")
            .await;
    }

    let mut admin = deployment.connect(Role::Admin).await;
    assert_eq!(
        message_count(&admin.jetstream, LEDGER_EVENTS_STREAM).await,
        1,
        "nothing was purged"
    );
    assert_eq!(
        message_count(&admin.jetstream, GRANT_INPUT_STREAM).await,
        1,
        "nothing was purged"
    );

    // The admin passes the permissions: it purges the input stream; on
    // LEDGER_EVENTS it is the stream's own deny_purge that says no; and it
    // may delete the stream.
    let input = within("get", admin.jetstream.get_stream(GRANT_INPUT_STREAM))
        .await
        .unwrap();
    within("purge", input.purge())
        .await
        .expect("the admin purges GRANT_INPUT");
    assert_eq!(message_count(&admin.jetstream, GRANT_INPUT_STREAM).await, 0);
    let events = within("get", admin.jetstream.get_stream(LEDGER_EVENTS_STREAM))
        .await
        .unwrap();
    let refused = within("purge", events.purge())
        .await
        .expect_err("deny_purge holds for everyone");
    assert!(
        !refused.to_string().contains("timed out"),
        "JetStream answered: {refused}"
    );
    within(
        "delete",
        admin.jetstream.delete_stream(LEDGER_EVENTS_STREAM),
    )
    .await
    .expect("the admin deletes LEDGER_EVENTS");
    admin.expect_no_violation().await;
}

#[tokio::test]
async fn the_ledger_pulls_inputs_and_answers_a_producers_inbox() {
    let deployment = deployment_with_streams().await;
    let producer = deployment.connect(Role::Producer).await;
    publish_acked(
        &producer.jetstream,
        "grants.requests.acme".into(),
        "request",
    )
    .await;
    let mut ledger = deployment.connect(Role::Ledger).await;

    let input = within("get", ledger.jetstream.get_stream(GRANT_INPUT_STREAM))
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = within(
        "consumer",
        input.get_or_create_consumer(
            "ledger",
            consumer::pull::Config {
                durable_name: Some("ledger".into()),
                ..Default::default()
            },
        ),
    )
    .await
    .expect("the ledger creates its durable consumer");
    let mut batch = within(
        "fetch",
        consumer
            .fetch()
            .max_messages(10)
            .expires(Duration::from_secs(1))
            .messages(),
    )
    .await
    .expect("fetch");
    let message = within("message", batch.next())
        .await
        .expect("one message")
        .expect("no error");
    assert_eq!(&message.payload[..], b"request");
    within("ack", message.double_ack())
        .await
        .expect("the server confirms the ack");
    let mut consumer = consumer;
    let info = within("consumer info", consumer.info())
        .await
        .expect("info");
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "the input is acknowledged"
    );

    // A receipt: the ledger publishes to the reply inbox a producer listens on.
    let mut inbox = within("subscribe", producer.client.subscribe("_INBOX.receipt-1"))
        .await
        .unwrap();
    producer.round_trip().await;
    within(
        "publish",
        ledger.client.publish("_INBOX.receipt-1", "receipt".into()),
    )
    .await
    .unwrap();
    let receipt = within("receipt", inbox.next())
        .await
        .expect("the receipt arrives");
    assert_eq!(&receipt.payload[..], b"receipt");
    ledger.expect_no_violation().await;
}

#[tokio::test]
async fn the_revocation_worker_reads_expiry_and_reports_back() {
    let deployment = deployment_with_streams().await;
    let mut worker = deployment.connect(Role::RevocationWorker).await;
    // Live: a plain subscription.
    let mut live = within("subscribe", worker.client.subscribe("grants.expiry.>"))
        .await
        .unwrap();
    worker.round_trip().await;

    let projector = deployment.connect(Role::ExpiryProjector).await;
    publish_acked(
        &projector.jetstream,
        "grants.expiry.acme.postgres".into(),
        "expired",
    )
    .await;

    let message = within("live message", live.next())
        .await
        .expect("the expiry notice");
    assert_eq!(message.subject.as_str(), "grants.expiry.acme.postgres");
    // Durable: a pull consumer on GRANT_EXPIRY for one kind of target system.
    let expiry = within("get", worker.jetstream.get_stream(GRANT_EXPIRY_STREAM))
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = within(
        "consumer",
        expiry.get_or_create_consumer(
            "worker_postgres",
            consumer::pull::Config {
                durable_name: Some("worker_postgres".into()),
                filter_subject: grantledger_nats::expiry_filter("postgres").unwrap(),
                ..Default::default()
            },
        ),
    )
    .await
    .expect("the worker creates its durable consumer");
    let mut batch = within(
        "fetch",
        consumer
            .fetch()
            .max_messages(10)
            .expires(Duration::from_secs(1))
            .messages(),
    )
    .await
    .expect("fetch");
    let message = within("message", batch.next())
        .await
        .expect("one message")
        .expect("no error");
    assert_eq!(&message.payload[..], b"expired");
    within("ack", message.double_ack())
        .await
        .expect("the server confirms the ack");

    let ack = publish_acked(
        &worker.jetstream,
        "grants.revocations.acme".into(),
        "removed",
    )
    .await;
    assert_eq!(ack.stream, GRANT_INPUT_STREAM);
    worker.expect_no_violation().await;
}

#[tokio::test]
async fn projectors_read_ledger_events() {
    let deployment = deployment_with_streams().await;
    let ledger = deployment.connect(Role::Ledger).await;
    publish_acked(
        &ledger.jetstream,
        "ledger.events.acme.grant_issued".into(),
        "event",
    )
    .await;

    for role in [Role::Projector, Role::ExpiryProjector] {
        let mut session = deployment.connect(role).await;
        let events = within("get", session.jetstream.get_stream(LEDGER_EVENTS_STREAM))
            .await
            .unwrap();
        let name = role.user();
        let consumer: consumer::PullConsumer = within(
            "consumer",
            events.get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.into()),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap_or_else(|error| panic!("`{name}` cannot create its consumer: {error}"));
        let mut batch = within(
            "fetch",
            consumer
                .fetch()
                .max_messages(10)
                .expires(Duration::from_secs(1))
                .messages(),
        )
        .await
        .expect("fetch");
        let message = within("message", batch.next())
            .await
            .expect("one message")
            .expect("no error");
        assert_eq!(&message.payload[..], b"event");
        within("ack", message.double_ack())
            .await
            .expect("the server confirms the ack");
        session.expect_no_violation().await;
    }
}

/// Starts the ledger service on `data` as the shipped config's `ledger`
/// user, with the default catalog, and waits (watching as the admin:
/// producers may not look at streams) until it has made its streams.
async fn start_ledger(
    deployment: &Deployment,
    data: &Path,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), grantledger_nats::ledger_service::ServiceError>>,
) {
    use grantledger_nats::ledger_service::{self, ServiceConfig};

    let mut config = ServiceConfig::new(data.to_path_buf(), deployment.server.url(), "acme".into());
    config.user_password = Some(("ledger".into(), deployment.password(Role::Ledger)));
    config.inbox_prefix = Some(Role::Ledger.inbox_prefix().into());
    config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(ledger_service::run(config, async {
        let _ = stop_rx.await;
    }));
    let admin = deployment.connect(Role::Admin).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while admin.jetstream.get_stream(LEDGER_EVENTS_STREAM).await.is_err() {
        if service.is_finished() {
            panic!("the ledger service stopped: {:?}", service.await);
        }
        assert!(std::time::Instant::now() < deadline, "the ledger made no streams");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (stop_tx, service)
}

/// The real ledger service, logged in as the shipped `ledger` user with its
/// inbox prefix, has every permission it needs: it creates the streams,
/// pulls a producer's request, publishes the events, sends the receipt to the
/// producer's `_INBOX.` subject and a rejection notice for a bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_service_runs_under_the_shipped_config() {
    use grantledger_nats::ledger_service::{self, REPLY_TO_HEADER, ServiceConfig, ServiceReceipt};

    let deployment = Deployment::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (stop_tx, service) = start_ledger(&deployment, &dir.path().join("ledger")).await;
    let admin = deployment.connect(Role::Admin).await;
    let producer = deployment.connect(Role::Producer).await;
    let mut receipts = producer.client.subscribe("_INBOX.receipts-acme").await.expect("subscribe");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(REPLY_TO_HEADER, "_INBOX.receipts-acme");
    let request = r#"{"request_id":"req-shipped","tenant":"acme","principal":{"id":"svc-a","kind":"workload","owner":"team-a"},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"nightly report"}"#;
    producer
        .jetstream
        .publish_with_headers("grants.requests.acme", headers.clone(), request.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let receipt = within("receipt", receipts.next()).await.expect("a receipt");
    let receipt: ServiceReceipt = serde_json::from_slice(&receipt.payload).expect("a receipt");
    assert_eq!(receipt.status, "committed");
    assert_eq!(receipt.sequences, vec![2, 3, 4], "request, decision, issuance after the catalog");

    producer
        .jetstream
        .publish_with_headers("grants.requests.acme", headers, "{not json".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let receipt = within("receipt", receipts.next()).await.expect("a receipt");
    let receipt: ServiceReceipt = serde_json::from_slice(&receipt.payload).expect("a receipt");
    assert_eq!((receipt.status.as_str(), receipt.reason.as_deref()), ("rejected", Some("malformed_json")));

    let events = admin.jetstream.get_stream(LEDGER_EVENTS_STREAM).await.expect("stream");
    assert_eq!(events.cached_info().state.messages, 4, "catalog + 3 events on LEDGER_EVENTS");
    stop_tx.send(()).expect("service still running");
    within("stop", service).await.expect("joined").expect("the service stops cleanly");

    // A restart reads LEDGER_EVENTS back (last message, per-subject counts)
    // with the same user, and goes on numbering after the log's head.
    let mut config = ServiceConfig::new(dir.path().join("ledger"), deployment.server.url(), "acme".into());
    config.user_password = Some(("ledger".into(), deployment.password(Role::Ledger)));
    config.inbox_prefix = Some(Role::Ledger.inbox_prefix().into());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(ledger_service::run(config, async {
        let _ = stop_rx.await;
    }));
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(REPLY_TO_HEADER, "_INBOX.receipts-acme");
    let request = request.replace("req-shipped", "req-after-restart");
    producer
        .jetstream
        .publish_with_headers("grants.requests.acme", headers, request.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let receipt = within("receipt", receipts.next()).await.expect("a receipt");
    let receipt: ServiceReceipt = serde_json::from_slice(&receipt.payload).expect("a receipt");
    assert_eq!((receipt.status.as_str(), receipt.sequences.as_slice()), ("committed", &[5, 6, 7][..]));

    // Projectors fill gaps by asking the ledger; the reply reaches their inbox.
    for role in [Role::Projector, Role::ExpiryProjector] {
        let mut projector = deployment.connect(role).await;
        let answer = within(
            "backfill",
            projector.client.request("grantledger.backfill.acme", r#"{"from":2,"limit":2}"#.into()),
        )
        .await
        .unwrap_or_else(|error| panic!("{role:?} gets no backfill answer: {error}"));
        let reply: grantledger_nats::ledger_service::BackfillReply =
            serde_json::from_slice(&answer.payload).expect("a backfill reply");
        assert_eq!(reply.error, None);
        assert_eq!(reply.head, 7);
        let sequences: Vec<u64> = reply.records.iter().map(|r| r["sequence"].as_u64().expect("a sequence")).collect();
        assert_eq!(sequences, [2, 3], "{role:?}");
        projector.expect_no_violation().await;
    }
    // A producer may not ask.
    let mut producer = producer;
    producer.expect_publish_refused("grantledger.backfill.acme").await;
    stop_tx.send(()).expect("service still running");
    within("stop", service).await.expect("joined").expect("the service stops cleanly");
}

/// The three projector services, logged in as the shipped `projector` and
/// `expiry_projector` users with their inbox prefixes, have every permission
/// they need: they follow LEDGER_EVENTS, answer the API's queries, and the
/// expiry projector publishes the revocation for workers; a producer may not
/// ask a projector anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_services_run_under_the_shipped_config() {
    use grantledger_nats::ledger_service::{self, ServiceConfig};
    use grantledger_nats::projector_service::{self, ProjectorConfig, QueryConnection, ask};

    let deployment = Deployment::start();
    let url = deployment.server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut config = ServiceConfig::new(dir.path().join("ledger"), url.clone(), "acme".into());
    config.user_password = Some(("ledger".into(), deployment.password(Role::Ledger)));
    config.inbox_prefix = Some(Role::Ledger.inbox_prefix().into());
    config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
    let ledger = tokio::spawn(ledger_service::run(config, until_stopped()));
    let mut projectors = Vec::new();
    for (name, role) in [
        ("current-grants", Role::Projector),
        ("audit-evidence", Role::Projector),
        ("expiry-timers", Role::ExpiryProjector),
    ] {
        let mut config = ProjectorConfig::new(name, dir.path().join(name), url.clone(), "acme".into());
        config.user_password = Some((role.user().into(), deployment.password(role)));
        config.inbox_prefix = Some(role.inbox_prefix().into());
        projectors.push(tokio::spawn(projector_service::run(config, until_stopped())));
    }

    let mut producer = deployment.connect(Role::Producer).await;
    let request = r#"{"request_id":"req-p","tenant":"acme","principal":{"id":"svc-a","kind":"workload","owner":"team-a"},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"nightly report"}"#;
    let signal = r#"{"type":"task_complete","grant_id":"grant:req-p","by":"svc-a","detail":"report done"}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while producer.jetstream.publish("grants.requests.acme", request.into()).await.expect("publish").await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the ledger made no streams");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publish_acked(&producer.jetstream, "grants.signals.acme".into(), signal).await;

    // catalog, request, decision, issuance, revocation: the API sees every
    // projection reach sequence 5.
    let api = QueryConnection {
        url: url.clone(),
        tenant: "acme".into(),
        creds_file: None,
        user_password: Some(("api".into(), deployment.password(Role::Api))),
        inbox_prefix: None,
        timeout: Duration::from_secs(2),
    };
    for name in ["current-grants", "audit-evidence", "expiry-timers"] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = ask(&api, &format!("status.{name}"), &serde_json::json!(null)).await;
            if status.as_ref().is_ok_and(|status| status["cursor"] == 5) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{name} did not reach 5: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let pending = ask(&api, "pending", &serde_json::json!({})).await.expect("pending");
    assert_eq!(pending["as_of_sequence"], 5);
    let scheduled = ask(&api, "scheduled", &serde_json::json!({})).await.expect("scheduled");
    assert_eq!(scheduled["as_of_sequence"], 5, "{scheduled}");
    let evidence = ask(&api, "evidence", &serde_json::json!({"request_id": "req-p"})).await.expect("evidence");
    assert_eq!(evidence["evidence"].as_array().map(Vec::len), Some(4), "{evidence}");
    let debt = ask(&api, "debt", &serde_json::json!({})).await.expect("debt");
    assert_eq!(debt["debt"].as_array().map(Vec::len), Some(1), "revoked, not confirmed: {debt}");
    let refused = ask(&api, "check", &serde_json::json!({"principal": "svc-a"})).await.expect_err("no action");
    assert!(refused.to_string().contains("`action` is required"), "{refused}");

    // The revocation reached GRANT_EXPIRY for workers.
    let admin = deployment.connect(Role::Admin).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while message_count(&admin.jetstream, GRANT_EXPIRY_STREAM).await != 1 {
        assert!(std::time::Instant::now() < deadline, "no expiry notice on GRANT_EXPIRY");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    producer.expect_publish_refused("grants.query.acme.check").await;

    stop.send(true).expect("stop");
    within("ledger stop", ledger).await.expect("joined").expect("the ledger stops cleanly");
    for projector in projectors {
        within("projector stop", projector).await.expect("joined").expect("a projector stops cleanly");
    }
}

/// Policy administration of the running ledger under the shipped config:
/// the `policy_author` user (with its own inbox prefix) and `admin` put a
/// policy set in force through `grants.policy.<tenant>` and get the ledger's
/// receipt; a producer's attempt is refused by the server and reaches no
/// stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_author_and_the_admin_publish_policies_through_the_ledger_and_a_producer_may_not() {
    use grantledger_nats::ledger_service::PolicyInput;
    use grantledger_nats::policy_admin::{self, AdminConnection, AdminError};

    let deployment = Deployment::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (stop_tx, service) = start_ledger(&deployment, &dir.path().join("ledger")).await;
    let admin = deployment.connect(Role::Admin).await;

    let connection = |role: Role, timeout: Duration| AdminConnection {
        url: deployment.server.url(),
        tenant: "acme".into(),
        creds_file: None,
        user_password: Some((role.user().into(), deployment.password(role))),
        inbox_prefix: Some(role.inbox_prefix().into()),
        timeout,
        receipt_wait: common::STEP_WAIT,
    };
    let policy = |text: &str| PolicyInput::Policy {
        policy_text: text.to_owned(),
        exceptions_text: None,
        published_by: grantledger_events::PrincipalId::new("alice").expect("an id"),
    };
    let workloads_only = "@id(\"workloads-read-db\")\npermit (principal is Workload, action == Action::\"request\", resource in Entitlement::\"db-prod-read\");\n";
    let everyone = "@id(\"everyone-reads-db\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"db-prod-read\");\n";

    // The policy author: its receipt comes to `_INBOX_POLICY.`, which the
    // ledger may publish to and producers may not read.
    let receipt = within(
        "publish",
        policy_admin::publish(&connection(Role::PolicyAuthor, Duration::from_secs(5)), &policy(workloads_only)),
    )
    .await
    .expect("the policy author gets a receipt");
    assert_eq!((receipt.status.as_str(), receipt.sequences.as_slice()), ("committed", &[2][..]), "{receipt:?}");
    assert_eq!(receipt.policy_hash, Some(grantledger_events::policy_hash(workloads_only, None)));
    // The admin may too.
    let receipt = within("publish", policy_admin::publish(&connection(Role::Admin, Duration::from_secs(5)), &policy(everyone)))
        .await
        .expect("the admin gets a receipt");
    assert_eq!((receipt.status.as_str(), receipt.sequences.as_slice()), ("committed", &[3][..]), "{receipt:?}");

    // A producer may not: the server drops the publish (no JetStream ack
    // comes) and reports the violation; nothing reaches GRANT_INPUT.
    let error = within(
        "publish",
        policy_admin::publish(&connection(Role::Producer, JETSTREAM_REQUEST_WAIT), &policy(workloads_only)),
    )
    .await
    .expect_err("a producer may not publish a policy");
    assert!(matches!(error, AdminError::NotAcknowledged { .. }), "{error}");
    assert!(error.to_string().contains("`grants.policy.acme`"), "{error}");
    let mut producer = deployment.connect(Role::Producer).await;
    producer.expect_publish_refused("grants.policy.acme").await;
    assert_eq!(message_count(&admin.jetstream, GRANT_INPUT_STREAM).await, 2, "the author's and the admin's inputs only");
    assert_eq!(message_count(&admin.jetstream, LEDGER_EVENTS_STREAM).await, 3, "the catalog and two policy sets");

    stop_tx.send(()).expect("service still running");
    within("stop", service).await.expect("joined").expect("the service stops cleanly");
}
