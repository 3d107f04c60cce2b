//! Sessions that end, signups that do not tell who has an account, the audit trail and its
//! clean-up, notices of password changes, and a database that goes away.

use crate::helpers::{MAIL_WAIT, PASSWORD, PASSWORD_CHANGED, TestApp, code};
use authd::pb;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::time::{Duration, Instant};
use tonic::Code;

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
    let mut app =
        TestApp::spawn_with(&["--session-max-lifetime", "3s", "--refresh-ttl", "1h"]).await;
    let login = app.signup_verified_login("lifetime@example.com").await;
    assert!(
        (2..=3).contains(&login.refresh_expires_in),
        "refresh_expires_in tells the absolute end: {}",
        login.refresh_expires_in
    );
    let mut refresh = login.refresh_token;
    let started = Instant::now();
    let mut last_expires = login.refresh_expires_in;
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        match app.refresh(&refresh).await {
            Ok(pair) => {
                assert!(
                    started.elapsed() < Duration::from_secs(4),
                    "refreshed past the lifetime"
                );
                assert!(
                    pair.refresh_expires_in <= last_expires,
                    "the end does not move"
                );
                last_expires = pair.refresh_expires_in;
                refresh = pair.refresh_token;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                assert!(
                    started.elapsed() >= Duration::from_secs(2),
                    "ended too early"
                );
                break;
            }
        }
    }
}

#[tokio::test]
async fn with_enumeration_protection_a_taken_email_signs_up_alike_and_the_owner_is_told() {
    let mut app = TestApp::spawn_with(&["--signup-enumeration-protection", "true"]).await;
    let first = app.signup("owner@example.com").await;
    let verify = app.mailed_token("owner@example.com", "verify-email").await;
    let again = app
        .client
        .signup(pb::SignupRequest {
            email: "Owner@Example.com".into(),
            password: "another long passphrase".into(),
            name: "Someone Else".into(),
        })
        .await
        .expect("answered like a new signup")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(again.email, "owner@example.com");
    assert!(!again.email_verified);
    assert_ne!(again.id, first.id, "no telling it was the same account");
    let notice = app
        .smtp
        .wait_for_mail_to("owner@example.com", MAIL_WAIT)
        .await;
    assert_eq!(
        notice.subject,
        "Someone tried to sign up with your email address"
    );
    assert!(
        !notice.body.contains("token="),
        "no link that does anything"
    );
    let db = app.db.connect().await;
    assert_eq!(scalar(&db, "SELECT COUNT(*) AS n FROM users").await, 1);
    // The owner's password still works; the second caller's never does.
    app.client
        .verify_email(pb::VerifyEmailRequest { token: verify })
        .await
        .unwrap();
    app.login("owner@example.com", PASSWORD)
        .await
        .expect("the owner's password");
    let other = app
        .login("owner@example.com", "another long passphrase")
        .await;
    assert_eq!(code(other), Code::Unauthenticated);
}

#[tokio::test]
async fn a_password_reset_tells_the_user_by_mail() {
    let mut app = TestApp::spawn().await;
    app.signup_verified_login("told@example.com").await;
    let token = app.reset_token("told@example.com").await;
    app.client
        .reset_password(pb::ResetPasswordRequest {
            token,
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap();
    let notice = app
        .smtp
        .wait_for_mail_to("told@example.com", MAIL_WAIT)
        .await;
    assert_eq!(notice.subject, PASSWORD_CHANGED);
    assert!(!notice.body.contains("a brand new passphrase"));
}

#[tokio::test]
async fn every_security_event_is_audited_without_secrets() {
    let mut app = TestApp::spawn().await;
    let email = "audited@example.com";
    let tokens = app.signup_verified_login(email).await;
    let wrong = app.login(email, "wrong password here").await;
    assert_eq!(code(wrong), Code::Unauthenticated);
    let refreshed = app.refresh(&tokens.refresh_token).await.unwrap();
    let reuse = app.refresh(&tokens.refresh_token).await;
    assert_eq!(code(reuse), Code::Unauthenticated);
    let again = app.login(email, PASSWORD).await.unwrap();
    app.client
        .logout(pb::LogoutRequest {
            refresh_token: again.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .unwrap();
    let token = app.reset_token(email).await;
    app.client
        .reset_password(pb::ResetPasswordRequest {
            token: token.clone(),
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap();

    // Rows are written in the background, in batches: wait for the last one.
    let db = app.db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while scalar(
        &db,
        "SELECT COUNT(*) AS n FROM audit_events WHERE kind = 'password_reset'",
    )
    .await
        == 0
    {
        assert!(Instant::now() < deadline, "no password_reset audit row");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT kind, ip, user_agent, detail, \
             CASE WHEN user_id IS NULL THEN 0 ELSE 1 END AS has_user \
             FROM audit_events ORDER BY id",
        ))
        .await
        .unwrap();
    let kinds: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "kind").unwrap())
        .collect();
    for wanted in [
        "signup",
        "email_verified",
        "login_succeeded",
        "login_failed",
        "refreshed",
        "refresh_reuse_detected",
        "logout",
        "password_reset_requested",
        "password_reset",
    ] {
        assert!(
            kinds.iter().any(|k| k == wanted),
            "no {wanted} in {kinds:?}"
        );
    }
    for row in &rows {
        let ip: String = row.try_get("", "ip").unwrap();
        let agent: String = row.try_get("", "user_agent").unwrap();
        let detail: String = row.try_get("", "detail").unwrap();
        let has_user: i32 = row.try_get("", "has_user").unwrap();
        assert_eq!(ip, "127.0.0.1");
        assert!(agent.contains("tonic"), "{agent}");
        assert_eq!(has_user, 1, "every event here is about a known user");
        for secret in [
            PASSWORD,
            "wrong password here",
            "a brand new passphrase",
            tokens.refresh_token.as_str(),
            refreshed.refresh_token.as_str(),
            token.as_str(),
        ] {
            assert!(!detail.contains(secret) && !agent.contains(secret));
        }
    }
}

#[tokio::test]
async fn the_cleanup_deletes_what_has_expired_and_keeps_the_rest() {
    let mut app =
        TestApp::spawn_with(&["--cleanup-interval", "1s", "--audit-retention", "30d"]).await;
    let live = app.signup_verified_login("kept@example.com").await;
    let db = app.db.connect().await;
    use authd::db::entity::{audit_event, session, user};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    let owner = user::Entity::find().one(&db).await.unwrap().unwrap();
    // An ended session of long ago, an audit row past retention, an expired throttle counter.
    let stale_session = uuid::Uuid::now_v7();
    session::ActiveModel {
        id: Set(stale_session),
        user_id: Set(owner.id),
        created_at: Set(old),
        last_used_at: Set(old),
        expires_at: Set(old),
        revoked_at: Set(None),
        user_agent: Set("old".into()),
        ip: Set(String::new()),
        client_id: Set(None),
        amr: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();
    let stale_audit = uuid::Uuid::now_v7();
    audit_event::ActiveModel {
        id: Set(stale_audit),
        at: Set(old),
        kind: Set("signup".into()),
        user_id: Set(None),
        session_id: Set(None),
        ip: Set(String::new()),
        user_agent: Set(String::new()),
        detail: Set(String::new()),
    }
    .insert(&db)
    .await
    .unwrap();
    db.execute_unprepared(
        "INSERT INTO throttles (id, scope, account, failures, last_at, expires_at) \
         VALUES ('stale', 'login.pair', 'x', 3, 0, 1)",
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = session::Entity::find_by_id(stale_session)
            .count(&db)
            .await
            .unwrap()
            + audit_event::Entity::find_by_id(stale_audit)
                .count(&db)
                .await
                .unwrap()
            + u64::try_from(
                scalar(
                    &db,
                    "SELECT COUNT(*) AS n FROM throttles WHERE id = 'stale'",
                )
                .await,
            )
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} expired rows still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live_sessions = session::Entity::find()
        .filter(session::Column::UserId.eq(owner.id))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(live_sessions, 1, "the live session is kept");
    // What is live stays: the session still refreshes, and recent audit rows are kept.
    app.refresh(&live.refresh_token)
        .await
        .expect("the live session is kept");
    assert!(scalar(&db, "SELECT COUNT(*) AS n FROM audit_events").await > 0);
}
