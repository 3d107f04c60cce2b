//! Fetching the JWK Set: over HTTP from authd's `/.well-known/jwks.json` (honouring
//! `Cache-Control: max-age` and revalidating with the `ETag`), or over gRPC with GetJwks. Every
//! answer is bounded in size and time, so a hostile or stuck JWKS URL costs little.

use crate::client::{self, error_chain, pb};
use crate::{KeysError, PublicKeys};
use bytes::Bytes;
use http::header::{ACCEPT, AGE, CACHE_CONTROL, CONTENT_LENGTH, ETAG, IF_NONE_MATCH, USER_AGENT};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use std::time::Duration;

/// The largest JWK Set read (authd's is under 1 KiB per key).
pub(crate) const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long one fetch may take, connection included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the JWK Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// authd's HTTP JWKS URL, e.g. `http://127.0.0.1:8080/.well-known/jwks.json`. Only
    /// `http://`: for `https://`, use [`JwksSource::Grpc`] with an `https://` endpoint and a
    /// tonic TLS feature enabled in your build (TLS for this source is a later feature).
    Http(String),
    /// authd's gRPC address, e.g. `http://127.0.0.1:50051`: the keys come from GetJwks.
    Grpc(String),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(url) => f.write_str(url),
            Self::Grpc(endpoint) => write!(f, "{endpoint} (GetJwks)"),
        }
    }
}

/// One successful answer.
pub(crate) enum Fetched {
    /// A fresh key set, and how long it may be used (`None`: the answer did not say).
    Keys(PublicKeys, Option<Duration>),
    /// `304 Not Modified`: the key set in use is still current.
    NotModified(Option<Duration>),
}

/// Why a fetch failed. None of these hold anything secret: the JWK Set is public.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Transport(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    #[error("the answer is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Keys(#[from] KeysError),
    #[error("the JWK Set holds no usable key")]
    NoKeys,
    #[error("GetJwks failed: {0}")]
    Grpc(String),
}

/// Fetches the JWK Set from one source.
pub(crate) enum Fetcher {
    Http(Box<HttpJwks>),
    Grpc(pb::auth_service_client::AuthServiceClient<tonic::transport::Channel>),
    /// The source cannot work (a bad URL): every fetch says why.
    Broken(String),
}

pub(crate) struct HttpJwks {
    uri: Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The `ETag` of the key set in use, sent back as `If-None-Match`.
    etag: Mutex<Option<HeaderValue>>,
}

impl Fetcher {
    /// The fetcher for `source`; must run inside a Tokio runtime.
    pub(crate) fn new(source: &JwksSource) -> Self {
        match source {
            JwksSource::Http(url) => match http_uri(url) {
                Ok(uri) => {
                    let mut connector = HttpConnector::new();
                    connector.set_connect_timeout(Some(client::CONNECT_TIMEOUT));
                    let client = Client::builder(TokioExecutor::new()).build(connector);
                    Self::Http(Box::new(HttpJwks {
                        uri,
                        client,
                        etag: Mutex::new(None),
                    }))
                }
                Err(why) => Self::Broken(why),
            },
            JwksSource::Grpc(endpoint) => match client::channel(endpoint, FETCH_TIMEOUT) {
                Ok(channel) => Self::Grpc(
                    pb::auth_service_client::AuthServiceClient::new(channel)
                        .max_decoding_message_size(MAX_JWKS_BYTES),
                ),
                Err(err) => Self::Broken(err.to_string()),
            },
        }
    }

    /// One fetch, bounded by [`FETCH_TIMEOUT`].
    pub(crate) async fn fetch(&self) -> Result<Fetched, FetchError> {
        let fetch = async {
            match self {
                Self::Http(http) => http.fetch().await,
                Self::Grpc(client) => {
                    let mut client = client.clone();
                    let answer = client
                        .get_jwks(pb::GetJwksRequest {})
                        .await
                        .map_err(|status| FetchError::Grpc(format!("{status}")))?;
                    let keys = usable_keys(&answer.into_inner().jwks_json)?;
                    Ok(Fetched::Keys(keys, None))
                }
                Self::Broken(why) => Err(FetchError::Config(why.clone())),
            }
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
    }
}

impl HttpJwks {
    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let mut request = http::Request::get(self.uri.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .header(
                USER_AGENT,
                concat!("authd-verifier/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(etag) = self.etag.lock().clone() {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| FetchError::Config(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport(error_chain(&e)))?;
        let max_age = max_age(response.headers());
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified(max_age));
        }
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let etag = response.headers().get(ETAG).cloned();
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Transport(error_chain(&*e))
                }
            })?
            .to_bytes();
        let text = std::str::from_utf8(&body)
            .map_err(|_| FetchError::Keys(KeysError::Json { line: 0, column: 0 }))?;
        let keys = usable_keys(text)?;
        *self.etag.lock() = etag;
        Ok(Fetched::Keys(keys, max_age))
    }
}

/// The keys of a JWK Set; one without a usable key is a failed fetch, so the last good set stays.
fn usable_keys(json: &str) -> Result<PublicKeys, FetchError> {
    let keys = PublicKeys::from_json(json)?;
    if keys.is_empty() {
        return Err(FetchError::NoKeys);
    }
    Ok(keys)
}

/// `url` as a URI this client can fetch: `http://` with a host.
fn http_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("`{url}` is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(uri),
        Some("https") => Err(format!(
            "`{url}`: https is not supported by the JWKS URL source; use JwksSource::Grpc with \
             TLS, or a plain http:// URL on a trusted network"
        )),
        _ => Err(format!("`{url}` is not an http:// URL")),
    }
}

/// How long the answer may be used: `max-age` minus `Age`; `None` when the answer gives no
/// `max-age` or says `no-store` / `no-cache` (then the caller's default applies).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return None;
            }
            if name.eq_ignore_ascii_case("max-age") {
                max_age = argument.and_then(|a| a.parse::<u64>().ok());
            }
        }
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|secs| Duration::from_secs(secs.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn cache_control_max_age_is_honoured() {
        let secs = |pairs: &[(&str, &str)]| max_age(&headers(pairs)).map(|d| d.as_secs());
        assert_eq!(secs(&[("cache-control", "public, max-age=300")]), Some(300));
        assert_eq!(secs(&[("cache-control", "Max-Age=\"60\"")]), Some(60));
        assert_eq!(
            secs(&[("cache-control", "public"), ("cache-control", "max-age=5")]),
            Some(5)
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=300"), ("age", "100")]),
            Some(200)
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=300"), ("age", "900")]),
            Some(0)
        );
        assert_eq!(secs(&[("cache-control", "max-age=300, no-store")]), None);
        assert_eq!(secs(&[("cache-control", "no-cache")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=soon")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=-1")]), None);
        assert_eq!(secs(&[]), None);
    }

    #[test]
    fn only_plain_http_urls_are_fetched() {
        assert!(http_uri("http://127.0.0.1:8080/.well-known/jwks.json").is_ok());
        for url in [
            "https://authd.example/jwks",
            "ftp://x/y",
            "/jwks.json",
            "not a url",
            "",
        ] {
            assert!(http_uri(url).is_err(), "{url}");
        }
        assert!(
            http_uri("https://a/b")
                .unwrap_err()
                .contains("JwksSource::Grpc")
        );
    }
}
