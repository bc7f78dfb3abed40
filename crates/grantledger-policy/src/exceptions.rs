//! Time-boxed exceptions: the catalog-side rules for requests beyond an
//! entitlement's normal terms.
//!
//! `grantledger-core`'s catalog has no field for them (and refuses unknown
//! fields), so they live in a companion file next to the catalog until the
//! catalog format absorbs them:
//!
//! ```toml
//! [[exception]]
//! entitlement = "db-prod-write"     # a catalog entitlement, at most one rule each
//! ttl_normal_max_s = 3600           # optional: a TTL above this (and up to the
//!                                   # entry's ttl_max_s, the hard cap) is an exception
//! approval = { approvers = 2, group = "dba" }   # or "deny"
//! ```
//!
//! A request is an exception when it asks for a TTL above `ttl_normal_max_s`
//! (never above the hard cap: that is denied outright), or when the only
//! permits it satisfies are `@exception` policies (it is outside the normal
//! context the other permits describe). An exception needs the stricter of
//! its entry's normal rule and this `approval`; an entitlement without a
//! rule here has no exceptions (such a request is denied with
//! `exception_rule_missing`). Exceptions always expire: the grant's TTL is
//! the requested one, never above the hard cap.

use std::collections::BTreeMap;

use grantledger_core::{ApprovalRule, Catalog};
use serde::Deserialize;

use crate::error::{LoadError, LoadErrorKind};

/// The largest exception file accepted, in bytes.
pub const EXCEPTIONS_BYTES_MAX: usize = 1024 * 1024;

const EXCEPTIONS_HASH_CONTEXT: &str = "grantledger 2026 exception rules text v1";

/// The exception rule of one entitlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionRule {
    /// A TTL above this is an exception; equal to the entry's `ttl_max_ms`
    /// when the file does not set it (no TTL exceptions).
    pub ttl_normal_max_ms: i64,
    /// The approval an exception needs (never `Auto`).
    pub approval: ApprovalRule,
}

/// Every exception rule, validated against one catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionRules {
    hash: Option<String>,
    rules: BTreeMap<String, ExceptionRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "exception")]
    exceptions: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    entitlement: String,
    #[serde(default)]
    ttl_normal_max_s: Option<i64>,
    approval: toml::Value,
}

/// The hash decisions cite for an exception file: blake3 in derive-key
/// mode with its own domain tag, over the exact bytes, hex.
pub fn exceptions_hash(text: &str) -> String {
    blake3::Hasher::new_derive_key(EXCEPTIONS_HASH_CONTEXT)
        .update(text.as_bytes())
        .finalize()
        .to_hex()
        .to_string()
}

impl ExceptionRules {
    /// No exception rules: every entitlement has none.
    pub fn none() -> ExceptionRules {
        ExceptionRules {
            hash: None,
            rules: BTreeMap::new(),
        }
    }

    /// Parses and validates an exception file against `catalog`. The first
    /// problem refuses the whole file.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<ExceptionRules, LoadError> {
        let invalid = |message: String| LoadError::new(LoadErrorKind::ExceptionsInvalid, message);
        if text.len() > EXCEPTIONS_BYTES_MAX {
            return Err(LoadError::new(
                LoadErrorKind::TooLarge,
                format!(
                    "exception file is `{}` bytes: at most `{EXCEPTIONS_BYTES_MAX}` are allowed",
                    text.len()
                ),
            ));
        }
        let raw: RawFile = toml::from_str(text).map_err(|error| {
            invalid(format!(
                "exception file: {}",
                error.message().trim_end_matches('.')
            ))
        })?;
        let mut rules = BTreeMap::new();
        for rule in raw.exceptions {
            let id = rule.entitlement;
            let Some(entry) = catalog.entitlement(&id) else {
                return Err(invalid(format!(
                    "exception for entitlement `{id}`: the catalog has no such entitlement"
                )));
            };
            if rules.contains_key(&id) {
                return Err(invalid(format!(
                    "entitlement `{id}` has two exception rules: at most one is allowed"
                )));
            }
            let ttl_normal_max_ms = match rule.ttl_normal_max_s {
                None => entry.ttl_max_ms,
                Some(seconds) => {
                    let ms = seconds.saturating_mul(1000);
                    if ms < entry.ttl_default_ms || ms >= entry.ttl_max_ms {
                        return Err(invalid(format!(
                            "exception for `{id}`: ttl_normal_max_s `{seconds}` must be at least the entry's ttl_default_s `{}` and below its ttl_max_s `{}` (the hard cap)",
                            entry.ttl_default_ms / 1000,
                            entry.ttl_max_ms / 1000
                        )));
                    }
                    ms
                }
            };
            let approval = match &rule.approval {
                toml::Value::String(word) if word == "deny" => ApprovalRule::Deny,
                toml::Value::Table(table) => {
                    if let Some(key) = table
                        .keys()
                        .find(|key| *key != "approvers" && *key != "group")
                    {
                        return Err(invalid(format!(
                            "exception for `{id}`: unknown field `{key}` in approval, expected `approvers` or `group`"
                        )));
                    }
                    let approvers = table.get("approvers").and_then(toml::Value::as_integer);
                    let group = table.get("group").and_then(toml::Value::as_str);
                    let (Some(approvers), Some(group)) = (approvers, group) else {
                        return Err(invalid(format!(
                            "exception for `{id}`: approval must be `\"deny\"` or `{{ approvers = N, group = \"name\" }}`"
                        )));
                    };
                    let Some(members) = catalog.group(group) else {
                        return Err(invalid(format!(
                            "exception for `{id}`: approval names group `{group}`, which is not in the catalog's [groups]"
                        )));
                    };
                    if approvers < 1 || approvers as u64 > members.len() as u64 {
                        return Err(invalid(format!(
                            "exception for `{id}`: approvers `{approvers}` must be from 1 to the size of group `{group}` (`{}`)",
                            members.len()
                        )));
                    }
                    ApprovalRule::Approvers {
                        approvers_required: approvers as u32,
                        group: group.to_string(),
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "exception for `{id}`: approval `{other}` is invalid: expected `\"deny\"` or `{{ approvers = N, group = \"name\" }}` (an exception is never automatic)"
                    )));
                }
            };
            rules.insert(
                id,
                ExceptionRule {
                    ttl_normal_max_ms,
                    approval,
                },
            );
        }
        Ok(ExceptionRules {
            hash: Some(exceptions_hash(text)),
            rules,
        })
    }

    /// [`exceptions_hash`] of the text, or `None` for [`ExceptionRules::none`].
    pub fn hash(&self) -> Option<&str> {
        self.hash.as_deref()
    }

    /// The rule of one entitlement.
    pub fn rule(&self, entitlement: &str) -> Option<&ExceptionRule> {
        self.rules.get(entitlement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::parse(grantledger_core::DEFAULT_CATALOG).unwrap()
    }

    #[test]
    fn a_valid_file_is_read_and_defaults_to_no_ttl_band() {
        let text = "[[exception]]\nentitlement = \"db-prod-write\"\nttl_normal_max_s = 3600\napproval = { approvers = 3, group = \"dba\" }\n\n[[exception]]\nentitlement = \"logs-prod-read\"\napproval = \"deny\"\n";
        let rules = ExceptionRules::parse(text, &catalog()).unwrap();
        assert_eq!(
            rules.rule("db-prod-write").unwrap().ttl_normal_max_ms,
            3_600_000
        );
        assert_eq!(
            rules.rule("logs-prod-read").unwrap().ttl_normal_max_ms,
            43_200_000
        );
        assert_eq!(
            rules.rule("logs-prod-read").unwrap().approval,
            ApprovalRule::Deny
        );
        assert!(rules.rule("repo-read").is_none());
        assert_eq!(rules.hash(), Some(exceptions_hash(text).as_str()));
    }

    #[test]
    fn bad_rules_name_the_value_and_the_rule() {
        let rows = [
            (
                "[[exception]]\nentitlement = \"nope\"\napproval = \"deny\"",
                "`nope`: the catalog has no such entitlement",
            ),
            (
                "[[exception]]\nentitlement = \"db-prod-write\"\nttl_normal_max_s = 7200\napproval = \"deny\"",
                "ttl_normal_max_s `7200` must be",
            ),
            (
                "[[exception]]\nentitlement = \"db-prod-write\"\napproval = \"auto\"",
                "never automatic",
            ),
            (
                "[[exception]]\nentitlement = \"db-prod-write\"\napproval = { approvers = 9, group = \"dba\" }",
                "approvers `9` must be from 1 to the size of group `dba`",
            ),
            (
                "[[exception]]\nentitlement = \"db-prod-write\"\napproval = { approvers = 1, group = \"ghosts\" }",
                "group `ghosts`",
            ),
            (
                "[[exception]]\nentitlement = \"db-prod-write\"\napproval = \"deny\"\n[[exception]]\nentitlement = \"db-prod-write\"\napproval = \"deny\"",
                "two exception rules",
            ),
            (
                "[[exception]]\nentitlement = \"db-prod-write\"\napproval = \"deny\"\nttl = 3",
                "unknown field `ttl`",
            ),
        ];
        for (text, fragment) in rows {
            let error = ExceptionRules::parse(text, &catalog()).unwrap_err();
            assert_eq!(error.kind(), LoadErrorKind::ExceptionsInvalid, "{text}");
            assert!(error.message().contains(fragment), "{text}: {error}");
        }
    }
}
