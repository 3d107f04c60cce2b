//! Revocation-aware local mode: the set and its clock alone, then a real `LocalVerifier` against
//! a fake authd on loopback (a real gRPC server) that streams, breaks, restarts and lies still.

use super::*;
use crate::fake_authd::FakeAuthd;
use crate::test_support::{self as t, AUDIENCE, Answer, ISSUER, JwksServer, KID};
use crate::{Checks, JwksSource, LocalSettings, LocalVerifier};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn session(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

/// A token like authd's for session `n`.
fn token(n: u128) -> String {
    let mut claims = t::claims(t::now());
    claims["sid"] = json!(session(n).to_string());
    t::sign(&t::header(), &claims, &t::key(1))
}

fn later() -> i64 {
    t::now() + 900
}

struct Setup {
    fake: FakeAuthd,
    _jwks: JwksServer,
}

async fn setup() -> Setup {
    Setup {
        fake: FakeAuthd::start().await,
        _jwks: JwksServer::start(Answer::jwks(t::jwks(&[(KID, &t::key(1))]))).await,
    }
}

impl Setup {
    /// A verifier with keys, not waiting for the stream.
    async fn verifier(&self, edit: impl FnOnce(&mut RevocationSettings)) -> LocalVerifier {
        let mut revocations = RevocationSettings::new(self.fake.endpoint.clone());
        edit(&mut revocations);
        let settings = LocalSettings::new(
            JwksSource::Http(self._jwks.url.clone()),
            Checks::new(ISSUER, vec![AUDIENCE.into()]),
        )
        .with_revocations(revocations);
        let verifier = LocalVerifier::start(settings);
        assert!(verifier.ready(Duration::from_secs(10)).await, "no keys");
        verifier
    }

    async fn caught_up(&self, edit: impl FnOnce(&mut RevocationSettings)) -> LocalVerifier {
        let verifier = self.verifier(edit).await;
        assert!(verifier.caught_up(Duration::from_secs(10)).await);
        verifier
    }
}

/// How long until `verifier` refuses `token` with `refusal` (polled every 10 ms, up to 10 s).
async fn until_refused(verifier: &LocalVerifier, token: &str, refusal: Refusal) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if verifier.verify(token).await == Err(refusal) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still not {refusal:?} after 10 s");
}

#[test]
fn the_set_keeps_entries_until_not_after_plus_the_leeway() {
    let (state, _stopped) = State::new("e".into(), Duration::ZERO, Duration::from_secs(30));
    let now = 1_000_000;
    state.insert(session(1), now + 60, now);
    state.insert(session(2), now - 10, now); // expired, but within the leeway: kept
    state.insert(session(3), now - 31, now); // past the leeway: never kept
    state.insert(session(1), now - 100, now); // an older deadline never shortens one
    assert_eq!(state.len(), 2);
    assert!(state.is_revoked(&session(1)) && state.is_revoked(&session(2)));
    assert!(!state.is_revoked(&session(3)) && !state.is_revoked(&session(4)));
    state.prune(now + 19);
    assert_eq!(state.len(), 2, "session 2 is kept until now + 20");
    state.prune(now + 20);
    assert!(!state.is_revoked(&session(2)) && state.is_revoked(&session(1)));
    state.prune(now + 89);
    assert!(state.is_revoked(&session(1)));
    state.prune(now + 90);
    assert_eq!(state.len(), 0);
}

#[test]
fn the_bound_counts_from_the_break_and_start_up_gets_none() {
    let (state, _stopped) = State::new("e".into(), Duration::from_millis(300), Duration::ZERO);
    assert_eq!(state.link(), Link::Never);
    assert!(!state.trusted(), "nothing known before the first catch-up");
    state.lost();
    assert!(
        !state.trusted(),
        "a break before any catch-up gives no grace"
    );
    state.caught_up();
    assert!(state.trusted());
    state.lost();
    assert!(state.trusted(), "within the bound");
    std::thread::sleep(Duration::from_millis(200));
    state.lost(); // a second failure does not restart the clock
    std::thread::sleep(Duration::from_millis(150));
    assert!(!state.trusted(), "past the bound");
    state.caught_up();
    assert!(state.trusted());
}

#[tokio::test]
async fn the_backlog_and_live_revocations_are_refused_and_other_sessions_pass() {
    let s = setup().await;
    s.fake.revoke(session(1), later());
    s.fake.revoke(session(9), t::now() - 5); // its tokens have all expired: not kept
    let verifier = s.caught_up(|_| {}).await;
    assert_eq!(verifier.verify(&token(1)).await, Err(Refusal::Revoked));
    assert_eq!(
        verifier.verify(&token(2)).await.unwrap().session_id,
        session(2)
    );
    assert_eq!(verifier.revoked_count(), 1);

    s.fake.revoke(session(2), later());
    let took = until_refused(&verifier, &token(2), Refusal::Revoked).await;
    println!("live revocation refused after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(verifier.revoked_count(), 2);
    assert!(verifier.is_caught_up() && verifier.reconnect_count() == 0);
    assert_eq!(s.fake.script.introspects.load(Ordering::SeqCst), 0);
    assert_eq!(
        Refusal::Revoked.to_string(),
        "access token's session has ended"
    );
}

#[tokio::test]
async fn after_a_break_or_a_restart_the_stream_resumes_from_its_cursor() {
    let mut s = setup().await;
    s.fake.revoke(session(1), later());
    let verifier = s.caught_up(|_| {}).await;
    let cursor = s.fake.revoke(session(2), later());
    until_refused(&verifier, &token(2), Refusal::Revoked).await;

    s.fake.cut(tonic::Status::unavailable("a break"));
    assert!(eventually(|| s.fake.asked().len() == 2).await);
    assert_eq!(s.fake.asked(), [0, cursor], "resumed from the cursor");
    assert!(verifier.caught_up(Duration::from_secs(5)).await);
    s.fake.revoke(session(3), later());
    until_refused(&verifier, &token(3), Refusal::Revoked).await;

    s.fake.stop().await;
    assert_eq!(
        verifier.verify(&token(4)).await.map(|c| c.session_id),
        Ok(session(4))
    );
    s.fake.restart().await;
    assert!(eventually(|| verifier.is_caught_up() && s.fake.asked().contains(&(cursor + 1))).await);
    s.fake.revoke(session(4), later());
    until_refused(&verifier, &token(4), Refusal::Revoked).await;
    assert!(
        verifier.reconnect_count() >= 2,
        "{}",
        verifier.reconnect_count()
    );
    assert_eq!(verifier.revoked_count(), 4);
}

#[tokio::test]
async fn a_slow_reader_cut_off_resumes_and_stays_trusted() {
    let s = setup().await;
    let verifier = s
        .caught_up(|r| r.when_disconnected = WhenDisconnected::FailClosed)
        .await;
    let cursor = s.fake.revoke(session(1), later());
    until_refused(&verifier, &token(1), Refusal::Revoked).await;
    s.fake.cut(tonic::Status::resource_exhausted("too slow"));
    // No moment without an answer: within the bound the set still decides.
    for _ in 0..20 {
        assert!(verifier.verify(&token(2)).await.is_ok());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(eventually(|| s.fake.asked().len() == 2).await);
    assert_eq!(s.fake.asked(), [0, cursor]);
    assert!(verifier.caught_up(Duration::from_secs(5)).await);
    s.fake.revoke(session(2), later());
    until_refused(&verifier, &token(2), Refusal::Revoked).await;
}

#[tokio::test]
async fn a_cursor_of_a_replaced_database_starts_again_from_zero_keeping_what_it_knew() {
    let s = setup().await;
    s.fake.revoke(session(1), later());
    s.fake.revoke(session(2), later());
    let verifier = s.caught_up(|_| {}).await;
    s.fake.replace_database();
    s.fake.cut(tonic::Status::unavailable("replaced"));
    s.fake.revoke(session(3), later()); // cursor 1 of the new database
    until_refused(&verifier, &token(3), Refusal::Revoked).await;
    assert_eq!(s.fake.asked(), [0, 2, 0], "OUT_OF_RANGE, then from 0");
    for n in [1, 2] {
        assert_eq!(verifier.verify(&token(n)).await, Err(Refusal::Revoked));
    }
}

#[tokio::test]
async fn fail_closed_refuses_once_the_bound_has_passed_then_recovers() {
    let mut s = setup().await;
    s.fake.revoke(session(1), later());
    let verifier = s
        .caught_up(|r| {
            r.when_disconnected = WhenDisconnected::FailClosed;
            r.max_disconnected = Duration::from_millis(500);
        })
        .await;
    s.fake.stop().await;
    assert!(verifier.verify(&token(2)).await.is_ok(), "within the bound");
    let took = until_refused(&verifier, &token(2), Refusal::Unavailable).await;
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert!(!verifier.is_caught_up());
    assert_eq!(verifier.verify(&token(1)).await, Err(Refusal::Revoked));
    s.fake.restart().await;
    assert!(verifier.caught_up(Duration::from_secs(5)).await);
    assert!(verifier.verify(&token(2)).await.is_ok());
    assert_eq!(s.fake.script.introspects.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_introspect_fallback_asks_authd_per_token_until_the_stream_is_back() {
    let s = setup().await;
    let verifier = s
        .caught_up(|r| r.max_disconnected = Duration::from_millis(300))
        .await;
    s.fake.script.refuse_streams.store(true, Ordering::SeqCst);
    s.fake
        .cut(tonic::Status::unavailable("streams only are broken"));
    s.fake.revoke(session(1), later()); // no stream hears it
    assert!(verifier.verify(&token(1)).await.is_ok(), "within the bound");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let asked = s.fake.script.introspects.load(Ordering::SeqCst);
    assert_eq!(verifier.verify(&token(1)).await, Err(Refusal::Inactive));
    assert_eq!(
        verifier.verify(&token(2)).await.unwrap().session_id,
        session(2)
    );
    assert_eq!(s.fake.script.introspects.load(Ordering::SeqCst), asked + 2);

    s.fake.script.refuse_streams.store(false, Ordering::SeqCst);
    assert!(verifier.caught_up(Duration::from_secs(5)).await);
    let asked = s.fake.script.introspects.load(Ordering::SeqCst);
    assert_eq!(verifier.verify(&token(1)).await, Err(Refusal::Revoked));
    assert!(verifier.verify(&token(2)).await.is_ok());
    assert_eq!(s.fake.script.introspects.load(Ordering::SeqCst), asked);
}

#[tokio::test]
async fn until_the_first_catch_up_nothing_is_trusted() {
    let s = setup().await;
    s.fake.revoke(session(1), later());
    s.fake.hold_backlog(true);
    let closed = s
        .verifier(|r| r.when_disconnected = WhenDisconnected::FailClosed)
        .await;
    let introspecting = s.verifier(|_| {}).await;
    assert!(eventually(|| s.fake.script.open_streams.load(Ordering::SeqCst) == 2).await);
    assert!(!closed.is_caught_up() && !introspecting.is_caught_up());
    assert_eq!(closed.verify(&token(2)).await, Err(Refusal::Unavailable));
    assert_eq!(
        introspecting.verify(&token(1)).await,
        Err(Refusal::Inactive)
    );
    assert!(introspecting.verify(&token(2)).await.is_ok());
    assert_eq!(s.fake.script.introspects.load(Ordering::SeqCst), 2);

    s.fake.hold_backlog(false);
    assert!(closed.caught_up(Duration::from_secs(5)).await);
    assert!(introspecting.caught_up(Duration::from_secs(5)).await);
    for verifier in [&closed, &introspecting] {
        assert_eq!(verifier.verify(&token(1)).await, Err(Refusal::Revoked));
        assert!(verifier.verify(&token(2)).await.is_ok());
    }
    assert_eq!(s.fake.script.introspects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_silently_cut_network_is_noticed_within_a_few_seconds() {
    let s = setup().await;
    let verifier = s
        .caught_up(|r| {
            r.when_disconnected = WhenDisconnected::FailClosed;
            r.max_disconnected = Duration::from_millis(100);
        })
        .await;
    s.fake.freeze(true);
    let took = until_refused(&verifier, &token(2), Refusal::Unavailable).await;
    println!("a frozen network noticed (plus the 100 ms bound) after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    s.fake.freeze(false);
    assert!(verifier.caught_up(Duration::from_secs(10)).await);
    assert!(verifier.verify(&token(2)).await.is_ok());
}

#[tokio::test]
async fn dropping_the_verifier_ends_its_stream() {
    let s = setup().await;
    let verifier = s.caught_up(|_| {}).await;
    let clone = verifier.clone();
    assert_eq!(s.fake.script.open_streams.load(Ordering::SeqCst), 1);
    drop(verifier);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.fake.script.open_streams.load(Ordering::SeqCst),
        1,
        "a clone holds it"
    );
    drop(clone);
    assert!(eventually(|| s.fake.script.open_streams.load(Ordering::SeqCst) == 0).await);
}

#[tokio::test]
async fn an_endpoint_that_is_not_a_uri_refuses_every_token() {
    let s = setup().await;
    let settings = LocalSettings::new(
        JwksSource::Http(s._jwks.url.clone()),
        Checks::new(ISSUER, vec![AUDIENCE.into()]),
    )
    .with_revocations(RevocationSettings::new("not a uri"));
    let verifier = LocalVerifier::start(settings);
    assert!(verifier.ready(Duration::from_secs(10)).await);
    assert_eq!(verifier.verify(&token(2)).await, Err(Refusal::Unavailable));
    let text = format!("{:?}", {
        let mut r = RevocationSettings::new("http://a");
        r.client = Some(("svc".into(), "s3cret-value".into()));
        r
    });
    assert!(text.contains("svc") && !text.contains("s3cret"), "{text}");
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
