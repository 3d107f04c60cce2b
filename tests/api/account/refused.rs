//! AccountService without a good access token of a live session: no header, a header of another
//! scheme, garbage, forged and tampered tokens, an expired token, and the token of a session that
//! has ended are all UNAUTHENTICATED on every call, and none of them disturbs the real session.

use super::Account;
use crate::helpers::{PASSWORD, TestApp, admin_url, code};
use crate::tokens::{assemble, foreign_key, header, parts, signature};
use authd::pb;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use std::time::Duration;
use tonic::Code;

/// Asserts that every AccountService call with `account` is UNAUTHENTICATED, with a message
/// that does not repeat `secret`.
async fn assert_refused(account: &Account, what: &str, secret: &str) {
    for (call, answer) in account.every_call().await {
        assert_eq!(answer, Code::Unauthenticated, "{call} with {what}");
    }
    let status = account.profile().await.unwrap_err();
    if !secret.is_empty() {
        assert!(
            !status.message().contains(secret),
            "the refusal repeats the token: {status:?}"
        );
    }
}

#[tokio::test]
async fn no_token_other_schemes_garbage_and_forgeries_are_unauthenticated() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("victim@example.com").await;
    let other = app.signup_verified_login("other@example.com").await;
    let real = tokens.access_token.clone();
    let (real_header, claims) = parts(&real);
    let kid = real_header["kid"].as_str().unwrap().to_owned();

    let mut forged: Vec<(String, String)> = Vec::new();
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    forged.push(("alg none".into(), assemble(&none, &claims, "")));
    // Another user's id (or email) under the victim's signature: the signature no longer fits.
    let other_claims = parts(&other.access_token).1;
    for claim in ["sub", "sid", "email"] {
        let mut changed = claims.clone();
        changed[claim] = other_claims[claim].clone();
        forged.push((
            format!("{claim} of another user"),
            assemble(&real_header, &changed, signature(&real)),
        ));
    }
    let (foreign, _) = foreign_key();
    let resigned = jsonwebtoken::encode(
        &header(Algorithm::EdDSA, Some("at+jwt"), Some(&kid)),
        &claims,
        &foreign,
    )
    .unwrap();
    forged.push(("signed by another key under the real kid".into(), resigned));
    let x = serde_json::from_str::<serde_json::Value>(
        &app.http_get("/.well-known/jwks.json").await.body,
    )
    .unwrap()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let hs256 = jsonwebtoken::encode(
        &header(Algorithm::HS256, Some("at+jwt"), Some(&kid)),
        &claims,
        &EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    forged.push(("HS256 keyed with the public key".into(), hs256));
    let mut flipped = real.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    forged.push(("a changed signature".into(), flipped));
    // A made-up token past the verifier's size bound, still within HTTP/2's header limits.
    forged.push((
        "a 9 KiB token".into(),
        format!("{}.e30.x", "a".repeat(9 * 1024)),
    ));

    let mut headers: Vec<(String, Option<String>)> = vec![
        ("no header".into(), None),
        ("an empty header".into(), Some(String::new())),
        ("a bare Bearer".into(), Some("Bearer".into())),
        ("Bearer and a space".into(), Some("Bearer ".into())),
        (
            "Basic credentials".into(),
            Some("Basic dXNlcjpwYXNz".into()),
        ),
        ("the token without a scheme".into(), Some(real.clone())),
        ("Bearer garbage".into(), Some("Bearer garbage".into())),
        (
            "a refresh token".into(),
            Some(format!("Bearer {}", tokens.refresh_token)),
        ),
    ];
    headers.extend(
        forged
            .into_iter()
            .map(|(what, token)| (what, Some(format!("Bearer {token}")))),
    );
    for (what, value) in &headers {
        let account = Account::with_header(&app, value.as_deref());
        let secret = value.as_deref().and_then(|v| v.strip_prefix("Bearer "));
        assert_refused(&account, what, secret.unwrap_or_default()).await;
    }

    // Nothing of that ended or changed anything.
    let victim = Account::new(&app, &real);
    let profile = victim.profile().await.expect("the real token still works");
    assert_eq!(profile.name, "Test User");
    assert_eq!(victim.sessions().await.unwrap().len(), 1);
    app.login("victim@example.com", PASSWORD)
        .await
        .expect("the password is unchanged");
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated_while_its_session_lives_on() {
    // `iat` and `exp` are whole seconds, so a token lives between TTL - 1 and TTL seconds: 4 s
    // leaves at least 3 s for each fresh token's call below, even on a loaded machine.
    let mut app = TestApp::spawn_with(&["--access-ttl", "4s"]).await;
    let tokens = app.signup_verified_login("expiry@example.com").await;
    let account = Account::new(&app, &tokens.access_token);
    account.profile().await.expect("fresh, it works");
    tokio::time::sleep(Duration::from_millis(5100)).await;
    assert_refused(&account, "an expired token", &tokens.access_token).await;

    let fresh = app.refresh(&tokens.refresh_token).await.unwrap();
    Account::new(&app, &fresh.access_token)
        .profile()
        .await
        .expect("the session's next access token works");
}

#[tokio::test]
async fn the_token_of_an_ended_session_is_refused_at_once() {
    let mut app = TestApp::spawn().await;
    let email = "ended@example.com";
    let first = app.signup_verified_login(email).await;
    let second = app.login(email, PASSWORD).await.unwrap();
    let third = app.login(email, PASSWORD).await.unwrap();
    let (a, b, c) = (
        Account::new(&app, &first.access_token),
        Account::new(&app, &second.access_token),
        Account::new(&app, &third.access_token),
    );
    a.profile().await.unwrap();

    // Logout of one session: its access token is refused on the next call, long before it expires.
    app.client
        .logout(pb::LogoutRequest {
            refresh_token: first.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .unwrap();
    assert_refused(&a, "a logged-out session's token", &first.access_token).await;
    b.profile().await.expect("the other sessions live on");

    // A password reset ends every session.
    let reset = app.reset_token(email).await;
    app.client
        .reset_password(pb::ResetPasswordRequest {
            token: reset,
            new_password: "a reset passphrase for sure".into(),
        })
        .await
        .unwrap();
    assert_refused(&b, "a token from before a reset", &second.access_token).await;
    assert_refused(&c, "a token from before a reset", &third.access_token).await;
}

#[tokio::test]
async fn a_lost_database_is_unavailable_not_unauthenticated() {
    let mut app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        // As in server.rs: SQLite has no server to lose. PostgreSQL only.
        return;
    }
    let tokens = app.signup_verified_login("lost@example.com").await;
    let account = Account::new(&app, &tokens.access_token);
    account.profile().await.unwrap();
    let name = app.db.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = sea_orm::Database::connect(&admin_url()).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &admin,
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    )
    .await
    .unwrap();
    admin.close().await.ok();
    // The token may well be good: the caller is told to retry, not that it is refused.
    assert_eq!(code(account.profile().await), Code::Unavailable);
    assert_eq!(code(account.sessions().await), Code::Unavailable);
}
