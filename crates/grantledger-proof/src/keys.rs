//! Ed25519 signer and verifier keys in the text formats of Go's
//! `golang.org/x/mod/sumdb/note` and C2SP signed-note.
//!
//! - Verifier key (public, what auditors hold): `<name>+<key id>+<base64(0x01 || public key)>`
//! - Signer key (private, what the ledger holds): `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`
//!
//! `<key id>` is 8 lowercase hexadecimal digits: the first 4 bytes, big-endian, of
//! `SHA-256(name || 0x0A || 0x01 || 32-byte public key)` (C2SP signed-note, "Ed25519
//! signatures"). The seed is the 32-byte Ed25519 private key of RFC 8032. A key file holds
//! one key and may end in one newline. Keys made here open with Go's `note.NewSigner` and
//! `note.NewVerifier`, and theirs open here.
//!
//! Rotation: a new key keeps the name (the log's origin) and gets a new key ID; verifiers
//! hold the old and the new verifier key, and every checkpoint names, in its signature line,
//! the key that signed it.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::Digest as _;

use crate::error::{KeyError, KeyErrorKind};

/// The signature type byte of Ed25519 in C2SP signed-note, prefixed to both key encodings.
pub const ALGORITHM_ED25519: u8 = 0x01;

/// Longest key name (and so checkpoint origin) accepted, in bytes. Names are identifiers
/// such as `ledger.example.com/acme`; the bound keeps key files and notes small.
pub const KEY_NAME_BYTES_MAX: usize = 256;

/// Longest key text (a key file's content) read, in bytes: the name, the prefix and the
/// fields with room to spare.
pub const KEY_TEXT_BYTES_MAX: usize = KEY_NAME_BYTES_MAX + 128;

const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

const NAME_RULE: &str = "a key name is non-empty, at most 256 bytes, with no Unicode space, no control character and no `+`";

/// The 32-bit key ID that a signature line carries next to the key name.
///
/// It identifies the key; it is not a strong hash (C2SP signed-note: anyone can make a key
/// with a given ID, but not one that produces valid signatures for the trusted key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl KeyId {
    /// The key ID of the Ed25519 public key `public_key` under `name`:
    /// `SHA-256(name || 0x0A || 0x01 || public_key)[0..4]`, big-endian.
    pub fn of_ed25519(name: &str, public_key: &[u8; 32]) -> KeyId {
        let digest = sha2::Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([b'\n', ALGORITHM_ED25519])
            .chain_update(public_key)
            .finalize();
        KeyId(u32::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A private Ed25519 key with its name: what signs checkpoints. Keep it out of logs: its
/// `Debug` form shows the name and key ID only, and it has no `Display`.
pub struct SignerKey {
    name: String,
    key_id: KeyId,
    // INVARIANT: key_id == KeyId::of_ed25519(name, signing_key.verifying_key()).
    // ed25519-dalek zeroizes the key when it is dropped (its `zeroize` feature is on).
    signing_key: SigningKey,
}

/// A public Ed25519 key with its name and key ID: what auditors hold and trust.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: KeyId,
    // INVARIANT: key_id == KeyId::of_ed25519(name, verifying_key) and the key is not weak.
    verifying_key: VerifyingKey,
}

impl SignerKey {
    /// A new key named `name`, from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<SignerKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| {
            KeyError::new(
                KeyErrorKind::RandomUnavailable,
                format!("the operating system's random number generator failed: {error}"),
            )
        })?;
        let key = SignerKey::from_seed(name, seed);
        // Best effort: the SigningKey holds (and zeroizes) its own copy.
        seed.fill(0);
        key
    }

    /// The key named `name` with the RFC 8032 private key `seed`. For tests and for keys
    /// kept in other stores; use [`SignerKey::generate`] for new keys.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SignerKey, KeyError> {
        check_name(name, "name")?;
        let signing_key = SigningKey::from_bytes(&seed);
        let key_id = KeyId::of_ed25519(name, signing_key.verifying_key().as_bytes());
        Ok(SignerKey {
            name: name.to_string(),
            key_id,
            signing_key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`, optionally followed by
    /// one newline. Errors name the field and the rule, never the key material.
    pub fn parse(text: &str) -> Result<SignerKey, KeyError> {
        parse_signer(text).map_err(|error| error.context("signer key"))
    }

    /// Reads a signer key file (see [`SignerKey::parse`]).
    pub fn read_file(path: &Path) -> Result<SignerKey, KeyError> {
        let text = read_key_file(path)?;
        parse_signer(&text)
            .map_err(|error| error.context(format!("signer key `{}`", path.display())))
    }

    /// Writes the key to a new file, readable and writable by its owner only (mode 0600 on
    /// Unix). Refuses to overwrite an existing file, so a rotation never loses a key.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        write_key_file(path, options, &self.to_private_text())
    }

    /// The key in the signer key format. This is the secret: write it only where the
    /// private key belongs.
    pub fn to_private_text(&self) -> String {
        let mut bytes = [0u8; 33];
        bytes[0] = ALGORITHM_ED25519;
        bytes[1..].copy_from_slice(self.signing_key.as_bytes());
        let text = format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            self.key_id,
            BASE64.encode(bytes)
        );
        bytes.fill(0);
        text
    }

    /// The key's name; a checkpoint's origin when it signs checkpoints.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's ID, as written in its signature lines.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public half, to hand to auditors.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            verifying_key: self.signing_key.verifying_key(),
        }
    }

    /// The Ed25519 signature of `message` (deterministic, RFC 8032).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing_key.sign(message).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl VerifierKey {
    /// The verifier key for `public_key` under `name`.
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<VerifierKey, KeyError> {
        check_name(name, "name")?;
        let verifying_key = verifying_key(public_key)?;
        Ok(VerifierKey {
            name: name.to_string(),
            key_id: KeyId::of_ed25519(name, public_key),
            verifying_key,
        })
    }

    /// Parses `<name>+<key id>+<base64(0x01 || public key)>`, optionally followed by one
    /// newline.
    pub fn parse(text: &str) -> Result<VerifierKey, KeyError> {
        parse_verifier(text).map_err(|error| error.context("verifier key"))
    }

    /// Reads a verifier key file (see [`VerifierKey::parse`]).
    pub fn read_file(path: &Path) -> Result<VerifierKey, KeyError> {
        let text = read_key_file(path)?;
        parse_verifier(&text)
            .map_err(|error| error.context(format!("verifier key `{}`", path.display())))
    }

    /// Writes the key (its `Display` form and a newline) to a new file; refuses to
    /// overwrite an existing one.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        write_key_file(path, options, &self.to_string())
    }

    /// The key's name: the origin of the checkpoints it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        self.verifying_key.as_bytes()
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`. Uses dalek's
    /// strict verification, which refuses non-canonical signatures, so a signature has
    /// exactly one accepted encoding.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.verifying_key
            .verify_strict(message, &signature)
            .is_ok()
    }
}

/// The verifier key format: `<name>+<key id>+<base64(0x01 || public key)>`.
impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = [0u8; 33];
        bytes[0] = ALGORITHM_ED25519;
        bytes[1..].copy_from_slice(self.verifying_key.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, BASE64.encode(bytes))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// Whether `name` breaks the key name rule: C2SP signed-note's (non-empty, no Unicode
/// space, no `+`), plus at most [`KEY_NAME_BYTES_MAX`] bytes and no control character
/// (which no note may hold). Checkpoint origins obey the same rule, since a log's keys are
/// named after its origin.
pub(crate) fn name_breaks_rule(name: &str) -> bool {
    name.is_empty()
        || name.len() > KEY_NAME_BYTES_MAX
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

fn check_name(name: &str, field: &str) -> Result<(), KeyError> {
    if name_breaks_rule(name) {
        return Err(KeyError::new(
            KeyErrorKind::NameInvalid,
            format!(
                "field `{field}` `{}` breaks the rule: {NAME_RULE}",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

fn parse_signer(text: &str) -> Result<SignerKey, KeyError> {
    let text = strip_one_newline(text)?;
    let Some(rest) = text.strip_prefix(PRIVATE_PREFIX) else {
        return Err(KeyError::new(
            KeyErrorKind::PrivatePrefixMissing,
            "does not start with `PRIVATE+KEY+`: the format is `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`",
        ));
    };
    let (name, key_id, key_bytes) = split_fields(
        rest,
        "PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>",
        false,
    )?;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&key_bytes[1..]);
    let key = SignerKey::from_seed(name, seed)?;
    seed.fill(0);
    if key.key_id != key_id {
        return Err(KeyError::new(
            KeyErrorKind::KeyIdMismatch,
            format!(
                "field `key id` `{key_id}` does not match the key: the key ID of name `{name}` and this key's public key is `{}` (the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key))",
                key.key_id
            ),
        ));
    }
    Ok(key)
}

fn parse_verifier(text: &str) -> Result<VerifierKey, KeyError> {
    let text = strip_one_newline(text)?;
    let (name, key_id, key_bytes) =
        split_fields(text, "<name>+<key id>+<base64(0x01 || public key)>", true)?;
    let public_key: [u8; 32] = key_bytes[1..]
        .try_into()
        .expect("split_fields checked the length");
    let key = VerifierKey::from_public_key(name, &public_key)?;
    if key.key_id != key_id {
        return Err(KeyError::new(
            KeyErrorKind::KeyIdMismatch,
            format!(
                "field `key id` `{key_id}` does not match the key: the key ID of name `{name}` and public key `{}` is `{}` (the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key))",
                hex::encode(public_key),
                key.key_id
            ),
        ));
    }
    Ok(key)
}

/// Splits `<name>+<key id>+<base64 key>` and checks each field's syntax. The base64 field
/// may itself hold `+`, so only the first two `+` split. `public` says whether the key
/// field may be quoted in messages.
fn split_fields<'a>(
    text: &'a str,
    format: &str,
    public: bool,
) -> Result<(&'a str, KeyId, [u8; 33]), KeyError> {
    let mut fields = text.splitn(3, '+');
    let (Some(name), Some(key_id_text), Some(key_base64)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(KeyError::new(
            KeyErrorKind::FieldsMissing,
            format!("expected three `+`-separated fields: the format is `{format}`"),
        ));
    };
    check_name(name, "name")?;
    let key_id_ok = key_id_text.len() == 8 && key_id_text.bytes().all(|b| b.is_ascii_hexdigit());
    let key_id = u32::from_str_radix(key_id_text, 16)
        .ok()
        .filter(|_| key_id_ok)
        .ok_or_else(|| {
            KeyError::new(
                KeyErrorKind::KeyIdMalformed,
                format!(
                    "field `key id` `{}` is not 8 hexadecimal digits",
                    key_id_text.escape_debug()
                ),
            )
        })?;
    let shown = |value: &str| {
        if public {
            format!(" `{}`", value.escape_debug())
        } else {
            String::new()
        }
    };
    let key_bytes = BASE64.decode(key_base64).map_err(|error| {
        KeyError::new(
            KeyErrorKind::KeyBase64Malformed,
            format!(
                "field `key`{} is not standard padded base64 ({error})",
                shown(key_base64)
            ),
        )
    })?;
    match key_bytes.first() {
        Some(&ALGORITHM_ED25519) => {}
        Some(&other) => {
            return Err(KeyError::new(
                KeyErrorKind::AlgorithmUnknown,
                format!(
                    "field `key` starts with algorithm byte `0x{other:02x}`: only `0x01` (Ed25519) is supported"
                ),
            ));
        }
        None => {
            return Err(KeyError::new(
                KeyErrorKind::KeyLengthWrong,
                "field `key` is empty: expected the algorithm byte `0x01` and 32 key bytes",
            ));
        }
    }
    let key_bytes: [u8; 33] = key_bytes.as_slice().try_into().map_err(|_| {
        KeyError::new(
            KeyErrorKind::KeyLengthWrong,
            format!(
                "field `key` decodes to `{}` bytes: expected 33, the algorithm byte `0x01` and 32 key bytes",
                key_bytes.len()
            ),
        )
    })?;
    Ok((name, KeyId(key_id), key_bytes))
}

fn verifying_key(public_key: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| {
        KeyError::new(
            KeyErrorKind::PublicKeyInvalid,
            format!(
                "public key `{}` is not a valid Ed25519 point",
                hex::encode(public_key)
            ),
        )
    })?;
    if key.is_weak() {
        return Err(KeyError::new(
            KeyErrorKind::PublicKeyInvalid,
            format!(
                "public key `{}` has small order: every signature would verify",
                hex::encode(public_key)
            ),
        ));
    }
    Ok(key)
}

/// A key is one line; a file may end in a newline. Anything else around it is an error
/// rather than trimmed, so that what is read is exactly what was written.
fn strip_one_newline(text: &str) -> Result<&str, KeyError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.len() > KEY_TEXT_BYTES_MAX {
        return Err(KeyError::new(
            KeyErrorKind::TextMalformed,
            format!(
                "is `{}` bytes long: a key is at most `{KEY_TEXT_BYTES_MAX}` bytes",
                text.len()
            ),
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(KeyError::new(
            KeyErrorKind::TextMalformed,
            format!(
                "holds `{}`: a key is one line with no spaces, optionally followed by one newline",
                c.escape_debug()
            ),
        ));
    }
    Ok(text)
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let io_error = |error: std::io::Error| {
        KeyError::new(
            KeyErrorKind::FileIo,
            format!("cannot read key file `{}`: {error}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    // One byte more than a key and a newline may have, to tell "too long" from "just fits".
    file.take(KEY_TEXT_BYTES_MAX as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() > KEY_TEXT_BYTES_MAX + 1 {
        return Err(KeyError::new(
            KeyErrorKind::TextMalformed,
            format!(
                "key file `{}` is longer than `{KEY_TEXT_BYTES_MAX}` bytes: a key file holds one key",
                path.display()
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        KeyError::new(
            KeyErrorKind::TextMalformed,
            format!("key file `{}` is not UTF-8", path.display()),
        )
    })
}

fn write_key_file(path: &Path, options: std::fs::OpenOptions, text: &str) -> Result<(), KeyError> {
    let io_error = |error: std::io::Error| {
        KeyError::new(
            KeyErrorKind::FileIo,
            format!("cannot write key file `{}`: {error}", path.display()),
        )
    };
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(text.as_bytes()).map_err(io_error)?;
    file.write_all(b"\n").map_err(io_error)?;
    file.sync_all().map_err(io_error)
}
