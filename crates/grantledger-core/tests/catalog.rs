//! The catalog format: every kind of bad input is refused with its kind and
//! a message that names the offending value, in Cedar's style (lowercase,
//! no final period, values in backticks, no Rust type names).

use grantledger_core::{ApprovalRule, Catalog, CatalogErrorKind, DEFAULT_CATALOG, RiskTier};
use grantledger_events::PrincipalKind;

const GROUPS: &str = "[groups]\ndba = [\"dana\", \"dmitri\"]\n";

/// One valid entitlement; rows replace one line of it.
const ENTRY: &str = r#"
[[entitlement]]
id = "db-read"
resource = "db/prod/*"
actions = ["read"]
ttl_default_s = 3600
ttl_max_s = 28800
principal_kinds = ["human", "workload", "agent"]
approval = "auto"
"#;

fn with(line: &str, replacement: &str) -> String {
    assert!(ENTRY.contains(line), "`{line}` is not in the base entry");
    format!("{GROUPS}{}", ENTRY.replacen(line, replacement, 1))
}

#[test]
fn the_base_catalog_and_the_shipped_catalog_are_valid() {
    let catalog = Catalog::parse(&format!("{GROUPS}{ENTRY}")).unwrap();
    let entry = catalog.entitlement("db-read").unwrap();
    assert_eq!(
        (entry.ttl_default_ms, entry.ttl_max_ms),
        (3_600_000, 28_800_000)
    );
    assert_eq!(entry.approval, ApprovalRule::Auto);
    assert!(!entry.ticket_required, "ticket_required defaults to false");
    assert_eq!(entry.principal_kinds, PrincipalKind::ALL.to_vec());

    let shipped = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let write = shipped.entitlement("db-prod-write").unwrap();
    assert_eq!(
        write.approval,
        ApprovalRule::Approvers {
            approvers_required: 2,
            group: "dba".into()
        }
    );
    assert!(write.ticket_required);
    assert_eq!(write.risk_tier, Some(RiskTier::High));
    assert_eq!(
        shipped.entitlement("db-prod-export").unwrap().approval,
        ApprovalRule::Deny
    );
}

#[test]
fn the_hash_is_blake3_of_the_exact_text() {
    let text = format!("{GROUPS}{ENTRY}");
    let catalog = Catalog::parse(&text).unwrap();
    assert_eq!(
        catalog.hash(),
        blake3::hash(text.as_bytes()).to_hex().as_str()
    );
    let spaced = Catalog::parse(&format!("{text}\n")).unwrap();
    assert_ne!(
        spaced.hash(),
        catalog.hash(),
        "the hash covers the exact text, whitespace included"
    );
}

/// Each row: a bad catalog, the kind it must be refused with, and the
/// values its message must name.
#[test]
fn bad_catalogs_table() {
    let too_many_members = format!(
        "[groups]\nbig = [{}]\n",
        (0..1001)
            .map(|i| format!("\"p{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows: Vec<(&str, String, CatalogErrorKind, &[&str])> = vec![
        (
            "not toml",
            "[[entitlement]\nid = ".into(),
            CatalogErrorKind::Syntax,
            &[],
        ),
        (
            "top-level unknown field",
            format!("colour = \"red\"\n{GROUPS}{ENTRY}"),
            CatalogErrorKind::UnknownField,
            &["colour"],
        ),
        (
            "entitlement unknown field",
            with(
                "approval = \"auto\"",
                "approval = \"auto\"\nowner = \"team-db\"",
            ),
            CatalogErrorKind::UnknownField,
            &["owner"],
        ),
        (
            "misspelt field",
            with("ttl_max_s = 28800", "ttl_max = 28800"),
            CatalogErrorKind::UnknownField,
            &["ttl_max"],
        ),
        (
            "approval unknown field",
            with(
                "approval = \"auto\"",
                "approval = { approvers = 1, group = \"dba\", quorum = 2 }",
            ),
            CatalogErrorKind::UnknownField,
            &["quorum"],
        ),
        (
            "missing field",
            with("actions = [\"read\"]\n", ""),
            CatalogErrorKind::MissingField,
            &["actions"],
        ),
        (
            "approval missing group",
            with("approval = \"auto\"", "approval = { approvers = 1 }"),
            CatalogErrorKind::MissingField,
            &["group"],
        ),
        (
            "ttl of the wrong type",
            with("ttl_default_s = 3600", "ttl_default_s = \"1h\""),
            CatalogErrorKind::Syntax,
            &[],
        ),
        (
            "zero default ttl",
            with("ttl_default_s = 3600", "ttl_default_s = 0"),
            CatalogErrorKind::TtlNotPositive,
            &["0", "db-read"],
        ),
        (
            "negative max ttl",
            with("ttl_max_s = 28800", "ttl_max_s = -5"),
            CatalogErrorKind::TtlNotPositive,
            &["-5"],
        ),
        (
            "default above max",
            with("ttl_default_s = 3600", "ttl_default_s = 30000"),
            CatalogErrorKind::TtlDefaultExceedsMax,
            &["30000", "28800"],
        ),
        (
            "max above the ceiling",
            with("ttl_max_s = 28800", "ttl_max_s = 2592001"),
            CatalogErrorKind::TtlAboveCeiling,
            &["2592001"],
        ),
        (
            "break-glass cap above max",
            with(
                "approval = \"auto\"",
                "approval = \"auto\"\nbreak_glass_ttl_max_s = 30000",
            ),
            CatalogErrorKind::BreakGlassTtlExceedsMax,
            &["30000"],
        ),
        (
            "break-glass cap zero",
            with(
                "approval = \"auto\"",
                "approval = \"auto\"\nbreak_glass_ttl_max_s = 0",
            ),
            CatalogErrorKind::TtlNotPositive,
            &["0"],
        ),
        (
            "unknown principal kind",
            with(
                "[\"human\", \"workload\", \"agent\"]",
                "[\"human\", \"robot\"]",
            ),
            CatalogErrorKind::PrincipalKindUnknown,
            &["robot"],
        ),
        (
            "duplicate principal kind",
            with(
                "[\"human\", \"workload\", \"agent\"]",
                "[\"human\", \"human\"]",
            ),
            CatalogErrorKind::PrincipalKindDuplicated,
            &["human"],
        ),
        (
            "no principal kind",
            with("[\"human\", \"workload\", \"agent\"]", "[]"),
            CatalogErrorKind::PrincipalKindsEmpty,
            &["db-read"],
        ),
        (
            "approval names an unknown group",
            with(
                "approval = \"auto\"",
                "approval = { approvers = 1, group = \"sre\" }",
            ),
            CatalogErrorKind::GroupUnknown,
            &["sre"],
        ),
        (
            "zero approvers",
            with(
                "approval = \"auto\"",
                "approval = { approvers = 0, group = \"dba\" }",
            ),
            CatalogErrorKind::ApproversZero,
            &["0"],
        ),
        (
            "negative approvers",
            with(
                "approval = \"auto\"",
                "approval = { approvers = -1, group = \"dba\" }",
            ),
            CatalogErrorKind::ApproversZero,
            &["-1"],
        ),
        (
            "more approvers than the group",
            with(
                "approval = \"auto\"",
                "approval = { approvers = 3, group = \"dba\" }",
            ),
            CatalogErrorKind::ApproversExceedGroup,
            &["3", "dba"],
        ),
        (
            "approval word",
            with("approval = \"auto\"", "approval = \"manual\""),
            CatalogErrorKind::ApprovalInvalid,
            &["\"manual\""],
        ),
        (
            "approval of the wrong type",
            with("approval = \"auto\"", "approval = 2"),
            CatalogErrorKind::ApprovalInvalid,
            &["2"],
        ),
        (
            "approvers of the wrong type",
            with(
                "approval = \"auto\"",
                "approval = { approvers = \"two\", group = \"dba\" }",
            ),
            CatalogErrorKind::ApprovalInvalid,
            &["\"two\""],
        ),
        (
            "duplicate entitlement id",
            format!("{GROUPS}{ENTRY}{ENTRY}"),
            CatalogErrorKind::EntitlementDuplicated,
            &["db-read"],
        ),
        (
            "empty actions",
            with("actions = [\"read\"]", "actions = []"),
            CatalogErrorKind::ActionsEmpty,
            &["db-read"],
        ),
        (
            "duplicate action",
            with("actions = [\"read\"]", "actions = [\"read\", \"read\"]"),
            CatalogErrorKind::ActionDuplicated,
            &["read"],
        ),
        (
            "invalid action",
            with("actions = [\"read\"]", "actions = [\"Read All\"]"),
            CatalogErrorKind::ActionInvalid,
            &["Read All"],
        ),
        (
            "invalid entitlement id",
            with("id = \"db-read\"", "id = \"DB Read\""),
            CatalogErrorKind::IdInvalid,
            &["DB Read"],
        ),
        (
            "empty entitlement id",
            with("id = \"db-read\"", "id = \"\""),
            CatalogErrorKind::IdInvalid,
            &[""],
        ),
        (
            "invalid group name",
            format!("[groups]\n\"Data Base\" = [\"dana\"]\n{ENTRY}"),
            CatalogErrorKind::IdInvalid,
            &["Data Base"],
        ),
        (
            "invalid group member",
            format!("[groups]\ndba = [\"dana smith\"]\n{ENTRY}"),
            CatalogErrorKind::IdInvalid,
            &["dana smith"],
        ),
        (
            "empty group",
            format!("[groups]\ndba = []\n{ENTRY}"),
            CatalogErrorKind::GroupEmpty,
            &["dba"],
        ),
        (
            "duplicate group member",
            format!("[groups]\ndba = [\"dana\", \"dana\"]\n{ENTRY}"),
            CatalogErrorKind::GroupMemberDuplicated,
            &["dana"],
        ),
        (
            "too many group members",
            format!("{too_many_members}{ENTRY}"),
            CatalogErrorKind::TooLarge,
            &["1001"],
        ),
        (
            "empty resource segment",
            with("resource = \"db/prod/*\"", "resource = \"db//*\""),
            CatalogErrorKind::ResourcePatternInvalid,
            &["db//*"],
        ),
        (
            "double star inside a segment",
            with("resource = \"db/prod/*\"", "resource = \"db/prod**\""),
            CatalogErrorKind::ResourcePatternInvalid,
            &["db/prod**"],
        ),
        (
            "unknown risk tier",
            with(
                "approval = \"auto\"",
                "approval = \"auto\"\nrisk_tier = \"extreme\"",
            ),
            CatalogErrorKind::RiskTierUnknown,
            &["extreme"],
        ),
        (
            "too large",
            format!("# {}\n", "x".repeat(1024 * 1024)),
            CatalogErrorKind::TooLarge,
            &[],
        ),
    ];
    for (name, text, kind, values) in rows {
        let error = Catalog::parse(&text).expect_err(name);
        let message = error.to_string();
        assert_eq!(error.kind(), kind, "{name}: {message}");
        for value in values {
            assert!(
                message.contains(&format!("`{value}`")),
                "{name}: `{value}` not named in: {message}"
            );
        }
        assert!(
            !message.ends_with('.'),
            "{name}: no final period: {message}"
        );
        assert!(
            message.chars().next().is_some_and(|c| !c.is_uppercase()),
            "{name}: lowercase: {message}"
        );
        for rust_name in [
            "RawEntitlement",
            "RawCatalog",
            "String",
            "i64",
            "u32",
            "Vec",
            "Option",
        ] {
            assert!(
                !message.contains(rust_name),
                "{name}: names a Rust type: {message}"
            );
        }
        assert!(!error.kind().code().is_empty());
    }
}

#[test]
fn unknown_field_errors_point_at_the_line() {
    let text = with(
        "approval = \"auto\"",
        "approval = \"auto\"\nowner = \"team-db\"",
    );
    let error = Catalog::parse(&text).unwrap_err();
    let line = text
        .lines()
        .position(|line| line.starts_with("owner"))
        .unwrap()
        + 1;
    assert!(
        error
            .to_string()
            .starts_with(&format!("line {line}: unknown field `owner`")),
        "{error}"
    );
}

#[test]
fn an_empty_catalog_is_valid_and_denies_everything() {
    // Publishing an empty catalog is how an operator stops all self-service.
    let catalog = Catalog::parse("").unwrap();
    assert!(catalog.entitlements().is_empty());
}
