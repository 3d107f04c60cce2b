//! The layer around a small service: public paths, missing, refused and good tokens, in gRPC and
//! in plain HTTP.

use super::*;
use crate::test_support::{self as t, AUDIENCE, ISSUER, KID};
use crate::{Checks, PublicKeys};
use std::convert::Infallible;
use tower::{Layer, ServiceExt};

/// Checks against fixed keys; `Unavailable` for the token "unavailable".
struct Fixed {
    checks: Checks,
    keys: PublicKeys,
}

impl Verify for Fixed {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, Refusal>> {
        Box::pin(async move {
            if token == "unavailable" {
                return Err(Refusal::Unavailable);
            }
            Claims::try_from(self.checks.check(token, &self.keys)?)
        })
    }
}

/// Answers with the user id it finds in the extensions ("anonymous" without).
#[derive(Clone)]
struct Echo;

impl tower::Service<Request<()>> for Echo {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let user = request
            .extensions()
            .get::<Claims>()
            .map_or("anonymous".to_owned(), |c| c.user_id.to_string());
        std::future::ready(Ok(Response::new(user)))
    }
}

fn layer() -> AuthLayer {
    let keys = PublicKeys::from_json(&t::jwks(&[(KID, &t::key(1))])).unwrap();
    let checks = Checks::new(ISSUER, vec![AUDIENCE.into()]);
    AuthLayer::new(Fixed { checks, keys })
        .allow_health_and_reflection()
        .allow("/habits.v1.Habits/Ping")
        .allow("/public/")
}

fn good_token() -> String {
    t::sign(&t::header(), &t::claims(t::now()), &t::key(1))
}

async fn send(path: &str, grpc: bool, authorization: &[&str]) -> Response<String> {
    let mut request = Request::builder().uri(path);
    if grpc {
        request = request.header(CONTENT_TYPE, "application/grpc+proto");
    }
    for value in authorization {
        request = request.header(AUTHORIZATION, *value);
    }
    let request = request.body(()).unwrap();
    layer().layer(Echo).oneshot(request).await.unwrap()
}

fn header<'a>(response: &'a Response<String>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_good_token_reaches_the_service_with_its_claims() {
    let bearer = format!("Bearer {}", good_token());
    for grpc in [true, false] {
        let response = send("/habits.v1.Habits/List", grpc, &[&bearer]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), t::claims(0)["sub"].as_str().unwrap());
        assert_eq!(header(&response, "grpc-status"), None);
    }
    // The scheme is case-insensitive (RFC 7235 §2.1); extra spaces are tolerated.
    let lower = format!("bearer  {}", good_token());
    let response = send("/x", false, &[&lower]).await;
    assert_eq!(response.body(), t::claims(0)["sub"].as_str().unwrap());
}

#[tokio::test]
async fn grpc_refusals_are_trailers_only_responses() {
    let cases: [(&[&str], &str, &str); 5] = [
        (&[], "16", "access token required"),
        (&["Bearer not.a.token"], "16", "malformed"),
        (&["Basic dXNlcjpwYXNz"], "16", "access token required"),
        (&["Bearer unavailable"], "14", "retry later"),
        (&["Bearer a", "Bearer b"], "16", "malformed"),
    ];
    for (authorization, status, message) in cases {
        let response = send("/habits.v1.Habits/List", true, authorization).await;
        assert_eq!(response.status(), StatusCode::OK, "{authorization:?}");
        assert_eq!(header(&response, "content-type"), Some("application/grpc"));
        assert_eq!(
            header(&response, "grpc-status"),
            Some(status),
            "{authorization:?}"
        );
        let text = header(&response, "grpc-message").unwrap_or_default();
        assert!(text.contains(message), "{authorization:?}: {text}");
        assert_eq!(response.body(), "", "the service was not called");
    }
    let mut claims = t::claims(t::now());
    claims["exp"] = serde_json::json!(t::now() - 1);
    let expired = t::sign(&t::header(), &claims, &t::key(1));
    let response = send("/x.Y/Z", true, &[&format!("Bearer {expired}")]).await;
    assert_eq!(
        header(&response, "grpc-message"),
        Some("access token expired")
    );
    assert!(!format!("{:?}", response.headers()).contains(&expired));
}

#[tokio::test]
async fn http_refusals_are_401_with_a_bearer_challenge() {
    let response = send("/habits", false, &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
    let forged = t::sign(&t::header(), &t::claims(t::now()), &t::key(9));
    let response = send("/habits", false, &[&format!("Bearer {forged}")]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, "www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(response.body(), "");
    let response = send("/habits", false, &["Bearer unavailable"]).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "www-authenticate"), None);
    for empty in ["Bearer ", "Bearer", "bearer   "] {
        let response = send("/habits", false, &[empty]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{empty}");
        assert_eq!(
            header(&response, "www-authenticate"),
            Some(r#"Bearer error="invalid_token""#),
            "{empty}"
        );
    }
    let response = send("/habits", false, &["Bearer "]).await;
    assert_eq!(
        header(&response, "www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
}

#[tokio::test]
async fn allowed_paths_pass_without_a_token_and_nothing_else_does() {
    for path in [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/habits.v1.Habits/Ping",
        "/public/css/site.css",
    ] {
        let response = send(path, true, &[]).await;
        assert_eq!(response.body(), "anonymous", "{path}");
    }
    for path in [
        "/habits.v1.Habits/Ping2",
        "/habits.v1.Habits/Pin",
        "/habits.v1.Habits/",
        "/grpc.health.v1.Health",
        "/grpc.health.v1.HealthX/Check",
        "/public",
        "/public/../private",
        "/public/%2e%2E/private",
        "/public/./x",
    ] {
        let response = send(path, true, &[]).await;
        assert_eq!(header(&response, "grpc-status"), Some("16"), "{path}");
    }
    // A bad token on a public path is not looked at.
    let response = send("/habits.v1.Habits/Ping", true, &["Bearer junk"]).await;
    assert_eq!(response.body(), "anonymous");
}

#[test]
fn a_wrapped_tonic_service_keeps_its_name() {
    struct Named;
    impl tonic::server::NamedService for Named {
        const NAME: &'static str = "habits.v1.Habits";
    }
    assert_eq!(
        <RequireAuth<Named> as tonic::server::NamedService>::NAME,
        "habits.v1.Habits"
    );
}
