//! current-grants: the grants in force, by principal and by resource,
//! reference-counted effective access, the requests waiting for approvers,
//! and the decided requests waiting for their scheduled start. Answers
//! `check(principal, action, resource, at)`: a scheduled request gives
//! nothing before its grant is issued.
//!
//! Only unrevoked grants are kept (a revoked grant is deleted with its index
//! entries), so the store grows with the live grants, not with history;
//! questions about the past go to audit-evidence. A grant past its
//! `expires_at` stays until its `GrantRevoked{expired}` is committed, but no
//! query reports it active from `expires_at` on.
//!
//! Tables (first key byte):
//! - `0x10` grant id → the grant.
//! - `0x11` principal, resource, grant id → its terms (issued, expires,
//!   actions): what `check` and `grants_of` scan.
//! - `0x12` resource, principal, grant id → nothing: `holders_of`.
//! - `0x13` principal, resource, action → count of unrevoked grants giving
//!   it: the reference-counted effective access.
//! - `0x14` request id → what an open request asked (until granted or
//!   closed).
//! - `0x15` decision sequence → a request waiting for approvers, oldest
//!   first.
//! - `0x16` starts_at, request id → a decided request waiting for its
//!   scheduled start, earliest first.
//! - `0x17` request id → the scheduled start an open request asked for.

use grantledger_events::{
    ApprovalVerdict, Committed, DecisionOutcome, EntitlementId, Event, GrantId, Principal,
    PrincipalId, RequestId, ResourceId, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::{ProjectorError, ProjectorErrorKind};
use crate::runtime::{Projection, Projector, sealed};
use crate::store::{Txn, decode_value, key, prefix, split_parts};

/// The most items one query returns.
pub const QUERY_ITEMS_MAX: usize = 10_000;

const TABLE_GRANT: u8 = 0x10;
const TABLE_BY_PRINCIPAL: u8 = 0x11;
const TABLE_BY_RESOURCE: u8 = 0x12;
const TABLE_ACCESS: u8 = 0x13;
const TABLE_OPEN_REQUEST: u8 = 0x14;
const TABLE_PENDING: u8 = 0x15;
const TABLE_SCHEDULED: u8 = 0x16;
const TABLE_START: u8 = 0x17;

/// The current-grants projection.
#[derive(Debug, Default)]
pub struct CurrentGrants;

/// An unrevoked grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveGrant {
    /// The grant.
    pub grant_id: GrantId,
    /// The request it was issued for.
    pub request_id: RequestId,
    /// Who holds it.
    pub principal: Principal,
    /// Which entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// Which actions, sorted and distinct.
    pub actions: Vec<String>,
    /// When it started.
    pub issued_at: Timestamp,
    /// When it ends, after any extension.
    pub expires_at: Timestamp,
    /// Issued by break-glass.
    pub break_glass: bool,
}

/// A request waiting for approvers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The request.
    pub request_id: RequestId,
    /// The sequence of the decision that asked for approvers.
    pub decision_sequence: u64,
    /// Who asks.
    pub principal: Principal,
    /// Which entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// How many distinct approvers are needed.
    pub approvers_required: u32,
    /// From which group.
    pub group: String,
    /// Who approved so far, in order.
    pub approvals: Vec<PrincipalId>,
}

/// A decided request waiting for its scheduled start: allowed by policy,
/// or approved by enough approvers, its grant issued when `starts_at` comes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledStart {
    /// The request.
    pub request_id: RequestId,
    /// Who asks.
    pub principal: Principal,
    /// Which entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// When its grant is to be issued.
    pub starts_at: Timestamp,
    /// Approved by people rather than allowed by policy alone.
    pub approved: bool,
    /// The sequence of the record that decided it (the decision, or the
    /// last approval).
    pub decided_sequence: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct GrantTerms {
    issued_at: Timestamp,
    expires_at: Timestamp,
    actions: Vec<String>,
}

impl GrantTerms {
    fn gives(&self, action: &str, at: Timestamp) -> bool {
        self.issued_at <= at
            && at < self.expires_at
            && self.actions.iter().any(|held| held == action)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenRequest {
    principal: Principal,
    entitlement: EntitlementId,
    resource: ResourceId,
    /// Set while waiting for approvers: the key of its pending entry.
    pending_sequence: Option<u64>,
}

impl sealed::Sealed for CurrentGrants {}

impl Projection for CurrentGrants {
    const NAME: &'static str = "current-grants";

    fn start() -> Self {
        CurrentGrants
    }

    fn apply(&mut self, txn: &mut Txn<'_>, committed: &Committed) -> Result<(), ProjectorError> {
        match &committed.envelope.event {
            Event::RequestSubmitted(e) => {
                if let Some(starts_at) = e.starts_at {
                    txn.put_value(start_key(&e.request_id), &starts_at);
                }
                txn.put_value(
                    key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]),
                    &OpenRequest {
                        principal: e.principal.clone(),
                        entitlement: e.entitlement.clone(),
                        resource: e.resource.clone(),
                        pending_sequence: None,
                    },
                );
            }
            Event::DecisionRecorded(e) => {
                let open_key = key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]);
                let mut open: OpenRequest = txn
                    .get_value(&open_key)?
                    .ok_or_else(|| request_unknown(&e.request_id, "a decision"))?;
                match &e.outcome {
                    DecisionOutcome::NeedsApproval {
                        approvers_required,
                        group,
                    } => {
                        txn.put_value(
                            pending_key(committed.sequence),
                            &PendingApproval {
                                request_id: e.request_id.clone(),
                                decision_sequence: committed.sequence,
                                principal: open.principal.clone(),
                                entitlement: open.entitlement.clone(),
                                resource: open.resource.clone(),
                                approvers_required: *approvers_required,
                                group: group.clone(),
                                approvals: Vec::new(),
                            },
                        );
                        open.pending_sequence = Some(committed.sequence);
                        txn.put_value(open_key, &open);
                    }
                    // An allowed request's grant follows (now, or at its
                    // scheduled start); what it asked is in the GrantIssued
                    // event, so nothing need be kept.
                    DecisionOutcome::Allow => {
                        schedule(txn, &e.request_id, &open, false, committed.sequence)?;
                        txn.delete(open_key);
                    }
                    DecisionOutcome::Deny => {
                        txn.delete(open_key);
                        txn.delete(start_key(&e.request_id));
                    }
                }
            }
            Event::ApprovalRecorded(e) => {
                let open_key = key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]);
                let open: OpenRequest = txn
                    .get_value(&open_key)?
                    .ok_or_else(|| request_unknown(&e.request_id, "an approval"))?;
                if open.pending_sequence.is_none() && e.verdict == ApprovalVerdict::Deny {
                    // An approved request refused before its scheduled
                    // start: cancelled.
                    txn.delete(open_key);
                    unschedule(txn, &e.request_id)?;
                    return Ok(());
                }
                let Some(sequence) = open.pending_sequence else {
                    return Err(ProjectorError::new(
                        ProjectorErrorKind::Inconsistent,
                        format!(
                            "approval of request `{}`, which is not waiting for approvers",
                            e.request_id
                        ),
                    ));
                };
                match e.verdict {
                    ApprovalVerdict::Approve => {
                        let mut pending: PendingApproval =
                            txn.get_value(&pending_key(sequence))?
                                .ok_or_else(|| request_unknown(&e.request_id, "an approval"))?;
                        pending.approvals.push(e.approver.clone());
                        if pending.approvals.len() >= pending.approvers_required as usize {
                            // Approved: no longer waiting for approvers. Its
                            // grant follows, now or at its scheduled start.
                            txn.delete(pending_key(sequence));
                            let mut open = open;
                            open.pending_sequence = None;
                            schedule(txn, &e.request_id, &open, true, committed.sequence)?;
                            txn.put_value(open_key, &open);
                        } else {
                            txn.put_value(pending_key(sequence), &pending);
                        }
                    }
                    ApprovalVerdict::Deny => {
                        txn.delete(pending_key(sequence));
                        txn.delete(open_key);
                        txn.delete(start_key(&e.request_id));
                    }
                }
            }
            // Closed without a grant: lapsed, or withdrawn by its requester.
            Event::RequestExpired(grantledger_events::RequestExpired { request_id, .. })
            | Event::RequestWithdrawn(grantledger_events::RequestWithdrawn { request_id, .. }) => {
                let open_key = key(TABLE_OPEN_REQUEST, &[request_id.as_str().as_bytes()]);
                if let Some(open) = txn.get_value::<OpenRequest>(&open_key)? {
                    if let Some(sequence) = open.pending_sequence {
                        txn.delete(pending_key(sequence));
                    }
                    txn.delete(open_key);
                }
                unschedule(txn, request_id)?;
            }
            Event::GrantIssued(e) => {
                let open_key = key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]);
                if let Some(open) = txn.get_value::<OpenRequest>(&open_key)? {
                    if let Some(sequence) = open.pending_sequence {
                        txn.delete(pending_key(sequence));
                    }
                    txn.delete(open_key);
                }
                unschedule(txn, &e.request_id)?;
                let mut actions = e.actions.clone();
                actions.sort();
                actions.dedup();
                let grant = ActiveGrant {
                    grant_id: e.grant_id.clone(),
                    request_id: e.request_id.clone(),
                    principal: e.principal.clone(),
                    entitlement: e.entitlement.clone(),
                    resource: e.resource.clone(),
                    actions,
                    issued_at: e.issued_at,
                    expires_at: e.expires_at,
                    break_glass: e.break_glass,
                };
                index_grant(txn, &grant)?;
                txn.put_value(grant_key(&grant.grant_id), &grant);
            }
            Event::GrantExtended(e) => {
                let mut grant = load_grant(txn, &e.grant_id, "an extension")?;
                grant.expires_at = e.expires_at;
                txn.put_value(by_principal_key(&grant), &terms(&grant));
                txn.put_value(grant_key(&grant.grant_id), &grant);
            }
            Event::GrantRevoked(e) => {
                let grant = load_grant(txn, &e.grant_id, "a revocation")?;
                txn.delete(by_principal_key(&grant));
                txn.delete(by_resource_key(&grant));
                for action in &grant.actions {
                    let access_key = access_key(&grant.principal.id, &grant.resource, action);
                    let count: u32 = txn.get_value(&access_key)?.unwrap_or(0);
                    // INVARIANT: every unrevoked grant counted each of its
                    // actions once when it was issued.
                    assert!(
                        count > 0,
                        "access count of `{}` is zero while grant `{}` gives it",
                        action,
                        grant.grant_id
                    );
                    if count == 1 {
                        txn.delete(access_key);
                    } else {
                        txn.put_value(access_key, &(count - 1));
                    }
                }
                txn.delete(grant_key(&grant.grant_id));
            }
            Event::CatalogPublished(_)
            | Event::PolicyPublished(_)
            | Event::RevocationConfirmed(_)
            | Event::RevocationFailed(_)
            | Event::BreakGlassInvoked(_)
            | Event::ReviewRecorded(_)
            // An offboarding's revocations are their own events; a refused
            // request was never a request here.
            | Event::PrincipalOffboarded(_)
            | Event::IdentityRefused(_) => {}
        }
        Ok(())
    }
}

impl Projector<CurrentGrants> {
    /// May `principal` do `action` on `resource` at `at`? True iff an
    /// unrevoked grant gives it with `issued_at <= at < expires_at`: false
    /// at `expires_at` exactly and after, whether or not the expiry has been
    /// recorded. Meant for `at` at or after the cursor's time ("now"); a
    /// grant revoked before the cursor is gone from this projection, so
    /// questions about the past go to audit-evidence.
    pub fn check(
        &self,
        principal: &PrincipalId,
        action: &str,
        resource: &ResourceId,
        at: Timestamp,
    ) -> Result<bool, ProjectorError> {
        let scan = prefix(
            TABLE_BY_PRINCIPAL,
            &[principal.as_str().as_bytes(), resource.as_str().as_bytes()],
        );
        let mut found = false;
        self.store.visit(&scan, &scan, |key, value| {
            let terms: GrantTerms = decode_value(key, value)?;
            found = terms.gives(action, at);
            Ok(!found)
        })?;
        Ok(found)
    }

    /// How many unrevoked grants give `principal` the right to do `action`
    /// on `resource`. Overlapping grants each count: revoking one leaves
    /// the access another still gives. By record, like the core's count;
    /// whether a grant is past `expires_at` is [`Self::check`]'s business.
    pub fn access_count(
        &self,
        principal: &PrincipalId,
        resource: &ResourceId,
        action: &str,
    ) -> Result<u32, ProjectorError> {
        Ok(self
            .store
            .get_value(&access_key(principal, resource, action))?
            .unwrap_or(0))
    }

    /// The grants `principal` holds at `at` (unrevoked, `issued_at <= at <
    /// expires_at`), by resource then grant id, at most `limit` (capped at
    /// [`QUERY_ITEMS_MAX`]).
    pub fn grants_of(
        &self,
        principal: &PrincipalId,
        at: Timestamp,
        limit: usize,
    ) -> Result<Vec<ActiveGrant>, ProjectorError> {
        let scan = prefix(TABLE_BY_PRINCIPAL, &[principal.as_str().as_bytes()]);
        let mut grant_ids = Vec::new();
        let limit = limit.min(QUERY_ITEMS_MAX);
        self.store.visit(&scan, &scan, |key, value| {
            let terms: GrantTerms = decode_value(key, value)?;
            if terms.issued_at <= at && at < terms.expires_at {
                grant_ids.push(last_part(key));
            }
            Ok(grant_ids.len() < limit)
        })?;
        self.load_grants(grant_ids)
    }

    /// The grants on `resource` in force at `at`, by principal then grant
    /// id, at most `limit` (capped at [`QUERY_ITEMS_MAX`]).
    pub fn holders_of(
        &self,
        resource: &ResourceId,
        at: Timestamp,
        limit: usize,
    ) -> Result<Vec<ActiveGrant>, ProjectorError> {
        let scan = prefix(TABLE_BY_RESOURCE, &[resource.as_str().as_bytes()]);
        let limit = limit.min(QUERY_ITEMS_MAX);
        let mut out = Vec::new();
        self.store.visit(&scan, &scan, |key, _| {
            let grant_id = last_part(key);
            let grant: ActiveGrant = self
                .store
                .get_value(&key_for_grant_id(&grant_id))?
                .ok_or_else(|| {
                    ProjectorError::new(
                        ProjectorErrorKind::Corrupt,
                        format!(
                            "resource index names grant `{}`, which is not stored",
                            String::from_utf8_lossy(&grant_id)
                        ),
                    )
                })?;
            if grant.issued_at <= at && at < grant.expires_at {
                out.push(grant);
            }
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// One unrevoked grant.
    pub fn grant(&self, grant_id: &GrantId) -> Result<Option<ActiveGrant>, ProjectorError> {
        self.store.get_value(&grant_key(grant_id))
    }

    /// Requests waiting for approvers, oldest decision first, at most
    /// `limit` (capped at [`QUERY_ITEMS_MAX`]).
    pub fn pending(&self, limit: usize) -> Result<Vec<PendingApproval>, ProjectorError> {
        let scan = [TABLE_PENDING];
        self.store
            .scan(&scan, &scan, limit.min(QUERY_ITEMS_MAX))?
            .into_iter()
            .map(|(key, value)| decode_value(&key, &value))
            .collect()
    }

    /// Decided requests waiting for their scheduled start, earliest start
    /// first, at most `limit` (capped at [`QUERY_ITEMS_MAX`]). None of them
    /// gives access before its grant is issued.
    pub fn scheduled(&self, limit: usize) -> Result<Vec<ScheduledStart>, ProjectorError> {
        let scan = [TABLE_SCHEDULED];
        self.store
            .scan(&scan, &scan, limit.min(QUERY_ITEMS_MAX))?
            .into_iter()
            .map(|(key, value)| decode_value(&key, &value))
            .collect()
    }

    fn load_grants(&self, grant_ids: Vec<Vec<u8>>) -> Result<Vec<ActiveGrant>, ProjectorError> {
        grant_ids
            .into_iter()
            .map(|grant_id| {
                self.store
                    .get_value(&key_for_grant_id(&grant_id))?
                    .ok_or_else(|| {
                        ProjectorError::new(
                            ProjectorErrorKind::Corrupt,
                            format!(
                                "principal index names grant `{}`, which is not stored",
                                String::from_utf8_lossy(&grant_id)
                            ),
                        )
                    })
            })
            .collect()
    }
}

fn index_grant(txn: &mut Txn<'_>, grant: &ActiveGrant) -> Result<(), ProjectorError> {
    txn.put_value(by_principal_key(grant), &terms(grant));
    txn.put(by_resource_key(grant), Vec::new());
    for action in &grant.actions {
        let access_key = access_key(&grant.principal.id, &grant.resource, action);
        let count: u32 = txn.get_value(&access_key)?.unwrap_or(0);
        txn.put_value(access_key, &(count + 1));
    }
    Ok(())
}

/// Lists a request just decided (allowed, or approved) as waiting for its
/// scheduled start, when it asked for one. A start already come is issued
/// in the same input, and its GrantIssued removes it again.
fn schedule(
    txn: &mut Txn<'_>,
    request_id: &RequestId,
    open: &OpenRequest,
    approved: bool,
    sequence: u64,
) -> Result<(), ProjectorError> {
    if let Some(starts_at) = txn.get_value::<Timestamp>(&start_key(request_id))? {
        txn.put_value(
            scheduled_key(starts_at, request_id),
            &ScheduledStart {
                request_id: request_id.clone(),
                principal: open.principal.clone(),
                entitlement: open.entitlement.clone(),
                resource: open.resource.clone(),
                starts_at,
                approved,
                decided_sequence: sequence,
            },
        );
    }
    Ok(())
}

/// Forgets a request's scheduled start: it was granted or closed.
fn unschedule(txn: &mut Txn<'_>, request_id: &RequestId) -> Result<(), ProjectorError> {
    if let Some(starts_at) = txn.get_value::<Timestamp>(&start_key(request_id))? {
        txn.delete(scheduled_key(starts_at, request_id));
        txn.delete(start_key(request_id));
    }
    Ok(())
}

fn start_key(request_id: &RequestId) -> Vec<u8> {
    key(TABLE_START, &[request_id.as_str().as_bytes()])
}

fn scheduled_key(starts_at: Timestamp, request_id: &RequestId) -> Vec<u8> {
    let mut out = vec![TABLE_SCHEDULED];
    out.extend_from_slice(&crate::store::time_part(starts_at.0));
    out.extend_from_slice(request_id.as_str().as_bytes());
    out
}

fn terms(grant: &ActiveGrant) -> GrantTerms {
    GrantTerms {
        issued_at: grant.issued_at,
        expires_at: grant.expires_at,
        actions: grant.actions.clone(),
    }
}

fn load_grant(
    txn: &Txn<'_>,
    grant_id: &GrantId,
    what: &str,
) -> Result<ActiveGrant, ProjectorError> {
    txn.get_value(&grant_key(grant_id))?.ok_or_else(|| {
        ProjectorError::new(
            ProjectorErrorKind::Inconsistent,
            format!("{what} of grant `{grant_id}`, which is not issued and unrevoked"),
        )
    })
}

fn request_unknown(request_id: &RequestId, what: &str) -> ProjectorError {
    ProjectorError::new(
        ProjectorErrorKind::Inconsistent,
        format!("{what} of request `{request_id}`, which is not open"),
    )
}

fn grant_key(grant_id: &GrantId) -> Vec<u8> {
    key_for_grant_id(grant_id.as_str().as_bytes())
}

fn key_for_grant_id(grant_id: &[u8]) -> Vec<u8> {
    key(TABLE_GRANT, &[grant_id])
}

fn by_principal_key(grant: &ActiveGrant) -> Vec<u8> {
    key(
        TABLE_BY_PRINCIPAL,
        &[
            grant.principal.id.as_str().as_bytes(),
            grant.resource.as_str().as_bytes(),
            grant.grant_id.as_str().as_bytes(),
        ],
    )
}

fn by_resource_key(grant: &ActiveGrant) -> Vec<u8> {
    key(
        TABLE_BY_RESOURCE,
        &[
            grant.resource.as_str().as_bytes(),
            grant.principal.id.as_str().as_bytes(),
            grant.grant_id.as_str().as_bytes(),
        ],
    )
}

fn access_key(principal: &PrincipalId, resource: &ResourceId, action: &str) -> Vec<u8> {
    key(
        TABLE_ACCESS,
        &[
            principal.as_str().as_bytes(),
            resource.as_str().as_bytes(),
            action.as_bytes(),
        ],
    )
}

fn pending_key(sequence: u64) -> Vec<u8> {
    let mut out = vec![TABLE_PENDING];
    out.extend_from_slice(&sequence.to_be_bytes());
    out
}

fn last_part(key: &[u8]) -> Vec<u8> {
    split_parts(key)
        .last()
        .map(|part| part.to_vec())
        .unwrap_or_default()
}
