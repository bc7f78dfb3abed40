//! The NATS login options every subcommand that talks to NATS takes.

use std::path::PathBuf;

use anyhow::anyhow;

/// The environment variable a NATS password is read from.
pub const PASSWORD_ENV: &str = "GRANTLEDGER_NATS_PASSWORD";

/// How a process logs in to NATS: a credentials file, or a user and password.
#[derive(clap::Args, Debug)]
pub struct NatsLogin {
    /// NATS credentials file.
    #[arg(long, value_name = "FILE", conflicts_with = "user")]
    pub creds: Option<PathBuf>,
    /// NATS user; its password comes from GRANTLEDGER_NATS_PASSWORD (or
    /// --password).
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// NATS password for --user. Prefer the environment variable: a
    /// command-line argument is visible to every local user in `ps`.
    #[arg(long, value_name = "P", env = PASSWORD_ENV, hide_env_values = true)]
    pub password: Option<String>,
}

impl NatsLogin {
    /// The user and password when a user is given; a user without a
    /// password is refused by name. A password without a user (the
    /// environment variable set for another command) is not used.
    pub fn user_password(&self) -> anyhow::Result<Option<(String, String)>> {
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => Ok(Some((user.clone(), password.clone()))),
            (Some(user), None) => Err(anyhow!(
                "`--user {user}` needs a password: set {PASSWORD_ENV} (or pass --password, which `ps` shows to everyone)"
            )),
            (None, _) => Ok(None),
        }
    }
}
