//! The pure core of grantledger: the catalog of approved entitlements, and
//! the grant state machine that decides commands against it.
//!
//! - [`Catalog::parse`] reads and validates the catalog (TOML).
//! - [`decide`]`(&State, &Command, now)` turns one command into the events it
//!   causes, or a [`Rejection`] naming the broken rule.
//! - [`apply`]`(&mut State, &Event, at)` folds one committed event into the
//!   state, or refuses it with an [`ApplyError`] when it breaks a rule, so a
//!   replay catches a log written by a faulty or hostile writer even when its
//!   hashes are consistent.
//! - [`State`] answers the questions the CLI and the projectors ask:
//!   [`State::check`] ("may S do A on R at T"), live grants, due expiries,
//!   due starts and request expiries, scheduled requests, revocation debt,
//!   pending approvals, counts, and a [`State::digest`] that
//!   two replays of one log reproduce bit for bit.
//! - [`Workload`] generates a deterministic, realistic stream of commands
//!   for `grantledger simulate`, property tests and benchmarks.
//!
//! This crate is pure: no IO, no files, no RocksDB, no NATS, no clock, no
//! randomness from the operating system. Time comes in as a [`Timestamp`]
//! value; the workload generator uses its own seeded PRNG.
//!
//! [`Timestamp`]: grantledger_events::Timestamp

mod apply;
mod catalog;
mod command;
mod decide;
mod pattern;
mod policy;
mod rejection;
mod state;
mod workload;

pub use apply::{ApplyError, ApplyErrorKind, apply};
pub use catalog::{
    ACTION_BYTES_MAX, ApprovalRule, CATALOG_BYTES_MAX, Catalog, CatalogError, CatalogErrorKind,
    DEFAULT_CATALOG, ENTITLEMENTS_MAX, Entitlement, GROUP_MEMBERS_MAX, RiskTier, TTL_S_CEILING,
    catalog_hash,
};
pub use command::{
    ACTIONS_PER_REQUEST_MAX, CONTEXT_BYTES_MAX, Command, GROUPS_PER_REQUEST_MAX,
    IDENTITY_TOKEN_BYTES_MAX, POLICY_BYTES_MAX, SCHEDULE_AHEAD_MAX_MS,
    TEXT_BYTES_MAX,
};
pub use decide::{EngineDecision, EngineInput, decide, decide_with};
pub use policy::NO_PERMIT_MATCHED;
pub use pattern::{PatternError, ResourcePattern, is_concrete_resource};
pub use rejection::{Reason, Rejection};
pub use state::{
    Counts, GrantView, PendingRequest, RequestStatus, RevocationDebt, RevocationView,
    ScheduledRequest, State,
};
pub use workload::Workload;
