//! The subcommands. Each opens what it needs, does its work and prints; the
//! argument parsing and exit codes are in `main.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use grantledger_core::{Catalog, Command, DEFAULT_CATALOG, Workload};
use grantledger_events::{Causation, EventKind, PrincipalId, TenantId, Timestamp};
use grantledger_ledger::{Input, Ledger, decode_record, fold};
use grantledger_log::{Log, LogOptions, Record};
use serde_json::json;

use crate::{Failure, progress};

/// The simulated clock starts here, so the same seed gives the same log.
const SIMULATION_START: Timestamp = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z

/// Inputs per simulated group commit. Fixed, because batch boundaries decide
/// ledger times and so the bytes of the log.
const SIMULATION_BATCH_INPUTS: usize = 256;

/// A policy set for `simulate` to publish after the catalog.
pub struct SimulatePolicy<'a> {
    /// The Cedar policies.
    pub policies: &'a Path,
    /// The exception rules, if any.
    pub exceptions: Option<&'a Path>,
}

pub fn simulate(
    data: &Path,
    requests: u64,
    seed: u64,
    catalog_path: Option<&Path>,
    policy: Option<SimulatePolicy<'_>>,
    tenant: &str,
    json: bool,
) -> Result<(), Failure> {
    let tenant = TenantId::new(tenant).map_err(|error| anyhow!("--tenant: {error}"))?;
    let (catalog_name, catalog_text) = match catalog_path {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read catalog `{}`", path.display()))?,
        ),
        None => ("built-in example".to_string(), DEFAULT_CATALOG.to_string()),
    };
    // Everything is checked before the directory is touched: bad input
    // writes nothing.
    let catalog =
        Catalog::parse(&catalog_text).map_err(|error| anyhow!("catalog `{catalog_name}`: {error}"))?;
    let policy_texts = match &policy {
        None => None,
        Some(policy) => {
            let read = |path: &Path| {
                std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
            };
            let policy_text = read(policy.policies)?;
            let exceptions_text = policy.exceptions.map(read).transpose()?;
            grantledger_ledger::build_engine(catalog.clone(), &policy_text, exceptions_text.as_deref())
                .map_err(|error| anyhow!("policy `{}` refused: {error}", policy.policies.display()))?;
            Some((policy_text, exceptions_text))
        }
    };
    refuse_non_empty(data)?;

    let mut ledger = Ledger::create(data, tenant, LogOptions::default())
        .with_context(|| format!("cannot create a log in `{}`", data.display()))?;
    // The simulated workloads' identities are claimed in their context, as
    // a verified token would put them there.
    ledger.trust_claimed_identity(true);
    let mut workload = Workload::new(seed, &catalog);
    let mut events_by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut rejections_by_code: BTreeMap<&'static str, u64> = BTreeMap::new();

    let publisher = PrincipalId::new("catalog-admin").expect("a valid id");
    let mut batch = ledger.begin(SIMULATION_START).map_err(anyhow::Error::from)?;
    let staged = batch
        .stage(Input {
            command: Command::PublishCatalog { text: catalog_text, published_by: publisher },
            producer: "simulator".into(),
            causation: Causation::Input(format!("sim-{seed}-catalog")),
        })
        .map_err(|rejection| anyhow!("the catalog was refused: {rejection}"))?;
    count_events(&mut events_by_kind, &staged.events);
    if let Some((policy_text, exceptions_text)) = policy_texts.clone() {
        let staged = batch
            .stage(Input {
                command: Command::PublishPolicy {
                    policy_text,
                    exceptions_text,
                    published_by: PrincipalId::new("policy-admin").expect("a valid id"),
                },
                producer: "simulator".into(),
                causation: Causation::Input(format!("sim-{seed}-policy")),
            })
            .map_err(|rejection| anyhow!("the policy set was refused: {rejection}"))?;
        count_events(&mut events_by_kind, &staged.events);
    }
    batch.commit().map_err(anyhow::Error::from)?;

    let bar = progress::bar(requests, "requests");
    let mut now = SIMULATION_START;
    let mut submitted = 0u64;
    let mut inputs = 0u64;
    while submitted < requests {
        let mut batch = ledger.begin(now).map_err(anyhow::Error::from)?;
        let mut next_now = batch.time();
        while batch.len() < SIMULATION_BATCH_INPUTS && submitted < requests {
            let (mut command, after) = workload.next(batch.state(), batch.time());
            if policy_texts.is_some() {
                simulated_context(&mut command);
            }
            next_now = next_now.max(after);
            let is_submit = matches!(command, Command::Submit(_));
            inputs += 1;
            let input = Input {
                command,
                producer: "simulator".into(),
                causation: Causation::Input(format!("sim-{seed}-{inputs}")),
            };
            match batch.stage(input) {
                Ok(staged) => count_events(&mut events_by_kind, &staged.events),
                Err(rejection) => *rejections_by_code.entry(rejection.code()).or_default() += 1,
            }
            if is_submit {
                submitted += 1;
                bar.inc(1);
            }
        }
        batch.commit().map_err(anyhow::Error::from)?;
        now = next_now;
    }
    bar.finish_and_clear();

    let head = ledger.log().head();
    let digest = hex::encode(ledger.state().digest());
    if json {
        let summary = json!({
            "records": head.sequence,
            "head": hex::encode(head.hash),
            "requests": submitted,
            "inputs": inputs,
            "state_digest": digest,
            "events": events_by_kind,
            "rejections": rejections_by_code,
            "simulated_until": Timestamp(head.time_ms).to_string(),
        });
        println!("{summary}");
    } else {
        println!("simulated {submitted} requests ({inputs} inputs) into `{}`", data.display());
        println!("records      {}", head.sequence);
        println!("head         {}", hex::encode(head.hash));
        println!("state digest {digest}");
        println!("simulated to {}", Timestamp(head.time_ms));
        for (kind, count) in &events_by_kind {
            println!("  event      {kind:<22} {count}");
        }
        for (code, count) in &rejections_by_code {
            println!("  rejected   {code:<30} {count}");
        }
    }
    Ok(())
}

/// With a policy set in force, the situation a request is made in matters:
/// a deterministic context (device, window, on-call, change record, risk
/// score, workload identity, task) and groups, drawn from the request id's
/// hash so the workload's own stream is unchanged.
fn simulated_context(command: &mut Command) {
    let Command::Submit(request) = command else { return };
    let hash = blake3::hash(request.request_id.as_str().as_bytes());
    let bytes = hash.as_bytes();
    let bit = |n: usize| bytes[0] >> n & 1 == 1;
    let context = &mut request.context;
    context.insert("in_maintenance_window".into(), bit(0).into());
    context.insert("device_managed".into(), (bytes[1] % 4 != 0).into());
    context.insert("on_call".into(), bit(2).into());
    if bit(3) {
        context.insert("change_record".into(), format!("CHG-{}", bytes[2]).into());
    }
    if bit(4) {
        context.insert("risk_score".into(), (bytes[3] % 101).into());
    }
    match request.principal.kind {
        grantledger_events::PrincipalKind::Workload if bit(5) => {
            let trust_domain = if bytes[4] % 8 == 0 { "elsewhere.example" } else { "acme.internal" };
            context.insert(
                "workload_identity".into(),
                json!({
                    "issuer": format!("https://{trust_domain}"),
                    "subject": format!("spiffe://{trust_domain}/{}", request.principal.id.as_str()),
                    "audience": ["grantledger"],
                    "spiffe_id": format!("spiffe://{trust_domain}/{}", request.principal.id.as_str()),
                    "trust_domain": trust_domain,
                }),
            );
        }
        grantledger_events::PrincipalKind::Agent if bit(6) => {
            let mut task = json!({"id": format!("task-{}", bytes[5]), "purpose": "simulated task"});
            if bit(7) {
                task["tool"] = "git".into();
            }
            context.insert("task".into(), task);
        }
        _ => {}
    }
    request.groups = match bytes[6] % 4 {
        0 => vec![],
        1 => vec!["engineering".into()],
        2 => vec!["engineering".into(), "sre".into()],
        _ => vec!["payments".into()],
    };
}

fn count_events(counts: &mut BTreeMap<&'static str, u64>, events: &[grantledger_events::Event]) {
    for event in events {
        *counts.entry(event.kind().name()).or_default() += 1;
    }
}

fn refuse_non_empty(data: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(data) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "`{}` is not empty: simulate writes a new log; remove it or choose another directory",
                    data.display()
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(anyhow!("cannot read `{}`: {error}", data.display())),
    }
}

fn open_read_only(data: &Path) -> anyhow::Result<Log> {
    Log::open_read_only(data).with_context(|| format!("cannot open the log in `{}`", data.display()))
}

/// Checks what the log cannot: that a body decodes with the codec its header
/// names and holds the event kind its header says.
fn check_body(record: &Record) -> Result<(), String> {
    let envelope = decode_record(record.header.version, record.header.sequence, &record.body)
        .map_err(|error| error.to_string())?;
    let kind = envelope.event.kind();
    if kind.code() != record.header.kind {
        let named = EventKind::from_code(record.header.kind).map_or("unknown", EventKind::name);
        return Err(format!(
            "header says kind `{}` ({named}), body holds `{}`",
            record.header.kind,
            kind.name()
        ));
    }
    Ok(())
}

pub fn verify(
    data: &Path,
    checkpoint: Option<&Path>,
    public_keys: &[std::path::PathBuf],
    json: bool,
) -> Result<(), Failure> {
    let log = open_read_only(data)?;
    let bar = progress::bar(log.head().sequence, "records");
    let result = grantledger_log::verify(&log, |checked, _| bar.set_position(checked), check_body);
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            // The chain and the stored tree are intact; now the auditor's checkpoint.
            let extends = match checkpoint {
                Some(path) => Some(crate::evidence::check_checkpoint(&log, path, public_keys)?),
                None => None,
            };
            if let Some(Err(problem)) = &extends {
                if json {
                    println!("{}", json!({"ok": false, "records": report.records, "checkpoint": problem}));
                }
                eprintln!("verify failed against the checkpoint: {problem}");
                return Err(Failure::Damaged);
            }
            if json {
                let mut out = json!({"records": report.records, "head": hex::encode(report.head_hash)});
                if let Some(Ok(message)) = &extends {
                    out["checkpoint"] = message.as_str().into();
                }
                println!("{out}");
            } else {
                println!("ok: {} records, head {}", report.records, hex::encode(report.head_hash));
                if let Some(Ok(message)) = &extends {
                    println!("ok: {message}");
                }
            }
            Ok(())
        }
        Err(failure) => {
            if json {
                println!(
                    "{}",
                    json!({"ok": false, "sequence": failure.sequence, "rule": failure.rule, "detail": failure.detail})
                );
            }
            eprintln!(
                "verify failed: record `{}` breaks `{}`: {}",
                failure.sequence, failure.rule, failure.detail
            );
            Err(Failure::Damaged)
        }
    }
}

pub fn replay(data: &Path, to: Option<u64>, json: bool) -> Result<(), Failure> {
    let log = open_read_only(data)?;
    let head = log.head().sequence;
    let to = to.unwrap_or(head);
    if to > head {
        return Err(anyhow!("--to `{to}` is past the head of the log, `{head}`").into());
    }
    let bar = progress::bar(to, "records");
    let mut applied = 0u64;
    let result = fold(&log, None, to, |sequence| {
        applied = sequence;
        if sequence % 4096 == 0 {
            bar.set_position(sequence);
        }
    });
    bar.finish_and_clear();
    let state = match result {
        Ok(state) => state,
        Err(error) => {
            if json {
                println!("{}", json!({"ok": false, "error": error.to_string()}));
            }
            eprintln!("replay failed: {error}");
            return Err(Failure::Damaged);
        }
    };
    let digest = hex::encode(state.digest());
    // The projections replay to the head only.
    let projections = if to == head { crate::projections_cli::all_digests(&log)? } else { Vec::new() };
    if json {
        let mut digests = serde_json::Map::new();
        digests.insert("grant_state".into(), digest.into());
        for projection in &projections {
            digests.insert(projection.projection.into(), serde_json::to_value(projection).expect("serializable"));
        }
        println!("{}", json!({"records": applied, "sequence": applied, "digests": digests}));
    } else {
        println!("replayed {applied} records");
        println!("grant_state {digest}");
        for projection in &projections {
            println!("{} {}", projection.projection, projection.digest);
        }
    }
    Ok(())
}

/// `replay --recheck`: every recorded decision evaluated again with the
/// policy set and catalog in force at its sequence number. Exit 1 naming
/// every decision that comes out differently (or the record where the
/// replay had to stop).
pub fn recheck(data: &Path, json: bool) -> Result<(), Failure> {
    let log = open_read_only(data)?;
    let bar = progress::bar(log.head().sequence, "records");
    let report = grantledger_ledger::recheck(&log, |sequence| {
        if sequence % 4096 == 0 {
            bar.set_position(sequence);
        }
    })
    .map_err(anyhow::Error::from)?;
    bar.finish_and_clear();
    let ok = report.differences.is_empty() && report.broken.is_none();
    let sequences: Vec<u64> = report.differences.iter().map(|d| d.sequence).collect();
    if json {
        let differences: Vec<_> = report
            .differences
            .iter()
            .map(|d| {
                json!({
                    "sequence": d.sequence,
                    "request_id": d.request_id.as_str(),
                    "recorded": serde_json::from_str::<serde_json::Value>(&d.recorded).unwrap_or(d.recorded.clone().into()),
                    "rechecked": serde_json::from_str::<serde_json::Value>(&d.rechecked).unwrap_or(d.rechecked.clone().into()),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "ok": ok,
                "records": report.records,
                "decisions_by_policy": report.by_policy,
                "decisions_by_catalog": report.by_catalog,
                "differences": differences,
                "broken": report.broken.as_ref().map(ToString::to_string),
            })
        );
    } else {
        println!(
            "rechecked {} records: {} decisions by the policy engine, {} by the catalog rules",
            report.records, report.by_policy, report.by_catalog
        );
    }
    for difference in &report.differences {
        eprintln!(
            "decision at sequence `{}` (request `{}`) differs: recorded {}, re-evaluated {}",
            difference.sequence, difference.request_id, difference.recorded, difference.rechecked
        );
    }
    if let Some(error) = &report.broken {
        eprintln!("recheck stopped: {error}");
    }
    if ok {
        if !json {
            println!("ok: every decision reproduces");
        }
        return Ok(());
    }
    if !sequences.is_empty() {
        eprintln!(
            "recheck failed: {} decisions differ, at sequences {}",
            sequences.len(),
            sequences.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    Err(Failure::Damaged)
}

pub fn show(data: &Path, from: u64, limit: u64) -> Result<(), Failure> {
    let log = open_read_only(data)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for record in log.iter_from(from.max(1)).take(limit as usize) {
        let record = record.map_err(anyhow::Error::from)?;
        let committed = match grantledger_ledger::committed(&record) {
            Ok(committed) => committed,
            Err(error) => {
                out.flush().ok();
                eprintln!("show stopped: {error}");
                return Err(Failure::Damaged);
            }
        };
        let line = serde_json::to_string(&committed).expect("events render as JSON");
        if writeln!(out, "{line}").is_err() {
            // The reader went away (`| head`): stop quietly.
            return Ok(());
        }
    }
    out.flush().ok();
    Ok(())
}

/// The arguments of `grantledger ledger`.
pub struct LedgerArgs {
    pub data: std::path::PathBuf,
    pub nats: String,
    pub tenant: String,
    pub login: crate::nats_args::NatsLogin,
    pub inbox_prefix: Option<String>,
    pub catalog: Option<std::path::PathBuf>,
    pub checkpoint_key: Option<std::path::PathBuf>,
    pub checkpoint_every: u64,
    pub checkpoint_interval_s: u64,
    pub checkpoint_file: Option<std::path::PathBuf>,
    pub identity_issuers: Option<std::path::PathBuf>,
}

/// Runs the ledger service until SIGTERM or SIGINT.
pub fn ledger(args: LedgerArgs) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let catalog = match &args.catalog {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read catalog `{}`", path.display()))?,
        None => DEFAULT_CATALOG.to_owned(),
    };
    let mut config = grantledger_nats::ledger_service::ServiceConfig::new(args.data, args.nats, args.tenant);
    config.user_password = args.login.user_password()?;
    config.creds_file = args.login.creds;
    config.inbox_prefix = args.inbox_prefix;
    config.catalog = Some(catalog);
    if let Some(path) = &args.identity_issuers {
        let issuers = grantledger_policy::identity::Issuers::load(path)
            .map_err(|e| anyhow!("--identity-issuers `{}`: {e}", path.display()))?;
        config.identity = Some(std::sync::Arc::new(issuers));
    }
    if let Some(key) = &args.checkpoint_key {
        let key = grantledger_proof::SignerKey::read_file(key).map_err(|e| anyhow!("--checkpoint-key: {e}"))?;
        config.checkpoints = Some(grantledger_nats::ledger_service::CheckpointConfig {
            key: std::sync::Arc::new(key),
            every_records: args.checkpoint_every,
            every: std::time::Duration::from_secs(args.checkpoint_interval_s),
            file: args.checkpoint_file,
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(async move {
            let shutdown = async {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
                let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: finishing the batch in hand"),
                    _ = int.recv() => tracing::info!("SIGINT: finishing the batch in hand"),
                }
            };
            grantledger_nats::ledger_service::run(config, shutdown).await
        })
        .map_err(|error| Failure::Error(anyhow!(error)))
}
