//! The projector runtime core: a projection, its own RocksDB, and the cursor
//! that makes applying committed events exactly-once and in order.
//!
//! Events are applied strictly in sequence order. An event at or below the
//! cursor is a duplicate and is skipped. An event past `cursor + 1` is not
//! buffered: [`Projector::apply`] stops there and reports the missing range
//! as an [`ApplyOutcome::gap`], so the caller (the NATS runtime) backfills it
//! from the ledger and delivers again. Buffering would hold an unbounded
//! amount of out-of-order input in memory, while the log already holds every
//! event and can be asked for exactly the missing range.

use std::path::Path;

use grantledger_events::{Committed, Timestamp, decode_body};
use grantledger_log::Log;
use serde::{Deserialize, Serialize};

use crate::error::{ProjectorError, ProjectorErrorKind};
use crate::store::{META_CURSOR, META_NAME, Store, TABLE_META, Txn, decode_value, encode_value};

/// The most events one `WriteBatch` holds. A longer slice handed to
/// [`Projector::apply`] is written in several batches, each with its cursor:
/// state and cursor are always written together, and the digest does not
/// depend on where the batches were cut.
pub const APPLY_BATCH_EVENTS_MAX: usize = 4096;

/// One projection: a pure function of (state, committed event), whose state
/// lives in the projector's store.
///
/// Sealed: the runtime relies on every projection writing only through the
/// [`Txn`] it is handed, so that state and cursor stay in one write.
pub trait Projection: sealed::Sealed + Sized {
    /// The projection's name: its `grantledger project <name>` and the name
    /// its digest is reported under.
    const NAME: &'static str;

    /// Key tables (the first key byte) that hold delivery progress rather
    /// than state the log determines; left out of the digest.
    const TABLES_NOT_DIGESTED: &'static [u8] = &[];

    /// The projection's in-memory part after opening: never state, only
    /// positions of ongoing scans, which a restart may forget.
    fn start() -> Self;

    /// Applies one committed event. The runtime has already checked it is
    /// the next one in sequence.
    #[doc(hidden)]
    fn apply(&mut self, txn: &mut Txn<'_>, committed: &Committed) -> Result<(), ProjectorError>;
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// How a projector uses its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectorOptions {
    /// Whether each write waits for the WAL to reach the disk. Only `false`
    /// for throwaway stores (benchmarks): a projector that loses a write
    /// after acknowledging the events in it would never see them again.
    pub sync: bool,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions { sync: true }
    }
}

/// A projection with its store and cursor.
pub struct Projector<P: Projection> {
    pub(crate) store: Store,
    pub(crate) projection: P,
    cursor: Cursor,
}

/// The last applied event, stored with the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    sequence: u64,
    /// The record hash (hex) of the event at `sequence`; empty at 0.
    hash: String,
    /// Its ledger time.
    time: Option<Timestamp>,
}

/// What one call to [`Projector::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyOutcome {
    /// Events applied (now durable, with the cursor).
    pub applied: u64,
    /// Events at or below the cursor, skipped.
    pub duplicates: u64,
    /// The cursor after the call.
    pub cursor: u64,
    /// Set when an event arrived past `cursor + 1`: nothing from that event
    /// on was applied, and the caller must fetch the missing range from the
    /// ledger and deliver it (and what followed) again.
    pub gap: Option<Gap>,
}

/// Sequence numbers a projector has not seen and needs before it can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The first missing sequence (`cursor + 1`).
    pub from: u64,
    /// The last missing sequence (the early event's sequence minus one).
    pub to: u64,
}

/// A projection's digest at its cursor, as published for comparison with a
/// replay from genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// The projection.
    pub projection: &'static str,
    /// The cursor: the last applied sequence.
    pub sequence: u64,
    /// The record hash at that sequence, hex (empty at 0), which binds the
    /// digest to one log.
    pub record_hash: String,
    /// blake3, hex, over the name, the cursor, the record hash and every
    /// stored key and value of the state in key order.
    pub digest: String,
}

impl<P: Projection> Projector<P> {
    /// Opens (or creates) the projection's store in `dir`, synced.
    pub fn open(dir: &Path) -> Result<Projector<P>, ProjectorError> {
        Projector::open_with(dir, ProjectorOptions::default())
    }

    /// Opens (or creates) the projection's store in `dir`. Refuses a
    /// directory holding another projection's store.
    pub fn open_with(
        dir: &Path,
        options: ProjectorOptions,
    ) -> Result<Projector<P>, ProjectorError> {
        let store = Store::open(dir, options.sync)?;
        match store.get(META_NAME)? {
            Some(name) if name != P::NAME.as_bytes() => {
                return Err(ProjectorError::new(
                    ProjectorErrorKind::WrongProjection,
                    format!(
                        "`{}` holds the store of projection `{}`, not `{}`",
                        dir.display(),
                        String::from_utf8_lossy(&name),
                        P::NAME
                    ),
                ));
            }
            Some(_) => {}
            None => {
                let mut batch = rocksdb::WriteBatch::default();
                batch.put(META_NAME, P::NAME.as_bytes());
                batch.put(META_CURSOR, encode_value(&Cursor::default()));
                store.write(batch)?;
            }
        }
        let cursor = match store.get(META_CURSOR)? {
            Some(bytes) => decode_value(META_CURSOR, &bytes)?,
            None => Cursor::default(),
        };
        Ok(Projector {
            store,
            projection: P::start(),
            cursor,
        })
    }

    /// Creates the store in `dir` (which must not exist or be empty) and
    /// folds the whole log into it: the offline rebuild.
    pub fn rebuild(
        log: &Log,
        dir: &Path,
        progress: impl FnMut(u64),
    ) -> Result<Projector<P>, ProjectorError> {
        refuse_non_empty(dir)?;
        let mut projector = Projector::open(dir)?;
        projector.catch_up(log, u64::MAX, progress)?;
        Ok(projector)
    }

    /// The projection's name.
    pub fn name(&self) -> &'static str {
        P::NAME
    }

    /// The last applied sequence; 0 before any.
    pub fn cursor(&self) -> u64 {
        self.cursor.sequence
    }

    /// The ledger time of the last applied event.
    pub fn cursor_time(&self) -> Option<Timestamp> {
        self.cursor.time
    }

    /// Applies `events`, which must be in sequence order as delivered.
    /// Duplicates (at or below the cursor) are skipped; the first event past
    /// `cursor + 1` stops the call with a [`Gap`]. Each batch of at most
    /// [`APPLY_BATCH_EVENTS_MAX`] applied events is written with the cursor
    /// in one synced write before the next one starts; on an error, batches
    /// already written stay and the failing batch is not written.
    pub fn apply(&mut self, events: &[Committed]) -> Result<ApplyOutcome, ProjectorError> {
        let mut outcome = ApplyOutcome::default();
        let mut txn = Txn::new(&self.store);
        let mut cursor = self.cursor.clone();
        let mut staged = 0usize;
        for committed in events {
            if committed.sequence <= cursor.sequence {
                if committed.sequence == cursor.sequence && committed.hash != cursor.hash {
                    return Err(ProjectorError::new(
                        ProjectorErrorKind::Diverged,
                        format!(
                            "projection `{}` applied record `{}` with hash `{}`, now delivered with hash `{}`",
                            P::NAME,
                            cursor.sequence,
                            cursor.hash,
                            committed.hash
                        ),
                    ));
                }
                outcome.duplicates += 1;
                continue;
            }
            if committed.sequence > cursor.sequence + 1 {
                outcome.gap = Some(Gap {
                    from: cursor.sequence + 1,
                    to: committed.sequence - 1,
                });
                break;
            }
            self.projection
                .apply(&mut txn, committed)
                .map_err(|error| {
                    ProjectorError::new(
                        error.kind(),
                        format!(
                            "projection `{}` cannot apply record `{}`: {}",
                            P::NAME,
                            committed.sequence,
                            error.detail()
                        ),
                    )
                })?;
            cursor = Cursor {
                sequence: committed.sequence,
                hash: committed.hash.clone(),
                time: Some(committed.time),
            };
            staged += 1;
            if staged == APPLY_BATCH_EVENTS_MAX {
                txn.put_value(META_CURSOR.to_vec(), &cursor);
                self.store.write(txn.into_batch())?;
                outcome.applied += staged as u64;
                self.cursor = cursor.clone();
                staged = 0;
                txn = Txn::new(&self.store);
            }
        }
        if staged > 0 {
            txn.put_value(META_CURSOR.to_vec(), &cursor);
            self.store.write(txn.into_batch())?;
            outcome.applied += staged as u64;
            self.cursor = cursor;
        }
        outcome.cursor = self.cursor.sequence;
        Ok(outcome)
    }

    /// Applies what `log` holds after the cursor, up to and including `to`
    /// (or the head), in batches of [`APPLY_BATCH_EVENTS_MAX`]. `progress`
    /// gets the cursor after each batch. Returns the cursor.
    pub fn catch_up(
        &mut self,
        log: &Log,
        to: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, ProjectorError> {
        let mut chunk = Vec::with_capacity(APPLY_BATCH_EVENTS_MAX);
        for record in log.iter_from(self.cursor.sequence + 1) {
            let record = record.map_err(|error| {
                ProjectorError::new(
                    ProjectorErrorKind::Log,
                    format!("reading `{}` failed: {error}", log.path().display()),
                )
            })?;
            if record.header.sequence > to {
                break;
            }
            chunk.push(committed_from_record(&record)?);
            if chunk.len() == APPLY_BATCH_EVENTS_MAX {
                self.apply(&chunk)?;
                chunk.clear();
                progress(self.cursor.sequence);
            }
        }
        if !chunk.is_empty() {
            self.apply(&chunk)?;
            progress(self.cursor.sequence);
        }
        Ok(self.cursor.sequence)
    }

    /// The digest of the state at the cursor: independent of how the events
    /// were batched, of duplicates and of restarts, because the stored keys
    /// and values are a function of the applied events alone.
    pub fn digest(&self) -> Result<Digest, ProjectorError> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"grantledger-projector/digest/v1\0");
        hasher.update(P::NAME.as_bytes());
        hasher.update(&[0]);
        hasher.update(&self.cursor.sequence.to_be_bytes());
        hasher.update(self.cursor.hash.as_bytes());
        hasher.update(&[0]);
        self.store.visit_all(|key, value| {
            let table = key.first().copied().unwrap_or(TABLE_META);
            if table == TABLE_META || P::TABLES_NOT_DIGESTED.contains(&table) {
                return;
            }
            hasher.update(&(key.len() as u32).to_be_bytes());
            hasher.update(key);
            hasher.update(&(value.len() as u32).to_be_bytes());
            hasher.update(value);
        })?;
        Ok(Digest {
            projection: P::NAME,
            sequence: self.cursor.sequence,
            record_hash: self.cursor.hash.clone(),
            digest: hasher.finalize().to_hex().to_string(),
        })
    }

    /// Bytes the store takes (table files and memtables).
    pub fn store_bytes(&self) -> u64 {
        self.store.size_bytes()
    }

    /// Flushes and compacts the store, so [`Projector::store_bytes`]
    /// measures settled data.
    pub fn compact(&self) -> Result<(), ProjectorError> {
        self.store.compact()
    }
}

/// The names of every projection, for `--projector NAME`.
pub const PROJECTION_NAMES: [&str; 3] = [
    crate::CurrentGrants::NAME,
    crate::ExpiryTimers::NAME,
    crate::AuditEvidence::NAME,
];

/// Rebuilds projection `name` from `log` into `store_dir` (which must not
/// exist or be empty) and returns its digest: what `grantledger replay
/// --projector NAME` prints.
pub fn rebuild_from_log(
    log: &Log,
    name: &str,
    store_dir: &Path,
    progress: impl FnMut(u64),
) -> Result<Digest, ProjectorError> {
    use crate::{AuditEvidence, CurrentGrants, ExpiryTimers};
    if name == CurrentGrants::NAME {
        Projector::<CurrentGrants>::rebuild(log, store_dir, progress)?.digest()
    } else if name == ExpiryTimers::NAME {
        Projector::<ExpiryTimers>::rebuild(log, store_dir, progress)?.digest()
    } else if name == AuditEvidence::NAME {
        Projector::<AuditEvidence>::rebuild(log, store_dir, progress)?.digest()
    } else {
        Err(ProjectorError::new(
            ProjectorErrorKind::UnknownProjection,
            format!(
                "there is no projection `{name}`: expected one of {}",
                PROJECTION_NAMES
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

/// A log record as the committed event it holds.
pub fn committed_from_record(
    record: &grantledger_log::Record,
) -> Result<Committed, ProjectorError> {
    let sequence = record.header.sequence;
    let envelope = decode_body(record.header.version, &record.body).map_err(|error| {
        ProjectorError::new(
            ProjectorErrorKind::Log,
            format!("record `{sequence}` does not decode: {error}"),
        )
    })?;
    Ok(Committed {
        sequence,
        time: Timestamp(record.header.time_ms),
        hash: hex::encode(record.header.hash),
        envelope,
    })
}

fn refuse_non_empty(dir: &Path) -> Result<(), ProjectorError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ProjectorError::new(
                    ProjectorErrorKind::StoreNotEmpty,
                    format!(
                        "`{}` is not empty: a rebuild starts from an empty store; remove it or choose another directory",
                        dir.display()
                    ),
                ));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ProjectorError::new(
            ProjectorErrorKind::Storage,
            format!("cannot read `{}`: {error}", dir.display()),
        )),
    }
}
