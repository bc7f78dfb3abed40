//! The JSON Schemas in `schemas/` are generated from the Rust types; this test
//! fails when they drift. Regenerate with `UPDATE_SCHEMAS=1 cargo test -p
//! grantledger-events --test schemas` and review the diff.

use std::path::PathBuf;

use grantledger_events::{EventKind, schema};

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn schemas_are_current() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, generated) in schema::all() {
        let path = schemas_dir().join(name);
        let expected = schema::render(&generated);
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        if stored != expected {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, expected).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "schemas out of date (run with UPDATE_SCHEMAS=1 and review the diff): {stale:?}"
    );
}

#[test]
fn every_event_kind_has_a_schema() {
    let names: Vec<&str> = schema::all().into_iter().map(|(name, _)| name).collect();
    for kind in EventKind::ALL {
        let expected = format!("events/{}.schema.json", kind.name());
        assert!(names.contains(&expected.as_str()), "no schema for `{}`", kind.name());
    }
}

#[test]
fn kind_codes_are_unique_and_roundtrip() {
    for kind in EventKind::ALL {
        assert_eq!(EventKind::from_code(kind.code()), Some(kind));
    }
    assert_eq!(EventKind::from_code(0), None);
    let mut codes: Vec<u16> = EventKind::ALL.iter().map(|k| k.code()).collect();
    codes.dedup();
    assert_eq!(codes.len(), EventKind::ALL.len());
}

#[test]
fn submit_request_refuses_unknown_fields_and_names_them() {
    let text = r#"{"request_id":"r1","tenant":"acme","principal":{"id":"alice","kind":"human","owner":null},
        "entitlement":"db-read","resource":"db/prod/orders","actions":["read"],"justification":"x","color":"red"}"#;
    let error = serde_json::from_str::<grantledger_events::SubmitRequest>(text).unwrap_err();
    assert!(error.to_string().contains("unknown field `color`"), "{error}");
}
