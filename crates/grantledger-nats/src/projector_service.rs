//! Projectors as services (`grantledger project <name>`): one projection, its
//! own RocksDB, its own durable consumer on `LEDGER_EVENTS`.
//!
//! The loop pulls a batch of the tenant's committed events, orders it by
//! sequence number and hands it to [`Projector::apply`], which writes state
//! and cursor in one synced batch, skips what is at or below the cursor and
//! stops at a gap. A gap (an event lost on the way, a hole a NATS restart
//! left, a consumer created after the events it missed, a store rebuilt
//! from scratch) is filled from the ledger itself over
//! `grantledger.backfill.<tenant>`, 512 records at a time, before the batch
//! is applied again. Only then are the batch's messages acknowledged, so a
//! crash at any point redelivers what was not durably applied, and a
//! redelivery of what was is a duplicate. When nothing arrives for a while
//! the projector asks the ledger for its head, so an event whose publication
//! was lost at the tail is not waited for until the next one.
//!
//! Questions are answered on `grants.query.<tenant>.<query>` (NATS
//! request/reply, JSON) from a separate task, reading the store while the
//! loop writes it; `grants.query.<tenant>.status.<projection>` gives the
//! cursor and the digest a replay from genesis must reproduce.
//!
//! expiry-timers also has duties of its own, run from their own task beside
//! the event loop (woken after each applied batch and every tick): the
//! timers that came due go to the ledger on `grants.timers.<tenant>` (which
//! records `GrantRevoked{expired}` for a grant's expiry, issues a scheduled
//! request's grant at its start, and records `RequestExpired` for a request
//! that waited for approvers past its request TTL), and each committed revocation in its
//! outbox is published as an [`ExpiryNotice`] on
//! `grants.expiry.<tenant>.<resource_kind>` (`Nats-Msg-Id`
//! `<tenant>:expiry:<grant_id>`), removed from the outbox only once its
//! PubAck is in. Both come in bounded batches, so a storm neither blocks
//! event processing nor loses anything. Time comes from a [`Clock`], so
//! tests move it instead of sleeping.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use grantledger_events::{Committed, PrincipalId, RequestId, ResourceId, Timestamp};
use grantledger_projector::{
    AuditEvidence, CurrentGrants, DueTimer, ExpiryTimers, FindingRules, PROJECTION_NAMES, Projection,
    Projector, ProjectorError,
};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::ledger_service::{
    BACKFILL_RECORDS_MAX, BackfillReply, BackfillRequest, SEQUENCE_HEADER, TIMER_GRANTS_MAX,
};
use crate::revoker::ExpiryNotice;
use crate::streams::LEDGER_EVENTS_STREAM;
use crate::subjects::{
    backfill_subject, expiry_subject, ledger_events_filter, query_subject, status_subject,
    timers_subject,
};

/// The most events pulled (and applied in one call) at once.
pub const FETCH_MAX: usize = 512;

/// The most events the consumer lets be delivered and not yet acknowledged.
pub const ACK_PENDING_MAX: i64 = 10_000;

/// The most timers sent, or notices published, in one batch of the expiry
/// duties (one store scan, one set of PubAcks awaited together).
pub const EXPIRY_BATCH_MAX: usize = 2_000;

/// The most timers sent in one round of the expiry duties, in batches of
/// [`EXPIRY_BATCH_MAX`]; between rounds the duties publish the notices the
/// ledger's recorded expiries produced, so neither starves the other.
pub const EXPIRY_ROUND_MAX: usize = 20_000;

/// The largest query accepted, in bytes.
pub const QUERY_BYTES_MAX: usize = 16 * 1024;

/// What a projector service needs.
#[derive(Clone, Debug)]
pub struct ProjectorConfig {
    /// Which projection: one of [`PROJECTION_NAMES`].
    pub projection: String,
    /// Its store: created when empty, else opened (and refused when it holds
    /// another projection).
    pub data_dir: PathBuf,
    /// The NATS server URL.
    pub nats_url: String,
    /// The partition.
    pub tenant: String,
    /// A credentials file.
    pub creds_file: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// Inbox prefix for the client's requests.
    pub inbox_prefix: Option<String>,
    /// Bound on each NATS request.
    pub request_timeout: Duration,
    /// The durable consumer; `projector-<projection>-<tenant>` by default.
    pub durable_name: String,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// How long one fetch waits for events (the loop's period when idle).
    pub fetch_expiry: Duration,
    /// After this long without events, ask the ledger for its head.
    pub idle_check: Duration,
    /// expiry-timers: how often to look for due timers and unpublished
    /// revocations.
    pub expiry_tick: Duration,
    /// The clock (expiry, and the default `at` of queries).
    pub clock: Clock,
    /// audit-evidence: the rules findings are judged by.
    pub finding_rules: FindingRules,
    /// The counters (share them to read them).
    pub counters: Arc<ProjectorCounters>,
    /// Deliberate delivery faults, for tests only: NAK or leave unacked a
    /// share of the applied messages, so redeliveries and ack timeouts
    /// happen on purpose.
    pub chaos: Option<Chaos>,
}

/// Faults a test injects into acknowledgement.
#[derive(Clone, Copy, Debug)]
pub struct Chaos {
    /// Seeds the choice of messages.
    pub seed: u64,
    /// Percentage of messages NAKed after applying (redelivered at once).
    pub nak_percent: u8,
    /// Percentage left unacknowledged (redelivered after `ack_wait`).
    pub no_ack_percent: u8,
}

impl ProjectorConfig {
    /// A config with the defaults for everything but what, where and whom.
    pub fn new(
        projection: &str,
        data_dir: PathBuf,
        nats_url: String,
        tenant: String,
    ) -> ProjectorConfig {
        ProjectorConfig {
            durable_name: format!("projector-{projection}-{tenant}"),
            projection: projection.to_owned(),
            data_dir,
            nats_url,
            tenant,
            creds_file: None,
            user_password: None,
            inbox_prefix: None,
            request_timeout: Duration::from_secs(5),
            ack_wait: Duration::from_secs(30),
            fetch_expiry: Duration::from_millis(200),
            idle_check: Duration::from_secs(2),
            expiry_tick: Duration::from_millis(200),
            clock: Clock::system(),
            finding_rules: FindingRules {
                review_window_ms: 24 * 3600 * 1000,
                debt_age_max_ms: 3600 * 1000,
            },
            counters: Arc::new(ProjectorCounters::default()),
            chaos: None,
        }
    }
}

/// A projector's counters, monotonic unless said otherwise.
#[derive(Debug, Default, Serialize)]
pub struct ProjectorCounters {
    /// Messages pulled from `LEDGER_EVENTS` (each delivery counts).
    pub received: AtomicU64,
    /// Events applied.
    pub applied: AtomicU64,
    /// Deliveries at or below the cursor, skipped.
    pub duplicates: AtomicU64,
    /// Gaps found.
    pub gaps: AtomicU64,
    /// Events read from the ledger's backfill responder.
    pub backfilled: AtomicU64,
    /// Messages that were not a committed event of this tenant (terminated).
    pub malformed: AtomicU64,
    /// Queries answered.
    pub queries: AtomicU64,
    /// Timers sent to the ledger.
    pub timers_sent: AtomicU64,
    /// Expiry notices published (PubAck received).
    pub notices_published: AtomicU64,
    /// The cursor (a gauge).
    pub cursor: AtomicU64,
}

/// Why a projector service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorServiceError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// Could not connect.
    #[error("cannot connect to NATS at `{url}`: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        reason: String,
    },
    /// A NATS or JetStream operation failed for good.
    #[error("NATS: {0}")]
    Nats(String),
    /// The projection's store failed, or an event does not apply.
    #[error(transparent)]
    Projector(#[from] ProjectorError),
}

/// Runs projection `config.projection` until `shutdown` completes; the
/// batch in hand is finished first.
pub async fn run(
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProjectorServiceError> {
    if config.projection == CurrentGrants::NAME {
        run_projection::<CurrentGrants>(config, shutdown).await
    } else if config.projection == ExpiryTimers::NAME {
        run_projection::<ExpiryTimers>(config, shutdown).await
    } else if config.projection == AuditEvidence::NAME {
        run_projection::<AuditEvidence>(config, shutdown).await
    } else {
        Err(ProjectorServiceError::Config(format!(
            "there is no projection `{}`: expected one of {}",
            config.projection,
            PROJECTION_NAMES.map(|name| format!("`{name}`")).join(", ")
        )))
    }
}

/// What differs between projections in the service: the questions each
/// answers, and expiry-timers' duties.
trait Served: Projection + Send + Sync + 'static {
    /// The queries answered, as the last token of `grants.query.<tenant>.*`.
    const QUERIES: &'static [&'static str];

    /// Answers `query`.
    fn answer(
        projector: &Projector<Self>,
        query: &str,
        payload: &[u8],
        config: &ProjectorConfig,
    ) -> Result<serde_json::Value, String>;

    /// Work besides applying events, run between batches.
    fn duties<'a>(
        _projector: &'a RwLock<Projector<Self>>,
        _context: &'a Context,
    ) -> impl Future<Output = ()> + Send + 'a {
        async {}
    }
}

/// What the loop and the duties share.
struct Context {
    config: ProjectorConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    backfill_subject: String,
}

async fn run_projection<P: Served>(
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProjectorServiceError> {
    let tenant = config.tenant.clone();
    let bad_tenant = |error: crate::SubjectError| ProjectorServiceError::Config(error.to_string());
    let filter = ledger_events_filter(&tenant).map_err(bad_tenant)?;
    let backfill = backfill_subject(&tenant).map_err(bad_tenant)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|error| {
        ProjectorServiceError::Config(format!(
            "cannot create the store directory `{}`: {error}",
            config.data_dir.display()
        ))
    })?;
    let projector = Arc::new(RwLock::new(blocking(|| {
        Projector::<P>::open(&config.data_dir)
    })?));
    let cursor = read(&projector).cursor();
    config.counters.cursor.store(cursor, Ordering::Relaxed);

    let client = crate::connect::connect(crate::connect::Connection {
        url: &config.nats_url,
        name: format!("grantledger-projector-{}-{tenant}", P::NAME),
        timeout: config.request_timeout,
        inbox_prefix: config.inbox_prefix.as_ref(),
        user_password: config.user_password.as_ref(),
        creds_file: config.creds_file.as_ref(),
    })
    .await
    .map_err(|reason| ProjectorServiceError::Connect {
        url: config.nats_url.clone(),
        reason,
    })?;
    let jetstream = jetstream::new(client.clone());
    let context = Arc::new(Context {
        config: config.clone(),
        client: client.clone(),
        jetstream,
        backfill_subject: backfill,
    });

    // Queries, from their own task: reads go on while the loop writes.
    let mut subscriptions = Vec::new();
    for query in P::QUERIES {
        let subject = query_subject(&tenant, query).map_err(bad_tenant)?;
        subscriptions.push(client.subscribe(subject).await.map_err(nats)?);
    }
    subscriptions.push(
        client
            .subscribe(status_subject(&tenant, P::NAME).map_err(bad_tenant)?)
            .await
            .map_err(nats)?,
    );
    let queries = tokio::spawn(answer_queries::<P>(
        projector.clone(),
        context.clone(),
        subscriptions,
    ));

    let mut shutdown = std::pin::pin!(shutdown);
    let consumer = tokio::select! {
        biased;
        _ = &mut shutdown => {
            queries.abort();
            return Ok(());
        }
        consumer = durable_consumer(&context, &filter) => consumer,
    };
    // A durable consumer created by an earlier version keeps its explicit
    // acks: the policy is the server's, not this config's.
    let ack_all = consumer.cached_info().config.ack_policy == jetstream::consumer::AckPolicy::All;
    tracing::info!(projection = P::NAME, tenant, cursor, durable = %config.durable_name, ack_all, "projector running");

    // Duties (expiry timers and notices) from their own task, so that
    // sending a storm of timers and applying the expiries it brings back
    // overlap. Woken after every applied batch and every `expiry_tick`.
    let applied = Arc::new(tokio::sync::Notify::new());
    let (stop_duties, duties_stopped) = tokio::sync::watch::channel(false);
    let duties = tokio::spawn(run_duties::<P>(
        projector.clone(),
        context.clone(),
        applied.clone(),
        duties_stopped,
    ));

    let mut chaos = config.chaos.map(|chaos| (chaos, chaos.seed));
    let mut last_event = Instant::now();
    let mut failures = 0u32;
    let result = loop {
        if futures::FutureExt::now_or_never(shutdown.as_mut()).is_some() {
            break Ok(());
        }
        // Not raced against shutdown: a fetch cut short would leave the
        // events on their way unacknowledged until `ack_wait`. It is bounded
        // by `fetch_expiry`.
        let messages = match fetch(&consumer, config.fetch_expiry).await {
            Ok(messages) => messages,
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(50u64.saturating_mul(1 << failures.min(6)))
                    .min(Duration::from_secs(2));
                tracing::warn!(%error, ?delay, "fetch failed; retrying");
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        failures = 0;
        if messages.is_empty() {
            if last_event.elapsed() >= config.idle_check {
                last_event = Instant::now();
                if let Err(error) = catch_up_with_ledger(&projector, &context).await {
                    break Err(error);
                }
            }
            continue;
        }
        last_event = Instant::now();
        if let Err(error) = process(&projector, &context, messages, ack_all, chaos.as_mut()).await {
            break Err(error);
        }
        applied.notify_one();
    };
    // The duties finish the round in hand: what they published is marked
    // so; an interrupted round is repeated after a restart and deduplicated
    // by its message ids.
    let _ = stop_duties.send(true);
    applied.notify_one();
    if let Err(error) = duties.await {
        tracing::error!(%error, "the expiry duties task failed");
    }
    queries.abort();
    if let Err(error) = client.flush().await {
        tracing::debug!(%error, "final flush");
    }
    tracing::info!(
        projection = P::NAME,
        cursor = read(&projector).cursor(),
        "projector stopped"
    );
    result
}

/// Runs `P::duties` every `expiry_tick`, and at once after an applied
/// batch, until `stop` turns true.
async fn run_duties<P: Served>(
    projector: Arc<RwLock<Projector<P>>>,
    context: Arc<Context>,
    applied: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        P::duties(&projector, &context).await;
        tokio::select! {
            _ = applied.notified() => {}
            _ = tokio::time::sleep(context.config.expiry_tick) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// Gets or creates the durable consumer, waiting (with backoff) for the
/// ledger to create `LEDGER_EVENTS`: a projector never creates streams.
async fn durable_consumer(
    context: &Context,
    filter: &str,
) -> jetstream::consumer::Consumer<pull::Config> {
    let config = &context.config;
    let mut attempt = 0u32;
    loop {
        let made = async {
            let stream = context
                .jetstream
                .get_stream(LEDGER_EVENTS_STREAM)
                .await
                .map_err(|error| error.to_string())?;
            stream
                .get_or_create_consumer(
                    &config.durable_name,
                    pull::Config {
                        durable_name: Some(config.durable_name.clone()),
                        filter_subject: filter.to_owned(),
                        // One ack per applied batch (see `process`); the
                        // chaos of the tests fails single messages, which
                        // needs explicit acks.
                        ack_policy: if config.chaos.is_some() {
                            jetstream::consumer::AckPolicy::Explicit
                        } else {
                            jetstream::consumer::AckPolicy::All
                        },
                        ack_wait: config.ack_wait,
                        max_ack_pending: ACK_PENDING_MAX,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|error| error.to_string())
        }
        .await;
        match made {
            Ok(consumer) => return consumer,
            Err(reason) => {
                attempt = attempt.saturating_add(1);
                let delay = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5)))
                    .min(Duration::from_secs(3));
                tracing::warn!(
                    %reason, stream = LEDGER_EVENTS_STREAM, durable = %config.durable_name, ?delay,
                    "cannot set up the consumer yet (is the ledger running?); retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// One pull: what is there now; when nothing, waits for one event (at most
/// `expiry`) and takes what else has come. Every pull request ends at a
/// deadline, even one a restarting server never answers.
async fn fetch(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    expiry: Duration,
) -> Result<Vec<jetstream::Message>, String> {
    let deadline = expiry + Duration::from_secs(1);
    let pull = |max: usize| async move {
        consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|error| error.to_string())
    };
    let mut out = collect(pull(FETCH_MAX).await?, deadline).await;
    if out.is_empty() {
        let one = consumer
            .batch()
            .max_messages(1)
            .expires(expiry)
            .messages()
            .await
            .map_err(|error| error.to_string())?;
        out = collect(one, deadline).await;
        if !out.is_empty() {
            out.extend(collect(pull(FETCH_MAX - 1).await?, deadline).await);
        }
    }
    Ok(out)
}

async fn collect(
    mut messages: impl futures::Stream<Item = Result<jetstream::Message, impl std::fmt::Display>>
    + Unpin,
    deadline: Duration,
) -> Vec<jetstream::Message> {
    let until = tokio::time::Instant::now() + deadline;
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(until, messages.next()).await {
            Ok(Some(Ok(message))) => out.push(message),
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "fetch");
                break;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    ?deadline,
                    "a pull request got no end from the server; pulling again"
                );
                break;
            }
        }
    }
    out
}

/// Applies one pulled batch, filling gaps from the ledger, then acks it.
async fn process<P: Served>(
    projector: &RwLock<Projector<P>>,
    context: &Context,
    messages: Vec<jetstream::Message>,
    ack_all: bool,
    mut chaos: Option<&mut (Chaos, u64)>,
) -> Result<(), ProjectorServiceError> {
    let counters = &context.config.counters;
    counters
        .received
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    let mut events = Vec::with_capacity(messages.len());
    let mut delivered = Vec::with_capacity(messages.len());
    for message in messages {
        match parse_event(&context.config.tenant, &message) {
            Ok(committed) => {
                events.push(committed);
                delivered.push(message);
            }
            Err(reason) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %message.subject, %reason, "not a committed event of this tenant; terminated");
                if let Err(error) = message.ack_with(AckKind::Term).await {
                    tracing::debug!(%error, "term");
                }
            }
        }
    }
    // The stream may hold a tenant's events out of order after a NATS
    // restart; apply in log order.
    events.sort_by_key(|committed| committed.sequence);
    loop {
        let outcome = apply(projector, context, &events)?;
        let Some(gap) = outcome.gap else { break };
        counters.gaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            from = gap.from,
            to = gap.to,
            "gap; backfilling from the ledger"
        );
        if let Err(error) = fill(projector, context, gap.to).await {
            let reason = match error {
                FillError::Fatal(error) => return Err(error),
                FillError::Unavailable(reason) => reason,
            };
            // The ledger is away: leave the batch to be delivered again.
            tracing::warn!(%reason, from = gap.from, to = gap.to, "backfill failed; the batch comes back");
            for message in &delivered {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
    }
    // Everything delivered is now at or below the cursor, durably.
    if ack_all && chaos.is_none() {
        // One ack for the batch: under `AckPolicy::All` it acknowledges every
        // message of the stream up to it. A message it covers that was not
        // in this batch (one NAKed earlier while a backfill failed) needs no
        // delivery: the cursor only moves contiguously, so its event is
        // applied from the ledger's backfill when the next one arrives, or by
        // the idle head check.
        let last = delivered
            .iter()
            .max_by_key(|message| message.info().map(|info| info.stream_sequence).unwrap_or(0));
        if let Some(message) = last
            && let Err(error) = message.ack().await
        {
            tracing::debug!(%error, "ack not sent; the batch comes back as duplicates");
        }
        return Ok(());
    }
    for message in delivered {
        let kind = match chaos.as_deref_mut() {
            None => AckKind::Ack,
            Some((chaos, state)) => {
                let roll = (splitmix(state) % 100) as u8;
                if roll < chaos.nak_percent {
                    AckKind::Nak(None)
                } else if roll < chaos.nak_percent.saturating_add(chaos.no_ack_percent) {
                    // Left for `ack_wait` to redeliver.
                    continue;
                } else {
                    AckKind::Ack
                }
            }
        };
        if let Err(error) = message.ack_with(kind).await {
            tracing::debug!(%error, "ack not sent; the event comes back as a duplicate");
        }
    }
    Ok(())
}

/// Applies `events` (in order) under the write lock, off the async workers.
fn apply<P: Served>(
    projector: &RwLock<Projector<P>>,
    context: &Context,
    events: &[Committed],
) -> Result<grantledger_projector::ApplyOutcome, ProjectorServiceError> {
    let counters = &context.config.counters;
    let outcome = blocking(|| write(projector).apply(events))?;
    counters
        .applied
        .fetch_add(outcome.applied, Ordering::Relaxed);
    counters
        .duplicates
        .fetch_add(outcome.duplicates, Ordering::Relaxed);
    counters.cursor.store(outcome.cursor, Ordering::Relaxed);
    Ok(outcome)
}

/// Why a backfill stopped short.
enum FillError {
    /// The ledger did not answer, refused, or does not hold the range yet:
    /// try again later.
    Unavailable(String),
    /// What the ledger sent does not apply to this store: stop.
    Fatal(ProjectorServiceError),
}

/// Reads from the ledger and applies until the cursor reaches `to` (or the
/// ledger's head, when `to` is `u64::MAX`). Each reply is applied before the
/// next request: memory stays bounded whatever the gap.
async fn fill<P: Served>(
    projector: &RwLock<Projector<P>>,
    context: &Context,
    to: u64,
) -> Result<(), FillError> {
    let unavailable = FillError::Unavailable;
    loop {
        let cursor = read(projector).cursor();
        if cursor >= to {
            return Ok(());
        }
        let request = BackfillRequest {
            from: cursor + 1,
            limit: (to - cursor).min(u64::from(BACKFILL_RECORDS_MAX)) as u32,
        };
        let body = serde_json::to_vec(&request).expect("serializable");
        let reply = tokio::time::timeout(
            context.config.request_timeout,
            context
                .client
                .request(context.backfill_subject.clone(), body.into()),
        )
        .await
        .map_err(|_| {
            unavailable(format!(
                "no backfill reply within {:?}",
                context.config.request_timeout
            ))
        })?
        .map_err(|error| unavailable(format!("backfill request: {error}")))?;
        let reply: BackfillReply = serde_json::from_slice(&reply.payload)
            .map_err(|error| unavailable(format!("malformed backfill reply: {error}")))?;
        if let Some(error) = reply.error {
            return Err(unavailable(format!(
                "the ledger refused the backfill: {error}"
            )));
        }
        if reply.records.is_empty() {
            if to == u64::MAX {
                return Ok(());
            }
            return Err(unavailable(format!(
                "the ledger's log ends at {}, before sequence {}",
                reply.head,
                cursor + 1
            )));
        }
        let records: Vec<Committed> = reply
            .records
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|error| {
                FillError::Fatal(nats(format!("a backfilled record does not parse: {error}")))
            })?;
        context
            .config
            .counters
            .backfilled
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let outcome = apply(projector, context, &records).map_err(FillError::Fatal)?;
        if outcome.applied == 0 {
            return Err(FillError::Fatal(nats(format!(
                "the ledger's reply from sequence {} applied nothing",
                cursor + 1
            ))));
        }
        if to == u64::MAX && outcome.cursor >= reply.head {
            return Ok(());
        }
    }
}

/// When idle: asks the ledger whether it holds more than the cursor (the
/// last publications may have been lost) and applies what it has. A ledger
/// that is not answering is only logged.
async fn catch_up_with_ledger<P: Served>(
    projector: &RwLock<Projector<P>>,
    context: &Context,
) -> Result<(), ProjectorServiceError> {
    match fill(projector, context, u64::MAX).await {
        Ok(()) => Ok(()),
        Err(FillError::Fatal(error)) => Err(error),
        Err(FillError::Unavailable(reason)) => {
            tracing::debug!(%reason, "head check");
            Ok(())
        }
    }
}

/// A `LEDGER_EVENTS` message as the committed event it carries, checked
/// against its headers and subject.
fn parse_event(tenant: &str, message: &jetstream::Message) -> Result<Committed, String> {
    let committed: Committed = serde_json::from_slice(&message.payload)
        .map_err(|error| format!("body is not a committed event: {error}"))?;
    let header = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(SEQUENCE_HEADER))
        .and_then(|value| value.as_str().parse::<u64>().ok());
    if header != Some(committed.sequence) {
        return Err(format!(
            "`{SEQUENCE_HEADER}` {header:?} disagrees with the body's sequence {}",
            committed.sequence
        ));
    }
    if committed.envelope.tenant.as_str() != tenant {
        return Err(format!(
            "an event of tenant `{}`",
            committed.envelope.tenant
        ));
    }
    Ok(committed)
}

async fn answer_queries<P: Served>(
    projector: Arc<RwLock<Projector<P>>>,
    context: Arc<Context>,
    subscriptions: Vec<async_nats::Subscriber>,
) {
    let mut incoming = futures::stream::select_all(subscriptions);
    while let Some(message) = incoming.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let query = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let is_status = message
            .subject
            .as_str()
            .ends_with(&format!(".status.{}", P::NAME));
        let answer = if message.payload.len() > QUERY_BYTES_MAX {
            Err(format!(
                "the query is {} bytes; at most {QUERY_BYTES_MAX}",
                message.payload.len()
            ))
        } else {
            let projector = projector.clone();
            let context = context.clone();
            let payload = message.payload.clone();
            // Reads may scan the store: off the async workers.
            tokio::task::spawn_blocking(move || {
                let projector = read(&projector);
                if is_status {
                    status(&projector, &context.config)
                } else {
                    P::answer(&projector, &query, &payload, &context.config)
                }
            })
            .await
            .unwrap_or_else(|error| Err(format!("the query failed: {error}")))
        };
        context
            .config
            .counters
            .queries
            .fetch_add(1, Ordering::Relaxed);
        let body = match answer {
            Ok(value) => value,
            Err(error) => serde_json::json!({ "error": error }),
        };
        let body = serde_json::to_vec(&body).expect("serializable");
        if let Err(error) = context.client.publish(reply_to, body.into()).await {
            tracing::debug!(%error, "query reply not sent");
        }
    }
}

/// The reply to `grants.query.<tenant>.status.<projection>`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// The projection.
    pub projection: String,
    /// The last applied sequence.
    pub cursor: u64,
    /// The digest at the cursor (what `grantledger replay --json` reports
    /// for a log ending there).
    pub digest: String,
    /// The record hash at the cursor.
    pub record_hash: String,
    /// The counters.
    pub counters: serde_json::Value,
}

fn status<P: Served>(
    projector: &Projector<P>,
    config: &ProjectorConfig,
) -> Result<serde_json::Value, String> {
    let digest = projector.digest().map_err(|error| error.to_string())?;
    let status = Status {
        projection: P::NAME.to_owned(),
        cursor: digest.sequence,
        digest: digest.digest,
        record_hash: digest.record_hash,
        counters: serde_json::to_value(&*config.counters).expect("serializable"),
    };
    Ok(serde_json::to_value(status).expect("serializable"))
}

/// A query's body, by query; unknown fields are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    principal: Option<PrincipalId>,
    resource: Option<ResourceId>,
    action: Option<String>,
    request_id: Option<RequestId>,
    /// The time asked about, UTC milliseconds; now when absent.
    at_ms: Option<i64>,
    limit: Option<usize>,
}

impl Query {
    fn parse(payload: &[u8]) -> Result<Query, String> {
        if payload.iter().all(u8::is_ascii_whitespace) {
            return Ok(Query::default());
        }
        serde_json::from_slice(payload).map_err(|error| format!("malformed query: {error}"))
    }

    fn principal(&self) -> Result<&PrincipalId, String> {
        self.principal
            .as_ref()
            .ok_or_else(|| "`principal` is required".to_owned())
    }

    fn resource(&self) -> Result<&ResourceId, String> {
        self.resource
            .as_ref()
            .ok_or_else(|| "`resource` is required".to_owned())
    }

    fn at(&self, config: &ProjectorConfig) -> Timestamp {
        self.at_ms
            .map(Timestamp)
            .unwrap_or_else(|| config.clock.now())
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(100)
    }
}

fn json(value: Result<impl Serialize, ProjectorError>) -> Result<serde_json::Value, String> {
    value
        .map(|value| serde_json::to_value(value).expect("serializable"))
        .map_err(|error| error.to_string())
}

fn unknown_query(query: &str, known: &[&str]) -> String {
    format!(
        "unknown query `{query}`: expected one of {}",
        known.join(", ")
    )
}

impl Served for CurrentGrants {
    const QUERIES: &'static [&'static str] =
        &["check", "grants", "holders", "pending", "scheduled"];

    fn answer(
        projector: &Projector<Self>,
        query: &str,
        payload: &[u8],
        config: &ProjectorConfig,
    ) -> Result<serde_json::Value, String> {
        let q = Query::parse(payload)?;
        let cursor = projector.cursor();
        match query {
            "check" => {
                let action = q.action.as_deref().ok_or("`action` is required")?;
                let at = q.at(config);
                let allowed = projector
                    .check(q.principal()?, action, q.resource()?, at)
                    .map_err(|e| e.to_string())?;
                Ok(
                    serde_json::json!({ "allowed": allowed, "at_ms": at.0, "as_of_sequence": cursor }),
                )
            }
            "grants" => Ok(serde_json::json!({
                "grants": json(projector.grants_of(q.principal()?, q.at(config), q.limit()))?,
                "as_of_sequence": cursor,
            })),
            "holders" => Ok(serde_json::json!({
                "grants": json(projector.holders_of(q.resource()?, q.at(config), q.limit()))?,
                "as_of_sequence": cursor,
            })),
            "pending" => Ok(serde_json::json!({
                "pending": json(projector.pending(q.limit()))?,
                "as_of_sequence": cursor,
            })),
            "scheduled" => Ok(serde_json::json!({
                "scheduled": json(projector.scheduled(q.limit()))?,
                "as_of_sequence": cursor,
            })),
            other => Err(unknown_query(other, Self::QUERIES)),
        }
    }
}

impl Served for AuditEvidence {
    const QUERIES: &'static [&'static str] = &["why", "who", "could", "evidence", "findings"];

    fn answer(
        projector: &Projector<Self>,
        query: &str,
        payload: &[u8],
        config: &ProjectorConfig,
    ) -> Result<serde_json::Value, String> {
        let q = Query::parse(payload)?;
        match query {
            "why" => json(projector.why(q.principal()?, q.resource()?, q.at(config))),
            "who" => json(projector.who_had_access(q.resource()?, q.at(config))),
            "could" => json(projector.could_do(q.principal()?, q.at(config))),
            "evidence" => {
                let request_id = q.request_id.as_ref().ok_or("`request_id` is required")?;
                let (items, truncated) =
                    projector.evidence(request_id).map_err(|e| e.to_string())?;
                Ok(
                    serde_json::json!({ "evidence": items, "truncated": truncated, "as_of_sequence": projector.cursor() }),
                )
            }
            "findings" => json(projector.findings(q.at(config), config.finding_rules)),
            other => Err(unknown_query(other, Self::QUERIES)),
        }
    }
}

impl Served for ExpiryTimers {
    const QUERIES: &'static [&'static str] = &["debt"];

    fn answer(
        projector: &Projector<Self>,
        query: &str,
        payload: &[u8],
        config: &ProjectorConfig,
    ) -> Result<serde_json::Value, String> {
        let q = Query::parse(payload)?;
        match query {
            "debt" => Ok(serde_json::json!({
                "debt": json(projector.revocation_debt(q.at(config), q.limit()))?,
                "as_of_sequence": projector.cursor(),
            })),
            other => Err(unknown_query(other, Self::QUERIES)),
        }
    }

    fn duties<'a>(
        projector: &'a RwLock<Projector<Self>>,
        context: &'a Context,
    ) -> impl Future<Output = ()> + Send + 'a {
        async move {
            if let Err(reason) = send_timers(projector, context).await {
                tracing::warn!(%reason, "timers not sent; they are sent again");
            }
            if let Err(reason) = publish_notices(projector, context).await {
                tracing::warn!(%reason, "expiry notices not all published; they stay in the outbox");
            }
        }
    }
}

/// Sends the timers that came due to the ledger (expiries, scheduled starts,
/// request expiries), through JetStream, expiries up to `TIMER_GRANTS_MAX`
/// grants to a message, in batches of [`EXPIRY_BATCH_MAX`] timers whose
/// PubAcks are awaited together, at most [`EXPIRY_ROUND_MAX`] in one round.
/// A timer lost or refused is sent again on a later pass; the ledger refuses
/// the expiry of a grant already revoked, the start of a request already
/// started and the expiry of a request no longer pending, so a repeat is
/// harmless.
async fn send_timers(
    projector: &RwLock<Projector<ExpiryTimers>>,
    context: &Context,
) -> Result<(), String> {
    let subject = timers_subject(&context.config.tenant).map_err(|error| error.to_string())?;
    let mut sent = 0;
    while sent < EXPIRY_ROUND_MAX {
        let now = context.config.clock.now();
        let due = blocking(|| write(projector).due(now, EXPIRY_BATCH_MAX))
            .map_err(|error| error.to_string())?;
        // Several expiries to a message: the ledger stages each as its own
        // input, and a storm costs a fraction of the messages. Starts and
        // request expiries go one to a message.
        let mut bodies = Vec::new();
        let mut grant_ids = Vec::new();
        for timer in &due {
            match timer {
                DueTimer::Expiry { grant_id, .. } => {
                    grant_ids.push(grant_id);
                    if grant_ids.len() == TIMER_GRANTS_MAX {
                        let ids = std::mem::take(&mut grant_ids);
                        bodies.push((serde_json::json!({ "grant_ids": ids }), ids.len()));
                    }
                }
                other => bodies.push((other.body(), 1)),
            }
        }
        if !grant_ids.is_empty() {
            bodies.push((serde_json::json!({ "grant_ids": grant_ids }), grant_ids.len()));
        }
        let mut acks = Vec::with_capacity(bodies.len());
        for (body, timers) in bodies {
            let body = serde_json::to_vec(&body).expect("serializable");
            let ack = context
                .jetstream
                .publish(subject.clone(), body.into())
                .await
                .map_err(|error| error.to_string())?;
            acks.push((ack, timers));
        }
        for (ack, timers) in acks {
            ack.await.map_err(|error| error.to_string())?;
            context
                .config
                .counters
                .timers_sent
                .fetch_add(timers as u64, Ordering::Relaxed);
        }
        sent += due.len();
        if due.len() < EXPIRY_BATCH_MAX {
            break;
        }
    }
    if sent > 0 {
        tracing::debug!(count = sent, "timers sent");
    }
    Ok(())
}

/// Publishes the outbox as expiry notices, in batches of
/// [`EXPIRY_BATCH_MAX`], until it is empty, a publish fails, or
/// [`EXPIRY_ROUND_MAX`] went out in this round; each is marked published
/// once its PubAck is in.
async fn publish_notices(
    projector: &RwLock<Projector<ExpiryTimers>>,
    context: &Context,
) -> Result<(), String> {
    let tenant = &context.config.tenant;
    let mut skipped = std::collections::HashSet::new();
    let mut attempted = 0;
    while attempted < EXPIRY_ROUND_MAX {
        let outbox = blocking(|| read(projector).to_publish(EXPIRY_BATCH_MAX))
            .map_err(|error| error.to_string())?;
        let outbox: Vec<_> = outbox
            .into_iter()
            .filter(|item| !skipped.contains(&item.id))
            .collect();
        if outbox.is_empty() {
            return Ok(());
        }
        let full = outbox.len() == EXPIRY_BATCH_MAX;
        attempted += outbox.len();
        let mut pending = Vec::with_capacity(outbox.len());
        for item in &outbox {
            let subject = match expiry_subject(tenant, &item.resource_kind) {
                Ok(subject) => subject,
                Err(error) => {
                    // Stays in the outbox and in the revocation debt, visible.
                    tracing::error!(%error, grant = %item.grant_id, "no expiry subject for this resource; not published");
                    skipped.insert(item.id);
                    continue;
                }
            };
            let notice = ExpiryNotice {
                tenant: item.tenant.clone(),
                grant_id: item.grant_id.clone(),
                request_id: item.request_id.clone(),
                principal: item.principal.clone(),
                entitlement: item.entitlement.clone(),
                resource: item.resource.clone(),
                actions: item.actions.clone(),
                reason: item.reason,
                expires_at_ms: item.expires_at.0,
                revoked_sequence: item.id,
            };
            let mut headers = HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                format!("{tenant}:expiry:{}", item.grant_id).as_str(),
            );
            let body = serde_json::to_vec(&notice).expect("serializable");
            let ack = context
                .jetstream
                .publish_with_headers(subject, headers, body.into())
                .await
                .map_err(|error| error.to_string())?;
            pending.push((item.id, ack));
        }
        let mut published = Vec::with_capacity(pending.len());
        let mut failure = None;
        for (id, ack) in pending {
            match ack.await {
                Ok(_) => published.push(id),
                Err(error) => failure = Some(error.to_string()),
            }
        }
        blocking(|| write(projector).mark_published(&published))
            .map_err(|error| error.to_string())?;
        context
            .config
            .counters
            .notices_published
            .fetch_add(published.len() as u64, Ordering::Relaxed);
        if let Some(failure) = failure {
            return Err(failure);
        }
        if !full {
            return Ok(());
        }
    }
    Ok(())
}

fn read<P: Projection>(
    projector: &RwLock<Projector<P>>,
) -> std::sync::RwLockReadGuard<'_, Projector<P>> {
    projector
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<P: Projection>(
    projector: &RwLock<Projector<P>>,
) -> std::sync::RwLockWriteGuard<'_, Projector<P>> {
    projector
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn nats(error: impl std::fmt::Display) -> ProjectorServiceError {
    ProjectorServiceError::Nats(error.to_string())
}

/// Runs store work without stalling the NATS client's tasks.
fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How a client reaches the running projectors.
#[derive(Clone, Debug)]
pub struct QueryConnection {
    /// The NATS server URL.
    pub url: String,
    /// The tenant asked about.
    pub tenant: String,
    /// A credentials file.
    pub creds_file: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// Inbox prefix (the shipped config gives the API role none: `_INBOX`).
    pub inbox_prefix: Option<String>,
    /// How long to wait for the answer.
    pub timeout: Duration,
}

/// Asks a running projector `query` (`why`, `check`, ...: the queries of
/// the module documentation) with `body`, and returns its JSON
/// answer; an answer carrying `error`, no projector listening, or none
/// answering in time is an error naming which.
pub async fn ask(
    connection: &QueryConnection,
    query: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ProjectorServiceError> {
    let subject = query_subject(&connection.tenant, query)
        .map_err(|error| ProjectorServiceError::Config(error.to_string()))?;
    let client = crate::connect::connect(crate::connect::Connection {
        url: &connection.url,
        name: "grantledger-query".to_owned(),
        timeout: connection.timeout,
        inbox_prefix: connection.inbox_prefix.as_ref(),
        user_password: connection.user_password.as_ref(),
        creds_file: connection.creds_file.as_ref(),
    })
    .await
    .map_err(|reason| ProjectorServiceError::Connect {
        url: connection.url.clone(),
        reason,
    })?;
    let payload = serde_json::to_vec(body).expect("serializable");
    let reply = client.request(subject.clone(), payload.into()).await.map_err(|error| {
        use async_nats::client::RequestErrorKind;
        match error.kind() {
            RequestErrorKind::NoResponders => ProjectorServiceError::Nats(format!(
                "no projector answers `{subject}`: is its `grantledger project` running for tenant `{}`?",
                connection.tenant
            )),
            RequestErrorKind::TimedOut => ProjectorServiceError::Nats(format!(
                "no answer on `{subject}` within {:?}",
                connection.timeout
            )),
            _ => nats(error),
        }
    })?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload).map_err(|error| {
        ProjectorServiceError::Nats(format!("the answer on `{subject}` is not JSON: {error}"))
    })?;
    if let Some(error) = answer.get("error").and_then(|error| error.as_str()) {
        return Err(ProjectorServiceError::Nats(format!(
            "the projector refused the query: {error}"
        )));
    }
    Ok(answer)
}
