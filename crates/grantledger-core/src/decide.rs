//! `decide`: one command, against the state, at a time, gives the events it
//! causes or the rule it breaks. The rule checks shared with
//! [`apply`](crate::apply) live here too, so the two can never disagree.

use std::collections::BTreeSet;

use grantledger_events::{
    ApprovalRecorded, ApprovalVerdict, BreakGlassInvoked, CatalogPublished, DecisionOutcome,
    DecisionRecorded, EntitlementId, Event, GrantExtended, GrantId, GrantIssued, GrantRevoked,
    IdentityRefused, Principal, PrincipalId, PrincipalOffboarded, RequestExpired,
    RequestExpiryReason, RequestId, RequestSubmitted, RequestWithdrawn, ResourceId, ReviewRecorded, RevocationConfirmed, RevocationFailed, RevocationReason,
    SubmitRequest, Timestamp,
};

use grantledger_events::{DecisionBasis, PolicyBasis, PolicyPublished, policy_hash};

use crate::catalog::{ACTION_BYTES_MAX, ApprovalRule, Catalog};
use crate::command::{
    ACTIONS_PER_REQUEST_MAX, CONTEXT_BYTES_MAX, Command, GROUPS_PER_REQUEST_MAX,
    IDENTITY_TOKEN_BYTES_MAX, POLICY_BYTES_MAX, SCHEDULE_AHEAD_MAX_MS, TEXT_BYTES_MAX,
};
use crate::policy::{
    BreakGlassInput, EngineDecisionInput, PolicyInput, check_break_glass, check_engine_decision,
    evaluate, is_present, normalize_actions,
};
use crate::rejection::{Reason, Rejection};
use crate::state::{Asked, Grant, Holder, Slot, Stage, State, Terms};

/// What a start timer does to a scheduled request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Issue its grant now.
    Issue,
    /// Record that it lapsed (`RequestExpired`): its principal or its
    /// principal's owner was offboarded, or the whole window passed before
    /// the timer came.
    Lapse {
        reason: RequestExpiryReason,
        expired_at: Timestamp,
    },
}

/// What the policy engine (which lives outside the core: the core does not
/// depend on Cedar) contributes to one command. The ledger computes it and
/// hands it in; the core stays a pure function of its inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineInput {
    /// Nothing: the catalog-only rules decide.
    None,
    /// The engine parsed and validated a policy set whose texts hash to
    /// `policy_hash` against the catalog in force (for
    /// [`Command::PublishPolicy`]).
    PolicyValidated {
        /// [`policy_hash`] of the texts validated.
        policy_hash: String,
    },
    /// The engine's decision on a [`Command::Submit`], under the policy set
    /// in force.
    Decision(EngineDecision),
    /// The request's identity token did not verify at intake (for
    /// [`Command::Submit`]): the refusal is recorded (`IdentityRefused`) the
    /// first time for its request id, and given back after that. The token
    /// never reaches the core.
    IdentityRefused {
        /// The verifier's reason code (`bad_signature`, `expired`, ...).
        reason: String,
        /// What was wrong, naming the value (never the token).
        detail: String,
    },
}

/// The policy engine's decision on one request, as the core records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineDecision {
    /// Allow, needs approval, or deny.
    pub outcome: DecisionOutcome,
    /// Rule codes, sorted and distinct.
    pub reasons: Vec<String>,
    /// The TTL of the grant if issued; 0 for a deny.
    pub ttl_granted_ms: i64,
    /// The hash of the catalog the engine was built with.
    pub catalog_hash: String,
    /// The policy set, the determining policies, the evaluator and the
    /// values it saw.
    pub basis: PolicyBasis,
}

/// Decides `command` against `state` at ledger time `now`: the events to
/// append, in order, or the rule the command breaks. Pure: the same inputs
/// always give the same answer.
///
/// The events always [`apply`](crate::apply) to `state` at `now`, in order.
/// This is [`decide_with`] without the policy engine: it refuses to publish
/// a policy set, and refuses requests while one is in force.
pub fn decide(state: &State, command: &Command, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    decide_with(state, command, now, &EngineInput::None)
}

/// [`decide`] with what the policy engine said about `command`: its
/// validation of a policy set to publish, or its decision on a request
/// while a policy set is in force.
pub fn decide_with(
    state: &State,
    command: &Command,
    now: Timestamp,
    engine: &EngineInput,
) -> Result<Vec<Event>, Rejection> {
    check_bounds(command)?;
    match command {
        Command::PublishPolicy {
            policy_text,
            exceptions_text,
            published_by,
        } => {
            if state.catalog().is_none() {
                return Err(Rejection::CatalogMissing);
            }
            let hash = policy_hash(policy_text, exceptions_text.as_deref());
            if state.policy_hash() == Some(hash.as_str()) {
                return Err(Rejection::PolicyAlreadyInForce { policy_hash: hash });
            }
            match engine {
                EngineInput::PolicyValidated { policy_hash } if *policy_hash == hash => {}
                _ => return Err(Rejection::PolicyNotValidated { policy_hash: hash }),
            }
            Ok(vec![Event::PolicyPublished(PolicyPublished {
                policy_hash: hash,
                policy_text: policy_text.clone(),
                exceptions_text: exceptions_text.clone(),
                published_by: published_by.clone(),
            })])
        }
        Command::PublishCatalog { text, published_by } => {
            let catalog = Catalog::parse(text).map_err(Rejection::CatalogInvalid)?;
            if state.catalog_hash() == Some(catalog.hash()) {
                return Err(Rejection::CatalogAlreadyInForce {
                    catalog_hash: catalog.hash().to_string(),
                });
            }
            Ok(vec![Event::CatalogPublished(CatalogPublished {
                catalog_hash: catalog.hash().to_string(),
                text: text.clone(),
                published_by: published_by.clone(),
            })])
        }
        Command::Submit(request) => match (engine, state.policy_hash()) {
            (EngineInput::IdentityRefused { reason, detail }, _) => {
                decide_identity_refusal(state, request, reason, detail)
            }
            // The core denies an offboarded principal, and a principal whose
            // owner was offboarded, whatever a policy says.
            _ if state.offboarded_at(&request.principal.id).is_some() => {
                decide_offboarded_submit(state, request, now, Reason::PrincipalOffboarded)
            }
            _ if state.offboarded_owner(&request.principal).is_some() => {
                decide_offboarded_submit(state, request, now, Reason::OwnerOffboarded)
            }
            (_, None) => decide_submit(state, request, now),
            (EngineInput::Decision(decision), Some(in_force))
                if decision.basis.policy_hash == in_force
                    && state.catalog_hash() == Some(decision.catalog_hash.as_str()) =>
            {
                decide_submit_by_engine(state, request, now, decision)
            }
            (_, Some(in_force)) => Err(Rejection::PolicyDecisionMissing {
                policy_hash: in_force.to_string(),
            }),
        },
        Command::Approve {
            request_id,
            approver,
            comment,
        } => {
            let (slot, completes) =
                state.check_approval(request_id, approver, ApprovalVerdict::Approve, now)?;
            let mut events = vec![Event::ApprovalRecorded(ApprovalRecorded {
                request_id: request_id.clone(),
                approver: approver.clone(),
                verdict: ApprovalVerdict::Approve,
                comment: comment.clone(),
            })];
            if completes {
                let request = state.request_at(slot);
                // INVARIANT: check_approval succeeded, so the request is pending.
                let Stage::Pending { asked, approval } = &request.stage else {
                    unreachable!("check_approval accepts only pending requests")
                };
                // Approved before its scheduled start: the start timer
                // issues it. Approved after it: issued now, within the
                // window asked for (its TTL counts from the start), or, the
                // whole window gone, recorded expired.
                if let Some(starts_at) = approval.terms.start {
                    if starts_at > now {
                        return Ok(events);
                    }
                    let window_end = starts_at.plus_ms(approval.terms.ttl_ms);
                    if now >= window_end {
                        events.push(Event::RequestExpired(RequestExpired {
                            request_id: request_id.clone(),
                            reason: RequestExpiryReason::StartWindowPassed,
                            expired_at: window_end,
                        }));
                        return Ok(events);
                    }
                }
                events.push(grant_issued(request_id, &request.holder, asked, now, approval.terms));
            }
            Ok(events)
        }
        Command::Deny {
            request_id,
            approver,
            comment,
        } => {
            state.check_approval(request_id, approver, ApprovalVerdict::Deny, now)?;
            Ok(vec![Event::ApprovalRecorded(ApprovalRecorded {
                request_id: request_id.clone(),
                approver: approver.clone(),
                verdict: ApprovalVerdict::Deny,
                comment: comment.clone(),
            })])
        }
        Command::Revoke {
            grant_id,
            reason,
            by,
            detail,
        } => {
            if matches!(
                reason,
                RevocationReason::Expired | RevocationReason::RiskSignal
            ) {
                return Err(Rejection::ReasonNotAllowedHere { reason: *reason });
            }
            state.check_active(grant_id, now)?;
            Ok(vec![Event::GrantRevoked(GrantRevoked {
                grant_id: grant_id.clone(),
                reason: *reason,
                revoked_by: Some(by.clone()),
                detail: detail.clone(),
            })])
        }
        Command::RiskSignal {
            principal,
            by,
            detail,
        } => {
            let held = state
                .core
                .unrevoked_by_principal
                .get(principal.as_str())
                .into_iter()
                .flatten()
                .copied();
            let mut events =
                revoke_live_grants(state, held, RevocationReason::RiskSignal, by, detail, now);
            // A request waiting for approvers, or allowed or approved and
            // waiting for its scheduled start, would be granted after the
            // signal: it is closed now, with the revocations.
            events.extend(
                state
                    .open_slots_of(principal.as_str())
                    .into_iter()
                    .map(|slot| {
                        Event::RequestExpired(RequestExpired {
                            request_id: state.request_id_at(slot),
                            reason: RequestExpiryReason::RiskSignal,
                            expired_at: now,
                        })
                    }),
            );
            if events.is_empty() {
                return Err(Rejection::PrincipalHasNoLiveGrant {
                    principal: principal.clone(),
                });
            }
            Ok(events)
        }
        Command::Offboard {
            principal,
            by,
            detail,
        } => {
            if let Some(offboarded_at) = state.offboarded_at(principal) {
                return Err(Rejection::PrincipalAlreadyOffboarded {
                    principal: principal.clone(),
                    offboarded_at,
                });
            }
            // Recorded even when the principal holds nothing: an owner's
            // offboarding is what the auditors' finding on its workloads'
            // grants is measured from.
            let mut events = vec![Event::PrincipalOffboarded(PrincipalOffboarded {
                principal: principal.clone(),
                by: by.clone(),
                detail: detail.clone(),
            })];
            // Its own grants and those of the workloads and agents it owns:
            // nobody answers for them any more.
            let held_or_owned: BTreeSet<Slot> = [
                state.core.unrevoked_by_principal.get(principal.as_str()),
                state.core.unrevoked_by_owner.get(principal.as_str()),
            ]
            .into_iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
            events.extend(revoke_live_grants(
                state,
                held_or_owned.into_iter(),
                RevocationReason::OwnerGone,
                by,
                detail,
                now,
            ));
            Ok(events)
        }
        Command::Expire { grant_id } => {
            let (_, grant) = state.check_expirable(grant_id, now)?;
            Ok(vec![Event::GrantRevoked(GrantRevoked {
                grant_id: grant_id.clone(),
                reason: RevocationReason::Expired,
                revoked_by: None,
                detail: format!("expires_at {} reached", grant.expires_at),
            })])
        }
        Command::Start { request_id } => {
            let (slot, start) = state.check_start(request_id, now)?;
            match start {
                Start::Issue => {
                    let request = state.request_at(slot);
                    // INVARIANT: check_start issues only allowed or approved
                    // requests waiting for their start.
                    let (Stage::Allowed { asked, terms } | Stage::Approved { asked, terms }) =
                        &request.stage
                    else {
                        unreachable!("check_start issues only scheduled requests")
                    };
                    Ok(vec![grant_issued(request_id, &request.holder, asked, now, *terms)])
                }
                Start::Lapse { reason, expired_at } => {
                    Ok(vec![Event::RequestExpired(RequestExpired {
                        request_id: request_id.clone(),
                        reason,
                        expired_at,
                    })])
                }
            }
        }
        Command::ExpireRequest { request_id } => {
            let (_, expires_at) = state.check_request_expiry(request_id, now)?;
            Ok(vec![Event::RequestExpired(RequestExpired {
                request_id: request_id.clone(),
                reason: RequestExpiryReason::RequestTtl,
                expired_at: expires_at,
            })])
        }
        Command::Withdraw {
            request_id,
            by,
            reason,
        } => {
            state.check_withdrawal(request_id, by, reason)?;
            Ok(vec![Event::RequestWithdrawn(RequestWithdrawn {
                request_id: request_id.clone(),
                withdrawn_by: by.clone(),
                reason: reason.clone(),
            })])
        }
        Command::ConfirmRevocation { grant_id, worker } => {
            state.check_revocation_report(grant_id)?;
            Ok(vec![Event::RevocationConfirmed(RevocationConfirmed {
                grant_id: grant_id.clone(),
                worker: worker.clone(),
            })])
        }
        Command::ReportRevocationFailure {
            grant_id,
            worker,
            error,
            attempt,
        } => {
            state.check_revocation_report(grant_id)?;
            Ok(vec![Event::RevocationFailed(RevocationFailed {
                grant_id: grant_id.clone(),
                worker: worker.clone(),
                error: error.clone(),
                attempt: *attempt,
            })])
        }
        Command::Extend {
            grant_id,
            by,
            expires_at,
        } => {
            let (_, grant) = state.check_extension(grant_id, by, *expires_at, now)?;
            Ok(vec![Event::GrantExtended(GrantExtended {
                grant_id: grant_id.clone(),
                extended_by: by.clone(),
                expires_at_previous: grant.expires_at,
                expires_at: *expires_at,
            })])
        }
        Command::BreakGlass {
            request_id,
            principal,
            entitlement,
            resource,
            actions,
            reason,
            ttl_ms,
        } => {
            let catalog = state.catalog().ok_or(Rejection::CatalogMissing)?;
            if state.slot(request_id.as_str()).is_some() {
                return Err(Rejection::RequestIdAlreadyDecided {
                    request_id: request_id.clone(),
                });
            }
            state.check_not_offboarded_break_glass(request_id, principal, entitlement, resource)?;
            let normalized = normalize_actions(actions);
            let input = BreakGlassInput {
                kind: principal.kind,
                entitlement: entitlement.as_str(),
                resource: resource.as_str(),
                actions: &normalized,
                reason_present: is_present(reason),
                ttl_ms: *ttl_ms,
            };
            let terms = check_break_glass(catalog, &input).map_err(|broken| {
                Rejection::BreakGlassRefused {
                    request_id: request_id.clone(),
                    entitlement: entitlement.clone(),
                    resource: resource.clone(),
                    reason: broken,
                }
            })?;
            let invoked = Event::BreakGlassInvoked(BreakGlassInvoked {
                request_id: request_id.clone(),
                principal: principal.clone(),
                entitlement: entitlement.clone(),
                resource: resource.clone(),
                actions: actions.clone(),
                reason: reason.clone(),
                ttl_ms: *ttl_ms,
            });
            let issued = Event::GrantIssued(issue(
                request_id,
                principal.clone(),
                entitlement.clone(),
                resource.clone(),
                normalized.iter().map(|action| action.to_string()).collect(),
                now,
                terms,
            ));
            Ok(vec![invoked, issued])
        }
        Command::Review {
            grant_id,
            reviewer,
            verdict,
            notes,
        } => {
            state.check_review(grant_id, reviewer)?;
            Ok(vec![Event::ReviewRecorded(ReviewRecorded {
                grant_id: grant_id.clone(),
                reviewer: reviewer.clone(),
                verdict: *verdict,
                notes: notes.clone(),
            })])
        }
    }
}

/// A revocation of every grant of `slots` (unrevoked grants, in the order
/// their requests were recorded) still live at `now`.
fn revoke_live_grants(
    state: &State,
    slots: impl Iterator<Item = Slot>,
    reason: RevocationReason,
    by: &PrincipalId,
    detail: &str,
    now: Timestamp,
) -> Vec<Event> {
    slots
        .filter(|&slot| {
            state
                .grant_at(slot)
                .is_some_and(|grant| grant.is_active_at(now))
        })
        .map(|slot| {
            Event::GrantRevoked(GrantRevoked {
                grant_id: state.grant_id_at(slot),
                reason,
                revoked_by: Some(by.clone()),
                detail: detail.to_string(),
            })
        })
        .collect()
}

/// A request whose identity token did not verify: recorded the first time
/// for its request id, the recorded refusal given back after that. A request
/// id already decided is a duplicate, whatever its token.
fn decide_identity_refusal(
    state: &State,
    request: &SubmitRequest,
    reason: &str,
    detail: &str,
) -> Result<Vec<Event>, Rejection> {
    let request_id = &request.request_id;
    if state.slot(request_id.as_str()).is_some() {
        return Err(Rejection::RequestIdAlreadyDecided {
            request_id: request_id.clone(),
        });
    }
    if let Some((reason, detail)) = state.identity_refusal(request_id) {
        return Err(Rejection::IdentityRejected {
            request_id: request_id.clone(),
            reason: reason.to_string(),
            detail: detail.to_string(),
        });
    }
    for (field, text, max) in [
        ("identity refusal reason", reason, ACTION_BYTES_MAX),
        ("identity refusal detail", detail, TEXT_BYTES_MAX),
    ] {
        if text.len() > max {
            return Err(Rejection::InputExceedsBound {
                field,
                size: text.len(),
                max,
            });
        }
    }
    Ok(vec![Event::IdentityRefused(IdentityRefused {
        request_id: request_id.clone(),
        principal: request.principal.clone(),
        entitlement: request.entitlement.clone(),
        resource: request.resource.clone(),
        reason: reason.to_string(),
        detail: detail.to_string(),
    })])
}

/// A request by an offboarded principal (`reason` is
/// `principal_offboarded`), or by one whose owner was offboarded
/// (`owner_offboarded`): recorded, and denied by the core alone, with or
/// without a policy set in force.
fn decide_offboarded_submit(
    state: &State,
    request: &SubmitRequest,
    now: Timestamp,
    reason: Reason,
) -> Result<Vec<Event>, Rejection> {
    let catalog = new_submission(state, request, now)?;
    let actions = normalize_actions(&request.actions);
    let decision = DecisionRecorded {
        request_id: request.request_id.clone(),
        outcome: DecisionOutcome::Deny,
        reasons: vec![reason.code().to_string()],
        entitlement: request.entitlement.clone(),
        catalog_hash: catalog.hash().to_string(),
        ttl_granted_ms: 0,
        basis: DecisionBasis::Catalog,
    };
    Ok(submission_events(request, &actions, decision, None, now))
}

fn decide_submit(
    state: &State,
    request: &SubmitRequest,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let catalog = new_submission(state, request, now)?;
    let actions = normalize_actions(&request.actions);
    let evaluation = evaluate(
        catalog,
        &PolicyInput {
            kind: request.principal.kind,
            principal: request.principal.id.as_str(),
            owner: request.principal.owner.as_ref().map(PrincipalId::as_str),
            entitlement: request.entitlement.as_str(),
            resource: request.resource.as_str(),
            actions: &actions,
            ticket_present: request.ticket.as_deref().is_some_and(is_present),
            justification_present: is_present(&request.justification),
            ttl_requested_ms: request.ttl_ms,
        },
    );
    let terms = (evaluation.outcome == DecisionOutcome::Allow).then(|| {
        // INVARIANT: an allowing evaluation always carries its terms.
        evaluation.terms.expect("an allow has terms")
    });
    let decision = DecisionRecorded {
        request_id: request.request_id.clone(),
        outcome: evaluation.outcome,
        reasons: evaluation.reasons,
        entitlement: request.entitlement.clone(),
        catalog_hash: catalog.hash().to_string(),
        ttl_granted_ms: evaluation.ttl_granted_ms,
        basis: DecisionBasis::Catalog,
    };
    Ok(submission_events(request, &actions, decision, terms, now))
}

/// The catalog in force, once `request`'s id is known not to be decided yet
/// and its scheduled start, if any, not too far ahead of `now`.
fn new_submission<'a>(
    state: &'a State,
    request: &SubmitRequest,
    now: Timestamp,
) -> Result<&'a Catalog, Rejection> {
    let catalog = state.catalog().ok_or(Rejection::CatalogMissing)?;
    if state.slot(request.request_id.as_str()).is_some() {
        return Err(Rejection::RequestIdAlreadyDecided {
            request_id: request.request_id.clone(),
        });
    }
    if let Some(starts_at) = request.starts_at_ms.map(Timestamp) {
        check_start_ahead(&request.request_id, starts_at, now)?;
    }
    Ok(catalog)
}

/// Refuses a scheduled start more than [`SCHEDULE_AHEAD_MAX_MS`] after
/// `now`, the submission's time. Shared by `decide` and `apply`.
pub(crate) fn check_start_ahead(
    request_id: &RequestId,
    starts_at: Timestamp,
    now: Timestamp,
) -> Result<(), Rejection> {
    let latest = now.plus_ms(SCHEDULE_AHEAD_MAX_MS);
    if starts_at > latest {
        return Err(Rejection::StartTooFarAhead {
            request_id: request_id.clone(),
            starts_at,
            latest,
        });
    }
    Ok(())
}

/// A decided request's events: the request, its decision, and the grant
/// when `terms` (given only for an allow) issue one now: a request allowed
/// before its scheduled start is issued by the start timer.
fn submission_events(
    request: &SubmitRequest,
    actions: &[&str],
    decision: DecisionRecorded,
    terms: Option<Terms>,
    now: Timestamp,
) -> Vec<Event> {
    let mut events = vec![
        Event::RequestSubmitted(RequestSubmitted::from_request(request)),
        Event::DecisionRecorded(decision),
    ];
    let scheduled = request.starts_at_ms.is_some_and(|starts_at| starts_at > now.0);
    if let Some(terms) = terms.filter(|_| !scheduled) {
        events.push(Event::GrantIssued(issue(
            &request.request_id,
            request.principal.clone(),
            request.entitlement.clone(),
            request.resource.clone(),
            actions.iter().map(|action| action.to_string()).collect(),
            now,
            terms,
        )));
    }
    events
}

/// A request decided by the policy engine: recorded with the engine's
/// decision, and granted at once when it allows.
fn decide_submit_by_engine(
    state: &State,
    request: &SubmitRequest,
    now: Timestamp,
    decision: &EngineDecision,
) -> Result<Vec<Event>, Rejection> {
    let catalog = new_submission(state, request, now)?;
    let actions = normalize_actions(&request.actions);
    let terms = check_engine_decision(
        catalog,
        &EngineDecisionInput {
            kind: request.principal.kind,
            entitlement: request.entitlement.as_str(),
            resource: request.resource.as_str(),
            actions: &actions,
            outcome: &decision.outcome,
            reasons: &decision.reasons,
            ttl_granted_ms: decision.ttl_granted_ms,
            basis: &decision.basis,
        },
    )
    .map_err(|message| Rejection::PolicyDecisionRefused {
        request_id: request.request_id.clone(),
        message,
    })?;
    let terms = terms.filter(|_| decision.outcome == DecisionOutcome::Allow);
    let recorded = DecisionRecorded {
        request_id: request.request_id.clone(),
        outcome: decision.outcome.clone(),
        reasons: decision.reasons.clone(),
        entitlement: request.entitlement.clone(),
        catalog_hash: catalog.hash().to_string(),
        ttl_granted_ms: decision.ttl_granted_ms,
        basis: DecisionBasis::Policy(decision.basis.clone()),
    };
    Ok(submission_events(request, &actions, recorded, terms, now))
}

/// The grant of a request decided earlier, on what it asked for.
fn grant_issued(
    request_id: &RequestId,
    holder: &Holder,
    asked: &Asked,
    now: Timestamp,
    terms: Terms,
) -> Event {
    Event::GrantIssued(issue(
        request_id,
        holder.to_principal(),
        EntitlementId::new(&*asked.entitlement).expect("stored ids are valid"),
        ResourceId::new(&*asked.resource).expect("stored ids are valid"),
        asked.actions.iter().map(|action| action.to_string()).collect(),
        now,
        terms,
    ))
}

fn issue(
    request_id: &RequestId,
    principal: Principal,
    entitlement: EntitlementId,
    resource: ResourceId,
    actions: Vec<String>,
    now: Timestamp,
    terms: Terms,
) -> GrantIssued {
    // A scheduled grant's TTL and cap count from its start, never from its
    // decision nor from a late timer.
    let base = terms.start.unwrap_or(now);
    GrantIssued {
        grant_id: GrantId::for_request(request_id),
        request_id: request_id.clone(),
        principal,
        entitlement,
        resource,
        actions,
        issued_at: now,
        expires_at: base.plus_ms(terms.ttl_ms),
        expires_at_cap: base.plus_ms(terms.ttl_cap_ms),
        break_glass: terms.break_glass,
    }
}

/// Refuses free text and lists over their bounds before anything else, so
/// nothing unbounded is ever recorded.
fn check_bounds(command: &Command) -> Result<(), Rejection> {
    let mut texts: Vec<(&'static str, &str)> = Vec::new();
    let mut actions: &[String] = &[];
    match command {
        Command::PublishCatalog { .. } => {} // bounded by the catalog's own limit
        Command::PublishPolicy {
            policy_text,
            exceptions_text,
            ..
        } => {
            let size = policy_text.len() + exceptions_text.as_ref().map_or(0, String::len);
            if size > POLICY_BYTES_MAX {
                return Err(Rejection::InputExceedsBound {
                    field: "policy",
                    size,
                    max: POLICY_BYTES_MAX,
                });
            }
        }
        Command::Submit(request) => {
            if let Some(token) = &request.identity_token
                && token.len() > IDENTITY_TOKEN_BYTES_MAX
            {
                return Err(Rejection::InputExceedsBound {
                    field: "identity_token",
                    size: token.len(),
                    max: IDENTITY_TOKEN_BYTES_MAX,
                });
            }
            if request.groups.len() > GROUPS_PER_REQUEST_MAX {
                return Err(Rejection::InputExceedsBound {
                    field: "groups",
                    size: request.groups.len(),
                    max: GROUPS_PER_REQUEST_MAX,
                });
            }
            if let Some(group) = request.groups.iter().find(|group| group.len() > ACTION_BYTES_MAX) {
                return Err(Rejection::InputExceedsBound {
                    field: "group",
                    size: group.len(),
                    max: ACTION_BYTES_MAX,
                });
            }
            if !request.context.is_empty() {
                let size: usize = request
                    .context
                    .iter()
                    .map(|(name, value)| name.len() + value.to_string().len())
                    .sum();
                if size > CONTEXT_BYTES_MAX {
                    return Err(Rejection::InputExceedsBound {
                        field: "context",
                        size,
                        max: CONTEXT_BYTES_MAX,
                    });
                }
            }
            texts.push(("justification", &request.justification));
            if let Some(ticket) = &request.ticket {
                texts.push(("ticket", ticket));
            }
            actions = &request.actions;
        }
        Command::Approve { comment, .. } | Command::Deny { comment, .. } => {
            texts.push(("comment", comment));
        }
        Command::Revoke { detail, .. }
        | Command::RiskSignal { detail, .. }
        | Command::Offboard { detail, .. } => {
            texts.push(("detail", detail));
        }
        Command::Withdraw { reason, .. } => texts.push(("reason", reason)),
        Command::Expire { .. }
        | Command::Extend { .. }
        | Command::Start { .. }
        | Command::ExpireRequest { .. } => {}
        Command::ConfirmRevocation { worker, .. } => texts.push(("worker", worker)),
        Command::ReportRevocationFailure { worker, error, .. } => {
            texts.push(("worker", worker));
            texts.push(("error", error));
        }
        Command::BreakGlass {
            reason,
            actions: asked,
            ..
        } => {
            texts.push(("reason", reason));
            actions = asked;
        }
        Command::Review { notes, .. } => texts.push(("notes", notes)),
    }
    for (field, text) in texts {
        if text.len() > TEXT_BYTES_MAX {
            return Err(Rejection::InputExceedsBound {
                field,
                size: text.len(),
                max: TEXT_BYTES_MAX,
            });
        }
    }
    if actions.len() > ACTIONS_PER_REQUEST_MAX {
        return Err(Rejection::InputExceedsBound {
            field: "actions",
            size: actions.len(),
            max: ACTIONS_PER_REQUEST_MAX,
        });
    }
    if let Some(action) = actions
        .iter()
        .find(|action| action.len() > ACTION_BYTES_MAX)
    {
        return Err(Rejection::InputExceedsBound {
            field: "action",
            size: action.len(),
            max: ACTION_BYTES_MAX,
        });
    }
    Ok(())
}

/// The rule checks `decide` and `apply` share. Each returns the slot it
/// found, so `apply` need not look it up again.
impl State {
    /// Checks an approver's verdict on a request; for an approval, also
    /// returns whether it is the last one needed.
    pub(crate) fn check_approval(
        &self,
        request_id: &RequestId,
        approver: &PrincipalId,
        verdict: ApprovalVerdict,
        at: Timestamp,
    ) -> Result<(Slot, bool), Rejection> {
        let slot = self.known_slot(request_id)?;
        let request = self.request_at(slot);
        let (approval, group) = match &request.stage {
            Stage::Pending { approval, .. } => (Some(approval), approval.group.as_ref()),
            // Approved, waiting for its scheduled start: a member of the
            // entry's approver group (in the catalog in force) may still
            // refuse it, which cancels it before it starts.
            Stage::Approved { asked, terms }
                if verdict == ApprovalVerdict::Deny && terms.start.is_some() =>
            {
                let group = self
                    .catalog()
                    .and_then(|catalog| catalog.entitlement(&asked.entitlement))
                    .and_then(|entry| match &entry.approval {
                        ApprovalRule::Approvers { group, .. } => Some(group.as_str()),
                        _ => None,
                    })
                    .ok_or_else(|| Rejection::RequestNotPending {
                        request_id: request_id.clone(),
                        status: request.stage.status(),
                    })?;
                (None, group)
            }
            other => {
                return Err(Rejection::RequestNotPending {
                    request_id: request_id.clone(),
                    status: other.status(),
                });
            }
        };
        // An offboarded requester's request, or one whose requester's owner
        // was offboarded, may still be refused (that closes it), never
        // approved.
        if verdict == ApprovalVerdict::Approve {
            if let Some(&offboarded_at) = self.core.offboarded.get(&request.holder.id) {
                return Err(Rejection::RequesterOffboarded {
                    request_id: request_id.clone(),
                    principal: request.holder.to_principal().id,
                    offboarded_at,
                });
            }
            if let Some(offboarded_at) = self.holder_owner_offboarded_at(&request.holder) {
                let principal = request.holder.to_principal();
                return Err(Rejection::OwnerOffboarded {
                    request_id: request_id.clone(),
                    // INVARIANT: an owner was found offboarded.
                    owner: principal.owner.expect("the holder names an owner"),
                    principal: principal.id,
                    offboarded_at,
                });
            }
        }
        // The owner of a non-human is barred as well as the requester. Today
        // non-humans never wait for approval, so this only matters if that
        // rule is ever relaxed; it costs nothing to hold.
        if request.holder.is_self_or_owner(approver.as_str()) {
            return Err(Rejection::RequesterMayNotApprove {
                request_id: request_id.clone(),
                approver: approver.clone(),
            });
        }
        // Membership is read from the catalog in force now, not the one the
        // decision was made under: someone removed from a group stops being
        // able to approve at once.
        let is_member = self
            .catalog()
            .and_then(|catalog| catalog.group(group))
            .is_some_and(|members| members.contains(approver));
        if !is_member {
            return Err(Rejection::ApproverNotInGroup {
                request_id: request_id.clone(),
                approver: approver.clone(),
                group: group.to_string(),
            });
        }
        let Some(approval) = approval else {
            // A refusal of an approved request waiting for its start.
            return Ok((slot, false));
        };
        let already = approval
            .approvals
            .iter()
            .any(|done| **done == *approver.as_str());
        match verdict {
            // A member who approved may still refuse: a refusal closes the
            // request, which is always the safe direction.
            ApprovalVerdict::Deny => Ok((slot, false)),
            // A refusal after the request expired closes it all the same;
            // an approval would grant what nobody approved in time.
            ApprovalVerdict::Approve if approval.expires_at.is_some_and(|expires_at| at >= expires_at) => {
                Err(Rejection::RequestExpired {
                    request_id: request_id.clone(),
                    // INVARIANT: checked by the guard.
                    expired_at: approval.expires_at.expect("checked"),
                })
            }
            ApprovalVerdict::Approve if already => Err(Rejection::ApproverAlreadyApproved {
                request_id: request_id.clone(),
                approver: approver.clone(),
            }),
            ApprovalVerdict::Approve => Ok((
                slot,
                approval.approvals.len() + 1 >= approval.approvers_required as usize,
            )),
        }
    }

    /// A decided request waiting for its scheduled start (allowed, or
    /// approved, its grant not issued), and its terms; refused when it
    /// already started, or when it has no scheduled start to come (closed,
    /// denied, waiting for approvers).
    pub(crate) fn check_scheduled(
        &self,
        request_id: &RequestId,
    ) -> Result<(Slot, Terms), Rejection> {
        let slot = self.known_slot(request_id)?;
        match &self.request_at(slot).stage {
            Stage::Allowed { terms, .. } | Stage::Approved { terms, .. }
                if terms.start.is_some() =>
            {
                Ok((slot, *terms))
            }
            Stage::Granted(grant) => Err(Rejection::RequestAlreadyStarted {
                request_id: request_id.clone(),
                issued_at: grant.issued_at,
            }),
            other => Err(Rejection::RequestNotScheduled {
                request_id: request_id.clone(),
                status: other.status(),
            }),
        }
    }

    /// A request a risk signal may close: one waiting for approvers, or
    /// for its scheduled start.
    pub(crate) fn check_open(&self, request_id: &RequestId) -> Result<Slot, Rejection> {
        let slot = self.known_slot(request_id)?;
        if self.request_at(slot).stage.is_open() {
            return Ok(slot);
        }
        // Not open: the scheduled check's refusal names where it is instead.
        self.check_scheduled(request_id).map(|(slot, _)| slot)
    }

    /// A request `by` may withdraw with `reason`: one waiting for approvers
    /// or for its scheduled start, withdrawn by its requester or the
    /// requester's owner, with a reason that is not blank.
    pub(crate) fn check_withdrawal(
        &self,
        request_id: &RequestId,
        by: &PrincipalId,
        reason: &str,
    ) -> Result<Slot, Rejection> {
        let slot = self.known_slot(request_id)?;
        let request = self.request_at(slot);
        if !request.stage.is_open() {
            return Err(Rejection::RequestNotOpen {
                request_id: request_id.clone(),
                status: request.stage.status(),
            });
        }
        if !request.holder.is_self_or_owner(by.as_str()) {
            return Err(Rejection::WithdrawalNotByRequester {
                request_id: request_id.clone(),
                by: by.clone(),
                requester: request.holder.to_principal().id,
            });
        }
        if !is_present(reason) {
            return Err(Rejection::WithdrawalReasonRequired {
                request_id: request_id.clone(),
            });
        }
        Ok(slot)
    }

    /// What a start timer does to `request_id` at `at`: issue its grant, or
    /// record that it lapsed; refused when its start is not due, when it
    /// already started, or when it has no scheduled start to come (a request
    /// a risk signal closed included: it is `expired`).
    pub(crate) fn check_start(
        &self,
        request_id: &RequestId,
        at: Timestamp,
    ) -> Result<(Slot, Start), Rejection> {
        let (slot, terms) = self.check_scheduled(request_id)?;
        let request = self.request_at(slot);
        let starts_at = terms.start.expect("checked a scheduled start");
        if at < starts_at {
            return Err(Rejection::StartNotDue {
                request_id: request_id.clone(),
                starts_at,
                now: at,
            });
        }
        if self.core.offboarded.contains_key(&request.holder.id) {
            return Ok((
                slot,
                Start::Lapse {
                    reason: RequestExpiryReason::PrincipalOffboarded,
                    expired_at: starts_at,
                },
            ));
        }
        if self.holder_owner_offboarded_at(&request.holder).is_some() {
            return Ok((
                slot,
                Start::Lapse {
                    reason: RequestExpiryReason::OwnerOffboarded,
                    expired_at: starts_at,
                },
            ));
        }
        let window_end = starts_at.plus_ms(terms.ttl_ms);
        if at >= window_end {
            return Ok((
                slot,
                Start::Lapse {
                    reason: RequestExpiryReason::StartWindowPassed,
                    expired_at: window_end,
                },
            ));
        }
        Ok((slot, Start::Issue))
    }

    /// The deadline of a request waiting for approvers, once it has come by
    /// `at`.
    pub(crate) fn check_request_expiry(
        &self,
        request_id: &RequestId,
        at: Timestamp,
    ) -> Result<(Slot, Timestamp), Rejection> {
        let slot = self.known_slot(request_id)?;
        let request = self.request_at(slot);
        let Stage::Pending { approval, .. } = &request.stage else {
            return Err(Rejection::RequestNotPending {
                request_id: request_id.clone(),
                status: request.stage.status(),
            });
        };
        let Some(expires_at) = approval.expires_at else {
            return Err(Rejection::RequestWithoutTtl {
                request_id: request_id.clone(),
            });
        };
        if at < expires_at {
            return Err(Rejection::RequestNotYetExpired {
                request_id: request_id.clone(),
                expires_at,
                now: at,
            });
        }
        Ok((slot, expires_at))
    }

    /// The grant with this id and its holder.
    pub(crate) fn find_grant(
        &self,
        grant_id: &GrantId,
    ) -> Result<(Slot, &Holder, &Grant), Rejection> {
        let unknown = || Rejection::GrantUnknown {
            grant_id: grant_id.clone(),
        };
        let slot = self.grant_slot(grant_id).ok_or_else(unknown)?;
        let grant = self.grant_at(slot).ok_or_else(unknown)?;
        Ok((slot, &self.request_at(slot).holder, grant))
    }

    /// The grant, if it is neither revoked nor past its `expires_at` at `at`.
    pub(crate) fn check_active(
        &self,
        grant_id: &GrantId,
        at: Timestamp,
    ) -> Result<(Slot, &Holder, &Grant), Rejection> {
        let (slot, holder, grant) = self.find_grant(grant_id)?;
        if let Some(revocation) = &grant.revocation {
            return Err(Rejection::GrantNotActive {
                grant_id: grant_id.clone(),
                detail: format!(
                    "it was revoked (`{}`) at `{}`",
                    revocation.reason.name(),
                    revocation.at
                ),
            });
        }
        if at >= grant.expires_at {
            return Err(Rejection::GrantNotActive {
                grant_id: grant_id.clone(),
                detail: format!(
                    "it expired at `{}`; the expiry timer records it",
                    grant.expires_at
                ),
            });
        }
        Ok((slot, holder, grant))
    }

    /// The grant, if it is unrevoked and its `expires_at` has come by `at`.
    pub(crate) fn check_expirable(
        &self,
        grant_id: &GrantId,
        at: Timestamp,
    ) -> Result<(Slot, &Grant), Rejection> {
        let (slot, _, grant) = self.find_grant(grant_id)?;
        if let Some(revocation) = &grant.revocation {
            return Err(Rejection::GrantNotActive {
                grant_id: grant_id.clone(),
                detail: format!(
                    "it was revoked (`{}`) at `{}`",
                    revocation.reason.name(),
                    revocation.at
                ),
            });
        }
        if at < grant.expires_at {
            return Err(Rejection::GrantNotYetExpired {
                grant_id: grant_id.clone(),
                expires_at: grant.expires_at,
                now: at,
            });
        }
        Ok((slot, grant))
    }

    /// The grant, if it is revoked and its removal is not yet confirmed.
    pub(crate) fn check_revocation_report(
        &self,
        grant_id: &GrantId,
    ) -> Result<(Slot, &Grant), Rejection> {
        let (slot, _, grant) = self.find_grant(grant_id)?;
        match &grant.revocation {
            None => Err(Rejection::GrantNotRevoked {
                grant_id: grant_id.clone(),
            }),
            Some(revocation) if revocation.confirmed => {
                Err(Rejection::RevocationAlreadyConfirmed {
                    grant_id: grant_id.clone(),
                })
            }
            Some(_) => Ok((slot, grant)),
        }
    }

    /// The grant, if `by` may move its expiry to `expires_at` at `at`.
    pub(crate) fn check_extension(
        &self,
        grant_id: &GrantId,
        by: &PrincipalId,
        expires_at: Timestamp,
        at: Timestamp,
    ) -> Result<(Slot, &Grant), Rejection> {
        let (slot, holder, grant) = self.check_active(grant_id, at)?;
        if !holder.is_self_or_owner(by.as_str()) {
            return Err(Rejection::ExtensionNotByHolder {
                grant_id: grant_id.clone(),
                by: by.clone(),
            });
        }
        if grant.approved {
            return Err(Rejection::ExtensionNeedsApproval {
                grant_id: grant_id.clone(),
            });
        }
        if expires_at <= grant.expires_at {
            return Err(Rejection::ExtensionNotLater {
                grant_id: grant_id.clone(),
                expires_at: grant.expires_at,
                requested: expires_at,
            });
        }
        if expires_at > grant.expires_at_cap {
            return Err(Rejection::ExtensionExceedsCap {
                grant_id: grant_id.clone(),
                requested: expires_at,
                cap: grant.expires_at_cap,
            });
        }
        Ok((slot, grant))
    }

    /// Refuses a break-glass by an offboarded principal, or by one whose
    /// owner was offboarded.
    pub(crate) fn check_not_offboarded_break_glass(
        &self,
        request_id: &RequestId,
        principal: &Principal,
        entitlement: &EntitlementId,
        resource: &ResourceId,
    ) -> Result<(), Rejection> {
        if self.offboarded_at(&principal.id).is_some() {
            return Err(Rejection::BreakGlassRefused {
                request_id: request_id.clone(),
                entitlement: entitlement.clone(),
                resource: resource.clone(),
                reason: Reason::PrincipalOffboarded,
            });
        }
        if let Some((owner, offboarded_at)) = self.offboarded_owner(principal) {
            return Err(Rejection::OwnerOffboarded {
                request_id: request_id.clone(),
                principal: principal.id.clone(),
                owner: owner.clone(),
                offboarded_at,
            });
        }
        Ok(())
    }

    /// When the owner `holder` names was offboarded, if it names one and
    /// that owner was.
    pub(crate) fn holder_owner_offboarded_at(&self, holder: &Holder) -> Option<Timestamp> {
        holder
            .owner
            .as_ref()
            .and_then(|owner| self.core.offboarded.get(owner))
            .copied()
    }

    /// Checks that `reviewer` may record the review a break-glass grant owes.
    pub(crate) fn check_review(
        &self,
        grant_id: &GrantId,
        reviewer: &PrincipalId,
    ) -> Result<Slot, Rejection> {
        let (slot, holder, grant) = self.find_grant(grant_id)?;
        if !grant.break_glass {
            return Err(Rejection::GrantNotBreakGlass {
                grant_id: grant_id.clone(),
            });
        }
        if grant.review.is_some() {
            return Err(Rejection::ReviewAlreadyRecorded {
                grant_id: grant_id.clone(),
            });
        }
        if holder.is_self_or_owner(reviewer.as_str()) {
            return Err(Rejection::ReviewerMayNotReviewOwnUse {
                grant_id: grant_id.clone(),
                reviewer: reviewer.clone(),
            });
        }
        Ok(slot)
    }
}
