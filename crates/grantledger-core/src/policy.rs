//! The policy: a pure function from (catalog, request) to a decision. Both
//! [`decide`](crate::decide) and [`apply`](crate::apply) call it, so a replay
//! re-checks every recorded decision against the catalog that was in force.

use grantledger_events::{DecisionOutcome, PrincipalKind};

use crate::catalog::{ApprovalRule, Catalog};
use crate::pattern::is_concrete_resource;
use crate::rejection::Reason;
use crate::state::Terms;

/// What the policy looks at in a request.
pub(crate) struct PolicyInput<'a> {
    pub(crate) kind: PrincipalKind,
    pub(crate) principal: &'a str,
    pub(crate) owner: Option<&'a str>,
    pub(crate) entitlement: &'a str,
    pub(crate) resource: &'a str,
    /// Sorted and distinct.
    pub(crate) actions: &'a [&'a str],
    pub(crate) ticket_present: bool,
    pub(crate) justification_present: bool,
    pub(crate) ttl_requested_ms: Option<i64>,
}

/// The policy's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Evaluation {
    pub(crate) outcome: DecisionOutcome,
    /// Sorted codes.
    pub(crate) reasons: Vec<String>,
    /// The grant's TTL if issued; 0 for a deny.
    pub(crate) ttl_granted_ms: i64,
    /// The terms a grant will have, unless denied.
    pub(crate) terms: Option<Terms>,
}

/// True when free text says something: not empty, not only spaces.
pub(crate) fn is_present(text: &str) -> bool {
    !text.trim().is_empty()
}

/// The actions of a request, sorted and distinct: the set a grant holds.
pub(crate) fn normalize_actions<S: AsRef<str>>(actions: &[S]) -> Vec<&str> {
    let mut normalized: Vec<&str> = actions.iter().map(AsRef::as_ref).collect();
    normalized.sort_unstable();
    normalized.dedup();
    normalized
}

/// Decides a request. Every broken rule is reported, not only the first,
/// so the recorded decision tells an auditor everything that was wrong.
pub(crate) fn evaluate(catalog: &Catalog, input: &PolicyInput<'_>) -> Evaluation {
    let Some(entry) = catalog.entitlement(input.entitlement) else {
        return deny(vec![Reason::EntitlementUnknown]);
    };
    let mut broken = Vec::new();
    if !is_concrete_resource(input.resource) {
        broken.push(Reason::ResourceNotConcrete);
    } else if !entry.resource.matches(input.resource) {
        broken.push(Reason::ResourceOutsideEntitlement);
    }
    if input.actions.is_empty() {
        broken.push(Reason::ActionsEmpty);
    }
    if input
        .actions
        .iter()
        .any(|action| !entry.allows_action(action))
    {
        broken.push(Reason::ActionOutsideEntitlement);
    }
    if !entry.allows_kind(input.kind) {
        broken.push(Reason::PrincipalKindNotAllowed);
    }
    if input.kind.is_non_human() && input.owner.is_none_or(|owner| owner == input.principal) {
        broken.push(Reason::OwnerRequiredForNonHuman);
    }
    if !input.justification_present {
        broken.push(Reason::JustificationRequired);
    }
    if entry.ticket_required && !input.ticket_present {
        broken.push(Reason::TicketRequired);
    }
    let ttl_ms = input.ttl_requested_ms.unwrap_or(entry.ttl_default_ms);
    if ttl_ms <= 0 {
        broken.push(Reason::TtlNotPositive);
    } else if ttl_ms > entry.ttl_max_ms {
        broken.push(Reason::TtlExceedsEntryMax);
    }
    let approvers = match &entry.approval {
        ApprovalRule::Auto => None,
        ApprovalRule::Deny => {
            broken.push(Reason::EntitlementDeniesSelfService);
            None
        }
        ApprovalRule::Approvers {
            approvers_required,
            group,
        } => {
            if input.kind.is_non_human() {
                broken.push(Reason::WorkloadNeedsPolicyApproval);
            }
            Some((*approvers_required, group))
        }
    };
    if !broken.is_empty() {
        return deny(broken);
    }
    // INVARIANT: past this point 0 < ttl_ms <= entry.ttl_max_ms, and the
    // approval rule is `auto` or N approvers for a human.
    let (outcome, reason) = match approvers {
        None => (DecisionOutcome::Allow, Reason::AutoApproved),
        Some((approvers_required, group)) => (
            DecisionOutcome::NeedsApproval {
                approvers_required,
                group: group.clone(),
            },
            Reason::ApprovalRequired,
        ),
    };
    Evaluation {
        terms: Some(Terms {
            ttl_ms,
            ttl_cap_ms: entry.ttl_max_ms,
            break_glass: false,
            approved: approvers.is_some(),
            start: None,
        }),
        outcome,
        reasons: codes(vec![reason]),
        ttl_granted_ms: ttl_ms,
    }
}

/// What the break-glass rules look at.
pub(crate) struct BreakGlassInput<'a> {
    pub(crate) kind: PrincipalKind,
    pub(crate) entitlement: &'a str,
    pub(crate) resource: &'a str,
    /// Sorted and distinct.
    pub(crate) actions: &'a [&'a str],
    pub(crate) reason_present: bool,
    pub(crate) ttl_ms: i64,
}

/// Checks a break-glass invocation; the first broken rule refuses it.
pub(crate) fn check_break_glass(
    catalog: &Catalog,
    input: &BreakGlassInput<'_>,
) -> Result<Terms, Reason> {
    let entry = catalog
        .entitlement(input.entitlement)
        .ok_or(Reason::EntitlementUnknown)?;
    let cap_ms = entry
        .break_glass_ttl_max_ms
        .ok_or(Reason::BreakGlassNotEligible)?;
    let checks = [
        (input.kind.is_non_human(), Reason::BreakGlassHumanOnly),
        (
            !entry.allows_kind(input.kind),
            Reason::PrincipalKindNotAllowed,
        ),
        (
            !is_concrete_resource(input.resource),
            Reason::ResourceNotConcrete,
        ),
        (
            !entry.resource.matches(input.resource),
            Reason::ResourceOutsideEntitlement,
        ),
        (input.actions.is_empty(), Reason::ActionsEmpty),
        (
            input
                .actions
                .iter()
                .any(|action| !entry.allows_action(action)),
            Reason::ActionOutsideEntitlement,
        ),
        (!input.reason_present, Reason::BreakGlassReasonRequired),
        (input.ttl_ms <= 0, Reason::TtlNotPositive),
        (input.ttl_ms > cap_ms, Reason::TtlExceedsBreakGlassMax),
    ];
    if let Some((_, reason)) = checks.into_iter().find(|(broken, _)| *broken) {
        return Err(reason);
    }
    Ok(Terms {
        ttl_ms: input.ttl_ms,
        ttl_cap_ms: cap_ms,
        break_glass: true,
        approved: false,
        start: None,
    })
}

fn deny(broken: Vec<Reason>) -> Evaluation {
    Evaluation {
        outcome: DecisionOutcome::Deny,
        reasons: codes(broken),
        ttl_granted_ms: 0,
        terms: None,
    }
}

fn codes(reasons: Vec<Reason>) -> Vec<String> {
    let mut codes: Vec<String> = reasons
        .into_iter()
        .map(|reason| reason.code().to_string())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// What a decision made by the policy engine must satisfy for the ledger to
/// record it and act on it. The core cannot re-run Cedar (`grantledger
/// replay --recheck` does); it checks what it can: the decision is well
/// formed, and an allow or a step-up is within the catalog's terms.
pub(crate) struct EngineDecisionInput<'a> {
    pub(crate) kind: PrincipalKind,
    pub(crate) entitlement: &'a str,
    pub(crate) resource: &'a str,
    /// Sorted and distinct.
    pub(crate) actions: &'a [&'a str],
    pub(crate) outcome: &'a DecisionOutcome,
    pub(crate) reasons: &'a [String],
    pub(crate) ttl_granted_ms: i64,
    pub(crate) basis: &'a grantledger_events::PolicyBasis,
}

/// Checks an engine decision; returns the terms of the grant it allows (or
/// will allow once approved), `None` for a deny, or what is wrong.
pub(crate) fn check_engine_decision(
    catalog: &Catalog,
    input: &EngineDecisionInput<'_>,
) -> Result<Option<Terms>, String> {
    let sorted_distinct = |items: &[String]| items.windows(2).all(|pair| pair[0] < pair[1]);
    if input.reasons.is_empty() || !sorted_distinct(input.reasons) {
        return Err(format!(
            "reasons {:?} must be non-empty, sorted and distinct",
            input.reasons
        ));
    }
    if !sorted_distinct(&input.basis.determining_policies) {
        return Err(format!(
            "determining policies {:?} must be sorted and distinct",
            input.basis.determining_policies
        ));
    }
    if !input
        .basis
        .evaluated
        .windows(2)
        .all(|pair| pair[0].name < pair[1].name)
    {
        return Err("evaluated values must be sorted by name and distinct".to_string());
    }
    let says_no_permit = input
        .reasons
        .iter()
        .any(|reason| reason == NO_PERMIT_MATCHED);
    if says_no_permit != input.basis.no_permit_matched {
        return Err(format!(
            "`no_permit_matched` is `{}` but the reasons {:?} {} say so",
            input.basis.no_permit_matched,
            input.reasons,
            if says_no_permit { "do" } else { "do not" }
        ));
    }
    let approvers = match input.outcome {
        DecisionOutcome::Deny => {
            if input.ttl_granted_ms != 0 {
                return Err(format!(
                    "a deny grants no TTL, found `{}` ms",
                    input.ttl_granted_ms
                ));
            }
            return Ok(None);
        }
        DecisionOutcome::Allow if input.basis.no_permit_matched => {
            return Err("an allow where no permit matched".to_string());
        }
        DecisionOutcome::Allow => false,
        DecisionOutcome::NeedsApproval { .. } if input.basis.no_permit_matched => {
            return Err("a step-up where no permit matched".to_string());
        }
        DecisionOutcome::NeedsApproval {
            approvers_required,
            group,
        } => {
            if input.kind.is_non_human() {
                return Err(format!(
                    "a `{}` is decided by policy alone, never routed to approvers",
                    input.kind.name()
                ));
            }
            let Some(members) = catalog.group(group) else {
                return Err(format!("approver group `{group}` is not in the catalog"));
            };
            if *approvers_required == 0 || *approvers_required as usize > members.len() {
                return Err(format!(
                    "`{approvers_required}` approvers from group `{group}`, which has `{}` members",
                    members.len()
                ));
            }
            true
        }
    };
    let Some(entry) = catalog.entitlement(input.entitlement) else {
        return Err(format!(
            "entitlement `{}` is not in the catalog",
            input.entitlement
        ));
    };
    if !is_concrete_resource(input.resource) || !entry.resource.matches(input.resource) {
        return Err(format!(
            "resource `{}` is outside entitlement `{}`",
            input.resource, entry.id
        ));
    }
    if input.actions.is_empty()
        || input
            .actions
            .iter()
            .any(|action| !entry.allows_action(action))
    {
        return Err(format!(
            "actions {:?} are not a non-empty subset of entitlement `{}`'s",
            input.actions, entry.id
        ));
    }
    if !entry.allows_kind(input.kind) {
        return Err(format!(
            "entitlement `{}` may not be requested by a `{}`",
            entry.id,
            input.kind.name()
        ));
    }
    if input.ttl_granted_ms <= 0 || input.ttl_granted_ms > entry.ttl_max_ms {
        return Err(format!(
            "TTL `{}` ms is outside (0, `{}`] ms, the entry's hard cap",
            input.ttl_granted_ms, entry.ttl_max_ms
        ));
    }
    Ok(Some(Terms {
        ttl_ms: input.ttl_granted_ms,
        ttl_cap_ms: entry.ttl_max_ms,
        break_glass: false,
        approved: approvers,
        start: None,
    }))
}

/// The reason code of the policy engine's default deny.
pub const NO_PERMIT_MATCHED: &str = "no_permit_matched";
