//! Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes.
//!
//! A grantledger checkpoint's text is exactly four lines:
//!
//! ```text
//! <origin>                       the log's name, also the signing key's name
//! <tree size>                    decimal, no leading zeros ("0" for the empty tree)
//! <root hash>                    standard padded base64 of the 32-byte Blake3 Merkle root
//! time_ms <ledger time>          extension line: UTC milliseconds, decimal, no leading zeros
//! ```
//!
//! each ending in a newline, followed by a blank line and one or more signature lines
//! `— <key name> <base64(key ID || Ed25519 signature of the text)>`. The time is the
//! ledger's clock when the checkpoint was made: never earlier than the time of the last
//! record the tree covers, so a bundle can check that each record's time is not after it.
//! The root is the Merkle tree of RFC 9162 over the log's record hashes with Blake3 (see
//! [`crate::record`]). The text is byte-exact with Go's `note` package: a Go verifier
//! holding the verifier key accepts these notes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use grantledger_merkle::{Blake3, Digest, MerkleHasher as _};

use crate::error::{CheckpointError, CheckpointErrorKind};
use crate::keys::{KeyId, SignerKey, VerifierKey, name_breaks_rule};
use crate::note::{self, NoteSignature};

/// The prefix of the checkpoint's one extension line, which carries the ledger time.
pub const TIME_EXTENSION_PREFIX: &str = "time_ms ";

/// A checkpoint's content: which log, how many records, their Merkle root, and when.
///
/// Only a [`SignedCheckpoint`] that verified against trusted keys says anything about a
/// log; a bare `Checkpoint` is a claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The log's name (C2SP: a schema-less URL such as `ledger.example.com/acme`). Also
    /// the name of the keys that sign for it.
    pub origin: String,
    /// How many records (Merkle leaves) the tree has.
    pub tree_size: u64,
    /// The Blake3 Merkle root of the first `tree_size` record hashes.
    pub root_hash: Digest,
    /// The ledger's time when the checkpoint was made, UTC milliseconds, not negative.
    pub time_ms: i64,
}

/// A signed note whose text is a checkpoint, kept byte for byte as it was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    note: String,
    // INVARIANT: `checkpoint` and `signatures` are what `note` parses to.
    checkpoint: Checkpoint,
    signatures: Vec<NoteSignature>,
}

/// A checkpoint that verified, with the trusted keys whose signatures verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint's content, now trusted as far as the keys are.
    pub checkpoint: Checkpoint,
    /// The trusted keys (name and key ID) whose signatures verified, in note order.
    pub signed_by: Vec<(String, KeyId)>,
}

impl Checkpoint {
    /// The checkpoint text, the bytes that are signed.
    pub fn to_text(&self) -> Result<String, CheckpointError> {
        check_origin(&self.origin)?;
        if self.time_ms < 0 {
            return Err(CheckpointError::new(
                CheckpointErrorKind::TimeMalformed,
                format!(
                    "checkpoint time `{}` is negative: ledger time is UTC milliseconds since 1970",
                    self.time_ms
                ),
            ));
        }
        if self.tree_size == 0 && self.root_hash != Blake3.empty_root() {
            return Err(empty_tree_root_wrong(&self.root_hash));
        }
        Ok(format!(
            "{}\n{}\n{}\n{TIME_EXTENSION_PREFIX}{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root_hash),
            self.time_ms
        ))
    }

    /// Parses a checkpoint text (the part of a note before the blank line, final newline
    /// included). Strict: every rule of the module documentation is checked.
    pub fn parse_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        let malformed =
            |message: String| CheckpointError::new(CheckpointErrorKind::TextMalformed, message);
        let Some(body) = text.strip_suffix('\n') else {
            return Err(malformed(
                "checkpoint text does not end in a newline".to_string(),
            ));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if let Some(empty) = lines.iter().position(|line| line.is_empty()) {
            return Err(malformed(format!(
                "checkpoint line `{}` is empty: every line of a checkpoint is non-empty",
                empty + 1
            )));
        }
        if lines.len() < 3 {
            return Err(malformed(format!(
                "checkpoint has `{}` lines: it has an origin, a tree size and a root hash line, then extension lines",
                lines.len()
            )));
        }
        let origin = lines[0];
        check_origin(origin)?;
        let tree_size = parse_decimal(lines[1]).ok_or_else(|| {
            CheckpointError::new(
                CheckpointErrorKind::TreeSizeMalformed,
                format!(
                    "checkpoint tree size `{}` is not a decimal u64 without leading zeros or sign",
                    lines[1].escape_debug()
                ),
            )
        })?;
        let root_hash = BASE64
            .decode(lines[2])
            .ok()
            .and_then(|bytes| Digest::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| {
                CheckpointError::new(
                    CheckpointErrorKind::RootHashMalformed,
                    format!(
                        "checkpoint root hash `{}` is not the standard padded base64 of 32 bytes",
                        lines[2].escape_debug()
                    ),
                )
            })?;
        if tree_size == 0 && root_hash != Blake3.empty_root() {
            return Err(empty_tree_root_wrong(&root_hash));
        }
        let mut time_ms = None;
        for (index, line) in lines.iter().enumerate().skip(3) {
            let Some(value) = line.strip_prefix(TIME_EXTENSION_PREFIX) else {
                return Err(CheckpointError::new(
                    CheckpointErrorKind::ExtensionLineUnknown,
                    format!(
                        "checkpoint line `{}` `{}` is not the `time_ms <ledger time>` extension line, the only one grantledger checkpoints carry",
                        index + 1,
                        line.escape_debug()
                    ),
                ));
            };
            if time_ms.is_some() {
                return Err(CheckpointError::new(
                    CheckpointErrorKind::TimeMalformed,
                    format!(
                        "checkpoint line `{}` is a second `time_ms` line: a checkpoint has exactly one",
                        index + 1
                    ),
                ));
            }
            let value = parse_decimal(value)
                .and_then(|value| i64::try_from(value).ok())
                .ok_or_else(|| {
                    CheckpointError::new(
                        CheckpointErrorKind::TimeMalformed,
                        format!(
                            "checkpoint time `{}` is not a decimal i64 of at least 0 without leading zeros or sign",
                            value.escape_debug()
                        ),
                    )
                })?;
            time_ms = Some(value);
        }
        let Some(time_ms) = time_ms else {
            return Err(CheckpointError::new(
                CheckpointErrorKind::TimeMalformed,
                "checkpoint has no `time_ms <ledger time>` extension line",
            ));
        };
        Ok(Checkpoint {
            origin: origin.to_string(),
            tree_size,
            root_hash,
            time_ms,
        })
    }

    /// Signs the checkpoint with `key`, whose name must be the origin (C2SP
    /// tlog-checkpoint: the log's key name should match the origin line; grantledger makes
    /// it a rule so a verifier knows which keys speak for which log).
    pub fn sign(&self, key: &SignerKey) -> Result<SignedCheckpoint, CheckpointError> {
        self.sign_with_keys(&[key])
    }

    /// Signs the checkpoint with several keys, one signature line each in the order given:
    /// during a key rotation the ledger signs with the old and the new key, so verifiers
    /// holding either accept the checkpoint.
    pub fn sign_with_keys(&self, keys: &[&SignerKey]) -> Result<SignedCheckpoint, CheckpointError> {
        let text = self.to_text()?;
        if keys.is_empty() {
            return Err(CheckpointError::new(
                CheckpointErrorKind::NoTrustedSignature,
                "a checkpoint needs at least one signing key",
            ));
        }
        let mut note = text.clone();
        note.push('\n');
        for key in keys {
            if key.name() != self.origin {
                return Err(CheckpointError::new(
                    CheckpointErrorKind::SignerNameNotOrigin,
                    format!(
                        "signing key name `{}` is not the checkpoint origin `{}`: a log's keys are named after its origin",
                        key.name(),
                        self.origin
                    ),
                ));
            }
            note.push_str(&note::signature_line(key, &text));
        }
        SignedCheckpoint::parse(&note)
    }
}

impl SignedCheckpoint {
    /// Parses a signed checkpoint note. Checks the syntax only: call one of the `verify`
    /// methods before trusting any of it.
    pub fn parse(note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let parsed = note::parse_note(note)?;
        let checkpoint = Checkpoint::parse_text(parsed.text)?;
        Ok(SignedCheckpoint {
            note: note.to_string(),
            checkpoint,
            signatures: parsed.signatures,
        })
    }

    /// The note, byte for byte as signed and parsed: what to store, publish and put in
    /// bundles.
    pub fn as_str(&self) -> &str {
        &self.note
    }

    /// The checkpoint the note claims, before any signature is checked.
    pub fn unverified_checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Verifies the note against the trusted keys and returns the checkpoint.
    ///
    /// Signatures by keys not in `trusted_keys` are ignored (C2SP signed-note: they may be
    /// witnesses, or keys rotated out). Every signature by a trusted key must verify, and at
    /// least one of them must be by a key named after the origin. Stricter than Go's
    /// `note.Open` in one corner: Go skips a trusted key's repeated signature lines
    /// unchecked, this checks every one, so a note with a valid and an invalid signature by
    /// the same key is refused here.
    pub fn verify(&self, trusted_keys: &[VerifierKey]) -> Result<Checkpoint, CheckpointError> {
        Ok(self.verify_detailed(trusted_keys, None)?.checkpoint)
    }

    /// [`SignedCheckpoint::verify`], and the origin must be `origin`: the check that stops
    /// a checkpoint of another log signed by a key the verifier also trusts.
    pub fn verify_for_origin(
        &self,
        trusted_keys: &[VerifierKey],
        origin: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        Ok(self.verify_detailed(trusted_keys, Some(origin))?.checkpoint)
    }

    /// [`SignedCheckpoint::verify`] that also says which keys signed.
    pub fn verify_detailed(
        &self,
        trusted_keys: &[VerifierKey],
        expected_origin: Option<&str>,
    ) -> Result<VerifiedCheckpoint, CheckpointError> {
        let origin = &self.checkpoint.origin;
        if let Some(expected) = expected_origin
            && expected != origin
        {
            return Err(CheckpointError::new(
                CheckpointErrorKind::OriginUnexpected,
                format!("checkpoint origin `{origin}` is not the expected origin `{expected}`"),
            ));
        }
        let text = self.text();
        let mut signed_by: Vec<(String, KeyId)> = Vec::new();
        for signature in &self.signatures {
            let mut matching = trusted_keys
                .iter()
                .filter(|key| key.name() == signature.name && key.key_id() == signature.key_id);
            let Some(key) = matching.next() else {
                continue;
            };
            if matching.any(|other| other.public_key() != key.public_key()) {
                return Err(CheckpointError::new(
                    CheckpointErrorKind::TrustedKeysAmbiguous,
                    format!(
                        "two different trusted keys are named `{}+{}`: fix the trusted key list",
                        signature.name, signature.key_id
                    ),
                ));
            }
            if !key.verify(text.as_bytes(), &signature.signature) {
                return Err(CheckpointError::new(
                    CheckpointErrorKind::SignatureInvalid,
                    format!(
                        "signed note line `{}`: the signature by trusted key `{}+{}` does not verify over the checkpoint text",
                        signature.line, signature.name, signature.key_id
                    ),
                ));
            }
            let id = (signature.name.clone(), signature.key_id);
            if !signed_by.contains(&id) {
                signed_by.push(id);
            }
        }
        if !signed_by.iter().any(|(name, _)| name == origin) {
            let found: Vec<String> = self
                .signatures
                .iter()
                .map(|signature| format!("`{}+{}`", signature.name, signature.key_id))
                .collect();
            let trusted: Vec<String> = trusted_keys
                .iter()
                .map(|key| format!("`{}+{}`", key.name(), key.key_id()))
                .collect();
            return Err(CheckpointError::new(
                CheckpointErrorKind::NoTrustedSignature,
                format!(
                    "checkpoint of origin `{origin}` has no signature by a trusted key named after its origin: signed by {}; trusted keys are {}",
                    join_or_none(&found),
                    join_or_none(&trusted)
                ),
            ));
        }
        Ok(VerifiedCheckpoint {
            checkpoint: self.checkpoint.clone(),
            signed_by,
        })
    }

    /// The signed text: the note up to and including the newline before the blank line.
    fn text(&self) -> &str {
        let split = self
            .note
            .rfind("\n\n")
            .expect("a parsed note has a blank line");
        &self.note[..=split]
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if name_breaks_rule(origin) {
        return Err(CheckpointError::new(
            CheckpointErrorKind::OriginInvalid,
            format!(
                "checkpoint origin `{}` breaks the rule: an origin is a key name, non-empty, at most 256 bytes, with no Unicode space, no control character and no `+`",
                origin.escape_debug()
            ),
        ));
    }
    Ok(())
}

fn empty_tree_root_wrong(root_hash: &Digest) -> CheckpointError {
    CheckpointError::new(
        CheckpointErrorKind::EmptyTreeRootWrong,
        format!(
            "checkpoint of tree size 0 has root `{}`: the empty tree's root is blake3(\"\") `{}`",
            hex::encode(root_hash),
            hex::encode(Blake3.empty_root())
        ),
    )
}

/// A decimal `u64` in canonical form: ASCII digits, no sign, no leading zero unless the
/// value is 0.
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return None;
    }
    text.parse().ok()
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
