//! The database pulled away: a PostgreSQL server of the test's own is stopped under a running
//! authd. Calls answer UNAVAILABLE within the configured bound (not the pool's old 5 s), readiness
//! follows as fast, and everything works again once the database is back.
//!
//! Runs in the PostgreSQL pass of the suite only; it needs the PostgreSQL server binaries that
//! `scripts/ensure-postgres` installs.

use crate::helpers::{PASSWORD, TestApp, TestDb, code};
use crate::smtp::SmtpServer;
use authd::pb;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::Code;

/// The production database timeout (the tests' default is longer): the outage tests show the
/// bound callers get.
pub(crate) const OUTAGE_TIMEOUT: &[&str] = &["--database-timeout", "1s"];

/// A throw-away PostgreSQL cluster in a temporary folder, on a port of its own.
pub(crate) struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    pub(crate) fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/ensure-postgres installs them)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("temporary folder");
        let data = dir.path().join("data");
        let port = quiet_port();
        if is_root() {
            // PostgreSQL refuses to run as root.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        run(as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        let cluster = Self {
            bin,
            data,
            port,
            _dir: dir,
        };
        cluster.up();
        cluster
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.display()
        );
        run(self
            .pg_ctl()
            .args(["-w", "-t", "30", "-o", &options, "start", "-l"])
            .arg(self.data.join("log")));
    }

    pub(crate) fn down(&self) {
        run(self.pg_ctl().args(["-w", "-m", "immediate", "stop"]));
    }

    fn pg_ctl(&self) -> Command {
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(&self.data);
        command
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl().args(["-m", "immediate", "stop"]).output();
    }
}

/// A free port below Linux's ephemeral range (32768 and up), where the ports other tests and
/// test runs bind with port 0, and outgoing connections take, never land: the server goes down
/// and comes up again on it, and nothing else should take it in between.
fn quiet_port() -> u16 {
    let seed = uuid::Uuid::now_v7().as_u128();
    (0..2000u128)
        .map(|i| 20_000 + ((seed >> 64).wrapping_add(i * 7919) % 12_000) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port in 20000..32000")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_calls_are_unavailable_within_the_bound_and_recover() {
    if !TestDb::new_is_postgres() {
        return; // the PostgreSQL pass runs it; it starts a server of its own either way
    }
    let cluster = OwnPostgres::start();
    let smtp = SmtpServer::start().await;
    let mut app = TestApp::spawn_on(TestDb::at(cluster.url()), smtp, OUTAGE_TIMEOUT).await;
    app.signup_verified_login("outage@example.com").await;

    cluster.down();
    // Generous beside the 1 s bound, far below the 5 s a call used to wait.
    let bound = Duration::from_millis(3500);
    for round in 0..3 {
        let started = Instant::now();
        let login = app.login("outage@example.com", PASSWORD).await;
        assert_eq!(code(login), Code::Unavailable, "round {round}");
        assert!(
            started.elapsed() < bound,
            "login took {:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let signup = app
            .client
            .signup(pb::SignupRequest {
                email: format!("new{round}@example.com"),
                password: PASSWORD.into(),
                name: "New".into(),
            })
            .await;
        assert_eq!(code(signup), Code::Unavailable, "round {round}");
        assert!(
            started.elapsed() < bound,
            "signup took {:?}",
            started.elapsed()
        );

        let started = Instant::now();
        assert_eq!(app.http_get("/readyz").await.status, 503);
        assert!(
            started.elapsed() < bound,
            "/readyz took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(app.http_get("/healthz").await.status, 200, "still alive");

    cluster.up();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match app.login("outage@example.com", PASSWORD).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(
                    Instant::now() < deadline,
                    "no recovery after the database came back"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(app.http_get("/readyz").await.status, 200);
    app.stop().await;
}
