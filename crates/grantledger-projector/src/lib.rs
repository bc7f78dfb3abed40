//! grantledger's projections: views folded from the committed events of
//! the log, each in its own RocksDB with its cursor, rebuilt from the log at
//! will and checked against a replay by a digest.
//!
//! - [`Projector`] is the runtime core: a [`Projection`], its store and the
//!   cursor (the last applied sequence). [`Projector::apply`] applies events
//!   strictly in sequence order, writes state and cursor in one synced
//!   `WriteBatch`, skips duplicates, and reports a [`Gap`] instead of
//!   buffering out-of-order events. [`Projector::digest`] hashes the state
//!   at the cursor; [`rebuild_from_log`] is the offline rebuild.
//! - [`CurrentGrants`]: active grants by principal and resource, counted
//!   effective access, pending approvals, scheduled starts, and `check`.
//! - [`ExpiryTimers`]: the persistent `(expires_at, grant)` index and the
//!   index of scheduled starts and request deadlines, the timers due to the
//!   ledger, the outbox of revocations to publish, and the revocation debt.
//! - [`AuditEvidence`]: each grant's chain of evidence, the time index behind
//!   `why`, and findings.
//!
//! This crate knows nothing of NATS or the clock: the NATS runtime
//! (`grantledger-nats`) delivers events, backfills gaps and publishes; time
//! is always passed in. Projections trust the log: the ledger checked every
//! event against the rules before committing it, and an event that refers to
//! something a projection never saw is refused as
//! [`ProjectorErrorKind::Inconsistent`] rather than guessed around.

mod audit_evidence;
mod current_grants;
mod error;
mod expiry_timers;
mod runtime;
mod store;

pub use audit_evidence::{
    ANSWER_GRANTS_MAX, AccessAnswer, AuditEvidence, EVIDENCE_ITEMS_MAX, Evidence, EvidenceItem,
    Finding, FindingRules, Findings, GrantEvidence, SCAN_ENTRIES_MAX, WhyAnswer,
};
pub use current_grants::{
    ActiveGrant, CurrentGrants, PendingApproval, QUERY_ITEMS_MAX, ScheduledStart,
};
pub use error::{ProjectorError, ProjectorErrorKind};
pub use expiry_timers::{
    DUE_BATCH_MAX, DebtItem, DueTimer, ExpiryTimers, Publication, TIMER_RESEND_AFTER_MS,
    resource_kind,
};
pub use runtime::{
    APPLY_BATCH_EVENTS_MAX, ApplyOutcome, Digest, Gap, PROJECTION_NAMES, Projection, Projector,
    ProjectorOptions, committed_from_record, rebuild_from_log,
};
pub use store::Txn;
