//! WatchRevocations as a verifier holding the stream meets it: one event per ended session,
//! whichever way it ended; the backlog then live ones; resuming from a cursor across restarts;
//! a second authd on the same database; callers that read too slowly, bad cursors, shutdown.

use crate::account::{Account, session_of};
use crate::bad_input::violations;
use crate::helpers::{PASSWORD, TestApp, TestDb, code};
use crate::smtp::SmtpServer;
use authd::pb::{self, auth_service_client::AuthServiceClient};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// How long a test waits for an event it expects.
const EXPECT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure an event it does not expect is not coming (well past the
/// poll interval).
const QUIET: Duration = Duration::from_millis(800);

/// An open WatchRevocations stream.
pub struct Watch {
    stream: Streaming<pb::Revocation>,
    /// The `x-authd-backlog-end` header.
    pub backlog_end: i64,
}

impl Watch {
    pub async fn start(app: &TestApp, after_cursor: i64) -> Self {
        Self::try_start(&mut app.client.clone(), after_cursor)
            .await
            .expect("WatchRevocations starts")
    }

    pub async fn try_start(
        client: &mut AuthServiceClient<Channel>,
        after_cursor: i64,
    ) -> Result<Self, Status> {
        let response = client
            .watch_revocations(pb::WatchRevocationsRequest { after_cursor })
            .await?;
        let backlog_end = response
            .metadata()
            .get("x-authd-backlog-end")
            .expect("the backlog-end header")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        Ok(Self {
            stream: response.into_inner(),
            backlog_end,
        })
    }

    /// The next revocation; fails the test if none comes within `EXPECT`.
    pub async fn next(&mut self) -> pb::Revocation {
        match tokio::time::timeout(EXPECT, self.stream.message()).await {
            Ok(Ok(Some(revocation))) => revocation,
            Ok(Ok(None)) => panic!("the stream ended"),
            Ok(Err(status)) => panic!("the stream failed: {status:?}"),
            Err(_) => panic!("no revocation within {EXPECT:?}"),
        }
    }

    /// The next `n` revocations.
    pub async fn take(&mut self, n: usize) -> Vec<pb::Revocation> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(self.next().await);
        }
        got
    }

    /// Asserts that nothing more comes for a while.
    pub async fn assert_quiet(&mut self) {
        if let Ok(item) = tokio::time::timeout(QUIET, self.stream.message()).await {
            panic!("expected nothing more, got {item:?}");
        }
    }

    /// How the stream ends (within `EXPECT`), skipping revocations.
    pub async fn end(&mut self) -> Result<usize, Status> {
        let mut skipped = 0;
        loop {
            match tokio::time::timeout(EXPECT, self.stream.message()).await {
                Ok(Ok(Some(_))) => skipped += 1,
                Ok(Ok(None)) => return Ok(skipped),
                Ok(Err(status)) => return Err(status),
                Err(_) => panic!("the stream did not end within {EXPECT:?}"),
            }
        }
    }
}

fn sessions(revocations: &[pb::Revocation]) -> Vec<String> {
    revocations.iter().map(|r| r.session_id.clone()).collect()
}

fn assert_increasing(revocations: &[pb::Revocation]) {
    for pair in revocations.windows(2) {
        assert!(pair[0].cursor < pair[1].cursor, "{pair:?}");
    }
}

/// Logs every session out at once, session `i` through `client(i)`.
async fn logout_in_parallel(
    tokens: &[pb::TokenResponse],
    client: impl Fn(usize) -> AuthServiceClient<Channel>,
) {
    let mut logouts = tokio::task::JoinSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let mut client = client(i);
        let refresh_token = t.refresh_token.clone();
        logouts.spawn(async move {
            client
                .logout(pb::LogoutRequest {
                    refresh_token,
                    all_sessions: false,
                })
                .await
        });
    }
    while let Some(done) = logouts.join_next().await {
        done.unwrap().unwrap();
    }
}

/// A user with `n` sessions (the first from signup_verified_login).
async fn user_with_sessions(app: &mut TestApp, email: &str, n: usize) -> Vec<pb::TokenResponse> {
    let mut sessions = vec![app.signup_verified_login(email).await];
    for _ in 1..n {
        sessions.push(app.login(email, PASSWORD).await.unwrap());
    }
    sessions
}

#[tokio::test]
async fn every_way_a_session_ends_gives_exactly_one_revocation() {
    let mut app = TestApp::spawn().await;
    let mut watch = Watch::start(&app, 0).await;
    assert_eq!(watch.backlog_end, 0);

    // Logout of one session.
    let ada = user_with_sessions(&mut app, "ada@example.com", 1).await;
    app.logout(&ada[0].refresh_token, false).await;
    // Logout of every session of a user.
    let bob = user_with_sessions(&mut app, "bob@example.com", 3).await;
    app.logout(&bob[1].refresh_token, true).await;
    // Refresh-token reuse: the spent token presented again ends the session.
    let cy = user_with_sessions(&mut app, "cy@example.com", 1).await;
    app.refresh(&cy[0].refresh_token).await.unwrap();
    assert_eq!(
        code(app.refresh(&cy[0].refresh_token).await),
        Code::Unauthenticated
    );
    // Password reset ends every session.
    let dee = user_with_sessions(&mut app, "dee@example.com", 2).await;
    let token = app.reset_token("dee@example.com").await;
    app.client
        .reset_password(pb::ResetPasswordRequest {
            token,
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap();
    // ChangePassword ends every other session.
    let eve = user_with_sessions(&mut app, "eve@example.com", 3).await;
    Account::new(&app, &eve[0].access_token)
        .change_password(PASSWORD, "another new passphrase")
        .await
        .unwrap();
    // RevokeSession of one's own session.
    let fay = user_with_sessions(&mut app, "fay@example.com", 2).await;
    Account::new(&app, &fay[0].access_token)
        .revoke(&session_of(&fay[1].access_token))
        .await
        .unwrap();

    let sid = |t: &pb::TokenResponse| session_of(&t.access_token);
    let expected = [
        vec![sid(&ada[0])],
        bob.iter().map(sid).collect(),
        vec![sid(&cy[0])],
        dee.iter().map(sid).collect(),
        vec![sid(&eve[1]), sid(&eve[2])],
        vec![sid(&fay[1])],
    ];
    let expected: Vec<String> = expected.into_iter().flatten().collect();
    let got = watch.take(expected.len()).await;
    assert_increasing(&got);
    let got_sessions = sessions(&got);
    assert_eq!(
        got_sessions.iter().collect::<HashSet<_>>(),
        expected.iter().collect::<HashSet<_>>()
    );
    assert_eq!(got_sessions.len(), expected.len(), "each exactly once");
    // The user and the times are right: a token issued at the session's last use expires at
    // not_after, 15 minutes (the tests' access TTL) after it, and never before the revocation.
    for r in &got {
        let owner = [&ada, &bob, &cy, &dee, &eve, &fay]
            .into_iter()
            .flatten()
            .find(|t| sid(t) == r.session_id)
            .unwrap();
        assert_eq!(r.user_id, owner.user.as_ref().unwrap().id);
        let (revoked, not_after) = (r.revoked_at.unwrap(), r.not_after.unwrap());
        assert!(not_after.seconds > revoked.seconds);
        assert!(not_after.seconds - revoked.seconds <= 900, "{r:?}");
        assert!(not_after.seconds - revoked.seconds >= 890, "{r:?}");
    }

    // Ending what has ended gives nothing more: logout again, reuse again, revoke again.
    app.logout(&ada[0].refresh_token, false).await;
    let _ = app.refresh(&cy[0].refresh_token).await;
    let _ = Account::new(&app, &fay[0].access_token)
        .revoke(&session_of(&fay[1].access_token))
        .await;
    watch.assert_quiet().await;
}

#[tokio::test]
async fn the_backlog_comes_first_then_live_revocations_and_a_cursor_resumes_across_restarts() {
    let mut app = TestApp::spawn().await;
    let users = user_with_sessions(&mut app, "ada@example.com", 4).await;
    for t in &users[..3] {
        app.logout(&t.refresh_token, false).await;
    }
    let mut watch = Watch::start(&app, 0).await;
    let backlog = watch.take(3).await;
    assert_increasing(&backlog);
    assert_eq!(watch.backlog_end, backlog[2].cursor);
    assert_eq!(
        sessions(&backlog),
        users[..3]
            .iter()
            .map(|t| session_of(&t.access_token))
            .collect::<Vec<_>>()
    );
    // Then a live one.
    app.logout(&users[3].refresh_token, false).await;
    let live = watch.next().await;
    assert!(live.cursor > backlog[2].cursor);
    assert_eq!(live.session_id, session_of(&users[3].access_token));
    drop(watch);

    // After a restart (same database), a verifier that had read up to the second resumes
    // there: it gets the third and fourth, nothing twice, then what happens next.
    let mut app = app.restart().await;
    let mut watch = Watch::start(&app, backlog[1].cursor).await;
    assert_eq!(watch.backlog_end, live.cursor);
    let resumed = watch.take(2).await;
    assert_eq!(resumed, vec![backlog[2].clone(), live.clone()]);
    let later = user_with_sessions(&mut app, "bob@example.com", 1).await;
    app.logout(&later[0].refresh_token, false).await;
    let next = watch.next().await;
    assert!(next.cursor > live.cursor, "cursors grow across restarts");
    assert_eq!(next.session_id, session_of(&later[0].access_token));
    watch.assert_quiet().await;

    // Caught up already: the backlog end is the cursor asked from or below it.
    let watch = Watch::start(&app, next.cursor).await;
    assert!(watch.backlog_end <= next.cursor);
}

#[tokio::test]
async fn a_second_authd_on_the_same_database_streams_the_first_ones_logouts_within_a_second() {
    let mut first = TestApp::spawn().await;
    let second = TestApp::spawn_on(first.db.share(), SmtpServer::start().await, &[]).await;
    let mut watch = Watch::start(&second, 0).await;
    let tokens = user_with_sessions(&mut first, "ada@example.com", 5).await;
    let mut delays = Vec::new();
    for t in &tokens {
        let started = Instant::now();
        first.logout(&t.refresh_token, false).await;
        let r = watch.next().await;
        delays.push(started.elapsed());
        assert_eq!(r.session_id, session_of(&t.access_token));
    }
    delays.sort();
    println!("logout on one authd -> event on the other: {delays:?}");
    // The poll interval is 200 ms; a second is the contract, with room for a loaded machine
    // in the slowest of five.
    assert!(delays[2] < Duration::from_secs(1), "{delays:?}");
    assert!(delays[4] < Duration::from_secs(3), "{delays:?}");
}

#[tokio::test]
async fn bad_cursors_are_refused_with_the_right_codes() {
    let mut app = TestApp::spawn().await;
    let status = Watch::try_start(&mut app.client, -1)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(Err::<(), _>(status)),
        vec!["after_cursor".to_owned()]
    );

    // A cursor this database never gave out: the verifier must start again from 0.
    let status = Watch::try_start(&mut app.client, 1)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let status = Watch::try_start(&mut app.client, i64::MAX)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::OutOfRange);

    let t = app.signup_verified_login("ada@example.com").await;
    app.logout(&t.refresh_token, false).await;
    let mut watch = Watch::start(&app, 0).await;
    let only = watch.next().await;
    // Its own cursor is fine (caught up); one past it is not.
    Watch::start(&app, only.cursor).await;
    let status = Watch::try_start(&mut app.client, only.cursor + 1)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::OutOfRange);
}

#[tokio::test]
async fn the_stream_needs_the_introspect_credentials_once_they_are_configured() {
    let (secret, entry) = crate::tls::credential("gateway");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &entry]).await;
    let status = Watch::try_start(&mut app.client, 0)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains(&secret));

    let mut request = tonic::Request::new(pb::WatchRevocationsRequest { after_cursor: 0 });
    request.metadata_mut().insert(
        "authorization",
        crate::tls::basic("gateway", &secret).parse().unwrap(),
    );
    let mut stream = app
        .client
        .watch_revocations(request)
        .await
        .unwrap()
        .into_inner();
    let t = app.signup_verified_login("ada@example.com").await;
    app.logout(&t.refresh_token, false).await;
    let r = tokio::time::timeout(EXPECT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.session_id, session_of(&t.access_token));
}

/// Sessions for `user_id` written straight into the database, many at once: a test of volume
/// needs thousands, and logging in for each costs a password hash.
async fn insert_sessions(db: &TestDb, user_id: &str, n: usize) {
    use authd::db::entity::session;
    use sea_orm::{EntityTrait, Set};
    let conn = db.connect().await;
    let user_id = uuid::Uuid::parse_str(user_id).unwrap();
    let now = chrono::Utc::now();
    let rows: Vec<_> = (0..n)
        .map(|_| session::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            user_id: Set(user_id),
            created_at: Set(now),
            last_used_at: Set(now),
            expires_at: Set(now + chrono::Duration::days(1)),
            revoked_at: Set(None),
            user_agent: Set("bulk".into()),
            ip: Set("127.0.0.1".into()),
            client_id: Set(None),
            amr: Set(None),
        })
        .collect();
    for chunk in rows.chunks(500) {
        session::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_caller_that_reads_too_slowly_is_cut_off_and_resumes_from_its_cursor_losing_nothing() {
    let mut app = TestApp::spawn().await;
    let t = app.signup_verified_login("ada@example.com").await;
    let user_id = t.user.as_ref().unwrap().id.clone();
    let n = 6000; // more than the feed's ring of 4096
    insert_sessions(&app.db, &user_id, n - 1).await;

    // A caller with a tiny HTTP/2 window: authd can send it little before it must wait.
    let channel = Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut slow = Watch::try_start(&mut AuthServiceClient::new(channel), 0)
        .await
        .unwrap();
    app.logout(&t.refresh_token, true).await;
    // It does not read while the logout-all streams out, then reads what it was sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seen = Vec::new();
    let status = loop {
        match tokio::time::timeout(EXPECT, slow.stream.message()).await {
            Ok(Ok(Some(r))) => seen.push(r),
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("a slow caller was not cut off (read {})", seen.len()),
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let last = seen.last().map_or(0, |r| r.cursor);
    assert!(
        status.message().contains(&format!("after_cursor {last}")),
        "{status:?}"
    );
    assert!(seen.len() < n, "cut off before the end");

    // Resuming from the cursor in the message gets exactly the rest.
    let mut rest = Watch::start(&app, last).await;
    let rest = rest.take(n - seen.len()).await;
    let all: Vec<_> = seen.iter().chain(&rest).collect();
    assert_eq!(
        all.iter()
            .map(|r| &r.session_id)
            .collect::<HashSet<_>>()
            .len(),
        n,
        "every session once"
    );
    for pair in all.windows(2) {
        assert!(pair[0].cursor < pair[1].cursor);
    }
}

#[tokio::test]
async fn many_streams_at_once_each_see_every_revocation_once() {
    let mut app = TestApp::spawn().await;
    let mut watches = Vec::new();
    for _ in 0..40 {
        watches.push(Watch::start(&app, 0).await);
    }
    // Streams cancelled by their callers go away without disturbing the rest.
    for _ in 0..40 {
        drop(Watch::start(&app, 0).await);
    }
    let tokens = user_with_sessions(&mut app, "ada@example.com", 3).await;
    logout_in_parallel(&tokens, |_| app.client.clone()).await;
    let expected: HashSet<String> = tokens.iter().map(|t| session_of(&t.access_token)).collect();
    for watch in &mut watches {
        let got = watch.take(3).await;
        assert_increasing(&got);
        assert_eq!(sessions(&got).into_iter().collect::<HashSet<_>>(), expected);
    }
}

#[tokio::test]
async fn stopping_authd_ends_open_streams_with_unavailable_and_does_not_wait_for_them() {
    let mut app = TestApp::spawn().await;
    let t = app.signup_verified_login("ada@example.com").await;
    app.logout(&t.refresh_token, false).await;
    let mut watch = Watch::start(&app, 0).await;
    let seen = watch.next().await;
    let started = Instant::now();
    let stopping = tokio::spawn(app.stop());
    let status = watch.end().await.expect_err("ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("after_cursor {}", seen.cursor)),
        "{status:?}"
    );
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn revocations_past_their_tokens_lifetime_are_cleaned_up_and_cursors_still_grow() {
    let mut app = TestApp::spawn_with(&["--access-ttl", "1s", "--cleanup-interval", "1s"]).await;
    let tokens = user_with_sessions(&mut app, "ada@example.com", 2).await;
    app.logout(&tokens[0].refresh_token, false).await;
    let mut watch = Watch::start(&app, 0).await;
    let first = watch.next().await;
    drop(watch);
    // Past the token lifetime and a clean-up round: the backlog no longer holds it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut watch = Watch::start(&app, 0).await;
    assert_eq!(watch.backlog_end, 0);
    watch.assert_quiet().await;
    // Its cursor is still one the database gave out, and the next one is larger.
    let mut resumed = Watch::start(&app, first.cursor).await;
    let mut app = app;
    let more = app.login("ada@example.com", PASSWORD).await.unwrap();
    app.logout(&more.refresh_token, false).await;
    let next = resumed.next().await;
    assert!(next.cursor > first.cursor);
    // A session whose every token has expired ends without a revocation: nothing to refuse.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.logout(&tokens[1].refresh_token, false).await;
    resumed.assert_quiet().await;
}

#[tokio::test]
async fn concurrent_logouts_on_two_authds_all_arrive_in_cursor_order() {
    // Transactions that commit out of cursor order would let a reader skip a cursor for good:
    // logouts in parallel on both replicas, and a stream on each, must all see every one.
    let mut first = TestApp::spawn().await;
    let second = TestApp::spawn_on(first.db.share(), SmtpServer::start().await, &[]).await;
    let mut watches = [
        Watch::start(&first, 0).await,
        Watch::start(&second, 0).await,
    ];
    let tokens = user_with_sessions(&mut first, "ada@example.com", 30).await;
    logout_in_parallel(&tokens, |i| {
        if i % 2 == 0 {
            first.client.clone()
        } else {
            second.client.clone()
        }
    })
    .await;
    let expected: HashSet<String> = tokens.iter().map(|t| session_of(&t.access_token)).collect();
    for watch in &mut watches {
        let got = watch.take(tokens.len()).await;
        assert_increasing(&got);
        assert_eq!(sessions(&got).into_iter().collect::<HashSet<_>>(), expected);
        watch.assert_quiet().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_a_held_stream_waits_new_ones_are_unavailable_and_all_recover() {
    if !TestDb::new_is_postgres() {
        return; // the PostgreSQL pass runs it; it starts a server of its own either way
    }
    let cluster = crate::outage::OwnPostgres::start();
    let mut app = TestApp::spawn_on(
        TestDb::at(cluster.url()),
        SmtpServer::start().await,
        crate::outage::OUTAGE_TIMEOUT,
    )
    .await;
    let tokens = user_with_sessions(&mut app, "ada@example.com", 2).await;
    let mut held = Watch::start(&app, 0).await;

    cluster.down();
    // A new stream cannot read its cursor check: UNAVAILABLE, not INTERNAL, and not a hang.
    let status = tokio::time::timeout(EXPECT, Watch::try_start(&mut app.client, 0))
        .await
        .expect("answered")
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The held stream neither ends nor yields anything made up while the poller fails.
    held.assert_quiet().await;

    cluster.up();
    // Once the database is back, a logout reaches the held stream and a new one alike.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut fresh = loop {
        match Watch::try_start(&mut app.client, 0).await {
            Ok(watch) => break watch,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("the database did not come back: {status:?}"),
        }
    };
    app.logout(&tokens[0].refresh_token, false).await;
    let sid = session_of(&tokens[0].access_token);
    assert_eq!(held.next().await.session_id, sid);
    assert_eq!(fresh.next().await.session_id, sid);
}
