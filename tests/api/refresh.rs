//! Refresh tokens: rotation, concurrent use, reuse detection and its grace window, expiry, storage
//! as a hash only, and the bcrypt-to-argon2id password upgrade at login.

use crate::helpers::{PASSWORD, TestApp, code};
use authd::db::entity::refresh_token;
use authd::pb::{self, TokenResponse};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::task::JoinSet;
use tonic::Code;

/// How many callers race with one refresh token.
const RACERS: usize = 8;

/// Sends `RACERS` Refresh calls with the same token at once, each on its own clone of the client,
/// and returns every answer.
async fn race(app: &TestApp, refresh_token: &str) -> Vec<Result<TokenResponse, tonic::Status>> {
    let mut calls = JoinSet::new();
    for _ in 0..RACERS {
        let mut client = app.client.clone();
        let request = pb::RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        calls.spawn(async move {
            client
                .refresh(request)
                .await
                .map(tonic::Response::into_inner)
        });
    }
    calls.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_refreshes_with_one_token_exactly_one_wins_and_the_session_ends() {
    let mut app = TestApp::spawn().await;
    let first = app.signup_verified_login("race@example.com").await;
    for round in 0..3 {
        let login = if round == 0 {
            first.clone()
        } else {
            app.login("race@example.com", PASSWORD).await.unwrap()
        };
        let results = race(&app, &login.refresh_token).await;
        let codes: Vec<Code> = results
            .iter()
            .map(|r| r.as_ref().map_or_else(tonic::Status::code, |_| Code::Ok))
            .collect();
        let winners: Vec<&TokenResponse> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one wins: {codes:?}"
        );
        assert_eq!(
            codes
                .iter()
                .filter(|c| **c == Code::Unauthenticated)
                .count(),
            RACERS - 1,
            "round {round}: the others are UNAUTHENTICATED: {codes:?}"
        );

        // The losers presented a spent token: strict policy ends the session, winner included.
        let winner = winners[0];
        assert_eq!(
            code(app.refresh(&winner.refresh_token).await),
            Code::Unauthenticated,
            "round {round}: the winner's new refresh token dies with the session"
        );
        for access in [&login.access_token, &winner.access_token] {
            assert!(
                !app.introspect(access).await.active,
                "round {round}: access tokens of the ended session are inactive"
            );
        }
    }
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_ends_the_session() {
    let mut app = TestApp::spawn().await;
    let a = app.signup_verified_login("reuse@example.com").await;
    let b = app.refresh(&a.refresh_token).await.unwrap();
    assert!(app.introspect(&b.access_token).await.active);

    assert_eq!(
        code(app.refresh(&a.refresh_token).await),
        Code::Unauthenticated,
        "a spent token is refused"
    );
    assert_eq!(
        code(app.refresh(&b.refresh_token).await),
        Code::Unauthenticated,
        "the reuse ended the session, so the current token is dead too"
    );
    assert!(!app.introspect(&b.access_token).await.active);
    assert!(!app.introspect(&a.access_token).await.active);

    // Other sessions of the same user are not touched.
    let other = app.login("reuse@example.com", PASSWORD).await.unwrap();
    app.refresh(&other.refresh_token)
        .await
        .expect("a new session works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn within_the_reuse_grace_a_spent_token_may_be_exchanged_again() {
    let mut app = TestApp::spawn_with(&["--refresh-reuse-grace", "30s"]).await;
    let a = app.signup_verified_login("grace@example.com").await;
    let b = app.refresh(&a.refresh_token).await.unwrap();

    let again = app
        .refresh(&a.refresh_token)
        .await
        .expect("a spent token within the grace window gets a new pair");
    assert_ne!(again.refresh_token, b.refresh_token);
    assert_ne!(again.refresh_token, a.refresh_token);
    assert!(app.introspect(&again.access_token).await.active);
    assert!(
        app.introspect(&b.access_token).await.active,
        "no theft was assumed"
    );
    let c = app
        .refresh(&b.refresh_token)
        .await
        .expect("B still works after A was presented again within the grace");
    app.refresh(&again.refresh_token)
        .await
        .expect("the pair from the grace exchange works too");

    // With grace, "exactly one wins" is relaxed by design: every racer within the window
    // gets a pair (the winner rotates, the others count as a client retrying a lost response).
    let results = race(&app, &c.refresh_token).await;
    let failures: Vec<Code> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(tonic::Status::code))
        .collect();
    assert!(failures.is_empty(), "all racers succeed: {failures:?}");
    for result in results {
        let pair = result.unwrap();
        assert!(app.introspect(&pair.access_token).await.active);
    }
}

#[tokio::test]
async fn refresh_tokens_expire_after_the_ttl_which_each_refresh_extends() {
    let mut app = TestApp::spawn_with(&["--refresh-ttl", "2s"]).await;
    let login = app.signup_verified_login("ttl@example.com").await;
    assert_eq!(login.refresh_expires_in, 2);

    // Sliding: refreshed at ~1.2 s and ~2.4 s, the session outlives the 2 s of its login.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let first = app.refresh(&login.refresh_token).await.unwrap();
    assert_eq!(
        first.refresh_expires_in, 2,
        "each refresh grants the full TTL"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = app
        .refresh(&first.refresh_token)
        .await
        .expect("the session slid forward with the last refresh");
    assert_eq!(second.refresh_expires_in, 2);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        code(app.refresh(&second.refresh_token).await),
        Code::Unauthenticated,
        "expired refresh token"
    );
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_their_sha256() {
    let mut app = TestApp::spawn().await;
    let login = app.signup_verified_login("hash@example.com").await;
    let rotated = app.refresh(&login.refresh_token).await.unwrap();

    let db = app.db.connect().await;
    let rows = refresh_token::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 2, "one row per issued refresh token");
    let dump = format!("{rows:?}");
    for token in [&login.refresh_token, &rotated.refresh_token] {
        assert!(!dump.contains(token.as_str()), "token text in the DB");
        assert!(rows.iter().all(|r| r.token_hash != token.as_bytes()));
        let digest = Sha256::digest(token.as_bytes()).to_vec();
        let row = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(digest))
            .one(&db)
            .await
            .unwrap();
        assert!(row.is_some(), "the row is found by the token's SHA-256");
    }
    let spent = rows.iter().filter(|r| r.spent_at.is_some()).count();
    assert_eq!(spent, 1, "the first token is spent");
}

/// A user as an import from a Node.js app would create it: bcryptjs writes `$2a$` hashes.
async fn import_bcrypt_user(app: &TestApp, email: &str, password: &str) -> uuid::Uuid {
    let hash = bcrypt::hash_with_salt(password, 10, *b"sixteen byte slt")
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    assert!(hash.starts_with("$2a$10$"));
    crate::helpers::insert_user_with_hash(app, email, hash).await
}

#[tokio::test]
async fn imported_bcrypt_hashes_log_in_and_are_upgraded_to_argon2id() {
    let mut app = TestApp::spawn().await;
    let id = import_bcrypt_user(&app, "node@example.com", "node js password").await;

    let tokens = app
        .login("Node@Example.com", "node js password")
        .await
        .expect("a bcrypt hash from Node.js verifies");
    assert_eq!(tokens.user.unwrap().id, id.to_string());
    let upgraded = crate::helpers::stored_hash(&app, "node@example.com").await;
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");

    app.login("node@example.com", "node js password")
        .await
        .expect("the upgraded hash verifies");
    assert_eq!(
        crate::helpers::stored_hash(&app, "node@example.com").await,
        upgraded,
        "no rehash once current"
    );
    assert_eq!(
        code(app.login("node@example.com", "not the password").await),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn with_bcrypt_configured_new_hashes_are_bcrypt() {
    let mut app = TestApp::spawn_with(&["--password-hash", "bcrypt"]).await;
    app.signup_verified_login("bcrypt@example.com").await;
    let hash = crate::helpers::stored_hash(&app, "bcrypt@example.com").await;
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    assert_eq!(
        code(app.login("bcrypt@example.com", "not the password").await),
        Code::Unauthenticated
    );
    // bcrypt reads 72 bytes: a longer new password would be cut silently, so it is refused.
    let long = authd::pb::SignupRequest {
        email: "long@example.com".into(),
        password: "x".repeat(73),
        name: "Test User".into(),
    };
    assert_eq!(code(app.client.signup(long).await), Code::InvalidArgument);
}
