//! `grantledger policy check|test`: the playground for policy authors.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use grantledger_policy::{Engine, GrantledgerSchema, PolicyRequest, runner};

use crate::Failure;

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
    /// Publish a policy set into a log: a `policy_published` event holding
    /// the Cedar text, the exception rules, their hash and who published
    /// them. From then on the policy engine decides every request, and each
    /// decision cites that hash.
    ///
    /// The policies are loaded into the engine against the catalog in force
    /// first; a set that does not parse, validate or fit the catalog is
    /// refused with Cedar's (or the engine's) message, exit 2, and nothing
    /// is written. Opens the log for writing: stop the ledger first.
    Publish {
        /// Directory of the log.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The Cedar policies.
        #[arg(long, value_name = "FILE")]
        policies: PathBuf,
        /// Exception rules (TOML), if any.
        #[arg(long, value_name = "FILE")]
        exceptions: Option<PathBuf>,
        /// Who publishes it.
        #[arg(long, value_name = "PRINCIPAL", default_value = "policy-admin")]
        by: String,
        /// The tenant (partition) the log belongs to.
        #[arg(long, value_name = "T", default_value = "acme")]
        tenant: String,
    },
}

/// Runs `grantledger policy ...`.
pub fn policy(action: PolicyAction) -> Result<(), Failure> {
    match action {
        PolicyAction::Check { catalog, policies, exceptions, request, at, json } => {
            check(&catalog, &policies, exceptions.as_deref(), &request, at.as_deref(), json)
        }
        PolicyAction::Publish { data, policies, exceptions, by, tenant } => {
            publish(&data, &policies, exceptions.as_deref(), &by, &tenant)
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

fn publish(data: &Path, policies: &Path, exceptions: Option<&Path>, by: &str, tenant: &str) -> Result<(), Failure> {
    use grantledger_core::Command;
    use grantledger_events::{Causation, Event, PrincipalId, TenantId, Timestamp};
    use grantledger_ledger::{Input, Ledger};

    let tenant = TenantId::new(tenant).map_err(|e| anyhow!("--tenant: {e}"))?;
    let published_by = PrincipalId::new(by).map_err(|e| anyhow!("--by: {e}"))?;
    let policy_text = read(policies)?;
    let exceptions_text = exceptions.map(read).transpose()?;
    let mut ledger = Ledger::open(data, tenant, grantledger_log::LogOptions::default())
        .with_context(|| format!("cannot open the log in `{}`", data.display()))?;
    let mut batch = ledger.begin(Timestamp(chrono::Utc::now().timestamp_millis())).map_err(anyhow::Error::from)?;
    let staged = batch
        .stage(Input {
            command: Command::PublishPolicy { policy_text, exceptions_text, published_by },
            producer: "cli".into(),
            causation: Causation::Input("policy-publish".into()),
        })
        .map_err(|rejection| anyhow!("`{}` refused ({}): {rejection}", policies.display(), rejection.code()))?;
    batch.commit().map_err(anyhow::Error::from)?;
    let Some(Event::PolicyPublished(published)) = staged.events.first() else {
        unreachable!("publishing a policy records exactly its event")
    };
    println!("published policy {} at sequence {}", published.policy_hash, staged.sequence_first);
    Ok(())
}
