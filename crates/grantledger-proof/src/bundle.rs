//! Evidence bundles: a self-contained JSON file that proves a set of log records (a grant's
//! evidence chain, or the records that answer a "why" question) are in a log whose signed
//! checkpoint the auditor trusts. `schemas/EVIDENCE_BUNDLE.md` documents the format byte
//! for byte; `schemas/evidence-bundle.schema.json` is its generated JSON Schema.
//!
//! What [`Bundle::verify`] proves: the checkpoint is signed by a trusted key of the
//! bundle's origin; every record obeys the record rules and carries its own hash; every
//! record is the leaf `sequence - 1` of the tree the checkpoint signed. What it leaves to
//! the caller: the `event` field of each event is a human-readable rendering that the
//! bundle does not authenticate (decode the verified record body and compare, as
//! `grantledger verify-bundle` does), and the `subject` is a description, not a claim.

use grantledger_merkle::{Blake3, Digest, verify_inclusion};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::keys::{KeyId, VerifierKey};
use crate::record::{self, RECORD_BYTES_MAX, RecordHeader};

/// The value of a bundle's `format` field.
pub const BUNDLE_FORMAT: &str = "grantledger-evidence-bundle/1";

/// Most events in one bundle. A grant's chain has a handful; a "why" answer a few chains.
pub const BUNDLE_EVENTS_MAX: usize = 10_000;

/// Largest bundle file read by [`Bundle::from_json`], in bytes.
pub const BUNDLE_JSON_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Most hashes in one inclusion proof: the depth of a tree of 2^64 leaves.
pub const PROOF_HASHES_MAX: usize = 64;

/// Longest subject text (grant id or question), in bytes.
pub const SUBJECT_BYTES_MAX: usize = 4096;

/// An evidence bundle, as stored in its JSON file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "grantledger evidence bundle, format 1")]
pub struct Bundle {
    /// Always `grantledger-evidence-bundle/1`.
    #[schemars(extend("const" = "grantledger-evidence-bundle/1"))]
    pub format: String,
    /// The log's origin; must be the checkpoint's origin.
    pub origin: String,
    /// What the bundle is evidence for. Informational: not covered by any signature.
    pub subject: Subject,
    /// The signed checkpoint note (C2SP tlog-checkpoint), byte for byte as signed.
    pub checkpoint: String,
    /// The records, in ascending sequence order, each with its inclusion proof.
    pub events: Vec<BundleEvent>,
}

/// What a bundle is evidence for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Subject {
    /// The evidence chain of one grant: request, decision, approvals, issuance, extensions,
    /// revocation, confirmation.
    Grant {
        /// The grant's id.
        grant_id: String,
    },
    /// The records that answer a "why did S have access to R at T" question.
    WhyQuery {
        /// The question, as asked.
        description: String,
    },
}

/// One record of a bundle with its inclusion proof.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleEvent {
    /// The record's sequence; must equal the sequence in its header.
    pub sequence: u64,
    /// The record's Merkle leaf index; must be `sequence - 1`.
    pub leaf_index: u64,
    /// The stored record, header (87 bytes) then body, as lowercase hex.
    #[schemars(pattern(r"^([0-9a-f]{2}){87,}$"))]
    pub record: String,
    /// The event decoded from the body, for people. Not authenticated by the bundle: the
    /// verifier compares it with the decoded body.
    pub event: serde_json::Value,
    /// The RFC 9162 inclusion proof of leaf `leaf_index` in the checkpoint's tree, lowest
    /// level first, each hash as 64 lowercase hex digits.
    #[schemars(length(max = 64), inner(pattern(r"^[0-9a-f]{64}$")))]
    pub inclusion_proof: Vec<String>,
}

/// What a verified bundle proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleReport {
    /// The log's origin.
    pub origin: String,
    /// The bundle's subject (informational).
    pub subject: Subject,
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The trusted keys whose signatures on the checkpoint verified.
    pub signed_by: Vec<(String, KeyId)>,
    /// The verified records, in bundle order.
    pub events: Vec<VerifiedEvent>,
}

/// One record that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// Position in the bundle's `events`, from 0.
    pub index: usize,
    /// The record's header (its `hash` is checked).
    pub header: RecordHeader,
    /// The record's body (event codec per `header.version`).
    pub body: Vec<u8>,
}

/// Why a bundle did not verify (or could not be built or read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct BundleError {
    kind: BundleErrorKind,
    event: Option<EventLocation>,
    message: String,
}

/// Which event of a bundle an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventLocation {
    /// Position in the bundle's `events`, from 0.
    pub index: usize,
    /// The sequence the event claims.
    pub sequence: u64,
}

/// The rule a bundle broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BundleErrorKind {
    /// The file is not JSON of the bundle's shape (or holds unknown fields).
    JsonMalformed,
    /// The file, the event list, a record, a proof or the subject is over its bound.
    BundleTooLarge,
    /// `format` is not [`BUNDLE_FORMAT`].
    FormatUnknown,
    /// The bundle has no events: it proves nothing.
    EventsEmpty,
    /// The checkpoint does not parse or does not verify against the trusted keys.
    CheckpointRejected,
    /// The bundle's `origin` is not the checkpoint's.
    OriginMismatch,
    /// Events are not in strictly ascending sequence order.
    EventsNotAscending,
    /// `record` or a proof hash is not lowercase hex of the right length.
    HexMalformed,
    /// The record breaks a record rule ([`crate::record::RecordRule`]).
    RecordRejected,
    /// The event's `sequence` is not its record header's.
    SequenceMismatch,
    /// The event's `leaf_index` is not `sequence - 1`.
    LeafIndexMismatch,
    /// The record's sequence is beyond the checkpoint's tree size.
    EventBeyondCheckpoint,
    /// The record's time is after the checkpoint's time.
    RecordTimeAfterCheckpoint,
    /// The inclusion proof does not lead from the record to the checkpoint's root.
    InclusionProofFails,
}

impl BundleErrorKind {
    /// A stable snake_case name of the rule that was broken.
    pub fn code(self) -> &'static str {
        match self {
            BundleErrorKind::JsonMalformed => "json_malformed",
            BundleErrorKind::BundleTooLarge => "bundle_too_large",
            BundleErrorKind::FormatUnknown => "format_unknown",
            BundleErrorKind::EventsEmpty => "events_empty",
            BundleErrorKind::CheckpointRejected => "checkpoint_rejected",
            BundleErrorKind::OriginMismatch => "origin_mismatch",
            BundleErrorKind::EventsNotAscending => "events_not_ascending",
            BundleErrorKind::HexMalformed => "hex_malformed",
            BundleErrorKind::RecordRejected => "record_rejected",
            BundleErrorKind::SequenceMismatch => "sequence_mismatch",
            BundleErrorKind::LeafIndexMismatch => "leaf_index_mismatch",
            BundleErrorKind::EventBeyondCheckpoint => "event_beyond_checkpoint",
            BundleErrorKind::RecordTimeAfterCheckpoint => "record_time_after_checkpoint",
            BundleErrorKind::InclusionProofFails => "inclusion_proof_fails",
        }
    }
}

impl BundleError {
    fn new(kind: BundleErrorKind, message: impl Into<String>) -> Self {
        BundleError {
            kind,
            event: None,
            message: message.into(),
        }
    }

    fn at(kind: BundleErrorKind, index: usize, sequence: u64, message: impl Into<String>) -> Self {
        BundleError {
            kind,
            event: Some(EventLocation { index, sequence }),
            message: message.into(),
        }
    }

    /// The rule that was broken.
    pub fn kind(&self) -> BundleErrorKind {
        self.kind
    }

    /// The event the error is about, if it is about one.
    pub fn event(&self) -> Option<EventLocation> {
        self.event
    }

    fn render(&self) -> String {
        match self.event {
            Some(location) => format!(
                "event `{}` (sequence `{}`): {} [{}]",
                location.index,
                location.sequence,
                self.message,
                self.kind.code()
            ),
            None => format!("{} [{}]", self.message, self.kind.code()),
        }
    }
}

impl Bundle {
    /// Reads a bundle from its JSON text. Checks the shape and the size bounds only; call
    /// [`Bundle::verify`].
    pub fn from_json(text: &str) -> Result<Bundle, BundleError> {
        if text.len() > BUNDLE_JSON_BYTES_MAX {
            return Err(BundleError::new(
                BundleErrorKind::BundleTooLarge,
                format!(
                    "bundle is `{}` bytes: at most `{BUNDLE_JSON_BYTES_MAX}` are read",
                    text.len()
                ),
            ));
        }
        serde_json::from_str(text).map_err(|error| {
            BundleError::new(
                BundleErrorKind::JsonMalformed,
                format!("bundle is not a `{BUNDLE_FORMAT}` JSON document: {error}"),
            )
        })
    }

    /// The bundle as pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a bundle always serializes to JSON");
        text.push('\n');
        text
    }

    /// Verifies the bundle with no database and no network: the checkpoint's signature by
    /// a trusted key named after the bundle's origin, then every event's record and
    /// inclusion proof. The first failure is returned, naming the event and the rule.
    pub fn verify(&self, trusted_keys: &[VerifierKey]) -> Result<BundleReport, BundleError> {
        self.check_envelope()?;
        let signed = parse_checkpoint(&self.checkpoint)?;
        let verified = signed
            .verify_detailed(trusted_keys, Some(&self.origin))
            .map_err(|error| {
                BundleError::new(
                    BundleErrorKind::CheckpointRejected,
                    format!(
                        "checkpoint does not verify (rule `{}`): {error}",
                        error.kind().code()
                    ),
                )
            })?;
        let events = self.verify_events(&verified.checkpoint)?;
        Ok(BundleReport {
            origin: self.origin.clone(),
            subject: self.subject.clone(),
            checkpoint: verified.checkpoint,
            signed_by: verified.signed_by,
            events,
        })
    }

    /// Everything [`Bundle::verify`] checks except the checkpoint's signatures: what the
    /// writer can check before it hands a bundle out.
    pub fn verify_unsigned(&self) -> Result<Vec<VerifiedEvent>, BundleError> {
        self.check_envelope()?;
        let signed = parse_checkpoint(&self.checkpoint)?;
        let checkpoint = signed.unverified_checkpoint();
        if checkpoint.origin != self.origin {
            return Err(origin_mismatch(&self.origin, &checkpoint.origin));
        }
        self.verify_events(checkpoint)
    }

    fn check_envelope(&self) -> Result<(), BundleError> {
        if self.format != BUNDLE_FORMAT {
            return Err(BundleError::new(
                BundleErrorKind::FormatUnknown,
                format!(
                    "bundle format `{}` is not `{BUNDLE_FORMAT}`",
                    self.format.escape_debug()
                ),
            ));
        }
        let subject_len = match &self.subject {
            Subject::Grant { grant_id } => grant_id.len(),
            Subject::WhyQuery { description } => description.len(),
        };
        if subject_len > SUBJECT_BYTES_MAX {
            return Err(BundleError::new(
                BundleErrorKind::BundleTooLarge,
                format!("subject is `{subject_len}` bytes: at most `{SUBJECT_BYTES_MAX}`"),
            ));
        }
        if self.events.is_empty() {
            return Err(BundleError::new(
                BundleErrorKind::EventsEmpty,
                "bundle has no events: it proves nothing",
            ));
        }
        if self.events.len() > BUNDLE_EVENTS_MAX {
            return Err(BundleError::new(
                BundleErrorKind::BundleTooLarge,
                format!(
                    "bundle has `{}` events: at most `{BUNDLE_EVENTS_MAX}`",
                    self.events.len()
                ),
            ));
        }
        Ok(())
    }

    fn verify_events(&self, checkpoint: &Checkpoint) -> Result<Vec<VerifiedEvent>, BundleError> {
        if checkpoint.origin != self.origin {
            return Err(origin_mismatch(&self.origin, &checkpoint.origin));
        }
        let mut verified = Vec::with_capacity(self.events.len());
        let mut previous_sequence: Option<u64> = None;
        for (index, event) in self.events.iter().enumerate() {
            let verified_event = verify_event(index, event, checkpoint, previous_sequence)?;
            previous_sequence = Some(event.sequence);
            verified.push(verified_event);
        }
        Ok(verified)
    }
}

/// Assembles a bundle from what the log holds: a signed checkpoint and, for each record
/// of the subject, its stored bytes and its inclusion proof at the checkpoint's size.
#[derive(Debug)]
pub struct BundleBuilder {
    checkpoint: SignedCheckpoint,
    subject: Subject,
    events: Vec<BundleEvent>,
}

impl BundleBuilder {
    /// A builder for a bundle about `subject`, proven against `checkpoint`.
    pub fn new(checkpoint: SignedCheckpoint, subject: Subject) -> BundleBuilder {
        BundleBuilder {
            checkpoint,
            subject,
            events: Vec::new(),
        }
    }

    /// Adds a record (header ‖ body, as stored), its inclusion proof in the checkpoint's
    /// tree, and its decoded event for human readers. The sequence and leaf index come
    /// from the record's header. Events may be added in any order.
    pub fn push_event(
        &mut self,
        record: &[u8],
        inclusion_proof: &[Digest],
        event: serde_json::Value,
    ) -> Result<&mut BundleBuilder, BundleError> {
        let header = record::check_record(record).map_err(|error| {
            BundleError::new(
                BundleErrorKind::RecordRejected,
                format!(
                    "event `{}`: record breaks rule `{}`: {error}",
                    self.events.len(),
                    error.rule().code()
                ),
            )
        })?;
        self.events.push(BundleEvent {
            sequence: header.sequence,
            leaf_index: header.leaf_index(),
            record: hex::encode(record),
            event,
            inclusion_proof: inclusion_proof.iter().map(hex::encode).collect(),
        });
        Ok(self)
    }

    /// The bundle, events sorted by sequence, checked with [`Bundle::verify_unsigned`] so
    /// that a bundle that could never verify is not handed out.
    pub fn build(mut self) -> Result<Bundle, BundleError> {
        self.events.sort_by_key(|event| event.sequence);
        let bundle = Bundle {
            format: BUNDLE_FORMAT.to_string(),
            origin: self.checkpoint.unverified_checkpoint().origin.clone(),
            subject: self.subject,
            checkpoint: self.checkpoint.as_str().to_string(),
            events: self.events,
        };
        bundle.verify_unsigned()?;
        Ok(bundle)
    }
}

fn parse_checkpoint(note: &str) -> Result<SignedCheckpoint, BundleError> {
    SignedCheckpoint::parse(note).map_err(|error| {
        BundleError::new(
            BundleErrorKind::CheckpointRejected,
            format!(
                "checkpoint does not parse (rule `{}`): {error}",
                error.kind().code()
            ),
        )
    })
}

fn origin_mismatch(bundle_origin: &str, checkpoint_origin: &str) -> BundleError {
    BundleError::new(
        BundleErrorKind::OriginMismatch,
        format!(
            "bundle origin `{}` is not the checkpoint origin `{checkpoint_origin}`",
            bundle_origin.escape_debug()
        ),
    )
}

fn verify_event(
    index: usize,
    event: &BundleEvent,
    checkpoint: &Checkpoint,
    previous_sequence: Option<u64>,
) -> Result<VerifiedEvent, BundleError> {
    let sequence = event.sequence;
    let fail =
        |kind: BundleErrorKind, message: String| BundleError::at(kind, index, sequence, message);

    if let Some(previous) = previous_sequence
        && sequence <= previous
    {
        return Err(fail(
            BundleErrorKind::EventsNotAscending,
            format!(
                "sequence `{sequence}` does not follow the previous event's `{previous}`: events are in strictly ascending sequence order"
            ),
        ));
    }
    if event.record.len() > 2 * RECORD_BYTES_MAX {
        return Err(fail(
            BundleErrorKind::BundleTooLarge,
            format!(
                "record hex is `{}` characters: a record is at most `{RECORD_BYTES_MAX}` bytes",
                event.record.len()
            ),
        ));
    }
    let record_bytes = decode_lower_hex(&event.record).map_err(|rule| {
        fail(
            BundleErrorKind::HexMalformed,
            format!("field `record` {rule}"),
        )
    })?;
    let header = record::check_record(&record_bytes).map_err(|error| {
        fail(
            BundleErrorKind::RecordRejected,
            format!("record breaks rule `{}`: {error}", error.rule().code()),
        )
    })?;
    if header.sequence != sequence {
        return Err(fail(
            BundleErrorKind::SequenceMismatch,
            format!(
                "field `sequence` `{sequence}` is not the record header's sequence `{}`",
                header.sequence
            ),
        ));
    }
    let leaf_index = record::leaf_index(sequence);
    if event.leaf_index != leaf_index {
        return Err(fail(
            BundleErrorKind::LeafIndexMismatch,
            format!(
                "field `leaf_index` `{}` is not `sequence - 1` = `{leaf_index}`",
                event.leaf_index
            ),
        ));
    }
    if leaf_index >= checkpoint.tree_size {
        return Err(fail(
            BundleErrorKind::EventBeyondCheckpoint,
            format!(
                "leaf index `{leaf_index}` is not in the checkpoint's tree of size `{}`",
                checkpoint.tree_size
            ),
        ));
    }
    if header.time_ms > checkpoint.time_ms {
        return Err(fail(
            BundleErrorKind::RecordTimeAfterCheckpoint,
            format!(
                "record time_ms `{}` is after the checkpoint's time_ms `{}`: a checkpoint is made after the records it covers",
                header.time_ms, checkpoint.time_ms
            ),
        ));
    }
    if event.inclusion_proof.len() > PROOF_HASHES_MAX {
        return Err(fail(
            BundleErrorKind::BundleTooLarge,
            format!(
                "inclusion proof has `{}` hashes: at most `{PROOF_HASHES_MAX}`",
                event.inclusion_proof.len()
            ),
        ));
    }
    let mut proof = Vec::with_capacity(event.inclusion_proof.len());
    for (position, hash_hex) in event.inclusion_proof.iter().enumerate() {
        let bytes = decode_lower_hex(hash_hex).map_err(|rule| {
            fail(
                BundleErrorKind::HexMalformed,
                format!("inclusion proof hash `{position}` {rule}"),
            )
        })?;
        let hash = Digest::try_from(bytes.as_slice()).map_err(|_| {
            fail(
                BundleErrorKind::HexMalformed,
                format!(
                    "inclusion proof hash `{position}` is `{}` bytes: a hash is 32 bytes (64 hex digits)",
                    bytes.len()
                ),
            )
        })?;
        proof.push(hash);
    }
    let leaf_hash = record::leaf_hash(&header.hash);
    verify_inclusion(
        &Blake3,
        leaf_index,
        checkpoint.tree_size,
        &leaf_hash,
        &proof,
        &checkpoint.root_hash,
    )
    .map_err(|error| {
        fail(
            BundleErrorKind::InclusionProofFails,
            format!(
                "inclusion proof of leaf `{leaf_index}` in the tree of size `{}` fails (rule `{}`): {error}",
                checkpoint.tree_size,
                error.kind().code()
            ),
        )
    })?;
    let body = record_bytes[record::HEADER_BYTES..].to_vec();
    Ok(VerifiedEvent {
        index,
        header,
        body,
    })
}

/// Lowercase hex only: one spelling per byte string, so that changing any character of a
/// bundle's `record` or proof changes what is verified (and fails). One pass, no table of
/// allowed characters separate from the decoding.
fn decode_lower_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "has an odd number (`{}`) of hex digits",
            digits.len()
        ));
    }
    let mut bytes = Vec::with_capacity(digits.len() / 2);
    for (pair_index, pair) in digits.chunks_exact(2).enumerate() {
        match (lower_hex_value(pair[0]), lower_hex_value(pair[1])) {
            (Some(high), Some(low)) => bytes.push(high << 4 | low),
            _ => {
                let position = pair_index * 2 + usize::from(lower_hex_value(pair[0]).is_some());
                // Every byte before `position` is ASCII, so it is a character boundary.
                let bad = text
                    .get(position..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or('?');
                return Err(format!(
                    "holds `{}` at character `{position}`: expected lowercase hexadecimal digits",
                    bad.escape_debug()
                ));
            }
        }
    }
    Ok(bytes)
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}
