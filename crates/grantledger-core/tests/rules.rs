//! Given/when/then tests of every rule the ledger enforces, and of every
//! rejection and deny code. Grep for a code to find its test.

mod common;

use common::*;
use grantledger_core::{
    Command, DEFAULT_CATALOG, EngineDecision, EngineInput, POLICY_BYTES_MAX, Reason, Rejection,
    RequestStatus, State, TEXT_BYTES_MAX, apply, decide, decide_with,
};
use grantledger_events::{
    ApprovalVerdict, BreakGlassInvoked, DecisionBasis, DecisionOutcome, EvaluatedValue, Event,
    GrantExtended, GrantIssued, IdentityRefused, PolicyBasis, PolicyPublished,
    PrincipalOffboarded, RequestExpired, RequestExpiryReason, RevocationConfirmed,
    RevocationFailed, RevocationReason, SubmitRequest, Timestamp, policy_hash,
};

use ApprovalVerdict::{Approve, Deny};
use RevocationReason::{Expired, Manual, OwnerGone, RiskSignal, TaskComplete};

fn needs_dba() -> DecisionOutcome {
    DecisionOutcome::NeedsApproval {
        approvers_required: 2,
        group: "dba".into(),
    }
}

// ------------------------------------------------------------------ catalog

#[test]
fn catalog_missing_refuses_requests_and_break_glass() {
    given([])
        .when(submit(read_req("r1", human("alice"), "db/prod/orders")), T0)
        .then_rejects("catalog_missing");
    given([])
        .when(
            break_glass(
                "bg1",
                human("alice"),
                "db-write",
                "db/prod/orders",
                10 * MINUTE,
            ),
            T0,
        )
        .then_rejects("catalog_missing");
}

#[test]
fn catalog_publication_is_an_event_and_a_bad_catalog_is_refused() {
    given([])
        .when(publish(CATALOG), T0)
        .then_events(vec![Event::CatalogPublished(
            grantledger_events::CatalogPublished {
                catalog_hash: catalog_hash_of(CATALOG),
                text: CATALOG.into(),
                published_by: pid("catalog-admin"),
            },
        )]);
    given([])
        .when(publish("[[entitlement]]\nid = \"x\"\nbogus = 1\n"), T0)
        .then_rejects_naming("catalog_invalid", &["bogus"]);
    given_catalog()
        .when(publish(CATALOG), t(1))
        .then_rejects("catalog_already_in_force");
}

#[test]
fn decisions_record_the_catalog_in_force() {
    let second = CATALOG.replace(
        "ttl_default_s = 3600\nttl_max_s = 28800",
        "ttl_default_s = 600\nttl_max_s = 28800",
    );
    let scenario = given_catalog().when(publish(&second), t(1)).then_ok();
    let when = scenario.when(
        submit(read_req("r1", human("alice"), "db/prod/orders")),
        t(2),
    );
    let Some(Event::DecisionRecorded(decision)) = when.events().get(1) else {
        panic!("a decision")
    };
    assert_eq!(decision.catalog_hash, catalog_hash_of(&second));
    assert_eq!(
        decision.ttl_granted_ms,
        600 * SECOND,
        "the new default TTL is applied"
    );
    when.then_ok();
}

// ------------------------------------------------------------------ submit

#[test]
fn auto_approved_request_is_granted_at_once_until_now_plus_ttl() {
    let request = read_req("r1", human("alice"), "db/prod/orders");
    given_catalog()
        .when(submit(request.clone()), t(5 * MINUTE))
        .then_events(vec![
            submitted(&request),
            decided(&request, DecisionOutcome::Allow, &["auto_approved"], HOUR),
            issued(&request, t(5 * MINUTE), HOUR, 8 * HOUR),
        ]);
}

#[test]
fn the_ttl_asked_for_is_granted_when_within_the_maximum() {
    let request = SubmitRequest {
        ttl_ms: Some(8 * HOUR),
        ..read_req("r1", human("alice"), "db/prod/orders")
    };
    given_catalog()
        .when(submit(request.clone()), T0)
        .then_events(vec![
            submitted(&request),
            decided(
                &request,
                DecisionOutcome::Allow,
                &["auto_approved"],
                8 * HOUR,
            ),
            issued(&request, T0, 8 * HOUR, 8 * HOUR),
        ]);
}

/// Every deny code, one row each: the request is recorded, the decision is
/// a deny naming the broken rules (sorted), and there is no grant.
#[test]
fn deny_codes_table() {
    let ok = || read_req("r1", human("alice"), "db/prod/orders");
    let rows: Vec<(SubmitRequest, &[&str])> = vec![
        (
            req(
                "r1",
                human("alice"),
                "db-admin",
                "db/prod/orders",
                &["read"],
            ),
            &["entitlement_unknown"],
        ),
        (
            SubmitRequest {
                resource: res("db/prod/*"),
                ..ok()
            },
            &["resource_not_concrete"],
        ),
        (
            SubmitRequest {
                resource: res("db/staging/orders"),
                ..ok()
            },
            &["resource_outside_entitlement"],
        ),
        (
            SubmitRequest {
                resource: res("db/prod/orders/archive"),
                ..ok()
            },
            &["resource_outside_entitlement"],
        ),
        (
            SubmitRequest {
                actions: vec![],
                ..ok()
            },
            &["actions_empty"],
        ),
        (
            SubmitRequest {
                actions: vec!["read".into(), "write".into()],
                ..ok()
            },
            &["action_outside_entitlement"],
        ),
        (
            req(
                "r1",
                human("alice"),
                "repo-write",
                "git/acme/api",
                &["push"],
            ),
            &["principal_kind_not_allowed"],
        ),
        (
            SubmitRequest {
                principal: grantledger_events::Principal {
                    owner: None,
                    ..workload("svc", "x")
                },
                ..ok()
            },
            &["owner_required_for_non_human"],
        ),
        (
            SubmitRequest {
                principal: agent("bot", "bot"),
                ..ok()
            },
            &["owner_required_for_non_human"],
        ),
        (
            SubmitRequest {
                justification: "  ".into(),
                ..ok()
            },
            &["justification_required"],
        ),
        (
            SubmitRequest {
                ticket: None,
                ..write_req("r1", human("alice"))
            },
            &["ticket_required"],
        ),
        (
            SubmitRequest {
                ticket: Some(" ".into()),
                ..write_req("r1", human("alice"))
            },
            &["ticket_required"],
        ),
        (
            SubmitRequest {
                ttl_ms: Some(0),
                ..ok()
            },
            &["ttl_not_positive"],
        ),
        (
            SubmitRequest {
                ttl_ms: Some(-5 * MINUTE),
                ..ok()
            },
            &["ttl_not_positive"],
        ),
        (
            SubmitRequest {
                ttl_ms: Some(8 * HOUR + 1),
                ..ok()
            },
            &["ttl_exceeds_entry_max"],
        ),
        (
            SubmitRequest {
                ttl_ms: Some(i64::MAX),
                ..ok()
            },
            &["ttl_exceeds_entry_max"],
        ),
        (
            req(
                "r1",
                human("alice"),
                "db-export",
                "db/prod/orders",
                &["export"],
            ),
            &["entitlement_denies_self_service"],
        ),
        (
            write_req("r1", workload("svc-etl", "alice")),
            &["workload_needs_policy_approval"],
        ),
        (
            SubmitRequest {
                ttl_ms: Some(9 * HOUR),
                actions: vec!["drop".into()],
                resource: res("db/staging/x"),
                ..ok()
            },
            &[
                "action_outside_entitlement",
                "resource_outside_entitlement",
                "ttl_exceeds_entry_max",
            ],
        ),
    ];
    for (request, reasons) in rows {
        given_catalog()
            .when(submit(request), T0)
            .then_decision(DecisionOutcome::Deny, reasons);
    }
}

#[test]
fn a_denied_request_is_recorded_for_auditors_without_a_grant() {
    let request = req(
        "r1",
        human("alice"),
        "db-export",
        "db/prod/orders",
        &["export"],
    );
    let scenario = given_catalog()
        .when(submit(request.clone()), T0)
        .then_events(vec![
            submitted(&request),
            decided(
                &request,
                DecisionOutcome::Deny,
                &["entitlement_denies_self_service"],
                0,
            ),
        ]);
    assert_eq!(
        scenario.state().request_status(&rid("r1")),
        Some(RequestStatus::Denied)
    );
    assert!(scenario.state().grant(&gid("r1")).is_none());
    assert!(
        !scenario
            .state()
            .check(&pid("alice"), "export", &res("db/prod/orders"), T0)
    );
}

#[test]
fn one_decision_per_request_id_however_often_it_is_delivered() {
    let request = read_req("r1", human("alice"), "db/prod/orders");
    let scenario = given_catalog().when(submit(request.clone()), T0).then_ok();
    let scenario = scenario
        .when(submit(request), t(1))
        .then_rejects_naming("request_id_already_decided", &["r1"]);
    // Different content under the same id changes nothing either.
    let scenario = scenario
        .when(
            submit(req(
                "r1",
                human("mallory"),
                "db-export",
                "db/prod/orders",
                &["export"],
            )),
            t(2),
        )
        .then_rejects("request_id_already_decided");
    // A denied id stays decided.
    let denied = req(
        "r2",
        human("alice"),
        "db-export",
        "db/prod/orders",
        &["export"],
    );
    let scenario = scenario.when(submit(denied.clone()), t(3)).then_ok();
    let scenario = scenario
        .when(submit(denied), t(4))
        .then_rejects("request_id_already_decided");
    // And a break-glass cannot reuse a request id.
    scenario
        .when(
            break_glass("r1", human("alice"), "db-write", "db/prod/orders", MINUTE),
            t(5),
        )
        .then_rejects("request_id_already_decided");
}

#[test]
fn a_human_step_up_waits_for_approvers_without_a_grant() {
    let request = write_req("r1", human("alice"));
    let scenario = given_catalog()
        .when(submit(request.clone()), T0)
        .then_events(vec![
            submitted(&request),
            decided(&request, needs_dba(), &["approval_required"], 30 * MINUTE),
        ]);
    let pending = scenario.state().pending_requests(10);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].group, "dba");
    assert_eq!(pending[0].approvers_required, 2);
    assert!(
        !scenario
            .state()
            .check(&pid("alice"), "write", &res("db/prod/orders"), T0)
    );
}

/// Workloads and agents are decided by policy alone: for every entitlement
/// of the shipped catalog that needs approvers, a non-human is denied,
/// never queued.
#[test]
fn a_non_human_is_never_queued_for_a_human() {
    let catalog = grantledger_core::Catalog::parse(DEFAULT_CATALOG).unwrap();
    let mut state = State::default();
    let published = decide(&state, &publish(DEFAULT_CATALOG), T0).unwrap();
    grantledger_core::apply(&mut state, &published[0], T0).unwrap();
    let mut checked = 0;
    for entitlement in catalog.entitlements() {
        for principal in [workload("svc-etl", "alice"), agent("agent-code", "alice")] {
            let resource = entitlement
                .resource
                .as_str()
                .replace("**", "x")
                .replace('*', "x");
            let request = SubmitRequest {
                ticket: Some("CHG-1".into()),
                ..req(
                    "r1",
                    principal.clone(),
                    &entitlement.id,
                    &resource,
                    &entitlement
                        .actions
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
            };
            let events = decide(&state, &submit(request), T0).unwrap();
            let Event::DecisionRecorded(decision) = &events[1] else {
                panic!("a decision")
            };
            assert!(
                !matches!(decision.outcome, DecisionOutcome::NeedsApproval { .. }),
                "`{}` queued for a human on `{}`",
                principal.id,
                entitlement.id
            );
            if matches!(
                entitlement.approval,
                grantledger_core::ApprovalRule::Approvers { .. }
            ) && entitlement.allows_kind(principal.kind)
            {
                assert_eq!(
                    decision.reasons,
                    vec!["workload_needs_policy_approval".to_string()]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "the shipped catalog exercises the rule");
}

#[test]
fn an_agent_gets_a_short_repo_grant_by_policy_alone() {
    let request = req(
        "r1",
        agent("agent-code", "alice"),
        "repo-write",
        "git/acme/api",
        &["push", "open_pull_request", "push"],
    );
    given_catalog()
        .when(submit(request.clone()), T0)
        .then_events(vec![
            submitted(&request),
            decided(
                &request,
                DecisionOutcome::Allow,
                &["auto_approved"],
                30 * MINUTE,
            ),
            issued(&request, T0, 30 * MINUTE, HOUR),
        ]);
}

#[test]
fn oversized_input_is_refused_before_anything_is_recorded() {
    let long = SubmitRequest {
        justification: "x".repeat(TEXT_BYTES_MAX + 1),
        ..read_req("r1", human("alice"), "db/prod/orders")
    };
    given_catalog()
        .when(submit(long), T0)
        .then_rejects("input_exceeds_bound");
    let many = SubmitRequest {
        actions: (0..33).map(|i| format!("a{i}")).collect(),
        ..read_req("r1", human("alice"), "db/prod/orders")
    };
    given_catalog()
        .when(submit(many), T0)
        .then_rejects("input_exceeds_bound");
}

// ------------------------------------------------------------------ approvals

#[test]
fn n_distinct_approvers_issue_the_grant_with_its_ttl_counted_from_issue() {
    let request = write_req("r1", human("alice"));
    given_commands([(T0, submit(request.clone()))])
        .when(approve("r1", "dana"), t(5 * MINUTE))
        .then_events(vec![approval("r1", "dana", Approve)])
        .when(approve("r1", "dana"), t(6 * MINUTE))
        .then_rejects_naming("approver_already_approved", &["dana", "r1"])
        .when(approve("r1", "dmitri"), t(10 * MINUTE))
        .then_events(vec![
            approval("r1", "dmitri", Approve),
            issued(&request, t(10 * MINUTE), 30 * MINUTE, 2 * HOUR),
        ])
        .when(approve("r1", "dora"), t(11 * MINUTE))
        .then_rejects("request_not_pending");
}

#[test]
fn approval_rejections_table() {
    let pending = || given_commands([(T0, submit(write_req("r1", human("dana"))))]);
    let rows: Vec<(Scenario, grantledger_core::Command, &str)> = vec![
        (pending(), approve("r9", "dmitri"), "request_unknown"),
        (
            pending(),
            approve("r1", "dana"),
            "requester_may_not_approve",
        ),
        (pending(), refuse("r1", "dana"), "requester_may_not_approve"),
        (pending(), approve("r1", "sam"), "approver_not_in_group"),
        (pending(), refuse("r1", "mallory"), "approver_not_in_group"),
        (
            given_commands([
                (T0, submit(write_req("r1", human("dana")))),
                (T0, approve("r1", "dmitri")),
            ]),
            approve("r1", "dmitri"),
            "approver_already_approved",
        ),
        (
            given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))]),
            approve("r1", "dana"),
            "request_not_pending",
        ),
        (
            given_commands([
                (T0, submit(write_req("r1", human("dana")))),
                (T0, refuse("r1", "dora")),
            ]),
            approve("r1", "dmitri"),
            "request_not_pending",
        ),
    ];
    for (scenario, command, code) in rows {
        scenario.when(command, t(MINUTE)).then_rejects(code);
    }
}

#[test]
fn nobody_approves_their_own_request_even_inside_the_group() {
    let request = write_req("r1", human("dana"));
    given_commands([(T0, submit(request.clone()))])
        .when(approve("r1", "dana"), t(1))
        .then_rejects_naming("requester_may_not_approve", &["dana", "r1"])
        .when(approve("r1", "dmitri"), t(2))
        .then_ok()
        .when(approve("r1", "dora"), t(3))
        .then_events(vec![
            approval("r1", "dora", Approve),
            issued(&request, t(3), 30 * MINUTE, 2 * HOUR),
        ]);
}

#[test]
fn an_approver_refusal_closes_the_request() {
    given_commands([
        (T0, submit(write_req("r1", human("alice")))),
        (t(1), approve("r1", "dana")),
    ])
    .when(refuse("r1", "dana"), t(2))
    .then_events(vec![approval("r1", "dana", Deny)])
    .when(approve("r1", "dmitri"), t(3))
    .then_rejects("request_not_pending");
}

#[test]
fn group_membership_is_read_from_the_catalog_in_force() {
    let without_dmitri = CATALOG.replace(
        r#"dba = ["dana", "dmitri", "dora"]"#,
        r#"dba = ["dana", "dora", "dylan"]"#,
    );
    given_commands([
        (T0, submit(write_req("r1", human("alice")))),
        (t(1), publish(&without_dmitri)),
    ])
    .when(approve("r1", "dmitri"), t(2))
    .then_rejects_naming("approver_not_in_group", &["dmitri", "dba"])
    .when(approve("r1", "dylan"), t(3))
    .then_ok();
}

// ------------------------------------------------------------------ check, counting

#[test]
fn check_is_false_at_expires_at_exactly_whatever_the_revocation_workers_do() {
    let scenario = given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))]);
    let state = scenario.state();
    let (alice, orders) = (pid("alice"), res("db/prod/orders"));
    assert!(
        !state.check(&alice, "read", &orders, t(-1)),
        "not before issue"
    );
    assert!(state.check(&alice, "read", &orders, T0));
    assert!(state.check(&alice, "read", &orders, t(HOUR - 1)));
    assert!(
        !state.check(&alice, "read", &orders, t(HOUR)),
        "false at expires_at exactly"
    );
    assert!(!state.check(&alice, "read", &orders, t(HOUR + 1)));
    assert!(
        !state.check(&alice, "write", &orders, T0),
        "only the granted actions"
    );
    assert!(
        !state.check(&alice, "read", &res("db/prod/users"), T0),
        "only the granted resource"
    );
    assert!(
        !state.check(&pid("bob"), "read", &orders, T0),
        "only the holder"
    );
    // No expiry recorded, no confirmation: still false at expires_at.
    assert_eq!(state.due_expiries(t(HOUR), 10), vec![gid("r1")]);
    assert_eq!(state.live_grants(&alice, t(HOUR)), vec![]);
    assert_eq!(state.live_grants(&alice, t(HOUR - 1)).len(), 1);
}

#[test]
fn check_is_false_from_the_revocation_on_and_true_before_it() {
    let scenario = given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (t(10 * MINUTE), revoke("r1", TaskComplete, "alice")),
    ]);
    let (alice, orders) = (pid("alice"), res("db/prod/orders"));
    assert!(
        scenario
            .state()
            .check(&alice, "read", &orders, t(10 * MINUTE - 1))
    );
    assert!(
        !scenario
            .state()
            .check(&alice, "read", &orders, t(10 * MINUTE))
    );
}

#[test]
fn overlapping_grants_are_reference_counted() {
    let (alice, orders) = (pid("alice"), res("db/prod/orders"));
    let scenario = given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (
            t(MINUTE),
            submit(read_req("r2", human("alice"), "db/prod/orders")),
        ),
    ]);
    assert_eq!(scenario.state().access_count(&alice, &orders, "read"), 2);
    let scenario = scenario
        .when(revoke("r1", TaskComplete, "alice"), t(2 * MINUTE))
        .then_ok();
    assert_eq!(scenario.state().access_count(&alice, &orders, "read"), 1);
    assert!(
        scenario
            .state()
            .check(&alice, "read", &orders, t(2 * MINUTE)),
        "r2 still gives it"
    );
    let scenario = scenario
        .when(revoke("r2", Manual, "priya"), t(3 * MINUTE))
        .then_ok();
    assert_eq!(scenario.state().access_count(&alice, &orders, "read"), 0);
    assert!(
        !scenario
            .state()
            .check(&alice, "read", &orders, t(3 * MINUTE))
    );
    assert_eq!(
        scenario.state().effective_access().count(),
        0,
        "no zero counts kept"
    );
}

// ------------------------------------------------------------------ revocation

#[test]
fn revoke_records_the_reason_and_leaves_revocation_debt() {
    let scenario = given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))])
        .when(revoke("r1", OwnerGone, "hr"), t(MINUTE))
        .then_events(vec![revoked("r1", OwnerGone, Some("hr"), "done")]);
    let debt = scenario.state().revocation_debt(10);
    assert_eq!(debt.len(), 1);
    assert_eq!((debt[0].reason, debt[0].revoked_at), (OwnerGone, t(MINUTE)));
}

#[test]
fn revoke_rejections_table() {
    let granted =
        || given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))]);
    let rows: Vec<(
        Scenario,
        grantledger_core::Command,
        grantledger_events::Timestamp,
        &str,
    )> = vec![
        (
            granted(),
            revoke("r1", Expired, "alice"),
            t(1),
            "reason_not_allowed_here",
        ),
        (
            granted(),
            revoke("r1", RiskSignal, "alice"),
            t(1),
            "reason_not_allowed_here",
        ),
        (
            granted(),
            revoke("r9", Manual, "alice"),
            t(1),
            "grant_unknown",
        ),
        (
            given_commands([(T0, submit(write_req("r1", human("alice"))))]),
            revoke("r1", Manual, "alice"),
            t(1),
            "grant_unknown",
        ),
        (
            given_commands([
                (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
                (t(1), revoke("r1", Manual, "priya")),
            ]),
            revoke("r1", TaskComplete, "alice"),
            t(2),
            "grant_not_active",
        ),
        (
            granted(),
            revoke("r1", TaskComplete, "alice"),
            t(HOUR),
            "grant_not_active",
        ),
    ];
    for (scenario, command, now, code) in rows {
        scenario.when(command, now).then_rejects(code);
    }
}

#[test]
fn a_risk_signal_revokes_every_live_grant_of_the_principal_and_only_theirs() {
    let scenario = given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (T0, submit(read_req("r2", human("alice"), "db/prod/users"))),
        (
            T0,
            submit(SubmitRequest {
                ttl_ms: Some(MINUTE),
                ..read_req("r3", human("alice"), "db/prod/ledger")
            }),
        ),
        (t(1), submit(read_req("r4", human("bob"), "db/prod/orders"))),
        (
            t(2),
            submit(read_req(
                "r5",
                agent("alice-bot", "alice"),
                "db/prod/orders",
            )),
        ),
        (t(3), revoke("r2", TaskComplete, "alice")),
    ]);
    // r2 is already revoked and r3 has expired (unrecorded): only r1 is live.
    let scenario = scenario
        .when(risk("alice"), t(2 * MINUTE))
        .then_events(vec![revoked(
            "r1",
            RiskSignal,
            Some("risk-engine"),
            "impossible travel",
        )]);
    let state = scenario.state();
    assert!(!state.check(&pid("alice"), "read", &res("db/prod/orders"), t(2 * MINUTE)));
    assert!(
        state.check(&pid("bob"), "read", &res("db/prod/orders"), t(2 * MINUTE)),
        "bob keeps his"
    );
    assert!(
        state.check(
            &pid("alice-bot"),
            "read",
            &res("db/prod/orders"),
            t(2 * MINUTE)
        ),
        "the agent is another principal"
    );
    scenario
        .when(risk("alice"), t(3 * MINUTE))
        .then_rejects_naming("principal_has_no_live_grant", &["alice"]);
}

#[test]
fn a_risk_signal_revokes_several_grants_at_once() {
    given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (T0, submit(read_req("r2", human("alice"), "db/prod/users"))),
    ])
    .when(risk("alice"), t(1))
    .then_events(vec![
        revoked("r1", RiskSignal, Some("risk-engine"), "impossible travel"),
        revoked("r2", RiskSignal, Some("risk-engine"), "impossible travel"),
    ]);
}

// ------------------------------------------------------------------ offboarding

fn offboarded_event(principal: &str) -> Event {
    Event::PrincipalOffboarded(PrincipalOffboarded {
        principal: pid(principal),
        by: pid("hr-system"),
        detail: "left the company".into(),
    })
}

#[test]
fn an_offboarding_is_recorded_and_revokes_every_live_grant_of_the_principal_and_of_what_it_owns_at_once() {
    let scenario = given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (T0, submit(read_req("r2", human("alice"), "db/prod/users"))),
        (
            T0,
            submit(SubmitRequest {
                ttl_ms: Some(MINUTE),
                ..read_req("r3", human("alice"), "db/prod/ledger")
            }),
        ),
        (t(1), submit(read_req("r4", human("alice"), "db/prod/x"))),
        (t(1), submit(read_req("r5", agent("alice-bot", "alice"), "db/prod/orders"))),
        (t(1), submit(read_req("r6", workload("svc-etl", "bob"), "db/prod/orders"))),
        (t(1), submit(read_req("r7", workload("alice-ci", "alice"), "db/prod/orders"))),
        (t(2), revoke("r4", TaskComplete, "alice")),
        (t(2), revoke("r7", TaskComplete, "alice")),
        (t(3), submit(read_req("r8", workload("alice-ci", "alice"), "db/prod/users"))),
    ]);
    // r3 has expired (unrecorded), r4 and r7 are revoked: r1 and r2 of
    // hers are live, and r5 and r8 of the agent and the workload she owns;
    // r6 is bob's workload's. All in the order they were recorded.
    let scenario = scenario
        .when(offboard("alice"), t(2 * MINUTE))
        .then_events(vec![
            offboarded_event("alice"),
            revoked("r1", OwnerGone, Some("hr-system"), "left the company"),
            revoked("r2", OwnerGone, Some("hr-system"), "left the company"),
            revoked("r5", OwnerGone, Some("hr-system"), "left the company"),
            revoked("r8", OwnerGone, Some("hr-system"), "left the company"),
        ]);
    let state = scenario.state();
    assert_eq!(state.offboarded_at(&pid("alice")), Some(t(2 * MINUTE)));
    assert!(!state.check(&pid("alice"), "read", &res("db/prod/orders"), t(2 * MINUTE)));
    assert!(
        !state.check(&pid("alice-bot"), "read", &res("db/prod/orders"), t(2 * MINUTE)),
        "nobody answers for her agent any more"
    );
    assert!(!state.check(&pid("alice-ci"), "read", &res("db/prod/users"), t(2 * MINUTE)));
    assert!(
        state.check(&pid("svc-etl"), "read", &res("db/prod/orders"), t(2 * MINUTE)),
        "bob's workload keeps its grant"
    );
    // r3, past its expiry (unrecorded), and bob's workload's.
    assert_eq!(state.counts().grants_unrevoked, 2);
    assert_eq!(state.counts().principals_offboarded, 1);
    // Once only.
    let scenario = scenario
        .when(offboard("alice"), t(3 * MINUTE))
        .then_rejects_naming("principal_already_offboarded", &["alice", &t(2 * MINUTE).to_string()]);
    // Someone holding nothing is offboarded all the same.
    let scenario = scenario
        .when(offboard("carol"), t(3 * MINUTE))
        .then_events(vec![offboarded_event("carol")]);
    // Bob holds nothing himself: his workload's grant is revoked with his
    // offboarding.
    scenario
        .when(offboard("bob"), t(3 * MINUTE))
        .then_events(vec![
            offboarded_event("bob"),
            revoked("r6", OwnerGone, Some("hr-system"), "left the company"),
        ]);
}

#[test]
fn an_offboarded_principal_is_denied_and_its_pending_requests_are_never_approved() {
    let scenario = given_commands([
        (T0, submit(write_req("r1", human("alice")))),
        (t(1), approve("r1", "dana")),
        (t(2), submit(write_req("r2", human("alice")))),
        (t(3), offboard("alice")),
    ]);
    // The second approval would grant: refused, naming the request and her.
    let scenario = scenario
        .when(approve("r1", "dmitri"), t(4))
        .then_rejects_naming("requester_offboarded", &["r1", "alice"]);
    assert_eq!(scenario.state().request_status(&rid("r1")), Some(RequestStatus::Pending));
    // A refusal still closes it.
    let scenario = scenario.when(refuse("r2", "dana"), t(4)).then_ok();
    assert_eq!(scenario.state().request_status(&rid("r2")), Some(RequestStatus::Refused));
    // A new request is recorded and denied, whatever the catalog would say.
    let scenario = scenario
        .when(submit(read_req("r3", human("alice"), "db/prod/orders")), t(5))
        .then_decision(DecisionOutcome::Deny, &["principal_offboarded"]);
    // Break-glass too.
    let scenario = scenario
        .when(break_glass("bg1", human("alice"), "db-write", "db/prod/orders", MINUTE), t(6))
        .then_rejects_naming("principal_offboarded", &["bg1"]);
    // One decision per request id still holds for her.
    scenario
        .when(submit(read_req("r3", human("alice"), "db/prod/orders")), t(7))
        .then_rejects("request_id_already_decided");
    // Others are not affected.
    given_commands([(t(3), offboard("alice"))])
        .when(submit(read_req("r9", human("bob"), "db/prod/orders")), t(4))
        .then_decision(DecisionOutcome::Allow, &["auto_approved"]);
}

#[test]
fn an_offboarded_principal_is_denied_by_the_core_even_under_a_policy_that_allows() {
    let mut state = policy_state();
    for event in decide(&state, &offboard("alice"), t(2)).unwrap() {
        apply(&mut state, &event, t(2)).unwrap();
    }
    let request = read_req("r1", human("alice"), "db/prod/orders");
    let allow = engine_decision(DecisionOutcome::Allow, &["auto_approved"], HOUR);
    for engine in [EngineInput::Decision(allow), EngineInput::None] {
        let events = decide_with(&state, &submit(request.clone()), t(3), &engine).unwrap();
        assert_eq!(events.len(), 2, "no grant: {events:?}");
        let Event::DecisionRecorded(decision) = &events[1] else { panic!("{events:?}") };
        assert_eq!(decision.outcome, DecisionOutcome::Deny);
        assert_eq!(decision.reasons, ["principal_offboarded"]);
        assert_eq!(decision.basis, DecisionBasis::Catalog, "the core decided it, not the policy");
        let mut after = state.clone();
        for event in &events {
            apply(&mut after, event, t(3)).unwrap();
        }
    }
}

/// A contractor whose sponsor (owner) is alice.
fn sponsored(id: &str, owner: &str) -> grantledger_events::Principal {
    grantledger_events::Principal {
        owner: Some(pid(owner)),
        ..human(id)
    }
}

#[test]
fn a_principal_whose_owner_was_offboarded_is_denied_never_approved_and_breaks_no_glass() {
    let scenario = given_commands([
        (T0, submit(write_req("c1", sponsored("carl", "alice")))),
        (t(1), approve("c1", "dana")),
        (t(2), submit(write_req("c2", sponsored("carl", "alice")))),
        (t(3), offboard("alice")),
    ]);
    let when = t(3).to_string();
    // The second approval would grant: refused, naming the request, the
    // requester, its owner and when she left.
    let scenario = scenario
        .when(approve("c1", "dmitri"), t(4))
        .then_rejects_naming("owner_offboarded", &["c1", "carl", "alice", &when]);
    assert_eq!(scenario.state().request_status(&rid("c1")), Some(RequestStatus::Pending));
    // A refusal still closes it.
    let scenario = scenario.when(refuse("c2", "dana"), t(4)).then_ok();
    assert_eq!(scenario.state().request_status(&rid("c2")), Some(RequestStatus::Refused));
    // A workload she owns is recorded and denied, whatever the catalog
    // would say; so is the contractor.
    let scenario = scenario
        .when(submit(read_req("w1", workload("svc-etl", "alice"), "db/prod/orders")), t(5))
        .then_decision(DecisionOutcome::Deny, &["owner_offboarded"]);
    let scenario = scenario
        .when(submit(read_req("c3", sponsored("carl", "alice"), "db/prod/orders")), t(5))
        .then_decision(DecisionOutcome::Deny, &["owner_offboarded"]);
    // Break-glass too, naming who and why.
    let scenario = scenario
        .when(break_glass("bg1", sponsored("carl", "alice"), "db-write", "db/prod/orders", MINUTE), t(6))
        .then_rejects_naming("owner_offboarded", &["bg1", "carl", "alice", &when]);
    // A principal itself offboarded is denied as such, owner or not.
    let scenario = scenario.when(offboard("svc-etl"), t(7)).then_ok();
    let scenario = scenario
        .when(submit(read_req("w2", workload("svc-etl", "alice"), "db/prod/orders")), t(8))
        .then_decision(DecisionOutcome::Deny, &["principal_offboarded"]);
    // One decision per request id still holds.
    let scenario = scenario
        .when(submit(read_req("w1", workload("svc-etl", "bob"), "db/prod/orders")), t(9))
        .then_rejects("request_id_already_decided");
    // Another owner's workload is not affected.
    let scenario = scenario
        .when(submit(read_req("w3", workload("svc-api", "bob"), "db/prod/orders")), t(9))
        .then_decision(DecisionOutcome::Allow, &["auto_approved"]);
    assert_eq!(
        Reason::from_code("owner_offboarded"),
        Some(Reason::OwnerOffboarded),
        "a stable code"
    );
    assert_eq!(scenario.state().counts().decisions_denied, 3);
}

#[test]
fn a_principal_whose_owner_was_offboarded_is_denied_by_the_core_even_under_a_policy_that_allows() {
    let mut state = policy_state();
    for event in decide(&state, &offboard("alice"), t(2)).unwrap() {
        apply(&mut state, &event, t(2)).unwrap();
    }
    let request = read_req("w1", workload("svc-etl", "alice"), "db/prod/orders");
    let allow = engine_decision(DecisionOutcome::Allow, &["auto_approved"], HOUR);
    for engine in [EngineInput::Decision(allow), EngineInput::None] {
        let events = decide_with(&state, &submit(request.clone()), t(3), &engine).unwrap();
        assert_eq!(events.len(), 2, "no grant: {events:?}");
        let Event::DecisionRecorded(decision) = &events[1] else { panic!("{events:?}") };
        assert_eq!(decision.outcome, DecisionOutcome::Deny);
        assert_eq!(decision.reasons, ["owner_offboarded"]);
        assert_eq!(decision.basis, DecisionBasis::Catalog, "the core decided it, not the policy");
        let mut after = state.clone();
        for event in &events {
            apply(&mut after, event, t(3)).unwrap();
        }
    }
}

#[test]
fn a_long_offboarding_detail_is_refused_before_anything_is_recorded() {
    let command = Command::Offboard {
        principal: pid("alice"),
        by: pid("hr-system"),
        detail: "x".repeat(TEXT_BYTES_MAX + 1),
    };
    given_catalog().when(command, T0).then_rejects("input_exceeds_bound");
}

// ------------------------------------------------------------------ identity refusals

fn identity_refused(reason: &str) -> EngineInput {
    EngineInput::IdentityRefused {
        reason: reason.into(),
        detail: format!("the token is `{reason}`"),
    }
}

#[test]
fn the_first_identity_refusal_of_a_request_id_is_recorded_and_given_back_after_that() {
    let request = read_req("r1", workload("svc-etl", "alice"), "db/prod/orders");
    let mut state = given_catalog().state;
    let events = decide_with(&state, &submit(request.clone()), t(1), &identity_refused("bad_signature")).unwrap();
    assert_eq!(
        events,
        vec![Event::IdentityRefused(IdentityRefused {
            request_id: rid("r1"),
            principal: workload("svc-etl", "alice"),
            entitlement: ent("db-read"),
            resource: res("db/prod/orders"),
            reason: "bad_signature".into(),
            detail: "the token is `bad_signature`".into(),
        })]
    );
    apply(&mut state, &events[0], t(1)).unwrap();
    assert_eq!(state.identity_refusal(&rid("r1")), Some(("bad_signature", "the token is `bad_signature`")));
    assert_eq!(state.request_status(&rid("r1")), None, "nothing was decided");
    // Redelivered, or sent again with another bad token: the recorded
    // refusal comes back, and nothing new is recorded.
    let again = decide_with(&state, &submit(request.clone()), t(2), &identity_refused("expired")).unwrap_err();
    assert_eq!(again.code(), "identity_rejected");
    assert!(again.to_string().contains("(`bad_signature`)"), "{again}");
    assert!(again.to_string().contains("`r1`"), "{again}");
    // A token that verifies later: the request id was not used up.
    let decided = decide(&state, &submit(request.clone()), t(3)).unwrap();
    assert!(matches!(decided.last(), Some(Event::GrantIssued(_))), "{decided:?}");
    for event in &decided {
        apply(&mut state, event, t(3)).unwrap();
    }
    // Once decided, a failing token is a duplicate delivery.
    let duplicate = decide_with(&state, &submit(request), t(4), &identity_refused("expired")).unwrap_err();
    assert_eq!(duplicate.code(), "request_id_already_decided");
    assert_eq!(state.counts().identity_refusals, 1);
}

#[test]
fn an_identity_refusal_needs_no_catalog_and_is_bounded() {
    let request = read_req("r1", workload("svc-etl", "alice"), "db/prod/orders");
    let events = decide_with(&State::default(), &submit(request.clone()), T0, &identity_refused("malformed")).unwrap();
    assert!(matches!(events[..], [Event::IdentityRefused(_)]));
    let long = EngineInput::IdentityRefused { reason: "malformed".into(), detail: "x".repeat(TEXT_BYTES_MAX + 1) };
    let refused = decide_with(&State::default(), &submit(request), T0, &long).unwrap_err();
    assert_eq!(refused.code(), "input_exceeds_bound");
    assert!(refused.to_string().contains("identity refusal detail"), "{refused}");
}

#[test]
fn expiry_is_recorded_only_at_or_after_expires_at() {
    let scenario = given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))]);
    let scenario = scenario
        .when(expire("r1"), t(HOUR - 1))
        .then_rejects_naming("grant_not_yet_expired", &["grant:r1"]);
    let scenario = scenario
        .when(expire("r9"), t(HOUR))
        .then_rejects("grant_unknown");
    let scenario = scenario
        .when(expire("r1"), t(HOUR))
        .then_events(vec![revoked(
            "r1",
            Expired,
            None,
            "expires_at 2026-01-01T01:00:00.000Z reached",
        )]);
    assert!(scenario.state().due_expiries(t(2 * HOUR), 10).is_empty());
    scenario
        .when(expire("r1"), t(HOUR + 1))
        .then_rejects("grant_not_active");
}

#[test]
fn due_expiries_come_in_expires_at_order_and_bounded() {
    let scenario = given_commands([
        (
            T0,
            submit(SubmitRequest {
                ttl_ms: Some(3 * MINUTE),
                ..read_req("a", human("alice"), "db/prod/orders")
            }),
        ),
        (
            T0,
            submit(SubmitRequest {
                ttl_ms: Some(MINUTE),
                ..read_req("b", human("bob"), "db/prod/orders")
            }),
        ),
        (
            T0,
            submit(SubmitRequest {
                ttl_ms: Some(2 * MINUTE),
                ..read_req("c", human("carol"), "db/prod/orders")
            }),
        ),
    ]);
    let state = scenario.state();
    assert_eq!(
        state.due_expiries(t(10 * MINUTE), 10),
        vec![gid("b"), gid("c"), gid("a")]
    );
    assert_eq!(
        state.due_expiries(t(10 * MINUTE), 2),
        vec![gid("b"), gid("c")]
    );
    assert_eq!(
        state.due_expiries(t(2 * MINUTE), 10),
        vec![gid("b"), gid("c")]
    );
    assert_eq!(state.next_expiry(), Some(t(MINUTE)));
}

#[test]
fn revocation_reports_table() {
    let granted =
        || given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))]);
    let revoked_ = || {
        given_commands([
            (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
            (t(1), revoke("r1", TaskComplete, "alice")),
        ])
    };
    let confirmed = || {
        given_commands([
            (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
            (t(1), revoke("r1", TaskComplete, "alice")),
            (t(2), confirm("r1")),
        ])
    };
    let rows: Vec<(Scenario, grantledger_core::Command, &str)> = vec![
        (granted(), confirm("r9"), "grant_unknown"),
        (granted(), confirm("r1"), "grant_not_revoked"),
        (granted(), fail("r1", 1), "grant_not_revoked"),
        (revoked_(), fail("r9", 1), "grant_unknown"),
        (confirmed(), confirm("r1"), "revocation_already_confirmed"),
        (confirmed(), fail("r1", 1), "revocation_already_confirmed"),
    ];
    for (scenario, command, code) in rows {
        scenario.when(command, t(MINUTE)).then_rejects(code);
    }
}

#[test]
fn failed_revocations_stay_in_debt_until_confirmed() {
    let scenario = given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (t(HOUR), expire("r1")),
    ])
    .when(fail("r1", 1), t(HOUR + 1))
    .then_events(vec![Event::RevocationFailed(RevocationFailed {
        grant_id: gid("r1"),
        worker: "db-revoker".into(),
        error: "timeout".into(),
        attempt: 1,
    })])
    .when(fail("r1", 2), t(HOUR + 2))
    .then_ok();
    let debt = scenario.state().revocation_debt(10);
    assert_eq!(
        (debt.len(), debt[0].failed_attempts, debt[0].reason),
        (1, 2, Expired)
    );
    let scenario =
        scenario
            .when(confirm("r1"), t(HOUR + 3))
            .then_events(vec![Event::RevocationConfirmed(RevocationConfirmed {
                grant_id: gid("r1"),
                worker: "db-revoker".into(),
            })]);
    assert!(scenario.state().revocation_debt(10).is_empty());
    assert_eq!(scenario.state().counts().revocation_failures, 2);
}

// ------------------------------------------------------------------ extension

#[test]
fn an_extension_moves_expires_at_but_never_past_the_cap() {
    let scenario = given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))])
        .when(extend("r1", "alice", t(8 * HOUR + 1)), t(MINUTE))
        .then_rejects_naming("extension_exceeds_cap", &["2026-01-01T08:00:00.000Z"])
        .when(extend("r1", "alice", t(8 * HOUR)), t(MINUTE))
        .then_events(vec![Event::GrantExtended(GrantExtended {
            grant_id: gid("r1"),
            extended_by: pid("alice"),
            expires_at_previous: t(HOUR),
            expires_at: t(8 * HOUR),
        })]);
    assert!(
        scenario
            .state()
            .check(&pid("alice"), "read", &res("db/prod/orders"), t(2 * HOUR))
    );
    assert!(
        !scenario
            .state()
            .check(&pid("alice"), "read", &res("db/prod/orders"), t(8 * HOUR))
    );
}

#[test]
fn extension_rejections_table() {
    let granted = || {
        given_commands([(
            T0,
            submit(read_req("r1", agent("bot", "alice"), "db/prod/orders")),
        )])
    };
    let approved = || {
        given_commands([
            (T0, submit(write_req("r1", human("alice")))),
            (T0, approve("r1", "dana")),
            (T0, approve("r1", "dmitri")),
        ])
    };
    let rows: Vec<(
        Scenario,
        grantledger_core::Command,
        grantledger_events::Timestamp,
        &str,
    )> = vec![
        (
            granted(),
            extend("r9", "bot", t(2 * HOUR)),
            t(1),
            "grant_unknown",
        ),
        (
            granted(),
            extend("r1", "mallory", t(2 * HOUR)),
            t(1),
            "extension_not_by_holder",
        ),
        (
            granted(),
            extend("r1", "bot", t(HOUR)),
            t(1),
            "extension_not_later",
        ),
        (
            granted(),
            extend("r1", "alice", t(9 * HOUR)),
            t(1),
            "extension_exceeds_cap",
        ),
        (
            granted(),
            extend("r1", "bot", t(2 * HOUR)),
            t(HOUR),
            "grant_not_active",
        ),
        (
            approved(),
            extend("r1", "alice", t(HOUR)),
            t(1),
            "extension_needs_approval",
        ),
    ];
    for (scenario, command, now, code) in rows {
        scenario.when(command, now).then_rejects(code);
    }
    // The owner of a non-human may extend it.
    granted()
        .when(extend("r1", "alice", t(2 * HOUR)), t(1))
        .then_ok();
}

// ------------------------------------------------------------------ break-glass and review

#[test]
fn break_glass_issues_a_short_capped_grant_that_owes_a_review() {
    let scenario = given_catalog()
        .when(
            break_glass(
                "bg1",
                human("alice"),
                "db-write",
                "db/prod/orders",
                10 * MINUTE,
            ),
            T0,
        )
        .then_events(vec![
            Event::BreakGlassInvoked(BreakGlassInvoked {
                request_id: rid("bg1"),
                principal: human("alice"),
                entitlement: ent("db-write"),
                resource: res("db/prod/orders"),
                actions: vec!["write".into()],
                reason: "INC-7: orders database is down".into(),
                ttl_ms: 10 * MINUTE,
            }),
            Event::GrantIssued(GrantIssued {
                grant_id: gid("bg1"),
                request_id: rid("bg1"),
                principal: human("alice"),
                entitlement: ent("db-write"),
                resource: res("db/prod/orders"),
                actions: vec!["write".into()],
                issued_at: T0,
                expires_at: t(10 * MINUTE),
                expires_at_cap: t(15 * MINUTE),
                break_glass: true,
            }),
        ]);
    assert_eq!(scenario.state().reviews_owed(10), vec![gid("bg1")]);
    let scenario = scenario
        .when(review("bg1", "alice"), t(HOUR))
        .then_rejects_naming("reviewer_may_not_review_own_use", &["alice"])
        .when(review("bg1", "priya"), t(HOUR))
        .then_ok()
        .when(review("bg1", "paolo"), t(HOUR))
        .then_rejects("review_already_recorded");
    assert!(scenario.state().reviews_owed(10).is_empty());
}

#[test]
fn break_glass_rejections_table() {
    let rows: Vec<(grantledger_core::Command, &str)> = vec![
        (
            break_glass("bg1", human("alice"), "db-nope", "db/prod/orders", MINUTE),
            "entitlement_unknown",
        ),
        (
            break_glass("bg1", human("alice"), "db-read", "db/prod/orders", MINUTE),
            "break_glass_not_eligible",
        ),
        (
            break_glass(
                "bg1",
                workload("svc", "alice"),
                "db-write",
                "db/prod/orders",
                MINUTE,
            ),
            "break_glass_human_only",
        ),
        (
            break_glass(
                "bg1",
                human("alice"),
                "db-write",
                "db/staging/orders",
                MINUTE,
            ),
            "resource_outside_entitlement",
        ),
        (
            break_glass("bg1", human("alice"), "db-write", "db/prod/*", MINUTE),
            "resource_not_concrete",
        ),
        (
            break_glass("bg1", human("alice"), "db-write", "db/prod/orders", 0),
            "ttl_not_positive",
        ),
        (
            break_glass(
                "bg1",
                human("alice"),
                "db-write",
                "db/prod/orders",
                15 * MINUTE + 1,
            ),
            "ttl_exceeds_break_glass_max",
        ),
        (
            break_glass_with(&["write"], " "),
            "break_glass_reason_required",
        ),
        (break_glass_with(&[], "INC-7"), "actions_empty"),
        (
            break_glass_with(&["drop"], "INC-7"),
            "action_outside_entitlement",
        ),
    ];
    for (command, code) in rows {
        given_catalog().when(command, T0).then_rejects(code);
    }
    // A kind the entitlement does not list (`k8s-admin` is for humans, but
    // break-glass is human-only anyway): use a catalog entry that omits humans.
    let no_humans = CATALOG.replace(
        "principal_kinds = [\"human\", \"workload\"]\napproval = { approvers = 2, group = \"dba\" }",
        "principal_kinds = [\"workload\"]\napproval = \"auto\"",
    );
    given(history([(T0, publish(&no_humans))]))
        .when(
            break_glass("bg1", human("alice"), "db-write", "db/prod/orders", MINUTE),
            T0,
        )
        .then_rejects("principal_kind_not_allowed");
}

/// A break-glass by alice on `db-write` with these actions and reason.
fn break_glass_with(actions: &[&str], reason: &str) -> grantledger_core::Command {
    grantledger_core::Command::BreakGlass {
        request_id: rid("bg1"),
        principal: human("alice"),
        entitlement: ent("db-write"),
        resource: res("db/prod/orders"),
        actions: actions.iter().map(|action| action.to_string()).collect(),
        reason: reason.into(),
        ttl_ms: MINUTE,
    }
}

#[test]
fn review_rejections_table() {
    let normal =
        || given_commands([(T0, submit(read_req("r1", human("alice"), "db/prod/orders")))]);
    normal()
        .when(review("r1", "priya"), t(1))
        .then_rejects("grant_not_break_glass");
    normal()
        .when(review("r9", "priya"), t(1))
        .then_rejects("grant_unknown");
}

// ------------------------------------------------------------------ coverage

/// Every rejection code and every rule code appears in a test of this file.
#[test]
fn every_rejection_and_deny_code_has_a_test() {
    let source = include_str!("rules.rs");
    let reasons = Reason::ALL.iter().map(|reason| reason.code());
    for code in Rejection::CODES.iter().copied().chain(reasons) {
        let quoted = format!("\"{code}\"");
        assert!(source.contains(&quoted), "code `{code}` has no test here");
    }
}

#[test]
fn counts_follow_the_lifecycle() {
    let scenario = given_commands([
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        (T0, submit(write_req("r2", human("alice")))),
        (
            T0,
            submit(req(
                "r3",
                human("alice"),
                "db-export",
                "db/prod/orders",
                &["export"],
            )),
        ),
        (t(1), revoke("r1", TaskComplete, "alice")),
    ]);
    let counts = scenario.state().counts();
    assert_eq!(
        (
            counts.requests,
            counts.decisions_allowed,
            counts.decisions_needing_approval,
            counts.decisions_denied
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(
        (
            counts.pending,
            counts.grants_issued,
            counts.grants_unrevoked,
            counts.revocation_debt
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(
        scenario.state().request_status(&rid("r2")),
        Some(RequestStatus::Pending)
    );
}

// ------------------------------------------------------------------ policy engine

/// A policy text; the core never parses it (the ledger's engine does).
const POLICY: &str = "@id(\"reads\")\npermit (principal, action == Action::\"request\", resource);\n";

fn publish_policy(text: &str) -> Command {
    Command::PublishPolicy {
        policy_text: text.into(),
        exceptions_text: None,
        published_by: pid("policy-admin"),
    }
}

fn validated(text: &str) -> EngineInput {
    EngineInput::PolicyValidated {
        policy_hash: policy_hash(text, None),
    }
}

/// A request carrying an identity token over the bound is refused before
/// anything else.
#[test]
fn an_identity_token_over_its_bound_is_refused() {
    let request = SubmitRequest {
        identity_token: Some("x".repeat(grantledger_core::IDENTITY_TOKEN_BYTES_MAX + 1)),
        ..read_req("r1", workload("svc", "alice"), "db/prod/orders")
    };
    given_catalog()
        .when(submit(request), T0)
        .then_rejects_naming("input_exceeds_bound", &[]);
}

/// The test catalog and `POLICY` in force.
fn policy_state() -> State {
    let mut state = given_catalog().state;
    let events = decide_with(&state, &publish_policy(POLICY), t(1), &validated(POLICY)).unwrap();
    for event in &events {
        apply(&mut state, event, t(1)).unwrap();
    }
    state
}

fn engine_decision(outcome: DecisionOutcome, reasons: &[&str], ttl_granted_ms: i64) -> EngineDecision {
    EngineDecision {
        outcome,
        reasons: reasons.iter().map(|reason| reason.to_string()).collect(),
        ttl_granted_ms,
        catalog_hash: catalog_hash_of(CATALOG),
        basis: PolicyBasis {
            policy_hash: policy_hash(POLICY, None),
            determining_policies: vec!["reads".into()],
            no_permit_matched: false,
            exception: false,
            cedar_version: "4.14.1".into(),
            evaluated: vec![EvaluatedValue {
                name: "context.device_managed".into(),
                value_json: "true".into(),
            }],
        },
    }
}

#[test]
fn a_policy_set_is_published_as_an_event_only_once_the_engine_validated_it() {
    let without_catalog =
        decide_with(&State::default(), &publish_policy(POLICY), T0, &validated(POLICY)).unwrap_err();
    assert_eq!(without_catalog.code(), "catalog_missing");
    let state = given_catalog().state;
    let unvalidated = decide(&state, &publish_policy(POLICY), t(1)).unwrap_err();
    assert_eq!(unvalidated.code(), "policy_not_validated");
    let validated_other = decide_with(&state, &publish_policy(POLICY), t(1), &validated("other")).unwrap_err();
    assert_eq!(validated_other.code(), "policy_not_validated");
    let events = decide_with(&state, &publish_policy(POLICY), t(1), &validated(POLICY)).unwrap();
    assert_eq!(
        events,
        vec![Event::PolicyPublished(PolicyPublished {
            policy_hash: policy_hash(POLICY, None),
            policy_text: POLICY.into(),
            exceptions_text: None,
            published_by: pid("policy-admin"),
        })]
    );
    let state = policy_state();
    assert_eq!(state.policy_hash(), Some(policy_hash(POLICY, None).as_str()));
    let again = decide_with(&state, &publish_policy(POLICY), t(2), &validated(POLICY)).unwrap_err();
    assert_eq!(again.code(), "policy_already_in_force");
    let huge = "x".repeat(POLICY_BYTES_MAX + 1);
    let too_big = decide_with(&state, &publish_policy(&huge), t(2), &validated(&huge)).unwrap_err();
    assert_eq!(too_big.code(), "input_exceeds_bound");
}

#[test]
fn the_ledgers_engine_refusals_have_their_own_codes() {
    // Made by grantledger-ledger, which holds the engine (its tests/policy.rs
    // shows them on real policies); the core only names them.
    let invalid = Rejection::PolicyInvalid { message: "cedar says no".into() };
    assert_eq!(invalid.code(), "policy_invalid");
    let input = Rejection::PolicyInputInvalid { request_id: rid("r1"), message: "`context.on_call` must be a boolean".into() };
    assert_eq!(input.code(), "policy_input_invalid");
    assert!(input.to_string().contains("context.on_call"));
    // Intake verification of identity tokens (grantledger-ledger's
    // tests/policy.rs: forged, expired, not yet valid, wrong audience, wrong
    // issuer, `alg: none`, malformed, unverified claims).
    let identity = Rejection::IdentityRejected {
        request_id: rid("r1"),
        reason: "expired".into(),
        detail: "`exp` has passed".into(),
    };
    assert_eq!(identity.code(), "identity_rejected");
}

#[test]
fn with_a_policy_in_force_requests_are_decided_by_the_engine_and_say_so() {
    let state = policy_state();
    let request = read_req("r1", human("alice"), "db/prod/orders");
    let missing = decide(&state, &submit(request.clone()), t(2)).unwrap_err();
    assert_eq!(missing.code(), "policy_decision_missing");
    let mut stale = engine_decision(DecisionOutcome::Allow, &["auto_approved"], HOUR);
    stale.basis.policy_hash = "ab".repeat(32);
    let stale = decide_with(&state, &submit(request.clone()), t(2), &EngineInput::Decision(stale)).unwrap_err();
    assert_eq!(stale.code(), "policy_decision_missing");

    let decision = engine_decision(DecisionOutcome::Allow, &["auto_approved"], 2 * HOUR);
    let events = decide_with(&state, &submit(request.clone()), t(2), &EngineInput::Decision(decision.clone())).unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    let Event::DecisionRecorded(recorded) = &events[1] else { panic!("{events:?}") };
    assert_eq!(recorded.basis, DecisionBasis::Policy(decision.basis.clone()));
    assert_eq!(recorded.catalog_hash, catalog_hash_of(CATALOG));
    assert_eq!(events[2], issued(&request, t(2), 2 * HOUR, 8 * HOUR));
    let mut after = state.clone();
    for event in &events {
        apply(&mut after, event, t(2)).unwrap();
    }
    assert!(after.grant(&gid("r1")).is_some());

    // A step-up from the engine waits for the catalog's approvers as usual.
    let write = write_req("r2", human("alice"));
    let step_up = engine_decision(needs_dba(), &["approval_required"], 30 * MINUTE);
    let events = decide_with(&after, &submit(write), t(3), &EngineInput::Decision(step_up)).unwrap();
    assert_eq!(events.len(), 2, "no grant before the approvals");
    for event in &events {
        apply(&mut after, event, t(3)).unwrap();
    }
    assert_eq!(after.pending_requests(8).len(), 1);
}

#[test]
fn an_engine_decision_that_breaks_a_ledger_rule_is_refused() {
    let state = policy_state();
    let mut no_permit = engine_decision(DecisionOutcome::Allow, &["auto_approved"], HOUR);
    no_permit.basis.no_permit_matched = true;
    let mut unsorted = engine_decision(DecisionOutcome::Allow, &["b", "a"], HOUR);
    unsorted.basis.determining_policies = vec!["z".into(), "a".into()];
    let rows: Vec<(&str, SubmitRequest, EngineDecision)> = vec![
        (
            "an allow past the entry's hard cap",
            read_req("r1", human("alice"), "db/prod/orders"),
            engine_decision(DecisionOutcome::Allow, &["auto_approved"], 9 * HOUR),
        ),
        (
            "an agent routed to approvers",
            read_req("r1", agent("bot", "alice"), "db/prod/orders"),
            engine_decision(needs_dba(), &["approval_required"], HOUR),
        ),
        (
            "approvers from a group the catalog lacks",
            read_req("r1", human("alice"), "db/prod/orders"),
            engine_decision(
                DecisionOutcome::NeedsApproval { approvers_required: 1, group: "nobody".into() },
                &["approval_required"],
                HOUR,
            ),
        ),
        ("an allow where no permit matched", read_req("r1", human("alice"), "db/prod/orders"), no_permit),
        ("unsorted reasons", read_req("r1", human("alice"), "db/prod/orders"), unsorted),
        (
            "a deny that grants a TTL",
            read_req("r1", human("alice"), "db/prod/orders"),
            engine_decision(DecisionOutcome::Deny, &["forbidden_by_policy"], HOUR),
        ),
        (
            "an allow outside the entitlement's resources",
            read_req("r1", human("alice"), "db/staging/orders"),
            engine_decision(DecisionOutcome::Allow, &["auto_approved"], HOUR),
        ),
    ];
    for (name, request, decision) in rows {
        let refused = decide_with(&state, &submit(request), t(2), &EngineInput::Decision(decision)).expect_err(name);
        assert_eq!(refused.code(), "policy_decision_refused", "{name}: {refused}");
    }
}

// ------------------------------------------------------------------ request TTL

#[test]
fn approvals_after_the_request_ttl_are_refused() {
    // db-write's request_ttl_s is one day, counted from the decision.
    let pending = || given_commands([(t(MINUTE), submit(write_req("r1", human("alice"))))]);
    pending()
        .when(approve("r1", "dana"), t(MINUTE + 24 * HOUR))
        .then_rejects_naming("request_expired", &["r1"]);
    let scenario = pending().when(approve("r1", "dana"), t(MINUTE + 24 * HOUR - 1)).then_ok();
    scenario
        .when(approve("r1", "dmitri"), t(MINUTE + 24 * HOUR))
        .then_rejects("request_expired");
    // A refusal still closes an expired request.
    pending()
        .when(refuse("r1", "dana"), t(2 * 24 * HOUR))
        .then_ok();
    // An entry without a request TTL waits as long as it takes.
    let catalog = CATALOG.replace("request_ttl_s = 86400\n", "");
    let state = given(history([(T0, publish(&catalog)), (t(MINUTE), submit(write_req("r1", human("alice"))))]));
    state.when(approve("r1", "dana"), t(30 * 24 * HOUR)).then_ok();
    // A request TTL is a positive number of seconds.
    given([])
        .when(publish(&CATALOG.replace("request_ttl_s = 86400", "request_ttl_s = 0")), T0)
        .then_rejects_naming("catalog_invalid", &["db-write", "0"]);
}

// ------------------------------------------------------------------ scheduled starts

const DAY: i64 = 24 * HOUR;

fn expired_event(request: &str, reason: RequestExpiryReason, expired_at: Timestamp) -> Event {
    Event::RequestExpired(RequestExpired {
        request_id: rid(request),
        reason,
        expired_at,
    })
}

/// `issued`, with the TTL and cap counted from `start` rather than from the
/// issue.
fn issued_from(
    request: &SubmitRequest,
    issued_at: Timestamp,
    start: Timestamp,
    ttl_ms: i64,
    cap_ms: i64,
) -> Event {
    let Event::GrantIssued(mut grant) = issued(request, issued_at, ttl_ms, cap_ms) else {
        unreachable!()
    };
    grant.expires_at = start.plus_ms(ttl_ms);
    grant.expires_at_cap = start.plus_ms(cap_ms);
    Event::GrantIssued(grant)
}

#[test]
fn a_start_in_the_past_or_now_is_granted_at_once_as_today() {
    for starts_at in [T0, t(5 * MINUTE)] {
        let request = starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at);
        let scenario = given_catalog()
            .when(submit(request.clone()), t(5 * MINUTE))
            .then_events(vec![
                submitted(&request),
                decided(&request, DecisionOutcome::Allow, &["auto_approved"], HOUR),
                issued(&request, t(5 * MINUTE), HOUR, 8 * HOUR),
            ]);
        assert!(scenario.state().check(&pid("alice"), "read", &res("db/prod/orders"), t(5 * MINUTE)));
        assert_eq!(scenario.state().counts().scheduled, 0);
        scenario.when(start("r1"), t(HOUR)).then_rejects_naming("request_already_started", &["r1"]);
    }
}

#[test]
fn a_start_more_than_30_days_ahead_is_refused_naming_it() {
    let now = t(MINUTE);
    let latest = now.plus_ms(grantledger_core::SCHEDULE_AHEAD_MAX_MS);
    assert_eq!(grantledger_core::SCHEDULE_AHEAD_MAX_MS, 30 * DAY);
    let too_far = latest.plus_ms(1);
    given_catalog()
        .when(submit(starting(read_req("r1", human("alice"), "db/prod/orders"), too_far)), now)
        .then_rejects_naming("start_too_far_ahead", &["r1", &too_far.to_string(), &latest.to_string()]);
    // Nothing was recorded: the request id is still free.
    given_catalog()
        .when(submit(starting(read_req("r1", human("alice"), "db/prod/orders"), latest)), now)
        .then_ok()
        .when(submit(read_req("r1", human("alice"), "db/prod/orders")), now)
        .then_rejects("request_id_already_decided");
    // A start too far ahead refuses even a request that would be denied.
    given_catalog()
        .when(
            submit(starting(req("r2", human("alice"), "db-export", "db/prod/orders", &["export"]), too_far)),
            now,
        )
        .then_rejects("start_too_far_ahead");
}

#[test]
fn a_request_allowed_before_its_start_is_decided_but_not_issued() {
    let starts_at = t(2 * HOUR);
    let request = starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at);
    let scenario = given_catalog()
        .when(submit(request.clone()), t(MINUTE))
        .then_events(vec![
            submitted(&request),
            decided(&request, DecisionOutcome::Allow, &["auto_approved"], HOUR),
        ]);
    let state = scenario.state();
    let (alice, orders) = (pid("alice"), res("db/prod/orders"));
    assert_eq!(state.request_status(&rid("r1")), Some(RequestStatus::Allowed));
    for at in [t(MINUTE), starts_at.plus_ms(-1), starts_at, starts_at.plus_ms(HOUR - 1)] {
        assert!(!state.check(&alice, "read", &orders, at), "no access before the grant is issued ({at})");
    }
    assert_eq!(state.counts().scheduled, 1);
    assert_eq!(state.counts().grants_issued, 0);
    assert!(state.due_starts(starts_at.plus_ms(-1), 10).is_empty());
    assert_eq!(state.due_starts(starts_at, 10), vec![rid("r1")]);
    let scheduled = state.scheduled_requests(10);
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].starts_at, starts_at);
    assert_eq!(scheduled[0].expires_at, starts_at.plus_ms(HOUR));
    assert!(!scheduled[0].approved);
    assert_eq!(state.scheduled_request(&rid("r1")), Some(scheduled[0].clone()));
}

#[test]
fn the_start_timer_issues_the_grant_with_its_ttl_counted_from_the_start() {
    let starts_at = t(2 * HOUR);
    let request = starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at);
    let allowed = || given_commands([(t(MINUTE), submit(request.clone()))]);
    let (alice, orders) = (pid("alice"), res("db/prod/orders"));
    // On time: issued at the start, for the decided TTL.
    let scenario = allowed()
        .when(start("r1"), starts_at)
        .then_events(vec![issued(&request, starts_at, HOUR, 8 * HOUR)]);
    let state = scenario.state();
    assert!(!state.check(&alice, "read", &orders, starts_at.plus_ms(-1)));
    assert!(state.check(&alice, "read", &orders, starts_at));
    assert!(!state.check(&alice, "read", &orders, starts_at.plus_ms(HOUR)));
    assert_eq!(state.request_status(&rid("r1")), Some(RequestStatus::Granted));
    assert_eq!(state.counts().scheduled, 0);
    assert!(state.scheduled_requests(10).is_empty());
    assert_eq!(state.due_expiries(starts_at.plus_ms(HOUR), 10), vec![gid("r1")]);
    // Late: issued when the timer comes, still expiring at the start plus
    // the TTL, never later; the cap also counts from the start.
    let late = starts_at.plus_ms(10 * MINUTE);
    let scenario = allowed()
        .when(start("r1"), late)
        .then_events(vec![issued_from(&request, late, starts_at, HOUR, 8 * HOUR)]);
    let grant = scenario.state().grant(&gid("r1")).unwrap();
    assert_eq!((grant.issued_at, grant.expires_at), (late, starts_at.plus_ms(HOUR)));
    assert!(!scenario.state().check(&alice, "read", &orders, late.plus_ms(-1)));
    assert!(scenario.state().check(&alice, "read", &orders, late));
    // The TTL asked for counts from the start too, within the entry's maximum.
    let long = SubmitRequest { ttl_ms: Some(8 * HOUR), ..request.clone() };
    given_commands([(t(MINUTE), submit(long.clone()))])
        .when(start("r1"), starts_at)
        .then_events(vec![issued(&long, starts_at, 8 * HOUR, 8 * HOUR)]);
}

#[test]
fn a_start_timer_before_the_start_is_refused_by_name() {
    let starts_at = t(2 * HOUR);
    let early = starts_at.plus_ms(-1);
    given_commands([(t(MINUTE), submit(starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at)))])
        .when(start("r1"), early)
        .then_rejects_naming("start_not_due", &["r1", &starts_at.to_string(), &early.to_string()]);
}

#[test]
fn a_second_start_timer_is_refused_as_a_duplicate() {
    let starts_at = t(2 * HOUR);
    given_commands([
        (t(MINUTE), submit(starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at))),
        (starts_at, start("r1")),
    ])
    .when(start("r1"), starts_at.plus_ms(SECOND))
    .then_rejects_naming("request_already_started", &["r1", &starts_at.to_string()]);
}

#[test]
fn start_timers_for_requests_without_a_start_to_come_are_refused() {
    given_catalog().when(start("r9"), t(1)).then_rejects_naming("request_unknown", &["r9"]);
    // Waiting for approvers, even with a start asked for.
    given_commands([(T0, submit(starting(write_req("r1", human("alice")), t(HOUR))))])
        .when(start("r1"), t(HOUR))
        .then_rejects_naming("request_not_scheduled", &["r1", "pending"]);
    // Denied.
    given_commands([(
        T0,
        submit(starting(req("r1", human("alice"), "db-export", "db/prod/orders", &["export"]), t(HOUR))),
    )])
    .when(start("r1"), t(HOUR))
    .then_rejects_naming("request_not_scheduled", &["r1", "denied"]);
}

#[test]
fn approvals_completing_before_the_start_schedule_the_grant() {
    let starts_at = t(3 * HOUR);
    let request = starting(write_req("r1", human("alice")), starts_at);
    let scenario = given_commands([
        (t(MINUTE), submit(request.clone())),
        (t(2 * MINUTE), approve("r1", "dana")),
    ])
    .when(approve("r1", "dmitri"), t(3 * MINUTE))
    .then_events(vec![approval("r1", "dmitri", Approve)]);
    let state = scenario.state();
    assert_eq!(state.request_status(&rid("r1")), Some(RequestStatus::Approved));
    assert!(state.pending_requests(10).is_empty(), "no longer waiting for approvers");
    assert!(state.due_request_expiries(t(2 * DAY), 10).is_empty(), "approved: it no longer expires");
    let scheduled = state.scheduled_request(&rid("r1")).expect("scheduled");
    assert!(scheduled.approved);
    assert!(!state.check(&pid("alice"), "write", &res("db/prod/orders"), starts_at));
    // db-write: 30 minutes by default, capped at 2 hours, from the start.
    let scenario = scenario
        .when(start("r1"), starts_at)
        .then_events(vec![issued(&request, starts_at, 30 * MINUTE, 2 * HOUR)]);
    assert!(scenario.state().check(&pid("alice"), "write", &res("db/prod/orders"), starts_at));
    // Approved after its start, within its window: issued at once, but
    // within the window asked for (the TTL counts from the start).
    let request = starting(write_req("r3", human("alice")), t(10 * MINUTE));
    let late = || {
        given_commands([
            (t(MINUTE), submit(request.clone())),
            (t(2 * MINUTE), approve("r3", "dana")),
        ])
    };
    late()
        .when(approve("r3", "dmitri"), t(25 * MINUTE))
        .then_events(vec![
            approval("r3", "dmitri", Approve),
            issued_from(&request, t(25 * MINUTE), t(10 * MINUTE), 30 * MINUTE, 2 * HOUR),
        ]);
    // Approved after its whole window: nothing to issue, the request lapses.
    let scenario = late()
        .when(approve("r3", "dmitri"), t(40 * MINUTE))
        .then_events(vec![
            approval("r3", "dmitri", Approve),
            expired_event("r3", RequestExpiryReason::StartWindowPassed, t(40 * MINUTE)),
        ]);
    assert_eq!(scenario.state().request_status(&rid("r3")), Some(RequestStatus::Expired));
    assert_eq!(scenario.state().counts().scheduled, 0);
    // A start that had come by the submission: issued at once, as today.
    let request = starting(write_req("r2", human("alice")), t(MINUTE));
    given_commands([
        (t(MINUTE), submit(request.clone())),
        (t(2 * MINUTE), approve("r2", "dana")),
    ])
    .when(approve("r2", "dmitri"), t(5 * MINUTE))
    .then_events(vec![
        approval("r2", "dmitri", Approve),
        issued(&request, t(5 * MINUTE), 30 * MINUTE, 2 * HOUR),
    ]);
}

#[test]
fn a_start_whose_whole_window_passed_records_the_request_expired() {
    let starts_at = t(HOUR);
    let request = starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at);
    let allowed = || given_commands([(T0, submit(request.clone()))]);
    // One millisecond before the window ends it is still issued, to expire
    // at the window's end.
    let last = starts_at.plus_ms(HOUR - 1);
    allowed()
        .when(start("r1"), last)
        .then_events(vec![issued_from(&request, last, starts_at, HOUR, 8 * HOUR)]);
    let scenario = allowed()
        .when(start("r1"), starts_at.plus_ms(HOUR))
        .then_events(vec![expired_event("r1", RequestExpiryReason::StartWindowPassed, starts_at.plus_ms(HOUR))]);
    let state = scenario.state();
    assert_eq!(state.request_status(&rid("r1")), Some(RequestStatus::Expired));
    assert_eq!(state.counts().scheduled, 0);
    assert_eq!(state.counts().requests_expired, 1);
    assert_eq!(state.counts().grants_issued, 0);
    scenario
        .when(start("r1"), starts_at.plus_ms(2 * HOUR))
        .then_rejects_naming("request_not_scheduled", &["r1", "expired"]);
}

#[test]
fn a_scheduled_request_of_an_offboarded_principal_expires_at_its_start() {
    let starts_at = t(HOUR);
    let scenario = given_commands([
        (T0, submit(starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at))),
        (t(10 * MINUTE), offboard("alice")),
    ]);
    // Its start timer is still refused before the start.
    let scenario = scenario.when(start("r1"), t(30 * MINUTE)).then_rejects("start_not_due");
    let scenario = scenario
        .when(start("r1"), starts_at)
        .then_events(vec![expired_event("r1", RequestExpiryReason::PrincipalOffboarded, starts_at)]);
    assert!(!scenario.state().check(&pid("alice"), "read", &res("db/prod/orders"), starts_at));
    assert_eq!(scenario.state().request_status(&rid("r1")), Some(RequestStatus::Expired));
}

#[test]
fn a_scheduled_request_whose_owner_was_offboarded_expires_at_its_start() {
    let starts_at = t(HOUR);
    let request = starting(read_req("w1", workload("svc-etl", "alice"), "db/prod/orders"), starts_at);
    let scenario = given_commands([(T0, submit(request.clone())), (t(10 * MINUTE), offboard("alice"))]);
    // Its start timer is still refused before the start.
    let scenario = scenario.when(start("w1"), t(30 * MINUTE)).then_rejects("start_not_due");
    let scenario = scenario
        .when(start("w1"), starts_at)
        .then_events(vec![expired_event("w1", RequestExpiryReason::OwnerOffboarded, starts_at)]);
    assert!(!scenario.state().check(&pid("svc-etl"), "read", &res("db/prod/orders"), starts_at));
    assert_eq!(scenario.state().request_status(&rid("w1")), Some(RequestStatus::Expired));
    assert_eq!(RequestExpiryReason::OwnerOffboarded.name(), "owner_offboarded");
    scenario
        .when(start("w1"), starts_at.plus_ms(MINUTE))
        .then_rejects_naming("request_not_scheduled", &["w1", "expired"]);
}

#[test]
fn a_risk_signal_closes_the_principals_open_requests_with_its_revocations() {
    let starts_at = t(2 * HOUR);
    let scenario = given_commands([
        // Live now.
        (T0, submit(read_req("r1", human("alice"), "db/prod/orders"))),
        // Allowed, to start in two hours.
        (T0, submit(starting(read_req("r2", human("alice"), "db/prod/users"), starts_at))),
        // Approved by two DBAs, to start in two hours.
        (T0, submit(starting(write_req("r3", human("alice")), starts_at))),
        (t(1), approve("r3", "dana")),
        (t(2), approve("r3", "dmitri")),
        // Waiting for approvers, one to start later and one at once: no
        // approver may grant them after the signal.
        (t(3), submit(starting(write_req("r4", human("alice")), starts_at))),
        (t(3), submit(write_req("r7", human("alice")))),
        // Bob's, and her agent's: other principals.
        (t(3), submit(starting(read_req("r5", human("bob"), "db/prod/orders"), starts_at))),
        (t(3), submit(starting(read_req("r6", agent("alice-bot", "alice"), "db/prod/orders"), starts_at))),
        (t(4), approve("r7", "dana")),
    ]);
    let now = t(MINUTE);
    let scenario = scenario.when(risk("alice"), now).then_events(vec![
        revoked("r1", RiskSignal, Some("risk-engine"), "impossible travel"),
        expired_event("r2", RequestExpiryReason::RiskSignal, now),
        expired_event("r3", RequestExpiryReason::RiskSignal, now),
        expired_event("r4", RequestExpiryReason::RiskSignal, now),
        expired_event("r7", RequestExpiryReason::RiskSignal, now),
    ]);
    let state = scenario.state();
    for closed in ["r2", "r3", "r4", "r7"] {
        assert_eq!(state.request_status(&rid(closed)), Some(RequestStatus::Expired), "{closed}");
        assert_eq!(state.scheduled_request(&rid(closed)), None, "{closed}");
    }
    assert!(state.pending_requests(10).is_empty());
    assert_eq!(state.counts().pending, 0);
    let left: Vec<_> = state.scheduled_requests(10).into_iter().map(|s| s.request_id).collect();
    assert_eq!(left, [rid("r5"), rid("r6")]);
    assert_eq!(state.due_starts(starts_at, 10), [rid("r5"), rid("r6")]);
    assert_eq!(state.counts().scheduled, 2);
    assert_eq!(state.counts().requests_expired, 4);
    assert_eq!(RequestExpiryReason::RiskSignal.name(), "risk_signal");
    // Their start timers are refused by name, and nothing is issued.
    let scenario = scenario
        .when(start("r2"), starts_at)
        .then_rejects_naming("request_not_scheduled", &["r2", "expired"]);
    let scenario = scenario
        .when(start("r3"), starts_at)
        .then_rejects_naming("request_not_scheduled", &["r3", "expired"]);
    assert!(!scenario.state().check(&pid("alice"), "read", &res("db/prod/users"), starts_at));
    // A refusal of the approved one is refused too: it is closed.
    let scenario = scenario
        .when(refuse("r3", "dora"), starts_at)
        .then_rejects_naming("request_not_pending", &["r3", "expired"]);
    // The approver who had not yet answered can no longer grant them.
    let scenario = scenario
        .when(approve("r7", "dmitri"), t(2 * MINUTE))
        .then_rejects_naming("request_not_pending", &["r7", "expired"]);
    let scenario = scenario
        .when(approve("r4", "dana"), t(2 * MINUTE))
        .then_rejects_naming("request_not_pending", &["r4", "expired"]);
    assert!(!scenario.state().check(&pid("alice"), "write", &res("db/prod/orders"), t(2 * MINUTE)));
    // Nothing left of hers: a second signal is refused, naming her.
    scenario
        .when(risk("alice"), t(2 * MINUTE))
        .then_rejects_naming("principal_has_no_live_grant", &["alice"]);
}

#[test]
fn the_requester_or_its_owner_withdraws_an_open_request_and_nothing_is_granted_for_it() {
    let starts_at = t(2 * HOUR);
    let scenario = given_commands([
        // Allowed, to start in two hours (the maintenance window).
        (T0, submit(starting(read_req("r1", human("alice"), "db/prod/users"), starts_at))),
        // Her agent's, scheduled too: she owns it.
        (T0, submit(starting(read_req("r2", agent("alice-bot", "alice"), "db/prod/orders"), starts_at))),
        // Waiting for a second DBA.
        (T0, submit(write_req("r3", human("alice")))),
        (t(1), approve("r3", "dana")),
        // Live now.
        (t(2), submit(read_req("r4", human("alice"), "db/prod/orders"))),
    ]);
    let now = t(MINUTE);
    // Nobody else may withdraw it, not even an approver.
    let scenario = scenario
        .when(withdraw("r1", "bob"), now)
        .then_rejects_naming("withdrawal_not_by_requester", &["bob", "r1", "alice"]);
    let scenario = scenario
        .when(withdraw("r3", "dana"), now)
        .then_rejects_naming("withdrawal_not_by_requester", &["dana", "r3", "alice"]);
    // A workload cannot withdraw its owner's request.
    let scenario = scenario
        .when(withdraw("r1", "alice-bot"), now)
        .then_rejects_naming("withdrawal_not_by_requester", &["alice-bot", "r1"]);
    // A reason is required.
    let blank = Command::Withdraw {
        request_id: rid("r1"),
        by: pid("alice"),
        reason: " ".into(),
    };
    let scenario = scenario.when(blank, now).then_rejects_naming("withdrawal_reason_required", &["r1"]);
    let withdrawn = |request: &str, by: &str| {
        Event::RequestWithdrawn(grantledger_events::RequestWithdrawn {
            request_id: rid(request),
            withdrawn_by: pid(by),
            reason: "maintenance postponed".into(),
        })
    };
    let scenario = scenario.when(withdraw("r1", "alice"), now).then_events(vec![withdrawn("r1", "alice")]);
    let scenario = scenario.when(withdraw("r2", "alice"), now).then_events(vec![withdrawn("r2", "alice")]);
    let scenario = scenario.when(withdraw("r3", "alice"), now).then_events(vec![withdrawn("r3", "alice")]);
    let state = scenario.state();
    for closed in ["r1", "r2", "r3"] {
        assert_eq!(state.request_status(&rid(closed)), Some(RequestStatus::Withdrawn), "{closed}");
        assert_eq!(state.scheduled_request(&rid(closed)), None, "{closed}");
    }
    assert_eq!(RequestStatus::Withdrawn.name(), "withdrawn");
    assert!(state.pending_requests(10).is_empty());
    assert!(state.due_starts(starts_at, 10).is_empty());
    assert_eq!(state.counts().pending, 0);
    assert_eq!(state.counts().scheduled, 0);
    assert_eq!(state.counts().requests_withdrawn, 3);
    assert_eq!(state.counts().requests_expired, 0);
    // Closed: its start timer, a late approval and a second withdrawal are
    // refused by name, and nothing is granted.
    let scenario = scenario
        .when(start("r1"), starts_at)
        .then_rejects_naming("request_not_scheduled", &["r1", "withdrawn"]);
    let scenario = scenario
        .when(approve("r3", "dmitri"), t(2 * MINUTE))
        .then_rejects_naming("request_not_pending", &["r3", "withdrawn"]);
    let scenario = scenario
        .when(withdraw("r1", "alice"), t(2 * MINUTE))
        .then_rejects_naming("request_not_open", &["r1", "withdrawn"]);
    assert!(!scenario.state().check(&pid("alice"), "read", &res("db/prod/users"), starts_at));
    assert!(!scenario.state().check(&pid("alice"), "write", &res("db/prod/orders"), t(2 * MINUTE)));
    assert_eq!(scenario.state().counts().grants_issued, 1, "only r4");
    // A granted request is not withdrawn (its grant is revoked instead),
    // nor is an unknown one.
    let scenario = scenario
        .when(withdraw("r4", "alice"), t(2 * MINUTE))
        .then_rejects_naming("request_not_open", &["r4", "granted"]);
    scenario.when(withdraw("r9", "alice"), t(2 * MINUTE)).then_rejects("request_unknown");
}

#[test]
fn a_risk_signal_with_only_a_scheduled_request_closes_it_and_is_not_refused() {
    let starts_at = t(HOUR);
    let scenario = given_commands([(
        T0,
        submit(starting(read_req("r1", human("alice"), "db/prod/orders"), starts_at)),
    )]);
    // Even a start already come whose timer has not yet: not issued, closed.
    let scenario = scenario
        .when(risk("alice"), starts_at.plus_ms(SECOND))
        .then_events(vec![expired_event("r1", RequestExpiryReason::RiskSignal, starts_at.plus_ms(SECOND))]);
    let scenario = scenario
        .when(start("r1"), starts_at.plus_ms(2 * SECOND))
        .then_rejects_naming("request_not_scheduled", &["r1", "expired"]);
    assert_eq!(scenario.state().counts().grants_issued, 0);
    scenario
        .when(risk("alice"), starts_at.plus_ms(3 * SECOND))
        .then_rejects_naming("principal_has_no_live_grant", &["alice"]);
}

// ------------------------------------------------------------------ request expiry

#[test]
fn a_request_waiting_past_its_request_ttl_is_recorded_expired() {
    // db-write's request_ttl_s is one day, counted from the decision.
    let deadline = t(MINUTE + DAY);
    let scenario = given_commands([
        (t(MINUTE), submit(write_req("r1", human("alice")))),
        (t(2 * MINUTE), approve("r1", "dana")),
    ]);
    assert!(scenario.state().due_request_expiries(deadline.plus_ms(-1), 10).is_empty());
    assert_eq!(scenario.state().due_request_expiries(deadline, 10), vec![rid("r1")]);
    let scenario = scenario
        .when(expire_request("r1"), deadline.plus_ms(SECOND))
        .then_events(vec![expired_event("r1", RequestExpiryReason::RequestTtl, deadline)]);
    let state = scenario.state();
    assert_eq!(state.request_status(&rid("r1")), Some(RequestStatus::Expired));
    assert!(state.pending_requests(10).is_empty());
    assert!(state.due_request_expiries(deadline.plus_ms(DAY), 10).is_empty());
    assert_eq!(state.counts().pending, 0);
    assert_eq!(state.counts().requests_expired, 1);
    // Closed: neither an approval nor a refusal nor a second timer applies.
    let scenario = scenario
        .when(approve("r1", "dmitri"), deadline.plus_ms(2 * SECOND))
        .then_rejects_naming("request_not_pending", &["r1", "expired"]);
    let scenario = scenario.when(refuse("r1", "dmitri"), deadline.plus_ms(2 * SECOND)).then_rejects("request_not_pending");
    scenario
        .when(expire_request("r1"), deadline.plus_ms(3 * SECOND))
        .then_rejects_naming("request_not_pending", &["r1", "expired"]);
    // A scheduled request waiting for approvers expires the same way.
    given_commands([(t(MINUTE), submit(starting(write_req("r2", human("alice")), t(3 * DAY))))])
        .when(expire_request("r2"), deadline)
        .then_events(vec![expired_event("r2", RequestExpiryReason::RequestTtl, deadline)]);
}

#[test]
fn request_expiry_timers_are_refused_before_the_deadline_and_for_decided_requests() {
    let deadline = t(MINUTE + DAY);
    let pending = || given_commands([(t(MINUTE), submit(write_req("r1", human("alice"))))]);
    let early = deadline.plus_ms(-1);
    pending()
        .when(expire_request("r1"), early)
        .then_rejects_naming("request_not_yet_expired", &["r1", &deadline.to_string(), &early.to_string()]);
    // Approved meanwhile (and granted), or refused: harmless, refused by name.
    given_commands([
        (t(MINUTE), submit(write_req("r1", human("alice")))),
        (t(2 * MINUTE), approve("r1", "dana")),
        (t(3 * MINUTE), approve("r1", "dmitri")),
    ])
    .when(expire_request("r1"), deadline)
    .then_rejects_naming("request_not_pending", &["r1", "granted"]);
    given_commands([
        (t(MINUTE), submit(write_req("r1", human("alice")))),
        (t(2 * MINUTE), refuse("r1", "dana")),
    ])
    .when(expire_request("r1"), deadline)
    .then_rejects_naming("request_not_pending", &["r1", "refused"]);
    given_catalog().when(expire_request("r9"), deadline).then_rejects("request_unknown");
    // An entry without a request TTL: its requests wait, and never expire.
    let catalog = CATALOG.replace("request_ttl_s = 86400\n", "");
    given(history([(T0, publish(&catalog)), (t(MINUTE), submit(write_req("r1", human("alice"))))]))
        .when(expire_request("r1"), t(30 * DAY))
        .then_rejects_naming("request_without_ttl", &["r1"]);
}

#[test]
fn an_approved_request_may_be_refused_before_its_start_and_is_then_closed() {
    let starts_at = t(3 * HOUR);
    let approved = || {
        given_commands([
            (t(MINUTE), submit(starting(write_req("r1", human("alice")), starts_at))),
            (t(2 * MINUTE), approve("r1", "dana")),
            (t(3 * MINUTE), approve("r1", "dmitri")),
        ])
    };
    // A member of the approver group, even one who approved, cancels it.
    let scenario = approved()
        .when(refuse("r1", "dana"), t(HOUR))
        .then_events(vec![approval("r1", "dana", Deny)]);
    let state = scenario.state();
    assert_eq!(state.request_status(&rid("r1")), Some(RequestStatus::Refused));
    assert_eq!(state.counts().scheduled, 0);
    assert!(state.scheduled_requests(10).is_empty());
    assert!(state.due_starts(starts_at, 10).is_empty());
    scenario
        .when(start("r1"), starts_at)
        .then_rejects_naming("request_not_scheduled", &["r1", "refused"]);
    // Not by someone outside the group, nor by the requester.
    approved()
        .when(refuse("r1", "sam"), t(HOUR))
        .then_rejects_naming("approver_not_in_group", &["sam", "dba"]);
    approved()
        .when(refuse("r1", "alice"), t(HOUR))
        .then_rejects("requester_may_not_approve");
    // Approving it again is no refusal: it is no longer waiting for approvers.
    approved()
        .when(approve("r1", "dora"), t(HOUR))
        .then_rejects_naming("request_not_pending", &["r1", "approved"]);
    // Once started, the grant is revoked, not refused.
    given_commands([
        (t(MINUTE), submit(starting(write_req("r1", human("alice")), starts_at))),
        (t(2 * MINUTE), approve("r1", "dana")),
        (t(3 * MINUTE), approve("r1", "dmitri")),
        (starts_at, start("r1")),
    ])
    .when(refuse("r1", "dora"), starts_at.plus_ms(MINUTE))
    .then_rejects_naming("request_not_pending", &["r1", "granted"]);
    // A request the policy allowed alone has no approvers to refuse it.
    given_commands([(t(MINUTE), submit(starting(read_req("r2", human("alice"), "db/prod/orders"), starts_at)))])
        .when(refuse("r2", "dana"), t(HOUR))
        .then_rejects_naming("request_not_pending", &["r2", "allowed"]);
}
