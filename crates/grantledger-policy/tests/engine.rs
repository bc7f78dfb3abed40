//! The engine's decision rules, beyond the example directory's tables:
//! step-up choice, the stricter layer, fail-closed evaluation errors,
//! determinism, schema conformity and slicing.

use grantledger_events::{DecisionOutcome, PrincipalKind};
use grantledger_policy::runner::run_text;
use grantledger_policy::{
    Engine, GrantledgerSchema, PolicyAction, PolicyErrorKind, PolicyRequest, PrincipalAttributes,
    RequestContext, reason,
};
use proptest::prelude::*;
use serde_json::json;

const CATALOG: &str = r#"
[groups]
dba = ["d1", "d2", "d3", "d4"]
sre = ["s1", "s2", "s3"]

[[entitlement]]
id = "db-write"
resource = "db/prod/*"
actions = ["read", "write"]
ttl_default_s = 1800
ttl_max_s = 7200
principal_kinds = ["human", "workload"]
approval = { approvers = 2, group = "dba" }
break_glass_ttl_max_s = 600

[[entitlement]]
id = "ns-admin"
resource = "k8s/prod/ns/*"
actions = ["admin"]
ttl_default_s = 1800
ttl_max_s = 3600
principal_kinds = ["human", "agent"]
approval = "auto"
break_glass_ttl_max_s = 900
"#;

fn engine(policies: &str) -> Engine {
    Engine::from_texts(
        &GrantledgerSchema::shipped().unwrap(),
        CATALOG,
        policies,
        None,
    )
    .unwrap()
}

fn request(entitlement: &str, resource: &str, actions: &[&str]) -> PolicyRequest {
    PolicyRequest {
        principal: PrincipalAttributes {
            id: "alice".into(),
            kind: PrincipalKind::Human,
            owner: None,
            groups: vec!["payments".into()],
        },
        action: PolicyAction::Request,
        entitlement: entitlement.into(),
        resource: resource.into(),
        actions: actions.iter().map(|action| action.to_string()).collect(),
        ttl_requested_ms: None,
        ticket: Some("OPS-1".into()),
        justification: "work".into(),
        break_glass_reason: None,
        at_ms: 1_795_435_200_000, // 2026-11-23T12:00:00Z, a Monday
        context: RequestContext::default(),
    }
}

#[test]
fn the_weakest_satisfied_step_up_is_asked_for_and_the_stricter_layer_wins() {
    let policies = r#"
@id("one-sre") @step_up("1") @group("sre")
permit (principal, action == Action::"request", resource in Entitlement::"ns-admin") when { context.on_call };
@id("three-dbas") @step_up("3") @group("dba")
permit (principal, action == Action::"request", resource in Entitlement::"ns-admin");
@id("db-three") @step_up("3") @group("sre")
permit (principal, action == Action::"request", resource in Entitlement::"db-write");
"#;
    let engine = engine(policies);
    let mut on_call = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    on_call.context.on_call = true;
    let decision = engine.evaluate(&on_call).unwrap();
    assert_eq!(
        decision.outcome,
        DecisionOutcome::NeedsApproval {
            approvers_required: 1,
            group: "sre".into()
        }
    );
    assert_eq!(decision.determining_policies, vec!["one-sre"]);

    let off_call = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    let decision = engine.evaluate(&off_call).unwrap();
    assert_eq!(
        decision.outcome,
        DecisionOutcome::NeedsApproval {
            approvers_required: 3,
            group: "dba".into()
        }
    );
    assert_eq!(decision.determining_policies, vec!["three-dbas"]);

    // Catalog: 2 dba; policy: 3 sre. More approvers is stricter: 3 sre.
    let decision = engine
        .evaluate(&request("db-write", "db/prod/orders", &["write"]))
        .unwrap();
    assert_eq!(
        decision.outcome,
        DecisionOutcome::NeedsApproval {
            approvers_required: 3,
            group: "sre".into()
        }
    );
    assert!(
        decision
            .reasons
            .contains(&reason::STEP_UP_BY_POLICY.to_string())
    );
}

#[test]
fn a_policy_that_fails_to_evaluate_denies_and_is_cited() {
    let policies = r#"
@id("allow-all") permit (principal, action, resource);
@id("overflows") forbid (principal, action, resource) when { context.now_ms * 9223372036854775807 > 0 };
"#;
    let decision = engine(policies)
        .evaluate(&request("ns-admin", "k8s/prod/ns/payments", &["admin"]))
        .unwrap();
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    assert_eq!(decision.reasons, vec![reason::POLICY_EVALUATION_ERROR]);
    assert_eq!(decision.determining_policies, vec!["overflows"]);
}

#[test]
fn decisions_record_hashes_version_and_every_evaluated_value_and_round_trip() {
    let engine = engine(
        "@id(\"all\") permit (principal, action, resource) when { context.now > datetime(\"2026-01-01\") };",
    );
    let mut asked = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    asked.context.device_managed = true;
    asked.context.risk_score = Some(7);
    let decision = engine.evaluate(&asked).unwrap();
    assert_eq!(decision, engine.evaluate(&asked).unwrap());
    assert_eq!(decision.cedar_version, "4.14.1");
    assert_eq!(decision.policy_set_hash, engine.policies().hash());
    assert_eq!(decision.catalog_hash, engine.catalog().hash());
    let evaluated = &decision.evaluated;
    assert_eq!(evaluated["context.device_managed"], json!(true));
    assert_eq!(evaluated["context.risk_score"], json!(7));
    assert_eq!(evaluated["context.weekday_utc"], json!(1));
    assert_eq!(evaluated["context.hour_utc"], json!(12));
    assert_eq!(evaluated["context.minute_of_day_utc"], json!(720));
    assert_eq!(evaluated["context.now"], json!("2026-11-23T12:00:00.000Z"));
    assert_eq!(evaluated["context.requested_ttl_s"], json!(1800));
    assert_eq!(evaluated["principal.groups"], json!(["payments"]));
    assert_eq!(evaluated["resource.path"], json!("k8s/prod/ns/payments"));
    assert_eq!(evaluated["entitlement.ttl_max_s"], json!(3600));
    assert_eq!(decision.outcome, DecisionOutcome::Allow);
    // Before 2026 the same policy does not match: `now` is really evaluated.
    asked.at_ms = 1_767_225_599_000;
    assert_eq!(
        engine.evaluate(&asked).unwrap().outcome,
        DecisionOutcome::Deny
    );
    // A policy set that never reads `now` is not given it.
    let without = self::engine("@id(\"all\") permit (principal, action, resource);");
    let evaluated = without.evaluate(&asked).unwrap().evaluated;
    assert!(!evaluated.contains_key("context.now"));
    assert!(evaluated.contains_key("context.now_ms"));
    let text = serde_json::to_string(&decision).unwrap();
    let back: grantledger_policy::PolicyDecision = serde_json::from_str(&text).unwrap();
    assert_eq!(back, decision);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}

#[test]
fn break_glass_that_a_policy_would_only_allow_with_approvers_is_denied() {
    let policies = r#"
@id("bg-step-up") @step_up("1") @group("sre")
permit (principal, action == Action::"break_glass", resource);
"#;
    let mut asked = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    asked.action = PolicyAction::BreakGlass;
    asked.break_glass_reason = Some("outage".into());
    let decision = engine(policies).evaluate(&asked).unwrap();
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    assert_eq!(
        decision.reasons,
        vec![reason::BREAK_GLASS_CANNOT_WAIT_FOR_APPROVAL]
    );
    assert!(
        decision.details[0].contains("`bg-step-up`"),
        "{:?}",
        decision.details
    );
}

#[test]
fn an_exception_needs_a_rule_and_a_deny_rule_denies_it() {
    let policies = r#"
@id("ns-outside") @exception
permit (principal, action == Action::"request", resource in Entitlement::"ns-admin");
@id("db-outside") @exception
permit (principal, action == Action::"request", resource in Entitlement::"db-write");
"#;
    let exceptions = "[[exception]]\nentitlement = \"db-write\"\napproval = \"deny\"\n";
    let engine = Engine::from_texts(
        &GrantledgerSchema::shipped().unwrap(),
        CATALOG,
        policies,
        Some(exceptions),
    )
    .unwrap();
    let decision = engine
        .evaluate(&request("ns-admin", "k8s/prod/ns/payments", &["admin"]))
        .unwrap();
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    assert_eq!(
        decision.reasons,
        vec![
            reason::EXCEPTION_OUTSIDE_NORMAL_CONTEXT,
            reason::EXCEPTION_RULE_MISSING
        ]
    );
    let decision = engine
        .evaluate(&request("db-write", "db/prod/orders", &["write"]))
        .unwrap();
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    assert_eq!(
        decision.reasons,
        vec![
            reason::EXCEPTION_DENIED,
            reason::EXCEPTION_OUTSIDE_NORMAL_CONTEXT
        ]
    );
    assert_eq!(
        decision.exceptions_hash.as_deref(),
        engine.exceptions().hash()
    );
    assert!(decision.exceptions_hash.is_some());
}

#[test]
fn bad_input_is_an_error_naming_the_field() {
    let engine = engine("@id(\"all\") permit (principal, action, resource);");
    let mut asked = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    asked.principal.id = "has space".into();
    let error = engine.evaluate(&asked).unwrap_err();
    assert_eq!(error.kind(), PolicyErrorKind::IdInvalid);
    assert_eq!(error.field(), Some("principal.id"));

    let mut late = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    late.at_ms = i64::MAX;
    let error = engine.evaluate(&late).unwrap_err();
    assert_eq!(error.kind(), PolicyErrorKind::ContextValueOutOfRange);
    assert_eq!(error.field(), Some("at_ms"));

    let value = json!({
        "principal": {"id": "alice", "kind": "human"}, "action": "request",
        "entitlement": "ns-admin", "resource": "k8s/prod/ns/a", "actions": ["admin"],
        "at_ms": 0, "context": {"on_call": "yes"}
    });
    let error = PolicyRequest::from_json_value(value.clone()).unwrap_err();
    assert_eq!(error.kind(), PolicyErrorKind::ContextValueWrongType);
    assert_eq!(error.field(), Some("context.on_call"));
    assert!(
        error
            .message()
            .contains("must be a boolean, found a string `\"yes\"`"),
        "{error}"
    );

    let mut unknown = value;
    unknown["context"] = json!({});
    unknown["colour"] = json!("blue");
    let error = PolicyRequest::from_json_value(unknown).unwrap_err();
    assert_eq!(error.kind(), PolicyErrorKind::RequestMalformed);
    assert!(
        error.message().contains("unknown field `colour`"),
        "{error}"
    );
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failure_with_a_diff() {
    let engine = engine("@id(\"all\") permit (principal, action, resource);");
    let text = r#"
[[case]]
name = "deliberately wrong"
expect = "allow"
expect_policies = ["someone-else"]
expect_reasons = ["auto_approved"]
[case.request]
principal = { id = "alice", kind = "human" }
action = "request"
entitlement = "db-write"
resource = "db/prod/orders"
actions = ["write"]
justification = "work"
ticket = "OPS-1"
at = "2026-11-20T08:00:00Z"

[[case]]
name = "right"
expect = "needs_approval"
expect_approvers = 2
expect_group = "dba"
[case.request]
principal = { id = "alice", kind = "human" }
action = "request"
entitlement = "db-write"
resource = "db/prod/orders"
actions = ["write"]
justification = "work"
ticket = "OPS-1"
at_ms = 0
"#;
    let results = run_text(&engine, std::path::Path::new("inline.test.toml"), text).unwrap();
    assert_eq!(results.len(), 2);
    assert!(!results[0].passed());
    let diff = results[0].differences.join("\n");
    assert!(
        diff.contains("outcome: expected `allow`, got `needs_approval`"),
        "{diff}"
    );
    assert!(
        diff.contains("determining policies: expected [\"someone-else\"], got [\"all\"]"),
        "{diff}"
    );
    assert!(
        diff.contains("unexpected [\"approval_required\", \"step_up_by_catalog\"]"),
        "{diff}"
    );
    assert!(results[1].passed(), "{:?}", results[1].differences);
}

#[test]
fn the_requests_the_engine_builds_conform_to_the_schema() {
    let schema = GrantledgerSchema::shipped().unwrap();
    let engine = engine("@id(\"all\") permit (principal, action, resource);");
    let mut asked = request("ns-admin", "k8s/prod/ns/payments", &["admin"]);
    asked.context = RequestContext::from_map(
        &serde_json::from_value(json!({
            "in_maintenance_window": true, "change_record": "CHG-1", "incident": "INC-1",
            "risk_score": 3,
            "workload_identity": {"issuer": "i", "subject": "spiffe://a/b", "audience": ["x"],
                "spiffe_id": "spiffe://a/b", "trust_domain": "a"},
            "task": {"id": "t", "purpose": "p", "tool": "git"}
        }))
        .unwrap(),
    )
    .unwrap();
    for kind in [
        PrincipalKind::Human,
        PrincipalKind::Workload,
        PrincipalKind::Agent,
    ] {
        for action in PolicyAction::ALL {
            let mut asked = asked.clone();
            asked.principal.kind = kind;
            asked.principal.owner = Some("owner".into());
            asked.action = action;
            asked.break_glass_reason = Some("why".into());
            engine
                .check_request_against_schema(&schema, &asked)
                .unwrap();
        }
    }
    engine
        .check_request_against_schema(&schema, &request("db-write", "db/prod/x", &[]))
        .unwrap();
}

const SLICED_POLICIES: &str = r#"
@id("ns-on-call") permit (principal, action == Action::"request", resource in Entitlement::"ns-admin") when { context.on_call };
@id("ns-step-up") @step_up("2") @group("sre") permit (principal is User, action in [Action::"request", Action::"extend"], resource in Entitlement::"ns-admin");
@id("db-change") permit (principal, action, resource is Resource in Entitlement::"db-write") when { context has change_record };
@id("db-window") forbid (principal, action, resource in Entitlement::"db-write") unless { context.in_maintenance_window };
@id("global-risk") forbid (principal, action, resource) when { context has risk_score && context.risk_score > 50 };
@id("global-path") permit (principal, action, resource) when { resource.path like "k8s/prod/ns/pay*" && context.device_managed };
@id("bg") permit (principal is User, action == Action::"break_glass", resource) when { context has incident };
"#;

#[test]
fn a_path_gated_policy_is_left_out_only_where_no_resource_of_the_entitlement_can_match() {
    let engine = engine(SLICED_POLICIES);
    let with = |entitlement: &str, resource: &str| {
        let mut asked = request(entitlement, resource, &["read"]);
        asked.principal.kind = PrincipalKind::Workload;
        asked.principal.owner = Some("owner".into());
        engine.slice_len(&asked)
    };
    // ns-admin's pattern can hold `k8s/prod/ns/pay...`: `global-risk`,
    // `global-path` and `ns-on-call` (`ns-step-up` is for humans).
    assert_eq!(with("ns-admin", "k8s/prod/ns/payments"), 3);
    assert_eq!(with("ns-admin", "k8s/prod/ns/search"), 3, "the slice is the entitlement's, not the path's");
    // db-write's `db/prod/*` never can: `global-risk` and its own two.
    assert_eq!(with("db-write", "db/prod/orders"), 3);
    // A resource outside the entitlement's pattern: the whole set.
    assert_eq!(with("db-write", "k8s/prod/ns/payments"), 7);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Slicing is sound: evaluating against the request's slice gives the
    /// same decision as evaluating against the whole set.
    #[test]
    fn slicing_never_changes_a_decision(
        ns in any::<bool>(),
        kind in 0u8..3,
        action in 0u8..3,
        on_call in any::<bool>(),
        window in any::<bool>(),
        managed in any::<bool>(),
        change in any::<bool>(),
        incident in any::<bool>(),
        risk in proptest::option::of(0i64..=100),
        ttl_min in 1i64..200,
        suffix in "(pay)?[a-z]{1,6}",
        elsewhere in proptest::sample::select(vec![None, Some("k8s/prod/ns/pay"), Some("db/prod/"), Some("other/")]),
    ) {
        let engine = engine(SLICED_POLICIES);
        // Mostly under the entitlement's pattern; sometimes elsewhere (the
        // catalog refuses it, and the path gates must not hide a policy).
        let ns_resource = format!("{}{suffix}", elsewhere.unwrap_or("k8s/prod/ns/"));
        let db_resource = format!("{}{suffix}", elsewhere.unwrap_or("db/prod/"));
        let mut asked = if ns {
            request("ns-admin", &ns_resource, &["admin"])
        } else {
            request("db-write", &db_resource, &["write"])
        };
        asked.principal.kind = [PrincipalKind::Human, PrincipalKind::Workload, PrincipalKind::Agent][kind as usize];
        asked.principal.owner = Some("owner".into());
        asked.action = PolicyAction::ALL[action as usize];
        asked.break_glass_reason = Some("why".into());
        asked.ttl_requested_ms = Some(ttl_min * 60_000);
        asked.context.on_call = on_call;
        asked.context.in_maintenance_window = window;
        asked.context.device_managed = managed;
        asked.context.change_record = change.then(|| "CHG-1".into());
        asked.context.incident = incident.then(|| "INC-1".into());
        asked.context.risk_score = risk;
        prop_assert_eq!(engine.evaluate(&asked).unwrap(), engine.evaluate_unsliced(&asked).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same on the example directory's catalog and policies, across
    /// every entitlement, principal kind and action.
    #[test]
    fn slicing_never_changes_a_decision_on_the_example_directory(
        entry in 0usize..64,
        kind in 0u8..3,
        action in 0u8..3,
        groups in proptest::sample::subsequence(vec!["payments", "sre", "dba", "coding-agents"], 0..=4),
        flags in proptest::collection::vec(any::<bool>(), 6),
        risk in proptest::option::of(0i64..=100),
        ttl_min in 1i64..300,
    ) {
        let engine = Engine::load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap();
        let entries = engine.catalog().entitlements();
        let entry = &entries[entry % entries.len()];
        // A concrete resource under the entry's pattern.
        let resource = entry.resource.as_str().replace("**", "x").replace('*', "payments");
        let mut asked = request(&entry.id, &resource, &[entry.actions[0].as_str()]);
        asked.principal.kind = [PrincipalKind::Human, PrincipalKind::Workload, PrincipalKind::Agent][kind as usize];
        asked.principal.owner = Some("owner".into());
        asked.principal.groups = groups.into_iter().map(str::to_string).collect();
        asked.action = PolicyAction::ALL[action as usize];
        asked.break_glass_reason = flags[5].then(|| "outage".into());
        asked.ttl_requested_ms = Some(ttl_min * 60_000);
        asked.context.on_call = flags[0];
        asked.context.in_maintenance_window = flags[1];
        asked.context.device_managed = flags[2];
        asked.context.change_record = flags[3].then(|| "CHG-1".into());
        asked.context.incident = flags[4].then(|| "INC-1".into());
        asked.context.risk_score = risk;
        prop_assert_eq!(engine.evaluate(&asked).unwrap(), engine.evaluate_unsliced(&asked).unwrap());
    }
}
