//! Evidence bundles: build from a log, verify offline, and fail on any changed byte of any
//! record, proof hash, checkpoint text or signature.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{MemoryLog, ORIGIN, SparseTree, TAMPER_MASKS, signer, six_event_chain, verifier};
use grantledger_proof::record::{self, HEADER_BYTES, RecordHeader};
use grantledger_proof::{
    BUNDLE_FORMAT, Bundle, BundleBuilder, BundleErrorKind, SignerKey, Subject,
};

/// The ledger time of the checkpoints in these tests: after every record's.
const CHECKPOINT_TIME_MS: i64 = 1_800_000_000_000;

/// A log of 40 records in which a grant's six events sit at scattered sequences, and the
/// bundle for that grant against a checkpoint at size 40.
struct Fixture {
    log: MemoryLog,
    chain_sequences: Vec<u64>,
    bundle: Bundle,
}

fn fixture() -> Fixture {
    let chain = six_event_chain();
    let chain_sequences = vec![3, 9, 10, 17, 30, 33];
    let mut log = MemoryLog::new();
    let mut next_event = 0;
    for sequence in 1..=40u64 {
        let time_ms = 1_700_000_000_000 + sequence as i64 * 10;
        if chain_sequences.get(next_event) == Some(&sequence) {
            let stored = &chain[next_event].0;
            let kind = RecordHeader::decode(stored).unwrap().kind;
            log.append_body(time_ms, kind, &stored[HEADER_BYTES..]);
            next_event += 1;
        } else {
            log.append_body(
                time_ms,
                9,
                format!("unrelated record {sequence}").as_bytes(),
            );
        }
    }
    let signed = log.signed_checkpoint(40, CHECKPOINT_TIME_MS);
    let mut builder = BundleBuilder::new(
        signed,
        Subject::Grant {
            grant_id: "grant:req-0001".to_string(),
        },
    );
    // Pushed out of order on purpose: the builder sorts.
    for (position, &sequence) in chain_sequences.iter().enumerate().rev() {
        builder
            .push_event(
                &log.records[sequence as usize - 1],
                &log.inclusion_proof(sequence, 40),
                chain[position].1.clone(),
            )
            .unwrap();
    }
    let bundle = builder.build().unwrap();
    Fixture {
        log,
        chain_sequences,
        bundle,
    }
}

fn verifies(bundle: &Bundle) -> bool {
    bundle.verify(&[verifier()]).is_ok()
}

#[test]
fn a_grant_bundle_verifies_and_reports_what_it_proves() {
    let Fixture {
        log,
        chain_sequences,
        bundle,
    } = fixture();
    assert_eq!(bundle.format, BUNDLE_FORMAT);
    assert_eq!(bundle.origin, ORIGIN);
    let report = bundle.verify(&[verifier()]).unwrap();
    assert_eq!(report.checkpoint.tree_size, 40);
    assert_eq!(report.checkpoint.root_hash, log.root_at(40));
    assert_eq!(
        report.signed_by,
        vec![(ORIGIN.to_string(), signer().key_id())]
    );
    let sequences: Vec<u64> = report.events.iter().map(|e| e.header.sequence).collect();
    assert_eq!(sequences, chain_sequences);
    let chain = six_event_chain();
    for (event, (stored, _)) in report.events.iter().zip(&chain) {
        assert_eq!(event.body, stored[HEADER_BYTES..]);
        assert_eq!(
            event.header.hash,
            record::record_hash(&log.records[event.header.sequence as usize - 1])
        );
    }
    for (event, bundle_event) in bundle.events.iter().zip(&report.events) {
        assert_eq!(event.leaf_index, bundle_event.header.sequence - 1);
    }
}

#[test]
fn the_json_form_round_trips_and_is_strict() {
    let bundle = fixture().bundle;
    let json = bundle.to_json();
    let parsed = Bundle::from_json(&json).unwrap();
    assert_eq!(parsed, bundle);
    assert!(verifies(&parsed));
    assert!(json.contains("\"format\": \"grantledger-evidence-bundle/1\""));
    assert!(json.contains("\"kind\": \"grant\""));

    let with_extra = json.replacen("\"format\"", "\"colour\": \"red\",\n  \"format\"", 1);
    let error = Bundle::from_json(&with_extra).unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::JsonMalformed);
    assert!(
        error.to_string().contains("unknown field `colour`"),
        "{error}"
    );

    let error = Bundle::from_json("{").unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::JsonMalformed);
}

/// The heart of the matter: change any one byte of any record, any proof hash, the
/// checkpoint text (signature lines included) and verification fails.
#[test]
fn any_changed_byte_of_a_record_or_a_proof_hash_fails() {
    let bundle = fixture().bundle;
    assert!(verifies(&bundle));
    let mut changes = 0;
    for index in 0..bundle.events.len() {
        let record = hex::decode(&bundle.events[index].record).unwrap();
        for position in 0..record.len() {
            let mut changed = record.clone();
            changed[position] ^= TAMPER_MASKS[position % 2];
            let mut tampered = bundle.clone();
            tampered.events[index].record = hex::encode(&changed);
            assert!(!verifies(&tampered), "event {index} record byte {position}");
            changes += 1;
        }
        for hash_index in 0..bundle.events[index].inclusion_proof.len() {
            let hash = hex::decode(&bundle.events[index].inclusion_proof[hash_index]).unwrap();
            for position in 0..hash.len() {
                let mut changed = hash.clone();
                changed[position] ^= TAMPER_MASKS[position % 2];
                let mut tampered = bundle.clone();
                tampered.events[index].inclusion_proof[hash_index] = hex::encode(&changed);
                let error = tampered.verify(&[verifier()]).unwrap_err();
                assert_eq!(error.kind(), BundleErrorKind::InclusionProofFails);
                assert_eq!(error.event().unwrap().index, index);
                changes += 1;
            }
        }
    }
    assert!(
        changes > 1_000,
        "a bundle of six events has over a thousand such bytes"
    );
}

/// The same at the level of the file's text: every character of a `record` string and of
/// a proof hash string replaced by another (lowercase hex has one spelling per byte, so an
/// uppercase digit is a change too). One event's strings suffice: the byte-level test
/// above covers every event, and hex decoding does not depend on the event.
#[test]
fn any_changed_hex_character_fails() {
    let bundle = fixture().bundle;
    let replace = |text: &str, position: usize| -> Vec<String> {
        let original = text.as_bytes()[position];
        let mut replacements = vec![if original == b'0' { b'1' } else { b'0' }];
        if original.is_ascii_alphabetic() {
            replacements.push(original.to_ascii_uppercase());
        }
        replacements
            .into_iter()
            .map(|byte| {
                let mut bytes = text.as_bytes().to_vec();
                bytes[position] = byte;
                String::from_utf8(bytes).unwrap()
            })
            .collect()
    };
    let index = 3;
    let record = bundle.events[index].record.clone();
    for position in 0..record.len() {
        for changed in replace(&record, position) {
            let mut tampered = bundle.clone();
            tampered.events[index].record = changed;
            assert!(!verifies(&tampered), "record character {position}");
        }
    }
    let last = bundle.events[index].inclusion_proof.len() - 1;
    let hash = bundle.events[index].inclusion_proof[last].clone();
    for position in 0..hash.len() {
        for changed in replace(&hash, position) {
            let mut tampered = bundle.clone();
            tampered.events[index].inclusion_proof[last] = changed;
            assert!(!verifies(&tampered), "proof character {position}");
        }
    }
}

#[test]
fn any_changed_byte_of_the_checkpoint_note_fails() {
    let bundle = fixture().bundle;
    let note = bundle.checkpoint.clone();
    for position in 0..note.len() {
        let mut changed_once = false;
        for mask in TAMPER_MASKS {
            let mut bytes = note.as_bytes().to_vec();
            bytes[position] ^= mask;
            // A JSON string holds UTF-8 only; a change that breaks UTF-8 fails to parse.
            let Ok(changed) = String::from_utf8(bytes) else {
                continue;
            };
            let mut tampered = bundle.clone();
            tampered.checkpoint = changed;
            let error = tampered.verify(&[verifier()]).unwrap_err();
            assert!(
                matches!(
                    error.kind(),
                    BundleErrorKind::CheckpointRejected | BundleErrorKind::OriginMismatch
                ),
                "byte {position}: {error}"
            );
            changed_once = true;
        }
        assert!(changed_once, "byte {position} was never changed");
    }
}

#[test]
fn any_changed_byte_of_the_signature_fails() {
    let bundle = fixture().bundle;
    let (head, line) = bundle
        .checkpoint
        .trim_end_matches('\n')
        .rsplit_once('\n')
        .unwrap();
    let signature = BASE64.decode(line.rsplit(' ').next().unwrap()).unwrap();
    for position in 0..signature.len() {
        for mask in TAMPER_MASKS {
            let mut changed = signature.clone();
            changed[position] ^= mask;
            let mut tampered = bundle.clone();
            tampered.checkpoint =
                format!("{head}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(&changed));
            let error = tampered.verify(&[verifier()]).unwrap_err();
            assert_eq!(error.kind(), BundleErrorKind::CheckpointRejected, "{error}");
        }
    }
}

#[test]
fn changed_numbers_and_names_fail_with_their_rule() {
    let bundle = fixture().bundle;
    let expect = |tampered: Bundle, kind: BundleErrorKind, needle: &str| {
        let error = tampered.verify(&[verifier()]).unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
        assert!(
            error.to_string().contains(needle),
            "{error} lacks {needle:?}"
        );
    };

    let mut tampered = bundle.clone();
    tampered.events[2].sequence += 1;
    expect(
        tampered,
        BundleErrorKind::SequenceMismatch,
        "event `2` (sequence `11`)",
    );

    let mut tampered = bundle.clone();
    tampered.events[2].leaf_index += 1;
    expect(
        tampered,
        BundleErrorKind::LeafIndexMismatch,
        "`sequence - 1` = `9`",
    );

    let mut tampered = bundle.clone();
    tampered.events.swap(0, 1);
    expect(
        tampered,
        BundleErrorKind::EventsNotAscending,
        "event `1` (sequence `3`)",
    );

    let mut tampered = bundle.clone();
    let duplicate = tampered.events[1].clone();
    tampered.events.insert(1, duplicate);
    expect(
        tampered,
        BundleErrorKind::EventsNotAscending,
        "strictly ascending",
    );

    let mut tampered = bundle.clone();
    tampered.origin = "ledger.example.com/globex".to_string();
    expect(
        tampered,
        BundleErrorKind::CheckpointRejected,
        "origin_unexpected",
    );

    let mut tampered = bundle.clone();
    tampered.format = "grantledger-evidence-bundle/2".to_string();
    expect(
        tampered,
        BundleErrorKind::FormatUnknown,
        "`grantledger-evidence-bundle/2`",
    );

    let mut tampered = bundle.clone();
    tampered.events.clear();
    expect(tampered, BundleErrorKind::EventsEmpty, "proves nothing");

    let mut tampered = bundle.clone();
    tampered.events[0].inclusion_proof.pop();
    expect(
        tampered,
        BundleErrorKind::InclusionProofFails,
        "proof_length_wrong",
    );

    let mut tampered = bundle.clone();
    tampered.events[0].inclusion_proof[0].push_str("00");
    expect(tampered, BundleErrorKind::HexMalformed, "32 bytes");

    let mut tampered = bundle.clone();
    tampered.events[0].record.pop();
    expect(tampered, BundleErrorKind::HexMalformed, "odd number");

    let mut tampered = bundle.clone();
    tampered.events[0].record.truncate(100);
    expect(
        tampered,
        BundleErrorKind::RecordRejected,
        "header_truncated",
    );

    // The `event` rendering and the subject are informational: the bundle does not
    // authenticate them (the lead's verify-bundle compares `event` with the body).
    let mut tampered = bundle.clone();
    tampered.events[0].event = serde_json::json!({"anything": true});
    tampered.subject = Subject::WhyQuery {
        description: "why did alice read db/prod/orders".to_string(),
    };
    assert!(verifies(&tampered));
}

#[test]
fn only_the_logs_trusted_keys_are_accepted() {
    let bundle = fixture().bundle;
    let stranger = SignerKey::from_seed(ORIGIN, [0x99; 32]).unwrap();
    let error = bundle.verify(&[stranger.verifier_key()]).unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::CheckpointRejected);
    assert!(
        error.to_string().contains("no_trusted_signature"),
        "{error}"
    );
    assert!(error.event().is_none());
    let error = bundle.verify(&[]).unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::CheckpointRejected);
}

#[test]
fn records_beyond_the_checkpoint_or_after_its_time_are_refused() {
    let Fixture { log, .. } = fixture();
    // A checkpoint at size 20 cannot vouch for sequence 30.
    let small = log.signed_checkpoint(20, CHECKPOINT_TIME_MS);
    let mut builder = BundleBuilder::new(
        small,
        Subject::Grant {
            grant_id: "g".into(),
        },
    );
    builder
        .push_event(
            &log.records[29],
            &log.inclusion_proof(30, 40),
            serde_json::Value::Null,
        )
        .unwrap();
    let error = builder.build().unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::EventBeyondCheckpoint);
    assert!(
        error.to_string().contains("event `0` (sequence `30`)"),
        "{error}"
    );

    // A checkpoint stamped before a record it covers is a writer's bug or a forgery.
    let early = log.signed_checkpoint(40, 1_700_000_000_100);
    let mut builder = BundleBuilder::new(
        early,
        Subject::Grant {
            grant_id: "g".into(),
        },
    );
    builder
        .push_event(
            &log.records[19],
            &log.inclusion_proof(20, 40),
            serde_json::Value::Null,
        )
        .unwrap();
    let error = builder.build().unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::RecordTimeAfterCheckpoint);

    // A proof for another size does not lead to this checkpoint's root.
    let signed = log.signed_checkpoint(40, CHECKPOINT_TIME_MS);
    let mut builder = BundleBuilder::new(
        signed,
        Subject::Grant {
            grant_id: "g".into(),
        },
    );
    builder
        .push_event(
            &log.records[4],
            &log.inclusion_proof(5, 39),
            serde_json::Value::Null,
        )
        .unwrap();
    assert_eq!(
        builder.build().unwrap_err().kind(),
        BundleErrorKind::InclusionProofFails
    );

    // The builder refuses a record that breaks the record rules at once.
    let signed = log.signed_checkpoint(40, CHECKPOINT_TIME_MS);
    let mut builder = BundleBuilder::new(
        signed,
        Subject::Grant {
            grant_id: "g".into(),
        },
    );
    let mut broken = log.records[4].clone();
    broken[100] ^= 1;
    let error = builder
        .push_event(&broken, &[], serde_json::Value::Null)
        .unwrap_err();
    assert_eq!(error.kind(), BundleErrorKind::RecordRejected);
    assert!(error.to_string().contains("hash_mismatch"), "{error}");
}

/// The size the brief asks for: a grant's six events, each with a 24-hash proof in a tree
/// of 10 million records. The sparse tree gives real proofs at that depth.
#[test]
fn a_six_event_bundle_on_a_ten_million_record_tree_verifies() {
    let size = 10_000_000u64;
    let chain: Vec<(Vec<u8>, serde_json::Value)> = six_event_chain();
    let records: Vec<Vec<u8>> = chain.iter().map(|(stored, _)| stored.clone()).collect();
    let tree = SparseTree::new(size, &records);
    let checkpoint = grantledger_proof::Checkpoint {
        origin: ORIGIN.to_string(),
        tree_size: size,
        root_hash: tree.root(),
        time_ms: CHECKPOINT_TIME_MS,
    };
    let signed = checkpoint.sign(&signer()).unwrap();
    let mut builder = BundleBuilder::new(
        signed,
        Subject::Grant {
            grant_id: "grant:req-0001".into(),
        },
    );
    for (stored, event) in &chain {
        let sequence = RecordHeader::decode(stored).unwrap().sequence;
        let proof = tree.inclusion_proof(sequence);
        assert_eq!(proof.len(), 24);
        builder.push_event(stored, &proof, event.clone()).unwrap();
    }
    let bundle = builder.build().unwrap();
    let json = bundle.to_json();
    let report = Bundle::from_json(&json)
        .unwrap()
        .verify(&[verifier()])
        .unwrap();
    assert_eq!(report.events.len(), 6);
    // The hex of the records and of 6 x 24 proof hashes is most of the file.
    let record_hex: usize = bundle.events.iter().map(|e| e.record.len()).sum();
    assert!(json.len() > record_hex + 6 * 24 * 64);
    eprintln!(
        "six-event bundle on a 10,000,000-record tree: {} bytes of JSON ({} of record hex, {} of proof hex)",
        json.len(),
        record_hex,
        6 * 24 * 64
    );
}

/// The byte ranges of a bundle's JSON text that verification covers: the values of
/// `format`, `origin`, `checkpoint`, every `sequence`, `leaf_index`, `record` and proof
/// hash (everything but the informational `subject` and `event`).
fn covered_ranges(json: &str, bundle: &Bundle) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut find_value = |serialized: String, from: usize| -> usize {
        let start = from
            + json[from..]
                .find(&serialized)
                .expect("value is in the text");
        ranges.push(start..start + serialized.len());
        start + serialized.len()
    };
    let string = |text: &str| serde_json::to_string(text).unwrap();
    let mut cursor = find_value(string(&bundle.format), 0);
    cursor = find_value(string(&bundle.origin), cursor);
    cursor = find_value(string(&bundle.checkpoint), cursor);
    for event in &bundle.events {
        cursor = find_value(format!("\"sequence\": {}", event.sequence), cursor);
        cursor = find_value(format!("\"leaf_index\": {}", event.leaf_index), cursor);
        cursor = find_value(string(&event.record), cursor);
        for hash in &event.inclusion_proof {
            cursor = find_value(string(hash), cursor);
        }
    }
    ranges
}

mod serialized {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any byte of the file's text that verification covers, changed to any other
        /// value, makes reading or verifying the bundle fail.
        #[test]
        fn any_changed_byte_of_the_covered_json_text_fails(pick in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let bundle = fixture().bundle;
            let json = bundle.to_json();
            let positions: Vec<usize> = covered_ranges(&json, &bundle).into_iter().flatten().collect();
            prop_assert!(positions.len() > 4_000);
            let position = positions[pick.index(positions.len())];
            let mut bytes = json.clone().into_bytes();
            bytes[position] ^= mask;
            let changed = String::from_utf8(bytes);
            prop_assume!(changed.is_ok());
            let changed = changed.unwrap();
            let accepted = Bundle::from_json(&changed)
                .map(|parsed| parsed.verify(&[verifier()]).is_ok())
                .unwrap_or(false);
            prop_assert!(!accepted, "byte {} ^ {:#04x} accepted", position, mask);
        }
    }
}
