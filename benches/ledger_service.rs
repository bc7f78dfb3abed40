//! The ledger service on a real nats-server, beside raw JetStream publishing
//! of the same messages on the same server, in the same run.
//!
//! 1. Saturation. `GRANTLEDGER_BENCH_REQUESTS` requests (default 50,000) are
//!    first published to GRANT_INPUT (timed: that is the raw-JetStream peer,
//!    windowed async publishes with every ack awaited); then the service
//!    starts and is timed until LEDGER_EVENTS holds the 3 events of every
//!    request (decided, committed with fsync, published with acks awaited,
//!    inputs acked).
//! 2. Open-loop latency at fixed rates (`GRANTLEDGER_BENCH_RATES`, default
//!    1000,5000 requests/s, for `GRANTLEDGER_BENCH_SECONDS` each, default 10):
//!    the i-th request is due at `start + i / rate` whatever happened to the
//!    ones before, and its latency is measured from that due time, so a stall
//!    is charged to every request it delays (no coordinated omission). The
//!    schedule is kept by a thread sleeping on the OS timer (tokio's timer
//!    wheel rounds each sleep up to the next millisecond, which sent the
//!    requests in bursts and charged up to a millisecond of the generator's
//!    own lateness to the system), and each answer's time is taken by a task
//!    waiting for it, as it arrives.
//!    - service: publish to `grants.requests.<tenant>` with a receipt header,
//!      until the receipt arrives (durable in the log, on LEDGER_EVENTS);
//!    - peer: a raw JetStream publish of the same body to a plain file
//!      stream, until its PubAck arrives. JetStream does not fsync before
//!      its PubAck (`sync_interval`); the service fsyncs every batch, and
//!      the slowest synced write of each phase is printed beside it.
//!    Percentiles come from `hdrhistogram` (microseconds). Beside them:
//!    the service's own counters (the synced write, the wait before a
//!    batch, the publication, each input's time from JetStream storing it
//!    to its receipt), and a thread's 1 ms sleeps, whose overruns show a
//!    pause of the whole machine.
//!
//! The service runs on its own runtime, as `grantledger ledger` does in its
//! own process. `GRANTLEDGER_BENCH_LEDGER_DIR` puts the log on another
//! filesystem than nats-server's store (`TMPDIR`), as in a deployment where
//! NATS runs on its own machines. Before starting it writes back the
//! machine's dirty pages (`sync`), which would otherwise be written back in
//! a burst during a phase.
//!
//! `cargo bench --workspace --bench ledger_service`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator the `grantledger` binary runs the services with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use grantledger_nats::ledger_service::{self, REPLY_TO_HEADER, ServiceConfig};
use grantledger_testkit::NatsServer;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

const TENANT: &str = "bench";

fn request(id: &str) -> String {
    format!(
        r#"{{"request_id":"{id}","tenant":"{TENANT}","principal":{{"id":"svc-{id}","kind":"workload","owner":"team-a"}},"entitlement":"db-prod-read","resource":"db/prod/orders","actions":["read"],"justification":"load test"}}"#
    )
}

fn main() {
    let requests = env_u64("GRANTLEDGER_BENCH_REQUESTS", 50_000) as usize;
    let seconds = env_u64("GRANTLEDGER_BENCH_SECONDS", 10);
    let rates: Vec<u64> = std::env::var("GRANTLEDGER_BENCH_RATES")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .map(|r| r.trim().parse().expect("GRANTLEDGER_BENCH_RATES: comma-separated requests/s"))
        .collect();
    // The service runs on a runtime of its own, as `grantledger ledger` does
    // in its own process: on one shared runtime, the load generator's tasks
    // (sending, timing every answer) and the service's queue behind each
    // other, and the generator's lateness is charged to the service.
    let service_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("ledger").enable_all().build().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(service_runtime.handle(), requests, seconds, rates));
}

async fn run(service_runtime: &tokio::runtime::Handle, requests: usize, seconds: u64, rates: Vec<u64>) {
    let server = NatsServer::start();
    let client = async_nats::ConnectOptions::new().connect(server.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    grantledger_nats::ensure_streams(&js, &Default::default()).await.unwrap();
    js.create_stream(stream::Config {
        name: "PEER".into(),
        subjects: vec!["peer.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();

    write_back_dirty_pages();
    // 1. Saturation.
    let bodies: Vec<String> = (0..requests).map(|i| request(&format!("sat-{i}"))).collect();
    let started = Instant::now();
    publish_all(&js, "grants.requests.bench", &bodies).await;
    let raw = started.elapsed();

    // The log's directory: `GRANTLEDGER_BENCH_LEDGER_DIR`, else beside
    // nats-server's store in the temporary directory. On one disk, the
    // kernel's writeback of nats-server's store stalls the log's synced
    // writes (README, "The log's disk").
    let dir = match std::env::var_os("GRANTLEDGER_BENCH_LEDGER_DIR") {
        Some(parent) => tempfile::tempdir_in(parent).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!("log in {}, nats-server's store in {}", dir.path().display(), server.store_dir().display());
    let mut config = ServiceConfig::new(dir.path().join("ledger"), server.url(), TENANT.into());
    config.catalog = Some(grantledger_core::DEFAULT_CATALOG.to_owned());
    let counters = config.counters.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let service = service_runtime.spawn(ledger_service::run(config, async {
        let _ = stop_rx.await;
    }));
    let expected = 1 + 3 * requests as u64;
    let mut events = js.get_stream("LEDGER_EVENTS").await.unwrap();
    loop {
        let held = events.info().await.unwrap().state.messages;
        if held >= expected {
            assert_eq!(held, expected, "each request decided once");
            break;
        }
        assert!(!service.is_finished(), "the service stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let through = started.elapsed();
    let batches = counters.batches.load(std::sync::atomic::Ordering::Relaxed).max(1);
    let commit_us = counters.commit_latency_us_total.load(std::sync::atomic::Ordering::Relaxed) / batches;
    println!("saturation: {requests} requests, 3 events each");
    println!("{:<40} {:>12} {:>10}", "", "requests/s", "seconds");
    println!("{:<40} {:>12.0} {:>10.2}", "raw JetStream publish (peer)", requests as f64 / raw.as_secs_f64(), raw.as_secs_f64());
    println!(
        "{:<40} {:>12.0} {:>10.2}",
        "ledger service (decide+commit+publish+ack)",
        requests as f64 / through.as_secs_f64(),
        through.as_secs_f64()
    );
    println!(
        "service/raw time ratio {:.2}x; {} batches, mean {:.0} inputs and {} us decide+commit per batch",
        through.as_secs_f64() / raw.as_secs_f64(),
        batches,
        requests as f64 / batches as f64,
        commit_us
    );

    // 2. Open-loop latency.
    println!("\nopen loop, {seconds} s per rate, latency from each request's due time (microseconds)");
    println!("{:<34} {:>8} {:>8} {:>8} {:>8} {:>8}", "", "rate/s", "p50", "p99", "p99.9", "max");
    for rate in rates {
        let peer = open_loop_peer(&js, rate, seconds).await;
        print_row("raw JetStream publish -> PubAck", rate, &peer);
        // The slowest synced commit of this phase: a disk stall shows here
        // and in the service's tail alike.
        counters.commit_latency_us_max.store(0, std::sync::atomic::Ordering::Relaxed);
        counters.commit_latency.reset();
        counters.write_latency_us_max.store(0, std::sync::atomic::Ordering::Relaxed);
        counters.write_latency.reset();
        counters.input_wait.reset();
        counters.publish_latency.reset();
        counters.input_latency.reset();
        let hiccups = Hiccups::start();
        let service = open_loop_service(&client, &js, rate, seconds).await;
        let hiccups = hiccups.stop();
        print_row("service publish -> receipt", rate, &service);
        print_row("  machine hiccups (1 ms sleeps)", rate, &hiccups);
        println!(
            "{:<34} {:>8} {:>44}",
            "  slowest decide+commit (fsync)",
            rate,
            counters.commit_latency_us_max.load(std::sync::atomic::Ordering::Relaxed)
        );
        println!(
            "{:<34} {:>8} {:>44}",
            "  slowest synced write alone",
            rate,
            counters.write_latency_us_max.load(std::sync::atomic::Ordering::Relaxed)
        );
        print_buckets("batches", "decide+commit", &counters.commit_latency);
        print_buckets("batches", "synced write alone", &counters.write_latency);
        print_buckets("batches", "commit -> last record acked", &counters.publish_latency);
        print_buckets("inputs", "stored -> batch decided", &counters.input_wait);
        print_buckets("inputs", "stored -> receipt sent", &counters.input_latency);
    }
    stop_tx.send(()).unwrap();
    service.await.unwrap().unwrap();
}

/// Batches or inputs by latency bucket (power-of-two bounds), beside the
/// receipts' tail: how often deciding and committing, the synced write
/// alone or the publication stalls, and where an input's time goes from
/// JetStream storing it.
fn print_buckets(counted: &str, what: &str, buckets: &ledger_service::LatencyBuckets) {
    let counts = buckets.counts();
    let line: Vec<String> = (0..counts.len())
        .map(|index| {
            let bound = ledger_service::LatencyBuckets::upper_bound_us(index);
            let name = if bound == u64::MAX { ">".to_string() } else { format!("<={}ms", bound as f64 / 1000.0) };
            format!("{name}:{}", counts[index])
        })
        .collect();
    println!("  {counted} by {what} latency: {}", line.join(" "));
}

fn print_row(name: &str, rate: u64, h: &Histogram<u64>) {
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>8}",
        name,
        rate,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

/// Publishes every body and waits for every ack, at most 1024 in flight.
async fn publish_all(js: &jetstream::Context, subject: &str, bodies: &[String]) {
    let mut pending = std::collections::VecDeque::new();
    for body in bodies {
        pending.push_back(js.publish(subject.to_owned(), body.clone().into()).await.unwrap());
        if pending.len() >= 1024 {
            pending.pop_front().unwrap().await.unwrap();
        }
    }
    for ack in pending {
        ack.await.unwrap();
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// The schedule of an open-loop phase: the i-th request is due at
/// `start + i / rate`. A thread sleeps until each due time on the OS timer
/// (tens of microseconds late at most; tokio's timer wheel would round every
/// sleep up to the next millisecond and charge that to the system) and
/// hands the index and due time to the sending task. Latency is measured
/// from the due time, so a late sender is charged too.
fn pace(rate: u64, seconds: u64) -> tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)> {
    let (schedule, due_times) = tokio::sync::mpsc::unbounded_channel();
    let total = rate * seconds;
    let start = Instant::now() + Duration::from_millis(50);
    std::thread::spawn(move || {
        for i in 0..total {
            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if schedule.send((i, due)).is_err() {
                return;
            }
        }
    });
    due_times
}

/// Raw JetStream publishes on the schedule; each PubAck is awaited by its
/// own task, so its latency is taken when it arrives, not when the sender
/// next looks.
async fn open_loop_peer(js: &jetstream::Context, rate: u64, seconds: u64) -> Histogram<u64> {
    let (done, mut latencies) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut schedule = pace(rate, seconds);
    while let Some((i, due)) = schedule.recv().await {
        let ack = js.publish(format!("peer.{rate}"), request(&format!("peer-{rate}-{i}")).into()).await.unwrap();
        let done = done.clone();
        tokio::spawn(async move {
            ack.await.unwrap();
            let _ = done.send(due.elapsed().as_micros() as u64);
        });
    }
    drop(done);
    let mut h = histogram();
    while let Some(latency) = latencies.recv().await {
        h.record(latency).unwrap();
    }
    h
}

async fn open_loop_service(client: &async_nats::Client, js: &jetstream::Context, rate: u64, seconds: u64) -> Histogram<u64> {
    let total = rate * seconds;
    let inbox = format!("_INBOX.bench-receipts-{rate}");
    let mut receipts = client.subscribe(inbox.clone()).await.unwrap();
    client.flush().await.unwrap();
    let due_times: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let collector = {
        let due_times = due_times.clone();
        tokio::spawn(async move {
            let mut h = histogram();
            let mut seen = 0;
            while seen < total {
                let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(60), receipts.next()).await else {
                    panic!("receipts stopped after {seen} of {total}");
                };
                let arrived = Instant::now();
                let receipt: ledger_service::ServiceReceipt = serde_json::from_slice(&message.payload).unwrap();
                assert_eq!(receipt.status, "committed", "{receipt:?}");
                let id = receipt.request_id.unwrap();
                let due = due_times.lock().await.remove(&id).expect("a receipt for a request sent");
                h.record(arrived.duration_since(due).as_micros() as u64).unwrap();
                seen += 1;
            }
            h
        })
    };
    let mut schedule = pace(rate, seconds);
    let mut acks = Vec::new();
    while let Some((i, due)) = schedule.recv().await {
        let id = format!("open-{rate}-{i}");
        due_times.lock().await.insert(id.clone(), due);
        let mut headers = HeaderMap::new();
        headers.insert(REPLY_TO_HEADER, inbox.as_str());
        let ack = js.publish_with_headers("grants.requests.bench", headers, request(&id).into()).await.unwrap();
        acks.push(tokio::spawn(async move { ack.await.unwrap() }));
    }
    for ack in acks {
        ack.await.unwrap();
    }
    collector.await.unwrap()
}

/// Writes back every dirty page of the machine (`sync`) before the bench
/// starts, so that the kernel's writeback of what was written before it
/// (building this very bench links a binary of hundreds of megabytes) does
/// not land in a phase 30 s later: a burst of writeback stalls a synced
/// write behind it for tens of milliseconds. What the bench writes itself
/// (nats-server's store above all) is left to the kernel, as in service.
fn write_back_dirty_pages() {
    let started = Instant::now();
    match std::process::Command::new("sync").status() {
        Ok(status) if status.success() => {}
        other => panic!("`sync` failed: {other:?}"),
    }
    println!("dirty pages written back before starting: {} ms", started.elapsed().as_millis());
}

/// A thread that sleeps 1 ms at a time and records by how much each sleep
/// overran: a pause of the whole machine (the hypervisor descheduling it,
/// say) shows here as well as in the service's tail; a stall of the disk
/// alone does not.
struct Hiccups {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Histogram<u64>>,
}

impl Hiccups {
    fn start() -> Hiccups {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut h = histogram();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let before = Instant::now();
                    std::thread::sleep(Duration::from_millis(1));
                    let overran = before.elapsed().saturating_sub(Duration::from_millis(1));
                    h.record((overran.as_micros() as u64).max(1)).unwrap();
                }
                h
            }
        });
        Hiccups { stop, thread }
    }

    fn stop(self) -> Histogram<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name}: expected a number, got `{text}`")),
        Err(_) => default,
    }
}
