//! How fast a logout reaches WatchRevocations streams: `cargo bench --bench revocations`.
//!
//! Starts two authd processes' worth of server (two in-process replicas, each with its own
//! pool and poller) on one fresh SQLite file, or on `AUTHD_BENCH_DATABASE_URL` (e.g. a
//! PostgreSQL database), holds a stream on each, and ends `AUTHD_BENCH_LOGOUTS` sessions
//! (default 200) one by one on the first, at uneven intervals so they fall anywhere in the
//! poll cycle. For each logout it times how long after Logout returned the revocation arrived
//! on the same replica's stream and on the other replica's, and how long until an
//! `authd_verifier::LocalVerifier` in revocation-aware mode (its stream on the other replica)
//! refuses the session's access token (checked every millisecond). Password hashing is cheap
//! here: the logins are set-up, not what is measured.

mod support;

use authd::pb::Revocation;
use authd::pb::auth_service_client::AuthServiceClient;
use authd::pb::{LoginRequest, LogoutRequest, SignupRequest, WatchRevocationsRequest};
use authd_verifier::{
    Checks, JwksSource, LocalSettings, LocalVerifier, Refusal, RevocationSettings, Verify,
};
use std::time::{Duration, Instant};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery";
const ISSUER: &str = "http://authd.bench";
const CHEAP_HASH: [&str; 10] = [
    "--issuer",
    ISSUER,
    "--require-verified-email",
    "false",
    "--argon2-memory-kib",
    "64",
    "--argon2-iterations",
    "1",
    "--access-ttl",
    "15m",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let logouts: usize = std::env::var("AUTHD_BENCH_LOGOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let first = support::Bench::start(&CHEAP_HASH).await?;
    let second = first.replica(&CHEAP_HASH).await?;
    let mut client = AuthServiceClient::new(first.channel.clone());
    client
        .signup(SignupRequest {
            email: EMAIL.into(),
            password: PASSWORD.into(),
            name: "Bench".into(),
        })
        .await?;
    let watch = |channel| async move {
        let mut c = AuthServiceClient::new(channel);
        let request = WatchRevocationsRequest { after_cursor: 0 };
        anyhow::Ok(c.watch_revocations(request).await?.into_inner())
    };
    let mut same = watch(first.channel.clone()).await?;
    let mut other = watch(second.channel.clone()).await?;
    let verifier = LocalVerifier::start(
        LocalSettings::new(
            JwksSource::Grpc(second.url.clone()),
            Checks::new(ISSUER, vec!["authd".into()]),
        )
        .with_revocations(RevocationSettings::new(second.url.clone())),
    );

    let (mut same_delays, mut other_delays, mut refused_delays) =
        (Vec::new(), Vec::new(), Vec::new());
    for i in 0..logouts {
        let session = client
            .login(LoginRequest {
                email: EMAIL.into(),
                password: PASSWORD.into(),
                client_id: String::new(),
            })
            .await?
            .into_inner();
        // The verifier takes the token before the logout (waiting out its start-up).
        let deadline = Instant::now() + Duration::from_secs(10);
        while verifier.verify(&session.access_token).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the verifier never accepted the token"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Uneven spacing (0–250 ms), so logouts land anywhere in the 200 ms poll cycle.
        tokio::time::sleep(Duration::from_millis((i as u64 * 7919) % 251)).await;
        client
            .logout(LogoutRequest {
                refresh_token: session.refresh_token,
                all_sessions: false,
            })
            .await?;
        let ended = Instant::now();
        // Both streams and the verifier are watched at once; each is timed on its own.
        let (a, b, c) = tokio::join!(
            arrival(&mut same, ended),
            arrival(&mut other, ended),
            refused(&verifier, &session.access_token, ended)
        );
        same_delays.push(a?);
        other_delays.push(b?);
        refused_delays.push(c?);
    }
    println!(
        "revocation latency, Logout returned -> revocation read; {logouts} logouts, database {}",
        first.backend
    );
    println!(
        "{:<16} {:>8} {:>8} {:>8}",
        "stream on", "p50 ms", "p99 ms", "max ms"
    );
    report("same replica", &mut same_delays);
    report("other replica", &mut other_delays);
    report("verifier refuses", &mut refused_delays);
    second.stop().await?;
    first.stop().await
}

/// How long after `ended` the next revocation arrived on `stream`.
async fn arrival(
    stream: &mut tonic::Streaming<Revocation>,
    ended: Instant,
) -> anyhow::Result<Duration> {
    let got = stream.message().await?;
    anyhow::ensure!(got.is_some(), "a stream ended");
    Ok(ended.elapsed())
}

/// How long after `ended` the verifier first refuses `token` as revoked.
async fn refused(
    verifier: &LocalVerifier,
    token: &str,
    ended: Instant,
) -> anyhow::Result<Duration> {
    loop {
        match verifier.verify(token).await {
            Err(Refusal::Revoked) => return Ok(ended.elapsed()),
            Ok(_) => {}
            Err(other) => anyhow::bail!("refused for another reason: {other}"),
        }
        anyhow::ensure!(ended.elapsed() < Duration::from_secs(10), "never refused");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn report(label: &str, delays: &mut [Duration]) {
    delays.sort();
    let at = |q: f64| {
        let i = ((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len()) - 1;
        delays[i].as_secs_f64() * 1000.0
    };
    println!(
        "{label:<16} {:>8.1} {:>8.1} {:>8.1}",
        at(0.50),
        at(0.99),
        at(1.0)
    );
}
