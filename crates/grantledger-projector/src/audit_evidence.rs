//! audit-evidence: for every request and grant the chain of evidence
//! (request, decision with its reasons and catalog hash, approvals,
//! break-glass, issuance, extensions, revocation, failures, confirmation,
//! review), each item with its sequence number and record hash; a time index
//! that answers "who had access to R at T, and why", "what could P do at T,
//! and why" and `why(P, R, T)`; and findings.
//!
//! The time index is keyed by `issued_at`. No grant outlives its issue by
//! more than its `expires_at_cap - issued_at`, so the projection keeps the
//! longest such span it has seen (the horizon) and a question about time
//! `T` scans only grants issued in `(T - horizon, T]`.
//!
//! Findings:
//! - break-glass without a `ReviewRecorded` within a window;
//! - revocation debt older than a threshold (revoked, unconfirmed);
//! - a request denied (by policy or by an approver) and later asked again by
//!   the same principal for the same entitlement and resource with another
//!   justification;
//! - a grant that outlived its owner's offboarding: a grant live when its
//!   holder's owner (a workload's or agent's accountable person), or the
//!   holder itself, was offboarded (`PrincipalOffboarded`), and still giving
//!   access more than the review window after that. The ledger revokes the
//!   offboarded principal's own grants at once; its workloads' grants are
//!   for people to review and revoke in time.
//!
//! A request with a scheduled start shows as `scheduled_request` (the
//! request and its `starts_at`); its issuance, by the start timer, at or
//! after it. A request that lapsed without a grant ends its chain with
//! `request_expiry` (why, and the deadline that passed); one its requester
//! withdrew, with `withdrawal` (who, and why).
//!
//! Self-approval attempts are not findings: the ledger refuses them, so
//! they never reach the log. An identity refusal (`IdentityRefused`) is in
//! its request's evidence.
//!
//! Tables (first key byte):
//! - `0x30` request id, sequence → evidence item.
//! - `0x31` grant id → the grant's summary.
//! - `0x32` resource, issued_at, grant id → span; `0x33` principal,
//!   issued_at, grant id → span; `0x34` principal, resource, issued_at,
//!   grant id → span. A span is `(end, resource or principal)`.
//! - `0x35` issued_at, grant id → review time: break-glass grants.
//! - `0x36` revoked_at, grant id → nothing: revoked, unconfirmed grants.
//! - `0x37` sequence → a denied request retried with another justification.
//! - `0x38` principal, entitlement, resource → the last denial.
//! - `0x39` request id → what an open request asked (until closed).
//! - `0x3a` request id → how many evidence items it has (kept or not).
//! - `0x3b` owner, issued_at, grant id → span (the grants of a workload or
//!   agent, by its owner).
//! - `0x3c` offboarded_at, principal → the `PrincipalOffboarded` sequence.
//! - `0x3e` → the catalog in force; `0x3f` → the horizon.

use grantledger_events::{
    ApprovalVerdict, Committed, DecisionOutcome, EntitlementId, Event, GrantId, Principal,
    PrincipalId, RequestExpiryReason, RequestId, ResourceId, ReviewVerdict, RevocationReason,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::{ProjectorError, ProjectorErrorKind};
use crate::runtime::{Projection, Projector, sealed};
use crate::store::{Txn, decode_value, key, prefix, printable, time_from_part, time_part};

/// The most grants one time-index question returns, and the most findings
/// of each kind one call returns.
pub const ANSWER_GRANTS_MAX: usize = 1_000;

/// The most evidence items kept per request: a grant's life is a handful of
/// events, but revocation failures are retried; past this bound the chain
/// keeps its first items and a `truncated` mark.
pub const EVIDENCE_ITEMS_MAX: usize = 256;

/// The most index entries one question or findings call reads before it
/// stops and says it was cut short.
pub const SCAN_ENTRIES_MAX: usize = 1_000_000;

const TABLE_EVIDENCE: u8 = 0x30;
const TABLE_GRANT: u8 = 0x31;
const TABLE_BY_RESOURCE: u8 = 0x32;
const TABLE_BY_PRINCIPAL: u8 = 0x33;
const TABLE_BY_PAIR: u8 = 0x34;
const TABLE_BREAK_GLASS: u8 = 0x35;
const TABLE_DEBT: u8 = 0x36;
const TABLE_RETRY: u8 = 0x37;
const TABLE_DENIAL: u8 = 0x38;
const TABLE_OPEN_REQUEST: u8 = 0x39;
const TABLE_EVIDENCE_COUNT: u8 = 0x3a;
const TABLE_BY_OWNER: u8 = 0x3b;
const TABLE_OFFBOARDED: u8 = 0x3c;
const KEY_CATALOG: &[u8] = &[0x3e];
const KEY_HORIZON: &[u8] = &[0x3f];

/// The audit-evidence projection.
#[derive(Debug, Default)]
pub struct AuditEvidence;

/// One committed fact in a grant's chain of evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// The record's sequence number.
    pub sequence: u64,
    /// The record's ledger time.
    pub time: Timestamp,
    /// The record's hash, hex: what an inclusion proof is asked for.
    pub record_hash: String,
    /// What it says.
    pub evidence: Evidence,
}

/// What one evidence item says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The request: who, what, why.
    Request {
        /// Who asked.
        principal: Principal,
        /// Which entitlement.
        entitlement: EntitlementId,
        /// On what.
        resource: ResourceId,
        /// Which actions.
        actions: Vec<String>,
        /// Why, in the requester's words.
        justification: String,
        /// The ticket, if any.
        ticket: Option<String>,
        /// The TTL asked for.
        ttl_requested_ms: Option<i64>,
    },
    /// The policy's decision.
    Decision {
        /// Allow, needs approval, deny.
        outcome: DecisionOutcome,
        /// The rule codes that determined it.
        reasons: Vec<String>,
        /// The entitlement applied.
        entitlement: EntitlementId,
        /// The catalog (policy) the decision was made under.
        catalog_hash: String,
        /// The TTL granted.
        ttl_granted_ms: i64,
    },
    /// An approver's verdict.
    Approval {
        /// Who.
        approver: PrincipalId,
        /// Approve or deny.
        verdict: ApprovalVerdict,
        /// Their words.
        comment: String,
    },
    /// Emergency access taken without approval.
    BreakGlass {
        /// Who.
        principal: Principal,
        /// Which entitlement.
        entitlement: EntitlementId,
        /// On what.
        resource: ResourceId,
        /// Which actions.
        actions: Vec<String>,
        /// Why.
        reason: String,
        /// The TTL taken.
        ttl_ms: i64,
        /// The catalog in force when it was taken.
        catalog_hash: Option<String>,
    },
    /// The grant was issued.
    Issuance {
        /// The grant.
        grant_id: GrantId,
        /// Which actions.
        actions: Vec<String>,
        /// Start.
        issued_at: Timestamp,
        /// End.
        expires_at: Timestamp,
        /// The latest any extension may reach.
        expires_at_cap: Timestamp,
        /// Issued by break-glass.
        break_glass: bool,
    },
    /// The expiry moved later.
    Extension {
        /// Who asked.
        extended_by: PrincipalId,
        /// Before.
        expires_at_previous: Timestamp,
        /// After.
        expires_at: Timestamp,
    },
    /// The grant ended.
    Revocation {
        /// Why.
        reason: RevocationReason,
        /// Who, when a person or detector did it.
        revoked_by: Option<PrincipalId>,
        /// The note.
        detail: String,
    },
    /// A worker failed to remove the access.
    RevocationFailure {
        /// Which worker.
        worker: String,
        /// What went wrong.
        error: String,
        /// Its attempt number.
        attempt: u32,
    },
    /// A worker removed the access.
    Confirmation {
        /// Which worker.
        worker: String,
    },
    /// The review of a break-glass use.
    Review {
        /// Who reviewed.
        reviewer: PrincipalId,
        /// Justified or not.
        verdict: ReviewVerdict,
        /// Their notes.
        notes: String,
    },
    /// The request's identity token did not verify: refused, nothing
    /// decided (a later submission with a token that verifies may be).
    IdentityRefusal {
        /// Who the request claimed to be.
        principal: Principal,
        /// What it asked for.
        entitlement: EntitlementId,
        /// On what.
        resource: ResourceId,
        /// The reason code.
        reason: String,
        /// What was wrong.
        detail: String,
    },
    /// A request with a scheduled start (a maintenance window): who, what,
    /// why, and when its grant is to be issued, not before.
    ScheduledRequest {
        /// Who asked.
        principal: Principal,
        /// Which entitlement.
        entitlement: EntitlementId,
        /// On what.
        resource: ResourceId,
        /// Which actions.
        actions: Vec<String>,
        /// Why, in the requester's words.
        justification: String,
        /// The ticket, if any.
        ticket: Option<String>,
        /// The TTL asked for, counted from the start.
        ttl_requested_ms: Option<i64>,
        /// The scheduled start.
        starts_at: Timestamp,
    },
    /// The request lapsed without a grant.
    RequestExpiry {
        /// Why: `request_ttl`, `start_window_passed`, `principal_offboarded`,
        /// `risk_signal`, `owner_offboarded`.
        reason: RequestExpiryReason,
        /// The deadline that passed.
        expired_at: Timestamp,
    },
    /// The request was withdrawn by its requester (or the requester's
    /// owner) before a grant.
    Withdrawal {
        /// Who withdrew it.
        withdrawn_by: PrincipalId,
        /// Why.
        reason: String,
    },
}

/// A grant and why it existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantEvidence {
    /// The grant.
    pub grant_id: GrantId,
    /// The request it was issued for.
    pub request_id: RequestId,
    /// Who held it.
    pub principal: Principal,
    /// On what.
    pub resource: ResourceId,
    /// Which entitlement.
    pub entitlement: EntitlementId,
    /// Which actions.
    pub actions: Vec<String>,
    /// Start.
    pub issued_at: Timestamp,
    /// `expires_at` after every extension applied so far.
    pub expires_at: Timestamp,
    /// When a revocation was recorded, and why.
    pub revoked: Option<(Timestamp, RevocationReason)>,
    /// The chain, in log order.
    pub chain: Vec<EvidenceItem>,
    /// True when the chain hit [`EVIDENCE_ITEMS_MAX`] and later items were
    /// not kept.
    pub chain_truncated: bool,
}

/// The answer to "why did `principal` have access to `resource` at `at`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WhyAnswer {
    /// Asked about.
    pub principal: PrincipalId,
    /// Asked about.
    pub resource: ResourceId,
    /// Asked about.
    pub at: Timestamp,
    /// The projection's cursor: the answer holds for the log up to here.
    pub as_of_sequence: u64,
    /// True when some grant gave access at `at`.
    pub had_access: bool,
    /// Every grant that gave access at `at`, with its evidence (at most
    /// [`ANSWER_GRANTS_MAX`]).
    pub grants: Vec<GrantEvidence>,
    /// True when the scan stopped at a bound before it was complete.
    pub truncated: bool,
}

/// Grants in force at a time, with their evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessAnswer {
    /// Asked about.
    pub at: Timestamp,
    /// The projection's cursor.
    pub as_of_sequence: u64,
    /// The grants in force at `at`.
    pub grants: Vec<GrantEvidence>,
    /// True when a bound stopped the scan before it was complete.
    pub truncated: bool,
}

/// The rules findings are judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FindingRules {
    /// A break-glass grant must be reviewed within this long of its issue,
    /// and a grant live at its owner's offboarding must end within this long
    /// of it.
    pub review_window_ms: i64,
    /// A revoked grant must be confirmed removed within this long.
    pub debt_age_max_ms: i64,
}

/// Something an auditor should look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// A break-glass grant not reviewed within the window.
    BreakGlassWithoutReview {
        /// The grant.
        grant_id: GrantId,
        /// Issued at.
        issued_at: Timestamp,
        /// When the review came, if it came late.
        reviewed_at: Option<Timestamp>,
        /// The window it broke.
        review_window_ms: i64,
    },
    /// A revocation unconfirmed for longer than the threshold.
    RevocationDebtOverdue {
        /// The grant.
        grant_id: GrantId,
        /// When it was revoked.
        revoked_at: Timestamp,
        /// Its age at `now`.
        age_ms: i64,
    },
    /// A denied request asked again with another justification.
    DeniedRequestRetried {
        /// Who asked.
        principal: PrincipalId,
        /// For what.
        entitlement: EntitlementId,
        /// On what.
        resource: ResourceId,
        /// The denied request.
        denied_request: RequestId,
        /// The record that denied it.
        denied_sequence: u64,
        /// Its justification.
        denied_justification: String,
        /// The retry.
        retry_request: RequestId,
        /// The retry's `RequestSubmitted` record.
        retry_sequence: u64,
        /// Its justification.
        retry_justification: String,
    },
    /// A grant that was live when its holder's owner (or the holder) was
    /// offboarded, and still gave access more than the review window after.
    GrantOutlivedOwner {
        /// The grant.
        grant_id: GrantId,
        /// Who holds it.
        principal: Principal,
        /// Who was offboarded: the holder's owner, or the holder.
        offboarded: PrincipalId,
        /// When.
        offboarded_at: Timestamp,
        /// The `PrincipalOffboarded` record.
        offboarded_sequence: u64,
        /// When the grant was revoked, if it was (late).
        revoked_at: Option<Timestamp>,
        /// Its expiry, after every extension.
        expires_at: Timestamp,
        /// The window it broke.
        review_window_ms: i64,
    },
}

/// Findings at a time, by kind in table order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// When judged.
    pub now: Timestamp,
    /// The projection's cursor.
    pub as_of_sequence: u64,
    /// The findings.
    pub findings: Vec<Finding>,
    /// True when a bound stopped a scan before it was complete.
    pub truncated: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct GrantSummary {
    request_id: RequestId,
    principal: Principal,
    resource: ResourceId,
    entitlement: EntitlementId,
    actions: Vec<String>,
    issued_at: Timestamp,
    expires_at: Timestamp,
    break_glass: bool,
    revoked: Option<(Timestamp, RevocationReason)>,
}

impl GrantSummary {
    /// When it stops giving access.
    fn end(&self) -> Timestamp {
        match self.revoked {
            Some((at, _)) => at.min(self.expires_at),
            None => self.expires_at,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenRequest {
    principal: PrincipalId,
    entitlement: EntitlementId,
    resource: ResourceId,
    justification: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Denial {
    request_id: RequestId,
    sequence: u64,
    justification: String,
}

impl sealed::Sealed for AuditEvidence {}

impl Projection for AuditEvidence {
    const NAME: &'static str = "audit-evidence";

    fn start() -> Self {
        AuditEvidence
    }

    fn apply(&mut self, txn: &mut Txn<'_>, committed: &Committed) -> Result<(), ProjectorError> {
        let sequence = committed.sequence;
        let (request, evidence) = match &committed.envelope.event {
            Event::CatalogPublished(e) => {
                txn.put_value(KEY_CATALOG.to_vec(), &(e.catalog_hash.clone(), sequence));
                return Ok(());
            }
            Event::PolicyPublished(_) => return Ok(()),
            Event::PrincipalOffboarded(e) => {
                let mut offboarded_key = vec![TABLE_OFFBOARDED];
                offboarded_key.extend_from_slice(&time_part(committed.time.0));
                offboarded_key.extend_from_slice(e.principal.as_str().as_bytes());
                txn.put_value(offboarded_key, &sequence);
                return Ok(());
            }
            Event::IdentityRefused(e) => (
                e.request_id.clone(),
                Evidence::IdentityRefusal {
                    principal: e.principal.clone(),
                    entitlement: e.entitlement.clone(),
                    resource: e.resource.clone(),
                    reason: e.reason.clone(),
                    detail: e.detail.clone(),
                },
            ),
            Event::RequestSubmitted(e) => {
                let open = OpenRequest {
                    principal: e.principal.id.clone(),
                    entitlement: e.entitlement.clone(),
                    resource: e.resource.clone(),
                    justification: e.justification.clone(),
                };
                let denial_key = denial_key(&open);
                if let Some(denial) = txn.get_value::<Denial>(&denial_key)?
                    && denial.justification != e.justification
                {
                    txn.put_value(
                        sequence_key(TABLE_RETRY, sequence),
                        &Finding::DeniedRequestRetried {
                            principal: open.principal.clone(),
                            entitlement: open.entitlement.clone(),
                            resource: open.resource.clone(),
                            denied_request: denial.request_id,
                            denied_sequence: denial.sequence,
                            denied_justification: denial.justification,
                            retry_request: e.request_id.clone(),
                            retry_sequence: sequence,
                            retry_justification: e.justification.clone(),
                        },
                    );
                }
                txn.put_value(
                    key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]),
                    &open,
                );
                let evidence = match e.starts_at {
                    None => Evidence::Request {
                        principal: e.principal.clone(),
                        entitlement: e.entitlement.clone(),
                        resource: e.resource.clone(),
                        actions: e.actions.clone(),
                        justification: e.justification.clone(),
                        ticket: e.ticket.clone(),
                        ttl_requested_ms: e.ttl_requested_ms,
                    },
                    Some(starts_at) => Evidence::ScheduledRequest {
                        principal: e.principal.clone(),
                        entitlement: e.entitlement.clone(),
                        resource: e.resource.clone(),
                        actions: e.actions.clone(),
                        justification: e.justification.clone(),
                        ticket: e.ticket.clone(),
                        ttl_requested_ms: e.ttl_requested_ms,
                        starts_at,
                    },
                };
                (e.request_id.clone(), evidence)
            }
            Event::DecisionRecorded(e) => {
                match e.outcome {
                    DecisionOutcome::Deny => record_denial(txn, &e.request_id, sequence)?,
                    DecisionOutcome::Allow => {
                        txn.delete(key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]))
                    }
                    DecisionOutcome::NeedsApproval { .. } => {}
                }
                (
                    e.request_id.clone(),
                    Evidence::Decision {
                        outcome: e.outcome.clone(),
                        reasons: e.reasons.clone(),
                        entitlement: e.entitlement.clone(),
                        catalog_hash: e.catalog_hash.clone(),
                        ttl_granted_ms: e.ttl_granted_ms,
                    },
                )
            }
            Event::ApprovalRecorded(e) => {
                if e.verdict == ApprovalVerdict::Deny {
                    record_denial(txn, &e.request_id, sequence)?;
                }
                (
                    e.request_id.clone(),
                    Evidence::Approval {
                        approver: e.approver.clone(),
                        verdict: e.verdict,
                        comment: e.comment.clone(),
                    },
                )
            }
            Event::BreakGlassInvoked(e) => {
                let catalog: Option<(String, u64)> = txn.get_value(KEY_CATALOG)?;
                (
                    e.request_id.clone(),
                    Evidence::BreakGlass {
                        principal: e.principal.clone(),
                        entitlement: e.entitlement.clone(),
                        resource: e.resource.clone(),
                        actions: e.actions.clone(),
                        reason: e.reason.clone(),
                        ttl_ms: e.ttl_ms,
                        catalog_hash: catalog.map(|(hash, _)| hash),
                    },
                )
            }
            Event::RequestExpired(e) => {
                txn.delete(key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]));
                (
                    e.request_id.clone(),
                    Evidence::RequestExpiry {
                        reason: e.reason,
                        expired_at: e.expired_at,
                    },
                )
            }
            Event::RequestWithdrawn(e) => {
                txn.delete(key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]));
                (
                    e.request_id.clone(),
                    Evidence::Withdrawal {
                        withdrawn_by: e.withdrawn_by.clone(),
                        reason: e.reason.clone(),
                    },
                )
            }
            Event::GrantIssued(e) => {
                txn.delete(key(TABLE_OPEN_REQUEST, &[e.request_id.as_str().as_bytes()]));
                let mut actions = e.actions.clone();
                actions.sort();
                actions.dedup();
                let summary = GrantSummary {
                    request_id: e.request_id.clone(),
                    principal: e.principal.clone(),
                    resource: e.resource.clone(),
                    entitlement: e.entitlement.clone(),
                    actions: actions.clone(),
                    issued_at: e.issued_at,
                    expires_at: e.expires_at,
                    break_glass: e.break_glass,
                    revoked: None,
                };
                let span_ms = e.expires_at_cap.0.saturating_sub(e.issued_at.0).max(0);
                let horizon: i64 = txn.get_value(KEY_HORIZON)?.unwrap_or(0);
                if span_ms > horizon {
                    txn.put_value(KEY_HORIZON.to_vec(), &span_ms);
                }
                if e.break_glass {
                    txn.put_value(
                        break_glass_key(e.issued_at, &e.grant_id),
                        &None::<Timestamp>,
                    );
                }
                put_grant(txn, &e.grant_id, &summary);
                (
                    e.request_id.clone(),
                    Evidence::Issuance {
                        grant_id: e.grant_id.clone(),
                        actions,
                        issued_at: e.issued_at,
                        expires_at: e.expires_at,
                        expires_at_cap: e.expires_at_cap,
                        break_glass: e.break_glass,
                    },
                )
            }
            Event::GrantExtended(e) => {
                let mut summary = load_summary(txn, &e.grant_id)?;
                summary.expires_at = e.expires_at;
                put_grant(txn, &e.grant_id, &summary);
                (
                    summary.request_id,
                    Evidence::Extension {
                        extended_by: e.extended_by.clone(),
                        expires_at_previous: e.expires_at_previous,
                        expires_at: e.expires_at,
                    },
                )
            }
            Event::GrantRevoked(e) => {
                let mut summary = load_summary(txn, &e.grant_id)?;
                summary.revoked = Some((committed.time, e.reason));
                put_grant(txn, &e.grant_id, &summary);
                txn.put(
                    timed_key(TABLE_DEBT, committed.time, &e.grant_id),
                    Vec::new(),
                );
                (
                    summary.request_id,
                    Evidence::Revocation {
                        reason: e.reason,
                        revoked_by: e.revoked_by.clone(),
                        detail: e.detail.clone(),
                    },
                )
            }
            Event::RevocationFailed(e) => {
                let summary = load_summary(txn, &e.grant_id)?;
                (
                    summary.request_id,
                    Evidence::RevocationFailure {
                        worker: e.worker.clone(),
                        error: e.error.clone(),
                        attempt: e.attempt,
                    },
                )
            }
            Event::RevocationConfirmed(e) => {
                let summary = load_summary(txn, &e.grant_id)?;
                if let Some((revoked_at, _)) = summary.revoked {
                    txn.delete(timed_key(TABLE_DEBT, revoked_at, &e.grant_id));
                }
                (
                    summary.request_id,
                    Evidence::Confirmation {
                        worker: e.worker.clone(),
                    },
                )
            }
            Event::ReviewRecorded(e) => {
                let summary = load_summary(txn, &e.grant_id)?;
                txn.put_value(
                    break_glass_key(summary.issued_at, &e.grant_id),
                    &Some(committed.time),
                );
                (
                    summary.request_id,
                    Evidence::Review {
                        reviewer: e.reviewer.clone(),
                        verdict: e.verdict,
                        notes: e.notes.clone(),
                    },
                )
            }
        };
        let count_key = key(TABLE_EVIDENCE_COUNT, &[request.as_str().as_bytes()]);
        let count: u32 = txn.get_value(&count_key)?.unwrap_or(0);
        txn.put_value(count_key, &(count + 1));
        if (count as usize) < EVIDENCE_ITEMS_MAX {
            txn.put_value(
                evidence_key(&request, sequence),
                &EvidenceItem {
                    sequence,
                    time: committed.time,
                    record_hash: committed.hash.clone(),
                    evidence,
                },
            );
        }
        Ok(())
    }
}

impl Projector<AuditEvidence> {
    /// Why `principal` had access to `resource` at `at`: every grant that
    /// gave it (`issued_at <= at < min(expires_at, revoked_at)`), each with
    /// its chain of evidence. `had_access` is false when none did.
    pub fn why(
        &self,
        principal: &PrincipalId,
        resource: &ResourceId,
        at: Timestamp,
    ) -> Result<WhyAnswer, ProjectorError> {
        let parts: [&[u8]; 2] = [principal.as_str().as_bytes(), resource.as_str().as_bytes()];
        let (grants, truncated) = self.in_force(TABLE_BY_PAIR, &parts, at)?;
        Ok(WhyAnswer {
            principal: principal.clone(),
            resource: resource.clone(),
            at,
            as_of_sequence: self.cursor(),
            had_access: !grants.is_empty(),
            grants,
            truncated,
        })
    }

    /// Who had access to `resource` at `at`, and why.
    pub fn who_had_access(
        &self,
        resource: &ResourceId,
        at: Timestamp,
    ) -> Result<AccessAnswer, ProjectorError> {
        let (grants, truncated) =
            self.in_force(TABLE_BY_RESOURCE, &[resource.as_str().as_bytes()], at)?;
        Ok(AccessAnswer {
            at,
            as_of_sequence: self.cursor(),
            grants,
            truncated,
        })
    }

    /// What `principal` could do at `at`, and why.
    pub fn could_do(
        &self,
        principal: &PrincipalId,
        at: Timestamp,
    ) -> Result<AccessAnswer, ProjectorError> {
        let (grants, truncated) =
            self.in_force(TABLE_BY_PRINCIPAL, &[principal.as_str().as_bytes()], at)?;
        Ok(AccessAnswer {
            at,
            as_of_sequence: self.cursor(),
            grants,
            truncated,
        })
    }

    /// The chain of evidence of one request (and its grant), in log order.
    pub fn evidence(
        &self,
        request_id: &RequestId,
    ) -> Result<(Vec<EvidenceItem>, bool), ProjectorError> {
        let scan = prefix(TABLE_EVIDENCE, &[request_id.as_str().as_bytes()]);
        let items: Vec<EvidenceItem> = self
            .store
            .scan(&scan, &scan, EVIDENCE_ITEMS_MAX)?
            .into_iter()
            .map(|(key, value)| decode_value(&key, &value))
            .collect::<Result<_, _>>()?;
        let count: u32 = self
            .store
            .get_value(&key(
                TABLE_EVIDENCE_COUNT,
                &[request_id.as_str().as_bytes()],
            ))?
            .unwrap_or(0);
        Ok((items, count as usize > EVIDENCE_ITEMS_MAX))
    }

    /// Findings at `now` under `rules`, at most [`ANSWER_GRANTS_MAX`] of
    /// each kind.
    pub fn findings(
        &self,
        now: Timestamp,
        rules: FindingRules,
    ) -> Result<Findings, ProjectorError> {
        let mut findings = Vec::new();
        let mut truncated = false;
        let mut scanned = 0usize;
        let mut found = 0usize;
        self.store
            .visit(&[TABLE_BREAK_GLASS], &[TABLE_BREAK_GLASS], |key, value| {
                let (issued_at, grant_id) = split_timed_key(key)?;
                let deadline = issued_at.plus_ms(rules.review_window_ms);
                if deadline > now {
                    return Ok(false);
                }
                let reviewed_at: Option<Timestamp> = decode_value(key, value)?;
                if reviewed_at.is_none_or(|reviewed| reviewed > deadline) {
                    findings.push(Finding::BreakGlassWithoutReview {
                        grant_id,
                        issued_at,
                        reviewed_at,
                        review_window_ms: rules.review_window_ms,
                    });
                    found += 1;
                }
                scanned += 1;
                if found == ANSWER_GRANTS_MAX || scanned == SCAN_ENTRIES_MAX {
                    truncated = true;
                    return Ok(false);
                }
                Ok(true)
            })?;
        found = 0;
        self.store.visit(&[TABLE_DEBT], &[TABLE_DEBT], |key, _| {
            let (revoked_at, grant_id) = split_timed_key(key)?;
            let age_ms = now.0.saturating_sub(revoked_at.0);
            if age_ms <= rules.debt_age_max_ms {
                return Ok(false);
            }
            findings.push(Finding::RevocationDebtOverdue {
                grant_id,
                revoked_at,
                age_ms,
            });
            found += 1;
            if found == ANSWER_GRANTS_MAX {
                truncated = true;
                return Ok(false);
            }
            Ok(true)
        })?;
        let retries = self
            .store
            .scan(&[TABLE_RETRY], &[TABLE_RETRY], ANSWER_GRANTS_MAX + 1)?;
        if retries.len() > ANSWER_GRANTS_MAX {
            truncated = true;
        }
        for (key, value) in retries.into_iter().take(ANSWER_GRANTS_MAX) {
            findings.push(decode_value(&key, &value)?);
        }
        let (outlived, cut_short) = self.grants_outliving_offboardings(now, rules.review_window_ms)?;
        truncated |= cut_short;
        findings.extend(outlived);
        Ok(Findings {
            now,
            as_of_sequence: self.cursor(),
            findings,
            truncated,
        })
    }

    /// Grants live at an offboarding judged by `now` (its time plus
    /// `window_ms` has come) that still gave access after that, under the
    /// offboarded principal as owner or as holder, at most
    /// [`ANSWER_GRANTS_MAX`]; and whether a bound cut the scan short.
    fn grants_outliving_offboardings(
        &self,
        now: Timestamp,
        window_ms: i64,
    ) -> Result<(Vec<Finding>, bool), ProjectorError> {
        let mut offboardings: Vec<(Timestamp, PrincipalId, u64)> = Vec::new();
        let mut scanned = 0usize;
        let mut truncated = false;
        self.store
            .visit(&[TABLE_OFFBOARDED], &[TABLE_OFFBOARDED], |key, value| {
                let at = key
                    .get(1..9)
                    .and_then(time_from_part)
                    .ok_or_else(|| corrupt_key(key))?;
                if Timestamp(at).plus_ms(window_ms) > now {
                    return Ok(false);
                }
                let principal = std::str::from_utf8(&key[9..])
                    .ok()
                    .and_then(|id| PrincipalId::new(id).ok())
                    .ok_or_else(|| corrupt_key(key))?;
                offboardings.push((Timestamp(at), principal, decode_value(key, value)?));
                scanned += 1;
                if scanned == SCAN_ENTRIES_MAX {
                    truncated = true;
                    return Ok(false);
                }
                Ok(true)
            })?;
        let horizon_ms: i64 = self.store.get_value(KEY_HORIZON)?.unwrap_or(0);
        let mut findings = Vec::new();
        for (offboarded_at, offboarded, offboarded_sequence) in offboardings {
            let deadline = offboarded_at.plus_ms(window_ms);
            let mut grant_ids = Vec::new();
            for table in [TABLE_BY_OWNER, TABLE_BY_PRINCIPAL] {
                // Live at the offboarding and still after the deadline.
                let full = self.scan_time_index(
                    table,
                    &[offboarded.as_str().as_bytes()],
                    offboarded_at,
                    deadline,
                    horizon_ms,
                    &mut scanned,
                    &mut grant_ids,
                )?;
                if full {
                    truncated = true;
                    break;
                }
            }
            // A grant held by the offboarded principal's own workload is in
            // both indices.
            grant_ids.sort();
            grant_ids.dedup();
            for grant_id in grant_ids {
                let summary: GrantSummary = self
                    .store
                    .get_value(&key(TABLE_GRANT, &[grant_id.as_str().as_bytes()]))?
                    .ok_or_else(|| {
                        ProjectorError::new(
                            ProjectorErrorKind::Corrupt,
                            format!("the owner index names grant `{grant_id}`, which is not stored"),
                        )
                    })?;
                findings.push(Finding::GrantOutlivedOwner {
                    grant_id,
                    principal: summary.principal,
                    offboarded: offboarded.clone(),
                    offboarded_at,
                    offboarded_sequence,
                    revoked_at: summary.revoked.map(|(at, _)| at),
                    expires_at: summary.expires_at,
                    review_window_ms: window_ms,
                });
                if findings.len() == ANSWER_GRANTS_MAX {
                    return Ok((findings, true));
                }
            }
            if truncated {
                break;
            }
        }
        Ok((findings, truncated))
    }

    /// Grants in force at `at` under index `table` and key `parts`.
    fn in_force(
        &self,
        table: u8,
        parts: &[&[u8]],
        at: Timestamp,
    ) -> Result<(Vec<GrantEvidence>, bool), ProjectorError> {
        let horizon_ms: i64 = self.store.get_value(KEY_HORIZON)?.unwrap_or(0);
        let mut grant_ids = Vec::new();
        let mut scanned = 0usize;
        let truncated =
            self.scan_time_index(table, parts, at, at, horizon_ms, &mut scanned, &mut grant_ids)?;
        let grants = grant_ids
            .into_iter()
            .map(|grant_id| self.grant_evidence(grant_id))
            .collect::<Result<_, _>>()?;
        Ok((grants, truncated))
    }

    /// Adds to `grant_ids` the grants under time index `table`
    /// and key `parts` issued at or before `issued_by` whose access ends
    /// after `ends_after`. Returns true when a bound was reached
    /// ([`ANSWER_GRANTS_MAX`] grants, or [`SCAN_ENTRIES_MAX`] entries
    /// counted in `scanned` across calls).
    #[allow(clippy::too_many_arguments)]
    fn scan_time_index(
        &self,
        table: u8,
        parts: &[&[u8]],
        issued_by: Timestamp,
        ends_after: Timestamp,
        horizon_ms: i64,
        scanned: &mut usize,
        grant_ids: &mut Vec<GrantId>,
    ) -> Result<bool, ProjectorError> {
        let scan = prefix(table, parts);
        let mut from = scan.clone();
        // INVARIANT: a grant ends no later than `issued_at + horizon`, so one
        // that ends after `ends_after >= issued_by` was issued after
        // `issued_by - horizon`.
        from.extend_from_slice(&time_part(issued_by.0.saturating_sub(horizon_ms)));
        let mut full = false;
        self.store.visit(&scan, &from, |key, value| {
            let rest = &key[scan.len()..];
            let issued_at = rest
                .get(..8)
                .and_then(time_from_part)
                .ok_or_else(|| corrupt_key(key))?;
            if issued_at > issued_by.0 {
                return Ok(false);
            }
            let end: i64 = decode_value(key, value)?;
            if end > ends_after.0 {
                let grant_id = std::str::from_utf8(&rest[8..])
                    .ok()
                    .and_then(|id| GrantId::new(id).ok())
                    .ok_or_else(|| corrupt_key(key))?;
                grant_ids.push(grant_id);
            }
            *scanned += 1;
            if grant_ids.len() == ANSWER_GRANTS_MAX || *scanned == SCAN_ENTRIES_MAX {
                full = true;
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(full)
    }

    fn grant_evidence(&self, grant_id: GrantId) -> Result<GrantEvidence, ProjectorError> {
        let summary: GrantSummary = self
            .store
            .get_value(&key(TABLE_GRANT, &[grant_id.as_str().as_bytes()]))?
            .ok_or_else(|| {
                ProjectorError::new(
                    ProjectorErrorKind::Corrupt,
                    format!("the time index names grant `{grant_id}`, which is not stored"),
                )
            })?;
        let (chain, chain_truncated) = self.evidence(&summary.request_id)?;
        Ok(GrantEvidence {
            grant_id,
            request_id: summary.request_id,
            principal: summary.principal,
            resource: summary.resource,
            entitlement: summary.entitlement,
            actions: summary.actions,
            issued_at: summary.issued_at,
            expires_at: summary.expires_at,
            revoked: summary.revoked,
            chain,
            chain_truncated,
        })
    }
}

/// Stores the grant's summary and its three time-index entries, whose value
/// is the time the grant stops giving access.
fn put_grant(txn: &mut Txn<'_>, grant_id: &GrantId, summary: &GrantSummary) {
    let grant = grant_id.as_str().as_bytes();
    let principal = summary.principal.id.as_str().as_bytes();
    let resource = summary.resource.as_str().as_bytes();
    let end = summary.end().0;
    let owner = summary.principal.owner.as_ref().map(|owner| owner.as_str().as_bytes());
    for (table, parts) in [
        (TABLE_BY_RESOURCE, vec![resource]),
        (TABLE_BY_PRINCIPAL, vec![principal]),
        (TABLE_BY_PAIR, vec![principal, resource]),
    ]
    .into_iter()
    .chain(owner.map(|owner| (TABLE_BY_OWNER, vec![owner])))
    {
        let mut index_key = prefix(table, &parts);
        index_key.extend_from_slice(&time_part(summary.issued_at.0));
        index_key.extend_from_slice(grant);
        txn.put_value(index_key, &end);
    }
    txn.put_value(key(TABLE_GRANT, &[grant]), summary);
}

fn record_denial(
    txn: &mut Txn<'_>,
    request_id: &RequestId,
    sequence: u64,
) -> Result<(), ProjectorError> {
    let open_key = key(TABLE_OPEN_REQUEST, &[request_id.as_str().as_bytes()]);
    let open: OpenRequest = txn.get_value(&open_key)?.ok_or_else(|| {
        ProjectorError::new(
            ProjectorErrorKind::Inconsistent,
            format!("a denial of request `{request_id}`, which is not open"),
        )
    })?;
    txn.put_value(
        denial_key(&open),
        &Denial {
            request_id: request_id.clone(),
            sequence,
            justification: open.justification,
        },
    );
    txn.delete(open_key);
    Ok(())
}

fn load_summary(txn: &Txn<'_>, grant_id: &GrantId) -> Result<GrantSummary, ProjectorError> {
    txn.get_value(&key(TABLE_GRANT, &[grant_id.as_str().as_bytes()]))?
        .ok_or_else(|| {
            ProjectorError::new(
                ProjectorErrorKind::Inconsistent,
                format!("an event about grant `{grant_id}`, which was never issued"),
            )
        })
}

fn denial_key(open: &OpenRequest) -> Vec<u8> {
    key(
        TABLE_DENIAL,
        &[
            open.principal.as_str().as_bytes(),
            open.entitlement.as_str().as_bytes(),
            open.resource.as_str().as_bytes(),
        ],
    )
}

fn evidence_key(request: &RequestId, sequence: u64) -> Vec<u8> {
    let mut out = prefix(TABLE_EVIDENCE, &[request.as_str().as_bytes()]);
    out.extend_from_slice(&sequence.to_be_bytes());
    out
}

fn sequence_key(table: u8, sequence: u64) -> Vec<u8> {
    let mut out = vec![table];
    out.extend_from_slice(&sequence.to_be_bytes());
    out
}

fn timed_key(table: u8, at: Timestamp, grant_id: &GrantId) -> Vec<u8> {
    let mut out = vec![table];
    out.extend_from_slice(&time_part(at.0));
    out.extend_from_slice(grant_id.as_str().as_bytes());
    out
}

fn break_glass_key(issued_at: Timestamp, grant_id: &GrantId) -> Vec<u8> {
    timed_key(TABLE_BREAK_GLASS, issued_at, grant_id)
}

fn split_timed_key(key: &[u8]) -> Result<(Timestamp, GrantId), ProjectorError> {
    let at = key
        .get(1..9)
        .and_then(time_from_part)
        .ok_or_else(|| corrupt_key(key))?;
    let grant = std::str::from_utf8(&key[9..])
        .ok()
        .and_then(|id| GrantId::new(id).ok())
        .ok_or_else(|| corrupt_key(key))?;
    Ok((Timestamp(at), grant))
}

fn corrupt_key(key: &[u8]) -> ProjectorError {
    ProjectorError::new(
        ProjectorErrorKind::Corrupt,
        format!("key `{}` is not a time and a grant id", printable(key)),
    )
}
