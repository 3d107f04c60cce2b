//! Settings: every knob is a command-line flag and an environment variable with a default, so
//! `authd serve` works on a fresh machine with nothing set. Secrets (database and SMTP URLs, which
//! may carry passwords) are `SecretString` and never reach `Debug` output or logs.

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use std::{net::SocketAddr, num::NonZeroUsize, path::PathBuf, time::Duration};

/// Command line of the `authd` binary.
#[derive(Debug, Parser)]
#[command(
    name = "authd",
    version,
    about = "Authentication microservice over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server and the HTTP side port (migrates the database first).
    Serve(Box<Settings>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseSettings),
    /// Service credentials for callers of Introspect (AUTHD_INTROSPECT_CLIENTS).
    #[command(subcommand)]
    IntrospectClient(IntrospectClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum IntrospectClientCommand {
    /// Make a credential: prints a fresh secret, once, and the entry for AUTHD_INTROSPECT_CLIENTS.
    New {
        /// Name of the calling service (letters, digits, `.`, `_`, `-`).
        client_id: String,
    },
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// SQLite file (`sqlite://authd.db?mode=rwc`) or `postgres://…`; falls back to DATABASE_URL.
    #[arg(
        long = "database-url",
        env = "AUTHD_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<SecretString>,
    /// Most connections kept open to the database.
    #[arg(long, env = "AUTHD_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
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

/// Everything `authd serve` can be told.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// Do not apply pending migrations at start (for pipelines that run `authd migrate`).
    #[arg(long, env = "AUTHD_NO_MIGRATE")]
    pub no_migrate: bool,

    /// gRPC listen address.
    #[arg(long, env = "AUTHD_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP side port: JWKS, health, metrics.
    #[arg(long, env = "AUTHD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// `iss` claim of access tokens [default: http://<AUTHD_HTTP_ADDR>].
    #[arg(long, env = "AUTHD_ISSUER")]
    issuer: Option<String>,
    /// `aud` claim of access tokens (comma-separated for several).
    #[arg(
        long,
        env = "AUTHD_AUDIENCE",
        default_value = "authd",
        value_delimiter = ','
    )]
    pub audience: Vec<String>,
    /// Base URL of the links in mails.
    #[arg(long, env = "AUTHD_APP_URL", default_value = "http://localhost:3000")]
    pub app_url: String,

    /// SMTP relay (`smtp://host:port`, `smtps://user:pass@host`). Unset: mails go to the log.
    #[arg(long, env = "AUTHD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// Sender of mails.
    #[arg(
        long,
        env = "AUTHD_MAIL_FROM",
        default_value = "authd <no-reply@localhost>"
    )]
    pub mail_from: String,

    /// Access token lifetime.
    #[arg(long, env = "AUTHD_ACCESS_TTL", default_value = "15m", value_parser = parse_duration)]
    pub access_ttl: Duration,
    /// Refresh token (session) lifetime; each refresh extends the session by this much.
    #[arg(long, env = "AUTHD_REFRESH_TTL", default_value = "7d", value_parser = parse_duration)]
    pub refresh_ttl: Duration,
    /// Email verification token lifetime.
    #[arg(long, env = "AUTHD_VERIFY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub verify_ttl: Duration,
    /// Password reset token lifetime.
    #[arg(long, env = "AUTHD_RESET_TTL", default_value = "1h", value_parser = parse_duration)]
    pub reset_ttl: Duration,
    /// Refuse login until the email is verified.
    #[arg(long, env = "AUTHD_REQUIRE_VERIFIED_EMAIL", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_verified_email: bool,
    /// A spent refresh token may be exchanged again within this window without counting as theft.
    #[arg(long, env = "AUTHD_REFRESH_REUSE_GRACE", default_value = "0s", value_parser = parse_duration)]
    pub refresh_reuse_grace: Duration,

    #[command(flatten)]
    pub password: PasswordSettings,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub tls: TlsSettings,
    #[command(flatten)]
    pub introspect: IntrospectSettings,

    /// Log lines as `text` or `json`.
    #[arg(long, env = "AUTHD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

impl Settings {
    /// The `iss` claim: the setting, or the HTTP side port's URL.
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.http_addr))
    }
}

/// How passwords are hashed and what they must look like.
#[derive(Debug, Clone, Args)]
pub struct PasswordSettings {
    /// Algorithm for new hashes; hashes of the other kind still verify and are upgraded at login.
    #[arg(
        long = "password-hash",
        env = "AUTHD_PASSWORD_HASH",
        default_value = "argon2id"
    )]
    pub algorithm: HashAlgorithm,
    /// argon2id memory cost in KiB.
    #[arg(long, env = "AUTHD_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "AUTHD_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "AUTHD_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// bcrypt cost, when bcrypt is chosen.
    #[arg(long, env = "AUTHD_BCRYPT_COST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
    /// Hashes running at once; more callers wait [default: number of CPUs].
    #[arg(long, env = "AUTHD_MAX_CONCURRENT_HASHES")]
    pub max_concurrent_hashes: Option<NonZeroUsize>,
    /// Minimum password length in characters (the maximum is 128).
    #[arg(long, env = "AUTHD_PASSWORD_MIN_LENGTH", default_value_t = 8, value_parser = clap::value_parser!(u16).range(8..=128))]
    pub min_length: u16,
}

impl PasswordSettings {
    pub fn max_concurrent_hashes(&self) -> usize {
        self.max_concurrent_hashes
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }
}

/// Brakes against guessing and mail flooding. Counted per email address, in this process.
#[derive(Debug, Clone, Args)]
pub struct LimitSettings {
    /// Failed logins for one email within the window before further attempts are refused.
    #[arg(long, env = "AUTHD_LOGIN_MAX_FAILURES", default_value_t = 10)]
    pub login_max_failures: u32,
    /// Mails (verification, reset) requested for one email within the window.
    #[arg(long, env = "AUTHD_MAIL_MAX_REQUESTS", default_value_t = 5)]
    pub mail_max_requests: u32,
    /// Window of both limits.
    #[arg(long, env = "AUTHD_LIMIT_WINDOW", default_value = "15m", value_parser = parse_duration)]
    pub window: Duration,
}

/// TLS on the gRPC port. The files are re-read while authd runs, so a renewed certificate is
/// served to new connections without a restart. The HTTP side port stays plain.
#[derive(Debug, Clone, Args)]
pub struct TlsSettings {
    /// PEM certificate chain of the gRPC port; with AUTHD_TLS_KEY it turns TLS on.
    #[arg(long, env = "AUTHD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "AUTHD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate signed by one (mTLS), and such
    /// a client may call Introspect.
    #[arg(long, env = "AUTHD_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are checked for changes; 0 turns reloading off.
    #[arg(long, env = "AUTHD_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// Time a client gets to complete the TLS handshake before its connection is closed.
    #[arg(long, env = "AUTHD_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
}

/// Who may call Introspect.
#[derive(Debug, Clone, Args)]
pub struct IntrospectSettings {
    /// Service credentials allowed to call Introspect, comma-separated `client_id:sha256-hex`
    /// entries made by `authd introspect-client new ID`. Unset (and no AUTHD_TLS_CLIENT_CA):
    /// Introspect is open to anyone who reaches the gRPC port.
    #[arg(long, env = "AUTHD_INTROSPECT_CLIENTS", hide_env_values = true)]
    pub introspect_clients: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashAlgorithm {
    Argon2id,
    Bcrypt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `90s`, `15m`, `24h`, `7d` (or a bare `0`). Whole numbers only.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{raw}` needs a unit: s, m, h or d (for example 15m)"))?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration such as 90s, 15m, 24h or 7d"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{raw}`: unknown unit `{unit}`; use s, m, h or d")),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{raw}` is too long"))
}

/// Keeps secrets printable in `Debug` without revealing them.
pub fn redact(url: &SecretString) -> String {
    let url = url.expose_secret();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn redact_hides_credentials() {
        let url = SecretString::from("postgres://app:hunter2@db:5432/auth");
        assert_eq!(redact(&url), "postgres://***@db:5432/auth");
        assert_eq!(
            redact(&SecretString::from("sqlite://a.db")),
            "sqlite://a.db"
        );
    }

    #[test]
    fn defaults_need_nothing_set() {
        let cli = Cli::try_parse_from(["authd", "serve"]);
        let Ok(Cli {
            command: Command::Serve(settings),
        }) = cli
        else {
            panic!("serve with no flags must parse");
        };
        assert_eq!(settings.access_ttl, Duration::from_secs(900));
        assert_eq!(settings.audience, vec!["authd".to_owned()]);
        assert!(settings.require_verified_email);
    }

    #[test]
    fn bad_duration_names_the_setting() {
        let err = Cli::try_parse_from(["authd", "serve", "--access-ttl", "soon"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--access-ttl"), "{err}");
    }
}
