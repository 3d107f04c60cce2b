//! Bytes that are not a request: hand-built gRPC frames sent over a real HTTP/2 connection
//! (tonic's `Channel`, as a plain HTTP service, so the frame header is ours too). Each gets a
//! short answer that says nothing of prost's or tonic's internals, and nothing is written.

use crate::helpers::{MAIL_WAIT, PASSWORD, TestApp};
use authd::db::entity::{mail_outbox, user};
use authd::pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use sea_orm::{EntityTrait, PaginatorTrait};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::Service;

/// tonic's default limit for one received message.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A gRPC frame: compression flag, declared length (big-endian), then `payload` as it is.
fn frame(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&declared_len.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An uncompressed frame whose header tells the truth.
fn plain(payload: &[u8]) -> Vec<u8> {
    frame(0, u32::try_from(payload.len()).unwrap(), payload)
}

/// The password and name fields (2 and 3) of a signup that would succeed, to which each case
/// adds a broken or unbroken email field (1): were the broken one read leniently, an account
/// would be created and a mail sent.
fn rest_of_signup() -> Vec<u8> {
    pb::SignupRequest {
        email: String::new(),
        password: PASSWORD.into(),
        name: "Mallory".into(),
    }
    .encode_to_vec()
}

fn signup_with(email_field: &[u8]) -> Vec<u8> {
    let mut payload = rest_of_signup();
    payload.extend_from_slice(email_field);
    payload
}

/// One call of `method` on the AuthService with `body` as the whole request body; the status
/// the server answered, from the headers (a trailers-only answer) or from the trailers.
async fn raw_call(channel: &Channel, method: &str, body: Vec<u8>) -> Status {
    let mut channel = channel.clone();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("/auth.v1.AuthService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let response = channel.call(request).await.expect("an HTTP answer");
    assert_eq!(response.status(), http::StatusCode::OK, "gRPC answers 200");
    if let Some(status) = Status::from_header_map(response.headers()) {
        return status;
    }
    let collected = response.into_body().collect().await.expect("a whole body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    Status::from_header_map(&trailers).expect("grpc-status in the trailers")
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("HTTP/2 connect")
}

/// Words of prost's and tonic's own error texts that must not reach a caller.
fn assert_no_internals(status: &Status) {
    let message = status.message().to_lowercase();
    for word in [
        "prost",
        "utf-8",
        "utf8",
        "wire type",
        "varint",
        "buffer underflow",
        "failed to decode",
        "decodeerror",
        "eof",
        "found",
    ] {
        assert!(!message.contains(word), "{word:?} in {status:?}");
    }
    assert!(message.len() < 100, "a short message, not {status:?}");
}

async fn assert_nothing_written(app: &TestApp) {
    let db = app.db.connect().await;
    assert_eq!(user::Entity::find().count(&db).await.unwrap(), 0, "users");
    assert_eq!(
        mail_outbox::Entity::find().count(&db).await.unwrap(),
        0,
        "mails"
    );
}

#[tokio::test]
async fn requests_that_do_not_decode_are_invalid_argument_and_write_nothing() {
    let app = TestApp::spawn().await;
    let channel = channel(&app).await;
    let cases: [(&str, Vec<u8>); 6] = [
        // field 1 (email), 19 bytes, with 0xff where a letter should be: not UTF-8
        (
            "non-UTF-8 email",
            signup_with(b"\x0a\x13m\xffllory@example.com"),
        ),
        // the length of field 1 is a varint whose continuation bit promises a byte that never comes
        ("truncated varint", signup_with(&[0x0a, 0x80])),
        // field 1 sent as a fixed32 (wire type 5): a string field has wire type 2
        (
            "wrong wire type",
            signup_with(&[0x0d, b'a', b'@', b'b', b'c']),
        ),
        // field 1 declares 64 bytes and 7 follow
        (
            "field longer than the message",
            signup_with(b"\x0a\x40a@b.com"),
        ),
        // wire type 7 does not exist
        ("unknown wire type", signup_with(&[0x0f])),
        // field number 0 is reserved
        ("field number 0", signup_with(&[0x02, 0x01, b'x'])),
    ];
    for (case, payload) in cases {
        let status = raw_call(&channel, "Signup", plain(&payload)).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert_eq!(
            status.message(),
            "the message could not be decoded as auth.v1.SignupRequest",
            "{case}"
        );
        assert_no_internals(&status);
    }
    // Another request type names itself.
    let login = raw_call(&channel, "Login", plain(b"\x12\x02\xc3\x28")).await;
    assert_eq!(login.code(), Code::InvalidArgument, "{login:?}");
    assert!(
        login.message().ends_with("auth.v1.LoginRequest"),
        "{login:?}"
    );
    assert_nothing_written(&app).await;

    // The control: the same bytes with a well-formed email field are a signup that works.
    let email = b"\x0a\x13mallory@example.com";
    let status = raw_call(&channel, "Signup", plain(&signup_with(email))).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    app.smtp
        .wait_for_mail_to("mallory@example.com", MAIL_WAIT)
        .await;
}

#[tokio::test]
async fn broken_frames_get_short_answers_and_write_nothing() {
    let app = TestApp::spawn().await;
    let channel = channel(&app).await;
    let payload = signup_with(b"\x0a\x13mallory@example.com");
    let len = u32::try_from(payload.len()).unwrap();

    // The frame header declares more bytes than the body holds before it ends.
    let short = raw_call(&channel, "Signup", frame(0, len + 10, &payload)).await;
    assert_eq!(short.code(), Code::InvalidArgument, "{short:?}");
    assert_no_internals(&short);
    // The body ends inside the 5-byte frame header.
    let stub = raw_call(&channel, "Signup", vec![0, 0, 0]).await;
    assert_eq!(stub.code(), Code::InvalidArgument, "{stub:?}");
    assert_no_internals(&stub);

    // Compressed, when the request names no grpc-encoding: the gRPC compression spec says this
    // MUST fail with INTERNAL, saying that the flag is the problem. tonic's text does; it is short.
    let compressed = raw_call(&channel, "Signup", frame(1, len, &payload)).await;
    assert_eq!(compressed.code(), Code::Internal, "{compressed:?}");
    assert!(
        compressed.message().contains("compressed-flag"),
        "{compressed:?}"
    );
    assert_no_internals(&compressed);
    // A flag that is neither 0 nor 1.
    let flagged = raw_call(&channel, "Signup", frame(2, len, &payload)).await;
    assert_eq!(flagged.code(), Code::Internal, "{flagged:?}");
    assert!(
        flagged.message().contains("compression flag"),
        "{flagged:?}"
    );

    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_whether_sent_or_only_declared() {
    let app = TestApp::spawn().await;
    let channel = channel(&app).await;
    // A well-formed SignupRequest one byte over the limit: a name of (nearly) 4 MiB.
    let huge = pb::SignupRequest {
        email: "huge@example.com".into(),
        password: PASSWORD.into(),
        name: "n".repeat(MAX_MESSAGE),
    }
    .encode_to_vec();
    assert!(huge.len() > MAX_MESSAGE);
    let sent = raw_call(&channel, "Signup", plain(&huge)).await;
    // Only declared: the header claims 4 GiB, and 3 bytes follow.
    let declared = raw_call(&channel, "Signup", frame(0, u32::MAX, b"abc")).await;
    for status in [sent, declared] {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_no_internals(&status);
    }
    assert_nothing_written(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_garbage_in_parallel_leaves_the_server_serving() {
    let mut app = TestApp::spawn().await;
    let channel = channel(&app).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..64u8 {
        let channel = channel.clone();
        calls.spawn(async move {
            // Every kind of garbage at once, some of it random.
            let mut noise = vec![0u8; 64 + usize::from(i)];
            getrandom::fill(&mut noise).unwrap();
            noise[0] = 0x0a; // field 1, length-delimited...
            noise[1] = 0x7f; // ...of 127 bytes, more than follow
            let body = match i % 4 {
                0 => plain(&noise),
                1 => plain(&signup_with(&[0x0a, 0x80])),
                2 => frame(0, u32::MAX, &noise),
                _ => frame(0, 1000, &noise),
            };
            raw_call(&channel, "Signup", body).await.code()
        });
    }
    let codes = tokio::time::timeout(Duration::from_secs(60), calls.join_all())
        .await
        .expect("garbage is answered, not left hanging");
    for code in &codes {
        assert!(
            matches!(code, Code::InvalidArgument | Code::ResourceExhausted),
            "{codes:?}"
        );
    }
    assert_nothing_written(&app).await;
    app.signup("after@example.com").await;
}
