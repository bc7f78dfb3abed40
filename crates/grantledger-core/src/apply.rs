//! `apply`: folds one committed event into the state, refusing events that
//! break a rule of the ledger. Every check runs before anything changes, so
//! a refused event leaves the state as it was.

use std::sync::Arc;

use grantledger_events::{
    ApprovalRecorded, ApprovalVerdict, BreakGlassInvoked, CatalogPublished, DecisionOutcome,
    DecisionRecorded, Event, EventKind, GrantExtended, GrantId, GrantIssued, GrantRevoked,
    IdentityRefused, Principal, PrincipalOffboarded, RequestExpired, RequestExpiryReason,
    RequestSubmitted, RequestWithdrawn, ReviewRecorded, RevocationReason, Timestamp,
};

use crate::catalog::Catalog;
use grantledger_events::{DecisionBasis, PolicyPublished, policy_hash};

use crate::policy::{
    BreakGlassInput, EngineDecisionInput, PolicyInput, check_break_glass, check_engine_decision,
    evaluate, is_present, normalize_actions,
};
use crate::decide::{Start, check_start_ahead};
use crate::rejection::{Reason, Rejection};
use crate::state::{
    Approval, Asked, Grant, Holder, IdentityRefusal, Name, Revocation, Slot, Stage, State, Terms,
};

/// Why an event cannot follow the state: which rule it breaks, on which
/// event, and the offending values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{}` event breaks `{}`: {detail}", event.name(), kind.code())]
pub struct ApplyError {
    kind: ApplyErrorKind,
    event: EventKind,
    detail: String,
}

impl ApplyError {
    /// The broken rule.
    pub fn kind(&self) -> ApplyErrorKind {
        self.kind
    }

    /// The kind of the refused event.
    pub fn event(&self) -> EventKind {
        self.event
    }

    /// The offending values.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// The closed set of rules an event can break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApplyErrorKind {
    /// The event's ledger time is before the previous event's.
    TimeWentBack,
    /// A published catalog does not parse or validate.
    CatalogInvalid,
    /// A published catalog's hash is not blake3 of its text.
    CatalogHashMismatch,
    /// A request or break-glass with no catalog in force.
    NoCatalogInForce,
    /// A request id recorded twice.
    RequestDuplicated,
    /// An event about a request that was never recorded.
    RequestUnknown,
    /// A second decision for one request id (or a decision for a request
    /// that is not waiting for one).
    DecisionDuplicated,
    /// A decision made under another catalog than the one in force.
    DecisionCatalogNotInForce,
    /// A decision the policy, re-run on the recorded request and catalog,
    /// does not give.
    DecisionContradictsPolicy,
    /// An approval for a request not waiting for approval.
    RequestNotPending,
    /// An approval by the requester (or a non-human requester's owner).
    SelfApproval,
    /// An approval by someone outside the approver group.
    ApproverNotInGroup,
    /// A second approval by the same approver.
    ApproverNotDistinct,
    /// An approval after the request expired (the entry's request TTL).
    ApprovalAfterRequestExpired,
    /// A grant with no decision that allowed it.
    GrantWithoutAllowingDecision,
    /// A grant before enough distinct approvals.
    GrantWithoutEnoughApprovals,
    /// A second grant for one request.
    GrantDuplicated,
    /// A grant id not derived from its request id.
    GrantIdNotDerived,
    /// A grant for another principal, entitlement, resource or actions than
    /// were asked for, or with the wrong break-glass flag.
    GrantDiffersFromRequest,
    /// A grant issued at another time than its record's ledger time.
    GrantNotIssuedAtRecordTime,
    /// A grant whose `expires_at` is past `issued_at` plus the entry's
    /// maximum TTL (or the break-glass cap).
    GrantTtlExceedsEntryMax,
    /// A grant whose TTL is not the one decided.
    GrantTtlDiffersFromDecision,
    /// A grant whose `expires_at_cap` is not `issued_at` plus the entry's
    /// maximum TTL (or the break-glass cap).
    GrantCapDiffersFromEntry,
    /// An event about a grant that was never issued.
    GrantUnknown,
    /// A revocation or extension of a grant that is revoked or past its
    /// `expires_at`.
    GrantNotActive,
    /// An expiry recorded before `expires_at`.
    ExpiredBeforeExpiresAt,
    /// An extension past the cap, not later, not from the expiry in force,
    /// by someone other than the holder, or of an approved grant.
    ExtensionNotAllowed,
    /// A revocation report for a grant that was not revoked.
    GrantNotRevoked,
    /// A revocation report after the confirmation.
    RevocationAlreadyConfirmed,
    /// A break-glass that breaks a break-glass rule.
    BreakGlassBreaksPolicy,
    /// A review of a grant that owes none, a second review, or a review by
    /// the holder.
    ReviewNotAllowed,
    /// A published policy set's hash is not `policy_hash` of its texts.
    PolicyHashMismatch,
    /// A decision made under another policy set than the one in force, a
    /// catalog-only decision while a policy set is in force, or a policy
    /// decision while none is.
    DecisionPolicyNotInForce,
    /// A second offboarding of one principal.
    PrincipalAlreadyOffboarded,
    /// A grant to, a break-glass by, or an approval of a request of a
    /// principal that was offboarded.
    PrincipalOffboarded,
    /// An identity refusal for a request id already refused or already
    /// recorded as a request.
    IdentityRefusalDuplicated,
    /// A request whose scheduled start is more than
    /// [`SCHEDULE_AHEAD_MAX_MS`](crate::SCHEDULE_AHEAD_MAX_MS) after its
    /// record.
    StartTooFarAhead,
    /// A scheduled request's grant issued before its start, or after its
    /// whole window (start plus TTL) passed.
    GrantOutsideSchedule,
    /// A request recorded as expired that was not due to: not waiting for
    /// approvers or for a start, before its deadline, or with another
    /// reason or deadline than the state gives.
    RequestExpiryNotAllowed,
    /// A grant to, a break-glass by, or an approval of a request of a
    /// principal whose owner (the person accountable for a workload or an
    /// agent) was offboarded.
    OwnerOffboarded,
    /// A withdrawal of a request that was not waiting for approvers or for
    /// its start, by someone other than the requester or its owner, or
    /// without a reason.
    WithdrawalNotAllowed,
}

impl ApplyErrorKind {
    /// Every kind.
    pub const ALL: [ApplyErrorKind; 41] = [
        ApplyErrorKind::TimeWentBack,
        ApplyErrorKind::CatalogInvalid,
        ApplyErrorKind::CatalogHashMismatch,
        ApplyErrorKind::NoCatalogInForce,
        ApplyErrorKind::RequestDuplicated,
        ApplyErrorKind::RequestUnknown,
        ApplyErrorKind::DecisionDuplicated,
        ApplyErrorKind::DecisionCatalogNotInForce,
        ApplyErrorKind::DecisionContradictsPolicy,
        ApplyErrorKind::RequestNotPending,
        ApplyErrorKind::SelfApproval,
        ApplyErrorKind::ApproverNotInGroup,
        ApplyErrorKind::ApproverNotDistinct,
        ApplyErrorKind::ApprovalAfterRequestExpired,
        ApplyErrorKind::GrantWithoutAllowingDecision,
        ApplyErrorKind::GrantWithoutEnoughApprovals,
        ApplyErrorKind::GrantDuplicated,
        ApplyErrorKind::GrantIdNotDerived,
        ApplyErrorKind::GrantDiffersFromRequest,
        ApplyErrorKind::GrantNotIssuedAtRecordTime,
        ApplyErrorKind::GrantTtlExceedsEntryMax,
        ApplyErrorKind::GrantTtlDiffersFromDecision,
        ApplyErrorKind::GrantCapDiffersFromEntry,
        ApplyErrorKind::GrantUnknown,
        ApplyErrorKind::GrantNotActive,
        ApplyErrorKind::ExpiredBeforeExpiresAt,
        ApplyErrorKind::ExtensionNotAllowed,
        ApplyErrorKind::GrantNotRevoked,
        ApplyErrorKind::RevocationAlreadyConfirmed,
        ApplyErrorKind::BreakGlassBreaksPolicy,
        ApplyErrorKind::ReviewNotAllowed,
        ApplyErrorKind::PolicyHashMismatch,
        ApplyErrorKind::DecisionPolicyNotInForce,
        ApplyErrorKind::PrincipalAlreadyOffboarded,
        ApplyErrorKind::PrincipalOffboarded,
        ApplyErrorKind::IdentityRefusalDuplicated,
        ApplyErrorKind::StartTooFarAhead,
        ApplyErrorKind::GrantOutsideSchedule,
        ApplyErrorKind::RequestExpiryNotAllowed,
        ApplyErrorKind::OwnerOffboarded,
        ApplyErrorKind::WithdrawalNotAllowed,
    ];

    /// A stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            ApplyErrorKind::TimeWentBack => "time_went_back",
            ApplyErrorKind::CatalogInvalid => "catalog_invalid",
            ApplyErrorKind::CatalogHashMismatch => "catalog_hash_mismatch",
            ApplyErrorKind::NoCatalogInForce => "no_catalog_in_force",
            ApplyErrorKind::RequestDuplicated => "request_duplicated",
            ApplyErrorKind::RequestUnknown => "request_unknown",
            ApplyErrorKind::DecisionDuplicated => "decision_duplicated",
            ApplyErrorKind::DecisionCatalogNotInForce => "decision_catalog_not_in_force",
            ApplyErrorKind::DecisionContradictsPolicy => "decision_contradicts_policy",
            ApplyErrorKind::RequestNotPending => "request_not_pending",
            ApplyErrorKind::SelfApproval => "self_approval",
            ApplyErrorKind::ApproverNotInGroup => "approver_not_in_group",
            ApplyErrorKind::ApproverNotDistinct => "approver_not_distinct",
            ApplyErrorKind::ApprovalAfterRequestExpired => "approval_after_request_expired",
            ApplyErrorKind::GrantWithoutAllowingDecision => "grant_without_allowing_decision",
            ApplyErrorKind::GrantWithoutEnoughApprovals => "grant_without_enough_approvals",
            ApplyErrorKind::GrantDuplicated => "grant_duplicated",
            ApplyErrorKind::GrantIdNotDerived => "grant_id_not_derived",
            ApplyErrorKind::GrantDiffersFromRequest => "grant_differs_from_request",
            ApplyErrorKind::GrantNotIssuedAtRecordTime => "grant_not_issued_at_record_time",
            ApplyErrorKind::GrantTtlExceedsEntryMax => "grant_ttl_exceeds_entry_max",
            ApplyErrorKind::GrantTtlDiffersFromDecision => "grant_ttl_differs_from_decision",
            ApplyErrorKind::GrantCapDiffersFromEntry => "grant_cap_differs_from_entry",
            ApplyErrorKind::GrantUnknown => "grant_unknown",
            ApplyErrorKind::GrantNotActive => "grant_not_active",
            ApplyErrorKind::ExpiredBeforeExpiresAt => "expired_before_expires_at",
            ApplyErrorKind::ExtensionNotAllowed => "extension_not_allowed",
            ApplyErrorKind::GrantNotRevoked => "grant_not_revoked",
            ApplyErrorKind::RevocationAlreadyConfirmed => "revocation_already_confirmed",
            ApplyErrorKind::BreakGlassBreaksPolicy => "break_glass_breaks_policy",
            ApplyErrorKind::ReviewNotAllowed => "review_not_allowed",
            ApplyErrorKind::PolicyHashMismatch => "policy_hash_mismatch",
            ApplyErrorKind::DecisionPolicyNotInForce => "decision_policy_not_in_force",
            ApplyErrorKind::PrincipalAlreadyOffboarded => "principal_already_offboarded",
            ApplyErrorKind::PrincipalOffboarded => "principal_offboarded",
            ApplyErrorKind::IdentityRefusalDuplicated => "identity_refusal_duplicated",
            ApplyErrorKind::StartTooFarAhead => "start_too_far_ahead",
            ApplyErrorKind::GrantOutsideSchedule => "grant_outside_schedule",
            ApplyErrorKind::RequestExpiryNotAllowed => "request_expiry_not_allowed",
            ApplyErrorKind::OwnerOffboarded => "owner_offboarded",
            ApplyErrorKind::WithdrawalNotAllowed => "withdrawal_not_allowed",
        }
    }
}

/// Folds one committed event into `state`. `at` is the record's ledger
/// time. Refuses, leaving `state` unchanged, any event that cannot follow
/// the state: a replay detects a log that breaks the rules even when its
/// hashes are consistent.
pub fn apply(state: &mut State, event: &Event, at: Timestamp) -> Result<(), ApplyError> {
    let kind = event.kind();
    let fail = |error_kind: ApplyErrorKind, detail: String| ApplyError {
        kind: error_kind,
        event: kind,
        detail,
    };
    if let Some(last) = state.core.time_last
        && at < last
    {
        return Err(fail(
            ApplyErrorKind::TimeWentBack,
            format!("ledger time `{at}` is before the previous event's `{last}`"),
        ));
    }
    let result = match event {
        Event::CatalogPublished(e) => apply_catalog(state, e),
        Event::RequestSubmitted(e) => apply_request(state, e, at),
        Event::DecisionRecorded(e) => apply_decision(state, e, at),
        Event::ApprovalRecorded(e) => apply_approval(state, e, at),
        Event::GrantIssued(e) => apply_grant(state, e, at),
        Event::GrantExtended(e) => apply_extension(state, e, at),
        Event::GrantRevoked(e) => apply_revocation(state, e, at),
        Event::RevocationConfirmed(e) => apply_confirmation(state, &e.grant_id),
        Event::RevocationFailed(e) => apply_failure(state, &e.grant_id),
        Event::BreakGlassInvoked(e) => apply_break_glass(state, e),
        Event::ReviewRecorded(e) => apply_review(state, e),
        Event::PolicyPublished(e) => apply_policy(state, e),
        Event::PrincipalOffboarded(e) => apply_offboarding(state, e, at),
        Event::IdentityRefused(e) => apply_identity_refusal(state, e),
        Event::RequestExpired(e) => apply_request_expiry(state, e, at),
        Event::RequestWithdrawn(e) => apply_withdrawal(state, e),
    };
    result.map_err(|(error_kind, detail)| fail(error_kind, detail))?;
    state.core.time_last = Some(at);
    Ok(())
}

type Refusal = (ApplyErrorKind, String);

/// Names the rule a shared check refused, with the check's own message.
fn from_rejection(rejection: Rejection) -> Refusal {
    let kind = match &rejection {
        Rejection::CatalogMissing => ApplyErrorKind::NoCatalogInForce,
        Rejection::RequestIdAlreadyDecided { .. } => ApplyErrorKind::RequestDuplicated,
        Rejection::RequestUnknown { .. } => ApplyErrorKind::RequestUnknown,
        Rejection::RequestNotPending { .. } => ApplyErrorKind::RequestNotPending,
        Rejection::RequesterMayNotApprove { .. } => ApplyErrorKind::SelfApproval,
        Rejection::ApproverNotInGroup { .. } => ApplyErrorKind::ApproverNotInGroup,
        Rejection::ApproverAlreadyApproved { .. } => ApplyErrorKind::ApproverNotDistinct,
        Rejection::RequestExpired { .. } => ApplyErrorKind::ApprovalAfterRequestExpired,
        Rejection::GrantUnknown { .. } => ApplyErrorKind::GrantUnknown,
        Rejection::GrantNotActive { .. } => ApplyErrorKind::GrantNotActive,
        Rejection::GrantNotYetExpired { .. } => ApplyErrorKind::ExpiredBeforeExpiresAt,
        Rejection::GrantNotRevoked { .. } => ApplyErrorKind::GrantNotRevoked,
        Rejection::RevocationAlreadyConfirmed { .. } => ApplyErrorKind::RevocationAlreadyConfirmed,
        Rejection::ExtensionNotByHolder { .. }
        | Rejection::ExtensionNeedsApproval { .. }
        | Rejection::ExtensionNotLater { .. }
        | Rejection::ExtensionExceedsCap { .. } => ApplyErrorKind::ExtensionNotAllowed,
        Rejection::BreakGlassRefused {
            reason: Reason::PrincipalOffboarded,
            ..
        }
        | Rejection::RequesterOffboarded { .. } => ApplyErrorKind::PrincipalOffboarded,
        Rejection::OwnerOffboarded { .. } => ApplyErrorKind::OwnerOffboarded,
        Rejection::BreakGlassRefused { .. } => ApplyErrorKind::BreakGlassBreaksPolicy,
        Rejection::GrantNotBreakGlass { .. }
        | Rejection::ReviewAlreadyRecorded { .. }
        | Rejection::ReviewerMayNotReviewOwnUse { .. } => ApplyErrorKind::ReviewNotAllowed,
        Rejection::StartTooFarAhead { .. } => ApplyErrorKind::StartTooFarAhead,
        Rejection::StartNotDue { .. }
        | Rejection::RequestAlreadyStarted { .. }
        | Rejection::RequestNotScheduled { .. }
        | Rejection::RequestNotYetExpired { .. }
        | Rejection::RequestWithoutTtl { .. } => ApplyErrorKind::RequestExpiryNotAllowed,
        Rejection::RequestNotOpen { .. }
        | Rejection::WithdrawalNotByRequester { .. }
        | Rejection::WithdrawalReasonRequired { .. } => ApplyErrorKind::WithdrawalNotAllowed,
        // INVARIANT: apply only calls the shared checks above, which return
        // none of these.
        Rejection::CatalogInvalid(_)
        | Rejection::PolicyInvalid { .. }
        | Rejection::IdentityRejected { .. }
        | Rejection::PolicyAlreadyInForce { .. }
        | Rejection::PolicyNotValidated { .. }
        | Rejection::PolicyDecisionMissing { .. }
        | Rejection::PolicyInputInvalid { .. }
        | Rejection::PolicyDecisionRefused { .. }
        | Rejection::CatalogAlreadyInForce { .. }
        | Rejection::InputExceedsBound { .. }
        | Rejection::ReasonNotAllowedHere { .. }
        | Rejection::PrincipalAlreadyOffboarded { .. }
        | Rejection::PrincipalHasNoLiveGrant { .. } => {
            unreachable!(
                "apply does not run the check that gives `{}`",
                rejection.code()
            )
        }
    };
    (kind, format!("{rejection} (`{}`)", rejection.code()))
}

fn apply_catalog(state: &mut State, e: &CatalogPublished) -> Result<(), Refusal> {
    let catalog = Catalog::parse(&e.text).map_err(|error| {
        (
            ApplyErrorKind::CatalogInvalid,
            format!("catalog `{}`: {error}", e.catalog_hash),
        )
    })?;
    if catalog.hash() != e.catalog_hash {
        return Err((
            ApplyErrorKind::CatalogHashMismatch,
            format!(
                "recorded hash `{}`, the text hashes to `{}`",
                e.catalog_hash,
                catalog.hash()
            ),
        ));
    }
    state.core.catalog_hash = Some(catalog.hash().to_string());
    state.catalog = Some(Arc::new(catalog));
    state.core.counts.catalogs_published += 1;
    Ok(())
}

/// A policy set comes into force. The core checks its hash and that a
/// catalog is in force; that the Cedar text parses and validates against
/// the catalog is checked by whoever holds the engine (the ledger, on
/// publishing and on every replay).
fn apply_policy(state: &mut State, e: &PolicyPublished) -> Result<(), Refusal> {
    if state.catalog.is_none() {
        return Err((
            ApplyErrorKind::NoCatalogInForce,
            format!(
                "policy `{}` was published before any catalog",
                e.policy_hash
            ),
        ));
    }
    let hash = policy_hash(&e.policy_text, e.exceptions_text.as_deref());
    if hash != e.policy_hash {
        return Err((
            ApplyErrorKind::PolicyHashMismatch,
            format!(
                "recorded hash `{}`, the texts hash to `{hash}`",
                e.policy_hash
            ),
        ));
    }
    state.core.policy_hash = Some(hash);
    state.policy = Some(Arc::new(e.clone()));
    Ok(())
}

fn apply_offboarding(state: &mut State, e: &PrincipalOffboarded, at: Timestamp) -> Result<(), Refusal> {
    if let Some(offboarded_at) = state.offboarded_at(&e.principal) {
        return Err((
            ApplyErrorKind::PrincipalAlreadyOffboarded,
            format!(
                "principal `{}` was already offboarded at `{offboarded_at}`",
                e.principal
            ),
        ));
    }
    let principal = state.intern(e.principal.as_str());
    state.core.offboarded.insert(principal, at);
    state.core.counts.principals_offboarded += 1;
    Ok(())
}

fn apply_identity_refusal(state: &mut State, e: &IdentityRefused) -> Result<(), Refusal> {
    let request_id = e.request_id.as_str();
    if state.slot(request_id).is_some() {
        return Err((
            ApplyErrorKind::IdentityRefusalDuplicated,
            format!("request `{request_id}` was already recorded: a decided request is not refused after the fact"),
        ));
    }
    if let Some((reason, _)) = state.identity_refusal(&e.request_id) {
        return Err((
            ApplyErrorKind::IdentityRefusalDuplicated,
            format!("request `{request_id}` was already refused (`{reason}`): one refusal per request id"),
        ));
    }
    state.core.identity_refusals.insert(
        Name::from(request_id),
        IdentityRefusal {
            reason: e.reason.clone(),
            detail: e.detail.clone(),
        },
    );
    state.core.counts.identity_refusals += 1;
    Ok(())
}

fn holder(state: &mut State, principal: &Principal) -> Holder {
    Holder {
        id: state.intern(principal.id.as_str()),
        kind: principal.kind,
        owner: principal
            .owner
            .as_ref()
            .map(|owner| state.intern(owner.as_str())),
    }
}

fn interned_actions(state: &mut State, actions: &[&str]) -> Box<[Name]> {
    actions.iter().map(|action| state.intern(action)).collect()
}

fn check_new_request(state: &State, request_id: &str) -> Result<(), Refusal> {
    if state.catalog.is_none() {
        return Err((
            ApplyErrorKind::NoCatalogInForce,
            format!("request `{request_id}` was recorded before any catalog was published"),
        ));
    }
    if state.slot(request_id).is_some() {
        return Err((
            ApplyErrorKind::RequestDuplicated,
            format!("request `{request_id}` was already recorded"),
        ));
    }
    Ok(())
}

fn apply_request(state: &mut State, e: &RequestSubmitted, at: Timestamp) -> Result<(), Refusal> {
    check_new_request(state, e.request_id.as_str())?;
    if let Some(starts_at) = e.starts_at {
        check_start_ahead(&e.request_id, starts_at, at).map_err(from_rejection)?;
    }
    let actions = normalize_actions(&e.actions);
    let asked = Asked {
        entitlement: state.intern(e.entitlement.as_str()),
        resource: state.intern(e.resource.as_str()),
        actions: interned_actions(state, &actions),
        ttl_requested_ms: e.ttl_requested_ms,
        starts_at: e.starts_at,
        ticket_present: e.ticket.as_deref().is_some_and(is_present),
        justification_present: is_present(&e.justification),
    };
    let holder = holder(state, &e.principal);
    state.push_request(
        e.request_id.as_str(),
        holder,
        Stage::Submitted(Box::new(asked)),
    );
    state.core.counts.requests += 1;
    Ok(())
}

fn apply_decision(state: &mut State, e: &DecisionRecorded, at: Timestamp) -> Result<(), Refusal> {
    let request_id = e.request_id.as_str();
    let Some(slot) = state.slot(request_id) else {
        return Err((
            ApplyErrorKind::RequestUnknown,
            format!("decision for request `{request_id}`, which was never recorded"),
        ));
    };
    let request = state.request_at(slot);
    let Stage::Submitted(asked) = &request.stage else {
        return Err((
            ApplyErrorKind::DecisionDuplicated,
            format!(
                "request `{request_id}` is already `{}`: one decision per request id",
                request.stage.status().name()
            ),
        ));
    };
    // INVARIANT: a request is only recorded while a catalog is in force.
    let catalog = state.catalog.as_deref().expect("a catalog is in force");
    if e.catalog_hash != catalog.hash() {
        return Err((
            ApplyErrorKind::DecisionCatalogNotInForce,
            format!(
                "decision on request `{request_id}` cites catalog `{}`, the catalog in force is `{}`",
                e.catalog_hash,
                catalog.hash()
            ),
        ));
    }
    if e.entitlement.as_str() != &*asked.entitlement {
        return Err((
            ApplyErrorKind::DecisionContradictsPolicy,
            format!(
                "decision on request `{request_id}` is for entitlement `{}`, the request asked for `{}`",
                e.entitlement, asked.entitlement
            ),
        ));
    }
    // Who was offboarded, if the principal or its owner was: the core
    // denies such a request alone, naming which.
    let barred = match state.core.offboarded.get(&request.holder.id) {
        Some(&offboarded_at) => Some((
            Reason::PrincipalOffboarded,
            format!("its principal `{}`", request.holder.id),
            offboarded_at,
        )),
        None => state
            .holder_owner_offboarded_at(&request.holder)
            .map(|offboarded_at| {
                (
                    Reason::OwnerOffboarded,
                    format!(
                        "the owner `{}` of its principal `{}`",
                        request.holder.owner.as_deref().unwrap_or_default(),
                        request.holder.id
                    ),
                    offboarded_at,
                )
            }),
    };
    let terms = match (&e.basis, state.core.policy_hash.as_deref()) {
        // A request of an offboarded principal, or of one whose owner was
        // offboarded, is denied by the core alone, with or without a policy
        // set in force.
        _ if barred.is_some() => {
            let (reason, who, offboarded_at) = barred.expect("checked by the guard");
            let denied = e.basis == DecisionBasis::Catalog
                && e.outcome == DecisionOutcome::Deny
                && e.reasons == [reason.code()]
                && e.ttl_granted_ms == 0;
            if !denied {
                return Err((
                    ApplyErrorKind::DecisionContradictsPolicy,
                    format!(
                        "decision on request `{request_id}` records `{:?}` {:?}, but {who} was offboarded at `{offboarded_at}`: the core denies it (`{}`)",
                        e.outcome,
                        e.reasons,
                        reason.code()
                    ),
                ));
            }
            None
        }
        (DecisionBasis::Catalog, None) => {
            // Re-run the policy on what was recorded: the decision must be
            // exactly what the catalog in force gives.
            let actions: Vec<&str> = asked.actions.iter().map(|action| action.as_ref()).collect();
            let expected = evaluate(
                catalog,
                &PolicyInput {
                    kind: request.holder.kind,
                    principal: &request.holder.id,
                    owner: request.holder.owner.as_deref(),
                    entitlement: &asked.entitlement,
                    resource: &asked.resource,
                    actions: &actions,
                    ticket_present: asked.ticket_present,
                    justification_present: asked.justification_present,
                    ttl_requested_ms: asked.ttl_requested_ms,
                },
            );
            if e.outcome != expected.outcome
                || e.reasons != expected.reasons
                || e.ttl_granted_ms != expected.ttl_granted_ms
            {
                return Err((
                    ApplyErrorKind::DecisionContradictsPolicy,
                    format!(
                        "decision on request `{request_id}` records `{:?}` {:?} with TTL `{}` ms, the catalog in force gives `{:?}` {:?} with TTL `{}` ms",
                        e.outcome,
                        e.reasons,
                        e.ttl_granted_ms,
                        expected.outcome,
                        expected.reasons,
                        expected.ttl_granted_ms
                    ),
                ));
            }
            expected.terms
        }
        (DecisionBasis::Policy(basis), Some(in_force)) if basis.policy_hash == in_force => {
            // The core cannot re-run Cedar (`replay --recheck` does): it
            // checks the decision is well formed and within the catalog.
            let actions: Vec<&str> = asked.actions.iter().map(|action| action.as_ref()).collect();
            check_engine_decision(
                catalog,
                &EngineDecisionInput {
                    kind: request.holder.kind,
                    entitlement: &asked.entitlement,
                    resource: &asked.resource,
                    actions: &actions,
                    outcome: &e.outcome,
                    reasons: &e.reasons,
                    ttl_granted_ms: e.ttl_granted_ms,
                    basis,
                },
            )
            .map_err(|detail| {
                (
                    ApplyErrorKind::DecisionContradictsPolicy,
                    format!("policy decision on request `{request_id}`: {detail}"),
                )
            })?
        }
        (basis, in_force) => {
            let cited = match basis {
                DecisionBasis::Catalog => "the catalog alone".to_string(),
                DecisionBasis::Policy(basis) => format!("policy `{}`", basis.policy_hash),
            };
            return Err((
                ApplyErrorKind::DecisionPolicyNotInForce,
                format!(
                    "decision on request `{request_id}` was made by {cited}; the policy in force is {}",
                    in_force.map_or("none".to_string(), |hash| format!("`{hash}`"))
                ),
            ));
        }
    };

    // A request waiting for approvers expires with the entry's request TTL.
    let expires_at = catalog
        .entitlement(&asked.entitlement)
        .and_then(|entry| entry.request_ttl_ms)
        .map(|ttl_ms| at.plus_ms(ttl_ms));

    // Every check passed.
    let group = match &e.outcome {
        DecisionOutcome::NeedsApproval { group, .. } => Some(state.intern(group)),
        _ => None,
    };
    let core = &mut state.core;
    let request = &mut core.requests[slot as usize];
    let Stage::Submitted(asked) = std::mem::replace(&mut request.stage, Stage::Denied) else {
        unreachable!("checked above")
    };
    let counts = &mut core.counts;
    match (&e.outcome, terms, group) {
        (DecisionOutcome::Allow, Some(mut terms), _) => {
            // Allowed before its scheduled start: the start timer issues it.
            terms.start = asked.starts_at.filter(|starts_at| *starts_at > at);
            if let Some(starts_at) = terms.start {
                core.starts.insert((starts_at, slot));
                counts.scheduled += 1;
            }
            request.stage = Stage::Allowed { asked, terms };
            counts.decisions_allowed += 1;
        }
        (
            DecisionOutcome::NeedsApproval {
                approvers_required, ..
            },
            Some(mut terms),
            Some(group),
        ) => {
            // A start still to come when it was decided bounds its grant,
            // however late the approvals come: the window asked for.
            terms.start = asked.starts_at.filter(|starts_at| *starts_at > at);
            request.stage = Stage::Pending {
                asked,
                approval: Box::new(Approval {
                    approvers_required: *approvers_required,
                    group,
                    approvals: Vec::new(),
                    terms,
                    expires_at,
                }),
            };
            counts.decisions_needing_approval += 1;
            counts.pending += 1;
            core.pending.insert(slot);
            if let Some(deadline) = expires_at {
                core.deadlines.insert((deadline, slot));
            }
        }
        // A deny: the stage is already `Denied`, and the request's details
        // are dropped to keep closed requests small.
        _ => counts.decisions_denied += 1,
    }
    Ok(())
}

fn apply_approval(state: &mut State, e: &ApprovalRecorded, at: Timestamp) -> Result<(), Refusal> {
    let (slot, completes) = state
        .check_approval(&e.request_id, &e.approver, e.verdict, at)
        .map_err(from_rejection)?;
    let approver = state.intern(e.approver.as_str());
    let request = &mut state.core.requests[slot as usize];
    let counts = &mut state.core.counts;
    match e.verdict {
        ApprovalVerdict::Approve if completes => {
            let Stage::Pending { asked, approval } =
                std::mem::replace(&mut request.stage, Stage::Refused)
            else {
                unreachable!("checked pending")
            };
            if let Some(deadline) = approval.expires_at {
                state.core.deadlines.remove(&(deadline, slot));
            }
            // Approved before its scheduled start: the start timer issues
            // it. Approved after it: its grant (or, the window gone, its
            // expiry) follows in this input.
            let terms = approval.terms;
            if let Some(starts_at) = terms.start.filter(|starts_at| *starts_at > at) {
                state.core.starts.insert((starts_at, slot));
                counts.scheduled += 1;
            }
            request.stage = Stage::Approved { asked, terms };
            state.core.pending.remove(&slot);
            counts.approvals += 1;
            counts.pending -= 1;
        }
        ApprovalVerdict::Approve => {
            if let Stage::Pending { approval, .. } = &mut request.stage {
                approval.approvals.push(approver);
            }
            counts.approvals += 1;
        }
        ApprovalVerdict::Deny => {
            match std::mem::replace(&mut request.stage, Stage::Refused) {
                Stage::Pending { approval, .. } => {
                    if let Some(deadline) = approval.expires_at {
                        state.core.deadlines.remove(&(deadline, slot));
                    }
                    state.core.pending.remove(&slot);
                    counts.pending -= 1;
                }
                // An approved request refused before its scheduled start.
                Stage::Approved { terms, .. } => {
                    if let Some(starts_at) = terms.start
                        && state.core.starts.remove(&(starts_at, slot))
                    {
                        counts.scheduled -= 1;
                    }
                }
                // INVARIANT: check_approval accepts a refusal only of a
                // pending or a scheduled, approved request.
                _ => unreachable!("checked pending or scheduled"),
            }
            counts.approver_refusals += 1;
        }
    }
    Ok(())
}

fn apply_grant(state: &mut State, e: &GrantIssued, at: Timestamp) -> Result<(), Refusal> {
    let request_id = e.request_id.as_str();
    let derived = GrantId::for_request(&e.request_id);
    if e.grant_id != derived {
        return Err((
            ApplyErrorKind::GrantIdNotDerived,
            format!(
                "grant `{}` for request `{request_id}` should be `{derived}`",
                e.grant_id
            ),
        ));
    }
    let Some(slot) = state.slot(request_id) else {
        return Err((
            ApplyErrorKind::GrantWithoutAllowingDecision,
            format!(
                "grant `{}`: request `{request_id}` was never recorded",
                e.grant_id
            ),
        ));
    };
    let request = state.request_at(slot);
    if let Some(offboarded_at) = state.core.offboarded.get(&request.holder.id) {
        return Err((
            ApplyErrorKind::PrincipalOffboarded,
            format!(
                "grant `{}` to `{}`, which was offboarded at `{offboarded_at}`",
                e.grant_id, request.holder.id
            ),
        ));
    }
    if let Some(offboarded_at) = state.holder_owner_offboarded_at(&request.holder) {
        return Err((
            ApplyErrorKind::OwnerOffboarded,
            format!(
                "grant `{}` to `{}`, whose owner `{}` was offboarded at `{offboarded_at}`",
                e.grant_id,
                request.holder.id,
                request.holder.owner.as_deref().unwrap_or_default()
            ),
        ));
    }
    let (asked, terms) = match &request.stage {
        Stage::Allowed { asked, terms }
        | Stage::Approved { asked, terms }
        | Stage::BreakGlass { asked, terms } => (asked, *terms),
        Stage::Pending { approval, .. } => {
            return Err((
                ApplyErrorKind::GrantWithoutEnoughApprovals,
                format!(
                    "grant `{}`: request `{request_id}` has `{}` of the `{}` distinct approvals from `{}` it needs",
                    e.grant_id,
                    approval.approvals.len(),
                    approval.approvers_required,
                    approval.group
                ),
            ));
        }
        Stage::Granted(_) => {
            return Err((
                ApplyErrorKind::GrantDuplicated,
                format!("grant `{}` was already issued", e.grant_id),
            ));
        }
        Stage::Submitted(_)
        | Stage::Denied
        | Stage::Refused
        | Stage::Expired
        | Stage::Withdrawn => {
            return Err((
                ApplyErrorKind::GrantWithoutAllowingDecision,
                format!(
                    "grant `{}`: request `{request_id}` is `{}`, no decision allowed it",
                    e.grant_id,
                    request.stage.status().name()
                ),
            ));
        }
    };
    // The grant holds the asked actions sorted and distinct, exactly.
    let same_actions = e.actions.len() == asked.actions.len()
        && e.actions
            .iter()
            .zip(asked.actions.iter())
            .all(|(given, asked)| given.as_str() == &**asked);
    let same_principal = e.principal.id.as_str() == &*request.holder.id
        && e.principal.kind == request.holder.kind
        && e.principal.owner.as_ref().map(|owner| owner.as_str())
            == request.holder.owner.as_deref();
    if !same_principal
        || e.entitlement.as_str() != &*asked.entitlement
        || e.resource.as_str() != &*asked.resource
        || !same_actions
        || e.break_glass != terms.break_glass
    {
        return Err((
            ApplyErrorKind::GrantDiffersFromRequest,
            format!(
                "grant `{}` gives `{}` ({}) `{}` on `{}` for {:?} (break-glass `{}`), request `{request_id}` asked for `{}` on `{}` for {:?} (break-glass `{}`)",
                e.grant_id,
                e.principal.id,
                e.principal.kind.name(),
                e.entitlement,
                e.resource,
                e.actions,
                e.break_glass,
                asked.entitlement,
                asked.resource,
                asked.actions,
                terms.break_glass
            ),
        ));
    }
    if e.issued_at != at {
        return Err((
            ApplyErrorKind::GrantNotIssuedAtRecordTime,
            format!(
                "grant `{}` says issued at `{}`, its record is at `{at}`",
                e.grant_id, e.issued_at
            ),
        ));
    }
    // A scheduled grant is issued at or after its start and before its
    // window ends; its expiry and cap count from the start.
    if let Some(starts_at) = terms.start {
        let window_end = starts_at.plus_ms(terms.ttl_ms);
        if e.issued_at < starts_at || e.issued_at >= window_end {
            return Err((
                ApplyErrorKind::GrantOutsideSchedule,
                format!(
                    "grant `{}` issued at `{}`: request `{request_id}` is scheduled to start at `{starts_at}`, its grant may be issued from then until `{window_end}`",
                    e.grant_id, e.issued_at
                ),
            ));
        }
    }
    let base = terms.start.unwrap_or(e.issued_at);
    let cap = base.plus_ms(terms.ttl_cap_ms);
    if e.expires_at > cap {
        return Err((
            ApplyErrorKind::GrantTtlExceedsEntryMax,
            format!(
                "grant `{}` expires at `{}`, past `{cap}` (from `{base}` plus the maximum TTL of `{}` ms)",
                e.grant_id, e.expires_at, terms.ttl_cap_ms
            ),
        ));
    }
    let decided = base.plus_ms(terms.ttl_ms);
    if e.expires_at != decided {
        return Err((
            ApplyErrorKind::GrantTtlDiffersFromDecision,
            format!(
                "grant `{}` expires at `{}`, the decided TTL of `{}` ms gives `{decided}`",
                e.grant_id, e.expires_at, terms.ttl_ms
            ),
        ));
    }
    if e.expires_at_cap != cap {
        return Err((
            ApplyErrorKind::GrantCapDiffersFromEntry,
            format!(
                "grant `{}` has cap `{}`, the entry gives `{cap}`",
                e.grant_id, e.expires_at_cap
            ),
        ));
    }

    // Every check passed: issue.
    let core = &mut state.core;
    let request = &mut core.requests[slot as usize];
    let holder_id = Arc::clone(&request.holder.id);
    let holder_owner = request.holder.owner.clone();
    let (Stage::Allowed { asked, .. }
    | Stage::Approved { asked, .. }
    | Stage::BreakGlass { asked, .. }) = std::mem::replace(&mut request.stage, Stage::Denied)
    else {
        unreachable!("checked above")
    };
    // Waiting for its start, unless it was approved after the start came.
    if let Some(starts_at) = terms.start
        && core.starts.remove(&(starts_at, slot))
    {
        core.counts.scheduled -= 1;
    }
    let grant = Grant {
        entitlement: asked.entitlement,
        resource: asked.resource,
        actions: asked.actions,
        issued_at: e.issued_at,
        expires_at: e.expires_at,
        expires_at_cap: e.expires_at_cap,
        break_glass: terms.break_glass,
        approved: terms.approved,
        revocation: None,
        review: None,
    };
    core.expiry.insert((grant.expires_at, slot));
    core.unrevoked_by_principal
        .entry(Arc::clone(&holder_id))
        .or_default()
        .insert(slot);
    if let Some(owner) = holder_owner {
        core.unrevoked_by_owner
            .entry(owner)
            .or_default()
            .insert(slot);
    }
    core.history
        .entry(Arc::clone(&holder_id))
        .or_default()
        .entry(Arc::clone(&grant.resource))
        .or_default()
        .push(slot);
    let by_action = core
        .access
        .entry(holder_id)
        .or_default()
        .entry(Arc::clone(&grant.resource))
        .or_default();
    for action in grant.actions.iter() {
        *by_action.entry(Arc::clone(action)).or_default() += 1;
    }
    if grant.break_glass {
        core.reviews_owed.insert(slot);
    }
    request.stage = Stage::Granted(Box::new(grant));
    core.counts.grants_issued += 1;
    core.counts.grants_unrevoked += 1;
    Ok(())
}

fn apply_extension(state: &mut State, e: &GrantExtended, at: Timestamp) -> Result<(), Refusal> {
    let (slot, grant) = state
        .check_extension(&e.grant_id, &e.extended_by, e.expires_at, at)
        .map_err(from_rejection)?;
    if grant.expires_at != e.expires_at_previous {
        return Err((
            ApplyErrorKind::ExtensionNotAllowed,
            format!(
                "grant `{}` expires at `{}`, the extension says it was `{}`",
                e.grant_id, grant.expires_at, e.expires_at_previous
            ),
        ));
    }
    let grant = state.grant_at_mut(slot).expect("checked above");
    let previous = std::mem::replace(&mut grant.expires_at, e.expires_at);
    state.core.expiry.remove(&(previous, slot));
    state.core.expiry.insert((e.expires_at, slot));
    state.core.counts.extensions += 1;
    Ok(())
}

fn apply_revocation(state: &mut State, e: &GrantRevoked, at: Timestamp) -> Result<(), Refusal> {
    let slot = if e.reason == RevocationReason::Expired {
        state
            .check_expirable(&e.grant_id, at)
            .map_err(from_rejection)?
            .0
    } else {
        state
            .check_active(&e.grant_id, at)
            .map_err(from_rejection)?
            .0
    };
    let core = &mut state.core;
    let request = &mut core.requests[slot as usize];
    let holder_id = &request.holder.id;
    let Stage::Granted(grant) = &mut request.stage else {
        unreachable!("checked above")
    };
    grant.revocation = Some(Revocation {
        at,
        reason: e.reason,
        confirmed: false,
        failed_attempts: 0,
    });
    core.expiry.remove(&(grant.expires_at, slot));
    core.debt.insert((at, slot));
    if let Some(grants) = core.unrevoked_by_principal.get_mut(holder_id) {
        grants.remove(&slot);
        if grants.is_empty() {
            core.unrevoked_by_principal.remove(holder_id);
        }
    }
    if let Some(owner) = &request.holder.owner
        && let Some(grants) = core.unrevoked_by_owner.get_mut(owner)
    {
        grants.remove(&slot);
        if grants.is_empty() {
            core.unrevoked_by_owner.remove(owner);
        }
    }
    // INVARIANT: an unrevoked grant counts once for each of its actions, so
    // every count below is at least 1.
    let by_resource = core
        .access
        .get_mut(holder_id)
        .expect("an unrevoked grant is counted");
    let by_action = by_resource
        .get_mut(&grant.resource)
        .expect("an unrevoked grant is counted");
    for action in grant.actions.iter() {
        let count = by_action
            .get_mut(action)
            .expect("an unrevoked grant is counted");
        *count -= 1;
        if *count == 0 {
            by_action.remove(action);
        }
    }
    if by_action.is_empty() {
        by_resource.remove(&grant.resource);
    }
    if by_resource.is_empty() {
        core.access.remove(holder_id);
    }
    core.counts.revocations += 1;
    core.counts.grants_unrevoked -= 1;
    core.counts.revocation_debt += 1;
    Ok(())
}

fn apply_confirmation(state: &mut State, grant_id: &GrantId) -> Result<(), Refusal> {
    let (slot, _) = state
        .check_revocation_report(grant_id)
        .map_err(from_rejection)?;
    let grant = state.grant_at_mut(slot).expect("checked above");
    let revocation = grant.revocation.as_mut().expect("checked revoked");
    revocation.confirmed = true;
    let revoked_at = revocation.at;
    state.core.debt.remove(&(revoked_at, slot));
    state.core.counts.revocations_confirmed += 1;
    state.core.counts.revocation_debt -= 1;
    Ok(())
}

fn apply_failure(state: &mut State, grant_id: &GrantId) -> Result<(), Refusal> {
    let (slot, _) = state
        .check_revocation_report(grant_id)
        .map_err(from_rejection)?;
    let grant = state.grant_at_mut(slot).expect("checked above");
    let revocation = grant.revocation.as_mut().expect("checked revoked");
    revocation.failed_attempts = revocation.failed_attempts.saturating_add(1);
    state.core.counts.revocation_failures += 1;
    Ok(())
}

fn apply_break_glass(state: &mut State, e: &BreakGlassInvoked) -> Result<(), Refusal> {
    check_new_request(state, e.request_id.as_str())?;
    state
        .check_not_offboarded_break_glass(&e.request_id, &e.principal, &e.entitlement, &e.resource)
        .map_err(from_rejection)?;
    let catalog = state.catalog.as_deref().expect("checked above");
    let actions = normalize_actions(&e.actions);
    let terms: Terms = check_break_glass(
        catalog,
        &BreakGlassInput {
            kind: e.principal.kind,
            entitlement: e.entitlement.as_str(),
            resource: e.resource.as_str(),
            actions: &actions,
            reason_present: is_present(&e.reason),
            ttl_ms: e.ttl_ms,
        },
    )
    .map_err(|reason| {
        from_rejection(Rejection::BreakGlassRefused {
            request_id: e.request_id.clone(),
            entitlement: e.entitlement.clone(),
            resource: e.resource.clone(),
            reason,
        })
    })?;
    let asked = Asked {
        entitlement: state.intern(e.entitlement.as_str()),
        resource: state.intern(e.resource.as_str()),
        actions: interned_actions(state, &actions),
        ttl_requested_ms: Some(e.ttl_ms),
        starts_at: None,
        ticket_present: false,
        justification_present: true,
    };
    let holder = holder(state, &e.principal);
    let stage = Stage::BreakGlass {
        asked: Box::new(asked),
        terms,
    };
    state.push_request(e.request_id.as_str(), holder, stage);
    state.core.counts.requests += 1;
    state.core.counts.break_glass += 1;
    Ok(())
}

fn apply_review(state: &mut State, e: &ReviewRecorded) -> Result<(), Refusal> {
    let slot = state
        .check_review(&e.grant_id, &e.reviewer)
        .map_err(from_rejection)?;
    state.grant_at_mut(slot).expect("checked above").review = Some(e.verdict);
    state.core.reviews_owed.remove(&slot);
    state.core.counts.reviews += 1;
    Ok(())
}

/// A request lapsed without a grant: a request waiting for approvers at its
/// deadline, a scheduled request whose start could not be honoured, or a
/// request waiting for approvers or for its start closed by a risk signal.
/// The reason and the deadline must be what the state gives (for a risk
/// signal: the record's own time).
fn apply_request_expiry(
    state: &mut State,
    e: &RequestExpired,
    at: Timestamp,
) -> Result<(), Refusal> {
    let request_id = e.request_id.as_str();
    let (slot, expected) = match e.reason {
        RequestExpiryReason::RequestTtl => {
            let (slot, deadline) = state
                .check_request_expiry(&e.request_id, at)
                .map_err(from_rejection)?;
            (slot, (RequestExpiryReason::RequestTtl, deadline))
        }
        // A risk signal closes a request waiting for approvers, or a
        // scheduled one whatever its start: it is the safe direction,
        // nothing is granted. The signal itself leaves no other trace when
        // its principal held no live grant.
        RequestExpiryReason::RiskSignal => {
            let slot = state.check_open(&e.request_id).map_err(from_rejection)?;
            (slot, (RequestExpiryReason::RiskSignal, at))
        }
        RequestExpiryReason::StartWindowPassed
        | RequestExpiryReason::PrincipalOffboarded
        | RequestExpiryReason::OwnerOffboarded => {
            let (slot, start) = state.check_start(&e.request_id, at).map_err(from_rejection)?;
            match start {
                Start::Lapse { reason, expired_at } => (slot, (reason, expired_at)),
                Start::Issue => {
                    return Err((
                        ApplyErrorKind::RequestExpiryNotAllowed,
                        format!(
                            "request `{request_id}` recorded as expired (`{}`) at `{at}`, but its start can be honoured: its grant is to be issued",
                            e.reason.name()
                        ),
                    ));
                }
            }
        }
    };
    if (e.reason, e.expired_at) != expected {
        return Err((
            ApplyErrorKind::RequestExpiryNotAllowed,
            format!(
                "request `{request_id}` recorded as expired (`{}`) at deadline `{}`, the state gives `{}` at `{}`",
                e.reason.name(),
                e.expired_at,
                expected.0.name(),
                expected.1
            ),
        ));
    }
    close_open_request(state, slot, Stage::Expired);
    state.core.counts.requests_expired += 1;
    Ok(())
}

/// A request withdrawn by its requester (or the requester's owner) while it
/// waited for approvers or for its scheduled start, with a reason.
fn apply_withdrawal(state: &mut State, e: &RequestWithdrawn) -> Result<(), Refusal> {
    let slot = state
        .check_withdrawal(&e.request_id, &e.withdrawn_by, &e.reason)
        .map_err(from_rejection)?;
    close_open_request(state, slot, Stage::Withdrawn);
    state.core.counts.requests_withdrawn += 1;
    Ok(())
}

/// Moves a request waiting for approvers or for its scheduled start to
/// `closed` (expired or withdrawn), out of the pending and start indices.
fn close_open_request(state: &mut State, slot: Slot, closed: Stage) {
    let core = &mut state.core;
    let request = &mut core.requests[slot as usize];
    match std::mem::replace(&mut request.stage, closed) {
        Stage::Pending { approval, .. } => {
            core.pending.remove(&slot);
            if let Some(deadline) = approval.expires_at {
                core.deadlines.remove(&(deadline, slot));
            }
            core.counts.pending -= 1;
        }
        Stage::Allowed { terms, .. } | Stage::Approved { terms, .. } => {
            if let Some(starts_at) = terms.start
                && core.starts.remove(&(starts_at, slot))
            {
                core.counts.scheduled -= 1;
            }
        }
        // INVARIANT: both checks accept only pending or scheduled requests.
        _ => unreachable!("checked pending or scheduled"),
    }
}
