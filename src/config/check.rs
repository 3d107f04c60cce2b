//! Reading the command line and environment, and checking every setting before anything happens:
//! no database is touched, no port bound, no key made until the settings are known to be sane.
//!
//! A bad value stops start-up with one line per problem that names what the user actually set
//! (`AUTHD_ACCESS_TTL` when it came from the environment, `--access-ttl` when from the command
//! line), never the value of a secret, and exit code 2 (see `main.rs`).

use super::{
    Cli, Command, DatabaseSettings, ImportArgs, KeySettings, KeysArgs, KeysCommand, Settings,
};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use secrecy::{ExposeSecret, SecretString};
use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

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

/// One thing wrong with the settings: which setting (clap's argument id), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `None` for a problem of several settings together; the message names them.
    pub setting: Option<&'static str>,
    pub message: String,
}

impl Problem {
    fn of(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting: Some(setting),
            message: message.into(),
        }
    }
}

impl Settings {
    /// Every problem of these settings in one error naming the environment variables, for
    /// settings that did not come through `parse_args` (which names what the user set).
    pub fn check(&self) -> Result<(), SettingsError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Namer { matches: None }.error(&problems))
        }
    }

    /// Checks every setting of `serve`; empty when all can work.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = self.database.problems();
        let positive = [
            ("access_ttl", self.access_ttl),
            ("refresh_ttl", self.refresh_ttl),
            ("verify_ttl", self.verify_ttl),
            ("reset_ttl", self.reset_ttl),
            ("mfa_token_ttl", self.mfa_token_ttl),
            ("session_max_lifetime", self.session_max_lifetime),
            ("audit_retention", self.audit_retention),
            ("max_delay", self.throttle.max_delay),
            ("forget_after", self.throttle.forget_after),
            ("known_client_for", self.throttle.known_client_for),
            ("tls_handshake_timeout", self.tls.tls_handshake_timeout),
        ];
        for (setting, value) in positive {
            if value.is_zero() {
                problems.push(Problem::of(setting, "must be longer than 0s"));
            }
        }
        let counts = [
            (
                "client_account_failures",
                self.throttle.client_account_failures,
            ),
            ("account_failures", self.throttle.account_failures),
            ("client_failures", self.throttle.client_failures),
            ("account_mails", self.throttle.account_mails),
            ("client_mails", self.throttle.client_mails),
            ("client_signups", self.throttle.client_signups),
            ("account_mfa_failures", self.throttle.account_mfa_failures),
        ];
        for (setting, value) in counts {
            if value == 0 {
                problems.push(Problem::of(setting, "must be at least 1"));
            }
        }
        let totp_issuer = self.totp_issuer.trim();
        if totp_issuer.is_empty() || totp_issuer.chars().count() > 64 || totp_issuer.contains(':') {
            problems.push(Problem::of(
                "totp_issuer",
                "must be 1 to 64 characters without a colon (authenticator apps split the label at it)",
            ));
        }
        if let Some(Err(why)) = self.issuer.as_deref().map(check_issuer) {
            problems.push(Problem::of("issuer", why));
        }
        if self.audience.is_empty() || self.audience.iter().any(|a| a.trim().is_empty()) {
            problems.push(Problem::of(
                "audience",
                "must name at least one audience, with no empty entries (comma-separated)",
            ));
        }
        if let Err(why) = crate::domain::app_url(&self.app_url) {
            problems.push(Problem::of("app_url", why));
        }
        if let Err(why) = self.mail_from.parse::<lettre::message::Mailbox>() {
            problems.push(Problem::of(
                "mail_from",
                format!(
                    "`{}` is not a mailbox such as `authd <no-reply@example.com>` ({why})",
                    self.mail_from
                ),
            ));
        }
        match (&self.smtp_url, self.mail_to_log) {
            (None, false) => problems.push(Problem {
                setting: None,
                message: "no way to send mail: set AUTHD_SMTP_URL (for example smtp://127.0.0.1:1025) \
                          to send mails, or AUTHD_MAIL_TO_LOG=true to write them, with their links, \
                          to the log (development only)"
                    .to_owned(),
            }),
            (Some(_), true) => problems.push(Problem {
                setting: None,
                message: "AUTHD_SMTP_URL and AUTHD_MAIL_TO_LOG=true are both set: choose one"
                    .to_owned(),
            }),
            (Some(url), false) => {
                let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(
                    url.expose_secret(),
                );
                if let Err(err) = transport {
                    problems.push(Problem::of("smtp_url", smtp_url_problem(&err, url)));
                }
            }
            (None, true) => {}
        }
        if let Some((setting, why)) = self.password.hash_params().argon2_problem() {
            problems.push(Problem::of(setting, why));
        }
        problems.extend(self.keys.problems());
        if self.password.service_name.trim().is_empty() {
            problems.push(Problem::of("service_name", "must not be empty"));
        }
        problems
    }

    /// What is allowed but probably not meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.issuer.is_none() && !self.http_addr.ip().is_loopback() {
            warnings.push(format!(
                "AUTHD_ISSUER is not set, so tokens say `iss: {}` (from AUTHD_HTTP_ADDR); \
                 set it to the public URL that verifiers reach authd at",
                self.issuer()
            ));
        }
        if self.mail_to_log {
            warnings.push(
                "AUTHD_MAIL_TO_LOG=true: mails, with their one-time links, are written to the log \
                 instead of sent (development only)"
                    .to_owned(),
            );
        }
        warnings
    }
}

impl KeySettings {
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.key_reload_interval.is_zero() {
            problems.push(Problem::of("key_reload_interval", "must be longer than 0s"));
        }
        if !self.key_rotation_interval.is_zero()
            && self.key_rotation_interval <= self.key_publish_lead
        {
            problems.push(Problem::of(
                "key_rotation_interval",
                "must be longer than AUTHD_KEY_PUBLISH_LEAD (or 0 to turn automatic rotation off)",
            ));
        }
        if let Err(err) = self.sealer() {
            problems.push(Problem {
                setting: None,
                message: err.to_string(),
            });
        }
        problems
    }
}

impl KeysArgs {
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = self.database.problems();
        problems.extend(self.keys.problems());
        if self.access_ttl.is_zero() {
            problems.push(Problem::of("access_ttl", "must be longer than 0s"));
        }
        problems
    }
}

impl DatabaseSettings {
    pub fn problems(&self) -> Vec<Problem> {
        let setting = if self.database_url.is_some() {
            "database_url"
        } else {
            // Not a clap argument: the fallback `url()` reads (see `Namer`).
            DATABASE_URL_FALLBACK
        };
        let mut problems = Vec::new();
        if let Err(why) = check_database_url(&self.url()) {
            problems.push(Problem::of(setting, why));
        }
        if self.timeout.is_zero() {
            problems.push(Problem::of("timeout", "must be longer than 0s"));
        }
        problems
    }
}

impl ImportArgs {
    /// The target database's problems, the source URL's, and every table or column name that
    /// is not a plain identifier (so nothing unchecked reaches the source's SQL).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = self.database.problems();
        match &self.from_db {
            Some(url) => {
                let raw = url.expose_secret();
                if let Err(why) = check_database_url(url) {
                    problems.push(Problem::of("from_db", why));
                } else if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
                    problems.push(Problem::of(
                        "from_db",
                        "must be a PostgreSQL URL (postgres://…): the app's database is read",
                    ));
                }
                if let Err(found) = super::source_table(self) {
                    problems.extend(found.into_iter().map(|(s, why)| Problem::of(s, why)));
                }
            }
            None => {
                let table_flags = [
                    ("preset", self.preset.is_some()),
                    ("table", self.table.is_some()),
                    ("email_column", self.email_column.is_some()),
                    ("hash_column", self.hash_column.is_some()),
                    ("name_column", self.name_column.is_some()),
                    ("verified_column", self.verified_column.is_some()),
                    ("id_column", self.id_column.is_some()),
                ];
                for (setting, given) in table_flags {
                    if given {
                        problems.push(Problem::of(
                            setting,
                            "applies to --from-db only (a JSON Lines file names its fields \
                             id, email, password_hash, name and email_verified)",
                        ));
                    }
                }
            }
        }
        problems
    }
}

/// Stands for `DATABASE_URL`, which is read by hand, not by clap.
const DATABASE_URL_FALLBACK: &str = "DATABASE_URL";

/// SQLite (`sqlite:` and a path, or `sqlite::memory:`) or a PostgreSQL URL with a host. The
/// reasons never quote the URL: it may hold a password.
fn check_database_url(url: &SecretString) -> Result<(), String> {
    let raw = url.expose_secret();
    if let Some(rest) = raw.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        return if path.is_empty() {
            Err("names no SQLite file (for example sqlite://authd.db?mode=rwc)".to_owned())
        } else {
            Ok(())
        };
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        let parsed =
            url::Url::parse(raw).map_err(|e| format!("is not a valid PostgreSQL URL: {e}"))?;
        let socket_host = parsed.query_pairs().any(|(key, _)| key == "host");
        if parsed.host_str().is_none_or(str::is_empty) && !socket_host {
            return Err(
                "names no PostgreSQL host (postgres://user:password@host:5432/database)".to_owned(),
            );
        }
        return Ok(());
    }
    Err(match raw.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            format!("scheme `{scheme}` is not supported: use sqlite:// or postgres://")
        }
        _ => "is not a database URL: use sqlite://FILE?mode=rwc or postgres://user:password@host/database"
            .to_owned(),
    })
}

/// RFC 8414 §2: an `https` (or, for development, `http`) URL with a host and no query or fragment.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let parsed = url::Url::parse(issuer).map_err(|e| {
        format!("`{issuer}` is not an absolute URL such as https://auth.example.com ({e})")
    })?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("`{issuer}` must be an https:// (or http://) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{issuer}` names no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(format!(
            "`{issuer}` must not have a query, a fragment or credentials (RFC 8414)"
        ));
    }
    Ok(())
}

/// Names settings the way the user gave them.
struct Namer<'a> {
    matches: Option<&'a ArgMatches>,
}

impl Namer<'_> {
    fn error(&self, problems: &[Problem]) -> SettingsError {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| match p.setting {
                Some(setting) => format!("{}: {}", self.name(setting), p.message),
                None => p.message.clone(),
            })
            .collect();
        SettingsError(lines.join("\n"))
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
fn setting_name(arg: &clap::Arg, from_command_line: bool) -> String {
    match (arg.get_long(), arg.get_env()) {
        (Some(long), _) if from_command_line => format!("--{long}"),
        (_, Some(env)) => env.to_string_lossy().into_owned(),
        (Some(long), None) => format!("--{long}"),
        (None, None) => arg.get_id().to_string(),
    }
}

fn find_arg(
    command: &clap::Command,
    want: impl Fn(&clap::Arg) -> bool + Copy,
) -> Option<&clap::Arg> {
    command.get_arguments().find(|arg| want(arg)).or_else(|| {
        command
            .get_subcommands()
            .find_map(|sub| find_arg(sub, want))
    })
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
    CliError::Invalid(SettingsError(message))
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

/// `true`/`false`/`1`/`0` (any case), for boolean settings.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("`{raw}` is not a boolean: use true, false, 1 or 0")),
    }
}

/// The longest duration a setting takes: a century, far beyond any sane lifetime, and well
/// inside what date arithmetic handles.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Why `url` makes no SMTP transport, without its password: for the settings check and for
/// the mail worker that builds the transport.
pub fn smtp_url_problem(err: &dyn std::fmt::Display, url: &SecretString) -> String {
    super::scrub(
        &format!(
            "is not a usable SMTP URL such as smtp://host:25 or smtps://user:password@host ({err})"
        ),
        url,
    )
}
