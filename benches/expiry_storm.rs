//! The expiry storm through the running services, on a real nats-server:
//! `GRANTLEDGER_BENCH_STORM_LIVE` live grants (default 200,000), of which
//! `GRANTLEDGER_BENCH_STORM_EXPIRING` (default 100,000) expire within the
//! same second.
//!
//! The log is written straight into a ledger directory (no NATS), then the
//! ledger service and the expiry-timers projector start on one manual clock
//! and catch up (republish, apply). The clock then jumps past that second
//! and the bench times, until GRANT_EXPIRY holds one notice per expiring
//! grant, the whole path: the projector finds the due timers and sends
//! them to the ledger (`grants.timers`), the ledger decides and commits the
//! expiries (synced) and publishes them, the projector applies them and
//! publishes the notices with their PubAcks awaited.
//!
//! Peer, in the same run on the same server: raw JetStream publishing of the
//! same number of notices of the same size (windowed, every ack awaited),
//! the floor of the last step alone.
//!
//! `cargo bench --workspace --bench expiry_storm`

use std::time::{Duration, Instant};

/// The allocator the `grantledger` binary runs the services with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use async_nats::jetstream::{self, stream};
use grantledger_core::{Command, DEFAULT_CATALOG};
use grantledger_events::{Causation, PrincipalId, SubmitRequest, TenantId, Timestamp};
use grantledger_ledger::{Input, Ledger};
use grantledger_log::LogOptions;
use grantledger_nats::ledger_service::{self, ServiceConfig};
use grantledger_nats::projector_service::{self, ProjectorConfig};
use grantledger_nats::{Clock, GRANT_EXPIRY_STREAM, LEDGER_EVENTS_STREAM};
use grantledger_testkit::NatsServer;

const TENANT: &str = "bench";
const T0: i64 = 1_900_000_000_000;
/// The expiring grants' TTL: they all end in `[T0 + TTL, T0 + TTL + 1 s)`.
const TTL_MS: i64 = 600_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn request(i: u64, expiring: bool) -> SubmitRequest {
    let ttl_ms = if expiring { TTL_MS + (i % 1000) as i64 } else { 4 * 3600 * 1000 };
    let body = format!(
        r#"{{"request_id":"storm-{i}","tenant":"{TENANT}","principal":{{"id":"svc-{i}","kind":"workload","owner":"team-a"}},"entitlement":"db-prod-read","resource":"db/prod/db{}","actions":["read"],"justification":"storm","ttl_ms":{ttl_ms}}}"#,
        i % 16
    );
    serde_json::from_str(&body).expect("a valid request")
}

/// Writes the catalog and `live` issued grants straight into a new ledger.
fn write_log(dir: &std::path::Path, live: u64, expiring: u64) -> u64 {
    let mut ledger = Ledger::create(dir, TenantId::new(TENANT).unwrap(), LogOptions::default()).expect("create");
    let mut batch = ledger.begin(Timestamp(T0)).expect("begin");
    batch
        .stage(Input {
            command: Command::PublishCatalog {
                text: DEFAULT_CATALOG.to_owned(),
                published_by: PrincipalId::new("admin").unwrap(),
            },
            producer: "bench".into(),
            causation: Causation::Input("bench-catalog".into()),
        })
        .expect("catalog");
    batch.commit().expect("commit");
    let mut batch = ledger.begin(Timestamp(T0)).expect("begin");
    for i in 0..live {
        // The expiring grants are spread through the live ones.
        let expiring = i % (live / expiring.max(1)).max(1) == 0 && i / (live / expiring.max(1)).max(1) < expiring;
        batch
            .stage(Input {
                command: Command::Submit(request(i, expiring)),
                producer: "bench".into(),
                causation: Causation::Input(format!("bench-{i}")),
            })
            .expect("issued");
        if batch.is_full() {
            batch.commit().expect("commit");
            batch = ledger.begin(Timestamp(T0)).expect("begin");
        }
    }
    batch.commit().expect("commit");
    ledger.log().head().sequence
}

async fn messages(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream(name).await {
        Ok(mut stream) => stream.info().await.map(|info| info.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// CPU seconds (user + system) process `pid` has used so far, from
/// `/proc/<pid>/stat` (Linux; 0 elsewhere).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let live = env_u64("GRANTLEDGER_BENCH_STORM_LIVE", 200_000);
    let expiring = env_u64("GRANTLEDGER_BENCH_STORM_EXPIRING", 100_000).min(live);
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger_dir = dir.path().join("ledger");

    let started = Instant::now();
    let head = write_log(&ledger_dir, live, expiring);
    println!("log: {live} live grants ({head} records) written in {:.1} s", started.elapsed().as_secs_f64());

    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    let (clock, time) = Clock::manual(Timestamp(T0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut config = ServiceConfig::new(ledger_dir, server.url(), TENANT.into());
    config.clock = clock.clone();
    let ledger = tokio::spawn(ledger_service::run(config, until_stopped()));
    let mut config = ProjectorConfig::new("expiry-timers", dir.path().join("expiry"), server.url(), TENANT.into());
    config.clock = clock.clone();
    config.expiry_tick = Duration::from_millis(20);
    let counters = config.counters.clone();
    let projector = tokio::spawn(projector_service::run(config, until_stopped()));

    let started = Instant::now();
    wait_until("catch-up", Duration::from_secs(1800), async || {
        counters.cursor.load(std::sync::atomic::Ordering::Relaxed) == head
    })
    .await;
    println!(
        "catch-up: LEDGER_EVENTS republished and applied by expiry-timers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(messages(&js, GRANT_EXPIRY_STREAM).await, 0, "nothing expired yet");

    // The storm: the clock passes the second in which `expiring` grants end.
    let server_pid = server.pid().map(|pid| pid.to_string()).unwrap_or_default();
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&server_pid));
    let started = Instant::now();
    time.set(Timestamp(T0 + TTL_MS + 1000));
    let mut timers_sent_at = None;
    let mut recorded_at = None;
    wait_until("storm", Duration::from_secs(1800), async || {
        if timers_sent_at.is_none() && counters.timers_sent.load(std::sync::atomic::Ordering::Relaxed) >= expiring {
            timers_sent_at = Some(started.elapsed());
        }
        if recorded_at.is_none() && messages(&js, LEDGER_EVENTS_STREAM).await >= head + expiring {
            recorded_at = Some(started.elapsed());
        }
        messages(&js, GRANT_EXPIRY_STREAM).await >= expiring
    })
    .await;
    let storm = started.elapsed();
    let cpu = (cpu_seconds("self") - cpu_before.0, cpu_seconds(&server_pid) - cpu_before.1);
    let revocations_head = messages(&js, LEDGER_EVENTS_STREAM).await;
    let _ = stop.send(true);
    ledger.await.expect("joined").expect("ledger");
    projector.await.expect("joined").expect("projector");

    // Peer: the same number of notices of the same size, raw.
    let peer_subject = "peer.notices";
    js.create_stream(stream::Config {
        name: "PEER".into(),
        subjects: vec![peer_subject.into()],
        ..Default::default()
    })
    .await
    .expect("peer stream");
    let sample = {
        let mut stream = js.get_stream(GRANT_EXPIRY_STREAM).await.expect("stream");
        let first = stream.info().await.expect("info").state.first_sequence;
        stream.get_raw_message(first).await.expect("a notice").payload
    };
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for _ in 0..expiring {
        acks.push_back(js.publish(peer_subject, sample.clone()).await.expect("publish"));
        if acks.len() >= 2_000 {
            acks.pop_front().unwrap().await.expect("ack");
        }
    }
    for ack in acks {
        ack.await.expect("ack");
    }
    let peer = started.elapsed();

    println!("{:<64} {:>10}", "expiry storm", "value");
    println!("{:<64} {:>8.3} s", format!("{expiring} of {live} grants expire: all notices on GRANT_EXPIRY"), storm.as_secs_f64());
    if let Some(at) = timers_sent_at {
        println!("{:<64} {:>8.3} s", "  of which: every timer sent to the ledger (PubAcks in)", at.as_secs_f64());
    }
    if let Some(at) = recorded_at {
        println!("{:<64} {:>8.3} s", "  of which: every expiry committed and on LEDGER_EVENTS", at.as_secs_f64());
    }
    println!("{:<64} {:>8}", "  LEDGER_EVENTS after the storm", revocations_head);
    println!("{:<64} {:>8.3} s", "  CPU: ledger + expiry-timers (this process)", cpu.0);
    println!("{:<64} {:>8.3} s", "  CPU: nats-server", cpu.1);
    println!("{:<64} {:>8.3} s", format!("peer: {expiring} raw JetStream publishes of a notice"), peer.as_secs_f64());
    println!("{:<64} {:>8.1} x", "storm / peer", storm.as_secs_f64() / peer.as_secs_f64());
}
