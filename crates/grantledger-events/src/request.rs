use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EntitlementId, Principal, RequestId, ResourceId, TenantId};

/// The request a producer sends (on `grants.requests.<tenant>` or
/// `POST /v1/requests`), as JSON. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The producer's idempotency key: the same id always gets the same
    /// decision, however often it is delivered.
    pub request_id: RequestId,
    /// The partition the request belongs to.
    pub tenant: TenantId,
    /// Who asks. Workloads and agents name their accountable owner.
    pub principal: Principal,
    /// The catalog entitlement asked for.
    pub entitlement: EntitlementId,
    /// The resource, which must match the entitlement's pattern.
    pub resource: ResourceId,
    /// The actions asked for, a subset of the entitlement's.
    pub actions: Vec<String>,
    /// Why access is needed.
    pub justification: String,
    /// A ticket or change record id.
    #[serde(default)]
    pub ticket: Option<String>,
    /// The TTL asked for, in milliseconds; the entry's default when absent.
    #[serde(default)]
    pub ttl_ms: Option<i64>,
}
