//! The policy engine on the ledger's decision path: building it from what
//! the log has in force, turning a request into the engine's input, and the
//! engine's decision into what the core records.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use grantledger_core::{Catalog, EngineDecision, NO_PERMIT_MATCHED, Rejection};
use grantledger_events::{
    EvaluatedValue, PolicyBasis, RequestSubmitted, SubmitRequest, Timestamp,
};
use grantledger_policy::{
    Engine, ExceptionRules, GrantledgerSchema, LoadError, PolicyAction, PolicyDecision,
    PolicyError, PolicyRequest, PolicySet, PrincipalAttributes, RequestContext,
};
use serde_json::Value;

/// The shipped Cedar schema, parsed once per process.
fn schema() -> Result<&'static GrantledgerSchema, LoadError> {
    static SCHEMA: OnceLock<Result<GrantledgerSchema, LoadError>> = OnceLock::new();
    SCHEMA
        .get_or_init(GrantledgerSchema::shipped)
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads a policy set (Cedar text, validated strictly against the shipped
/// schema, and optional exception rules) over `catalog`. Refuses, with
/// Cedar's or the engine's message, anything that does not parse, validate
/// or fit the catalog.
pub fn build_engine(
    catalog: Catalog,
    policy_text: &str,
    exceptions_text: Option<&str>,
) -> Result<Engine, LoadError> {
    let policies = PolicySet::parse(policy_text, schema()?)?;
    let exceptions = match exceptions_text {
        None => ExceptionRules::none(),
        Some(text) => ExceptionRules::parse(text, &catalog)?,
    };
    Engine::new(catalog, policies, exceptions)
}

/// The engine's input for a request at ledger time `at`: what was asked, the
/// principal's groups and the caller's context (checked field by field).
pub fn policy_request(
    submitted: &RequestSubmitted,
    groups: Vec<String>,
    context: &BTreeMap<String, Value>,
    at: Timestamp,
) -> Result<PolicyRequest, PolicyError> {
    Ok(PolicyRequest {
        principal: PrincipalAttributes {
            id: submitted.principal.id.as_str().to_string(),
            kind: submitted.principal.kind,
            owner: submitted.principal.owner.as_ref().map(|owner| owner.as_str().to_string()),
            groups,
        },
        action: PolicyAction::Request,
        entitlement: submitted.entitlement.as_str().to_string(),
        resource: submitted.resource.as_str().to_string(),
        actions: submitted.actions.clone(),
        ttl_requested_ms: submitted.ttl_requested_ms,
        ticket: submitted.ticket.clone(),
        justification: submitted.justification.clone(),
        break_glass_reason: None,
        at_ms: at.0,
        context: RequestContext::from_map(context)?,
    })
}

/// What the core records of the engine's decision under `policy_hash`.
pub(crate) fn to_engine_decision(decision: PolicyDecision, policy_hash: &str) -> EngineDecision {
    let no_permit_matched = decision.reasons.iter().any(|reason| reason == NO_PERMIT_MATCHED);
    EngineDecision {
        outcome: decision.outcome,
        reasons: decision.reasons,
        ttl_granted_ms: decision.ttl_granted_ms,
        catalog_hash: decision.catalog_hash,
        basis: PolicyBasis {
            policy_hash: policy_hash.to_string(),
            determining_policies: decision.determining_policies,
            no_permit_matched,
            exception: decision.exception,
            cedar_version: decision.cedar_version,
            // A BTreeMap iterates in byte order of its names: sorted, distinct.
            evaluated: decision
                .evaluated
                .into_iter()
                .map(|(name, value)| EvaluatedValue { name, value_json: value.to_string() })
                .collect(),
        },
    }
}

/// The engine's decision on `request` at ledger time `now`, under the policy
/// set `policy_hash` in force. A request the engine cannot evaluate (a
/// context value of the wrong type, an unknown field) is refused, naming the
/// field; nothing is recorded for it.
pub fn engine_decision(
    engine: &Engine,
    policy_hash: &str,
    request: &SubmitRequest,
    now: Timestamp,
) -> Result<EngineDecision, Rejection> {
    let invalid = |error: PolicyError| Rejection::PolicyInputInvalid {
        request_id: request.request_id.clone(),
        message: error.to_string(),
    };
    let submitted = RequestSubmitted::from_request(request);
    let input = policy_request(&submitted, request.groups.clone(), &request.context, now).map_err(invalid)?;
    let decision = engine.evaluate(&input).map_err(invalid)?;
    Ok(to_engine_decision(decision, policy_hash))
}

/// The caller-supplied context fields: the engine derives every other
/// `context.*` value (time, actions, TTL, ticket, justification) itself.
const CALLER_FIELDS: [&str; 6] =
    ["in_maintenance_window", "device_managed", "on_call", "change_record", "incident", "risk_score"];
const CALLER_RECORDS: [&str; 2] = ["workload_identity", "task"];

/// The groups and the caller's context of a recorded decision, read back
/// from the values it evaluated, so the same request can be evaluated again.
pub(crate) fn recorded_inputs(
    evaluated: &[EvaluatedValue],
) -> Result<(Vec<String>, BTreeMap<String, Value>), String> {
    let mut groups = Vec::new();
    let mut context = BTreeMap::new();
    for item in evaluated {
        let value: Value = serde_json::from_str(&item.value_json)
            .map_err(|error| format!("evaluated value `{}` is not JSON: {error}", item.name))?;
        if item.name == "principal.groups" {
            groups = serde_json::from_value(value)
                .map_err(|error| format!("`principal.groups` is not a list of strings: {error}"))?;
            continue;
        }
        let Some(name) = item.name.strip_prefix("context.") else { continue };
        match name.split_once('.') {
            None if CALLER_FIELDS.contains(&name) => {
                context.insert(name.to_string(), value);
            }
            Some((record, field)) if CALLER_RECORDS.contains(&record) => {
                let entry = context
                    .entry(record.to_string())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Value::Object(map) = entry {
                    map.insert(field.to_string(), value);
                }
            }
            _ => {}
        }
    }
    Ok((groups, context))
}

