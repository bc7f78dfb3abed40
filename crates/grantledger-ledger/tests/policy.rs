//! The policy engine on the ledger's decision path: a policy set published
//! as an event (refused whole when Cedar refuses it), requests decided by
//! the engine and recorded in full, the engine rebuilt from the log on
//! reopen, and `recheck` re-evaluating every decision from the log alone.

use std::collections::BTreeMap;

use grantledger_core::Command;
use grantledger_events::*;
use grantledger_ledger::{Input, Ledger, recheck};
use grantledger_log::{IndexKeys, Log, LogOptions, NewRecord};
use serde_json::{Value, json};

const START: Timestamp = Timestamp(1_767_225_600_000);
const CATALOG: &str = include_str!("../../grantledger-policy/policies/catalog.toml");
const POLICIES: &str = include_str!("../../grantledger-policy/policies/policies.cedar");
const EXCEPTIONS: &str = include_str!("../../grantledger-policy/policies/exceptions.toml");

fn input(command: Command) -> Input {
    Input { command, producer: "test".into(), causation: Causation::Input("m-1".into()) }
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn publish_catalog(text: &str) -> Command {
    Command::PublishCatalog { text: text.into(), published_by: PrincipalId::new("catalog-admin").unwrap() }
}

fn publish_policy(text: &str, exceptions: Option<&str>) -> Command {
    Command::PublishPolicy {
        policy_text: text.into(),
        exceptions_text: exceptions.map(str::to_string),
        published_by: PrincipalId::new("policy-admin").unwrap(),
    }
}

fn request(id: &str, who: &str, entitlement: &str, resource: &str, actions: &[&str], context: Value) -> SubmitRequest {
    SubmitRequest {
        request_id: RequestId::new(id).unwrap(),
        tenant: acme(),
        principal: Principal { id: PrincipalId::new(who).unwrap(), kind: PrincipalKind::Human, owner: None },
        entitlement: EntitlementId::new(entitlement).unwrap(),
        resource: ResourceId::new(resource).unwrap(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        justification: "investigating INC-42".into(),
        ticket: Some("CHG-9".into()),
        ttl_ms: None,
        starts_at_ms: None,
        groups: vec!["engineering".into()],
        context: serde_json::from_value::<BTreeMap<String, Value>>(context).unwrap(),
        identity_token: None,
    }
}

fn decision_of(events: &[Event]) -> &DecisionRecorded {
    events
        .iter()
        .find_map(|event| match event {
            Event::DecisionRecorded(decision) => Some(decision),
            _ => None,
        })
        .expect("a decision")
}

fn policy_basis(decision: &DecisionRecorded) -> &PolicyBasis {
    match &decision.basis {
        DecisionBasis::Policy(basis) => basis,
        DecisionBasis::Catalog => panic!("decided by the catalog alone: {decision:?}"),
    }
}

/// A ledger with the example catalog and policy set in force.
fn ledger_with_policy(dir: &std::path::Path) -> (Ledger, String) {
    let mut ledger = Ledger::create(dir, acme(), LogOptions::default()).unwrap();
    let mut batch = ledger.begin(START).unwrap();
    batch.stage(input(publish_catalog(CATALOG))).unwrap();
    let staged = batch.stage(input(publish_policy(POLICIES, Some(EXCEPTIONS)))).unwrap();
    let Event::PolicyPublished(published) = &staged.events[0] else { panic!("{:?}", staged.events) };
    assert_eq!(published.policy_hash, policy_hash(POLICIES, Some(EXCEPTIONS)));
    assert_eq!(published.policy_text, POLICIES);
    assert_eq!(published.exceptions_text.as_deref(), Some(EXCEPTIONS));
    assert_eq!(published.published_by.as_str(), "policy-admin");
    let hash = published.policy_hash.clone();
    batch.commit().unwrap();
    (ledger, hash)
}

#[test]
fn a_policy_that_does_not_parse_or_validate_is_refused_with_cedars_message_and_nothing_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::create(dir.path(), acme(), LogOptions::default()).unwrap();
    let mut batch = ledger.begin(START).unwrap();
    // No catalog yet: nothing to validate against.
    let refused = batch.stage(input(publish_policy(POLICIES, None))).unwrap_err();
    assert_eq!(refused.code(), "catalog_missing");
    batch.stage(input(publish_catalog(CATALOG))).unwrap();
    let rows = [
        // Does not parse.
        ("@id(\"p\")\npermit (principal, action, resource", "unexpected end of input"),
        // Parses, does not validate: no such context attribute.
        ("@id(\"p\")\npermit (principal, action == Action::\"request\", resource) when { context.badge_color == \"red\" };", "badge_color"),
        // Validates, does not fit the catalog.
        ("@id(\"p\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"no-such-entry\");", "no-such-entry"),
    ];
    for (text, fragment) in rows {
        let refused = batch.stage(input(publish_policy(text, None))).unwrap_err();
        assert_eq!(refused.code(), "policy_invalid", "{text}: {refused}");
        assert!(refused.to_string().contains(fragment), "{text}: {refused}");
    }
    // Exception rules that do not parse refuse the whole set.
    let refused = batch.stage(input(publish_policy(POLICIES, Some("[[rule]]\nbroken = ")))).unwrap_err();
    assert_eq!(refused.code(), "policy_invalid", "{refused}");
    let receipt = batch.commit().unwrap();
    assert_eq!(receipt.records, 1, "only the catalog was recorded");
    assert!(ledger.state().policy().is_none());
    assert!(ledger.engine().is_none());

    // The core alone refuses to publish what no engine validated.
    let refused =
        grantledger_core::decide(ledger.state(), &publish_policy(POLICIES, None), START).unwrap_err();
    assert_eq!(refused.code(), "policy_not_validated");
}

#[test]
fn before_any_policy_set_decisions_say_the_catalog_made_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::create(dir.path(), acme(), LogOptions::default()).unwrap();
    let mut batch = ledger.begin(START).unwrap();
    batch.stage(input(publish_catalog(CATALOG))).unwrap();
    let staged = batch
        .stage(input(Command::Submit(request("r-1", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({})))))
        .unwrap();
    let decision = decision_of(&staged.events);
    assert_eq!(decision.basis, DecisionBasis::Catalog);
    assert_eq!(decision.outcome, DecisionOutcome::Allow);
    assert_eq!(decision.reasons, vec!["auto_approved"]);
    batch.commit().unwrap();
}

#[test]
fn once_a_policy_set_is_published_the_engine_decides_and_the_decision_is_recorded_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, hash) = ledger_with_policy(dir.path());
    let catalog_hash = ledger.state().catalog_hash().unwrap().to_string();
    let mut batch = ledger.begin(START).unwrap();

    // Allowed by a permit: granted at once.
    let staged = batch
        .stage(input(Command::Submit(request("r-allow", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({"device_managed": true})))))
        .unwrap();
    let decision = decision_of(&staged.events);
    assert_eq!(decision.outcome, DecisionOutcome::Allow);
    assert_eq!(decision.catalog_hash, catalog_hash);
    assert_eq!(decision.entitlement.as_str(), "db-prod-read");
    let basis = policy_basis(decision);
    assert_eq!(basis.policy_hash, hash, "the decision cites the published policy set");
    assert_eq!(basis.determining_policies, vec!["routine-reads"]);
    assert!(!basis.no_permit_matched);
    assert_eq!(basis.cedar_version, "4.14.1");
    let evaluated: BTreeMap<&str, &str> =
        basis.evaluated.iter().map(|v| (v.name.as_str(), v.value_json.as_str())).collect();
    assert_eq!(evaluated.get("context.device_managed"), Some(&"true"));
    assert_eq!(evaluated.get("principal.groups"), Some(&"[\"engineering\"]"));
    assert_eq!(evaluated.get("context.now_ms"), Some(&START.0.to_string().as_str()));
    assert!(evaluated.contains_key("entitlement.risk_tier"), "{evaluated:?}");
    assert!(matches!(staged.events.last(), Some(Event::GrantIssued(_))));

    // A satisfied forbid: denied, citing it.
    let staged = batch
        .stage(input(Command::Submit(request("r-forbid", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({"risk_score": 90})))))
        .unwrap();
    let decision = decision_of(&staged.events);
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    assert_eq!(policy_basis(decision).determining_policies, vec!["high-risk-score"]);
    assert!(decision.reasons.contains(&"forbidden_by_policy".to_string()), "{:?}", decision.reasons);
    assert_eq!(staged.events.len(), 2, "no grant for a deny");

    // No permit matched: the default deny, said explicitly.
    let staged = batch
        .stage(input(Command::Submit(request("r-none", "hugo", "db-prod-write", "db/prod/orders", &["write"], json!({})))))
        .unwrap();
    let decision = decision_of(&staged.events);
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    let basis = policy_basis(decision);
    assert!(basis.no_permit_matched);
    assert!(basis.determining_policies.is_empty());
    assert!(decision.reasons.contains(&"no_permit_matched".to_string()), "{:?}", decision.reasons);

    // A permit plus the catalog's approvers: step-up.
    let staged = batch
        .stage(input(Command::Submit(request("r-step-up", "hugo", "db-prod-write", "db/prod/orders", &["write"], json!({"change_record": "CHG-7"})))))
        .unwrap();
    let decision = decision_of(&staged.events);
    assert_eq!(decision.outcome, DecisionOutcome::NeedsApproval { approvers_required: 2, group: "dba".into() });
    assert_eq!(policy_basis(decision).determining_policies, vec!["db-write-with-change-record"]);
    assert_eq!(ledger_pending(&batch), 1);

    // A context value of the wrong type: refused naming the field, nothing recorded.
    let refused = batch
        .stage(input(Command::Submit(request("r-bad", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({"device_managed": "yes"})))))
        .unwrap_err();
    assert_eq!(refused.code(), "policy_input_invalid");
    assert!(refused.to_string().contains("context.device_managed"), "{refused}");
    batch.commit().unwrap();

    // The approvals complete the step-up as before.
    let mut batch = ledger.begin(START).unwrap();
    for approver in ["dana", "dmitri"] {
        batch
            .stage(input(Command::Approve {
                request_id: RequestId::new("r-step-up").unwrap(),
                approver: PrincipalId::new(approver).unwrap(),
                comment: "ok".into(),
            }))
            .unwrap();
    }
    batch.commit().unwrap();
    assert!(ledger.state().grant(&GrantId::for_request(&RequestId::new("r-step-up").unwrap())).is_some());
}

#[test]
fn a_workload_whose_owner_was_offboarded_is_denied_by_the_core_without_asking_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, _) = ledger_with_policy(dir.path());
    let mut batch = ledger.begin(START).unwrap();
    batch
        .stage(input(Command::Offboard {
            principal: PrincipalId::new("alice").unwrap(),
            by: PrincipalId::new("hr-system").unwrap(),
            detail: "termination HR-2231".into(),
        }))
        .unwrap();
    // A context value the engine would refuse (`policy_input_invalid`):
    // the request is recorded and denied all the same, by the core.
    let mut owned = request("w-1", "svc-etl", "db-prod-read", "db/prod/orders", &["read"], json!({"device_managed": "yes"}));
    owned.principal = Principal {
        id: PrincipalId::new("svc-etl").unwrap(),
        kind: PrincipalKind::Workload,
        owner: Some(PrincipalId::new("alice").unwrap()),
    };
    let staged = batch.stage(input(Command::Submit(owned))).unwrap();
    assert_eq!(staged.events.len(), 2, "no grant: {:?}", staged.events);
    let decision = decision_of(&staged.events);
    assert_eq!(decision.outcome, DecisionOutcome::Deny);
    assert_eq!(decision.reasons, ["owner_offboarded"]);
    assert_eq!(decision.basis, DecisionBasis::Catalog, "the core decided it, not the policy");
    batch.commit().unwrap();
    drop(ledger);
    // The log replays: the denial follows the rules on reopen.
    let ledger = Ledger::open(dir.path(), acme(), LogOptions::default()).unwrap();
    assert_eq!(
        ledger.state().request_status(&RequestId::new("w-1").unwrap()),
        Some(grantledger_core::RequestStatus::Denied)
    );
}

fn ledger_pending(batch: &grantledger_ledger::Batch<'_>) -> usize {
    batch.state().pending_requests(16).len()
}

#[test]
fn reopening_rebuilds_the_engine_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let digest = {
        let (ledger, _) = ledger_with_policy(dir.path());
        ledger.state().digest()
    };
    let mut ledger = Ledger::open(dir.path(), acme(), LogOptions::default()).unwrap();
    assert_eq!(ledger.state().digest(), digest);
    assert!(ledger.engine().is_some());
    let mut batch = ledger.begin(START).unwrap();
    let staged = batch
        .stage(input(Command::Submit(request("r-1", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({})))))
        .unwrap();
    policy_basis(decision_of(&staged.events));
    batch.commit().unwrap();
}

#[test]
fn a_catalog_the_policy_set_in_force_does_not_fit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, _) = ledger_with_policy(dir.path());
    let mut batch = ledger.begin(START).unwrap();
    // The built-in catalog has none of the entitlements the policies name.
    let refused = batch.stage(input(publish_catalog(grantledger_core::DEFAULT_CATALOG))).unwrap_err();
    assert_eq!(refused.code(), "policy_invalid");
    assert!(refused.to_string().contains("does not fit this catalog"), "{refused}");
    // The same policy set again is refused as already in force.
    let refused = batch.stage(input(publish_policy(POLICIES, Some(EXCEPTIONS)))).unwrap_err();
    assert_eq!(refused.code(), "policy_already_in_force");
    assert!(batch.is_empty());
}

/// Appends `events` to the log at `dir` through the log itself (so every
/// hash, the chain and the tree are consistent): what a writer with the
/// code but not the rules could do.
fn forge(dir: &std::path::Path, events: Vec<Event>, time: Timestamp) {
    let mut log = Log::open(dir, LogOptions::default()).unwrap();
    let bodies: Vec<Vec<u8>> = events
        .into_iter()
        .map(|event| {
            encode_body(&Envelope {
                tenant: acme(),
                producer: "forger".into(),
                correlation: RequestId::new("r-forged").unwrap(),
                causation: Causation::Input("m-9".into()),
                event,
            })
        })
        .collect();
    let kinds: Vec<u16> = bodies.iter().map(|body| decode_body(CODEC_VERSION, body).unwrap().event.kind().code()).collect();
    let records: Vec<NewRecord<'_>> = bodies
        .iter()
        .zip(kinds)
        .map(|(body, kind)| NewRecord { time_ms: time.0, kind, body, index: IndexKeys::default() })
        .collect();
    log.append_batch_versioned(CODEC_VERSION, &records).unwrap();
}

#[test]
fn recheck_reproduces_every_decision_and_names_one_that_was_altered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, _) = ledger_with_policy(dir.path());
    let mut batch = ledger.begin(START).unwrap();
    let denied = batch
        .stage(input(Command::Submit(request("r-forged", "hugo", "db-prod-write", "db/prod/orders", &["write"], json!({})))))
        .unwrap();
    batch.stage(input(Command::Submit(request("r-ok", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({})))))
        .unwrap();
    // Not committed: the forger writes r-forged's records instead. The batch
    // poisons the ledger when dropped; the log never held its events.
    drop(batch);
    drop(ledger);
    {
        let log = Log::open_read_only(dir.path()).unwrap();
        let report = recheck(&log, |_| {}).unwrap();
        assert!(report.differences.is_empty() && report.broken.is_none(), "{report:?}");
    }
    let mut ledger = Ledger::open(dir.path(), acme(), LogOptions::default()).unwrap();
    let mut batch = ledger.begin(START).unwrap();
    batch.stage(input(Command::Submit(request("r-ok", "alice", "db-prod-read", "db/prod/orders", &["read"], json!({})))))
        .unwrap();
    batch.commit().unwrap();
    drop(ledger);
    let head = Log::open_read_only(dir.path()).unwrap().head().sequence;

    // The denied request, recorded as awaiting approval: well formed, so the
    // core's replay accepts it; only re-evaluating it shows the lie.
    let mut events = denied.events.clone();
    let Event::DecisionRecorded(decision) = &mut events[1] else { panic!("{events:?}") };
    decision.outcome = DecisionOutcome::NeedsApproval { approvers_required: 2, group: "dba".into() };
    decision.reasons = vec!["approval_required".into()];
    decision.ttl_granted_ms = 1_800_000;
    let DecisionBasis::Policy(basis) = &mut decision.basis else { panic!() };
    basis.no_permit_matched = false;
    basis.determining_policies = vec!["db-write-with-change-record".into()];
    forge(dir.path(), events, START);

    let log = Log::open_read_only(dir.path()).unwrap();
    assert!(grantledger_ledger::fold(&log, None, u64::MAX, |_| {}).is_ok(), "the forged decision is well formed");
    let report = recheck(&log, |_| {}).unwrap();
    assert!(report.broken.is_none(), "{report:?}");
    let sequences: Vec<u64> = report.differences.iter().map(|d| d.sequence).collect();
    assert_eq!(sequences, vec![head + 2], "{report:?}");
    let difference = &report.differences[0];
    assert_eq!(difference.request_id.as_str(), "r-forged");
    assert!(difference.recorded.contains("needs_approval"), "{}", difference.recorded);
    assert!(difference.rechecked.contains("no_permit_matched"), "{}", difference.rechecked);
    assert_eq!(report.by_policy, 2);
}

// ---------------------------------------------------------------- identity at intake

const NOW_S: i64 = 1_795_435_200;

fn identity_testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../grantledger-policy/testdata/identity").join(name)
}

fn svid(claims: Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let pem = std::fs::read(identity_testdata("ec-signer.pem")).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("spire-ec-1".into());
    encode(&header, &claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

fn deploy_request(id: &str, token: Option<String>, context: Value) -> Command {
    Command::Submit(SubmitRequest {
        request_id: RequestId::new(id).unwrap(),
        tenant: acme(),
        principal: Principal {
            id: PrincipalId::new("deployer").unwrap(),
            kind: PrincipalKind::Workload,
            owner: Some(PrincipalId::new("team-payments").unwrap()),
        },
        entitlement: EntitlementId::new("ci-deploy-staging").unwrap(),
        resource: ResourceId::new("deploy/staging/payments-api").unwrap(),
        actions: vec!["deploy".into()],
        justification: "release 1.2".into(),
        ticket: None,
        ttl_ms: None,
        starts_at_ms: None,
        groups: vec![],
        context: serde_json::from_value(context).unwrap(),
        identity_token: token,
    })
}

#[test]
fn identity_tokens_are_verified_at_intake_and_only_their_claims_reach_the_policies_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, _) = ledger_with_policy(dir.path());
    let now = Timestamp(NOW_S * 1000);
    let claims = json!({
        "iss": "https://spire.acme.internal",
        "sub": "spiffe://acme.internal/ci/deployer",
        "aud": ["grantledger"],
        "exp": NOW_S + 300,
        "iat": NOW_S - 10,
    });
    let token = svid(claims.clone());

    // No issuers configured: a token cannot be verified, so it is refused,
    // and the refusal recorded.
    let mut batch = ledger.begin(now).unwrap();
    let staged = batch.stage(input(deploy_request("d-0", Some(token.clone()), json!({})))).unwrap();
    let refused = staged.refused.expect("refused");
    assert_eq!(refused.code(), "identity_rejected");
    assert!(refused.to_string().contains("no_issuers_configured"), "{refused}");
    assert!(matches!(&staged.events[..], [Event::IdentityRefused(e)] if e.reason == "no_issuers_configured"));
    batch.commit().unwrap();

    ledger.set_identity(Some(std::sync::Arc::new(
        grantledger_policy::identity::Issuers::load(&identity_testdata("issuers.toml")).unwrap(),
    )));
    let mut batch = ledger.begin(now).unwrap();
    // A verified SVID from the trust domain: the `ci-deploys` permit allows it.
    let staged = batch.stage(input(deploy_request("d-1", Some(token.clone()), json!({})))).unwrap();
    let decision = decision_of(&staged.events);
    assert_eq!(decision.outcome, DecisionOutcome::Allow, "{decision:?}");
    let basis = policy_basis(decision);
    assert_eq!(basis.determining_policies, vec!["ci-deploys"]);
    let evaluated: BTreeMap<&str, &str> =
        basis.evaluated.iter().map(|v| (v.name.as_str(), v.value_json.as_str())).collect();
    assert_eq!(evaluated.get("context.workload_identity.trust_domain"), Some(&"\"acme.internal\""));
    assert_eq!(evaluated.get("context.workload_identity.subject"), Some(&"\"spiffe://acme.internal/ci/deployer\""));

    // The refusal did not use up `d-0`: with a token that verifies now, it
    // is decided.
    let staged = batch.stage(input(deploy_request("d-0", Some(token.clone()), json!({})))).unwrap();
    assert_eq!((staged.refused.as_ref(), decision_of(&staged.events).outcome.clone()), (None, DecisionOutcome::Allow));

    // Each bad token is refused with its own reason, and the refusal (never
    // the token) is recorded.
    let mut expired = claims.clone();
    expired["exp"] = json!(NOW_S - 3600);
    let mut early = claims.clone();
    early["nbf"] = json!(NOW_S + 3600);
    let mut audience = claims.clone();
    audience["aud"] = json!(["someone-else"]);
    let mut issuer = claims.clone();
    issuer["iss"] = json!("https://evil.example");
    // Another subject's claims under this token's signature: altered.
    let mut other = claims.clone();
    other["sub"] = json!("spiffe://acme.internal/ci/admin");
    let other = svid(other);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
    let rows = [
        (svid(expired), "expired"),
        (svid(early), "not_yet_valid"),
        (svid(audience), "wrong_audience"),
        (svid(issuer), "unknown_issuer"),
        (forged, "bad_signature"),
        // `{"alg":"none"}`, the same claims, no signature.
        (format!("eyJhbGciOiJub25lIn0.{}.", parts[1]), "alg_none"),
        ("not.a.token".to_string(), "malformed"),
    ];
    let mut tokens = vec![token.clone()];
    for (bad, reason) in rows {
        tokens.push(bad.clone());
        let request_id = format!("d-bad-{reason}");
        let staged = batch.stage(input(deploy_request(&request_id, Some(bad), json!({})))).unwrap();
        let refused = staged.refused.expect("refused");
        assert_eq!(refused.code(), "identity_rejected", "{reason}: {refused}");
        assert!(refused.to_string().contains(&format!("(`{reason}`)")), "{reason}: {refused}");
        let [Event::IdentityRefused(recorded)] = &staged.events[..] else { panic!("{:?}", staged.events) };
        assert_eq!((recorded.request_id.as_str(), recorded.reason.as_str()), (request_id.as_str(), reason));
        assert_eq!(recorded.principal.id.as_str(), "deployer");
        assert_eq!(recorded.entitlement.as_str(), "ci-deploy-staging");
        assert_eq!(recorded.resource.as_str(), "deploy/staging/payments-api");
    }
    // Another bad token under a refused request id: the recorded refusal
    // comes back, and nothing is staged.
    let again = batch.stage(input(deploy_request("d-bad-expired", Some("not.a.token".into()), json!({})))).unwrap_err();
    assert_eq!(again.code(), "identity_rejected");
    assert!(again.to_string().contains("(`expired`)"), "the recorded reason: {again}");
    // A workload identity claimed in the context, without a token, is refused.
    let claimed = json!({"workload_identity": {"issuer": "https://spire.acme.internal",
        "subject": "spiffe://acme.internal/ci/deployer", "audience": ["grantledger"], "trust_domain": "acme.internal"}});
    let staged = batch.stage(input(deploy_request("d-2", None, claimed))).unwrap();
    let refused = staged.refused.expect("refused");
    assert!(refused.to_string().contains("identity_unverified"), "{refused}");
    batch.commit().unwrap();
    assert_eq!(ledger.state().counts().identity_refusals, 9, "d-0, seven bad tokens, d-2");

    // No token is anywhere in the log, not even the good one's signature.
    drop(ledger);
    let log = Log::open_read_only(dir.path()).unwrap();
    let mut refusals = 0;
    for record in log.iter_from(1) {
        let record = record.unwrap();
        for token in &tokens {
            for needle in [token.as_str(), token.rsplit('.').next().unwrap()].into_iter().filter(|n| n.len() > 8) {
                assert!(
                    !record.body.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "record {} holds (part of) the raw token `{token}`",
                    record.header.sequence
                );
            }
        }
        refusals += usize::from(record.header.kind == EventKind::IdentityRefused.code());
    }
    assert_eq!(refusals, 9);
    // And the decisions re-evaluate from the recorded claims; the refusals
    // replay.
    let report = recheck(&log, |_| {}).unwrap();
    assert!(report.differences.is_empty() && report.broken.is_none(), "{report:?}");
    assert_eq!(report.by_policy, 2);
}

#[test]
fn a_refused_identity_is_recorded_once_and_a_redelivery_after_a_restart_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, _) = ledger_with_policy(dir.path());
    let issuers = std::sync::Arc::new(
        grantledger_policy::identity::Issuers::load(&identity_testdata("issuers.toml")).unwrap(),
    );
    ledger.set_identity(Some(issuers.clone()));
    let now = Timestamp(NOW_S * 1000);
    let claims = json!({
        "iss": "https://spire.acme.internal",
        "sub": "spiffe://acme.internal/ci/deployer",
        "aud": ["grantledger"],
        "exp": NOW_S + 300,
    });
    let good = svid(claims.clone());
    let mut other = claims;
    other["sub"] = json!("spiffe://acme.internal/ci/admin");
    let other = svid(other);
    let parts: Vec<&str> = good.split('.').collect();
    // The admin's claims under the deployer's signature.
    let forged = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);

    // Twice in one batch (a redelivery racing the first): recorded once.
    let mut batch = ledger.begin(now).unwrap();
    let first = batch.stage(input(deploy_request("f-1", Some(forged.clone()), json!({})))).unwrap();
    assert_eq!(first.sequence_first, 3, "after the catalog and the policy set");
    assert_eq!(first.refused.as_ref().map(|r| r.code()), Some("identity_rejected"));
    let second = batch.stage(input(deploy_request("f-1", Some(forged.clone()), json!({})))).unwrap_err();
    assert!(second.to_string().contains("(`bad_signature`)"), "{second}");
    batch.commit().unwrap();
    let head = ledger.log().head().sequence;
    assert_eq!(head, 3);
    assert_eq!(ledger.prior_refusal(&RequestId::new("f-1").unwrap()).unwrap(), Some(3));

    // The ledger restarts (its state replayed from the log), and the input
    // is delivered again: the recorded refusal, nothing new.
    drop(ledger);
    let mut ledger = Ledger::open(dir.path(), acme(), LogOptions::default()).unwrap();
    ledger.set_identity(Some(issuers));
    assert_eq!(
        ledger.state().identity_refusal(&RequestId::new("f-1").unwrap()).map(|(reason, _)| reason),
        Some("bad_signature")
    );
    let mut batch = ledger.begin(now).unwrap();
    let again = batch.stage(input(deploy_request("f-1", Some(forged.clone()), json!({})))).unwrap_err();
    assert_eq!(again.code(), "identity_rejected");
    assert!(batch.is_empty());
    batch.commit().unwrap();
    assert_eq!(ledger.log().head().sequence, head, "a redelivery records nothing");

    // What was recorded: who claimed what, why it was refused, no token.
    let record = ledger.log().read(3).unwrap().unwrap();
    let Event::IdentityRefused(refusal) = grantledger_ledger::decode_record(record.header.version, 3, &record.body).unwrap().event
    else {
        panic!("not a refusal")
    };
    assert_eq!(refusal.reason, "bad_signature");
    assert!(refusal.detail.contains("forged or altered"), "{}", refusal.detail);
    assert_eq!(refusal.principal.id.as_str(), "deployer");
    for needle in [forged.as_str(), parts[0], parts[2], other.split('.').nth(1).unwrap()] {
        assert!(
            !record.body.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the record holds the token or a part of it"
        );
    }
}

#[test]
fn a_workload_identity_claimed_without_a_token_is_refused_even_with_no_issuers_configured() {
    let claimed = json!({"workload_identity": {"issuer": "https://spire.acme.internal",
        "subject": "spiffe://acme.internal/ci/deployer", "audience": ["grantledger"], "trust_domain": "acme.internal"}});
    let dir = tempfile::tempdir().unwrap();
    let (mut ledger, _) = ledger_with_policy(dir.path());
    let now = Timestamp(NOW_S * 1000);
    let mut batch = ledger.begin(now).unwrap();
    let staged = batch.stage(input(deploy_request("self-vouched", None, claimed.clone()))).unwrap();
    let refused = staged.refused.expect("no issuers: nobody can vouch for the claim");
    assert!(refused.to_string().contains("identity_unverified"), "{refused}");
    assert!(matches!(staged.events.as_slice(), [Event::IdentityRefused(_)]), "{:?}", staged.events);
    batch.commit().unwrap();

    // Offline simulation may take the claim as given: then it is decided.
    ledger.trust_claimed_identity(true);
    let mut batch = ledger.begin(now).unwrap();
    let staged = batch.stage(input(deploy_request("simulated", None, claimed))).unwrap();
    assert!(staged.refused.is_none());
    decision_of(&staged.events);
    batch.commit().unwrap();
}
