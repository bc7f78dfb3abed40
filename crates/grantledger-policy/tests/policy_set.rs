//! Loading policy sets: what is refused, with which message, and that
//! nothing is half-loaded.

use grantledger_policy::{
    CEDAR_VERSION, Engine, GrantledgerSchema, LoadErrorKind, PermitKind, PolicySet, policy_set_hash,
};

fn schema() -> GrantledgerSchema {
    GrantledgerSchema::shipped().unwrap()
}

const GOOD: &str = r#"
@id("reads")
permit (principal, action == Action::"request", resource in Entitlement::"repo-read");

@id("two-dbas")
@step_up("2")
@group("dba")
permit (principal is User, action == Action::"request", resource in Entitlement::"db-prod-write");

@id("logs-exception")
@exception
permit (principal, action, resource in Entitlement::"logs-prod-read");

@id("risky")
@reason("risk_score_too_high")
forbid (principal, action, resource) when { context has risk_score && context.risk_score > 90 };
"#;

#[test]
fn the_shipped_schema_parses_and_cedar_is_the_pinned_version() {
    schema();
    assert_eq!(cedar_policy::get_sdk_version().to_string(), CEDAR_VERSION);
}

#[test]
fn a_good_set_loads_with_its_annotations_and_its_hash() {
    let set = PolicySet::parse(GOOD, &schema()).unwrap();
    assert_eq!(set.len(), 4);
    assert_eq!(set.hash(), policy_set_hash(GOOD));
    assert_eq!(set.text(), GOOD);
    assert_eq!(set.policy("reads").unwrap().permit, Some(PermitKind::Plain));
    assert_eq!(
        set.policy("two-dbas").unwrap().permit,
        Some(PermitKind::StepUp {
            approvers_required: 2,
            group: "dba".into()
        })
    );
    assert_eq!(
        set.policy("logs-exception").unwrap().permit,
        Some(PermitKind::Exception)
    );
    assert_eq!(
        set.policy("risky").unwrap().reason.as_deref(),
        Some("risk_score_too_high")
    );
    // One byte more is another hash: decisions cite the exact text.
    let edited = format!("{GOOD}\n");
    assert_ne!(
        PolicySet::parse(&edited, &schema()).unwrap().hash(),
        set.hash()
    );
}

/// Each row: a policy text, the kind it is refused with, the policy id the
/// error names (if any), and a fragment of the message.
#[test]
fn bad_policies_are_refused_naming_the_policy_and_the_rule() {
    let rows: &[(&str, LoadErrorKind, Option<&str>, &str)] = &[
        (
            "@id(\"ok\") permit(principal, action, resource);\n@id(\"broken\") permit(principal, action, resource) when { context.on_call && };",
            LoadErrorKind::PolicySyntax,
            Some("broken"),
            "policy `broken` (line 2) does not parse",
        ),
        (
            "@id(\"typo\") permit(principal, action, resource) when { context.on_cal };",
            LoadErrorKind::PolicyInvalid,
            Some("typo"),
            "policy `typo` does not validate against the schema",
        ),
        (
            "@id(\"types\") permit(principal, action, resource) when { context.requested_ttl_s == \"3600\" };",
            LoadErrorKind::PolicyInvalid,
            Some("types"),
            "does not validate",
        ),
        (
            "@id(\"unguarded\") permit(principal, action, resource) when { context.risk_score < 10 };",
            LoadErrorKind::PolicyInvalid,
            Some("unguarded"),
            "does not validate",
        ),
        (
            "@id(\"nope\") permit(principal, action == Action::\"delete\", resource);",
            LoadErrorKind::PolicyInvalid,
            Some("nope"),
            "does not validate",
        ),
        (
            "permit(principal, action, resource);",
            LoadErrorKind::PolicyIdMissing,
            None,
            "policy number 1 (counting from 1) has no `@id",
        ),
        (
            "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);",
            LoadErrorKind::PolicyIdDuplicated,
            Some("a"),
            "policy id `a` is used twice",
        ),
        (
            "@id(\"s\") @stepup(\"2\") permit(principal, action, resource);",
            LoadErrorKind::AnnotationInvalid,
            Some("s"),
            "unknown annotation `@stepup`",
        ),
        (
            "@id(\"s\") @step_up(\"two\") @group(\"dba\") permit(principal, action, resource);",
            LoadErrorKind::AnnotationInvalid,
            Some("s"),
            "`@step_up(\"two\")` must be a whole number from 1 to 16",
        ),
        (
            "@id(\"s\") @step_up(\"2\") permit(principal, action, resource);",
            LoadErrorKind::AnnotationInvalid,
            Some("s"),
            "`@step_up` needs `@group",
        ),
        (
            "@id(\"f\") @step_up(\"1\") @group(\"dba\") forbid(principal, action, resource);",
            LoadErrorKind::AnnotationInvalid,
            Some("f"),
            "`@step_up` belongs on a `permit`",
        ),
        (
            "@id(\"p\") @reason(\"x\") permit(principal, action, resource);",
            LoadErrorKind::AnnotationInvalid,
            Some("p"),
            "`@reason` belongs on a `forbid`",
        ),
        (
            "@id(\"has space\") permit(principal, action, resource);",
            LoadErrorKind::AnnotationInvalid,
            Some("has space"),
            "policy id `has space` is invalid",
        ),
        (
            "@id(\"t\") permit(principal == ?principal, action, resource);",
            LoadErrorKind::PolicyInvalid,
            None,
            "templates",
        ),
    ];
    for (text, kind, policy_id, fragment) in rows {
        let error = PolicySet::parse(text, &schema()).unwrap_err();
        assert_eq!(error.kind(), *kind, "{text}: {error}");
        assert_eq!(error.policy_id(), *policy_id, "{text}: {error}");
        assert!(error.message().contains(fragment), "{text}: {error}");
    }
}

#[test]
fn the_engine_refuses_policies_that_name_what_the_catalog_lacks() {
    let catalog = grantledger_core::DEFAULT_CATALOG;
    let rows = [
        (
            "@id(\"x\") permit(principal, action, resource in Entitlement::\"db-prod-wrte\");",
            "policy `x` names `Entitlement::\"db-prod-wrte\"`, which is not in the catalog",
        ),
        (
            "@id(\"x\") @step_up(\"1\") @group(\"ghosts\") permit(principal, action, resource);",
            "`@group(\"ghosts\")` is not a group of the catalog",
        ),
        (
            "@id(\"x\") @step_up(\"9\") @group(\"dba\") permit(principal, action, resource);",
            "asks for more approvers than group `dba` has members (`4`)",
        ),
    ];
    for (text, fragment) in rows {
        let error = Engine::from_texts(&schema(), catalog, text, None).unwrap_err();
        assert_eq!(
            error.kind(),
            LoadErrorKind::PolicyCatalogMismatch,
            "{error}"
        );
        assert_eq!(error.policy_id(), Some("x"));
        assert!(error.message().contains(fragment), "{error}");
    }
    let error = Engine::from_texts(&schema(), "[[entitlement]]\nid = 3", GOOD, None).unwrap_err();
    assert_eq!(error.kind(), LoadErrorKind::CatalogInvalid, "{error}");
}
