//! Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`) through a real
//! tonic client of the vendored service over TCP: who is let through with which headers, that
//! everything else is a 401 with the Bearer challenge, that an outage stays an RPC error, and
//! that the service is in reflection. `scripts/interop/check.py` calls it again with Envoy's own
//! published protos.

use crate::helpers::{TestApp, TestDb, code};
use crate::outage::OwnPostgres;
use crate::smtp::SmtpServer;
use crate::tokens::{header, parts};
use authd::grpc::envoy::config::core::v3::{
    HeaderMap, HeaderValue, header_value_option::HeaderAppendAction,
};
use authd::grpc::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, OkHttpResponse, attribute_context,
    authorization_client::AuthorizationClient, check_response::HttpResponse,
};
use authd::grpc::ext_authz::{CHALLENGE, EMAIL_HEADER, SESSION_ID_HEADER, USER_ID_HEADER};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const SERVICE: &str = "envoy.service.auth.v3.Authorization";

fn client(app: &TestApp) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
            .unwrap()
            .connect_lazy(),
    )
}

/// A CheckRequest as Envoy builds it by default: the headers as a lower-case map.
fn request(headers: &[(&str, &str)]) -> CheckRequest {
    http_request(attribute_context::HttpRequest {
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        header_map: None,
    })
}

/// A CheckRequest as Envoy builds it with `encode_raw_headers: true`: a list, bytes in
/// `raw_value`, duplicates kept.
fn raw_request(headers: &[(&str, &str)]) -> CheckRequest {
    http_request(attribute_context::HttpRequest {
        headers: Default::default(),
        header_map: Some(HeaderMap {
            headers: headers
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: (*k).to_owned(),
                    value: String::new(),
                    raw_value: v.as_bytes().to_vec(),
                })
                .collect(),
        }),
    })
}

fn http_request(http: attribute_context::HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request { http: Some(http) }),
        }),
    }
}

async fn check(client: &mut AuthorizationClient<Channel>, request: CheckRequest) -> CheckResponse {
    client
        .check(request)
        .await
        .expect("Check answers a bad token, it does not fail")
        .into_inner()
}

/// The OK answer's headers, or a panic naming what came instead.
fn allowed(answer: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(
        answer.status.as_ref().map(|s| s.code),
        Some(0),
        "{answer:?}"
    );
    match &answer.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an ok_response: {other:?}"),
    }
}

/// Asserts the contract's denial: UNAUTHENTICATED, HTTP 401, exactly the challenge.
fn assert_denied(answer: &CheckResponse, what: &str) {
    let status = answer.status.as_ref().expect("a status");
    assert_eq!(
        status.code,
        Code::Unauthenticated as i32,
        "{what}: {answer:?}"
    );
    assert!(
        !status.message.is_empty() && status.message.len() < 100,
        "{what}: a short message, not {:?}",
        status.message
    );
    let Some(HttpResponse::DeniedResponse(denied)) = &answer.http_response else {
        panic!("{what}: not a denied_response: {answer:?}")
    };
    assert_eq!(denied.status.as_ref().map(|s| s.code), Some(401), "{what}");
    let headers: Vec<(&str, &str)> = denied
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(headers, [("www-authenticate", CHALLENGE)], "{what}");
}

/// What Envoy's ext_authz filter makes of the request headers on OK (`Filter::onComplete` in
/// source/extensions/filters/http/ext_authz/ext_authz.cc): first each `headers` entry, an
/// OVERWRITE_IF_EXISTS_OR_ADD one as `setCopy` (every value of the name dropped, one added), an
/// APPEND_IF_EXISTS_OR_ADD one as `addCopy`; then `headers_to_remove`.
fn upstream_headers(
    mut request: Vec<(String, String)>,
    ok: &OkHttpResponse,
) -> Vec<(String, String)> {
    for option in &ok.headers {
        let header = option.header.as_ref().unwrap();
        if option.append_action() == HeaderAppendAction::OverwriteIfExistsOrAdd {
            request.retain(|(name, _)| *name != header.key);
        }
        request.push((header.key.clone(), header.value.clone()));
    }
    request.retain(|(name, _)| !ok.headers_to_remove.contains(name));
    request
}

#[tokio::test]
async fn a_live_sessions_token_passes_with_its_identity_and_a_forged_one_never_gets_through() {
    let mut app = TestApp::spawn().await;
    let mallory = app.signup_verified_login("mallory@example.com").await;
    let ada = app.signup_verified_login("ada@example.com").await;
    let who = app.introspect(&mallory.access_token).await;
    let ada_id = ada.user.unwrap().id;
    let bearer = format!("Bearer {}", mallory.access_token);
    let mut client = client(&app);

    // Mallory sends Ada's id (twice, and in another case) alongside her own token.
    let forged = [
        ("authorization", bearer.as_str()),
        (USER_ID_HEADER, ada_id.as_str()),
        (EMAIL_HEADER, "ada@example.com"),
    ];
    let raw_forged = [
        ("authorization", bearer.as_str()),
        (USER_ID_HEADER, ada_id.as_str()),
        (USER_ID_HEADER, ada_id.as_str()),
        (SESSION_ID_HEADER, "someone-elses-session"),
    ];
    for (form, request, sent) in [
        ("headers map", request(&forged), &forged[..]),
        ("raw header_map", raw_request(&raw_forged), &raw_forged[..]),
    ] {
        let answer = check(&mut client, request).await;
        let ok = allowed(&answer);
        let set: Vec<(&str, &str, HeaderAppendAction)> = ok
            .headers
            .iter()
            .map(|o| {
                let h = o.header.as_ref().unwrap();
                (h.key.as_str(), h.value.as_str(), o.append_action())
            })
            .collect();
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
        assert_eq!(
            set,
            [
                (USER_ID_HEADER, who.sub.as_str(), overwrite),
                (SESSION_ID_HEADER, who.sid.as_str(), overwrite),
                (EMAIL_HEADER, "mallory@example.com", overwrite),
            ],
            "{form}"
        );
        // Envoy removes after it sets: listing the names would delete authd's own values.
        for name in [USER_ID_HEADER, SESSION_ID_HEADER, EMAIL_HEADER] {
            assert!(
                !ok.headers_to_remove.iter().any(|n| n == name),
                "{form}: {name}"
            );
        }
        let upstream = upstream_headers(
            sent.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ok,
        );
        let values = |name: &str| -> Vec<&str> {
            upstream
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(values(USER_ID_HEADER), [who.sub.as_str()], "{form}");
        assert_eq!(values(SESSION_ID_HEADER), [who.sid.as_str()], "{form}");
        assert_eq!(values(EMAIL_HEADER), ["mallory@example.com"], "{form}");
    }
    // The scheme in any case, extra spaces.
    let lower = format!("bearer   {}", mallory.access_token);
    allowed(&check(&mut client, request(&[("authorization", &lower)])).await);
}

#[tokio::test]
async fn every_other_request_is_unauthenticated_with_401_and_the_challenge() {
    // The control at the end needs the token still live after a second signup, hashing and a
    // dozen checks: whole-second `iat`/`exp` leave it 5 to 6 s, enough on a loaded machine.
    let mut app = TestApp::spawn_with(&["--access-ttl", "6s"]).await;
    let tokens = app.signup_verified_login("deny@example.com").await;
    let ended = app.signup_verified_login("ended@example.com").await;
    app.logout(&ended.refresh_token, false).await;
    let (real_header, claims) = parts(&tokens.access_token);
    let kid = real_header["kid"].as_str().unwrap();
    let key = EncodingKey::from_ed_der(&app.stored_private_key(kid).await);
    let mut expired_claims = claims.clone();
    expired_claims["exp"] = json!(chrono::Utc::now().timestamp() - 120);
    let expired = jsonwebtoken::encode(
        &header(Algorithm::EdDSA, Some("at+jwt"), Some(kid)),
        &expired_claims,
        &key,
    )
    .unwrap();
    let mut padded = claims.clone();
    padded["pad"] = json!("x".repeat(9 * 1024));
    let huge = jsonwebtoken::encode(
        &header(Algorithm::EdDSA, Some("at+jwt"), Some(kid)),
        &padded,
        &key,
    )
    .unwrap();
    assert!(huge.len() > 8 * 1024);
    // One character in the middle of the signature changed.
    let mut tampered = tokens.access_token.clone().into_bytes();
    let at = tokens.access_token.rfind('.').unwrap() + 20;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ada:secret")
    );
    let bearer = |token: &str| format!("Bearer {token}");

    let mut client = client(&app);
    let cases: Vec<(&str, CheckRequest)> = vec![
        ("no attributes", CheckRequest::default()),
        ("no authorization header", request(&[("x-other", "1")])),
        ("a Basic header", request(&[("authorization", &basic)])),
        ("no token", request(&[("authorization", "Bearer ")])),
        ("garbage", request(&[("authorization", "Bearer not.a.jwt")])),
        (
            "tampered",
            request(&[("authorization", &bearer(&tampered))]),
        ),
        ("expired", request(&[("authorization", &bearer(&expired))])),
        (
            "logged out",
            request(&[("authorization", &bearer(&ended.access_token))]),
        ),
        (
            "a refresh token",
            request(&[("authorization", &bearer(&tokens.refresh_token))]),
        ),
        (
            "an 8 KiB+ token",
            request(&[("authorization", &bearer(&huge))]),
        ),
        (
            "a 1 MiB header",
            request(&[("authorization", &bearer(&"a".repeat(1 << 20)))]),
        ),
        (
            "two raw authorization headers",
            raw_request(&[
                ("authorization", &bearer(&tokens.access_token)),
                ("authorization", &bearer(&tokens.access_token)),
            ]),
        ),
    ];
    for (what, request) in cases {
        assert_denied(&check(&mut client, request).await, what);
    }
    // Control: the same token passes, until it expires by itself.
    let live = || request(&[("authorization", &bearer(&tokens.access_token))]);
    allowed(&check(&mut client, live()).await);
    tokio::time::sleep(std::time::Duration::from_millis(7100)).await;
    assert_denied(&check(&mut client, live()).await, "expired by the clock");
}

#[tokio::test]
async fn callers_need_the_introspect_credentials_when_they_are_configured() {
    let (secret, entry) = crate::verifier::credential("envoy");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &entry]).await;
    let tokens = app.signup_verified_login("gated@example.com").await;
    let bearer = format!("Bearer {}", tokens.access_token);
    let mut client = client(&app);
    let with_basic = |credential: Option<String>| {
        let mut request = tonic::Request::new(request(&[("authorization", &bearer)]));
        if let Some(credential) = credential {
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credential)
            );
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request
    };
    for credential in [
        None,
        Some("envoy:wrong".to_owned()),
        Some(format!("other:{secret}")),
    ] {
        let refused = client.check(with_basic(credential.clone())).await;
        assert_eq!(code(refused), Code::Unauthenticated, "{credential:?}");
    }
    let answer = client
        .check(with_basic(Some(format!("envoy:{secret}"))))
        .await
        .unwrap()
        .into_inner();
    allowed(&answer);
}

#[tokio::test]
async fn fifty_checks_at_once_give_the_answers_one_at_a_time_gives() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("parallel@example.com").await;
    let who = app.introspect(&tokens.access_token).await;
    let client = client(&app);
    let calls = (0..50).map(|i| {
        let mut client = client.clone();
        let token = if i % 2 == 0 {
            tokens.access_token.clone()
        } else {
            format!("{}x", tokens.access_token)
        };
        tokio::spawn(async move {
            let header = format!("Bearer {token}");
            (
                i,
                check(&mut client, request(&[("authorization", &header)])).await,
            )
        })
    });
    for call in join_all(calls).await {
        let (i, answer) = call.unwrap();
        if i % 2 == 0 {
            let ok = allowed(&answer);
            let user = ok.headers[0].header.as_ref().unwrap();
            assert_eq!(
                (user.key.as_str(), user.value.as_str()),
                (USER_ID_HEADER, who.sub.as_str())
            );
        } else {
            assert_denied(&answer, "a bad token among good ones");
        }
    }
}

async fn join_all<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let handles: Vec<_> = handles.collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await);
    }
    results
}

#[tokio::test]
async fn reflection_lists_and_describes_the_authorization_service() {
    use prost::Message;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
            .unwrap()
            .connect_lazy(),
    );
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let outbound = tokio_stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(SERVICE.into())),
        ask(MessageRequest::FileByFilename(
            "google/rpc/status.proto".into(),
        )),
    ]);
    let mut answers = client
        .server_reflection_info(outbound)
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    assert!(list.service.iter().any(|s| s.name == SERVICE), "{list:?}");

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a file descriptor");
    };
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    // Envoy's own file name and package, so clients that have Envoy's protos see the same file.
    assert_eq!(file.name(), "envoy/service/auth/v3/external_auth.proto");
    assert_eq!(file.package(), "envoy.service.auth.v3");
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "Authorization")
        .unwrap();
    let methods: Vec<(&str, &str, &str)> = service
        .method
        .iter()
        .map(|m| (m.name(), m.input_type(), m.output_type()))
        .collect();
    assert_eq!(
        methods,
        [(
            "Check",
            ".envoy.service.auth.v3.CheckRequest",
            ".envoy.service.auth.v3.CheckResponse"
        )]
    );
    // What it imports is served too, so `grpcurl describe` resolves CheckResponse.status.
    let Some(MessageResponse::FileDescriptorResponse(status)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("google/rpc/status.proto is not served");
    };
    let status =
        prost_types::FileDescriptorProto::decode(status.file_descriptor_proto[0].as_slice())
            .unwrap();
    assert_eq!(status.message_type[0].name(), "Status");
}

#[tokio::test]
async fn health_knows_the_authorization_service() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
            .unwrap()
            .connect_lazy(),
    );
    let answer = health
        .check(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_check_is_unavailable_never_a_401_or_an_ok() {
    if !TestDb::new_is_postgres() {
        return; // the PostgreSQL pass runs it; it starts a server of its own either way
    }
    let cluster = OwnPostgres::start();
    let smtp = SmtpServer::start().await;
    let mut app = TestApp::spawn_on(
        TestDb::at(cluster.url()),
        smtp,
        crate::outage::OUTAGE_TIMEOUT,
    )
    .await;
    let tokens = app.signup_verified_login("outage-check@example.com").await;
    let bearer = format!("Bearer {}", tokens.access_token);
    let mut client = client(&app);
    allowed(&check(&mut client, request(&[("authorization", &bearer)])).await);

    cluster.down();
    for _ in 0..3 {
        let answer = client.check(request(&[("authorization", &bearer)])).await;
        assert_eq!(code(answer), Code::Unavailable);
    }
    // A request without a token needs no database: it is still an answer.
    assert_denied(
        &check(&mut client, request(&[])).await,
        "no token during the outage",
    );

    cluster.up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match client.check(request(&[("authorization", &bearer)])).await {
            Ok(answer) => {
                allowed(answer.get_ref());
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(std::time::Instant::now() < deadline, "no recovery");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    app.stop().await;
}
