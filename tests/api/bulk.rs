//! Users and sessions written in bulk through the store (the benchmark's seeding, and moving
//! users in from another app): they log in, refresh and are introspected like any other, and a
//! batch with one bad row writes nothing at all.

use crate::helpers::{TestApp, code, settings};
use authd::commands::import::queries::BulkUser;
use authd::crypto::password::PasswordHasher;
use authd::crypto::token::IssuedToken;
use authd::db::{Store, StoreError, StoreOptions};
use authd::domain::{DisplayName, Email, Password, SessionId, UserId};
use authd::sessions::queries::NewSession;
use std::time::Duration;

const PASSWORD: &str = "bulk users share this password";

fn email(i: usize) -> String {
    format!("bulk{i}@example.com")
}

async fn store(app: &TestApp) -> Store {
    Store::connect(&StoreOptions {
        url: app.db.url.clone().into(),
        max_connections: 2,
        timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect to the test database")
}

async fn hash(app: &TestApp) -> String {
    let params = settings(&app.db.url, "smtp://127.0.0.1:1", &[])
        .password
        .hash_params();
    PasswordHasher::new(&params)
        .unwrap()
        .hash(&Password::parse_attempt("password", PASSWORD).unwrap())
        .await
        .unwrap()
}

fn user(i: usize, password_hash: &str) -> BulkUser {
    BulkUser {
        id: UserId::new(),
        email: Email::parse("email", &email(i)).unwrap(),
        name: DisplayName::parse("name", &format!("Bulk {i}")).unwrap(),
        password_hash: password_hash.to_owned(),
        email_verified: true,
        created_at: chrono::Utc::now(),
        ext_id: None,
    }
}

fn session(user_id: UserId) -> (NewSession, IssuedToken) {
    let now = chrono::Utc::now();
    let session = NewSession {
        id: SessionId::new(),
        user_id,
        now,
        expires_at: now + chrono::Duration::days(7),
        user_agent: "bulk".into(),
        ip: "127.0.0.1".into(),
        client_id: "authd".into(),
        amr: Default::default(),
    };
    (session, IssuedToken::generate().unwrap())
}

async fn users_in_database(app: &TestApp) -> u64 {
    use authd::db::entity::user;
    use sea_orm::{EntityTrait, PaginatorTrait};
    user::Entity::find()
        .count(&app.db.connect().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn bulk_users_and_sessions_log_in_refresh_and_are_introspected_like_any_other() {
    let mut app = TestApp::spawn().await;
    let store = store(&app).await;
    let hash = hash(&app).await;
    // More than one statement's worth of rows (1,000), so the chunks meet in one transaction.
    let users: Vec<BulkUser> = (0..2500).map(|i| user(i, &hash)).collect();
    store.insert_users(&users).await.unwrap();
    let (rows, secrets): (Vec<_>, Vec<_>) = users
        .iter()
        .map(|u| {
            let (session, token) = session(u.id);
            ((session, token.digest), token.secret)
        })
        .unzip();
    store.insert_sessions(&rows).await.unwrap();
    assert_eq!(users_in_database(&app).await, 2500);

    // The last user of the last chunk logs in with the password its hash was made from.
    let tokens = app.login(&email(2499), PASSWORD).await.unwrap();
    let about = app.introspect(&tokens.access_token).await;
    assert!(about.active);
    assert_eq!(about.sub, users[2499].id.0.to_string());
    assert_eq!(
        code(
            app.login(&email(2499), "not the bulk password at all")
                .await
        ),
        tonic::Code::Unauthenticated
    );

    // A seeded session's refresh token rotates, and its access token names the session's user.
    let refreshed = app.refresh(&secrets[1234]).await.unwrap();
    let about = app.introspect(&refreshed.access_token).await;
    assert!(about.active);
    assert_eq!(about.sub, users[1234].id.0.to_string());
    assert_eq!(about.sid, rows[1234].0.id.0.to_string());
    // The spent token is refused (and, as reuse, ends the session).
    assert_eq!(
        code(app.refresh(&secrets[1234]).await),
        tonic::Code::Unauthenticated
    );
    store.close().await;
}

#[tokio::test]
async fn a_bulk_batch_with_one_taken_or_repeated_email_writes_nothing() {
    let mut app = TestApp::spawn().await;
    let store = store(&app).await;
    let hash = hash(&app).await;
    store
        .insert_users(&(0..10).map(|i| user(i, &hash)).collect::<Vec<_>>())
        .await
        .unwrap();

    // 1,500 new users and, in the second statement, one whose email is taken.
    let mut taken: Vec<BulkUser> = (100..1600).map(|i| user(i, &hash)).collect();
    taken.insert(1200, user(5, &hash));
    let err = store.insert_users(&taken).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // The same email twice in one batch.
    let repeated = vec![user(2000, &hash), user(2001, &hash), user(2000, &hash)];
    let err = store.insert_users(&repeated).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(users_in_database(&app).await, 10);
    for i in [100, 1299, 1599, 2000, 2001] {
        assert_eq!(
            code(app.login(&email(i), PASSWORD).await),
            tonic::Code::Unauthenticated,
            "user {i} of a refused batch exists"
        );
    }
    // The store still writes after the refused batches.
    store.insert_users(&[user(2000, &hash)]).await.unwrap();
    assert!(app.login(&email(2000), PASSWORD).await.is_ok());
    store.close().await;
}
