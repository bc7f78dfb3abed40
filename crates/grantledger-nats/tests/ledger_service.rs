//! The ledger service against a real nats-server: a request becomes request,
//! decision and issuance on LEDGER_EVENTS plus a receipt; a duplicate gets the
//! original outcome; a poison message is rejected by name and terminated, and
//! the messages behind it are still decided. An offboarding signal is
//! recorded with the revocations it causes; a request whose identity token
//! does not verify is refused, and the refusal recorded once. A policy set or
//! a catalog published on `grants.policy.<tenant>` is committed and decides
//! what follows, or is refused by name and changes nothing; a deployment
//! whose input stream predates policy inputs keeps running.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use grantledger_nats::ledger_service::{
    REPLY_TO_HEADER, RejectionNotice, SIGNAL_SCHEMA_FILE, ServiceConfig, ServiceReceipt, TIMER_SCHEMA_FILE, TimerInput,
    run, signal_schema, timer_schema,
};
use grantledger_nats::ledger_service::TIMER_GRANTS_MAX;
use grantledger_nats::ledger_service::{
    INPUT_BYTES_MAX, POLICY_INPUT_BYTES_MAX, POLICY_INPUT_SCHEMA_FILE, PolicyInput, policy_input_schema,
};
use grantledger_nats::policy_admin::{self, AdminConnection, AdminError};
use grantledger_nats::{
    Clock, GRANT_INPUT_STREAM, LEDGER_EVENTS_STREAM, StreamsConfig, policy_subject, rejections_subject, requests_subject,
    signals_subject, stream_configs, timers_subject,
};
use grantledger_testkit::NatsServer;

use common::{connect, within};

fn request(id: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","tenant":"acme","principal":{{"id":"alice","kind":"human"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"incident"}}"#
    )
}

/// A request by workload `svc-etl`, owned by `owner`.
fn workload_request(id: &str, owner: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","tenant":"acme","principal":{{"id":"svc-etl","kind":"workload","owner":"{owner}"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"nightly export"}}"#
    )
}

async fn next_json<T: serde::de::DeserializeOwned>(sub: &mut async_nats::Subscriber) -> T {
    let message = within("message", sub.next()).await.expect("a message");
    serde_json::from_slice(&message.payload).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_receipt_duplicate_and_poison() {
    let server = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = ServiceConfig::new(data.path().join("ledger"), server.url(), "acme".to_owned());
    config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
    let counters = config.counters.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(run(config, async move {
        let _ = stop_rx.await;
    }));

    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    // Wait for the service to create the streams.
    for _ in 0..100 {
        if js.get_stream(LEDGER_EVENTS_STREAM).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut receipts = client.subscribe("_INBOX.receipts").await.expect("subscribe");
    let mut rejections = client.subscribe(rejections_subject("acme").unwrap()).await.expect("subscribe");
    client.flush().await.expect("flush");

    let publish = |body: String| {
        let js = js.clone();
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(REPLY_TO_HEADER, "_INBOX.receipts");
            let ack = js
                .publish_with_headers(requests_subject("acme").unwrap(), headers, body.into())
                .await
                .expect("publish");
            within("ack", ack).await.expect("acked");
        }
    };

    publish(request("r-1")).await;
    let receipt: ServiceReceipt = next_json(&mut receipts).await;
    assert_eq!(receipt.status, "committed");
    assert_eq!(receipt.request_id.as_deref(), Some("r-1"));
    assert_eq!(receipt.sequences, vec![2, 3, 4], "after the catalog at 1");
    assert_eq!(receipt.outcome, Some(grantledger_events::DecisionOutcome::Allow));

    // LEDGER_EVENTS holds the catalog, request, decision and issuance in order.
    let stream = js.get_stream(LEDGER_EVENTS_STREAM).await.expect("stream");
    let mut kinds = Vec::new();
    for sequence in 1..=4 {
        let message = stream.get_raw_message(sequence).await.expect("message");
        assert_eq!(message.headers.get("Nats-Msg-Id").unwrap().as_str(), format!("acme:{sequence}"));
        kinds.push(message.subject.to_string());
    }
    assert_eq!(
        kinds,
        [
            "ledger.events.acme.catalog_published",
            "ledger.events.acme.request_submitted",
            "ledger.events.acme.decision_recorded",
            "ledger.events.acme.grant_issued"
        ]
    );

    // A duplicate (different Msg-Id path: JetStream sees no Nats-Msg-Id) gets the original outcome.
    publish(request("r-1")).await;
    let receipt: ServiceReceipt = next_json(&mut receipts).await;
    assert_eq!(receipt.status, "duplicate");
    assert_eq!(receipt.outcome, Some(grantledger_events::DecisionOutcome::Allow));
    assert!(receipt.sequences.contains(&3));
    let notice: RejectionNotice = next_json(&mut rejections).await;
    assert_eq!(notice.reason, "request_id_already_decided");

    // Poison: unknown field, wrong type, malformed, then a good one.
    publish(r#"{"bogus":1}"#.to_owned()).await;
    publish(r#"{"request_id":5}"#.to_owned()).await;
    publish("not json".to_owned()).await;
    publish(request("r-2")).await;
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let notice: RejectionNotice = next_json(&mut rejections).await;
        assert!(notice.stream_sequence > 0);
        reasons.push(notice.reason);
    }
    assert_eq!(reasons, ["unknown_field", "wrong_type", "malformed_json"]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let receipt: ServiceReceipt = next_json(&mut receipts).await;
        statuses.push(receipt.status);
    }
    assert_eq!(statuses, ["rejected", "rejected", "rejected", "committed"]);
    assert_eq!(stream.get_info().await.expect("info").state.messages, 7);

    stop_tx.send(()).expect("service running");
    within("service stops", service).await.expect("joined").expect("clean exit");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(counters.received.load(Relaxed), 6);
    assert_eq!(counters.rejected.load(Relaxed), 4);
    // Every input's wait and whole time in the service, and every batch's
    // publication, were counted once.
    let total = |buckets: &grantledger_nats::ledger_service::LatencyBuckets| buckets.counts().iter().sum::<u64>();
    assert_eq!(total(&counters.input_wait), 6);
    assert_eq!(total(&counters.input_latency), 6);
    assert_eq!(total(&counters.publish_latency), counters.batches.load(Relaxed));
    assert_eq!(total(&counters.commit_latency), counters.batches.load(Relaxed));
}

/// Backfill answers are bounded, ordered, and refuse bad requests by name.
#[test]
fn backfill_reads_in_order_within_bounds_and_names_bad_requests() {
    use grantledger_events::{Causation, PrincipalId, TenantId, Timestamp};
    use grantledger_ledger::{Input, Ledger};
    use grantledger_nats::ledger_service::{BACKFILL_RECORDS_MAX, backfill};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger =
        Ledger::create(dir.path(), TenantId::new("acme").expect("tenant"), Default::default()).expect("ledger");
    let mut batch = ledger.begin(Timestamp(1_700_000_000_000)).expect("batch");
    batch
        .stage(Input {
            command: grantledger_core::Command::PublishCatalog {
                text: grantledger_core::DEFAULT_CATALOG.to_owned(),
                published_by: PrincipalId::new("test").expect("id"),
            },
            producer: "test".into(),
            causation: Causation::Input("test".into()),
        })
        .expect("catalog");
    for i in 0..300 {
        let request: grantledger_events::SubmitRequest = serde_json::from_str(&request(&format!("r-{i}"))).expect("request");
        batch
            .stage(Input {
                command: grantledger_core::Command::Submit(request),
                producer: "test".into(),
                causation: Causation::Input(format!("test:{i}")),
            })
            .expect("staged");
    }
    batch.commit().expect("commit");
    let head = ledger.log().head().sequence;
    assert_eq!(head, 1 + 3 * 300);

    let reply = backfill(&ledger, br#"{"from":5,"limit":3}"#);
    assert_eq!(reply.error, None);
    assert_eq!(reply.head, head);
    let sequences: Vec<u64> = reply.records.iter().map(|r| r["sequence"].as_u64().expect("sequence")).collect();
    assert_eq!(sequences, [5, 6, 7]);

    let reply = backfill(&ledger, br#"{"from":1,"limit":100000}"#);
    assert_eq!(reply.records.len(), BACKFILL_RECORDS_MAX as usize, "the limit is capped");
    assert_eq!(reply.records.last().expect("records")["sequence"], BACKFILL_RECORDS_MAX as u64);

    let reply = backfill(&ledger, format!(r#"{{"from":{},"limit":10}}"#, head + 1).as_bytes());
    assert_eq!((reply.error, reply.records.len()), (None, 0), "nothing beyond the head, and no error");

    let reply = backfill(&ledger, br#"{"from":0,"limit":10}"#);
    assert!(reply.error.expect("refused").contains("`from` must be 1 or more"));
    let reply = backfill(&ledger, br#"{"from":1,"limit":10,"extra":true}"#);
    assert!(reply.error.expect("refused").contains("unknown field `extra`"));
    let reply = backfill(&ledger, b"not json");
    assert!(reply.error.expect("refused").starts_with("malformed backfill request"));
}

/// A running ledger service on a fresh nats-server, and what a producer
/// needs to talk to it: receipts and rejection notices subscribed.
struct Running {
    _server: NatsServer,
    url: String,
    _data: tempfile::TempDir,
    js: jetstream::Context,
    receipts: async_nats::Subscriber,
    rejections: async_nats::Subscriber,
    stop: tokio::sync::oneshot::Sender<()>,
    service: tokio::task::JoinHandle<Result<(), grantledger_nats::ledger_service::ServiceError>>,
}

async fn start_service() -> Running {
    start_service_with(|_| {}).await
}

async fn start_service_with(configure: impl FnOnce(&mut ServiceConfig)) -> Running {
    let server = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = ServiceConfig::new(data.path().join("ledger"), server.url(), "acme".to_owned());
    config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
    configure(&mut config);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(run(config, async move {
        let _ = stop_rx.await;
    }));
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    for _ in 0..100 {
        if js.get_stream(LEDGER_EVENTS_STREAM).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let receipts = client.subscribe("_INBOX.receipts").await.expect("subscribe");
    let rejections = client.subscribe(rejections_subject("acme").unwrap()).await.expect("subscribe");
    client.flush().await.expect("flush");
    Running { url: server.url(), _server: server, _data: data, js, receipts, rejections, stop, service }
}

impl Running {
    /// Publishes `body` on `subject` asking for a receipt, and returns it.
    async fn send(&mut self, subject: String, body: String) -> ServiceReceipt {
        let mut headers = HeaderMap::new();
        headers.insert(REPLY_TO_HEADER, "_INBOX.receipts");
        let ack = self.js.publish_with_headers(subject, headers, body.into()).await.expect("publish");
        within("ack", ack).await.expect("acked");
        next_json(&mut self.receipts).await
    }

    /// The subject and `Committed` body of LEDGER_EVENTS message `sequence`.
    async fn event(&self, sequence: u64) -> (String, serde_json::Value) {
        let stream = self.js.get_stream(LEDGER_EVENTS_STREAM).await.expect("stream");
        let message = stream.get_raw_message(sequence).await.expect("message");
        (message.subject.to_string(), serde_json::from_slice(&message.payload).expect("json"))
    }

    async fn events_held(&self) -> u64 {
        let stream = self.js.get_stream(LEDGER_EVENTS_STREAM).await.expect("stream");
        stream.get_info().await.expect("info").state.messages
    }

    async fn stop(self) {
        self.stop.send(()).expect("service running");
        within("service stops", self.service).await.expect("joined").expect("clean exit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarding_signal_revokes_the_principals_grants_and_denies_its_later_requests() {
    let mut running = start_service().await;
    let granted = running.send(requests_subject("acme").unwrap(), request("r-1")).await;
    assert_eq!((granted.status.as_str(), granted.sequences.as_slice()), ("committed", &[2, 3, 4][..]));
    assert_eq!(granted.starts_at_ms, None, "granted at once");
    // A workload she owns holds a grant too.
    let owned = running.send(requests_subject("acme").unwrap(), workload_request("w-1", "alice")).await;
    assert_eq!((owned.status.as_str(), owned.sequences.as_slice()), ("committed", &[5, 6, 7][..]));

    let signal = r#"{"type":"offboarded","principal":"alice","by":"hr-system","detail":"termination HR-2231"}"#;
    let receipt = running.send(signals_subject("acme").unwrap(), signal.to_owned()).await;
    assert_eq!(receipt.status, "committed", "{receipt:?}");
    assert_eq!(receipt.sequences, [8, 9, 10], "the offboarding, then the revocations of hers and her workload's");
    let (subject, offboarded) = running.event(8).await;
    assert_eq!(subject, "ledger.events.acme.principal_offboarded");
    assert_eq!(offboarded["envelope"]["correlation"], "offboard:alice");
    assert_eq!(
        offboarded["envelope"]["event"]["principal_offboarded"],
        serde_json::json!({"principal": "alice", "by": "hr-system", "detail": "termination HR-2231"})
    );
    for (sequence, grant) in [(9, "grant:r-1"), (10, "grant:w-1")] {
        let (subject, revoked) = running.event(sequence).await;
        assert_eq!(subject, "ledger.events.acme.grant_revoked");
        let revoked = &revoked["envelope"]["event"]["grant_revoked"];
        assert_eq!(revoked["grant_id"], grant);
        assert_eq!(revoked["reason"], "owner_gone");
        assert_eq!(revoked["revoked_by"], "hr-system");
    }

    // Offboarded once: a second signal is refused by name, and terminated.
    let again = running.send(signals_subject("acme").unwrap(), signal.to_owned()).await;
    assert_eq!((again.status.as_str(), again.reason.as_deref()), ("rejected", Some("principal_already_offboarded")));
    assert!(again.detail.as_deref().unwrap_or_default().contains("`alice`"), "{again:?}");
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.reason, "principal_already_offboarded");

    // Her next request is recorded and denied.
    let denied = running.send(requests_subject("acme").unwrap(), request("r-2")).await;
    assert_eq!(denied.status, "committed");
    assert_eq!(denied.outcome, Some(grantledger_events::DecisionOutcome::Deny));
    let (_, decision) = running.event(denied.sequences[1]).await;
    assert_eq!(decision["envelope"]["event"]["decision_recorded"]["reasons"], serde_json::json!(["principal_offboarded"]));
    // So is her workload's: nobody answers for it any more.
    let denied = running.send(requests_subject("acme").unwrap(), workload_request("w-2", "alice")).await;
    assert_eq!(denied.status, "committed");
    assert_eq!(denied.outcome, Some(grantledger_events::DecisionOutcome::Deny));
    let (_, decision) = running.event(denied.sequences[1]).await;
    assert_eq!(decision["envelope"]["event"]["decision_recorded"]["reasons"], serde_json::json!(["owner_offboarded"]));
    // The same workload under a present owner is decided as usual.
    let allowed = running.send(requests_subject("acme").unwrap(), workload_request("w-3", "bob")).await;
    assert_eq!(allowed.outcome, Some(grantledger_events::DecisionOutcome::Allow));

    // A signal of another type with a field it lacks is refused by name.
    let wrong = r#"{"type":"offboarded","principal":"bob","by":"hr-system","grant_id":"grant:r-1"}"#;
    let refused = running.send(signals_subject("acme").unwrap(), wrong.to_owned()).await;
    assert_eq!(refused.reason.as_deref(), Some("unknown_field"), "{refused:?}");
    assert_eq!(running.events_held().await, 17);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_identity_token_is_recorded_once_and_answered_with_its_refusal() {
    let mut running = start_service().await;
    // This ledger has no token issuers: a token cannot be verified.
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9hY21lLmludGVybmFsL2NpIn0.c2lnbmF0dXJlLW9mLWEtZm9yZ2Vy";
    let body = format!(
        r#"{{"request_id":"w-1","tenant":"acme","principal":{{"id":"deployer","kind":"workload","owner":"team-payments"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"release","identity_token":"{token}"}}"#
    );
    let receipt = running.send(requests_subject("acme").unwrap(), body.clone()).await;
    assert_eq!((receipt.status.as_str(), receipt.reason.as_deref()), ("rejected", Some("identity_rejected")), "{receipt:?}");
    assert_eq!(receipt.request_id.as_deref(), Some("w-1"));
    assert_eq!(receipt.sequences, [2], "the refusal is recorded, after the catalog");
    assert!(receipt.detail.as_deref().unwrap_or_default().contains("no_issuers_configured"), "{receipt:?}");
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.reason, "identity_rejected");
    let (subject, refused) = running.event(2).await;
    assert_eq!(subject, "ledger.events.acme.identity_refused");
    let refusal = &refused["envelope"]["event"]["identity_refused"];
    assert_eq!(refusal["request_id"], "w-1");
    assert_eq!(refusal["reason"], "no_issuers_configured");
    assert_eq!(refusal["principal"]["id"], "deployer");
    assert!(!refused.to_string().contains(token), "the token is never recorded: {refused}");

    // Delivered again: the recorded refusal comes back, nothing new is recorded.
    let again = running.send(requests_subject("acme").unwrap(), body).await;
    assert_eq!((again.status.as_str(), again.reason.as_deref()), ("rejected", Some("identity_rejected")));
    assert_eq!(again.sequences, [2], "the original refusal");
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.reason, "identity_rejected");
    assert_eq!(running.events_held().await, 2);
    running.stop().await;
}

/// A scheduled request's receipts carry its start while no grant exists
/// (its submission's, the completing approval's, a duplicate's), and a
/// risk signal about its principal closes it in the signal's input, so its
/// start timer is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_receipt_names_its_start_and_a_risk_signal_closes_it_before_then() {
    let now = 1_900_000_000_000_i64;
    let starts_at = now + 3_600_000;
    let (clock, _time) = Clock::manual(grantledger_events::Timestamp(now));
    let mut running = start_service_with(|config| config.clock = clock).await;
    let requests = requests_subject("acme").unwrap();

    // Granted at once: no start on the receipt, not even as null.
    let granted = running.send(requests.clone(), request("r-1")).await;
    assert_eq!((granted.sequences.as_slice(), granted.starts_at_ms), (&[2, 3, 4][..], None));
    assert!(serde_json::to_value(&granted).unwrap().get("starts_at_ms").is_none());

    // Allowed, to start in an hour: decided, not issued, and the receipt
    // says when.
    let scheduled_body = format!(
        r#"{{"request_id":"s-1","tenant":"acme","principal":{{"id":"alice","kind":"human"}},"entitlement":"db-prod-read","resource":"db/prod/users","actions":["read"],"justification":"maintenance window","starts_at_ms":{starts_at}}}"#
    );
    let scheduled = running.send(requests.clone(), scheduled_body.clone()).await;
    assert_eq!(scheduled.status, "committed");
    assert_eq!(scheduled.outcome, Some(grantledger_events::DecisionOutcome::Allow));
    assert_eq!(scheduled.sequences, [5, 6], "the request and its decision, no grant");
    assert_eq!(scheduled.starts_at_ms, Some(starts_at));
    assert_eq!(serde_json::to_value(&scheduled).unwrap()["starts_at_ms"], starts_at);
    // A duplicate while it waits says so too.
    let duplicate = running.send(requests.clone(), scheduled_body.clone()).await;
    assert_eq!((duplicate.status.as_str(), duplicate.starts_at_ms), ("duplicate", Some(starts_at)));
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.original.and_then(|original| original.starts_at_ms), Some(starts_at));

    // Approved by two DBAs before its start: the first approval's receipt
    // has no start (still waiting for approvers), the completing one's has.
    let write = format!(
        r#"{{"request_id":"s-2","tenant":"acme","principal":{{"id":"bob","kind":"human"}},"entitlement":"db-prod-write","resource":"db/prod/orders","actions":["write"],"justification":"migration","ticket":"CHG-7","starts_at_ms":{starts_at}}}"#
    );
    let pending = running.send(requests.clone(), write).await;
    assert!(matches!(pending.outcome, Some(grantledger_events::DecisionOutcome::NeedsApproval { .. })), "{pending:?}");
    assert_eq!(pending.starts_at_ms, None, "waiting for approvers, not scheduled yet");
    let approve = |who: &str| {
        format!(r#"{{"request_id":"s-2","approver":"{who}","decision":"approve","comment":"ok"}}"#)
    };
    let approvals = grantledger_nats::approvals_subject("acme").unwrap();
    let first = running.send(approvals.clone(), approve("dana")).await;
    assert_eq!((first.status.as_str(), first.starts_at_ms), ("committed", None), "{first:?}");
    let second = running.send(approvals, approve("dmitri")).await;
    assert_eq!((second.status.as_str(), second.starts_at_ms), ("committed", Some(starts_at)), "{second:?}");
    assert_eq!(second.sequences, [10], "the approval, no grant yet");

    // A risk signal about alice: her live grant revoked and her scheduled
    // request closed, in one input; bob's is not touched.
    let signal = r#"{"type":"risk","principal":"alice","by":"risk-engine","detail":"impossible travel"}"#;
    let receipt = running.send(signals_subject("acme").unwrap(), signal.to_owned()).await;
    assert_eq!((receipt.status.as_str(), receipt.sequences.as_slice()), ("committed", &[11, 12][..]), "{receipt:?}");
    let (subject, revoked) = running.event(11).await;
    assert_eq!(subject, "ledger.events.acme.grant_revoked");
    assert_eq!(revoked["envelope"]["event"]["grant_revoked"]["grant_id"], "grant:r-1");
    assert_eq!(revoked["envelope"]["event"]["grant_revoked"]["reason"], "risk_signal");
    let (subject, closed) = running.event(12).await;
    assert_eq!(subject, "ledger.events.acme.request_expired");
    assert_eq!(
        closed["envelope"]["event"]["request_expired"],
        serde_json::json!({"request_id": "s-1", "reason": "risk_signal", "expired_at": now})
    );
    // Closed: a duplicate no longer names a start, and its start timer is
    // refused by name, recording nothing.
    let duplicate = running.send(requests, scheduled_body).await;
    assert_eq!((duplicate.status.as_str(), duplicate.starts_at_ms), ("duplicate", None));
    let _: RejectionNotice = next_json(&mut running.rejections).await;
    let timer = running
        .send(timers_subject("acme").unwrap(), r#"{"request_id":"s-1","kind":"start"}"#.to_owned())
        .await;
    assert_eq!((timer.status.as_str(), timer.reason.as_deref()), ("rejected", Some("request_not_scheduled")), "{timer:?}");
    assert!(timer.detail.as_deref().unwrap_or_default().contains("`expired`"), "{timer:?}");
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.reason, "request_not_scheduled");
    // Nothing else of hers: a second signal is refused, naming her.
    let again = running.send(signals_subject("acme").unwrap(), signal.to_owned()).await;
    assert_eq!(again.reason.as_deref(), Some("principal_has_no_live_grant"), "{again:?}");
    assert!(again.detail.as_deref().unwrap_or_default().contains("`alice`"), "{again:?}");
    assert_eq!(running.events_held().await, 12);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_signal_from_the_requester_closes_a_scheduled_request_and_nobody_else_may_send_one() {
    let now = 1_900_000_000_000_i64;
    let starts_at = now + 3_600_000;
    let (clock, _time) = Clock::manual(grantledger_events::Timestamp(now));
    let mut running = start_service_with(|config| config.clock = clock).await;
    let scheduled_body = format!(
        r#"{{"request_id":"s-1","tenant":"acme","principal":{{"id":"alice","kind":"human"}},"entitlement":"db-prod-read","resource":"db/prod/users","actions":["read"],"justification":"maintenance window","starts_at_ms":{starts_at}}}"#
    );
    let scheduled = running.send(requests_subject("acme").unwrap(), scheduled_body).await;
    assert_eq!((scheduled.sequences.as_slice(), scheduled.starts_at_ms), (&[2, 3][..], Some(starts_at)));
    let signals = signals_subject("acme").unwrap();
    let withdraw = |by: &str| format!(r#"{{"type":"withdraw","request_id":"s-1","by":"{by}","reason":"maintenance postponed"}}"#);

    // Bob may not: refused by name, nothing recorded.
    let refused = running.send(signals.clone(), withdraw("bob")).await;
    assert_eq!((refused.status.as_str(), refused.reason.as_deref()), ("rejected", Some("withdrawal_not_by_requester")));
    assert_eq!(refused.request_id.as_deref(), Some("s-1"));
    let detail = refused.detail.clone().unwrap_or_default();
    assert!(detail.contains("`bob`") && detail.contains("`alice`"), "{detail}");
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.reason, "withdrawal_not_by_requester");
    // A withdrawal without a reason is not a withdrawal: refused as a wrong shape.
    let bare = running.send(signals.clone(), r#"{"type":"withdraw","request_id":"s-1","by":"alice"}"#.to_owned()).await;
    assert_eq!(bare.reason.as_deref(), Some("wrong_type"), "{bare:?}");
    assert!(bare.detail.as_deref().unwrap_or_default().contains("reason"), "{bare:?}");
    let _: RejectionNotice = next_json(&mut running.rejections).await;

    // Alice withdraws it: one event, named in her receipt.
    let receipt = running.send(signals.clone(), withdraw("alice")).await;
    assert_eq!((receipt.status.as_str(), receipt.sequences.as_slice()), ("committed", &[4][..]), "{receipt:?}");
    assert_eq!((receipt.request_id.as_deref(), receipt.starts_at_ms), (Some("s-1"), None));
    let (subject, withdrawn) = running.event(4).await;
    assert_eq!(subject, "ledger.events.acme.request_withdrawn");
    assert_eq!(
        withdrawn["envelope"]["event"]["request_withdrawn"],
        serde_json::json!({"request_id": "s-1", "withdrawn_by": "alice", "reason": "maintenance postponed"})
    );
    // Its start timer is refused, naming where it is, and a second
    // withdrawal too.
    let timer = running
        .send(timers_subject("acme").unwrap(), r#"{"request_id":"s-1","kind":"start"}"#.to_owned())
        .await;
    assert_eq!(timer.reason.as_deref(), Some("request_not_scheduled"), "{timer:?}");
    assert!(timer.detail.as_deref().unwrap_or_default().contains("`withdrawn`"), "{timer:?}");
    let _: RejectionNotice = next_json(&mut running.rejections).await;
    let again = running.send(signals, withdraw("alice")).await;
    assert_eq!(again.reason.as_deref(), Some("request_not_open"), "{again:?}");
    let _: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(running.events_held().await, 4);
    running.stop().await;
}

/// Fails unless `schemas/<file>` holds `schema` (rewrites it with
/// `UPDATE_SCHEMAS=1`); returns the schema as JSON.
fn stored_schema_is_current(file: &str, schema: schemars::Schema) -> serde_json::Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas").join(file);
    let generated = serde_json::to_value(&schema).unwrap();
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    // Compared as JSON values: key order depends on serde_json features.
    if serde_json::from_str::<serde_json::Value>(&stored).ok().as_ref() != Some(&generated) {
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, grantledger_events::schema::render(&schema)).unwrap();
        } else {
            panic!("`{}` is out of date: run with UPDATE_SCHEMAS=1 and review the diff", path.display());
        }
    }
    generated
}

#[test]
fn signal_schema_is_current() {
    let generated = stored_schema_is_current(SIGNAL_SCHEMA_FILE, signal_schema());
    // Every signal type is in it, and none takes unknown fields.
    let text = generated.to_string();
    for kind in ["task_complete", "risk", "offboarded", "withdraw"] {
        assert!(text.contains(&format!("\"{kind}\"")), "no `{kind}` in {text}");
    }
    assert!(!text.contains("\"additionalProperties\":true"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_timer_message_expires_several_grants_and_a_bad_one_is_refused_by_name() {
    let (clock, time) = Clock::manual(grantledger_events::Timestamp(1_900_000_000_000));
    let mut running = start_service_with(|config| config.clock = clock).await;
    for id in ["r-1", "r-2", "r-3"] {
        let receipt = running.send(requests_subject("acme").unwrap(), request(id)).await;
        assert_eq!(receipt.outcome, Some(grantledger_events::DecisionOutcome::Allow), "{receipt:?}");
    }
    let timers = timers_subject("acme").unwrap();

    // Before the grants' expires_at, the ledger refuses their expiry.
    let early = running.send(timers.clone(), r#"{"grant_ids":["grant:r-1","grant:r-2"]}"#.to_owned()).await;
    assert_eq!(early.status, "rejected", "{early:?}");
    assert_eq!(running.events_held().await, 10, "the catalog and 3 x (request, decision, issuance)");

    // A day later: one message, two expiries recorded (and an unknown grant
    // named with them is refused alone, without holding them back).
    time.advance_ms(24 * 3600 * 1000);
    let expired = running
        .send(timers.clone(), r#"{"grant_ids":["grant:r-1","grant:nope","grant:r-2"]}"#.to_owned())
        .await;
    assert_eq!((expired.status.as_str(), expired.sequences.as_slice()), ("committed", &[11, 12][..]), "{expired:?}");
    for (sequence, grant) in [(11, "grant:r-1"), (12, "grant:r-2")] {
        let (subject, event) = running.event(sequence).await;
        assert_eq!(subject, "ledger.events.acme.grant_revoked");
        assert_eq!(event["envelope"]["event"]["grant_revoked"]["grant_id"], grant);
        assert_eq!(event["envelope"]["event"]["grant_revoked"]["reason"], "expired");
    }
    // The single-grant form still works.
    let single = running.send(timers.clone(), r#"{"grant_id":"grant:r-3"}"#.to_owned()).await;
    assert_eq!(single.sequences, [13], "{single:?}");

    // Every grant named already expired: refused as a whole, by name.
    let again = running.send(timers.clone(), r#"{"grant_ids":["grant:r-1","grant:r-2"]}"#.to_owned()).await;
    assert_eq!(again.status, "rejected", "{again:?}");
    assert!(again.detail.as_deref().unwrap_or_default().contains("grant:r-1"), "{again:?}");

    // No grant, or more than a batch allows: malformed, named.
    for (body, says) in [
        (r#"{"grant_ids":[]}"#.to_owned(), "must name its `grant_id` or `grant_ids`".to_owned()),
        (
            serde_json::json!({ "grant_ids": (0..=TIMER_GRANTS_MAX).map(|i| format!("grant:x{i}")).collect::<Vec<_>>() })
                .to_string(),
            format!("at most {TIMER_GRANTS_MAX} grants; this one names {}", TIMER_GRANTS_MAX + 1),
        ),
    ] {
        let refused = running.send(timers.clone(), body).await;
        assert_eq!(refused.status, "rejected", "{refused:?}");
        assert!(refused.detail.as_deref().unwrap_or_default().contains(&says), "{refused:?}");
    }
    assert_eq!(running.events_held().await, 13);
    running.stop().await;
}

#[test]
fn timer_schema_is_current_and_timers_parse_old_and_new_bodies() {
    let generated = stored_schema_is_current(TIMER_SCHEMA_FILE, timer_schema());
    let text = generated.to_string();
    for kind in ["expiry", "start", "request_expiry"] {
        assert!(text.contains(&format!("\"{kind}\"")), "no `{kind}` in {text}");
    }

    use grantledger_core::Command;
    let command = |body: &str| serde_json::from_str::<TimerInput>(body).map_err(|e| e.to_string())?.commands().map_err(|(reason, detail)| format!("{reason}: {detail}"));
    let rid = |id: &str| grantledger_events::RequestId::new(id).unwrap();
    // The body every ledger has read: an expiry.
    let gid = |id: &str| grantledger_events::GrantId::new(id).unwrap();
    assert_eq!(command(r#"{"grant_id":"grant:r1"}"#).unwrap(), [Command::Expire { grant_id: gid("grant:r1") }]);
    // Several expiries in one message.
    assert_eq!(
        command(r#"{"grant_ids":["grant:r1","grant:r2"]}"#).unwrap(),
        [Command::Expire { grant_id: gid("grant:r1") }, Command::Expire { grant_id: gid("grant:r2") }]
    );
    assert_eq!(
        command(r#"{"grant_id":"grant:r1","kind":"expiry"}"#).unwrap(),
        command(r#"{"grant_id":"grant:r1"}"#).unwrap()
    );
    assert_eq!(command(r#"{"request_id":"r1","kind":"start"}"#).unwrap(), [Command::Start { request_id: rid("r1") }]);
    assert_eq!(
        command(r#"{"request_id":"r1","kind":"request_expiry"}"#).unwrap(),
        [Command::ExpireRequest { request_id: rid("r1") }]
    );
    // The wrong id for the kind, or none, is refused by name.
    for (body, named) in [
        (r#"{"request_id":"r1"}"#, "request_id"),
        (r#"{"kind":"start"}"#, "request_id"),
        (r#"{"grant_id":"grant:r1","kind":"start"}"#, "grant:r1"),
        (r#"{"grant_ids":["grant:r2"],"kind":"request_expiry"}"#, "grant:r2"),
        (r#"{"kind":"expiry"}"#, "grant_id"),
        (r#"{"request_id":"r1","kind":"begin"}"#, "begin"),
        (r#"{"request_id":"r1","kind":"start","color":"red"}"#, "color"),
    ] {
        let error = command(body).unwrap_err();
        assert!(error.contains(named), "{body}: {error}");
    }
}

/// A policy set for the built-in catalog: only workloads may read the
/// production database. Humans, whom the catalog alone allows, are then
/// denied (`no_permit_matched`).
const WORKLOADS_ONLY: &str = "@id(\"workloads-read-db\")\npermit (principal is Workload, action == Action::\"request\", resource in Entitlement::\"db-prod-read\");\n";

/// The JSON body of a policy input.
fn policy_body(policy_text: &str) -> String {
    serde_json::json!({"type": "policy", "policy_text": policy_text, "published_by": "policy-admin"}).to_string()
}

/// The decision recorded for a request, from LEDGER_EVENTS.
async fn decision(running: &Running, receipt: &ServiceReceipt) -> serde_json::Value {
    let (subject, event) = running.event(receipt.sequences[1]).await;
    assert_eq!(subject, "ledger.events.acme.decision_recorded");
    event["envelope"]["event"]["decision_recorded"].clone()
}

/// (a) A policy set published over NATS gets a committed receipt naming its
/// sequence and hash, its event is on LEDGER_EVENTS, and the next request is
/// decided by it, citing that hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_published_over_nats_is_committed_and_decides_the_next_request() {
    let mut running = start_service().await;
    let requests = requests_subject("acme").unwrap();
    let before = running.send(requests.clone(), request("r-1")).await;
    assert_eq!(before.outcome, Some(grantledger_events::DecisionOutcome::Allow));
    assert_eq!(decision(&running, &before).await["basis"], "catalog", "no policy set in force yet");

    let published = running.send(policy_subject("acme").unwrap(), policy_body(WORKLOADS_ONLY)).await;
    let hash = grantledger_events::policy_hash(WORKLOADS_ONLY, None);
    assert_eq!(published.status, "committed", "{published:?}");
    assert_eq!(published.sequences, [5], "after the catalog and r-1's three events");
    assert_eq!(published.policy_hash.as_deref(), Some(hash.as_str()));
    assert_eq!((published.request_id.as_deref(), published.catalog_hash.as_deref()), (None, None));
    let (subject, event) = running.event(5).await;
    assert_eq!(subject, "ledger.events.acme.policy_published");
    let event_body = &event["envelope"]["event"]["policy_published"];
    assert_eq!(event_body["policy_hash"], hash.as_str());
    assert_eq!(event_body["policy_text"], WORKLOADS_ONLY);
    assert_eq!(event_body["published_by"], "policy-admin");
    assert_eq!(event["envelope"]["producer"], "nats:policy");

    // The same human request is now decided by the policy engine: denied,
    // no permit matched, citing the new hash; a workload's is allowed.
    let after = running.send(requests.clone(), request("r-2")).await;
    assert_eq!(after.outcome, Some(grantledger_events::DecisionOutcome::Deny), "{after:?}");
    let basis = &decision(&running, &after).await["basis"]["policy"];
    assert_eq!(basis["policy_hash"], hash.as_str());
    assert_eq!(basis["no_permit_matched"], true);
    let workload = running.send(requests, workload_request("w-1", "bob")).await;
    assert_eq!(workload.outcome, Some(grantledger_events::DecisionOutcome::Allow), "{workload:?}");
    let basis = &decision(&running, &workload).await["basis"]["policy"];
    assert_eq!((basis["policy_hash"].as_str(), &basis["determining_policies"]), (Some(hash.as_str()), &serde_json::json!(["workloads-read-db"])));

    // The same set again: refused by name (already in force), nothing recorded.
    let again = running.send(policy_subject("acme").unwrap(), policy_body(WORKLOADS_ONLY)).await;
    assert_eq!((again.status.as_str(), again.reason.as_deref()), ("rejected", Some("policy_already_in_force")));
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!((notice.reason.as_str(), notice.subject.as_str()), ("policy_already_in_force", "grants.policy.acme"));
    assert_eq!(running.events_held().await, 10, "catalog, r-1 (3), policy, r-2 (2), w-1 (3)");
    running.stop().await;
}

/// (b) A policy set that does not parse or validate, or a malformed policy
/// input, is refused by name with Cedar's (or serde's) message, in the
/// receipt and on `grants.rejections.<tenant>`; nothing is recorded and the
/// policy set in force still decides the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_does_not_validate_is_refused_by_name_and_the_one_in_force_stays() {
    let mut running = start_service().await;
    let policy = policy_subject("acme").unwrap();
    let in_force = running.send(policy.clone(), policy_body(WORKLOADS_ONLY)).await;
    assert_eq!(in_force.status, "committed", "{in_force:?}");
    let hash = in_force.policy_hash.clone().expect("a policy hash");

    let rows = [
        // Validates against nothing: no such context attribute.
        (
            policy_body("@id(\"badge\")\npermit (principal, action == Action::\"request\", resource) when { context.badge_color == \"red\" };"),
            "policy_invalid",
            "badge_color",
        ),
        // Does not parse.
        (policy_body("@id(\"p\")\npermit (principal, action, resource"), "policy_invalid", "unexpected end of input"),
        // Parses, validates, names an entitlement the catalog does not have.
        (
            policy_body("@id(\"ghost\")\npermit (principal, action == Action::\"request\", resource in Entitlement::\"no-such-entry\");"),
            "policy_invalid",
            "no-such-entry",
        ),
        // Exception rules that do not parse refuse the whole set.
        (
            serde_json::json!({"type": "policy", "policy_text": "@id(\"p\")\npermit (principal, action, resource);", "exceptions_text": "[[rule]]\nbroken = ", "published_by": "policy-admin"}).to_string(),
            "policy_invalid",
            "",
        ),
        // Malformed inputs: an unknown field, an unknown type, no publisher.
        (
            serde_json::json!({"type": "policy", "policy_text": WORKLOADS_ONLY, "published_by": "a", "force": true}).to_string(),
            "unknown_field",
            "force",
        ),
        (serde_json::json!({"type": "rules", "text": "x", "published_by": "a"}).to_string(), "unknown_field", "rules"),
        (serde_json::json!({"type": "policy", "policy_text": WORKLOADS_ONLY}).to_string(), "wrong_type", "published_by"),
    ];
    for (body, reason, named) in rows {
        let refused = running.send(policy.clone(), body.clone()).await;
        assert_eq!((refused.status.as_str(), refused.reason.as_deref()), ("rejected", Some(reason)), "{body}: {refused:?}");
        assert!(refused.detail.as_deref().unwrap_or_default().contains(named), "{body}: {refused:?}");
        assert!(refused.sequences.is_empty() && refused.policy_hash.is_none(), "{refused:?}");
        let notice: RejectionNotice = next_json(&mut running.rejections).await;
        assert_eq!((notice.reason.as_str(), notice.subject.as_str()), (reason, "grants.policy.acme"));
    }
    assert_eq!(running.events_held().await, 2, "the catalog and the policy set in force, nothing else");

    // Decided as before: under the set in force.
    let after = running.send(requests_subject("acme").unwrap(), workload_request("w-1", "bob")).await;
    assert_eq!(after.outcome, Some(grantledger_events::DecisionOutcome::Allow), "{after:?}");
    assert_eq!(decision(&running, &after).await["basis"]["policy"]["policy_hash"], hash.as_str());
    running.stop().await;
}

/// (c) Policy inputs have their own bound, larger than other inputs': a
/// policy set of 100 KiB is committed, a body over [`POLICY_INPUT_BYTES_MAX`]
/// is rejected `oversized`, naming both sizes, and the client refuses to
/// send one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_input_has_its_own_bound_and_a_bigger_one_is_rejected_oversized() {
    let mut running = start_service().await;
    let policy = policy_subject("acme").unwrap();
    // Larger than any other input may be: a comment pads it.
    let padding = format!("// {}\n", "x".repeat(100)).repeat(100 * 1024 / 104);
    let large = format!("{padding}{WORKLOADS_ONLY}");
    assert!(policy_body(&large).len() > INPUT_BYTES_MAX);
    let committed = running.send(policy.clone(), policy_body(&large)).await;
    assert_eq!(committed.status, "committed", "{committed:?}");
    assert_eq!(committed.policy_hash, Some(grantledger_events::policy_hash(&large, None)));

    // Over the bound: refused before it is parsed.
    let huge = format!("{}{WORKLOADS_ONLY}", "// padding\n".repeat(POLICY_INPUT_BYTES_MAX / 11 + 1));
    let body = policy_body(&huge);
    assert!(body.len() > POLICY_INPUT_BYTES_MAX && body.len() < 1024 * 1024);
    let refused = running.send(policy.clone(), body.clone()).await;
    assert_eq!((refused.status.as_str(), refused.reason.as_deref()), ("rejected", Some("oversized")), "{refused:?}");
    assert_eq!(refused.detail, Some(format!("{} bytes, at most {POLICY_INPUT_BYTES_MAX}", body.len())));
    let notice: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(notice.reason, "oversized");
    // Other inputs keep their own, smaller bound.
    let request = format!(r#"{{"request_id":"r-big","justification":"{}"}}"#, "x".repeat(INPUT_BYTES_MAX));
    let refused = running.send(requests_subject("acme").unwrap(), request).await;
    assert_eq!(refused.reason.as_deref(), Some("oversized"), "{refused:?}");
    assert!(refused.detail.as_deref().unwrap_or_default().ends_with(&format!("at most {INPUT_BYTES_MAX}")), "{refused:?}");
    let _: RejectionNotice = next_json(&mut running.rejections).await;
    assert_eq!(running.events_held().await, 2);

    // The client does not send what the ledger would refuse.
    let connection = AdminConnection {
        url: running.url.clone(),
        tenant: "acme".into(),
        creds_file: None,
        user_password: None,
        inbox_prefix: None,
        timeout: Duration::from_secs(5),
        receipt_wait: Duration::from_secs(5),
    };
    let input = PolicyInput::Policy {
        policy_text: huge,
        exceptions_text: None,
        published_by: grantledger_events::PrincipalId::new("policy-admin").unwrap(),
    };
    let error = policy_admin::publish(&connection, &input).await.expect_err("too big to send");
    assert!(matches!(error, AdminError::Oversized { max: POLICY_INPUT_BYTES_MAX, .. }), "{error}");
    assert!(error.to_string().contains("`grants.policy.acme`"), "{error}");
    running.stop().await;
}

/// A catalog published over NATS is committed with its hash and decides
/// what follows; one that does not parse, or that the policy set in force
/// does not fit, is refused by name and the catalog in force stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_published_over_nats_is_committed_and_one_that_does_not_parse_or_fit_is_refused() {
    let mut running = start_service().await;
    let policy = policy_subject("acme").unwrap();
    let catalog_body =
        |text: &str| serde_json::json!({"type": "catalog", "text": text, "published_by": "catalog-admin"}).to_string();

    // db-prod-read becomes a two-approver entitlement.
    let stricter = grantledger_core::DEFAULT_CATALOG.replacen(
        "approval = \"auto\"",
        "approval = { approvers = 2, group = \"dba\" }",
        1,
    );
    assert_ne!(stricter, grantledger_core::DEFAULT_CATALOG);
    let published = running.send(policy.clone(), catalog_body(&stricter)).await;
    assert_eq!((published.status.as_str(), published.sequences.as_slice()), ("committed", &[2][..]), "{published:?}");
    let catalog_hash = published.catalog_hash.clone().expect("a catalog hash");
    let (subject, event) = running.event(2).await;
    assert_eq!(subject, "ledger.events.acme.catalog_published");
    assert_eq!(event["envelope"]["event"]["catalog_published"]["catalog_hash"], catalog_hash.as_str());
    let pending = running.send(requests_subject("acme").unwrap(), request("r-1")).await;
    assert!(matches!(pending.outcome, Some(grantledger_events::DecisionOutcome::NeedsApproval { .. })), "{pending:?}");
    assert_eq!(decision(&running, &pending).await["catalog_hash"], catalog_hash.as_str());

    // Does not parse: refused with the catalog's message.
    let refused = running.send(policy.clone(), catalog_body("[[entitlement]]\nid = ")).await;
    assert_eq!((refused.status.as_str(), refused.reason.as_deref()), ("rejected", Some("catalog_invalid")), "{refused:?}");
    assert!(refused.detail.as_deref().unwrap_or_default().starts_with("catalog refused:"), "{refused:?}");
    let _: RejectionNotice = next_json(&mut running.rejections).await;

    // A policy set naming db-prod-read is in force: a catalog without that
    // entry does not fit it, and is refused naming the set.
    let in_force = running.send(policy.clone(), policy_body(WORKLOADS_ONLY)).await;
    assert_eq!(in_force.status, "committed", "{in_force:?}");
    let without = stricter.replacen("id = \"db-prod-read\"", "id = \"db-prod-read-v2\"", 1);
    let refused = running.send(policy.clone(), catalog_body(&without)).await;
    assert_eq!(refused.reason.as_deref(), Some("policy_invalid"), "{refused:?}");
    let detail = refused.detail.clone().unwrap_or_default();
    assert!(detail.contains(in_force.policy_hash.as_deref().unwrap()) && detail.contains("does not fit this catalog"), "{detail}");
    let _: RejectionNotice = next_json(&mut running.rejections).await;

    // Nothing was half-published: the catalog in force still decides.
    let later = running.send(requests_subject("acme").unwrap(), workload_request("w-1", "bob")).await;
    assert_eq!(decision(&running, &later).await["catalog_hash"], catalog_hash.as_str());
    assert_eq!(running.events_held().await, *later.sequences.last().unwrap(), "nothing recorded but what the receipts name");
    running.stop().await;
}

/// A GRANT_INPUT stream and a ledger consumer made before policy inputs (by
/// an earlier version) keep working: the ledger runs, without policy inputs,
/// which no stream stores; once an operator adds `grants.policy.*` to the
/// stream and the ledger restarts, it widens its consumer and takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_made_before_policy_inputs_keeps_running_and_takes_them_once_the_stream_captures_them() {
    let server = NatsServer::start();
    let data = tempfile::tempdir().expect("tempdir");
    let client = connect(&server.url()).await;
    let js = jetstream::new(client.clone());
    let mut earlier = stream_configs(&StreamsConfig::default())[0].clone();
    earlier.subjects.retain(|subject| subject != "grants.policy.*");
    within("old stream", js.create_stream(earlier.clone())).await.expect("the stream of an earlier version");

    let start = || {
        let mut config = ServiceConfig::new(data.path().join("ledger"), server.url(), "acme".to_owned());
        config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let service = tokio::spawn(run(config, async move {
            let _ = stop_rx.await;
        }));
        (stop, service)
    };
    let (stop, service) = start();
    let mut receipts = client.subscribe("_INBOX.receipts").await.expect("subscribe");
    client.flush().await.expect("flush");
    let send = |subject: String, body: String| {
        let js = js.clone();
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(REPLY_TO_HEADER, "_INBOX.receipts");
            js.publish_with_headers(subject, headers, body.into()).await.expect("publish").await
        }
    };
    // The ledger runs: a request is decided (published until the ledger has
    // made the other streams and its consumer).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while js.get_stream(LEDGER_EVENTS_STREAM).await.is_err() {
        assert!(!service.is_finished(), "the ledger stopped: {:?}", service.await);
        assert!(std::time::Instant::now() < deadline, "the ledger made no streams");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    within("request", send(requests_subject("acme").unwrap(), request("r-1"))).await.expect("stored");
    let receipt: ServiceReceipt = next_json(&mut receipts).await;
    assert_eq!(receipt.status, "committed", "{receipt:?}");
    // No stream stores a policy input yet, and the client says why.
    let connection = AdminConnection {
        url: server.url(),
        tenant: "acme".into(),
        creds_file: None,
        user_password: None,
        inbox_prefix: None,
        timeout: Duration::from_secs(5),
        receipt_wait: Duration::from_secs(10),
    };
    let input = PolicyInput::Policy {
        policy_text: WORKLOADS_ONLY.to_owned(),
        exceptions_text: None,
        published_by: grantledger_events::PrincipalId::new("policy-admin").unwrap(),
    };
    let error = within("publish", policy_admin::publish(&connection, &input)).await.expect_err("not captured");
    assert!(matches!(error, AdminError::NotCaptured { .. }), "{error}");
    assert!(error.to_string().contains("`grants.policy.acme`"), "{error}");
    let filters = consumer_filters(&js).await;
    assert!(!filters.contains(&"grants.policy.acme".to_owned()), "{filters:?}");
    assert_eq!(filters.len(), 5, "the other inputs' subjects stay filtered: {filters:?}");
    stop.send(()).expect("running");
    within("stop", service).await.expect("joined").expect("clean exit");

    // The operator adds the subject (as admin); the ledger restarts and
    // takes policy inputs through its existing consumer, widened.
    let mut upgraded = earlier;
    upgraded.subjects.push("grants.policy.*".into());
    within("update", js.update_stream(upgraded)).await.expect("the operator updates the stream");
    let (stop, service) = start();
    let receipt = within("publish", policy_admin::publish(&connection, &input)).await.expect("a receipt");
    assert_eq!((receipt.status.as_str(), receipt.sequences.as_slice()), ("committed", &[5][..]), "{receipt:?}");
    assert_eq!(receipt.policy_hash, Some(grantledger_events::policy_hash(WORKLOADS_ONLY, None)));
    // The policy subject was added to the consumer's filters.
    let filters = consumer_filters(&js).await;
    assert!(filters.contains(&"grants.policy.acme".to_owned()), "{filters:?}");
    assert_eq!(filters.len(), 6, "{filters:?}");
    stop.send(()).expect("running");
    within("stop", service).await.expect("joined").expect("clean exit");
}

/// The subjects the ledger's durable consumer filters on (none: all of the
/// stream's).
async fn consumer_filters(js: &jetstream::Context) -> Vec<String> {
    let stream = js.get_stream(GRANT_INPUT_STREAM).await.expect("stream");
    let mut consumer: jetstream::consumer::PullConsumer = stream.get_consumer("ledger-acme").await.expect("consumer");
    let config = consumer.info().await.expect("info").config.clone();
    let mut filters = config.filter_subjects;
    filters.extend(Some(config.filter_subject).filter(|subject| !subject.is_empty()));
    filters
}

#[test]
fn policy_input_schema_is_current_and_refuses_unknown_fields() {
    let generated = stored_schema_is_current(POLICY_INPUT_SCHEMA_FILE, policy_input_schema());
    let text = generated.to_string();
    for name in ["\"catalog\"", "\"policy\"", "policy_text", "exceptions_text", "published_by"] {
        assert!(text.contains(name), "no {name} in {text}");
    }
    assert!(!text.contains("\"additionalProperties\":true"), "{text}");

    let parsed = serde_json::from_str::<PolicyInput>(r#"{"type":"policy","policy_text":"p","published_by":"alice"}"#).unwrap();
    assert_eq!(
        parsed.command(),
        grantledger_core::Command::PublishPolicy {
            policy_text: "p".into(),
            exceptions_text: None,
            published_by: grantledger_events::PrincipalId::new("alice").unwrap(),
        }
    );
    let parsed = serde_json::from_str::<PolicyInput>(r#"{"type":"catalog","text":"c","published_by":"alice"}"#).unwrap();
    assert!(matches!(parsed.command(), grantledger_core::Command::PublishCatalog { .. }));
    for body in [
        r#"{"type":"catalog","text":"c","published_by":"alice","policy_text":"p"}"#,
        r#"{"type":"policy","policy_text":"p","published_by":"has space"}"#,
        r#"{"text":"c","published_by":"alice"}"#,
    ] {
        assert!(serde_json::from_str::<PolicyInput>(body).is_err(), "{body}");
    }
}
