//! Settings from the environment, read with std alone: a service this small needs no CLI crate.
//! Every problem names the variable that caused it, and all of them are reported at once.
//!
//! A variable set to the empty string counts as unset, so `HABITS_AUTHD_INTROSPECT= habits`
//! means local mode. [`USAGE`] (`habits --help`) lists them all.

use authd_verifier::{RevocationSettings, WhenDisconnected};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

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
/// `HABITS_AUTHD_GRPC` when unset: authd's gRPC port with its defaults.
pub const DEFAULT_GRPC: &str = "http://127.0.0.1:50051";

/// What `habits --help` prints.
pub const USAGE: &str = "\
habits: a per-user habits gRPC API protected by authd-verifier. Takes no arguments; every
setting is an environment variable (empty counts as unset):

  HABITS_ADDR                     where gRPC listens (default 127.0.0.1:50061)
  HABITS_DATABASE_URL             SQLite database (default sqlite://habits.db?mode=rwc)
  HABITS_AUTHD_JWKS_URL           authd's JWKS (default http://127.0.0.1:8080/.well-known/jwks.json)
  HABITS_AUTHD_ISSUER             the tokens' iss (default http://127.0.0.1:8080)
  HABITS_AUTHD_AUDIENCE           accepted aud values, comma-separated (default authd)
  HABITS_AUTHD_GRPC               authd's gRPC port, for the revocation stream and the
                                  Introspect fallback (default http://127.0.0.1:50051)
  HABITS_AUTHD_REVOCATIONS        on (default): local mode that holds authd's revocation
                                  stream, so a logout is refused within a second;
                                  off: plain local mode (a logged-out token passes until exp)
  HABITS_AUTHD_WHEN_DISCONNECTED  introspect (default): while the stream is down longer than
                                  the bound, ask authd's Introspect per call;
                                  fail-closed: refuse calls as UNAVAILABLE instead
  HABITS_AUTHD_MAX_DISCONNECTED   the bound: how long revocations already received are trusted
                                  alone after the stream breaks (default 5s; ms, s, m)
  HABITS_AUTHD_INTROSPECT         remote mode instead: authd's gRPC address, Introspect per call
  HABITS_AUTHD_CLIENT_ID, HABITS_AUTHD_CLIENT_SECRET
                                  habits' credential when authd restricts Introspect and the
                                  revocation stream (AUTHD_INTROSPECT_CLIENTS)
  RUST_LOG                        log filter (default info)
";

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
    /// Locally, with the public keys of authd's JWKS: no call to authd per request. With
    /// `revocations` (the default) a logged-out session's tokens are refused within a second;
    /// without, they are accepted until they expire.
    Local {
        /// `HABITS_AUTHD_JWKS_URL`.
        jwks_url: String,
        /// The `iss` the tokens must carry (`HABITS_AUTHD_ISSUER`).
        issuer: String,
        /// Accepted `aud` values (`HABITS_AUTHD_AUDIENCE`, comma-separated).
        audiences: Vec<String>,
        /// authd's revocation stream (`HABITS_AUTHD_GRPC`, `HABITS_AUTHD_WHEN_DISCONNECTED`,
        /// `HABITS_AUTHD_MAX_DISCONNECTED`); `None` with `HABITS_AUTHD_REVOCATIONS=off`.
        revocations: Option<RevocationSettings>,
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
                revocations,
            } => f
                .debug_struct("Local")
                .field("jwks_url", jwks_url)
                .field("issuer", issuer)
                .field("audiences", audiences)
                .field("revocations", revocations)
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
        let grpc = var("HABITS_AUTHD_GRPC", Some(DEFAULT_GRPC));
        let revocations = var("HABITS_AUTHD_REVOCATIONS", Some("on"));
        let when_disconnected = var("HABITS_AUTHD_WHEN_DISCONNECTED", Some("introspect"));
        let max_disconnected = var("HABITS_AUTHD_MAX_DISCONNECTED", Some("5s"));

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
                let revocations = match revocations.as_deref() {
                    Some("on") => true,
                    Some("off") => false,
                    other => {
                        problems.push(format!(
                            "HABITS_AUTHD_REVOCATIONS={:?} must be on or off",
                            other.unwrap_or_default()
                        ));
                        false
                    }
                };
                let client = match (client_id, client_secret) {
                    (Some(id), Some(secret)) if revocations => Some((id, secret)),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        problems.push(
                            "HABITS_AUTHD_CLIENT_ID and HABITS_AUTHD_CLIENT_SECRET are for remote \
                             mode and the revocation stream: set HABITS_AUTHD_INTROSPECT or \
                             HABITS_AUTHD_REVOCATIONS=on, or unset them"
                                .to_owned(),
                        );
                        None
                    }
                    (Some(_), None) | (None, Some(_)) => {
                        problems.push(
                            "HABITS_AUTHD_CLIENT_ID and HABITS_AUTHD_CLIENT_SECRET go together: \
                             set both or neither"
                                .to_owned(),
                        );
                        None
                    }
                };
                let revocations = revocations.then(|| {
                    let endpoint = grpc.unwrap_or_default();
                    if let Err(why) = check_http_url(&endpoint) {
                        problems.push(format!("HABITS_AUTHD_GRPC={endpoint:?} {why}"));
                    }
                    let mut settings = RevocationSettings::new(endpoint);
                    settings.client = client;
                    match when_disconnected.as_deref() {
                        Some("introspect") => {
                            settings.when_disconnected = WhenDisconnected::Introspect;
                        }
                        Some("fail-closed") => {
                            settings.when_disconnected = WhenDisconnected::FailClosed;
                        }
                        other => problems.push(format!(
                            "HABITS_AUTHD_WHEN_DISCONNECTED={:?} must be introspect or fail-closed",
                            other.unwrap_or_default()
                        )),
                    }
                    let bound = max_disconnected.unwrap_or_default();
                    match parse_duration(&bound) {
                        Some(bound) => settings.max_disconnected = bound,
                        None => problems.push(format!(
                            "HABITS_AUTHD_MAX_DISCONNECTED={bound:?} is not a duration such as \
                             5s, 500ms or 1m"
                        )),
                    }
                    settings
                });
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
                    revocations,
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

/// `500ms`, `5s`, `1m`; a bare number is seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number: u64 = digits.parse().ok()?;
    match &text[digits.len()..] {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
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
#[path = "settings_tests.rs"]
mod tests;
