//! Reading the command line and environment, and checking every setting before anything happens:
//! no database is touched, no port bound, no key made until the settings are known to be sane.
//!
//! A bad value stops start-up with one line per problem that names what the user actually set
//! (`AUTHD_ACCESS_TTL` when it came from the environment, `--access-ttl` when from the command
//! line), never the value of a secret, and exit code 2 (see `main.rs`).

use super::cli::{Cli, Command, KeysCommand};
use super::error::{CliError, SettingsError};
use super::naming::{Namer, find_arg, setting_name};
use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;

/// A parsed and checked command line, with what deserves a warning once logging is up.
pub struct Loaded {
    pub cli: Cli,
    pub warnings: Vec<String>,
}

/// Parses `args` (the first is the program name) and the `AUTHD_*` environment, and checks them.
pub fn parse_args<I, T>(args: I) -> Result<Loaded, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let matches = match command.clone().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err) => return Err(value_error(&command, &args, err)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(CliError::Usage)?;
    // The innermost subcommand's matches (`keys rotate`'s, not `keys`'s) name the settings.
    let mut sub = matches.subcommand().map(|(_, sub)| sub);
    while let Some((_, deeper)) = sub.and_then(clap::ArgMatches::subcommand) {
        sub = Some(deeper);
    }
    let namer = Namer { matches: sub };
    let warnings = unknown_variables(&command);
    let problems = match &cli.command {
        Command::Serve(settings) => settings.problems(),
        Command::Migrate(database) => database.problems(),
        Command::Import(args) => args.problems(),
        Command::Keys(keys) => match keys {
            KeysCommand::List { keys, .. }
            | KeysCommand::Rotate(keys)
            | KeysCommand::Retire { keys, .. }
            | KeysCommand::Reseal { keys, .. } => keys.problems(),
            KeysCommand::NewEncryptionKey => Vec::new(),
        },
        Command::IntrospectClient(_) | Command::Healthcheck(_) => Vec::new(),
    };
    if problems.is_empty() {
        Ok(Loaded { cli, warnings })
    } else {
        Err(CliError::Invalid(namer.error(&problems)))
    }
}

/// Turns clap's error for a bad value into one line naming what the user set; other errors
/// (help, unknown flags) stay clap's.
fn value_error(command: &clap::Command, args: &[OsString], err: clap::Error) -> CliError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return CliError::Usage(err);
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return CliError::Usage(err);
    };
    // clap shows the argument as `--access-ttl <ACCESS_TTL>`.
    let long = shown
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches('-')
        .to_owned();
    let Some(arg) = find_arg(command, |arg| arg.get_long() == Some(long.as_str())) else {
        return CliError::Usage(err);
    };
    let flag = format!("--{long}");
    let on_command_line = args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    });
    let name = setting_name(arg, on_command_line);
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) if !arg.is_hide_env_values_set() => format!("`{v}`"),
        _ => "the value".to_owned(),
    };
    let reason = match (err.kind(), std::error::Error::source(&err)) {
        (ErrorKind::ValueValidation, Some(source)) => source.to_string(),
        _ => match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => format!("use one of {}", valid.join(", ")),
            _ => "not a valid value".to_owned(),
        },
    };
    // A parser's reason usually quotes the value itself; do not say it twice.
    let message = if reason.contains('`') {
        format!("{name}: {reason}")
    } else {
        format!("{name}: {value}: {reason}")
    };
    CliError::Invalid(SettingsError::new(message))
}

/// `AUTHD_*` variables that no setting reads: usually a typo that silently keeps a default.
fn unknown_variables(command: &clap::Command) -> Vec<String> {
    let mut known = Vec::new();
    collect_env_names(command, &mut known);
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("AUTHD_") && !name.starts_with("AUTHD_TEST_"))
        .filter(|name| !known.iter().any(|k| k == name))
        .map(|name| format!("{name} is set but is not a setting of authd; it is ignored"))
        .collect()
}

fn collect_env_names(command: &clap::Command, into: &mut Vec<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            into.push(env.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        collect_env_names(sub, into);
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::parse_bool;
    use clap::Parser;
    use std::time::Duration;

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
    fn a_kid_that_starts_with_a_dash_is_a_kid() {
        let cli = Cli::try_parse_from(["authd", "keys", "retire", "-pQ3x_kid"]);
        let Ok(Cli {
            command: Command::Keys(KeysCommand::Retire { kid, .. }),
        }) = cli
        else {
            panic!("a kid starting with '-' must parse as the kid: {cli:?}");
        };
        assert_eq!(kid, "-pQ3x_kid");
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
    fn bad_duration_names_the_setting() {
        let err = Cli::try_parse_from(["authd", "serve", "--access-ttl", "soon"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--access-ttl"), "{err}");
    }
}
