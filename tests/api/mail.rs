//! Mail delivery: a signup never fails because SMTP is down, queued mails are retried and survive
//! a restart, delivered mails leave the outbox, mails refused for good are dropped rather than
//! retried forever, and mails carry the configured sender and links.

use crate::helpers::{PASSWORD, TestApp, TestDb};
use crate::smtp::{SmtpServer, extract_token};
use authd::db::entity::mail_outbox;
use authd::pb::{self, auth_service_client::AuthServiceClient};
use sea_orm::{EntityTrait, PaginatorTrait};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;

/// Retries start at 1 s and double; by the fourth retry 15 s have passed.
const RETRY_WAIT: Duration = Duration::from_secs(15);

/// Polls the outbox until `done` holds for its rows, or panics after `within`.
async fn wait_for_outbox(
    app: &TestApp,
    within: Duration,
    what: &str,
    done: impl Fn(&[mail_outbox::Model]) -> bool,
) -> Vec<mail_outbox::Model> {
    let db = app.db.connect().await;
    let deadline = Instant::now() + within;
    loop {
        let rows = mail_outbox::Entity::find().all(&db).await.unwrap();
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "outbox never reached: {what}; rows: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the single queued mail has failed at least once.
async fn wait_for_failed_attempt(app: &TestApp) -> mail_outbox::Model {
    let rows = wait_for_outbox(app, Duration::from_secs(5), "a failed attempt", |rows| {
        rows.len() == 1 && rows[0].attempts > 0 && rows[0].last_error.is_some()
    })
    .await;
    rows.into_iter().next().unwrap()
}

async fn verify(app: &mut TestApp, token: String) -> pb::User {
    app.client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect("the mailed token verifies the email")
        .into_inner()
        .user
        .unwrap()
}

#[tokio::test]
async fn signup_succeeds_while_smtp_is_down_and_the_mail_follows_when_it_is_up() {
    let smtp = SmtpServer::reserve().await;
    let mut app = TestApp::spawn_on(TestDb::new().await, smtp, &[]).await;

    let user = app.signup("down@example.com").await;
    assert!(!user.email_verified);
    let queued = wait_for_failed_attempt(&app).await;
    assert_eq!(queued.recipient, "down@example.com");
    assert_eq!(app.smtp.count(), 0);

    app.smtp.come_up().await;
    let mail = app
        .smtp
        .wait_for_mail_to("down@example.com", RETRY_WAIT)
        .await;
    let verified = verify(&mut app, extract_token(&mail.body, "verify-email")).await;
    assert!(verified.email_verified);
    app.login("down@example.com", PASSWORD)
        .await
        .expect("login after verification");
}

#[tokio::test]
async fn a_queued_mail_survives_a_restart() {
    let smtp = SmtpServer::reserve().await;
    let mut app = TestApp::spawn_on(TestDb::new().await, smtp, &[]).await;
    app.signup("restart@example.com").await;
    wait_for_failed_attempt(&app).await;

    let (db, smtp) = app.stop().await;
    smtp.come_up().await;
    assert_eq!(smtp.count(), 0, "nothing was sent before the restart");
    let mut app = TestApp::spawn_on(db, smtp, &[]).await;
    let mail = app
        .smtp
        .wait_for_mail_to("restart@example.com", RETRY_WAIT)
        .await;
    verify(&mut app, extract_token(&mail.body, "verify-email")).await;
}

#[tokio::test]
async fn a_delivered_mail_leaves_the_outbox() {
    let mut app = TestApp::spawn().await;
    app.signup("gone@example.com").await;
    let mail = app
        .smtp
        .wait_for_mail_to("gone@example.com", crate::helpers::MAIL_WAIT)
        .await;
    let token = extract_token(&mail.body, "verify-email");
    wait_for_outbox(&app, Duration::from_secs(5), "empty", <[_]>::is_empty).await;

    // Nothing in the database holds the one-time link any more.
    let db = app.db.connect().await;
    assert_eq!(mail_outbox::Entity::find().count(&db).await.unwrap(), 0);
    let tokens = authd::db::entity::one_time_token::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(!format!("{tokens:?}").contains(&token));
    verify(&mut app, token).await;
}

#[tokio::test]
async fn a_mail_refused_for_good_is_dropped_and_others_still_go_out() {
    let mut app = TestApp::spawn().await;
    app.smtp.refuse_recipient("bounce@example.com");
    app.signup("bounce@example.com").await;
    // The refusal (550) is final: the mail leaves the outbox instead of being retried forever.
    wait_for_outbox(
        &app,
        Duration::from_secs(5),
        "the refused mail dropped",
        |rows| rows.is_empty(),
    )
    .await;
    assert_eq!(app.smtp.refusals(), 1);

    // Mail to others still flows, and the refused one is not tried again meanwhile.
    app.signup("fine@example.com").await;
    app.mailed_token("fine@example.com", "verify-email").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.smtp.refusals(), 1, "a permanent refusal is not retried");
    let metrics = app.http_get("/metrics").await.body;
    assert!(
        metrics.contains("authd_mail_undeliverable_total 1"),
        "{metrics}"
    );
}

/// A client that claims to be talking to evil.example, as a proxy or attacker might.
async fn spoofing_client(app: &TestApp) -> AuthServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthServiceClient::with_origin(channel, "https://evil.example".parse().unwrap())
}

fn spoofed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    for (name, value) in [
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "http"),
        ("forwarded", "host=evil.example;proto=http"),
        ("origin", "https://evil.example"),
        ("referer", "https://evil.example/signup"),
    ] {
        metadata.insert(name, value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn mails_come_from_the_configured_sender_with_links_to_the_configured_app() {
    let app = TestApp::spawn().await;
    let mut client = spoofing_client(&app).await;
    client
        .signup(spoofed(pb::SignupRequest {
            email: "links@example.com".into(),
            password: PASSWORD.into(),
            name: "Test User".into(),
        }))
        .await
        .expect("signup");
    let verify_mail = app
        .smtp
        .wait_for_mail_to("links@example.com", crate::helpers::MAIL_WAIT)
        .await;
    client
        .request_password_reset(spoofed(pb::RequestPasswordResetRequest {
            email: "links@example.com".into(),
        }))
        .await
        .expect("reset request");
    let reset_mail = app
        .smtp
        .wait_for_mail_to("links@example.com", crate::helpers::MAIL_WAIT)
        .await;

    for (mail, path) in [
        (&verify_mail, "verify-email"),
        (&reset_mail, "reset-password"),
    ] {
        let from = mail
            .raw
            .lines()
            .take_while(|line| !line.is_empty())
            .find(|line| line.to_ascii_lowercase().starts_with("from:"))
            .expect("From header");
        assert!(from.contains("no-reply@authd.test"), "{from}");
        assert_eq!(mail.from, "no-reply@authd.test", "envelope sender");
        assert_eq!(mail.to, vec!["links@example.com".to_owned()]);
        assert!(
            mail.body
                .contains(&format!("https://app.example/{path}?token=")),
            "{}",
            mail.body
        );
        assert!(!mail.raw.contains("evil"), "{}", mail.raw);
        let links: Vec<&str> = mail
            .body
            .split_whitespace()
            .filter(|w| w.contains("://"))
            .collect();
        assert_eq!(links.len(), 1, "{}", mail.body);
        assert!(links[0].starts_with("https://app.example/"), "{links:?}");
    }
}
