//! The NATS login options every long-running subcommand takes.

use std::path::PathBuf;

/// How a process logs in to NATS: a credentials file, or a user and password.
#[derive(clap::Args, Debug)]
pub struct NatsLogin {
    /// NATS credentials file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "password"])]
    pub creds: Option<PathBuf>,
    /// NATS user.
    #[arg(long, value_name = "U", requires = "password")]
    pub user: Option<String>,
    /// NATS password.
    #[arg(long, value_name = "P", requires = "user")]
    pub password: Option<String>,
}

impl NatsLogin {
    /// The user and password, when both are given.
    pub fn user_password(&self) -> Option<(String, String)> {
        self.user.clone().zip(self.password.clone())
    }
}
