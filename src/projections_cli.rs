//! The projections offline: rebuilt from a log directory into their own
//! stores (`replay --projector`), and `why` answered from audit-evidence,
//! rebuilt from the log or asked of the running projector (`why --nats`).

use std::path::Path;

use anyhow::{Context, anyhow};
use grantledger_events::{PrincipalId, ResourceId, Timestamp};
use grantledger_log::Log;
use grantledger_projector::{AuditEvidence, Digest, PROJECTION_NAMES, Projector, rebuild_from_log};

use crate::{Failure, progress};

fn open_read_only(data: &Path) -> anyhow::Result<Log> {
    Log::open_read_only(data).with_context(|| format!("cannot open the log in `{}`", data.display()))
}

/// Rebuilds projection `name` from the log into `store` (a temporary
/// directory when absent) and returns its digest.
pub fn rebuild(log: &Log, name: &str, store: Option<&Path>) -> Result<Digest, Failure> {
    let temp;
    let dir = match store {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("a temporary directory for the projection")?;
            temp.path()
        }
    };
    let bar = progress::bar(log.head().sequence, name);
    let result = rebuild_from_log(log, name, dir, |sequence| {
        if sequence % 4096 == 0 {
            bar.set_position(sequence);
        }
    });
    bar.finish_and_clear();
    result.map_err(|error| match error.kind() {
        grantledger_projector::ProjectorErrorKind::UnknownProjection
        | grantledger_projector::ProjectorErrorKind::StoreNotEmpty => Failure::Error(anyhow!("{error}")),
        _ => {
            eprintln!("replay failed: {error}");
            Failure::Damaged
        }
    })
}

/// `grantledger replay --projector NAME [--store DIR]`.
pub fn replay_projector(data: &Path, name: &str, store: Option<&Path>, json: bool) -> Result<(), Failure> {
    let log = open_read_only(data)?;
    let digest = rebuild(&log, name, store)?;
    if json {
        println!("{}", serde_json::to_string(&digest).expect("serializable"));
    } else {
        println!("{} at sequence {}: {}", digest.projection, digest.sequence, digest.digest);
    }
    Ok(())
}

/// Every projection's digest, rebuilt from the log in temporary stores.
pub fn all_digests(log: &Log) -> Result<Vec<Digest>, Failure> {
    PROJECTION_NAMES.iter().map(|name| rebuild(log, name, None)).collect()
}

/// `grantledger why --data DIR --principal P --resource R --at T`.
pub fn why(data: &Path, principal: &str, resource: &str, at: &str, json: bool, bundle: bool) -> Result<(), Failure> {
    let (principal, resource, at) = why_question(principal, resource, at)?;
    let log = open_read_only(data)?;
    let temp = tempfile::tempdir().context("a temporary directory for audit-evidence")?;
    let bar = progress::bar(log.head().sequence, "audit-evidence");
    let projector = Projector::<AuditEvidence>::rebuild(&log, temp.path(), |sequence| {
        if sequence % 4096 == 0 {
            bar.set_position(sequence);
        }
    });
    bar.finish_and_clear();
    let projector = projector.map_err(|e| {
        eprintln!("rebuilding audit-evidence failed: {e}");
        Failure::Damaged
    })?;
    let answer = projector.why(&principal, &resource, at).map_err(|e| anyhow!("{e}"))?;
    if bundle {
        // The evidence of every grant the answer cites, provable offline.
        let grants: Vec<_> = answer.grants.iter().map(|g| g.grant_id.clone()).collect();
        if grants.is_empty() {
            return Err(anyhow!(
                "`{}` had no access to `{}` at {at}: there is no grant to bundle evidence for",
                principal.as_str(),
                resource.as_str()
            )
            .into());
        }
        let description = format!("why {} had access to {} at {at}", principal.as_str(), resource.as_str());
        let subject = grantledger_proof::Subject::WhyQuery { description };
        println!("{}", crate::evidence::bundle(&log, subject, &grants, None)?);
        return Ok(());
    }
    print_why(&serde_json::to_value(&answer).expect("serializable"), json);
    Ok(())
}

/// The checked question of `why`: principal, resource and time.
fn why_question(principal: &str, resource: &str, at: &str) -> Result<(PrincipalId, ResourceId, Timestamp), Failure> {
    let principal = PrincipalId::new(principal.to_owned()).map_err(|e| anyhow!("--principal `{principal}`: {e}"))?;
    let resource = ResourceId::new(resource.to_owned()).map_err(|e| anyhow!("--resource `{resource}`: {e}"))?;
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .with_context(|| format!("--at `{at}`: expected RFC 3339, like 2026-11-21T02:00:00Z"))?;
    Ok((principal, resource, Timestamp(at.timestamp_millis())))
}

/// `grantledger why --nats URL ...`: the same question to the running
/// audit-evidence projector.
pub fn why_running(
    url: &str,
    tenant: &str,
    login: crate::nats_args::NatsLogin,
    principal: &str,
    resource: &str,
    at: &str,
    json: bool,
) -> Result<(), Failure> {
    let (principal, resource, at) = why_question(principal, resource, at)?;
    let connection = grantledger_nats::projector_service::QueryConnection {
        url: url.to_owned(),
        tenant: tenant.to_owned(),
        user_password: login.user_password()?,
        creds_file: login.creds,
        inbox_prefix: None,
        timeout: std::time::Duration::from_secs(10),
    };
    let body = serde_json::json!({ "principal": principal, "resource": resource, "at_ms": at.0 });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = runtime
        .block_on(grantledger_nats::projector_service::ask(&connection, "why", &body))
        .map_err(|error| anyhow!(error))?;
    print_why(&answer, json);
    Ok(())
}

/// The answer, as JSON or for people: yes or no, then each grant's evidence
/// chain.
fn print_why(value: &serde_json::Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).expect("serializable"));
        return;
    }
    let field = |name: &str| match value.get(name) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let had_access = value.get("had_access").and_then(|v| v.as_bool()).unwrap_or(false);
    let at = Timestamp(value.get("at").and_then(|v| v.as_i64()).unwrap_or_default());
    println!(
        "{} {} access to {} at {at} (log up to sequence {})",
        field("principal"),
        if had_access { "HAD" } else { "did NOT have" },
        field("resource"),
        field("as_of_sequence")
    );
    if let Some(grants) = value.get("grants").and_then(|g| g.as_array()) {
        for grant in grants {
            println!("{}", serde_json::to_string_pretty(grant).expect("serializable"));
        }
    }
}
