//! The ES256 and RS256 rows of the check benchmark (see `check.rs`).

use super::{ISSUER, KID, rates};
use authd_verifier::{Checks, PublicKeys};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::hint::black_box;

/// A compact JWS of `claims` signed by jsonwebtoken with `key` under `alg`; its signing input.
fn signed(
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
    claims: &serde_json::Value,
) -> (String, String) {
    let mut header = jsonwebtoken::Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(KID.into());
    let token = jsonwebtoken::encode(&header, claims, key).unwrap();
    let input = token.rsplit_once('.').unwrap().0.to_owned();
    (token, input)
}

/// The ES256 and RS256 rows: each token's bare signature check, jsonwebtoken's per-token path,
/// and `Checks::check`.
pub fn ecdsa_and_rsa(rounds: usize, iterations: usize, claims: &serde_json::Value) {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
    use p256::pkcs8::EncodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    use sha2::Digest;

    let checks = Checks::new(ISSUER, vec!["authd".into()]);
    let one_key = |jwk: serde_json::Value| {
        let jwk = serde_json::json!({ "keys": [jwk] }).to_string();
        let keys = PublicKeys::from_json(&jwk).unwrap();
        assert_eq!(keys.len(), 1, "the key is usable");
        let decoding = DecodingKey::from_jwk(
            &serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&jwk)
                .unwrap()
                .keys[0],
        )
        .unwrap();
        (keys, decoding)
    };

    let ec = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let ec_public = *ec.verifying_key();
    let point = ec_public.to_encoded_point(false);
    let ec_der = ec.to_pkcs8_der().unwrap();
    let (es_token, es_input) = signed(
        Algorithm::ES256,
        &EncodingKey::from_ec_der(ec_der.as_bytes()),
        claims,
    );
    let (es_keys, es_decoding) = one_key(serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    }));
    let es_b64 = es_token.rsplit_once('.').unwrap().1.to_owned();
    let es_signature =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(&es_b64).unwrap()).unwrap();
    assert!(
        checks.check(&es_token, &es_keys).is_ok(),
        "the ES256 token checks"
    );

    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let rsa_public = rsa.to_public_key();
    let rsa_der = rsa.to_pkcs1_der().unwrap();
    let (rs_token, rs_input) = signed(
        Algorithm::RS256,
        &EncodingKey::from_rsa_der(rsa_der.as_bytes()),
        claims,
    );
    let (rs_keys, rs_decoding) = one_key(serde_json::json!({
        "kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(rsa_public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(rsa_public.e().to_bytes_be()),
    }));
    let rs_b64 = rs_token.rsplit_once('.').unwrap().1.to_owned();
    let rs_signature = URL_SAFE_NO_PAD.decode(&rs_b64).unwrap();
    assert!(
        checks.check(&rs_token, &rs_keys).is_ok(),
        "the RS256 token checks"
    );

    let mut es_bare = |n: usize| {
        use p256::ecdsa::signature::Verifier;
        for _ in 0..n {
            black_box(ec_public.verify(black_box(es_input.as_bytes()), black_box(&es_signature)))
                .unwrap();
        }
    };
    let mut es_jsonwebtoken = |n: usize| {
        for _ in 0..n {
            let verdict = jsonwebtoken::crypto::verify(
                black_box(&es_b64),
                black_box(es_input.as_bytes()),
                &es_decoding,
                Algorithm::ES256,
            );
            assert!(black_box(verdict).unwrap());
        }
    };
    let mut es_check = |n: usize| {
        for _ in 0..n {
            black_box(checks.check(black_box(&es_token), &es_keys)).unwrap();
        }
    };
    let mut rs_bare = |n: usize| {
        for _ in 0..n {
            let digest = sha2::Sha256::digest(black_box(rs_input.as_bytes()));
            let scheme = rsa::Pkcs1v15Sign::new::<sha2::Sha256>();
            black_box(rsa_public.verify(scheme, &digest, black_box(&rs_signature))).unwrap();
        }
    };
    let mut rs_jsonwebtoken = |n: usize| {
        for _ in 0..n {
            let verdict = jsonwebtoken::crypto::verify(
                black_box(&rs_b64),
                black_box(rs_input.as_bytes()),
                &rs_decoding,
                Algorithm::RS256,
            );
            assert!(black_box(verdict).unwrap());
        }
    };
    let mut rs_check = |n: usize| {
        for _ in 0..n {
            black_box(checks.check(black_box(&rs_token), &rs_keys)).unwrap();
        }
    };
    let measured = rates(
        rounds,
        iterations,
        &mut [
            &mut es_bare,
            &mut es_jsonwebtoken,
            &mut es_check,
            &mut rs_bare,
            &mut rs_jsonwebtoken,
            &mut rs_check,
        ],
    );
    println!(
        "\nES256 token of {} bytes, RS256 token of {} bytes (RSA 2048)",
        es_token.len(),
        rs_token.len()
    );
    println!(
        "{:<44} {:>12} {:>8} {:>10}",
        "", "tokens/s", "µs", "of bare"
    );
    let names = [
        "bare p256 verify (key decoded once)",
        "jsonwebtoken::crypto::verify ES256",
        "Checks::check ES256 with PublicKeys",
        "bare rsa PKCS#1 v1.5 verify (key decoded)",
        "jsonwebtoken::crypto::verify RS256",
        "Checks::check RS256 with PublicKeys",
    ];
    for (i, (name, value)) in names.into_iter().zip(&measured).enumerate() {
        let bare = measured[i / 3 * 3];
        println!(
            "{name:<44} {value:>12.0} {:>8.1} {:>9.1}%",
            1e6 / value,
            100.0 * value / bare
        );
    }
}
