//! Commands: the inputs [`decide`](crate::decide) turns into events.

use grantledger_events::{
    EntitlementId, GrantId, Principal, PrincipalId, RequestId, ResourceId, ReviewVerdict,
    RevocationReason, SubmitRequest, Timestamp,
};

/// The longest free text a command may carry (justification, comment,
/// detail, ticket, worker name, error, reason, notes), in bytes.
pub const TEXT_BYTES_MAX: usize = 4096;

/// The most bytes a published policy set may hold (Cedar text and exception
/// rules together): it is stored whole in one record.
pub const POLICY_BYTES_MAX: usize = 512 * 1024;

/// The longest identity token a request may carry, in bytes.
pub const IDENTITY_TOKEN_BYTES_MAX: usize = 8 * 1024;

/// The most groups a request may name for its principal.
pub const GROUPS_PER_REQUEST_MAX: usize = 64;

/// The most bytes a request's context may hold, as compact JSON.
pub const CONTEXT_BYTES_MAX: usize = 16 * 1024;

/// The most actions one request may name.
pub const ACTIONS_PER_REQUEST_MAX: usize = 32;

/// How far ahead of its submission a request may schedule its start (its
/// `starts_at_ms`): 30 days. A maintenance window is planned days ahead, not
/// months; a decision taken against today's catalog and approvers should not
/// grant access in a distant future they no longer describe.
pub const SCHEDULE_AHEAD_MAX_MS: i64 = 30 * 24 * 3_600_000;

/// One input to the ledger. The envelope (tenant, producer, causation) is
/// the caller's business; the core sees only the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Put a catalog in force. Later decisions use it and record its hash.
    PublishCatalog {
        /// The catalog, TOML, exactly as it will be hashed and stored.
        text: String,
        /// Who publishes it.
        published_by: PrincipalId,
    },
    /// A principal asks for an entitlement. Always recorded with its
    /// decision, unless its request id was seen before.
    Submit(SubmitRequest),
    /// Put a Cedar policy set (and exception rules) in force. The core
    /// cannot parse Cedar: it records the texts only when the caller says
    /// the policy engine validated them against the catalog in force
    /// ([`EngineInput::PolicyValidated`](crate::EngineInput)).
    PublishPolicy {
        /// The Cedar policies, exactly as they will be hashed and stored.
        policy_text: String,
        /// The exception rules (TOML), if any.
        exceptions_text: Option<String>,
        /// Who publishes it.
        published_by: PrincipalId,
    },
    /// An approver approves a request waiting for approval.
    Approve {
        /// The request.
        request_id: RequestId,
        /// Who approves; a member of the decision's approver group.
        approver: PrincipalId,
        /// The approver's words.
        comment: String,
    },
    /// An approver refuses a request waiting for approval, or an approved
    /// request waiting for its scheduled start; it is closed.
    Deny {
        /// The request.
        request_id: RequestId,
        /// Who refuses; a member of the decision's approver group.
        approver: PrincipalId,
        /// The approver's words.
        comment: String,
    },
    /// End one live grant early.
    Revoke {
        /// The grant.
        grant_id: GrantId,
        /// `manual`, `task_complete` or `owner_gone`; `expired` and
        /// `risk_signal` have their own commands.
        reason: RevocationReason,
        /// Who revokes it.
        by: PrincipalId,
        /// The task, the operator's note.
        detail: String,
    },
    /// A risk signal about a principal: every live grant it holds is
    /// revoked with reason `risk_signal`, and every request of it still
    /// waiting for approvers, or allowed or approved and waiting for its
    /// scheduled start, is closed (`RequestExpired`, reason `risk_signal`),
    /// in the same input, so no approval or start grants it later. Refused
    /// (`principal_has_no_live_grant`) when there is none of these.
    RiskSignal {
        /// The principal at risk.
        principal: PrincipalId,
        /// Who raised the signal (a detector, an analyst).
        by: PrincipalId,
        /// The signal.
        detail: String,
    },
    /// A principal left (an HR system or identity provider says so): the
    /// offboarding is recorded, every live grant the principal holds, and
    /// every live grant of a workload or agent naming it as owner, is
    /// revoked with reason `owner_gone`; its later requests are denied
    /// (`principal_offboarded`), as are those of principals naming it as
    /// owner (`owner_offboarded`), their pending requests can no longer be
    /// approved and their scheduled starts lapse. Refused for a principal
    /// offboarded before.
    Offboard {
        /// Who left.
        principal: PrincipalId,
        /// Who says so (the HR system, the identity provider).
        by: PrincipalId,
        /// The signal.
        detail: String,
    },
    /// Record that a grant reached its `expires_at` (sent by the expiry
    /// timer). Refused before `expires_at`.
    Expire {
        /// The grant.
        grant_id: GrantId,
    },
    /// A scheduled request's start came (sent by the expiry timer): its
    /// grant is issued now, to expire at the start plus the decided TTL.
    /// Refused before the start, and for a request with no scheduled start
    /// to come (a second start timer of a request already issued is refused
    /// as `request_already_started`; one of a request closed meanwhile, by
    /// a risk signal say, as `request_not_scheduled`). A start that can no
    /// longer be honoured (its principal or its principal's owner was
    /// offboarded, or the whole window passed) records the request as
    /// expired instead.
    Start {
        /// The scheduled request.
        request_id: RequestId,
    },
    /// A request waiting for approvers reached its request TTL (sent by the
    /// expiry timer): it is recorded as expired and closed. Refused before
    /// the deadline, and for a request no longer waiting for approvers.
    ExpireRequest {
        /// The request.
        request_id: RequestId,
    },
    /// The requester (or, for a workload or an agent, its owner) withdraws
    /// a request still waiting for approvers, or allowed or approved and
    /// waiting for its scheduled start (the maintenance was postponed, the
    /// task was cancelled): it is closed (`RequestWithdrawn`) and nothing is
    /// granted for it. Refused (`request_not_open`) once it was granted,
    /// denied or closed, for anyone else (`withdrawal_not_by_requester`),
    /// and without a reason (`withdrawal_reason_required`).
    Withdraw {
        /// The request.
        request_id: RequestId,
        /// Who withdraws it.
        by: PrincipalId,
        /// Why.
        reason: String,
    },
    /// A revocation worker removed the access at the target.
    ConfirmRevocation {
        /// The revoked grant.
        grant_id: GrantId,
        /// Which worker.
        worker: String,
    },
    /// A revocation worker failed to remove the access and will retry; the
    /// grant stays in revocation debt.
    ReportRevocationFailure {
        /// The revoked grant.
        grant_id: GrantId,
        /// Which worker.
        worker: String,
        /// What went wrong.
        error: String,
        /// The worker's attempt number, from 1.
        attempt: u32,
    },
    /// Move a live grant's expiry later, never past its cap. Only the
    /// holder (or a non-human's owner) may, and only for grants the policy
    /// issued alone: what approvers approved is not stretched behind them.
    Extend {
        /// The grant.
        grant_id: GrantId,
        /// Who asks.
        by: PrincipalId,
        /// The new expiry.
        expires_at: Timestamp,
    },
    /// Emergency access without prior approval, on a break-glass-eligible
    /// entitlement, for a person, within the entry's break-glass cap. The
    /// grant owes a review.
    BreakGlass {
        /// The invocation's request id (also an idempotency key).
        request_id: RequestId,
        /// Who breaks the glass; a human.
        principal: Principal,
        /// Which entitlement.
        entitlement: EntitlementId,
        /// On what.
        resource: ResourceId,
        /// Which actions.
        actions: Vec<String>,
        /// Why; mandatory.
        reason: String,
        /// How long, within the entry's break-glass cap.
        ttl_ms: i64,
    },
    /// The after-the-fact review of a break-glass grant.
    Review {
        /// The break-glass grant.
        grant_id: GrantId,
        /// Who reviews; never the holder or its owner.
        reviewer: PrincipalId,
        /// Justified or not.
        verdict: ReviewVerdict,
        /// The reviewer's notes.
        notes: String,
    },
}

impl Command {
    /// The command's snake_case name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::PublishCatalog { .. } => "publish_catalog",
            Command::Submit(_) => "submit",
            Command::PublishPolicy { .. } => "publish_policy",
            Command::Approve { .. } => "approve",
            Command::Deny { .. } => "deny",
            Command::Revoke { .. } => "revoke",
            Command::RiskSignal { .. } => "risk_signal",
            Command::Expire { .. } => "expire",
            Command::Start { .. } => "start",
            Command::ExpireRequest { .. } => "expire_request",
            Command::Withdraw { .. } => "withdraw",
            Command::ConfirmRevocation { .. } => "confirm_revocation",
            Command::ReportRevocationFailure { .. } => "report_revocation_failure",
            Command::Extend { .. } => "extend",
            Command::BreakGlass { .. } => "break_glass",
            Command::Review { .. } => "review",
            Command::Offboard { .. } => "offboard",
        }
    }
}
