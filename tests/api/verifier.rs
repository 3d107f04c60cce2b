//! authd-verifier against a real authd: local mode (keys from the HTTP JWKS and from GetJwks)
//! and remote mode (Introspect). Forged tokens are signed with authd's own private key (read
//! from its database) where only one claim is to be wrong, and with keys authd never had
//! otherwise. The JWKS fetches are counted in verifier_jwks.rs.

use crate::helpers::TestApp;
use authd::pb;
use authd_verifier::{
    Checks, Claims, JwksSource, LocalSettings, LocalVerifier, Refusal, RemoteSettings,
    RemoteVerifier, Verify,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const ISSUER: &str = "http://authd.test";
pub const READY: Duration = Duration::from_secs(15);

pub fn checks() -> Checks {
    Checks::new(ISSUER, vec!["authd".into()])
}

/// A local verifier on authd's HTTP JWKS URL, with its first keys.
pub async fn local(app: &TestApp) -> LocalVerifier {
    let url = format!("http://{}/.well-known/jwks.json", app.http_addr);
    let verifier = LocalVerifier::start(LocalSettings::new(JwksSource::Http(url), checks()));
    assert!(verifier.ready(READY).await, "keys from authd");
    verifier
}

/// A token's header and claims.
pub fn parts(token: &str) -> (Value, Value) {
    let decode = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    let segments: Vec<&str> = token.split('.').collect();
    (decode(segments[0]), decode(segments[1]))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}", b64(header), b64(claims))
}

/// `header.claims` signed with an Ed25519 key, whatever the header says.
pub fn sign(header: &Value, claims: &Value, key: &ed25519_dalek::SigningKey) -> String {
    let input = signing_input(header, claims);
    let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes());
    format!("{input}.{signature}")
}

/// A key authd has never seen.
pub fn foreign_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// authd's own signing key, from its database: to sign what authd would not.
async fn authd_key(app: &TestApp, kid: &str) -> ed25519_dalek::SigningKey {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    ed25519_dalek::SigningKey::from_pkcs8_der(&app.stored_private_key(kid).await).unwrap()
}

#[tokio::test]
async fn a_valid_token_is_accepted_with_the_claims_authd_gave_it() {
    let mut app = TestApp::spawn().await;
    let user = app.signup("valid@example.com").await;
    let token = app.mailed_token("valid@example.com", "verify-email").await;
    app.client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .unwrap();
    let tokens = app
        .login("valid@example.com", crate::helpers::PASSWORD)
        .await
        .unwrap();
    let introspected = app.introspect(&tokens.access_token).await;
    let grpc = LocalVerifier::start(LocalSettings::new(
        JwksSource::Grpc(format!("http://{}", app.grpc_addr)),
        checks(),
    ));
    assert!(grpc.ready(READY).await, "keys from GetJwks");
    let remote = RemoteVerifier::new(RemoteSettings::new(format!("http://{}", app.grpc_addr)));
    let verifiers: [Arc<dyn Verify>; 3] = [
        Arc::new(local(&app).await),
        Arc::new(grpc),
        Arc::new(remote.unwrap()),
    ];
    for verifier in verifiers {
        let claims: Claims = verifier.verify(&tokens.access_token).await.unwrap();
        assert_eq!(claims.user_id.to_string(), user.id);
        assert_eq!(claims.session_id.to_string(), introspected.sid);
        assert_eq!(claims.email, "valid@example.com");
        assert!(claims.email_verified);
        assert_eq!(claims.expires_at - claims.issued_at, 900);
        assert_eq!(claims.expires_at, introspected.exp);
        assert_eq!(claims.token_id, introspected.jti);
        assert_eq!(claims.issuer, ISSUER);
        assert_eq!(claims.audience, ["authd"]);
        assert_eq!(
            claims.client_id.as_deref(),
            Some(introspected.client_id.as_str())
        );
    }
}

#[tokio::test]
async fn wrong_and_forged_tokens_are_refused_for_the_reason_they_deserve() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("forged@example.com").await;
    let verifier = local(&app).await;
    let (header, claims) = parts(&tokens.access_token);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let authd = authd_key(&app, &kid).await;
    let resigned = sign(&header, &claims, &authd);
    assert!(
        verifier.verify(&resigned).await.is_ok(),
        "control: authd's real key"
    );

    let with = |claim: &str, value: Value| {
        let mut changed = claims.clone();
        changed[claim] = value;
        sign(&header, &changed, &authd)
    };
    let now = chrono::Utc::now().timestamp();
    let foreign = foreign_key();
    let public = authd.verifying_key().to_bytes();
    let hs256 = |secret: &[u8]| {
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
        let input = signing_input(&header, &claims);
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        let mac =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256);
        format!("{input}.{}", mac.unwrap())
    };
    let x = URL_SAFE_NO_PAD.encode(foreign.verifying_key().to_bytes());
    let foreign_jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid});
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    let cases = [
        ("expired", with("exp", json!(now - 10)), Refusal::Expired),
        (
            "nbf ahead",
            with("nbf", json!(now + 600)),
            Refusal::NotYetValid,
        ),
        (
            "wrong aud",
            with("aud", json!("someone-else")),
            Refusal::Audience,
        ),
        (
            "wrong iss",
            with("iss", json!("http://evil.test")),
            Refusal::Issuer,
        ),
        (
            "typ JWT",
            sign(
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
                &claims,
                &authd,
            ),
            Refusal::Type,
        ),
        (
            "alg none",
            format!("{}.", signing_input(&none_header, &claims)),
            Refusal::Algorithm,
        ),
        (
            "HS256 with the public key",
            hs256(&public),
            Refusal::Algorithm,
        ),
        (
            "HS256 with x",
            hs256(URL_SAFE_NO_PAD.encode(public).as_bytes()),
            Refusal::Algorithm,
        ),
        (
            "a foreign key under authd's kid",
            sign(&header, &claims, &foreign),
            Refusal::Signature,
        ),
        (
            "an unknown kid",
            sign(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "made-up"}),
                &claims,
                &foreign,
            ),
            Refusal::UnknownKey,
        ),
        (
            "embedded jwk under authd's kid",
            sign(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": foreign_jwk}),
                &claims,
                &foreign,
            ),
            Refusal::Signature,
        ),
        (
            "embedded jwk, no kid",
            sign(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "jwk": foreign_jwk}),
                &claims,
                &foreign,
            ),
            Refusal::UnknownKey,
        ),
        (
            "jku to the attacker's set",
            sign(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "evil", "jku": "http://evil.test/jwks.json"}),
                &claims,
                &foreign,
            ),
            Refusal::UnknownKey,
        ),
        (
            "a session id that is no UUID",
            with("sid", json!("s-1")),
            Refusal::Claims,
        ),
    ];
    for (name, token, refusal) in cases {
        assert_eq!(verifier.verify(&token).await, Err(refusal), "{name}");
    }
    // Remote mode refuses every one of them too.
    let remote = RemoteVerifier::new(RemoteSettings::new(format!("http://{}", app.grpc_addr)));
    let remote = remote.unwrap();
    for token in [
        with("exp", json!(now - 10)),
        sign(&header, &claims, &foreign),
    ] {
        assert_eq!(remote.verify(&token).await, Err(Refusal::Inactive));
    }
}

/// An Introspect credential: the secret, and its `AUTHD_INTROSPECT_CLIENTS` entry.
pub(crate) fn credential(id: &str) -> (String, String) {
    use sha2::Digest;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).unwrap();
    let secret = URL_SAFE_NO_PAD.encode(random);
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    (secret, format!("{id}:{hex}"))
}

#[tokio::test]
async fn remote_mode_refuses_a_logged_out_sessions_token_at_once() {
    let (secret, entry) = credential("svc");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &entry]).await;
    let tokens = app.signup_verified_login("remote@example.com").await;
    let endpoint = format!("http://{}", app.grpc_addr);
    let remote = |client: Option<(&str, &str)>, ttl: u64| {
        let mut settings = RemoteSettings::new(endpoint.clone());
        settings.client = client.map(|(id, secret)| (id.to_owned(), secret.to_owned()));
        settings.cache_ttl = Duration::from_secs(ttl);
        RemoteVerifier::new(settings).unwrap()
    };
    let fresh = remote(Some(("svc", &secret)), 0);
    let cached = remote(Some(("svc", &secret)), 60);
    let local = local(&app).await;
    let token = tokens.access_token.as_str();
    for verifier in [&fresh, &cached] {
        assert!(verifier.verify(token).await.is_ok());
    }
    // Without the credential authd does not answer: the caller may retry, nothing passes.
    for client in [
        None,
        Some(("svc", "wrong")),
        Some(("other", secret.as_str())),
    ] {
        assert_eq!(
            remote(client, 0).verify(token).await,
            Err(Refusal::Unavailable)
        );
    }

    app.client
        .logout(pb::LogoutRequest {
            refresh_token: tokens.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .unwrap();
    assert_eq!(
        fresh.verify(token).await,
        Err(Refusal::Inactive),
        "seen at once"
    );
    // The trade-offs of the other modes, as documented: a cached answer and local checks last
    // until the cache entry or the token expires.
    assert!(cached.verify(token).await.is_ok(), "cached for the TTL");
    assert!(
        local.verify(token).await.is_ok(),
        "local mode sees no logout"
    );
}
