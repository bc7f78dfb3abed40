//! Signed checkpoints: exact text, round trips, rotation, and every way a note can be
//! wrong.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{ORIGIN, signer, verifier};
use grantledger_merkle::{Blake3, MerkleHasher as _};
use grantledger_proof::{Checkpoint, CheckpointErrorKind, SignedCheckpoint, SignerKey};

fn sample() -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.to_string(),
        tree_size: 20_852_163,
        root_hash: *blake3::hash(b"root").as_bytes(),
        time_ms: 1_700_000_000_000,
    }
}

#[test]
fn the_note_has_the_documented_bytes() {
    let checkpoint = sample();
    let signed = checkpoint.sign(&signer()).unwrap();
    let root_base64 = BASE64.encode(checkpoint.root_hash);
    let text = format!("{ORIGIN}\n20852163\n{root_base64}\ntime_ms 1700000000000\n");
    assert_eq!(checkpoint.to_text().unwrap(), text);

    // The signature line, rebuilt from first principles: em dash, space, key name, space,
    // base64(key ID big-endian || Ed25519 signature of the text).
    let key = signer();
    let public_key = *key.verifier_key().public_key();
    let mut key_id_input = ORIGIN.as_bytes().to_vec();
    key_id_input.extend([b'\n', 0x01]);
    key_id_input.extend(public_key);
    use sha2::Digest as _;
    let key_id = &sha2::Sha256::digest(&key_id_input)[..4];
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    use ed25519_dalek::Signer as _;
    let mut signature = key_id.to_vec();
    signature.extend(dalek.sign(text.as_bytes()).to_bytes());
    let expected = format!("{text}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(signature));
    assert_eq!(signed.as_str(), expected);
}

#[test]
fn signed_checkpoints_round_trip_and_verify() {
    let checkpoint = sample();
    let signed = checkpoint.sign(&signer()).unwrap();
    let parsed = SignedCheckpoint::parse(signed.as_str()).unwrap();
    assert_eq!(parsed, signed);
    assert_eq!(parsed.verify(&[verifier()]).unwrap(), checkpoint);
    assert_eq!(
        parsed.verify_for_origin(&[verifier()], ORIGIN).unwrap(),
        checkpoint
    );
    let detailed = parsed.verify_detailed(&[verifier()], None).unwrap();
    assert_eq!(
        detailed.signed_by,
        vec![(ORIGIN.to_string(), signer().key_id())]
    );
    assert_eq!(
        Checkpoint::parse_text(&checkpoint.to_text().unwrap()).unwrap(),
        checkpoint
    );

    let empty = Checkpoint {
        tree_size: 0,
        root_hash: Blake3.empty_root(),
        time_ms: 0,
        ..sample()
    };
    let signed_empty = empty.sign(&signer()).unwrap();
    assert_eq!(signed_empty.verify(&[verifier()]).unwrap(), empty);
}

#[test]
fn an_unknown_key_is_not_trusted_even_with_the_same_name() {
    let signed = sample().sign(&signer()).unwrap();
    let impostor = SignerKey::from_seed(ORIGIN, [0x22; 32]).unwrap();
    let error = signed.verify(&[impostor.verifier_key()]).unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::NoTrustedSignature);
    let message = error.to_string();
    assert!(
        message.contains(&format!("{ORIGIN}+{}", signer().key_id())),
        "{message}"
    );
    assert!(
        message.contains(&format!("{ORIGIN}+{}", impostor.key_id())),
        "{message}"
    );

    let error = signed.verify(&[]).unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::NoTrustedSignature);
}

/// A key with the right name and key ID but another public key (C2SP: IDs are short and
/// collide on purpose): the signature is checked with the trusted key and fails.
#[test]
fn a_colliding_key_id_fails_the_signature_check() {
    let signed = sample().sign(&signer()).unwrap();
    let impostor = SignerKey::from_seed(ORIGIN, [0x33; 32]).unwrap();
    // Forge the impostor's signature line with the real key's ID.
    let text = sample().to_text().unwrap();
    let impostor_signed = sample().sign(&impostor).unwrap();
    let line = impostor_signed.as_str().lines().last().unwrap();
    let encoded = line.rsplit(' ').next().unwrap();
    let mut bytes = BASE64.decode(encoded).unwrap();
    bytes[..4].copy_from_slice(&signer().key_id().0.to_be_bytes());
    let forged = format!("{text}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(bytes));
    let error = SignedCheckpoint::parse(&forged)
        .unwrap()
        .verify(&[verifier()])
        .unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::SignatureInvalid);
    assert!(error.to_string().contains("line `6`"), "{error}");
    assert!(signed.verify(&[verifier()]).is_ok());
}

#[test]
fn rotation_old_and_new_keys_are_told_apart_by_key_id() {
    let old = signer();
    let new = SignerKey::from_seed(ORIGIN, [0x44; 32]).unwrap();
    assert_ne!(old.key_id(), new.key_id());
    let trusted = [old.verifier_key(), new.verifier_key()];

    let by_old = sample().sign(&old).unwrap();
    let by_new = sample().sign(&new).unwrap();
    assert!(by_old.verify(&trusted).is_ok());
    assert!(by_new.verify(&trusted).is_ok());
    // An auditor who has only the new key does not accept the old key's checkpoints.
    assert_eq!(
        by_old.verify(&[new.verifier_key()]).unwrap_err().kind(),
        CheckpointErrorKind::NoTrustedSignature
    );
    // During the overlap the ledger signs with both; either key alone verifies.
    let by_both = sample().sign_with_keys(&[&old, &new]).unwrap();
    assert_eq!(by_both.as_str().matches('\u{2014}').count(), 2);
    assert!(by_both.verify(&[old.verifier_key()]).is_ok());
    assert!(by_both.verify(&[new.verifier_key()]).is_ok());
    let detailed = by_both.verify_detailed(&trusted, None).unwrap();
    assert_eq!(
        detailed.signed_by,
        vec![
            (ORIGIN.to_string(), old.key_id()),
            (ORIGIN.to_string(), new.key_id())
        ]
    );
}

#[test]
fn signatures_of_other_keys_are_ignored_but_the_origin_key_must_sign() {
    let witness = SignerKey::from_seed("witness.example.org", [0x55; 32]).unwrap();
    let signed = sample().sign(&signer()).unwrap();
    // Add a witness's signature line over the same text (as a cosigner would).
    let text = sample().to_text().unwrap();
    let witness_line = {
        let dalek = ed25519_dalek::SigningKey::from_bytes(&[0x55; 32]);
        use ed25519_dalek::Signer as _;
        let mut bytes = witness.key_id().0.to_be_bytes().to_vec();
        bytes.extend(dalek.sign(text.as_bytes()).to_bytes());
        format!("\u{2014} witness.example.org {}\n", BASE64.encode(bytes))
    };
    let cosigned = format!("{}{witness_line}", signed.as_str());
    let cosigned = SignedCheckpoint::parse(&cosigned).unwrap();
    // Unknown witness: ignored.
    assert!(cosigned.verify(&[verifier()]).is_ok());
    // Trusted witness: verified, listed, but not enough on its own.
    let detailed = cosigned
        .verify_detailed(&[verifier(), witness.verifier_key()], None)
        .unwrap();
    assert_eq!(detailed.signed_by.len(), 2);
    let error = cosigned.verify(&[witness.verifier_key()]).unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::NoTrustedSignature);
}

#[test]
fn a_key_named_otherwise_may_not_sign() {
    let other = SignerKey::from_seed("other.example.com/log", [0x66; 32]).unwrap();
    let error = sample().sign(&other).unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::SignerNameNotOrigin);
    assert!(
        error.to_string().contains("other.example.com/log"),
        "{error}"
    );
}

#[test]
fn a_wrong_origin_fails() {
    let signed = sample().sign(&signer()).unwrap();
    let error = signed
        .verify_for_origin(&[verifier()], "ledger.example.com/globex")
        .unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::OriginUnexpected);
    assert!(
        error.to_string().contains("`ledger.example.com/globex`"),
        "{error}"
    );

    // A log's key that signs a checkpoint claiming another log's origin: the trusted key
    // is not named after that origin, so the checkpoint has no trusted signature.
    let globex = Checkpoint {
        origin: "ledger.example.com/globex".to_string(),
        ..sample()
    };
    let text = globex.to_text().unwrap();
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    use ed25519_dalek::Signer as _;
    let mut bytes = signer().key_id().0.to_be_bytes().to_vec();
    bytes.extend(dalek.sign(text.as_bytes()).to_bytes());
    let note = format!("{text}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(bytes));
    let error = SignedCheckpoint::parse(&note)
        .unwrap()
        .verify(&[verifier()])
        .unwrap_err();
    assert_eq!(error.kind(), CheckpointErrorKind::NoTrustedSignature);
}

/// Every prefix of a signed checkpoint (a note cut short in transit or on disk) is refused.
#[test]
fn every_truncation_fails() {
    let note = sample().sign(&signer()).unwrap().as_str().to_string();
    for (end, _) in note.char_indices() {
        let cut = &note[..end];
        let refused = match SignedCheckpoint::parse(cut) {
            Err(_) => true,
            Ok(parsed) => parsed.verify(&[verifier()]).is_err(),
        };
        assert!(refused, "the first {end} bytes were accepted: {cut:?}");
    }
}

/// Every byte of the note, changed in two ways, makes verification fail (or the text
/// stops being UTF-8, which a `&str` cannot carry: such changes are refused by whoever
/// decodes the file).
#[test]
fn every_changed_byte_fails() {
    let note = sample().sign(&signer()).unwrap().as_str().to_string();
    let mut positions_checked = 0;
    for position in 0..note.len() {
        let mut checked = false;
        for mask in common::TAMPER_MASKS {
            let mut bytes = note.as_bytes().to_vec();
            bytes[position] ^= mask;
            let Ok(changed) = String::from_utf8(bytes) else {
                continue;
            };
            let result = SignedCheckpoint::parse(&changed)
                .and_then(|parsed| parsed.verify_for_origin(&[verifier()], ORIGIN));
            assert!(
                result.is_err(),
                "byte {position} ^ {mask:#04x} accepted: {changed:?}"
            );
            checked = true;
        }
        positions_checked += usize::from(checked);
    }
    assert_eq!(
        positions_checked,
        note.len(),
        "every byte was changed at least once"
    );
}

/// Each byte of the decoded signature (key ID and Ed25519 signature), changed.
#[test]
fn every_changed_signature_byte_fails() {
    let signed = sample().sign(&signer()).unwrap();
    let note = signed.as_str();
    let (head, line) = note.trim_end_matches('\n').rsplit_once('\n').unwrap();
    let encoded = line.rsplit(' ').next().unwrap();
    let signature = BASE64.decode(encoded).unwrap();
    assert_eq!(signature.len(), 68);
    for position in 0..signature.len() {
        let mut changed = signature.clone();
        changed[position] ^= 0x01;
        let tampered = format!("{head}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(&changed));
        let error = SignedCheckpoint::parse(&tampered)
            .unwrap()
            .verify(&[verifier()])
            .unwrap_err();
        let expected = if position < 4 {
            CheckpointErrorKind::NoTrustedSignature
        } else {
            CheckpointErrorKind::SignatureInvalid
        };
        assert_eq!(error.kind(), expected, "byte {position}: {error}");
    }
}

#[test]
fn malformed_checkpoint_texts_name_the_broken_rule() {
    use CheckpointErrorKind::*;
    let root = BASE64.encode(blake3::hash(b"root").as_bytes());
    let empty_root = BASE64.encode(Blake3.empty_root());
    let rows: Vec<(String, CheckpointErrorKind, &str)> = vec![
        (
            format!("{ORIGIN}\n5\n{root}\n"),
            TimeMalformed,
            "no `time_ms",
        ),
        (format!("{ORIGIN}\n5\n{root}"), TextMalformed, "newline"),
        (format!("{ORIGIN}\n5\n"), TextMalformed, "`2` lines"),
        (
            format!("{ORIGIN}\n05\n{root}\ntime_ms 1\n"),
            TreeSizeMalformed,
            "`05`",
        ),
        (
            format!("{ORIGIN}\n+5\n{root}\ntime_ms 1\n"),
            TreeSizeMalformed,
            "`+5`",
        ),
        (
            format!("{ORIGIN}\n18446744073709551616\n{root}\ntime_ms 1\n"),
            TreeSizeMalformed,
            "u64",
        ),
        (
            format!("{ORIGIN}\n5\n{}\ntime_ms 1\n", &root[..40]),
            RootHashMalformed,
            "32 bytes",
        ),
        (
            format!(
                "{ORIGIN}\n5\n{}\ntime_ms 1\n",
                hex::encode(blake3::hash(b"root").as_bytes())
            ),
            RootHashMalformed,
            "base64",
        ),
        (
            format!("{ORIGIN}\n0\n{root}\ntime_ms 1\n"),
            EmptyTreeRootWrong,
            "empty tree",
        ),
        (
            format!("{ORIGIN}\n0\n{empty_root}\ntime_ms -1\n"),
            TimeMalformed,
            "`-1`",
        ),
        (
            format!("{ORIGIN}\n5\n{root}\ntime_ms 01\n"),
            TimeMalformed,
            "`01`",
        ),
        (
            format!("{ORIGIN}\n5\n{root}\ntime_ms 1\ntime_ms 2\n"),
            TimeMalformed,
            "second",
        ),
        (
            format!("{ORIGIN}\n5\n{root}\ntime_ms 1\nflavour vanilla\n"),
            ExtensionLineUnknown,
            "`flavour vanilla`",
        ),
        (
            format!("{ORIGIN}\n5\n{root}\ntime 1\n"),
            ExtensionLineUnknown,
            "`time 1`",
        ),
        (
            format!("ledger example\n5\n{root}\ntime_ms 1\n"),
            OriginInvalid,
            "`ledger example`",
        ),
        (
            format!("a+b\n5\n{root}\ntime_ms 1\n"),
            OriginInvalid,
            "`a+b`",
        ),
    ];
    for (text, kind, needle) in rows {
        let error = Checkpoint::parse_text(&text).unwrap_err();
        assert_eq!(error.kind(), kind, "{text:?}: {error}");
        assert!(
            error.to_string().contains(needle),
            "{error} lacks {needle:?}"
        );
    }
    assert!(Checkpoint::parse_text(&format!("{ORIGIN}\n5\n{root}\ntime_ms 1\n")).is_ok());
    assert!(Checkpoint::parse_text(&format!("{ORIGIN}\n0\n{empty_root}\ntime_ms 0\n")).is_ok());
}

#[test]
fn invalid_checkpoints_are_not_signed() {
    let rows = [
        (
            Checkpoint {
                origin: String::new(),
                ..sample()
            },
            CheckpointErrorKind::OriginInvalid,
        ),
        (
            Checkpoint {
                time_ms: -5,
                ..sample()
            },
            CheckpointErrorKind::TimeMalformed,
        ),
        (
            Checkpoint {
                tree_size: 0,
                ..sample()
            },
            CheckpointErrorKind::EmptyTreeRootWrong,
        ),
    ];
    for (checkpoint, kind) in rows {
        assert_eq!(
            checkpoint.sign(&signer()).unwrap_err().kind(),
            kind,
            "{checkpoint:?}"
        );
    }
}
