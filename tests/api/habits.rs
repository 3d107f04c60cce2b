//! The habits example (`examples/habits`) against a real authd: habits runs in-process on port 0,
//! pointed at the test authd's HTTP JWKS (local mode) or its gRPC port (remote mode), and is
//! called over TCP with its generated client, tokens from authd's real Login.
//!
//! authd's database follows `AUTHD_TEST_DATABASE` (SQLite or PostgreSQL); habits always keeps
//! its own SQLite file.

mod harness;

use crate::helpers::{TestApp, code};
use ::habits::AuthdSettings;
use ::habits::pb::{CreateHabitRequest, ListHabitsRequest};
use harness::{Habits, bearer, list_services};
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn each_user_sees_and_deletes_only_their_own_habits() {
    let mut authd = TestApp::spawn().await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let bob = authd.signup_verified_login("bob@example.com").await;
    let mut habits = Habits::local(&authd).await;
    let (ada_token, bob_token) = (&ada.access_token, &bob.access_token);

    let read = habits
        .create(ada_token, "  Read  ", "ten pages")
        .await
        .unwrap();
    assert_eq!(
        (read.name.as_str(), read.description.as_str()),
        ("Read", "ten pages")
    );
    let created = read.created_at.unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - 60..=now + 1).contains(&created.seconds),
        "{created:?}"
    );
    let run = habits.create(ada_token, "Run", "").await.unwrap();
    let stretch = habits.create(bob_token, "Stretch", "").await.unwrap();

    assert_eq!(
        habits.list(ada_token).await.unwrap(),
        vec![run.clone(), read.clone()]
    );
    assert_eq!(habits.list(bob_token).await.unwrap(), vec![stretch.clone()]);

    // Another user's habit is as absent as one that does not exist, in code and message.
    let foreign = habits.delete(bob_token, &read.id).await.unwrap_err();
    let missing = habits
        .delete(bob_token, &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(
        (foreign.code(), foreign.message()),
        (missing.code(), missing.message())
    );
    assert_eq!(
        habits.list(ada_token).await.unwrap().len(),
        2,
        "bob deleted ada's habit"
    );

    habits.delete(ada_token, &read.id).await.unwrap();
    assert_eq!(
        code(habits.delete(ada_token, &read.id).await),
        Code::NotFound
    );
    assert_eq!(habits.list(ada_token).await.unwrap(), vec![run]);
    assert_eq!(habits.list(bob_token).await.unwrap(), vec![stretch]);

    // The owner column is the token's subject.
    let mut owners = vec![ada.user.unwrap().id, bob.user.unwrap().id];
    owners.sort();
    assert_eq!(habits.stored_owners().await, owners);
    habits.stop().await;
}

#[tokio::test]
async fn missing_bad_and_foreign_tokens_are_unauthenticated() {
    let mut authd = TestApp::spawn().await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let mut other = TestApp::spawn_with(&["--issuer", "http://other.test"]).await;
    let foreign = other.signup_verified_login("ada@example.com").await;
    let mut habits = Habits::local(&authd).await;

    let no_token = habits
        .client
        .list_habits(ListHabitsRequest {})
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
    let mut tampered = ada.access_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let mut basic = tonic::Request::new(ListHabitsRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic YWRhOnB3".parse().unwrap());
    assert_eq!(
        code(habits.client.list_habits(basic).await),
        Code::Unauthenticated
    );
    // Longer than any token the verifier reads (8 KiB), shorter than HTTP/2's header limit.
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(3000),
        "c".repeat(3000)
    );
    for (what, token) in [
        ("garbage", "not-a-jwt"),
        ("empty", ""),
        ("tampered signature", tampered.as_str()),
        ("the refresh token", ada.refresh_token.as_str()),
        ("another authd's token", foreign.access_token.as_str()),
        ("huge", huge.as_str()),
    ] {
        let refused = habits.create(token, "Sneak in", "").await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}");
        assert!(
            !refused.message().contains(token) || token.is_empty(),
            "{what} echoed"
        );
    }
    // Nothing got in on the way.
    assert!(habits.list(&ada.access_token).await.unwrap().is_empty());
    assert!(habits.stored_owners().await.is_empty());

    // authd's own valid token, but not of the issuer or audience this service expects.
    for mut strict in [
        Habits::local_expecting(&authd, "http://other.test", "authd").await,
        Habits::local_expecting(&authd, "http://authd.test", "habits").await,
    ] {
        assert_eq!(
            code(strict.list(&ada.access_token).await),
            Code::Unauthenticated
        );
        strict.stop().await;
    }
    habits.stop().await;
}

#[tokio::test]
async fn remote_mode_refuses_at_once_after_logout_local_mode_until_expiry() {
    let mut authd = TestApp::spawn_with(&["--access-ttl", "3s"]).await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let mut local = Habits::local(&authd).await;
    let mut remote = Habits::remote(&authd).await;
    let token = &ada.access_token;
    local.create(token, "Read", "").await.unwrap();
    remote.create(token, "Read", "").await.unwrap();
    assert_eq!(remote.list(token).await.unwrap().len(), 1);

    authd.logout(&ada.refresh_token, false).await;
    // Remote mode asks authd about every call: the session is over, so is the token.
    assert_eq!(code(remote.list(token).await), Code::Unauthenticated);
    assert_eq!(
        code(remote.create(token, "Again", "").await),
        Code::Unauthenticated
    );
    // Local mode checks the signature and claims only: the token is good until it expires. That
    // is the trade-off of checking without a round trip (the README says so).
    assert_eq!(local.list(token).await.unwrap().len(), 1);
    local.create(token, "Still in", "").await.unwrap();

    let exp = ada.expires_in;
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(exp).unwrap() * 1000 + 1100,
    ))
    .await;
    assert_eq!(
        code(local.list(token).await),
        Code::Unauthenticated,
        "expired"
    );
    local.stop().await;
    remote.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_token() {
    let authd = TestApp::spawn().await;
    let habits = Habits::local(&authd).await;
    for service in ["", "habits.v1.Habits"] {
        assert_eq!(
            habits.health(service).await,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let channel = Channel::from_shared(format!("http://{}", habits.addr))
        .unwrap()
        .connect_lazy();
    let v1 = list_services!(v1, channel.clone());
    let v1alpha = list_services!(v1alpha, channel);
    for services in [v1, v1alpha] {
        assert!(
            services.contains(&"habits.v1.Habits".to_owned()),
            "{services:?}"
        );
        assert!(
            services.contains(&"grpc.health.v1.Health".to_owned()),
            "{services:?}"
        );
    }
    habits.stop().await;
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_stores_nothing() {
    let mut authd = TestApp::spawn().await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let mut habits = Habits::local(&authd).await;
    let token = &ada.access_token;
    let long_name = "n".repeat(101);
    let long_description = "d".repeat(1001);
    for (what, name, description, field) in [
        ("empty name", "", "", "name"),
        ("blank name", " \t ", "", "name"),
        ("name of 101 characters", long_name.as_str(), "", "name"),
        ("control character in name", "Re\u{0}ad", "", "name"),
        ("escape sequence in name", "\u{1b}[2JRead", "", "name"),
        ("right-to-left override", "Read\u{202E}", "", "name"),
        (
            "description of 1001 characters",
            "Read",
            long_description.as_str(),
            "description",
        ),
        (
            "newline in description",
            "Read",
            "two\nlines",
            "description",
        ),
    ] {
        let refused = habits.create(token, name, description).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}");
        assert!(
            refused.message().starts_with(field),
            "{what}: {}",
            refused.message()
        );
    }
    // The limits themselves are fine, counted in characters.
    habits
        .create(token, &"é".repeat(100), &"ü".repeat(1000))
        .await
        .unwrap();
    // Far too large for any habit: refused before it is decoded (habits reads at most 64 KiB;
    // OUT_OF_RANGE is tonic's code for a message over the limit).
    let huge = habits
        .create(token, "Read", &"d".repeat(1 << 20))
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::OutOfRange, "{huge:?}");
    for id in ["", "42", "not-a-uuid", "'; DROP TABLE habits; --"] {
        let refused = habits.delete(token, id).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{id:?}");
    }
    assert_eq!(habits.list(token).await.unwrap().len(), 1);
    habits.stop().await;
}

#[tokio::test]
async fn parallel_creates_of_one_user_are_all_kept() {
    let mut authd = TestApp::spawn().await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let habits = Habits::local(&authd).await;
    let calls = (0..24).map(|n| {
        let mut client = habits.client.clone();
        let token = ada.access_token.clone();
        tokio::spawn(async move {
            let request = CreateHabitRequest {
                name: format!("habit {n}"),
                description: String::new(),
            };
            client
                .create_habit(bearer(request, &token))
                .await
                .map(|r| r.into_inner().id)
        })
    });
    let mut ids: Vec<String> = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        ids.push(call.await.unwrap().unwrap());
    }
    let mut habits = habits;
    let mut listed: Vec<String> = habits
        .list(&ada.access_token)
        .await
        .unwrap()
        .into_iter()
        .map(|habit| habit.id)
        .collect();
    ids.sort();
    listed.sort();
    assert_eq!(listed, ids);
    habits.stop().await;
}

#[tokio::test]
async fn without_authd_calls_are_unavailable_and_health_not_serving() {
    let mut authd = TestApp::spawn().await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let token = &ada.access_token;

    // Local mode with a JWKS URL nobody answers: the keys never arrive.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!(
        "http://{}/.well-known/jwks.json",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let mut keyless = Habits::start(AuthdSettings::Local {
        jwks_url,
        issuer: "http://authd.test".into(),
        audiences: vec!["authd".into()],
        revocations: None,
    })
    .await;
    assert_eq!(keyless.health("").await, ServingStatus::NotServing as i32);
    assert_eq!(
        keyless.health("habits.v1.Habits").await,
        ServingStatus::NotServing as i32
    );
    assert_eq!(code(keyless.list(token).await), Code::Unavailable);
    keyless.stop().await;

    // Remote mode whose authd goes away: UNAVAILABLE (worth a retry), not UNAUTHENTICATED.
    let mut remote = Habits::remote(&authd).await;
    remote.create(token, "Read", "").await.unwrap();
    authd.stop().await;
    assert_eq!(code(remote.list(token).await), Code::Unavailable);
    remote.stop().await;
}

#[tokio::test]
async fn revocation_aware_mode_refuses_a_logged_out_token_within_a_second() {
    let mut authd = TestApp::spawn().await;
    let ada = authd.signup_verified_login("ada@example.com").await;
    let bob = authd.signup_verified_login("bob@example.com").await;
    let mut habits = Habits::revocation_aware(&authd, |_| {}).await;
    let token = &ada.access_token;
    habits.create(token, "Read", "").await.unwrap();
    habits.create(&bob.access_token, "Run", "").await.unwrap();

    authd.logout(&ada.refresh_token, false).await;
    let start = std::time::Instant::now();
    while code(habits.list(token).await) != Code::Unauthenticated {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted 1 s after Logout returned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "habits refused the logged-out token {:?} after Logout",
        start.elapsed()
    );
    let refused = habits.list(token).await.unwrap_err();
    assert_eq!(refused.message(), "access token's session has ended");
    assert_eq!(habits.list(&bob.access_token).await.unwrap().len(), 1);
    habits.stop().await;
}
