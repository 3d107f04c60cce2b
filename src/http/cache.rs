//! Cacheable answers of the side port: a strong `ETag` (a hash of the body), `Cache-Control`,
//! and `304 Not Modified` for a request whose `If-None-Match` names the current body.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A public document that caches may keep for `max_age_secs`.
pub struct Cacheable {
    pub content_type: &'static str,
    pub max_age_secs: u64,
    pub body: String,
}

impl Cacheable {
    /// The answer to a GET (or HEAD) with these request headers.
    pub fn respond(self, request: &HeaderMap) -> Response {
        let etag = etag(&self.body);
        let mut headers = HeaderMap::new();
        // RFC 9110 §15.4.5: a 304 carries the ETag and Cache-Control the 200 would have.
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={}", self.max_age_secs))
        {
            headers.insert(header::CACHE_CONTROL, value);
        }
        if not_modified(request, &etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        (headers, self.body).into_response()
    }
}

/// A strong entity tag: the quoted base64url SHA-256 of the body.
pub fn etag(body: &str) -> String {
    format!(
        "\"{}\"",
        URL_SAFE_NO_PAD.encode(Sha256::digest(body.as_bytes()))
    )
}

/// Whether any `If-None-Match` header names `etag` or is `*`. If-None-Match compares weakly
/// (RFC 9110 §13.1.2), so `W/"x"` matches `"x"`. A header that is not readable matches nothing.
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists() {
        let tag = etag("{}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"));
        assert!(not_modified(&request(&[&tag]), &tag));
        assert!(not_modified(&request(&[&format!("W/{tag}")]), &tag));
        assert!(not_modified(&request(&[&format!("\"a\", {tag}")]), &tag));
        assert!(not_modified(&request(&["\"a\"", &tag]), &tag));
        assert!(not_modified(&request(&["*"]), &tag));
        assert!(!not_modified(&request(&[]), &tag));
        assert!(!not_modified(&request(&["\"a\", \"b\""]), &tag));
        assert!(!not_modified(&request(&[tag.trim_matches('"')]), &tag));
        assert!(!not_modified(&request(&[&etag("{ }")]), &tag));
    }
}
