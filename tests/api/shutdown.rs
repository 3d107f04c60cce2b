//! SIGTERM as Kubernetes sends it: readiness goes NOT_SERVING first, the listeners keep serving
//! for AUTHD_SHUTDOWN_GRACE, a call in flight finishes, then the ports close and the process
//! exits 0. The real binary, a real signal.

use crate::helpers::{PASSWORD, authd_command};
use authd::pb::{self, auth_service_client::AuthServiceClient};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const GRACE: Duration = Duration::from_secs(2);

struct Server {
    child: Child,
    grpc: String,
    http: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("authd.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(argon2_iterations: &str) -> Server {
    let dir = tempfile::tempdir().expect("temporary folder");
    let log = std::fs::File::create(dir.path().join("authd.log")).expect("log file");
    let mut command = authd_command();
    let child = command
        .current_dir(dir.path())
        .env(
            "AUTHD_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display()),
        )
        // Port 0: authd binds free ports itself and logs them, so no other test or test run
        // can take a port between our choosing it and authd binding it.
        .env("AUTHD_GRPC_ADDR", "127.0.0.1:0")
        .env("AUTHD_HTTP_ADDR", "127.0.0.1:0")
        .env("AUTHD_MAIL_TO_LOG", "true")
        .env("AUTHD_REQUIRE_VERIFIED_EMAIL", "false")
        .env("AUTHD_SHUTDOWN_GRACE", format!("{}s", GRACE.as_secs()))
        // A slow hash, so that a login is surely in flight when the signal comes.
        .env("AUTHD_ARGON2_ITERATIONS", argon2_iterations)
        .arg("serve")
        .stdout(Stdio::from(log.try_clone().expect("log file")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start authd");
    let mut server = Server {
        child,
        grpc: String::new(),
        http: String::new(),
        _dir: dir,
    };
    // "authd serving grpc_addr=127.0.0.1:41234 http_addr=127.0.0.1:41235 …"
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        let addr = |key: &str| {
            log.lines()
                .find(|line| line.contains("authd serving"))?
                .split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .map(str::to_owned)
        };
        if let (Some(grpc), Some(http)) = (addr("grpc_addr="), addr("http_addr=")) {
            (server.grpc, server.http) = (grpc, http);
            return server;
        }
        assert!(Instant::now() < deadline, "authd never served: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status line's code of `GET path`, or `None` if the port refuses.
async fn get(addr: &str, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

async fn channel(addr: &str) -> Option<Channel> {
    Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .ok()
}

#[tokio::test]
async fn sigterm_stops_readiness_first_and_serves_through_the_grace() {
    let mut server = start("40");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&server.http, "/readyz").await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "authd never became ready: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grpc = channel(&server.grpc).await.expect("gRPC port");
    let mut auth = AuthServiceClient::new(grpc.clone());
    auth.signup(pb::SignupRequest {
        email: "drain@example.com".into(),
        password: PASSWORD.into(),
        name: "Drain".into(),
    })
    .await
    .expect("signup");

    let mut watch = HealthClient::new(grpc.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let first = watch.message().await.expect("watch").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // A login whose hash takes a while, in flight when the signal comes.
    let mut in_flight = auth.clone();
    let login = tokio::spawn(async move {
        in_flight
            .login(pb::LoginRequest {
                email: "drain@example.com".into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pid = server.child.id().to_string();
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());

    // Readiness goes first, on both probes.
    let next = tokio::time::timeout(Duration::from_secs(1), watch.message())
        .await
        .expect("NOT_SERVING pushed at once")
        .expect("watch")
        .expect("a status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    assert_eq!(get(&server.http, "/readyz").await, Some(503));
    assert_eq!(
        get(&server.http, "/healthz").await,
        Some(200),
        "still alive"
    );

    // ...while both ports still take new connections and calls.
    let fresh = channel(&server.grpc)
        .await
        .expect("the gRPC port still accepts during the grace");
    let check = HealthClient::new(fresh.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check answered during the grace")
        .into_inner();
    assert_eq!(check.status, ServingStatus::NotServing as i32);
    AuthServiceClient::new(fresh)
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("calls are served during the grace");
    assert!(
        signalled.elapsed() < GRACE,
        "the checks above ran within the grace"
    );

    let tokens = login
        .await
        .expect("login task")
        .expect("the login in flight finished");
    assert!(!tokens.into_inner().access_token.is_empty());

    // Then the listeners close, and the process exits cleanly: the open Watch stream does not
    // hold the drain.
    let deadline = signalled + GRACE + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            assert!(status.success(), "authd exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "authd did not exit after the grace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        signalled.elapsed() >= GRACE,
        "the listeners stayed open for the grace"
    );
    assert!(channel(&server.grpc).await.is_none(), "gRPC port closed");
    assert_eq!(get(&server.http, "/readyz").await, None, "HTTP port closed");
}
