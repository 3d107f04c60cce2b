//! `AccessTokens::verify` on hostile input never panics and never accepts what authd's key did
//! not sign. The input is tried three ways: as the whole token; as the claims and signature
//! behind a header that names the real key (so the fuzzer reaches the signature check without
//! having to guess a key id); and as an edit of a genuine token.
#![no_main]

use authd::crypto::jwt::{AccessTokens, Subject};
use authd_verifier::AccessClaims;
use authd::crypto::keys::{KeyPair, KeyRing, KeySet, ScheduledKey, SigningAlg};
use authd::domain::{AuthMethods, ClientId, SessionId, UserId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Fixture {
    tokens: AccessTokens,
    kid: String,
    genuine: String,
    genuine_claims: AccessClaims,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let pair = KeyPair::generate(SigningAlg::EdDSA).expect("a key");
    let kid = pair.kid().to_owned();
    let keys = KeySet::new(&[ScheduledKey {
        pair,
        activates_at_ms: 0,
    }])
    .expect("a key set");
    let tokens = AccessTokens::new(
        Arc::new(KeyRing::new(keys)),
        "http://authd.fuzz".into(),
        vec!["authd".into()],
        Duration::from_secs(24 * 3600),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let client_id = ClientId::parse("client_id", "fuzz").expect("a client id");
    let subject = Subject {
        user_id: UserId::new(),
        session_id: SessionId::new(),
        client_id: &client_id,
        email: "ada@example.com",
        email_verified: true,
        methods: AuthMethods::PasswordAndOtp,
        ext_id: Some("42"),
    };
    let genuine = tokens
        .issue(&subject, i64::try_from(now).expect("a sane clock"))
        .expect("a token");
    let genuine_claims = tokens.verify(&genuine).expect("our own token verifies");
    Fixture {
        tokens,
        kid,
        genuine,
        genuine_claims,
    }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;

    // 1. The bytes as they are.
    if let Ok(token) = std::str::from_utf8(data) {
        if token != f.genuine {
            assert!(f.tokens.verify(token).is_none(), "accepted {token:?}");
        }
    }

    // 2. A header naming the real key, then the input split at its first 0xff byte into the
    //    claims (JSON, with luck) and the signature, both base64url-encoded as a JWT has them.
    let (claims, signature) = match data.iter().position(|b| *b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#, f.kid);
    let forged = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert!(f.tokens.verify(&forged).is_none(), "accepted {forged:?}");

    // 3. The genuine token with bytes overwritten: pairs of (position, byte) from the input.
    let mut edited = f.genuine.clone().into_bytes();
    for pair in data.chunks_exact(2) {
        let at = usize::from(pair[0]) * edited.len() / 256;
        edited[at] = pair[1];
    }
    if let Ok(edited) = String::from_utf8(edited) {
        if let Some(claims) = f.tokens.verify(&edited) {
            // Only an edit that leaves the signed bytes as they were may pass (none should, as
            // base64url decoding is strict), and then it must say exactly what was signed.
            assert_eq!(
                claims, f.genuine_claims,
                "{edited:?} verified with other claims"
            );
        }
    }
});
