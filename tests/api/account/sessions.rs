//! ListSessions and RevokeSession: a user sees and ends their own sessions and nobody else's,
//! with what Login and Refresh recorded about each (user agent, address, times).

use super::{Account, channel, session_of};
use crate::bad_input::violations;
use crate::helpers::{PASSWORD, TestApp, code};
use authd::pb::{self, auth_service_client::AuthServiceClient};
use std::time::Duration;
use tonic::Code;

fn seconds(at: &Option<prost_types::Timestamp>) -> f64 {
    let at = at.as_ref().expect("a timestamp");
    at.seconds as f64 + f64::from(at.nanos) / 1e9
}

/// Moves a session's expiry into the past, as time would.
async fn expire_session(app: &TestApp, id: &str) {
    use authd::db::entity::session;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let expired = session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(past))
        .filter(session::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap()))
        .exec(&app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(expired.rows_affected, 1);
}

/// Logs in over a connection that names `user_agent`.
async fn login_with(app: &TestApp, email: &str, user_agent: &str) -> pb::TokenResponse {
    AuthServiceClient::new(channel(app, Some(user_agent)))
        .login(pb::LoginRequest {
            email: email.into(),
            password: PASSWORD.into(),
            client_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn sessions_are_listed_newest_first_with_what_login_and_refresh_recorded() {
    let mut app = TestApp::spawn().await;
    let email = "lister@example.com";
    app.signup_verified_login(email).await;
    let phone = login_with(&app, email, "phone-app/2.1").await;
    let laptop = login_with(&app, email, "laptop-browser/9").await;
    let account = Account::new(&app, &laptop.access_token);

    let listed = account.sessions().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids[..2],
        [
            session_of(&laptop.access_token),
            session_of(&phone.access_token)
        ]
    );
    let created: Vec<f64> = listed.iter().map(|s| seconds(&s.created_at)).collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    let current: Vec<bool> = listed.iter().map(|s| s.current).collect();
    assert_eq!(current, [true, false, false]);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for s in &listed {
        assert_eq!(s.ip, "127.0.0.1", "{s:?}");
        assert!(seconds(&s.last_used_at) >= seconds(&s.created_at));
        // Seven days by default, give or take the test's own run time.
        let lives = seconds(&s.expires_at) - now;
        assert!(
            (7.0 * 86_400.0 - 60.0..=7.0 * 86_400.0).contains(&lives),
            "{s:?}"
        );
    }
    assert!(
        listed[0].user_agent.contains("laptop-browser/9"),
        "{:?}",
        listed[0]
    );
    assert!(
        listed[1].user_agent.contains("phone-app/2.1"),
        "{:?}",
        listed[1]
    );

    // A refresh records the use and where it came from, and slides the expiry.
    tokio::time::sleep(Duration::from_millis(50)).await;
    AuthServiceClient::new(channel(&app, Some("phone-app/2.2")))
        .refresh(pb::RefreshRequest {
            refresh_token: phone.refresh_token.clone(),
        })
        .await
        .unwrap();
    let after = account.sessions().await.unwrap();
    let phone_before = &listed[1];
    let phone_after = after.iter().find(|s| s.id == phone_before.id).unwrap();
    assert!(seconds(&phone_after.last_used_at) > seconds(&phone_before.last_used_at));
    assert!(seconds(&phone_after.expires_at) > seconds(&phone_before.expires_at));
    assert_eq!(phone_after.created_at, phone_before.created_at);
    assert!(
        phone_after.user_agent.contains("phone-app/2.2"),
        "where it was last used: {phone_after:?}"
    );

    // Ended and expired sessions are not listed.
    account.revoke(&phone_before.id).await.unwrap();
    let oldest = listed[2].id.clone();
    expire_session(&app, &oldest).await;
    let left: Vec<String> = account
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [session_of(&laptop.access_token)]);
    assert_eq!(
        code(account.revoke(&oldest).await),
        Code::NotFound,
        "an expired session cannot be ended again"
    );
}

#[tokio::test]
async fn one_user_cannot_list_see_or_end_another_users_sessions() {
    let mut app = TestApp::spawn().await;
    let alice_tokens = app.signup_verified_login("alice@example.com").await;
    let bob_tokens = app.signup_verified_login("bob@example.com").await;
    let alice = Account::new(&app, &alice_tokens.access_token);
    let bob = Account::new(&app, &bob_tokens.access_token);
    let bob_session = session_of(&bob_tokens.access_token);

    let listed = alice.sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, session_of(&alice_tokens.access_token));
    assert!(listed.iter().all(|s| s.id != bob_session));

    // Another user's session, a made-up one and an ended one of one's own: one answer.
    let ended = app.login("alice@example.com", PASSWORD).await.unwrap();
    let ended_id = session_of(&ended.access_token);
    alice.revoke(&ended_id).await.unwrap();
    let mut answers = Vec::new();
    for id in [
        bob_session.clone(),
        uuid::Uuid::now_v7().to_string(),
        ended_id,
    ] {
        let status = alice.revoke(&id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id}: {status:?}");
        answers.push(status.message().to_owned());
    }
    answers.dedup();
    assert_eq!(
        answers.len(),
        1,
        "the answers tell the cases apart: {answers:?}"
    );

    // Bob's session is untouched: his token and refresh token work.
    assert_eq!(bob.profile().await.unwrap().email, "bob@example.com");
    app.refresh(&bob_tokens.refresh_token).await.unwrap();

    for (bad, what) in [
        ("", "empty"),
        ("   ", "blank"),
        ("not-a-uuid", "malformed"),
        ("'; DROP TABLE sessions; --", "SQL"),
    ] {
        assert_eq!(
            violations(alice.revoke(bad).await),
            ["session_id"],
            "{what}"
        );
    }
    let huge = "a".repeat(1024 * 1024);
    assert_eq!(violations(alice.revoke(&huge).await), ["session_id"]);
    alice.profile().await.expect("alice is still signed in");
}

#[tokio::test]
async fn ending_a_session_kills_its_tokens_and_the_current_one_may_be_ended_too() {
    let mut app = TestApp::spawn().await;
    let email = "ender@example.com";
    let here = app.signup_verified_login(email).await;
    let there = app.login(email, PASSWORD).await.unwrap();
    let account = Account::new(&app, &here.access_token);

    account
        .revoke(&session_of(&there.access_token))
        .await
        .unwrap();
    assert_eq!(
        code(Account::new(&app, &there.access_token).profile().await),
        Code::Unauthenticated
    );
    assert!(!app.introspect(&there.access_token).await.active);
    assert_eq!(
        code(app.refresh(&there.refresh_token).await),
        Code::Unauthenticated
    );
    account
        .profile()
        .await
        .expect("the caller's session lives on");

    // Signing oneself out this way is allowed; the token stops working at once.
    account
        .revoke(&session_of(&here.access_token))
        .await
        .unwrap();
    assert_eq!(code(account.profile().await), Code::Unauthenticated);
    assert!(!app.introspect(&here.access_token).await.active);
    assert_eq!(
        code(app.refresh(&here.refresh_token).await),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_ended_while_it_refreshes_stays_ended() {
    let mut app = TestApp::spawn().await;
    let email = "racer@example.com";
    let keeper = app.signup_verified_login(email).await;
    let account = Account::new(&app, &keeper.access_token);
    for round in 0..8 {
        let victim = app.login(email, PASSWORD).await.unwrap();
        let id = session_of(&victim.access_token);
        let mut client = app.client.clone();
        let refresh_token = victim.refresh_token.clone();
        let refreshing = tokio::spawn(async move {
            client
                .refresh(pb::RefreshRequest { refresh_token })
                .await
                .map(tonic::Response::into_inner)
        });
        let revoking = {
            let account = account.clone();
            tokio::spawn(async move { account.revoke(&id).await })
        };
        let (refreshed, revoked) = (refreshing.await.unwrap(), revoking.await.unwrap());
        // The session was live when both started: ending it succeeds whoever goes first.
        revoked.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        // Whatever the refresh got, nothing of the session works afterwards.
        let mut dead = vec![victim.access_token.clone()];
        if let Ok(pair) = refreshed {
            assert_eq!(
                code(app.refresh(&pair.refresh_token).await),
                Code::Unauthenticated,
                "round {round}: a refresh token of the ended session still works"
            );
            dead.push(pair.access_token);
        }
        for token in dead {
            assert!(!app.introspect(&token).await.active, "round {round}");
            assert_eq!(
                code(Account::new(&app, &token).profile().await),
                Code::Unauthenticated
            );
        }
        assert_eq!(
            code(app.refresh(&victim.refresh_token).await),
            Code::Unauthenticated
        );
    }
    let left = account.sessions().await.unwrap();
    assert_eq!(left.len(), 1, "only the keeper's session: {left:?}");
}
