//! Wire types of grantledger: the lifecycle events, the envelope every event
//! travels in, typed ids, the request a producer sends, and the canonical
//! codec that turns an envelope into a record body.
//!
//! This crate does no IO: no RocksDB, no NATS, no clock, no files. Producers,
//! tests and every other crate can depend on it without pulling in storage.
//! Time is a value ([`Timestamp`], UTC milliseconds) handed in by the caller.
//!
//! The body codec is bincode `=2.0.1` (serde, standard config). The crate is
//! unmaintained upstream, so the version is pinned and the format is frozen;
//! [`CODEC_VERSION`] is written in every record header to leave room for a
//! new codec. Because bincode is not self-describing, the wire structs never
//! use `skip_serializing_if` or untagged / internally tagged enums.

mod codec;
mod event;
mod ids;
mod request;
pub mod schema;
mod time;

pub use codec::{CODEC_VERSION, CODEC_VERSION_1, CODEC_VERSION_2, DecodeError, DecodeErrorKind, decode_body, encode_body};
pub use event::*;
pub use ids::*;
pub use request::*;
pub use time::Timestamp;
