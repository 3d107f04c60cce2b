//! Signing an access token with a key parsed once (authd's `KeySet::sign`) next to
//! jsonwebtoken's `encode`, which parses the private key's DER for every token (what authd did
//! before): `cargo bench --bench signing`.
//!
//! For each algorithm, `AUTHD_BENCH_ROUNDS` rounds (default 20) alternate the two ways, each
//! signing a batch of tokens with the same header and claims; it prints the median µs per
//! token of each and their ratio per round, so a noisy machine affects both alike.

use authd::crypto::keys::{KeyPair, KeySet, ScheduledKey, SigningAlg};
use jsonwebtoken::{EncodingKey, Header};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("AUTHD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let claims = serde_json::json!({
        "iss": "https://auth.example.com", "sub": "0193e9a4-7c1a-7b3e-9d52-5a8f0c6e2b11",
        "aud": ["authd"], "exp": 2_000_000_000_i64, "iat": 1_999_999_100_i64,
        "jti": "0193e9a4-7c1a-7b3e-9d52-5a8f0c6e2b12", "sid": "0193e9a4-7c1a-7b3e-9d52-5a8f0c6e2b13",
        "email": "someone@example.com", "email_verified": true, "client_id": "authd",
    });
    println!(
        "| algorithm | jsonwebtoken::encode µs/token | KeySet::sign µs/token | encode ÷ sign (median of rounds) |"
    );
    println!("|---|---:|---:|---:|");
    for (algorithm, batch) in [
        (SigningAlg::EdDSA, 2000),
        (SigningAlg::ES256, 2000),
        (SigningAlg::RS256, 100),
    ] {
        let pair = KeyPair::generate(algorithm)?;
        let set = KeySet::new(&[ScheduledKey {
            pair: pair.clone(),
            activates_at_ms: 0,
        }])?;
        let der = pair.private_der();
        let encoding = match algorithm {
            SigningAlg::EdDSA => EncodingKey::from_ed_der(der),
            SigningAlg::ES256 => EncodingKey::from_ec_der(der),
            SigningAlg::RS256 => EncodingKey::from_rsa_der(der),
        };
        let mut header = Header::default();
        set.sign(&mut header, &claims, 10)?;
        let (mut encode_us, mut sign_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..batch {
                std::hint::black_box(jsonwebtoken::encode(&header, &claims, &encoding)?);
            }
            let encode = start.elapsed().as_secs_f64() * 1e6 / batch as f64;
            let start = Instant::now();
            for _ in 0..batch {
                std::hint::black_box(set.sign(&mut header, &claims, 10)?);
            }
            let sign = start.elapsed().as_secs_f64() * 1e6 / batch as f64;
            encode_us.push(encode);
            sign_us.push(sign);
            ratios.push(encode / sign);
        }
        println!(
            "| {algorithm} | {:.1} | {:.1} | {:.2} |",
            median(&mut encode_us),
            median(&mut sign_us),
            median(&mut ratios)
        );
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
