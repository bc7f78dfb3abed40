//! expiry-timers: a persistent index of unrevoked grants ordered by
//! `(expires_at, grant id)`, one of scheduled starts and request deadlines
//! ordered by time, the outbox of revocations to publish on
//! `grants.expiry.<tenant>.<resource_kind>`, and the revocation debt.
//!
//! It hands the NATS runtime two different kinds of work:
//!
//! - **timers** ([`Projector::due`]), of three kinds:
//!   - *expiry*: a grant reached `expires_at` and the log holds no
//!     `GrantRevoked` for it yet. The ledger records `GrantRevoked{expired}`;
//!     applying that removes the timer.
//!   - *start*: a request decided before its scheduled start (allowed, or
//!     approved by enough approvers) reached `starts_at`. The ledger issues
//!     its grant (`GrantIssued`), which removes the timer.
//!   - *request expiry*: a request waiting for approvers reached its
//!     deadline, its decision plus the entry's `request_ttl_s` (read from
//!     the catalog in force when it was decided). The ledger records
//!     `RequestExpired`, which removes the timer; an approval that completes
//!     it, or a refusal, removes it first.
//!
//!   The runtime sends each to the ledger (`grants.timers.<tenant>`). The
//!   indices are state, so timers missed while the projector was down are
//!   due at once after a restart.
//! - **publications** ([`Projector::to_publish`]): a `GrantRevoked` of any
//!   reason was committed, so revocation workers must remove the access.
//!   Each is put in the outbox when applied and leaves it only when the
//!   runtime says it published it ([`Projector::mark_published`]) or when
//!   the grant's `RevocationConfirmed` is applied. The outbox id is the
//!   `GrantRevoked` record's sequence number: the runtime uses it as
//!   `Nats-Msg-Id`, so a publication repeated after a crash (published, not
//!   yet marked) is dropped by JetStream's duplicate window.
//!
//! A request's scheduled start is in its `RequestSubmitted` (codec 3); that
//! it is decided before it is read from its decision and its approvals
//! (counted against the approvers the decision required).
//!
//! The outbox is delivery progress, not a function of the log, so it is left
//! out of the digest. What the log does determine about it — every revoked,
//! unconfirmed grant — is in the digest through the grant and debt tables.
//!
//! Tables (first key byte):
//! - `0x20` grant id → the grant, from issue until its revocation is
//!   confirmed.
//! - `0x21` expires_at, grant id → nothing: unrevoked grants (the timers).
//! - `0x22` revoked_at, grant id → nothing: revoked, unconfirmed grants.
//! - `0x23` revocation sequence → the publication (the outbox; not digested).
//! - `0x24` time, timer kind, request id → nothing: the request timers
//!   (scheduled starts and request expiries).
//! - `0x25` request id → an open request with a scheduled start or a
//!   deadline: what its timers need, until it is granted or closed.
//! - `0x26` → the request TTL of each entitlement of the catalog in force.

use std::collections::BTreeMap;

use grantledger_events::{
    ApprovalVerdict, Committed, DecisionOutcome, EntitlementId, Event, GrantId, Principal,
    PrincipalId, RequestId, ResourceId, RevocationReason, TenantId, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::{ProjectorError, ProjectorErrorKind};
use crate::runtime::{Projection, Projector, sealed};
use crate::store::{Txn, decode_value, key, printable, time_from_part, time_part};

/// The most timers or publications one call returns.
pub const DUE_BATCH_MAX: usize = 10_000;

/// How long after a pass over the due timers reached the end the next call
/// starts again from the earliest, resending timers the ledger has not yet
/// recorded (a timer message lost on the way, or refused). Sending a timer
/// twice is harmless: the ledger refuses an expiry of a revoked grant, a
/// start of a request already started, and an expiry of a request no
/// longer waiting for approvers.
pub const TIMER_RESEND_AFTER_MS: i64 = 30_000;

const TABLE_GRANT: u8 = 0x20;
const TABLE_TIMER: u8 = 0x21;
const TABLE_DEBT: u8 = 0x22;
const TABLE_OUTBOX: u8 = 0x23;
const TABLE_REQUEST_TIMER: u8 = 0x24;
const TABLE_OPEN_REQUEST: u8 = 0x25;
const KEY_REQUEST_TTLS: &[u8] = &[0x26];

/// The kind byte of a start timer in `0x24`.
const KIND_START: u8 = 1;
/// The kind byte of a request-expiry timer in `0x24`.
const KIND_REQUEST_EXPIRY: u8 = 2;

/// The expiry-timers projection, with the position of its current pass over
/// the due timers (in memory only: a restart starts a new pass).
#[derive(Debug, Default)]
pub struct ExpiryTimers {
    /// The grant-timer key to continue from.
    resume_from: Option<Vec<u8>>,
    /// The request-timer key to continue from.
    resume_requests_from: Option<Vec<u8>>,
    /// When the next pass starts from the earliest timer.
    next_pass_at: Option<Timestamp>,
    /// No outbox id below this is in the outbox: where [`Self::to_publish`]
    /// starts reading. Outbox ids are log sequences, so every item added
    /// later is above it; without it each read would step over the
    /// tombstones of every item published since the store's last compaction
    /// (a tenth of the expiry storm's CPU).
    outbox_floor: std::sync::atomic::AtomicU64,
}

/// A timer whose time has come and whose outcome the log does not hold yet:
/// send it to the ledger ([`DueTimer::body`] on `grants.timers.<tenant>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DueTimer {
    /// A grant reached `expires_at`: the ledger records its expiry.
    Expiry {
        /// The grant.
        grant_id: GrantId,
        /// When it expired.
        expires_at: Timestamp,
    },
    /// A decided request's scheduled start came: the ledger issues its
    /// grant.
    Start {
        /// The request.
        request_id: RequestId,
        /// Its scheduled start.
        starts_at: Timestamp,
    },
    /// A request waiting for approvers reached its request TTL: the ledger
    /// records it expired.
    RequestExpiry {
        /// The request.
        request_id: RequestId,
        /// Its deadline.
        expires_at: Timestamp,
    },
}

impl DueTimer {
    /// When it came due.
    pub fn at(&self) -> Timestamp {
        match self {
            DueTimer::Expiry { expires_at, .. } | DueTimer::RequestExpiry { expires_at, .. } => {
                *expires_at
            }
            DueTimer::Start { starts_at, .. } => *starts_at,
        }
    }

    /// The grant, for an expiry timer.
    pub fn grant_id(&self) -> Option<&GrantId> {
        match self {
            DueTimer::Expiry { grant_id, .. } => Some(grant_id),
            DueTimer::Start { .. } | DueTimer::RequestExpiry { .. } => None,
        }
    }

    /// The request, for a start or request-expiry timer.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            DueTimer::Expiry { .. } => None,
            DueTimer::Start { request_id, .. } | DueTimer::RequestExpiry { request_id, .. } => {
                Some(request_id)
            }
        }
    }

    /// The timer message the ledger takes on `grants.timers.<tenant>`
    /// (`schemas/timer.schema.json`): `{"grant_id": ...}` for an expiry (the
    /// body every ledger version reads), `{"request_id": ..., "kind":
    /// "start"}` and `{"request_id": ..., "kind": "request_expiry"}`.
    pub fn body(&self) -> serde_json::Value {
        match self {
            DueTimer::Expiry { grant_id, .. } => serde_json::json!({ "grant_id": grant_id }),
            DueTimer::Start { request_id, .. } => {
                serde_json::json!({ "request_id": request_id, "kind": "start" })
            }
            DueTimer::RequestExpiry { request_id, .. } => {
                serde_json::json!({ "request_id": request_id, "kind": "request_expiry" })
            }
        }
    }
}

/// A committed revocation to publish on
/// `grants.expiry.<tenant>.<resource_kind>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// The outbox id: the sequence of the `GrantRevoked` record. Use it as
    /// `Nats-Msg-Id`.
    pub id: u64,
    /// The partition.
    pub tenant: TenantId,
    /// The grant to remove at the target.
    pub grant_id: GrantId,
    /// The request it was issued for.
    pub request_id: RequestId,
    /// Who held it.
    pub principal: Principal,
    /// The catalog entitlement granted.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// The first `/`-separated segment of the resource (`db/prod/x` →
    /// `db`): the subject's last token, which revocation workers filter on.
    pub resource_kind: String,
    /// Which actions to remove.
    pub actions: Vec<String>,
    /// Why it ended.
    pub reason: RevocationReason,
    /// When the revocation was recorded.
    pub revoked_at: Timestamp,
    /// When the grant would have expired.
    pub expires_at: Timestamp,
}

/// An expired or revoked grant that no revocation worker has confirmed
/// removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DebtItem {
    /// The grant.
    pub grant_id: GrantId,
    /// Who held it.
    pub principal: PrincipalId,
    /// On what.
    pub resource: ResourceId,
    /// Why it ended; `None` when it is past `expires_at` and its expiry is
    /// not recorded yet.
    pub reason: Option<RevocationReason>,
    /// Since when it should be gone: the revocation's time, or `expires_at`
    /// when the expiry is not recorded yet.
    pub since: Timestamp,
    /// `now - since`, in milliseconds.
    pub age_ms: i64,
    /// How many failures workers reported.
    pub failed_attempts: u32,
}

/// The first `/`-separated segment of a resource: its kind, as in
/// `grants.expiry.<tenant>.<resource_kind>`. The catalog's resource
/// patterns are `/`-separated paths whose first segment names the target
/// system (`db/prod/*`, `deploy/staging/**`), and the core names no other
/// notion of resource kind. The NATS crate checks the token (no `.`, `*`,
/// `>`) when it builds the subject.
pub fn resource_kind(resource: &ResourceId) -> &str {
    let text = resource.as_str();
    text.split('/').next().unwrap_or(text)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TimerGrant {
    tenant: TenantId,
    request_id: RequestId,
    principal: Principal,
    entitlement: EntitlementId,
    resource: ResourceId,
    actions: Vec<String>,
    expires_at: Timestamp,
    revocation: Option<TimerRevocation>,
    failed_attempts: u32,
}

/// A request with a scheduled start, or waiting for approvers with a
/// deadline: what its timers need until it is granted or closed.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenRequest {
    tenant: TenantId,
    starts_at: Option<Timestamp>,
    /// Set by a decision that needs approvers.
    approvers_required: u32,
    approvals: u32,
    /// The timer in `0x24` now: its time and kind.
    timer: Option<(Timestamp, u8)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TimerRevocation {
    sequence: u64,
    at: Timestamp,
    reason: RevocationReason,
}

impl sealed::Sealed for ExpiryTimers {}

impl Projection for ExpiryTimers {
    const NAME: &'static str = "expiry-timers";
    const TABLES_NOT_DIGESTED: &'static [u8] = &[TABLE_OUTBOX];

    fn start() -> Self {
        ExpiryTimers::default()
    }

    fn apply(&mut self, txn: &mut Txn<'_>, committed: &Committed) -> Result<(), ProjectorError> {
        match &committed.envelope.event {
            Event::CatalogPublished(e) => {
                let catalog = grantledger_core::Catalog::parse(&e.text).map_err(|error| {
                    ProjectorError::new(
                        ProjectorErrorKind::Inconsistent,
                        format!("catalog `{}` does not parse: {error}", e.catalog_hash),
                    )
                })?;
                let ttls: BTreeMap<String, i64> = catalog
                    .entitlements()
                    .iter()
                    .filter_map(|entry| Some((entry.id.clone(), entry.request_ttl_ms?)))
                    .collect();
                txn.put_value(KEY_REQUEST_TTLS.to_vec(), &ttls);
            }
            Event::RequestSubmitted(e) => {
                if let Some(starts_at) = e.starts_at {
                    txn.put_value(
                        open_key(&e.request_id),
                        &OpenRequest {
                            tenant: committed.envelope.tenant.clone(),
                            starts_at: Some(starts_at),
                            approvers_required: 0,
                            approvals: 0,
                            timer: None,
                        },
                    );
                }
            }
            Event::DecisionRecorded(e) => {
                let open = txn.get_value::<OpenRequest>(&open_key(&e.request_id))?;
                match &e.outcome {
                    DecisionOutcome::Allow => {
                        // Allowed before its start: the start timer issues
                        // it (a start already come is issued in this input,
                        // and its GrantIssued removes the timer).
                        if let Some(mut open) = open
                            && let Some(starts_at) = open.starts_at
                        {
                            set_request_timer(txn, &e.request_id, &mut open, Some((starts_at, KIND_START)));
                            txn.put_value(open_key(&e.request_id), &open);
                        }
                    }
                    DecisionOutcome::NeedsApproval {
                        approvers_required, ..
                    } => {
                        let ttls: BTreeMap<String, i64> =
                            txn.get_value(KEY_REQUEST_TTLS)?.unwrap_or_default();
                        let deadline = ttls
                            .get(e.entitlement.as_str())
                            .map(|ttl_ms| committed.time.plus_ms(*ttl_ms));
                        if open.is_none() && deadline.is_none() {
                            return Ok(());
                        }
                        let mut open = open.unwrap_or_else(|| OpenRequest {
                            tenant: committed.envelope.tenant.clone(),
                            starts_at: None,
                            approvers_required: 0,
                            approvals: 0,
                            timer: None,
                        });
                        open.approvers_required = *approvers_required;
                        set_request_timer(
                            txn,
                            &e.request_id,
                            &mut open,
                            deadline.map(|deadline| (deadline, KIND_REQUEST_EXPIRY)),
                        );
                        txn.put_value(open_key(&e.request_id), &open);
                    }
                    DecisionOutcome::Deny => close_request(txn, &e.request_id)?,
                }
            }
            Event::ApprovalRecorded(e) => {
                if let Some(mut open) = txn.get_value::<OpenRequest>(&open_key(&e.request_id))? {
                    match e.verdict {
                        ApprovalVerdict::Approve => {
                            open.approvals = open.approvals.saturating_add(1);
                            if open.approvals >= open.approvers_required {
                                // No longer waiting for approvers: its
                                // deadline is gone; a start to come is
                                // timed, else its grant follows now.
                                match open.starts_at {
                                    Some(starts_at) => {
                                        set_request_timer(
                                            txn,
                                            &e.request_id,
                                            &mut open,
                                            Some((starts_at, KIND_START)),
                                        );
                                        txn.put_value(open_key(&e.request_id), &open);
                                    }
                                    None => close_request(txn, &e.request_id)?,
                                }
                            } else {
                                txn.put_value(open_key(&e.request_id), &open);
                            }
                        }
                        ApprovalVerdict::Deny => close_request(txn, &e.request_id)?,
                    }
                }
            }
            Event::RequestExpired(e) => close_request(txn, &e.request_id)?,
            Event::RequestWithdrawn(e) => close_request(txn, &e.request_id)?,
            Event::GrantIssued(e) => {
                close_request(txn, &e.request_id)?;
                let grant = TimerGrant {
                    tenant: committed.envelope.tenant.clone(),
                    request_id: e.request_id.clone(),
                    principal: e.principal.clone(),
                    entitlement: e.entitlement.clone(),
                    resource: e.resource.clone(),
                    actions: e.actions.clone(),
                    expires_at: e.expires_at,
                    revocation: None,
                    failed_attempts: 0,
                };
                txn.put(timer_key(e.expires_at, &e.grant_id), Vec::new());
                txn.put_value(grant_key(&e.grant_id), &grant);
            }
            Event::GrantExtended(e) => {
                let mut grant = load(txn, &e.grant_id, "an extension")?;
                txn.delete(timer_key(grant.expires_at, &e.grant_id));
                grant.expires_at = e.expires_at;
                txn.put(timer_key(grant.expires_at, &e.grant_id), Vec::new());
                txn.put_value(grant_key(&e.grant_id), &grant);
            }
            Event::GrantRevoked(e) => {
                let mut grant = load(txn, &e.grant_id, "a revocation")?;
                if grant.revocation.is_some() {
                    return Err(inconsistent(&e.grant_id, "a second revocation"));
                }
                txn.delete(timer_key(grant.expires_at, &e.grant_id));
                txn.put(debt_key(committed.time, &e.grant_id), Vec::new());
                txn.put_value(
                    outbox_key(committed.sequence),
                    &Publication {
                        id: committed.sequence,
                        tenant: grant.tenant.clone(),
                        grant_id: e.grant_id.clone(),
                        request_id: grant.request_id.clone(),
                        principal: grant.principal.clone(),
                        entitlement: grant.entitlement.clone(),
                        resource_kind: resource_kind(&grant.resource).to_owned(),
                        resource: grant.resource.clone(),
                        actions: grant.actions.clone(),
                        reason: e.reason,
                        revoked_at: committed.time,
                        expires_at: grant.expires_at,
                    },
                );
                grant.revocation = Some(TimerRevocation {
                    sequence: committed.sequence,
                    at: committed.time,
                    reason: e.reason,
                });
                txn.put_value(grant_key(&e.grant_id), &grant);
            }
            Event::RevocationFailed(e) => {
                let mut grant = load(txn, &e.grant_id, "a revocation failure")?;
                grant.failed_attempts = grant.failed_attempts.saturating_add(1);
                txn.put_value(grant_key(&e.grant_id), &grant);
            }
            Event::RevocationConfirmed(e) => {
                let grant = load(txn, &e.grant_id, "a revocation confirmation")?;
                let Some(revocation) = grant.revocation else {
                    return Err(inconsistent(
                        &e.grant_id,
                        "a confirmation before any revocation",
                    ));
                };
                txn.delete(debt_key(revocation.at, &e.grant_id));
                // Confirmed removed: publishing it now would only make a
                // worker remove it again.
                txn.delete(outbox_key(revocation.sequence));
                txn.delete(grant_key(&e.grant_id));
            }
            Event::PolicyPublished(_)
            | Event::BreakGlassInvoked(_)
            | Event::ReviewRecorded(_)
            // An offboarding's revocations are their own events; the
            // scheduled starts of its principal and of what it owns come
            // due and the ledger records them expired.
            | Event::PrincipalOffboarded(_)
            | Event::IdentityRefused(_) => {}
        }
        Ok(())
    }
}

impl Projector<ExpiryTimers> {
    /// Timers to send to the ledger, at most `limit` (capped at
    /// [`DUE_BATCH_MAX`]): unrevoked grants with `expires_at <= now`,
    /// earliest first, then decided requests whose scheduled start is at or
    /// before `now` and requests waiting for approvers whose deadline is,
    /// earliest first.
    ///
    /// Successive calls continue after the last timer returned, so a storm
    /// is handed out in bounded batches with no timer twice in one pass, and
    /// timers coming due later are found as time goes on. Once a call
    /// reaches the end of the due timers, a new pass from the earliest timer
    /// starts at `now +` [`TIMER_RESEND_AFTER_MS`], resending only timers
    /// the ledger still has not recorded. A restart starts a new pass at
    /// once, so timers missed while down are due immediately.
    pub fn due(&mut self, now: Timestamp, limit: usize) -> Result<Vec<DueTimer>, ProjectorError> {
        let limit = limit.min(DUE_BATCH_MAX);
        let state = &mut self.projection;
        if state.next_pass_at.is_some_and(|at| now >= at) {
            state.resume_from = None;
            state.resume_requests_from = None;
            state.next_pass_at = None;
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let grant_keys = due_keys(&self.store, TABLE_TIMER, &mut state.resume_from, now, limit)?;
        let request_keys = if grant_keys.len() < limit {
            due_keys(
                &self.store,
                TABLE_REQUEST_TIMER,
                &mut state.resume_requests_from,
                now,
                limit - grant_keys.len(),
            )?
        } else {
            Vec::new()
        };
        if grant_keys.len() + request_keys.len() < limit && state.next_pass_at.is_none() {
            state.next_pass_at = Some(now.plus_ms(TIMER_RESEND_AFTER_MS));
        }
        // The keys say everything a timer needs: no grant or request is
        // read (in a storm, 100,000 random reads of the store).
        let mut due = Vec::with_capacity(grant_keys.len() + request_keys.len());
        for key in &grant_keys {
            let (expires_at, grant_id) = split_timer_key(key)?;
            due.push(DueTimer::Expiry {
                grant_id,
                expires_at,
            });
        }
        for key in &request_keys {
            let (at, kind, request_id) = split_request_timer_key(key)?;
            due.push(match kind {
                KIND_START => DueTimer::Start {
                    request_id,
                    starts_at: at,
                },
                _ => DueTimer::RequestExpiry {
                    request_id,
                    expires_at: at,
                },
            });
        }
        Ok(due)
    }

    /// The earliest time a timer comes due (an unrevoked grant's
    /// `expires_at`, a scheduled start, a request's deadline): when the
    /// runtime should next call [`Self::due`].
    pub fn next_expiry(&self) -> Result<Option<Timestamp>, ProjectorError> {
        let grant = [TABLE_TIMER];
        let grant = self
            .store
            .scan(&grant, &grant, 1)?
            .first()
            .map(|(key, _)| split_timer_key(key).map(|(at, _)| at))
            .transpose()?;
        let request = [TABLE_REQUEST_TIMER];
        let request = self
            .store
            .scan(&request, &request, 1)?
            .first()
            .map(|(key, _)| split_request_timer_key(key).map(|(at, _, _)| at))
            .transpose()?;
        Ok(grant.into_iter().chain(request).min())
    }

    /// Revocations to publish, in log order, at most `limit` (capped at
    /// [`DUE_BATCH_MAX`]). They stay here until [`Self::mark_published`].
    pub fn to_publish(&self, limit: usize) -> Result<Vec<Publication>, ProjectorError> {
        use std::sync::atomic::Ordering;
        let table = [TABLE_OUTBOX];
        let floor = &self.projection.outbox_floor;
        let items: Vec<Publication> = self
            .store
            .scan(&table, &outbox_key(floor.load(Ordering::Relaxed)), limit.min(DUE_BATCH_MAX))?
            .into_iter()
            .map(|(key, value)| decode_value(&key, &value))
            .collect::<Result<_, _>>()?;
        // Everything below the first item found is gone (published, or
        // confirmed); only this method reads the floor, and only under the
        // projector's lock is the outbox written.
        if let Some(first) = items.first() {
            floor.fetch_max(first.id, Ordering::Relaxed);
        }
        Ok(items)
    }

    /// Removes published items from the outbox, in one synced write.
    /// Unknown ids (already marked, or confirmed meanwhile) are ignored.
    /// Returns how many were removed.
    pub fn mark_published(&mut self, ids: &[u64]) -> Result<usize, ProjectorError> {
        let mut batch = rocksdb::WriteBatch::default();
        let mut removed = 0;
        for &id in ids {
            let key = outbox_key(id);
            if self.store.get(&key)?.is_some() {
                batch.delete(key);
                removed += 1;
            }
        }
        if removed > 0 {
            self.store.write(batch)?;
        }
        Ok(removed)
    }

    /// Every grant that should be gone at `now` and is not confirmed gone:
    /// revoked and unconfirmed, or past `expires_at` with no revocation
    /// recorded yet; oldest first, with its age at `now`, at most `limit`
    /// (capped at [`DUE_BATCH_MAX`]).
    pub fn revocation_debt(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<DebtItem>, ProjectorError> {
        let limit = limit.min(DUE_BATCH_MAX);
        // Both tables are ordered by the time the grant should be gone;
        // merging their first `limit` entries gives the oldest `limit`.
        let debt = self.store.scan(&[TABLE_DEBT], &[TABLE_DEBT], limit)?;
        let mut expired = Vec::new();
        self.store.visit(&[TABLE_TIMER], &[TABLE_TIMER], |key, _| {
            let (expires_at, grant_id) = split_timer_key(key)?;
            if expires_at > now {
                return Ok(false);
            }
            expired.push((expires_at, grant_id));
            Ok(expired.len() < limit)
        })?;
        let mut candidates: Vec<(Timestamp, GrantId)> = expired;
        for (key, _) in &debt {
            candidates.push(split_timer_key(key)?);
        }
        candidates.sort();
        candidates.truncate(limit);
        candidates
            .into_iter()
            .map(|(since, grant_id)| {
                let grant = self.load_stored(&grant_id)?;
                Ok(DebtItem {
                    principal: grant.principal.id,
                    resource: grant.resource,
                    reason: grant.revocation.map(|revocation| revocation.reason),
                    since,
                    age_ms: now.0.saturating_sub(since.0),
                    failed_attempts: grant.failed_attempts,
                    grant_id,
                })
            })
            .collect()
    }

    fn load_stored(&self, grant_id: &GrantId) -> Result<TimerGrant, ProjectorError> {
        self.store.get_value(&grant_key(grant_id))?.ok_or_else(|| {
            ProjectorError::new(
                ProjectorErrorKind::Corrupt,
                format!(
                    "an index of `{}` names grant `{grant_id}`, which is not stored",
                    ExpiryTimers::NAME
                ),
            )
        })
    }
}

/// The keys of `table` (a timer table: the time in bytes 1..9) due at
/// `now`, from `resume` on, at most `limit`; moves `resume` past the last.
fn due_keys(
    store: &crate::store::Store,
    table: u8,
    resume: &mut Option<Vec<u8>>,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<Vec<u8>>, ProjectorError> {
    let prefix = [table];
    let from = resume.clone().unwrap_or_else(|| prefix.to_vec());
    let mut keys = Vec::new();
    store.visit(&prefix, &from, |key, _| {
        let at = key
            .get(1..9)
            .and_then(time_from_part)
            .ok_or_else(|| {
                ProjectorError::new(
                    ProjectorErrorKind::Corrupt,
                    format!("key `{}` does not start with a time", printable(key)),
                )
            })?;
        if Timestamp(at) > now {
            return Ok(false);
        }
        keys.push(key.to_vec());
        Ok(keys.len() < limit)
    })?;
    if let Some(last) = keys.last() {
        let mut next = last.clone();
        next.push(0);
        *resume = Some(next);
    }
    Ok(keys)
}

/// Moves an open request's timer to `timer` (none: removes it).
fn set_request_timer(
    txn: &mut Txn<'_>,
    request_id: &RequestId,
    open: &mut OpenRequest,
    timer: Option<(Timestamp, u8)>,
) {
    if let Some((at, kind)) = open.timer {
        txn.delete(request_timer_key(at, kind, request_id));
    }
    if let Some((at, kind)) = timer {
        txn.put(request_timer_key(at, kind, request_id), Vec::new());
    }
    open.timer = timer;
}

/// Forgets an open request and its timer: it was granted or closed.
fn close_request(txn: &mut Txn<'_>, request_id: &RequestId) -> Result<(), ProjectorError> {
    if let Some(mut open) = txn.get_value::<OpenRequest>(&open_key(request_id))? {
        set_request_timer(txn, request_id, &mut open, None);
        txn.delete(open_key(request_id));
    }
    Ok(())
}

fn open_key(request_id: &RequestId) -> Vec<u8> {
    key(TABLE_OPEN_REQUEST, &[request_id.as_str().as_bytes()])
}

/// `0x24`, the time (8 bytes, ordered), the kind byte, the request id.
fn request_timer_key(at: Timestamp, kind: u8, request_id: &RequestId) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + request_id.as_str().len());
    out.push(TABLE_REQUEST_TIMER);
    out.extend_from_slice(&time_part(at.0));
    out.push(kind);
    out.extend_from_slice(request_id.as_str().as_bytes());
    out
}

fn split_request_timer_key(key: &[u8]) -> Result<(Timestamp, u8, RequestId), ProjectorError> {
    let corrupt = || {
        ProjectorError::new(
            ProjectorErrorKind::Corrupt,
            format!("key `{}` is not a time, a timer kind and a request id", printable(key)),
        )
    };
    let at = key.get(1..9).and_then(time_from_part).ok_or_else(corrupt)?;
    let kind = *key.get(9).filter(|kind| matches!(**kind, KIND_START | KIND_REQUEST_EXPIRY)).ok_or_else(corrupt)?;
    let request = std::str::from_utf8(&key[10..])
        .ok()
        .and_then(|id| RequestId::new(id).ok())
        .ok_or_else(corrupt)?;
    Ok((Timestamp(at), kind, request))
}

fn load(txn: &Txn<'_>, grant_id: &GrantId, what: &str) -> Result<TimerGrant, ProjectorError> {
    txn.get_value(&grant_key(grant_id))?
        .ok_or_else(|| inconsistent(grant_id, what))
}

fn inconsistent(grant_id: &GrantId, what: &str) -> ProjectorError {
    ProjectorError::new(
        ProjectorErrorKind::Inconsistent,
        format!("{what} of grant `{grant_id}`, which is not issued or already confirmed revoked"),
    )
}

fn grant_key(grant_id: &GrantId) -> Vec<u8> {
    key(TABLE_GRANT, &[grant_id.as_str().as_bytes()])
}

/// Table byte, the time (8 bytes, ordered), the grant id. Shared by the
/// timer and debt tables.
fn timed_key(table: u8, at: Timestamp, grant_id: &GrantId) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + grant_id.as_str().len());
    out.push(table);
    out.extend_from_slice(&time_part(at.0));
    out.extend_from_slice(grant_id.as_str().as_bytes());
    out
}

fn timer_key(at: Timestamp, grant_id: &GrantId) -> Vec<u8> {
    timed_key(TABLE_TIMER, at, grant_id)
}

fn debt_key(at: Timestamp, grant_id: &GrantId) -> Vec<u8> {
    timed_key(TABLE_DEBT, at, grant_id)
}

fn split_timer_key(key: &[u8]) -> Result<(Timestamp, GrantId), ProjectorError> {
    let corrupt = || {
        ProjectorError::new(
            ProjectorErrorKind::Corrupt,
            format!("key `{}` is not a time and a grant id", printable(key)),
        )
    };
    let at = key.get(1..9).and_then(time_from_part).ok_or_else(corrupt)?;
    let grant = std::str::from_utf8(&key[9..])
        .ok()
        .and_then(|id| GrantId::new(id).ok())
        .ok_or_else(corrupt)?;
    Ok((Timestamp(at), grant))
}

fn outbox_key(sequence: u64) -> Vec<u8> {
    let mut out = vec![TABLE_OUTBOX];
    out.extend_from_slice(&sequence.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_kind_is_the_first_segment() {
        let kind = |text: &str| resource_kind(&ResourceId::new(text).unwrap()).to_owned();
        assert_eq!(kind("db/prod/x"), "db");
        assert_eq!(kind("deploy/staging/api/eu-west-1"), "deploy");
        assert_eq!(kind("single"), "single");
    }
}
