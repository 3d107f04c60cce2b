//! The HTTP side port: the JWK Set for verifiers and sidecars, liveness and readiness probes,
//! and Prometheus metrics.

use crate::crypto::keys::{JWKS_MAX_AGE_SECS, KeyRing};
use crate::metrics::{Format, Metrics};
use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
struct HttpState {
    keys: Arc<KeyRing>,
    store: Store,
    metrics: Arc<Metrics>,
    /// True once shutdown has begun: readiness fails while calls are still served.
    draining: watch::Receiver<bool>,
}

pub fn router(
    keys: Arc<KeyRing>,
    store: Store,
    metrics: Arc<Metrics>,
    draining: watch::Receiver<bool>,
) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState {
            keys,
            store,
            metrics,
            draining,
        })
}

async fn jwks(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CACHE_CONTROL,
                format!("public, max-age={JWKS_MAX_AGE_SECS}"),
            ),
        ],
        state.keys.current().jwks_json().to_string(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if *state.draining.borrow() {
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
