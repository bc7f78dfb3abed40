//! `grantledger project <name>`: one projection as a service on NATS, on the
//! library of `grantledger_nats::projector_service`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use grantledger_nats::projector_service::{self, ProjectorConfig};
use grantledger_projector::PROJECTION_NAMES;

use crate::Failure;

/// The options of `grantledger project`.
#[derive(clap::Args, Debug)]
pub struct ProjectArgs {
    /// The projection: `current-grants`, `expiry-timers` or `audit-evidence`.
    #[arg(value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(PROJECTION_NAMES))]
    name: String,
    /// The projection's own store: created when empty, else opened (refused
    /// when it holds another projection). Delete it to rebuild from scratch:
    /// the projector backfills everything from the ledger.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The NATS server.
    #[arg(long, value_name = "URL")]
    nats: String,
    /// The tenant (partition) followed.
    #[arg(long, value_name = "T", default_value = "acme")]
    tenant: String,
    #[command(flatten)]
    login: crate::nats_args::NatsLogin,
    /// Inbox prefix (the shipped config gives projectors `_INBOX_PROJECTOR`
    /// and the expiry projector `_INBOX_EXPIRY`).
    #[arg(long, value_name = "PREFIX")]
    inbox_prefix: Option<String>,
    /// The durable consumer on LEDGER_EVENTS. Default:
    /// `projector-<name>-<tenant>`.
    #[arg(long, value_name = "NAME")]
    durable: Option<String>,
    /// How long the server waits for an acknowledgement before delivering
    /// an event again, in seconds.
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    ack_wait: u64,
    /// audit-evidence: a break-glass grant must be reviewed within this many
    /// hours of its issue, and a grant live when its owner was offboarded
    /// must end within this many hours of it, else it is a finding.
    #[arg(long, value_name = "H", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    review_window_hours: u64,
    /// audit-evidence: a revocation unconfirmed for longer than this many
    /// minutes is a finding.
    #[arg(long, value_name = "M", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=525_600))]
    debt_age_max_minutes: u64,
}

/// The help shown after the options.
pub const AFTER_HELP: &str = "\
Follows the tenant's committed events on LEDGER_EVENTS (a durable pull consumer), applies them
strictly in sequence order, and stores state and cursor in one synced write before acknowledging.
A missing range (lost, out of order, or older than the consumer) is read from the ledger over
grantledger.backfill.<tenant>; a projector deleted and started again rebuilds itself that way.

Queries (NATS request/reply, JSON body, `at_ms` defaults to now):
  current-grants  grants.query.<tenant>.check    {\"principal\",\"action\",\"resource\",\"at_ms\"?}
                  grants.query.<tenant>.grants   {\"principal\",\"at_ms\"?,\"limit\"?}
                  grants.query.<tenant>.holders  {\"resource\",\"at_ms\"?,\"limit\"?}
                  grants.query.<tenant>.pending  {\"limit\"?}
                  grants.query.<tenant>.scheduled {\"limit\"?}
  audit-evidence  grants.query.<tenant>.why      {\"principal\",\"resource\",\"at_ms\"}
                  grants.query.<tenant>.who      {\"resource\",\"at_ms\"}
                  grants.query.<tenant>.could    {\"principal\",\"at_ms\"}
                  grants.query.<tenant>.evidence {\"request_id\"}
                  grants.query.<tenant>.findings {\"at_ms\"?}
  expiry-timers   grants.query.<tenant>.debt     {\"at_ms\"?,\"limit\"?}
  every one       grants.query.<tenant>.status.<name>: cursor, digest (as `replay --json`), counters
Errors come back as {\"error\": \"...\"}.

expiry-timers also sends timers to the ledger (grants.timers.<tenant>): a grant's when its
expires_at comes, a scheduled request's when its start comes, and a request's waiting for
approvers when its request TTL ends; and it publishes every committed revocation to grants.expiry.<tenant>.<kind> for
revocation workers, in bounded batches, after a restart included.

SIGTERM or SIGINT finish the batch in hand and exit 0. Exit 2: bad options, no connection, or a
store that does not apply the ledger's events (rebuild it).";

/// Runs the projector until SIGTERM or SIGINT.
pub fn run(args: ProjectArgs) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    grantledger_nats::ledger_events_filter(&args.tenant)
        .map_err(|error| anyhow!("--tenant: {error}"))?;
    let mut config = ProjectorConfig::new(&args.name, args.data, args.nats, args.tenant);
    config.user_password = args.login.user_password()?;
    config.creds_file = args.login.creds;
    config.inbox_prefix = args.inbox_prefix;
    if let Some(durable) = args.durable {
        config.durable_name = durable;
    }
    config.ack_wait = Duration::from_secs(args.ack_wait);
    config.finding_rules.review_window_ms = (args.review_window_hours * 3600 * 1000) as i64;
    config.finding_rules.debt_age_max_ms = (args.debt_age_max_minutes * 60 * 1000) as i64;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: finishing the batch in hand"),
                _ = int.recv() => tracing::info!("SIGINT: finishing the batch in hand"),
            }
        };
        projector_service::run(config, shutdown)
            .await
            .map_err(|error| anyhow!(error))
    })?;
    Ok(())
}
