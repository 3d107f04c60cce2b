//! Unit-test helpers: Ed25519 keys made from a seed, their JWK Set, and tokens forged byte by
//! byte (any header, any payload, any signature) the way an attacker would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use serde_json::{Value, json};

pub const ISSUER: &str = "http://authd.test";
pub const AUDIENCE: &str = "authd";
pub const KID: &str = "key-1";

/// A signing key from a one-byte seed: tests need distinct keys, not secret ones.
pub fn key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

/// The public JWK of `key` under `kid`, as authd publishes it.
pub fn jwk(kid: &str, key: &ed25519_dalek::SigningKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    })
}

/// A JWK Set of `(kid, key)` pairs.
pub fn jwks(keys: &[(&str, &ed25519_dalek::SigningKey)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(kid, key)| jwk(kid, key)).collect();
    json!({ "keys": keys }).to_string()
}

/// The header authd writes.
pub fn header() -> Value {
    json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": KID })
}

/// Claims authd would sign at `now` for fifteen minutes.
pub fn claims(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5a",
        "aud": AUDIENCE,
        "exp": now + 900,
        "iat": now,
        "jti": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5b",
        "sid": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5c",
        "client_id": "web",
        "email": "a@example.com",
        "email_verified": true,
    })
}

/// `header.payload` in base64url, ready to sign.
pub fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

/// A compact JWS of `header` and `payload` signed with `key` (whatever the header says).
pub fn sign(header: &Value, payload: &Value, key: &ed25519_dalek::SigningKey) -> String {
    let input = signing_input(header, payload);
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Unix seconds now.
pub fn now() -> i64 {
    crate::checks::unix_now()
}
