//! Introspect callers that must authenticate once client credentials are configured.

use crate::helpers::{TestApp, settings};
use crate::smtp::SmtpServer;
use authd::pb::{self, auth_service_client::AuthServiceClient};
use authd::startup::Application;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tonic::Code;
use tonic::transport::Channel;

async fn introspect(
    client: &mut AuthServiceClient<Channel>,
    token: &str,
    authorization: Option<&str>,
) -> Result<pb::IntrospectResponse, tonic::Status> {
    let mut request = tonic::Request::new(pb::IntrospectRequest {
        token: token.into(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    client
        .introspect(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn get_jwks(client: &mut AuthServiceClient<Channel>) -> Result<(), tonic::Status> {
    client.get_jwks(pb::GetJwksRequest {}).await.map(|_| ())
}

/// A credential as `authd introspect-client new` prints it: (secret, setting entry).
fn credential(id: &str) -> (String, String) {
    let out = authd::grpc::client_auth::new_credential(id).unwrap();
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_owned();
    let entry = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{id}:")))
        .unwrap()
        .to_owned();
    assert!(
        out.contains(&basic(id, &secret)),
        "prints the header to send"
    );
    (secret, entry)
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test]
async fn introspect_needs_client_credentials_once_they_are_configured() {
    let (secret, entry) = credential("gateway");
    let (other_secret, other_entry) = credential("billing");
    let clients = format!("{entry},{other_entry}");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &clients]).await;
    // The other RPCs need no credentials: signup, verification, login, refresh, JWKS.
    let tokens = app.signup_verified_login("caller@example.com").await;
    let tokens = app.refresh(&tokens.refresh_token).await.unwrap();
    get_jwks(&mut app.client).await.unwrap();
    let access = tokens.access_token.as_str();

    let refused = [
        None,
        Some(basic("gateway", "wrong-secret")),
        Some(basic("gateway", &other_secret)),
        Some(basic("nobody", &secret)),
        Some(basic("gateway", "")),
        Some(basic("", &secret)),
        Some(basic("gateway", &format!("{secret}x"))),
        Some(format!(
            "Basic {}",
            STANDARD.encode(format!("gateway{secret}"))
        )),
        Some("Basic !!!not-base64!!!".to_owned()),
        Some("Basic".to_owned()),
        Some(format!("Bearer {access}")),
        Some(format!("Basic {}", "QUFB".repeat(400))),
    ];
    let mut messages = Vec::new();
    for authorization in &refused {
        let status = introspect(&mut app.client, access, authorization.as_deref())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{authorization:?}");
        assert!(!status.message().contains(&secret));
        messages.push(status.message().to_owned());
    }
    // A wrong secret and an unknown id read alike: the answer does not reveal client ids.
    assert_eq!(messages[1], messages[3]);

    for (id, secret) in [("gateway", &secret), ("billing", &other_secret)] {
        let answer = introspect(&mut app.client, access, Some(&basic(id, secret)))
            .await
            .unwrap();
        assert!(answer.active, "{id}");
        // A bad token is still an answer, not an error, for a caller that is let in.
        let answer = introspect(&mut app.client, "not a token", Some(&basic(id, secret)))
            .await
            .unwrap();
        assert!(!answer.active);
    }
}

#[tokio::test]
async fn right_and_wrong_callers_in_parallel_each_get_their_own_answer() {
    let (secret, entry) = credential("gateway");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &entry]).await;
    let access = app
        .signup_verified_login("parallel@example.com")
        .await
        .access_token;
    let calls = (0..64).map(|i| {
        let mut client = app.client.clone();
        let access = access.clone();
        let authorization = if i % 2 == 0 {
            basic("gateway", &secret)
        } else {
            basic("gateway", &format!("wrong{i}"))
        };
        tokio::spawn(async move {
            let result = introspect(&mut client, &access, Some(&authorization)).await;
            (i, result.map(|answer| answer.active).map_err(|s| s.code()))
        })
    });
    for call in join_all(calls).await {
        let (i, result) = call;
        if i % 2 == 0 {
            assert_eq!(result, Ok(true), "call {i}");
        } else {
            assert_eq!(result, Err(Code::Unauthenticated), "call {i}");
        }
    }
}

async fn join_all<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

/// `Application::build`'s error for these flags, as `authd serve` would print it.
async fn startup_error(extra: &[String]) -> String {
    let smtp = SmtpServer::start().await;
    let db = crate::helpers::TestDb::new().await;
    match Application::build(settings(&db.url, &smtp.url(), extra)).await {
        Ok(_) => panic!("start-up must fail with {extra:?}"),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn bad_settings_stop_startup_naming_the_setting() {
    let secret = "q7Vb2m0h5YJzG1xkKcT9aWnR3dLs8fUe4oPiQyNwBvA";
    let err = startup_error(&["--introspect-clients".into(), format!("gateway:{secret}")]).await;
    assert!(err.contains("AUTHD_INTROSPECT_CLIENTS"), "{err}");
    assert!(!err.contains(secret), "{err}");
}
