//! Loading a Cedar policy set: parse, check the grantledger annotations,
//! validate in strict mode against the schema, hash.
//!
//! Every policy must carry `@id("...")`: Cedar would otherwise number
//! policies by position (`policy0`, `policy1`, ...), and inserting one policy
//! would rename every later one, so recorded decisions would name the wrong
//! policies after an edit.
//!
//! The annotations grantledger reads (any other annotation is refused, so a
//! misspelt `@stepup` is an error, not a silently plain permit):
//!
//! | annotation | on | meaning |
//! |---|---|---|
//! | `@id("db-write-in-window")` | every policy | its stable id, unique |
//! | `@step_up("2")` + `@group("dba")` | `permit` | satisfied, it allows only after N distinct approvers of the group |
//! | `@exception` | `permit` | satisfied, the request is outside its normal context: the catalog's exception rule applies |
//! | `@reason("outside_maintenance_window")` | `forbid` | the code recorded when it denies |
//! | `@description("...")` | any | for people; not interpreted |

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use cedar_policy::{Effect, Policy, PolicyId, ValidationMode, Validator};

use crate::error::{LoadError, LoadErrorKind};
use crate::schema::GrantledgerSchema;

/// The largest policy text accepted, in bytes.
pub const POLICY_TEXT_BYTES_MAX: usize = 1024 * 1024;
/// The most policies one set may hold.
pub const POLICIES_MAX: usize = 10_000;
/// The most approvers a `@step_up` may ask for.
pub const STEP_UP_APPROVERS_MAX: u32 = 16;
/// The longest policy id, reason code or group name, in bytes.
pub const POLICY_ID_BYTES_MAX: usize = 128;

/// The annotations grantledger understands.
const ANNOTATIONS_KNOWN: [&str; 6] = [
    "id",
    "step_up",
    "group",
    "exception",
    "reason",
    "description",
];

/// The domain tag of a policy-set hash, so the hash of a policy text can
/// never be confused with the hash of any other kind of text.
const POLICY_SET_HASH_CONTEXT: &str = "grantledger 2026 policy-set text v1";

/// How a satisfied `permit` policy allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermitKind {
    /// Allows at once (subject to the catalog).
    Plain,
    /// Allows once `approvers_required` distinct members of `group` approve.
    StepUp {
        /// How many distinct approvers.
        approvers_required: u32,
        /// The approver group (checked against the catalog by the engine).
        group: String,
    },
    /// Allows outside the normal context, under the catalog's exception rule.
    Exception,
}

/// What grantledger read from one policy's annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The `@id`.
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// For a permit, how it allows; `None` for a forbid.
    pub permit: Option<PermitKind>,
    /// For a forbid, the `@reason` code it records.
    pub reason: Option<String>,
}

/// A parsed, annotated, validated Cedar policy set and the hash of its text.
#[derive(Clone, Debug)]
pub struct PolicySet {
    text: String,
    hash: String,
    set: cedar_policy::PolicySet,
    // INVARIANT: one entry per policy of `set`, keyed by its id.
    info: BTreeMap<String, PolicyInfo>,
}

/// The hash decisions cite for a policy text: blake3 in derive-key mode with
/// a grantledger domain tag, over the exact bytes, as lowercase hex.
pub fn policy_set_hash(text: &str) -> String {
    blake3::Hasher::new_derive_key(POLICY_SET_HASH_CONTEXT)
        .update(text.as_bytes())
        .finalize()
        .to_hex()
        .to_string()
}

impl PolicySet {
    /// Parses `text`, checks the annotations, and validates every policy in
    /// strict mode against `schema`. The first problem refuses the whole set:
    /// nothing is half-loaded. Validation warnings (an impossible policy,
    /// confusable characters) refuse it too: a policy that can never match
    /// is a mistake in a security rule.
    pub fn parse(text: &str, schema: &GrantledgerSchema) -> Result<PolicySet, LoadError> {
        if text.len() > POLICY_TEXT_BYTES_MAX {
            return Err(LoadError::new(
                LoadErrorKind::TooLarge,
                format!(
                    "policy text is `{}` bytes: at most `{POLICY_TEXT_BYTES_MAX}` are allowed",
                    text.len()
                ),
            ));
        }
        let parsed = match cedar_policy::PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(errors) => return Err(locate_parse_error(text, &errors.to_string())),
        };
        if parsed.num_of_templates() > 0 {
            return Err(LoadError::new(
                LoadErrorKind::PolicyInvalid,
                "policy templates (`?principal`, `?resource`) are not supported: write static policies",
            ));
        }
        let count = parsed.policies().count();
        if count > POLICIES_MAX {
            return Err(LoadError::new(
                LoadErrorKind::TooLarge,
                format!("policy set has `{count}` policies: at most `{POLICIES_MAX}` are allowed"),
            ));
        }
        // Cedar numbers policies in text order; keep that order for the
        // messages, so the first problem in the file is the one reported.
        let mut positional: Vec<&Policy> = parsed.policies().collect();
        positional.sort_by_key(|policy| {
            policy
                .id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let mut set = cedar_policy::PolicySet::new();
        let mut info = BTreeMap::new();
        for (position, policy) in positional.into_iter().enumerate() {
            let policy_info = read_annotations(position, policy)?;
            let renamed = policy.new_id(PolicyId::new(&policy_info.id));
            if info.contains_key(&policy_info.id) {
                return Err(LoadError::for_policy(
                    LoadErrorKind::PolicyIdDuplicated,
                    &policy_info.id,
                    format!(
                        "policy id `{}` is used twice: `@id` values must be unique",
                        policy_info.id
                    ),
                ));
            }
            set.add(renamed).map_err(|error| {
                LoadError::for_policy(
                    LoadErrorKind::PolicyInvalid,
                    &policy_info.id,
                    format!("policy `{}`: {error}", policy_info.id),
                )
            })?;
            info.insert(policy_info.id.clone(), policy_info);
        }

        let validator = Validator::new(schema.cedar().clone());
        let result = validator.validate(&set, ValidationMode::Strict);
        if let Some(error) = result.validation_errors().next() {
            let id = error.policy_id().to_string();
            return Err(LoadError::for_policy(
                LoadErrorKind::PolicyInvalid,
                &id,
                format!("policy `{id}` does not validate against the schema: {error}"),
            ));
        }
        if let Some(warning) = result.validation_warnings().next() {
            let id = warning.policy_id().to_string();
            return Err(LoadError::for_policy(
                LoadErrorKind::PolicyInvalid,
                &id,
                format!("policy `{id}` is refused on a validation warning: {warning}"),
            ));
        }
        Ok(PolicySet {
            text: text.to_string(),
            hash: policy_set_hash(text),
            set,
            info,
        })
    }

    /// The exact text loaded.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// [`policy_set_hash`] of the text.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// True when the set holds no policy (every request is then denied with
    /// `no_permit_matched`).
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// What grantledger read from each policy, by id.
    pub fn policies(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.info.values()
    }

    /// The policy with this id.
    pub fn policy(&self, id: &str) -> Option<&PolicyInfo> {
        self.info.get(id)
    }

    /// The Cedar policy set, with every policy renamed to its `@id`.
    pub fn cedar(&self) -> &cedar_policy::PolicySet {
        &self.set
    }
}

/// A policy id, group name or reason code: non-empty, at most
/// [`POLICY_ID_BYTES_MAX`] bytes, only `[A-Za-z0-9._:-]`, so it is safe in
/// logs, subjects and file names.
fn label_rule(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > POLICY_ID_BYTES_MAX {
        Some("must be at most 128 bytes")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        Some("may hold only letters, digits, `-`, `_`, `.` and `:`")
    } else {
        None
    }
}

fn read_annotations(position: usize, policy: &Policy) -> Result<PolicyInfo, LoadError> {
    let Some(id) = policy.annotation("id") else {
        return Err(LoadError::new(
            LoadErrorKind::PolicyIdMissing,
            format!(
                "policy number {} (counting from 1) has no `@id(\"...\")` annotation: every policy needs a stable id, decisions cite it",
                position + 1
            ),
        ));
    };
    let id = id.to_string();
    if let Some(rule) = label_rule(&id) {
        return Err(LoadError::for_policy(
            LoadErrorKind::AnnotationInvalid,
            &id,
            format!("policy id `{id}` is invalid: {rule}"),
        ));
    }
    let invalid = |message: String| {
        LoadError::for_policy(
            LoadErrorKind::AnnotationInvalid,
            &id,
            format!("policy `{id}`: {message}"),
        )
    };
    let names: BTreeSet<&str> = policy.annotations().map(|(key, _)| key).collect();
    if let Some(unknown) = names.iter().find(|name| !ANNOTATIONS_KNOWN.contains(name)) {
        return Err(invalid(format!(
            "unknown annotation `@{unknown}`: expected one of `@id`, `@step_up`, `@group`, `@exception`, `@reason`, `@description`"
        )));
    }
    let effect = policy.effect();
    let step_up = policy.annotation("step_up");
    let group = policy.annotation("group");
    let exception = policy.annotation("exception");
    let reason = policy.annotation("reason");
    if effect == Effect::Forbid {
        for (name, present) in [
            ("step_up", step_up.is_some()),
            ("group", group.is_some()),
            ("exception", exception.is_some()),
        ] {
            if present {
                return Err(invalid(format!(
                    "`@{name}` belongs on a `permit`: a `forbid` always denies"
                )));
            }
        }
        let reason = match reason {
            None => None,
            Some(code) => {
                if let Some(rule) = label_rule(code) {
                    return Err(invalid(format!("`@reason(\"{code}\")` is invalid: {rule}")));
                }
                Some(code.to_string())
            }
        };
        return Ok(PolicyInfo {
            id,
            effect,
            permit: None,
            reason,
        });
    }
    if reason.is_some() {
        return Err(invalid(
            "`@reason` belongs on a `forbid`: a permit is cited by its id".to_string(),
        ));
    }
    let permit = match (step_up, group, exception) {
        (None, None, None) => PermitKind::Plain,
        (None, None, Some("")) => PermitKind::Exception,
        (None, None, Some(value)) => {
            return Err(invalid(format!(
                "`@exception` takes no value, found `\"{value}\"`"
            )));
        }
        (Some(_), _, Some(_)) => {
            return Err(invalid(
                "`@exception` and `@step_up` do not combine: the catalog gives the exception rule"
                    .to_string(),
            ));
        }
        (Some(count), Some(group), None) => {
            let approvers_required = match count.parse::<u32>() {
                Ok(n) if (1..=STEP_UP_APPROVERS_MAX).contains(&n) => n,
                _ => {
                    return Err(invalid(format!(
                        "`@step_up(\"{count}\")` must be a whole number from 1 to {STEP_UP_APPROVERS_MAX}"
                    )));
                }
            };
            if let Some(rule) = label_rule(group) {
                return Err(invalid(format!("`@group(\"{group}\")` is invalid: {rule}")));
            }
            PermitKind::StepUp {
                approvers_required,
                group: group.to_string(),
            }
        }
        (Some(_), None, None) => {
            return Err(invalid(
                "`@step_up` needs `@group(\"...\")`: the approvers come from a catalog group"
                    .to_string(),
            ));
        }
        (None, Some(_), _) => {
            return Err(invalid(
                "`@group` without `@step_up`: say how many approvers".to_string(),
            ));
        }
    };
    Ok(PolicyInfo {
        id,
        effect,
        permit: Some(permit),
        reason: None,
    })
}

/// Finds which policy a parse error is in, so the message can name it:
/// splits the text into statements (at `;` outside strings and comments),
/// parses them one by one, and reports the first that fails with its `@id`
/// (or its position and line when it has none) and Cedar's message for it.
/// Falls back to Cedar's message for the whole text.
fn locate_parse_error(text: &str, whole_message: &str) -> LoadError {
    for statement in split_statements(text) {
        if statement.text.trim().is_empty() {
            continue;
        }
        if let Err(errors) = Policy::parse(None, statement.text) {
            let id = find_id_annotation(statement.text);
            let message = format!(
                "{} (line {}) does not parse: {errors}",
                match &id {
                    Some(id) => format!("policy `{id}`"),
                    None => format!("policy number {}", statement.position + 1),
                },
                statement.line
            );
            return match id {
                Some(id) => LoadError::for_policy(LoadErrorKind::PolicySyntax, &id, message),
                None => LoadError::new(LoadErrorKind::PolicySyntax, message),
            };
        }
    }
    LoadError::new(
        LoadErrorKind::PolicySyntax,
        format!("policy text does not parse: {whole_message}"),
    )
}

struct Statement<'a> {
    text: &'a str,
    position: usize,
    line: usize,
}

/// Splits Cedar text at top-level `;`, keeping the `;`. `line` is the line
/// of the statement's first character that is not blank or a comment.
fn split_statements(text: &str) -> Vec<Statement<'_>> {
    let bytes = text.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut index = 0;
    let mut in_string = false;
    let mut first_code: Option<usize> = None;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            if byte == b'\\' {
                index += 1;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'/' && bytes.get(index + 1) == Some(&b'/') {
            while index < bytes.len() && bytes[index] != b'\n' {
                index += 1;
            }
            continue;
        } else {
            if !byte.is_ascii_whitespace() && first_code.is_none() {
                first_code = Some(index);
            }
            if byte == b'"' {
                in_string = true;
            } else if byte == b';' {
                let code_at = first_code.unwrap_or(start);
                statements.push(Statement {
                    text: &text[start..=index],
                    position: statements.len(),
                    line: text[..code_at].matches('\n').count() + 1,
                });
                start = index + 1;
                first_code = None;
            }
        }
        index += 1;
    }
    if let Some(code_at) = first_code {
        statements.push(Statement {
            text: &text[start..],
            position: statements.len(),
            line: text[..code_at].matches('\n').count() + 1,
        });
    }
    statements
}

/// The value of the first `@id("...")` in a statement, read naively (the
/// statement did not parse, so Cedar cannot tell us).
fn find_id_annotation(statement: &str) -> Option<String> {
    let after = &statement[statement.find("@id")? + 3..];
    let after = after.trim_start().strip_prefix('(')?.trim_start();
    let after = after.strip_prefix('"')?;
    let end = after.find('"')?;
    Some(after[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_strings_and_comments() {
        let text = "// a; comment\n@id(\"a;b\")\npermit(principal, action, resource);\n\n@id(\"c\") forbid(principal, action, resource) when { \"x;\" == \"y\" };";
        let statements = split_statements(text);
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0].line, 2);
        assert_eq!(statements[1].line, 5);
        assert_eq!(
            find_id_annotation(statements[0].text).as_deref(),
            Some("a;b")
        );
        assert_eq!(find_id_annotation(statements[1].text).as_deref(), Some("c"));
    }

    #[test]
    fn the_hash_is_domain_separated_and_covers_every_byte() {
        let text = "@id(\"a\") permit(principal, action, resource);";
        assert_ne!(
            policy_set_hash(text),
            blake3::hash(text.as_bytes()).to_hex().to_string()
        );
        assert_ne!(policy_set_hash(text), policy_set_hash(&format!("{text} ")));
        assert_eq!(policy_set_hash(text), policy_set_hash(text));
        assert_eq!(policy_set_hash(text).len(), 64);
    }
}
