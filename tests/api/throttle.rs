//! Throttling as an attacker meets it: guessing clients wait, the owner still gets in, counts
//! hold across replicas and cancelled calls, and mail floods are braked. Clients are told apart
//! by `x-forwarded-for`, which authd believes only because the tests name 127.0.0.1 a trusted
//! proxy.

use crate::helpers::{PASSWORD, TestApp, TestDb, code};
use crate::smtp::SmtpServer;
use authd::pb;
use sea_orm::ConnectionTrait;
use std::time::Duration;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// Flags for a server that believes the tests' `x-forwarded-for`, with small limits.
const THROTTLED: &[&str] = &[
    "--trusted-proxies",
    "127.0.0.1",
    "--throttle-client-account-failures",
    "3",
    "--throttle-account-failures",
    "5",
];

fn from<T>(ip: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-forwarded-for", ip.parse().expect("ascii address"));
    request
}

async fn login_from(
    app: &TestApp,
    ip: &str,
    email: &str,
    password: &str,
) -> Result<pb::TokenResponse, Status> {
    let request = pb::LoginRequest {
        email: email.into(),
        password: password.into(),
        client_id: String::new(),
    };
    app.client
        .clone()
        .login(from(ip, request))
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts RESOURCE_EXHAUSTED with a RetryInfo saying when to come back.
pub fn assert_rate_limited<T>(result: Result<T, Status>) -> Status {
    let status = match result {
        Ok(_) => panic!("expected RESOURCE_EXHAUSTED, got OK"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let delay = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let delay = delay.unwrap_or_else(|| panic!("no RetryInfo delay in {status:?}"));
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(24 * 3600),
        "{delay:?}"
    );
    status
}

#[tokio::test]
async fn a_guessing_client_waits_while_the_owner_logs_in_from_elsewhere() {
    let mut app = TestApp::spawn_with(THROTTLED).await;
    app.signup_verified_login("victim@example.com").await;
    let attacker = "203.0.113.9";
    for attempt in 1..=3 {
        let wrong = login_from(&app, attacker, "Victim@Example.com", "wrong password").await;
        assert_eq!(code(wrong), Code::Unauthenticated, "attempt {attempt}");
        let ghost = login_from(&app, attacker, "ghost@example.com", "wrong password").await;
        assert_eq!(code(ghost), Code::Unauthenticated, "attempt {attempt}");
    }
    // The guessing client waits, even with the right password, and cannot tell real accounts
    // from made-up ones by the answer.
    let known =
        assert_rate_limited(login_from(&app, attacker, "victim@example.com", PASSWORD).await);
    let ghost =
        assert_rate_limited(login_from(&app, attacker, "ghost@example.com", PASSWORD).await);
    assert_eq!(known.message(), ghost.message());
    // The owner, from another address, is not held back at all.
    login_from(&app, "198.51.100.7", "victim@example.com", PASSWORD)
        .await
        .expect("the owner logs in while the account is being guessed at");
}

#[tokio::test]
async fn the_wait_grows_with_each_failure_and_then_lets_the_client_try_again() {
    let app = TestApp::spawn_with(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--throttle-client-account-failures",
        "1",
    ])
    .await;
    let client = "203.0.113.10";
    let wrong = login_from(&app, client, "ghost@example.com", "wrong password").await;
    assert_eq!(code(wrong), Code::Unauthenticated);
    let first =
        assert_rate_limited(login_from(&app, client, "ghost@example.com", "x password").await);
    let first = first.get_details_retry_info().and_then(|r| r.retry_delay);
    assert!(
        first.is_some_and(|d| d <= Duration::from_secs(1)),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = login_from(&app, client, "ghost@example.com", "wrong again").await;
    assert_eq!(code(second), Code::Unauthenticated, "the wait was over");
    let next =
        assert_rate_limited(login_from(&app, client, "ghost@example.com", "x password").await);
    let next = next.get_details_retry_info().and_then(|r| r.retry_delay);
    assert!(
        next.is_some_and(|d| d > Duration::from_secs(1) && d <= Duration::from_secs(2)),
        "the second wait doubles: {next:?}"
    );
}

#[tokio::test]
async fn guesses_from_many_addresses_do_not_lock_out_the_owner() {
    let mut app = TestApp::spawn_with(THROTTLED).await;
    app.signup_verified_login("target@example.com").await;
    // Twenty addresses, two guesses each: far over the account's five, spread thin.
    for i in 0..20 {
        let ip = format!("203.0.113.{}", 100 + i);
        for _ in 0..2 {
            let guess = login_from(&app, &ip, "target@example.com", "wrong password").await;
            assert!(
                matches!(code(guess), Code::Unauthenticated | Code::ResourceExhausted),
                "{ip}"
            );
        }
    }
    // An address that has been failing against the account is held back by the account-wide
    // count, even on its first try after that …
    assert_rate_limited(login_from(&app, "203.0.113.100", "target@example.com", PASSWORD).await);
    // … but the owner, on an address that has not been failing, is not.
    login_from(&app, "198.51.100.20", "target@example.com", PASSWORD)
        .await
        .expect("the owner still logs in");
}

#[tokio::test]
async fn past_the_failure_cap_only_known_clients_get_in_until_a_reset() {
    let mut flags = THROTTLED.to_vec();
    flags.extend(["--throttle-account-max-failures", "4"]);
    let mut app = TestApp::spawn_with(&flags).await;
    let email = "capped@example.com";
    app.signup_verified_login(email).await;
    let home = "198.51.100.30";
    login_from(&app, home, email, PASSWORD)
        .await
        .expect("home logs in once");
    for i in 0..4 {
        let ip = format!("203.0.113.{}", 10 + i);
        let guess = login_from(&app, &ip, email, "wrong password").await;
        assert_eq!(code(guess), Code::Unauthenticated, "{ip}");
    }
    // Four consecutive failures: a new address may not try, even with the right password.
    assert_rate_limited(login_from(&app, "198.51.100.31", email, PASSWORD).await);
    // A client that has logged in to the account before still gets in.
    login_from(&app, home, email, PASSWORD)
        .await
        .expect("a known client logs in");

    // The failures are cleared by that success; fail again, then reset instead.
    for i in 0..4 {
        let ip = format!("203.0.113.{}", 20 + i);
        let _ = login_from(&app, &ip, email, "wrong password").await;
    }
    assert_rate_limited(login_from(&app, "198.51.100.32", email, PASSWORD).await);
    let token = app.reset_token(email).await;
    let new_password = "a brand new passphrase";
    app.client
        .reset_password(pb::ResetPasswordRequest {
            token,
            new_password: new_password.into(),
        })
        .await
        .expect("reset while throttled");
    login_from(&app, "198.51.100.32", email, new_password)
        .await
        .expect("a reset lifts the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_are_counted_as_they_arrive() {
    let mut app = TestApp::spawn_with(THROTTLED).await;
    app.signup_verified_login("target@example.com").await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..12 {
        let client = app.client.clone();
        guesses.spawn(async move {
            let guess = pb::LoginRequest {
                email: "target@example.com".into(),
                password: format!("guess number {i}"),
                client_id: String::new(),
            };
            code(client.clone().login(from("203.0.113.50", guess)).await)
        });
    }
    let codes = guesses.join_all().await;
    let count = |wanted: Code| codes.iter().filter(|c| **c == wanted).count();
    assert_eq!(count(Code::Unauthenticated), 3, "{codes:?}");
    assert_eq!(count(Code::ResourceExhausted), 9, "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_limit_holds_across_two_replicas_on_one_database() {
    let db = TestDb::new().await;
    let shared = db.share();
    let a = TestApp::spawn_on(db, SmtpServer::start().await, THROTTLED).await;
    let b = TestApp::spawn_on(shared, SmtpServer::start().await, THROTTLED).await;
    let client = "203.0.113.60";
    let mut unauthenticated = 0;
    for i in 0..8 {
        let replica = if i % 2 == 0 { &a } else { &b };
        match code(login_from(replica, client, "ghost@example.com", "wrong password").await) {
            Code::Unauthenticated => unauthenticated += 1,
            Code::ResourceExhausted => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        unauthenticated, 3,
        "three free guesses in all, not three per replica"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_cancelled_before_their_hash_ran_are_not_counted() {
    // One hash at a time, and each slow enough (seconds) to hold the queue until the
    // cancellations have surely reached the server.
    let mut flags = THROTTLED.to_vec();
    flags.extend([
        "--max-concurrent-hashes",
        "1",
        "--argon2-memory-kib",
        "65536",
        "--argon2-iterations",
        "40",
    ]);
    let mut app = TestApp::spawn_with(&flags).await;
    app.signup_verified_login("queued@example.com").await;
    // A login from elsewhere takes the only hash slot …
    let busy = {
        let app_client = app.client.clone();
        tokio::spawn(async move {
            let request = pb::LoginRequest {
                email: "queued@example.com".into(),
                password: PASSWORD.into(),
                client_id: String::new(),
            };
            app_client
                .clone()
                .login(from("198.51.100.40", request))
                .await
        })
    };
    // … while twelve guesses queue behind it; once the throttle has counted them (they are
    // waiting for the hash slot), their callers cancel them.
    let db = app.db.connect().await;
    let pair_count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    const SUM: &str = "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) AS n FROM throttles \
                       WHERE scope = 'login.pair'";
    let attacker = "203.0.113.70";
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..12 {
        let mut client = app.client.clone();
        guesses.spawn(async move {
            let guess = pb::LoginRequest {
                email: "queued@example.com".into(),
                password: format!("guess {i} wrong"),
                client_id: String::new(),
            };
            client.login(from(attacker, guess)).await
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pair_count(SUM).await < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the guesses were never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !busy.is_finished(),
        "the hash slot is still taken: no guess has hashed"
    );
    guesses.abort_all();
    while let Some(cancelled) = guesses.join_next().await {
        // A guess refused at once (over its free tries) answered before the cancel.
        if let Ok(answer) = cancelled {
            assert_eq!(code(answer), Code::ResourceExhausted);
        }
    }
    // On a loaded machine the owner's hash may end before every cancel has reached the server
    // (the client sends the resets after `abort_all`, and the owner's answer can still be on
    // its way, so `busy` cannot tell); then one queued guess may have taken the slot and begun
    // its hash, and that guess rightly counts. Never more than one: the slot stays taken until
    // its hash ends, after every cancel. Without the take-back, 3 to 12 would stay counted.
    let may_have_hashed = 1;
    busy.await.unwrap().expect("the owner's login finishes");
    // The take-backs are written soon after the calls are gone, so none of them counts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let counted = loop {
        let counted = pair_count(SUM).await;
        if counted <= may_have_hashed {
            break counted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{counted} cancelled guesses still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A guess that runs its hash counts, once.
    let wrong = login_from(&app, attacker, "queued@example.com", "wrong password").await;
    assert_eq!(code(wrong), Code::Unauthenticated);
    assert_eq!(pair_count(SUM).await, counted + 1);
}

#[tokio::test]
async fn a_cancelled_login_whose_hash_ran_still_counts() {
    // One free guess, and a hash that takes far longer than the work before it and than the
    // 400 ms after which the call is cancelled: 64 MiB and 48 passes take over a second here
    // (12 passes took about 320 ms on an AMD EPYC machine, and the test failed there).
    let app = TestApp::spawn_with(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--throttle-client-account-failures",
        "1",
        "--argon2-memory-kib",
        "65536",
        "--argon2-iterations",
        "48",
    ])
    .await;
    let attacker = "203.0.113.80";
    let guess = pb::LoginRequest {
        email: "ghost@example.com".into(),
        password: "wrong password".into(),
        client_id: String::new(),
    };
    let mut client = app.client.clone();
    let call = client.login(from(attacker, guess));
    // Cancelled while its hash runs: the guess was made, so it counts.
    let cancelled = tokio::time::timeout(Duration::from_millis(400), call).await;
    assert!(cancelled.is_err(), "the call was cancelled mid-hash");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_rate_limited(login_from(&app, attacker, "ghost@example.com", "wrong password").await);
}

#[tokio::test]
async fn repeated_mail_requests_for_one_email_wait() {
    let mut app = TestApp::spawn_with(&["--throttle-account-mails", "2"]).await;
    let email = "flood@example.com";
    app.signup(email).await;
    app.smtp
        .wait_for_mail_to(email, crate::helpers::MAIL_WAIT)
        .await; // signup's own mail is not counted

    for target in [email, "ghost@example.com"] {
        for _ in 0..2 {
            app.client
                .request_password_reset(pb::RequestPasswordResetRequest {
                    email: target.into(),
                })
                .await
                .expect("within the limit");
        }
        let upper = pb::RequestPasswordResetRequest {
            email: target.to_uppercase(),
        };
        assert_rate_limited(app.client.request_password_reset(upper).await);
        let resend = pb::ResendVerificationRequest {
            email: target.into(),
        };
        assert_rate_limited(app.client.resend_verification(resend).await);
    }
    for _ in 0..2 {
        app.mailed_token(email, "reset-password").await;
    }
}

#[tokio::test]
async fn a_client_presenting_made_up_tokens_waits() {
    let app = TestApp::spawn_with(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--throttle-client-failures",
        "4",
    ])
    .await;
    let client = "203.0.113.90";
    for _ in 0..2 {
        let refresh = pb::RefreshRequest {
            refresh_token: "made-up".into(),
        };
        assert_eq!(
            code(app.client.clone().refresh(from(client, refresh)).await),
            Code::Unauthenticated
        );
        let verify = pb::VerifyEmailRequest {
            token: "made-up".into(),
        };
        assert_eq!(
            code(app.client.clone().verify_email(from(client, verify)).await),
            Code::InvalidArgument
        );
    }
    let refresh = pb::RefreshRequest {
        refresh_token: "made-up".into(),
    };
    assert_rate_limited(app.client.clone().refresh(from(client, refresh)).await);
    let other = pb::RefreshRequest {
        refresh_token: "made-up".into(),
    };
    assert_eq!(
        code(
            app.client
                .clone()
                .refresh(from("198.51.100.90", other))
                .await
        ),
        Code::Unauthenticated,
        "other clients are not held back"
    );
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_from_untrusted_peers() {
    // Without --trusted-proxies, every x-forwarded-for is the caller's own invention.
    let mut app = TestApp::spawn_with(&["--throttle-client-account-failures", "2"]).await;
    app.signup_verified_login("spoof@example.com").await;
    for i in 0..2 {
        let ip = format!("203.0.113.{}", 200 + i);
        let wrong = login_from(&app, &ip, "spoof@example.com", "wrong password").await;
        assert_eq!(code(wrong), Code::Unauthenticated);
    }
    // A "new" forwarded address does not make a new client.
    assert_rate_limited(
        login_from(&app, "203.0.113.250", "spoof@example.com", "wrong password").await,
    );
}

#[tokio::test]
async fn successful_logins_from_one_address_never_count_as_its_failures() {
    // Many people behind one address (an office, a NAT, a backend-for-frontend) log in all day:
    // each login is counted in advance, and a success must take that back, or the address
    // would soon be refused Refresh, Logout and logins to new accounts.
    let mut app = TestApp::spawn_with(&["--throttle-client-failures", "3"]).await;
    let first = app.signup_verified_login("ada@example.com").await;
    for _ in 0..8 {
        app.login("ada@example.com", PASSWORD).await.unwrap();
    }
    app.refresh(&first.refresh_token).await.unwrap();
    // A new account from the same address is not held back either.
    app.signup_verified_login("bob@example.com").await;
    // Failures still count: three unknown refresh tokens, and the address waits.
    for _ in 0..3 {
        assert_eq!(
            code(app.refresh("no-such-token").await),
            Code::Unauthenticated
        );
    }
    assert_eq!(
        code(app.refresh("no-such-token").await),
        Code::ResourceExhausted
    );
}

#[tokio::test]
async fn after_a_success_the_clients_guesses_at_the_account_count_afresh() {
    // A success clears the (account, client) count: the client has all its free tries again,
    // exactly as if it had never failed.
    let mut app = TestApp::spawn_with(THROTTLED).await;
    let email = "afresh@example.com";
    app.signup_verified_login(email).await;
    let client = "203.0.113.120";
    for attempt in 1..=2 {
        let wrong = login_from(&app, client, email, "wrong password").await;
        assert_eq!(code(wrong), Code::Unauthenticated, "attempt {attempt}");
    }
    login_from(&app, client, email, PASSWORD)
        .await
        .expect("the right password within the free tries");
    for attempt in 1..=3 {
        let wrong = login_from(&app, client, email, "wrong password").await;
        assert_eq!(
            code(wrong),
            Code::Unauthenticated,
            "attempt {attempt} after the success"
        );
    }
    assert_rate_limited(login_from(&app, client, email, "wrong password").await);
}
