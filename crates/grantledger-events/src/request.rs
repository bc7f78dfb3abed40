use std::collections::BTreeMap;

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
    /// A scheduled start (a maintenance window), UTC milliseconds: once
    /// decided (allowed, or approved by enough approvers) the grant is
    /// issued when this time comes, not before, and its TTL counts from it.
    /// Absent, or not later than the decision, the grant is issued at once.
    /// At most `SCHEDULE_AHEAD_MAX_MS` (30 days) after the submission.
    #[serde(default)]
    pub starts_at_ms: Option<i64>,
    /// The groups the intake channel's identity provider puts the principal
    /// in, for policies that read `principal.groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the intake channel knows about the situation, for the Cedar
    /// policies: `in_maintenance_window`, `device_managed`, `on_call`
    /// (booleans), `change_record`, `incident` (strings), `risk_score`
    /// (0..=100), `workload_identity` and `task` (records). Checked field by
    /// field when a policy set is in force; ignored by the catalog-only rules.
    /// The values evaluated are recorded with the decision.
    #[serde(default)]
    pub context: BTreeMap<String, serde_json::Value>,
    /// A workload's or agent's signed identity token (a SPIFFE JWT-SVID or
    /// an OIDC ID token). The ledger verifies it against its configured
    /// issuers and passes the verified claims to the policies as
    /// `context.workload_identity`; the token itself is never recorded.
    #[serde(default)]
    pub identity_token: Option<String>,
}
