//! One partition of the ledger, in process: it decides commands with the pure
//! core (`grantledger-core`), group-commits the resulting events to the
//! hash-chained log (`grantledger-log`), and applies them to its in-memory
//! state. Opening a ledger rebuilds that state by replaying the log.
//!
//! This is the piece the CLI's `simulate` and the NATS ledger service share.
//! It knows nothing of NATS, HTTP or the wall clock: the caller hands in the
//! time, and the ledger only makes sure time never goes back in the log.
//!
//! Work is done in batches (group commit): [`Ledger::begin`] fixes the batch's
//! ledger time, [`Batch::stage`] decides one input against the state as the
//! earlier inputs of the batch left it, and [`Batch::commit`] writes every
//! staged event in one synced RocksDB write. Nothing a batch decided may be
//! reported to anyone before `commit` returns.
//!
//! The ledger holds the policy engine (`grantledger-policy`): once a policy
//! set was published (`PolicyPublished`, validated by the engine before it
//! is recorded), every request is decided by the engine under the policy set
//! and catalog in force, and the decision records everything a replay needs
//! to re-evaluate it ([`recheck`]). Before that, the catalog-only rules of
//! `grantledger-core` decide, and the decision says so (`basis: catalog`).
//!
//! A request whose identity token does not verify at intake is refused, and
//! the refusal recorded (`IdentityRefused`, never the token) once per
//! request id: see [`Ledger::set_identity`].

mod engine;
mod recheck;

pub use engine::{build_engine, engine_decision, policy_request};
pub use recheck::{Difference, RecheckReport, recheck};

use std::path::Path;
use std::sync::Arc;

use grantledger_core::{ApplyError, Catalog, Command, EngineInput, Rejection, State, apply, decide_with};
use grantledger_policy::Engine;
use grantledger_policy::identity::Issuers;
use grantledger_events::{
    Causation, Committed, DecodeError, Envelope, Event, RequestId, TenantId, Timestamp,
    decode_body, encode_body,
};
use grantledger_log::{AppendError, IndexKeys, Log, LogOptions, NewRecord, OpenError, ReadError};

/// The most inputs one batch may stage; each input makes a handful of events,
/// which must fit the log's own batch bound.
pub const BATCH_INPUTS_MAX: usize = 1024;

/// One input to decide: the command and where it came from.
#[derive(Clone, Debug)]
pub struct Input {
    /// What to do.
    pub command: Command,
    /// Who sent it (a producer id, `cli`, `simulator`, `expiry-timer`).
    pub producer: String,
    /// The input message or record that caused it.
    pub causation: Causation,
}

/// What one staged input produced: its events, numbered as they will be
/// committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    /// The sequence number the first event will have once committed.
    pub sequence_first: u64,
    /// The events, in order.
    pub events: Vec<Event>,
    /// Set when the input was refused and the refusal is what is recorded
    /// (a request whose identity token did not verify: `events` is its
    /// `IdentityRefused`). Answer the input as refused, once committed.
    pub refused: Option<Rejection>,
}

/// What a commit made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The last committed sequence number (the head), 0 for an empty log.
    pub sequence_last: u64,
    /// The head hash after the commit.
    pub head_hash: [u8; 32],
    /// How many records the commit wrote.
    pub records: usize,
    /// The ledger time of the batch.
    pub time: Timestamp,
}

/// Why a ledger could not be opened or could not commit.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The log could not be opened or created.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The log could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The log refused or failed a write.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A record's body does not decode.
    #[error("record `{sequence}` does not decode: {error}")]
    Decode {
        /// The record.
        sequence: u64,
        /// Why.
        error: DecodeError,
    },
    /// A record's event does not follow from the state before it.
    #[error("record `{sequence}` breaks the rules of the ledger: {error}")]
    Apply {
        /// The record.
        sequence: u64,
        /// Which rule.
        error: ApplyError,
    },
    /// A record belongs to another tenant than the partition's.
    #[error("record `{sequence}` belongs to tenant `{found}`, this partition is `{expected}`")]
    WrongTenant {
        /// The record.
        sequence: u64,
        /// The partition's tenant.
        expected: TenantId,
        /// The record's tenant.
        found: TenantId,
    },
    /// A published policy set (or a catalog published while one is in force)
    /// does not load into the policy engine: a log the ledger would never
    /// have written.
    #[error("record `{sequence}`: the policy engine refuses what is in force: {message}")]
    PolicyInvalid {
        /// The record.
        sequence: u64,
        /// The engine's message.
        message: String,
    },
    /// An earlier commit failed, so the in-memory state may be ahead of the
    /// log; the ledger must be reopened (which replays the log).
    #[error("an earlier commit failed: reopen the ledger to rebuild its state from the log")]
    Poisoned,
}

/// One partition: its log, its tenant and the state the log folds to.
pub struct Ledger {
    log: Log,
    state: State,
    tenant: TenantId,
    poisoned: bool,
    /// The policy engine for the policy set and catalog in force, once a
    /// policy set was published.
    engine: Option<Arc<Engine>>,
    /// The identity token issuers requests are verified against, when
    /// configured ([`Ledger::set_identity`]).
    identity: Option<Arc<Issuers>>,
    /// Offline simulation only: take a workload identity claimed in a
    /// request's context as verified ([`Ledger::trust_claimed_identity`]).
    trust_claimed_identity: bool,
}

impl Ledger {
    /// Creates a new, empty partition in `dir` (which must not hold a log).
    pub fn create(dir: &Path, tenant: TenantId, options: LogOptions) -> Result<Ledger, LedgerError> {
        let log = Log::create(dir, options)?;
        Ok(Ledger { log, state: State::default(), tenant, poisoned: false, engine: None, identity: None, trust_claimed_identity: false })
    }

    /// Opens an existing partition and rebuilds its state from the log.
    pub fn open(dir: &Path, tenant: TenantId, options: LogOptions) -> Result<Ledger, LedgerError> {
        let log = Log::open(dir, options)?;
        let (state, engine) = fold_with_engine(&log, Some(&tenant), u64::MAX, |_| {})?;
        Ok(Ledger { log, state, tenant, poisoned: false, engine, identity: None, trust_claimed_identity: false })
    }

    /// The state as of the last staged input (committed or not).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The partition's tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The log underneath, for reads.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The policy engine in force, once a policy set was published.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_deref()
    }

    /// Verifies the identity tokens of requests against `issuers` from now
    /// on (`None`: no issuers, so a request carrying a token is refused).
    /// With issuers configured, a request may claim a workload identity only
    /// through a token that verifies; its verified claims, never the token,
    /// reach the policies and the log (`context.workload_identity`). A
    /// refusal is recorded (`IdentityRefused`) the first time for its
    /// request id ([`Staged::refused`] says so); a later failing submission
    /// of that request id is rejected with the recorded refusal.
    pub fn set_identity(&mut self, issuers: Option<Arc<Issuers>>) {
        self.identity = issuers;
    }

    /// For offline simulation only (`grantledger simulate`): a workload
    /// identity claimed in a request's context (`context.workload_identity`)
    /// is taken as verified. Otherwise, issuers configured or not, such a
    /// claim without a token that verifies is refused (`identity_unverified`):
    /// nobody may vouch for themselves. The ledger service never sets it.
    pub fn trust_claimed_identity(&mut self, trust: bool) {
        self.trust_claimed_identity = trust;
    }

    /// Starts a batch at ledger time `max(now, head time)`: a clock that
    /// steps back does not make time go back in the log.
    pub fn begin(&mut self, now: Timestamp) -> Result<Batch<'_>, LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned);
        }
        let time = Timestamp(now.0.max(self.log.head().time_ms));
        Ok(Batch { ledger: self, time, envelopes: Vec::new(), inputs: 0 })
    }
}

/// A group of inputs decided at one ledger time and committed in one write.
pub struct Batch<'a> {
    ledger: &'a mut Ledger,
    time: Timestamp,
    envelopes: Vec<Envelope>,
    inputs: usize,
}

impl Batch<'_> {
    /// The batch's ledger time.
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// The state including everything staged so far.
    pub fn state(&self) -> &State {
        &self.ledger.state
    }

    /// How many inputs are staged.
    pub fn len(&self) -> usize {
        self.inputs
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.inputs == 0
    }

    /// True when the batch holds [`BATCH_INPUTS_MAX`] inputs and must be
    /// committed before staging more.
    pub fn is_full(&self) -> bool {
        self.inputs >= BATCH_INPUTS_MAX
    }

    /// Decides `input` against the state as the batch has left it. A
    /// rejection stages nothing. The events are not durable until
    /// [`Batch::commit`] returns.
    pub fn stage(&mut self, input: Input) -> Result<Staged, Rejection> {
        assert!(!self.is_full(), "batch holds {BATCH_INPUTS_MAX} inputs already: commit first");
        let state = &self.ledger.state;
        // The engine that comes into force with this input, if it changes one.
        let mut engine_next: Option<Arc<Engine>> = None;
        let engine_input = match &input.command {
            Command::PublishPolicy { policy_text, exceptions_text, .. } => match state.catalog() {
                // The core refuses it: no catalog in force.
                None => EngineInput::None,
                Some(catalog) => {
                    let engine = build_engine(catalog.clone(), policy_text, exceptions_text.as_deref())
                        .map_err(|error| Rejection::PolicyInvalid { message: error.to_string() })?;
                    engine_next = Some(Arc::new(engine));
                    EngineInput::PolicyValidated {
                        policy_hash: grantledger_events::policy_hash(policy_text, exceptions_text.as_deref()),
                    }
                }
            },
            Command::PublishCatalog { text, .. } => {
                // A new catalog must keep the policy set in force loadable;
                // a catalog that does not parse is the core's to refuse.
                if let (Some(policy), Ok(catalog)) = (state.policy(), Catalog::parse(text)) {
                    let engine = build_engine(catalog, &policy.policy_text, policy.exceptions_text.as_deref())
                        .map_err(|error| Rejection::PolicyInvalid {
                            message: format!(
                                "the policy set in force (`{}`) does not fit this catalog: {error}",
                                policy.policy_hash
                            ),
                        })?;
                    engine_next = Some(Arc::new(engine));
                }
                EngineInput::None
            }
            Command::Submit(request) => match verify_identity(
                self.ledger.identity.as_deref(),
                self.ledger.trust_claimed_identity,
                request,
                self.time,
            ) {
                // The core records the first refusal of a request id and
                // gives it back after that (or answers a decided request id
                // as a duplicate).
                Err(IdentityFailure { reason, detail }) => EngineInput::IdentityRefused { reason, detail },
                // The core denies the request of an offboarded principal,
                // or of one whose owner was offboarded, itself: the engine
                // is not asked.
                Ok(_)
                    if state.offboarded_at(&request.principal.id).is_some()
                        || state.offboarded_owner(&request.principal).is_some() =>
                {
                    EngineInput::None
                }
                Ok(verified) => {
                    let request = verified.as_ref().unwrap_or(request);
                    match (&self.ledger.engine, state.policy_hash()) {
                        (Some(engine), Some(policy_hash)) => {
                            EngineInput::Decision(engine_decision(engine, policy_hash, request, self.time)?)
                        }
                        _ => EngineInput::None,
                    }
                }
            },
            _ => EngineInput::None,
        };
        let events = decide_with(state, &input.command, self.time, &engine_input)?;
        let refused = match (&input.command, events.as_slice()) {
            (Command::Submit(request), [Event::IdentityRefused(refusal)]) => Some(Rejection::IdentityRejected {
                request_id: request.request_id.clone(),
                reason: refusal.reason.clone(),
                detail: refusal.detail.clone(),
            }),
            _ => None,
        };
        if let Some(engine) = engine_next {
            self.ledger.engine = Some(engine);
        }
        let sequence_first = self.ledger.log.head().sequence + self.envelopes.len() as u64 + 1;
        for event in &events {
            // INVARIANT: decide's events always apply to the state they were
            // decided on; a failure is a bug in the core, not bad input.
            apply(&mut self.ledger.state, event, self.time)
                .unwrap_or_else(|error| panic!("decided event does not apply: {error}"));
            let correlation = correlation_of(&input.command, event);
            self.envelopes.push(Envelope {
                tenant: self.ledger.tenant.clone(),
                producer: input.producer.clone(),
                correlation,
                causation: input.causation.clone(),
                event: event.clone(),
            });
        }
        self.inputs += 1;
        Ok(Staged { sequence_first, events, refused })
    }

    /// Writes every staged event in one synced write and returns once it is
    /// durable. On failure the ledger is poisoned: its state holds events the
    /// log does not, so it must be reopened.
    pub fn commit(self) -> Result<Receipt, LedgerError> {
        self.write().map(|(receipt, _, _)| receipt)
    }

    /// Like [`Batch::commit`], and also returns the records just written as
    /// [`Committed`] values, in log order: the same values [`committed`]
    /// would read back from the log (the log's header, the staged envelope),
    /// without reading them back. For a caller that forwards what it
    /// committed (the NATS service publishes every record).
    pub fn commit_records(self) -> Result<(Receipt, Vec<Committed>), LedgerError> {
        let (receipt, headers, envelopes) = self.write()?;
        let records = headers
            .into_iter()
            .zip(envelopes)
            .map(|(header, envelope)| Committed {
                sequence: header.sequence,
                time: Timestamp(header.time_ms),
                hash: hex::encode(header.hash),
                envelope,
            })
            .collect();
        Ok((receipt, records))
    }

    /// The synced write behind both commits: the receipt, the headers the log
    /// assigned and the envelopes written, in order.
    fn write(
        mut self,
    ) -> Result<(Receipt, Vec<grantledger_log::RecordHeader>, Vec<Envelope>), LedgerError> {
        let bodies: Vec<Vec<u8>> = self.envelopes.iter().map(encode_body).collect();
        let keys: Vec<_> = self.envelopes.iter().map(Envelope::index_values).collect();
        let principal_keys: Vec<Vec<&[u8]>> = keys
            .iter()
            .map(|k| k.principals.iter().map(|p| p.as_bytes()).collect())
            .collect();
        let records: Vec<NewRecord<'_>> = self
            .envelopes
            .iter()
            .zip(&bodies)
            .zip(keys.iter().zip(&principal_keys))
            .map(|((envelope, body), (keys, principals))| NewRecord {
                time_ms: self.time.0,
                kind: envelope.event.kind().code(),
                body,
                index: IndexKeys {
                    request: keys.request.map(str::as_bytes),
                    grant: keys.grant.map(str::as_bytes),
                    principal: principals,
                    resource: keys.resource.map(str::as_bytes),
                },
            })
            .collect();
        // The header names the codec the bodies were encoded with.
        let result = self.ledger.log.append_batch_versioned(grantledger_events::CODEC_VERSION, &records);
        let written = records.len();
        drop(records);
        match result {
            Ok(headers) => {
                // Nothing is pending any more: dropping the batch is harmless.
                let envelopes = std::mem::take(&mut self.envelopes);
                let head = self.ledger.log.head();
                let receipt = Receipt {
                    sequence_last: head.sequence,
                    head_hash: head.hash,
                    records: written,
                    time: self.time,
                };
                Ok((receipt, headers, envelopes))
            }
            Err(error) => {
                self.ledger.poisoned = true;
                Err(error.into())
            }
        }
    }
}

impl Drop for Batch<'_> {
    /// A batch dropped with staged events (not committed, or its commit
    /// failed) has applied to the state what the log does not hold: the
    /// ledger refuses further work until it is reopened and replayed.
    fn drop(&mut self) {
        if !self.envelopes.is_empty() {
            self.ledger.poisoned = true;
        }
    }
}

/// Why a request's identity did not verify: a reason code and a detail that
/// names the offending value and never holds the token.
struct IdentityFailure {
    reason: String,
    detail: String,
}

/// The longest identity refusal detail recorded, in bytes.
const REFUSAL_DETAIL_BYTES_MAX: usize = 1024;

/// Intake verification of a request's identity token, at ledger time `now`:
/// `Some(request)` with the verified claims as `context.workload_identity`
/// (and no token) when it carries one, `None` when there is nothing to
/// verify. Refuses a token that does not verify, a token when no issuers are
/// configured, and a workload identity claimed in the context without a
/// token (unless `trust_claimed`, for offline simulation).
fn verify_identity(
    issuers: Option<&Issuers>,
    trust_claimed: bool,
    request: &grantledger_events::SubmitRequest,
    now: Timestamp,
) -> Result<Option<grantledger_events::SubmitRequest>, IdentityFailure> {
    let refuse = |reason: &str, detail: String| IdentityFailure {
        reason: reason.to_string(),
        detail: recordable_detail(detail, request.identity_token.as_deref()),
    };
    let Some(token) = &request.identity_token else {
        if !trust_claimed && request.context.contains_key("workload_identity") {
            return Err(refuse(
                "identity_unverified",
                "`context.workload_identity` comes only from an identity token the ledger verified".to_string(),
            ));
        }
        return Ok(None);
    };
    let Some(issuers) = issuers else {
        return Err(refuse(
            "no_issuers_configured",
            "the request carries an identity token and this ledger has no token issuers configured".to_string(),
        ));
    };
    let claims = issuers
        .verify(token, now)
        .map_err(|rejection| refuse(rejection.kind().code(), rejection.message().to_string()))?;
    let identity = claims.to_workload_identity();
    let mut verified = request.clone();
    verified.identity_token = None;
    let mut record = serde_json::Map::new();
    record.insert("issuer".into(), identity.issuer.into());
    record.insert("subject".into(), identity.subject.into());
    record.insert("audience".into(), identity.audience.into());
    if let Some(spiffe_id) = identity.spiffe_id {
        record.insert("spiffe_id".into(), spiffe_id.into());
    }
    if let Some(trust_domain) = identity.trust_domain {
        record.insert("trust_domain".into(), trust_domain.into());
    }
    verified.context.insert("workload_identity".into(), serde_json::Value::Object(record));
    Ok(Some(verified))
}

/// A verifier's message as it may be recorded: never the token (the
/// verifier's messages do not quote it; this makes sure), and bounded.
fn recordable_detail(mut detail: String, token: Option<&str>) -> String {
    if let Some(token) = token.map(str::trim).filter(|token| !token.is_empty()) {
        detail = detail.replace(token, "(the token)");
        for part in token.split('.').filter(|part| part.len() >= 16) {
            detail = detail.replace(part, "(part of the token)");
        }
    }
    if detail.len() > REFUSAL_DETAIL_BYTES_MAX {
        let mut end = REFUSAL_DETAIL_BYTES_MAX;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        detail.push_str("...");
    }
    detail
}

/// The request an event belongs to: the command's own request id when it
/// has one, else the request the event's grant was issued for.
fn correlation_of(command: &Command, event: &Event) -> RequestId {
    if let Some(request) = request_of_event(event) {
        return request;
    }
    match command {
        Command::Submit(request) => request.request_id.clone(),
        Command::Approve { request_id, .. } | Command::Deny { request_id, .. } => {
            request_id.clone()
        }
        // INVARIANT: every other command's events name a request or a grant.
        _ => panic!("event `{}` has no request to correlate with", event.kind().name()),
    }
}

fn request_of_event(event: &Event) -> Option<RequestId> {
    let grant = match event {
        Event::CatalogPublished(e) => {
            return RequestId::new(format!("catalog:{}", &e.catalog_hash[..16])).ok();
        }
        Event::PolicyPublished(e) => {
            return RequestId::new(format!("policy:{}", &e.policy_hash[..16])).ok();
        }
        Event::RequestSubmitted(e) => return Some(e.request_id.clone()),
        Event::DecisionRecorded(e) => return Some(e.request_id.clone()),
        Event::ApprovalRecorded(e) => return Some(e.request_id.clone()),
        Event::GrantIssued(e) => return Some(e.request_id.clone()),
        Event::BreakGlassInvoked(e) => return Some(e.request_id.clone()),
        Event::IdentityRefused(e) => return Some(e.request_id.clone()),
        Event::RequestExpired(e) => return Some(e.request_id.clone()),
        Event::RequestWithdrawn(e) => return Some(e.request_id.clone()),
        Event::PrincipalOffboarded(e) => return Some(offboarding_correlation(&e.principal)),
        Event::GrantExtended(e) => &e.grant_id,
        Event::GrantRevoked(e) => &e.grant_id,
        Event::RevocationConfirmed(e) => &e.grant_id,
        Event::RevocationFailed(e) => &e.grant_id,
        Event::ReviewRecorded(e) => &e.grant_id,
    };
    grant.request()
}

/// The correlation of an offboarding (which belongs to no request):
/// `offboard:<principal>`, the principal cut to fit a request id.
fn offboarding_correlation(principal: &grantledger_events::PrincipalId) -> RequestId {
    let mut id = format!("offboard:{principal}");
    let mut end = id.len().min(RequestId::BYTES_MAX);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id.truncate(end);
    // INVARIANT: a principal id is a non-empty id without whitespace, so
    // its prefix after `offboard:` is a valid request id.
    RequestId::new(id).expect("a valid request id")
}

/// Folds the log through the state machine from genesis up to and including
/// sequence `to`, checking every record decodes, belongs to `tenant` (when
/// given) and follows the rules. `progress` gets each applied sequence.
///
/// Every published policy set (and every catalog published while one is in
/// force) is loaded into the policy engine, as the ledger did before
/// recording it: a policy the engine refuses fails the fold at its record.
pub fn fold(
    log: &Log,
    tenant: Option<&TenantId>,
    to: u64,
    progress: impl FnMut(u64),
) -> Result<State, LedgerError> {
    fold_with_engine(log, tenant, to, progress).map(|(state, _)| state)
}

/// The engine for what `state` has in force, after `event` was applied to
/// it, when `event` changed it.
pub(crate) fn engine_after(
    state: &State,
    event: &Event,
    sequence: u64,
) -> Result<Option<Arc<Engine>>, LedgerError> {
    let changes = matches!(event, Event::PolicyPublished(_))
        || (matches!(event, Event::CatalogPublished(_)) && state.policy().is_some());
    if !changes {
        return Ok(None);
    }
    // INVARIANT: a policy is only in force under a catalog (apply checks).
    let (Some(policy), Some(catalog)) = (state.policy(), state.catalog()) else {
        return Ok(None);
    };
    build_engine(catalog.clone(), &policy.policy_text, policy.exceptions_text.as_deref())
        .map(|engine| Some(Arc::new(engine)))
        .map_err(|error| LedgerError::PolicyInvalid { sequence, message: error.to_string() })
}

fn fold_with_engine(
    log: &Log,
    tenant: Option<&TenantId>,
    to: u64,
    mut progress: impl FnMut(u64),
) -> Result<(State, Option<Arc<Engine>>), LedgerError> {
    let mut state = State::default();
    let mut engine = None;
    for record in log.iter_from(1) {
        let record = record?;
        let sequence = record.header.sequence;
        if sequence > to {
            break;
        }
        let envelope = decode_record(record.header.version, sequence, &record.body)?;
        if let Some(expected) = tenant {
            if &envelope.tenant != expected {
                return Err(LedgerError::WrongTenant {
                    sequence,
                    expected: expected.clone(),
                    found: envelope.tenant,
                });
            }
        }
        apply(&mut state, &envelope.event, Timestamp(record.header.time_ms))
            .map_err(|error| LedgerError::Apply { sequence, error })?;
        if let Some(next) = engine_after(&state, &envelope.event, sequence)? {
            engine = Some(next);
        }
        progress(sequence);
    }
    Ok((state, engine))
}

/// Decodes one record body, naming the record when it does not decode.
pub fn decode_record(version: u8, sequence: u64, body: &[u8]) -> Result<Envelope, LedgerError> {
    decode_body(version, body).map_err(|error| LedgerError::Decode { sequence, error })
}

/// A stored record as the committed event it holds (sequence, time, hash,
/// envelope): what LEDGER_EVENTS carries, `show` prints and evidence bundles
/// show people.
pub fn committed(record: &grantledger_log::Record) -> Result<Committed, LedgerError> {
    let sequence = record.header.sequence;
    Ok(Committed {
        sequence,
        time: Timestamp(record.header.time_ms),
        hash: hex::encode(record.header.hash),
        envelope: decode_record(record.header.version, sequence, &record.body)?,
    })
}

/// The original decision of a request, found through the log's request index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorDecision {
    /// The sequence number of the `DecisionRecorded` record.
    pub sequence: u64,
    /// Every committed sequence number filed under the request id, ascending
    /// (at most [`PRIOR_SEQUENCES_MAX`]).
    pub sequences: Vec<u64>,
    /// The decision.
    pub outcome: grantledger_events::DecisionOutcome,
}

/// The most sequence numbers [`Ledger::prior_decision`] returns.
pub const PRIOR_SEQUENCES_MAX: usize = 64;

impl Ledger {
    /// The committed decision of `request_id`, when the log holds one: what a
    /// duplicate submission is answered with.
    pub fn prior_decision(&self, request_id: &RequestId) -> Result<Option<PriorDecision>, LedgerError> {
        let sequences =
            self.log.sequences_for_request(request_id.as_str().as_bytes(), PRIOR_SEQUENCES_MAX)?;
        for &sequence in &sequences {
            let Some(record) = self.log.read(sequence)? else { continue };
            let envelope = decode_record(record.header.version, sequence, &record.body)?;
            if let Event::DecisionRecorded(decision) = envelope.event {
                if &decision.request_id == request_id {
                    return Ok(Some(PriorDecision {
                        sequence,
                        sequences: sequences.clone(),
                        outcome: decision.outcome,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// The sequence of the recorded identity refusal of `request_id`, when
    /// the log holds one: what a later failing submission of it is answered
    /// with.
    pub fn prior_refusal(&self, request_id: &RequestId) -> Result<Option<u64>, LedgerError> {
        let sequences =
            self.log.sequences_for_request(request_id.as_str().as_bytes(), PRIOR_SEQUENCES_MAX)?;
        for sequence in sequences {
            let Some(record) = self.log.read(sequence)? else { continue };
            let envelope = decode_record(record.header.version, sequence, &record.body)?;
            if let Event::IdentityRefused(refusal) = envelope.event
                && &refusal.request_id == request_id
            {
                return Ok(Some(sequence));
            }
        }
        Ok(None)
    }
}
