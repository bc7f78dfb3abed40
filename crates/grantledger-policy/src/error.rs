//! The error types: one per operation, each with a closed set of kinds and
//! a message that names the offending value and the rule it breaks.

/// Why a schema, policy set, catalog or exception file was refused. Nothing
/// is half-loaded: an error means nothing of that input is in force.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    kind: LoadErrorKind,
    policy_id: Option<String>,
    message: String,
}

/// The closed set of reasons an input to the engine is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoadErrorKind {
    /// Over a bound (bytes, policies, entries).
    TooLarge,
    /// The Cedar schema does not parse, or warns.
    SchemaInvalid,
    /// A policy does not parse.
    PolicySyntax,
    /// A policy does not validate against the schema, or is a template.
    PolicyInvalid,
    /// A policy has no `@id`.
    PolicyIdMissing,
    /// Two policies share an `@id`.
    PolicyIdDuplicated,
    /// An annotation grantledger does not know, or a malformed value.
    AnnotationInvalid,
    /// A policy names an entitlement or approver group the catalog lacks,
    /// or asks for more approvers than the group has.
    PolicyCatalogMismatch,
    /// The catalog is refused by `grantledger-core`.
    CatalogInvalid,
    /// The exception file is not valid TOML or breaks one of its rules.
    ExceptionsInvalid,
    /// A table-test file is not valid TOML or not the table-test shape.
    TestsInvalid,
    /// A file could not be read.
    Io,
}

impl LoadErrorKind {
    /// A stable snake_case code for the kind.
    pub fn code(self) -> &'static str {
        match self {
            LoadErrorKind::TooLarge => "too_large",
            LoadErrorKind::SchemaInvalid => "schema_invalid",
            LoadErrorKind::PolicySyntax => "policy_syntax",
            LoadErrorKind::PolicyInvalid => "policy_invalid",
            LoadErrorKind::PolicyIdMissing => "policy_id_missing",
            LoadErrorKind::PolicyIdDuplicated => "policy_id_duplicated",
            LoadErrorKind::AnnotationInvalid => "annotation_invalid",
            LoadErrorKind::PolicyCatalogMismatch => "policy_catalog_mismatch",
            LoadErrorKind::CatalogInvalid => "catalog_invalid",
            LoadErrorKind::ExceptionsInvalid => "exceptions_invalid",
            LoadErrorKind::TestsInvalid => "tests_invalid",
            LoadErrorKind::Io => "io",
        }
    }
}

impl LoadError {
    pub(crate) fn new(kind: LoadErrorKind, message: impl Into<String>) -> LoadError {
        LoadError {
            kind,
            policy_id: None,
            message: message.into(),
        }
    }

    pub(crate) fn for_policy(
        kind: LoadErrorKind,
        policy_id: &str,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError {
            kind,
            policy_id: Some(policy_id.to_string()),
            message: message.into(),
        }
    }

    /// What kind of problem.
    pub fn kind(&self) -> LoadErrorKind {
        self.kind
    }

    /// The `@id` of the offending policy, when the problem is in one.
    pub fn policy_id(&self) -> Option<&str> {
        self.policy_id.as_deref()
    }

    /// The message: the offending value in backticks and the rule.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a request could not be evaluated at all. A request that can be
/// evaluated but breaks a rule is not an error: it gets a `deny` decision
/// naming the rule, which is recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    kind: PolicyErrorKind,
    field: Option<String>,
    message: String,
}

/// The closed set of reasons a request cannot be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyErrorKind {
    /// The request is not the expected JSON/TOML shape.
    RequestMalformed,
    /// A context field the schema does not have.
    ContextFieldUnknown,
    /// A context value of the wrong type.
    ContextValueWrongType,
    /// A context value of the right type outside its range.
    ContextValueOutOfRange,
    /// A value over its bound (length, count).
    InputExceedsBound,
    /// An id that is empty or holds whitespace or control characters.
    IdInvalid,
    /// Cedar refused to build the request (a bug: the engine builds it
    /// from checked values).
    CedarRequest,
}

impl PolicyErrorKind {
    /// A stable snake_case code for the kind.
    pub fn code(self) -> &'static str {
        match self {
            PolicyErrorKind::RequestMalformed => "request_malformed",
            PolicyErrorKind::ContextFieldUnknown => "context_field_unknown",
            PolicyErrorKind::ContextValueWrongType => "context_value_wrong_type",
            PolicyErrorKind::ContextValueOutOfRange => "context_value_out_of_range",
            PolicyErrorKind::InputExceedsBound => "input_exceeds_bound",
            PolicyErrorKind::IdInvalid => "id_invalid",
            PolicyErrorKind::CedarRequest => "cedar_request",
        }
    }
}

impl PolicyError {
    pub(crate) fn new(kind: PolicyErrorKind, message: impl Into<String>) -> PolicyError {
        PolicyError {
            kind,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn for_field(
        kind: PolicyErrorKind,
        field: &str,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError {
            kind,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// What kind of problem.
    pub fn kind(&self) -> PolicyErrorKind {
        self.kind
    }

    /// The offending field (`context.risk_score`), when there is one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The message: the offending value in backticks and the rule.
    pub fn message(&self) -> &str {
        &self.message
    }
}
