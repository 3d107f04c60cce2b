//! Races between use cases that change the same user at once. Each round is timing-dependent,
//! so several rounds run with staggered starts; every round must end consistently.

use crate::helpers::{PASSWORD, TestApp, code};
use authd::pb;
use std::time::Duration;
use tonic::Code;

const ROUNDS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_reset_and_login_at_once_end_consistently() {
    let mut app = TestApp::spawn().await;
    for round in 0..ROUNDS {
        let email = format!("race{round}@example.com");
        app.signup(&email).await;
        let verify_token = app.mailed_token(&email, "verify-email").await;
        let reset_token = app.reset_token(&email).await;

        // VerifyEmail and ResetPassword on one user at once: both succeed, neither deadlocks.
        let stagger = Duration::from_micros((round % 6) * 300);
        let (mut a, mut b) = (app.client.clone(), app.client.clone());
        let verify = tokio::spawn(async move {
            tokio::time::sleep(stagger).await;
            a.verify_email(pb::VerifyEmailRequest {
                token: verify_token,
            })
            .await
        });
        let new_password = "a brand new password";
        let reset_call = tokio::spawn(async move {
            b.reset_password(pb::ResetPasswordRequest {
                token: reset_token,
                new_password: new_password.into(),
            })
            .await
        });
        let verify = verify.await.unwrap();
        let reset_done = reset_call.await.unwrap();
        assert_eq!(code(reset_done), Code::Ok, "round {round}: reset");
        // The reset also spends verification links, so a verify that comes second is refused.
        assert!(
            matches!(code(verify), Code::Ok | Code::InvalidArgument),
            "round {round}: verify must not fail otherwise"
        );

        // A login with the current password racing another reset: if both succeed, the
        // session the login started must be ended by the reset, whichever came first.
        let second_reset = app.reset_token(&email).await;
        let (mut c, mut d) = (app.client.clone(), app.client.clone());
        let login_email = email.clone();
        let login = tokio::spawn(async move {
            c.login(pb::LoginRequest {
                email: login_email,
                password: new_password.into(),
                client_id: String::new(),
            })
            .await
        });
        let reset_again = tokio::spawn(async move {
            tokio::time::sleep(stagger).await;
            d.reset_password(pb::ResetPasswordRequest {
                token: second_reset,
                new_password: PASSWORD.into(),
            })
            .await
        });
        let login = login.await.unwrap();
        assert_eq!(
            code(reset_again.await.unwrap()),
            Code::Ok,
            "round {round}: second reset"
        );
        match login {
            Ok(tokens) => {
                let tokens = tokens.into_inner();
                assert!(
                    !app.introspect(&tokens.access_token).await.active,
                    "round {round}: a session of the old password outlived the reset"
                );
                assert_eq!(
                    code(app.refresh(&tokens.refresh_token).await),
                    Code::Unauthenticated
                );
            }
            Err(status) => assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "round {round}: {status:?}"
            ),
        }
    }
}

/// Token checks read their sessions together (one query for the reads asked meanwhile). A flood
/// of parallel Introspects over many sessions must still answer each token for its own session,
/// and a logout must count for every check asked after it returned, however busy the reads are.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_introspects_each_see_their_own_session_and_every_logout_before_them() {
    let mut app = TestApp::spawn().await;
    let mut sessions = Vec::new();
    for user in 0..4 {
        let email = format!("reader{user}@example.com");
        let first = app.signup_verified_login(&email).await;
        sessions.push(first);
        for _ in 0..3 {
            sessions.push(app.login(&email, PASSWORD).await.expect("login"));
        }
    }
    // Half the sessions end before the flood.
    for ended in sessions.iter().step_by(2) {
        app.logout(&ended.refresh_token, false).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = tokio::task::JoinSet::new();
    for caller in 0..24 {
        let mut client = app.client.clone();
        let tokens: Vec<(String, bool)> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (s.access_token.clone(), i % 2 == 1))
            .collect();
        let stop = stop.clone();
        flood.spawn(async move {
            let mut checked = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (token, live) = &tokens[(caller + checked) % tokens.len()];
                let answer = client
                    .introspect(pb::IntrospectRequest {
                        token: token.clone(),
                    })
                    .await
                    .expect("introspect")
                    .into_inner();
                checked += 1;
                // A live one may be logged out by the loop below while the flood runs; an ended
                // one must never come back.
                if !live {
                    assert!(!answer.active, "an ended session's token was active");
                }
            }
            checked
        });
    }
    // While the flood keeps the reads busy: each logout counts for the very next check.
    for live in sessions.iter().skip(1).step_by(2) {
        assert!(
            app.introspect(&live.access_token).await.active,
            "live before its logout"
        );
        app.logout(&live.refresh_token, false).await;
        assert!(
            !app.introspect(&live.access_token).await.active,
            "a check asked after the logout returned saw the session live"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    while let Some(done) = flood.join_next().await {
        total += done.expect("a flood caller failed");
    }
    assert!(total > 100, "the flood made only {total} checks");
}

/// Calls cancelled while their session read is queued or running (the client gives up at once)
/// must not strand the reads of others or wedge the batching: afterwards 30 parallel checks all
/// answer, and a logout still counts for the next one. The cancelled calls go over a connection
/// of their own: 30 resets at once make the server end that connection (h2's rapid-reset guard,
/// GOAWAY `too_many_resets`), as it should, and the checks come over a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn introspects_cancelled_half_way_strand_no_other_check() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("cancel@example.com").await;
    let url = format!("http://{}", app.grpc_addr);
    for round in 0..5u64 {
        let rude = pb::auth_service_client::AuthServiceClient::connect(url.clone())
            .await
            .unwrap();
        let mut abandoned = tokio::task::JoinSet::new();
        for caller in 0..30u64 {
            let mut client = rude.clone();
            let token = tokens.access_token.clone();
            abandoned.spawn(async move {
                // Gives up after 0–290 µs: before, during or after the server's read.
                let patience = Duration::from_micros((caller * 10 + round * 3) % 300);
                let _ = tokio::time::timeout(
                    patience,
                    client.introspect(pb::IntrospectRequest { token }),
                )
                .await;
            });
        }
        while abandoned.join_next().await.is_some() {}
        let polite = pb::auth_service_client::AuthServiceClient::connect(url.clone())
            .await
            .unwrap();
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..30 {
            let mut client = polite.clone();
            let token = tokens.access_token.clone();
            checks.spawn(async move {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    client.introspect(pb::IntrospectRequest { token }),
                )
                .await
            });
        }
        while let Some(done) = checks.join_next().await {
            let answer = done
                .unwrap()
                .expect("a check hung after cancelled ones")
                .expect("introspect");
            assert!(answer.into_inner().active, "round {round}");
        }
    }
    app.logout(&tokens.refresh_token, false).await;
    assert!(!app.introspect(&tokens.access_token).await.active);
}

/// Calls cut short at every moment, transactions included, must leave every pooled connection
/// as it found it: no connection left inside a transaction, no lock held, every connection
/// still writes. (sqlx 0.9.0 loses track of a transaction whose BEGIN is cancelled in flight;
/// the store begins each transaction in a task of its own so that cannot happen. That window
/// is too narrow for this flood to hit reliably: it checks the outcome, whatever the cause.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_cancelled_anywhere_leave_no_transaction_open() {
    // The parallel logins at the end are all one client's: let the throttle wave them through.
    let mut app = TestApp::spawn_with(&[
        "--throttle-client-account-failures",
        "1000",
        "--throttle-client-failures",
        "10000",
    ])
    .await;
    let mut tokens = app.signup_verified_login("cut@example.com").await;
    for round in 0..300u64 {
        // Rotations, each abandoned after 0 to 3 ms: before, during or after its transaction.
        let mut client = app.client.clone();
        let refresh_token = tokens.refresh_token.clone();
        let call = client.refresh(pb::RefreshRequest { refresh_token });
        let cut = Duration::from_micros((round * 137) % 3000);
        if let Ok(Ok(answer)) = tokio::time::timeout(cut, call).await {
            tokens = answer.into_inner();
        }
        if round % 25 == 24 {
            // A cancelled rotation may have spent the token: start again from a fresh login.
            tokens = app.login("cut@example.com", PASSWORD).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if app.db.is_postgres() {
        let conn = app.db.connect().await;
        use sea_orm::{ConnectionTrait, Statement};
        let stuck = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'idle in transaction' AND now() - xact_start > interval '400 ms'",
            ))
            .await
            .unwrap();
        assert!(
            stuck.is_empty(),
            "{} connections left inside a transaction",
            stuck.len()
        );
    }
    // Every pooled connection still writes: logins in parallel, more than the pool holds.
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let mut client = app.client.clone();
        logins.spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(15),
                client.login(pb::LoginRequest {
                    email: "cut@example.com".into(),
                    password: PASSWORD.into(),
                    client_id: String::new(),
                }),
            )
            .await
        });
    }
    for answer in logins.join_all().await {
        let answer = answer.expect("a login waited on a lock nobody releases");
        assert!(answer.is_ok(), "{answer:?}");
    }
}
