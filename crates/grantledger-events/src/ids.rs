use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// The longest id, in bytes. Ids are keys in indices and NATS subjects, so
/// they are bounded. A grant id is `grant:` and a request id, so it may be
/// six bytes longer.
pub const ID_BYTES_MAX: usize = 256;

// INVARIANT: GrantId::BYTES_MAX is ID_BYTES_MAX plus this prefix, so every
// request id has a valid grant id.
const _: () = assert!(GrantId::BYTES_MAX == ID_BYTES_MAX + GRANT_ID_PREFIX.len());

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is invalid: {rule}")]
pub struct IdError {
    /// Which id (`request id`, `principal id`, ...).
    pub what: &'static str,
    /// The offending value, shortened when very long.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

fn check_id(what: &'static str, bytes_max: usize, value: &str) -> Result<(), IdError> {
    let rule = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > bytes_max {
        Some("is too long")
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace or control characters")
    } else {
        None
    };
    match rule {
        None => Ok(()),
        Some(rule) => Err(IdError {
            what,
            value: value.chars().take(80).collect(),
            rule,
        }),
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(
            #[schemars(length(min = 1, max = $max), regex(pattern = r"^[^\s]+$"))] String,
        );

        impl $name {
            /// The longest value, in bytes.
            pub const BYTES_MAX: usize = $max;

            /// Checks `value` (non-empty, at most `BYTES_MAX` bytes, no
            /// whitespace or control characters) and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id(concat!($what, " (at most ", $max, " bytes)"), $max, &value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                $name::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A producer-chosen id for one access request; the idempotency key.
    RequestId,
    "request id",
    256
);
typed_id!(
    /// The id of one grant, derived from the request that caused it.
    GrantId,
    "grant id",
    262
);
typed_id!(
    /// A person, workload or agent identity.
    PrincipalId,
    "principal id",
    256
);
typed_id!(
    /// A resource on a target system, such as `db/prod/orders`.
    ResourceId,
    "resource id",
    256
);
typed_id!(
    /// The id of an approved entitlement in the catalog.
    EntitlementId,
    "entitlement id",
    256
);
typed_id!(
    /// A tenant: one partition of the ledger.
    TenantId,
    "tenant id",
    256
);

const GRANT_ID_PREFIX: &str = "grant:";

impl GrantId {
    /// The grant a request causes. A request causes at most one grant, so the
    /// grant id is derived from the request id: replay gives the same ids.
    pub fn for_request(request: &RequestId) -> GrantId {
        GrantId(format!("{GRANT_ID_PREFIX}{}", request.as_str()))
    }

    /// The request this grant was issued for, when the id was derived by
    /// [`GrantId::for_request`].
    pub fn request(&self) -> Option<RequestId> {
        let request = self.0.strip_prefix(GRANT_ID_PREFIX)?;
        RequestId::new(request).ok()
    }
}

/// What kind of identity a principal is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person. Sensitive scopes may route their requests to human approvers.
    Human,
    /// A service account, CI job or other non-human workload. Decided by
    /// policy alone, never queued for a human.
    Workload,
    /// An AI agent acting for a person or team. Decided by policy alone.
    Agent,
}

impl PrincipalKind {
    /// Every kind, in a fixed order.
    pub const ALL: [PrincipalKind; 3] =
        [PrincipalKind::Human, PrincipalKind::Workload, PrincipalKind::Agent];

    /// The snake_case name used in catalogs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Workload => "workload",
            PrincipalKind::Agent => "agent",
        }
    }

    /// True for workloads and agents.
    pub fn is_non_human(self) -> bool {
        !matches!(self, PrincipalKind::Human)
    }
}

impl std::str::FromStr for PrincipalKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PrincipalKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                format!("unknown principal kind `{text}`: expected `human`, `workload` or `agent`")
            })
    }
}

/// Who asks for access: an identity, its kind, and for every non-human the
/// person or team accountable for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// The identity.
    pub id: PrincipalId,
    /// Human, workload or agent.
    pub kind: PrincipalKind,
    /// The accountable owner; required for workloads and agents.
    pub owner: Option<PrincipalId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_value_and_the_rule() {
        assert!(RequestId::new("req-1").is_ok());
        let error = RequestId::new("has space").unwrap_err();
        assert_eq!(
            error.to_string(),
            "request id (at most 256 bytes) `has space` is invalid: must not contain whitespace or control characters"
        );
        assert_eq!(PrincipalId::new("").unwrap_err().rule, "must not be empty");
        assert!(ResourceId::new("x".repeat(ID_BYTES_MAX + 1)).is_err());
        let longest = RequestId::new("r".repeat(ID_BYTES_MAX)).unwrap();
        let grant = GrantId::for_request(&longest);
        assert_eq!(GrantId::new(grant.as_str()).unwrap(), grant);
        assert_eq!(grant.request(), Some(longest));
    }

    #[test]
    fn ids_are_checked_when_deserialized() {
        let parsed: Result<RequestId, _> = serde_json::from_str("\"\"");
        assert!(parsed.unwrap_err().to_string().contains("must not be empty"));
    }

    #[test]
    fn principal_kind_parses_only_known_names() {
        assert_eq!("agent".parse::<PrincipalKind>(), Ok(PrincipalKind::Agent));
        let error = "robot".parse::<PrincipalKind>().unwrap_err();
        assert!(error.contains("`robot`"), "{error}");
    }
}
