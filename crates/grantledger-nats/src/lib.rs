//! grantledger on NATS JetStream: the subject names of `DESIGN.md`
//! ([`subjects`]) and the three streams, created or checked before anything
//! is published ([`streams`]).
//!
//! This is the only crate that imports async-nats: the rest of the workspace
//! talks to NATS through it, so the client library, its version and its
//! error types stay behind one boundary.

pub mod clock;
mod connect;
pub mod ledger_service;
pub mod policy_admin;
pub mod projector_service;
pub mod revoker;
pub mod streams;
pub mod subjects;

pub use clock::{Clock, ManualTime};
pub use connect::NATS_SERVER_VERSION_MIN;
pub use streams::{
    GRANT_EXPIRY_STREAM, GRANT_INPUT_STREAM, LEDGER_EVENTS_STREAM, StreamsConfig, StreamsError,
    StreamsErrorKind, StreamsReport, ensure_streams, stream_configs,
};
pub use subjects::{
    CHECKPOINTS_SUBJECT, InputKind, InputSubject, SubjectError, SubjectErrorKind, TokenRole,
    approvals_subject, expiry_filter, expiry_subject, ledger_events_filter, ledger_events_subject,
    parse_input_subject, policy_subject, query_subject, rejections_subject, requests_subject,
    revocations_subject, signals_subject, status_subject, timers_subject,
};
