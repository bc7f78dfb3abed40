//! Test harness: a tiny given/when/then for decisions, builders for
//! commands and events, and an independent auditor that re-derives the
//! ledger's rules from the event stream alone (TigerBeetle's auditor idea).
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use grantledger_core::{
    ApprovalRule, Catalog, Command, Rejection, State, apply, catalog_hash, decide,
};
use grantledger_events::{
    ApprovalRecorded, ApprovalVerdict, DecisionOutcome, DecisionRecorded, EntitlementId, Event,
    GrantId, GrantIssued, GrantRevoked, Principal, PrincipalId, PrincipalKind, RequestId,
    RequestSubmitted, ResourceId, RevocationReason, SubmitRequest, TenantId, Timestamp,
};

/// 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp(1_767_225_600_000);
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;

/// `T0` plus `ms`.
pub fn t(ms: i64) -> Timestamp {
    T0.plus_ms(ms)
}

/// The catalog the rule tests run against: small, and covering every
/// approval rule.
pub const CATALOG: &str = r#"
[groups]
dba = ["dana", "dmitri", "dora"]
sre = ["sam", "sofia", "sven"]

[[entitlement]]
id = "db-read"
resource = "db/prod/*"
actions = ["read"]
ttl_default_s = 3600
ttl_max_s = 28800
principal_kinds = ["human", "workload", "agent"]
approval = "auto"

[[entitlement]]
id = "db-write"
resource = "db/prod/*"
actions = ["read", "write"]
ttl_default_s = 1800
ttl_max_s = 7200
principal_kinds = ["human", "workload"]
approval = { approvers = 2, group = "dba" }
ticket_required = true
break_glass_ttl_max_s = 900
request_ttl_s = 86400

[[entitlement]]
id = "db-export"
resource = "db/prod/*"
actions = ["export"]
ttl_default_s = 3600
ttl_max_s = 3600
principal_kinds = ["human", "workload", "agent"]
approval = "deny"

[[entitlement]]
id = "repo-write"
resource = "git/acme/api"
actions = ["push", "open_pull_request"]
ttl_default_s = 1800
ttl_max_s = 3600
principal_kinds = ["agent"]
approval = "auto"

[[entitlement]]
id = "k8s-admin"
resource = "k8s/prod/ns/*"
actions = ["admin"]
ttl_default_s = 3600
ttl_max_s = 14400
principal_kinds = ["human"]
approval = { approvers = 1, group = "sre" }
break_glass_ttl_max_s = 1800
"#;

pub fn catalog_hash_of(text: &str) -> String {
    catalog_hash(text)
}

// ---------------------------------------------------------------- ids

pub fn rid(id: &str) -> RequestId {
    RequestId::new(id).unwrap()
}

pub fn gid(request: &str) -> GrantId {
    GrantId::for_request(&rid(request))
}

pub fn pid(id: &str) -> PrincipalId {
    PrincipalId::new(id).unwrap()
}

pub fn res(id: &str) -> ResourceId {
    ResourceId::new(id).unwrap()
}

pub fn ent(id: &str) -> EntitlementId {
    EntitlementId::new(id).unwrap()
}

pub fn human(id: &str) -> Principal {
    Principal {
        id: pid(id),
        kind: PrincipalKind::Human,
        owner: None,
    }
}

pub fn workload(id: &str, owner: &str) -> Principal {
    Principal {
        id: pid(id),
        kind: PrincipalKind::Workload,
        owner: Some(pid(owner)),
    }
}

pub fn agent(id: &str, owner: &str) -> Principal {
    Principal {
        id: pid(id),
        kind: PrincipalKind::Agent,
        owner: Some(pid(owner)),
    }
}

// ---------------------------------------------------------------- commands

pub fn publish(text: &str) -> Command {
    Command::PublishCatalog {
        text: text.to_string(),
        published_by: pid("catalog-admin"),
    }
}

/// A well-formed request: a justification, no ticket, the default TTL.
pub fn req(
    id: &str,
    principal: Principal,
    entitlement: &str,
    resource: &str,
    actions: &[&str],
) -> SubmitRequest {
    SubmitRequest {
        request_id: rid(id),
        tenant: TenantId::new("acme").unwrap(),
        principal,
        entitlement: ent(entitlement),
        resource: res(resource),
        actions: actions.iter().map(|action| action.to_string()).collect(),
        justification: "investigating INC-42".to_string(),
        ticket: None,
        ttl_ms: None,
        starts_at_ms: None,
        groups: Vec::new(),
        context: Default::default(),
        identity_token: None,
    }
}

/// `request` with a scheduled start at `starts_at`.
pub fn starting(request: SubmitRequest, starts_at: Timestamp) -> SubmitRequest {
    SubmitRequest {
        starts_at_ms: Some(starts_at.0),
        ..request
    }
}

/// A request for `db-write` on `db/prod/orders` with a ticket: needs two DBAs.
pub fn write_req(id: &str, principal: Principal) -> SubmitRequest {
    SubmitRequest {
        ticket: Some("CHG-1".into()),
        ..req(id, principal, "db-write", "db/prod/orders", &["write"])
    }
}

/// A request for `db-read` on `resource`: auto-approved.
pub fn read_req(id: &str, principal: Principal, resource: &str) -> SubmitRequest {
    req(id, principal, "db-read", resource, &["read"])
}

pub fn submit(request: SubmitRequest) -> Command {
    Command::Submit(request)
}

pub fn approve(request: &str, approver: &str) -> Command {
    Command::Approve {
        request_id: rid(request),
        approver: pid(approver),
        comment: "ok".into(),
    }
}

pub fn refuse(request: &str, approver: &str) -> Command {
    Command::Deny {
        request_id: rid(request),
        approver: pid(approver),
        comment: "no".into(),
    }
}

pub fn revoke(request: &str, reason: RevocationReason, by: &str) -> Command {
    Command::Revoke {
        grant_id: gid(request),
        reason,
        by: pid(by),
        detail: "done".into(),
    }
}

pub fn risk(principal: &str) -> Command {
    Command::RiskSignal {
        principal: pid(principal),
        by: pid("risk-engine"),
        detail: "impossible travel".into(),
    }
}

pub fn offboard(principal: &str) -> Command {
    Command::Offboard {
        principal: pid(principal),
        by: pid("hr-system"),
        detail: "left the company".into(),
    }
}

pub fn expire(request: &str) -> Command {
    Command::Expire {
        grant_id: gid(request),
    }
}

pub fn start(request: &str) -> Command {
    Command::Start {
        request_id: rid(request),
    }
}

pub fn withdraw(request: &str, by: &str) -> Command {
    Command::Withdraw {
        request_id: rid(request),
        by: pid(by),
        reason: "maintenance postponed".into(),
    }
}

pub fn expire_request(request: &str) -> Command {
    Command::ExpireRequest {
        request_id: rid(request),
    }
}

pub fn confirm(request: &str) -> Command {
    Command::ConfirmRevocation {
        grant_id: gid(request),
        worker: "db-revoker".into(),
    }
}

pub fn fail(request: &str, attempt: u32) -> Command {
    Command::ReportRevocationFailure {
        grant_id: gid(request),
        worker: "db-revoker".into(),
        error: "timeout".into(),
        attempt,
    }
}

pub fn extend(request: &str, by: &str, expires_at: Timestamp) -> Command {
    Command::Extend {
        grant_id: gid(request),
        by: pid(by),
        expires_at,
    }
}

pub fn break_glass(
    id: &str,
    principal: Principal,
    entitlement: &str,
    resource: &str,
    ttl_ms: i64,
) -> Command {
    Command::BreakGlass {
        request_id: rid(id),
        principal,
        entitlement: ent(entitlement),
        resource: res(resource),
        actions: vec!["write".into()],
        reason: "INC-7: orders database is down".into(),
        ttl_ms,
    }
}

pub fn review(request: &str, reviewer: &str) -> Command {
    Command::Review {
        grant_id: gid(request),
        reviewer: pid(reviewer),
        verdict: grantledger_events::ReviewVerdict::Justified,
        notes: "matches the incident".into(),
    }
}

// ---------------------------------------------------------------- events

pub fn submitted(request: &SubmitRequest) -> Event {
    Event::RequestSubmitted(RequestSubmitted {
        request_id: request.request_id.clone(),
        principal: request.principal.clone(),
        entitlement: request.entitlement.clone(),
        resource: request.resource.clone(),
        actions: request.actions.clone(),
        justification: request.justification.clone(),
        ticket: request.ticket.clone(),
        ttl_requested_ms: request.ttl_ms,
        starts_at: request.starts_at_ms.map(Timestamp),
    })
}

pub fn decided(
    request: &SubmitRequest,
    outcome: DecisionOutcome,
    reasons: &[&str],
    ttl_granted_ms: i64,
) -> Event {
    Event::DecisionRecorded(DecisionRecorded {
        request_id: request.request_id.clone(),
        outcome,
        reasons: reasons.iter().map(|reason| reason.to_string()).collect(),
        entitlement: request.entitlement.clone(),
        catalog_hash: catalog_hash(CATALOG),
        ttl_granted_ms,
        basis: grantledger_events::DecisionBasis::Catalog,
    })
}

pub fn issued(request: &SubmitRequest, issued_at: Timestamp, ttl_ms: i64, cap_ms: i64) -> Event {
    let mut actions = request.actions.clone();
    actions.sort();
    actions.dedup();
    Event::GrantIssued(GrantIssued {
        grant_id: GrantId::for_request(&request.request_id),
        request_id: request.request_id.clone(),
        principal: request.principal.clone(),
        entitlement: request.entitlement.clone(),
        resource: request.resource.clone(),
        actions,
        issued_at,
        expires_at: issued_at.plus_ms(ttl_ms),
        expires_at_cap: issued_at.plus_ms(cap_ms),
        break_glass: false,
    })
}

pub fn approval(request: &str, approver: &str, verdict: ApprovalVerdict) -> Event {
    let comment = match verdict {
        ApprovalVerdict::Approve => "ok",
        ApprovalVerdict::Deny => "no",
    };
    Event::ApprovalRecorded(ApprovalRecorded {
        request_id: rid(request),
        approver: pid(approver),
        verdict,
        comment: comment.into(),
    })
}

pub fn revoked(request: &str, reason: RevocationReason, by: Option<&str>, detail: &str) -> Event {
    Event::GrantRevoked(GrantRevoked {
        grant_id: gid(request),
        reason,
        revoked_by: by.map(pid),
        detail: detail.into(),
    })
}

// ---------------------------------------------------------------- given / when / then

/// The events of deciding and applying `commands` in order on a fresh
/// state, each at its time. Panics if any is rejected: a history is a
/// premise, not a test.
pub fn history<I: IntoIterator<Item = (Timestamp, Command)>>(
    commands: I,
) -> Vec<(Timestamp, Event)> {
    let mut state = State::default();
    let mut events = Vec::new();
    for (now, command) in commands {
        let decided = decide(&state, &command, now).unwrap_or_else(|rejection| {
            panic!("history step `{}` rejected: {rejection}", command.name())
        });
        for event in decided {
            apply(&mut state, &event, now)
                .unwrap_or_else(|error| panic!("history does not apply: {error}"));
            events.push((now, event));
        }
    }
    events
}

/// A state holding `events`, each applied at its time.
pub fn given<I: IntoIterator<Item = (Timestamp, Event)>>(events: I) -> Scenario {
    let mut state = State::default();
    for (at, event) in events {
        apply(&mut state, &event, at)
            .unwrap_or_else(|error| panic!("given event does not apply: {error}"));
    }
    Scenario { state }
}

/// The test catalog in force, published at `T0`.
pub fn given_catalog() -> Scenario {
    given(history([(T0, publish(CATALOG))]))
}

/// The test catalog in force, then `commands` decided and applied.
pub fn given_commands<I: IntoIterator<Item = (Timestamp, Command)>>(commands: I) -> Scenario {
    given(history(
        std::iter::once((T0, publish(CATALOG))).chain(commands),
    ))
}

pub struct Scenario {
    pub state: State,
}

pub struct When {
    state: State,
    command: Command,
    now: Timestamp,
    result: Result<Vec<Event>, Rejection>,
}

impl Scenario {
    pub fn when(self, command: Command, now: Timestamp) -> When {
        let result = decide(&self.state, &command, now);
        When {
            state: self.state,
            command,
            now,
            result,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }
}

impl When {
    /// The command produced exactly `expected`; they apply; go on from there.
    #[track_caller]
    pub fn then_events(self, expected: Vec<Event>) -> Scenario {
        match &self.result {
            Ok(events) => assert_eq!(events, &expected, "events of `{}`", self.command.name()),
            Err(rejection) => panic!(
                "`{}` rejected with `{}`: {rejection}",
                self.command.name(),
                rejection.code()
            ),
        }
        self.applied()
    }

    /// The command was refused with `code`; nothing changes.
    #[track_caller]
    pub fn then_rejects(self, code: &str) -> Scenario {
        match &self.result {
            Ok(events) => panic!(
                "`{}` was accepted, expected `{code}`: {events:?}",
                self.command.name()
            ),
            Err(rejection) => {
                assert_eq!(rejection.code(), code, "{rejection}");
                let message = rejection.to_string();
                assert!(!message.ends_with('.'), "no final period: {message}");
                assert!(
                    message.chars().next().is_some_and(|c| !c.is_uppercase()),
                    "lowercase: {message}"
                );
            }
        }
        Scenario { state: self.state }
    }

    /// Refused with `code`, and the message names every one of `values`.
    #[track_caller]
    pub fn then_rejects_naming(self, code: &str, values: &[&str]) -> Scenario {
        if let Err(rejection) = &self.result {
            let message = rejection.to_string();
            for value in values {
                assert!(
                    message.contains(&format!("`{value}`")),
                    "`{value}` not named in: {message}"
                );
            }
        }
        self.then_rejects(code)
    }

    /// The request was recorded with this decision (and, for an allow, a
    /// grant); go on from there.
    #[track_caller]
    pub fn then_decision(self, outcome: DecisionOutcome, reasons: &[&str]) -> Scenario {
        let events = match &self.result {
            Ok(events) => events,
            Err(rejection) => panic!("rejected with `{}`: {rejection}", rejection.code()),
        };
        assert!(
            matches!(events.first(), Some(Event::RequestSubmitted(_))),
            "{events:?}"
        );
        let Some(Event::DecisionRecorded(decision)) = events.get(1) else {
            panic!("no decision: {events:?}")
        };
        assert_eq!(decision.outcome, outcome, "{decision:?}");
        let reasons: Vec<String> = reasons.iter().map(|reason| reason.to_string()).collect();
        assert_eq!(decision.reasons, reasons);
        let granted = events
            .iter()
            .any(|event| matches!(event, Event::GrantIssued(_)));
        assert_eq!(
            granted,
            outcome == DecisionOutcome::Allow,
            "a grant exactly when allowed: {events:?}"
        );
        if outcome == DecisionOutcome::Deny {
            assert_eq!(decision.ttl_granted_ms, 0);
        }
        self.applied()
    }

    /// The events, whatever they are; they apply.
    #[track_caller]
    pub fn then_ok(self) -> Scenario {
        if let Err(rejection) = &self.result {
            panic!(
                "`{}` rejected with `{}`: {rejection}",
                self.command.name(),
                rejection.code()
            );
        }
        self.applied()
    }

    pub fn events(&self) -> &[Event] {
        self.result.as_deref().unwrap_or(&[])
    }

    #[track_caller]
    fn applied(self) -> Scenario {
        let mut state = self.state;
        for event in self.result.expect("accepted") {
            apply(&mut state, &event, self.now)
                .unwrap_or_else(|error| panic!("decided event does not apply: {error}"));
        }
        Scenario { state }
    }
}

// ---------------------------------------------------------------- the auditor

/// Re-derives the ledger's rules from the events alone, without looking at
/// the core's state, and panics naming the first one broken.
#[derive(Default)]
pub struct Auditor {
    catalog: Option<Catalog>,
    requests: BTreeMap<String, AuditedRequest>,
    grants: BTreeMap<String, AuditedGrant>,
    /// Offboarded principals and when.
    offboarded: BTreeMap<String, Timestamp>,
    pub events_seen: u64,
    pub grants_issued: u64,
}

struct AuditedRequest {
    principal: Principal,
    decision: Option<DecisionOutcome>,
    break_glass: bool,
    approvals: BTreeSet<String>,
    refused: bool,
}

#[derive(Clone)]
pub struct AuditedGrant {
    pub principal: String,
    /// The holder's owner, for a workload or an agent.
    pub owner: Option<String>,
    pub resource: String,
    pub actions: Vec<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub cap: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub confirmed: bool,
}

impl Auditor {
    pub fn observe(&mut self, event: &Event, at: Timestamp) {
        self.events_seen += 1;
        match event {
            Event::CatalogPublished(e) => {
                self.catalog = Some(Catalog::parse(&e.text).expect("published catalogs are valid"));
            }
            Event::RequestSubmitted(e) => {
                let fresh = self
                    .requests
                    .insert(
                        e.request_id.to_string(),
                        AuditedRequest {
                            principal: e.principal.clone(),
                            decision: None,
                            break_glass: false,
                            approvals: BTreeSet::new(),
                            refused: false,
                        },
                    )
                    .is_none();
                assert!(fresh, "request `{}` recorded twice", e.request_id);
            }
            Event::BreakGlassInvoked(e) => {
                assert_eq!(
                    e.principal.kind,
                    PrincipalKind::Human,
                    "break-glass by a non-human"
                );
                assert!(
                    !self.offboarded.contains_key(e.principal.id.as_str()),
                    "rule broken: break-glass by offboarded `{}`",
                    e.principal.id
                );
                assert!(
                    !owner_offboarded(&self.offboarded, &e.principal),
                    "rule broken: break-glass by `{}`, whose owner was offboarded",
                    e.principal.id
                );
                let fresh = self
                    .requests
                    .insert(
                        e.request_id.to_string(),
                        AuditedRequest {
                            principal: e.principal.clone(),
                            decision: None,
                            break_glass: true,
                            approvals: BTreeSet::new(),
                            refused: false,
                        },
                    )
                    .is_none();
                assert!(fresh, "request `{}` recorded twice", e.request_id);
            }
            Event::DecisionRecorded(e) => {
                let request = self
                    .requests
                    .get_mut(e.request_id.as_str())
                    .expect("a decision for a recorded request");
                assert!(
                    request.decision.is_none(),
                    "rule broken: two decisions for request `{}`",
                    e.request_id
                );
                if request.principal.kind.is_non_human() {
                    assert!(
                        !matches!(e.outcome, DecisionOutcome::NeedsApproval { .. }),
                        "rule broken: non-human `{}` queued for a human",
                        request.principal.id
                    );
                }
                if self.offboarded.contains_key(request.principal.id.as_str()) {
                    assert_eq!(
                        (&e.outcome, e.reasons.as_slice()),
                        (&DecisionOutcome::Deny, &["principal_offboarded".to_string()][..]),
                        "rule broken: offboarded `{}` not denied",
                        request.principal.id
                    );
                } else if owner_offboarded(&self.offboarded, &request.principal) {
                    assert_eq!(
                        (&e.outcome, e.reasons.as_slice()),
                        (&DecisionOutcome::Deny, &["owner_offboarded".to_string()][..]),
                        "rule broken: `{}`, whose owner was offboarded, not denied",
                        request.principal.id
                    );
                }
                let mut sorted = e.reasons.clone();
                sorted.sort();
                assert_eq!(sorted, e.reasons, "reasons are sorted");
                assert!(!e.reasons.is_empty(), "a decision says why");
                request.decision = Some(e.outcome.clone());
            }
            Event::ApprovalRecorded(e) => {
                let catalog = self.catalog.as_ref().expect("a catalog");
                let request = self
                    .requests
                    .get_mut(e.request_id.as_str())
                    .expect("approval of a recorded request");
                let Some(DecisionOutcome::NeedsApproval { group, .. }) = &request.decision else {
                    panic!(
                        "rule broken: approval of request `{}`, which needs none",
                        e.request_id
                    )
                };
                assert!(!request.refused, "approval after a refusal");
                assert_ne!(
                    e.approver, request.principal.id,
                    "rule broken: self-approval of `{}`",
                    e.request_id
                );
                assert_ne!(
                    Some(&e.approver),
                    request.principal.owner.as_ref(),
                    "rule broken: owner approval"
                );
                assert!(
                    catalog
                        .group(group)
                        .is_some_and(|members| members.contains(&e.approver)),
                    "rule broken: `{}` is not in group `{group}`",
                    e.approver
                );
                if e.verdict == ApprovalVerdict::Approve {
                    assert!(
                        !self.offboarded.contains_key(request.principal.id.as_str()),
                        "rule broken: approval of offboarded `{}`'s request",
                        request.principal.id
                    );
                    assert!(
                        !owner_offboarded(&self.offboarded, &request.principal),
                        "rule broken: approval of a request of `{}`, whose owner was offboarded",
                        request.principal.id
                    );
                }
                match e.verdict {
                    ApprovalVerdict::Approve => assert!(
                        request.approvals.insert(e.approver.to_string()),
                        "rule broken: `{}` approved `{}` twice",
                        e.approver,
                        e.request_id
                    ),
                    ApprovalVerdict::Deny => request.refused = true,
                }
            }
            Event::GrantIssued(e) => {
                self.grants_issued += 1;
                let catalog = self.catalog.as_ref().expect("a catalog");
                let request = self
                    .requests
                    .get(e.request_id.as_str())
                    .expect("rule broken: grant without a request");
                assert!(!request.refused, "rule broken: grant after a refusal");
                assert!(
                    !self.offboarded.contains_key(e.principal.id.as_str()),
                    "rule broken: grant `{}` to offboarded `{}`",
                    e.grant_id,
                    e.principal.id
                );
                assert!(
                    !owner_offboarded(&self.offboarded, &e.principal),
                    "rule broken: grant `{}` to `{}`, whose owner was offboarded",
                    e.grant_id,
                    e.principal.id
                );
                let entry = catalog
                    .entitlement(e.entitlement.as_str())
                    .expect("a catalog entitlement");
                let cap_ms = if request.break_glass {
                    assert!(e.break_glass);
                    entry.break_glass_ttl_max_ms.expect("break-glass eligible")
                } else {
                    match &request.decision {
                        Some(DecisionOutcome::Allow) => {}
                        Some(DecisionOutcome::NeedsApproval {
                            approvers_required,
                            group,
                        }) => {
                            assert!(
                                request.approvals.len() >= *approvers_required as usize,
                                "rule broken: grant `{}` with {} of {approvers_required} approvals",
                                e.grant_id,
                                request.approvals.len()
                            );
                            assert!(matches!(
                                &entry.approval,
                                ApprovalRule::Approvers { group: entry_group, .. } if entry_group == group
                            ));
                        }
                        other => panic!(
                            "rule broken: grant `{}` without an allowing decision ({other:?})",
                            e.grant_id
                        ),
                    }
                    entry.ttl_max_ms
                };
                assert_eq!(e.issued_at, at, "issued at the record's time");
                assert!(e.expires_at > e.issued_at, "a grant lasts");
                assert!(
                    e.expires_at <= e.issued_at.plus_ms(cap_ms),
                    "rule broken: grant `{}` past its maximum TTL",
                    e.grant_id
                );
                assert!(
                    e.expires_at_cap <= e.issued_at.plus_ms(cap_ms),
                    "cap within the maximum"
                );
                assert_eq!(e.principal, request.principal);
                let fresh = self
                    .grants
                    .insert(
                        e.grant_id.to_string(),
                        AuditedGrant {
                            principal: e.principal.id.to_string(),
                            owner: e.principal.owner.as_ref().map(ToString::to_string),
                            resource: e.resource.to_string(),
                            actions: e.actions.clone(),
                            issued_at: e.issued_at,
                            expires_at: e.expires_at,
                            cap: e.expires_at_cap,
                            revoked_at: None,
                            confirmed: false,
                        },
                    )
                    .is_none();
                assert!(fresh, "grant `{}` issued twice", e.grant_id);
            }
            Event::GrantExtended(e) => {
                let grant = self
                    .grants
                    .get_mut(e.grant_id.as_str())
                    .expect("extension of an issued grant");
                assert!(
                    grant.revoked_at.is_none() && at < grant.expires_at,
                    "extension of a live grant"
                );
                assert!(
                    e.expires_at <= grant.cap,
                    "rule broken: extension past the cap"
                );
                assert!(e.expires_at > grant.expires_at);
                grant.expires_at = e.expires_at;
            }
            Event::GrantRevoked(e) => {
                let grant = self
                    .grants
                    .get_mut(e.grant_id.as_str())
                    .expect("revocation of an issued grant");
                assert!(
                    grant.revoked_at.is_none(),
                    "grant `{}` revoked twice",
                    e.grant_id
                );
                if e.reason == RevocationReason::Expired {
                    assert!(at >= grant.expires_at, "expired before expires_at");
                }
                grant.revoked_at = Some(at);
            }
            Event::RevocationConfirmed(e) => {
                let grant = self
                    .grants
                    .get_mut(e.grant_id.as_str())
                    .expect("confirmation of an issued grant");
                assert!(
                    grant.revoked_at.is_some() && !grant.confirmed,
                    "confirmation of a revoked grant, once"
                );
                grant.confirmed = true;
            }
            Event::RevocationFailed(e) => {
                let grant = self
                    .grants
                    .get(e.grant_id.as_str())
                    .expect("failure of an issued grant");
                assert!(
                    grant.revoked_at.is_some() && !grant.confirmed,
                    "failure of a revoked, unconfirmed grant"
                );
            }
            Event::ReviewRecorded(e) => {
                let request = e.grant_id.request().expect("derived grant id");
                let request = self.requests.get(request.as_str()).expect("a request");
                assert!(request.break_glass, "review of a break-glass grant");
                assert_ne!(e.reviewer, request.principal.id, "no self-review");
            }
            Event::PrincipalOffboarded(e) => {
                let fresh = self.offboarded.insert(e.principal.to_string(), at).is_none();
                assert!(fresh, "rule broken: `{}` offboarded twice", e.principal);
            }
            Event::RequestExpired(e) => {
                assert!(at >= e.expired_at, "expired before its deadline");
                if e.reason == grantledger_events::RequestExpiryReason::RiskSignal {
                    assert_eq!(e.expired_at, at, "a risk signal closes a request at its own time");
                }
                assert!(
                    !self.grants.contains_key(GrantId::for_request(&e.request_id).as_str()),
                    "rule broken: request `{}` expired after its grant",
                    e.request_id
                );
                let request = self
                    .requests
                    .get_mut(e.request_id.as_str())
                    .expect("expiry of a recorded request");
                assert!(!request.refused, "expiry of a refused request");
                request.refused = true;
            }
            Event::RequestWithdrawn(e) => {
                assert!(
                    !self.grants.contains_key(GrantId::for_request(&e.request_id).as_str()),
                    "rule broken: request `{}` withdrawn after its grant",
                    e.request_id
                );
                assert!(!e.reason.trim().is_empty(), "rule broken: a withdrawal without a reason");
                let request = self
                    .requests
                    .get_mut(e.request_id.as_str())
                    .expect("withdrawal of a recorded request");
                assert!(!request.refused, "withdrawal of a closed or refused request");
                assert!(
                    request.principal.id == e.withdrawn_by
                        || request.principal.owner.as_ref() == Some(&e.withdrawn_by),
                    "rule broken: `{}` withdrew `{}`'s request",
                    e.withdrawn_by,
                    request.principal.id
                );
                request.refused = true;
            }
            // The workload never publishes a policy set, and the core alone
            // never refuses an identity (the ledger's verifier does).
            Event::PolicyPublished(_) => panic!("the workload publishes no policy set"),
            Event::IdentityRefused(_) => panic!("the core's streams refuse no identity"),
        }
    }

    /// Compares what the core's state says with what the events say.
    pub fn check_state(&self, state: &State, now: Timestamp) {
        // Effective access: one count per unrevoked grant per action.
        let mut expected: BTreeMap<(String, String, String), u32> = BTreeMap::new();
        for grant in self
            .grants
            .values()
            .filter(|grant| grant.revoked_at.is_none())
        {
            for action in &grant.actions {
                *expected
                    .entry((
                        grant.principal.clone(),
                        grant.resource.clone(),
                        action.clone(),
                    ))
                    .or_default() += 1;
            }
        }
        let actual: BTreeMap<(String, String, String), u32> = state
            .effective_access()
            .map(|(principal, resource, action, count)| {
                (
                    (
                        principal.to_string(),
                        resource.to_string(),
                        action.to_string(),
                    ),
                    count,
                )
            })
            .collect();
        assert_eq!(
            actual, expected,
            "effective access counts equal the unrevoked grants giving them"
        );

        self.check_answers_at(state, now);

        let counts = state.counts();
        let unrevoked = self
            .grants
            .values()
            .filter(|grant| grant.revoked_at.is_none())
            .count() as u64;
        let debt = self
            .grants
            .values()
            .filter(|grant| grant.revoked_at.is_some() && !grant.confirmed)
            .count() as u64;
        assert_eq!(counts.grants_unrevoked, unrevoked);
        assert_eq!(counts.revocation_debt, debt);
        assert_eq!(counts.grants_issued, self.grants_issued);
        assert_eq!(state.revocation_debt(usize::MAX).len() as u64, debt);

        // Every grant live at its holder's owner's offboarding was revoked
        // with it.
        for grant in self.grants.values() {
            let Some(&offboarded_at) = grant.owner.as_ref().and_then(|owner| self.offboarded.get(owner))
            else {
                continue;
            };
            if grant.issued_at <= offboarded_at && offboarded_at < grant.expires_at {
                assert!(
                    grant.revoked_at.is_some_and(|revoked_at| revoked_at <= offboarded_at),
                    "rule broken: a grant of `{}` outlived its owner's offboarding at `{offboarded_at}`",
                    grant.principal
                );
            }
        }
        // Every grant live at its holder's offboarding was revoked with it.
        for grant in self.grants.values() {
            let Some(&offboarded_at) = self.offboarded.get(&grant.principal) else {
                continue;
            };
            if grant.issued_at <= offboarded_at && offboarded_at < grant.expires_at {
                assert!(
                    grant.revoked_at.is_some_and(|revoked_at| revoked_at <= offboarded_at),
                    "rule broken: a grant of `{}` outlived its offboarding at `{offboarded_at}`",
                    grant.principal
                );
            }
            assert_eq!(state.offboarded_at(&pid(&grant.principal)), Some(offboarded_at));
        }
        assert_eq!(counts.principals_offboarded, self.offboarded.len() as u64);
    }

    /// `check` at `at` (now or in the past) agrees with the events: true iff
    /// some grant was issued at or before `at`, not revoked at `at`, and
    /// `at < expires_at`.
    pub fn check_answers_at(&self, state: &State, at: Timestamp) {
        let mut answers: BTreeMap<(String, String, String), bool> = BTreeMap::new();
        for grant in self.grants.values() {
            let active = grant.issued_at <= at
                && at < grant.expires_at
                && grant.revoked_at.is_none_or(|revoked_at| at < revoked_at);
            for action in &grant.actions {
                *answers
                    .entry((
                        grant.principal.clone(),
                        grant.resource.clone(),
                        action.clone(),
                    ))
                    .or_default() |= active;
            }
        }
        for ((principal, resource, action), expected) in answers {
            assert_eq!(
                state.check(&pid(&principal), &action, &res(&resource), at),
                expected,
                "check(`{principal}`, `{action}`, `{resource}`, `{at}`)"
            );
        }
    }
}

/// Whether `principal` names an owner in `offboarded`.
fn owner_offboarded(offboarded: &BTreeMap<String, Timestamp>, principal: &Principal) -> bool {
    principal
        .owner
        .as_ref()
        .is_some_and(|owner| offboarded.contains_key(owner.as_str()))
}

/// Applies `events` to a fresh state and returns its digest.
pub fn replay_digest(events: &[(Timestamp, Event)]) -> [u8; 32] {
    let mut state = State::default();
    for (at, event) in events {
        apply(&mut state, event, *at).expect("a recorded log replays");
    }
    state.digest()
}
