//! Forged tokens against [`Checks`]: each attack refused with the reason it deserves.

use super::*;
use crate::test_support::{self as t, AUDIENCE, ISSUER, KID};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

fn keys() -> PublicKeys {
    PublicKeys::from_json(&t::jwks(&[(KID, &t::key(1)), ("key-2", &t::key(2))])).unwrap()
}

fn checks() -> Checks {
    Checks::new(ISSUER, vec![AUDIENCE.into()])
}

fn check(token: &str) -> Result<AccessClaims, Refusal> {
    checks().check(token, &keys())
}

/// A token signed with the right key, with `header` and `claims` changed by the closures.
fn token_with(
    edit_header: impl FnOnce(&mut Value),
    edit_claims: impl FnOnce(&mut Value),
) -> String {
    let (mut header, mut claims) = (t::header(), t::claims(t::now()));
    edit_header(&mut header);
    edit_claims(&mut claims);
    t::sign(&header, &claims, &t::key(1))
}

fn valid() -> String {
    token_with(|_| {}, |_| {})
}

#[test]
fn a_token_authd_would_sign_passes_with_its_claims() {
    let claims = check(&valid()).unwrap();
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, Audience::One(AUDIENCE.into()));
    assert_eq!(claims.exp - claims.iat, 900);
    assert_eq!(claims.client_id.as_deref(), Some("web"));
    assert!(claims.email_verified);
    // The second published key verifies its own tokens too.
    let other = token_with(|h| h["kid"] = json!("key-2"), |_| {});
    assert_eq!(
        check(&other),
        Err(Refusal::Signature),
        "key-2 did not sign it"
    );
    let (header, claims) = (
        json!({"alg":"EdDSA","typ":"at+jwt","kid":"key-2"}),
        t::claims(t::now()),
    );
    assert!(check(&t::sign(&header, &claims, &t::key(2))).is_ok());
}

#[test]
fn typ_must_be_at_jwt() {
    for typ in [
        json!("at+jwt"),
        json!("AT+JWT"),
        json!("application/at+jwt"),
    ] {
        assert!(
            check(&token_with(|h| h["typ"] = typ.clone(), |_| {})).is_ok(),
            "{typ}"
        );
    }
    for typ in [json!("JWT"), json!(null), json!(1), json!("at+jwt2")] {
        let token = token_with(|h| h["typ"] = typ.clone(), |_| {});
        let expected = if typ.is_number() {
            Refusal::Malformed
        } else {
            Refusal::Type
        };
        assert_eq!(check(&token), Err(expected), "{typ}");
    }
    let untyped = token_with(|h| drop(h.as_object_mut().map(|h| h.remove("typ"))), |_| {});
    assert_eq!(check(&untyped), Err(Refusal::Type));
}

#[test]
fn alg_none_is_refused_signed_or_not() {
    let header = json!({"alg":"none","typ":"at+jwt","kid":KID});
    let input = t::signing_input(&header, &t::claims(t::now()));
    assert_eq!(check(&format!("{input}.")), Err(Refusal::Algorithm));
    assert_eq!(
        check(&t::sign(&header, &t::claims(t::now()), &t::key(1))),
        Err(Refusal::Algorithm)
    );
    for alg in ["None", "NONE", "nOnE", ""] {
        let token = token_with(|h| h["alg"] = json!(alg), |_| {});
        assert_eq!(check(&token), Err(Refusal::Algorithm), "{alg}");
    }
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    let public = t::key(1).verifying_key().to_bytes();
    let x = URL_SAFE_NO_PAD.encode(public);
    let jwk_text = t::jwks(&[(KID, &t::key(1))]);
    let header = json!({"alg":"HS256","typ":"at+jwt","kid":KID});
    let input = t::signing_input(&header, &t::claims(t::now()));
    for secret in [public.as_slice(), x.as_bytes(), jwk_text.as_bytes()] {
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        let mac = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        let token = format!("{input}.{mac}");
        assert_eq!(check(&token), Err(Refusal::Algorithm));
        // Even a verifier told to allow HS256 drops it: the key would be public.
        let lax = checks().with_algorithms(&[Algorithm::EdDSA, Algorithm::HS256]);
        assert_eq!(lax.check(&token, &keys()), Err(Refusal::Algorithm));
    }
}

#[test]
fn alg_must_be_the_keys_own() {
    // ES256 is allowed here, but the key under KID is an EdDSA key.
    let lax = checks().with_algorithms(&[Algorithm::EdDSA, Algorithm::ES256]);
    let token = token_with(|h| h["alg"] = json!("ES256"), |_| {});
    assert_eq!(lax.check(&token, &keys()), Err(Refusal::Algorithm));
    // An allow-list without EdDSA refuses EdDSA tokens.
    let es_only = checks().with_algorithms(&[Algorithm::ES256]);
    assert_eq!(es_only.check(&valid(), &keys()), Err(Refusal::Algorithm));
}

#[test]
fn issuer_and_audience_must_be_ours() {
    let token = token_with(|_| {}, |c| c["iss"] = json!("http://evil.test"));
    assert_eq!(check(&token), Err(Refusal::Issuer));
    let token = token_with(|_| {}, |c| c["iss"] = json!(format!("{ISSUER}/")));
    assert_eq!(check(&token), Err(Refusal::Issuer));
    let token = token_with(|_| {}, |c| c["aud"] = json!("other"));
    assert_eq!(check(&token), Err(Refusal::Audience));
    let token = token_with(|_| {}, |c| c["aud"] = json!([]));
    assert_eq!(check(&token), Err(Refusal::Audience));
    let token = token_with(|_| {}, |c| c["aud"] = json!(["other", AUDIENCE]));
    assert!(
        check(&token).is_ok(),
        "any one of the token's audiences may be ours"
    );
    let several = Checks::new(ISSUER, vec!["x".into(), AUDIENCE.into()]);
    assert!(several.check(&valid(), &keys()).is_ok());
    let none = Checks::new(ISSUER, Vec::new());
    assert_eq!(none.check(&valid(), &keys()), Err(Refusal::Audience));
}

#[test]
fn exp_and_nbf_hold_with_the_leeway() {
    let now = t::now();
    let expired = token_with(|_| {}, |c| c["exp"] = json!(now - 5));
    assert_eq!(check(&expired), Err(Refusal::Expired));
    let at_exp = token_with(|_| {}, |c| c["exp"] = json!(now));
    assert_eq!(
        checks().check_at(&at_exp, &keys(), now),
        Err(Refusal::Expired)
    );
    let lenient = checks().with_leeway(Duration::from_secs(10));
    assert!(lenient.check_at(&expired, &keys(), now).is_ok());
    assert_eq!(
        lenient.check_at(&expired, &keys(), now + 6),
        Err(Refusal::Expired)
    );

    let early = token_with(|_| {}, |c| c["nbf"] = json!(now + 5));
    assert_eq!(
        checks().check_at(&early, &keys(), now),
        Err(Refusal::NotYetValid)
    );
    assert!(lenient.check_at(&early, &keys(), now).is_ok());
    assert!(checks().check_at(&early, &keys(), now + 5).is_ok());
    let far = token_with(|_| {}, |c| c["exp"] = json!(i64::MAX));
    assert!(
        lenient.check(&far, &keys()).is_ok(),
        "no overflow at the edge"
    );
}

#[test]
fn the_key_comes_from_the_set_by_kid_only() {
    let unknown = token_with(|h| h["kid"] = json!("made-up"), |_| {});
    assert_eq!(check(&unknown), Err(Refusal::UnknownKey));
    let kidless = token_with(|h| drop(h.as_object_mut().map(|h| h.remove("kid"))), |_| {});
    assert_eq!(check(&kidless), Err(Refusal::UnknownKey));
    // A known kid, signed by a key that is not in the set.
    let foreign = t::sign(&t::header(), &t::claims(t::now()), &t::key(9));
    assert_eq!(check(&foreign), Err(Refusal::Signature));
    // Tampered claims under a good signature.
    let token = valid();
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(t::claims(t::now()).to_string().replace("true", "false"));
    parts[1] = &forged;
    assert_eq!(check(&parts.join(".")), Err(Refusal::Signature));
}

#[test]
fn embedded_keys_in_the_header_are_ignored() {
    let attacker = t::key(9);
    let attacker_jwk = t::jwk(KID, &attacker);
    let url = json!("http://evil.test/jwks.json");
    let cert = json!(["MIIBfake"]);
    for (name, value) in [
        ("jwk", attacker_jwk.clone()),
        ("jku", url.clone()),
        ("x5u", url),
        ("x5c", cert),
    ] {
        // Under a known kid the attacker's signature does not verify with our key…
        let mut header = t::header();
        header[name] = value.clone();
        let token = t::sign(&header, &t::claims(t::now()), &attacker);
        assert_eq!(check(&token), Err(Refusal::Signature), "{name}");
        // …and without one, or under the attacker's own kid, there is no key at all.
        header["kid"] = json!("attacker");
        let token = t::sign(&header, &t::claims(t::now()), &attacker);
        assert_eq!(check(&token), Err(Refusal::UnknownKey), "{name}");
    }
    // The same headers on a token our key signed change nothing.
    let token = token_with(|h| h["jku"] = json!("http://evil.test/jwks.json"), |_| {});
    assert!(check(&token).is_ok());
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let token = token_with(|_| {}, |c| c["pad"] = json!("x".repeat(MAX_TOKEN_LEN)));
    assert!(token.len() > MAX_TOKEN_LEN);
    assert_eq!(check(&token), Err(Refusal::Malformed));
    let just_fits = token_with(|_| {}, |c| c["pad"] = json!("x".repeat(5000)));
    assert!(just_fits.len() <= MAX_TOKEN_LEN && check(&just_fits).is_ok());
}

#[test]
fn garbage_is_malformed() {
    let good = valid();
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "a.b".into(),
        "not a token".into(),
        format!("{good}.extra"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64("[]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(r#"{"typ":"at+jwt"}"#), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"EdDSA","alg":"none","typ":"at+jwt"}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"key-1","crit":["exp"]}"#),
            parts[1],
            parts[2]
        ),
    ];
    for token in cases {
        assert_eq!(check(&token), Err(Refusal::Malformed), "{token}");
    }
    // A broken signature is no signature.
    for signature in [
        "",
        "AAAA",
        "!!!!",
        &"A".repeat(86),
        &format!("{}A", parts[2]),
    ] {
        let token = format!("{}.{}.{signature}", parts[0], parts[1]);
        assert_eq!(check(&token), Err(Refusal::Signature), "{signature}");
    }
}

#[test]
fn signed_claims_of_the_wrong_form_are_refused() {
    for (claim, value) in [
        ("exp", json!("soon")),
        ("exp", json!(1.5)),
        ("sub", json!(7)),
        ("aud", json!({"a": 1})),
        ("email_verified", json!("yes")),
        ("nbf", json!("now")),
    ] {
        let token = token_with(|_| {}, |c| c[claim] = value.clone());
        assert_eq!(check(&token), Err(Refusal::Claims), "{claim}: {value}");
    }
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "sid",
        "email",
        "email_verified",
    ] {
        let token = token_with(|_| {}, |c| drop(c.as_object_mut().map(|c| c.remove(claim))));
        assert_eq!(check(&token), Err(Refusal::Claims), "without {claim}");
    }
    let no_client = token_with(
        |_| {},
        |c| drop(c.as_object_mut().map(|c| c.remove("client_id"))),
    );
    assert_eq!(check(&no_client).map(|c| c.client_id), Ok(None));
    let not_json = t::sign(&t::header(), &json!("just a string"), &t::key(1));
    assert_eq!(check(&not_json), Err(Refusal::Claims));
}

proptest! {
    #[test]
    fn random_text_never_passes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert!(check(&String::from_utf8_lossy(&bytes)).is_err());
    }

    #[test]
    fn flipping_any_byte_breaks_the_token(index in 0usize..400, byte in any::<u8>()) {
        let token = valid();
        let mut bytes = token.clone().into_bytes();
        let index = index % bytes.len();
        prop_assume!(bytes[index] != byte);
        bytes[index] = byte;
        let forged = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(forged != token);
        prop_assert!(check(&forged).is_err());
    }
}

#[path = "checks_algorithms_tests.rs"]
mod algorithms;
