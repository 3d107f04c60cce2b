//! The server around the API: restarts, the HTTP side port, gRPC health and reflection,
//! graceful shutdown, and how a lost database shows to callers.

use crate::helpers::{PASSWORD, TestApp, admin_url, code, verify_with_jwks};
use crate::smtp::SmtpServer;
use authd::pb;
use sea_orm::{ConnectionTrait, Database};
use std::time::Duration;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: serde_json::Value =
        serde_json::from_str(&app.http_get("/.well-known/jwks.json").await.body).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tokens_issued_before_a_restart_keep_working_after_it() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("restart@example.com").await;
    let kids = jwks_kids(&app).await;
    assert_eq!(kids.len(), 1);

    let mut app = app.restart().await;
    assert_eq!(jwks_kids(&app).await, kids, "the signing key is kept");
    verify_with_jwks(&app, &tokens.access_token)
        .await
        .expect("the old access token verifies with the new JWKS");
    assert!(app.introspect(&tokens.access_token).await.active);
    let rotated = app
        .refresh(&tokens.refresh_token)
        .await
        .expect("the refresh token survives the restart");
    let header = jsonwebtoken::decode_header(&rotated.access_token).unwrap();
    assert_eq!(header.kid, Some(kids[0].clone()));
}

#[tokio::test]
async fn the_http_side_port_serves_probes_metrics_and_the_jwks() {
    let mut app = TestApp::spawn().await;
    app.signup_verified_login("http@example.com").await;

    assert_eq!(app.http_get("/healthz").await.status, 200);
    assert_eq!(app.http_get("/readyz").await.status, 200);

    let metrics = app.http_get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let content_type = metrics.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        metrics.body.contains(
            "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"auth.v1.AuthService\",grpc_method=\"Login\",grpc_code=\"OK\"} 1\n"
        ),
        "{}",
        metrics.body
    );

    let jwks = app.http_get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    let cache = jwks.header("cache-control").unwrap_or_default();
    assert!(
        cache.contains("public") && cache.contains("max-age="),
        "{cache}"
    );
    let served: serde_json::Value = serde_json::from_str(&jwks.body).unwrap();
    let over_grpc = app
        .client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    assert_eq!(
        served,
        serde_json::from_str::<serde_json::Value>(&over_grpc).unwrap()
    );

    assert_eq!(app.http_get("/no/such/path").await.status, 404);
}

#[tokio::test]
async fn grpc_health_reports_serving_for_the_server_and_its_services() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(channel(&app).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    // Every name is reported before the server accepts its first call.
    for service in ["", "auth.v1.AuthService", "auth.v1.AccountService"] {
        let answer = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(check("no.such.Service")).await;
    assert_eq!(code(unknown), Code::NotFound);
}

/// Asks a reflection service (v1 or v1alpha, which share their message shapes) one question.
macro_rules! reflect {
    ($version:ident, $channel:expr, $request:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request: MessageRequest = $request;
        let mut client = ServerReflectionClient::new($channel);
        let outbound = tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }]);
        let mut answers = client
            .server_reflection_info(outbound)
            .await
            .unwrap()
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                Reflected::Services(list.service.into_iter().map(|s| s.name).collect())
            }
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                Reflected::Files(files.file_descriptor_proto)
            }
            other => panic!("unexpected reflection answer: {other:?}"),
        }
    }};
}

#[derive(Debug)]
enum Reflected {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
}

#[tokio::test]
async fn reflection_lists_the_services_on_v1_and_v1alpha() {
    let app = TestApp::spawn().await;
    let channel = channel(&app).await;
    let v1 = reflect!(
        v1,
        channel.clone(),
        MessageRequest::ListServices(String::new())
    );
    let v1alpha = reflect!(
        v1alpha,
        channel.clone(),
        MessageRequest::ListServices(String::new())
    );
    for listed in [v1, v1alpha] {
        let Reflected::Services(names) = listed else {
            panic!("{listed:?}")
        };
        for expected in [
            "auth.v1.AuthService",
            "auth.v1.AccountService",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
    }

    let symbol = || "auth.v1.AuthService".to_owned();
    for files in [
        reflect!(
            v1,
            channel.clone(),
            MessageRequest::FileContainingSymbol(symbol())
        ),
        reflect!(
            v1alpha,
            channel.clone(),
            MessageRequest::FileContainingSymbol(symbol())
        ),
    ] {
        let Reflected::Files(files) = files else {
            panic!("{files:?}")
        };
        let file = files.first().expect("a file descriptor");
        assert!(!file.is_empty());
        // A serialized FileDescriptorProto names its package and services as plain strings.
        let text = String::from_utf8_lossy(file);
        assert!(text.contains("auth.v1") && text.contains("AuthService"));
    }
}

/// The files a reflection answer holds, decoded.
fn descriptors(answer: Reflected) -> Vec<prost_types::FileDescriptorProto> {
    use prost::Message;
    let Reflected::Files(files) = answer else {
        panic!("{answer:?}")
    };
    files
        .iter()
        .map(|raw| prost_types::FileDescriptorProto::decode(raw.as_slice()).unwrap())
        .collect()
}

#[tokio::test]
async fn reflection_describes_the_error_details_that_errors_carry() {
    let app = TestApp::spawn().await;
    let channel = channel(&app).await;
    for symbol in ["google.rpc.BadRequest", "google.rpc.RetryInfo"] {
        let v1 = reflect!(
            v1,
            channel.clone(),
            MessageRequest::FileContainingSymbol(symbol.to_owned())
        );
        let v1alpha = reflect!(
            v1alpha,
            channel.clone(),
            MessageRequest::FileContainingSymbol(symbol.to_owned())
        );
        for files in [descriptors(v1), descriptors(v1alpha)] {
            let file = files.first().expect("a file descriptor");
            // Its canonical name, the one googleapis-common-protos and Go's errdetails use, so
            // clients that know the file already see the same file, not a clash.
            assert_eq!(file.name(), "google/rpc/error_details.proto");
            assert_eq!(file.package(), "google.rpc");
            let messages: Vec<&str> = file.message_type.iter().map(|m| m.name()).collect();
            for expected in ["BadRequest", "RetryInfo"] {
                assert!(messages.contains(&expected), "{messages:?}");
            }
            let bad_request = file
                .message_type
                .iter()
                .find(|m| m.name() == "BadRequest")
                .unwrap();
            let violation = bad_request
                .nested_type
                .iter()
                .find(|m| m.name() == "FieldViolation")
                .expect("BadRequest.FieldViolation");
            let fields: Vec<&str> = violation.field.iter().map(|f| f.name()).collect();
            assert!(fields.contains(&"field") && fields.contains(&"description"));
            assert_eq!(file.dependency, ["google/protobuf/duration.proto"]);
        }
    }
    // What it imports is served too, so a client can resolve RetryInfo.retry_delay.
    let imported = descriptors(reflect!(
        v1,
        channel.clone(),
        MessageRequest::FileByFilename("google/protobuf/duration.proto".to_owned())
    ));
    assert_eq!(imported[0].name(), "google/protobuf/duration.proto");
    assert_eq!(imported[0].message_type[0].name(), "Duration");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish() {
    let app = TestApp::spawn().await;
    // A bcrypt cost that takes a noticeable time to verify makes the login slow.
    let hash = bcrypt::hash("slow password", 13).unwrap();
    crate::helpers::insert_user_with_hash(&app, "slow@example.com", hash).await;

    let mut client = app.client.clone();
    let call = tokio::spawn(async move {
        let answer = client
            .login(pb::LoginRequest {
                email: "slow@example.com".into(),
                password: "slow password".into(),
                client_id: String::new(),
            })
            .await;
        (answer, Instant::now())
    });
    // Let the call reach the server; it then spends a while verifying the hash.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!call.is_finished(), "the login must still be running");
    let stopping = Instant::now();
    let (_db, _smtp) = app.stop().await; // panics unless the server stopped cleanly
    let (answer, finished) = call.await.unwrap();
    let tokens = answer.expect("the in-flight login completes").into_inner();
    assert!(!tokens.access_token.is_empty());
    assert!(
        finished > stopping,
        "the call was in flight during shutdown"
    );
}

#[tokio::test]
async fn a_lost_database_is_unavailable_not_internal() {
    let mut app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        // SQLite is a file opened by the process: there is no server to lose, and deleting or
        // corrupting the file would test corruption, not unavailability. Postgres only.
        return;
    }
    app.signup_verified_login("lost@example.com").await;
    let name = app.db.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = Database::connect(&admin_url()).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.ok();

    let login = app.login("lost@example.com", PASSWORD).await;
    assert_eq!(code(login), Code::Unavailable);
    let signup = app
        .client
        .signup(pb::SignupRequest {
            email: "new@example.com".into(),
            password: PASSWORD.into(),
            name: "Test User".into(),
        })
        .await;
    assert_eq!(code(signup), Code::Unavailable);
    assert_eq!(app.http_get("/readyz").await.status, 503);
    assert_eq!(app.http_get("/healthz").await.status, 200, "still alive");

    // gRPC health follows the database; it is re-checked every few seconds.
    let mut health = HealthClient::new(channel(&app).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    for service in ["", "auth.v1.AuthService", "auth.v1.AccountService"] {
        loop {
            let request = HealthCheckRequest {
                service: service.into(),
            };
            let status = health.check(request).await.unwrap().into_inner().status();
            if status == ServingStatus::NotServing {
                break;
            }
            assert!(Instant::now() < deadline, "{service:?} still {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_on_a_fresh_database_share_one_key() {
    for _ in 0..3 {
        let db = crate::helpers::TestDb::new().await;
        let second = db.share();
        let (smtp_a, smtp_b) = (SmtpServer::start().await, SmtpServer::start().await);
        // Both migrate and look for a signing key at the same moment.
        let (a, b) = tokio::join!(
            TestApp::spawn_on(db, smtp_a, &[]),
            TestApp::spawn_on(second, smtp_b, &[])
        );
        let jwks_a: serde_json::Value =
            serde_json::from_str(&a.http_get("/.well-known/jwks.json").await.body).unwrap();
        let jwks_b: serde_json::Value =
            serde_json::from_str(&b.http_get("/.well-known/jwks.json").await.body).unwrap();
        assert_eq!(jwks_a["keys"].as_array().map(Vec::len), Some(1), "{jwks_a}");
        assert_eq!(jwks_a, jwks_b, "both replicas publish the same single key");
        b.stop().await;
        a.stop().await;
    }
}
