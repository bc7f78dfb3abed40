//! The catalog of approved entitlements: its TOML format, its validation and
//! its hash.
//!
//! ```toml
//! [groups]
//! dba = ["dana", "dmitri", "dora"]          # approver groups: name = members
//!
//! [[entitlement]]
//! id = "db-prod-read"                       # lowercase slug, unique
//! description = "read-only SQL on production databases"   # optional
//! resource = "db/prod/*"                    # a ResourcePattern (glob)
//! actions = ["read"]                        # at least one, distinct
//! ttl_default_s = 3600                      # seconds, > 0, <= ttl_max_s
//! ttl_max_s = 28800                         # seconds, > 0, <= TTL_S_CEILING
//! principal_kinds = ["human", "workload", "agent"]
//! approval = "auto"                         # "auto" | "deny" | { approvers = 2, group = "dba" }
//! ticket_required = false                   # optional, default false
//! break_glass_ttl_max_s = 900               # optional: break-glass eligible, with this cap
//! request_ttl_s = 86400                     # optional: approvals after this long are refused
//! risk_tier = "low"                         # optional: low | medium | high | critical
//! ```
//!
//! Unknown fields are refused everywhere, including inside `approval`.

use std::collections::{BTreeMap, BTreeSet};

use grantledger_events::{PrincipalId, PrincipalKind};
use serde::Deserialize;

use crate::pattern::ResourcePattern;

/// The built-in example catalog (`catalog/default.toml`).
pub const DEFAULT_CATALOG: &str = include_str!("../catalog/default.toml");

/// The largest catalog text accepted, in bytes.
pub const CATALOG_BYTES_MAX: usize = 1024 * 1024;
/// The most entitlements one catalog may hold.
pub const ENTITLEMENTS_MAX: usize = 10_000;
/// The most members one approver group may have.
pub const GROUP_MEMBERS_MAX: usize = 1_000;
/// The longest action, group name or entitlement id, in bytes.
pub const ACTION_BYTES_MAX: usize = 64;
/// No entitlement may have a maximum TTL above this, in seconds (30 days):
/// there is no standing grant.
pub const TTL_S_CEILING: i64 = 30 * 24 * 3600;
/// The most actions one entitlement may list.
const ENTITLEMENT_ACTIONS_MAX: usize = 64;

/// A validated catalog of approved entitlements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    hash: String,
    groups: BTreeMap<String, Vec<PrincipalId>>,
    // INVARIANT: `index` maps every entitlement id to its position in
    // `entitlements`, and ids are unique.
    entitlements: Vec<Entitlement>,
    index: BTreeMap<String, usize>,
}

/// One approved entitlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement {
    /// Its id, a lowercase slug unique in the catalog.
    pub id: String,
    /// What it is for, for people.
    pub description: Option<String>,
    /// The resources it covers.
    pub resource: ResourcePattern,
    /// The actions it allows; distinct, at least one.
    pub actions: Vec<String>,
    /// The TTL a request gets when it names none.
    pub ttl_default_ms: i64,
    /// The longest TTL, and the hard cap of any extension, from issue.
    pub ttl_max_ms: i64,
    /// Which kinds of principal may ask.
    pub principal_kinds: Vec<PrincipalKind>,
    /// How a request is approved.
    pub approval: ApprovalRule,
    /// Whether a request must carry a ticket or change record.
    pub ticket_required: bool,
    /// When set, the entitlement may be taken by break-glass for at most
    /// this long (never more than `ttl_max_ms`).
    pub break_glass_ttl_max_ms: Option<i64>,
    /// The risk tier, for people and dashboards.
    pub risk_tier: Option<RiskTier>,
    /// When set, a request waiting for approvers expires this long after its
    /// decision: approvals that arrive later are refused. Unset: it waits.
    pub request_ttl_ms: Option<i64>,
}

/// How a request for an entitlement is approved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalRule {
    /// Granted at once when the policy allows it.
    Auto,
    /// Granted once `approvers_required` distinct members of `group` approve.
    /// Only humans can wait for approval.
    Approvers {
        /// How many distinct approvers; at least 1, at most the group size.
        approvers_required: u32,
        /// The approver group.
        group: String,
    },
    /// Never self-service: every request is denied.
    Deny,
}

/// An entitlement's risk tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskTier {
    /// Read-only, non-production, or narrowly scoped.
    Low,
    /// Production reads of sensitive data, production deploys.
    Medium,
    /// Production writes, cluster administration.
    High,
    /// Bulk data access, security controls.
    Critical,
}

impl RiskTier {
    /// The name used in catalogs.
    pub fn name(self) -> &'static str {
        match self {
            RiskTier::Low => "low",
            RiskTier::Medium => "medium",
            RiskTier::High => "high",
            RiskTier::Critical => "critical",
        }
    }
}

/// Why a catalog was refused: a kind, and a message naming the offending
/// value and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CatalogError {
    kind: CatalogErrorKind,
    message: String,
}

/// The closed set of reasons a catalog is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CatalogErrorKind {
    /// Over a bound: the text, the entitlements, the actions or a group.
    TooLarge,
    /// Not TOML, or a value of the wrong type.
    Syntax,
    /// A field the format does not have.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// An entitlement id, group name or group member is not a valid id.
    IdInvalid,
    /// Two entitlements share an id.
    EntitlementDuplicated,
    /// The resource pattern is malformed.
    ResourcePatternInvalid,
    /// An entitlement lists no action.
    ActionsEmpty,
    /// An action name is malformed.
    ActionInvalid,
    /// An action is listed twice.
    ActionDuplicated,
    /// A TTL is zero or negative.
    TtlNotPositive,
    /// The default TTL is above the maximum.
    TtlDefaultExceedsMax,
    /// The maximum TTL is above [`TTL_S_CEILING`].
    TtlAboveCeiling,
    /// The break-glass cap is above the entitlement's maximum TTL.
    BreakGlassTtlExceedsMax,
    /// An entitlement lists no principal kind.
    PrincipalKindsEmpty,
    /// A principal kind other than `human`, `workload` or `agent`.
    PrincipalKindUnknown,
    /// A principal kind is listed twice.
    PrincipalKindDuplicated,
    /// `approval` is not `auto`, `deny` or `{ approvers, group }`.
    ApprovalInvalid,
    /// `approval` names a group that is not in `[groups]`.
    GroupUnknown,
    /// `approvers = 0`.
    ApproversZero,
    /// More approvers required than the group has members.
    ApproversExceedGroup,
    /// A group without members.
    GroupEmpty,
    /// A member listed twice in one group.
    GroupMemberDuplicated,
    /// A risk tier other than `low`, `medium`, `high` or `critical`.
    RiskTierUnknown,
}

impl CatalogErrorKind {
    /// A stable snake_case code for the kind.
    pub fn code(self) -> &'static str {
        match self {
            CatalogErrorKind::TooLarge => "catalog_too_large",
            CatalogErrorKind::Syntax => "toml_invalid",
            CatalogErrorKind::UnknownField => "unknown_field",
            CatalogErrorKind::MissingField => "missing_field",
            CatalogErrorKind::IdInvalid => "id_invalid",
            CatalogErrorKind::EntitlementDuplicated => "entitlement_duplicated",
            CatalogErrorKind::ResourcePatternInvalid => "resource_pattern_invalid",
            CatalogErrorKind::ActionsEmpty => "actions_empty",
            CatalogErrorKind::ActionInvalid => "action_invalid",
            CatalogErrorKind::ActionDuplicated => "action_duplicated",
            CatalogErrorKind::TtlNotPositive => "ttl_not_positive",
            CatalogErrorKind::TtlDefaultExceedsMax => "ttl_default_exceeds_max",
            CatalogErrorKind::TtlAboveCeiling => "ttl_above_ceiling",
            CatalogErrorKind::BreakGlassTtlExceedsMax => "break_glass_ttl_exceeds_max",
            CatalogErrorKind::PrincipalKindsEmpty => "principal_kinds_empty",
            CatalogErrorKind::PrincipalKindUnknown => "principal_kind_unknown",
            CatalogErrorKind::PrincipalKindDuplicated => "principal_kind_duplicated",
            CatalogErrorKind::ApprovalInvalid => "approval_invalid",
            CatalogErrorKind::GroupUnknown => "group_unknown",
            CatalogErrorKind::ApproversZero => "approvers_zero",
            CatalogErrorKind::ApproversExceedGroup => "approvers_exceed_group",
            CatalogErrorKind::GroupEmpty => "group_empty",
            CatalogErrorKind::GroupMemberDuplicated => "group_member_duplicated",
            CatalogErrorKind::RiskTierUnknown => "risk_tier_unknown",
        }
    }
}

impl CatalogError {
    /// What kind of problem.
    pub fn kind(&self) -> CatalogErrorKind {
        self.kind
    }

    /// The message: the offending value in backticks and the rule.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(kind: CatalogErrorKind, message: impl Into<String>) -> CatalogError {
        CatalogError {
            kind,
            message: message.into(),
        }
    }
}

/// The catalog hash: blake3 of the exact text, hex.
pub fn catalog_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

impl Catalog {
    /// Parses and validates a catalog. The first problem found is reported.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        if text.len() > CATALOG_BYTES_MAX {
            return Err(CatalogError::new(
                CatalogErrorKind::TooLarge,
                format!(
                    "catalog is `{}` bytes: at most `{CATALOG_BYTES_MAX}` are allowed",
                    text.len()
                ),
            ));
        }
        let raw: RawCatalog = toml::from_str(text).map_err(|error| toml_error(text, &error))?;
        let groups = validate_groups(raw.groups)?;
        if raw.entitlements.len() > ENTITLEMENTS_MAX {
            return Err(CatalogError::new(
                CatalogErrorKind::TooLarge,
                format!(
                    "catalog has `{}` entitlements: at most `{ENTITLEMENTS_MAX}` are allowed",
                    raw.entitlements.len()
                ),
            ));
        }
        let mut entitlements = Vec::with_capacity(raw.entitlements.len());
        let mut index = BTreeMap::new();
        for raw_entitlement in raw.entitlements {
            let entitlement = validate_entitlement(raw_entitlement, &groups)?;
            if index.contains_key(&entitlement.id) {
                return Err(CatalogError::new(
                    CatalogErrorKind::EntitlementDuplicated,
                    format!(
                        "entitlement id `{}` is used twice: ids must be unique",
                        entitlement.id
                    ),
                ));
            }
            index.insert(entitlement.id.clone(), entitlements.len());
            entitlements.push(entitlement);
        }
        Ok(Catalog {
            hash: catalog_hash(text),
            groups,
            entitlements,
            index,
        })
    }

    /// blake3 of the exact text, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The entitlement with this id.
    pub fn entitlement(&self, id: &str) -> Option<&Entitlement> {
        self.index
            .get(id)
            .map(|&position| &self.entitlements[position])
    }

    /// Every entitlement, in catalog order.
    pub fn entitlements(&self) -> &[Entitlement] {
        &self.entitlements
    }

    /// The members of an approver group.
    pub fn group(&self, name: &str) -> Option<&[PrincipalId]> {
        self.groups.get(name).map(Vec::as_slice)
    }

    /// Every approver group and its members, by name.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &[PrincipalId])> {
        self.groups
            .iter()
            .map(|(name, members)| (name.as_str(), members.as_slice()))
    }
}

impl Entitlement {
    /// True when the entitlement allows this action.
    pub fn allows_action(&self, action: &str) -> bool {
        self.actions.iter().any(|allowed| allowed == action)
    }

    /// True when principals of this kind may ask for it.
    pub fn allows_kind(&self, kind: PrincipalKind) -> bool {
        self.principal_kinds.contains(&kind)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a catalog table")]
struct RawCatalog {
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "entitlement")]
    entitlements: Vec<RawEntitlement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an entitlement table")]
struct RawEntitlement {
    id: String,
    #[serde(default)]
    description: Option<String>,
    resource: String,
    actions: Vec<String>,
    ttl_default_s: i64,
    ttl_max_s: i64,
    principal_kinds: Vec<String>,
    // Read as a plain value and interpreted by hand: serde's untagged enums
    // would swallow the name of an unknown field inside the table.
    approval: toml::Value,
    #[serde(default)]
    ticket_required: bool,
    #[serde(default)]
    break_glass_ttl_max_s: Option<i64>,
    #[serde(default)]
    risk_tier: Option<String>,
    #[serde(default)]
    request_ttl_s: Option<i64>,
}

/// Turns toml's error into ours, keeping its message (which names the field
/// or value) and the line it points at.
fn toml_error(text: &str, error: &toml::de::Error) -> CatalogError {
    // serde names integer types as Rust does (`i64`); say what a catalog
    // author would.
    let message = error
        .message()
        .trim_end_matches('.')
        .replace("expected i64", "expected an integer");
    let kind = if message.starts_with("unknown field") {
        CatalogErrorKind::UnknownField
    } else if message.starts_with("missing field") {
        CatalogErrorKind::MissingField
    } else {
        CatalogErrorKind::Syntax
    };
    let message = match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    };
    CatalogError::new(kind, message)
}

/// A lowercase slug: `[a-z0-9]` then `[a-z0-9._:-]`, at most
/// [`ACTION_BYTES_MAX`] bytes. Entitlement ids, group names and actions are
/// slugs so they are safe in NATS subjects, metrics and file names.
fn slug_rule(value: &str) -> Option<&'static str> {
    let mut chars = value.chars();
    match chars.next() {
        None => Some("must not be empty"),
        Some(_) if value.len() > ACTION_BYTES_MAX => Some("must be at most 64 bytes"),
        Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
            Some("must start with a lowercase letter or a digit")
        }
        Some(_)
            if !chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | ':')
            }) =>
        {
            Some("may hold only lowercase letters, digits, `-`, `_`, `.` and `:`")
        }
        Some(_) => None,
    }
}

fn validate_groups(
    raw: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<PrincipalId>>, CatalogError> {
    let mut groups = BTreeMap::new();
    for (name, members) in raw {
        if let Some(rule) = slug_rule(&name) {
            return Err(CatalogError::new(
                CatalogErrorKind::IdInvalid,
                format!("group name `{name}` is invalid: {rule}"),
            ));
        }
        if members.is_empty() {
            return Err(CatalogError::new(
                CatalogErrorKind::GroupEmpty,
                format!("group `{name}` has no members: an approver group needs at least one"),
            ));
        }
        if members.len() > GROUP_MEMBERS_MAX {
            return Err(CatalogError::new(
                CatalogErrorKind::TooLarge,
                format!(
                    "group `{name}` has `{}` members: at most `{GROUP_MEMBERS_MAX}` are allowed",
                    members.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut valid = Vec::with_capacity(members.len());
        for member in members {
            let id = PrincipalId::new(member.as_str()).map_err(|error| {
                CatalogError::new(
                    CatalogErrorKind::IdInvalid,
                    format!("group `{name}`: {error}"),
                )
            })?;
            if !seen.insert(member.clone()) {
                return Err(CatalogError::new(
                    CatalogErrorKind::GroupMemberDuplicated,
                    format!(
                        "group `{name}` lists `{member}` twice: approvers must be distinct people"
                    ),
                ));
            }
            valid.push(id);
        }
        groups.insert(name, valid);
    }
    Ok(groups)
}

fn validate_ttl_s(id: &str, field: &str, value_s: i64) -> Result<i64, CatalogError> {
    if value_s <= 0 {
        return Err(CatalogError::new(
            CatalogErrorKind::TtlNotPositive,
            format!("entitlement `{id}`: {field} `{value_s}` must be positive"),
        ));
    }
    if value_s > TTL_S_CEILING {
        return Err(CatalogError::new(
            CatalogErrorKind::TtlAboveCeiling,
            format!(
                "entitlement `{id}`: {field} `{value_s}` is above the ceiling of `{TTL_S_CEILING}` seconds: there is no standing grant"
            ),
        ));
    }
    Ok(value_s * 1000)
}

fn validate_entitlement(
    raw: RawEntitlement,
    groups: &BTreeMap<String, Vec<PrincipalId>>,
) -> Result<Entitlement, CatalogError> {
    let id = raw.id;
    if let Some(rule) = slug_rule(&id) {
        return Err(CatalogError::new(
            CatalogErrorKind::IdInvalid,
            format!("entitlement id `{id}` is invalid: {rule}"),
        ));
    }
    let resource = ResourcePattern::parse(&raw.resource).map_err(|rule| {
        CatalogError::new(
            CatalogErrorKind::ResourcePatternInvalid,
            format!(
                "entitlement `{id}`: resource pattern `{}` is invalid: {rule}",
                raw.resource
            ),
        )
    })?;

    if raw.actions.is_empty() {
        return Err(CatalogError::new(
            CatalogErrorKind::ActionsEmpty,
            format!("entitlement `{id}`: actions must list at least one action"),
        ));
    }
    if raw.actions.len() > ENTITLEMENT_ACTIONS_MAX {
        return Err(CatalogError::new(
            CatalogErrorKind::TooLarge,
            format!(
                "entitlement `{id}`: `{}` actions listed, at most `{ENTITLEMENT_ACTIONS_MAX}` are allowed",
                raw.actions.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for action in &raw.actions {
        if let Some(rule) = slug_rule(action) {
            return Err(CatalogError::new(
                CatalogErrorKind::ActionInvalid,
                format!("entitlement `{id}`: action `{action}` is invalid: {rule}"),
            ));
        }
        if !seen.insert(action.as_str()) {
            return Err(CatalogError::new(
                CatalogErrorKind::ActionDuplicated,
                format!("entitlement `{id}`: action `{action}` is listed twice"),
            ));
        }
    }

    let ttl_default_ms = validate_ttl_s(&id, "ttl_default_s", raw.ttl_default_s)?;
    let ttl_max_ms = validate_ttl_s(&id, "ttl_max_s", raw.ttl_max_s)?;
    if ttl_default_ms > ttl_max_ms {
        return Err(CatalogError::new(
            CatalogErrorKind::TtlDefaultExceedsMax,
            format!(
                "entitlement `{id}`: ttl_default_s `{}` is above ttl_max_s `{}`",
                raw.ttl_default_s, raw.ttl_max_s
            ),
        ));
    }
    let break_glass_ttl_max_ms = match raw.break_glass_ttl_max_s {
        None => None,
        Some(value_s) => {
            let value_ms = validate_ttl_s(&id, "break_glass_ttl_max_s", value_s)?;
            if value_ms > ttl_max_ms {
                return Err(CatalogError::new(
                    CatalogErrorKind::BreakGlassTtlExceedsMax,
                    format!(
                        "entitlement `{id}`: break_glass_ttl_max_s `{value_s}` is above ttl_max_s `{}`: break-glass has a shorter cap",
                        raw.ttl_max_s
                    ),
                ));
            }
            Some(value_ms)
        }
    };

    let request_ttl_ms = raw
        .request_ttl_s
        .map(|value_s| validate_ttl_s(&id, "request_ttl_s", value_s))
        .transpose()?;

    if raw.principal_kinds.is_empty() {
        return Err(CatalogError::new(
            CatalogErrorKind::PrincipalKindsEmpty,
            format!("entitlement `{id}`: principal_kinds must list at least one kind"),
        ));
    }
    let mut principal_kinds = Vec::with_capacity(raw.principal_kinds.len());
    for name in &raw.principal_kinds {
        let kind: PrincipalKind = name.parse().map_err(|_| {
            CatalogError::new(
                CatalogErrorKind::PrincipalKindUnknown,
                format!(
                    "entitlement `{id}`: unknown principal kind `{name}`: expected `human`, `workload` or `agent`"
                ),
            )
        })?;
        if principal_kinds.contains(&kind) {
            return Err(CatalogError::new(
                CatalogErrorKind::PrincipalKindDuplicated,
                format!("entitlement `{id}`: principal kind `{name}` is listed twice"),
            ));
        }
        principal_kinds.push(kind);
    }

    let approval = validate_approval(&id, &raw.approval, groups)?;
    let risk_tier = match raw.risk_tier.as_deref() {
        None => None,
        Some("low") => Some(RiskTier::Low),
        Some("medium") => Some(RiskTier::Medium),
        Some("high") => Some(RiskTier::High),
        Some("critical") => Some(RiskTier::Critical),
        Some(other) => {
            return Err(CatalogError::new(
                CatalogErrorKind::RiskTierUnknown,
                format!(
                    "entitlement `{id}`: unknown risk tier `{other}`: expected `low`, `medium`, `high` or `critical`"
                ),
            ));
        }
    };

    Ok(Entitlement {
        id,
        description: raw.description,
        resource,
        actions: raw.actions,
        ttl_default_ms,
        ttl_max_ms,
        principal_kinds,
        approval,
        ticket_required: raw.ticket_required,
        break_glass_ttl_max_ms,
        risk_tier,
        request_ttl_ms,
    })
}

fn validate_approval(
    id: &str,
    value: &toml::Value,
    groups: &BTreeMap<String, Vec<PrincipalId>>,
) -> Result<ApprovalRule, CatalogError> {
    let invalid = |shown: String| {
        CatalogError::new(
            CatalogErrorKind::ApprovalInvalid,
            format!(
                "entitlement `{id}`: approval {shown} is invalid: expected `\"auto\"`, `\"deny\"` or `{{ approvers = N, group = \"name\" }}`"
            ),
        )
    };
    let table = match value {
        toml::Value::String(word) if word == "auto" => return Ok(ApprovalRule::Auto),
        toml::Value::String(word) if word == "deny" => return Ok(ApprovalRule::Deny),
        toml::Value::Table(table) => table,
        other => return Err(invalid(format!("`{other}`"))),
    };
    for key in table.keys() {
        if key != "approvers" && key != "group" {
            return Err(CatalogError::new(
                CatalogErrorKind::UnknownField,
                format!(
                    "entitlement `{id}`: unknown field `{key}` in approval, expected `approvers` or `group`"
                ),
            ));
        }
    }
    let approvers = match table.get("approvers") {
        Some(toml::Value::Integer(count)) => *count,
        Some(other) => return Err(invalid(format!("approvers `{other}`"))),
        None => {
            return Err(CatalogError::new(
                CatalogErrorKind::MissingField,
                format!("entitlement `{id}`: missing field `approvers` in approval"),
            ));
        }
    };
    let group = match table.get("group") {
        Some(toml::Value::String(group)) => group.clone(),
        Some(other) => return Err(invalid(format!("group `{other}`"))),
        None => {
            return Err(CatalogError::new(
                CatalogErrorKind::MissingField,
                format!("entitlement `{id}`: missing field `group` in approval"),
            ));
        }
    };
    let Some(members) = groups.get(&group) else {
        return Err(CatalogError::new(
            CatalogErrorKind::GroupUnknown,
            format!("entitlement `{id}`: approval names group `{group}`, which is not in [groups]"),
        ));
    };
    if approvers <= 0 {
        return Err(CatalogError::new(
            CatalogErrorKind::ApproversZero,
            format!("entitlement `{id}`: approvers `{approvers}` must be at least 1"),
        ));
    }
    // INVARIANT: group members are distinct (validate_groups), so the group
    // size is the number of distinct people who can approve.
    if approvers as u64 > members.len() as u64 {
        return Err(CatalogError::new(
            CatalogErrorKind::ApproversExceedGroup,
            format!(
                "entitlement `{id}`: approvers `{approvers}` is more than group `{group}` has members (`{}`)",
                members.len()
            ),
        ));
    }
    Ok(ApprovalRule::Approvers {
        approvers_required: approvers as u32,
        group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_valid_and_realistic() {
        let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
        assert!((8..=12).contains(&catalog.entitlements().len()));
        let groups: Vec<_> = catalog.groups().collect();
        assert!((3..=4).contains(&groups.len()));
        for (name, members) in groups {
            assert!((3..=5).contains(&members.len()), "group `{name}`");
        }
        assert_eq!(
            catalog.hash(),
            blake3::hash(DEFAULT_CATALOG.as_bytes()).to_hex().as_str()
        );
    }

    #[test]
    fn slugs_refuse_uppercase_and_symbols() {
        assert_eq!(slug_rule("db-read"), None);
        assert!(slug_rule("DB").is_some());
        assert!(slug_rule("-x").is_some());
        assert!(slug_rule("a b").is_some());
        assert!(slug_rule("").is_some());
    }
}
