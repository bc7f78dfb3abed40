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
