//! JSON Schemas for every event and for the request a producer sends,
//! generated from the Rust types. `schemas/` holds the generated files; a
//! test keeps them current (`UPDATE_SCHEMAS=1 cargo test -p
//! grantledger-events` rewrites them).

use schemars::{JsonSchema, Schema, schema_for};

use crate::*;

/// Every published schema: a file name under `schemas/` and its content.
pub fn all() -> Vec<(&'static str, Schema)> {
    fn one<T: JsonSchema>(name: &'static str) -> (&'static str, Schema) {
        (name, schema_for!(T))
    }
    vec![
        one::<SubmitRequest>("submit-request.schema.json"),
        one::<Envelope>("envelope.schema.json"),
        one::<Committed>("committed.schema.json"),
        one::<CatalogPublished>("events/catalog_published.schema.json"),
        one::<RequestSubmitted>("events/request_submitted.schema.json"),
        one::<DecisionRecorded>("events/decision_recorded.schema.json"),
        one::<ApprovalRecorded>("events/approval_recorded.schema.json"),
        one::<GrantIssued>("events/grant_issued.schema.json"),
        one::<GrantExtended>("events/grant_extended.schema.json"),
        one::<GrantRevoked>("events/grant_revoked.schema.json"),
        one::<RevocationConfirmed>("events/revocation_confirmed.schema.json"),
        one::<RevocationFailed>("events/revocation_failed.schema.json"),
        one::<BreakGlassInvoked>("events/break_glass_invoked.schema.json"),
        one::<ReviewRecorded>("events/review_recorded.schema.json"),
        one::<PolicyPublished>("events/policy_published.schema.json"),
        one::<PrincipalOffboarded>("events/principal_offboarded.schema.json"),
        one::<IdentityRefused>("events/identity_refused.schema.json"),
        one::<RequestExpired>("events/request_expired.schema.json"),
        one::<RequestWithdrawn>("events/request_withdrawn.schema.json"),
    ]
}

/// A schema rendered the way it is stored: pretty JSON and a final newline.
pub fn render(schema: &Schema) -> String {
    let value = serde_json::to_value(schema).expect("schemas render");
    let mut text = serde_json::to_string_pretty(&sorted_keys(value)).expect("schemas render");
    text.push('\n');
    text
}

/// `value` with every object's keys in sorted order, whether or not some
/// crate of the build turns on serde_json's `preserve_order` feature, so
/// that generated files do not depend on feature unification.
pub fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}
