//! `grantledger revoker`: a revocation worker around a shell command or a
//! webhook, on the library of `grantledger_nats::revoker`.

use std::time::Duration;

use anyhow::{Context, anyhow};
use grantledger_nats::revoker::{
    CONCURRENCY_MAX, Hook, Worker, WorkerConfig, parse_expiry_subject,
};

use crate::Failure;

/// The longest duration any option takes, so a typo (`--timeout 3000000`)
/// is refused rather than waited on.
const SECONDS_MAX: f64 = 24.0 * 3600.0;

/// The options of `grantledger revoker`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("hook").required(true).args(["exec", "webhook"])))]
pub struct RevokerArgs {
    /// The NATS server.
    #[arg(long, value_name = "URL")]
    nats: String,
    /// The notices to act on: `grants.expiry.<tenant>.<resource_kind>`, one
    /// tenant and one resource kind (no wildcards).
    #[arg(long, value_name = "SUBJECT")]
    subject: String,
    /// Remove access by running `sh -c CMD` with the notice JSON on stdin:
    /// exit 0 means removed; a non-zero exit or a timeout is a failure,
    /// reported with the end of its stderr. Its stdout is discarded.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Remove access by POSTing the notice JSON to URL: a 2xx answer means
    /// removed; anything else, or none within the timeout, is a failure.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    #[command(flatten)]
    login: crate::nats_args::NatsLogin,
    /// Inbox prefix (the shipped server config gives workers `_INBOX_WORKER`).
    #[arg(long, value_name = "PREFIX")]
    inbox_prefix: Option<String>,
    /// The worker's name in its reports to the ledger.
    #[arg(long, value_name = "NAME", default_value = "grantledger-revoker")]
    worker: String,
    /// The durable consumer's name; workers sharing it share the notices.
    /// Default: `revoker-<tenant>-<resource_kind>`.
    #[arg(long, value_name = "NAME")]
    durable: Option<String>,
    /// How long the command or the webhook may take, in seconds.
    #[arg(long, value_name = "S", default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,
    /// The delay before the first retry of a failed removal, in seconds;
    /// it doubles per attempt up to --backoff-max.
    #[arg(long, value_name = "S", default_value = "1", value_parser = parse_seconds)]
    backoff_initial: Duration,
    /// The longest delay between retries, in seconds.
    #[arg(long, value_name = "S", default_value = "300", value_parser = parse_seconds)]
    backoff_max: Duration,
    /// Give up on a grant after N failed attempts (it stays in the ledger's
    /// revocation debt); retry forever when absent.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    attempts_max: Option<u32>,
    /// How many removals run at once.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=CONCURRENCY_MAX as i64))]
    concurrency: u16,
    /// How long the server waits before giving a dead worker's notice to
    /// another, in seconds (a running removal keeps its notice).
    #[arg(long, value_name = "S", default_value = "30", value_parser = parse_seconds)]
    ack_wait: Duration,
}

/// The help shown after the options.
pub const AFTER_HELP: &str = "\
Each notice on the subject (stream GRANT_EXPIRY, a durable pull consumer) is one grant whose
access must be removed at the target system; its JSON form is schemas/expiry-notice.schema.json.
Once the hook succeeds, `{\"type\":\"confirmed\",...}` is published on grants.revocations.<tenant>
and acknowledged by JetStream, and only then is the notice acknowledged. A failure publishes
`{\"type\":\"failed\",...,\"attempt\":N}` and the notice comes back after a backoff delay kept by the
server, so retries survive restarts. A notice that is not valid JSON of that form, or is for
another tenant, is terminated and logged with its reason. Hooks must be idempotent: a crash after
the removal but before the report runs the hook again.

SIGTERM or SIGINT stop pulling, let the removals in flight finish and report, and exit 0.
Exit 2: bad options (a subject not of the form, a missing tenant) or no connection.";

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > SECONDS_MAX {
        return Err(format!(
            "`{text}` seconds is out of range: must be more than 0 and at most {SECONDS_MAX}"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs the worker until SIGTERM or SIGINT.
pub fn run(args: RevokerArgs) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // Before anything else, so a typo exits 2 without touching NATS.
    parse_expiry_subject(&args.subject).map_err(|error| Failure::Error(anyhow!(error)))?;
    let hook = match (args.exec, args.webhook) {
        (Some(command), None) => Hook::exec(command, args.timeout),
        (None, Some(url)) => Hook::webhook(url, args.timeout).map_err(|error| anyhow!(error))?,
        _ => {
            return Err(Failure::Error(anyhow!(
                "give exactly one of --exec and --webhook"
            )));
        }
    };
    let mut config = WorkerConfig::new(args.nats, args.subject);
    config.user_password = args.login.user_password()?;
    config.creds_file = args.login.creds;
    config.inbox_prefix = args.inbox_prefix;
    config.worker_name = args.worker;
    if let Some(durable) = args.durable {
        config.durable_name = durable;
    }
    config.backoff_initial = args.backoff_initial;
    config.backoff_max = args.backoff_max;
    config.attempts_max = args.attempts_max;
    config.concurrency = usize::from(args.concurrency);
    config.ack_wait = args.ack_wait;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed before connecting, so a signal during start-up is not
        // the default (immediate) death.
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let worker = Worker::connect(config)
            .await
            .map_err(|error| anyhow!(error))?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: finishing the removals in flight"),
                _ = int.recv() => tracing::info!("SIGINT: finishing the removals in flight"),
            }
        };
        worker
            .run(
                move |notice| {
                    let hook = hook.clone();
                    async move { hook.call(notice).await }
                },
                shutdown,
            )
            .await;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded_and_named() {
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_seconds("30").unwrap(), Duration::from_secs(30));
        for (text, needle) in [
            ("0", "out of range"),
            ("-1", "out of range"),
            ("NaN", "out of range"),
            ("999999", "out of range"),
            ("ten", "not a number"),
        ] {
            let error = parse_seconds(text).unwrap_err();
            assert!(
                error.contains(&format!("`{text}`")) && error.contains(needle),
                "{error}"
            );
        }
    }
}
