//! authd as a target: started from its release binary on a database of the run's own, set up
//! with users and sessions, then driven phase by phase over gRPC.

use crate::measure::{self, Pace, Sample, call};
use crate::report::Row;
use crate::server::{Server, free_port};
use crate::{PASSWORD, Plan};
use anyhow::{Context, ensure};
use authd::pb::auth_service_client::AuthServiceClient;
use authd::pb::{IntrospectRequest, LoginRequest, RefreshRequest, SignupRequest};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// Callers share this many HTTP/2 connections at most, as a handful of service instances would.
const MAX_CONNECTIONS: usize = 8;

pub struct Authd {
    pub server: Server,
    pub http_url: String,
    channels: Vec<Channel>,
    /// From the first start to the first SERVING answer.
    pub serving_after: Duration,
}

impl Authd {
    /// Starts `bin serve` on `database_url` with the harness's settings and `extra`, and waits
    /// until its health service answers SERVING.
    pub async fn start(
        bin: &Path,
        name: &str,
        database_url: &str,
        extra: &[&str],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let grpc = format!("127.0.0.1:{}", free_port()?);
        let http = format!("127.0.0.1:{}", free_port()?);
        let mut command = tokio::process::Command::new(bin);
        command
            .args(["serve", "--database-url", database_url])
            .args(["--grpc-addr", &grpc, "--http-addr", &http])
            // The harness logs in users it has just made, and makes thousands from one address.
            .args(["--require-verified-email", "false"])
            .args(["--throttle-client-signups", "4000000000"])
            // No SMTP server in the benchmark: the mails go to the log file.
            .args(["--mail-to-log", "true"])
            .args(extra)
            .env_remove("RUST_LOG");
        let started = Instant::now();
        let mut server = Server::spawn(name, command, log_dir)?;
        let url = format!("http://{grpc}");
        let serving_after = loop {
            server.still_running()?;
            if let Ok(channel) = Channel::from_shared(url.clone())?.connect().await {
                let status = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().status());
                if matches!(status, Ok(ServingStatus::Serving)) {
                    break started.elapsed();
                }
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "{name} did not serve within 60 s (log: {})",
                server.log.display()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let mut channels = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            channels.push(Channel::from_shared(url.clone())?.connect().await?);
        }
        Ok(Self {
            server,
            http_url: format!("http://{http}"),
            channels,
            serving_after,
        })
    }

    fn client(&self, i: usize, callers: usize) -> AuthServiceClient<Channel> {
        let connections = callers.clamp(1, MAX_CONNECTIONS);
        AuthServiceClient::new(self.channels[i % connections].clone())
    }

    fn clients(&self, callers: usize) -> Arc<Vec<AuthServiceClient<Channel>>> {
        Arc::new((0..callers).map(|i| self.client(i, callers)).collect())
    }
}

/// What the phases share: the users made at set-up, a session each, and its tokens.
struct Accounts {
    emails: Vec<String>,
    access: Vec<String>,
    refresh: Vec<Mutex<String>>,
}

fn email(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}@bench.example")
}

/// Makes `n` users (8 at a time) and logs each in once.
async fn accounts(authd: &Authd, n: usize) -> anyhow::Result<Accounts> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut client = authd.client(t, 8);
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let email = email("load", i);
                client
                    .signup(SignupRequest {
                        email: email.clone(),
                        password: PASSWORD.into(),
                        name: format!("Load {i}"),
                    })
                    .await
                    .context("signup")?;
                let tokens = client
                    .login(LoginRequest {
                        email: email.clone(),
                        password: PASSWORD.into(),
                        client_id: String::new(),
                    })
                    .await
                    .context("login")?
                    .into_inner();
                made.push((i, email, tokens.access_token, tokens.refresh_token));
            }
            anyhow::Ok(made)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by_key(|(i, ..)| *i);
    Ok(Accounts {
        emails: all.iter().map(|(_, e, ..)| e.clone()).collect(),
        access: all.iter().map(|(_, _, a, _)| a.clone()).collect(),
        refresh: all.into_iter().map(|(.., r)| Mutex::new(r)).collect(),
    })
}

/// Every phase of `plan` against `authd`; `only_login` runs the login phase alone (the bcrypt
/// target, next to the Node.js peer's login).
pub async fn phases(authd: &Authd, plan: &Plan, only_login: bool) -> anyhow::Result<Vec<Row>> {
    let name = authd.server.name.clone();
    let users = plan.max_callers();
    let accounts = Arc::new(accounts(authd, users).await?);
    let cpu = authd.server.cpu();
    let mut rows = Vec::new();
    let row = |phase: &str, callers: usize, sample: Sample| Row {
        target: name.clone(),
        phase: phase.to_owned(),
        callers,
        sample,
        cpu_of: "server",
    };

    for &callers in &plan.callers {
        if !only_login {
            let health: Arc<Vec<_>> = Arc::new(
                (0..callers)
                    .map(|i| {
                        HealthClient::new(
                            authd.channels[i % callers.clamp(1, MAX_CONNECTIONS)].clone(),
                        )
                    })
                    .collect(),
            );
            let sample = measure::run(
                callers,
                plan.duration,
                Pace::ClosedLoop,
                &cpu,
                call(move |i| {
                    let mut c = health[i].clone();
                    async move {
                        let status = c
                            .check(HealthCheckRequest {
                                service: String::new(),
                            })
                            .await?
                            .into_inner()
                            .status;
                        ensure!(status == ServingStatus::Serving as i32, "not SERVING");
                        Ok(true)
                    }
                }),
            )
            .await?;
            rows.push(row("no-op (Health/Check)", callers, sample));

            let sample = measure::run(
                callers,
                plan.duration,
                Pace::ClosedLoop,
                &cpu,
                introspect_repeat(authd, &accounts, callers),
            )
            .await?;
            rows.push(row("Introspect (token seen before)", callers, sample));

            let sample = measure::run(
                callers,
                plan.duration,
                Pace::ClosedLoop,
                &cpu,
                refresh_own(authd, &accounts, callers),
            )
            .await?;
            rows.push(row("Refresh (rotation)", callers, sample));
        }

        let emails = accounts.emails.clone();
        let sample = measure::run(
            callers,
            plan.duration,
            Pace::ClosedLoop,
            &cpu,
            login(authd, callers, move |i, _| emails[i % emails.len()].clone()),
        )
        .await?;
        rows.push(row("Login", callers, sample));

        if !only_login {
            let clients = authd.clients(callers);
            static SIGNUPS: AtomicU64 = AtomicU64::new(0);
            let run = std::process::id();
            let sample = measure::run(
                callers,
                plan.duration,
                Pace::ClosedLoop,
                &cpu,
                call(move |i| {
                    let mut c = clients[i].clone();
                    let n = SIGNUPS.fetch_add(1, Ordering::Relaxed);
                    async move {
                        c.signup(SignupRequest {
                            email: format!("signup-{run}-{n}@bench.example"),
                            password: PASSWORD.into(),
                            name: "Signup".into(),
                        })
                        .await?;
                        Ok(true)
                    }
                }),
            )
            .await?;
            rows.push(row("Signup", callers, sample));
        }
    }
    if only_login {
        return Ok(rows);
    }

    // The first check of each token: tokens made by refreshing, each introspected once.
    let callers = plan.first_check_callers();
    let fresh = fresh_tokens(authd, &accounts, plan.first_check_tokens).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let clients = authd.clients(callers);
    let sample = measure::run(
        callers,
        plan.duration * 100,
        Pace::ClosedLoop,
        &cpu,
        call(move |i| {
            let mut c = clients[i].clone();
            let k = next.fetch_add(1, Ordering::Relaxed);
            let token = fresh.get(k).cloned();
            async move {
                let Some(token) = token else { return Ok(false) };
                let active = c
                    .introspect(IntrospectRequest { token })
                    .await?
                    .into_inner()
                    .active;
                ensure!(active, "a fresh token is not active");
                Ok(true)
            }
        }),
    )
    .await?;
    rows.push(row(
        "Introspect (first check of each token)",
        callers,
        sample,
    ));

    // p99 at half of the saturating load.
    let saturating = rows
        .iter()
        .filter(|r| r.phase.starts_with("Introspect (token seen"))
        .map(|r| r.sample.rate())
        .fold(0.0, f64::max);
    let callers = plan.max_callers();
    let sample = measure::run(
        callers,
        plan.duration,
        Pace::Rate {
            per_second: saturating / 2.0,
        },
        &cpu,
        introspect_repeat(authd, &accounts, callers),
    )
    .await?;
    rows.push(row(
        &format!(
            "Introspect paced at half the saturating rate ({:.0}/s)",
            saturating / 2.0
        ),
        callers,
        sample,
    ));

    // Token checks while a login flood saturates the password hash.
    let flood_callers = 16;
    let emails = accounts.emails.clone();
    let flood_login = login(authd, flood_callers, move |i, _| {
        emails[i % emails.len()].clone()
    });
    let flood_cpu = authd.server.cpu();
    let flood_duration = plan.duration + Duration::from_millis(500);
    let flood = tokio::spawn(async move {
        measure::run(
            flood_callers,
            flood_duration,
            Pace::ClosedLoop,
            &flood_cpu,
            flood_login,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let paced = plan.flood_introspect_rate;
    let sample = measure::run(
        8,
        plan.duration,
        Pace::Rate { per_second: paced },
        &cpu,
        introspect_repeat(authd, &accounts, 8),
    )
    .await?;
    let flood = flood.await??;
    rows.push(row(
        &format!("Introspect at {paced:.0}/s during a login flood"),
        8,
        sample,
    ));
    rows.push(row(
        "Login flood (beside the row above)",
        flood_callers,
        flood,
    ));

    // The verifier library's local check, in this process, with the keys authd publishes.
    rows.extend(verifier_local(authd, &accounts, plan).await?);
    Ok(rows)
}

/// Each caller rotates the refresh token of its own set-up session, again and again.
fn refresh_own(authd: &Authd, accounts: &Arc<Accounts>, callers: usize) -> measure::Call {
    let clients = authd.clients(callers);
    let accounts = accounts.clone();
    call(move |i| {
        let mut c = clients[i].clone();
        let accounts = accounts.clone();
        async move {
            let mut refresh = accounts.refresh[i].lock().await;
            let tokens = c
                .refresh(RefreshRequest {
                    refresh_token: refresh.clone(),
                })
                .await?
                .into_inner();
            *refresh = tokens.refresh_token;
            Ok(true)
        }
    })
}

/// Logins with the harness's password: caller `i`'s `k`-th call of the phase (counted over all
/// callers) as user `email(i, k)`.
fn login(
    authd: &Authd,
    callers: usize,
    email: impl Fn(usize, usize) -> String + Send + Sync + 'static,
) -> measure::Call {
    let clients = authd.clients(callers);
    let calls = Arc::new(AtomicUsize::new(0));
    call(move |i| {
        let mut c = clients[i].clone();
        let email = email(i, calls.fetch_add(1, Ordering::Relaxed));
        async move {
            let tokens = c
                .login(LoginRequest {
                    email,
                    password: PASSWORD.into(),
                    client_id: String::new(),
                })
                .await?
                .into_inner();
            ensure!(!tokens.access_token.is_empty(), "no access token");
            Ok(true)
        }
    })
}

fn introspect_repeat(authd: &Authd, accounts: &Arc<Accounts>, callers: usize) -> measure::Call {
    let clients = authd.clients(callers);
    let accounts = accounts.clone();
    call(move |i| {
        let mut c = clients[i].clone();
        let token = accounts.access[i % accounts.access.len()].clone();
        async move {
            let active = c
                .introspect(IntrospectRequest { token })
                .await?
                .into_inner()
                .active;
            ensure!(active, "token not active");
            Ok(true)
        }
    })
}

/// `n` access tokens nobody has checked yet, made by refreshing the set-up sessions.
async fn fresh_tokens(
    authd: &Authd,
    accounts: &Arc<Accounts>,
    n: usize,
) -> anyhow::Result<Arc<Vec<String>>> {
    let sessions = accounts.refresh.len().min(16);
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let mut c = authd.client(s, sessions);
        let accounts = accounts.clone();
        let count = n / sessions + usize::from(s < n % sessions);
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::with_capacity(count);
            let mut refresh = accounts.refresh[s].lock().await;
            for _ in 0..count {
                let t = c
                    .refresh(RefreshRequest {
                        refresh_token: refresh.clone(),
                    })
                    .await?
                    .into_inner();
                *refresh = t.refresh_token;
                tokens.push(t.access_token);
            }
            anyhow::Ok(tokens)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(Arc::new(all))
}

async fn verifier_local(
    authd: &Authd,
    accounts: &Arc<Accounts>,
    plan: &Plan,
) -> anyhow::Result<Vec<Row>> {
    let jwks = crate::http1::get_text(&format!("{}/.well-known/jwks.json", authd.http_url)).await?;
    let keys = Arc::new(authd_verifier::PublicKeys::from_json(&jwks)?);
    let about = authd
        .client(0, 1)
        .introspect(IntrospectRequest {
            token: accounts.access[0].clone(),
        })
        .await?
        .into_inner();
    let checks = Arc::new(authd_verifier::Checks::new(about.iss, about.aud));
    let own = std::process::id();
    let cpu = move || crate::procfs::cpu_time(own);
    let mut rows = Vec::new();
    for callers in [1, plan.max_callers()] {
        let (keys, checks, accounts) = (keys.clone(), checks.clone(), accounts.clone());
        let sample = measure::run(
            callers,
            plan.duration,
            Pace::ClosedLoop,
            &cpu,
            call(move |i| {
                let verdict = checks
                    .check(&accounts.access[i % accounts.access.len()], &keys)
                    .map(|_| true)
                    .map_err(|refusal| anyhow::anyhow!("refused: {refusal}"));
                async move {
                    // Let the other callers run between checks, as a server's requests would.
                    tokio::task::yield_now().await;
                    verdict
                }
            }),
        )
        .await?;
        rows.push(Row {
            target: format!("{} (verifier library, local)", authd.server.name),
            phase: "local check (Checks::check)".into(),
            callers,
            sample,
            cpu_of: "load process",
        });
    }
    Ok(rows)
}

/// The scale phases, on a database that `seed` filled with `seeded` users and sessions: Login as
/// seeded users spread over the whole table, and Refresh and Introspect of sessions made at
/// set-up among the seeded ones, each at `callers`. Rows are named `scale: <server>, N users`.
pub async fn scale_phases(
    authd: &Authd,
    seeded: usize,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    ensure!(seeded > 0, "the scale phase needs seeded users");
    let accounts = Arc::new(accounts(authd, callers).await?);
    let cpu = authd.server.cpu();
    let target = format!("scale: {}, {seeded} users", authd.server.name);
    let spread = move |_, k: usize| {
        // Fibonacci hashing of the call number: consecutive calls land far apart in the table.
        let i = ((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % seeded as u64;
        crate::seed::email(i as usize)
    };
    let phases: [(&str, measure::Call); 3] = [
        ("Login (seeded users)", login(authd, callers, spread)),
        ("Refresh (rotation)", refresh_own(authd, &accounts, callers)),
        (
            "Introspect (token seen before)",
            introspect_repeat(authd, &accounts, callers),
        ),
    ];
    let mut rows = Vec::new();
    for (phase, call) in phases {
        let sample = measure::run(callers, duration, Pace::ClosedLoop, &cpu, call).await?;
        rows.push(Row {
            target: target.clone(),
            phase: phase.into(),
            callers,
            sample,
            cpu_of: "server",
        });
    }
    Ok(rows)
}
