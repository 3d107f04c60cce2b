//! `authd serve`, the real binary, as a child process of the test (no memory shared with it):
//! fixed ports so that a restart is found at the same address, its output in a log file,
//! SIGTERM or SIGKILL to stop it, and the calls (signup, login, logout, the Introspect count)
//! and the revocation-aware verifier that tests point at it.

use crate::helpers::{PASSWORD, TestDb, authd_command};
use authd::pb::{self, TokenResponse, auth_service_client::AuthServiceClient};
use authd_verifier::{Checks, JwksSource, LocalSettings, LocalVerifier, RevocationSettings};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// authd as a child process, on fixed ports so that a restart is found at the same address.
pub struct Authd {
    child: Child,
    pub db: TestDb,
    pub grpc: String,
    pub http: String,
    dir: tempfile::TempDir,
}

/// A port free now on 127.0.0.1, as `host:port`.
pub fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").to_string()
}

impl Authd {
    pub async fn start() -> Self {
        let (grpc, http) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("temporary folder");
        Self::spawn(TestDb::new().await, grpc, http, dir).await
    }

    pub async fn spawn(db: TestDb, grpc: String, http: String, dir: tempfile::TempDir) -> Self {
        let child = spawn_child(&db, &grpc, &http, &dir);
        let authd = Self {
            child,
            db,
            grpc,
            http,
            dir,
        };
        authd.serving_after(0).await;
        authd
    }

    /// Waits until the log past `offset` says authd serves.
    async fn serving_after(&self, offset: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .log()
            .get(offset..)
            .unwrap_or_default()
            .contains("authd serving")
        {
            assert!(
                Instant::now() < deadline,
                "authd never served: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("authd.log")).unwrap_or_default()
    }

    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .expect("gRPC address")
            .connect_lazy()
    }

    /// Stops authd, with SIGTERM (the stream ends with UNAVAILABLE) or SIGKILL (the connection
    /// just drops), and waits until it has exited.
    pub fn stop(&mut self, gently: bool) {
        if gently {
            let status = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Starts again on the same database and ports (after [`Self::stop`]).
    pub async fn restart(&mut self) {
        let _ = self.child.wait();
        let offset = self.log().len();
        self.child = spawn_child(&self.db, &self.grpc, &self.http, &self.dir);
        self.serving_after(offset).await;
    }

    pub async fn signup_login(&self, email: &str) -> TokenResponse {
        let mut auth = AuthServiceClient::new(self.channel());
        auth.signup(pb::SignupRequest {
            email: email.into(),
            password: PASSWORD.into(),
            name: "Someone".into(),
        })
        .await
        .expect("signup");
        self.login(email).await
    }

    pub async fn login(&self, email: &str) -> TokenResponse {
        AuthServiceClient::new(self.channel())
            .login(pb::LoginRequest {
                email: email.into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
            .expect("login")
            .into_inner()
    }

    pub async fn logout(&self, session: &TokenResponse, all_sessions: bool) {
        AuthServiceClient::new(self.channel())
            .logout(pb::LogoutRequest {
                refresh_token: session.refresh_token.clone(),
                all_sessions,
            })
            .await
            .expect("logout");
    }

    /// How many Introspect calls authd has answered, from its /metrics.
    pub async fn introspect_calls(&self) -> u64 {
        let addr = self.http.parse().expect("HTTP address");
        let metrics = crate::helpers::http_get(addr, "/metrics").await.body;
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("grpc_server_started_total")
                    && line.contains("grpc_method=\"Introspect\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn verifier(&self, edit: impl FnOnce(&mut RevocationSettings)) -> LocalVerifier {
        let mut revocations = RevocationSettings::new(format!("http://{}", self.grpc));
        edit(&mut revocations);
        LocalVerifier::start(
            LocalSettings::new(
                JwksSource::Http(format!("http://{}/.well-known/jwks.json", self.http)),
                Checks::new("http://authd.test", vec!["authd".into()]),
            )
            .with_revocations(revocations),
        )
    }
}

/// `authd serve` on `db` and the given ports, its output appended to `authd.log` in `dir`.
fn spawn_child(db: &TestDb, grpc: &str, http: &str, dir: &tempfile::TempDir) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("authd.log"))
        .expect("log file");
    authd_command()
        .current_dir(dir.path())
        .env("AUTHD_DATABASE_URL", &db.url)
        .env("AUTHD_GRPC_ADDR", grpc)
        .env("AUTHD_HTTP_ADDR", http)
        .env("AUTHD_ISSUER", "http://authd.test")
        .env("AUTHD_MAIL_TO_LOG", "true")
        .env("AUTHD_REQUIRE_VERIFIED_EMAIL", "false")
        .env("AUTHD_SHUTDOWN_GRACE", "0s")
        .env("AUTHD_ARGON2_MEMORY_KIB", "64")
        .env("AUTHD_ARGON2_ITERATIONS", "1")
        .arg("serve")
        .stdout(Stdio::from(log.try_clone().expect("log file")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start authd")
}

impl Drop for Authd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
