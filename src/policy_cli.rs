//! `grantledger policy check|test|publish` and `grantledger catalog
//! publish`: the playground for policy authors, and putting a policy set or
//! a catalog in force, into a stopped ledger's log (`--data`) or through the
//! running ledger (`--nats`).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use grantledger_core::Command;
use grantledger_events::{Event, PrincipalId};
use grantledger_nats::ledger_service::PolicyInput;
use grantledger_policy::{Engine, GrantledgerSchema, PolicyRequest, runner};

use crate::Failure;
use crate::nats_args::NatsLogin;

/// How long `--nats` waits for the ledger's receipt by default, in seconds.
const RECEIPT_WAIT_S: u64 = 30;

/// `grantledger policy ...`
#[derive(Subcommand, Debug)]
pub enum PolicyAction {
    /// Decide one request with a catalog and a Cedar policy set, and print
    /// the decision: outcome, determining policies (or `no_permit_matched`),
    /// reasons, the TTL granted, the hashes of what was in force, and every
    /// context value evaluated.
    ///
    /// The policies are validated against the shipped Cedar schema
    /// (schemas/grantledger.cedarschema) first; one that does not validate
    /// is refused with Cedar's message and exit 2.
    Check {
        /// The catalog (TOML).
        #[arg(long, value_name = "FILE")]
        catalog: PathBuf,
        /// The Cedar policies.
        #[arg(long, value_name = "FILE")]
        policies: PathBuf,
        /// Exception rules (TOML), if any.
        #[arg(long, value_name = "FILE")]
        exceptions: Option<PathBuf>,
        /// The request (JSON): principal, action, entitlement, resource,
        /// actions, optional ttl_requested_ms, ticket, justification,
        /// break_glass_reason, context; `at_ms` or `--at` gives its time.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// The decision's time (RFC 3339), overriding the request's `at_ms`.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the table tests kept next to a policy set, for CI.
    ///
    /// DIR holds `catalog.toml`, `policies.cedar`, optionally
    /// `exceptions.toml`, and `*.test.toml` files of cases (a request and
    /// the expected outcome, policies and reasons). Prints one line per case
    /// and a diff for each failure; exit 0 when all pass, 1 when any fails,
    /// 2 when the directory cannot be loaded.
    Test {
        /// The policy directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Publish a policy set: a `policy_published` event holding the Cedar
    /// text, the exception rules, their hash and who published them. From
    /// then on the policy engine decides every request, and each decision
    /// cites that hash.
    ///
    /// The policies are loaded into the engine against the catalog in force
    /// first; a set that does not parse, validate or fit the catalog is
    /// refused with Cedar's (or the engine's) message, exit 2, and nothing
    /// is written.
    ///
    /// Two ways: `--data DIR` opens a stopped ledger's log for writing (a
    /// running ledger holds its lock). `--nats URL` publishes through the
    /// running ledger: the set goes on `grants.policy.<tenant>` (only the
    /// `policy_author` and `admin` users of the shipped NATS config may
    /// publish there), the ledger decides it in its next batch, and the
    /// command waits for the ledger's receipt (`--timeout`), printed once the
    /// event is committed, or the refusal's reason and detail (exit 2).
    #[command(after_help = PUBLISH_NATS_HELP)]
    Publish {
        /// Where to publish it.
        #[command(flatten)]
        to: PublishTo,
        /// The Cedar policies.
        #[arg(long, value_name = "FILE")]
        policies: PathBuf,
        /// Exception rules (TOML), if any.
        #[arg(long, value_name = "FILE")]
        exceptions: Option<PathBuf>,
        /// Who publishes it.
        #[arg(long, value_name = "PRINCIPAL", default_value = "policy-admin")]
        by: String,
    },
}

/// What `policy publish --help` and `catalog publish --help` add.
const PUBLISH_NATS_HELP: &str = "\
Through a running ledger:
  export GRANTLEDGER_NATS_PASSWORD=...   # the policy_author user's password
  grantledger policy publish --nats nats://127.0.0.1:4222 --tenant acme \\
    --user policy_author --inbox-prefix _INBOX_POLICY \\
    --policies policies.cedar --exceptions exceptions.toml --by alice
prints `published policy <hash> at sequence <n>` once the ledger committed it,
or, when the ledger refused it, `error: ... refused by the ledger: <reason>: <detail>`
(exit 2; `policy_invalid` with Cedar's message, say) and nothing was recorded.";

/// `grantledger catalog ...`
#[derive(Subcommand, Debug)]
pub enum CatalogAction {
    /// Publish a catalog of entitlements: a `catalog_published` event
    /// holding the TOML text, its hash and who published it. Later
    /// decisions use it and cite its hash.
    ///
    /// A catalog that does not parse, or that the policy set in force does
    /// not fit, is refused with the catalog's (or Cedar's) message, exit 2,
    /// and nothing is written; the catalog in force stays in force.
    ///
    /// Two ways, as for `policy publish`: `--data DIR` opens a stopped
    /// ledger's log for writing; `--nats URL` publishes through the running
    /// ledger on `grants.policy.<tenant>` and waits for its receipt.
    #[command(after_help = CATALOG_NATS_HELP)]
    Publish {
        /// Where to publish it.
        #[command(flatten)]
        to: PublishTo,
        /// The catalog (TOML).
        #[arg(long, value_name = "FILE")]
        catalog: PathBuf,
        /// Who publishes it.
        #[arg(long, value_name = "PRINCIPAL", default_value = "catalog-admin")]
        by: String,
    },
}

/// What `catalog publish --help` adds.
const CATALOG_NATS_HELP: &str = "\
Through a running ledger:
  export GRANTLEDGER_NATS_PASSWORD=...   # the policy_author user's password
  grantledger catalog publish --nats nats://127.0.0.1:4222 --tenant acme \\
    --user policy_author --inbox-prefix _INBOX_POLICY --catalog catalog.toml --by alice
prints `published catalog <hash> at sequence <n>` once the ledger committed it,
or, when the ledger refused it, `error: ... refused by the ledger: <reason>: <detail>`
(exit 2; `catalog_invalid` with the catalog's message, say) and nothing was recorded.";

/// Where `policy publish` and `catalog publish` put what they publish: a
/// stopped ledger's log, or the running ledger through NATS.
#[derive(clap::Args, Debug)]
pub struct PublishTo {
    /// Directory of the log (stop the ledger first).
    #[arg(long, value_name = "DIR", required_unless_present = "nats", conflicts_with = "nats")]
    data: Option<PathBuf>,
    /// Publish through the ledger running on this NATS server instead.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// With --nats: how to log in.
    #[command(flatten)]
    login: NatsLogin,
    /// With --nats: the inbox prefix the receipt comes to (the shipped
    /// config gives `policy_author` `_INBOX_POLICY`).
    #[arg(long, value_name = "PREFIX", requires = "nats")]
    inbox_prefix: Option<String>,
    /// With --nats: how long to wait for the ledger's receipt, in seconds.
    #[arg(long, value_name = "S", default_value_t = RECEIPT_WAIT_S, requires = "nats",
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// The tenant (partition) the log belongs to.
    #[arg(long, value_name = "T", default_value = "acme")]
    tenant: String,
}

/// Where `publish` puts a policy set or a catalog.
enum Target {
    /// A stopped ledger's log directory.
    Data(PathBuf),
    /// The running ledger, through NATS.
    Nats(grantledger_nats::policy_admin::AdminConnection),
}

impl Target {
    fn new(to: PublishTo) -> anyhow::Result<Target> {
        let PublishTo { data, nats, login, inbox_prefix, timeout: timeout_s, tenant } = to;
        match (data, nats) {
            (Some(data), _) => Ok(Target::Data(data)),
            (None, Some(url)) => Ok(Target::Nats(grantledger_nats::policy_admin::AdminConnection {
                url,
                tenant,
                user_password: login.user_password()?,
                creds_file: login.creds,
                inbox_prefix,
                timeout: std::time::Duration::from_secs(10),
                receipt_wait: std::time::Duration::from_secs(timeout_s),
            })),
            (None, None) => Err(anyhow!("give --data DIR (a stopped ledger) or --nats URL (a running one)")),
        }
    }
}

/// Runs `grantledger catalog ...`.
pub fn catalog(action: CatalogAction) -> Result<(), Failure> {
    let CatalogAction::Publish { to, catalog, by } = action;
    let tenant = to.tenant.clone();
    let target = Target::new(to)?;
    let published_by = PrincipalId::new(by.as_str()).map_err(|e| anyhow!("--by `{by}`: {e}"))?;
    let text = read(&catalog)?;
    let what = format!("`{}`", catalog.display());
    match target {
        Target::Data(data) => {
            let staged = stage_into_log(&data, &tenant, Command::PublishCatalog { text, published_by }, "catalog-publish", &what)?;
            let Some(Event::CatalogPublished(published)) = staged.events.first() else {
                unreachable!("publishing a catalog records exactly its event")
            };
            println!("published catalog {} at sequence {}", published.catalog_hash, staged.sequence_first);
            Ok(())
        }
        Target::Nats(connection) => {
            let receipt = through_ledger(&connection, &PolicyInput::Catalog { text, published_by }, &what)?;
            println!(
                "published catalog {} at sequence {}",
                receipt.catalog_hash.as_deref().unwrap_or("?"),
                first_sequence(&receipt)
            );
            Ok(())
        }
    }
}

/// Runs `grantledger policy ...`.
pub fn policy(action: PolicyAction) -> Result<(), Failure> {
    match action {
        PolicyAction::Check { catalog, policies, exceptions, request, at, json } => {
            check(&catalog, &policies, exceptions.as_deref(), &request, at.as_deref(), json)
        }
        PolicyAction::Publish { to, policies, exceptions, by } => {
            let tenant = to.tenant.clone();
            let target = Target::new(to)?;
            publish(target, &policies, exceptions.as_deref(), &by, &tenant)
        }
        PolicyAction::Test { dir } => {
            let report = runner::run_dir(&dir).map_err(|e| anyhow!("`{}`: {e}", dir.display()))?;
            println!("{report}");
            if report.all_passed() { Ok(()) } else { Err(Failure::Damaged) }
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

fn check(
    catalog: &Path,
    policies: &Path,
    exceptions: Option<&Path>,
    request: &Path,
    at: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let schema = GrantledgerSchema::shipped().map_err(|e| anyhow!("the shipped Cedar schema: {e}"))?;
    let exceptions_text = exceptions.map(read).transpose()?;
    let engine = Engine::from_texts(&schema, &read(catalog)?, &read(policies)?, exceptions_text.as_deref())
        .map_err(|e| anyhow!("{e}"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&read(request)?).with_context(|| format!("`{}` is not JSON", request.display()))?;
    if let Some(at) = at {
        let time = chrono::DateTime::parse_from_rfc3339(at)
            .with_context(|| format!("--at `{at}`: expected RFC 3339, like 2026-11-21T02:00:00Z"))?;
        value["at_ms"] = time.timestamp_millis().into();
    } else if value.get("at_ms").is_none() {
        value["at_ms"] = chrono::Utc::now().timestamp_millis().into();
    }
    let request = PolicyRequest::from_json_value(value).map_err(|e| anyhow!("`{}`: {e}", request.display()))?;
    let decision = engine.evaluate(&request).map_err(|e| anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&decision).expect("serializable"));
    } else {
        println!("outcome:     {}", serde_json::to_string(&decision.outcome).expect("serializable"));
        let policies = if decision.determining_policies.is_empty() {
            "(none)".to_owned()
        } else {
            decision.determining_policies.join(", ")
        };
        println!("policies:    {policies}");
        println!("reasons:     {}", decision.reasons.join(", "));
        for detail in &decision.details {
            println!("             - {detail}");
        }
        println!("ttl granted: {} ms", decision.ttl_granted_ms);
    }
    Ok(())
}

fn publish(target: Target, policies: &Path, exceptions: Option<&Path>, by: &str, tenant: &str) -> Result<(), Failure> {
    let published_by = PrincipalId::new(by).map_err(|e| anyhow!("--by `{by}`: {e}"))?;
    let policy_text = read(policies)?;
    let exceptions_text = exceptions.map(read).transpose()?;
    let what = format!("`{}`", policies.display());
    match target {
        Target::Data(data) => {
            let command = Command::PublishPolicy { policy_text, exceptions_text, published_by };
            let staged = stage_into_log(&data, tenant, command, "policy-publish", &what)?;
            let Some(Event::PolicyPublished(published)) = staged.events.first() else {
                unreachable!("publishing a policy records exactly its event")
            };
            println!("published policy {} at sequence {}", published.policy_hash, staged.sequence_first);
        }
        Target::Nats(connection) => {
            let input = PolicyInput::Policy { policy_text, exceptions_text, published_by };
            let receipt = through_ledger(&connection, &input, &what)?;
            println!(
                "published policy {} at sequence {}",
                receipt.policy_hash.as_deref().unwrap_or("?"),
                first_sequence(&receipt)
            );
        }
    }
    Ok(())
}

/// Decides `command` into the stopped ledger's log in `data` and commits it;
/// a refusal names `what` and the rule.
fn stage_into_log(
    data: &Path,
    tenant: &str,
    command: Command,
    causation: &str,
    what: &str,
) -> anyhow::Result<grantledger_ledger::Staged> {
    use grantledger_events::{Causation, TenantId, Timestamp};
    use grantledger_ledger::{Input, Ledger};

    let tenant = TenantId::new(tenant).map_err(|e| anyhow!("--tenant: {e}"))?;
    let causation = Causation::Input(causation.to_owned());
    let mut ledger = Ledger::open(data, tenant, grantledger_log::LogOptions::default())
        .with_context(|| format!("cannot open the log in `{}`", data.display()))?;
    let mut batch = ledger.begin(Timestamp(chrono::Utc::now().timestamp_millis()))?;
    let staged = batch
        .stage(Input { command, producer: "cli".into(), causation })
        .map_err(|rejection| anyhow!("{what} refused ({}): {rejection}", rejection.code()))?;
    batch.commit()?;
    Ok(staged)
}

/// Publishes `input` through the running ledger and returns its
/// `committed` receipt; a refusal is an error naming `what`, the reason and
/// the detail.
fn through_ledger(
    connection: &grantledger_nats::policy_admin::AdminConnection,
    input: &PolicyInput,
    what: &str,
) -> anyhow::Result<grantledger_nats::ledger_service::ServiceReceipt> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let receipt = runtime
        .block_on(grantledger_nats::policy_admin::publish(connection, input))
        .map_err(|error| anyhow!(error))?;
    if receipt.status != "committed" {
        return Err(anyhow!(
            "{what} refused by the ledger: {}: {}",
            receipt.reason.as_deref().unwrap_or(&receipt.status),
            receipt.detail.as_deref().unwrap_or("")
        ));
    }
    Ok(receipt)
}

/// The first sequence a receipt names (the one event a publication records).
fn first_sequence(receipt: &grantledger_nats::ledger_service::ServiceReceipt) -> String {
    receipt.sequences.first().map_or_else(|| "?".to_owned(), u64::to_string)
}
