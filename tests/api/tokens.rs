//! Access tokens as a verifier sees them: checked only through Introspect and the public JWKS of
//! the HTTP side port. Forged, tampered, foreign, expired and garbage tokens are inactive to
//! Introspect (never an error) and UNAUTHENTICATED to Refresh and Logout.

use crate::helpers::{PASSWORD, TestApp, code, verify_with_jwks};
use authd::pb;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tonic::Code;

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The header and claims of a JWT, as JSON, without checking anything.
pub(crate) fn parts(token: &str) -> (Value, Value) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "{token}");
    let decode = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(segments[0]), decode(segments[1]))
}

/// `header.claims.signature`, each part as given.
pub(crate) fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
    let header = b64(header.to_string());
    let claims = b64(claims.to_string());
    format!("{header}.{claims}.{signature}")
}

pub(crate) fn signature(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

pub(crate) fn header(alg: Algorithm, typ: Option<&str>, kid: Option<&str>) -> Header {
    let mut header = Header::new(alg);
    header.typ = typ.map(str::to_owned);
    header.kid = kid.map(str::to_owned);
    header
}

/// An Ed25519 key authd has never seen: the signing half and its public `x`.
pub(crate) fn foreign_key() -> (EncodingKey, String) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key.to_pkcs8_der().unwrap();
    let x = b64(key.verifying_key().to_bytes());
    (EncodingKey::from_ed_der(der.as_bytes()), x)
}

async fn jwks(app: &TestApp) -> Value {
    serde_json::from_str(&app.http_get("/.well-known/jwks.json").await.body).unwrap()
}

/// Introspect: inactive and nothing else. Refresh and Logout: UNAUTHENTICATED.
async fn assert_refused_everywhere(app: &mut TestApp, token: &str, what: &str) {
    let answer = app.introspect(token).await;
    assert_eq!(
        answer,
        pb::IntrospectResponse::default(),
        "Introspect of {what}"
    );
    assert_eq!(
        code(app.refresh(token).await),
        Code::Unauthenticated,
        "Refresh with {what}"
    );
    for all_sessions in [false, true] {
        let request = pb::LogoutRequest {
            refresh_token: token.into(),
            all_sessions,
        };
        let logout = app.client.logout(request).await;
        assert_eq!(
            code(logout),
            Code::Unauthenticated,
            "Logout({all_sessions}) with {what}"
        );
    }
}

#[tokio::test]
async fn access_tokens_carry_exactly_the_contract_claims_and_the_jwks_is_public_only() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("claims@example.com").await;
    let (header, claims) = parts(&tokens.access_token);

    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().expect("kid");
    let object = claims.as_object().unwrap();
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    let expected = "amr aud client_id email email_verified exp iat iss jti sid sub";
    assert_eq!(names.join(" "), expected, "nothing more, nothing secret");
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd"]),
        "a password login"
    );
    assert_eq!(claims["aud"], "authd");
    assert_eq!(claims["iss"], "http://authd.test");
    assert_eq!(claims["email"], "claims@example.com");
    assert_eq!(claims["sub"], tokens.user.as_ref().unwrap().id.as_str());
    assert_eq!(
        verify_with_jwks(&app, &tokens.access_token).await.unwrap(),
        claims
    );

    let http = app.http_get("/.well-known/jwks.json").await;
    assert_eq!(http.status, 200);
    assert_eq!(
        http.header("content-type"),
        Some("application/jwk-set+json"),
        "RFC 7517 §8.5"
    );
    let cache = http.header("cache-control").expect("Cache-Control");
    let max_age = cache
        .strip_prefix("public, max-age=")
        .map(str::parse::<u64>);
    assert!(matches!(max_age, Some(Ok(secs)) if secs > 0), "{cache}");
    let published: Value = serde_json::from_str(&http.body).unwrap();
    let keys = published["keys"].as_array().expect("a JWK Set");
    assert!(
        keys.iter().any(|k| k["kid"] == kid),
        "the signing kid is published"
    );
    for key in keys {
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), 32);
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} published"
            );
        }
    }
    let grpc = app
        .client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let grpc: Value = serde_json::from_str(&grpc.jwks_json).unwrap();
    assert_eq!(grpc, published, "GetJwks and the HTTP endpoint agree");
}

#[tokio::test]
async fn several_audiences_are_an_array_in_the_token_and_in_introspect() {
    let mut app = TestApp::spawn_with(&["--audience", "a,b"]).await;
    app.signup("aud@example.com").await;
    let token = app.mailed_token("aud@example.com", "verify-email").await;
    app.client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .unwrap();
    let tokens = app.login("aud@example.com", PASSWORD).await.unwrap();
    assert_eq!(parts(&tokens.access_token).1["aud"], json!(["a", "b"]));
    let introspected = app.introspect(&tokens.access_token).await;
    assert!(introspected.active);
    assert_eq!(introspected.aud, ["a", "b"]);
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("forge@example.com").await;
    let real = tokens.access_token.clone();
    let (real_header, claims) = parts(&real);
    let kid = real_header["kid"].as_str().unwrap().to_owned();
    let jwks_text = app.http_get("/.well-known/jwks.json").await.body;
    let x = jwks(&app).await["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut forged: Vec<(String, String)> = Vec::new();

    for alg in ["none", "None", "NONE"] {
        let none = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        forged.push((format!("alg {alg}"), assemble(&none, &claims, "")));
        forged.push((
            format!("alg {alg}, real signature"),
            assemble(&none, &claims, signature(&real)),
        ));
    }
    let hs256 = header(Algorithm::HS256, Some("at+jwt"), Some(&kid));
    let secrets = [
        URL_SAFE_NO_PAD.decode(&x).unwrap(),
        x.clone().into_bytes(),
        jwks_text.into_bytes(),
    ];
    for secret in secrets {
        let token =
            jsonwebtoken::encode(&hs256, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        // Well-formed: it does verify as HS256 with that secret.
        let mut hmac = Validation::new(Algorithm::HS256);
        hmac.set_audience(&["authd"]);
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(&secret), &hmac).unwrap();
        forged.push(("HS256 keyed with public key material".into(), token));
    }
    let other_user = uuid::Uuid::now_v7().to_string();
    for (claim, value) in [
        ("email", json!("mallory@example.com")),
        ("sub", json!(other_user)),
        ("email_verified", json!(false)),
        ("exp", json!(claims["exp"].as_i64().unwrap() + 3600)),
        ("aud", json!("other")),
    ] {
        let mut changed = claims.clone();
        changed[claim] = value;
        forged.push((
            format!("changed {claim}"),
            assemble(&real_header, &changed, signature(&real)),
        ));
    }
    let (foreign, foreign_x) = foreign_key();
    for (typ, kid) in [
        (Some("at+jwt"), Some(kid.as_str())),
        (Some("JWT"), Some(kid.as_str())),
        (Some("at+jwt"), None),
    ] {
        let token =
            jsonwebtoken::encode(&header(Algorithm::EdDSA, typ, kid), &claims, &foreign).unwrap();
        // Well-formed: it verifies with the foreign public key.
        let foreign_public = DecodingKey::from_ed_components(&foreign_x).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["authd"]);
        jsonwebtoken::decode::<Value>(&token, &foreign_public, &validation).unwrap();
        forged.push((format!("another key, typ {typ:?}, kid {kid:?}"), token));
    }
    let mut unknown_kid = real_header.clone();
    unknown_kid["kid"] = json!("no-such-key");
    forged.push((
        "unknown kid".into(),
        assemble(&unknown_kid, &claims, signature(&real)),
    ));

    assert!(
        app.introspect(&real).await.active,
        "control: the real token is active"
    );
    for (what, token) in &forged {
        assert!(
            verify_with_jwks(&app, token).await.is_err(),
            "JWKS accepts {what}"
        );
        assert_refused_everywhere(&mut app, token, what).await;
    }
    assert!(
        app.introspect(&real).await.active,
        "forgeries did not end the session"
    );
    app.refresh(&tokens.refresh_token)
        .await
        .expect("nor spent the refresh token");
}

#[tokio::test]
async fn garbage_and_tokens_of_the_wrong_kind_are_refused() {
    let mut app = TestApp::spawn().await;
    let email = "garbage@example.com";
    app.signup(email).await;
    let verify_token = app.mailed_token(email, "verify-email").await;
    let verify = pb::VerifyEmailRequest {
        token: verify_token.clone(),
    };
    app.client.verify_email(verify).await.unwrap();
    let tokens = app.login(email, PASSWORD).await.unwrap();

    let mut random = [0u8; 96];
    getrandom::fill(&mut random).unwrap();
    let garbage = [
        String::new(),
        "abc".into(),
        "a.b.c".into(),
        "..".into(),
        "a".repeat(10 * 1024),
        "a".repeat(43),
        STANDARD.encode(random),
        b64(random),
        b64(&random[..32]),
        format!(
            "{}.{}.{}",
            b64(&random[..32]),
            b64(&random[32..64]),
            b64(&random[64..])
        ),
        "ключ🔑".into(),
    ];
    for token in &garbage {
        let shown: String = token.chars().take(40).collect();
        assert_refused_everywhere(&mut app, token, &format!("garbage {shown:?}")).await;
    }
    // The spent verification token is no refresh token either.
    assert_refused_everywhere(&mut app, &verify_token, "a verification token").await;
    // Each kind of token works only where it belongs.
    let as_access = app.introspect(&tokens.refresh_token).await;
    assert_eq!(
        as_access,
        pb::IntrospectResponse::default(),
        "a refresh token is no access token"
    );
    let refreshed = app.refresh(&tokens.access_token).await;
    assert_eq!(
        code(refreshed),
        Code::Unauthenticated,
        "an access token is no refresh token"
    );
    assert!(app.introspect(&tokens.access_token).await.active, "control");
    app.refresh(&tokens.refresh_token).await.expect("control");
}

#[tokio::test]
async fn tokens_signed_with_the_real_key_but_wrong_in_kind_or_claims_are_inactive() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("stolen@example.com").await;
    let other = app.signup_verified_login("other@example.com").await;
    let (real_header, claims) = parts(&tokens.access_token);
    let kid = real_header["kid"].as_str().unwrap();
    // Only this test reaches into the database: for the private key, to sign what authd would
    // not. It shows that Introspect checks more than the signature.
    let key = EncodingKey::from_ed_der(&app.stored_private_key(kid).await);
    let sign = |typ: Option<&str>, claims: &Value| {
        jsonwebtoken::encode(&header(Algorithm::EdDSA, typ, Some(kid)), claims, &key).unwrap()
    };

    let resigned = sign(Some("at+jwt"), &claims);
    assert!(
        app.introspect(&resigned).await.active,
        "control: the key is the real one"
    );

    let mut wrong = vec![
        ("typ JWT".to_owned(), sign(Some("JWT"), &claims)),
        ("no typ".to_owned(), sign(None, &claims)),
    ];
    let now = chrono::Utc::now().timestamp();
    let other_sid = parts(&other.access_token).1["sid"].clone();
    let changes = [
        ("iss", json!("http://evil.test")),
        ("aud", json!("someone-else")),
        ("exp", json!(now - 10)),
        ("sid", json!(uuid::Uuid::now_v7().to_string())),
        ("sid", other_sid),
    ];
    for (claim, value) in changes {
        let mut changed = claims.clone();
        changed[claim] = value.clone();
        wrong.push((format!("{claim} = {value}"), sign(Some("at+jwt"), &changed)));
    }
    for missing in ["jti", "sid", "exp", "sub", "aud", "iss"] {
        let mut changed = claims.clone();
        changed.as_object_mut().unwrap().remove(missing);
        wrong.push((format!("no {missing}"), sign(Some("at+jwt"), &changed)));
    }
    for (what, token) in &wrong {
        let answer = app.introspect(token).await;
        assert_eq!(
            answer,
            pb::IntrospectResponse::default(),
            "Introspect of {what}"
        );
    }
}

#[tokio::test]
async fn expired_access_tokens_are_inactive_and_fail_verification() {
    let mut app = TestApp::spawn_with(&["--access-ttl", "1s"]).await;
    let tokens = app.signup_verified_login("expiry@example.com").await;
    assert_eq!(tokens.expires_in, 1);
    let (_, claims) = parts(&tokens.access_token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let answer = app.introspect(&tokens.access_token).await;
    assert_eq!(answer, pb::IntrospectResponse::default());
    let err = crate::helpers::verify_with_jwks(&app, &tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
    // The session lives on: the refresh token still gets a new access token.
    let fresh = app
        .refresh(&tokens.refresh_token)
        .await
        .expect("refresh after expiry");
    assert_ne!(fresh.access_token, tokens.access_token);
}
