//! expiry-timers: a persistent index of unrevoked grants ordered by
//! `(expires_at, grant id)`, the outbox of revocations to publish on
//! `grants.expiry.<tenant>.<resource_kind>`, and the revocation debt.
//!
//! It hands the NATS runtime two different kinds of work:
//!
//! - **timers** ([`Projector::due`]): a grant reached `expires_at` and the
//!   log holds no `GrantRevoked` for it yet. The runtime sends the timer to
//!   the ledger (`grants.timers.<tenant>`), which records
//!   `GrantRevoked{expired}`; applying that removes the timer. The index is
//!   state, so timers missed while the projector was down are due at once
//!   after a restart.
//! - **publications** ([`Projector::to_publish`]): a `GrantRevoked` of any
//!   reason was committed, so revocation workers must remove the access.
//!   Each is put in the outbox when applied and leaves it only when the
//!   runtime says it published it ([`Projector::mark_published`]) or when
//!   the grant's `RevocationConfirmed` is applied. The outbox id is the
//!   `GrantRevoked` record's sequence number: the runtime uses it as
//!   `Nats-Msg-Id`, so a publication repeated after a crash (published, not
//!   yet marked) is dropped by JetStream's duplicate window.
//!
//! The events carry no scheduled start (no event has a start time other than
//! `issued_at`, which is the record's own time), so only `expires_at` is
//! indexed.
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

use grantledger_events::{
    Committed, EntitlementId, Event, GrantId, Principal, PrincipalId, RequestId, ResourceId,
    RevocationReason, TenantId, Timestamp,
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
/// twice is harmless: the ledger refuses an expiry of a revoked grant.
pub const TIMER_RESEND_AFTER_MS: i64 = 30_000;

const TABLE_GRANT: u8 = 0x20;
const TABLE_TIMER: u8 = 0x21;
const TABLE_DEBT: u8 = 0x22;
const TABLE_OUTBOX: u8 = 0x23;

/// The expiry-timers projection, with the position of its current pass over
/// the due timers (in memory only: a restart starts a new pass).
#[derive(Debug, Default)]
pub struct ExpiryTimers {
    /// The timer key to continue from.
    resume_from: Option<Vec<u8>>,
    /// When the next pass starts from the earliest timer.
    next_pass_at: Option<Timestamp>,
}

/// A grant whose `expires_at` has come and whose revocation the log does
/// not hold yet: send a timer to the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DueTimer {
    /// The grant.
    pub grant_id: GrantId,
    /// Its partition.
    pub tenant: TenantId,
    /// When it expired.
    pub expires_at: Timestamp,
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
            Event::GrantIssued(e) => {
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
            Event::CatalogPublished(_)
            | Event::PolicyPublished(_)
            | Event::RequestSubmitted(_)
            | Event::DecisionRecorded(_)
            | Event::ApprovalRecorded(_)
            | Event::BreakGlassInvoked(_)
            | Event::ReviewRecorded(_)
            // An offboarding's revocations are their own events.
            | Event::PrincipalOffboarded(_)
            | Event::IdentityRefused(_) => {}
        }
        Ok(())
    }
}

impl Projector<ExpiryTimers> {
    /// Timers to send to the ledger: unrevoked grants with `expires_at <=
    /// now`, earliest first, at most `limit` (capped at [`DUE_BATCH_MAX`]).
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
            state.next_pass_at = None;
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let table = [TABLE_TIMER];
        let from = state.resume_from.clone().unwrap_or_else(|| table.to_vec());
        let mut keys = Vec::new();
        self.store.visit(&table, &from, |key, _| {
            let (expires_at, _) = split_timer_key(key)?;
            if expires_at > now {
                return Ok(false);
            }
            keys.push(key.to_vec());
            Ok(keys.len() < limit)
        })?;
        if let Some(last) = keys.last() {
            let mut next = last.clone();
            next.push(0);
            state.resume_from = Some(next);
        }
        if keys.len() < limit && state.next_pass_at.is_none() {
            state.next_pass_at = Some(now.plus_ms(TIMER_RESEND_AFTER_MS));
        }
        keys.iter()
            .map(|key| {
                let (expires_at, grant_id) = split_timer_key(key)?;
                let grant = self.load_stored(&grant_id)?;
                Ok(DueTimer {
                    grant_id,
                    tenant: grant.tenant,
                    expires_at,
                })
            })
            .collect()
    }

    /// The earliest `expires_at` of an unrevoked grant: when the runtime
    /// should next call [`Self::due`].
    pub fn next_expiry(&self) -> Result<Option<Timestamp>, ProjectorError> {
        let table = [TABLE_TIMER];
        let first = self.store.scan(&table, &table, 1)?;
        first
            .first()
            .map(|(key, _)| split_timer_key(key).map(|(at, _)| at))
            .transpose()
    }

    /// Revocations to publish, in log order, at most `limit` (capped at
    /// [`DUE_BATCH_MAX`]). They stay here until [`Self::mark_published`].
    pub fn to_publish(&self, limit: usize) -> Result<Vec<Publication>, ProjectorError> {
        let table = [TABLE_OUTBOX];
        self.store
            .scan(&table, &table, limit.min(DUE_BATCH_MAX))?
            .into_iter()
            .map(|(key, value)| decode_value(&key, &value))
            .collect()
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
