//! The cost of checking one access token locally, next to the signature check inside it:
//! `cargo bench -p authd-verifier --bench check`.
//!
//! Signs a token like authd's with a fresh key, then times, one after the other in a plain loop:
//! a bare `ed25519_dalek` `verify` (what the check uses) and `verify_strict` of that token's
//! signature over its signing input (decoded beforehand), `Checks::check` against `PublicKeys`,
//! and the whole `Verify` path of a `LocalVerifier` warmed with keys from a JWKS served on
//! loopback, and the same path of a revocation-aware `LocalVerifier` that holds a revocation
//! stream (served on loopback by a minimal WatchRevocations server written here) with
//! `AUTHD_BENCH_REVOKED` (default 10 000) revoked sessions, the token's own not among them.
//! Each runs `AUTHD_BENCH_ITERATIONS` (default 5000) tokens per round for
//! `AUTHD_BENCH_ROUNDS` (default 9) rounds after a warm-up round, the rounds interleaved; the
//! median rate is printed, with the ratio to the bare `verify` and to `verify_strict`. Target: the
//! local check at 80 % of the bare `verify` or more.
//!
//! Then the same token signed with ES256 (P-256) and RS256 (RSA 2048): a bare `p256` `verify`
//! with the key decoded beforehand (what the check uses), jsonwebtoken's `crypto::verify` (which
//! decodes the key for every token: the ES256 path before, the RS256 path still), a bare `rsa`
//! PKCS#1 v1.5 verification with the key decoded beforehand, and `Checks::check` of each token,
//! each with its ratio to its own bare signature check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use authd_verifier::{
    Checks, JwksSource, LocalSettings, LocalVerifier, PublicKeys, RevocationSettings, Verify,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "check/algorithms.rs"]
mod algorithms;

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

/// The WatchRevocations messages, as `proto/auth/v1/auth.proto` has them (the verifier's
/// generated server is for its unit tests only).
#[derive(Clone, PartialEq, prost::Message)]
struct WatchRevocationsRequest {
    #[prost(int64, tag = "1")]
    after_cursor: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Revocation {
    #[prost(int64, tag = "1")]
    cursor: i64,
    #[prost(string, tag = "2")]
    session_id: String,
    #[prost(string, tag = "3")]
    user_id: String,
    #[prost(message, optional, tag = "4")]
    revoked_at: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "5")]
    not_after: Option<prost_types::Timestamp>,
}

/// `auth.v1.AuthService` with WatchRevocations only: every revocation, then a stream that
/// stays open.
#[derive(Clone)]
struct Revocations(std::sync::Arc<Vec<Revocation>>);

impl tonic::server::NamedService for Revocations {
    const NAME: &'static str = "auth.v1.AuthService";
}

impl tower::Service<http::Request<tonic::body::Body>> for Revocations {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        use tonic::codegen::tokio_stream::{self, StreamExt};
        let all = std::sync::Arc::clone(&self.0);
        let watch = tower::service_fn(move |_: tonic::Request<WatchRevocationsRequest>| {
            let all = std::sync::Arc::clone(&all);
            async move {
                let end = all.last().map_or(0, |r| r.cursor);
                let stream = tokio_stream::iter(all.iter().cloned().map(Ok).collect::<Vec<_>>())
                    .chain(tokio_stream::pending());
                let mut response = tonic::Response::new(stream);
                response
                    .metadata_mut()
                    .insert("x-authd-backlog-end", end.to_string().parse().unwrap());
                Ok::<_, tonic::Status>(response)
            }
        });
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.server_streaming(watch, request).await)
        })
    }
}

/// Serves `count` revocations of made-up sessions on loopback; the gRPC endpoint.
async fn serve_revocations(count: usize, not_after: i64) -> String {
    let revocations = (1..=count)
        .map(|i| Revocation {
            cursor: i as i64,
            session_id: uuid::Uuid::from_u128(0xdead_0000 + i as u128).to_string(),
            user_id: uuid::Uuid::from_u128(1).to_string(),
            revoked_at: None,
            not_after: Some(prost_types::Timestamp {
                seconds: not_after,
                nanos: 0,
            }),
        })
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Revocations(std::sync::Arc::new(revocations)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    endpoint
}

fn main() {
    let rounds = env("AUTHD_BENCH_ROUNDS", 9).max(1);
    let iterations = env("AUTHD_BENCH_ITERATIONS", 5000).max(1);
    let revoked = env("AUTHD_BENCH_REVOKED", 10_000);

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
    let (verifier, aware) = runtime.block_on(async {
        let url = serve_jwks(jwks.clone()).await;
        let verifier = LocalVerifier::start(LocalSettings::new(
            JwksSource::Http(url.clone()),
            checks.clone(),
        ));
        assert!(verifier.ready(Duration::from_secs(10)).await, "keys served");
        let endpoint = serve_revocations(revoked, now as i64 + 3600).await;
        let aware = LocalVerifier::start(
            LocalSettings::new(JwksSource::Http(url), checks.clone())
                .with_revocations(RevocationSettings::new(endpoint)),
        );
        assert!(aware.ready(Duration::from_secs(10)).await, "keys served");
        assert!(aware.caught_up(Duration::from_secs(30)).await, "caught up");
        assert_eq!(aware.revoked_count(), revoked);
        (verifier, aware)
    });

    println!(
        "authd-verifier check benchmark: token of {} bytes, {rounds} rounds of {iterations} \
         tokens, median rate, one thread; {revoked} revoked sessions in the revocation-aware \
         verifier",
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
    let mut revocation_aware = |n: usize| {
        runtime.block_on(async {
            for _ in 0..n {
                black_box(aware.verify(black_box(&token)).await).unwrap();
            }
        });
    };
    let measured = rates(
        rounds,
        iterations,
        &mut [
            &mut strict,
            &mut plain,
            &mut check,
            &mut whole,
            &mut revocation_aware,
        ],
    );
    let names = [
        "bare ed25519_dalek verify_strict",
        "bare ed25519_dalek verify",
        "Checks::check with PublicKeys",
        "LocalVerifier::verify (warmed, whole path)",
        "  the same, revocation-aware (revoked set)",
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

    algorithms::ecdsa_and_rsa(rounds, iterations, &claims);
}
