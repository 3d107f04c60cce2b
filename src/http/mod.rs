//! The HTTP side port: the JWK Set for verifiers and sidecars, the discovery documents that
//! point to it, liveness and readiness probes, and Prometheus metrics.

mod cache;
pub mod discovery;

use crate::crypto::keys::KeyRing;
use crate::db::Store;
use crate::metrics::{Format, Metrics};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use cache::Cacheable;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The media type of a JWK Set (RFC 7517 §8.5).
const JWK_SET_CONTENT_TYPE: &str = "application/jwk-set+json";

#[derive(Clone)]
struct HttpState {
    keys: Arc<KeyRing>,
    /// The JWK Set's `Cache-Control: max-age`: under the publish lead, so a verifier that
    /// honours it has every new key before the key signs.
    jwks_max_age_secs: u64,
    store: Store,
    metrics: Arc<Metrics>,
    /// True once shutdown has begun: readiness fails while calls are still served.
    draining: CancellationToken,
    /// The `iss` of access tokens, which the discovery documents name.
    issuer: Arc<str>,
}

pub fn router(
    keys: Arc<KeyRing>,
    jwks_max_age: std::time::Duration,
    store: Store,
    metrics: Arc<Metrics>,
    issuer: &str,
    draining: CancellationToken,
) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState {
            keys,
            jwks_max_age_secs: jwks_max_age.as_secs(),
            store,
            metrics,
            draining,
            issuer: issuer.into(),
        })
}

async fn jwks(State(state): State<HttpState>, request: HeaderMap) -> impl IntoResponse {
    Cacheable {
        content_type: JWK_SET_CONTENT_TYPE,
        max_age_secs: state.jwks_max_age_secs,
        body: state.keys.jwks_json().to_string(),
    }
    .respond(&request)
}

/// RFC 8414 and OIDC Discovery metadata (one document; see `discovery`).
async fn metadata(State(state): State<HttpState>, request: HeaderMap) -> impl IntoResponse {
    Cacheable {
        content_type: "application/json",
        max_age_secs: discovery::DISCOVERY_MAX_AGE_SECS,
        body: discovery::metadata(&state.issuer, &state.keys.current()).to_string(),
    }
    .respond(&request)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if state.store.ping().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
    }
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), Prometheus text 0.0.4 otherwise.
async fn metrics_text(State(state): State<HttpState>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok()),
    );
    let queued = state.store.queued_mail_count().await.ok();
    let body = state.metrics.encode(format, queued, queued.is_some());
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        body,
    )
}
