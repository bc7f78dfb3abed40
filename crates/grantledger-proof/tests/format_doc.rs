//! `schemas/EVIDENCE_BUNDLE.md` documents the format with a worked example: the golden
//! records, a checkpoint signed by the example key, and the bundle. This test rebuilds
//! the example and checks that the document shows exactly these bytes, and that the
//! example verifies. Print the example with `PRINT_EXAMPLE=1 cargo test -p
//! grantledger-proof --test format_doc -- --nocapture`.

mod common;

use common::{MemoryLog, ORIGIN, golden_records, signer};
use grantledger_proof::{Bundle, BundleBuilder, Subject};

const DOCUMENT: &str = include_str!("../../../schemas/EVIDENCE_BUNDLE.md");

struct Example {
    verifier_key: String,
    note: String,
    bundle_json: String,
}

fn example() -> Example {
    let golden = golden_records();
    let records: Vec<Vec<u8>> = golden.iter().map(|g| g.stored.clone()).collect();
    let log = MemoryLog::from_records(&records);
    let size = log.size();
    let last_time = grantledger_proof::record::RecordHeader::decode(records.last().unwrap())
        .unwrap()
        .time_ms;
    let signed = log.signed_checkpoint(size, last_time + 1_000);
    let mut builder = BundleBuilder::new(
        signed.clone(),
        Subject::Grant {
            grant_id: "grant:req-0001".to_string(),
        },
    );
    for (position, row) in golden.iter().enumerate() {
        let sequence = position as u64 + 1;
        builder
            .push_event(
                &row.stored,
                &log.inclusion_proof(sequence, size),
                row.envelope.clone(),
            )
            .unwrap();
    }
    Example {
        verifier_key: signer().verifier_key().to_string(),
        note: signed.as_str().to_string(),
        bundle_json: builder.build().unwrap().to_json(),
    }
}

/// The text between the line after `marker` that opens a fenced block and its closing
/// fence.
fn fenced_block_after(marker: &str) -> String {
    let start = DOCUMENT
        .find(marker)
        .unwrap_or_else(|| panic!("the document has no `{marker}`"));
    let rest = &DOCUMENT[start..];
    let open = rest.find("```").unwrap();
    let body_start = open + rest[open..].find('\n').unwrap() + 1;
    let close = body_start + rest[body_start..].find("\n```").unwrap();
    rest[body_start..=close].to_string()
}

#[test]
fn the_documented_example_is_what_the_code_writes() {
    let example = example();
    if std::env::var_os("PRINT_EXAMPLE").is_some() {
        println!(
            "{}\n\n{}\n{}",
            example.verifier_key, example.note, example.bundle_json
        );
    }
    assert_eq!(
        fenced_block_after("<!-- example: verifier key -->").trim_end(),
        example.verifier_key
    );
    assert_eq!(
        fenced_block_after("<!-- example: checkpoint -->"),
        example.note
    );
    assert_eq!(
        fenced_block_after("<!-- example: bundle -->"),
        example.bundle_json
    );
}

#[test]
fn the_documented_example_verifies_with_the_documented_key() {
    let example = example();
    let key = grantledger_proof::VerifierKey::parse(&example.verifier_key).unwrap();
    let report = Bundle::from_json(&example.bundle_json)
        .unwrap()
        .verify(&[key])
        .unwrap();
    assert_eq!(report.origin, ORIGIN);
    assert_eq!(report.events.len(), 4);
}
