//! Problems name what the user actually set: `AUTHD_ACCESS_TTL` when it came from the
//! environment, `--access-ttl` when from the command line, and never the value of a secret.

use super::cli::Cli;
use super::error::{Problem, SettingsError};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

/// Stands for `DATABASE_URL`, which is read by hand, not by clap.
pub(super) const DATABASE_URL_FALLBACK: &str = "DATABASE_URL";

/// Names settings the way the user gave them.
pub(super) struct Namer<'a> {
    pub(super) matches: Option<&'a ArgMatches>,
}

impl Namer<'_> {
    pub(super) fn error(&self, problems: &[Problem]) -> SettingsError {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| match p.setting {
                Some(setting) => format!("{}: {}", self.name(setting), p.message),
                None => p.message.clone(),
            })
            .collect();
        SettingsError::new(lines.join("\n"))
    }

    fn name(&self, id: &str) -> String {
        if id == DATABASE_URL_FALLBACK {
            return id.to_owned();
        }
        let command = Cli::command();
        let Some(arg) = find_arg(&command, |arg| arg.get_id().as_str() == id) else {
            return id.to_owned();
        };
        let from_command_line = self.matches.and_then(|m| {
            m.try_get_raw(id)
                .ok()
                .flatten()
                .and_then(|_| m.value_source(id))
        }) == Some(ValueSource::CommandLine);
        setting_name(arg, from_command_line)
    }
}

/// `--flag` when the value came from the command line, else the environment variable.
pub(super) fn setting_name(arg: &clap::Arg, from_command_line: bool) -> String {
    match (arg.get_long(), arg.get_env()) {
        (Some(long), _) if from_command_line => format!("--{long}"),
        (_, Some(env)) => env.to_string_lossy().into_owned(),
        (Some(long), None) => format!("--{long}"),
        (None, None) => arg.get_id().to_string(),
    }
}

pub(super) fn find_arg(
    command: &clap::Command,
    want: impl Fn(&clap::Arg) -> bool + Copy,
) -> Option<&clap::Arg> {
    command.get_arguments().find(|arg| want(arg)).or_else(|| {
        command
            .get_subcommands()
            .find_map(|sub| find_arg(sub, want))
    })
}
