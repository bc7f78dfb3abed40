//! Signed checkpoints kept in the log's `meta` column family, by tree size.
//!
//! The log does not sign or parse them: a checkpoint is opaque text (a C2SP
//! signed note made by `grantledger-proof`) stored under
//! `checkpoint/` ‖ tree size (u64 big-endian), so they iterate in size order.
//! They are not records: the chain and the tree do not cover them, and an
//! auditor trusts a checkpoint for its signature, not for where it was found.

use rocksdb::{Direction, IteratorMode, WriteOptions};

use crate::error::{AppendError, AppendErrorKind, ReadError, ReadErrorKind};
use crate::layout::CF_META;
use crate::log::Log;

/// The `meta` key prefix of stored checkpoints.
pub const META_KEY_CHECKPOINT_PREFIX: &[u8] = b"checkpoint/";

/// The largest checkpoint text the log stores.
pub const CHECKPOINT_BYTES_MAX: usize = 16 * 1024;

fn key(tree_size: u64) -> Vec<u8> {
    let mut key = META_KEY_CHECKPOINT_PREFIX.to_vec();
    key.extend_from_slice(&tree_size.to_be_bytes());
    key
}

impl Log {
    /// Stores a checkpoint of the first `tree_size` records, with a synced
    /// write. Refuses a size beyond the head, an empty or oversized text, and
    /// a read-only handle. Storing a second checkpoint of the same size
    /// replaces the first (a rotated key signing the same tree).
    pub fn store_checkpoint(&self, tree_size: u64, text: &str) -> Result<(), AppendError> {
        if self.is_read_only() {
            return Err(AppendError::new(AppendErrorKind::ReadOnly, "the log was opened read-only"));
        }
        if tree_size == 0 || tree_size > self.head().sequence {
            return Err(AppendError::new(
                AppendErrorKind::CheckpointInvalid,
                format!("checkpoint tree size `{tree_size}` is not within the log's 1..={}", self.head().sequence),
            ));
        }
        if text.is_empty() || text.len() > CHECKPOINT_BYTES_MAX {
            return Err(AppendError::new(
                AppendErrorKind::CheckpointInvalid,
                format!("a checkpoint is 1 to {CHECKPOINT_BYTES_MAX} bytes, this one `{}`", text.len()),
            ));
        }
        let meta = self.db().cf_handle(CF_META).expect("the log was opened with all its column families");
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db()
            .put_cf_opt(meta, key(tree_size), text.as_bytes(), &options)
            .map_err(|e| AppendError::new(AppendErrorKind::Storage, format!("storing the checkpoint of size `{tree_size}`: {e}")))
    }

    /// Stored checkpoints of size `from_size` or more, in size order, at most `limit`.
    pub fn checkpoints(&self, from_size: u64, limit: usize) -> Result<Vec<(u64, String)>, ReadError> {
        let meta = self.db().cf_handle(CF_META).expect("the log was opened with all its column families");
        let start = key(from_size);
        let mut out = Vec::new();
        for item in self.db().iterator_cf(meta, IteratorMode::From(&start, Direction::Forward)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| ReadError::new(ReadErrorKind::Storage, format!("reading checkpoints: {e}")))?;
            let Some(size) = k.strip_prefix(META_KEY_CHECKPOINT_PREFIX) else { break };
            let size: [u8; 8] = size.try_into().map_err(|_| {
                ReadError::new(ReadErrorKind::Corrupt, "a checkpoint key is not `checkpoint/` and 8 bytes".to_owned())
            })?;
            let text = String::from_utf8(v.to_vec()).map_err(|_| {
                ReadError::new(ReadErrorKind::Corrupt, format!("the checkpoint of size `{}` is not UTF-8", u64::from_be_bytes(size)))
            })?;
            out.push((u64::from_be_bytes(size), text));
        }
        Ok(out)
    }

    /// The newest stored checkpoint (largest tree size), if any.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, ReadError> {
        let meta = self.db().cf_handle(CF_META).expect("the log was opened with all its column families");
        let end = key(u64::MAX);
        for item in self.db().iterator_cf(meta, IteratorMode::From(&end, Direction::Reverse)) {
            let (k, v) = item.map_err(|e| ReadError::new(ReadErrorKind::Storage, format!("reading checkpoints: {e}")))?;
            let Some(size) = k.strip_prefix(META_KEY_CHECKPOINT_PREFIX) else { return Ok(None) };
            let size: [u8; 8] = size.try_into().map_err(|_| {
                ReadError::new(ReadErrorKind::Corrupt, "a checkpoint key is not `checkpoint/` and 8 bytes".to_owned())
            })?;
            let text = String::from_utf8(v.to_vec())
                .map_err(|_| ReadError::new(ReadErrorKind::Corrupt, "a stored checkpoint is not UTF-8".to_owned()))?;
            return Ok(Some((u64::from_be_bytes(size), text)));
        }
        Ok(None)
    }
}
