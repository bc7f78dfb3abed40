//! grantledger's policy engine: Cedar context rules over the catalog of
//! approved entitlements, step-up and time-boxed exceptions, break-glass,
//! workload identity tokens, and table tests for policy authors.
//!
//! - [`GrantledgerSchema`]: the Cedar schema in `schemas/grantledger.cedarschema`.
//! - [`PolicySet::parse`]: a policy text, validated in strict mode, with the
//!   grantledger annotations (`@id`, `@step_up`, `@group`, `@exception`,
//!   `@reason`) read and checked, and its domain-separated hash.
//! - [`Engine::evaluate`]: catalog + exception rules + policies, one request,
//!   one [`PolicyDecision`] (allow, needs approval, deny) that records what
//!   determined it, the hashes of what was in force, the Cedar version and
//!   every value evaluated. The semantics are documented on [`engine`].
//! - [`identity`]: verifying SPIFFE JWT-SVIDs and OIDC ID tokens (RS256,
//!   ES256, EdDSA) against configured issuers and their JWKS files, with time
//!   passed in; each rejection has its own reason.
//! - [`runner::run_dir`]: the table tests (`*.test.toml`) kept next to a
//!   catalog and its policies.
//!
//! Pure: no clock, no network, no randomness. The only IO is reading the
//! files a caller names (a policy directory, an issuer config and its JWKS
//! files).

pub mod context;
pub mod engine;
mod error;
pub mod exceptions;
pub mod identity;
mod path_gate;
pub mod policy_set;
pub mod runner;
mod schema;

pub use context::{RequestContext, Task, WorkloadIdentity};
pub use engine::{
    CEDAR_VERSION, Engine, PolicyAction, PolicyDecision, PolicyRequest, PrincipalAttributes, reason,
};
pub use error::{LoadError, LoadErrorKind, PolicyError, PolicyErrorKind};
pub use exceptions::{ExceptionRule, ExceptionRules};
pub use policy_set::{PermitKind, PolicyInfo, PolicySet, policy_set_hash};
pub use schema::{GrantledgerSchema, SCHEMA_TEXT};
