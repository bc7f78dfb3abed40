//! The ledger service against a real nats-server: a request becomes request,
//! decision and issuance on LEDGER_EVENTS plus a receipt; a duplicate gets the
//! original outcome; a poison message is rejected by name and terminated, and
//! the messages behind it are still decided.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use grantledger_nats::ledger_service::{REPLY_TO_HEADER, RejectionNotice, ServiceConfig, ServiceReceipt, run};
use grantledger_nats::{LEDGER_EVENTS_STREAM, rejections_subject, requests_subject};
use grantledger_testkit::NatsServer;

use common::{connect, within};

fn request(id: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","tenant":"acme","principal":{{"id":"alice","kind":"human"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"incident"}}"#
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
