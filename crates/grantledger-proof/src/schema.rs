//! The JSON Schema of the evidence bundle, generated from the Rust types. The file
//! `schemas/evidence-bundle.schema.json` holds it; a test keeps it current
//! (`UPDATE_SCHEMAS=1 cargo test -p grantledger-proof --test schema` rewrites it).

use schemars::{Schema, schema_for};

use crate::bundle::Bundle;

/// The file name of the bundle schema under `schemas/`.
pub const BUNDLE_SCHEMA_FILE: &str = "evidence-bundle.schema.json";

/// The bundle's JSON Schema.
pub fn bundle_schema() -> Schema {
    schema_for!(Bundle)
}

/// The schema as stored: pretty JSON with a final newline.
pub fn render(schema: &Schema) -> String {
    let value = serde_json::to_value(schema).expect("a schema serializes");
    let mut text = serde_json::to_string_pretty(&sorted_keys(value)).expect("a schema serializes");
    text.push('\n');
    text
}

/// `value` with every object's keys sorted, whether or not some crate of the
/// build turns on serde_json's `preserve_order`, so that the committed file
/// does not depend on feature unification. (The same as
/// `grantledger_events::schema::sorted_keys`; this crate depends on no
/// grantledger crate but the Merkle one.)
fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
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
