//! The ledger loop on a real RocksDB log: group commit, reopen and replay,
//! time that never goes back, and a batch that was never committed.

use grantledger_core::{Command, DEFAULT_CATALOG};
use grantledger_events::*;
use grantledger_ledger::{Input, Ledger, LedgerError};
use grantledger_log::LogOptions;

const START: Timestamp = Timestamp(1_767_225_600_000);

fn input(command: Command) -> Input {
    Input { command, producer: "test".into(), causation: Causation::Input("m-1".into()) }
}

fn publish_catalog() -> Command {
    Command::PublishCatalog {
        text: DEFAULT_CATALOG.into(),
        published_by: PrincipalId::new("catalog-admin").unwrap(),
    }
}

fn submit(request: &str) -> Command {
    Command::Submit(SubmitRequest {
        request_id: RequestId::new(request).unwrap(),
        tenant: TenantId::new("acme").unwrap(),
        principal: Principal {
            id: PrincipalId::new("triage-agent").unwrap(),
            kind: PrincipalKind::Agent,
            owner: Some(PrincipalId::new("rita").unwrap()),
        },
        entitlement: EntitlementId::new("logs-prod-read").unwrap(),
        resource: ResourceId::new("logs/prod/us-east-1").unwrap(),
        actions: vec!["read".into()],
        justification: "incident triage".into(),
        ticket: None,
        ttl_ms: None,
        starts_at_ms: None,
        groups: Vec::new(),
        context: Default::default(),
        identity_token: None,
    })
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

#[test]
fn committed_batches_survive_reopen_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let (digest, head) = {
        let mut ledger = Ledger::create(dir.path(), acme(), LogOptions::default()).unwrap();
        let mut batch = ledger.begin(START).unwrap();
        batch.stage(input(publish_catalog())).unwrap();
        let staged = batch.stage(input(submit("r-1"))).unwrap();
        assert_eq!(staged.sequence_first, 2, "the catalog took sequence 1");
        assert!(matches!(staged.events.last(), Some(Event::GrantIssued(_))), "{:?}", staged.events);
        let rejected = batch.stage(input(submit("r-1"))).unwrap_err();
        assert_eq!(rejected.code(), "request_id_already_decided");
        let receipt = batch.commit().unwrap();
        assert_eq!(receipt.records, 1 + staged.events.len());
        assert_eq!(receipt.sequence_last, receipt.records as u64);
        (ledger.state().digest(), ledger.log().head())
    };
    let reopened = Ledger::open(dir.path(), acme(), LogOptions::default()).unwrap();
    assert_eq!(reopened.state().digest(), digest);
    assert_eq!(reopened.log().head(), head);
    let grant = GrantId::for_request(&RequestId::new("r-1").unwrap());
    assert!(reopened.state().grant(&grant).is_some());
}

#[test]
fn ledger_time_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::create(dir.path(), acme(), LogOptions::default()).unwrap();
    let mut batch = ledger.begin(START).unwrap();
    batch.stage(input(publish_catalog())).unwrap();
    batch.commit().unwrap();
    let earlier = Timestamp(START.0 - 60_000);
    let batch = ledger.begin(earlier).unwrap();
    assert_eq!(batch.time(), START, "a clock that stepped back moved the ledger back");
}

#[test]
fn a_batch_dropped_with_staged_events_poisons_the_ledger_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::create(dir.path(), acme(), LogOptions::default()).unwrap();
    {
        let mut batch = ledger.begin(START).unwrap();
        batch.stage(input(publish_catalog())).unwrap();
        // Dropped without commit: the state holds a catalog the log does not.
    }
    assert!(matches!(ledger.begin(START), Err(LedgerError::Poisoned)));
    drop(ledger);
    let mut reopened = Ledger::open(dir.path(), acme(), LogOptions::default()).unwrap();
    assert_eq!(reopened.log().head().sequence, 0);
    assert!(reopened.state().catalog().is_none(), "replay rebuilt only what the log holds");
    // A batch that only collected rejections poisons nothing.
    {
        let mut batch = reopened.begin(START).unwrap();
        assert_eq!(batch.stage(input(submit("r-1"))).unwrap_err().code(), "catalog_missing");
    }
    assert!(reopened.begin(START).is_ok());
}

#[test]
fn opening_as_another_tenant_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut ledger = Ledger::create(dir.path(), acme(), LogOptions::default()).unwrap();
        let mut batch = ledger.begin(START).unwrap();
        batch.stage(input(publish_catalog())).unwrap();
        batch.commit().unwrap();
    }
    let error = Ledger::open(dir.path(), TenantId::new("globex").unwrap(), LogOptions::default())
        .err()
        .expect("another tenant's log is refused");
    let message = error.to_string();
    assert!(message.contains("`acme`") && message.contains("`globex`"), "{message}");
}
