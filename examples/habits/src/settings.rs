//! Settings from the environment, read with std alone: a service this small needs no CLI crate.
//! Every problem names the variable that caused it, and all of them are reported at once.
//!
//! A variable set to the empty string counts as unset, so `HABITS_AUTHD_INTROSPECT= habits`
//! means local mode.

use std::fmt;
use std::net::SocketAddr;

/// `HABITS_ADDR` when unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50061";
/// `HABITS_DATABASE_URL` when unset: a SQLite file in the current folder, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://habits.db?mode=rwc";
/// `HABITS_AUTHD_JWKS_URL` when unset: authd's HTTP side port with its defaults.
pub const DEFAULT_JWKS_URL: &str = "http://127.0.0.1:8080/.well-known/jwks.json";
/// `HABITS_AUTHD_ISSUER` when unset: authd's default issuer.
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080";
/// `HABITS_AUTHD_AUDIENCE` when unset: authd's default audience.
pub const DEFAULT_AUDIENCE: &str = "authd";

/// Everything the habits service is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where gRPC listens (`HABITS_ADDR`); port 0 picks a free one.
    pub addr: SocketAddr,
    /// The SQLite database (`HABITS_DATABASE_URL`).
    pub database_url: String,
    /// How access tokens are checked.
    pub authd: AuthdSettings,
}

/// How habits checks authd's access tokens.
#[derive(Clone)]
pub enum AuthdSettings {
    /// Locally, with the public keys of authd's JWKS: no call to authd per request, but a
    /// logged-out session's tokens are accepted until they expire.
    Local {
        /// `HABITS_AUTHD_JWKS_URL`.
        jwks_url: String,
        /// The `iss` the tokens must carry (`HABITS_AUTHD_ISSUER`).
        issuer: String,
        /// Accepted `aud` values (`HABITS_AUTHD_AUDIENCE`, comma-separated).
        audiences: Vec<String>,
    },
    /// With authd's Introspect on every call (`HABITS_AUTHD_INTROSPECT`): a logout is seen at once.
    Remote {
        /// authd's gRPC address, `http://host:port`.
        endpoint: String,
        /// `HABITS_AUTHD_CLIENT_ID` and `HABITS_AUTHD_CLIENT_SECRET`, when authd restricts
        /// Introspect to known callers (`AUTHD_INTROSPECT_CLIENTS`).
        client: Option<(String, String)>,
    },
}

impl fmt::Debug for AuthdSettings {
    /// Never prints the client secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local {
                jwks_url,
                issuer,
                audiences,
            } => f
                .debug_struct("Local")
                .field("jwks_url", jwks_url)
                .field("issuer", issuer)
                .field("audiences", audiences)
                .finish(),
            Self::Remote { endpoint, client } => f
                .debug_struct("Remote")
                .field("endpoint", endpoint)
                .field("client_id", &client.as_ref().map(|(id, _)| id))
                .finish_non_exhaustive(),
        }
    }
}

/// One or more bad settings, each on a line of its own naming its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct SettingsError {
    problems: Vec<String>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads settings through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, SettingsError> {
        let mut problems = Vec::new();
        let mut var = |name: &str, default: Option<&str>| -> Option<String> {
            match lookup(name).map(std::ffi::OsString::into_string) {
                Some(Ok(value)) if !value.trim().is_empty() => Some(value.trim().to_owned()),
                Some(Err(_)) => {
                    problems.push(format!("{name} is not valid UTF-8"));
                    None
                }
                Some(Ok(_)) | None => default.map(str::to_owned),
            }
        };
        let addr = var("HABITS_ADDR", Some(DEFAULT_ADDR));
        let database_url = var("HABITS_DATABASE_URL", Some(DEFAULT_DATABASE_URL));
        let introspect = var("HABITS_AUTHD_INTROSPECT", None);
        let client_id = var("HABITS_AUTHD_CLIENT_ID", None);
        let client_secret = var("HABITS_AUTHD_CLIENT_SECRET", None);
        let jwks_url = var("HABITS_AUTHD_JWKS_URL", Some(DEFAULT_JWKS_URL));
        let issuer = var("HABITS_AUTHD_ISSUER", Some(DEFAULT_ISSUER));
        let audience = var("HABITS_AUTHD_AUDIENCE", Some(DEFAULT_AUDIENCE));

        let addr = addr.and_then(|addr| {
            addr.parse::<SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "HABITS_ADDR={addr:?} is not an address with a port, such as {DEFAULT_ADDR}"
                    ));
                })
                .ok()
        });
        let database_url = database_url.and_then(|url| {
            if url.starts_with("sqlite:") {
                Some(url)
            } else {
                problems.push(
                    "HABITS_DATABASE_URL must be a sqlite: URL (habits keeps its data in SQLite), \
                     such as sqlite://habits.db?mode=rwc"
                        .to_owned(),
                );
                None
            }
        });
        let authd = match introspect {
            Some(endpoint) => {
                if let Err(why) = check_http_url(&endpoint) {
                    problems.push(format!("HABITS_AUTHD_INTROSPECT={endpoint:?} {why}"));
                }
                let client = match (client_id, client_secret) {
                    (Some(id), Some(secret)) => Some((id, secret)),
                    (None, None) => None,
                    (Some(_), None) | (None, Some(_)) => {
                        problems.push(
                            "HABITS_AUTHD_CLIENT_ID and HABITS_AUTHD_CLIENT_SECRET go together: \
                             set both or neither"
                                .to_owned(),
                        );
                        None
                    }
                };
                AuthdSettings::Remote { endpoint, client }
            }
            None => {
                if client_id.is_some() || client_secret.is_some() {
                    problems.push(
                        "HABITS_AUTHD_CLIENT_ID and HABITS_AUTHD_CLIENT_SECRET are for remote \
                         mode: set HABITS_AUTHD_INTROSPECT too, or unset them"
                            .to_owned(),
                    );
                }
                let jwks_url = jwks_url.unwrap_or_default();
                if let Err(why) = check_http_url(&jwks_url) {
                    problems.push(format!("HABITS_AUTHD_JWKS_URL={jwks_url:?} {why}"));
                }
                let audiences: Vec<String> = audience
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|aud| !aud.is_empty())
                    .map(str::to_owned)
                    .collect();
                if audiences.is_empty() {
                    problems.push("HABITS_AUTHD_AUDIENCE names no audience".to_owned());
                }
                AuthdSettings::Local {
                    jwks_url,
                    issuer: issuer.unwrap_or_default(),
                    audiences,
                }
            }
        };
        match (addr, database_url) {
            (Some(addr), Some(database_url)) if problems.is_empty() => Ok(Self {
                addr,
                database_url,
                authd,
            }),
            _ => Err(SettingsError { problems }),
        }
    }
}

/// authd's plain-HTTP JWKS and its gRPC port are reached with `http://host:port…` URLs.
fn check_http_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "is not a URL such as http://127.0.0.1:8080")?;
    if uri.scheme_str() != Some("http") {
        return Err("must start with http:// (the verifier speaks plain HTTP to authd)");
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("names no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn read(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let table: HashMap<String, OsString> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
            .collect();
        Settings::from_lookup(|name| table.get(name).cloned())
    }

    #[test]
    fn defaults_are_local_mode_against_authds_defaults() {
        let settings = read(&[]).unwrap();
        assert_eq!(settings.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(settings.database_url, DEFAULT_DATABASE_URL);
        let AuthdSettings::Local {
            jwks_url,
            issuer,
            audiences,
        } = settings.authd
        else {
            panic!("local mode by default");
        };
        assert_eq!(jwks_url, DEFAULT_JWKS_URL);
        assert_eq!(issuer, DEFAULT_ISSUER);
        assert_eq!(audiences, vec!["authd".to_owned()]);
    }

    #[test]
    fn introspect_means_remote_mode_with_optional_credentials() {
        let settings = read(&[
            ("HABITS_AUTHD_INTROSPECT", "http://127.0.0.1:50051"),
            ("HABITS_AUTHD_CLIENT_ID", "habits"),
            ("HABITS_AUTHD_CLIENT_SECRET", "s3cret"),
        ])
        .unwrap();
        let AuthdSettings::Remote { endpoint, client } = &settings.authd else {
            panic!("remote mode");
        };
        assert_eq!(endpoint, "http://127.0.0.1:50051");
        assert_eq!(client, &Some(("habits".to_owned(), "s3cret".to_owned())));
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn empty_means_unset() {
        let settings = read(&[("HABITS_AUTHD_INTROSPECT", ""), ("HABITS_ADDR", " ")]).unwrap();
        assert!(matches!(settings.authd, AuthdSettings::Local { .. }));
        assert_eq!(settings.addr.to_string(), DEFAULT_ADDR);
    }

    #[test]
    fn every_bad_value_is_named() {
        let err = read(&[
            ("HABITS_ADDR", "localhost"),
            ("HABITS_DATABASE_URL", "postgres://db/habits"),
            (
                "HABITS_AUTHD_JWKS_URL",
                "https://authd/.well-known/jwks.json",
            ),
            ("HABITS_AUTHD_AUDIENCE", " , "),
            ("HABITS_AUTHD_CLIENT_ID", "habits"),
        ])
        .unwrap_err()
        .to_string();
        for name in [
            "HABITS_ADDR",
            "HABITS_DATABASE_URL",
            "HABITS_AUTHD_JWKS_URL",
            "HABITS_AUTHD_AUDIENCE",
            "HABITS_AUTHD_CLIENT_ID",
        ] {
            assert!(err.contains(name), "{name} not named in {err}");
        }
        assert_eq!(err.lines().count(), 5, "{err}");
    }

    #[test]
    fn remote_mode_checks_its_endpoint_and_credential_pair() {
        let err = read(&[
            ("HABITS_AUTHD_INTROSPECT", "127.0.0.1:50051"),
            ("HABITS_AUTHD_CLIENT_SECRET", "s3cret"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("HABITS_AUTHD_INTROSPECT"), "{err}");
        assert!(err.contains("set both or neither"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
