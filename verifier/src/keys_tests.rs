//! Which keys of a JWK Set are kept, and why the others are skipped.

use super::*;
use crate::test_support::{KeyPair, Logs};
use serde_json::{Value, json};

fn okp(kid: &str, x: &str, extra: &str) -> String {
    format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"{kid}"{extra}}}"#)
}

fn x_of(seed: u8) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())
}

fn set_of(keys: &[Value]) -> PublicKeys {
    PublicKeys::from_json(&json!({ "keys": keys }).to_string()).unwrap()
}

#[test]
fn usable_keys_are_kept_and_the_rest_skipped() -> Result<(), KeysError> {
    let x = x_of(1);
    let weak = URL_SAFE_NO_PAD.encode([0u8; 32]); // the identity point: small order
    let keys = [
        okp("good", &x, r#","use":"sig","alg":"EdDSA""#),
        okp("no-alg", &x, ""),
        okp("ops", &x, r#","key_ops":["verify"]"#),
        okp("enc", &x, r#","use":"enc""#),
        okp("sign-only", &x, r#","key_ops":["sign"]"#),
        okp("wrong-alg", &x, r#","alg":"RS256""#),
        okp("hmac-alg", &x, r#","alg":"HS256""#),
        okp("weak", &weak, ""),
        okp("short", "AAAA", ""),
        okp("not-b64", "!!!", ""),
        r#"{"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"ed448"}"#.to_owned(),
        r#"{"kty":"oct","k":"c2VjcmV0","kid":"oct","alg":"HS256"}"#.to_owned(),
        r#"{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa-no-alg"}"#.to_owned(),
        r#"{"kty":"weird","kid":"weird"}"#.to_owned(),
        okp("", &x, "").replace(r#","kid":"""#, ""),
        okp("good", &x_of(2), ""),
    ];
    let json = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
    let set = PublicKeys::from_json(&json)?;
    let mut kids: Vec<&str> = set.kids().collect();
    kids.sort_unstable();
    assert_eq!(kids, ["good", "no-alg", "ops"]);
    let good = set.get("good").map(PublicKey::algorithm);
    assert_eq!(good, Some(Algorithm::EdDSA));
    // The first key under a repeated kid stays.
    let first = ed25519_key(&x).map(Native::Ed25519).ok();
    assert!(set.get("good").map(|k| k.native.clone()) == first);
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty() && set.contains("ops") && !set.contains("oct"));
    Ok(())
}

#[test]
fn ec_keys_take_their_curve_algorithm_and_p256_points_are_checked() {
    let pair = KeyPair::p256(1);
    let mut no_alg = pair.jwk("p256");
    drop(no_alg.as_object_mut().map(|k| k.remove("alg")));
    // y + 1 (in its last byte): a point off the curve.
    let mut off_curve = pair.jwk("off");
    let mut y = URL_SAFE_NO_PAD
        .decode(off_curve["y"].as_str().unwrap())
        .unwrap();
    y[31] ^= 1;
    off_curve["y"] = json!(URL_SAFE_NO_PAD.encode(&y));
    let mut short = pair.jwk("short");
    short["x"] = json!(URL_SAFE_NO_PAD.encode([1u8; 31]));
    let mut long = pair.jwk("long");
    long["y"] = json!(URL_SAFE_NO_PAD.encode([1u8; 33]));
    let mut zero = pair.jwk("zero");
    zero["x"] = json!(URL_SAFE_NO_PAD.encode([0u8; 32]));
    zero["y"] = json!(URL_SAFE_NO_PAD.encode([0u8; 32]));
    let mut wrong_curve = pair.jwk("wrong-curve");
    wrong_curve["alg"] = json!("ES384");
    let set = set_of(&[
        no_alg,
        pair.jwk("es256"),
        off_curve,
        short,
        long,
        zero,
        wrong_curve,
        json!({"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"junk"}),
        json!({"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","kid":"m","alg":"ES256"}),
        json!({"kty":"EC","crv":"P-521","x":"AAAA","y":"AAAA","kid":"p521"}),
        // P-384 keys stay as they were: kept under ES384, decoded by jsonwebtoken per token.
        json!({"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","kid":"p384"}),
    ]);
    let mut kids: Vec<&str> = set.kids().collect();
    kids.sort_unstable();
    assert_eq!(kids, ["es256", "p256", "p384"]);
    for kid in ["es256", "p256"] {
        let key = set.get(kid).unwrap();
        assert_eq!(key.algorithm(), Algorithm::ES256);
        assert!(matches!(key.native, Native::P256(_)), "{kid}");
    }
    let p384 = set.get("p384").unwrap();
    assert_eq!(p384.algorithm(), Algorithm::ES384);
    assert!(p384.native == Native::None);
}

/// An RSA JWK with a made-up modulus: only its size and the exponent matter here.
fn rsa(kid: &str, n: &[u8], e: &str) -> Value {
    json!({
        "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": e,
        "kid": kid, "use": "sig", "alg": "RS256",
    })
}

/// A modulus of exactly `bits` bits (odd, as any real one).
fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xffu8; bits.div_ceil(8)];
    n[0] = 0xff >> (n.len() * 8 - bits);
    n
}

#[test]
fn rsa_keys_need_2048_bits_and_an_odd_exponent_above_1() {
    let mut padded = modulus(2048);
    padded.insert(0, 0); // a leading zero octet adds nothing
    let real = KeyPair::rsa();
    let jwks = [
        real.jwk("real"),
        rsa("2048", &modulus(2048), "AQAB"),
        rsa("4096", &modulus(4096), "AQAB"),
        rsa("padded", &padded, "AQAB"),
        rsa("e-3", &modulus(2048), "Aw"),
        rsa("e-leading-zero", &modulus(2048), "AAEAAQ"),
        rsa(
            "e-max",
            &modulus(2048),
            &URL_SAFE_NO_PAD.encode([1, 0xff, 0xff, 0xff, 0xff]),
        ),
        rsa("rsa-1024", &modulus(1024), "AQAB"),
        rsa("rsa-2047", &modulus(2047), "AQAB"),
        rsa("rsa-4097", &modulus(4097), "AQAB"),
        rsa(
            "padded-1024",
            &[&[0u8; 128][..], &modulus(1024)].concat(),
            "AQAB",
        ),
        rsa("no-n", &[], "AQAB"),
        rsa("e-1", &modulus(2048), "AQ"),
        rsa("e-1-padded", &modulus(2048), "AAAB"),
        rsa("e-2", &modulus(2048), "Ag"),
        rsa("e-65536", &modulus(2048), "AQAA"),
        rsa("e-0", &modulus(2048), "AA"),
        rsa("e-empty", &modulus(2048), ""),
        rsa(
            "e-2^33+1",
            &modulus(2048),
            &URL_SAFE_NO_PAD.encode([2, 0, 0, 0, 1]),
        ),
        rsa(
            "e-huge",
            &modulus(2048),
            &URL_SAFE_NO_PAD.encode([0xffu8; 9]),
        ),
        rsa("e-not-b64", &modulus(2048), "!!"),
    ];
    let (logs, _guard) = Logs::capture();
    let set = set_of(&jwks);
    let mut kids: Vec<&str> = set.kids().collect();
    kids.sort_unstable();
    assert_eq!(
        kids,
        [
            "2048",
            "4096",
            "e-3",
            "e-leading-zero",
            "e-max",
            "padded",
            "real"
        ]
    );
    assert_eq!(
        set.get("real").map(PublicKey::algorithm),
        Some(Algorithm::RS256)
    );
    let logs = logs.text();
    for (kid, why) in [
        ("rsa-1024", "RSA modulus under 2048 bits"),
        ("rsa-2047", "RSA modulus under 2048 bits"),
        ("padded-1024", "RSA modulus under 2048 bits"),
        ("rsa-4097", "RSA modulus over 4096 bits"),
        ("e-1", "RSA exponent is even or 1"),
        ("e-2", "RSA exponent is even or 1"),
        ("e-2^33+1", "RSA exponent over 2^33 - 1"),
    ] {
        let line = logs
            .lines()
            .find(|line| line.contains(&format!("kid=\"{kid}\"")));
        assert!(
            line.is_some_and(|line| line.contains("WARN") && line.contains(why)),
            "{kid}: {line:?}"
        );
    }
    // The warnings name the key, never its material.
    let n = real.jwk("real")["n"].as_str().unwrap().to_owned();
    assert!(!logs.contains(&n[..40]));
}

#[test]
fn malformed_sets_are_errors_that_echo_nothing() {
    for json in ["", "[]", r#"{"keys":{}}"#, r#"{"keys":[1]}"#, "secret-ish"] {
        let err = PublicKeys::from_json(json).map(|k| k.len());
        assert!(
            matches!(err, Err(KeysError::Json { .. })),
            "{json}: {err:?}"
        );
        if let Err(err) = err {
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }
    assert_eq!(
        PublicKeys::from_json(r#"{"keys":[]}"#).map(|k| k.len()),
        Ok(0)
    );
}

#[test]
fn debug_shows_no_key_material() {
    let pairs = KeyPair::all();
    let jwks: Vec<Value> = pairs.iter().map(|pair| pair.jwk(&pair.alg())).collect();
    let set = set_of(&jwks);
    assert_eq!(set.len(), 3);
    let debug = format!("{set:?}");
    for jwk in &jwks {
        for member in ["x", "y", "n"] {
            if let Some(value) = jwk[member].as_str() {
                assert!(!debug.contains(&value[..20]), "{member} in {debug}");
            }
        }
    }
}
