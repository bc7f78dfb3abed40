//! The caller-supplied part of a request's Cedar context, typed.
//!
//! The engine adds the rest itself (time, actions, TTL, ticket,
//! justification, break-glass reason), so a caller cannot make a request
//! look earlier, shorter or better justified than it is.
//!
//! From JSON or TOML, every field is checked by name: an unknown field, a
//! value of the wrong type or out of range is a [`PolicyError`] naming the
//! field, what was expected and what was found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{PolicyError, PolicyErrorKind};

/// The longest string accepted in a context value, in bytes.
pub const CONTEXT_TEXT_BYTES_MAX: usize = 1024;
/// The most audience values a workload identity may carry.
pub const AUDIENCES_MAX: usize = 16;
/// The highest risk score.
pub const RISK_SCORE_MAX: i64 = 100;

/// What the intake channel knows about the request's situation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, Value>", into = "BTreeMap<String, Value>")]
pub struct RequestContext {
    /// Inside a maintenance window of the target system.
    pub in_maintenance_window: bool,
    /// From a managed, compliant device.
    pub device_managed: bool,
    /// The requester is on call now.
    pub on_call: bool,
    /// A change record id.
    pub change_record: Option<String>,
    /// An incident id.
    pub incident: Option<String>,
    /// 0 (no risk) to 100; `None` when no risk engine scored the request.
    pub risk_score: Option<i64>,
    /// Verified workload identity claims.
    pub workload_identity: Option<WorkloadIdentity>,
    /// The task an agent or job asks access for.
    pub task: Option<Task>,
}

/// The verified claims of a workload identity token, as Cedar sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadIdentity {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`, sorted and distinct.
    pub audience: Vec<String>,
    /// The SPIFFE ID, when `sub` is one.
    pub spiffe_id: Option<String>,
    /// The SPIFFE trust domain.
    pub trust_domain: Option<String>,
}

/// One agent or job task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The task id.
    pub id: String,
    /// What it is for.
    pub purpose: String,
    /// The tool called, when named.
    pub tool: Option<String>,
}

impl RequestContext {
    /// Reads a context from JSON values by field name, checking every type.
    pub fn from_map(map: &BTreeMap<String, Value>) -> Result<RequestContext, PolicyError> {
        let mut context = RequestContext::default();
        for (name, value) in map {
            let field = format!("context.{name}");
            match name.as_str() {
                "in_maintenance_window" => context.in_maintenance_window = bool_of(&field, value)?,
                "device_managed" => context.device_managed = bool_of(&field, value)?,
                "on_call" => context.on_call = bool_of(&field, value)?,
                "change_record" => context.change_record = Some(string_of(&field, value)?),
                "incident" => context.incident = Some(string_of(&field, value)?),
                "risk_score" => {
                    let score = long_of(&field, value)?;
                    if !(0..=RISK_SCORE_MAX).contains(&score) {
                        return Err(PolicyError::for_field(
                            PolicyErrorKind::ContextValueOutOfRange,
                            &field,
                            format!(
                                "`{field}` is `{score}`: a risk score is from 0 to {RISK_SCORE_MAX}"
                            ),
                        ));
                    }
                    context.risk_score = Some(score);
                }
                "workload_identity" => {
                    context.workload_identity = Some(workload_identity_of(&field, value)?)
                }
                "task" => context.task = Some(task_of(&field, value)?),
                _ => {
                    return Err(PolicyError::for_field(
                        PolicyErrorKind::ContextFieldUnknown,
                        &field,
                        format!(
                            "unknown context field `{name}`: expected one of `in_maintenance_window`, `device_managed`, `on_call`, `change_record`, `incident`, `risk_score`, `workload_identity`, `task` (the engine sets the time, actions, TTL, ticket and justification itself)"
                        ),
                    ));
                }
            }
        }
        Ok(context)
    }

    /// The context as JSON values, by field name; absent optional fields are
    /// left out.
    pub fn to_map(&self) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        map.insert(
            "in_maintenance_window".into(),
            Value::Bool(self.in_maintenance_window),
        );
        map.insert("device_managed".into(), Value::Bool(self.device_managed));
        map.insert("on_call".into(), Value::Bool(self.on_call));
        if let Some(value) = &self.change_record {
            map.insert("change_record".into(), Value::String(value.clone()));
        }
        if let Some(value) = &self.incident {
            map.insert("incident".into(), Value::String(value.clone()));
        }
        if let Some(value) = self.risk_score {
            map.insert("risk_score".into(), Value::from(value));
        }
        if let Some(identity) = &self.workload_identity {
            let mut record = serde_json::Map::new();
            record.insert("issuer".into(), Value::String(identity.issuer.clone()));
            record.insert("subject".into(), Value::String(identity.subject.clone()));
            record.insert(
                "audience".into(),
                Value::Array(
                    identity
                        .audience
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect(),
                ),
            );
            if let Some(value) = &identity.spiffe_id {
                record.insert("spiffe_id".into(), Value::String(value.clone()));
            }
            if let Some(value) = &identity.trust_domain {
                record.insert("trust_domain".into(), Value::String(value.clone()));
            }
            map.insert("workload_identity".into(), Value::Object(record));
        }
        if let Some(task) = &self.task {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), Value::String(task.id.clone()));
            record.insert("purpose".into(), Value::String(task.purpose.clone()));
            if let Some(tool) = &task.tool {
                record.insert("tool".into(), Value::String(tool.clone()));
            }
            map.insert("task".into(), Value::Object(record));
        }
        map
    }
}

impl TryFrom<BTreeMap<String, Value>> for RequestContext {
    type Error = PolicyError;

    fn try_from(map: BTreeMap<String, Value>) -> Result<RequestContext, PolicyError> {
        RequestContext::from_map(&map)
    }
}

impl From<RequestContext> for BTreeMap<String, Value> {
    fn from(context: RequestContext) -> BTreeMap<String, Value> {
        context.to_map()
    }
}

/// The name of a JSON value's type, as a policy author would say it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_i64() => "an integer",
        Value::Number(_) => "a number with a fraction or out of range",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a record",
    }
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        format!("{}...", text.chars().take(77).collect::<String>())
    } else {
        text
    }
}

fn wrong_type(field: &str, expected: &str, value: &Value) -> PolicyError {
    PolicyError::for_field(
        PolicyErrorKind::ContextValueWrongType,
        field,
        format!(
            "`{field}` must be {expected}, found {} `{}`",
            type_name(value),
            shown(value)
        ),
    )
}

fn bool_of(field: &str, value: &Value) -> Result<bool, PolicyError> {
    value
        .as_bool()
        .ok_or_else(|| wrong_type(field, "a boolean", value))
}

fn long_of(field: &str, value: &Value) -> Result<i64, PolicyError> {
    value
        .as_i64()
        .ok_or_else(|| wrong_type(field, "an integer", value))
}

fn string_of(field: &str, value: &Value) -> Result<String, PolicyError> {
    let text = value
        .as_str()
        .ok_or_else(|| wrong_type(field, "a string", value))?;
    check_text(field, text)?;
    Ok(text.to_string())
}

/// Bounds free text and refuses control characters, which could forge
/// lines in logs and evidence.
pub(crate) fn check_text(field: &str, text: &str) -> Result<(), PolicyError> {
    if text.len() > CONTEXT_TEXT_BYTES_MAX {
        return Err(PolicyError::for_field(
            PolicyErrorKind::InputExceedsBound,
            field,
            format!(
                "`{field}` is `{}` bytes long: at most `{CONTEXT_TEXT_BYTES_MAX}` are allowed",
                text.len()
            ),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(PolicyError::for_field(
            PolicyErrorKind::ContextValueOutOfRange,
            field,
            format!("`{field}` holds a control character: free text must be printable"),
        ));
    }
    Ok(())
}

fn record_of<'a>(
    field: &str,
    value: &'a Value,
    known: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, PolicyError> {
    let record = value
        .as_object()
        .ok_or_else(|| wrong_type(field, "a record", value))?;
    if let Some(unknown) = record.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(PolicyError::for_field(
            PolicyErrorKind::ContextFieldUnknown,
            &format!("{field}.{unknown}"),
            format!(
                "unknown field `{unknown}` in `{field}`: expected {}",
                known
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(record)
}

fn required<'a>(
    field: &str,
    record: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a Value, PolicyError> {
    record.get(name).ok_or_else(|| {
        PolicyError::for_field(
            PolicyErrorKind::RequestMalformed,
            &format!("{field}.{name}"),
            format!("`{field}` is missing its required field `{name}`"),
        )
    })
}

fn optional_string(
    field: &str,
    record: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, PolicyError> {
    record
        .get(name)
        .map(|value| string_of(&format!("{field}.{name}"), value))
        .transpose()
}

fn workload_identity_of(field: &str, value: &Value) -> Result<WorkloadIdentity, PolicyError> {
    let record = record_of(
        field,
        value,
        &["issuer", "subject", "audience", "spiffe_id", "trust_domain"],
    )?;
    let audience_field = format!("{field}.audience");
    let audience_value = required(field, record, "audience")?;
    let items = audience_value
        .as_array()
        .ok_or_else(|| wrong_type(&audience_field, "a list of strings", audience_value))?;
    if items.len() > AUDIENCES_MAX {
        return Err(PolicyError::for_field(
            PolicyErrorKind::InputExceedsBound,
            &audience_field,
            format!(
                "`{audience_field}` has `{}` values: at most `{AUDIENCES_MAX}` are allowed",
                items.len()
            ),
        ));
    }
    let mut audience = items
        .iter()
        .map(|item| string_of(&audience_field, item))
        .collect::<Result<Vec<_>, _>>()?;
    audience.sort_unstable();
    audience.dedup();
    Ok(WorkloadIdentity {
        issuer: string_of(
            &format!("{field}.issuer"),
            required(field, record, "issuer")?,
        )?,
        subject: string_of(
            &format!("{field}.subject"),
            required(field, record, "subject")?,
        )?,
        audience,
        spiffe_id: optional_string(field, record, "spiffe_id")?,
        trust_domain: optional_string(field, record, "trust_domain")?,
    })
}

fn task_of(field: &str, value: &Value) -> Result<Task, PolicyError> {
    let record = record_of(field, value, &["id", "purpose", "tool"])?;
    Ok(Task {
        id: string_of(&format!("{field}.id"), required(field, record, "id")?)?,
        purpose: string_of(
            &format!("{field}.purpose"),
            required(field, record, "purpose")?,
        )?,
        tool: optional_string(field, record, "tool")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_full_context_round_trips_through_its_map() {
        let input = map(json!({
            "in_maintenance_window": true, "device_managed": true, "on_call": false,
            "change_record": "CHG-1", "incident": "INC-7", "risk_score": 12,
            "workload_identity": {"issuer": "https://id", "subject": "spiffe://acme/ci",
                "audience": ["b", "a", "b"], "spiffe_id": "spiffe://acme/ci", "trust_domain": "acme"},
            "task": {"id": "t-1", "purpose": "fix the build", "tool": "git"}
        }));
        let context = RequestContext::from_map(&input).unwrap();
        assert_eq!(
            context.workload_identity.as_ref().unwrap().audience,
            vec!["a", "b"]
        );
        assert_eq!(
            RequestContext::from_map(&context.to_map()).unwrap(),
            context
        );
    }

    #[test]
    fn wrong_types_name_the_field_the_expectation_and_the_value() {
        let rows = [
            (
                json!({"risk_score": "high"}),
                "context.risk_score",
                PolicyErrorKind::ContextValueWrongType,
                "must be an integer, found a string `\"high\"`",
            ),
            (
                json!({"device_managed": 1}),
                "context.device_managed",
                PolicyErrorKind::ContextValueWrongType,
                "must be a boolean, found an integer `1`",
            ),
            (
                json!({"risk_score": 101}),
                "context.risk_score",
                PolicyErrorKind::ContextValueOutOfRange,
                "from 0 to 100",
            ),
            (
                json!({"task": {"id": "t", "purpose": 3}}),
                "context.task.purpose",
                PolicyErrorKind::ContextValueWrongType,
                "must be a string, found an integer `3`",
            ),
            (
                json!({"task": {"id": "t"}}),
                "context.task.purpose",
                PolicyErrorKind::RequestMalformed,
                "missing its required field `purpose`",
            ),
            (
                json!({"task": {"id": "t", "purpose": "p", "owner": "x"}}),
                "context.task.owner",
                PolicyErrorKind::ContextFieldUnknown,
                "unknown field `owner`",
            ),
            (
                json!({"now_ms": 5}),
                "context.now_ms",
                PolicyErrorKind::ContextFieldUnknown,
                "the engine sets the time",
            ),
            (
                json!({"change_record": "a\nb"}),
                "context.change_record",
                PolicyErrorKind::ContextValueOutOfRange,
                "control character",
            ),
            (
                json!({"workload_identity": {"issuer": "i", "subject": "s", "audience": "a"}}),
                "context.workload_identity.audience",
                PolicyErrorKind::ContextValueWrongType,
                "must be a list of strings",
            ),
        ];
        for (input, field, kind, fragment) in rows {
            let error = RequestContext::from_map(&map(input.clone())).unwrap_err();
            assert_eq!(error.kind(), kind, "{input}: {error}");
            assert_eq!(error.field(), Some(field), "{input}: {error}");
            assert!(error.message().contains(fragment), "{input}: {error}");
        }
    }
}
