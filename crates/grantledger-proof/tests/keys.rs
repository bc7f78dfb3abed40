//! Signer and verifier keys: Go's published vectors, round trips, files, and a table of
//! malformed keys that each name their rule.

use grantledger_proof::{KeyErrorKind, KeyId, SignerKey, VerifierKey};

// golang.org/x/mod/sumdb/note note_test.go.
const GO_SIGNER_KEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

#[test]
fn go_keys_parse_and_print_back_identically() {
    let signer = SignerKey::parse(GO_SIGNER_KEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), KeyId(0xc74f20a3));
    assert_eq!(signer.to_private_text(), GO_SIGNER_KEY);
    let verifier = VerifierKey::parse(GO_VERIFIER_KEY).unwrap();
    assert_eq!(verifier.to_string(), GO_VERIFIER_KEY);
    assert_eq!(signer.verifier_key(), verifier);
    assert_eq!(
        KeyId::of_ed25519("PeterNeumann", verifier.public_key()),
        KeyId(0xc74f20a3)
    );
    // A file's trailing newline is accepted.
    assert_eq!(
        VerifierKey::parse(&format!("{GO_VERIFIER_KEY}\n")).unwrap(),
        verifier
    );
}

/// Go's `TestNewVerifier` mangles its key every way it can: every proper substring and
/// every single-byte increment must be refused. So must ours.
#[test]
fn every_substring_and_every_byte_increment_of_a_verifier_key_is_refused() {
    let bytes = GO_VERIFIER_KEY.as_bytes();
    for start in 0..=bytes.len() {
        for end in start + 1..=bytes.len() {
            if start == 0 && end == bytes.len() {
                continue;
            }
            let text = std::str::from_utf8(&bytes[start..end]).unwrap();
            assert!(VerifierKey::parse(text).is_err(), "{text:?} was accepted");
        }
    }
    for position in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[position] += 1;
        let text = String::from_utf8(changed).unwrap();
        assert!(VerifierKey::parse(&text).is_err(), "{text:?} was accepted");
    }
}

#[test]
fn every_byte_increment_of_a_signer_key_is_refused() {
    let bytes = GO_SIGNER_KEY.as_bytes();
    for position in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[position] += 1;
        let text = String::from_utf8(changed).unwrap();
        assert!(SignerKey::parse(&text).is_err(), "{text:?} was accepted");
    }
}

#[test]
fn malformed_keys_name_the_field_and_the_rule() {
    use KeyErrorKind::*;
    // A second key, for a key ID that belongs to another key.
    let other = SignerKey::from_seed("PeterNeumann", [3; 32]).unwrap();
    let other_public = other.verifier_key().to_string();
    let other_key_field = other_public.rsplit('+').next().unwrap();
    let rows: Vec<(String, KeyErrorKind, &str)> = vec![
        (
            "PeterNeumann+c74f20a3".into(),
            FieldsMissing,
            "three `+`-separated fields",
        ),
        (
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".into(),
            NameInvalid,
            "field `name`",
        ),
        (
            "Peter\u{a0}Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".into(),
            TextMalformed,
            "no spaces",
        ),
        (
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".into(),
            KeyIdMalformed,
            "field `key id` `c74f20a`",
        ),
        (
            "PeterNeumann+c74f20g3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".into(),
            KeyIdMalformed,
            "8 hexadecimal digits",
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T".into(),
            KeyBase64Malformed,
            "field `key`",
        ),
        (
            "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".into(),
            AlgorithmUnknown,
            "`0x02`",
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy".into(),
            KeyLengthWrong,
            "expected 33",
        ),
        (
            format!("PeterNeumann+c74f20a3+{other_key_field}"),
            KeyIdMismatch,
            "does not match the key",
        ),
        (format!("{GO_VERIFIER_KEY}\n\n"), TextMalformed, "one line"),
    ];
    for (text, kind, needle) in rows {
        let error = VerifierKey::parse(&text).unwrap_err();
        assert_eq!(error.kind(), kind, "{text:?}: {error}");
        let message = error.to_string();
        assert!(message.starts_with("verifier key: "), "{message}");
        assert!(message.contains(needle), "{message} lacks {needle:?}");
    }

    let signer_rows: Vec<(&str, KeyErrorKind)> = vec![
        (
            "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            PrivatePrefixMissing,
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            KeyIdMismatch,
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            AlgorithmUnknown,
        ),
    ];
    for (text, kind) in signer_rows {
        let error = SignerKey::parse(text).unwrap_err();
        assert_eq!(error.kind(), kind, "{text:?}: {error}");
        // The secret never appears in a message, not even a malformed one.
        assert!(!error.to_string().contains("EKFALVFGyNhPJ"), "{error}");
    }
}

#[test]
fn a_small_order_public_key_is_refused() {
    // The identity point (0, 1) encodes as 0x01 followed by zeros: every signature with
    // R = identity and S = 0 would verify under it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let error = VerifierKey::from_public_key("weak", &identity).unwrap_err();
    assert_eq!(error.kind(), KeyErrorKind::PublicKeyInvalid);
    assert!(error.to_string().contains("small order"), "{error}");
}

#[test]
fn generated_keys_round_trip_through_text_and_files() {
    let directory = tempfile::tempdir().unwrap();
    let signer = SignerKey::generate("ledger.example.com/acme").unwrap();
    let again = SignerKey::generate("ledger.example.com/acme").unwrap();
    assert_ne!(
        signer.key_id(),
        again.key_id(),
        "two generated keys are different"
    );
    assert_eq!(
        SignerKey::parse(&signer.to_private_text())
            .unwrap()
            .verifier_key(),
        signer.verifier_key()
    );

    let private_path = directory.path().join("ledger.key");
    let public_path = directory.path().join("ledger.pub");
    signer.write_new_file(&private_path).unwrap();
    signer.verifier_key().write_new_file(&public_path).unwrap();
    assert_eq!(
        SignerKey::read_file(&private_path)
            .unwrap()
            .to_private_text(),
        signer.to_private_text()
    );
    assert_eq!(
        VerifierKey::read_file(&public_path).unwrap(),
        signer.verifier_key()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private key file is owner-only");
    }
    // A rotation never overwrites the old key.
    let error = again.write_new_file(&private_path).unwrap_err();
    assert_eq!(error.kind(), KeyErrorKind::FileIo);
    assert!(error.to_string().contains("ledger.key"), "{error}");
    assert_eq!(
        SignerKey::read_file(&private_path).unwrap().key_id(),
        signer.key_id()
    );
}

#[test]
fn file_errors_name_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("broken.pub");
    std::fs::write(&path, "PeterNeumann+c74f20a3+ARp\n").unwrap();
    let error = VerifierKey::read_file(&path).unwrap_err();
    assert_eq!(error.kind(), KeyErrorKind::KeyBase64Malformed);
    assert!(error.to_string().contains("broken.pub"), "{error}");

    let missing = directory.path().join("missing.pub");
    let error = VerifierKey::read_file(&missing).unwrap_err();
    assert_eq!(error.kind(), KeyErrorKind::FileIo);
    assert!(error.to_string().contains("missing.pub"), "{error}");

    let long = directory.path().join("long.pub");
    std::fs::write(&long, "a".repeat(10_000)).unwrap();
    let error = VerifierKey::read_file(&long).unwrap_err();
    assert!(error.to_string().contains("long.pub"), "{error}");
}

#[test]
fn signer_key_debug_does_not_show_the_secret() {
    let signer = SignerKey::parse(GO_SIGNER_KEY).unwrap();
    let debug = format!("{signer:?}");
    assert!(debug.contains("PeterNeumann"), "{debug}");
    assert!(!debug.contains("AYEKFALV"), "{debug}");
    assert!(!debug.to_lowercase().contains("810a1402"), "{debug}");
}
