//! What can be wrong with the command line: one problem of the settings, and the errors that
//! stop start-up.

use std::fmt;

/// Settings that cannot work. Its `Display` is the whole message: one line per problem.
#[derive(Debug)]
pub struct SettingsError(String);

impl SettingsError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

/// Why the command line could not be turned into a `Cli`.
#[derive(Debug)]
pub enum CliError {
    /// Help, version, unknown flags, a missing subcommand: clap's own message and exit code.
    Usage(clap::Error),
    /// A value that does not parse or cannot work.
    Invalid(SettingsError),
}

/// One thing wrong with the settings: which setting (clap's argument id), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `None` for a problem of several settings together; the message names them.
    pub setting: Option<&'static str>,
    pub message: String,
}

impl Problem {
    pub(super) fn of(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting: Some(setting),
            message: message.into(),
        }
    }
}
