//! authd-verifier's layer in front of real servers: a tonic server (a small Health service of
//! the test's own that reports which user called) and an axum router, with tokens from a real
//! authd.

use crate::helpers::{TestApp, http_request};
use crate::verifier::{foreign_key, local, parts, sign};
use authd_verifier::{AuthLayer, Claims};
use std::net::SocketAddr;
use tonic::transport::{Channel, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response};

/// Check answers SERVING only when the caller's Claims name the email asked about; Watch (let
/// through without a token) answers SERVING only when Claims came with the call.
struct WhoCalls;

#[tonic::async_trait]
impl Health for WhoCalls {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let caller = request
            .extensions()
            .get::<Claims>()
            .map(|c| c.email.clone());
        Ok(tonic::Response::new(answer(
            caller.as_deref() == Some(&request.get_ref().service),
        )))
    }

    type WatchStream = tokio_stream::Once<Result<HealthCheckResponse, tonic::Status>>;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        let signed_in = request.extensions().get::<Claims>().is_some();
        Ok(tonic::Response::new(tokio_stream::once(Ok(answer(
            signed_in,
        )))))
    }
}

fn answer(serving: bool) -> HealthCheckResponse {
    let status = if serving {
        health_check_response::ServingStatus::Serving
    } else {
        health_check_response::ServingStatus::NotServing
    };
    HealthCheckResponse {
        status: status.into(),
    }
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Serves `WhoCalls` behind `layer`, either as a server-wide layer or around the one service.
async fn tonic_server(layer: AuthLayer, whole_server: bool) -> Channel {
    let (listener, addr) = listener().await;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let service = HealthServer::new(WhoCalls);
    tokio::spawn(async move {
        if whole_server {
            Server::builder()
                .layer(layer)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
        } else {
            Server::builder()
                .add_service(tower::Layer::layer(&layer, service))
                .serve_with_incoming(incoming)
                .await
        }
    });
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

fn with_token(service: &str, token: Option<&str>) -> tonic::Request<HealthCheckRequest> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.into(),
    });
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::test]
async fn the_layer_protects_a_tonic_server_and_hands_the_claims_to_the_handler() {
    let mut app = TestApp::spawn().await;
    let email = "tonic@example.com";
    let token = app.signup_verified_login(email).await.access_token;
    let (header, claims) = parts(&token);
    let forged = sign(&header, &claims, &foreign_key());
    let verifier = local(&app).await;
    for whole_server in [true, false] {
        let layer = AuthLayer::new(verifier.clone()).allow("/grpc.health.v1.Health/Watch");
        let mut client = HealthClient::new(tonic_server(layer, whole_server).await);

        let served = client.check(with_token(email, Some(&token))).await.unwrap();
        assert_eq!(
            served.into_inner(),
            answer(true),
            "the handler saw the caller"
        );
        let other = client
            .check(with_token("x@example.com", Some(&token)))
            .await
            .unwrap();
        assert_eq!(other.into_inner(), answer(false));

        for (bad, message) in [
            (None, "access token required"),
            (Some(forged.as_str()), "signature"),
            (Some("not-a-token"), "malformed"),
        ] {
            let status = client.check(with_token(email, bad)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(status.message().contains(message), "{}", status.message());
            assert!(!status.message().contains(&forged));
        }

        // The public path needs no token; whatever token comes is not looked at.
        for any in [None, Some(forged.as_str()), Some(token.as_str())] {
            let mut stream = client
                .watch(with_token("", any))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(stream.message().await.unwrap(), Some(answer(false)));
        }
    }
}

async fn me(axum::Extension(claims): axum::Extension<Claims>) -> String {
    claims.email
}

#[tokio::test]
async fn the_layer_protects_an_axum_router() {
    let mut app = TestApp::spawn().await;
    let token = app
        .signup_verified_login("axum@example.com")
        .await
        .access_token;
    let (header, claims) = parts(&token);
    let forged = sign(&header, &claims, &foreign_key());
    let router = axum::Router::new()
        .route("/me", axum::routing::get(me))
        .route("/public/ping", axum::routing::get(|| async { "pong" }))
        .layer(AuthLayer::new(local(&app).await).allow("/public/"));
    let (listener, addr) = listener().await;
    tokio::spawn(async move { axum::serve(listener, router).await });

    let bearer = |token: &str| format!("Bearer {token}");
    let get = |path: &'static str, authorization: Option<String>| async move {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("Authorization", value))
            .into_iter()
            .collect();
        http_request(addr, "GET", path, &headers).await
    };
    let ok = get("/me", Some(bearer(&token))).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "axum@example.com"));

    let missing = get("/me", None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    for bad in [forged.as_str(), "junk", ""] {
        let refused = get("/me", Some(bearer(bad))).await;
        assert_eq!(refused.status, 401, "{bad}");
        assert_eq!(
            refused.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
        assert!(!refused.body.contains("axum@example.com"));
    }
    let public = get("/public/ping", None).await;
    assert_eq!((public.status, public.body.as_str()), (200, "pong"));
}
