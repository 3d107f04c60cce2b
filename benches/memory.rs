//! Memory under a login flood: `cargo bench --bench memory` (Linux: it reads `/proc`).
//!
//! Starts the `authd` binary of this build (or the one named by `AUTHD_BENCH_BIN`, to compare
//! builds) as a child process on a fresh SQLite file with production password-hash cost, and sends
//! it floods of failed logins from `AUTHD_BENCH_CLIENTS` concurrent callers (default 16). The
//! floods are `AUTHD_BENCH_FLOODS` (default `200,1000`: one of 200 logins, then one of 1000).
//! Each login names a made-up email, so each costs one argon2id verification (of the dummy hash)
//! and none is refused by the per-email brake. It prints the server's RSS (`VmRSS`) at rest 2 s
//! and `AUTHD_BENCH_SETTLE_SECONDS` (default 15) after start, its highest RSS sampled during each
//! flood, its RSS 1 s and `AUTHD_BENCH_SETTLE_SECONDS` after each flood, its peak since start
//! (`VmHWM`) and its thread count, all from `/proc/<pid>/status`.
//!
//! The figures are the server process alone; the flooding client is this process.

use authd::pb::LoginRequest;
use authd::pb::auth_service_client::AuthServiceClient;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients: usize = env_or("AUTHD_BENCH_CLIENTS", 16);
    let settle = Duration::from_secs(env_or("AUTHD_BENCH_SETTLE_SECONDS", 15));
    let floods: Vec<usize> = std::env::var("AUTHD_BENCH_FLOODS")
        .unwrap_or_else(|_| "200,1000".to_owned())
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()?;
    let binary =
        std::env::var("AUTHD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_authd").to_owned());

    let dir = tempfile::tempdir()?;
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("flood.db").display()
    );
    let server = Server::start(&binary, &database_url)?;
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))?
        .connect()
        .await?;
    // Let start-up (migrations, the dummy hash) finish before the first reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = server.status()?;

    println!(
        "authd memory under a login flood: {binary}, {clients} callers at once, sqlite, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "when", "RSS MB", "peak MB", "HWM MB", "threads", "logins/s"
    );
    started.print("at rest, 2 s after start", None, None);
    tokio::time::sleep(settle.saturating_sub(Duration::from_secs(2))).await;
    server.status()?.print(
        &format!("at rest, {} s after start", settle.as_secs().max(2)),
        None,
        None,
    );

    let mut sent = 0;
    for (round, &logins) in floods.iter().enumerate() {
        let sampler = Sampler::start(server.pid);
        let started = Instant::now();
        let errors = flood(&channel, clients, logins, round).await;
        let rate = logins as f64 / started.elapsed().as_secs_f64();
        let peak = sampler.stop().await;
        sent += logins;
        anyhow::ensure!(
            errors == 0,
            "{errors} of {logins} logins did not answer UNAUTHENTICATED"
        );
        let label = format!("flood of {logins} ({sent} in all): end");
        server.status()?.print(&label, Some(peak), Some(rate));
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.status()?.print("  1 s later", None, None);
        tokio::time::sleep(settle.saturating_sub(Duration::from_secs(1))).await;
        server
            .status()?
            .print(&format!("  {} s later", settle.as_secs()), None, None);
    }
    Ok(())
}

/// Sends `logins` failed logins from `clients` callers at once; returns how many did not get
/// UNAUTHENTICATED.
async fn flood(channel: &Channel, clients: usize, logins: usize, round: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let next = Arc::clone(&next);
        let mut client = AuthServiceClient::new(channel.clone());
        tasks.spawn(async move {
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= logins {
                    return errors;
                }
                let answer = client
                    .login(LoginRequest {
                        email: format!("flood-{round}-{i}@example.com"),
                        password: "not the password, ever".into(),
                        client_id: String::new(),
                    })
                    .await;
                match answer {
                    Err(status) if status.code() == tonic::Code::Unauthenticated => {}
                    _ => errors += 1,
                }
            }
        });
    }
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        errors += done.unwrap_or(1);
    }
    errors
}

/// The server under test, killed when dropped.
struct Server {
    child: Child,
    pid: u32,
    grpc_addr: String,
}

impl Server {
    fn start(binary: &str, database_url: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--database-url",
                database_url,
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                // Every guess must reach its hash: the flood measures hashing, not the throttle.
                "--throttle-client-failures",
                "1000000",
            ])
            .env("RUST_LOG", "info")
            .env("AUTHD_LOG_FORMAT", "text")
            .env("AUTHD_MAIL_TO_LOG", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {binary}: {e}"))?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        // Reads the log for the bound address, then keeps draining it so the server never blocks.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("grpc_addr=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = addr_tx.send(addr.to_owned());
                }
            }
        });
        // Owned from here, so the child is killed if it never logs its address.
        let mut server = Self {
            child,
            pid,
            grpc_addr: String::new(),
        };
        server.grpc_addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow::anyhow!("{binary} did not log its gRPC address within 60 s"))?;
        Ok(server)
    }

    fn status(&self) -> anyhow::Result<Status> {
        Status::read(self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `/proc/<pid>/status` says about memory and threads.
#[derive(Clone, Copy)]
struct Status {
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

impl Status {
    fn read(pid: u32) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))?;
            Ok(line
                .split_whitespace()
                .nth(1)
                .ok_or_else(|| anyhow::anyhow!("bad {name} line"))?
                .parse()?)
        };
        Ok(Self {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
            threads: field("Threads:")?,
        })
    }

    fn print(&self, when: &str, peak: Option<Peak>, rate: Option<f64>) {
        let mb = |kib: u64| kib as f64 / 1024.0;
        let peak_mb = peak.map_or_else(String::new, |p| format!("{:.1}", mb(p.rss_kib)));
        let threads = peak.map_or(self.threads, |p| p.threads.max(self.threads));
        let rate = rate.map_or_else(String::new, |r| format!("{r:.1}"));
        println!(
            "{when:<34} {:>9.1} {peak_mb:>9} {:>9.1} {threads:>8} {rate:>9}",
            mb(self.rss_kib),
            mb(self.hwm_kib),
        );
    }
}

/// The highest RSS and thread count seen while sampling.
#[derive(Clone, Copy, Default)]
struct Peak {
    rss_kib: u64,
    threads: u64,
}

/// Reads the server's status every 10 ms until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Peak>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let mut peak = Peak::default();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(s) = Status::read(pid) {
                        peak.rss_kib = peak.rss_kib.max(s.rss_kib);
                        peak.threads = peak.threads.max(s.threads);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                peak
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> Peak {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
