//! Revocation-aware local mode against the real authd binary in another process: a logout,
//! a logout of every session and a password change reach the verifier here within a second,
//! with no Introspect call; after authd restarts (killed, or stopped with SIGTERM) the verifier
//! reconnects on its own and sees later logouts; authd down longer than the bound gives the
//! chosen disconnected behaviour, then recovery; two authd processes on one database agree on
//! every revocation. The database follows `AUTHD_TEST_DATABASE`.

use crate::authd_process::{Authd, free_port};
use crate::helpers::PASSWORD;
use authd::pb::{self, account_service_client::AccountServiceClient};
use authd::pb::{TokenResponse, auth_service_client::AuthServiceClient};
use authd_verifier::{LocalVerifier, Refusal, Verify, WhenDisconnected};
use std::time::{Duration, Instant};

/// The promise: a session ended is refused within a second of the call that ended it
/// (Logout, ChangePassword) returning. authd reads other processes' revocations every 200 ms.
const WITHIN: Duration = Duration::from_secs(1);

async fn ready(verifier: &LocalVerifier) {
    assert!(verifier.ready(Duration::from_secs(15)).await, "no keys");
    assert!(
        verifier.caught_up(Duration::from_secs(15)).await,
        "not caught up"
    );
}

/// How long until `verifier` refuses `token` with `refusal`, polled every 5 ms; fails the test
/// past 10 s.
async fn until_refused(verifier: &LocalVerifier, token: &str, refusal: Refusal) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if verifier.verify(token).await == Err(refusal) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("still not {refusal:?} after 10 s");
}

async fn passes(verifier: &LocalVerifier, token: &TokenResponse) -> bool {
    verifier.verify(&token.access_token).await.is_ok()
}

#[tokio::test]
async fn logout_logout_all_and_a_password_change_are_refused_within_a_second() {
    let authd = Authd::start().await;
    let laptop = authd.signup_login("ada@example.com").await;
    let phone = authd.login("ada@example.com").await;
    let bob = authd.signup_login("bob@example.com").await;
    let verifier = authd.verifier(|_| {});
    ready(&verifier).await;
    assert!(passes(&verifier, &laptop).await && passes(&verifier, &phone).await);
    let introspected = authd.introspect_calls().await;

    let start = Instant::now();
    authd.logout(&laptop, false).await;
    let took = until_refused(&verifier, &laptop.access_token, Refusal::Revoked).await;
    let from_call = start.elapsed();
    println!(
        "logout refused by the verifier {took:?} after Logout returned ({from_call:?} after it was sent)"
    );
    assert!(took < WITHIN, "{took:?}");
    assert!(passes(&verifier, &phone).await, "the other session goes on");

    // Logout of every session: the phone's too, and the laptop's again only once.
    let tablet = authd.login("ada@example.com").await;
    authd.logout(&tablet, true).await;
    let took = until_refused(&verifier, &phone.access_token, Refusal::Revoked).await;
    println!("logout of all sessions refused after {took:?}");
    assert!(took < WITHIN, "{took:?}");
    assert_eq!(
        verifier.verify(&tablet.access_token).await,
        Err(Refusal::Revoked)
    );

    // ChangePassword ends every other session of Bob's; his calling one goes on.
    let bob_phone = authd.login("bob@example.com").await;
    assert!(passes(&verifier, &bob_phone).await);
    let mut request = tonic::Request::new(pb::ChangePasswordRequest {
        current_password: PASSWORD.into(),
        new_password: "a brand new long passphrase".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", bob.access_token).parse().unwrap(),
    );
    AccountServiceClient::new(authd.channel())
        .change_password(request)
        .await
        .expect("change password");
    let took = until_refused(&verifier, &bob_phone.access_token, Refusal::Revoked).await;
    println!("password change refused the other session after {took:?}");
    assert!(took < WITHIN, "{took:?}");
    assert!(passes(&verifier, &bob).await, "the calling session goes on");

    assert_eq!(
        verifier.revoked_count(),
        4,
        "laptop, phone, tablet, bob's phone"
    );
    assert_eq!(
        authd.introspect_calls().await,
        introspected,
        "no Introspect call per token"
    );
}

#[tokio::test]
async fn after_authd_restarts_the_verifier_reconnects_and_sees_later_logouts() {
    let mut authd = Authd::start().await;
    let first = authd.signup_login("ada@example.com").await;
    let verifier = authd.verifier(|_| {});
    ready(&verifier).await;
    authd.logout(&first, false).await;
    let took = until_refused(&verifier, &first.access_token, Refusal::Revoked).await;
    assert!(took < WITHIN, "{took:?}");

    for gently in [false, true] {
        let session = authd.login("ada@example.com").await;
        let reconnects = verifier.reconnect_count();
        authd.stop(gently);
        authd.restart().await;
        // The longer bound on purpose: this waits for the verifier's reconnect (with its backoff)
        // after the restart; the logout after it is held to the second again.
        assert!(
            verifier.caught_up(Duration::from_secs(15)).await,
            "caught up again"
        );
        assert!(verifier.reconnect_count() > reconnects);
        assert!(passes(&verifier, &session).await);
        authd.logout(&session, false).await;
        let took = until_refused(&verifier, &session.access_token, Refusal::Revoked).await;
        println!(
            "after a restart ({}), logout refused after {took:?}",
            if gently { "SIGTERM" } else { "SIGKILL" }
        );
        assert!(took < WITHIN, "{took:?}");
    }
    assert_eq!(
        verifier.verify(&first.access_token).await,
        Err(Refusal::Revoked),
        "what was known before stays known"
    );
    assert_eq!(verifier.revoked_count(), 3);
}

#[tokio::test]
async fn authd_down_longer_than_the_bound_fails_closed_or_introspects_then_recovers() {
    let mut authd = Authd::start().await;
    let ada = authd.signup_login("ada@example.com").await;
    let bound = Duration::from_millis(1500);
    let closed = authd.verifier(|r| {
        r.when_disconnected = WhenDisconnected::FailClosed;
        r.max_disconnected = bound;
    });
    let introspecting = authd.verifier(|r| r.max_disconnected = bound);
    ready(&closed).await;
    ready(&introspecting).await;

    authd.stop(false);
    let down = Instant::now();
    for verifier in [&closed, &introspecting] {
        assert!(passes(verifier, &ada).await, "within the bound");
    }
    let closed_after = until_refused(&closed, &ada.access_token, Refusal::Unavailable).await;
    println!("fail-closed refuses {:?} after authd died", down.elapsed());
    assert!(closed_after < bound + Duration::from_secs(1));
    // Past the bound the fallback asks authd, which is down: unavailable too, never accepted.
    assert_eq!(
        introspecting.verify(&ada.access_token).await,
        Err(Refusal::Unavailable)
    );

    authd.restart().await;
    for verifier in [&closed, &introspecting] {
        // The longer bound on purpose: the reconnect after the outage, not a logout.
        assert!(verifier.caught_up(Duration::from_secs(15)).await);
        assert!(passes(verifier, &ada).await, "recovered");
    }
    authd.logout(&ada, false).await;
    let returned = Instant::now();
    for verifier in [&closed, &introspecting] {
        until_refused(verifier, &ada.access_token, Refusal::Revoked).await;
        let took = returned.elapsed();
        println!("after the outage, logout refused after {took:?}");
        assert!(took < WITHIN, "{took:?}");
    }
}

/// The replica test with real processes: two `authd serve` on one database (no shared
/// memory, only the database between them), a stream held on each, logouts made on either. Each
/// stream sees every revocation once, with the same cursors, and the one on the other process
/// gets it within a second; a verifier on the second refuses each session within a second too,
/// those ended on the first included.
#[tokio::test]
async fn two_authd_processes_on_one_database_agree_on_every_revocation_within_a_second() {
    let first = Authd::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let second = Authd::spawn(first.db.share(), free_port(), free_port(), dir).await;
    let verifier = second.verifier(|_| {});
    ready(&verifier).await;
    let replicas = [&first, &second];
    let mut streams = Vec::new();
    for authd in replicas {
        let stream = AuthServiceClient::new(authd.channel())
            .watch_revocations(pb::WatchRevocationsRequest { after_cursor: 0 })
            .await
            .expect("WatchRevocations")
            .into_inner();
        streams.push(stream);
    }
    let sessions: Vec<TokenResponse> = {
        let mut sessions = vec![first.signup_login("ada@example.com").await];
        for _ in 0..5 {
            sessions.push(first.login("ada@example.com").await);
        }
        sessions
    };
    let mut seen: [Vec<(i64, String)>; 2] = [Vec::new(), Vec::new()];
    let (mut delays, mut refused) = (Vec::new(), Vec::new());
    for (i, session) in sessions.iter().enumerate() {
        let (on, other) = (i % 2, 1 - i % 2);
        replicas[on].logout(session, false).await;
        let returned = Instant::now();
        let deadline = tokio::time::Instant::from_std(returned + WITHIN);
        for (s, stream) in streams.iter_mut().enumerate() {
            let r = tokio::time::timeout_at(deadline, stream.message())
                .await
                .unwrap_or_else(|_| panic!("no revocation on stream {s} within {WITHIN:?}"))
                .expect("the stream goes on")
                .expect("a revocation");
            if s == other {
                delays.push(returned.elapsed());
            }
            seen[s].push((r.cursor, r.session_id));
        }
        until_refused(&verifier, &session.access_token, Refusal::Revoked).await;
        refused.push(returned.elapsed());
    }
    delays.sort();
    refused.sort();
    println!("logout on one authd process -> stream on the other: {delays:?}");
    println!("logout on either -> refused by the verifier on the second: {refused:?}");
    assert_eq!(
        seen[0], seen[1],
        "both replicas, the same revocations and cursors"
    );
    assert!(seen[0].windows(2).all(|w| w[0].0 < w[1].0), "{:?}", seen[0]);
    let sids: std::collections::HashSet<_> = seen[0].iter().map(|(_, sid)| sid).collect();
    assert_eq!(sids.len(), sessions.len(), "each session once");
    assert!(delays.iter().all(|d| *d < WITHIN), "{delays:?}");
    // The even sessions ended on the first process; the verifier holds the second's stream.
    assert!(refused.iter().all(|d| *d < WITHIN), "{refused:?}");
    assert_eq!(verifier.revoked_count(), sessions.len());
}
