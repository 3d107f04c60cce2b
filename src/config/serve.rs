//! Everything `authd serve` can be told, and the groups of settings that only it has (TLS,
//! who may call Introspect, the log format).

use super::database::DatabaseSettings;
use super::keys::KeySettings;
use super::password::PasswordSettings;
use super::throttle::ThrottleSettings;
use super::values::{parse_bool, parse_duration, parse_socket_addr};
use crate::domain::ClientId;
use clap::{Args, ValueEnum};
use secrecy::SecretString;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
    #[arg(long, env = "AUTHD_GRPC_ADDR", default_value = "127.0.0.1:50051", value_parser = parse_socket_addr)]
    pub grpc_addr: SocketAddr,
    /// HTTP side port: JWKS, health, metrics.
    #[arg(long, env = "AUTHD_HTTP_ADDR", default_value = "127.0.0.1:8080", value_parser = parse_socket_addr)]
    pub http_addr: SocketAddr,
    /// `iss` claim of access tokens [default: http://<AUTHD_HTTP_ADDR>].
    #[arg(long, env = "AUTHD_ISSUER")]
    pub(super) issuer: Option<String>,
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
