//! The format rules for one stored record and for the link to its predecessor, shared by
//! `verify`, `read`, `iter_from` and `open`.

use crate::header::{GENESIS_PARENT, HEADER_BYTES, RecordHeader, hash_record, hashed_prefix};
use crate::rule;

/// A broken rule and what exactly is wrong.
#[derive(Debug)]
pub(crate) struct Broken {
    pub(crate) rule: &'static str,
    pub(crate) detail: String,
}

/// What a record is checked against besides itself.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Link<'a> {
    /// Nothing: a single record read on its own.
    Unchecked,
    /// The start of the chain: the parent must be [`GENESIS_PARENT`].
    Genesis,
    /// The previous record's hash and time.
    After(&'a [u8; 32], i64),
}

/// Checks the value stored under `sequence`: the header rules, the key, the body length,
/// the link to the previous record, the hash, and time order, in that order (so that a
/// changed parent is reported as `parent_mismatch`, not as the hash mismatch it also
/// causes). Returns the header and the body.
pub(crate) fn check_record_value<'v>(
    sequence: u64,
    value: &'v [u8],
    link: Link<'_>,
) -> Result<(RecordHeader, &'v [u8]), Broken> {
    let Some((header_bytes, body)) = value.split_first_chunk::<HEADER_BYTES>() else {
        return Err(Broken {
            rule: rule::HEADER_TRUNCATED,
            detail: format!(
                "value is `{}` bytes, shorter than the `{HEADER_BYTES}` byte header",
                value.len()
            ),
        });
    };
    let header = RecordHeader::decode(header_bytes);
    if let Some(broken) = header.invalid() {
        let detail = match broken {
            rule::UNKNOWN_VERSION => format!("version `{}` is unknown", header.version),
            rule::BODY_LENGTH_OVER_MAX => {
                format!("body_len `{}` is over body_bytes_max", header.body_len)
            }
            _ => format!("header sequence is `{}`", header.sequence),
        };
        return Err(Broken {
            rule: broken,
            detail,
        });
    }
    if header.sequence != sequence {
        return Err(Broken {
            rule: rule::KEY_SEQUENCE_MISMATCH,
            detail: format!(
                "stored under sequence `{sequence}` but the header says `{}`",
                header.sequence
            ),
        });
    }
    if header.body_len as usize != body.len() {
        return Err(Broken {
            rule: rule::BODY_LENGTH_MISMATCH,
            detail: format!(
                "body_len is `{}` but `{}` bytes follow the header",
                header.body_len,
                body.len()
            ),
        });
    }
    let expected_parent = match link {
        Link::Unchecked => None,
        Link::Genesis => Some(&GENESIS_PARENT),
        Link::After(hash, _) => Some(hash),
    };
    if let Some(expected_parent) = expected_parent
        && header.parent != *expected_parent
    {
        return Err(Broken {
            rule: rule::PARENT_MISMATCH,
            detail: format!(
                "parent is `{}` but the previous hash is `{}`",
                hex::encode(header.parent),
                hex::encode(expected_parent)
            ),
        });
    }
    let hash = hash_record(hashed_prefix(header_bytes), body);
    if hash != header.hash {
        return Err(Broken {
            rule: rule::HASH_MISMATCH,
            detail: format!(
                "stored hash `{}` but the record hashes to `{}`",
                hex::encode(header.hash),
                hex::encode(hash)
            ),
        });
    }
    if let Link::After(_, previous_time_ms) = link
        && header.time_ms < previous_time_ms
    {
        return Err(Broken {
            rule: rule::TIME_WENT_BACKWARDS,
            detail: format!(
                "time_ms `{}` is earlier than the previous record's `{previous_time_ms}`",
                header.time_ms
            ),
        });
    }
    Ok((header, body))
}

impl<'a> Link<'a> {
    /// The link for the record after one with `previous` hash and time, `None` meaning
    /// there is no record before.
    pub(crate) fn from_previous(previous: Option<&'a ([u8; 32], i64)>) -> Link<'a> {
        match previous {
            None => Link::Genesis,
            Some((hash, time_ms)) => Link::After(hash, *time_ms),
        }
    }
}
