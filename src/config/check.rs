//! What each group of settings checks before anything starts: every problem at once, each
//! naming its setting, and the warnings for what is allowed but probably not meant.

use super::cli::KeysArgs;
use super::database::DatabaseSettings;
use super::error::{Problem, SettingsError};
use super::import::ImportArgs;
use super::keys::KeySettings;
use super::naming::{DATABASE_URL_FALLBACK, Namer};
use super::preset::source_table;
use super::redact::scrub;
use super::serve::Settings;
use secrecy::{ExposeSecret, SecretString};

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
        if self.keys.key_encryption_key.is_none() && self.keys.key_encryption_key_file.is_none() {
            warnings.push(
                "AUTHD_KEY_ENCRYPTION_KEY is not set: signing keys and TOTP secrets are stored in \
                 the clear in the database; set it in production (make one with `authd keys \
                 new-encryption-key`)"
                    .to_owned(),
            );
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
                if let Err(found) = source_table(self) {
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

/// Why `url` makes no SMTP transport, without its password: for the settings check and for
/// the mail worker that builds the transport.
pub fn smtp_url_problem(err: &dyn std::fmt::Display, url: &SecretString) -> String {
    scrub(
        &format!(
            "is not a usable SMTP URL such as smtp://host:25 or smtps://user:password@host ({err})"
        ),
        url,
    )
}
