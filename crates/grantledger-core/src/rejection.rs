//! Rule codes and rejections.

use grantledger_events::{
    EntitlementId, GrantId, PrincipalId, RequestId, ResourceId, RevocationReason, Timestamp,
};

use crate::catalog::CatalogError;
use crate::state::RequestStatus;

/// A policy rule code, as recorded in a decision's `reasons` (sorted) or
/// named by a refused break-glass.
///
/// `AutoApproved` and `ApprovalRequired` explain allows; every other code
/// names a broken rule. Codes are stable: they are in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Allowed at once: the entry's approval is `auto`.
    AutoApproved,
    /// Allowed once the entry's approvers approve.
    ApprovalRequired,
    /// The entitlement is not in the catalog in force.
    EntitlementUnknown,
    /// The resource has a `*` or an empty segment: requests name exactly one
    /// resource.
    ResourceNotConcrete,
    /// The resource does not match the entitlement's pattern.
    ResourceOutsideEntitlement,
    /// No action was asked for.
    ActionsEmpty,
    /// An action the entitlement does not allow.
    ActionOutsideEntitlement,
    /// The entitlement is not for this kind of principal.
    PrincipalKindNotAllowed,
    /// A workload or agent without an accountable owner (or owning itself).
    OwnerRequiredForNonHuman,
    /// The justification is blank.
    JustificationRequired,
    /// The entitlement requires a ticket and none was given.
    TicketRequired,
    /// The TTL asked for is zero or negative.
    TtlNotPositive,
    /// The TTL asked for is above the entitlement's maximum.
    TtlExceedsEntryMax,
    /// The entitlement's approval is `deny`: never self-service.
    EntitlementDeniesSelfService,
    /// A workload or agent asked for an entitlement that needs human
    /// approval; non-humans are decided by policy alone, so it is denied.
    WorkloadNeedsPolicyApproval,
    /// Break-glass on an entitlement without a break-glass cap.
    BreakGlassNotEligible,
    /// Break-glass by a workload or agent.
    BreakGlassHumanOnly,
    /// Break-glass without a reason.
    BreakGlassReasonRequired,
    /// Break-glass for longer than the entry's break-glass cap.
    TtlExceedsBreakGlassMax,
    /// The principal was offboarded: it may ask for nothing more, whatever
    /// the catalog or a policy says.
    PrincipalOffboarded,
    /// The principal's owner (the person accountable for a workload or an
    /// agent) was offboarded: nobody answers for it any more, so it may ask
    /// for nothing, whatever the catalog or a policy says.
    OwnerOffboarded,
}

impl Reason {
    /// Every code, in declaration order.
    pub const ALL: [Reason; 21] = [
        Reason::AutoApproved,
        Reason::ApprovalRequired,
        Reason::EntitlementUnknown,
        Reason::ResourceNotConcrete,
        Reason::ResourceOutsideEntitlement,
        Reason::ActionsEmpty,
        Reason::ActionOutsideEntitlement,
        Reason::PrincipalKindNotAllowed,
        Reason::OwnerRequiredForNonHuman,
        Reason::JustificationRequired,
        Reason::TicketRequired,
        Reason::TtlNotPositive,
        Reason::TtlExceedsEntryMax,
        Reason::EntitlementDeniesSelfService,
        Reason::WorkloadNeedsPolicyApproval,
        Reason::BreakGlassNotEligible,
        Reason::BreakGlassHumanOnly,
        Reason::BreakGlassReasonRequired,
        Reason::TtlExceedsBreakGlassMax,
        Reason::PrincipalOffboarded,
        Reason::OwnerOffboarded,
    ];

    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::AutoApproved => "auto_approved",
            Reason::ApprovalRequired => "approval_required",
            Reason::EntitlementUnknown => "entitlement_unknown",
            Reason::ResourceNotConcrete => "resource_not_concrete",
            Reason::ResourceOutsideEntitlement => "resource_outside_entitlement",
            Reason::ActionsEmpty => "actions_empty",
            Reason::ActionOutsideEntitlement => "action_outside_entitlement",
            Reason::PrincipalKindNotAllowed => "principal_kind_not_allowed",
            Reason::OwnerRequiredForNonHuman => "owner_required_for_non_human",
            Reason::JustificationRequired => "justification_required",
            Reason::TicketRequired => "ticket_required",
            Reason::TtlNotPositive => "ttl_not_positive",
            Reason::TtlExceedsEntryMax => "ttl_exceeds_entry_max",
            Reason::EntitlementDeniesSelfService => "entitlement_denies_self_service",
            Reason::WorkloadNeedsPolicyApproval => "workload_needs_policy_approval",
            Reason::BreakGlassNotEligible => "break_glass_not_eligible",
            Reason::BreakGlassHumanOnly => "break_glass_human_only",
            Reason::BreakGlassReasonRequired => "break_glass_reason_required",
            Reason::TtlExceedsBreakGlassMax => "ttl_exceeds_break_glass_max",
            Reason::PrincipalOffboarded => "principal_offboarded",
            Reason::OwnerOffboarded => "owner_offboarded",
        }
    }

    /// The reason with this code.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// The rule, in words.
    pub fn rule(self) -> &'static str {
        match self {
            Reason::AutoApproved => "the entitlement is approved automatically",
            Reason::ApprovalRequired => "the entitlement needs approvers",
            Reason::EntitlementUnknown => "the entitlement is not in the catalog in force",
            Reason::ResourceNotConcrete => "a request names exactly one resource, without `*`",
            Reason::ResourceOutsideEntitlement => {
                "the resource must match the entitlement's pattern"
            }
            Reason::ActionsEmpty => "at least one action must be asked for",
            Reason::ActionOutsideEntitlement => "every action must be one the entitlement allows",
            Reason::PrincipalKindNotAllowed => "the entitlement is not for this kind of principal",
            Reason::OwnerRequiredForNonHuman => {
                "a workload or agent must name an accountable owner other than itself"
            }
            Reason::JustificationRequired => "a justification is required",
            Reason::TicketRequired => "the entitlement requires a ticket",
            Reason::TtlNotPositive => "the TTL must be positive",
            Reason::TtlExceedsEntryMax => "the TTL must not exceed the entitlement's maximum",
            Reason::EntitlementDeniesSelfService => "the entitlement is never self-service",
            Reason::WorkloadNeedsPolicyApproval => {
                "workloads and agents are decided by policy alone, never by a human approver"
            }
            Reason::BreakGlassNotEligible => "the entitlement is not break-glass eligible",
            Reason::BreakGlassHumanOnly => "only a person may break the glass",
            Reason::BreakGlassReasonRequired => "break-glass requires a reason",
            Reason::TtlExceedsBreakGlassMax => "the TTL must not exceed the break-glass cap",
            Reason::PrincipalOffboarded => "an offboarded principal may ask for nothing",
            Reason::OwnerOffboarded => "a principal whose owner was offboarded may ask for nothing",
        }
    }
}

/// Why a command was refused. Nothing is recorded for a rejected command.
///
/// [`Rejection::code`] names the broken rule; the message names the
/// offending values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No catalog has been published yet.
    #[error("no catalog is in force: publish one first")]
    CatalogMissing,
    /// The published catalog is invalid.
    #[error("catalog refused: {0}")]
    CatalogInvalid(CatalogError),
    /// This exact catalog is already in force.
    #[error("catalog `{catalog_hash}` is already in force")]
    CatalogAlreadyInForce {
        /// Its hash.
        catalog_hash: String,
    },
    /// The policy engine refused a policy set (it does not parse, does not
    /// validate against the schema, or does not fit the catalog), or refused
    /// a catalog that the policy set in force does not fit. Nothing was
    /// published.
    #[error("policy refused: {message}")]
    PolicyInvalid {
        /// The engine's message (Cedar's, for a policy that does not parse
        /// or validate), naming the policy and the rule.
        message: String,
    },
    /// This exact policy set is already in force.
    #[error("policy `{policy_hash}` is already in force")]
    PolicyAlreadyInForce {
        /// Its hash.
        policy_hash: String,
    },
    /// A policy set was offered to the core without the engine's
    /// validation, or the validation was for other texts.
    #[error("policy `{policy_hash}` was not validated by the policy engine: nothing is published unvalidated")]
    PolicyNotValidated {
        /// The hash of the texts offered.
        policy_hash: String,
    },
    /// A policy set is in force, and the request came without the engine's
    /// decision under it (or with a decision under another policy set).
    #[error("policy `{policy_hash}` is in force: requests are decided by the policy engine")]
    PolicyDecisionMissing {
        /// The policy in force.
        policy_hash: String,
    },
    /// The policy engine could not evaluate the request: a context value of
    /// the wrong type, an unknown context field, a value out of range.
    #[error("request `{request_id}` cannot be evaluated: {message}")]
    PolicyInputInvalid {
        /// The request.
        request_id: RequestId,
        /// The engine's message, naming the field and the rule.
        message: String,
    },
    /// The policy engine's decision breaks a rule of the ledger (an allow
    /// beyond the entry's hard cap, a step-up for a workload, ...): a bug in
    /// the engine or its policies; nothing is recorded.
    #[error("the policy decision on request `{request_id}` is refused: {message}")]
    PolicyDecisionRefused {
        /// The request.
        request_id: RequestId,
        /// The broken rule and the values.
        message: String,
    },
    /// A field is over its bound.
    #[error("{field} is `{size}` long: at most `{max}` is allowed")]
    InputExceedsBound {
        /// Which field.
        field: &'static str,
        /// Its size (bytes, or items for lists).
        size: usize,
        /// The bound.
        max: usize,
    },
    /// The request's identity token did not verify (forged, expired, not yet
    /// valid, wrong audience or issuer, `alg: none`, ...), or the request
    /// claims a workload identity without a token the ledger verified. The
    /// first refusal of a request id is recorded (`IdentityRefused`); a later
    /// failing submission of that request id gets the recorded refusal back
    /// as this rejection, and nothing more is recorded.
    #[error("request `{request_id}`: identity refused (`{reason}`): {detail}")]
    IdentityRejected {
        /// The request.
        request_id: RequestId,
        /// The reason code (`expired`, `bad_signature`, `alg_none`, ...).
        reason: String,
        /// What was wrong, naming the value.
        detail: String,
    },
    /// The request waited for approvers past its request TTL (the entry's
    /// `request_ttl_s`, counted from its decision): approvals are refused.
    #[error("request `{request_id}` expired at `{expired_at}`: approvals after the request TTL are refused")]
    RequestExpired {
        /// The request.
        request_id: RequestId,
        /// When it expired.
        expired_at: Timestamp,
    },
    /// A request asks to start further ahead than
    /// [`SCHEDULE_AHEAD_MAX_MS`](crate::SCHEDULE_AHEAD_MAX_MS) after its
    /// submission. Nothing is recorded.
    #[error(
        "request `{request_id}` asks to start at `{starts_at}`: a start may be at most 30 days ahead, `{latest}`"
    )]
    StartTooFarAhead {
        /// The request.
        request_id: RequestId,
        /// The start asked for.
        starts_at: Timestamp,
        /// The latest start allowed now.
        latest: Timestamp,
    },
    /// A start timer before the request's scheduled start.
    #[error("request `{request_id}` starts at `{starts_at}`, not before: it is `{now}`")]
    StartNotDue {
        /// The request.
        request_id: RequestId,
        /// Its scheduled start.
        starts_at: Timestamp,
        /// The time of the command.
        now: Timestamp,
    },
    /// A start timer for a request whose grant was already issued: a
    /// duplicate, harmless.
    #[error("request `{request_id}` already started: its grant was issued at `{issued_at}`")]
    RequestAlreadyStarted {
        /// The request.
        request_id: RequestId,
        /// When its grant was issued.
        issued_at: Timestamp,
    },
    /// A start timer for a request with no scheduled start to come (waiting
    /// for approvers, denied, refused, expired).
    #[error("request `{request_id}` has no scheduled start to come: it is `{}`", status.name())]
    RequestNotScheduled {
        /// The request.
        request_id: RequestId,
        /// Where it is instead.
        status: RequestStatus,
    },
    /// A withdrawal of a request that is not waiting for approvers or for
    /// its scheduled start (granted, denied, closed, or not yet decided).
    #[error(
        "request `{request_id}` is `{}`: only a request waiting for approvers or for its scheduled start can be withdrawn",
        status.name()
    )]
    RequestNotOpen {
        /// The request.
        request_id: RequestId,
        /// Where it is instead.
        status: RequestStatus,
    },
    /// A withdrawal by someone other than the requester or, for a workload
    /// or an agent, its owner.
    #[error(
        "`{by}` may not withdraw request `{request_id}`: only its requester `{requester}` or the requester's owner may"
    )]
    WithdrawalNotByRequester {
        /// The request.
        request_id: RequestId,
        /// Who tried.
        by: PrincipalId,
        /// Who asked.
        requester: PrincipalId,
    },
    /// A withdrawal without a reason.
    #[error("withdrawing request `{request_id}` requires a reason")]
    WithdrawalReasonRequired {
        /// The request.
        request_id: RequestId,
    },
    /// A request-expiry timer before the request's deadline.
    #[error("request `{request_id}` expires at `{expires_at}`, not before: it is `{now}`")]
    RequestNotYetExpired {
        /// The request.
        request_id: RequestId,
        /// Its deadline: the decision plus the entry's request TTL.
        expires_at: Timestamp,
        /// The time of the command.
        now: Timestamp,
    },
    /// A request-expiry timer for a request whose entry has no request TTL.
    #[error("request `{request_id}` waits for approvers without a request TTL: it does not expire")]
    RequestWithoutTtl {
        /// The request.
        request_id: RequestId,
    },
    /// This request id was decided before; one decision per request id.
    #[error("request `{request_id}` was already decided: one decision per request id")]
    RequestIdAlreadyDecided {
        /// The request id.
        request_id: RequestId,
    },
    /// No such request.
    #[error("request `{request_id}` is unknown")]
    RequestUnknown {
        /// The request id.
        request_id: RequestId,
    },
    /// The request is not waiting for approval.
    #[error("request `{request_id}` is not waiting for approval: it is `{}`", status.name())]
    RequestNotPending {
        /// The request id.
        request_id: RequestId,
        /// Where it is instead.
        status: RequestStatus,
    },
    /// The approver is the requester (or a non-human requester's owner).
    #[error(
        "`{approver}` may not approve request `{request_id}`: requesters never approve their own requests"
    )]
    RequesterMayNotApprove {
        /// The request.
        request_id: RequestId,
        /// Who tried.
        approver: PrincipalId,
    },
    /// The approver is not in the decision's approver group (as the catalog
    /// in force defines it).
    #[error("`{approver}` may not approve request `{request_id}`: not a member of group `{group}`")]
    ApproverNotInGroup {
        /// The request.
        request_id: RequestId,
        /// Who tried.
        approver: PrincipalId,
        /// The group that approves it.
        group: String,
    },
    /// The approver already approved; N approvals must come from N people.
    #[error("`{approver}` already approved request `{request_id}`: approvers must be distinct")]
    ApproverAlreadyApproved {
        /// The request.
        request_id: RequestId,
        /// Who tried again.
        approver: PrincipalId,
    },
    /// No such grant.
    #[error("grant `{grant_id}` is unknown")]
    GrantUnknown {
        /// The grant id.
        grant_id: GrantId,
    },
    /// The grant is revoked, or its `expires_at` has passed.
    #[error("grant `{grant_id}` is not active: {detail}")]
    GrantNotActive {
        /// The grant id.
        grant_id: GrantId,
        /// Revoked (and why) or past its expiry.
        detail: String,
    },
    /// `expired` and `risk_signal` have their own commands.
    #[error("reason `{}` is not allowed in a revoke: use the expire or risk signal command", reason.name())]
    ReasonNotAllowedHere {
        /// The reason given.
        reason: RevocationReason,
    },
    /// A second offboarding of one principal.
    #[error("principal `{principal}` was already offboarded at `{offboarded_at}`")]
    PrincipalAlreadyOffboarded {
        /// The principal.
        principal: PrincipalId,
        /// When it was offboarded.
        offboarded_at: Timestamp,
    },
    /// An approval of a request whose requester was offboarded since it was
    /// decided. A refusal still closes it.
    #[error(
        "request `{request_id}` may not be approved: its requester `{principal}` was offboarded at `{offboarded_at}`"
    )]
    RequesterOffboarded {
        /// The request.
        request_id: RequestId,
        /// The requester.
        principal: PrincipalId,
        /// When it was offboarded.
        offboarded_at: Timestamp,
    },
    /// An approval of a request, or a break-glass, by a principal whose
    /// owner (the person accountable for a workload or an agent) was
    /// offboarded. A refusal of such a request still closes it.
    #[error(
        "request `{request_id}` by `{principal}` is refused: its owner `{owner}` was offboarded at `{offboarded_at}`"
    )]
    OwnerOffboarded {
        /// The request, or the break-glass invocation.
        request_id: RequestId,
        /// Who asks.
        principal: PrincipalId,
        /// Its owner.
        owner: PrincipalId,
        /// When the owner was offboarded.
        offboarded_at: Timestamp,
    },
    /// A risk signal about a principal with neither a live grant to revoke
    /// nor a scheduled request (allowed or approved, waiting for its start)
    /// to close.
    #[error(
        "principal `{principal}` has no live grant to revoke and no scheduled request to close"
    )]
    PrincipalHasNoLiveGrant {
        /// The principal.
        principal: PrincipalId,
    },
    /// An expiry before the grant's `expires_at`.
    #[error("grant `{grant_id}` expires at `{expires_at}`, not before: it is `{now}`")]
    GrantNotYetExpired {
        /// The grant.
        grant_id: GrantId,
        /// Its expiry.
        expires_at: Timestamp,
        /// The time of the command.
        now: Timestamp,
    },
    /// A revocation report for a grant that was not revoked.
    #[error("grant `{grant_id}` was not revoked: there is nothing to confirm")]
    GrantNotRevoked {
        /// The grant.
        grant_id: GrantId,
    },
    /// A revocation report after the confirmation.
    #[error("the revocation of grant `{grant_id}` is already confirmed")]
    RevocationAlreadyConfirmed {
        /// The grant.
        grant_id: GrantId,
    },
    /// Only the holder, or a non-human holder's owner, may extend.
    #[error("`{by}` may not extend grant `{grant_id}`: only its holder or the holder's owner may")]
    ExtensionNotByHolder {
        /// The grant.
        grant_id: GrantId,
        /// Who asked.
        by: PrincipalId,
    },
    /// The grant was issued after approvals; extending it would stretch
    /// what the approvers approved. Ask again instead.
    #[error(
        "grant `{grant_id}` was approved by people for its TTL: submit a new request instead of extending it"
    )]
    ExtensionNeedsApproval {
        /// The grant.
        grant_id: GrantId,
    },
    /// The new expiry is not later than the current one.
    #[error("grant `{grant_id}` already expires at `{expires_at}`: `{requested}` is not later")]
    ExtensionNotLater {
        /// The grant.
        grant_id: GrantId,
        /// The current expiry.
        expires_at: Timestamp,
        /// The expiry asked for.
        requested: Timestamp,
    },
    /// The new expiry is past the grant's hard cap.
    #[error("grant `{grant_id}` may not be extended to `{requested}`: its cap is `{cap}`")]
    ExtensionExceedsCap {
        /// The grant.
        grant_id: GrantId,
        /// The expiry asked for.
        requested: Timestamp,
        /// The grant's cap.
        cap: Timestamp,
    },
    /// A break-glass that breaks a rule.
    #[error("break-glass `{request_id}` for `{entitlement}` on `{resource}` refused: {} (`{}`)", reason.rule(), reason.code())]
    BreakGlassRefused {
        /// The invocation.
        request_id: RequestId,
        /// The entitlement asked for.
        entitlement: EntitlementId,
        /// The resource asked for.
        resource: ResourceId,
        /// The broken rule.
        reason: Reason,
    },
    /// A review of a grant that was not issued by break-glass.
    #[error("grant `{grant_id}` was not issued by break-glass: it owes no review")]
    GrantNotBreakGlass {
        /// The grant.
        grant_id: GrantId,
    },
    /// A second review.
    #[error("grant `{grant_id}` was already reviewed")]
    ReviewAlreadyRecorded {
        /// The grant.
        grant_id: GrantId,
    },
    /// The holder (or its owner) reviewing their own break-glass.
    #[error("`{reviewer}` may not review grant `{grant_id}`: nobody reviews their own break-glass")]
    ReviewerMayNotReviewOwnUse {
        /// The grant.
        grant_id: GrantId,
        /// Who tried.
        reviewer: PrincipalId,
    },
}

impl Rejection {
    /// Every code [`Rejection::code`] can return, except a refused
    /// break-glass's, which is the [`Reason`] it broke.
    pub const CODES: [&'static str; 41] = [
        "identity_rejected",
        "request_expired",
        "start_too_far_ahead",
        "start_not_due",
        "request_already_started",
        "request_not_scheduled",
        "request_not_yet_expired",
        "request_without_ttl",
        "policy_invalid",
        "policy_decision_refused",
        "policy_already_in_force",
        "policy_not_validated",
        "policy_decision_missing",
        "policy_input_invalid",
        "catalog_missing",
        "catalog_invalid",
        "catalog_already_in_force",
        "input_exceeds_bound",
        "request_id_already_decided",
        "request_unknown",
        "request_not_pending",
        "requester_may_not_approve",
        "approver_not_in_group",
        "approver_already_approved",
        "grant_unknown",
        "grant_not_active",
        "reason_not_allowed_here",
        "principal_has_no_live_grant",
        "principal_already_offboarded",
        "requester_offboarded",
        "owner_offboarded",
        "grant_not_yet_expired",
        "grant_not_revoked",
        "revocation_already_confirmed",
        "extension_not_by_holder",
        "extension_needs_approval",
        "extension_not_later",
        "extension_exceeds_cap",
        "grant_not_break_glass",
        "review_already_recorded",
        "reviewer_may_not_review_own_use",
    ];

    /// The code of the broken rule, stable and snake_case.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::RequestExpired { .. } => "request_expired",
            Rejection::StartTooFarAhead { .. } => "start_too_far_ahead",
            Rejection::StartNotDue { .. } => "start_not_due",
            Rejection::RequestAlreadyStarted { .. } => "request_already_started",
            Rejection::RequestNotScheduled { .. } => "request_not_scheduled",
            Rejection::RequestNotOpen { .. } => "request_not_open",
            Rejection::WithdrawalNotByRequester { .. } => "withdrawal_not_by_requester",
            Rejection::WithdrawalReasonRequired { .. } => "withdrawal_reason_required",
            Rejection::RequestNotYetExpired { .. } => "request_not_yet_expired",
            Rejection::RequestWithoutTtl { .. } => "request_without_ttl",
            Rejection::IdentityRejected { .. } => "identity_rejected",
            Rejection::PolicyInvalid { .. } => "policy_invalid",
            Rejection::PolicyAlreadyInForce { .. } => "policy_already_in_force",
            Rejection::PolicyDecisionRefused { .. } => "policy_decision_refused",
            Rejection::PolicyNotValidated { .. } => "policy_not_validated",
            Rejection::PolicyDecisionMissing { .. } => "policy_decision_missing",
            Rejection::PolicyInputInvalid { .. } => "policy_input_invalid",
            Rejection::CatalogMissing => "catalog_missing",
            Rejection::CatalogInvalid(_) => "catalog_invalid",
            Rejection::CatalogAlreadyInForce { .. } => "catalog_already_in_force",
            Rejection::InputExceedsBound { .. } => "input_exceeds_bound",
            Rejection::RequestIdAlreadyDecided { .. } => "request_id_already_decided",
            Rejection::RequestUnknown { .. } => "request_unknown",
            Rejection::RequestNotPending { .. } => "request_not_pending",
            Rejection::RequesterMayNotApprove { .. } => "requester_may_not_approve",
            Rejection::ApproverNotInGroup { .. } => "approver_not_in_group",
            Rejection::ApproverAlreadyApproved { .. } => "approver_already_approved",
            Rejection::GrantUnknown { .. } => "grant_unknown",
            Rejection::GrantNotActive { .. } => "grant_not_active",
            Rejection::ReasonNotAllowedHere { .. } => "reason_not_allowed_here",
            Rejection::PrincipalHasNoLiveGrant { .. } => "principal_has_no_live_grant",
            Rejection::PrincipalAlreadyOffboarded { .. } => "principal_already_offboarded",
            Rejection::RequesterOffboarded { .. } => "requester_offboarded",
            Rejection::OwnerOffboarded { .. } => "owner_offboarded",
            Rejection::GrantNotYetExpired { .. } => "grant_not_yet_expired",
            Rejection::GrantNotRevoked { .. } => "grant_not_revoked",
            Rejection::RevocationAlreadyConfirmed { .. } => "revocation_already_confirmed",
            Rejection::ExtensionNotByHolder { .. } => "extension_not_by_holder",
            Rejection::ExtensionNeedsApproval { .. } => "extension_needs_approval",
            Rejection::ExtensionNotLater { .. } => "extension_not_later",
            Rejection::ExtensionExceedsCap { .. } => "extension_exceeds_cap",
            Rejection::BreakGlassRefused { reason, .. } => reason.code(),
            Rejection::GrantNotBreakGlass { .. } => "grant_not_break_glass",
            Rejection::ReviewAlreadyRecorded { .. } => "review_already_recorded",
            Rejection::ReviewerMayNotReviewOwnUse { .. } => "reviewer_may_not_review_own_use",
        }
    }
}
