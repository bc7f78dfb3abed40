use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EntitlementId, GrantId, Principal, PrincipalId, RequestId, ResourceId, TenantId, Timestamp};

/// One committed fact of the grant lifecycle.
///
/// The variant order is part of the frozen body format (bincode writes the
/// variant index): append new variants at the end, never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A catalog of approved entitlements came into force.
    CatalogPublished(CatalogPublished),
    /// A principal asked for an entitlement on a resource.
    RequestSubmitted(RequestSubmitted),
    /// The policy decided a request: allow, needs approval, or deny.
    DecisionRecorded(DecisionRecorded),
    /// An approver approved or denied a pending request.
    ApprovalRecorded(ApprovalRecorded),
    /// Access was granted, until `expires_at`.
    GrantIssued(GrantIssued),
    /// A live grant's expiry moved later, never past its cap.
    GrantExtended(GrantExtended),
    /// A grant ended; revocation workers must remove the access.
    GrantRevoked(GrantRevoked),
    /// A revocation worker removed the access at the target.
    RevocationConfirmed(RevocationConfirmed),
    /// A revocation worker failed to remove the access; it will retry.
    RevocationFailed(RevocationFailed),
    /// Emergency access was taken without prior approval.
    BreakGlassInvoked(BreakGlassInvoked),
    /// The after-the-fact review that every break-glass grant owes.
    ReviewRecorded(ReviewRecorded),
    /// A Cedar policy set (and its exception rules) came into force; from
    /// then on the policy engine decides requests. Appended in codec 2.
    PolicyPublished(PolicyPublished),
    /// A principal left (an HR system or identity provider said so): its
    /// live grants are revoked with it and it may ask for nothing more.
    /// Appended to codec 2 (kind 13).
    PrincipalOffboarded(PrincipalOffboarded),
    /// A request's identity token did not verify: the refusal, never the
    /// token. Appended to codec 2 (kind 14).
    IdentityRefused(IdentityRefused),
    /// A request lapsed without a grant: it waited for approvers past its
    /// request TTL, or its scheduled start could no longer be honoured.
    /// Appended in codec 3 (kind 15).
    RequestExpired(RequestExpired),
    /// A request waiting for approvers or for its scheduled start was
    /// withdrawn by its requester (or the requester's owner) before it was
    /// granted. Appended to codec 3 (kind 16).
    RequestWithdrawn(RequestWithdrawn),
}

/// The stable identity of an event variant: a code for record headers and a
/// snake_case name for NATS subjects and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// [`Event::CatalogPublished`]
    CatalogPublished,
    /// [`Event::RequestSubmitted`]
    RequestSubmitted,
    /// [`Event::DecisionRecorded`]
    DecisionRecorded,
    /// [`Event::ApprovalRecorded`]
    ApprovalRecorded,
    /// [`Event::GrantIssued`]
    GrantIssued,
    /// [`Event::GrantExtended`]
    GrantExtended,
    /// [`Event::GrantRevoked`]
    GrantRevoked,
    /// [`Event::RevocationConfirmed`]
    RevocationConfirmed,
    /// [`Event::RevocationFailed`]
    RevocationFailed,
    /// [`Event::BreakGlassInvoked`]
    BreakGlassInvoked,
    /// [`Event::ReviewRecorded`]
    ReviewRecorded,
    /// [`Event::PolicyPublished`]
    PolicyPublished,
    /// [`Event::PrincipalOffboarded`]
    PrincipalOffboarded,
    /// [`Event::IdentityRefused`]
    IdentityRefused,
    /// [`Event::RequestExpired`]
    RequestExpired,
    /// [`Event::RequestWithdrawn`]
    RequestWithdrawn,
}

impl EventKind {
    /// Every kind, in code order.
    pub const ALL: [EventKind; 16] = [
        EventKind::CatalogPublished,
        EventKind::RequestSubmitted,
        EventKind::DecisionRecorded,
        EventKind::ApprovalRecorded,
        EventKind::GrantIssued,
        EventKind::GrantExtended,
        EventKind::GrantRevoked,
        EventKind::RevocationConfirmed,
        EventKind::RevocationFailed,
        EventKind::BreakGlassInvoked,
        EventKind::ReviewRecorded,
        EventKind::PolicyPublished,
        EventKind::PrincipalOffboarded,
        EventKind::IdentityRefused,
        EventKind::RequestExpired,
        EventKind::RequestWithdrawn,
    ];

    /// The code stored in the record header. Frozen: never renumber.
    pub fn code(self) -> u16 {
        match self {
            EventKind::CatalogPublished => 1,
            EventKind::RequestSubmitted => 2,
            EventKind::DecisionRecorded => 3,
            EventKind::ApprovalRecorded => 4,
            EventKind::GrantIssued => 5,
            EventKind::GrantExtended => 6,
            EventKind::GrantRevoked => 7,
            EventKind::RevocationConfirmed => 8,
            EventKind::RevocationFailed => 9,
            EventKind::BreakGlassInvoked => 10,
            EventKind::ReviewRecorded => 11,
            EventKind::PolicyPublished => 12,
            EventKind::PrincipalOffboarded => 13,
            EventKind::IdentityRefused => 14,
            EventKind::RequestExpired => 15,
            EventKind::RequestWithdrawn => 16,
        }
    }

    /// The kind with this header code, if any.
    pub fn from_code(code: u16) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The snake_case name, as in `ledger.events.<tenant>.<name>`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::CatalogPublished => "catalog_published",
            EventKind::RequestSubmitted => "request_submitted",
            EventKind::DecisionRecorded => "decision_recorded",
            EventKind::ApprovalRecorded => "approval_recorded",
            EventKind::GrantIssued => "grant_issued",
            EventKind::GrantExtended => "grant_extended",
            EventKind::GrantRevoked => "grant_revoked",
            EventKind::RevocationConfirmed => "revocation_confirmed",
            EventKind::RevocationFailed => "revocation_failed",
            EventKind::BreakGlassInvoked => "break_glass_invoked",
            EventKind::ReviewRecorded => "review_recorded",
            EventKind::PolicyPublished => "policy_published",
            EventKind::PrincipalOffboarded => "principal_offboarded",
            EventKind::IdentityRefused => "identity_refused",
            EventKind::RequestExpired => "request_expired",
            EventKind::RequestWithdrawn => "request_withdrawn",
        }
    }
}

impl Event {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::CatalogPublished(_) => EventKind::CatalogPublished,
            Event::RequestSubmitted(_) => EventKind::RequestSubmitted,
            Event::DecisionRecorded(_) => EventKind::DecisionRecorded,
            Event::ApprovalRecorded(_) => EventKind::ApprovalRecorded,
            Event::GrantIssued(_) => EventKind::GrantIssued,
            Event::GrantExtended(_) => EventKind::GrantExtended,
            Event::GrantRevoked(_) => EventKind::GrantRevoked,
            Event::RevocationConfirmed(_) => EventKind::RevocationConfirmed,
            Event::RevocationFailed(_) => EventKind::RevocationFailed,
            Event::BreakGlassInvoked(_) => EventKind::BreakGlassInvoked,
            Event::ReviewRecorded(_) => EventKind::ReviewRecorded,
            Event::PolicyPublished(_) => EventKind::PolicyPublished,
            Event::PrincipalOffboarded(_) => EventKind::PrincipalOffboarded,
            Event::IdentityRefused(_) => EventKind::IdentityRefused,
            Event::RequestExpired(_) => EventKind::RequestExpired,
            Event::RequestWithdrawn(_) => EventKind::RequestWithdrawn,
        }
    }
}

/// What caused an event, for tracing a record back to its input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Causation {
    /// An input message (a NATS message id, an HTTP request id, a CLI call).
    Input(String),
    /// An earlier record of this log, by sequence number.
    Record(u64),
    /// A timer (an expiry or a scheduled start) came due.
    Timer,
}

/// The body of every record: the event and where it came from.
///
/// The sequence number and the ledger time are in the record header, which
/// the log assigns; [`Committed`] pairs them with the envelope when read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The partition this event belongs to.
    pub tenant: TenantId,
    /// Who sent the input that caused the event (a producer, an approver
    /// channel, the ledger itself).
    pub producer: String,
    /// The request this event is about; every event of one grant's life
    /// shares it.
    pub correlation: RequestId,
    /// The input or record that caused this event.
    pub causation: Causation,
    /// The fact itself.
    pub event: Event,
}

/// An envelope as read back from the log, with what the log assigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Committed {
    /// The record's sequence number, from 1.
    pub sequence: u64,
    /// The ledger time the record was stamped with.
    pub time: Timestamp,
    /// The record's blake3 hash, hex.
    pub hash: String,
    /// The event and its provenance.
    pub envelope: Envelope,
}

/// The index keys of an envelope: what the log's secondary indices file it
/// under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexValues<'a> {
    /// The request id.
    pub request: Option<&'a str>,
    /// The grant id, for grant events.
    pub grant: Option<&'a str>,
    /// Every principal named: requester, owner, approver, reviewer.
    pub principals: Vec<&'a str>,
    /// The resource, for events that name one.
    pub resource: Option<&'a str>,
}

impl Envelope {
    /// The secondary index keys of this envelope.
    pub fn index_values(&self) -> IndexValues<'_> {
        let mut values = IndexValues {
            request: Some(self.correlation.as_str()),
            ..IndexValues::default()
        };
        match &self.event {
            Event::CatalogPublished(e) => values.principals.push(e.published_by.as_str()),
            Event::PolicyPublished(e) => values.principals.push(e.published_by.as_str()),
            Event::RequestSubmitted(e) => {
                push_principal(&mut values, &e.principal);
                values.resource = Some(e.resource.as_str());
            }
            Event::DecisionRecorded(_) => {}
            Event::ApprovalRecorded(e) => values.principals.push(e.approver.as_str()),
            Event::GrantIssued(e) => {
                values.grant = Some(e.grant_id.as_str());
                push_principal(&mut values, &e.principal);
                values.resource = Some(e.resource.as_str());
            }
            Event::GrantExtended(e) => values.grant = Some(e.grant_id.as_str()),
            Event::GrantRevoked(e) => {
                values.grant = Some(e.grant_id.as_str());
                if let Some(by) = &e.revoked_by {
                    values.principals.push(by.as_str());
                }
            }
            Event::RevocationConfirmed(e) => values.grant = Some(e.grant_id.as_str()),
            Event::RevocationFailed(e) => values.grant = Some(e.grant_id.as_str()),
            Event::BreakGlassInvoked(e) => {
                push_principal(&mut values, &e.principal);
                values.resource = Some(e.resource.as_str());
            }
            Event::ReviewRecorded(e) => {
                values.grant = Some(e.grant_id.as_str());
                values.principals.push(e.reviewer.as_str());
            }
            Event::PrincipalOffboarded(e) => {
                values.principals.push(e.principal.as_str());
                values.principals.push(e.by.as_str());
            }
            Event::IdentityRefused(e) => {
                push_principal(&mut values, &e.principal);
                values.resource = Some(e.resource.as_str());
            }
            Event::RequestExpired(_) => {}
            Event::RequestWithdrawn(e) => values.principals.push(e.withdrawn_by.as_str()),
        }
        values
    }
}

fn push_principal<'a>(values: &mut IndexValues<'a>, principal: &'a Principal) {
    values.principals.push(principal.id.as_str());
    if let Some(owner) = &principal.owner {
        values.principals.push(owner.as_str());
    }
}

/// A catalog of approved entitlements, published into the log so every
/// decision can be re-checked against the text that was in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogPublished {
    /// blake3 of `text`, hex.
    pub catalog_hash: String,
    /// The catalog, TOML, exactly as published.
    pub text: String,
    /// Who published it.
    pub published_by: PrincipalId,
}

/// A principal asked for an entitlement on a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSubmitted {
    /// The producer's idempotency key.
    pub request_id: RequestId,
    /// Who asks.
    pub principal: Principal,
    /// Which catalog entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// Which actions, a subset of the entitlement's.
    pub actions: Vec<String>,
    /// Why, in the requester's words.
    pub justification: String,
    /// A ticket or change record, when the entry requires one.
    pub ticket: Option<String>,
    /// The TTL asked for; the entry's default when absent.
    pub ttl_requested_ms: Option<i64>,
    /// The scheduled start asked for (a maintenance window): the grant is
    /// issued when it comes, not before, and its TTL counts from it. Added
    /// in codec 3; every older request reads as `None` (no scheduled start).
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
}

impl RequestSubmitted {
    /// What the log records of a producer's request: everything but the
    /// tenant (the envelope's), the intake-only context and groups, and the
    /// identity token, which is never recorded.
    pub fn from_request(request: &crate::SubmitRequest) -> RequestSubmitted {
        RequestSubmitted {
            request_id: request.request_id.clone(),
            principal: request.principal.clone(),
            entitlement: request.entitlement.clone(),
            resource: request.resource.clone(),
            actions: request.actions.clone(),
            justification: request.justification.clone(),
            ticket: request.ticket.clone(),
            ttl_requested_ms: request.ttl_ms,
            starts_at: request.starts_at_ms.map(Timestamp),
        }
    }
}

/// The outcome of a policy decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Granted at once.
    Allow,
    /// Granted once `approvers_required` distinct members of `group` approve.
    NeedsApproval {
        /// How many distinct approvers.
        approvers_required: u32,
        /// The approver group, from the catalog.
        group: String,
    },
    /// Refused; final.
    Deny,
}

/// The policy's decision on one request. One per request id, ever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecorded {
    /// The request decided.
    pub request_id: RequestId,
    /// Allow, needs approval, or deny.
    pub outcome: DecisionOutcome,
    /// Rule codes that determined the outcome, sorted (for a deny, the
    /// broken rules, such as `ttl_exceeds_entry_max`).
    pub reasons: Vec<String>,
    /// The catalog entitlement the decision applied.
    pub entitlement: EntitlementId,
    /// The hash of the catalog in force at this sequence number.
    pub catalog_hash: String,
    /// The TTL the grant will have if issued.
    pub ttl_granted_ms: i64,
    /// What decided it: the catalog rules alone (no policy set published
    /// yet; every codec-1 decision reads as this), or the policy engine,
    /// with everything a replay needs to re-evaluate it. Added in codec 2.
    pub basis: DecisionBasis,
}

/// What made a decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionBasis {
    /// The catalog rules of `grantledger-core` alone: no policy set was in
    /// force, or the principal or its owner had been offboarded (the core
    /// denies its requests, `principal_offboarded` or `owner_offboarded`,
    /// whatever a policy says). A replay re-runs them on the recorded
    /// request.
    #[default]
    Catalog,
    /// The policy engine (catalog + Cedar policies + exception rules).
    Policy(PolicyBasis),
}

/// The policy engine's account of one decision: the policy set in force,
/// what determined the outcome, the evaluator, and every value it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBasis {
    /// The `policy_hash` of the [`PolicyPublished`] in force. With the
    /// decision's `catalog_hash` it names everything that was in force.
    pub policy_hash: String,
    /// The `@id`s of the policies that determined the outcome, sorted and
    /// distinct. Empty for a deny by the catalog or the combination rules,
    /// and for the default deny, which `no_permit_matched` says explicitly.
    pub determining_policies: Vec<String>,
    /// True when no permit policy was satisfied (the default deny).
    pub no_permit_matched: bool,
    /// True when the request was decided as a time-boxed exception.
    pub exception: bool,
    /// The `cedar-policy` version that evaluated it.
    pub cedar_version: String,
    /// Every value the engine evaluated, sorted by dotted name
    /// (`context.device_managed`, `principal.groups`, `entitlement.risk_tier`).
    pub evaluated: Vec<EvaluatedValue>,
}

/// One value a policy decision evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluatedValue {
    /// The dotted name, such as `context.on_call`.
    pub name: String,
    /// The value as compact JSON text (`true`, `42`, `"CHG-1"`, `["a","b"]`).
    pub value_json: String,
}

/// A policy set came into force: the Cedar text and the exception rules,
/// exactly as published, so every later decision can be re-evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPublished {
    /// [`policy_hash`] of the two texts, hex; decisions cite it.
    pub policy_hash: String,
    /// The Cedar policies, exactly as published.
    pub policy_text: String,
    /// The exception rules (TOML), exactly as published, if any.
    pub exceptions_text: Option<String>,
    /// Who published it.
    pub published_by: PrincipalId,
}

/// The hash a [`PolicyPublished`] is known by: blake3 in derive-key mode
/// (context `grantledger 2026 published policy v1`) over the length-prefixed
/// policy text, then a presence byte and the length-prefixed exception rules.
/// Lengths are u64 big-endian.
pub fn policy_hash(policy_text: &str, exceptions_text: Option<&str>) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("grantledger 2026 published policy v1");
    hasher.update(&(policy_text.len() as u64).to_be_bytes());
    hasher.update(policy_text.as_bytes());
    match exceptions_text {
        None => {
            hasher.update(&[0]);
        }
        Some(text) => {
            hasher.update(&[1]);
            hasher.update(&(text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// An approver's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalVerdict {
    /// Approve.
    Approve,
    /// Deny; ends the request.
    Deny,
}

/// An approver approved or denied a pending request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecorded {
    /// The pending request.
    pub request_id: RequestId,
    /// Who approved or denied; a member of the entry's approver group.
    pub approver: PrincipalId,
    /// Approve or deny.
    pub verdict: ApprovalVerdict,
    /// The approver's words.
    pub comment: String,
}

/// Access was granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantIssued {
    /// The grant, derived from the request id.
    pub grant_id: GrantId,
    /// The request that caused it.
    pub request_id: RequestId,
    /// Who holds it.
    pub principal: Principal,
    /// Which entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// Which actions.
    pub actions: Vec<String>,
    /// When it started.
    pub issued_at: Timestamp,
    /// When it ends; never later than `issued_at` plus the entry's maximum.
    pub expires_at: Timestamp,
    /// The latest any extension may take it to (the entry's hard cap from
    /// the first issue).
    pub expires_at_cap: Timestamp,
    /// Issued by break-glass, without prior approval.
    pub break_glass: bool,
}

/// A live grant's expiry moved later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantExtended {
    /// The grant.
    pub grant_id: GrantId,
    /// Who asked for the extension.
    pub extended_by: PrincipalId,
    /// The expiry before.
    pub expires_at_previous: Timestamp,
    /// The expiry now; never past the grant's `expires_at_cap`.
    pub expires_at: Timestamp,
}

/// Why a grant ended.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// Its `expires_at` came.
    Expired,
    /// The task it was granted for is done.
    TaskComplete,
    /// A risk signal about the principal revoked all its grants.
    RiskSignal,
    /// Someone revoked it by hand.
    Manual,
    /// The principal's owner left or the principal was offboarded.
    OwnerGone,
}

impl RevocationReason {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Expired => "expired",
            RevocationReason::TaskComplete => "task_complete",
            RevocationReason::RiskSignal => "risk_signal",
            RevocationReason::Manual => "manual",
            RevocationReason::OwnerGone => "owner_gone",
        }
    }
}

/// A grant ended. Revocation workers must now remove the access and confirm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRevoked {
    /// The grant.
    pub grant_id: GrantId,
    /// Why.
    pub reason: RevocationReason,
    /// Who revoked it, for manual, task-complete and risk-signal revocations.
    pub revoked_by: Option<PrincipalId>,
    /// Free text: the signal, the task, the operator's note.
    pub detail: String,
}

/// A revocation worker removed the access at the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfirmed {
    /// The revoked grant.
    pub grant_id: GrantId,
    /// Which worker.
    pub worker: String,
}

/// A revocation worker failed to remove the access; the grant stays in the
/// revocation debt until confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationFailed {
    /// The revoked grant.
    pub grant_id: GrantId,
    /// Which worker.
    pub worker: String,
    /// What went wrong.
    pub error: String,
    /// The worker's attempt number, from 1.
    pub attempt: u32,
}

/// Emergency access taken without prior approval, with a mandatory reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassInvoked {
    /// The request id of the invocation.
    pub request_id: RequestId,
    /// Who broke the glass.
    pub principal: Principal,
    /// Which break-glass-eligible entitlement.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// Which actions.
    pub actions: Vec<String>,
    /// Why; mandatory.
    pub reason: String,
    /// The TTL, within the entry's break-glass cap.
    pub ttl_ms: i64,
}

/// A reviewer's judgement of a break-glass use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVerdict {
    /// The use was justified.
    Justified,
    /// The use was not justified; a finding.
    Unjustified,
}

/// The review a break-glass grant owes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRecorded {
    /// The break-glass grant.
    pub grant_id: GrantId,
    /// Who reviewed it.
    pub reviewer: PrincipalId,
    /// Justified or not.
    pub verdict: ReviewVerdict,
    /// The reviewer's notes.
    pub notes: String,
}

/// A principal left: an HR system or identity provider signalled that the
/// person (or the workload or agent) is gone. Its live grants, and those of
/// the workloads and agents it owns, are revoked in the same input
/// (`GrantRevoked{reason: owner_gone}`), a request it makes afterwards is
/// denied (`principal_offboarded`), as is one by a workload or agent naming
/// it as owner (`owner_offboarded`), and a principal is offboarded at most
/// once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalOffboarded {
    /// Who left.
    pub principal: PrincipalId,
    /// Who said so (the HR system, the identity provider).
    pub by: PrincipalId,
    /// The signal, in the sender's words (a ticket, a termination record).
    pub detail: String,
}

/// A request whose identity token did not verify at intake. The first
/// refusal of a request id is recorded; the same request id with a failing
/// token again gets this refusal back and records nothing. The refusal does
/// not use up the request id: a later submission with a token that verifies
/// is decided as usual. The token itself is never recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRefused {
    /// The request refused.
    pub request_id: RequestId,
    /// Who the request claimed to be.
    pub principal: Principal,
    /// What it asked for.
    pub entitlement: EntitlementId,
    /// On what.
    pub resource: ResourceId,
    /// The reason code (`bad_signature`, `expired`, `alg_none`,
    /// `wrong_audience`, `unknown_issuer`, `identity_unverified`, ...).
    pub reason: String,
    /// What was wrong, naming the value (never the token).
    pub detail: String,
}

/// Why a request lapsed without a grant.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RequestExpiryReason {
    /// It waited for approvers past its entry's request TTL
    /// (`request_ttl_s`, counted from its decision).
    RequestTtl,
    /// Its scheduled start came too late to honour: the whole window (the
    /// start plus the decided TTL) had passed when the start timer came.
    StartWindowPassed,
    /// Its principal was offboarded before its scheduled start.
    PrincipalOffboarded,
    /// A risk signal about its principal came while it waited for
    /// approvers or for its scheduled start: the signal closes it, in the
    /// same input as the revocations of the
    /// principal's live grants. Appended to codec 3 (the next variant
    /// index; the earlier ones are unchanged).
    RiskSignal,
    /// Its principal's owner (the person accountable for a workload or an
    /// agent) was offboarded before its scheduled start. Appended to codec 3
    /// after `risk_signal`.
    OwnerOffboarded,
}

impl RequestExpiryReason {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            RequestExpiryReason::RequestTtl => "request_ttl",
            RequestExpiryReason::StartWindowPassed => "start_window_passed",
            RequestExpiryReason::PrincipalOffboarded => "principal_offboarded",
            RequestExpiryReason::RiskSignal => "risk_signal",
            RequestExpiryReason::OwnerOffboarded => "owner_offboarded",
        }
    }
}

/// A request lapsed without a grant, recorded when a timer said its time
/// came: a request waiting for approvers at its request TTL (no approval is
/// taken after it), or a scheduled request whose start could not be
/// honoured; or closed by a risk signal about its principal while it
/// waited for approvers or for its scheduled start. The request is closed; nothing was granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestExpired {
    /// The request.
    pub request_id: RequestId,
    /// Why it lapsed.
    pub reason: RequestExpiryReason,
    /// The deadline that passed: the decision plus the request TTL, the
    /// start plus the decided TTL, (offboarded, or its owner offboarded) the
    /// scheduled start, or (risk signal) the signal's own ledger time.
    pub expired_at: Timestamp,
}

/// A request closed by the one who asked before anything was granted: it
/// waited for approvers, or (allowed or approved) for its scheduled start.
/// Only the requester, or the owner of a workload or agent that asked, may
/// withdraw it; nothing is granted after it. Appended to codec 3 (kind 16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestWithdrawn {
    /// The request.
    pub request_id: RequestId,
    /// Who withdrew it: the requester, or its owner.
    pub withdrawn_by: PrincipalId,
    /// Why (the maintenance was postponed, the task was cancelled).
    pub reason: String,
}
