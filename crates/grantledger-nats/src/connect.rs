//! How every grantledger process connects to NATS: one bound for connecting
//! and for each request, a client name, the role's inbox prefix, and either
//! a user and password or a credentials file.

use std::path::PathBuf;
use std::time::Duration;

/// What a process needs to connect.
pub(crate) struct Connection<'a> {
    /// The server URL.
    pub url: &'a str,
    /// The client name the server shows (`grantledger-ledger-acme`, ...).
    pub name: String,
    /// Bound on connecting and on each request.
    pub timeout: Duration,
    /// The role's inbox prefix, if the deployment gives it one.
    pub inbox_prefix: Option<&'a String>,
    /// User and password.
    pub user_password: Option<&'a (String, String)>,
    /// A credentials file.
    pub creds_file: Option<&'a PathBuf>,
}

/// Connects; the error names what failed (the credentials file, or the
/// connection itself).
pub(crate) async fn connect(connection: Connection<'_>) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .request_timeout(Some(connection.timeout))
        .connection_timeout(connection.timeout)
        .name(connection.name);
    if let Some(prefix) = connection.inbox_prefix {
        options = options.custom_inbox_prefix(prefix.clone());
    }
    if let Some((user, password)) = connection.user_password {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(creds) = connection.creds_file {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|error| format!("cannot read credentials file `{}`: {error}", creds.display()))?;
    }
    options.connect(connection.url).await.map_err(|error| error.to_string())
}

/// The oldest nats-server the ledger runs against: its consumer on
/// `GRANT_INPUT` filters on several subjects (`filter_subjects`, added in
/// nats-server 2.10). An older server silently ignores that filter and would
/// hand the ledger every tenant's inputs, which it would refuse
/// (`unknown_tenant`) and terminate: another tenant's inputs lost.
pub const NATS_SERVER_VERSION_MIN: (u32, u32, u32) = (2, 10, 0);

/// Refuses a server older than [`NATS_SERVER_VERSION_MIN`], naming both
/// versions; `version` is what the server's `INFO` says (`2.15.1`).
pub(crate) fn check_server_version(version: &str) -> Result<(), String> {
    let (major, minor, patch) = NATS_SERVER_VERSION_MIN;
    let parsed = {
        let mut parts = version.trim().trim_start_matches('v').split(['.', '-']);
        let mut next = || parts.next()?.parse::<u32>().ok();
        (|| Some((next()?, next()?, next()?)))()
    };
    match parsed {
        Some(found) if found >= NATS_SERVER_VERSION_MIN => Ok(()),
        Some(_) => Err(format!(
            "nats-server `{version}` is older than {major}.{minor}.{patch}, which grantledger needs \
             (multi-subject consumer filters; an older server ignores them and would hand this \
             ledger every tenant's inputs)"
        )),
        None => Err(format!(
            "nats-server reports version `{version}`, which is not a version; grantledger needs \
             {major}.{minor}.{patch} or later"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_2_10_are_refused_naming_the_version() {
        for recent in ["2.10.0", "2.15.1", "2.10.0-beta.1", "3.0.0", "v2.11.4"] {
            assert_eq!(check_server_version(recent), Ok(()), "{recent}");
        }
        for old in ["2.9.10", "2.2.0", "1.99.99"] {
            let error = check_server_version(old).unwrap_err();
            assert!(error.contains(&format!("`{old}`")), "{error}");
            assert!(error.contains("2.10.0"), "{error}");
        }
        let error = check_server_version("unknown").unwrap_err();
        assert!(error.contains("`unknown`"), "{error}");
    }

    #[test]
    fn the_tests_run_no_server_older_than_the_ledger_accepts() {
        // The test helper keeps its own copy (it knows no NATS crate).
        assert_eq!(grantledger_testkit::NATS_SERVER_VERSION_MIN, NATS_SERVER_VERSION_MIN);
    }
}
