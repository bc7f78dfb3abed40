//! Revocation workers: the processes that remove access at the target system
//! (a database role, a cloud IAM binding, a Kubernetes RoleBinding) once the
//! ledger has revoked or expired a grant, and report back.
//!
//! The expiry projector publishes one [`ExpiryNotice`] per grant to remove on
//! `grants.expiry.<tenant>.<resource_kind>` (stream `GRANT_EXPIRY`,
//! `Nats-Msg-Id` = `<tenant>:expiry:<grant_id>`). A [`Worker`] pulls the
//! notices of one tenant and resource kind through a durable consumer, calls
//! a handler for each, and reports on `grants.revocations.<tenant>`:
//!
//! - the handler succeeded: a `confirmed` [`RevocationReport`] is published
//!   through JetStream and its PubAck awaited, and only then is the notice
//!   acknowledged. A crash between the two redelivers the notice and publishes
//!   the report again under the same `Nats-Msg-Id`
//!   (`<tenant>:confirmed:<grant_id>`), which JetStream drops within its
//!   duplicate window and the ledger refuses after it
//!   (`revocation_already_confirmed`);
//! - the handler failed: a `failed` report with the attempt number (the
//!   notice's JetStream delivery count), and the notice is NAKed with a delay
//!   from capped exponential backoff, so the retry schedule lives in the
//!   server and survives a restart of the worker;
//! - the notice is not a valid [`ExpiryNotice`] for this worker's tenant: it
//!   is terminated (never redelivered) and logged with a named reason
//!   (`oversized`, `malformed_json`, `unknown_field`, `missing_field`,
//!   `invalid_value`, `tenant_mismatch`), so it never blocks the notices
//!   behind it.
//!
//! Handlers must be idempotent: removing access that is already gone is a
//! success. Delivery is at least once (a crash after the removal but before
//! the report reruns the handler).
//!
//! [`Hook`] holds the two ready-made handlers of `grantledger revoker`: a
//! shell command given the notice on stdin, and a webhook given it as a POST.

use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{FutureExt, StreamExt};
use grantledger_events::{
    EntitlementId, GrantId, Principal, RequestId, ResourceId, RevocationReason, TenantId,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::streams::GRANT_EXPIRY_STREAM;
use crate::subjects::{SubjectError, expiry_subject, revocations_subject};

/// The largest notice accepted, in bytes; a larger one is terminated as
/// `oversized`. A notice is a few hundred bytes; the bound only keeps a
/// broken publisher from making every worker parse megabytes.
pub const NOTICE_BYTES_MAX: usize = 64 * 1024;

/// The longest `error` a `failed` report carries, in bytes (the end of the
/// message is kept: that is where commands print what went wrong).
pub const REPORT_ERROR_BYTES_MAX: usize = 4 * 1024;

/// The most notices a worker handles at once.
pub const CONCURRENCY_MAX: usize = 256;

/// The most notices the consumer lets be delivered and not yet acknowledged,
/// NAKed ones waiting for their retry included: a large number of failing
/// notices must not stall the consumer for the healthy ones.
pub const ACK_PENDING_MAX: i64 = 10_000;

/// The name of the JSON Schema file of [`ExpiryNotice`] under `schemas/`.
pub const EXPIRY_NOTICE_SCHEMA_FILE: &str = "expiry-notice.schema.json";

/// One grant to remove at the target, as the expiry projector publishes it
/// on `grants.expiry.<tenant>.<resource_kind>`. Unknown fields are refused,
/// so that a projector and a worker that disagree on the format fail loudly
/// instead of acting on half a notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpiryNotice {
    /// The partition the grant belongs to; equal to the subject's tenant.
    pub tenant: TenantId,
    /// The grant to remove; the key of the report sent back.
    pub grant_id: GrantId,
    /// The request the grant was issued for, to find it in the target's own
    /// audit trail (many targets tag what they create with it).
    pub request_id: RequestId,
    /// Whose access to remove.
    pub principal: Principal,
    /// The catalog entitlement that was granted (which role, which group).
    pub entitlement: EntitlementId,
    /// The resource the access was on.
    pub resource: ResourceId,
    /// The actions that were granted on it.
    pub actions: Vec<String>,
    /// Why the grant ended: `expired`, `task_complete`, `risk_signal`,
    /// `manual` or `owner_gone`. A hook may act faster on a risk signal (kill
    /// sessions, not only remove the role).
    pub reason: RevocationReason,
    /// When the grant expires or expired, UTC milliseconds since the Unix
    /// epoch; for an early revocation it lies in the future.
    pub expires_at_ms: i64,
    /// The log sequence number of the `GrantRevoked` event, the evidence of
    /// why this removal happened.
    pub revoked_sequence: u64,
}

/// The JSON Schema of [`ExpiryNotice`], for authors of workers in other
/// languages. `schemas/expiry-notice.schema.json` holds it; a test keeps it
/// current.
pub fn expiry_notice_schema() -> schemars::Schema {
    schemars::schema_for!(ExpiryNotice)
}

/// What a worker publishes on `grants.revocations.<tenant>`: exactly what
/// the ledger accepts there (`ledger_service::RevocationInput`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RevocationReport {
    /// The access was removed at the target.
    Confirmed {
        /// The grant.
        grant_id: GrantId,
        /// Which worker removed it.
        worker: String,
    },
    /// Removing it failed; the notice will be delivered again.
    Failed {
        /// The grant.
        grant_id: GrantId,
        /// Which worker tried.
        worker: String,
        /// What went wrong, at most [`REPORT_ERROR_BYTES_MAX`] bytes.
        error: String,
        /// The attempt, from 1: the notice's JetStream delivery count.
        attempt: u32,
    },
}

impl RevocationReport {
    /// The `Nats-Msg-Id` of the report: a confirmation is the same message
    /// however often it is published (JetStream drops the copies within its
    /// duplicate window); a failure is one message per attempt.
    pub fn message_id(&self, tenant: &str) -> String {
        match self {
            RevocationReport::Confirmed { grant_id, .. } => {
                format!("{tenant}:confirmed:{grant_id}")
            }
            RevocationReport::Failed {
                grant_id, attempt, ..
            } => {
                format!("{tenant}:failed:{grant_id}:{attempt}")
            }
        }
    }
}

/// The tenant and resource kind of a worker's subject,
/// `grants.expiry.<tenant>.<resource_kind>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpirySubject {
    /// The tenant, a valid subject token.
    pub tenant: String,
    /// The resource kind, a valid subject token.
    pub resource_kind: String,
}

/// Why a worker's subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpirySubjectError {
    /// The subject does not have the four tokens of the form.
    #[error(
        "subject `{subject}` is not of the form `grants.expiry.<tenant>.<resource_kind>`: {missing}"
    )]
    Form {
        /// The subject given.
        subject: String,
        /// What is missing or extra.
        missing: &'static str,
    },
    /// The tenant or the resource kind is not one concrete subject token
    /// (a wildcard, say: a worker reports to one tenant).
    #[error("subject `{subject}`: {source}")]
    Token {
        /// The subject given.
        subject: String,
        /// Which token and why.
        source: SubjectError,
    },
}

/// Takes apart `grants.expiry.<tenant>.<resource_kind>`, both concrete
/// tokens: a worker reports on its tenant's `grants.revocations.<tenant>`, so
/// it serves exactly one tenant.
pub fn parse_expiry_subject(subject: &str) -> Result<ExpirySubject, ExpirySubjectError> {
    let form = |missing| {
        Err(ExpirySubjectError::Form {
            subject: subject.to_owned(),
            missing,
        })
    };
    let Some(rest) = subject.strip_prefix("grants.expiry.") else {
        return form("it does not start with `grants.expiry.`");
    };
    let Some((tenant, resource_kind)) = rest.split_once('.') else {
        return if rest.is_empty() {
            form("the tenant and the resource kind are missing")
        } else {
            form("the resource kind is missing")
        };
    };
    if tenant.is_empty() {
        return form("the tenant is missing");
    }
    expiry_subject(tenant, resource_kind).map_err(|source| ExpirySubjectError::Token {
        subject: subject.to_owned(),
        source,
    })?;
    Ok(ExpirySubject {
        tenant: tenant.to_owned(),
        resource_kind: resource_kind.to_owned(),
    })
}

/// The delay before retry `attempt` (from 1) of a failed notice: `initial`
/// doubling per attempt, at most `max`.
pub fn backoff_delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(max)
        .min(max)
}

/// How a worker connects, what it consumes and how it retries.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The NATS server URL.
    pub nats_url: String,
    /// `grants.expiry.<tenant>.<resource_kind>`: the notices to act on.
    pub subject: String,
    /// The worker's name in its reports (`worker` of `RevocationConfirmed`).
    pub worker_name: String,
    /// The durable consumer's name. Workers sharing it share the notices
    /// (each goes to one of them); the default is
    /// `revoker-<tenant>-<resource_kind>`.
    pub durable_name: String,
    /// A NATS credentials file.
    pub creds_file: Option<PathBuf>,
    /// A NATS user and password.
    pub user_password: Option<(String, String)>,
    /// Inbox prefix (the shipped server config gives workers `_INBOX_WORKER`).
    pub inbox_prefix: Option<String>,
    /// Bound on each NATS request (consumer calls, PubAcks).
    pub request_timeout: Duration,
    /// How many notices are handled at once, 1 to [`CONCURRENCY_MAX`].
    pub concurrency: usize,
    /// The delay before the first retry of a failed notice.
    pub backoff_initial: Duration,
    /// The longest delay between retries.
    pub backoff_max: Duration,
    /// After this many failed attempts a notice is reported failed and
    /// terminated instead of retried; `None` retries forever (the grant then
    /// stays in the ledger's revocation debt, visible, until someone fixes
    /// the target).
    pub attempts_max: Option<u32>,
    /// How long the server waits for an ack before redelivering a notice
    /// whose worker died. A handler running longer keeps its notice by
    /// sending progress acks every third of it.
    pub ack_wait: Duration,
    /// How long one fetch waits for notices.
    pub fetch_expiry: Duration,
    /// The counters to update (share them to read them).
    pub counters: Arc<WorkerCounters>,
}

impl WorkerConfig {
    /// A config with the defaults for everything but where and what.
    pub fn new(nats_url: String, subject: String) -> WorkerConfig {
        let durable_name = match parse_expiry_subject(&subject) {
            Ok(parsed) => format!("revoker-{}-{}", parsed.tenant, parsed.resource_kind),
            // Refused by Worker::connect, naming the subject.
            Err(_) => "revoker".to_owned(),
        };
        WorkerConfig {
            nats_url,
            subject,
            worker_name: "grantledger-revoker".to_owned(),
            durable_name,
            creds_file: None,
            user_password: None,
            inbox_prefix: None,
            request_timeout: Duration::from_secs(5),
            concurrency: 4,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            attempts_max: None,
            ack_wait: Duration::from_secs(30),
            fetch_expiry: Duration::from_secs(1),
            counters: Arc::new(WorkerCounters::default()),
        }
    }
}

/// A worker's counters, monotonic.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Notices pulled (each delivery counts).
    pub received: AtomicU64,
    /// Notices confirmed and acknowledged.
    pub confirmed: AtomicU64,
    /// Handler failures reported (each attempt counts).
    pub failed: AtomicU64,
    /// Notices terminated: malformed, another tenant's, or out of attempts.
    pub terminated: AtomicU64,
    /// Reports that could not be published; their notices come back.
    pub report_errors: AtomicU64,
}

/// Why a worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The subject is not `grants.expiry.<tenant>.<resource_kind>`.
    #[error(transparent)]
    Subject(#[from] ExpirySubjectError),
    /// A setting is out of its bounds.
    #[error("{setting} `{value}` is invalid: {rule}")]
    Setting {
        /// Which setting.
        setting: &'static str,
        /// Its value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Could not connect to NATS.
    #[error("cannot connect to NATS at `{url}`: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        reason: String,
    },
    /// The stream or the consumer could not be reached or made.
    #[error("cannot set up consumer `{durable}` on stream {stream}: {reason}")]
    Consumer {
        /// The stream.
        stream: &'static str,
        /// The durable consumer.
        durable: String,
        /// Why.
        reason: String,
    },
}

/// A connected worker with its durable consumer, ready to [`Worker::run`].
pub struct Worker {
    config: WorkerConfig,
    tenant: String,
    revocations: String,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
}

impl Worker {
    /// Checks `config`, connects, and gets or creates the durable consumer on
    /// `GRANT_EXPIRY` filtered on the subject. The stream must exist (the
    /// ledger creates it); a worker never creates streams.
    pub async fn connect(config: WorkerConfig) -> Result<Worker, WorkerError> {
        let subject = parse_expiry_subject(&config.subject)?;
        check_settings(&config)?;
        let revocations =
            revocations_subject(&subject.tenant).map_err(|source| ExpirySubjectError::Token {
                subject: config.subject.clone(),
                source,
            })?;

        let connect_error = |reason: String| WorkerError::Connect {
            url: config.nats_url.clone(),
            reason,
        };
        let client = crate::connect::connect(crate::connect::Connection {
            url: &config.nats_url,
            name: format!("grantledger-revoker-{}", config.worker_name),
            timeout: config.request_timeout,
            inbox_prefix: config.inbox_prefix.as_ref(),
            user_password: config.user_password.as_ref(),
            creds_file: config.creds_file.as_ref(),
        })
        .await
        .map_err(connect_error)?;
        let jetstream = jetstream::new(client.clone());

        let consumer_error = |reason: String| WorkerError::Consumer {
            stream: GRANT_EXPIRY_STREAM,
            durable: config.durable_name.clone(),
            reason,
        };
        let stream = jetstream
            .get_stream(GRANT_EXPIRY_STREAM)
            .await
            .map_err(|error| consumer_error(error.to_string()))?;
        let consumer = stream
            .get_or_create_consumer(
                &config.durable_name,
                pull::Config {
                    durable_name: Some(config.durable_name.clone()),
                    filter_subject: config.subject.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_ack_pending: ACK_PENDING_MAX,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| consumer_error(error.to_string()))?;
        Ok(Worker {
            tenant: subject.tenant,
            revocations,
            config,
            client,
            jetstream,
            consumer,
        })
    }

    /// The durable consumer's current state (pending, ack pending,
    /// redelivered), for operators and tests.
    pub async fn consumer_info(&mut self) -> Result<jetstream::consumer::Info, WorkerError> {
        self.consumer
            .info()
            .await
            .cloned()
            .map_err(|error| WorkerError::Consumer {
                stream: GRANT_EXPIRY_STREAM,
                durable: self.config.durable_name.clone(),
                reason: error.to_string(),
            })
    }

    /// Pulls notices and runs `handler` on each, at most
    /// [`WorkerConfig::concurrency`] at once, until `shutdown` completes;
    /// then stops pulling (after the fetch in progress, at most
    /// [`WorkerConfig::fetch_expiry`]), lets the handlers in flight finish
    /// and report, and returns. A handler that panics counts as a failure.
    /// A fetch that fails (NATS restarting) is retried with backoff; the
    /// client reconnects by itself.
    pub async fn run<H, F>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(ExpiryNotice) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let context = Arc::new(TaskContext {
            tenant: self.tenant.clone(),
            revocations: self.revocations.clone(),
            jetstream: self.jetstream.clone(),
            config: self.config.clone(),
        });
        let handler = Arc::new(handler);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut fetch_failures = 0u32;
        tracing::info!(
            subject = %self.config.subject,
            durable = %self.config.durable_name,
            worker = %self.config.worker_name,
            "revocation worker running"
        );
        loop {
            while let Some(joined) = tasks.try_join_next() {
                log_join(joined);
            }
            let free = self.config.concurrency - tasks.len();
            if free == 0 {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    joined = tasks.join_next() => {
                        if let Some(joined) = joined {
                            log_join(joined);
                        }
                    }
                }
                continue;
            }
            if shutdown.as_mut().now_or_never().is_some() {
                break;
            }
            // Not raced against shutdown: a fetch cut short would leave the
            // notices already on their way unhandled until `ack_wait`. It is
            // bounded by `fetch_expiry`, and what it brings is handled.
            let fetched = fetch(&self.consumer, free, self.config.fetch_expiry).await;
            match fetched {
                Ok(messages) => {
                    fetch_failures = 0;
                    for message in messages {
                        context
                            .config
                            .counters
                            .received
                            .fetch_add(1, Ordering::Relaxed);
                        let context = context.clone();
                        let handler = handler.clone();
                        tasks.spawn(async move {
                            handle(&context, message, &*handler).await;
                        });
                    }
                }
                Err(error) => {
                    fetch_failures = fetch_failures.saturating_add(1);
                    let delay = backoff_delay(
                        Duration::from_millis(50),
                        Duration::from_secs(2),
                        fetch_failures,
                    );
                    tracing::warn!(%error, ?delay, "fetch failed; retrying");
                    tokio::select! {
                        biased;
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!(
            in_flight = tasks.len(),
            "stopping: finishing the notices in hand"
        );
        while let Some(joined) = tasks.join_next().await {
            log_join(joined);
        }
        if let Err(error) = self.client.flush().await {
            tracing::warn!(%error, "final flush");
        }
        tracing::info!("revocation worker stopped");
    }
}

fn check_settings(config: &WorkerConfig) -> Result<(), WorkerError> {
    let refuse = |setting, value: String, rule| {
        Err(WorkerError::Setting {
            setting,
            value,
            rule,
        })
    };
    if config.concurrency == 0 || config.concurrency > CONCURRENCY_MAX {
        return refuse(
            "concurrency",
            config.concurrency.to_string(),
            "must be between 1 and 256",
        );
    }
    if config.backoff_initial.is_zero() {
        return refuse(
            "backoff initial delay",
            format!("{:?}", config.backoff_initial),
            "must be more than zero",
        );
    }
    if config.backoff_max < config.backoff_initial {
        return refuse(
            "backoff maximum delay",
            format!("{:?}", config.backoff_max),
            "must be at least the initial delay",
        );
    }
    if config.ack_wait < Duration::from_millis(300) {
        return refuse(
            "ack wait",
            format!("{:?}", config.ack_wait),
            "must be at least 300ms (progress acks are sent every third of it)",
        );
    }
    if config.fetch_expiry < Duration::from_millis(10)
        || config.fetch_expiry > Duration::from_secs(60)
    {
        return refuse(
            "fetch expiry",
            format!("{:?}", config.fetch_expiry),
            "must be between 10ms and 60s (shutdown waits for the fetch in progress)",
        );
    }
    if config.worker_name.is_empty() || config.worker_name.len() > 256 {
        return refuse(
            "worker name",
            config.worker_name.clone(),
            "must be 1 to 256 bytes",
        );
    }
    if config.attempts_max == Some(0) {
        return refuse("attempts maximum", "0".to_owned(), "must be at least 1");
    }
    Ok(())
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        // Handler panics are caught inside the task; this is a bug.
        tracing::error!(%error, "a notice task failed");
    }
}

async fn fetch(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    max: usize,
    expiry: Duration,
) -> Result<Vec<jetstream::Message>, String> {
    let mut messages = consumer
        .fetch()
        .max_messages(max)
        .expires(expiry)
        .messages()
        .await
        .map_err(|error| error.to_string())?;
    let mut out = Vec::new();
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => out.push(message),
            Err(error) => {
                tracing::warn!(%error, "fetch");
                break;
            }
        }
    }
    Ok(out)
}

/// What every notice task shares.
struct TaskContext {
    tenant: String,
    revocations: String,
    jetstream: jetstream::Context,
    config: WorkerConfig,
}

/// Handles one delivery of one notice, to its end: acked, NAKed or
/// terminated (or left to redeliver when the server cannot be told).
async fn handle<H, F>(context: &TaskContext, message: jetstream::Message, handler: H)
where
    H: FnOnce(ExpiryNotice) -> F,
    F: Future<Output = Result<(), String>>,
{
    let counters = &context.config.counters;
    let (attempt, stream_sequence) = match message.info() {
        Ok(info) => (
            u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
            info.stream_sequence,
        ),
        Err(error) => {
            // Not a JetStream delivery: nothing to ack either.
            tracing::warn!(%error, subject = %message.subject, "message without JetStream metadata");
            return;
        }
    };
    let notice = match parse_notice(&message.payload, &context.tenant) {
        Ok(notice) => notice,
        Err((reason, detail)) => {
            tracing::warn!(
                reason,
                %detail,
                stream_sequence,
                subject = %message.subject,
                "terminating a notice that cannot be acted on"
            );
            terminate(context, &message, reason).await;
            return;
        }
    };
    let grant_id = notice.grant_id.clone();

    // The handler, with progress acks so that a slow removal keeps its notice.
    let progress_every = context.config.ack_wait / 3;
    let outcome = {
        let run = std::panic::AssertUnwindSafe(handler(notice)).catch_unwind();
        let mut run = std::pin::pin!(run);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + progress_every, progress_every);
        loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                _ = ticks.tick() => {
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(%error, %grant_id, "progress ack");
                    }
                }
            }
        }
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(panic) => Err(format!(
            "the handler panicked: {}",
            panic_text(panic.as_ref())
        )),
    };

    match outcome {
        Ok(()) => {
            let report = RevocationReport::Confirmed {
                grant_id: grant_id.clone(),
                worker: context.config.worker_name.clone(),
            };
            if let Err(error) = publish_report(context, &report).await {
                // The access is gone but the ledger does not know: retry the
                // whole notice (handlers are idempotent) rather than ack it.
                counters.report_errors.fetch_add(1, Ordering::Relaxed);
                let delay = backoff_delay(
                    context.config.backoff_initial,
                    context.config.backoff_max,
                    attempt,
                );
                tracing::warn!(%error, %grant_id, ?delay, "cannot publish the confirmation; retrying the notice");
                nak(&message, delay, &grant_id).await;
                return;
            }
            if let Err(error) = message.ack_with(AckKind::Ack).await {
                // Redelivered after ack_wait; the next confirmation is a
                // duplicate JetStream and the ledger drop.
                tracing::warn!(%error, %grant_id, "ack after confirmation");
            }
            counters.confirmed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%grant_id, attempt, "access removed and confirmed");
        }
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            let report = RevocationReport::Failed {
                grant_id: grant_id.clone(),
                worker: context.config.worker_name.clone(),
                error: tail(&error, REPORT_ERROR_BYTES_MAX),
                attempt,
            };
            if let Err(publish_error) = publish_report(context, &report).await {
                counters.report_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %publish_error, %grant_id, "cannot publish the failure report");
            }
            if context
                .config
                .attempts_max
                .is_some_and(|max| attempt >= max)
            {
                tracing::error!(%grant_id, attempt, %error, "giving up: attempts exhausted");
                terminate(context, &message, "attempts_exhausted").await;
                return;
            }
            let delay = backoff_delay(
                context.config.backoff_initial,
                context.config.backoff_max,
                attempt,
            );
            tracing::warn!(%grant_id, attempt, %error, ?delay, "removal failed; retrying later");
            nak(&message, delay, &grant_id).await;
        }
    }
}

/// Parses a notice; `Err((reason, detail))` names why it cannot be acted on.
fn parse_notice(payload: &[u8], tenant: &str) -> Result<ExpiryNotice, (&'static str, String)> {
    if payload.len() > NOTICE_BYTES_MAX {
        return Err((
            "oversized",
            format!(
                "the notice is {} bytes, more than {NOTICE_BYTES_MAX}",
                payload.len()
            ),
        ));
    }
    let notice: ExpiryNotice = serde_json::from_slice(payload).map_err(|error| {
        let reason = match error.classify() {
            serde_json::error::Category::Data => {
                let text = error.to_string();
                if text.starts_with("unknown field") {
                    "unknown_field"
                } else if text.starts_with("missing field") {
                    "missing_field"
                } else {
                    "invalid_value"
                }
            }
            _ => "malformed_json",
        };
        (reason, error.to_string())
    })?;
    if notice.tenant.as_str() != tenant {
        return Err((
            "tenant_mismatch",
            format!(
                "the notice is for tenant `{}` but this worker serves `{tenant}`",
                notice.tenant
            ),
        ));
    }
    Ok(notice)
}

async fn publish_report(context: &TaskContext, report: &RevocationReport) -> Result<(), String> {
    let body = serde_json::to_vec(report).map_err(|error| error.to_string())?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", report.message_id(&context.tenant).as_str());
    let ack = context
        .jetstream
        .publish_with_headers(context.revocations.clone(), headers, body.into())
        .await
        .map_err(|error| error.to_string())?;
    let ack = tokio::time::timeout(context.config.request_timeout, ack)
        .await
        .map_err(|_| format!("no PubAck within {:?}", context.config.request_timeout))?
        .map_err(|error| error.to_string())?;
    if ack.duplicate {
        tracing::info!(
            sequence = ack.sequence,
            "report was a duplicate; JetStream kept the first"
        );
    }
    Ok(())
}

async fn nak(message: &jetstream::Message, delay: Duration, grant_id: &GrantId) {
    if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
        // Redelivered after ack_wait instead.
        tracing::warn!(%error, %grant_id, "nak");
    }
}

/// Terminates a delivery: the server never redelivers it. The reason is
/// logged here, not sent: `+TERM <reason>` needs nats-server 2.10.4 or later
/// and older servers ignore the whole ack.
async fn terminate(context: &TaskContext, message: &jetstream::Message, reason: &str) {
    context
        .config
        .counters
        .terminated
        .fetch_add(1, Ordering::Relaxed);
    if let Err(error) = message.ack_with(AckKind::Term).await {
        tracing::warn!(%error, reason, "terminate");
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// The last `bytes_max` bytes of `text` (cut at a character boundary),
/// marked as cut.
fn tail(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let marker = "...";
    let mut start = text.len() - (bytes_max - marker.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{marker}{}", &text[start..])
}

/// How `grantledger revoker` removes access: a shell command or a webhook.
#[derive(Clone, Debug)]
pub enum Hook {
    /// `sh -c <command>` with the notice JSON on stdin: exit 0 means removed;
    /// a non-zero exit or a timeout is a failure whose error is the end of
    /// its stderr. The command runs in its own process group, which is
    /// killed (SIGKILL) at the timeout, children included. Its stdout is
    /// discarded.
    Exec {
        /// The shell command.
        command: String,
        /// How long it may run.
        timeout: Duration,
    },
    /// A POST of the notice JSON (`Content-Type: application/json`): a 2xx
    /// answer means removed; anything else, or no answer within the
    /// timeout, is a failure.
    Webhook {
        /// The URL.
        url: String,
        /// The client, with the timeout set.
        client: reqwest::Client,
    },
}

/// The most stderr kept from a hook command, in bytes (its end).
pub const STDERR_TAIL_BYTES_MAX: usize = 2 * 1024;

/// The most of a webhook's answer body kept for a failure report, in characters.
pub const WEBHOOK_BODY_BYTES_MAX: usize = 1024;

impl Hook {
    /// A command hook.
    pub fn exec(command: String, timeout: Duration) -> Hook {
        Hook::Exec { command, timeout }
    }

    /// A webhook hook; fails when the HTTP client cannot be built (no TLS
    /// roots, say).
    pub fn webhook(url: String, timeout: Duration) -> Result<Hook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| format!("cannot build the HTTP client for `{url}`: {error}"))?;
        Ok(Hook::Webhook { url, client })
    }

    /// Removes the access the notice names; `Err` says why not.
    pub async fn call(&self, notice: ExpiryNotice) -> Result<(), String> {
        let body = serde_json::to_vec(&notice).map_err(|error| error.to_string())?;
        match self {
            Hook::Exec { command, timeout } => {
                let command = command.clone();
                let timeout = *timeout;
                tokio::task::spawn_blocking(move || run_command(&command, body, timeout))
                    .await
                    .map_err(|error| format!("the command's task failed: {error}"))?
            }
            Hook::Webhook { url, client } => {
                let response = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| format!("webhook `{url}`: {error}"))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(WEBHOOK_BODY_BYTES_MAX).collect();
                Err(format!("webhook `{url}` answered {status}: {text}"))
            }
        }
    }
}

/// Runs `sh -c command` with `input` on stdin, blocking, for at most
/// `timeout`.
fn run_command(command: &str, input: Vec<u8>, timeout: Duration) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;

    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start `sh -c {command}`: {error}"))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    // A command need not read its stdin: a broken pipe is no failure.
    std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let (stderr_tx, stderr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut stderr) = stderr {
            let mut chunk = [0u8; 4096];
            while let Ok(read) = stderr.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                kept.extend_from_slice(&chunk[..read]);
                if kept.len() > STDERR_TAIL_BYTES_MAX {
                    kept.drain(..kept.len() - STDERR_TAIL_BYTES_MAX);
                }
            }
        }
        let _ = stderr_tx.send(kept);
    });
    let (status_tx, status_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let (status, timed_out) = match status_rx.recv_timeout(timeout) {
        Ok(status) => (status, false),
        Err(_) => {
            // The whole group: `sh -c` may have started children that would
            // outlive it and hold stderr open.
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -s KILL -- -{pid}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let status = status_rx
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("the waiting thread died")));
            (status, true)
        }
    };
    // Bounded: a process that escaped the group could hold stderr open.
    let stderr = stderr_rx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim_end();
    let status = status.map_err(|error| format!("cannot wait for `{command}`: {error}"))?;
    if timed_out {
        return Err(format!(
            "command `{command}` timed out after {timeout:?} and was killed; stderr: {stderr}"
        ));
    }
    if status.success() {
        return Ok(());
    }
    Err(format!(
        "command `{command}` failed ({status}); stderr: {stderr}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_initial_to_its_cap() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1_000);
        let delays: Vec<u64> = (1..=7)
            .map(|attempt| backoff_delay(initial, max, attempt).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        assert_eq!(backoff_delay(initial, max, 0), initial);
        assert_eq!(backoff_delay(initial, max, u32::MAX), max);
        let huge = Duration::from_secs(u64::MAX / 4);
        assert_eq!(backoff_delay(huge, Duration::MAX, 40), Duration::MAX);
    }

    #[test]
    fn subjects_are_refused_naming_the_value_and_the_rule() {
        assert_eq!(
            parse_expiry_subject("grants.expiry.acme.db").unwrap(),
            ExpirySubject {
                tenant: "acme".to_owned(),
                resource_kind: "db".to_owned()
            }
        );
        let rows = [
            (
                "grants.expiry.acme",
                "subject `grants.expiry.acme` is not of the form `grants.expiry.<tenant>.<resource_kind>`: the resource kind is missing",
            ),
            (
                "grants.expiry.",
                "subject `grants.expiry.` is not of the form `grants.expiry.<tenant>.<resource_kind>`: the tenant and the resource kind are missing",
            ),
            (
                "grants.expiry..db",
                "subject `grants.expiry..db` is not of the form `grants.expiry.<tenant>.<resource_kind>`: the tenant is missing",
            ),
            (
                "grants.revocations.acme",
                "subject `grants.revocations.acme` is not of the form `grants.expiry.<tenant>.<resource_kind>`: it does not start with `grants.expiry.`",
            ),
            (
                "grants.expiry.*.db",
                "subject `grants.expiry.*.db`: tenant `*` holds `*`, so it cannot be a subject token",
            ),
            (
                "grants.expiry.acme.db.x",
                "subject `grants.expiry.acme.db.x`: resource kind `db.x` holds `.`, so it cannot be a subject token",
            ),
        ];
        for (subject, message) in rows {
            assert_eq!(
                parse_expiry_subject(subject).unwrap_err().to_string(),
                message
            );
        }
    }

    #[test]
    fn report_ids_dedupe_confirmations_but_not_attempts() {
        let grant_id = GrantId::new("grant:r-1").unwrap();
        let confirmed = RevocationReport::Confirmed {
            grant_id: grant_id.clone(),
            worker: "w".to_owned(),
        };
        assert_eq!(confirmed.message_id("acme"), "acme:confirmed:grant:r-1");
        let failed = |attempt| RevocationReport::Failed {
            grant_id: grant_id.clone(),
            worker: "w".to_owned(),
            error: "e".to_owned(),
            attempt,
        };
        assert_eq!(failed(2).message_id("acme"), "acme:failed:grant:r-1:2");
        assert_ne!(failed(1).message_id("acme"), failed(2).message_id("acme"));
        assert_eq!(
            serde_json::to_string(&confirmed).unwrap(),
            r#"{"type":"confirmed","grant_id":"grant:r-1","worker":"w"}"#
        );
    }

    #[test]
    fn malformed_notices_are_named() {
        let good = r#"{"tenant":"acme","grant_id":"grant:r-1","request_id":"r-1","principal":{"id":"alice","kind":"human","owner":null},"entitlement":"db-read","resource":"db/prod","actions":["read"],"reason":"expired","expires_at_ms":5,"revoked_sequence":9}"#;
        assert!(parse_notice(good.as_bytes(), "acme").is_ok());
        let reason =
            |payload: &str, tenant: &str| parse_notice(payload.as_bytes(), tenant).unwrap_err().0;
        assert_eq!(reason(good, "other"), "tenant_mismatch");
        assert_eq!(reason("not json", "acme"), "malformed_json");
        assert_eq!(reason(r#"{"bogus":1}"#, "acme"), "unknown_field");
        assert_eq!(reason(r#"{"tenant":"acme"}"#, "acme"), "missing_field");
        assert_eq!(
            reason(&good.replace(r#""expired""#, r#""forgotten""#), "acme"),
            "invalid_value"
        );
        let big = format!("{}{}", " ".repeat(NOTICE_BYTES_MAX), good);
        assert_eq!(reason(&big, "acme"), "oversized");
    }

    #[test]
    fn a_command_gets_the_input_and_fails_with_the_end_of_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("stdin");
        let command = format!("cat > {}", out.display());
        assert_eq!(
            run_command(&command, b"{\"a\":1}".to_vec(), Duration::from_secs(10)),
            Ok(())
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"{\"a\":1}");
        // A command that ignores its stdin is no failure either.
        assert_eq!(
            run_command("true", vec![b'x'; 1 << 20], Duration::from_secs(10)),
            Ok(())
        );

        let noisy = "i=0; while [ $i -lt 500 ]; do echo line $i >&2; i=$((i+1)); done; echo last words >&2; exit 7";
        let error = run_command(noisy, Vec::new(), Duration::from_secs(10)).unwrap_err();
        assert!(error.contains("(exit status: 7)"), "{error}");
        assert!(error.ends_with("last words"), "{error}");
        assert!(
            !error.contains("line 0\n"),
            "only the tail is kept: {error}"
        );
        assert!(error.len() < STDERR_TAIL_BYTES_MAX + noisy.len() + 100);
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // A child in the background that would write the marker later.
        let command = format!(
            "(sleep 2; touch {}) & echo started >&2; sleep 30",
            marker.display()
        );
        let started = std::time::Instant::now();
        let error = run_command(&command, Vec::new(), Duration::from_millis(300)).unwrap_err();
        assert!(error.contains("timed out after 300ms"), "{error}");
        assert!(error.ends_with("started"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not killed: {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(2_500));
        assert!(
            !marker.exists(),
            "the background child outlived the timeout"
        );
    }

    #[test]
    fn tail_keeps_the_end_at_a_character_boundary() {
        assert_eq!(tail("short", 10), "short");
        let text = format!("{}é end", "x".repeat(20));
        let cut = tail(&text, 9);
        assert!(cut.len() <= 9, "{cut}");
        assert!(cut.starts_with("...") && cut.ends_with(" end"), "{cut}");
    }
}
