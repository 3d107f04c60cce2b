//! Settings: every knob is a command-line flag and an environment variable with a default, so
//! `authd serve` works on a fresh machine with nothing set. Secrets (database and SMTP URLs, which
//! may carry passwords) are `SecretString` and never reach `Debug` output or logs.

mod check;
mod cli;
mod database;
mod error;
mod import;
mod keys;
mod load;
mod naming;
mod password;
mod preset;
mod redact;
mod serve;
mod source_table;
mod throttle;
mod values;

pub use check::smtp_url_problem;
pub use cli::{Cli, Command, HealthcheckSettings, IntrospectClientCommand, KeysArgs, KeysCommand};
pub use database::DatabaseSettings;
pub use error::{CliError, Problem, SettingsError};
pub use import::{ImportArgs, Preset};
pub use keys::{KeySettings, read_sealer};
pub use load::{Loaded, parse_args};
pub use password::{HashCostSettings, PasswordSettings};
pub use preset::source_table;
pub use redact::{redact, scrub};
pub use serve::{IntrospectSettings, LogFormat, Settings, TlsSettings};
pub use source_table::{Identifier, SourceTable, TableName};
pub use throttle::ThrottleSettings;
pub use values::{parse_bool, parse_duration};

pub use crate::crypto::keys::SigningAlg;
pub use crate::crypto::password::HashAlgorithm;
