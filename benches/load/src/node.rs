//! The Node.js stack authd replaces, as a target: `benches/peers/node` (Fastify, jsonwebtoken,
//! bcrypt cost 10, PostgreSQL through Drizzle), driven over HTTP/1.1 keep-alive with one
//! connection per caller, phase by phase like authd.

use crate::http1::Conn;
use crate::measure::{self, Pace, Sample, call};
use crate::report::Row;
use crate::server::{Server, free_port};
use crate::{PASSWORD, Plan};
use anyhow::{Context, ensure};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct Node {
    pub server: Server,
    addr: String,
}

impl Node {
    pub async fn start(peer: &Path, database_url: &str, log_dir: &Path) -> anyhow::Result<Self> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let port = addr
            .rsplit_once(':')
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default();
        let mut command = tokio::process::Command::new("node");
        command
            .arg(peer.join("server.js"))
            .env("DATABASE_URL", database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port);
        let started = Instant::now();
        let mut server = Server::spawn("node", command, log_dir)?;
        loop {
            server.still_running()?;
            if let Ok(mut conn) = Conn::connect(&addr).await
                && let Ok((200, _)) = conn.request("GET", "/health", None, None).await
            {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the Node.js peer did not answer within 60 s (log: {})",
                server.log.display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Self { server, addr })
    }

    async fn connections(&self, n: usize) -> anyhow::Result<Arc<Vec<Mutex<Conn>>>> {
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            all.push(Mutex::new(Conn::connect(&self.addr).await?));
        }
        Ok(Arc::new(all))
    }
}

/// Fills the peer's database with `n` verified users through its own seed script.
pub async fn seed(peer: &Path, database_url: &str, n: usize) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("node")
        .arg(peer.join("seed.js"))
        .args([
            "--users",
            &n.to_string(),
            "--password",
            PASSWORD,
            "--prefix",
            "load",
        ])
        .env("DATABASE_URL", database_url)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .context("run the Node.js peer's seed.js")?;
    ensure!(status.success(), "seed.js failed: {status}");
    Ok(())
}

/// Seeded users for the login phase beyond the callers' own, so that no user logs in twice
/// within one second.
pub const LOGIN_USERS: usize = 50_000;

fn field(body: &[u8], name: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(body).context("not JSON")?;
    value[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {name} in the answer"))
}

fn email(i: usize) -> String {
    format!("load{i}@bench.example")
}

fn login_body(i: usize) -> serde_json::Value {
    serde_json::json!({ "email": email(i), "password": PASSWORD })
}

/// Caller i's next request of a phase.
type MakeRequest = Arc<dyn Fn(usize) -> Request + Send + Sync>;

/// One request of a phase, made for a caller before it is sent.
struct Request {
    method: &'static str,
    path: &'static str,
    bearer: Option<String>,
    body: Option<String>,
}

impl Request {
    fn get(path: &'static str, bearer: Option<String>) -> Self {
        Self {
            method: "GET",
            path,
            bearer,
            body: None,
        }
    }

    fn post(path: &'static str, json: serde_json::Value) -> Self {
        Self {
            method: "POST",
            path,
            bearer: None,
            body: Some(json.to_string()),
        }
    }
}

pub async fn phases(node: &Node, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let users = plan.max_callers();
    let conns = node.connections(users).await?;
    let mut access = Vec::with_capacity(users);
    let mut refresh = Vec::with_capacity(users);
    {
        let mut conn = conns[0].lock().await;
        for i in 0..users {
            let (status, body) = conn
                .request(
                    "POST",
                    "/auth/login",
                    None,
                    Some(&login_body(i).to_string()),
                )
                .await?;
            ensure!(status == 200, "login of a seeded user: HTTP {status}");
            access.push(field(&body, "accessToken")?);
            refresh.push(field(&body, "refreshToken")?);
        }
    }
    let access = Arc::new(access);
    let refresh = Arc::new(refresh);
    let cpu = node.server.cpu();
    let mut rows = Vec::new();
    let row = |phase: &str, callers: usize, sample: Sample| Row {
        target: "node (Fastify + jsonwebtoken + bcrypt 10, PostgreSQL)".into(),
        phase: phase.to_owned(),
        callers,
        sample,
        cpu_of: "server",
    };
    static SIGNUPS: AtomicU64 = AtomicU64::new(0);
    static LOGINS: AtomicU64 = AtomicU64::new(0);
    let run = std::process::id();
    // Each phase: its name, the status a success answers, and caller i's request.
    let phases: [(&str, u16, MakeRequest); 5] = [
        (
            "no-op (GET /health)",
            200,
            Arc::new(|_| Request::get("/health", None)),
        ),
        ("token check (GET /profile)", 200, {
            let access = access.clone();
            Arc::new(move |i| Request::get("/profile", Some(access[i % access.len()].clone())))
        }),
        ("Refresh (no rotation)", 200, {
            let refresh = refresh.clone();
            Arc::new(move |i| {
                let token = &refresh[i % refresh.len()];
                Request::post(
                    "/auth/refresh",
                    serde_json::json!({ "refreshToken": token }),
                )
            })
        }),
        // A user of its own for every login: the peer (as the seed app) fails a second login of
        // one user within the same second (the same refresh token, a unique column).
        (
            "Login",
            200,
            Arc::new(move |_| {
                let user = users + (LOGINS.fetch_add(1, Ordering::Relaxed) as usize % LOGIN_USERS);
                Request::post("/auth/login", login_body(user))
            }),
        ),
        (
            "Signup",
            201,
            Arc::new(move |_| {
                let n = SIGNUPS.fetch_add(1, Ordering::Relaxed);
                Request::post(
                    "/auth/signup",
                    serde_json::json!({
                        "email": format!("signup-{run}-{n}@bench.example"),
                        "password": PASSWORD,
                        "name": "Signup",
                    }),
                )
            }),
        ),
    ];
    for &callers in &plan.callers {
        for (phase, expected, request) in &phases {
            let (conns, request, expected) = (conns.clone(), request.clone(), *expected);
            let sample = measure::run(
                callers,
                plan.duration,
                Pace::ClosedLoop,
                &cpu,
                call(move |i| {
                    let (conns, request) = (conns.clone(), request(i));
                    async move {
                        let (status, _) = conns[i]
                            .lock()
                            .await
                            .request(
                                request.method,
                                request.path,
                                request.bearer.as_deref(),
                                request.body.as_deref(),
                            )
                            .await?;
                        ensure!(status == expected, "HTTP {status}");
                        Ok(true)
                    }
                }),
            )
            .await?;
            rows.push(row(phase, callers, sample));
        }
    }
    Ok(rows)
}
