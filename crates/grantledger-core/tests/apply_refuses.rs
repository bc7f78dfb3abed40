//! `apply` refuses events that break a rule, even when a log's hashes are
//! consistent: a table of forged or out-of-order events, each ending in the
//! rule it breaks. A refused event leaves the state unchanged.

mod common;

use std::collections::BTreeSet;

use common::*;
use grantledger_core::{ApplyErrorKind, Command, State, apply, catalog_hash, decide};
use grantledger_events::{
    ApprovalVerdict, BreakGlassInvoked, CatalogPublished, DecisionOutcome, DecisionRecorded, Event,
    GrantExtended, GrantId, GrantIssued, IdentityRefused, PolicyPublished, PrincipalOffboarded,
    RequestExpired, RequestExpiryReason, ReviewRecorded, ReviewVerdict, RevocationConfirmed, RevocationFailed, RevocationReason,
    Timestamp, policy_hash,
};

use ApplyErrorKind as K;

fn state_of(events: &[(Timestamp, Event)]) -> State {
    let mut state = State::default();
    for (at, event) in events {
        apply(&mut state, event, *at).expect("the base history applies");
    }
    state
}

/// The events `command` would cause after `base`, at `now`.
fn next(base: &[(Timestamp, Event)], command: Command, now: Timestamp) -> Vec<Event> {
    decide(&state_of(base), &command, now).expect("the command is accepted")
}

fn with(
    base: &[(Timestamp, Event)],
    more: impl IntoIterator<Item = Event>,
    at: Timestamp,
) -> Vec<(Timestamp, Event)> {
    let mut events = base.to_vec();
    events.extend(more.into_iter().map(|event| (at, event)));
    events
}

fn offboarded(principal: &str) -> Event {
    Event::PrincipalOffboarded(PrincipalOffboarded {
        principal: pid(principal),
        by: pid("hr-system"),
        detail: "left".into(),
    })
}

fn identity_refused(request: &str) -> Event {
    Event::IdentityRefused(IdentityRefused {
        request_id: rid(request),
        principal: workload("svc-etl", "alice"),
        entitlement: ent("db-read"),
        resource: res("db/prod/orders"),
        reason: "bad_signature".into(),
        detail: "forged".into(),
    })
}

fn request_expired(request: &str, reason: RequestExpiryReason, expired_at: Timestamp) -> Event {
    Event::RequestExpired(RequestExpired {
        request_id: rid(request),
        reason,
        expired_at,
    })
}

fn withdrawn(request: &str, by: &str, reason: &str) -> Event {
    Event::RequestWithdrawn(grantledger_events::RequestWithdrawn {
        request_id: rid(request),
        withdrawn_by: pid(by),
        reason: reason.into(),
    })
}

fn grant_of(events: &[Event]) -> GrantIssued {
    events
        .iter()
        .find_map(|event| match event {
            Event::GrantIssued(grant) => Some(grant.clone()),
            _ => None,
        })
        .expect("a grant")
}

struct Row {
    name: &'static str,
    base: Vec<(Timestamp, Event)>,
    event: Event,
    at: Timestamp,
    kind: ApplyErrorKind,
}

fn rows() -> Vec<Row> {
    let catalog = history([(T0, publish(CATALOG))]);
    let read = read_req("r1", human("alice"), "db/prod/orders");
    let read_events = next(&catalog, submit(read.clone()), T0);
    let granted = with(&catalog, read_events.clone(), T0);
    // The request and its allowing decision, without the grant.
    let allowed = with(&catalog, read_events[..2].to_vec(), T0);
    let submitted_only = with(&catalog, read_events[..1].to_vec(), T0);
    let grant = grant_of(&read_events);
    let write = write_req("r1", human("alice"));
    let pending = with(&catalog, next(&catalog, submit(write.clone()), T0), T0);
    let pending_one = with(&pending, next(&pending, approve("r1", "dana"), T0), T0);
    let export = req(
        "r1",
        human("alice"),
        "db-export",
        "db/prod/orders",
        &["export"],
    );
    let denied = with(&catalog, next(&catalog, submit(export.clone()), T0), T0);
    let revoked_ = with(
        &granted,
        next(
            &granted,
            revoke("r1", RevocationReason::Manual, "priya"),
            t(1),
        ),
        t(1),
    );
    let confirmed = with(&revoked_, next(&revoked_, confirm("r1"), t(2)), t(2));
    let write_workload = write_req("r1", workload("svc-etl", "alice"));

    let forged_grant = |change: &dyn Fn(&mut GrantIssued)| {
        let mut forged = grant.clone();
        change(&mut forged);
        Event::GrantIssued(forged)
    };
    let decision = |request: &grantledger_events::SubmitRequest, outcome, reasons: &[&str], ttl| {
        decided(request, outcome, reasons, ttl)
    };

    // Allowed at T0 to start in an hour.
    let scheduled = with(
        &catalog,
        next(&catalog, submit(starting(read.clone(), t(HOUR))), T0),
        T0,
    );

    // A workload owned by alice: allowed and granted at once, or allowed
    // without its grant yet; and a contractor she sponsors, waiting for
    // two DBAs.
    let bot_read = read_req("w1", workload("svc-etl", "alice"), "db/prod/orders");
    let bot_events = next(&catalog, submit(bot_read.clone()), T0);
    let bot_allowed = with(&catalog, bot_events[..2].to_vec(), T0);
    let contractor = grantledger_events::Principal {
        owner: Some(pid("alice")),
        ..human("carl")
    };
    let contractor_write = write_req("c1", contractor.clone());
    let contractor_pending = with(&catalog, next(&catalog, submit(contractor_write), T0), T0);

    let policy_text = "@id(\"p\")\npermit (principal, action, resource);\n";
    let published = |hash: String| {
        Event::PolicyPublished(PolicyPublished {
            policy_hash: hash,
            policy_text: policy_text.into(),
            exceptions_text: None,
            published_by: pid("policy-admin"),
        })
    };
    let policy_in_force = with(&catalog, [published(policy_hash(policy_text, None))], T0);
    let submitted_under_policy = with(&policy_in_force, [submitted(&read)], T0);

    vec![
        Row {
            name: "an approval after the request TTL",
            base: pending.clone(),
            event: Event::ApprovalRecorded(grantledger_events::ApprovalRecorded {
                request_id: rid("r1"),
                approver: pid("dana"),
                verdict: ApprovalVerdict::Approve,
                comment: String::new(),
            }),
            at: t(24 * HOUR),
            kind: K::ApprovalAfterRequestExpired,
        },
        Row {
            name: "a policy set whose hash is not its texts'",
            base: catalog.clone(),
            event: published("00".repeat(32)),
            at: T0,
            kind: K::PolicyHashMismatch,
        },
        Row {
            name: "a catalog-only decision while a policy set is in force",
            base: submitted_under_policy,
            event: decision(&read, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            at: T0,
            kind: K::DecisionPolicyNotInForce,
        },
        Row {
            name: "a request before any catalog",
            base: vec![],
            event: submitted(&read),
            at: T0,
            kind: K::NoCatalogInForce,
        },
        Row {
            name: "a catalog whose hash is not its text's",
            base: vec![],
            event: Event::CatalogPublished(CatalogPublished {
                catalog_hash: "00".repeat(32),
                text: CATALOG.into(),
                published_by: pid("mallory"),
            }),
            at: T0,
            kind: K::CatalogHashMismatch,
        },
        Row {
            name: "an invalid catalog",
            base: vec![],
            event: Event::CatalogPublished(CatalogPublished {
                catalog_hash: catalog_hash("bogus = 1"),
                text: "bogus = 1".into(),
                published_by: pid("mallory"),
            }),
            at: T0,
            kind: K::CatalogInvalid,
        },
        Row {
            name: "a request id recorded twice",
            base: granted.clone(),
            event: submitted(&read),
            at: t(1),
            kind: K::RequestDuplicated,
        },
        Row {
            name: "a decision for a request never recorded",
            base: catalog.clone(),
            event: decision(&read, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            at: T0,
            kind: K::RequestUnknown,
        },
        Row {
            name: "a second decision for one request id",
            base: allowed.clone(),
            event: decision(&read, DecisionOutcome::Deny, &["entitlement_unknown"], 0),
            at: T0,
            kind: K::DecisionDuplicated,
        },
        Row {
            name: "a decision after the grant",
            base: granted.clone(),
            event: decision(&read, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            at: T0,
            kind: K::DecisionDuplicated,
        },
        Row {
            name: "an allow the policy does not give (never self-service)",
            base: with(&catalog, [submitted(&export)], T0),
            event: decision(&export, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            at: T0,
            kind: K::DecisionContradictsPolicy,
        },
        Row {
            name: "a workload queued for a human",
            base: with(&catalog, [submitted(&write_workload)], T0),
            event: decision(
                &write_workload,
                DecisionOutcome::NeedsApproval {
                    approvers_required: 2,
                    group: "dba".into(),
                },
                &["approval_required"],
                30 * MINUTE,
            ),
            at: T0,
            kind: K::DecisionContradictsPolicy,
        },
        Row {
            name: "an allow with a longer TTL than asked for",
            base: submitted_only.clone(),
            event: decision(&read, DecisionOutcome::Allow, &["auto_approved"], 2 * HOUR),
            at: T0,
            kind: K::DecisionContradictsPolicy,
        },
        Row {
            name: "a decision under a catalog not in force",
            base: submitted_only.clone(),
            event: Event::DecisionRecorded(DecisionRecorded {
                catalog_hash: catalog_hash("older"),
                ..match decision(&read, DecisionOutcome::Allow, &["auto_approved"], HOUR) {
                    Event::DecisionRecorded(decision) => decision,
                    _ => unreachable!(),
                }
            }),
            at: T0,
            kind: K::DecisionCatalogNotInForce,
        },
        Row {
            name: "a grant with no decision at all",
            base: submitted_only.clone(),
            event: Event::GrantIssued(grant.clone()),
            at: T0,
            kind: K::GrantWithoutAllowingDecision,
        },
        Row {
            name: "a grant for a request never recorded",
            base: catalog.clone(),
            event: Event::GrantIssued(grant.clone()),
            at: T0,
            kind: K::GrantWithoutAllowingDecision,
        },
        Row {
            name: "a grant for a denied request",
            base: denied.clone(),
            event: issued(&export, T0, HOUR, HOUR),
            at: T0,
            kind: K::GrantWithoutAllowingDecision,
        },
        Row {
            name: "a grant before any approval",
            base: pending.clone(),
            event: issued(&write, T0, 30 * MINUTE, 2 * HOUR),
            at: T0,
            kind: K::GrantWithoutEnoughApprovals,
        },
        Row {
            name: "a grant after one of two approvals",
            base: pending_one.clone(),
            event: issued(&write, T0, 30 * MINUTE, 2 * HOUR),
            at: T0,
            kind: K::GrantWithoutEnoughApprovals,
        },
        Row {
            name: "a second grant for one request",
            base: granted.clone(),
            event: Event::GrantIssued(grant.clone()),
            at: T0,
            kind: K::GrantDuplicated,
        },
        Row {
            name: "a grant past the entry's maximum TTL",
            base: allowed.clone(),
            event: forged_grant(&|g| g.expires_at = g.issued_at.plus_ms(8 * HOUR + 1)),
            at: T0,
            kind: K::GrantTtlExceedsEntryMax,
        },
        Row {
            name: "a grant with another TTL than decided",
            base: allowed.clone(),
            event: forged_grant(&|g| g.expires_at = g.issued_at.plus_ms(2 * HOUR)),
            at: T0,
            kind: K::GrantTtlDiffersFromDecision,
        },
        Row {
            name: "a grant with a cap past the entry's",
            base: allowed.clone(),
            event: forged_grant(&|g| g.expires_at_cap = g.issued_at.plus_ms(9 * HOUR)),
            at: T0,
            kind: K::GrantCapDiffersFromEntry,
        },
        Row {
            name: "a grant on another resource",
            base: allowed.clone(),
            event: forged_grant(&|g| g.resource = res("db/prod/users")),
            at: T0,
            kind: K::GrantDiffersFromRequest,
        },
        Row {
            name: "a grant with more actions",
            base: allowed.clone(),
            event: forged_grant(&|g| g.actions.push("write".into())),
            at: T0,
            kind: K::GrantDiffersFromRequest,
        },
        Row {
            name: "a grant to someone else",
            base: allowed.clone(),
            event: forged_grant(&|g| g.principal = human("mallory")),
            at: T0,
            kind: K::GrantDiffersFromRequest,
        },
        Row {
            name: "a normal grant flagged break-glass",
            base: allowed.clone(),
            event: forged_grant(&|g| g.break_glass = true),
            at: T0,
            kind: K::GrantDiffersFromRequest,
        },
        Row {
            name: "a grant id not derived from its request",
            base: allowed.clone(),
            event: forged_grant(&|g| g.grant_id = GrantId::new("grant:other").unwrap()),
            at: T0,
            kind: K::GrantIdNotDerived,
        },
        Row {
            name: "a grant backdated before its record",
            base: allowed.clone(),
            event: Event::GrantIssued(grant.clone()),
            at: t(1),
            kind: K::GrantNotIssuedAtRecordTime,
        },
        Row {
            name: "a self-approval",
            base: pending.clone(),
            event: approval("r1", "alice", ApprovalVerdict::Approve),
            at: T0,
            kind: K::SelfApproval,
        },
        Row {
            name: "an approval from outside the group",
            base: pending.clone(),
            event: approval("r1", "sam", ApprovalVerdict::Approve),
            at: T0,
            kind: K::ApproverNotInGroup,
        },
        Row {
            name: "the same approver twice",
            base: pending_one.clone(),
            event: approval("r1", "dana", ApprovalVerdict::Approve),
            at: T0,
            kind: K::ApproverNotDistinct,
        },
        Row {
            name: "an approval of a request that needs none",
            base: granted.clone(),
            event: approval("r1", "dana", ApprovalVerdict::Approve),
            at: T0,
            kind: K::RequestNotPending,
        },
        Row {
            name: "an extension past the cap",
            base: granted.clone(),
            event: Event::GrantExtended(GrantExtended {
                grant_id: gid("r1"),
                extended_by: pid("alice"),
                expires_at_previous: t(HOUR),
                expires_at: t(8 * HOUR + 1),
            }),
            at: t(1),
            kind: K::ExtensionNotAllowed,
        },
        Row {
            name: "an extension from another expiry than the one in force",
            base: granted.clone(),
            event: Event::GrantExtended(GrantExtended {
                grant_id: gid("r1"),
                extended_by: pid("alice"),
                expires_at_previous: t(2 * HOUR),
                expires_at: t(3 * HOUR),
            }),
            at: t(1),
            kind: K::ExtensionNotAllowed,
        },
        Row {
            name: "an extension of a grant never issued",
            base: catalog.clone(),
            event: Event::GrantExtended(GrantExtended {
                grant_id: gid("r1"),
                extended_by: pid("alice"),
                expires_at_previous: t(HOUR),
                expires_at: t(2 * HOUR),
            }),
            at: t(1),
            kind: K::GrantUnknown,
        },
        Row {
            name: "a grant revoked twice",
            base: revoked_.clone(),
            event: revoked("r1", RevocationReason::TaskComplete, Some("alice"), "done"),
            at: t(2),
            kind: K::GrantNotActive,
        },
        Row {
            name: "a manual revocation after expires_at (the expiry must be recorded instead)",
            base: granted.clone(),
            event: revoked("r1", RevocationReason::Manual, Some("alice"), "late"),
            at: t(HOUR),
            kind: K::GrantNotActive,
        },
        Row {
            name: "an expiry before expires_at",
            base: granted.clone(),
            event: revoked("r1", RevocationReason::Expired, None, "early"),
            at: t(HOUR - 1),
            kind: K::ExpiredBeforeExpiresAt,
        },
        Row {
            name: "a revocation of a grant never issued",
            base: catalog.clone(),
            event: revoked("r1", RevocationReason::Manual, Some("alice"), "x"),
            at: T0,
            kind: K::GrantUnknown,
        },
        Row {
            name: "a confirmation without a revocation",
            base: granted.clone(),
            event: Event::RevocationConfirmed(RevocationConfirmed {
                grant_id: gid("r1"),
                worker: "w".into(),
            }),
            at: t(1),
            kind: K::GrantNotRevoked,
        },
        Row {
            name: "a second confirmation",
            base: confirmed.clone(),
            event: Event::RevocationConfirmed(RevocationConfirmed {
                grant_id: gid("r1"),
                worker: "w".into(),
            }),
            at: t(3),
            kind: K::RevocationAlreadyConfirmed,
        },
        Row {
            name: "a failure after the confirmation",
            base: confirmed.clone(),
            event: Event::RevocationFailed(RevocationFailed {
                grant_id: gid("r1"),
                worker: "w".into(),
                error: "x".into(),
                attempt: 1,
            }),
            at: t(3),
            kind: K::RevocationAlreadyConfirmed,
        },
        Row {
            name: "a break-glass past its cap",
            base: catalog.clone(),
            event: Event::BreakGlassInvoked(BreakGlassInvoked {
                request_id: rid("bg1"),
                principal: human("alice"),
                entitlement: ent("db-write"),
                resource: res("db/prod/orders"),
                actions: vec!["write".into()],
                reason: "incident".into(),
                ttl_ms: 16 * MINUTE,
            }),
            at: T0,
            kind: K::BreakGlassBreaksPolicy,
        },
        Row {
            name: "a review of a grant that owes none",
            base: granted.clone(),
            event: Event::ReviewRecorded(ReviewRecorded {
                grant_id: gid("r1"),
                reviewer: pid("priya"),
                verdict: ReviewVerdict::Justified,
                notes: String::new(),
            }),
            at: t(1),
            kind: K::ReviewNotAllowed,
        },
        Row {
            name: "a second offboarding of one principal",
            base: with(&catalog, [offboarded("alice")], T0),
            event: offboarded("alice"),
            at: t(1),
            kind: K::PrincipalAlreadyOffboarded,
        },
        Row {
            name: "a grant to a principal offboarded since its decision",
            base: with(&allowed, [offboarded("alice")], T0),
            event: Event::GrantIssued(grant.clone()),
            at: T0,
            kind: K::PrincipalOffboarded,
        },
        Row {
            name: "an approval of an offboarded requester's request",
            base: with(&pending, [offboarded("alice")], T0),
            event: approval("r1", "dana", ApprovalVerdict::Approve),
            at: t(1),
            kind: K::PrincipalOffboarded,
        },
        Row {
            name: "a break-glass by an offboarded principal",
            base: with(&catalog, [offboarded("alice")], T0),
            event: next(&catalog, break_glass("bg1", human("alice"), "db-write", "db/prod/orders", MINUTE), T0)
                .remove(0),
            at: T0,
            kind: K::PrincipalOffboarded,
        },
        Row {
            name: "an allowing decision on an offboarded principal's request",
            base: with(&catalog, [offboarded("alice"), submitted(&read)], T0),
            event: decision(&read, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            at: T0,
            kind: K::DecisionContradictsPolicy,
        },
        Row {
            name: "an allowing decision on a request whose principal's owner was offboarded",
            base: with(&catalog, [offboarded("alice"), submitted(&bot_read)], T0),
            event: decided(&bot_read, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            at: T0,
            kind: K::DecisionContradictsPolicy,
        },
        Row {
            name: "a denial as `principal_offboarded` of a request whose owner, not principal, was offboarded",
            base: with(&catalog, [offboarded("alice"), submitted(&bot_read)], T0),
            event: decided(&bot_read, DecisionOutcome::Deny, &["principal_offboarded"], 0),
            at: T0,
            kind: K::DecisionContradictsPolicy,
        },
        Row {
            name: "a grant to a workload whose owner was offboarded since its decision",
            base: with(&bot_allowed, [offboarded("alice")], T0),
            event: Event::GrantIssued(grant_of(&bot_events)),
            at: T0,
            kind: K::OwnerOffboarded,
        },
        Row {
            name: "an approval of a request whose requester's owner was offboarded",
            base: with(&contractor_pending, [offboarded("alice")], T0),
            event: approval("c1", "dana", ApprovalVerdict::Approve),
            at: t(1),
            kind: K::OwnerOffboarded,
        },
        Row {
            name: "a break-glass by a principal whose owner was offboarded",
            base: with(&catalog, [offboarded("alice")], T0),
            event: next(&catalog, break_glass("bg1", contractor.clone(), "db-write", "db/prod/orders", MINUTE), T0)
                .remove(0),
            at: T0,
            kind: K::OwnerOffboarded,
        },
        Row {
            name: "an identity refusal of a request already recorded",
            base: granted.clone(),
            event: identity_refused("r1"),
            at: t(1),
            kind: K::IdentityRefusalDuplicated,
        },
        Row {
            name: "a second identity refusal of one request id",
            base: with(&catalog, [identity_refused("r9")], T0),
            event: identity_refused("r9"),
            at: t(1),
            kind: K::IdentityRefusalDuplicated,
        },
        Row {
            name: "a request starting more than 30 days after its record",
            base: catalog.clone(),
            event: submitted(&starting(read.clone(), t(30 * 24 * HOUR + 1))),
            at: T0,
            kind: K::StartTooFarAhead,
        },
        Row {
            name: "a scheduled request's grant before its start",
            base: scheduled.clone(),
            event: {
                let mut early = grant_of(&next(&scheduled, start("r1"), t(HOUR)));
                early.issued_at = t(HOUR - 1);
                Event::GrantIssued(early)
            },
            at: t(HOUR - 1),
            kind: K::GrantOutsideSchedule,
        },
        Row {
            name: "a scheduled request's grant after its whole window passed",
            base: scheduled.clone(),
            event: {
                let mut late = grant_of(&next(&scheduled, start("r1"), t(HOUR)));
                late.issued_at = t(2 * HOUR);
                Event::GrantIssued(late)
            },
            at: t(2 * HOUR),
            kind: K::GrantOutsideSchedule,
        },
        Row {
            name: "a scheduled request's grant issued with its decision",
            base: scheduled.clone(),
            event: Event::GrantIssued(GrantIssued {
                issued_at: T0,
                expires_at: T0.plus_ms(HOUR),
                expires_at_cap: T0.plus_ms(8 * HOUR),
                ..grant_of(&next(&scheduled, start("r1"), t(HOUR)))
            }),
            at: T0,
            kind: K::GrantOutsideSchedule,
        },
        Row {
            name: "a request expired before its request TTL",
            base: pending.clone(),
            event: request_expired("r1", RequestExpiryReason::RequestTtl, t(24 * HOUR)),
            at: t(24 * HOUR - 1),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a request expired at another deadline than its request TTL",
            base: pending.clone(),
            event: request_expired("r1", RequestExpiryReason::RequestTtl, t(25 * HOUR)),
            at: t(25 * HOUR),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a granted request expired",
            base: granted.clone(),
            event: request_expired("r1", RequestExpiryReason::RequestTtl, t(24 * HOUR)),
            at: t(24 * HOUR),
            kind: K::RequestNotPending,
        },
        Row {
            name: "a scheduled request expired while its start can be honoured",
            base: scheduled.clone(),
            event: request_expired("r1", RequestExpiryReason::StartWindowPassed, t(2 * HOUR)),
            at: t(HOUR),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a scheduled request expired as offboarded while its principal is not",
            base: scheduled.clone(),
            event: request_expired("r1", RequestExpiryReason::PrincipalOffboarded, t(HOUR)),
            at: t(HOUR),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a scheduled request expired as its owner offboarded while it has no owner",
            base: with(&scheduled, [offboarded("bob")], T0),
            event: request_expired("r1", RequestExpiryReason::OwnerOffboarded, t(HOUR)),
            at: t(HOUR),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a request closed by a risk signal at another time than its record's",
            base: scheduled.clone(),
            event: request_expired("r1", RequestExpiryReason::RiskSignal, t(1)),
            at: t(2),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a request closed by a risk signal after its grant was issued",
            base: granted.clone(),
            event: request_expired("r1", RequestExpiryReason::RiskSignal, t(1)),
            at: t(1),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a denied request closed as by a risk signal",
            base: denied.clone(),
            event: request_expired("r1", RequestExpiryReason::RiskSignal, t(1)),
            at: t(1),
            kind: K::RequestExpiryNotAllowed,
        },
        Row {
            name: "a scheduled request withdrawn by someone other than its requester",
            base: scheduled.clone(),
            event: withdrawn("r1", "mallory", "not mine"),
            at: t(1),
            kind: K::WithdrawalNotAllowed,
        },
        Row {
            name: "a pending request withdrawn without a reason",
            base: pending.clone(),
            event: withdrawn("r1", "alice", ""),
            at: t(1),
            kind: K::WithdrawalNotAllowed,
        },
        Row {
            name: "a granted request withdrawn",
            base: granted.clone(),
            event: withdrawn("r1", "alice", "no longer needed"),
            at: t(1),
            kind: K::WithdrawalNotAllowed,
        },
        Row {
            name: "an event earlier than the one before",
            base: revoked_.clone(),
            event: Event::RevocationConfirmed(RevocationConfirmed {
                grant_id: gid("r1"),
                worker: "w".into(),
            }),
            at: T0,
            kind: K::TimeWentBack,
        },
    ]
}

#[test]
fn apply_refuses_rule_breaking_events_table() {
    for row in rows() {
        let mut state = state_of(&row.base);
        let before = state.digest();
        let error = apply(&mut state, &row.event, row.at).expect_err(row.name);
        assert_eq!(error.kind(), row.kind, "{}: {error}", row.name);
        assert_eq!(error.event(), row.event.kind(), "{}", row.name);
        let message = error.to_string();
        assert!(message.contains(row.kind.code()), "{}: {message}", row.name);
        assert!(!message.ends_with('.'), "{}: {message}", row.name);
        assert_eq!(
            state.digest(),
            before,
            "{}: a refused event changes nothing",
            row.name
        );
    }
}

#[test]
fn every_apply_error_kind_has_a_row() {
    let covered: BTreeSet<ApplyErrorKind> = rows().iter().map(|row| row.kind).collect();
    for kind in ApplyErrorKind::ALL {
        assert!(covered.contains(&kind), "`{}` has no row", kind.code());
    }
}

#[test]
fn decided_events_apply_and_a_break_glass_grant_needs_its_invocation() {
    // A break-glass grant without the invocation is a grant without a
    // decision.
    let catalog = history([(T0, publish(CATALOG))]);
    let events = next(
        &catalog,
        break_glass("bg1", human("alice"), "db-write", "db/prod/orders", MINUTE),
        T0,
    );
    let mut state = state_of(&catalog);
    let error = apply(&mut state, &events[1], T0).unwrap_err();
    assert_eq!(error.kind(), K::GrantWithoutAllowingDecision);
    for event in &events {
        apply(&mut state, event, T0).unwrap();
    }
}
