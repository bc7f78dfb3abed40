//! The state the log folds to, and the questions it answers.
//!
//! Every request ever seen stays in the state (one decision per request id,
//! ever), and every grant ever issued stays too (so [`State::check`] can
//! answer for past times), but in compact form: once a request is closed
//! only its status is kept, and a grant keeps interned names rather than
//! copies. Principal, resource, entitlement, action and group names are
//! interned (`Arc<str>`), because a few thousand of them recur across
//! millions of requests.
//!
//! Requests live in a slab in arrival order, and every index refers to a
//! request by its slot (`u32`), so indices are small and compare as
//! integers; a hash index finds a request's slot from its id. Arrival order
//! is the log's order, so two replays of one log build the same slab and
//! the same digest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use grantledger_events::{
    EntitlementId, GrantId, Principal, PrincipalId, PrincipalKind, RequestId, ResourceId,
    ReviewVerdict, RevocationReason, Timestamp,
};
use serde::Serialize;

use crate::catalog::{Catalog, TTL_S_CEILING};

/// The grant state: every request, decision, approval and grant the log
/// holds, and indices over them. Build it with [`State::default`] and fold
/// events into it with [`apply`](crate::apply).
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) catalog: Option<Arc<Catalog>>,
    /// The policy set in force, as published; its hash is in the core.
    pub(crate) policy: Option<Arc<grantledger_events::PolicyPublished>>,
    // Not part of the digest: the interner only saves memory, and the index
    // only finds slots; both are functions of what the core holds. Both are
    // B-trees, not hash tables: a hash table rehashes every entry at once
    // when it grows, which pauses the batch being decided for a time that
    // grows with the ledger (as [`Slab`] explains for the requests).
    names: Interner,
    index: BTreeMap<Name, Slot>,
    pub(crate) core: Core,
}

/// Where a request is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RequestStatus {
    /// Recorded, not yet decided.
    Submitted,
    /// Allowed by policy, grant not yet issued.
    Allowed,
    /// Waiting for approvers.
    Pending,
    /// Approved by enough approvers, grant not yet issued.
    Approved,
    /// Break-glass invoked, grant not yet issued.
    BreakGlass,
    /// Denied by policy; final.
    Denied,
    /// Refused by an approver; final.
    Refused,
    /// Its grant was issued (it may since have ended).
    Granted,
    /// Lapsed without a grant (`RequestExpired`): it waited for approvers
    /// past its request TTL, or its scheduled start could not be honoured.
    Expired,
    /// Withdrawn by its requester (or the requester's owner) before it was
    /// granted (`RequestWithdrawn`).
    Withdrawn,
}

impl RequestStatus {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            RequestStatus::Submitted => "submitted",
            RequestStatus::Allowed => "allowed",
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::BreakGlass => "break_glass",
            RequestStatus::Denied => "denied",
            RequestStatus::Refused => "refused",
            RequestStatus::Granted => "granted",
            RequestStatus::Expired => "expired",
            RequestStatus::Withdrawn => "withdrawn",
        }
    }
}

/// A grant, as the queries return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantView {
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
    /// When it ends (after any extension).
    pub expires_at: Timestamp,
    /// The latest any extension may take it to.
    pub expires_at_cap: Timestamp,
    /// Issued by break-glass.
    pub break_glass: bool,
    /// Issued after human approval.
    pub approved: bool,
    /// How it ended, if it has.
    pub revocation: Option<RevocationView>,
    /// The review of a break-glass grant, once recorded.
    pub review: Option<ReviewVerdict>,
}

impl GrantView {
    /// True when the grant gives access at `at`: issued at or before `at`,
    /// not revoked at `at`, and `at < expires_at`.
    pub fn is_active_at(&self, at: Timestamp) -> bool {
        self.issued_at <= at
            && at < self.expires_at
            && self
                .revocation
                .as_ref()
                .is_none_or(|revocation| at < revocation.at)
    }
}

/// How a grant ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationView {
    /// When the revocation was recorded.
    pub at: Timestamp,
    /// Why.
    pub reason: RevocationReason,
    /// Whether a revocation worker confirmed the removal.
    pub confirmed: bool,
    /// How many failures workers reported.
    pub failed_attempts: u32,
}

/// A revoked or expired grant whose removal is not yet confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationDebt {
    /// The grant.
    pub grant_id: GrantId,
    /// Who held it.
    pub principal: PrincipalId,
    /// On what.
    pub resource: ResourceId,
    /// Why it ended.
    pub reason: RevocationReason,
    /// When it was revoked.
    pub revoked_at: Timestamp,
    /// How many failures workers reported.
    pub failed_attempts: u32,
}

/// A request waiting for approvers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    /// The request.
    pub request_id: RequestId,
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

/// A decided request waiting for its scheduled start: allowed (by policy, or
/// by enough approvers), its grant not issued before `starts_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledRequest {
    /// The request.
    pub request_id: RequestId,
    /// Who asks.
    pub principal: Principal,
    /// Which entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// When the grant is to be issued.
    pub starts_at: Timestamp,
    /// When it will expire: `starts_at` plus the decided TTL.
    pub expires_at: Timestamp,
    /// Approved by people (rather than allowed by policy alone).
    pub approved: bool,
}

/// Running totals, for dashboards and the simulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Catalogs published.
    pub catalogs_published: u64,
    /// Requests recorded (submitted or break-glass).
    pub requests: u64,
    /// Decisions that allowed at once.
    pub decisions_allowed: u64,
    /// Decisions that asked for approvers.
    pub decisions_needing_approval: u64,
    /// Decisions that denied.
    pub decisions_denied: u64,
    /// Approvals recorded.
    pub approvals: u64,
    /// Requests refused by an approver.
    pub approver_refusals: u64,
    /// Requests waiting for approvers now.
    pub pending: u64,
    /// Grants issued.
    pub grants_issued: u64,
    /// Grants issued and not revoked (some may be past `expires_at`, not yet
    /// recorded as expired).
    pub grants_unrevoked: u64,
    /// Extensions recorded.
    pub extensions: u64,
    /// Revocations recorded, of any reason.
    pub revocations: u64,
    /// Revocations confirmed by a worker.
    pub revocations_confirmed: u64,
    /// Revocation failures reported.
    pub revocation_failures: u64,
    /// Revoked grants not yet confirmed.
    pub revocation_debt: u64,
    /// Break-glass invocations.
    pub break_glass: u64,
    /// Break-glass reviews recorded.
    pub reviews: u64,
    /// Principals offboarded.
    pub principals_offboarded: u64,
    /// Identity refusals recorded (one per request id at most).
    pub identity_refusals: u64,
    /// Decided requests waiting for their scheduled start now.
    pub scheduled: u64,
    /// Requests that lapsed without a grant (`RequestExpired`).
    pub requests_expired: u64,
    /// Requests withdrawn by their requester before a grant
    /// (`RequestWithdrawn`).
    pub requests_withdrawn: u64,
}

impl State {
    /// The catalog in force, if one was published.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_deref()
    }

    /// The hash of the catalog in force.
    pub fn catalog_hash(&self) -> Option<&str> {
        self.core.catalog_hash.as_deref()
    }

    /// The policy set in force, as published, once one was: from then on
    /// the policy engine decides requests.
    pub fn policy(&self) -> Option<&grantledger_events::PolicyPublished> {
        self.policy.as_deref()
    }

    /// The hash of the policy set in force.
    pub fn policy_hash(&self) -> Option<&str> {
        self.core.policy_hash.as_deref()
    }

    /// The ledger time of the last applied event.
    pub fn time_last(&self) -> Option<Timestamp> {
        self.core.time_last
    }

    /// When `principal` was offboarded, if it was.
    pub fn offboarded_at(&self, principal: &PrincipalId) -> Option<Timestamp> {
        self.core.offboarded.get(principal.as_str()).copied()
    }

    /// The owner `principal` names and when it was offboarded, if it names
    /// one and that owner was offboarded: such a principal may ask for
    /// nothing (`owner_offboarded`).
    pub fn offboarded_owner<'p>(
        &self,
        principal: &'p Principal,
    ) -> Option<(&'p PrincipalId, Timestamp)> {
        let owner = principal.owner.as_ref()?;
        Some((owner, self.offboarded_at(owner)?))
    }

    /// The recorded identity refusal of `request_id`, if one was recorded:
    /// its reason code and detail.
    pub fn identity_refusal(&self, request_id: &RequestId) -> Option<(&str, &str)> {
        self.core
            .identity_refusals
            .get(request_id.as_str())
            .map(|refusal| (refusal.reason.as_str(), refusal.detail.as_str()))
    }

    /// May `principal` do `action` on `resource` at `at`? True iff some
    /// grant gives it that was issued at or before `at`, was not revoked at
    /// `at`, and has `at < expires_at` — so false at `expires_at` exactly and
    /// after, whether or not the expiry has been recorded yet.
    pub fn check(
        &self,
        principal: &PrincipalId,
        action: &str,
        resource: &ResourceId,
        at: Timestamp,
    ) -> bool {
        // Fast path for "now": at or after the last event, a revoked grant
        // gives nothing, so without an unrevoked grant the answer is no.
        if self.core.time_last.is_some_and(|last| at >= last)
            && self.access_count(principal, resource, action) == 0
        {
            return false;
        }
        let Some(grants) = self
            .core
            .history
            .get(principal.as_str())
            .and_then(|by_resource| by_resource.get(resource.as_str()))
        else {
            return false;
        };
        // INVARIANT: history is in log order and a grant is issued at its
        // record's time, which never goes back, so `issued_at` never
        // decreases along it; and no grant outlives its issue by more than
        // the catalog ceiling. Scanning newest first, the scan can stop at
        // the first grant too old to be active at `at`.
        let horizon_ms = TTL_S_CEILING * 1000;
        for &slot in grants.iter().rev() {
            let Some(grant) = self.grant_at(slot) else {
                continue;
            };
            if grant.issued_at > at {
                continue;
            }
            if grant.issued_at.plus_ms(horizon_ms) <= at {
                break;
            }
            if grant.gives(action, at) {
                return true;
            }
        }
        false
    }

    /// How many unrevoked grants give `principal` the right to do `action`
    /// on `resource`. Overlapping grants each count, so revoking one leaves
    /// the access another still gives. This count is by record; whether a
    /// grant is past `expires_at` is [`State::check`]'s business.
    pub fn access_count(
        &self,
        principal: &PrincipalId,
        resource: &ResourceId,
        action: &str,
    ) -> u32 {
        self.core
            .access
            .get(principal.as_str())
            .and_then(|by_resource| by_resource.get(resource.as_str()))
            .and_then(|by_action| by_action.get(action))
            .copied()
            .unwrap_or(0)
    }

    /// Every `(principal, resource, action, count)` with a non-zero count
    /// of unrevoked grants, in order.
    pub fn effective_access(&self) -> impl Iterator<Item = (&str, &str, &str, u32)> {
        self.core
            .access
            .iter()
            .flat_map(|(principal, by_resource)| {
                by_resource.iter().flat_map(move |(resource, by_action)| {
                    by_action.iter().map(move |(action, count)| {
                        (
                            principal.as_ref(),
                            resource.as_ref(),
                            action.as_ref(),
                            *count,
                        )
                    })
                })
            })
    }

    /// Where a request is, if it was ever recorded.
    pub fn request_status(&self, request_id: &RequestId) -> Option<RequestStatus> {
        let slot = self.slot(request_id.as_str())?;
        Some(self.request_at(slot).stage.status())
    }

    /// One grant, if it was ever issued.
    pub fn grant(&self, grant_id: &GrantId) -> Option<GrantView> {
        self.grant_view(self.grant_slot(grant_id)?)
    }

    /// Every grant ever issued, in the order their requests were recorded.
    pub fn grants(&self) -> impl Iterator<Item = GrantView> + '_ {
        (0..self.core.requests.len() as Slot).filter_map(|slot| self.grant_view(slot))
    }

    /// The grants `principal` holds at `at`: issued, not revoked, and
    /// `at < expires_at`, in the order their requests were recorded.
    pub fn live_grants(&self, principal: &PrincipalId, at: Timestamp) -> Vec<GrantView> {
        self.core
            .unrevoked_by_principal
            .get(principal.as_str())
            .into_iter()
            .flatten()
            .filter_map(|&slot| self.grant_view(slot))
            .filter(|grant| grant.is_active_at(at))
            .collect()
    }

    /// Unrevoked grants whose `expires_at` is at or before `now`, earliest
    /// first, at most `limit`: the expiries the timer must record.
    pub fn due_expiries(&self, now: Timestamp, limit: usize) -> Vec<GrantId> {
        self.core
            .expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .take(limit)
            .map(|&(_, slot)| self.grant_id_at(slot))
            .collect()
    }

    /// The earliest `expires_at` of any unrevoked grant: when the expiry
    /// timer must next wake.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.core.expiry.first().map(|(expires_at, _)| *expires_at)
    }

    /// Decided requests whose scheduled start is at or before `now`,
    /// earliest first, at most `limit`: the starts the timer must send.
    pub fn due_starts(&self, now: Timestamp, limit: usize) -> Vec<RequestId> {
        self.core
            .starts
            .iter()
            .take_while(|(starts_at, _)| *starts_at <= now)
            .take(limit)
            .map(|&(_, slot)| request_id(&self.request_at(slot).id))
            .collect()
    }

    /// Requests waiting for approvers whose request TTL ends at or before
    /// `now`, earliest first, at most `limit`: the request expiries the
    /// timer must send.
    pub fn due_request_expiries(&self, now: Timestamp, limit: usize) -> Vec<RequestId> {
        self.core
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .take(limit)
            .map(|&(_, slot)| request_id(&self.request_at(slot).id))
            .collect()
    }

    /// Decided requests waiting for their scheduled start, earliest start
    /// first, at most `limit`.
    pub fn scheduled_requests(&self, limit: usize) -> Vec<ScheduledRequest> {
        self.core
            .starts
            .iter()
            .take(limit)
            .filter_map(|&(_, slot)| self.scheduled_view(slot))
            .collect()
    }

    /// One decided request waiting for its scheduled start.
    pub fn scheduled_request(&self, request_id: &RequestId) -> Option<ScheduledRequest> {
        self.scheduled_view(self.slot(request_id.as_str())?)
    }

    /// Revoked or expired grants whose removal no worker has confirmed,
    /// oldest revocation first, at most `limit`.
    pub fn revocation_debt(&self, limit: usize) -> Vec<RevocationDebt> {
        self.core
            .debt
            .iter()
            .take(limit)
            .filter_map(|&(_, slot)| {
                let request = self.request_at(slot);
                let Stage::Granted(grant) = &request.stage else {
                    return None;
                };
                let revocation = grant.revocation.as_ref()?;
                Some(RevocationDebt {
                    grant_id: self.grant_id_at(slot),
                    principal: principal_id(&request.holder.id),
                    resource: resource_id(&grant.resource),
                    reason: revocation.reason,
                    revoked_at: revocation.at,
                    failed_attempts: revocation.failed_attempts,
                })
            })
            .collect()
    }

    /// Requests waiting for approvers, oldest first, at most `limit`.
    pub fn pending_requests(&self, limit: usize) -> Vec<PendingRequest> {
        self.core
            .pending
            .iter()
            .take(limit)
            .filter_map(|&slot| self.pending_view(slot))
            .collect()
    }

    /// One request waiting for approvers.
    pub fn pending_request(&self, request_id: &RequestId) -> Option<PendingRequest> {
        self.pending_view(self.slot(request_id.as_str())?)
    }

    /// Break-glass grants that owe a review, oldest first, at most `limit`.
    pub fn reviews_owed(&self, limit: usize) -> Vec<GrantId> {
        self.core
            .reviews_owed
            .iter()
            .take(limit)
            .map(|&slot| self.grant_id_at(slot))
            .collect()
    }

    /// Running totals.
    pub fn counts(&self) -> Counts {
        self.core.counts
    }

    /// blake3 over the canonical encoding (bincode, standard config) of the
    /// whole state: the slab in log order and every other map a `BTreeMap`,
    /// so two replays of the same log give bit-identical digests. The
    /// interner and the id index are left out: they are functions of the
    /// rest.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"grantledger-core/state/v1\0");
        {
            let mut writer = std::io::BufWriter::with_capacity(64 * 1024, &mut hasher);
            // INVARIANT: the core holds only strings, integers, enums and
            // ordered maps, which bincode always encodes; writing to a hasher
            // cannot fail.
            bincode::serde::encode_into_std_write(
                &self.core,
                &mut writer,
                bincode::config::standard(),
            )
            .expect("the state encodes");
            writer.flush().expect("hashing cannot fail");
        }
        *hasher.finalize().as_bytes()
    }

    pub(crate) fn intern(&mut self, name: &str) -> Name {
        self.names.intern(name)
    }

    /// The slot of the request with this id.
    pub(crate) fn slot(&self, request_id: &str) -> Option<Slot> {
        self.index.get(request_id).copied()
    }

    /// The slot of `request_id`, or `request_unknown` naming it.
    pub(crate) fn known_slot(&self, request_id: &RequestId) -> Result<Slot, crate::Rejection> {
        self.slot(request_id.as_str())
            .ok_or_else(|| crate::Rejection::RequestUnknown { request_id: request_id.clone() })
    }

    /// The slot of the request a grant id was derived from.
    pub(crate) fn grant_slot(&self, grant_id: &GrantId) -> Option<Slot> {
        self.slot(grant_id.as_str().strip_prefix(GRANT_ID_PREFIX)?)
    }

    pub(crate) fn request_at(&self, slot: Slot) -> &Request {
        &self.core.requests[slot as usize]
    }

    pub(crate) fn request_at_mut(&mut self, slot: Slot) -> &mut Request {
        &mut self.core.requests[slot as usize]
    }

    /// Records a new request in the next slot.
    pub(crate) fn push_request(&mut self, id: &str, holder: Holder, stage: Stage) -> Slot {
        // INVARIANT: callers checked that the id is new.
        assert!(
            !self.index.contains_key(id),
            "request `{id}` is already recorded"
        );
        let slot = Slot::try_from(self.core.requests.len())
            .expect("a partition holds fewer than 2^32 requests");
        let id: Name = Arc::from(id);
        self.index.insert(Arc::clone(&id), slot);
        self.core.requests.push(Request { id, holder, stage });
        slot
    }

    /// The requests of `principal` that could still become grants: those
    /// waiting for approvers, and those waiting for their scheduled start
    /// (allowed, or approved, their grant not yet issued), in the order
    /// they were recorded. What a risk signal closes.
    pub(crate) fn open_slots_of(&self, principal: &str) -> BTreeSet<Slot> {
        self.core
            .starts
            .iter()
            .map(|&(_, slot)| slot)
            .chain(self.core.pending.iter().copied())
            .filter(|&slot| *self.request_at(slot).holder.id == *principal)
            .collect()
    }

    pub(crate) fn grant_at(&self, slot: Slot) -> Option<&Grant> {
        match &self.request_at(slot).stage {
            Stage::Granted(grant) => Some(grant),
            _ => None,
        }
    }

    pub(crate) fn grant_at_mut(&mut self, slot: Slot) -> Option<&mut Grant> {
        match &mut self.request_at_mut(slot).stage {
            Stage::Granted(grant) => Some(grant),
            _ => None,
        }
    }

    pub(crate) fn request_id_at(&self, slot: Slot) -> RequestId {
        request_id(&self.request_at(slot).id)
    }

    pub(crate) fn grant_id_at(&self, slot: Slot) -> GrantId {
        GrantId::for_request(&request_id(&self.request_at(slot).id))
    }

    fn grant_view(&self, slot: Slot) -> Option<GrantView> {
        let request = self.request_at(slot);
        let Stage::Granted(grant) = &request.stage else {
            return None;
        };
        Some(GrantView {
            grant_id: self.grant_id_at(slot),
            request_id: request_id(&request.id),
            principal: request.holder.to_principal(),
            entitlement: EntitlementId::new(grant.entitlement.as_ref())
                .expect("stored ids are valid"),
            resource: resource_id(&grant.resource),
            actions: grant
                .actions
                .iter()
                .map(|action| action.to_string())
                .collect(),
            issued_at: grant.issued_at,
            expires_at: grant.expires_at,
            expires_at_cap: grant.expires_at_cap,
            break_glass: grant.break_glass,
            approved: grant.approved,
            revocation: grant.revocation.as_ref().map(|revocation| RevocationView {
                at: revocation.at,
                reason: revocation.reason,
                confirmed: revocation.confirmed,
                failed_attempts: revocation.failed_attempts,
            }),
            review: grant.review,
        })
    }

    fn scheduled_view(&self, slot: Slot) -> Option<ScheduledRequest> {
        let request = self.request_at(slot);
        let (Stage::Allowed { asked, terms } | Stage::Approved { asked, terms }) = &request.stage
        else {
            return None;
        };
        let starts_at = terms.start?;
        Some(ScheduledRequest {
            request_id: request_id(&request.id),
            principal: request.holder.to_principal(),
            entitlement: EntitlementId::new(asked.entitlement.as_ref())
                .expect("stored ids are valid"),
            resource: resource_id(&asked.resource),
            starts_at,
            expires_at: starts_at.plus_ms(terms.ttl_ms),
            approved: terms.approved,
        })
    }

    fn pending_view(&self, slot: Slot) -> Option<PendingRequest> {
        let request = self.request_at(slot);
        let Stage::Pending { asked, approval } = &request.stage else {
            return None;
        };
        Some(PendingRequest {
            request_id: request_id(&request.id),
            principal: request.holder.to_principal(),
            entitlement: EntitlementId::new(asked.entitlement.as_ref())
                .expect("stored ids are valid"),
            resource: resource_id(&asked.resource),
            approvers_required: approval.approvers_required,
            group: approval.group.to_string(),
            approvals: approval
                .approvals
                .iter()
                .map(|approver| principal_id(approver))
                .collect(),
        })
    }
}

/// A request's position in the slab.
pub(crate) type Slot = u32;

/// The prefix [`GrantId::for_request`] puts before a request id.
// INVARIANT: checked against the events crate by a unit test below.
const GRANT_ID_PREFIX: &str = "grant:";

/// An interned name: principals, resources, entitlements, actions, groups.
/// Request ids are `Name`s too, shared by the slab and the index, but never
/// interned (they are unique).
pub(crate) type Name = Arc<str>;

#[derive(Clone, Debug, Default)]
struct Interner {
    names: BTreeSet<Name>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> Name {
        if let Some(existing) = self.names.get(name) {
            return existing.clone();
        }
        let name: Name = Arc::from(name);
        self.names.insert(name.clone());
        name
    }
}

/// Everything the digest covers. Field order is part of the digest.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Core {
    pub(crate) catalog_hash: Option<String>,
    /// The hash of the policy set in force, once one was published.
    pub(crate) policy_hash: Option<String>,
    pub(crate) time_last: Option<Timestamp>,
    /// Every request ever recorded, in log order: the slab.
    pub(crate) requests: Slab<Request>,
    /// Requests waiting for approvers.
    pub(crate) pending: BTreeSet<Slot>,
    /// Unrevoked grants by `(expires_at, slot)`.
    pub(crate) expiry: BTreeSet<(Timestamp, Slot)>,
    /// Revoked, unconfirmed grants by `(revoked_at, slot)`.
    pub(crate) debt: BTreeSet<(Timestamp, Slot)>,
    /// Break-glass grants without a review.
    pub(crate) reviews_owed: BTreeSet<Slot>,
    /// Unrevoked grants by holder.
    pub(crate) unrevoked_by_principal: BTreeMap<Name, BTreeSet<Slot>>,
    /// Unrevoked grants by their holder's owner (grants of workloads and
    /// agents, by the person accountable for them): what an owner's
    /// offboarding revokes with the owner's own.
    pub(crate) unrevoked_by_owner: BTreeMap<Name, BTreeSet<Slot>>,
    /// Every grant ever issued, by holder and resource, for `check`.
    pub(crate) history: BTreeMap<Name, BTreeMap<Name, Vec<Slot>>>,
    /// Unrevoked grant counts by holder, resource and action.
    // INVARIANT: no zero counts are stored, and every count equals the
    // number of unrevoked grants giving that access.
    pub(crate) access: BTreeMap<Name, BTreeMap<Name, BTreeMap<Name, u32>>>,
    pub(crate) counts: Counts,
    /// Offboarded principals and when.
    pub(crate) offboarded: BTreeMap<Name, Timestamp>,
    /// Recorded identity refusals by request id (request ids are not
    /// interned: they are unique).
    pub(crate) identity_refusals: BTreeMap<Name, IdentityRefusal>,
    /// Decided requests waiting for their scheduled start, by
    /// `(starts_at, slot)`.
    pub(crate) starts: BTreeSet<(Timestamp, Slot)>,
    /// Requests waiting for approvers with a request TTL, by
    /// `(deadline, slot)`.
    pub(crate) deadlines: BTreeSet<(Timestamp, Slot)>,
}

/// Every request in log order, indexed by slot, in fixed-size chunks: a
/// growing `Vec` would copy all of them each time it doubles (a pause that
/// grows with the ledger: tens of milliseconds at 2^17 requests, seconds at
/// millions, while the batch being decided and every input behind it
/// wait). Encodes as the `Vec` it replaces, so the digest is unchanged.
#[derive(Clone, Debug)]
pub(crate) struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { chunks: Vec::new(), len: 0 }
    }
}

/// Requests per chunk of the [`Slab`].
const SLAB_CHUNK: usize = 4096;

impl<T> Slab<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, item: T) {
        if self.len % SLAB_CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(SLAB_CHUNK));
        }
        self.chunks.last_mut().expect("a chunk with room").push(item);
        self.len += 1;
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for Slab<T> {
    type Output = T;

    fn index(&self, slot: usize) -> &T {
        &self.chunks[slot / SLAB_CHUNK][slot % SLAB_CHUNK]
    }
}

impl<T> std::ops::IndexMut<usize> for Slab<T> {
    fn index_mut(&mut self, slot: usize) -> &mut T {
        &mut self.chunks[slot / SLAB_CHUNK][slot % SLAB_CHUNK]
    }
}

impl<T: Serialize> Serialize for Slab<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length first, as a `Vec` gives it (bincode needs it).
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for item in self.iter() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// A recorded identity refusal, what a later failing submission of the same
/// request id gets back.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct IdentityRefusal {
    pub(crate) reason: String,
    pub(crate) detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Request {
    pub(crate) id: Name,
    pub(crate) holder: Holder,
    pub(crate) stage: Stage,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Holder {
    pub(crate) id: Name,
    pub(crate) kind: PrincipalKind,
    pub(crate) owner: Option<Name>,
}

impl Holder {
    pub(crate) fn to_principal(&self) -> Principal {
        Principal {
            id: principal_id(&self.id),
            kind: self.kind,
            owner: self.owner.as_deref().map(principal_id),
        }
    }

    /// The requester and, for a principal with an owner, the owner: the
    /// people who may neither approve nor review this principal's access.
    pub(crate) fn is_self_or_owner(&self, who: &str) -> bool {
        *self.id == *who || self.owner.as_deref() == Some(who)
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) enum Stage {
    Submitted(Box<Asked>),
    Allowed {
        asked: Box<Asked>,
        terms: Terms,
    },
    Pending {
        asked: Box<Asked>,
        approval: Box<Approval>,
    },
    Approved {
        asked: Box<Asked>,
        terms: Terms,
    },
    BreakGlass {
        asked: Box<Asked>,
        terms: Terms,
    },
    Denied,
    Refused,
    Granted(Box<Grant>),
    /// Lapsed without a grant; the request's details are dropped.
    Expired,
    /// Withdrawn by its requester before a grant; the details are dropped.
    Withdrawn,
}

impl Stage {
    /// Decided and not yet granted nor closed: waiting for approvers, or
    /// allowed or approved and waiting for its scheduled start. A risk
    /// signal closes such a request, and its requester may withdraw it.
    pub(crate) fn is_open(&self) -> bool {
        match self {
            Stage::Pending { .. } => true,
            Stage::Allowed { terms, .. } | Stage::Approved { terms, .. } => terms.start.is_some(),
            _ => false,
        }
    }

    pub(crate) fn status(&self) -> RequestStatus {
        match self {
            Stage::Submitted(_) => RequestStatus::Submitted,
            Stage::Allowed { .. } => RequestStatus::Allowed,
            Stage::Pending { .. } => RequestStatus::Pending,
            Stage::Approved { .. } => RequestStatus::Approved,
            Stage::BreakGlass { .. } => RequestStatus::BreakGlass,
            Stage::Denied => RequestStatus::Denied,
            Stage::Refused => RequestStatus::Refused,
            Stage::Granted(_) => RequestStatus::Granted,
            Stage::Expired => RequestStatus::Expired,
            Stage::Withdrawn => RequestStatus::Withdrawn,
        }
    }
}

/// What a request asked for, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Asked {
    pub(crate) entitlement: Name,
    pub(crate) resource: Name,
    /// Sorted and distinct.
    pub(crate) actions: Box<[Name]>,
    pub(crate) ttl_requested_ms: Option<i64>,
    /// The scheduled start asked for, if any.
    pub(crate) starts_at: Option<Timestamp>,
    pub(crate) ticket_present: bool,
    pub(crate) justification_present: bool,
}

/// The terms a grant will be issued on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Terms {
    /// `expires_at - issued_at` (`- start`, for a scheduled start).
    pub(crate) ttl_ms: i64,
    /// `expires_at_cap - issued_at` (`- start`, for a scheduled start).
    pub(crate) ttl_cap_ms: i64,
    pub(crate) break_glass: bool,
    pub(crate) approved: bool,
    /// The scheduled start, when it was still to come at the decision: the
    /// grant is issued at or after it (by the start timer, or by approvals
    /// completing late) and before its window (start plus TTL) ends, and
    /// `expires_at` and the cap count from it rather than from the issue.
    /// `None` for a request without a start to come.
    pub(crate) start: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Approval {
    pub(crate) approvers_required: u32,
    pub(crate) group: Name,
    /// Distinct approvers so far, in order.
    pub(crate) approvals: Vec<Name>,
    pub(crate) terms: Terms,
    /// The decision's time plus the entry's `request_ttl_s`, when it has one:
    /// from then on approvals are refused.
    pub(crate) expires_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Grant {
    pub(crate) entitlement: Name,
    pub(crate) resource: Name,
    /// Sorted and distinct.
    pub(crate) actions: Box<[Name]>,
    pub(crate) issued_at: Timestamp,
    pub(crate) expires_at: Timestamp,
    pub(crate) expires_at_cap: Timestamp,
    pub(crate) break_glass: bool,
    pub(crate) approved: bool,
    pub(crate) revocation: Option<Revocation>,
    pub(crate) review: Option<ReviewVerdict>,
}

impl Grant {
    pub(crate) fn gives(&self, action: &str, at: Timestamp) -> bool {
        self.is_active_at(at)
            && self
                .actions
                .binary_search_by(|held| held.as_ref().cmp(action))
                .is_ok()
    }

    pub(crate) fn is_active_at(&self, at: Timestamp) -> bool {
        self.issued_at <= at
            && at < self.expires_at
            && self
                .revocation
                .as_ref()
                .is_none_or(|revocation| at < revocation.at)
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Revocation {
    pub(crate) at: Timestamp,
    pub(crate) reason: RevocationReason,
    pub(crate) confirmed: bool,
    pub(crate) failed_attempts: u32,
}

// INVARIANT: every name stored in the state came from a typed id that was
// valid when its event was applied, so converting back cannot fail.
pub(crate) fn principal_id(name: &str) -> PrincipalId {
    PrincipalId::new(name).expect("stored ids are valid")
}

fn resource_id(name: &str) -> ResourceId {
    ResourceId::new(name).expect("stored ids are valid")
}

fn request_id(name: &str) -> RequestId {
    RequestId::new(name).expect("stored ids are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_ids_are_the_prefix_and_the_request_id() {
        let request = RequestId::new("req-1").unwrap();
        let grant = GrantId::for_request(&request);
        assert_eq!(grant.as_str().strip_prefix(GRANT_ID_PREFIX), Some("req-1"));
    }

    #[test]
    fn the_slab_indexes_across_chunks_and_encodes_as_the_vec_it_replaces() {
        let n = 2 * SLAB_CHUNK + 5;
        let mut slab = Slab::default();
        let mut vec = Vec::new();
        for i in 0..n {
            slab.push(format!("r-{i}"));
            vec.push(format!("r-{i}"));
        }
        assert_eq!(slab.len(), n);
        assert_eq!(slab.chunks.len(), 3, "chunks are filled, never grown");
        assert!(slab.chunks.iter().all(|chunk| chunk.capacity() == SLAB_CHUNK));
        for slot in [0, SLAB_CHUNK - 1, SLAB_CHUNK, 2 * SLAB_CHUNK, n - 1] {
            assert_eq!(slab[slot], vec[slot]);
        }
        slab[SLAB_CHUNK] = "changed".to_owned();
        vec[SLAB_CHUNK] = "changed".to_owned();
        assert!(slab.iter().eq(vec.iter()));
        let config = bincode::config::standard();
        assert_eq!(
            bincode::serde::encode_to_vec(&slab, config).unwrap(),
            bincode::serde::encode_to_vec(&vec, config).unwrap(),
            "the state digest does not change"
        );
    }
}
