//! The C2SP signed-note envelope, parsed exactly as Go's `note.Open` parses it.
//!
//! ```text
//! <text, ending in a newline>
//! <blank line>
//! — <key name> <base64(key ID, 4 bytes big-endian || signature)>
//! ...
//! ```
//!
//! The whole note is UTF-8 without ASCII control characters other than newline; the text
//! is everything up to and including the newline before the *last* blank line; each
//! signature line starts with an em dash (U+2014) and a space.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{CheckpointError, CheckpointErrorKind};
use crate::keys::{KeyId, SignerKey};

/// Largest signed note accepted, in bytes: a checkpoint text and [`SIGNATURES_MAX`]
/// signature lines of even post-quantum size fit many times over.
pub const NOTE_BYTES_MAX: usize = 128 * 1024;

/// Most signature lines accepted in one note. C2SP signed-note asks verifiers to accept
/// at least 16; Go's `note.Open` stops at 100, as we do.
pub const SIGNATURES_MAX: usize = 100;

/// The start of every signature line: an em dash (U+2014) and a space.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// One signature line of a note, decoded but not verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NoteSignature {
    /// 1-based line number in the whole note, for messages.
    pub line: usize,
    pub name: String,
    pub key_id: KeyId,
    pub signature: Vec<u8>,
}

/// A note split into its text and signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Note<'a> {
    /// The signed text, including its final newline.
    pub text: &'a str,
    pub signatures: Vec<NoteSignature>,
}

pub(crate) fn parse_note(note: &str) -> Result<Note<'_>, CheckpointError> {
    if note.len() > NOTE_BYTES_MAX {
        return Err(CheckpointError::new(
            CheckpointErrorKind::NoteTooLarge,
            format!(
                "signed note is `{}` bytes long: at most `{NOTE_BYTES_MAX}` bytes are accepted",
                note.len()
            ),
        ));
    }
    if let Some((offset, c)) = note
        .char_indices()
        .find(|&(_, c)| (c as u32) < 0x20 && c != '\n')
    {
        return Err(CheckpointError::new(
            CheckpointErrorKind::NoteControlCharacter,
            format!(
                "signed note line `{}` holds control character `U+{:04X}`: a note may hold no ASCII control character but newline",
                line_of(note, offset),
                c as u32
            ),
        ));
    }
    let Some(split) = note.rfind("\n\n") else {
        return Err(CheckpointError::new(
            CheckpointErrorKind::SignatureBlockMissing,
            "signed note has no blank line: a note is its text, a blank line, then signature lines",
        ));
    };
    let (text, signature_block) = (&note[..=split], &note[split + 2..]);
    if signature_block.is_empty() || !signature_block.ends_with('\n') {
        return Err(CheckpointError::new(
            CheckpointErrorKind::SignatureBlockMissing,
            if signature_block.is_empty() {
                "signed note has no signature line after its last blank line".to_string()
            } else {
                "signed note does not end in a newline: every signature line ends in one"
                    .to_string()
            },
        ));
    }
    let first_signature_line = line_of(note, split + 2);
    let mut signatures = Vec::new();
    for (position, line) in signature_block.split_terminator('\n').enumerate() {
        let line_number = first_signature_line + position;
        if position >= SIGNATURES_MAX {
            return Err(CheckpointError::new(
                CheckpointErrorKind::SignaturesTooMany,
                format!("signed note has more than `{SIGNATURES_MAX}` signature lines"),
            ));
        }
        signatures.push(parse_signature_line(line, line_number)?);
    }
    Ok(Note { text, signatures })
}

/// The signature line of `key` over `text`, newline included.
pub(crate) fn signature_line(key: &SignerKey, text: &str) -> String {
    let mut bytes = Vec::with_capacity(4 + 64);
    bytes.extend_from_slice(&key.key_id().0.to_be_bytes());
    bytes.extend_from_slice(&key.sign(text.as_bytes()));
    format!(
        "{SIGNATURE_LINE_PREFIX}{} {}\n",
        key.name(),
        BASE64.encode(bytes)
    )
}

/// Go's `isValidName`: non-empty, no Unicode space, no `+`. (Control characters are
/// already refused for the whole note.)
pub(crate) fn is_signature_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn parse_signature_line(line: &str, line_number: usize) -> Result<NoteSignature, CheckpointError> {
    let malformed = |rule: &str| {
        CheckpointError::new(
            CheckpointErrorKind::SignatureLineMalformed,
            format!("signed note line `{line_number}` {rule}"),
        )
    };
    let Some(rest) = line.strip_prefix(SIGNATURE_LINE_PREFIX) else {
        return Err(malformed(
            "does not start with an em dash (U+2014) and a space: after the blank line, every line is a signature line",
        ));
    };
    let Some((name, signature_base64)) = rest.split_once(' ') else {
        return Err(malformed(
            "has no space between key name and signature: the form is `— <key name> <base64 signature>`",
        ));
    };
    if !is_signature_name(name) {
        return Err(malformed(&format!(
            "names key `{}`: a key name is non-empty, with no Unicode space and no `+`",
            name.escape_debug()
        )));
    }
    let bytes = BASE64.decode(signature_base64).map_err(|error| {
        malformed(&format!(
            "has signature `{}` that is not standard padded base64 ({error})",
            signature_base64.escape_debug()
        ))
    })?;
    if bytes.len() < 5 {
        return Err(malformed(&format!(
            "has a signature of `{}` bytes: it is a 4-byte key ID followed by a non-empty signature",
            bytes.len()
        )));
    }
    Ok(NoteSignature {
        line: line_number,
        name: name.to_string(),
        key_id: KeyId(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        signature: bytes[4..].to_vec(),
    })
}

/// The 1-based line number of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VerifierKey;

    // golang.org/x/mod/sumdb/note note_test.go (TestNewSigner, TestSign, TestOpen): the
    // key pair and the note Go produces. Ed25519 is deterministic, so a byte-exact match
    // means Go's note.Open accepts our notes and ours accepts Go's.
    const GO_SIGNER_KEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER_KEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIGNATURE_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn signing_reproduces_the_go_note_byte_for_byte() {
        let key = SignerKey::parse(GO_SIGNER_KEY).unwrap();
        assert_eq!(signature_line(&key, GO_TEXT), GO_SIGNATURE_LINE);
        assert_eq!(key.verifier_key().to_string(), GO_VERIFIER_KEY);
    }

    #[test]
    fn the_go_note_parses_and_its_signature_verifies() {
        let note = format!("{GO_TEXT}\n{GO_SIGNATURE_LINE}");
        let parsed = parse_note(&note).unwrap();
        assert_eq!(parsed.text, GO_TEXT);
        assert_eq!(parsed.signatures.len(), 1);
        let signature = &parsed.signatures[0];
        assert_eq!(signature.name, "PeterNeumann");
        assert_eq!(signature.key_id, KeyId(0xc74f20a3));
        assert_eq!(signature.line, 4);
        let verifier = VerifierKey::parse(GO_VERIFIER_KEY).unwrap();
        assert!(verifier.verify(parsed.text.as_bytes(), &signature.signature));
        let altered = GO_TEXT.replace("cryptography", "cryptographY");
        assert!(!verifier.verify(altered.as_bytes(), &signature.signature));
    }

    /// The malformed notes of Go's `TestOpen` ("mangled note" table), plus our bounds; each
    /// must fail with the kind that names its rule.
    #[test]
    fn malformed_notes_name_the_broken_rule() {
        let good = format!("{GO_TEXT}\n{GO_SIGNATURE_LINE}");
        let many = format!(
            "{GO_TEXT}\n{}",
            GO_SIGNATURE_LINE.repeat(SIGNATURES_MAX + 1)
        );
        let huge = format!("{}\n\n{GO_SIGNATURE_LINE}", "a".repeat(NOTE_BYTES_MAX));
        use CheckpointErrorKind::*;
        let rows: Vec<(String, CheckpointErrorKind)> = vec![
            (GO_TEXT.to_string(), SignatureBlockMissing),
            (format!("{GO_TEXT}\n"), SignatureBlockMissing),
            (
                good.trim_end_matches('\n').to_string(),
                SignatureBlockMissing,
            ),
            (good.replace('\n', "\r\n"), NoteControlCharacter),
            (good.replace(' ', "\t"), NoteControlCharacter),
            (
                format!("{GO_TEXT}\nnot a signature\n"),
                SignatureLineMalformed,
            ),
            (
                format!("{GO_TEXT}\n\u{2014} PeterNeumann\n"),
                SignatureLineMalformed,
            ),
            (
                format!("{GO_TEXT}\n\u{2014}  x08go/ZJ\n"),
                SignatureLineMalformed,
            ),
            (
                format!("{GO_TEXT}\n\u{2014} Peter+Neumann x08go/ZJkuBS9U\n"),
                SignatureLineMalformed,
            ),
            (
                format!("{GO_TEXT}\n\u{2014} PeterNeumann x08go/ZJkuBS9U\n"),
                SignatureLineMalformed,
            ),
            (
                format!("{GO_TEXT}\n\u{2014} PeterNeumann AAAAAA==\n"),
                SignatureLineMalformed,
            ),
            (
                format!(
                    "{GO_TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
                ),
                SignatureLineMalformed,
            ),
            (many, SignaturesTooMany),
            (huge, NoteTooLarge),
        ];
        for (note, kind) in rows {
            let error = parse_note(&note).unwrap_err();
            assert_eq!(error.kind(), kind, "{note:?}: {error}");
        }
        assert!(parse_note(&good).is_ok());
        let sixteen = format!("{GO_TEXT}\n{}", GO_SIGNATURE_LINE.repeat(16));
        assert_eq!(parse_note(&sixteen).unwrap().signatures.len(), 16);
    }

    #[test]
    fn the_text_ends_at_the_last_blank_line() {
        let text = "one\n\ntwo\n";
        let note = format!("{text}\n{GO_SIGNATURE_LINE}");
        assert_eq!(parse_note(&note).unwrap().text, text);
    }
}
