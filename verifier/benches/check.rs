//! The cost of checking one access token locally, next to the Ed25519 signature check inside it:
//! `cargo bench -p authd-verifier --bench check`.
//!
//! Signs a token like authd's with a fresh key, then times, one after the other in a plain loop:
//! a bare `ed25519_dalek` `verify` (what the check uses) and `verify_strict` of that token's
//! signature over its signing input (decoded beforehand), `Checks::check` against `PublicKeys`,
//! and the whole `Verify` path of a `LocalVerifier` warmed with keys from a JWKS served on
//! loopback. Each runs `AUTHD_BENCH_ITERATIONS` (default 5000) tokens per round for
//! `AUTHD_BENCH_ROUNDS` (default 9) rounds after a warm-up round, the rounds interleaved; the
//! median rate is printed, with the ratio to the bare `verify` and to `verify_strict`. Target: the
//! local check at 80 % of the bare `verify` or more.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use authd_verifier::{Checks, JwksSource, LocalSettings, LocalVerifier, PublicKeys, Verify};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER: &str = "http://127.0.0.1:8080";
const KID: &str = "bench-key";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median rate (tokens per second) of each of `runs` over `rounds` rounds of `iterations`
/// calls, after one warm-up round. Rounds interleave the runs, so that a change in the machine's
/// load (it is shared) falls on all of them alike.
fn rates(rounds: usize, iterations: usize, runs: &mut [&mut dyn FnMut(usize)]) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(rounds); runs.len()];
    for round in 0..=rounds {
        for (run, samples) in runs.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            run(iterations);
            if round > 0 {
                samples.push(iterations as f64 / start.elapsed().as_secs_f64());
            }
        }
    }
    samples
        .into_iter()
        .map(|mut rates| {
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        })
        .collect()
}

/// Serves `jwks` over HTTP/1.1 on loopback, one answer per connection; the URL.
async fn serve_jwks(jwks: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/jwk-set+json\r\n\
                 cache-control: public, max-age=300\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{jwks}",
                jwks.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    url
}

fn main() {
    let rounds = env("AUTHD_BENCH_ROUNDS", 9).max(1);
    let iterations = env("AUTHD_BENCH_ITERATIONS", 5000).max(1);

    let mut seed = [0u8; 32];
    seed.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8 ^ 0x5a);
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = signing.verifying_key();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": KID });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5a", "aud": "authd",
        "exp": now + 900, "iat": now, "jti": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5b",
        "sid": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5c", "client_id": "authd",
        "email": "someone@example.com", "email_verified": true,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signing.sign(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    let jwks = serde_json::json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public.as_bytes()),
        "kid": KID, "use": "sig", "alg": "EdDSA",
    }]})
    .to_string();
    let keys = PublicKeys::from_json(&jwks).unwrap();
    let checks = Checks::new(ISSUER, vec!["authd".into()]);
    assert!(checks.check(&token, &keys).is_ok(), "the token checks");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verifier = runtime.block_on(async {
        let url = serve_jwks(jwks.clone()).await;
        let verifier =
            LocalVerifier::start(LocalSettings::new(JwksSource::Http(url), checks.clone()));
        assert!(verifier.ready(Duration::from_secs(10)).await, "keys served");
        verifier
    });

    println!(
        "authd-verifier check benchmark: token of {} bytes, {rounds} rounds of {iterations} \
         tokens, median rate, one thread",
        token.len()
    );
    let mut strict = |n: usize| {
        for _ in 0..n {
            black_box(public.verify_strict(black_box(input.as_bytes()), black_box(&signature)))
                .unwrap();
        }
    };
    let mut plain = |n: usize| {
        use ed25519_dalek::Verifier;
        for _ in 0..n {
            black_box(public.verify(black_box(input.as_bytes()), black_box(&signature))).unwrap();
        }
    };
    let mut check = |n: usize| {
        for _ in 0..n {
            black_box(checks.check(black_box(&token), &keys)).unwrap();
        }
    };
    let mut whole = |n: usize| {
        runtime.block_on(async {
            for _ in 0..n {
                black_box(verifier.verify(black_box(&token)).await).unwrap();
            }
        });
    };
    let measured = rates(
        rounds,
        iterations,
        &mut [&mut strict, &mut plain, &mut check, &mut whole],
    );
    let names = [
        "bare ed25519_dalek verify_strict",
        "bare ed25519_dalek verify",
        "Checks::check with PublicKeys",
        "LocalVerifier::verify (warmed, whole path)",
    ];
    let (strict, plain) = (measured[0], measured[1]);
    println!(
        "{:<44} {:>12} {:>10} {:>10}",
        "", "tokens/s", "of verify", "of strict"
    );
    for (name, value) in names.into_iter().zip(measured) {
        println!(
            "{name:<44} {value:>12.0} {:>9.1}% {:>9.1}%",
            100.0 * value / plain,
            100.0 * value / strict
        );
    }
}
