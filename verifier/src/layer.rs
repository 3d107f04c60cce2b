//! One tower layer for tonic servers and axum routers: it reads `authorization: Bearer …`, asks
//! a [`Verify`] about the token and puts the [`Claims`] into the request extensions, or refuses
//! the request without calling the service.
//!
//! Refusals speak the caller's protocol. A gRPC request (`content-type: application/grpc…`) gets
//! a trailers-only response: HTTP 200, `grpc-status` 16 UNAUTHENTICATED (14 UNAVAILABLE when the
//! verifier cannot answer yet) and a short `grpc-message`. Any other request gets 401 with
//! `www-authenticate: Bearer error="invalid_token"`, or plain `Bearer` when no token was sent
//! (RFC 6750 §3.1), or 503 when the verifier cannot answer yet. The reason is logged at debug
//! level; the token never is.

use crate::{BoxFuture, Claims, Refusal, Verify};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The paths [`AuthLayer::allow_health_and_reflection`] lets through.
const HEALTH_AND_REFLECTION: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Requires a valid access token on every request but the allowed paths.
///
/// On an axum router (handlers take the claims with `Extension<Claims>`):
///
/// ```
/// use authd_verifier::{AuthLayer, Checks, Claims, JwksSource, LocalSettings, LocalVerifier};
/// use axum::{Extension, Router, routing::get};
///
/// # async fn run() {
/// let verifier = LocalVerifier::start(LocalSettings::new(
///     JwksSource::Http("http://127.0.0.1:8080/.well-known/jwks.json".into()),
///     Checks::new("http://127.0.0.1:8080", vec!["authd".into()]),
/// ));
/// let app: Router = Router::new()
///     .route("/me", get(|Extension(claims): Extension<Claims>| async move { claims.email }))
///     .route("/public/status", get(|| async { "ok" }))
///     .layer(AuthLayer::new(verifier).allow("/public/"));
/// # }
/// ```
///
/// On a tonic server it wraps every service (`Server::builder().layer(…)`) or one
/// (`Server::builder().add_service(layer.layer(MyServer::new(…)))`: the wrapped service keeps
/// its name).
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<dyn Verify>,
    public: Arc<[String]>,
}

impl AuthLayer {
    /// A layer that asks `verifier` about every token.
    pub fn new(verifier: impl Verify) -> Self {
        Self::from_arc(Arc::new(verifier))
    }

    /// [`Self::new`] with a verifier that is shared already.
    pub fn from_arc(verifier: Arc<dyn Verify>) -> Self {
        Self {
            verifier,
            public: Arc::from([]),
        }
    }

    /// Lets a path through without a token: exact (`/habits.v1.Habits/Ping`) or, ending in `/`,
    /// every path under it (`/grpc.health.v1.Health/`). On these paths a token, if one comes,
    /// is not looked at and no [`Claims`] are added. A path under a prefix with a `.` or `..`
    /// segment is not let through: a proxy that normalises it could route it elsewhere.
    pub fn allow(self, path: impl Into<String>) -> Self {
        let mut public = self.public.to_vec();
        public.push(path.into());
        Self {
            public: public.into(),
            ..self
        }
    }

    /// Lets gRPC health checking and both versions of server reflection through.
    pub fn allow_health_and_reflection(self) -> Self {
        HEALTH_AND_REFLECTION
            .into_iter()
            .fold(self, |layer, path| layer.allow(path))
    }

    fn is_public(&self, path: &str) -> bool {
        self.public.iter().any(|allowed| {
            if !allowed.ends_with('/') {
                return path == allowed;
            }
            path.strip_prefix(allowed.as_str())
                .is_some_and(|rest| !rest.split('/').any(is_dot_segment))
        })
    }
}

/// `.` or `..`, also percent-encoded.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> RequireAuth<S> {
        RequireAuth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around `S`.
#[derive(Clone)]
pub struct RequireAuth<S> {
    inner: S,
    layer: AuthLayer,
}

/// A wrapped tonic service keeps its name, so it can still go to `Server::add_service`.
impl<S: tonic::server::NamedService> tonic::server::NamedService for RequireAuth<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, RB> tower::Service<Request<B>> for RequireAuth<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was polled ready serves this request; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if self.layer.is_public(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let verifier = Arc::clone(&self.layer.verifier);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let verdict = match bearer_token(&parts.headers) {
                Ok(token) => verifier.verify(token).await,
                Err(refusal) => Err(refusal),
            };
            match verdict {
                Ok(claims) => {
                    parts.extensions.insert::<Claims>(claims);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refusal) => {
                    tracing::debug!(
                        reason = ?refusal,
                        path = parts.uri.path(),
                        "request refused: {refusal}"
                    );
                    Ok(refuse(refusal, is_grpc(&parts.headers)))
                }
            }
        })
    }
}

/// The token of `authorization: Bearer <token>`. No header, or another scheme, is
/// [`Refusal::Missing`]; several headers, or an empty or non-ASCII token, [`Refusal::Malformed`].
fn bearer_token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(Refusal::Missing)?;
    if values.next().is_some() {
        return Err(Refusal::Malformed);
    }
    bearer_value(value.as_bytes())
}

/// The token of one `authorization` value, `Bearer <token>` (the scheme in any case, RFC 9110
/// §11.1). Another scheme is [`Refusal::Missing`]; an empty or non-ASCII token
/// [`Refusal::Malformed`]. For callers that hold the header in another form than an
/// `http::HeaderMap` (authd's Envoy `Check` reads it from the request's attributes).
pub fn bearer_value(value: &[u8]) -> Result<&str, Refusal> {
    // Visible ASCII, space and tab only, as `http::HeaderValue::to_str` accepts.
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(Refusal::Malformed);
    }
    let value = std::str::from_utf8(value).map_err(|_| Refusal::Malformed)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Missing);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(Refusal::Malformed);
    }
    Ok(token)
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The refusal as the caller's protocol says it.
fn refuse<RB: Default>(refusal: Refusal, grpc: bool) -> Response<RB> {
    let mut response = Response::new(RB::default());
    let headers = response.headers_mut();
    if grpc {
        let status = if refusal.is_unavailable() { "14" } else { "16" };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(status));
        // The messages are printable ASCII without `%`: valid grpc-message text as they are.
        if let Ok(message) = HeaderValue::try_from(refusal.to_string()) {
            headers.insert("grpc-message", message);
        }
        return response;
    }
    if refusal.is_unavailable() {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    let challenge = if refusal == Refusal::Missing {
        "Bearer"
    } else {
        r#"Bearer error="invalid_token""#
    };
    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
