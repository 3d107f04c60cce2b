//! Timing of the calls that must not tell known emails from unknown ones:
//! `cargo bench --bench timing`.
//!
//! Starts authd in this process on a fresh SQLite file (or `AUTHD_BENCH_DATABASE_URL`) with
//! production hash cost, signs up users, then calls RequestPasswordReset, ResendVerification
//! and Login (with a wrong password) for a user's email and for made-up ones, interleaved one after the other
//! (`AUTHD_BENCH_ROUNDS`, default 200, per pair), and prints the median and p90 latency of each
//! and the known/unknown ratio of the medians. A ratio near 1.00 means the timing says nothing
//! about whether an account exists. Calls are `AUTHD_BENCH_GAP_MS` (default 50) apart, so that
//! the work a call leaves in the background (a known email's mail) has finished before the next
//! one: the figures are of each answer itself.

mod support;

use authd::pb::auth_service_client::AuthServiceClient;
use authd::pb::{
    LoginRequest, RequestPasswordResetRequest, ResendVerificationRequest, SignupRequest,
};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const KNOWN: &str = "known@example.com";
const PASSWORD: &str = "correct horse battery";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = usize::try_from(env("AUTHD_BENCH_ROUNDS", 200))?;
    let gap = Duration::from_millis(env("AUTHD_BENCH_GAP_MS", 50));
    // Limits far above the rounds, so that every call does its full work.
    let bench = support::Bench::start(&[
        "--throttle-account-mails",
        "1000000",
        "--throttle-client-mails",
        "1000000",
        "--throttle-client-failures",
        "1000000",
        "--throttle-client-account-failures",
        "1000000",
        "--throttle-account-failures",
        "1000000",
        "--throttle-client-signups",
        "1000000",
    ])
    .await?;
    let mut client = AuthServiceClient::new(bench.channel.clone());
    // Login guesses one known account per round: an account takes at most 100 consecutive
    // failures (NIST SP 800-63B) before it waits for a reset, which would stop the comparison.
    for round in 0..rounds {
        client
            .signup(SignupRequest {
                email: known_login(round),
                password: PASSWORD.into(),
                name: "Known".into(),
            })
            .await?;
    }

    println!(
        "authd timing benchmark: {rounds} rounds per pair, one call at a time, database {}",
        bench.backend
    );
    println!(
        "{:<22} {:>13} {:>13} {:>15} {:>15} {:>7}",
        "call", "known p50 ms", "known p90 ms", "unknown p50 ms", "unknown p90 ms", "ratio"
    );
    for call in ["RequestPasswordReset", "ResendVerification", "Login"] {
        let mut known = Vec::with_capacity(rounds);
        let mut unknown = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let ghost = format!("ghost{round}@example.com");
            let real = if call == "Login" {
                known_login(round)
            } else {
                KNOWN.to_owned()
            };
            // Alternate which goes first, so drift in the machine's load hits both alike.
            let order = if round % 2 == 0 {
                [(&real, true), (&ghost, false)]
            } else {
                [(&ghost, false), (&real, true)]
            };
            for (email, is_known) in order {
                tokio::time::sleep(gap).await;
                let started = Instant::now();
                timed_call(&mut client, call, email).await;
                let took = started.elapsed();
                if is_known {
                    known.push(took)
                } else {
                    unknown.push(took)
                }
            }
        }
        let (k50, k90) = (percentile(&mut known, 0.5), percentile(&mut known, 0.9));
        let (u50, u90) = (percentile(&mut unknown, 0.5), percentile(&mut unknown, 0.9));
        println!(
            "{call:<22} {:>13.3} {:>13.3} {:>15.3} {:>15.3} {:>7.2}",
            ms(k50),
            ms(k90),
            ms(u50),
            ms(u90),
            ms(k50) / ms(u50)
        );
    }
    bench.stop().await
}

fn known_login(round: usize) -> String {
    if round == 0 {
        KNOWN.to_owned()
    } else {
        format!("known{round}@example.com")
    }
}

/// One call; its answer is the same for both kinds of email, so it is not looked at beyond
/// "it answered".
async fn timed_call(client: &mut AuthServiceClient<Channel>, call: &str, email: &str) {
    let answered = match call {
        "RequestPasswordReset" => client
            .request_password_reset(RequestPasswordResetRequest {
                email: email.into(),
            })
            .await
            .map(|_| ()),
        "ResendVerification" => client
            .resend_verification(ResendVerificationRequest {
                email: email.into(),
            })
            .await
            .map(|_| ()),
        _ => client
            .login(LoginRequest {
                email: email.into(),
                password: "a wrong password".into(),
                client_id: String::new(),
            })
            .await
            .map(|_| ()),
    };
    if let Err(status) = answered
        && status.code() != tonic::Code::Unauthenticated
    {
        eprintln!("{call} {email}: {status:?}");
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
