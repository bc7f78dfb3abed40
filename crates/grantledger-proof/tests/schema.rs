//! `schemas/evidence-bundle.schema.json` is generated from the bundle types; this test
//! fails when it drifts. Regenerate with `UPDATE_SCHEMAS=1 cargo test -p
//! grantledger-proof --test schema` and review the diff.

use std::path::PathBuf;

use grantledger_proof::schema::{BUNDLE_SCHEMA_FILE, bundle_schema, render};

#[test]
fn the_bundle_schema_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(BUNDLE_SCHEMA_FILE);
    let expected = render(&bundle_schema());
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored != expected {
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, expected).unwrap();
        } else {
            panic!(
                "`{}` is out of date: run with UPDATE_SCHEMAS=1 and review the diff",
                path.display()
            );
        }
    }
}

#[test]
fn the_schema_names_every_field_of_the_format() {
    let text = render(&bundle_schema());
    for field in [
        "format",
        "origin",
        "subject",
        "checkpoint",
        "events",
        "sequence",
        "leaf_index",
        "record",
        "event",
        "inclusion_proof",
        "grant_id",
        "description",
    ] {
        assert!(
            text.contains(&format!("\"{field}\"")),
            "schema lacks `{field}`"
        );
    }
}
