//! Local mode against a real HTTP server on loopback that plays authd's JWKS endpoint, well or
//! badly.

use super::*;
use crate::test_support::{self as t, AUDIENCE, Answer, ISSUER, JwksServer, KID};
use std::time::Duration;

fn settings(url: &str) -> LocalSettings {
    LocalSettings::new(
        JwksSource::Http(url.to_owned()),
        Checks::new(ISSUER, vec![AUDIENCE.into()]),
    )
}

fn one_key() -> Answer {
    Answer::jwks(t::jwks(&[(KID, &t::key(1))]))
}

async fn started(server: &JwksServer, edit: impl FnOnce(&mut LocalSettings)) -> LocalVerifier {
    let mut settings = settings(&server.url);
    edit(&mut settings);
    let verifier = LocalVerifier::start(settings);
    assert!(verifier.ready(Duration::from_secs(10)).await, "no keys");
    verifier
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn tokens_pass_once_the_keys_arrive_after_failed_starts() {
    let server = JwksServer::start(Answer::status(503)).await;
    let verifier = LocalVerifier::start(settings(&server.url));
    let token = t::token(KID, &t::key(1));
    assert_eq!(verifier.verify(&token).await, Err(Refusal::Unavailable));
    assert!(!verifier.ready(Duration::from_millis(300)).await);
    assert!(verifier.key_count() == 0 && server.hits() >= 1);
    server.set(one_key());
    assert!(verifier.ready(Duration::from_secs(10)).await, "retried");
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.issuer, ISSUER);
    assert!(verifier.fetch_count() >= 2 && verifier.key_count() == 1);
}

#[tokio::test]
async fn a_flood_of_made_up_kids_costs_at_most_one_fetch() {
    let server = JwksServer::start(one_key()).await;
    let verifier = started(&server, |_| {}).await;
    let before = server.hits();
    let flood: Vec<_> = (0..1000)
        .map(|i| {
            let verifier = verifier.clone();
            tokio::spawn(async move {
                let token = t::token(&format!("made-up-{i}"), &t::key(1));
                verifier.verify(&token).await
            })
        })
        .collect();
    for task in flood {
        assert_eq!(task.await.unwrap(), Err(Refusal::UnknownKey));
    }
    for i in 0..100 {
        let token = t::token(&format!("later-{i}"), &t::key(1));
        assert_eq!(verifier.verify(&token).await, Err(Refusal::UnknownKey));
    }
    assert!(
        server.hits() - before <= 1,
        "{} fetches",
        server.hits() - before
    );
    // Good tokens still pass, with no fetch.
    assert!(verifier.verify(&t::token(KID, &t::key(1))).await.is_ok());
    assert!(server.hits() - before <= 1);
}

#[tokio::test]
async fn a_key_added_at_authd_is_found_by_one_refetch() {
    let server = JwksServer::start(one_key()).await;
    let verifier = started(&server, |_| {}).await;
    let before = verifier.fetch_count();
    server.set(Answer::jwks(t::jwks(&[
        (KID, &t::key(1)),
        ("key-2", &t::key(2)),
    ])));
    let token = t::token("key-2", &t::key(2));
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(verifier.fetch_count(), before + 1);
    // A key added after that waits for the interval (or the next refresh).
    server.set(Answer::jwks(t::jwks(&[("key-3", &t::key(3))])));
    let token = t::token("key-3", &t::key(3));
    assert_eq!(verifier.verify(&token).await, Err(Refusal::UnknownKey));
    assert_eq!(verifier.fetch_count(), before + 1);
}

#[tokio::test]
async fn max_age_is_honoured_and_a_failed_refresh_keeps_the_last_good_keys() {
    let fast = JwksServer::start(one_key().with("cache-control", "public, max-age=1")).await;
    let slow = JwksServer::start(one_key()).await;
    let verifier = started(&fast, |s| s.min_refetch_interval = Duration::from_secs(1)).await;
    let steady = started(&slow, |s| s.min_refetch_interval = Duration::from_secs(1)).await;
    assert!(
        eventually(|| fast.hits() >= 3).await,
        "refreshed before max-age ran out"
    );
    assert_eq!(slow.hits(), 1, "no max-age: the 5 min default");
    assert_eq!(steady.key_count(), 1);

    let token = t::token(KID, &t::key(1));
    for broken in [
        Answer::status(500).with("cache-control", "max-age=1"),
        Answer::jwks("{not json".into()),
        Answer::jwks(r#"{"keys":[]}"#.into()),
        Answer::jwks(t::jwks(&[])),
    ] {
        let hits = fast.hits();
        fast.set(broken);
        assert!(eventually(|| fast.hits() > hits).await, "kept refreshing");
        assert!(
            verifier.verify(&token).await.is_ok(),
            "the last good keys stay"
        );
        assert_eq!(verifier.key_count(), 1);
    }
}

#[tokio::test]
async fn an_unchanged_set_is_revalidated_with_its_etag() {
    let answer = one_key()
        .with("cache-control", "max-age=1")
        .with("etag", "\"v1\"");
    let server = JwksServer::start(answer).await;
    let verifier = started(&server, |s| s.min_refetch_interval = Duration::from_secs(1)).await;
    assert!(eventually(|| server.hits() >= 3).await);
    assert_eq!(
        server.written.load(std::sync::atomic::Ordering::SeqCst),
        one_key().body.len()
    );
    assert!(verifier.verify(&t::token(KID, &t::key(1))).await.is_ok());
}

#[tokio::test]
async fn oversized_answers_are_cut_off() {
    let big = vec![b' '; 1024 * 1024];
    let declared = JwksServer::start(Answer {
        body: big.clone(),
        ..one_key()
    })
    .await;
    let streamed = JwksServer::start(Answer {
        body: vec![b' '; 64 * 1024],
        repeat: Some(1600), // 100 MiB with no content-length
        ..one_key()
    })
    .await;
    for server in [&declared, &streamed] {
        let verifier = LocalVerifier::start(settings(&server.url));
        assert!(!verifier.ready(Duration::from_millis(1500)).await);
        assert!(server.hits() >= 1);
    }
    let written = streamed.written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        written < 32 * 1024 * 1024,
        "{written} bytes sent before the client hung up"
    );
}

#[tokio::test]
async fn bad_sources_refuse_tokens_as_unavailable() {
    for source in [
        JwksSource::Http("https://authd.example/.well-known/jwks.json".into()),
        JwksSource::Http("not a url".into()),
        JwksSource::Grpc("not a uri".into()),
        JwksSource::Http("http://127.0.0.1:1/.well-known/jwks.json".into()),
    ] {
        let checks = Checks::new(ISSUER, vec![AUDIENCE.into()]);
        let verifier = LocalVerifier::start(LocalSettings::new(source.clone(), checks));
        assert!(
            !verifier.ready(Duration::from_millis(200)).await,
            "{source}"
        );
        let token = t::token(KID, &t::key(1));
        assert_eq!(verifier.verify(&token).await, Err(Refusal::Unavailable));
        assert!(verifier.fetch_count() >= 1);
    }
}

#[test]
fn outside_a_runtime_every_token_is_unavailable() {
    let verifier = LocalVerifier::start(settings("http://127.0.0.1:1/jwks.json"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = t::token(KID, &t::key(1));
    let verdict = runtime.block_on(verifier.verify(&token));
    assert_eq!(verdict, Err(Refusal::Unavailable));
    assert!(!runtime.block_on(verifier.ready(Duration::from_millis(100))));
}

#[tokio::test]
async fn each_failure_is_one_warning_naming_the_url_and_tokens_are_never_logged() {
    use tower::{Layer, ServiceExt};
    let (logs, _guard) = t::Logs::capture();
    let server = JwksServer::start(Answer::status(503)).await;
    let verifier = LocalVerifier::start(settings(&server.url));
    assert!(eventually(|| server.hits() >= 2).await);
    server.set(one_key());
    assert!(verifier.ready(Duration::from_secs(10)).await);
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert!(warnings.len() >= 2, "{text}");
    for line in &warnings {
        assert!(
            line.contains(&server.url) && line.contains("HTTP 503"),
            "{line}"
        );
    }

    // Refused and accepted tokens through the layer: the reason is logged, the token is not.
    let echo = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let service = crate::AuthLayer::new(verifier.clone()).layer(echo);
    let forged = t::token(KID, &t::key(9));
    let good = t::token(KID, &t::key(1));
    for token in [&forged, &good] {
        let request = http::Request::builder()
            .uri("/x.Y/Z")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        service.clone().oneshot(request).await.unwrap();
    }
    let text = logs.text();
    assert!(text.contains("Signature"), "{text}");
    for token in [&forged, &good] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a token reached the log");
    }
}
