//! One error type per operation, each with a closed set of kinds.
//!
//! Messages follow the project's style: lowercase, no final period, offending values in
//! backticks, and the rule that was broken. They never contain private key material.

use std::fmt;

/// An error of kind `K` with a message that names the value and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error<K: fmt::Debug> {
    kind: K,
    message: String,
}

impl<K: fmt::Debug + Copy> Error<K> {
    pub(crate) fn new(kind: K, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// Which rule was broken.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The same error with `context` (a file name, a field) put in front of the message.
    pub(crate) fn context(self, context: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

/// Reading, writing or generating a signer or verifier key failed.
pub type KeyError = Error<KeyErrorKind>;

/// Parsing, signing or verifying a checkpoint failed.
pub type CheckpointError = Error<CheckpointErrorKind>;

/// A newer tree could not be shown to extend a trusted checkpoint.
pub type ConsistencyError = Error<ConsistencyErrorKind>;

/// Why a key could not be read, written or generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyErrorKind {
    /// A key name is empty, too long, or holds a Unicode space or a `+`.
    NameInvalid,
    /// The text does not have the `+`-separated fields of the format.
    FieldsMissing,
    /// The text is not one line of at most [`crate::keys::KEY_TEXT_BYTES_MAX`] bytes
    /// without spaces (and an optional final newline), or a key file is not UTF-8.
    TextMalformed,
    /// A signer key does not start with `PRIVATE+KEY+`.
    PrivatePrefixMissing,
    /// The key ID field is not 8 hexadecimal digits.
    KeyIdMalformed,
    /// The key field is not standard, padded, canonical base64.
    KeyBase64Malformed,
    /// The key's algorithm byte is not `0x01` (Ed25519).
    AlgorithmUnknown,
    /// The key field does not decode to the algorithm byte and 32 key bytes.
    KeyLengthWrong,
    /// The key ID does not match the name and the public key.
    KeyIdMismatch,
    /// The public key is not a valid Ed25519 point, or has small order.
    PublicKeyInvalid,
    /// The operating system's random number generator failed.
    RandomUnavailable,
    /// A key file could not be read or written.
    FileIo,
}

/// Why a checkpoint could not be parsed, signed or verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckpointErrorKind {
    /// The signed note is longer than [`crate::NOTE_BYTES_MAX`].
    NoteTooLarge,
    /// The note holds an ASCII control character other than newline.
    NoteControlCharacter,
    /// The note has no blank line followed by signature lines ending in a newline.
    SignatureBlockMissing,
    /// A signature line is not `— <name> <base64(key ID || signature)>`.
    SignatureLineMalformed,
    /// The note has more than [`crate::SIGNATURES_MAX`] signature lines.
    SignaturesTooMany,
    /// The checkpoint text does not have the origin, tree size, root hash and time lines.
    TextMalformed,
    /// The origin is empty, too long, or holds a Unicode space or a `+`.
    OriginInvalid,
    /// The tree size line is not a decimal `u64` without leading zeros.
    TreeSizeMalformed,
    /// The root hash line is not the canonical base64 of 32 bytes.
    RootHashMalformed,
    /// The checkpoint of the empty tree does not carry the empty tree's root.
    EmptyTreeRootWrong,
    /// The time extension line is not `time_ms <decimal>`.
    TimeMalformed,
    /// An extension line other than the time line.
    ExtensionLineUnknown,
    /// The signer's key name is not the checkpoint's origin.
    SignerNameNotOrigin,
    /// The origin is not the one the verifier expected.
    OriginUnexpected,
    /// Two different trusted keys share one name and key ID.
    TrustedKeysAmbiguous,
    /// A signature by a trusted key does not verify.
    SignatureInvalid,
    /// No signature is by a trusted key named after the origin.
    NoTrustedSignature,
}

/// Why a tree could not be shown to extend a trusted checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsistencyErrorKind {
    /// The trusted checkpoint did not verify.
    CheckpointRejected,
    /// The log is smaller than the trusted checkpoint: records were cut off its end.
    Truncated,
    /// The consistency proof does not connect the trusted root to the log's root: the
    /// history before the checkpoint's size was changed (or the proof is not for this log).
    HistoryRewritten,
}

impl KeyErrorKind {
    /// A stable snake_case name of the rule that was broken.
    pub fn code(self) -> &'static str {
        match self {
            KeyErrorKind::NameInvalid => "name_invalid",
            KeyErrorKind::FieldsMissing => "fields_missing",
            KeyErrorKind::TextMalformed => "text_malformed",
            KeyErrorKind::PrivatePrefixMissing => "private_prefix_missing",
            KeyErrorKind::KeyIdMalformed => "key_id_malformed",
            KeyErrorKind::KeyBase64Malformed => "key_base64_malformed",
            KeyErrorKind::AlgorithmUnknown => "algorithm_unknown",
            KeyErrorKind::KeyLengthWrong => "key_length_wrong",
            KeyErrorKind::KeyIdMismatch => "key_id_mismatch",
            KeyErrorKind::PublicKeyInvalid => "public_key_invalid",
            KeyErrorKind::RandomUnavailable => "random_unavailable",
            KeyErrorKind::FileIo => "file_io",
        }
    }
}

impl CheckpointErrorKind {
    /// A stable snake_case name of the rule that was broken.
    pub fn code(self) -> &'static str {
        match self {
            CheckpointErrorKind::NoteTooLarge => "note_too_large",
            CheckpointErrorKind::NoteControlCharacter => "note_control_character",
            CheckpointErrorKind::SignatureBlockMissing => "signature_block_missing",
            CheckpointErrorKind::SignatureLineMalformed => "signature_line_malformed",
            CheckpointErrorKind::SignaturesTooMany => "signatures_too_many",
            CheckpointErrorKind::TextMalformed => "text_malformed",
            CheckpointErrorKind::OriginInvalid => "origin_invalid",
            CheckpointErrorKind::TreeSizeMalformed => "tree_size_malformed",
            CheckpointErrorKind::RootHashMalformed => "root_hash_malformed",
            CheckpointErrorKind::EmptyTreeRootWrong => "empty_tree_root_wrong",
            CheckpointErrorKind::TimeMalformed => "time_malformed",
            CheckpointErrorKind::ExtensionLineUnknown => "extension_line_unknown",
            CheckpointErrorKind::SignerNameNotOrigin => "signer_name_not_origin",
            CheckpointErrorKind::OriginUnexpected => "origin_unexpected",
            CheckpointErrorKind::TrustedKeysAmbiguous => "trusted_keys_ambiguous",
            CheckpointErrorKind::SignatureInvalid => "signature_invalid",
            CheckpointErrorKind::NoTrustedSignature => "no_trusted_signature",
        }
    }
}

impl ConsistencyErrorKind {
    /// A stable snake_case name of the rule that was broken.
    pub fn code(self) -> &'static str {
        match self {
            ConsistencyErrorKind::CheckpointRejected => "checkpoint_rejected",
            ConsistencyErrorKind::Truncated => "truncated",
            ConsistencyErrorKind::HistoryRewritten => "history_rewritten",
        }
    }
}
