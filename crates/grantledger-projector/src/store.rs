//! A projection's own RocksDB: one database per projection directory, tables
//! as one-byte key prefixes, values in bincode (standard config), and the
//! [`Txn`] overlay through which a batch of events is applied and then
//! written, with the cursor, in one synced `WriteBatch`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocksdb::{DB, DBCompressionType, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ProjectorError, ProjectorErrorKind};

/// The table of runtime metadata: projection name, cursor, hash at cursor.
/// Never part of a digest's key/value stream (the cursor and hash are
/// hashed explicitly in front of it).
pub(crate) const TABLE_META: u8 = 0x00;

pub(crate) const META_NAME: &[u8] = &[TABLE_META, b'n'];
pub(crate) const META_CURSOR: &[u8] = &[TABLE_META, b'c'];

/// A stored key and its value.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// One projection's RocksDB.
pub(crate) struct Store {
    db: DB,
    dir: PathBuf,
    sync: bool,
}

impl Store {
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<Store, ProjectorError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_max_background_jobs(2);
        options.set_keep_log_file_num(4);
        // Table files are written back incrementally, so a synced apply
        // does not wait behind a flush's burst of writeback.
        options.set_bytes_per_sync(1 << 20);
        let db = DB::open(&options, dir).map_err(|error| {
            ProjectorError::new(
                ProjectorErrorKind::Storage,
                format!(
                    "cannot open the projection store `{}`: {error}",
                    dir.display()
                ),
            )
        })?;
        Ok(Store {
            db,
            dir: dir.to_path_buf(),
            sync,
        })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectorError> {
        self.db
            .get(key)
            .map_err(|error| self.storage_error("read", key, error))
    }

    pub(crate) fn get_value<T: DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, ProjectorError> {
        self.get(key)?
            .map(|bytes| decode_value(key, &bytes))
            .transpose()
    }

    /// Up to `limit` entries whose key starts with `prefix` and is at least
    /// `from` (which must itself start with `prefix`), in key order.
    pub(crate) fn scan(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, ProjectorError> {
        debug_assert!(from.starts_with(prefix));
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for entry in self
            .db
            .iterator(IteratorMode::From(from, Direction::Forward))
        {
            let (key, value) = entry.map_err(|error| self.storage_error("scan", prefix, error))?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.into_vec(), value.into_vec()));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Calls `visit` for each entry whose key starts with `prefix`, at least
    /// `from`, in key order, until it returns false.
    pub(crate) fn visit(
        &self,
        prefix: &[u8],
        from: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, ProjectorError>,
    ) -> Result<(), ProjectorError> {
        for entry in self
            .db
            .iterator(IteratorMode::From(from, Direction::Forward))
        {
            let (key, value) = entry.map_err(|error| self.storage_error("scan", prefix, error))?;
            if !key.starts_with(prefix) || !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    /// Every entry, in key order; the digest picks the tables it hashes.
    pub(crate) fn visit_all(
        &self,
        mut visit: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), ProjectorError> {
        for entry in self.db.iterator(IteratorMode::Start) {
            let (key, value) = entry.map_err(|error| self.storage_error("scan", b"", error))?;
            visit(&key, &value);
        }
        Ok(())
    }

    /// Writes `batch` durably (synced unless the store was opened for a
    /// throwaway benchmark).
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), ProjectorError> {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        self.db.write_opt(batch, &options).map_err(|error| {
            ProjectorError::new(
                ProjectorErrorKind::Storage,
                format!(
                    "writing to the projection store `{}` failed: {error}",
                    self.dir.display()
                ),
            )
        })
    }

    /// Bytes of table files and memtables, as RocksDB reports them.
    pub(crate) fn size_bytes(&self) -> u64 {
        let property = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        property("rocksdb.total-sst-files-size") + property("rocksdb.cur-size-all-mem-tables")
    }

    /// Flushes memtables and compacts everything, for size measurements.
    pub(crate) fn compact(&self) -> Result<(), ProjectorError> {
        self.db
            .flush()
            .map_err(|error| self.storage_error("flush", b"", error))?;
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }

    fn storage_error(&self, what: &str, key: &[u8], error: rocksdb::Error) -> ProjectorError {
        ProjectorError::new(
            ProjectorErrorKind::Storage,
            format!(
                "{what} of key `{}` in the projection store `{}` failed: {error}",
                printable(key),
                self.dir.display()
            ),
        )
    }
}

/// The writes of one batch of events, readable before they are written:
/// later events of a batch see what earlier ones changed. The runtime writes
/// them, with the cursor, in one synced `WriteBatch`.
pub struct Txn<'a> {
    store: &'a Store,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(store: &'a Store) -> Txn<'a> {
        Txn {
            store,
            overlay: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectorError> {
        match self.overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.store.get(key),
        }
    }

    pub(crate) fn get_value<T: DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, ProjectorError> {
        self.get(key)?
            .map(|bytes| decode_value(key, &bytes))
            .transpose()
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert(key, Some(value));
    }

    pub(crate) fn put_value<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put(key, encode_value(value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.overlay.insert(key, None);
    }

    /// Turns the overlay into one `WriteBatch`.
    pub(crate) fn into_batch(self) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (key, value) in self.overlay {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        batch
    }
}

pub(crate) fn encode_value<T: Serialize>(value: &T) -> Vec<u8> {
    // INVARIANT: stored values hold only strings, integers, enums, options
    // and vectors, which bincode always encodes.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("the value encodes")
}

pub(crate) fn decode_value<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ProjectorError> {
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard()).map_err(
            |error| {
                ProjectorError::new(
                    ProjectorErrorKind::Corrupt,
                    format!(
                        "the value of key `{}` does not decode: {error}",
                        printable(key)
                    ),
                )
            },
        )?;
    if read != bytes.len() {
        return Err(ProjectorError::new(
            ProjectorErrorKind::Corrupt,
            format!(
                "the value of key `{}` has `{}` bytes after its end",
                printable(key),
                bytes.len() - read
            ),
        ));
    }
    Ok(value)
}

/// A key built from a table byte and parts separated by `\0`. Ids never
/// contain control characters, so `\0` cannot occur inside a part and a
/// prefix of parts is a key prefix of exactly the keys that share them.
pub(crate) fn key(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + parts.iter().map(|part| part.len() + 1).sum::<usize>());
    out.push(table);
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            out.push(0);
        }
        out.extend_from_slice(part);
    }
    out
}

/// A prefix of keys built by [`key`] with these leading parts.
pub(crate) fn prefix(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = key(table, parts);
    if !parts.is_empty() {
        out.push(0);
    }
    out
}

/// A timestamp as a key part that sorts as the time does (sign bit
/// flipped, big-endian).
pub(crate) fn time_part(millis: i64) -> [u8; 8] {
    ((millis as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn time_from_part(bytes: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// Splits a key built by [`key`] into its parts (after the table byte).
/// Only for keys whose fixed-width parts cannot contain `\0`: callers of
/// keys with a time part split by position instead.
pub(crate) fn split_parts(key: &[u8]) -> Vec<&[u8]> {
    key[1..].split(|byte| *byte == 0).collect()
}

/// A key for messages: text as is, other bytes as `\xNN`.
pub(crate) fn printable(key: &[u8]) -> String {
    key.iter()
        .flat_map(|&byte| {
            if byte.is_ascii_graphic() {
                vec![byte as char]
            } else {
                format!("\\x{byte:02x}").chars().collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parts_sort_as_times() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_767_225_600_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(time_part(pair[0]) < time_part(pair[1]), "{pair:?}");
        }
        for time in times {
            assert_eq!(time_from_part(&time_part(time)), Some(time));
        }
    }

    #[test]
    fn prefixes_match_only_whole_parts() {
        let alice = key(7, &[b"alice", b"db/x"]);
        let alicia = key(7, &[b"alicia", b"db/x"]);
        let of_alice = prefix(7, &[b"alice"]);
        assert!(alice.starts_with(&of_alice));
        assert!(!alicia.starts_with(&of_alice));
        assert_eq!(split_parts(&alice), vec![&b"alice"[..], &b"db/x"[..]]);
    }
}
