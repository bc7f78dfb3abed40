//! The ledger as a service on NATS JetStream: it pulls inputs from
//! `GRANT_INPUT`, decides them in one ledger batch, group-commits the events
//! to the RocksDB log (synced), publishes them to `LEDGER_EVENTS`
//! (`Nats-Msg-Id` = sequence number) and waits for JetStream's acks, and only
//! then sends receipts and acknowledges the inputs. Nothing is acknowledged
//! to anyone before it is durable in the log.
//!
//! Two stages run at once: one pulls inputs (a continuous pull, no round
//! trip per batch), decides and commits batch after batch; the other
//! publishes the committed records in log order, a window of them awaiting
//! their acks, and answers a batch's inputs once every record up to the
//! batch's last is acknowledged. So batch N+1 is decided and committed while
//! batch N is being published, and each input is still answered only after
//! its events are both synced in the log and stored by JetStream.
//!
//! Receipts: a producer that needs certainty publishes its input with the
//! header [`REPLY_TO_HEADER`] naming a subject it subscribes to (its inbox);
//! once the events are committed and published, the ledger publishes a
//! [`ServiceReceipt`] (JSON) there. A message pulled from JetStream carries
//! no reply subject of its producer, hence the header.
//!
//! After a restart the service republishes the committed events that
//! `LEDGER_EVENTS` does not hold yet (from the last `Nats-Msg-Id` of the
//! tenant's events in the stream to the log's head), so the stream converges
//! to the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use grantledger_core::{Command, Rejection};
use grantledger_events::{
    Causation, Committed, DecisionOutcome, Event, GrantId, PrincipalId, RequestId,
    RevocationReason, SubmitRequest, TenantId,
};
use grantledger_ledger::{Input, Ledger, LedgerError};
use grantledger_log::LogOptions;
use serde::{Deserialize, Serialize};

use crate::streams::{GRANT_INPUT_STREAM, LEDGER_EVENTS_STREAM, StreamsConfig, StreamsError, ensure_streams};
use crate::clock::Clock;
use crate::subjects::{
    CHECKPOINTS_SUBJECT, InputKind, approvals_subject, backfill_subject, ledger_events_subject, parse_input_subject,
    policy_subject, rejections_subject, requests_subject, revocations_subject, signals_subject, timers_subject,
};

/// The header a producer sets to get a receipt on that subject.
pub const REPLY_TO_HEADER: &str = "Grantledger-Reply-To";

/// The largest input body accepted, in bytes (policy inputs have their own
/// bound, [`POLICY_INPUT_BYTES_MAX`]).
pub const INPUT_BYTES_MAX: usize = 64 * 1024;

/// The largest body accepted on `grants.policy.<tenant>`, in bytes: policy
/// sets and catalogs are larger than requests. Below NATS's default
/// `max_payload` (1 MiB), which the shipped config keeps, with room for the
/// headers; the texts inside are bounded again by the core
/// (`grantledger_core::POLICY_BYTES_MAX`, the catalog's own limit).
pub const POLICY_INPUT_BYTES_MAX: usize = 512 * 1024;

/// The largest body accepted for an input of `kind`, in bytes.
pub fn input_bytes_max(kind: InputKind) -> usize {
    match kind {
        InputKind::Policy => POLICY_INPUT_BYTES_MAX,
        _ => INPUT_BYTES_MAX,
    }
}

/// The most inputs pulled (and decided in one batch) at once.
pub const FETCH_MAX: usize = 256;

/// How the service connects and what it serves.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The ledger's directory: created when empty, else opened.
    pub data_dir: PathBuf,
    /// The NATS server URL.
    pub nats_url: String,
    /// The partition served.
    pub tenant: String,
    /// A credentials file.
    pub creds_file: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// Inbox prefix for the client's requests (the shipped config gives the
    /// ledger `_INBOX_LEDGER`).
    pub inbox_prefix: Option<String>,
    /// Bound on each NATS request (stream and consumer calls).
    pub request_timeout: Duration,
    /// The durable consumer's name.
    pub durable_name: String,
    /// The catalog published when the log is empty, if any.
    pub catalog: Option<String>,
    /// How long one pull request for inputs waits on the server before the
    /// client asks again (inputs flow as they come either way; this bounds
    /// how long a pull request the server lost goes unnoticed).
    pub fetch_expiry: Duration,
    /// The streams' settings.
    pub streams: StreamsConfig,
    /// The counters to update (share them to read them).
    pub counters: Arc<Counters>,
    /// Signed checkpoints on a schedule, when a key is given.
    pub checkpoints: Option<CheckpointConfig>,
    /// The ledger's clock: the system clock, or a test's manual one (so
    /// expiry can be tested without sleeping through real TTLs).
    pub clock: Clock,
    /// Workload identity issuers: requests carrying a token are verified
    /// against them at intake; without them such requests are refused.
    pub identity: Option<Arc<grantledger_policy::identity::Issuers>>,
}

/// When and how the service signs checkpoints of its log.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// The ledger's signing key; its name is the checkpoints' origin.
    pub key: Arc<grantledger_proof::SignerKey>,
    /// Sign once this many records have been committed since the last one...
    pub every_records: u64,
    /// ...or once this much time has passed with new records.
    pub every: Duration,
    /// Also write the newest checkpoint to this file (replaced atomically),
    /// for a process that ships it to auditors.
    pub file: Option<PathBuf>,
}

impl ServiceConfig {
    /// A config with the defaults for everything but where and whom.
    pub fn new(data_dir: PathBuf, nats_url: String, tenant: String) -> ServiceConfig {
        let durable_name = format!("ledger-{tenant}");
        ServiceConfig {
            data_dir,
            nats_url,
            tenant,
            creds_file: None,
            user_password: None,
            inbox_prefix: None,
            request_timeout: Duration::from_secs(5),
            durable_name,
            catalog: None,
            fetch_expiry: Duration::from_secs(1),
            streams: StreamsConfig::default(),
            counters: Arc::new(Counters::default()),
            checkpoints: None,
            clock: Clock::system(),
            identity: None,
        }
    }
}

/// The service's counters, monotonic unless said otherwise.
#[derive(Debug, Default)]
pub struct Counters {
    /// Input messages pulled.
    pub received: AtomicU64,
    /// Inputs whose events were committed.
    pub committed_inputs: AtomicU64,
    /// Events committed.
    pub committed_events: AtomicU64,
    /// Inputs rejected (malformed, or refused by the rules, duplicates included).
    pub rejected: AtomicU64,
    /// Of those, duplicates of a decided request.
    pub duplicates: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Inputs in the last batch (a gauge).
    pub last_batch_size: AtomicU64,
    /// Sum of commit latencies, microseconds.
    pub commit_latency_us_total: AtomicU64,
    /// Largest commit latency, microseconds.
    pub commit_latency_us_max: AtomicU64,
    /// Commit latencies (decide and synced commit of one batch) by
    /// power-of-two bucket: where a tail comes from.
    pub commit_latency: LatencyBuckets,
    /// The synced log write alone (RocksDB write and WAL fsync), by the
    /// same buckets: a tail here is the disk's, a tail in
    /// `commit_latency` only is deciding's.
    pub write_latency: LatencyBuckets,
    /// Largest synced log write, microseconds.
    pub write_latency_us_max: AtomicU64,
    /// Per input, from JetStream storing it on GRANT_INPUT (the server's
    /// clock) to its batch starting to be decided: the pull's delivery and
    /// the wait behind the batch being committed before it.
    pub input_wait: LatencyBuckets,
    /// Per batch, from its commit to JetStream acknowledging its last
    /// record on LEDGER_EVENTS (and every record before it).
    pub publish_latency: LatencyBuckets,
    /// Per input, from JetStream storing it to its receipt and ack being
    /// sent: the service's whole share of a producer's wait for a receipt.
    pub input_latency: LatencyBuckets,
    /// Events republished at start-up.
    pub republished: AtomicU64,
}

/// How many [`LatencyBuckets`] there are.
pub const LATENCY_BUCKETS: usize = 12;

/// A latency histogram with fixed power-of-two buckets, updated with one
/// relaxed atomic add: bucket `i` counts latencies up to
/// [`LatencyBuckets::upper_bound_us`]`(i)` (128 µs, 256 µs, ... 128 ms), and
/// the last one everything above 128 ms.
#[derive(Debug, Default)]
pub struct LatencyBuckets {
    counts: [AtomicU64; LATENCY_BUCKETS],
}

impl LatencyBuckets {
    /// The largest latency bucket `index` holds, in microseconds; `u64::MAX`
    /// for the last.
    pub fn upper_bound_us(index: usize) -> u64 {
        if index + 1 >= LATENCY_BUCKETS { u64::MAX } else { 128 << index }
    }

    /// Counts one latency.
    pub fn record(&self, latency_us: u64) {
        let index = (0..LATENCY_BUCKETS).find(|&index| latency_us <= Self::upper_bound_us(index)).unwrap_or(LATENCY_BUCKETS - 1);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, bucket by bucket.
    pub fn counts(&self) -> [u64; LATENCY_BUCKETS] {
        std::array::from_fn(|index| self.counts[index].load(Ordering::Relaxed))
    }

    /// Starts counting again from zero.
    pub fn reset(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
    }
}

/// What the service publishes on `grants.rejections.<tenant>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionNotice {
    /// The named reason: `malformed_json`, `unknown_field`, `wrong_type`,
    /// `oversized`, `unknown_tenant`, `unknown_subject`, or a core rejection code.
    pub reason: String,
    /// What exactly.
    pub detail: String,
    /// The input's subject.
    pub subject: String,
    /// The input's sequence in `GRANT_INPUT`.
    pub stream_sequence: u64,
    /// For a duplicate request, its original decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<ServiceReceipt>,
}

/// What a producer gets on its [`REPLY_TO_HEADER`] subject, once durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReceipt {
    /// `committed`, `duplicate` (the original decision) or `rejected`.
    pub status: String,
    /// The request, when the input names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The committed sequence numbers of the input's events (for a
    /// duplicate: of the original request's events).
    pub sequences: Vec<u64>,
    /// The decision, for a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<DecisionOutcome>,
    /// When the request is allowed, or approved by enough approvers, but
    /// waits for its scheduled start (UTC milliseconds): no grant exists
    /// yet, the ledger issues it when the start comes. Set on the receipt of
    /// the input that left it so (its submission, the approval that
    /// completed it) and of a duplicate while it still waits; absent
    /// otherwise (granted at once, denied, waiting for approvers, closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at_ms: Option<i64>,
    /// For `rejected`: the reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `rejected`: the detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a policy set committed from `grants.policy.<tenant>`: its hash,
    /// which the decisions made under it cite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// For a catalog committed from `grants.policy.<tenant>`: its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_hash: Option<String>,
}

/// An approval or denial, on `grants.approvals.<tenant>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// The request.
    pub request_id: RequestId,
    /// Who decides.
    pub approver: PrincipalId,
    /// `approve` or `deny`.
    pub decision: ApprovalDecision,
    /// The approver's words.
    #[serde(default)]
    pub comment: String,
}

/// An approver's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Approve.
    Approve,
    /// Refuse.
    Deny,
}

/// The name of the JSON Schema file of [`SignalInput`] under `schemas/`.
pub const SIGNAL_SCHEMA_FILE: &str = "signal.schema.json";

/// A signal, on `grants.signals.<tenant>`. Unknown fields are refused.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignalInput {
    /// The task a grant was for is done: revoke it.
    TaskComplete {
        /// The grant.
        grant_id: GrantId,
        /// Who says so.
        by: PrincipalId,
        /// The task.
        #[serde(default)]
        detail: String,
    },
    /// A risk signal about a principal: revoke all its live grants
    /// (`risk_signal`) and close its requests waiting for approvers or for a
    /// scheduled start (`request_expired`, reason `risk_signal`). Refused
    /// (`principal_has_no_live_grant`) when it has none of these.
    Risk {
        /// The principal.
        principal: PrincipalId,
        /// Who raised it.
        by: PrincipalId,
        /// The signal.
        #[serde(default)]
        detail: String,
    },
    /// A principal left (from an HR system or identity provider): record
    /// the offboarding and revoke all its live grants and those of the
    /// workloads and agents it owns (`owner_gone`); its later requests are
    /// denied (`principal_offboarded`), as are theirs (`owner_offboarded`).
    /// A second offboarding of one principal is refused
    /// (`principal_already_offboarded`).
    Offboarded {
        /// Who left.
        principal: PrincipalId,
        /// Who says so.
        by: PrincipalId,
        /// The signal (a termination record, a ticket).
        #[serde(default)]
        detail: String,
    },
    /// The requester (or, for a workload or an agent, its owner) withdraws
    /// a request still waiting for approvers or for its scheduled start:
    /// it is closed (`request_withdrawn`) and nothing is granted for it.
    /// Refused once it was granted, denied or closed (`request_not_open`),
    /// by anyone else (`withdrawal_not_by_requester`), and with a blank
    /// reason (`withdrawal_reason_required`).
    Withdraw {
        /// The request.
        request_id: RequestId,
        /// Who withdraws it: the requester, or the requester's owner.
        by: PrincipalId,
        /// Why (the maintenance was postponed, the task was cancelled).
        reason: String,
    },
}

/// The JSON Schema of [`SignalInput`], for producers in other languages.
/// `schemas/signal.schema.json` holds it; a test keeps it current.
pub fn signal_schema() -> schemars::Schema {
    schemars::schema_for!(SignalInput)
}

/// A revocation worker's report, on `grants.revocations.<tenant>`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RevocationInput {
    /// The access was removed at the target.
    Confirmed {
        /// The grant.
        grant_id: GrantId,
        /// Which worker.
        worker: String,
    },
    /// Removing it failed; the worker retries.
    Failed {
        /// The grant.
        grant_id: GrantId,
        /// Which worker.
        worker: String,
        /// What went wrong.
        error: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
}

/// The name of the JSON Schema file of [`PolicyInput`] under `schemas/`.
pub const POLICY_INPUT_SCHEMA_FILE: &str = "policy-input.schema.json";

/// A catalog or a policy set to put in force, on `grants.policy.<tenant>`
/// (from an admin or a policy author; the shipped NATS config lets nobody
/// else publish there). The body is at most 512 KiB
/// ([`POLICY_INPUT_BYTES_MAX`]). Unknown fields are refused.
///
/// The ledger stages the matching command in its next batch: a catalog that
/// does not parse is refused (`catalog_invalid`, with the catalog's
/// message), a policy set that does not parse, validate against the Cedar
/// schema or fit the catalog in force is refused (`policy_invalid`, with
/// Cedar's message), as is a catalog the policy set in force does not fit;
/// a refused one records nothing, and what is in force stays in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyInput {
    /// Put this catalog of entitlements in force (a `catalog_published`
    /// event); later decisions use it and cite its hash.
    Catalog {
        /// The catalog, TOML, exactly as it will be hashed and stored.
        text: String,
        /// Who publishes it.
        published_by: PrincipalId,
    },
    /// Put this Cedar policy set in force (a `policy_published` event);
    /// from then on the policy engine decides every request, and each
    /// decision cites the set's hash.
    Policy {
        /// The Cedar policies, exactly as they will be hashed and stored.
        policy_text: String,
        /// The exception rules (TOML), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exceptions_text: Option<String>,
        /// Who publishes it.
        published_by: PrincipalId,
    },
}

impl PolicyInput {
    /// The command the ledger stages for it.
    pub fn command(self) -> Command {
        match self {
            PolicyInput::Catalog { text, published_by } => Command::PublishCatalog { text, published_by },
            PolicyInput::Policy { policy_text, exceptions_text, published_by } => {
                Command::PublishPolicy { policy_text, exceptions_text, published_by }
            }
        }
    }
}

/// The JSON Schema of [`PolicyInput`]. `schemas/policy-input.schema.json`
/// holds it; a test keeps it current.
pub fn policy_input_schema() -> schemars::Schema {
    schemars::schema_for!(PolicyInput)
}

/// The name of the JSON Schema file of [`TimerInput`] under `schemas/`.
pub const TIMER_SCHEMA_FILE: &str = "timer.schema.json";

/// A timer, on `grants.timers.<tenant>` (sent by the expiry-timers
/// projector): `{"grant_id": ...}` (a grant's `expires_at` came; the body
/// every ledger version reads), `{"grant_ids": [...]}` (up to
/// [`TIMER_GRANTS_MAX`] grants' `expires_at` came: a storm of expiries in a
/// fraction of the messages), `{"request_id": ..., "kind": "start"}` (a
/// scheduled request's start came) or `{"request_id": ..., "kind":
/// "request_expiry"}` (a request waiting for approvers reached its request
/// TTL). Unknown fields are refused.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerInput {
    /// What came: `expiry` (the default), `start` or `request_expiry`.
    #[serde(default)]
    pub kind: TimerKind,
    /// The grant whose `expires_at` came: for an `expiry`.
    #[serde(default)]
    pub grant_id: Option<GrantId>,
    /// Or several, at most [`TIMER_GRANTS_MAX`]: for an `expiry`.
    #[serde(default)]
    pub grant_ids: Vec<GrantId>,
    /// The request whose start or deadline came: for a `start` or a
    /// `request_expiry`.
    #[serde(default)]
    pub request_id: Option<RequestId>,
}

/// What a timer says came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// A grant reached its `expires_at`: the ledger records its expiry.
    #[default]
    Expiry,
    /// A scheduled request's start came: the ledger issues its grant.
    Start,
    /// A request waiting for approvers reached its request TTL: the ledger
    /// records it expired.
    RequestExpiry,
}

/// The most grants one timer message names: [`FETCH_MAX`] such messages
/// stage at most `grantledger_ledger::BATCH_INPUTS_MAX` commands, one batch.
pub const TIMER_GRANTS_MAX: usize = grantledger_ledger::BATCH_INPUTS_MAX / FETCH_MAX;
const _: () = assert!(TIMER_GRANTS_MAX >= 1);

impl TimerInput {
    /// The commands the timer asks for (one per grant for an `expiry`, else
    /// one), or why it is refused (a timer that names the wrong id for its
    /// kind, no grant, or too many).
    pub fn commands(self) -> Result<Vec<Command>, (String, String)> {
        let missing = |kind: &str, field: &str| {
            (
                "missing_field".to_owned(),
                format!("a timer of kind `{kind}` must name its `{field}`"),
            )
        };
        let extra = |kind: &str, field: &str, value: &str| {
            (
                "unknown_field".to_owned(),
                format!("a timer of kind `{kind}` names no `{field}`: got `{value}`"),
            )
        };
        match self.kind {
            TimerKind::Expiry => {
                if let Some(request_id) = &self.request_id {
                    return Err(extra("expiry", "request_id", request_id.as_str()));
                }
                let grants: Vec<GrantId> = self.grant_id.into_iter().chain(self.grant_ids).collect();
                if grants.is_empty() {
                    return Err(missing("expiry", "grant_id` or `grant_ids"));
                }
                if grants.len() > TIMER_GRANTS_MAX {
                    return Err((
                        "malformed_timer".into(),
                        format!("a timer names at most {TIMER_GRANTS_MAX} grants; this one names {}", grants.len()),
                    ));
                }
                Ok(grants.into_iter().map(|grant_id| Command::Expire { grant_id }).collect())
            }
            TimerKind::Start | TimerKind::RequestExpiry => {
                let kind = if self.kind == TimerKind::Start { "start" } else { "request_expiry" };
                if let Some(grant_id) = self.grant_id.as_ref().or(self.grant_ids.first()) {
                    return Err(extra(kind, "grant_id", grant_id.as_str()));
                }
                let request_id = self.request_id.ok_or_else(|| missing(kind, "request_id"))?;
                Ok(vec![if self.kind == TimerKind::Start {
                    Command::Start { request_id }
                } else {
                    Command::ExpireRequest { request_id }
                }])
            }
        }
    }
}

/// The JSON Schema of [`TimerInput`]. `schemas/timer.schema.json` holds it;
/// a test keeps it current.
pub fn timer_schema() -> schemars::Schema {
    schemars::schema_for!(TimerInput)
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The tenant is not a valid subject token or id.
    #[error("invalid tenant `{0}`")]
    Tenant(String),
    /// Could not connect.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// The streams are missing and could not be created, or are misconfigured.
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// A NATS or JetStream operation failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The data directory could not be made.
    #[error("data directory: {0}")]
    Io(String),
    /// `LEDGER_EVENTS` holds events of this tenant beyond the log's head:
    /// the data directory is not the log those events came from (a restored
    /// backup, a wrong `--data`). Running would publish different events
    /// under sequence numbers subscribers have already seen.
    #[error(
        "LEDGER_EVENTS holds this tenant's events up to sequence {stream} but the log ends at {log}: wrong or restored data directory"
    )]
    Diverged {
        /// The highest sequence in the stream.
        stream: u64,
        /// The log's head.
        log: u64,
    },
    /// A checkpoint could not be signed or kept in the log.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The catalog given at start-up was refused.
    #[error("the catalog was refused: {0}")]
    Catalog(Rejection),
}

fn nats(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Nats(error.to_string())
}

/// What became of one input in a batch.
enum Fate {
    /// Staged; `starts_at_ms` when the input left its request waiting for
    /// a scheduled start.
    Staged {
        request_id: Option<String>,
        sequences: Vec<u64>,
        outcome: Option<DecisionOutcome>,
        starts_at_ms: Option<i64>,
        /// The hash of the policy set or catalog the input put in force.
        published: Published,
    },
    Duplicate { request_id: RequestId },
    Rejected { reason: String, detail: String, request_id: Option<String> },
    /// A request whose identity did not verify: refused, and the refusal is
    /// in the log (recorded by this input, or by an earlier delivery of the
    /// request id: then `sequences` is empty until looked up).
    IdentityRefused { request_id: RequestId, detail: String, sequences: Vec<u64> },
}

/// What a policy input put in force, for its receipt.
#[derive(Default)]
struct Published {
    policy_hash: Option<String>,
    catalog_hash: Option<String>,
}

impl Published {
    fn of(events: &[Event]) -> Published {
        let mut published = Published::default();
        for event in events {
            match event {
                Event::PolicyPublished(policy) => published.policy_hash = Some(policy.policy_hash.clone()),
                Event::CatalogPublished(catalog) => published.catalog_hash = Some(catalog.catalog_hash.clone()),
                _ => {}
            }
        }
        published
    }
}

/// Runs the service until `shutdown` completes, then finishes the batch in
/// hand (commit, publish, ack) and returns.
pub async fn run(
    config: ServiceConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let tenant_id = TenantId::new(config.tenant.clone()).map_err(|_| ServiceError::Tenant(config.tenant.clone()))?;
    let input_subjects = [
        requests_subject(&config.tenant),
        approvals_subject(&config.tenant),
        signals_subject(&config.tenant),
        revocations_subject(&config.tenant),
        timers_subject(&config.tenant),
        policy_subject(&config.tenant),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(|_| ServiceError::Tenant(config.tenant.clone()))?;
    let rejections = rejections_subject(&config.tenant).map_err(|_| ServiceError::Tenant(config.tenant.clone()))?;

    // The ledger first: a log that does not open is no reason to touch NATS.
    let options = LogOptions::default();
    let has_log = std::fs::read_dir(&config.data_dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    let mut ledger = if has_log {
        Ledger::open(&config.data_dir, tenant_id.clone(), options)?
    } else {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| ServiceError::Io(e.to_string()))?;
        Ledger::create(&config.data_dir, tenant_id.clone(), options)?
    };
    ledger.set_identity(config.identity.clone());
    if ledger.log().head().sequence == 0 {
        if let Some(text) = &config.catalog {
            let mut batch = ledger.begin(config.clock.now())?;
            batch
                .stage(Input {
                    command: Command::PublishCatalog {
                        text: text.clone(),
                        published_by: PrincipalId::new("ledger-service").expect("a valid id"),
                    },
                    producer: "ledger-service".to_owned(),
                    causation: Causation::Input("startup-catalog".to_owned()),
                })
                .map_err(ServiceError::Catalog)?;
            batch.commit()?;
        }
    }

    let client = crate::connect::connect(crate::connect::Connection {
        url: &config.nats_url,
        name: format!("grantledger-ledger-{}", config.tenant),
        timeout: config.request_timeout,
        inbox_prefix: config.inbox_prefix.as_ref(),
        user_password: config.user_password.as_ref(),
        creds_file: config.creds_file.as_ref(),
    })
    .await
    .map_err(ServiceError::Connect)?;
    crate::connect::check_server_version(&client.server_info().version).map_err(ServiceError::Connect)?;
    let js = jetstream::new(client.clone());
    let streams = ensure_streams(&js, &config.streams).await?;
    // A GRANT_INPUT made by an earlier version lacks the subjects added
    // since (the policy inputs): run without them rather than not at all
    // (the consumer may not filter on a subject its stream does not
    // capture), and say how to add them.
    let mut input_subjects = input_subjects;
    input_subjects.retain(|subject| {
        let pattern = parse_input_subject(subject).map(|input| format!("grants.{}.*", input.kind.token())).unwrap_or_default();
        let lacking = streams.lacks(GRANT_INPUT_STREAM, &pattern);
        if lacking {
            tracing::warn!(
                stream = GRANT_INPUT_STREAM,
                missing = %pattern,
                "the stream was made by an earlier version and does not capture `{pattern}`: inputs on `{subject}` \
                 cannot be published until an operator adds the subject to the stream (with the admin user, see \
                 deploy/README.md) and restarts the ledger"
            );
        }
        !lacking
    });

    // Converge LEDGER_EVENTS to the log before taking new work.
    let position = stream_position(&js, &config.tenant).await?;
    let head = ledger.log().head().sequence;
    if position.last > head {
        return Err(ServiceError::Diverged { stream: position.last, log: head });
    }
    if !position.missing.is_empty() {
        tracing::info!(count = position.missing.len(), "publishing the events missing from LEDGER_EVENTS");
        let n = publish_sequences(&js, &ledger, &config.tenant, &position.missing).await?;
        config.counters.republished.fetch_add(n, Ordering::Relaxed);
    }
    let mut published_through = position.last;
    if published_through < head {
        tracing::info!(from = published_through + 1, to = head, "republishing committed events");
        let n = publish_range(&js, &ledger, &config.tenant, &mut published_through, head).await?;
        config.counters.republished.fetch_add(n, Ordering::Relaxed);
    }

    let stream = js.get_stream(GRANT_INPUT_STREAM).await.map_err(nats)?;
    let consumer_config = pull::Config {
        durable_name: Some(config.durable_name.clone()),
        filter_subjects: input_subjects.clone(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: INPUTS_UNACKED_MAX as i64,
        ..Default::default()
    };
    let mut consumer = stream
        .get_or_create_consumer(&config.durable_name, consumer_config.clone())
        .await
        .map_err(nats)?;
    // A durable consumer made by an earlier version (or before the stream
    // captured the policy inputs) filters on fewer subjects: widen it, so
    // that the inputs on the new ones reach this ledger. Nothing else of
    // it changes: it keeps its position. An unfiltered one (made by hand)
    // would take every tenant's inputs: it is narrowed the same way.
    let filters = |info: &jetstream::consumer::Info| {
        let mut subjects = info.config.filter_subjects.clone();
        if !info.config.filter_subject.is_empty() {
            subjects.push(info.config.filter_subject.clone());
        }
        subjects.sort();
        subjects
    };
    let mut wanted = input_subjects;
    wanted.sort();
    let found = filters(consumer.cached_info());
    if found != wanted {
        tracing::info!(consumer = %config.durable_name, ?found, ?wanted, "updating the subjects of the ledger's consumer");
        consumer = stream.update_consumer(consumer_config).await.map_err(|error| {
            ServiceError::Nats(format!(
                "cannot set the subjects of consumer `{}` on `{GRANT_INPUT_STREAM}` to {wanted:?} (it has {found:?}): {error}",
                config.durable_name
            ))
        })?;
    }
    tracing::info!(tenant = %config.tenant, head, "ledger service running");

    let backfill = client
        .subscribe(backfill_subject(&config.tenant).map_err(|_| ServiceError::Tenant(config.tenant.clone()))?)
        .await
        .map_err(nats)?;
    let mut stop = Stop::new(shutdown);

    // Two stages, so that a batch is decided and committed while the ones
    // before it are being published: this task pulls, decides and commits;
    // the publisher publishes every committed record in log order and, once
    // JetStream has acknowledged a batch's records (and so every record
    // before them), sends that batch's receipts and notices and acks its
    // inputs.
    let (outgoing, queue) = tokio::sync::mpsc::channel(PIPELINE_BATCHES);
    let publisher = Publisher {
        js: js.clone(),
        client: client.clone(),
        rejections: rejections.clone(),
        counters: config.counters.clone(),
    };
    let mut publisher = AbortOnDrop(tokio::spawn(publisher.run(queue, published_through)));
    let decided = decide_loop(&config, &client, &consumer, &mut ledger, backfill, outgoing, &mut stop).await;
    // The decider has dropped its sender: the publisher publishes and
    // answers what it was handed, then returns.
    let published = match (&mut publisher.0).await {
        Ok(published) => published,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(ServiceError::Nats(format!("the publisher stopped: {error}"))),
    };
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "final flush");
    }
    decided?;
    published?;
    tracing::info!("ledger service stopped");
    Ok(())
}

/// Batches decided and committed ahead of the one being published.
const PIPELINE_BATCHES: usize = 2;

/// Inputs delivered and not yet acknowledged, at most (the consumer's
/// `max_ack_pending`): the batch being decided, the batches queued for the
/// publisher and the ones it is publishing, and the pull buffered ahead.
pub const INPUTS_UNACKED_MAX: usize = FETCH_MAX * 8;

/// Inputs asked for per pull request (the client asks again when half of
/// them have arrived).
const PULL_BATCH: usize = FETCH_MAX * 2;

/// Committed records the publisher holds unacknowledged before it takes no
/// more batches (the decider then waits: backpressure).
const UNPUBLISHED_MAX: usize = 4096;

/// A spawned task, aborted when this is dropped (a no-op once it has ended).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The first stage: pulls inputs, decides and commits each batch, and hands
/// it to the publisher; answers backfill requests and signs checkpoints.
/// Returns once shutdown is requested (the batch in hand committed and handed
/// over), or when the publisher is gone (its result says why).
async fn decide_loop<F: Future<Output = ()>>(
    config: &ServiceConfig,
    client: &async_nats::Client,
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    ledger: &mut Ledger,
    mut backfill: async_nats::Subscriber,
    outgoing: tokio::sync::mpsc::Sender<Outgoing>,
    stop: &mut Stop<F>,
) -> Result<(), ServiceError> {
    enum Next {
        Stop,
        Backfill(Option<async_nats::Message>),
        Input(Option<Result<jetstream::Message, String>>),
    }
    let mut inputs: Option<pull::Stream> = None;
    let mut backoff = Backoff::default();
    let mut backfill_open = true;
    let mut checkpointed = ledger.log().latest_checkpoint().map_err(LedgerError::from)?.map_or(0, |(size, _)| size);
    let mut last_checkpoint_at = Instant::now();
    while !stop.requested() {
        let Some(stream) = inputs.as_mut() else {
            match open_inputs(consumer, config.fetch_expiry).await {
                Ok(stream) => inputs = Some(stream),
                Err(error) => {
                    // NATS restarting, say: the client reconnects by itself.
                    tracing::warn!(%error, "pulling inputs failed; retrying");
                    stop.sleep(backoff.next()).await;
                }
            }
            continue;
        };
        // Backfill requests come before inputs, so a busy ledger still
        // answers the projectors that wait on it.
        let next = tokio::select! {
            biased;
            _ = stop.wait() => Next::Stop,
            request = backfill.next(), if backfill_open => Next::Backfill(request),
            input = stream.next() => Next::Input(input.map(|input| input.map_err(|error| error.to_string()))),
        };
        let mut messages = match next {
            Next::Stop => break,
            Next::Backfill(Some(request)) => {
                answer_backfill(client, ledger, request).await;
                continue;
            }
            Next::Backfill(None) => {
                backfill_open = false;
                continue;
            }
            Next::Input(None) => {
                tracing::warn!("the pull of inputs ended; pulling again");
                inputs = None;
                stop.sleep(backoff.next()).await;
                continue;
            }
            Next::Input(Some(Err(error))) => {
                // The pull's own task asks the server again (on reconnect,
                // or when a request expires unanswered).
                tracing::warn!(%error, "pulling inputs");
                stop.sleep(backoff.next()).await;
                continue;
            }
            Next::Input(Some(Ok(message))) => vec![message],
        };
        backoff.reset();
        // What else has arrived makes the rest of the batch: no waiting, a
        // batch is as large as the inputs that came while the last was decided.
        // (Unconstrained: tokio's cooperative budget would otherwise end the
        // batch after 128 polls of the subscription, with more inputs ready.)
        let stream = inputs.as_mut().expect("pulling");
        while messages.len() < FETCH_MAX {
            match futures::FutureExt::now_or_never(tokio::task::unconstrained(stream.next())) {
                Some(Some(Ok(message))) => messages.push(message),
                Some(Some(Err(error))) => {
                    tracing::warn!(%error, "pulling inputs");
                    break;
                }
                Some(None) | None => break,
            }
        }
        config.counters.received.fetch_add(messages.len() as u64, Ordering::Relaxed);
        let decided = blocking(|| decide_batch(config, ledger, messages))?;
        if outgoing.send(Outgoing::Batch(decided)).await.is_err() {
            return Ok(());
        }
        if let Some(checkpoints) = &config.checkpoints
            && let Some(checkpoint) = maybe_checkpoint(checkpoints, ledger, &mut checkpointed, &mut last_checkpoint_at)?
            && outgoing.send(Outgoing::Checkpoint(checkpoint)).await.is_err()
        {
            return Ok(());
        }
    }
    // Inputs pulled but not decided go back at once (rather than after
    // `ack_wait`), for whichever instance pulls next.
    if let Some(mut stream) = inputs.take() {
        let mut undecided = Vec::new();
        while let Some(Some(Ok(message))) = futures::FutureExt::now_or_never(tokio::task::unconstrained(stream.next())) {
            undecided.push(message);
        }
        drop(stream);
        for message in undecided {
            if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                tracing::debug!(%error, "nak of an undecided input");
            }
        }
    }
    Ok(())
}

/// The shutdown future, polled from several places, completed once.
struct Stop<F> {
    future: std::pin::Pin<Box<F>>,
    requested: bool,
}

impl<F: Future<Output = ()>> Stop<F> {
    fn new(future: F) -> Self {
        Stop { future: Box::pin(future), requested: false }
    }

    fn requested(&self) -> bool {
        self.requested
    }

    /// Completes when shutdown is requested (at once if it was).
    async fn wait(&mut self) {
        if !self.requested {
            (&mut self.future).await;
            self.requested = true;
        }
    }

    /// Sleeps `duration`, or less if shutdown is requested meanwhile.
    async fn sleep(&mut self, duration: Duration) {
        tokio::select! {
            _ = self.wait() => {}
            _ = tokio::time::sleep(duration) => {}
        }
    }
}

/// Capped exponential backoff for retrying NATS calls: 50 ms doubling to 2 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ms = (50u64 << self.attempt.min(6)).min(2_000);
        self.attempt += 1;
        Duration::from_millis(ms)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Runs blocking work (deciding and the synced RocksDB commit) without
/// stalling the runtime's other tasks, when the runtime can spare the thread.
fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The consumer's inputs as one continuous pull: the client keeps a pull
/// request outstanding (asking again when half of the last one has
/// arrived, when one expires, and after a reconnect), so inputs keep
/// arriving while a batch is decided, with no round trip per batch.
async fn open_inputs(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    expiry: Duration,
) -> Result<pull::Stream, ServiceError> {
    consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(expiry)
        .messages()
        .await
        .map_err(nats)
}

/// Parses one input; `Err((reason, detail))` names why it is refused.
/// A JSON input that does not deserialize: its reason code and detail.
fn named_json_error(error: serde_json::Error) -> (String, String) {
    let text = error.to_string();
    let reason = if text.starts_with("unknown field") || text.contains("unknown variant") {
        "unknown_field"
    } else if error.is_data() {
        "wrong_type"
    } else {
        "malformed_json"
    };
    (reason.to_owned(), text)
}

fn parse(kind: InputKind, payload: &[u8]) -> Result<Command, (String, String)> {
    let named = named_json_error;
    Ok(match kind {
        InputKind::Request => Command::Submit(serde_json::from_slice::<SubmitRequest>(payload).map_err(named)?),
        InputKind::Approval => {
            let a: ApprovalInput = serde_json::from_slice(payload).map_err(named)?;
            match a.decision {
                ApprovalDecision::Approve => Command::Approve { request_id: a.request_id, approver: a.approver, comment: a.comment },
                ApprovalDecision::Deny => Command::Deny { request_id: a.request_id, approver: a.approver, comment: a.comment },
            }
        }
        InputKind::Signal => match serde_json::from_slice(payload).map_err(named)? {
            SignalInput::TaskComplete { grant_id, by, detail } => {
                Command::Revoke { grant_id, reason: RevocationReason::TaskComplete, by, detail }
            }
            SignalInput::Risk { principal, by, detail } => Command::RiskSignal { principal, by, detail },
            SignalInput::Offboarded { principal, by, detail } => Command::Offboard { principal, by, detail },
            SignalInput::Withdraw { request_id, by, reason } => Command::Withdraw { request_id, by, reason },
        },
        InputKind::Revocation => match serde_json::from_slice(payload).map_err(named)? {
            RevocationInput::Confirmed { grant_id, worker } => Command::ConfirmRevocation { grant_id, worker },
            RevocationInput::Failed { grant_id, worker, error, attempt } => {
                Command::ReportRevocationFailure { grant_id, worker, error, attempt }
            }
        },
        InputKind::Policy => serde_json::from_slice::<PolicyInput>(payload).map_err(named)?.command(),
        InputKind::Timer => {
            return Err(("internal".into(), "timers are decided by `decide_timers`, not parsed here".into()));
        }
    })
}

/// A timer message's commands (several expiries, or one start or request
/// expiry), each staged as its own input. One refused (the grant was
/// revoked meanwhile, say) is harmless and logged; the message is refused
/// as a whole, naming the first refusal, only when none was staged.
fn decide_timers(batch: &mut grantledger_ledger::Batch<'_>, commands: Vec<Command>, causation: &Causation) -> Fate {
    let mut sequences = Vec::new();
    let mut first_refusal = None;
    for command in commands {
        match batch.stage(Input { command, producer: "expiry-timer".to_owned(), causation: causation.clone() }) {
            Ok(staged) => sequences.extend((0..staged.events.len() as u64).map(|i| staged.sequence_first + i)),
            Err(rejection) => {
                tracing::debug!(%rejection, "timer refused");
                first_refusal.get_or_insert(rejection);
            }
        }
    }
    match first_refusal {
        Some(rejection) if sequences.is_empty() => {
            Fate::Rejected { reason: rejection.code().to_owned(), detail: rejection.to_string(), request_id: None }
        }
        _ => Fate::Staged { request_id: None, sequences, outcome: None, starts_at_ms: None, published: Published::default() },
    }
}

/// A synced log write this slow, in microseconds, is logged as a warning.
const SLOW_WRITE_US: u64 = 100_000;

/// One committed batch, on its way to the publisher.
struct Decided {
    /// The records the batch committed, in log order (none when every
    /// input was refused), encoded for `LEDGER_EVENTS` here, by the
    /// decider, whose thread waits on the disk, rather than by the
    /// publisher, whose thread the NATS traffic keeps busy.
    records: Vec<Prepared>,
    /// The log's head after the commit: the batch's inputs are answered once
    /// JetStream holds every record up to it.
    through: u64,
    /// What each input gets, in input order.
    answers: Vec<Answer>,
    /// When the batch was committed (for [`Counters::publish_latency`]).
    committed_at: Instant,
}

/// What one input gets once its batch is durable and published.
struct Answer {
    message: jetstream::Message,
    /// Its sequence on GRANT_INPUT, for the logs.
    stream_sequence: u64,
    /// When JetStream stored it, for [`Counters::input_latency`].
    stored_at: Option<async_nats::datetime::DateTime>,
    receipt: ServiceReceipt,
    notice: Option<RejectionNotice>,
    /// TERM rather than ACK: a refused input is never redelivered.
    terminate: bool,
}

/// A checkpoint signed and kept in the log, to publish and write once the
/// records it covers are published.
struct SignedCheckpoint {
    size: u64,
    origin: String,
    text: String,
    file: Option<PathBuf>,
}

/// What the decider hands the publisher, in log order.
enum Outgoing {
    Batch(Decided),
    Checkpoint(SignedCheckpoint),
}

impl Outgoing {
    /// Answered (or published) once JetStream holds the records up to this.
    fn through(&self) -> u64 {
        match self {
            Outgoing::Batch(decided) => decided.through,
            Outgoing::Checkpoint(checkpoint) => checkpoint.size,
        }
    }
}

/// Decides `messages` in one ledger batch and commits it (one synced
/// write); the inputs' answers are made here, while the log is at hand, and
/// sent by the publisher.
fn decide_batch(config: &ServiceConfig, ledger: &mut Ledger, messages: Vec<jetstream::Message>) -> Result<Decided, ServiceError> {
    let counters = &config.counters;
    let started = Instant::now();
    // For `input_wait`, recorded as each input's answer is made below.
    let deciding_at = async_nats::datetime::now();
    let mut batch = ledger.begin(config.clock.now())?;
    let fates: Vec<Fate> = messages.iter().map(|message| decide_one(&config.tenant, &mut batch, message)).collect();
    let staged = batch.len();
    let writing = Instant::now();
    let (commit, records) = batch.commit_records()?;
    let committed_at = Instant::now();
    let write_latency = committed_at.duration_since(writing).as_micros() as u64;
    let latency = committed_at.duration_since(started).as_micros() as u64;
    if write_latency >= SLOW_WRITE_US {
        // Every answer behind this batch waited for it.
        tracing::warn!(
            write_ms = write_latency / 1000,
            inputs = messages.len(),
            records = commit.records,
            "a synced log write was slow; the disk stalled (see the README on the log's disk)"
        );
    }
    counters.write_latency.record(write_latency);
    counters.write_latency_us_max.fetch_max(write_latency, Ordering::Relaxed);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.last_batch_size.store(messages.len() as u64, Ordering::Relaxed);
    counters.commit_latency_us_total.fetch_add(latency, Ordering::Relaxed);
    counters.commit_latency_us_max.fetch_max(latency, Ordering::Relaxed);
    counters.commit_latency.record(latency);
    counters.committed_inputs.fetch_add(staged as u64, Ordering::Relaxed);
    counters.committed_events.fetch_add(commit.records as u64, Ordering::Relaxed);
    tracing::debug!(inputs = messages.len(), staged, records = commit.records, latency_us = latency, "batch committed");

    let mut answers = Vec::with_capacity(messages.len());
    for (message, fate) in messages.into_iter().zip(fates) {
        let (stream_sequence, stored_at) = input_position(&message);
        counters.input_wait.record(age_us(stored_at, deciding_at));
        let subject = message.subject.to_string();
        let (receipt, notice, terminate) = match fate {
            Fate::Staged { request_id, sequences, outcome, starts_at_ms, published } => (
                ServiceReceipt {
                    status: "committed".into(),
                    request_id,
                    sequences,
                    outcome,
                    starts_at_ms,
                    reason: None,
                    detail: None,
                    policy_hash: published.policy_hash,
                    catalog_hash: published.catalog_hash,
                },
                None,
                false,
            ),
            Fate::Duplicate { request_id } => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                counters.duplicates.fetch_add(1, Ordering::Relaxed);
                let prior = ledger.prior_decision(&request_id)?;
                let original = ServiceReceipt {
                    status: "duplicate".into(),
                    request_id: Some(request_id.as_str().to_owned()),
                    sequences: prior.as_ref().map(|p| p.sequences.clone()).unwrap_or_default(),
                    outcome: prior.map(|p| p.outcome),
                    starts_at_ms: scheduled_start(ledger.state(), &request_id),
                    reason: Some("request_id_already_decided".into()),
                    detail: None,
                    policy_hash: None,
                    catalog_hash: None,
                };
                let notice = RejectionNotice {
                    reason: "request_id_already_decided".into(),
                    detail: format!("request `{}` was decided before", request_id.as_str()),
                    subject,
                    stream_sequence,
                    original: Some(original.clone()),
                };
                (original, Some(notice), false)
            }
            Fate::IdentityRefused { request_id, detail, sequences } => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                let reason = "identity_rejected".to_owned();
                tracing::info!(%reason, %detail, %subject, stream_sequence, "request refused: identity");
                let sequences = if sequences.is_empty() {
                    ledger.prior_refusal(&request_id)?.into_iter().collect()
                } else {
                    sequences
                };
                let receipt = ServiceReceipt {
                    status: "rejected".into(),
                    request_id: Some(request_id.as_str().to_owned()),
                    sequences,
                    outcome: None,
                    starts_at_ms: None,
                    reason: Some(reason.clone()),
                    detail: Some(detail.clone()),
                    policy_hash: None,
                    catalog_hash: None,
                };
                let notice = RejectionNotice { reason, detail, subject, stream_sequence, original: None };
                (receipt, Some(notice), true)
            }
            Fate::Rejected { reason, detail, request_id } => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%reason, %detail, %subject, stream_sequence, "input rejected");
                let notice = RejectionNotice {
                    reason: reason.clone(),
                    detail: detail.clone(),
                    subject,
                    stream_sequence,
                    original: None,
                };
                (
                    ServiceReceipt {
                        status: "rejected".into(),
                        request_id,
                        sequences: Vec::new(),
                        outcome: None,
                        starts_at_ms: None,
                        reason: Some(reason),
                        detail: Some(detail),
                        policy_hash: None,
                        catalog_hash: None,
                    },
                    Some(notice),
                    true,
                )
            }
        };
        answers.push(Answer { message, stream_sequence, stored_at, receipt, notice, terminate });
    }
    let records = records.iter().map(|record| prepare(&config.tenant, record)).collect::<Result<_, _>>()?;
    Ok(Decided { records, through: ledger.log().head().sequence, answers, committed_at })
}

/// A delivered input's sequence on GRANT_INPUT and when JetStream stored
/// it, read from its reply subject (0 and `None` without JetStream's
/// metadata).
fn input_position(message: &jetstream::Message) -> (u64, Option<async_nats::datetime::DateTime>) {
    message.info().map_or((0, None), |info| (info.stream_sequence, Some(info.published)))
}

/// Microseconds from `stored_at` (the server's clock) to `now`: zero when
/// unknown, or when the server's clock is ahead of ours.
fn age_us(stored_at: Option<async_nats::datetime::DateTime>, now: async_nats::datetime::DateTime) -> u64 {
    stored_at.map_or(0, |stored_at| (now - stored_at).whole_microseconds().clamp(0, u64::MAX as i128) as u64)
}

/// A record ready for `LEDGER_EVENTS`, kept until JetStream acknowledges it
/// (after a failure it is sent again).
struct Prepared {
    sequence: u64,
    subject: async_nats::Subject,
    message: jetstream::message::PublishMessage,
}

/// The `LEDGER_EVENTS` message of a committed record: subject
/// `ledger.events.<tenant>.<kind>`, `Nats-Msg-Id` `<tenant>:<sequence>`, the
/// sequence in [`SEQUENCE_HEADER`], the `Committed` JSON as the body.
fn prepare(tenant: &str, committed: &Committed) -> Result<Prepared, ServiceError> {
    let sequence = committed.sequence;
    let subject = ledger_events_subject(tenant, committed.envelope.event.kind().name()).map_err(nats)?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event_msg_id(tenant, sequence).as_str());
    headers.insert(SEQUENCE_HEADER, sequence.to_string().as_str());
    let body = serde_json::to_vec(committed).expect("serializable");
    Ok(Prepared {
        sequence,
        subject: async_nats::Subject::from(subject),
        message: jetstream::message::PublishMessage::build().payload(body.into()).headers(headers),
    })
}

type AckFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>> + Send>,
>;

/// The second stage: publishes every committed record to `LEDGER_EVENTS` in
/// log order (up to [`PUBLISH_WINDOW`] awaiting their acks), and answers a
/// batch's inputs only once JetStream has acknowledged every record up to
/// the batch's last.
struct Publisher {
    js: jetstream::Context,
    client: async_nats::Client,
    rejections: String,
    counters: Arc<Counters>,
}

impl Publisher {
    /// Runs until the decider has dropped its sender and everything it sent
    /// is published and answered; returns the last published sequence. A
    /// failure (NATS restarting) is retried from the first unacknowledged
    /// record; once the decider has stopped, a failure ends the publisher:
    /// the records stay in the log and the next start republishes them, and
    /// the inputs, not acked, come back as duplicates answered with their
    /// original outcome.
    async fn run(
        self,
        mut queue: tokio::sync::mpsc::Receiver<Outgoing>,
        mut published_through: u64,
    ) -> Result<u64, ServiceError> {
        enum Next {
            Handed(Option<Outgoing>),
            Acked(Result<jetstream::publish::PublishAck, jetstream::context::PublishError>),
        }
        // Records not yet acknowledged, in log order; the first
        // `in_flight.len()` of them are sent and their acks awaited.
        let mut unacked: std::collections::VecDeque<Prepared> = std::collections::VecDeque::new();
        let mut in_flight: std::collections::VecDeque<AckFuture> = std::collections::VecDeque::new();
        // Batches and checkpoints waiting for their records, in log order.
        let mut waiting: std::collections::VecDeque<Outgoing> = std::collections::VecDeque::new();
        let mut open = true;
        let mut backoff = Backoff::default();
        loop {
            let mut answered = false;
            while waiting.front().is_some_and(|item| item.through() <= published_through) {
                let item = waiting.pop_front().expect("not empty");
                self.answer(item).await;
                answered = true;
            }
            if answered && let Err(error) = self.client.flush().await {
                tracing::warn!(%error, "flush after acks");
            }
            if !open && waiting.is_empty() && unacked.is_empty() {
                return Ok(published_through);
            }
            let mut failure = None;
            while in_flight.len() < unacked.len() && in_flight.len() < PUBLISH_WINDOW {
                let prepared = &unacked[in_flight.len()];
                match self.js.send_publish(prepared.subject.clone(), prepared.message.clone()).await {
                    Ok(ack) => in_flight.push_back(std::future::IntoFuture::into_future(ack)),
                    Err(error) => {
                        failure = Some(error.to_string());
                        break;
                    }
                }
            }
            if failure.is_none() {
                // INVARIANT: one branch is enabled. With nothing in flight,
                // nothing is unacknowledged (everything unacked was just sent),
                // so the queue is taken from unless it is closed, and then
                // everything waiting was answered and the loop returned.
                let next = tokio::select! {
                    handed = queue.recv(), if open && unacked.len() < UNPUBLISHED_MAX => Next::Handed(handed),
                    acked = async { in_flight.front_mut().expect("in flight").await }, if !in_flight.is_empty() => Next::Acked(acked),
                    else => unreachable!("the publisher has nothing to wait for"),
                };
                match next {
                    Next::Handed(Some(mut item)) => {
                        if let Outgoing::Batch(decided) = &mut item {
                            for record in std::mem::take(&mut decided.records) {
                                debug_assert_eq!(record.sequence, published_through + unacked.len() as u64 + 1);
                                unacked.push_back(record);
                            }
                        }
                        waiting.push_back(item);
                    }
                    Next::Handed(None) => open = false,
                    Next::Acked(Ok(_)) => {
                        in_flight.pop_front();
                        published_through = unacked.pop_front().expect("an acked record").sequence;
                        backoff.reset();
                    }
                    Next::Acked(Err(error)) => failure = Some(error.to_string()),
                }
            }
            if let Some(error) = failure {
                // Everything unacknowledged is sent again, in order; JetStream
                // drops the copies it already holds (Nats-Msg-Id).
                in_flight.clear();
                if !open {
                    tracing::warn!(%error, published_through, "stopping with events unpublished; the next start republishes them");
                    return Ok(published_through);
                }
                tracing::warn!(%error, published_through, "publishing committed events failed; retrying");
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }

    /// Durable and published: receipts, rejection notices and acks of a
    /// batch, or a checkpoint's publication and file.
    async fn answer(&self, item: Outgoing) {
        match item {
            Outgoing::Batch(decided) => {
                self.counters.publish_latency.record(decided.committed_at.elapsed().as_micros() as u64);
                for Answer { message, stream_sequence, stored_at, receipt, notice, terminate } in decided.answers {
                    // Notices, receipts and acks are at least once: if one is
                    // lost the input is redelivered and answered again with its
                    // original outcome.
                    if let Some(notice) = notice {
                        let body = serde_json::to_vec(&notice).expect("serializable");
                        if let Err(error) = self.client.publish(self.rejections.clone(), body.into()).await {
                            tracing::warn!(%error, stream_sequence, "rejection notice not sent");
                        }
                    }
                    let reply_to = message.headers.as_ref().and_then(|h| h.get(REPLY_TO_HEADER)).map(|v| v.as_str().to_owned());
                    if let Some(reply_to) = reply_to
                        && async_nats::Subject::from(reply_to.as_str()).is_valid()
                    {
                        let body = serde_json::to_vec(&receipt).expect("serializable");
                        if let Err(error) = self.client.publish(reply_to, body.into()).await {
                            tracing::warn!(%error, stream_sequence, "receipt not sent");
                        }
                    }
                    let acked = if terminate { message.ack_with(AckKind::Term).await } else { message.ack().await };
                    if let Err(error) = acked {
                        // The input is durable in the log: a redelivery gets the original outcome.
                        tracing::warn!(%error, stream_sequence, "ack failed");
                    }
                    self.counters.input_latency.record(age_us(stored_at, async_nats::datetime::now()));
                }
            }
            Outgoing::Checkpoint(checkpoint) => {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("{}:checkpoint:{}", checkpoint.origin, checkpoint.size).as_str());
                match self.js.publish_with_headers(CHECKPOINTS_SUBJECT, headers, checkpoint.text.clone().into()).await {
                    Ok(ack) => {
                        if let Err(error) = ack.await {
                            tracing::warn!(%error, size = checkpoint.size, "checkpoint not stored on LEDGER_EVENTS; it is in the log");
                        }
                    }
                    Err(error) => tracing::warn!(%error, size = checkpoint.size, "checkpoint not published; it is in the log"),
                }
                if let Some(file) = &checkpoint.file {
                    let temporary = file.with_extension("tmp");
                    let written =
                        std::fs::write(&temporary, checkpoint.text.as_str()).and_then(|()| std::fs::rename(&temporary, file));
                    if let Err(error) = written {
                        tracing::warn!(%error, file = %file.display(), "checkpoint file not written; it is in the log");
                    }
                }
            }
        }
    }
}

fn decide_one(tenant: &str, batch: &mut grantledger_ledger::Batch<'_>, message: &jetstream::Message) -> Fate {
    let rejected = |reason: &str, detail: String| Fate::Rejected { reason: reason.to_owned(), detail, request_id: None };
    let Some(input) = parse_input_subject(&message.subject) else {
        return rejected("unknown_subject", format!("`{}` is not an input subject", message.subject));
    };
    if input.tenant != tenant {
        return rejected("unknown_tenant", format!("tenant `{}` is not served here", input.tenant));
    }
    let bound = input_bytes_max(input.kind);
    if message.payload.len() > bound {
        return rejected("oversized", format!("{} bytes, at most {bound}", message.payload.len()));
    }
    let stream_sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    let causation = Causation::Input(format!("{GRANT_INPUT_STREAM}:{stream_sequence}"));
    if input.kind == InputKind::Timer {
        let commands = serde_json::from_slice::<TimerInput>(&message.payload)
            .map_err(named_json_error)
            .and_then(TimerInput::commands);
        return match commands {
            // INVARIANT: FETCH_MAX messages of TIMER_GRANTS_MAX commands fit
            // one batch, so there is room for these.
            Ok(commands) => decide_timers(batch, commands, &causation),
            Err((reason, detail)) => rejected(&reason, detail),
        };
    }
    let command = match parse(input.kind, &message.payload) {
        Ok(command) => command,
        Err((reason, detail)) => return rejected(&reason, detail),
    };
    let named = match &command {
        Command::Submit(request) => {
            if request.tenant.as_str() != tenant {
                return rejected("unknown_tenant", format!("tenant `{}` is not served here", request.tenant.as_str()));
            }
            Some(request.request_id.clone())
        }
        Command::Approve { request_id, .. }
        | Command::Deny { request_id, .. }
        | Command::Start { request_id }
        | Command::ExpireRequest { request_id }
        | Command::Withdraw { request_id, .. } => Some(request_id.clone()),
        _ => None,
    };
    let request_id = named.as_ref().map(|id| id.as_str().to_owned());
    if !batch.is_empty() && batch.is_full() {
        // Cannot happen with FETCH_MAX <= BATCH_INPUTS_MAX.
        return rejected("batch_full", "retry".to_owned());
    }
    let producer = match input.kind {
        InputKind::Timer => "expiry-timer".to_owned(),
        kind => format!("nats:{}", kind.token()),
    };
    match batch.stage(Input { command, producer, causation }) {
        Ok(staged) => {
            let sequences = (0..staged.events.len() as u64).map(|i| staged.sequence_first + i).collect();
            if let Some(refused) = staged.refused {
                return refused_fate(refused, request_id, sequences);
            }
            let outcome = staged.events.iter().find_map(|event| match event {
                Event::DecisionRecorded(decision) => Some(decision.outcome.clone()),
                _ => None,
            });
            // Decided, or approved, but not issued: the receipt says when.
            let starts_at_ms = named.as_ref().and_then(|id| scheduled_start(batch.state(), id));
            Fate::Staged { request_id, sequences, outcome, starts_at_ms, published: Published::of(&staged.events) }
        }
        Err(Rejection::RequestIdAlreadyDecided { request_id }) => Fate::Duplicate { request_id },
        Err(rejection @ Rejection::IdentityRejected { .. }) => refused_fate(rejection, request_id, Vec::new()),
        Err(rejection) => Fate::Rejected { reason: rejection.code().to_owned(), detail: rejection.to_string(), request_id },
    }
}

/// The scheduled start of `request_id`, in UTC milliseconds, when it is
/// allowed or approved and waiting for it (no grant yet).
fn scheduled_start(state: &grantledger_core::State, request_id: &RequestId) -> Option<i64> {
    state.scheduled_request(request_id).map(|scheduled| scheduled.starts_at.as_millis())
}

/// The fate of an input refused with its refusal in the log (`sequences`:
/// the refusal's record, or none yet when an earlier delivery recorded it).
fn refused_fate(rejection: Rejection, request_id: Option<String>, sequences: Vec<u64>) -> Fate {
    match &rejection {
        Rejection::IdentityRejected { request_id, .. } => {
            Fate::IdentityRefused { request_id: request_id.clone(), detail: rejection.to_string(), sequences }
        }
        _ => Fate::Rejected { reason: rejection.code().to_owned(), detail: rejection.to_string(), request_id },
    }
}

/// The `Nats-Msg-Id` of a tenant's record in `LEDGER_EVENTS`:
/// `<tenant>:<sequence>`. Tenants share the stream and each numbers its own
/// log from 1, so a bare sequence number would make JetStream drop one
/// tenant's event as a duplicate of another's.
pub fn event_msg_id(tenant: &str, sequence: u64) -> String {
    format!("{tenant}:{sequence}")
}

/// The header carrying a record's log sequence number on `LEDGER_EVENTS`.
pub const SEQUENCE_HEADER: &str = "Grantledger-Sequence";

/// Publishes the log's records `(*through, to]` to `LEDGER_EVENTS`, in
/// order, advancing `*through` as JetStream acknowledges each one. Returns
/// how many were published.
async fn publish_range(
    js: &jetstream::Context,
    ledger: &Ledger,
    tenant: &str,
    through: &mut u64,
    to: u64,
) -> Result<u64, ServiceError> {
    let mut pending = std::collections::VecDeque::new();
    let mut count = 0;
    for record in ledger.log().iter_from(*through + 1) {
        let record = record.map_err(LedgerError::from)?;
        let sequence = record.header.sequence;
        if sequence > to {
            break;
        }
        pending.push_back((sequence, publish_record(js, tenant, &record).await?));
        count += 1;
        if pending.len() >= PUBLISH_WINDOW {
            let (sequence, ack) = pending.pop_front().expect("not empty");
            ack.await.map_err(nats)?;
            *through = sequence;
        }
    }
    for (sequence, ack) in pending {
        ack.await.map_err(nats)?;
        *through = sequence;
    }
    Ok(count)
}

/// Publishes the given records (the gaps a NATS restart left) and waits for
/// every ack.
async fn publish_sequences(
    js: &jetstream::Context,
    ledger: &Ledger,
    tenant: &str,
    sequences: &[u64],
) -> Result<u64, ServiceError> {
    let mut pending = std::collections::VecDeque::new();
    for &sequence in sequences {
        let record = ledger
            .log()
            .read(sequence)
            .map_err(LedgerError::from)?
            .ok_or_else(|| ServiceError::Nats(format!("record {sequence} is not in the log")))?;
        pending.push_back(publish_record(js, tenant, &record).await?);
        if pending.len() >= PUBLISH_WINDOW {
            pending.pop_front().expect("not empty").await.map_err(nats)?;
        }
    }
    for ack in pending {
        ack.await.map_err(nats)?;
    }
    Ok(sequences.len() as u64)
}

/// Signs and stores in the log a checkpoint of the whole log when
/// `every_records` records or `every` time have passed since the last one
/// (and there is something new); the publisher publishes it and writes its
/// file once the records it covers are on `LEDGER_EVENTS`.
fn maybe_checkpoint(
    config: &CheckpointConfig,
    ledger: &Ledger,
    checkpointed: &mut u64,
    last_at: &mut Instant,
) -> Result<Option<SignedCheckpoint>, ServiceError> {
    let head = ledger.log().head();
    let due = head.sequence >= *checkpointed + config.every_records
        || (head.sequence > *checkpointed && last_at.elapsed() >= config.every);
    if !due {
        return Ok(None);
    }
    let root = ledger.log().merkle_root(head.sequence).map_err(|e| ServiceError::Checkpoint(e.to_string()))?;
    let checkpoint = grantledger_proof::Checkpoint {
        origin: config.key.name().to_owned(),
        tree_size: head.sequence,
        root_hash: root,
        time_ms: head.time_ms,
    };
    let signed = checkpoint.sign(&config.key).map_err(|e| ServiceError::Checkpoint(e.to_string()))?;
    // Kept in the log first: the published and written copies are copies.
    ledger
        .log()
        .store_checkpoint(head.sequence, signed.as_str())
        .map_err(|e| ServiceError::Checkpoint(e.to_string()))?;
    *last_at = Instant::now();
    *checkpointed = head.sequence;
    tracing::info!(size = head.sequence, "checkpoint signed");
    Ok(Some(SignedCheckpoint {
        size: head.sequence,
        origin: checkpoint.origin,
        text: signed.as_str().to_owned(),
        file: config.file.clone(),
    }))
}

/// The most records one backfill reply carries.
pub const BACKFILL_RECORDS_MAX: u32 = 512;

/// The most bytes of records one backfill reply carries (NATS's default
/// `max_payload` is 1 MiB); always at least one record.
pub const BACKFILL_BYTES_MAX: usize = 512 * 1024;

/// A projector's request on `grantledger.backfill.<tenant>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// The first sequence number wanted (1 or more).
    pub from: u64,
    /// At most this many records; capped at [`BACKFILL_RECORDS_MAX`].
    pub limit: u32,
}

/// The ledger's answer: committed events from `from` on, in order, as on
/// `LEDGER_EVENTS`, and the log's head, so the asker knows whether to ask
/// again. `error` names what was wrong with a refused request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackfillReply {
    /// The log's head when the reply was made.
    pub head: u64,
    /// The records, as `Committed` JSON values.
    pub records: Vec<serde_json::Value>,
    /// Why the request was refused, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

async fn answer_backfill(client: &async_nats::Client, ledger: &Ledger, request: async_nats::Message) {
    let Some(reply_to) = request.reply.clone() else {
        tracing::debug!("a backfill request without a reply subject");
        return;
    };
    let reply = backfill(ledger, &request.payload);
    let body = serde_json::to_vec(&reply).expect("serializable");
    if let Err(error) = client.publish(reply_to, body.into()).await {
        tracing::warn!(%error, "backfill reply not sent");
    }
}

/// Reads the records a [`BackfillRequest`] asks for.
pub fn backfill(ledger: &Ledger, payload: &[u8]) -> BackfillReply {
    let head = ledger.log().head().sequence;
    let refused = |error: String| BackfillReply { head, records: Vec::new(), error: Some(error) };
    let request: BackfillRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(error) => return refused(format!("malformed backfill request: {error}")),
    };
    if request.from == 0 {
        return refused("`from` must be 1 or more: sequence numbers start at 1".into());
    }
    let limit = request.limit.clamp(1, BACKFILL_RECORDS_MAX) as usize;
    let mut records = Vec::new();
    let mut bytes = 0;
    for record in ledger.log().iter_from(request.from).take(limit) {
        let value = match record.map_err(LedgerError::from).and_then(|record| committed_value(&record)) {
            Ok(value) => value,
            Err(error) => return refused(format!("reading the log: {error}")),
        };
        bytes += value.to_string().len();
        if !records.is_empty() && bytes > BACKFILL_BYTES_MAX {
            break;
        }
        records.push(value);
    }
    BackfillReply { head, records, error: None }
}

fn committed_value(record: &grantledger_log::Record) -> Result<serde_json::Value, LedgerError> {
    Ok(serde_json::to_value(grantledger_ledger::committed(record)?).expect("serializable"))
}

/// Sends one record to `ledger.events.<tenant>.<kind>`; the returned future
/// resolves when JetStream has stored it.
async fn publish_record(
    js: &jetstream::Context,
    tenant: &str,
    record: &grantledger_log::Record,
) -> Result<jetstream::context::PublishAckFuture, ServiceError> {
    let prepared = prepare(tenant, &grantledger_ledger::committed(record)?)?;
    js.send_publish(prepared.subject, prepared.message).await.map_err(nats)
}

/// What `LEDGER_EVENTS` holds of a tenant's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// The highest sequence in the stream (0: none).
    pub last: u64,
    /// Sequences below `last` the stream lacks. Publishes in flight when
    /// NATS restarts can be lost while later ones reach the restarted
    /// server, so the stream may hold a tenant's events out of order, with
    /// holes; subscribers order by `Grantledger-Sequence`, and the ledger
    /// fills the holes.
    pub missing: Vec<u64>,
}

/// Where `LEDGER_EVENTS` stands for `tenant`: its last sequence from one
/// lookup, its message count from the stream's per-subject counts, and only
/// when the two disagree (holes), a scan of the tenant's message headers.
pub async fn stream_position(js: &jetstream::Context, tenant: &str) -> Result<StreamPosition, ServiceError> {
    let last = last_published(js, tenant).await?;
    if last == 0 {
        return Ok(StreamPosition { last, missing: Vec::new() });
    }
    let filter = format!("ledger.events.{tenant}.>");
    let stream = js.get_stream(LEDGER_EVENTS_STREAM).await.map_err(nats)?;
    let mut counts = stream.info_with_subjects(&filter).await.map_err(nats)?;
    let mut held = 0u64;
    while let Some(entry) = counts.next().await {
        held += entry.map_err(nats)?.1 as u64;
    }
    if held >= last {
        return Ok(StreamPosition { last, missing: Vec::new() });
    }
    tracing::warn!(tenant, last, held, "LEDGER_EVENTS has holes; scanning the tenant's events");
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut messages = consumer.messages().await.map_err(nats)?;
    let mut present = vec![false; last as usize + 1];
    for _ in 0..held {
        let message = messages
            .next()
            .await
            .ok_or_else(|| ServiceError::Nats("the scan of LEDGER_EVENTS ended early".into()))?
            .map_err(nats)?;
        let sequence = message.headers.as_ref().map(sequence_of).transpose()?.unwrap_or(0);
        if let Some(slot) = present.get_mut(sequence as usize) {
            *slot = true;
        }
    }
    let missing = (1..=last).filter(|&s| !present[s as usize]).collect();
    Ok(StreamPosition { last, missing })
}

/// Publishes in flight at once while converging `LEDGER_EVENTS` to the log.
const PUBLISH_WINDOW: usize = 1024;


/// The highest log sequence number of `tenant`'s events in `LEDGER_EVENTS`
/// (from the last message's `Nats-Msg-Id`), 0 when none.
pub async fn last_published(js: &jetstream::Context, tenant: &str) -> Result<u64, ServiceError> {
    let stream = js.get_stream(LEDGER_EVENTS_STREAM).await.map_err(nats)?;
    let info = stream.cached_info().clone();
    let prefix = format!("ledger.events.{tenant}.");
    if info.state.messages == 0 {
        return Ok(0);
    }
    // One lookup: the stream's last message on the tenant's subjects.
    match stream.get_last_raw_message_by_subject(&format!("{prefix}>")).await {
        Ok(message) => return sequence_of(&message.headers),
        Err(error) if error.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
            return Ok(0);
        }
        // An older server without wildcard lookups: scan back instead.
        Err(error) => tracing::debug!(%error, "last message by subject"),
    }
    let mut sequence = info.state.last_sequence;
    let first = info.state.first_sequence;
    // One writer per tenant; scan back past other tenants' events.
    while sequence >= first.max(1) && sequence > 0 {
        match stream.get_raw_message(sequence).await {
            Ok(message) => {
                if message.subject.as_str().starts_with(&prefix) {
                    return sequence_of(&message.headers);
                }
            }
            Err(error) => tracing::debug!(%error, sequence, "no message"),
        }
        sequence -= 1;
    }
    Ok(0)
}

/// The log sequence number a `LEDGER_EVENTS` message carries.
fn sequence_of(headers: &HeaderMap) -> Result<u64, ServiceError> {
    headers
        .get(SEQUENCE_HEADER)
        .and_then(|value| value.as_str().parse::<u64>().ok())
        .ok_or_else(|| ServiceError::Nats(format!("a LEDGER_EVENTS message without a valid `{SEQUENCE_HEADER}` header")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_count_each_latency_under_its_power_of_two_bound() {
        let buckets = LatencyBuckets::default();
        for latency_us in [0, 128, 129, 1_000, 1_024, 1_025, 131_072, 131_073, u64::MAX] {
            buckets.record(latency_us);
        }
        let mut expected = [0u64; LATENCY_BUCKETS];
        // 0 and 128 in the first (up to 128 µs); 129 in the second.
        expected[0] = 2;
        expected[1] = 1;
        // 1,000 and 1,024 up to 1,024 µs; 1,025 in the next.
        expected[3] = 2;
        expected[4] = 1;
        // 131,072 µs is the last bound; anything above is in the last bucket.
        expected[LATENCY_BUCKETS - 2] = 1;
        expected[LATENCY_BUCKETS - 1] = 2;
        assert_eq!(buckets.counts(), expected);
        assert_eq!(LatencyBuckets::upper_bound_us(LATENCY_BUCKETS - 2), 131_072);
        buckets.reset();
        assert_eq!(buckets.counts(), [0; LATENCY_BUCKETS]);
    }
}
