//! The fixed 87-byte record header and the record hash.
//!
//! The layout is frozen: `schemas/LOG_FORMAT.md` documents it byte for byte and a
//! test checks that document's worked example against this code.

/// Size of an encoded [`RecordHeader`].
pub const HEADER_BYTES: usize = 87;

/// How many leading header bytes the record hash covers: every field before `hash`.
pub const HEADER_HASHED_BYTES: usize = 55;

/// Header version 1: the body is encoded with bincode `=2.0.1`, standard config, via
/// serde, in the first layout of the event types. The log never decodes bodies; it only
/// records which codec wrote them.
pub const VERSION_BINCODE_2_STANDARD: u8 = 1;

/// Header version 2: bincode `=2.0.1`, standard config, via serde, in the second layout
/// of the event types (`grantledger-events`' `CODEC_VERSION` 2: decisions record their
/// basis, policy sets are published). Same encoder, different types: since bincode is
/// not self-describing, a layout change is a new version.
pub const VERSION_BINCODE_2_STANDARD_LAYOUT_2: u8 = 2;

/// Header version 3: the same encoder, third layout of the event types
/// (`grantledger-events`' `CODEC_VERSION` 3: requests may carry a scheduled start,
/// requests that lapse are recorded).
pub const VERSION_BINCODE_2_STANDARD_LAYOUT_3: u8 = 3;

/// The version [`Log::append_batch`](crate::Log::append_batch) writes;
/// [`Log::append_batch_versioned`](crate::Log::append_batch_versioned) writes another.
pub const VERSION_CURRENT: u8 = VERSION_BINCODE_2_STANDARD;

/// True for the header versions of the format: 1, 2 and 3.
pub fn version_known(version: u8) -> bool {
    version == VERSION_BINCODE_2_STANDARD
        || version == VERSION_BINCODE_2_STANDARD_LAYOUT_2
        || version == VERSION_BINCODE_2_STANDARD_LAYOUT_3
}

/// Prefix of every record hash, so a record hash can never be confused with a blake3 hash
/// of anything else (a Merkle leaf, a checkpoint, a body on its own).
pub const HASH_DOMAIN_TAG: &[u8; 22] = b"grantledger/record/v1\0";

/// The `parent` of the record with sequence 1.
pub const GENESIS_PARENT: [u8; 32] = [0; 32];

/// Largest body the log stores, in bytes. Part of the format: a header whose `body_len`
/// is larger is invalid.
pub const BODY_BYTES_MAX: u32 = 1 << 20;

/// A record header, as stored in front of every body in the `records` column family.
///
/// All integers are big-endian on disk. Decoding never fails on 87 bytes; whether the
/// header obeys the format is a separate question answered by [`RecordHeader::invalid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Body codec; see [`VERSION_BINCODE_2_STANDARD`].
    pub version: u8,
    /// Position in the log, starting at 1, without gaps.
    pub sequence: u64,
    /// The ledger's time when the record was appended, UTC milliseconds. Never earlier than
    /// the previous record's.
    pub time_ms: i64,
    /// What the body is; the log does not interpret it.
    pub kind: u16,
    /// Length of the body that follows the header, in bytes.
    pub body_len: u32,
    /// The previous record's `hash`, or [`GENESIS_PARENT`] for sequence 1.
    pub parent: [u8; 32],
    /// `blake3(HASH_DOMAIN_TAG || header bytes 0..55 || body)`.
    pub hash: [u8; 32],
}

impl RecordHeader {
    /// The header as stored on disk.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[OFFSET_VERSION] = self.version;
        bytes[OFFSET_SEQUENCE..OFFSET_TIME_MS].copy_from_slice(&self.sequence.to_be_bytes());
        bytes[OFFSET_TIME_MS..OFFSET_KIND].copy_from_slice(&self.time_ms.to_be_bytes());
        bytes[OFFSET_KIND..OFFSET_BODY_LEN].copy_from_slice(&self.kind.to_be_bytes());
        bytes[OFFSET_BODY_LEN..OFFSET_PARENT].copy_from_slice(&self.body_len.to_be_bytes());
        bytes[OFFSET_PARENT..OFFSET_HASH].copy_from_slice(&self.parent);
        bytes[OFFSET_HASH..HEADER_BYTES].copy_from_slice(&self.hash);
        bytes
    }

    /// Reads a header from its stored bytes. Check [`RecordHeader::invalid`] before
    /// trusting it.
    pub fn decode(bytes: &[u8; HEADER_BYTES]) -> RecordHeader {
        RecordHeader {
            version: bytes[OFFSET_VERSION],
            sequence: u64::from_be_bytes(array(&bytes[OFFSET_SEQUENCE..OFFSET_TIME_MS])),
            time_ms: i64::from_be_bytes(array(&bytes[OFFSET_TIME_MS..OFFSET_KIND])),
            kind: u16::from_be_bytes(array(&bytes[OFFSET_KIND..OFFSET_BODY_LEN])),
            body_len: u32::from_be_bytes(array(&bytes[OFFSET_BODY_LEN..OFFSET_PARENT])),
            parent: array(&bytes[OFFSET_PARENT..OFFSET_HASH]),
            hash: array(&bytes[OFFSET_HASH..HEADER_BYTES]),
        }
    }

    /// The hash this header and `body` should carry. Ignores `self.hash`.
    pub fn compute_hash(&self, body: &[u8]) -> [u8; 32] {
        let bytes = self.encode();
        hash_record(hashed_prefix(&bytes), body)
    }

    /// Which format rule the header breaks on its own, if any. Rules that need the body
    /// or the neighbouring records (length, hash, parent, time) are checked by `verify`.
    pub fn invalid(&self) -> Option<&'static str> {
        if !version_known(self.version) {
            return Some(crate::rule::UNKNOWN_VERSION);
        }
        if self.sequence == 0 {
            return Some(crate::rule::SEQUENCE_ZERO);
        }
        if self.body_len > BODY_BYTES_MAX {
            return Some(crate::rule::BODY_LENGTH_OVER_MAX);
        }
        None
    }
}

/// A stored record: its header and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record's header.
    pub header: RecordHeader,
    /// The opaque body, exactly `header.body_len` bytes.
    pub body: Vec<u8>,
}

const OFFSET_VERSION: usize = 0;
const OFFSET_SEQUENCE: usize = 1;
const OFFSET_TIME_MS: usize = 9;
const OFFSET_KIND: usize = 17;
const OFFSET_BODY_LEN: usize = 19;
const OFFSET_PARENT: usize = 23;
const OFFSET_HASH: usize = 55;

const _: () = assert!(OFFSET_HASH == HEADER_HASHED_BYTES);
const _: () = assert!(OFFSET_HASH + 32 == HEADER_BYTES);

/// The bytes the record hash covers.
pub(crate) fn hashed_prefix(bytes: &[u8; HEADER_BYTES]) -> &[u8; HEADER_HASHED_BYTES] {
    bytes[..HEADER_HASHED_BYTES]
        .try_into()
        .expect("the hashed prefix is a fixed slice of the header")
}

/// `blake3(HASH_DOMAIN_TAG || hashed_header || body)`.
pub(crate) fn hash_record(hashed_header: &[u8; HEADER_HASHED_BYTES], body: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_DOMAIN_TAG);
    hasher.update(hashed_header);
    hasher.update(body);
    *hasher.finalize().as_bytes()
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes
        .try_into()
        .expect("offsets are constants that match the field sizes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordHeader {
        RecordHeader {
            version: VERSION_CURRENT,
            sequence: 0x0102_0304_0506_0708,
            time_ms: -2,
            kind: 0xBEEF,
            body_len: 3,
            parent: [0xAA; 32],
            hash: [0x55; 32],
        }
    }

    #[test]
    fn encode_decode_roundtrip_and_field_offsets() {
        let header = sample();
        let bytes = header.encode();
        assert_eq!(RecordHeader::decode(&bytes), header);
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &bytes[9..17],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]
        );
        assert_eq!(&bytes[17..19], &[0xBE, 0xEF]);
        assert_eq!(&bytes[19..23], &[0, 0, 0, 3]);
        assert_eq!(&bytes[23..55], &[0xAA; 32]);
        assert_eq!(&bytes[55..87], &[0x55; 32]);
    }

    #[test]
    fn hash_covers_every_field_but_itself() {
        let header = sample();
        let body = b"abc";
        let hash = header.compute_hash(body);
        assert_eq!(
            RecordHeader {
                hash: [0; 32],
                ..header
            }
            .compute_hash(body),
            hash
        );
        let changed = [
            RecordHeader {
                version: 4,
                ..header
            },
            RecordHeader {
                sequence: 1,
                ..header
            },
            RecordHeader {
                time_ms: 0,
                ..header
            },
            RecordHeader { kind: 0, ..header },
            RecordHeader {
                body_len: 4,
                ..header
            },
            RecordHeader {
                parent: [0; 32],
                ..header
            },
        ];
        for other in changed {
            assert_ne!(other.compute_hash(body), hash, "{other:?}");
        }
        assert_ne!(header.compute_hash(b"abd"), hash);
    }

    #[test]
    fn invalid_names_the_broken_rule() {
        assert_eq!(sample().invalid(), None);
        let rows: [(RecordHeader, &str); 3] = [
            (
                RecordHeader {
                    version: 0,
                    ..sample()
                },
                "unknown_version",
            ),
            (
                RecordHeader {
                    sequence: 0,
                    ..sample()
                },
                "sequence_zero",
            ),
            (
                RecordHeader {
                    body_len: BODY_BYTES_MAX + 1,
                    ..sample()
                },
                "body_length_over_max",
            ),
        ];
        for (header, rule) in rows {
            assert_eq!(header.invalid(), Some(rule));
        }
    }
}
