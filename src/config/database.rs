//! Where the database is: the settings every command that opens it shares.

use super::values::parse_duration;
use clap::Args;
use secrecy::SecretString;
use std::time::Duration;

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// SQLite file (`sqlite://authd.db?mode=rwc`) or `postgres://…`; falls back to DATABASE_URL.
    #[arg(
        long = "database-url",
        env = "AUTHD_DATABASE_URL",
        hide_env_values = true
    )]
    pub(super) database_url: Option<SecretString>,
    /// Most connections kept open to the database.
    #[arg(long = "database-max-connections", env = "AUTHD_DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_connections: u32,
    /// How long a call waits for a database connection before it answers UNAVAILABLE (and
    /// how long `/readyz` waits before it answers 503).
    #[arg(long = "database-timeout", env = "AUTHD_DATABASE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl DatabaseSettings {
    pub const DEFAULT_URL: &'static str = "sqlite://authd.db?mode=rwc";

    /// The URL to connect to: the flag or `AUTHD_DATABASE_URL`, else `DATABASE_URL`, else SQLite.
    pub fn url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => std::env::var("DATABASE_URL")
                .map(SecretString::from)
                .unwrap_or_else(|_| SecretString::from(Self::DEFAULT_URL)),
        }
    }
}
