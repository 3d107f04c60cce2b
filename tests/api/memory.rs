//! Memory stays bounded under a login flood: the real `authd` binary of this build, started as a
//! process of its own (an in-process server would share its RSS with every other test), at the
//! production argon2 cost. The bounds are generous (about 3× what a flood needs); the figures are
//! in BENCHMARKS.md, measured by `cargo bench --bench memory`.

use authd::pb::LoginRequest;
use authd::pb::auth_service_client::AuthServiceClient;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two hashing threads whatever the machine, so the bound does not depend on its CPU count.
const HASHES_AT_ONCE: &str = "2";
/// What a flood may take at its peak: two 19 MiB buffers and the rest of the process need ~60 MB;
/// before the hashing threads, 200 logins took ~800 MB.
const PEAK_BOUND_KIB: u64 = 150 * 1024;
/// How close to its start RSS an idle server must come back once its threads give their buffers
/// back (10 s after their last hash).
const SETTLED_MARGIN_KIB: u64 = 25 * 1024;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_login_flood_leaves_memory_bounded_and_it_goes_back_when_idle() {
    if crate::helpers::TestDb::new_is_postgres() {
        return; // its server has a SQLite file of its own: once, in the SQLite pass, is enough
    }
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("flood.db").display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_authd"))
        .args(["serve", "--database-url", &database_url])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--max-concurrent-hashes", HASHES_AT_ONCE])
        // Every guess must reach its hash: the flood measures hashing, not the throttle.
        .args(["--throttle-client-failures", "1000000"])
        .env("RUST_LOG", "info")
        .env("AUTHD_LOG_FORMAT", "text")
        .env("AUTHD_MAIL_TO_LOG", "true")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start authd");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("grpc_addr=").nth(1) {
                let _ = addr_tx.send(rest.split_whitespace().next().unwrap().to_owned());
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("authd logs its address");
    let client = AuthServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    // At rest from the start: the start-up dummy hash's buffer (19 MiB) is not kept, neither
    // for the process's life nor for a hashing thread's idle time (10 s), so RSS a second
    // after start is what it is eleven seconds later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let just_started = rss_kib(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let start = rss_kib(pid);
    assert!(
        just_started < start + 8 * 1024,
        "RSS was {} MB a second after start and {} MB ten seconds later: the dummy hash's buffer was kept",
        just_started / 1024,
        start / 1024
    );

    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = tokio::spawn({
        let peak = std::sync::Arc::clone(&peak);
        async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..16 {
        let mut client = client.clone();
        callers.spawn(async move {
            for i in 0..200 / 16 + 1 {
                let answer = client
                    .login(LoginRequest {
                        email: format!("flood-{caller}-{i}@example.com"),
                        password: "not the password, ever".into(),
                        client_id: String::new(),
                    })
                    .await;
                assert_eq!(answer.unwrap_err().code(), tonic::Code::Unauthenticated);
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    sampler.abort();
    let peak = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(rss_kib(pid));
    assert!(
        peak < PEAK_BOUND_KIB,
        "RSS reached {} MB during 208 failed logins (start {} MB)",
        peak / 1024,
        start / 1024
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rss = rss_kib(pid);
        if rss <= start + SETTLED_MARGIN_KIB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS stayed at {} MB a minute after the flood (start {} MB, peak {} MB)",
            rss / 1024,
            start / 1024,
            peak / 1024
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
}
