//! The command line of the `authd` binary: its sub-commands, and the settings of those that are
//! not `serve` (healthcheck, keys, introspect-client).

use super::database::DatabaseSettings;
use super::import::ImportArgs;
use super::keys::KeySettings;
use super::serve::Settings;
use super::values::{parse_duration, parse_socket_addr};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
    #[arg(long, env = "AUTHD_GRPC_ADDR", default_value = "127.0.0.1:50051", value_parser = parse_socket_addr)]
    pub grpc_addr: SocketAddr,
    /// HTTP side port; asked (`/readyz`) instead of gRPC when the gRPC port requires client
    /// certificates (AUTHD_TLS_CLIENT_CA).
    #[arg(long, env = "AUTHD_HTTP_ADDR", default_value = "127.0.0.1:8080", value_parser = parse_socket_addr)]
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
        /// The key's id (`kid`), as `authd keys list` shows it. A kid is a base64url thumbprint,
        /// so one in 64 starts with `-`: it is taken as the value, not as a flag.
        #[arg(allow_hyphen_values = true)]
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
