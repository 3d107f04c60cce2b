//! `authd healthcheck`, the container's HEALTHCHECK: the real binary against a real server, a
//! dead port, a port that accepts and never answers, a health service that says NOT_SERVING,
//! and TLS and mTLS on the gRPC port.

use crate::helpers::TestApp;
use crate::tls::{Ca, TlsFiles, spawn};
use rcgen::ExtendedKeyUsagePurpose;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

/// What one run of `authd healthcheck` did.
struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Runs the binary with only `env` set (nothing leaks in from the test's environment).
async fn healthcheck(env: &[(&str, String)], args: &[&str]) -> Outcome {
    run(command(env, args)).await
}

fn command(env: &[(&str, String)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authd"));
    command.env_clear().arg("healthcheck").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn run(mut command: Command) -> Outcome {
    tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let output = command.output().unwrap();
        Outcome {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: began.elapsed(),
        }
    })
    .await
    .unwrap()
}

fn unspecified(addr: SocketAddr) -> String {
    format!("0.0.0.0:{}", addr.port())
}

fn assert_fails(outcome: &Outcome, says: &str) {
    assert_eq!(outcome.code, Some(1), "stderr: {}", outcome.stderr);
    assert_eq!(
        outcome.stderr.lines().count(),
        1,
        "one line: {}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains(says),
        "expected {says:?} in {:?}",
        outcome.stderr
    );
}

#[tokio::test]
async fn a_serving_server_passes_also_when_asked_by_its_unspecified_listen_address() {
    let app = TestApp::spawn().await;
    let env = [("AUTHD_GRPC_ADDR", unspecified(app.grpc_addr))];
    let outcome = healthcheck(&env, &[]).await;
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stderr, "");

    // Probes from several runtimes at once.
    let runs: Vec<_> = (0..8)
        .map(|_| tokio::spawn(run(command(&env, &[]))))
        .collect();
    for task in runs {
        let outcome = task.await.unwrap();
        assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    }
}

#[tokio::test]
async fn nothing_listening_fails_at_once() {
    // Bound but not listening: connections are refused, and no other test can take the port.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = held.local_addr().unwrap();
    let outcome = healthcheck(&[("AUTHD_GRPC_ADDR", addr.to_string())], &[]).await;
    assert_fails(&outcome, "cannot connect");
    assert!(
        outcome.took < Duration::from_secs(2),
        "took {:?}",
        outcome.took
    );
}

#[tokio::test]
async fn a_port_that_accepts_and_never_answers_fails_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts every connection and holds it open without a byte.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            held.push(stream);
        }
    });
    let env = [("AUTHD_GRPC_ADDR", addr.to_string())];
    let outcome = healthcheck(&env, &["--timeout", "1s"]).await;
    assert_fails(&outcome, "no answer within 1s");
    assert!(
        outcome.took >= Duration::from_secs(1),
        "took {:?}",
        outcome.took
    );
    assert!(
        outcome.took < Duration::from_secs(3),
        "took {:?}",
        outcome.took
    );

    // The same port, asked as the TLS check would ask it: the handshake never ends either.
    let mut env = env.to_vec();
    let files = TlsFiles::new(&Ca::new("ca").server("server", 1));
    env.push(("AUTHD_TLS_CERT", files.cert().display().to_string()));
    let outcome = healthcheck(&env, &["--timeout", "1s"]).await;
    assert_fails(&outcome, "no answer within 1s");
    assert!(
        outcome.took < Duration::from_secs(3),
        "took {:?}",
        outcome.took
    );
    silent.abort();
}

#[tokio::test]
async fn a_health_service_that_is_not_serving_fails() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let env = [("AUTHD_GRPC_ADDR", addr.to_string())];
    assert_fails(&healthcheck(&env, &[]).await, "NOT_SERVING");

    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    assert_eq!(healthcheck(&env, &[]).await.code, Some(0));
    server.abort();
}

#[tokio::test]
async fn with_tls_it_trusts_exactly_the_served_certificate_whatever_its_names() {
    let ca = Ca::new("authd test CA");
    // Named for the public host only: the check connects to loopback all the same.
    let served = ca.issue(
        vec!["auth.example.com".into()],
        "auth.example.com",
        7,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let files = TlsFiles::new(&served);
    let app = spawn(&files.flags()).await;
    let grpc = ("AUTHD_GRPC_ADDR", unspecified(app.grpc_addr));
    let cert = ("AUTHD_TLS_CERT", files.cert().display().to_string());

    let outcome = healthcheck(&[grpc.clone(), cert], &[]).await;
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);

    // Plaintext to a TLS port fails.
    assert_fails(&healthcheck(std::slice::from_ref(&grpc), &[]).await, "");

    // Another certificate of the same CA is not the one served: refused.
    let other = TlsFiles::new(&ca.server("another", 8));
    let other = ("AUTHD_TLS_CERT", other.cert().display().to_string());
    assert_fails(
        &healthcheck(&[grpc.clone(), other], &[]).await,
        "cannot connect",
    );

    // A certificate file that is not there is named.
    let missing = ("AUTHD_TLS_CERT", "/nonexistent/server.pem".to_owned());
    assert_fails(&healthcheck(&[grpc, missing], &[]).await, "AUTHD_TLS_CERT");
}

#[tokio::test]
async fn with_mtls_it_asks_the_http_side_port() {
    let ca = Ca::new("authd test CA");
    let files = TlsFiles::new(&ca.server("server", 1));
    let app = spawn(&files.with_client_ca(&Ca::new("clients CA"))).await;
    let mut env = vec![
        ("AUTHD_GRPC_ADDR", unspecified(app.grpc_addr)),
        ("AUTHD_HTTP_ADDR", unspecified(app.http_addr)),
        ("AUTHD_TLS_CERT", files.cert().display().to_string()),
        ("AUTHD_TLS_CLIENT_CA", "clients-ca.pem".to_owned()),
    ];
    let outcome = healthcheck(&env, &[]).await;
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);

    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    env[1].1 = held.local_addr().unwrap().to_string();
    assert_fails(&healthcheck(&env, &[]).await, "cannot connect");
}
