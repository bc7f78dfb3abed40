//! A deterministic workload: a realistic stream of commands for
//! `grantledger simulate`, property tests and benchmarks.
//!
//! The generator owns its PRNG (splitmix64), written here so the stream
//! never changes with a dependency's version: the same seed, catalog and
//! sequence of states always give the same commands.

use grantledger_events::{
    EntitlementId, GrantId, Principal, PrincipalId, PrincipalKind, RequestId, ResourceId,
    ReviewVerdict, RevocationReason, SubmitRequest, TenantId, Timestamp,
};

use crate::catalog::{ApprovalRule, Catalog, Entitlement};
use crate::command::Command;
use crate::state::{RequestStatus, State};

/// A simulated organisation sending commands to the ledger.
///
/// The population is built from the catalog: every member of an approver
/// group is a person, plus twenty more people; eight workloads and five
/// agents, each owned by a person. [`Workload::next`] yields one command and
/// the simulated time after it:
///
/// - an `Expire` whenever a grant is due at `now` (expiries follow the
///   simulated clock, as the expiry timer would);
/// - otherwise a weighted mix: requests (mostly valid, some breaking one
///   rule), approvals by distinct group members (with the odd self-approval,
///   non-member or repeated approver, which the ledger rejects), approver
///   refusals, task-complete, manual, owner-gone and risk-signal
///   revocations, confirmations and failed revocations (retried until
///   confirmed), extensions, break-glass and its review, duplicate
///   deliveries, and stray commands that must be rejected.
#[derive(Clone, Debug)]
pub struct Workload {
    rng: SplitMix64,
    clock: Option<Timestamp>,
    catalog: Catalog,
    tenant: TenantId,
    humans: Vec<PrincipalId>,
    non_humans: Vec<Principal>,
    reviewers: Vec<PrincipalId>,
    /// Per entitlement (catalog order), a few concrete resources it covers.
    resources: Vec<Vec<ResourceId>>,
    requests_made: u64,
    /// Requests that may be waiting for approval.
    pending: Vec<RequestId>,
    /// Grants that may be (or become) live.
    grants: Vec<GrantId>,
    /// Recent request ids, for duplicate deliveries.
    recent: Vec<SubmitRequest>,
    pending_pruned_len: usize,
    grants_pruned_len: usize,
}

impl Workload {
    /// A workload for `catalog`, fully determined by `seed`.
    pub fn new(seed: u64, catalog: &Catalog) -> Workload {
        let mut rng = SplitMix64::new(seed);
        let mut humans: Vec<PrincipalId> = Vec::new();
        for (_, members) in catalog.groups() {
            for member in members {
                if !humans.contains(member) {
                    humans.push(member.clone());
                }
            }
        }
        for name in EXTRA_HUMANS {
            let id = id(name);
            if !humans.contains(&id) {
                humans.push(id);
            }
        }
        let mut non_humans = Vec::new();
        for (names, kind) in [
            (&WORKLOADS[..], PrincipalKind::Workload),
            (&AGENTS[..], PrincipalKind::Agent),
        ] {
            for name in names {
                let owner = rng.pick(&humans).clone();
                non_humans.push(Principal {
                    id: id(name),
                    kind,
                    owner: Some(owner),
                });
            }
        }
        let reviewers = catalog
            .group("security")
            .map(<[PrincipalId]>::to_vec)
            .unwrap_or_else(|| humans.iter().take(3).cloned().collect());
        let resources = catalog
            .entitlements()
            .iter()
            .map(|entitlement| {
                let mut made: Vec<ResourceId> = Vec::new();
                for _ in 0..RESOURCES_PER_ENTITLEMENT * 2 {
                    let resource = concrete_resource(&mut rng, entitlement.resource.as_str());
                    if !made.contains(&resource) && entitlement.resource.matches(resource.as_str())
                    {
                        made.push(resource);
                    }
                    if made.len() == RESOURCES_PER_ENTITLEMENT {
                        break;
                    }
                }
                made
            })
            .collect();
        Workload {
            rng,
            clock: None,
            catalog: catalog.clone(),
            tenant: TenantId::new("sim").expect("a valid id"),
            humans,
            non_humans,
            reviewers,
            resources,
            requests_made: 0,
            pending: Vec::new(),
            grants: Vec::new(),
            recent: Vec::new(),
            pending_pruned_len: 0,
            grants_pruned_len: 0,
        }
    }

    /// The next command, to be decided at `now`, and the simulated time
    /// after it (later than both `now` and every time returned before, by a
    /// random step), which the caller uses as the next `now`.
    pub fn next(&mut self, state: &State, now: Timestamp) -> (Command, Timestamp) {
        let command = self.choose(state, now);
        let step_ms = match self.rng.below(100) {
            0..70 => self.rng.range(0, 1_500),
            70..95 => self.rng.range(1_500, 10_000),
            _ => self.rng.range(10_000, 120_000),
        } as i64;
        let base = self.clock.map_or(now, |clock| clock.max(now));
        let after = base.plus_ms(step_ms.max(1));
        self.clock = Some(after);
        (command, after)
    }

    fn choose(&mut self, state: &State, now: Timestamp) -> Command {
        if let Some(grant_id) = state.due_expiries(now, 1).into_iter().next() {
            return Command::Expire { grant_id };
        }
        self.prune(state, now);
        let debt = state.counts().revocation_debt;
        // Workers keep up with the debt: the more there is, the likelier
        // they report next.
        let debt_percent = 20 + (debt * 60 / 200).min(60);
        if debt > 0
            && self.rng.below(100) < debt_percent
            && let Some(command) = self.revocation_report(state)
        {
            return command;
        }
        let roll = self.rng.below(1000);
        let command = match roll {
            0..520 => None,
            520..660 => self.approval(state),
            660..760 => self.revocation(state, now),
            760..770 => self.risk_signal(state, now),
            770..790 => self.extension(state, now),
            790..800 => self.break_glass(),
            800..815 => self.review(state),
            815..830 => self.duplicate(),
            830..845 => self.stray(state, now),
            _ => None,
        };
        command.unwrap_or_else(|| self.submit())
    }

    fn next_request_id(&mut self, prefix: &str) -> RequestId {
        self.requests_made += 1;
        RequestId::new(format!("{prefix}-{:08}", self.requests_made)).expect("a valid id")
    }

    fn pick_principal(&mut self) -> Principal {
        match self.rng.below(100) {
            0..45 => Principal {
                id: self.rng.pick(&self.humans).clone(),
                kind: PrincipalKind::Human,
                owner: None,
            },
            _ => self.rng.pick(&self.non_humans).clone(),
        }
    }

    fn submit(&mut self) -> Command {
        let request_id = self.next_request_id("req");
        let mut principal = self.pick_principal();
        let entitlements = self.catalog.entitlements();
        if entitlements.is_empty() {
            return Command::Submit(self.request(
                request_id,
                principal,
                "none",
                "none/none",
                vec!["read".into()],
            ));
        }
        // People mostly ask for what they can get at once, sometimes for a
        // step-up, rarely for anything; workloads and agents mostly ask for
        // what their policy grants them.
        let of_kind = |approval: fn(&ApprovalRule) -> bool| -> Vec<usize> {
            (0..entitlements.len())
                .filter(|&index| {
                    entitlements[index].allows_kind(principal.kind)
                        && approval(&entitlements[index].approval)
                })
                .collect()
        };
        let automatic = of_kind(|approval| matches!(approval, ApprovalRule::Auto));
        let step_up = of_kind(|approval| matches!(approval, ApprovalRule::Approvers { .. }));
        let any_of_kind = of_kind(|_| true);
        let roll = self.rng.below(100);
        let candidates = match principal.kind {
            PrincipalKind::Human if roll < 68 => automatic,
            PrincipalKind::Human if roll < 93 => step_up,
            PrincipalKind::Human => Vec::new(),
            _ if roll < 88 => automatic,
            _ => any_of_kind,
        };
        let index = match self.rng.pick_opt(&candidates) {
            Some(index) => *index,
            None => self.rng.below(entitlements.len() as u64) as usize,
        };
        let entitlement: Entitlement = entitlements[index].clone();
        let mut resource = match self.resources[index].as_slice() {
            [] => ResourceId::new("none/none").expect("a valid id"),
            resources => self.rng.pick(resources).clone(),
        };
        let mut actions = self.pick_actions(&entitlement.actions);
        let mut entitlement_id = entitlement.id.clone();
        let mut ttl_ms = if self.rng.below(100) < 55 {
            None
        } else {
            Some(self.rng.range(60, (entitlement.ttl_max_ms / 1000) as u64) as i64 * 1000)
        };
        let mut ticket = if entitlement.ticket_required || self.rng.below(100) < 20 {
            Some(format!("CHG-{}", self.rng.range(1000, 9999)))
        } else {
            None
        };
        let mut justification = "investigating ticket backlog".to_string();
        // About one request in ten breaks a rule, so every deny code shows up.
        match self.rng.below(1000) {
            0..20 => resource = self.outside_resource(&entitlement),
            20..40 => actions.push("delete".into()),
            40..60 => ttl_ms = Some(entitlement.ttl_max_ms + self.rng.range(1, 3600) as i64 * 1000),
            60..68 => ttl_ms = Some(-(self.rng.range(0, 60) as i64) * 1000),
            68..78 => ticket = None,
            78..86 => entitlement_id = "db-prod-admin".into(),
            86..94 if principal.kind.is_non_human() => principal.owner = None,
            94..100 => justification = " ".into(),
            100..108 => {
                resource = ResourceId::new(format!("{}/*", resource.as_str())).expect("a valid id")
            }
            _ => {}
        }
        let mut request = self.request(
            request_id.clone(),
            principal.clone(),
            &entitlement_id,
            resource.as_str(),
            actions,
        );
        request.ttl_ms = ttl_ms;
        request.ticket = ticket;
        request.justification = justification;
        if matches!(entitlement.approval, ApprovalRule::Approvers { .. })
            && principal.kind == PrincipalKind::Human
        {
            self.pending.push(request_id.clone());
        }
        self.grants.push(GrantId::for_request(&request_id));
        if self.recent.len() == RECENT_MAX {
            self.recent.remove(0);
        }
        self.recent.push(request.clone());
        Command::Submit(request)
    }

    fn request(
        &self,
        request_id: RequestId,
        principal: Principal,
        entitlement: &str,
        resource: &str,
        actions: Vec<String>,
    ) -> SubmitRequest {
        SubmitRequest {
            request_id,
            tenant: self.tenant.clone(),
            principal,
            entitlement: EntitlementId::new(entitlement).expect("a valid id"),
            resource: ResourceId::new(resource).expect("a valid id"),
            actions,
            justification: String::new(),
            ticket: None,
            ttl_ms: None,
            starts_at_ms: None,
            groups: Vec::new(),
            context: Default::default(),
            identity_token: None,
        }
    }

    fn pick_actions(&mut self, allowed: &[String]) -> Vec<String> {
        let mut pool: Vec<String> = allowed.to_vec();
        let count = self.rng.range(1, pool.len() as u64) as usize;
        let mut chosen = Vec::with_capacity(count);
        for _ in 0..count {
            let index = self.rng.below(pool.len() as u64) as usize;
            chosen.push(pool.swap_remove(index));
        }
        chosen
    }

    fn outside_resource(&mut self, entitlement: &Entitlement) -> ResourceId {
        for _ in 0..PICK_TRIES {
            let others = self.rng.pick(&self.resources).clone();
            if let Some(resource) = others.first()
                && !entitlement.resource.matches(resource.as_str())
            {
                return resource.clone();
            }
        }
        ResourceId::new("outside/unknown").expect("a valid id")
    }

    fn approval(&mut self, state: &State) -> Option<Command> {
        let request_id = self.pick_pending(state)?;
        let pending = state.pending_request(&request_id)?;
        let catalog = state.catalog().unwrap_or(&self.catalog);
        let members: Vec<PrincipalId> = catalog
            .group(&pending.group)
            .map(<[PrincipalId]>::to_vec)
            .unwrap_or_default();
        let eligible: Vec<PrincipalId> = members
            .iter()
            .filter(|member| {
                **member != pending.principal.id && !pending.approvals.contains(member)
            })
            .cloned()
            .collect();
        let roll = self.rng.below(100);
        let (approver, refuse) = if roll < 5 {
            (pending.principal.id.clone(), false)
        } else if roll < 9 || eligible.is_empty() {
            let outsiders: Vec<PrincipalId> = self
                .humans
                .iter()
                .filter(|human| !members.contains(human))
                .cloned()
                .collect();
            if outsiders.is_empty() {
                return None;
            }
            (self.rng.pick(&outsiders).clone(), false)
        } else if roll < 13 && !pending.approvals.is_empty() {
            (self.rng.pick(&pending.approvals).clone(), false)
        } else {
            (self.rng.pick(&eligible).clone(), roll >= 85)
        };
        let comment = if refuse {
            "not justified by the ticket"
        } else {
            "ok, matches the change record"
        };
        Some(if refuse {
            Command::Deny {
                request_id,
                approver,
                comment: comment.into(),
            }
        } else {
            Command::Approve {
                request_id,
                approver,
                comment: comment.into(),
            }
        })
    }

    fn revocation(&mut self, state: &State, now: Timestamp) -> Option<Command> {
        let grant_id = self.pick_live(state, now)?;
        let grant = state.grant(&grant_id)?;
        let holder = grant
            .principal
            .owner
            .clone()
            .unwrap_or(grant.principal.id.clone());
        let (reason, by, detail) = match self.rng.below(100) {
            0..65 => (RevocationReason::TaskComplete, holder, "task finished"),
            65..90 => (
                RevocationReason::Manual,
                self.rng.pick(&self.reviewers).clone(),
                "access no longer needed",
            ),
            _ => (
                RevocationReason::OwnerGone,
                id("hr-offboarding"),
                "owner left the company",
            ),
        };
        Some(Command::Revoke {
            grant_id,
            reason,
            by,
            detail: detail.into(),
        })
    }

    fn risk_signal(&mut self, state: &State, now: Timestamp) -> Option<Command> {
        let grant_id = self.pick_live(state, now)?;
        let grant = state.grant(&grant_id)?;
        let detail = *self.rng.pick(&[
            "impossible travel",
            "credential found in a public repo",
            "anomalous query volume",
        ]);
        Some(Command::RiskSignal {
            principal: grant.principal.id,
            by: id("risk-engine"),
            detail: detail.into(),
        })
    }

    fn extension(&mut self, state: &State, now: Timestamp) -> Option<Command> {
        let grant_id = self.pick_live(state, now)?;
        let grant = state.grant(&grant_id)?;
        let by = grant
            .principal
            .owner
            .clone()
            .unwrap_or(grant.principal.id.clone());
        let expires_at = grant
            .expires_at
            .plus_ms(self.rng.range(60, 3600) as i64 * 1000);
        Some(Command::Extend {
            grant_id,
            by,
            expires_at,
        })
    }

    fn break_glass(&mut self) -> Option<Command> {
        let eligible: Vec<usize> = (0..self.catalog.entitlements().len())
            .filter(|&index| {
                self.catalog.entitlements()[index]
                    .break_glass_ttl_max_ms
                    .is_some()
            })
            .filter(|&index| !self.resources[index].is_empty())
            .collect();
        let index = *self.rng.pick_opt(&eligible)?;
        let entitlement = self.catalog.entitlements()[index].clone();
        let cap_ms = entitlement.break_glass_ttl_max_ms.expect("filtered");
        let ttl_ms = if self.rng.below(100) < 10 {
            cap_ms + 60_000
        } else {
            self.rng.range(60, (cap_ms / 1000) as u64) as i64 * 1000
        };
        let request_id = self.next_request_id("bg");
        self.grants.push(GrantId::for_request(&request_id));
        let principal = Principal {
            id: self.rng.pick(&self.humans).clone(),
            kind: PrincipalKind::Human,
            owner: None,
        };
        let resource = self.rng.pick(&self.resources[index]).clone();
        Some(Command::BreakGlass {
            request_id,
            principal,
            entitlement: EntitlementId::new(entitlement.id.as_str()).expect("a valid id"),
            resource,
            actions: entitlement.actions.clone(),
            reason: "incident: production outage".into(),
            ttl_ms,
        })
    }

    fn review(&mut self, state: &State) -> Option<Command> {
        let owed = state.reviews_owed(8);
        let grant_id = self.rng.pick_opt(&owed)?.clone();
        let grant = state.grant(&grant_id)?;
        let reviewer = if self.rng.below(100) < 5 {
            grant.principal.id
        } else {
            self.rng.pick(&self.reviewers).clone()
        };
        let verdict = if self.rng.below(100) < 85 {
            ReviewVerdict::Justified
        } else {
            ReviewVerdict::Unjustified
        };
        Some(Command::Review {
            grant_id,
            reviewer,
            verdict,
            notes: "checked against the incident timeline".into(),
        })
    }

    fn revocation_report(&mut self, state: &State) -> Option<Command> {
        let debt = state.revocation_debt(8);
        let entry = self.rng.pick_opt(&debt)?.clone();
        let worker = format!(
            "{}-revoker",
            entry
                .resource
                .as_str()
                .split('/')
                .next()
                .unwrap_or("target")
        );
        if entry.failed_attempts < 3 && self.rng.below(100) < 20 {
            Some(Command::ReportRevocationFailure {
                grant_id: entry.grant_id,
                worker,
                error: "target API timed out".into(),
                attempt: entry.failed_attempts + 1,
            })
        } else {
            Some(Command::ConfirmRevocation {
                grant_id: entry.grant_id,
                worker,
            })
        }
    }

    fn duplicate(&mut self) -> Option<Command> {
        let request = self.rng.pick_opt(&self.recent)?.clone();
        Some(Command::Submit(request))
    }

    fn stray(&mut self, state: &State, now: Timestamp) -> Option<Command> {
        match self.rng.below(3) {
            0 => Some(Command::Revoke {
                grant_id: GrantId::new(format!("grant:nope-{}", self.rng.below(1000)))
                    .expect("a valid id"),
                reason: RevocationReason::Manual,
                by: self.rng.pick(&self.reviewers).clone(),
                detail: "cleanup".into(),
            }),
            1 => Some(Command::Expire {
                grant_id: self.pick_live(state, now)?,
            }),
            _ => Some(Command::ConfirmRevocation {
                grant_id: self.pick_live(state, now)?,
                worker: "eager-revoker".into(),
            }),
        }
    }

    /// A request that is waiting for approval, if one is found quickly.
    fn pick_pending(&mut self, state: &State) -> Option<RequestId> {
        for _ in 0..PICK_TRIES {
            if self.pending.is_empty() {
                return None;
            }
            let index = self.rng.below(self.pending.len() as u64) as usize;
            match state.request_status(&self.pending[index]) {
                Some(RequestStatus::Pending) => return Some(self.pending[index].clone()),
                // Not yet decided (staged in the same batch): keep it.
                None | Some(RequestStatus::Submitted) => {}
                Some(_) => {
                    self.pending.swap_remove(index);
                }
            }
        }
        None
    }

    /// A grant active at `now`, if one is found quickly.
    fn pick_live(&mut self, state: &State, now: Timestamp) -> Option<GrantId> {
        for _ in 0..PICK_TRIES {
            if self.grants.is_empty() {
                return None;
            }
            let index = self.rng.below(self.grants.len() as u64) as usize;
            let grant_id = &self.grants[index];
            match state.grant(grant_id) {
                Some(grant) if grant.revocation.is_none() && now < grant.expires_at => {
                    return Some(grant_id.clone());
                }
                Some(_) => {
                    self.grants.swap_remove(index);
                }
                None => {
                    if !may_become_grant(state, grant_id) {
                        self.grants.swap_remove(index);
                    }
                }
            }
        }
        None
    }

    /// Drops dead entries from the tracking lists once they have doubled,
    /// so they stay proportional to what is live (amortised O(1) a call).
    fn prune(&mut self, state: &State, now: Timestamp) {
        if self.pending.len() > 2 * self.pending_pruned_len + 64 {
            self.pending.retain(|request| {
                matches!(
                    state.request_status(request),
                    None | Some(RequestStatus::Submitted | RequestStatus::Pending)
                )
            });
            self.pending_pruned_len = self.pending.len();
        }
        if self.grants.len() > 2 * self.grants_pruned_len + 64 {
            self.grants.retain(|grant_id| match state.grant(grant_id) {
                Some(grant) => grant.revocation.is_none() && now < grant.expires_at,
                None => may_become_grant(state, grant_id),
            });
            self.grants_pruned_len = self.grants.len();
        }
    }
}

const EXTRA_HUMANS: [&str; 20] = [
    "alice", "bob", "carol", "erin", "frank", "grace", "heidi", "ivan", "judy", "kim", "lena",
    "mike", "nora", "oscar", "quinn", "tara", "uma", "victor", "wendy", "yusuf",
];
const WORKLOADS: [&str; 8] = [
    "svc-billing",
    "svc-orders",
    "svc-search",
    "svc-payments",
    "ci-runner-1",
    "ci-runner-2",
    "etl-nightly",
    "backup-job",
];
const AGENTS: [&str; 5] = [
    "agent-code-1",
    "agent-code-2",
    "agent-triage",
    "agent-sre-copilot",
    "agent-data-analyst",
];
const SEGMENT_WORDS: [&str; 6] = [
    "orders",
    "users",
    "ledger",
    "inventory",
    "payments",
    "search",
];
const DEEP_WORDS: [&str; 5] = ["api", "web", "worker", "eu-west-1", "us-east-1"];
const RESOURCES_PER_ENTITLEMENT: usize = 4;
const RECENT_MAX: usize = 32;
const PICK_TRIES: usize = 8;

fn may_become_grant(state: &State, grant_id: &GrantId) -> bool {
    match grant_id
        .request()
        .and_then(|request| state.request_status(&request))
    {
        None => true, // not yet recorded
        Some(status) => matches!(
            status,
            RequestStatus::Submitted
                | RequestStatus::Allowed
                | RequestStatus::Pending
                | RequestStatus::Approved
                | RequestStatus::BreakGlass
        ),
    }
}

fn id(name: &str) -> PrincipalId {
    PrincipalId::new(name).expect("a valid id")
}

/// A concrete resource the pattern matches: `*` becomes a word, `**` one or
/// two segments.
fn concrete_resource(rng: &mut SplitMix64, pattern: &str) -> ResourceId {
    let segments: Vec<String> = pattern
        .split('/')
        .map(|segment| {
            if segment == "**" {
                let count = rng.range(1, 2);
                (0..count)
                    .map(|_| *rng.pick(&DEEP_WORDS))
                    .collect::<Vec<_>>()
                    .join("/")
            } else {
                let mut out = String::new();
                for c in segment.chars() {
                    if c == '*' {
                        let word: &&str = rng.pick(&SEGMENT_WORDS);
                        out.push_str(word);
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        })
        .collect();
    // INVARIANT: catalog patterns are valid resource ids and the words are
    // plain, so the result is a valid id (it may exceed the length bound
    // only for patterns near 256 bytes, which then fall back).
    ResourceId::new(segments.join("/"))
        .unwrap_or_else(|_| ResourceId::new("none/none").expect("a valid id"))
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and ours, so the
/// stream is fixed forever.
#[derive(Clone, Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (Lemire's multiply-shift; `bound > 0`).
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        let high = high.max(low);
        low + self.below(high - low + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn pick_opt<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(self.pick(items))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::DEFAULT_CATALOG;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // Reference values of splitmix64 seeded with 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn generated_resources_match_their_entitlement() {
        let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
        let workload = Workload::new(7, &catalog);
        for (entitlement, resources) in catalog.entitlements().iter().zip(&workload.resources) {
            assert!(
                !resources.is_empty(),
                "`{}` has no resource",
                entitlement.id
            );
            for resource in resources {
                assert!(
                    entitlement.resource.matches(resource.as_str()),
                    "`{resource}`"
                );
            }
        }
    }
}
