//! Load benchmark over real gRPC: `cargo bench --bench grpc`.
//!
//! Starts authd in this process on a fresh SQLite file (or on `AUTHD_BENCH_DATABASE_URL`, e.g. a
//! PostgreSQL database), with production password-hash cost, and drives it over TCP with the
//! generated client from `AUTHD_BENCH_CLIENTS` concurrent tasks (default 16) for
//! `AUTHD_BENCH_SECONDS` per operation (default 5):
//! - Introspect: the resource servers' hot path (signature check plus one indexed lookup);
//! - Check: Envoy's ext_authz call, the same check behind a CheckRequest with a few headers;
//! - Refresh: a rotation (one write transaction);
//! - Login: bounded by argon2id (m=19456 KiB, t=2, p=1) on the machine's cores.
//!
//! Client and server share the machine, so the figures are for comparing runs and operations
//! side by side on one machine, not absolute capacity.

mod support;

use authd::grpc::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context, authorization_client::AuthorizationClient,
};
use authd::pb::auth_service_client::AuthServiceClient;
use authd::pb::{IntrospectRequest, LoginRequest, RefreshRequest, SignupRequest};
use std::time::{Duration, Instant};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients: usize = env_or("AUTHD_BENCH_CLIENTS", 16);
    let seconds: u64 = env_or("AUTHD_BENCH_SECONDS", 5);
    let bench = support::Bench::start(&["--require-verified-email", "false"]).await?;
    let channel = bench.channel.clone();
    let mut client = AuthServiceClient::new(channel.clone());
    client
        .signup(SignupRequest {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            name: "Test User".into(),
        })
        .await?;
    let login = || LoginRequest {
        email: EMAIL.into(),
        password: PASSWORD.into(),
        client_id: String::new(),
    };
    let access_token: std::sync::Arc<str> = client
        .login(login())
        .await?
        .into_inner()
        .access_token
        .into();

    let duration = Duration::from_secs(seconds);
    println!(
        "authd gRPC benchmark: {clients} clients, {seconds} s per operation, database {}",
        bench.backend
    );
    println!(
        "{:<11} {:>9} {:>10} {:>10} {:>8}",
        "operation", "ops/s", "p50 ms", "p99 ms", "errors"
    );

    let auth = AuthServiceClient::new(channel.clone());
    let check_token = access_token.clone();
    let introspect = run(&auth, clients, duration, move |mut c, _| {
        let token = access_token.to_string();
        async move {
            let active = c
                .introspect(IntrospectRequest { token })
                .await?
                .into_inner()
                .active;
            anyhow::ensure!(active, "token not active");
            Ok(c)
        }
    })
    .await;
    introspect.print("Introspect");

    // What Envoy sends for a small request: a handful of headers beside `authorization`.
    let check_request = {
        let mut headers: std::collections::HashMap<String, String> = [
            (":authority", "api.example"),
            (":method", "GET"),
            (":path", "/habits"),
            ("user-agent", "curl/8.5.0"),
            ("accept", "*/*"),
            ("x-request-id", "6f1c2d3e-0000-4000-8000-000000000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        headers.insert("authorization".into(), format!("Bearer {check_token}"));
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(attribute_context::Request {
                    http: Some(attribute_context::HttpRequest {
                        headers,
                        header_map: None,
                    }),
                }),
            }),
        }
    };
    let check = run(
        &AuthorizationClient::new(channel.clone()),
        clients,
        duration,
        move |mut c, _| {
            let request = check_request.clone();
            async move {
                let code = c.check(request).await?.into_inner().status.map(|s| s.code);
                anyhow::ensure!(code == Some(0), "not allowed: {code:?}");
                Ok(c)
            }
        },
    )
    .await;
    check.print("Check");

    // Each client rotates its own session's refresh token.
    let mut refresh_tokens = Vec::with_capacity(clients);
    for _ in 0..clients {
        refresh_tokens.push(client.login(login()).await?.into_inner().refresh_token);
    }
    let refresh = run_stateful(&auth, refresh_tokens, duration, |mut c, token| async move {
        let next = c
            .refresh(RefreshRequest {
                refresh_token: token,
            })
            .await?
            .into_inner()
            .refresh_token;
        Ok((c, next))
    })
    .await;
    refresh.print("Refresh");

    let login_stats = run(&auth, clients, duration, move |mut c, _| async move {
        c.login(login()).await?;
        Ok(c)
    })
    .await;
    login_stats.print("Login");

    println!(
        "ratios in this run: Introspect/Login throughput {:.0}x, Refresh/Login {:.0}x, \
         Check/Introspect {:.2}",
        introspect.ops_per_sec() / login_stats.ops_per_sec(),
        refresh.ops_per_sec() / login_stats.ops_per_sec(),
        check.ops_per_sec() / introspect.ops_per_sec()
    );
    bench.stop().await
}

struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Stats {
    fn ops_per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted
            .get(index)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<11} {:>9.0} {:>10.2} {:>10.2} {:>8}",
            self.ops_per_sec(),
            self.percentile_ms(0.5),
            self.percentile_ms(0.99),
            self.errors
        );
    }
}

/// `clients` tasks calling `op` back to back until `duration` is up, each with its own clone
/// of `client` (tonic clients share the channel).
async fn run<C, F, Fut>(client: &C, clients: usize, duration: Duration, op: F) -> Stats
where
    C: Clone + Send + 'static,
    F: Fn(C, ()) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<C>> + Send,
{
    run_stateful(client, vec![(); clients], duration, move |c, ()| {
        let op = op.clone();
        async move { op(c, ()).await.map(|c| (c, ())) }
    })
    .await
}

/// One task per initial state; each call turns the state into the next one.
async fn run_stateful<C, S, F, Fut>(client: &C, states: Vec<S>, duration: Duration, op: F) -> Stats
where
    C: Clone + Send + 'static,
    S: Clone + Send + 'static,
    F: Fn(C, S) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<(C, S)>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for state in states {
        let op = op.clone();
        let mut client = client.clone();
        tasks.spawn(async move {
            let (mut latencies, mut errors, mut state) = (Vec::new(), 0, state);
            while Instant::now() < deadline {
                let call = Instant::now();
                match op(client.clone(), state.clone()).await {
                    Ok((c, next)) => {
                        latencies.push(call.elapsed());
                        client = c;
                        state = next;
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut stats = Stats {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(Ok((latencies, errors))) = tasks.join_next().await {
        stats.latencies.extend(latencies);
        stats.errors += errors;
    }
    stats.elapsed = started.elapsed();
    stats
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
