//! The engine: the catalog, the exception rules and a Cedar policy set, and
//! `evaluate(request) -> decision`.
//!
//! # How a decision is made
//!
//! 1. **Input.** A request that cannot be evaluated (an id with whitespace,
//!    a field over its bound) is a [`PolicyError`]; nothing is decided.
//! 2. **Catalog.** An unknown entitlement is denied at once
//!    (`entitlement_unknown`). Otherwise every catalog rule is checked and
//!    every broken one is named, with the codes `grantledger-core` uses
//!    (`resource_outside_entitlement`, `principal_kind_not_allowed`,
//!    `ticket_required`, `ttl_exceeds_entry_max`,
//!    `entitlement_denies_self_service`, ...; for break-glass
//!    `break_glass_not_eligible`, `break_glass_human_only`,
//!    `break_glass_reason_required`, `ttl_exceeds_break_glass_max`).
//! 3. **Cedar.** The request is evaluated against the policies whose scope
//!    can match it (see *Slicing*). Cedar's answer is read with the
//!    grantledger annotations ([`crate::policy_set`]):
//!    - a satisfied `forbid` wins: deny, citing every satisfied forbid
//!      (`forbidden_by_policy` and each forbid's `@reason`);
//!    - a policy that fails to evaluate denies (`policy_evaluation_error`,
//!      citing it): a broken rule must not let a request through;
//!    - no permit satisfied: deny with the explicit `no_permit_matched`;
//!    - a satisfied plain permit: the policy asks for nothing more (the
//!      determining policies are the satisfied plain permits);
//!    - otherwise, satisfied `@step_up` permits: the policy asks for the
//!      *weakest* of their requirements (fewest approvers; on a tie, the
//!      group name first in byte order). Permits are alternatives in Cedar
//!      (any one suffices), so a more specific permit that asks for less
//!      (one on-call SRE instead of two) relaxes a general one, exactly as
//!      a plain permit relaxes every step-up. To tighten, write a `forbid`
//!      or narrow the weaker permit's `when`;
//!    - otherwise only `@exception` permits are satisfied: the request is
//!      outside its normal context, and the catalog's exception rule applies.
//! 4. **Combination.** The catalog rule and the policy requirement are
//!    layers that must both agree, so the *stricter* wins: deny over N
//!    approvers over auto; more approvers over fewer; on a tie in approver
//!    count, the later, more specific layer's group (policy over catalog,
//!    exception over both). An exception (a TTL above the entry's normal
//!    TTL, or an exception-only permit) adds the entry's exception rule as a
//!    third layer; an entry without one denies (`exception_rule_missing`),
//!    one whose rule is `deny` denies (`exception_denied`).
//! 5. **Non-humans.** Workloads and agents are decided by policy alone: an
//!    outcome that would wait for human approvers denies them
//!    (`workload_needs_policy_approval`).
//! 6. **Break-glass** grants at once or not at all: the entry's approval
//!    rule does not apply (that is the point of break-glass, reviewed
//!    afterwards), but a policy that only allows it with approvers or as an
//!    exception denies it (`break_glass_cannot_wait_for_approval`).
//!
//! # Slicing
//!
//! Cedar evaluates every policy it is given (about 1 µs each). At load time
//! the engine files each policy under the actions and principal kinds its
//! scope allows (`principal is User` files it under humans only) and, when
//! its resource scope is `resource in Entitlement::"id"` (or `is Resource
//! in ...`), under that entitlement; a request is evaluated against the
//! policies filed under its action, its principal's kind and its
//! entitlement, plus those scoped to no entitlement. The others cannot
//! match it (a `Resource` has exactly one parent, the entitlement it is
//! asked under; principals have no parents), so the answer is the same as
//! with the whole set; a property test checks that.
//!
//! A policy scoped to no entitlement whose first `when` starts with
//! `resource.path like "..."` is also left out of the slices of the
//! entitlements whose catalog pattern shares no path with it (see
//! `path_gate`): for a request whose resource matches its entitlement's
//! pattern it would evaluate to `false`, without error, at that first
//! conjunct. A request whose resource does not match its entitlement's
//! pattern (refused by the catalog) is evaluated against the whole set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Effect, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PrincipalConstraint, Request, ResourceConstraint, RestrictedExpression,
};
use grantledger_core::{
    ACTIONS_PER_REQUEST_MAX, ApprovalRule, Catalog, Entitlement, Reason, TEXT_BYTES_MAX,
    is_concrete_resource,
};
use grantledger_events::{DecisionOutcome, PrincipalId, PrincipalKind, ResourceId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{RequestContext, check_text};
use crate::error::{LoadError, LoadErrorKind, PolicyError, PolicyErrorKind};
use crate::exceptions::ExceptionRules;
use crate::path_gate;
use crate::policy_set::{PermitKind, PolicySet};
use crate::schema::GrantledgerSchema;

/// The exact `cedar-policy` version this crate is built with (the
/// workspace pins it with `=`). Decisions record it: a replay with another
/// Cedar version is a different evaluator and must say so.
pub const CEDAR_VERSION: &str = "4.14.1";

/// Slices per scope: 3 actions times 3 principal kinds.
const SLOTS: usize = 9;

/// The most groups a principal may name.
pub const PRINCIPAL_GROUPS_MAX: usize = 64;

/// The reason codes this engine adds to `grantledger-core`'s
/// [`Reason`] codes. Codes are stable: they are recorded in the log.
pub mod reason {
    /// No permit policy was satisfied: the default deny, said explicitly.
    pub const NO_PERMIT_MATCHED: &str = "no_permit_matched";
    /// A `forbid` policy was satisfied.
    pub const FORBIDDEN_BY_POLICY: &str = "forbidden_by_policy";
    /// A policy failed to evaluate; denied rather than guessed.
    pub const POLICY_EVALUATION_ERROR: &str = "policy_evaluation_error";
    /// The approvers asked for are the catalog entry's.
    pub const STEP_UP_BY_CATALOG: &str = "step_up_by_catalog";
    /// The approvers asked for are a `@step_up` policy's.
    pub const STEP_UP_BY_POLICY: &str = "step_up_by_policy";
    /// The approvers asked for are the entry's exception rule's.
    pub const STEP_UP_BY_EXCEPTION: &str = "step_up_by_exception";
    /// The TTL asked for is above the entry's normal TTL (within its cap).
    pub const EXCEPTION_TTL_BEYOND_NORMAL: &str = "exception_ttl_beyond_normal";
    /// Only `@exception` permits were satisfied.
    pub const EXCEPTION_OUTSIDE_NORMAL_CONTEXT: &str = "exception_outside_normal_context";
    /// An exception was needed and the entry has no exception rule.
    pub const EXCEPTION_RULE_MISSING: &str = "exception_rule_missing";
    /// An exception was needed and the entry's exception rule is `deny`.
    pub const EXCEPTION_DENIED: &str = "exception_denied";
    /// Granted at once by break-glass; a review is owed.
    pub const BREAK_GLASS: &str = "break_glass";
    /// Break-glass that a policy allows only with approvers or as an exception.
    pub const BREAK_GLASS_CANNOT_WAIT_FOR_APPROVAL: &str = "break_glass_cannot_wait_for_approval";
}

/// What the request asks Cedar to allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// A new grant.
    Request,
    /// A later expiry for a live grant; its TTL is counted from first issue.
    Extend,
    /// An emergency grant without prior approval.
    BreakGlass,
}

impl PolicyAction {
    /// Every action, in a fixed order.
    pub const ALL: [PolicyAction; 3] = [
        PolicyAction::Request,
        PolicyAction::Extend,
        PolicyAction::BreakGlass,
    ];

    /// The Cedar action id.
    pub fn name(self) -> &'static str {
        match self {
            PolicyAction::Request => "request",
            PolicyAction::Extend => "extend",
            PolicyAction::BreakGlass => "break_glass",
        }
    }

    fn index(self) -> usize {
        match self {
            PolicyAction::Request => 0,
            PolicyAction::Extend => 1,
            PolicyAction::BreakGlass => 2,
        }
    }
}

/// The requester, as the intake channel authenticated it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalAttributes {
    /// The identity.
    pub id: String,
    /// Human, workload or agent.
    pub kind: PrincipalKind,
    /// The accountable owner; required for workloads and agents.
    #[serde(default)]
    pub owner: Option<String>,
    /// The groups the identity provider (or the platform) puts it in.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One request to decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Who asks.
    pub principal: PrincipalAttributes,
    /// What for.
    pub action: PolicyAction,
    /// The catalog entitlement.
    pub entitlement: String,
    /// The concrete resource.
    pub resource: String,
    /// The actions on the target system.
    pub actions: Vec<String>,
    /// The TTL asked for, in milliseconds; the entry's default when absent
    /// (for break-glass, the smaller of the default and the break-glass cap).
    /// For `extend`, the whole lifetime counted from the first issue.
    #[serde(default)]
    pub ttl_requested_ms: Option<i64>,
    /// A ticket id.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Why access is needed.
    #[serde(default)]
    pub justification: String,
    /// The break-glass reason; required for `break_glass`.
    #[serde(default)]
    pub break_glass_reason: Option<String>,
    /// The ledger time of the decision, UTC milliseconds.
    pub at_ms: i64,
    /// What the intake channel knows about the situation.
    #[serde(default)]
    pub context: RequestContext,
}

impl PolicyRequest {
    /// Reads a request from a JSON value. The context is checked field by
    /// field first, so a wrong type is reported as
    /// [`PolicyErrorKind::ContextValueWrongType`] naming the field; any
    /// other problem is [`PolicyErrorKind::RequestMalformed`] with serde's
    /// message (which names the field).
    pub fn from_json_value(mut value: Value) -> Result<PolicyRequest, PolicyError> {
        let context = match value.as_object_mut().and_then(|map| map.remove("context")) {
            None => RequestContext::default(),
            Some(Value::Object(map)) => {
                RequestContext::from_map(&map.into_iter().collect::<BTreeMap<_, _>>())?
            }
            Some(other) => {
                return Err(PolicyError::for_field(
                    PolicyErrorKind::ContextValueWrongType,
                    "context",
                    format!(
                        "`context` must be a record, found {} `{other}`",
                        crate::context::type_name(&other)
                    ),
                ));
            }
        };
        let mut request: PolicyRequest = serde_json::from_value(value).map_err(|error| {
            PolicyError::new(
                PolicyErrorKind::RequestMalformed,
                format!("request: {error}"),
            )
        })?;
        request.context = context;
        Ok(request)
    }
}

/// The decision on one request, with everything a replay needs to
/// re-evaluate it and an auditor needs to understand it. Deterministic: the
/// same engine and request always give an equal value, byte for byte once
/// serialized (every list is sorted, every map is ordered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDecision {
    /// Allow, needs approval (step-up), or deny.
    pub outcome: DecisionOutcome,
    /// The `@id`s of the policies that determined the outcome, sorted: the
    /// satisfied forbids (or the policies that failed to evaluate) of a
    /// deny, the chosen permits of an allow or a step-up. Empty when no
    /// policy determined it: a deny by the catalog or by the combination
    /// rules (whose `details` name the permits involved), or
    /// `no_permit_matched`, which `reasons` then says explicitly.
    pub determining_policies: Vec<String>,
    /// Rule codes, sorted and distinct.
    pub reasons: Vec<String>,
    /// The same rules in sentences naming the offending values, in the
    /// order they were checked.
    pub details: Vec<String>,
    /// What was asked.
    pub action: PolicyAction,
    /// The catalog entitlement.
    pub entitlement: String,
    /// The TTL of the grant if issued; 0 for a deny.
    pub ttl_granted_ms: i64,
    /// True when the request is a time-boxed exception.
    pub exception: bool,
    /// True for an allowed break-glass (a review is owed).
    pub break_glass: bool,
    /// The hash of the policy text in force.
    pub policy_set_hash: String,
    /// The hash of the catalog in force.
    pub catalog_hash: String,
    /// The hash of the exception rules in force, if any.
    pub exceptions_hash: Option<String>,
    /// The Cedar version that evaluated it.
    pub cedar_version: String,
    /// Every value Cedar saw, by dotted name (`context.device_managed`,
    /// `principal.groups`, `resource.path`, `entitlement.risk_tier`), sorted.
    /// Empty when the entitlement is unknown (Cedar was not asked).
    /// `context.now` is present only when a policy can read it (see
    /// [`Engine`]); `context.now_ms` always is.
    pub evaluated: BTreeMap<String, Value>,
}

/// The policy engine: a catalog, its exception rules and a policy set,
/// cross-checked against each other, with Cedar's inputs prepared once.
#[derive(Debug)]
pub struct Engine {
    catalog: Catalog,
    exceptions: ExceptionRules,
    policies: PolicySet,
    authorizer: Authorizer,
    names: Names,
    // Per catalog entitlement: its Cedar entity and the values it adds to
    // a decision's `evaluated`, built once.
    entitlements: HashMap<String, (Entity, Vec<(String, Value)>)>,
    // INVARIANT: for every catalog entitlement `e`, `slices[e][slot(a, k)]`
    // holds the policies whose scope allows action `a` and principal kind
    // `k` and that either are scoped to `e`, or name no entitlement and
    // are not path-gated away from `e`'s pattern (see `path_gate`).
    // Entitlements with the same policies share one array. It is used only
    // for a request whose resource matches `e`'s pattern; the others are
    // evaluated against the whole set.
    slices: HashMap<String, Arc<[cedar_policy::PolicySet; SLOTS]>>,
    // Cedar parses a `datetime` with a regular expression (about 4 µs, as
    // much as the rest of the context), so `context.now` is built only
    // when some policy can read it: a policy that reads it must spell
    // `now`. Conservative: any other `now` in the text (a comment) keeps it.
    context_now_read: bool,
}

#[derive(Debug)]
struct Names {
    user: EntityTypeName,
    workload: EntityTypeName,
    agent: EntityTypeName,
    resource: EntityTypeName,
    entitlement: EntityTypeName,
    actions: [EntityUid; 3],
}

impl Engine {
    /// Builds an engine, refusing a policy set that names an entitlement or
    /// approver group the catalog does not have, or asks for more approvers
    /// than a group has members.
    pub fn new(
        catalog: Catalog,
        policies: PolicySet,
        exceptions: ExceptionRules,
    ) -> Result<Engine, LoadError> {
        let names = Names::new();
        for info in policies.policies() {
            if let Some(PermitKind::StepUp {
                approvers_required,
                group,
            }) = &info.permit
            {
                let Some(members) = catalog.group(group) else {
                    return Err(LoadError::for_policy(
                        LoadErrorKind::PolicyCatalogMismatch,
                        &info.id,
                        format!(
                            "policy `{}`: `@group(\"{group}\")` is not a group of the catalog",
                            info.id
                        ),
                    ));
                };
                if *approvers_required as usize > members.len() {
                    return Err(LoadError::for_policy(
                        LoadErrorKind::PolicyCatalogMismatch,
                        &info.id,
                        format!(
                            "policy `{}`: `@step_up(\"{approvers_required}\")` asks for more approvers than group `{group}` has members (`{}`)",
                            info.id,
                            members.len()
                        ),
                    ));
                }
            }
        }
        // Every (slot, policy) pair a slice may take, and by index: the
        // ones every entitlement takes, the path-gated ones, and the ones
        // scoped to one entitlement.
        let mut members: Vec<(usize, cedar_policy::Policy)> = Vec::new();
        let mut global: Vec<usize> = Vec::new();
        let mut gated: Vec<(usize, path_gate::Glob)> = Vec::new();
        let mut scoped: HashMap<String, Vec<usize>> = HashMap::new();
        for policy in policies.cedar().policies() {
            let id = policy.id().to_string();
            for literal in policy.entity_literals() {
                if literal.type_name() == &names.entitlement
                    && catalog.entitlement(literal.id().unescaped()).is_none()
                {
                    return Err(LoadError::for_policy(
                        LoadErrorKind::PolicyCatalogMismatch,
                        &id,
                        format!(
                            "policy `{id}` names `Entitlement::\"{}\"`, which is not in the catalog",
                            literal.id().unescaped()
                        ),
                    ));
                }
            }
            let actions = names.actions_of(&policy.action_constraint());
            let kinds = names.kinds_of(&policy.principal_constraint());
            let entitlement = names.entitlement_of(&policy.resource_constraint());
            let gate = match entitlement {
                None => path_gate::gate_of(policy),
                Some(_) => None,
            };
            for &action in &actions {
                for &kind in &kinds {
                    let index = members.len();
                    members.push((action * 3 + kind, policy.clone()));
                    match (&entitlement, &gate) {
                        (Some(entitlement), _) => {
                            scoped.entry(entitlement.clone()).or_default().push(index)
                        }
                        (None, Some(glob)) => gated.push((index, glob.clone())),
                        (None, None) => global.push(index),
                    }
                }
            }
        }
        let mut shared: HashMap<Vec<usize>, Arc<[cedar_policy::PolicySet; SLOTS]>> =
            HashMap::new();
        let mut slices = HashMap::with_capacity(catalog.entitlements().len());
        for entry in catalog.entitlements() {
            let glob = path_gate::catalog_glob(&entry.resource);
            let mut taken: Vec<usize> = gated
                .iter()
                .filter(|(_, gate)| path_gate::overlap(&glob, gate))
                .map(|(index, _)| *index)
                .chain(scoped.get(&entry.id).into_iter().flatten().copied())
                .collect();
            taken.sort_unstable();
            let slice = shared.entry(taken).or_insert_with_key(|taken| {
                let mut slice: [cedar_policy::PolicySet; SLOTS] = Default::default();
                for &index in global.iter().chain(taken) {
                    let (slot, policy) = &members[index];
                    add_policy(&mut slice[*slot], policy);
                }
                Arc::new(slice)
            });
            slices.insert(entry.id.clone(), Arc::clone(slice));
        }
        let mut entitlements = HashMap::with_capacity(catalog.entitlements().len());
        for entry in catalog.entitlements() {
            let uid = names.uid(&names.entitlement, &entry.id);
            let entity = Entity::new(
                uid,
                entitlement_attributes(entry)
                    .into_iter()
                    .map(|(key, value)| (key.to_string(), value.0))
                    .collect(),
                HashSet::new(),
            )
            .map_err(|error| {
                LoadError::new(
                    LoadErrorKind::CatalogInvalid,
                    format!(
                        "entitlement `{}` cannot be given to Cedar: {error}",
                        entry.id
                    ),
                )
            })?;
            let recorded = entitlement_attributes(entry)
                .into_iter()
                .map(|(key, value)| (format!("entitlement.{key}"), value.1))
                .collect();
            entitlements.insert(entry.id.clone(), (entity, recorded));
        }
        let context_now_read = policies.text().replace("now_ms", "").contains("now");
        Ok(Engine {
            context_now_read,
            catalog,
            exceptions,
            policies,
            authorizer: Authorizer::new(),
            names,
            entitlements,
            slices,
        })
    }

    /// Parses and cross-checks the three texts: the catalog (core's TOML),
    /// the policies (Cedar) and, optionally, the exception rules (TOML).
    pub fn from_texts(
        schema: &GrantledgerSchema,
        catalog_text: &str,
        policy_text: &str,
        exceptions_text: Option<&str>,
    ) -> Result<Engine, LoadError> {
        let catalog = Catalog::parse(catalog_text).map_err(|error| {
            LoadError::new(
                LoadErrorKind::CatalogInvalid,
                format!("catalog refused ({}): {error}", error.kind().code()),
            )
        })?;
        let policies = PolicySet::parse(policy_text, schema)?;
        let exceptions = match exceptions_text {
            None => ExceptionRules::none(),
            Some(text) => ExceptionRules::parse(text, &catalog)?,
        };
        Engine::new(catalog, policies, exceptions)
    }

    /// Loads `catalog.toml`, `policies.cedar` and, when present,
    /// `exceptions.toml` from a directory, with the shipped schema.
    pub fn load_dir(dir: &std::path::Path) -> Result<Engine, LoadError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|error| {
                LoadError::new(
                    LoadErrorKind::Io,
                    format!("cannot read `{}`: {error}", path.display()),
                )
            })
        };
        let catalog_text = read("catalog.toml")?;
        let policy_text = read("policies.cedar")?;
        let exceptions_text = if dir.join("exceptions.toml").exists() {
            Some(read("exceptions.toml")?)
        } else {
            None
        };
        Engine::from_texts(
            &GrantledgerSchema::shipped()?,
            &catalog_text,
            &policy_text,
            exceptions_text.as_deref(),
        )
    }

    /// The catalog in force.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The policy set in force.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The exception rules in force.
    pub fn exceptions(&self) -> &ExceptionRules {
        &self.exceptions
    }

    /// Decides one request. Pure: the time is the request's `at_ms`.
    pub fn evaluate(&self, request: &PolicyRequest) -> Result<PolicyDecision, PolicyError> {
        self.evaluate_with(request, true)
    }

    /// [`Engine::evaluate`] against the whole policy set instead of the
    /// slice for the request. Gives the same decision, slower; kept for the
    /// property test that proves slicing sound and for the benchmark.
    #[doc(hidden)]
    pub fn evaluate_unsliced(
        &self,
        request: &PolicyRequest,
    ) -> Result<PolicyDecision, PolicyError> {
        self.evaluate_with(request, false)
    }

    /// Cedar's raw answer (allow or deny, and the determining policy ids) on
    /// the request's slice, without the catalog and annotation logic: the
    /// benchmark's peer.
    #[doc(hidden)]
    pub fn cedar_only(&self, request: &PolicyRequest) -> Result<bool, PolicyError> {
        check_input(request)?;
        let Some(entry) = self.catalog.entitlement(&request.entitlement) else {
            return Ok(false);
        };
        let ttl_ms = request.ttl_requested_ms.unwrap_or(entry.ttl_default_ms);
        let prepared = self.prepare(request, entry, ttl_ms, self.context_now_read)?;
        let sliced = entry.resource.matches(&request.resource);
        let response = self.authorizer.is_authorized(
            &prepared.request,
            self.slice(request, entry, sliced),
            &prepared.entities,
        );
        Ok(response.decision() == cedar_policy::Decision::Allow)
    }

    /// Builds the Cedar request, entities and record for `request` and
    /// nothing more: the benchmark's measure of the input cost.
    #[doc(hidden)]
    pub fn prepare_only(&self, request: &PolicyRequest) -> Result<usize, PolicyError> {
        let Some(entry) = self.catalog.entitlement(&request.entitlement) else {
            return Ok(0);
        };
        let ttl_ms = request.ttl_requested_ms.unwrap_or(entry.ttl_default_ms);
        Ok(self
            .prepare(request, entry, ttl_ms, self.context_now_read)?
            .evaluated
            .len())
    }

    /// How many policies the request's slice holds.
    #[doc(hidden)]
    pub fn slice_len(&self, request: &PolicyRequest) -> usize {
        match self.catalog.entitlement(&request.entitlement) {
            Some(entry) => self
                .slice(request, entry, entry.resource.matches(&request.resource))
                .policies()
                .count(),
            None => 0,
        }
    }

    /// The policies to evaluate `request` against: its entitlement's slice
    /// for its action and principal kind when `sliced`, else the whole set.
    /// Callers pass `sliced` only for a resource within the entitlement's
    /// pattern (what the path gates assume); a request outside it is refused
    /// by the catalog anyway, and its record names the policies the whole
    /// set gives.
    fn slice(
        &self,
        request: &PolicyRequest,
        entry: &Entitlement,
        sliced: bool,
    ) -> &cedar_policy::PolicySet {
        let kind = match request.principal.kind {
            PrincipalKind::Human => 0,
            PrincipalKind::Workload => 1,
            PrincipalKind::Agent => 2,
        };
        let slot = request.action.index() * 3 + kind;
        match self.slices.get(&entry.id) {
            Some(slices) if sliced => &slices[slot],
            _ => self.policies.cedar(),
        }
    }

    fn evaluate_with(
        &self,
        request: &PolicyRequest,
        sliced: bool,
    ) -> Result<PolicyDecision, PolicyError> {
        check_input(request)?;
        let mut rules = Rules::default();
        let Some(entry) = self.catalog.entitlement(&request.entitlement) else {
            rules.broken(
                Reason::EntitlementUnknown.code(),
                format!(
                    "entitlement `{}` is not in the catalog in force",
                    request.entitlement
                ),
            );
            return Ok(self.finish(request, rules, DecisionOutcome::Deny, 0, BTreeMap::new()));
        };
        let break_glass = request.action == PolicyAction::BreakGlass;
        let ttl_ms = match (request.ttl_requested_ms, break_glass) {
            (Some(ttl_ms), _) => ttl_ms,
            (None, false) => entry.ttl_default_ms,
            (None, true) => entry
                .ttl_default_ms
                .min(entry.break_glass_ttl_max_ms.unwrap_or(entry.ttl_default_ms)),
        };
        let within_pattern = self.check_catalog(request, entry, ttl_ms, &mut rules);

        let prepared = self.prepare(request, entry, ttl_ms, self.context_now_read)?;
        let response = self.authorizer.is_authorized(
            &prepared.request,
            self.slice(request, entry, sliced && within_pattern),
            &prepared.entities,
        );
        let diagnostics = response.diagnostics();
        let errored: BTreeSet<String> = diagnostics
            .errors()
            .map(|error| evaluation_error_policy(error).to_string())
            .collect();
        if !errored.is_empty() {
            let mut errors: Vec<_> = diagnostics.errors().collect();
            errors.sort_by_key(|error| evaluation_error_policy(error).to_string());
            for error in errors {
                rules.broken(
                    reason::POLICY_EVALUATION_ERROR,
                    format!(
                        "policy `{}` failed to evaluate: {error}",
                        evaluation_error_policy(error)
                    ),
                );
            }
            rules.determining = errored;
            return Ok(self.finish(request, rules, DecisionOutcome::Deny, 0, prepared.evaluated));
        }
        // Cedar reports the satisfied policies in no fixed order; sort them
        // so the decision (details included) is the same on every run.
        let mut satisfied: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
        satisfied.sort_unstable();
        let infos: Vec<_> = satisfied
            .iter()
            .filter_map(|id| self.policies.policy(id))
            .collect();
        // INVARIANT: Cedar reports satisfied forbids when it denies and
        // satisfied permits when it allows, never a mix.
        if response.decision() == cedar_policy::Decision::Deny {
            if infos.is_empty() {
                rules.broken(
                    reason::NO_PERMIT_MATCHED,
                    format!(
                        "no permit policy matched `{}` by `{}` on `{}`",
                        request.action.name(),
                        request.principal.id,
                        request.resource
                    ),
                );
            } else {
                rules.broken(
                    reason::FORBIDDEN_BY_POLICY,
                    format!("forbidden by policy {}", quoted(&satisfied)),
                );
                for info in &infos {
                    debug_assert_eq!(info.effect, Effect::Forbid);
                    if let Some(code) = &info.reason {
                        rules.broken(code, format!("policy `{}` says `{code}`", info.id));
                    }
                }
                rules.determining = satisfied.into_iter().collect();
            }
            return Ok(self.finish(request, rules, DecisionOutcome::Deny, 0, prepared.evaluated));
        }

        // Cedar allows: read the satisfied permits' annotations.
        let plain: BTreeSet<String> = infos
            .iter()
            .filter(|info| info.permit == Some(PermitKind::Plain))
            .map(|info| info.id.clone())
            .collect();
        let mut policy_requirement = Requirement::Auto;
        let mut context_exception = false;
        if !plain.is_empty() {
            rules.determining = plain;
        } else {
            let weakest = infos
                .iter()
                .filter_map(|info| match &info.permit {
                    Some(PermitKind::StepUp {
                        approvers_required,
                        group,
                    }) => Some((*approvers_required, group.clone())),
                    _ => None,
                })
                .min();
            match weakest {
                Some((approvers_required, group)) => {
                    rules.determining = infos
                        .iter()
                        .filter(|info| {
                            info.permit
                                == Some(PermitKind::StepUp {
                                    approvers_required,
                                    group: group.clone(),
                                })
                        })
                        .map(|info| info.id.clone())
                        .collect();
                    policy_requirement = Requirement::Approvers(
                        approvers_required,
                        group,
                        reason::STEP_UP_BY_POLICY,
                    );
                }
                None => {
                    context_exception = true;
                    rules.determining = infos.iter().map(|info| info.id.clone()).collect();
                }
            }
        }

        if break_glass {
            if policy_requirement != Requirement::Auto || context_exception {
                rules.broken(
                    reason::BREAK_GLASS_CANNOT_WAIT_FOR_APPROVAL,
                    format!(
                        "break-glass is granted at once or not at all, and policy {} allows it only with approvers or as an exception",
                        quoted(&rules.determining)
                    ),
                );
            }
            if rules.any_broken() {
                rules.determining.clear();
                return Ok(self.finish(
                    request,
                    rules,
                    DecisionOutcome::Deny,
                    0,
                    prepared.evaluated,
                ));
            }
            rules.explain(
                reason::BREAK_GLASS,
                "granted at once by break-glass; a review is owed".to_string(),
            );
            let mut decision = self.finish(
                request,
                rules,
                DecisionOutcome::Allow,
                ttl_ms,
                prepared.evaluated,
            );
            decision.break_glass = true;
            return Ok(decision);
        }

        // The layers: catalog, then policy, then the exception rule.
        let mut requirement = match &entry.approval {
            ApprovalRule::Auto | ApprovalRule::Deny => Requirement::Auto,
            ApprovalRule::Approvers {
                approvers_required,
                group,
            } => Requirement::Approvers(
                *approvers_required,
                group.clone(),
                reason::STEP_UP_BY_CATALOG,
            ),
        };
        requirement = requirement.stricter(policy_requirement);
        let exception_rule = self.exceptions.rule(&entry.id);
        let ttl_exception = exception_rule.is_some_and(|rule| ttl_ms > rule.ttl_normal_max_ms)
            && ttl_ms <= entry.ttl_max_ms;
        if ttl_exception || context_exception {
            if ttl_exception {
                rules.explain(
                    reason::EXCEPTION_TTL_BEYOND_NORMAL,
                    format!(
                        "TTL `{ttl_ms}` ms is above the normal `{}` ms (the hard cap is `{}` ms): an exception",
                        exception_rule.map_or(0, |rule| rule.ttl_normal_max_ms),
                        entry.ttl_max_ms
                    ),
                );
            }
            if context_exception {
                rules.explain(
                    reason::EXCEPTION_OUTSIDE_NORMAL_CONTEXT,
                    format!(
                        "only exception policy {} matched: the request is outside its normal context",
                        quoted(&rules.determining)
                    ),
                );
            }
            match exception_rule.map(|rule| &rule.approval) {
                None => rules.broken(
                    reason::EXCEPTION_RULE_MISSING,
                    format!(
                        "entitlement `{}` has no exception rule: it allows no exception",
                        entry.id
                    ),
                ),
                Some(ApprovalRule::Deny) | Some(ApprovalRule::Auto) => rules.broken(
                    reason::EXCEPTION_DENIED,
                    format!("entitlement `{}`'s exception rule is `deny`", entry.id),
                ),
                Some(ApprovalRule::Approvers {
                    approvers_required,
                    group,
                }) => {
                    requirement = requirement.stricter(Requirement::Approvers(
                        *approvers_required,
                        group.clone(),
                        reason::STEP_UP_BY_EXCEPTION,
                    ));
                }
            }
        }
        if let Requirement::Approvers(_, group, _) = &requirement
            && request.principal.kind.is_non_human()
            && !rules
                .codes
                .contains(Reason::WorkloadNeedsPolicyApproval.code())
        {
            rules.broken(
                Reason::WorkloadNeedsPolicyApproval.code(),
                format!(
                    "`{}` is a {} and the decision would wait for approvers of `{group}`: workloads and agents are decided by policy alone",
                    request.principal.id,
                    request.principal.kind.name()
                ),
            );
        }
        if rules.any_broken() {
            // A deny cites the policies that denied it; here none did.
            rules.determining.clear();
            return Ok(self.finish(request, rules, DecisionOutcome::Deny, 0, prepared.evaluated));
        }
        let outcome = match requirement {
            Requirement::Auto => {
                rules.explain(Reason::AutoApproved.code(), "allowed at once".to_string());
                DecisionOutcome::Allow
            }
            Requirement::Approvers(approvers_required, group, source) => {
                rules.explain(
                    Reason::ApprovalRequired.code(),
                    format!("needs `{approvers_required}` distinct approvers of `{group}`"),
                );
                rules.explain(
                    source,
                    format!(
                        "the approvers are the {}",
                        match source {
                            reason::STEP_UP_BY_CATALOG => "catalog entry's",
                            reason::STEP_UP_BY_POLICY => "step-up policy's",
                            _ => "exception rule's",
                        }
                    ),
                );
                DecisionOutcome::NeedsApproval {
                    approvers_required,
                    group,
                }
            }
        };
        let mut decision = self.finish(request, rules, outcome, ttl_ms, prepared.evaluated);
        decision.exception = ttl_exception || context_exception;
        Ok(decision)
    }

    /// Records the catalog's rules the request breaks; returns whether its
    /// resource is one concrete resource within the entitlement's pattern
    /// (what its slice assumes).
    fn check_catalog(
        &self,
        request: &PolicyRequest,
        entry: &Entitlement,
        ttl_ms: i64,
        rules: &mut Rules,
    ) -> bool {
        let kind = request.principal.kind;
        let break_glass = request.action == PolicyAction::BreakGlass;
        if break_glass && entry.break_glass_ttl_max_ms.is_none() {
            rules.broken(
                Reason::BreakGlassNotEligible.code(),
                format!("entitlement `{}` is not break-glass eligible", entry.id),
            );
        }
        if break_glass && kind.is_non_human() {
            rules.broken(
                Reason::BreakGlassHumanOnly.code(),
                format!(
                    "`{}` is a {}: only a person may break the glass",
                    request.principal.id,
                    kind.name()
                ),
            );
        }
        let within_pattern = if !is_concrete_resource(&request.resource) {
            rules.broken(
                Reason::ResourceNotConcrete.code(),
                format!(
                    "resource `{}` is not one concrete resource (no `*`, no empty segment)",
                    request.resource
                ),
            );
            false
        } else if !entry.resource.matches(&request.resource) {
            rules.broken(
                Reason::ResourceOutsideEntitlement.code(),
                format!(
                    "resource `{}` does not match entitlement `{}`'s pattern `{}`",
                    request.resource, entry.id, entry.resource
                ),
            );
            false
        } else {
            true
        };
        if request.actions.is_empty() {
            rules.broken(
                Reason::ActionsEmpty.code(),
                "no action was asked for".to_string(),
            );
        }
        for action in &request.actions {
            if !entry.allows_action(action) {
                rules.broken(
                    Reason::ActionOutsideEntitlement.code(),
                    format!(
                        "action `{action}` is not one entitlement `{}` allows ({})",
                        entry.id,
                        quoted(&entry.actions)
                    ),
                );
            }
        }
        if !entry.allows_kind(kind) {
            rules.broken(
                Reason::PrincipalKindNotAllowed.code(),
                format!("entitlement `{}` is not for a {}", entry.id, kind.name()),
            );
        }
        if kind.is_non_human()
            && request
                .principal
                .owner
                .as_deref()
                .is_none_or(|owner| owner == request.principal.id)
        {
            rules.broken(
                Reason::OwnerRequiredForNonHuman.code(),
                format!(
                    "{} `{}` must name an accountable owner other than itself",
                    kind.name(),
                    request.principal.id
                ),
            );
        }
        if break_glass {
            if request
                .break_glass_reason
                .as_deref()
                .is_none_or(|text| text.trim().is_empty())
            {
                rules.broken(
                    Reason::BreakGlassReasonRequired.code(),
                    "break-glass requires a reason".to_string(),
                );
            }
        } else {
            if request.justification.trim().is_empty() {
                rules.broken(
                    Reason::JustificationRequired.code(),
                    "the justification is blank".to_string(),
                );
            }
            if entry.ticket_required
                && request
                    .ticket
                    .as_deref()
                    .is_none_or(|t| t.trim().is_empty())
            {
                rules.broken(
                    Reason::TicketRequired.code(),
                    format!("entitlement `{}` requires a ticket", entry.id),
                );
            }
            if let ApprovalRule::Approvers { group, .. } = &entry.approval
                && kind.is_non_human()
            {
                rules.broken(
                    Reason::WorkloadNeedsPolicyApproval.code(),
                    format!(
                        "entitlement `{}` waits for approvers of `{group}` and `{}` is a {}: workloads and agents are decided by policy alone",
                        entry.id,
                        request.principal.id,
                        kind.name()
                    ),
                );
            }
            if entry.approval == ApprovalRule::Deny {
                rules.broken(
                    Reason::EntitlementDeniesSelfService.code(),
                    format!("entitlement `{}` is never self-service", entry.id),
                );
            }
        }
        if ttl_ms <= 0 {
            rules.broken(
                Reason::TtlNotPositive.code(),
                format!("TTL `{ttl_ms}` ms must be positive"),
            );
        } else if break_glass {
            if let Some(cap_ms) = entry.break_glass_ttl_max_ms
                && ttl_ms > cap_ms
            {
                rules.broken(
                    Reason::TtlExceedsBreakGlassMax.code(),
                    format!("TTL `{ttl_ms}` ms is above the break-glass cap of `{cap_ms}` ms"),
                );
            }
        } else if ttl_ms > entry.ttl_max_ms {
            rules.broken(
                Reason::TtlExceedsEntryMax.code(),
                format!(
                    "TTL `{ttl_ms}` ms is above entitlement `{}`'s hard cap of `{}` ms",
                    entry.id, entry.ttl_max_ms
                ),
            );
        }
        within_pattern
    }

    fn prepare(
        &self,
        request: &PolicyRequest,
        entry: &Entitlement,
        ttl_ms: i64,
        include_now: bool,
    ) -> Result<Prepared, PolicyError> {
        // Collected in a list and sorted once at the end: cheaper than
        // keeping a map sorted through two dozen inserts.
        let mut evaluated: Vec<(String, Value)> = Vec::with_capacity(40);
        let principal_type = match request.principal.kind {
            PrincipalKind::Human => &self.names.user,
            PrincipalKind::Workload => &self.names.workload,
            PrincipalKind::Agent => &self.names.agent,
        };
        let principal_uid = self.names.uid(principal_type, &request.principal.id);
        let mut groups = request.principal.groups.clone();
        groups.sort_unstable();
        groups.dedup();
        let mut principal_attrs = vec![
            ("kind", string(request.principal.kind.name())),
            ("groups", set(&groups)),
        ];
        if request.principal.kind.is_non_human() {
            principal_attrs.push((
                "owner",
                string(request.principal.owner.as_deref().unwrap_or("")),
            ));
        }
        evaluated.push((
            "principal.id".to_string(),
            Value::String(request.principal.id.clone()),
        ));
        let principal = entity(
            principal_uid.clone(),
            principal_attrs,
            [],
            "principal",
            &mut evaluated,
        )?;

        let resource_uid = self.names.uid(&self.names.resource, &request.resource);
        let entitlement_uid = self.names.uid(&self.names.entitlement, &entry.id);
        let resource = entity(
            resource_uid.clone(),
            vec![
                ("path", string(&request.resource)),
                ("entitlement", string(&entry.id)),
            ],
            [entitlement_uid],
            "resource",
            &mut evaluated,
        )?;
        // INVARIANT: every catalog entitlement has a prepared entity (new()).
        let (entitlement, recorded) = &self.entitlements[&entry.id];
        evaluated.extend(recorded.iter().cloned());
        let entitlement = entitlement.clone();

        let mut pairs: Vec<(&str, Attr)> = Vec::with_capacity(24);
        let at = Timestamp(request.at_ms);
        let day_ms = request.at_ms.rem_euclid(86_400_000);
        let day = request.at_ms.div_euclid(86_400_000);
        pairs.push(("now_ms", long(request.at_ms)));
        if include_now {
            pairs.push((
                "now",
                Attr(
                    RestrictedExpression::new_datetime(at.to_string()),
                    Value::String(at.to_string()),
                ),
            ));
        }
        pairs.push(("hour_utc", long(day_ms / 3_600_000)));
        pairs.push(("minute_of_day_utc", long(day_ms / 60_000)));
        // 1970-01-01 was a Thursday (ISO day 4).
        pairs.push(("weekday_utc", long((day + 3).rem_euclid(7) + 1)));
        let mut actions = request.actions.clone();
        actions.sort_unstable();
        actions.dedup();
        pairs.push(("actions", set(&actions)));
        pairs.push(("requested_ttl_s", long(ttl_ms.div_euclid(1000))));
        pairs.push(("justification", string(&request.justification)));
        if let Some(ticket) = &request.ticket {
            pairs.push(("ticket", string(ticket)));
        }
        if let Some(text) = &request.break_glass_reason
            && request.action == PolicyAction::BreakGlass
        {
            pairs.push(("break_glass_reason", string(text)));
        }
        let context = &request.context;
        pairs.push((
            "in_maintenance_window",
            boolean(context.in_maintenance_window),
        ));
        pairs.push(("device_managed", boolean(context.device_managed)));
        pairs.push(("on_call", boolean(context.on_call)));
        if let Some(value) = &context.change_record {
            pairs.push(("change_record", string(value)));
        }
        if let Some(value) = &context.incident {
            pairs.push(("incident", string(value)));
        }
        if let Some(value) = context.risk_score {
            pairs.push(("risk_score", long(value)));
        }
        if let Some(identity) = &context.workload_identity {
            let mut fields = vec![
                ("issuer", string(&identity.issuer)),
                ("subject", string(&identity.subject)),
                ("audience", set(&identity.audience)),
            ];
            if let Some(value) = &identity.spiffe_id {
                fields.push(("spiffe_id", string(value)));
            }
            if let Some(value) = &identity.trust_domain {
                fields.push(("trust_domain", string(value)));
            }
            pairs.push((
                "workload_identity",
                record(fields, "context.workload_identity", &mut evaluated)?,
            ));
        }
        if let Some(task) = &context.task {
            let mut fields = vec![("id", string(&task.id)), ("purpose", string(&task.purpose))];
            if let Some(tool) = &task.tool {
                fields.push(("tool", string(tool)));
            }
            pairs.push(("task", record(fields, "context.task", &mut evaluated)?));
        }
        let mut cedar_pairs = Vec::with_capacity(pairs.len());
        for (key, Attr(expression, value)) in pairs {
            if !value.is_null() {
                evaluated.push((dotted("context", key), value));
            }
            cedar_pairs.push((key.to_string(), expression));
        }
        let context = Context::from_pairs(cedar_pairs).map_err(cedar_error)?;
        let request = Request::new(
            principal_uid,
            self.names.actions[request.action.index()].clone(),
            resource_uid,
            context,
            None,
        )
        .map_err(cedar_error)?;
        let entities = Entities::from_entities([principal, resource, entitlement], None)
            .map_err(cedar_error)?;
        Ok(Prepared {
            request,
            entities,
            evaluated: evaluated.into_iter().collect(),
        })
    }

    fn finish(
        &self,
        request: &PolicyRequest,
        rules: Rules,
        outcome: DecisionOutcome,
        ttl_granted_ms: i64,
        evaluated: BTreeMap<String, Value>,
    ) -> PolicyDecision {
        PolicyDecision {
            outcome,
            determining_policies: rules.determining.into_iter().collect(),
            reasons: rules.codes.into_iter().collect(),
            details: rules.details,
            action: request.action,
            entitlement: request.entitlement.clone(),
            ttl_granted_ms,
            exception: false,
            break_glass: false,
            policy_set_hash: self.policies.hash().to_string(),
            catalog_hash: self.catalog.hash().to_string(),
            exceptions_hash: self.exceptions.hash().map(str::to_string),
            cedar_version: CEDAR_VERSION.to_string(),
            evaluated,
        }
    }

    /// Builds the Cedar request for `request` and checks it against the
    /// schema in strict mode: the engine builds requests without the
    /// schema on the hot path, and this lets a test prove the shapes agree.
    #[doc(hidden)]
    pub fn check_request_against_schema(
        &self,
        schema: &GrantledgerSchema,
        request: &PolicyRequest,
    ) -> Result<(), String> {
        let entry = self
            .catalog
            .entitlement(&request.entitlement)
            .ok_or("unknown entitlement")?;
        let prepared = self
            .prepare(
                request,
                entry,
                request.ttl_requested_ms.unwrap_or(entry.ttl_default_ms),
                true,
            )
            .map_err(|error| error.to_string())?;
        let cedar = &prepared.request;
        Request::new(
            cedar.principal().cloned().ok_or("no principal")?,
            cedar.action().cloned().ok_or("no action")?,
            cedar.resource().cloned().ok_or("no resource")?,
            cedar.context().cloned().ok_or("no context")?,
            Some(schema.cedar()),
        )
        .map_err(|error| error.to_string())?;
        Entities::from_entities(prepared.entities.iter().cloned(), Some(schema.cedar()))
            .map_err(|error| error.to_string())?;
        Ok(())
    }
}

struct Prepared {
    request: Request,
    entities: Entities,
    evaluated: BTreeMap<String, Value>,
}

/// A Cedar value and the same value as JSON, for the decision record.
struct Attr(RestrictedExpression, Value);

fn string(value: &str) -> Attr {
    Attr(
        RestrictedExpression::new_string(value.to_string()),
        Value::String(value.to_string()),
    )
}

fn long(value: i64) -> Attr {
    Attr(RestrictedExpression::new_long(value), Value::from(value))
}

fn boolean(value: bool) -> Attr {
    Attr(RestrictedExpression::new_bool(value), Value::Bool(value))
}

/// `values` must be sorted and distinct, so the recorded list is canonical.
fn set(values: &[String]) -> Attr {
    Attr(
        RestrictedExpression::new_set(
            values
                .iter()
                .map(|value| RestrictedExpression::new_string(value.clone())),
        ),
        Value::Array(values.iter().cloned().map(Value::String).collect()),
    )
}

/// A record: its fields are recorded flattened under `prefix`, and the
/// returned JSON value is null so the record itself is not recorded twice.
fn record(
    fields: Vec<(&str, Attr)>,
    prefix: &str,
    evaluated: &mut Vec<(String, Value)>,
) -> Result<Attr, PolicyError> {
    let mut cedar_fields = Vec::with_capacity(fields.len());
    for (key, Attr(expression, value)) in fields {
        evaluated.push((dotted(prefix, key), value));
        cedar_fields.push((key.to_string(), expression));
    }
    let expression = RestrictedExpression::new_record(cedar_fields).map_err(cedar_error)?;
    Ok(Attr(expression, Value::Null))
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, Attr)>,
    parents: impl IntoIterator<Item = EntityUid>,
    prefix: &str,
    evaluated: &mut Vec<(String, Value)>,
) -> Result<Entity, PolicyError> {
    let mut cedar_attrs = HashMap::with_capacity(attrs.len());
    for (key, Attr(expression, value)) in attrs {
        evaluated.push((dotted(prefix, key), value));
        cedar_attrs.insert(key.to_string(), expression);
    }
    Entity::new(uid, cedar_attrs, parents.into_iter().collect()).map_err(cedar_error)
}

/// `prefix.key`, without the formatting machinery (a decision builds two
/// dozen of these).
fn dotted(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + 1 + key.len());
    name.push_str(prefix);
    name.push('.');
    name.push_str(key);
    name
}

fn entitlement_attributes(entry: &Entitlement) -> Vec<(&'static str, Attr)> {
    vec![
        (
            "risk_tier",
            string(entry.risk_tier.map_or("unset", |tier| tier.name())),
        ),
        ("ttl_default_s", long(entry.ttl_default_ms / 1000)),
        ("ttl_max_s", long(entry.ttl_max_ms / 1000)),
        (
            "break_glass_eligible",
            boolean(entry.break_glass_ttl_max_ms.is_some()),
        ),
    ]
}

fn cedar_error(error: impl std::fmt::Display) -> PolicyError {
    PolicyError::new(
        PolicyErrorKind::CedarRequest,
        format!("cedar refused the request the engine built (a bug): {error}"),
    )
}

fn evaluation_error_policy(error: &cedar_policy::AuthorizationError) -> &cedar_policy::PolicyId {
    match error {
        cedar_policy::AuthorizationError::PolicyEvaluationError(error) => error.policy_id(),
    }
}

fn add_policy(set: &mut cedar_policy::PolicySet, policy: &cedar_policy::Policy) {
    // INVARIANT: ids are unique in the loaded set, and a slice receives a
    // policy at most once per action, so `add` cannot fail.
    set.add(policy.clone()).unwrap_or_else(|error| {
        unreachable!("policy `{}` added twice to a slice: {error}", policy.id())
    });
}

fn quoted<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|item| format!("`{}`", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Names {
    fn new() -> Names {
        let name = |text: &str| {
            EntityTypeName::from_str(text)
                .unwrap_or_else(|error| unreachable!("`{text}` is a valid type name: {error}"))
        };
        let action_type = name("Action");
        let action =
            |id: &str| EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(id));
        Names {
            user: name("User"),
            workload: name("Workload"),
            agent: name("Agent"),
            resource: name("Resource"),
            entitlement: name("Entitlement"),
            actions: [action("request"), action("extend"), action("break_glass")],
        }
    }

    fn uid(&self, type_name: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
    }

    /// The action indexes a policy's action scope allows.
    fn actions_of(&self, constraint: &ActionConstraint) -> Vec<usize> {
        let matches = |uids: &[EntityUid]| -> Vec<usize> {
            (0..3)
                .filter(|&index| uids.contains(&self.actions[index]))
                .collect()
        };
        match constraint {
            ActionConstraint::Any => vec![0, 1, 2],
            ActionConstraint::Eq(uid) => matches(std::slice::from_ref(uid)),
            ActionConstraint::In(uids) => matches(uids),
        }
    }

    /// The principal kinds (0 human, 1 workload, 2 agent) a policy's
    /// principal scope allows: `principal is User` (or `== User::"x"`,
    /// `in User::"x"`) allows humans only, and so on.
    fn kinds_of(&self, constraint: &PrincipalConstraint) -> Vec<usize> {
        let of_type = |type_name: &EntityTypeName| -> Vec<usize> {
            if type_name == &self.user {
                vec![0]
            } else if type_name == &self.workload {
                vec![1]
            } else if type_name == &self.agent {
                vec![2]
            } else {
                vec![0, 1, 2]
            }
        };
        match constraint {
            PrincipalConstraint::Any => vec![0, 1, 2],
            PrincipalConstraint::Is(type_name) | PrincipalConstraint::IsIn(type_name, _) => {
                of_type(type_name)
            }
            PrincipalConstraint::Eq(uid) | PrincipalConstraint::In(uid) => of_type(uid.type_name()),
        }
    }

    /// The entitlement a policy's resource scope confines it to, if any.
    fn entitlement_of(&self, constraint: &ResourceConstraint) -> Option<String> {
        match constraint {
            ResourceConstraint::In(uid) | ResourceConstraint::IsIn(_, uid)
                if uid.type_name() == &self.entitlement =>
            {
                Some(uid.id().unescaped().to_string())
            }
            _ => None,
        }
    }
}

/// The requirement a layer puts on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Auto,
    /// Approvers, group, and the reason code of the layer that set it.
    Approvers(u32, String, &'static str),
}

impl Requirement {
    /// The stricter of two layers; on a tie in approver count, `later`.
    fn stricter(self, later: Requirement) -> Requirement {
        match (self, later) {
            (Requirement::Auto, other) | (other, Requirement::Auto) => other,
            (
                Requirement::Approvers(a, group_a, source_a),
                Requirement::Approvers(b, group_b, source_b),
            ) => {
                if a > b {
                    Requirement::Approvers(a, group_a, source_a)
                } else {
                    Requirement::Approvers(b, group_b, source_b)
                }
            }
        }
    }
}

/// The rules a decision found: codes, sentences, determining policies.
#[derive(Default)]
struct Rules {
    codes: BTreeSet<String>,
    details: Vec<String>,
    determining: BTreeSet<String>,
    broken: usize,
}

impl Rules {
    fn broken(&mut self, code: &str, detail: String) {
        self.broken += 1;
        self.codes.insert(code.to_string());
        self.details.push(detail);
    }

    fn explain(&mut self, code: &str, detail: String) {
        self.codes.insert(code.to_string());
        self.details.push(detail);
    }

    fn any_broken(&self) -> bool {
        self.broken > 0
    }
}

/// The latest decision time accepted: 9999-12-31T23:59:59.999Z, the last
/// instant Cedar's `datetime` and RFC 3339 can both write.
pub const AT_MS_MAX: i64 = 253_402_300_799_999;

fn check_input(request: &PolicyRequest) -> Result<(), PolicyError> {
    if !(0..=AT_MS_MAX).contains(&request.at_ms) {
        return Err(PolicyError::for_field(
            PolicyErrorKind::ContextValueOutOfRange,
            "at_ms",
            format!(
                "`at_ms` `{}` is outside 1970-01-01 to 9999-12-31: the decision time is the ledger's",
                request.at_ms
            ),
        ));
    }
    let id_error = |field: &str, error: grantledger_events::IdError| {
        PolicyError::for_field(
            PolicyErrorKind::IdInvalid,
            field,
            format!("`{field}`: {error}"),
        )
    };
    PrincipalId::new(request.principal.id.as_str())
        .map_err(|error| id_error("principal.id", error))?;
    if let Some(owner) = &request.principal.owner {
        PrincipalId::new(owner.as_str()).map_err(|error| id_error("principal.owner", error))?;
    }
    ResourceId::new(request.resource.as_str()).map_err(|error| id_error("resource", error))?;
    if request.entitlement.is_empty()
        || request.entitlement.len() > grantledger_core::ACTION_BYTES_MAX
    {
        return Err(PolicyError::for_field(
            PolicyErrorKind::IdInvalid,
            "entitlement",
            format!(
                "`entitlement` `{}` must be from 1 to {} bytes",
                request.entitlement.chars().take(80).collect::<String>(),
                grantledger_core::ACTION_BYTES_MAX
            ),
        ));
    }
    let bound = |field: &str, size: usize, max: usize| {
        if size > max {
            Err(PolicyError::for_field(
                PolicyErrorKind::InputExceedsBound,
                field,
                format!("`{field}` has `{size}` items: at most `{max}` are allowed"),
            ))
        } else {
            Ok(())
        }
    };
    bound(
        "principal.groups",
        request.principal.groups.len(),
        PRINCIPAL_GROUPS_MAX,
    )?;
    bound("actions", request.actions.len(), ACTIONS_PER_REQUEST_MAX)?;
    for group in &request.principal.groups {
        check_text("principal.groups", group)?;
    }
    for action in &request.actions {
        check_text("actions", action)?;
    }
    for (field, text) in [
        ("justification", Some(request.justification.as_str())),
        ("ticket", request.ticket.as_deref()),
        ("break_glass_reason", request.break_glass_reason.as_deref()),
    ] {
        if let Some(text) = text
            && text.len() > TEXT_BYTES_MAX
        {
            return Err(PolicyError::for_field(
                PolicyErrorKind::InputExceedsBound,
                field,
                format!(
                    "`{field}` is `{}` bytes long: at most `{TEXT_BYTES_MAX}` are allowed",
                    text.len()
                ),
            ));
        }
    }
    Ok(())
}
