//! Settings: every knob is a command-line flag and an environment variable with a default, so
//! `authd serve` works on a fresh machine with nothing set. Secrets (database and SMTP URLs, which
//! may carry passwords) are `SecretString` and never reach `Debug` output or logs.

mod check;
mod import;
mod preset;
mod source_table;

pub use check::{
    CliError, Loaded, Problem, SettingsError, parse_args, parse_bool, smtp_url_problem,
};
pub use import::{ImportArgs, Preset};
pub use preset::source_table;
pub use source_table::{Identifier, SourceTable, TableName};

pub use crate::crypto::keys::SigningAlg;
pub use crate::crypto::password::HashAlgorithm;
use crate::crypto::password::HashParams;
use crate::crypto::seal::Sealer;
use crate::domain::ClientId;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use percent_encoding::percent_decode_str;
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
    /// Signing keys: list them, rotate, retire a leaked one, reseal them under a new
    /// key-encryption key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Move users in from an existing app's PostgreSQL database or a JSON Lines file, bcrypt
    /// hashes and all (migrates the database first). Running it again changes nothing.
    Import(Box<ImportArgs>),
    /// Ask the local server's gRPC health service; exit 0 when SERVING, 1 otherwise (container
    /// HEALTHCHECK).
    Healthcheck(HealthcheckSettings),
}

/// Where `authd healthcheck` finds the server: the same variables `serve` reads, so in a
/// container it needs no flags. An unspecified listen address (`0.0.0.0`, `[::]`) means loopback.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckSettings {
    /// gRPC address the server listens on.
    #[arg(long, env = "AUTHD_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP side port; asked (`/readyz`) instead of gRPC when the gRPC port requires client
    /// certificates (AUTHD_TLS_CLIENT_CA).
    #[arg(long, env = "AUTHD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// The certificate the gRPC port serves: with it, the check speaks TLS and accepts exactly
    /// that certificate.
    #[arg(long, env = "AUTHD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Set when the gRPC port requires client certificates (mTLS).
    #[arg(long, env = "AUTHD_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// How long the whole check may take, connection included.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum IntrospectClientCommand {
    /// Make a credential: prints a fresh secret, once, and the entry for AUTHD_INTROSPECT_CLIENTS.
    New {
        /// Name of the calling service (letters, digits, `.`, `_`, `-`).
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every signing key with its kid, algorithm, state (next, active, retiring, retired) and
    /// times.
    List {
        #[command(flatten)]
        keys: KeysArgs,
        /// One JSON object per key and line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add a `next` key of AUTHD_SIGNING_ALG: published in the JWK Set now, signing after
    /// AUTHD_KEY_PUBLISH_LEAD. A `next` key already waiting is kept.
    Rotate(KeysArgs),
    /// Remove a key from the JWK Set at once (a leaked key): tokens it signed stop validating.
    /// When it is the key signing, the newest remaining published key signs instead, or a new
    /// one.
    Retire {
        /// The key's id (`kid`), as `authd keys list` shows it.
        kid: String,
        #[command(flatten)]
        keys: KeysArgs,
    },
    /// Seal every private key with AUTHD_KEY_ENCRYPTION_KEY (in the clear when it is unset),
    /// opening them with the old key. Then restart every replica with the new key.
    Reseal {
        #[command(flatten)]
        keys: KeysArgs,
        /// The key-encryption key the keys are sealed with now (unset: they are in the clear).
        #[arg(long, env = "AUTHD_OLD_KEY_ENCRYPTION_KEY", hide_env_values = true)]
        old_key_encryption_key: Option<SecretString>,
        /// A file holding the old key-encryption key.
        #[arg(
            long,
            env = "AUTHD_OLD_KEY_ENCRYPTION_KEY_FILE",
            conflicts_with = "old_key_encryption_key"
        )]
        old_key_encryption_key_file: Option<PathBuf>,
    },
    /// Print a fresh random key-encryption key, for AUTHD_KEY_ENCRYPTION_KEY.
    NewEncryptionKey,
}

/// What the `authd keys` commands need: the database, the key settings `serve` uses, and the
/// access token lifetime (how long a retiring key stays published).
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub keys: KeySettings,
    /// Access token lifetime, as `serve` has it.
    #[arg(long, env = "AUTHD_ACCESS_TTL", default_value = "15m", value_parser = parse_duration)]
    pub access_ttl: Duration,
}

/// Signing keys: algorithm, life cycle, and sealing at rest. See README, "Signing keys".
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    /// Algorithm of new signing keys (`EdDSA`, `ES256` or `RS256`); a change takes effect at
    /// the next rotation.
    #[arg(
        long,
        env = "AUTHD_SIGNING_ALG",
        default_value = "EdDSA",
        value_parser = clap::builder::PossibleValuesParser::new(SigningAlg::NAMES)
            .map(|name| SigningAlg::from_name(&name).unwrap_or(SigningAlg::EdDSA))
    )]
    pub signing_alg: SigningAlg,
    /// A new key is in the JWK Set this long before it signs: at least as long as verifiers
    /// and sidecars cache the set (Envoy 10 min by default, Istio 20 min).
    #[arg(long, env = "AUTHD_KEY_PUBLISH_LEAD", default_value = "20m", value_parser = parse_duration)]
    pub key_publish_lead: Duration,
    /// Automatic rotation: a new key signs this long after the last one started; `0` = off.
    #[arg(long, env = "AUTHD_KEY_ROTATION_INTERVAL", default_value = "30d", value_parser = parse_duration)]
    pub key_rotation_interval: Duration,
    /// How often each replica reads the keys again, so a rotation or retirement made by another
    /// replica or the CLI is in force everywhere within this long.
    #[arg(long, env = "AUTHD_KEY_RELOAD_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub key_reload_interval: Duration,
    /// Seals private keys at rest (AES-256-GCM): 32 bytes as 64 hex digits or base64. Unset:
    /// keys are stored in the clear.
    #[arg(long, env = "AUTHD_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<SecretString>,
    /// A file holding the key-encryption key (for secrets mounted as files).
    #[arg(
        long,
        env = "AUTHD_KEY_ENCRYPTION_KEY_FILE",
        conflicts_with = "key_encryption_key"
    )]
    pub key_encryption_key_file: Option<PathBuf>,
}

impl KeySettings {
    /// The key-encryption key, when one is set.
    pub fn sealer(&self) -> Result<Option<Sealer>, SettingsError> {
        read_sealer(
            self.key_encryption_key.as_ref(),
            self.key_encryption_key_file.as_deref(),
            "AUTHD_KEY_ENCRYPTION_KEY",
        )
    }
}

/// A key-encryption key from a setting or a file named by one; errors name the setting, never
/// the value.
pub fn read_sealer(
    value: Option<&SecretString>,
    file: Option<&std::path::Path>,
    setting: &str,
) -> Result<Option<Sealer>, SettingsError> {
    let text = match (value, file) {
        (Some(value), _) => value.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|err| {
                SettingsError::new(format!(
                    "{setting}_FILE: cannot read {}: {err}",
                    path.display()
                ))
            })?,
        (None, None) => return Ok(None),
    };
    Sealer::parse(&text)
        .map(Some)
        .map_err(|err| SettingsError::new(format!("{setting}: {err}")))
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

/// Everything `authd serve` can be told.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// Do not apply pending migrations at start (for pipelines that run `authd migrate`); start-up
    /// then fails if the database is not migrated.
    #[arg(long, env = "AUTHD_NO_MIGRATE", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
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
    /// `client_id` claim of access tokens whose Login names no client (RFC 9068); also the
    /// client of sessions from before client ids were recorded.
    #[arg(long, env = "AUTHD_DEFAULT_CLIENT_ID", default_value = "authd", value_parser = ClientId::from_setting)]
    pub default_client_id: ClientId,
    /// Base URL of the links in mails.
    #[arg(long, env = "AUTHD_APP_URL", default_value = "http://localhost:3000")]
    pub app_url: String,

    /// SMTP relay (`smtp://host:port`, `smtps://user:pass@host`). `serve` needs this or
    /// AUTHD_MAIL_TO_LOG.
    #[arg(long, env = "AUTHD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// Write mails, with their one-time links, to the log instead of sending them. For
    /// development only: anyone who reads the log can take over the accounts.
    #[arg(long, env = "AUTHD_MAIL_TO_LOG", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    pub mail_to_log: bool,
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
    /// How long the `mfa_token` of a login that needs a second factor stays good.
    #[arg(long, env = "AUTHD_MFA_TOKEN_TTL", default_value = "5m", value_parser = parse_duration)]
    pub mfa_token_ttl: Duration,
    /// The issuer authenticator apps show next to the account (the `otpauth://` URI's label).
    #[arg(long, env = "AUTHD_TOTP_ISSUER", default_value = "authd")]
    pub totp_issuer: String,
    /// Refuse login until the email is verified.
    #[arg(long, env = "AUTHD_REQUIRE_VERIFIED_EMAIL", default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    pub require_verified_email: bool,
    /// A spent refresh token may be exchanged again within this window without counting as theft.
    #[arg(long, env = "AUTHD_REFRESH_REUSE_GRACE", default_value = "0s", value_parser = parse_duration)]
    pub refresh_reuse_grace: Duration,
    /// A session ends this long after its login, however often it is refreshed.
    #[arg(long, env = "AUTHD_SESSION_MAX_LIFETIME", default_value = "30d", value_parser = parse_duration)]
    pub session_max_lifetime: Duration,
    /// Signup answers a taken email as if it were new, and mails the address's owner instead.
    #[arg(long, env = "AUTHD_SIGNUP_ENUMERATION_PROTECTION", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    pub signup_enumeration_protection: bool,
    /// How often expired sessions, tokens and throttle counters and old audit rows are deleted
    /// (`0` = never).
    #[arg(long, env = "AUTHD_CLEANUP_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub cleanup_interval: Duration,
    /// How long audit rows are kept.
    #[arg(long, env = "AUTHD_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// On SIGTERM, how long health and `/readyz` answer NOT_SERVING while the listeners still
    /// accept calls (so load balancers stop sending first); then in-flight calls are drained.
    #[arg(long, env = "AUTHD_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub password: PasswordSettings,
    #[command(flatten)]
    pub throttle: ThrottleSettings,
    #[command(flatten)]
    pub tls: TlsSettings,
    #[command(flatten)]
    pub introspect: IntrospectSettings,
    #[command(flatten)]
    pub keys: KeySettings,

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
        default_value = "argon2id",
        value_parser = clap::builder::PossibleValuesParser::new(HashAlgorithm::NAMES)
            .map(|name| HashAlgorithm::from_name(&name).unwrap_or(HashAlgorithm::Argon2id))
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
    /// Minimum length of new passwords in characters, counted after Unicode NFKC normalization
    /// (the maximum is 128). 15 follows NIST SP 800-63B rev 4 for a password that is the only
    /// factor; 8 is the lowest it goes. Login accepts existing passwords of 8 and more.
    #[arg(long = "password-min-length", env = "AUTHD_PASSWORD_MIN_LENGTH", default_value_t = 15, value_parser = clap::value_parser!(u16).range(8..=128))]
    pub min_length: u16,
    /// The name users know this service by: refused as a password, like "authd" (NIST's
    /// context-specific words).
    #[arg(long, env = "AUTHD_SERVICE_NAME", default_value = "authd")]
    pub service_name: String,
}

impl PasswordSettings {
    pub fn max_concurrent_hashes(&self) -> usize {
        self.max_concurrent_hashes
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// The hasher's cost, from these settings.
    pub fn hash_params(&self) -> HashParams {
        HashParams {
            algorithm: self.algorithm,
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            argon2_parallelism: self.argon2_parallelism,
            bcrypt_cost: self.bcrypt_cost,
            max_concurrent: self.max_concurrent_hashes(),
        }
    }
}

/// Throttling of guesses, mail requests and signups. Counters live in the database, so every
/// replica sees the same counts; a throttled key waits a delay that doubles with each further
/// failure (up to `max_delay`) instead of being locked out. See README, "Security".
#[derive(Debug, Clone, Args)]
pub struct ThrottleSettings {
    /// Failed logins from one client for one account before each further try waits a growing delay.
    #[arg(
        long = "throttle-client-account-failures",
        env = "AUTHD_THROTTLE_CLIENT_ACCOUNT_FAILURES",
        default_value_t = 5
    )]
    pub client_account_failures: u32,
    /// Failed logins for one account, from clients that have failed before, before they wait.
    /// Clients that have not been failing are not held back by this, so the owner still gets in.
    #[arg(
        long = "throttle-account-failures",
        env = "AUTHD_THROTTLE_ACCOUNT_FAILURES",
        default_value_t = 10
    )]
    pub account_failures: u32,
    /// Consecutive failed logins for one account after which only clients that have logged in
    /// to it before may try, until a password reset (NIST SP 800-63B: at most 100).
    #[arg(long = "throttle-account-max-failures", env = "AUTHD_THROTTLE_ACCOUNT_MAX_FAILURES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub account_max_failures: u32,
    /// Wrong second-factor codes for one account before each further try waits a growing
    /// delay. A right password does not clear them; only a right code does.
    #[arg(
        long = "throttle-account-mfa-failures",
        env = "AUTHD_THROTTLE_ACCOUNT_MFA_FAILURES",
        default_value_t = 5
    )]
    pub account_mfa_failures: u32,
    /// Failures (logins, refresh, verification and reset tokens) from one client address, across
    /// all accounts, before it waits.
    #[arg(
        long = "throttle-client-failures",
        env = "AUTHD_THROTTLE_CLIENT_FAILURES",
        default_value_t = 100
    )]
    pub client_failures: u32,
    /// Mails (verification, reset) asked for one account before each further one waits.
    #[arg(
        long = "throttle-account-mails",
        env = "AUTHD_THROTTLE_ACCOUNT_MAILS",
        default_value_t = 3
    )]
    pub account_mails: u32,
    /// Mail requests from one client address before it waits.
    #[arg(
        long = "throttle-client-mails",
        env = "AUTHD_THROTTLE_CLIENT_MAILS",
        default_value_t = 50
    )]
    pub client_mails: u32,
    /// Signups from one client address before it waits.
    #[arg(
        long = "throttle-client-signups",
        env = "AUTHD_THROTTLE_CLIENT_SIGNUPS",
        default_value_t = 20
    )]
    pub client_signups: u32,
    /// The longest delay a throttled key waits between tries.
    #[arg(long = "throttle-max-delay", env = "AUTHD_THROTTLE_MAX_DELAY", default_value = "15m", value_parser = parse_duration)]
    pub max_delay: Duration,
    /// A counter is forgotten this long after its last count.
    #[arg(long = "throttle-forget-after", env = "AUTHD_THROTTLE_FORGET_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub forget_after: Duration,
    /// A client that logged in to an account is known to it for this long: it is exempt from the
    /// account-wide limits (never from its own).
    #[arg(long = "throttle-known-client-for", env = "AUTHD_THROTTLE_KNOWN_CLIENT_FOR", default_value = "30d", value_parser = parse_duration)]
    pub known_client_for: Duration,
    /// Proxies (IP addresses or CIDR ranges, comma-separated) whose `x-forwarded-for` names the
    /// client. From any other peer the header is ignored.
    #[arg(
        long = "trusted-proxies",
        env = "AUTHD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
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
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `90s`, `15m`, `24h`, `7d` (or a bare `0`), up to a century. Whole numbers only.
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
        .filter(|d| *d <= check::MAX_DURATION)
        .ok_or_else(|| format!("`{raw}` is too long (at most 36500d)"))
}

/// A URL fit for logs and errors: user and password hidden, and any `password` parameter too.
pub fn redact(url: &SecretString) -> String {
    let raw = url.expose_secret();
    let shown = match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &raw[..scheme_end], &raw[at + 1..])
        }
        _ => raw.to_owned(),
    };
    scrub(&shown, url)
}

/// `text` (a driver's error message, say) with every secret part of `url` replaced by `***`:
/// the password of its user-info and the values of `password`-like query parameters, both as
/// written and percent-decoded. Works on URLs too malformed to parse.
pub fn scrub(text: &str, url: &SecretString) -> String {
    let raw = url.expose_secret();
    let mut secrets: Vec<String> = Vec::new();
    if let Some((_, rest)) = raw.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let userinfo = authority
            .rsplit_once('@')
            .map(|(info, _)| info)
            .unwrap_or_default();
        // The password is everything after the first `:` of the user-info; a malformed URL
        // may have an `@` or `/` in it, so take the widest reading too.
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password.to_owned());
        }
        if let Some((_, password)) = rest.rfind('@').and_then(|at| rest[..at].split_once(':')) {
            secrets.push(password.to_owned());
        }
    }
    if let Some((_, query)) = raw.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && key.to_ascii_lowercase().contains("password")
            {
                secrets.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = secrets
        .iter()
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    secrets.extend(decoded);
    // Longest first, so a secret that contains another is replaced whole.
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in &secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
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
        assert_eq!(settings.password.min_length, 15, "NIST SP 800-63B rev 4");
        assert_eq!(settings.password.service_name, "authd");
        assert_eq!(settings.default_client_id.as_str(), "authd");
    }

    #[test]
    fn a_bad_default_client_id_names_the_setting() {
        for bad in ["", "two words", "a/b", &"x".repeat(65)] {
            let err = Cli::try_parse_from(["authd", "serve", "--default-client-id", bad])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("--default-client-id"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn every_flag_is_its_variable_in_lower_case() {
        use clap::CommandFactory;
        fn walk(command: &clap::Command, checked: &mut usize) {
            for arg in command.get_arguments() {
                let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                    continue;
                };
                let env = env.to_string_lossy();
                let expected = env
                    .strip_prefix("AUTHD_")
                    .unwrap_or(&env)
                    .to_ascii_lowercase()
                    .replace('_', "-");
                assert_eq!(long, expected, "--{long} is set by {env}");
                *checked += 1;
            }
            for sub in command.get_subcommands() {
                walk(sub, checked);
            }
        }
        let mut checked = 0;
        walk(&Cli::command(), &mut checked);
        assert!(checked > 40, "only {checked} settings seen");
    }

    #[test]
    fn booleans_take_true_false_1_0() {
        for (raw, want) in [("true", true), ("1", true), ("FALSE", false), ("0", false)] {
            assert_eq!(parse_bool(raw), Ok(want), "{raw}");
        }
        for raw in ["yes", "", "2", "truee"] {
            assert!(parse_bool(raw).is_err(), "{raw}");
        }
        let parse = |args: &[&str]| {
            let mut all = vec!["authd", "serve", "--mail-to-log"];
            all.extend_from_slice(args);
            match parse_args(all).map(|l| l.cli.command) {
                Ok(Command::Serve(s)) => Some((s.no_migrate, s.require_verified_email)),
                _ => None,
            }
        };
        assert_eq!(parse(&["--no-migrate"]), Some((true, true)));
        assert_eq!(
            parse(&["--no-migrate=0", "--require-verified-email", "0"]),
            Some((false, false))
        );
        assert_eq!(parse(&["--require-verified-email=maybe"]), None);
    }

    /// The message for a bad value, as `authd` prints it.
    fn problem(args: &[&str]) -> String {
        let mut all = vec!["authd"];
        all.extend_from_slice(args);
        match parse_args(all) {
            Err(CliError::Invalid(err)) => err.to_string(),
            Err(CliError::Usage(err)) => panic!("usage error for {args:?}: {err}"),
            Ok(_) => panic!("{args:?} was accepted"),
        }
    }

    #[test]
    fn bad_values_are_refused_before_anything_starts() {
        let serve = |extra: &[&str]| {
            let mut args = vec!["serve", "--mail-to-log"];
            args.extend_from_slice(extra);
            problem(&args)
        };
        assert!(serve(&["--access-ttl", "0s"]).starts_with("--access-ttl: must be longer"));
        assert!(
            serve(&["--database-max-connections", "0"]).starts_with("--database-max-connections:")
        );
        assert!(
            serve(&["--issuer", "not a url"])
                .starts_with("--issuer: `not a url` is not an absolute URL")
        );
        assert!(serve(&["--issuer", "ftp://x"]).contains("https://"));
        assert!(serve(&["--issuer", "https://a.example/?x=1"]).contains("query"));
        assert!(serve(&["--audience", ""]).starts_with("--audience:"));
        assert!(serve(&["--audience", "a,,b"]).starts_with("--audience:"));
        assert!(serve(&["--app-url", "javascript:alert(1)"]).starts_with("--app-url:"));
        assert!(serve(&["--mail-from", "nobody"]).starts_with("--mail-from:"));
        assert!(
            serve(&["--throttle-client-failures", "0"]).starts_with("--throttle-client-failures:")
        );
        assert!(serve(&["--access-ttl", "99999d"]).contains("too long"));
        let both = serve(&["--smtp-url", "smtp://127.0.0.1:25"]);
        assert!(both.contains("both set"), "{both}");
        let neither = problem(&["serve"]);
        assert!(
            neither.contains("AUTHD_SMTP_URL") && neither.contains("AUTHD_MAIL_TO_LOG=true"),
            "{neither}"
        );
        // Several problems: each on its own line.
        assert_eq!(
            serve(&["--access-ttl", "0s", "--reset-ttl", "0s"])
                .lines()
                .count(),
            2
        );
    }

    #[test]
    fn a_bad_database_url_never_shows_its_password() {
        for url in [
            "postgres://app:hunter2@db:54x32/auth",
            "postgress://app:hunter2@db/auth",
            "mysql://app:hunter2@db/auth",
            "postgres://app:hunter2@/auth",
            "app:hunter2@db",
            "postgres://app:hunter2@db:99999/auth",
        ] {
            let err = problem(&["migrate", "--database-url", url]);
            assert!(err.starts_with("--database-url: "), "{err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
        assert!(problem(&["migrate", "--database-url", "mysql://a:b@c/d"]).contains("`mysql`"));
    }

    #[test]
    fn scrub_cuts_passwords_out_of_any_text() {
        let url = SecretString::from("postgres://app:p%40ss@db:5x/auth?sslpassword=kp&x=1");
        let text = "bad url postgres://app:p%40ss@db:5x/auth (p@ss) key kp";
        let clean = scrub(text, &url);
        assert!(
            !clean.contains("p%40ss") && !clean.contains("p@ss") && !clean.contains("kp"),
            "{clean}"
        );
        assert_eq!(
            redact(&SecretString::from("postgres://u@h/d?password=secret")),
            "postgres://***@h/d?password=***"
        );
    }

    #[test]
    fn scrub_decodes_escapes_and_keeps_broken_ones_as_written() {
        let url = SecretString::from("postgres://app:caf%C3%A9%zz%4@db/auth");
        let text = "auth failed for caf%C3%A9%zz%4 (café%zz%4)";
        assert_eq!(scrub(text, &url), "auth failed for *** (***)");
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
