//! Input the contract refuses: INVALID_ARGUMENT with `google.rpc.BadRequest` field violations and
//! nothing written; the one answer for wrong passwords and unknown emails; refused one-time tokens.

use crate::helpers::{MAIL_WAIT, PASSWORD, TestApp, code};
use authd::pb;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::{Duration, Instant};
use tonic::{Code, Status};
use tonic_types::StatusExt;

mod wire;

/// Asserts INVALID_ARGUMENT with BadRequest details and returns the violated fields, sorted.
pub(crate) fn violations<T>(result: Result<T, Status>) -> Vec<String> {
    let status = match result {
        Ok(_) => panic!("expected INVALID_ARGUMENT, got OK"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no google.rpc.BadRequest in {status:?}"));
    let mut fields: Vec<String> = details
        .field_violations
        .into_iter()
        .inspect(|v| assert!(!v.description.is_empty(), "{v:?} says nothing"))
        .map(|v| v.field)
        .collect();
    fields.sort();
    fields
}

fn signup(email: &str, password: &str, name: &str) -> pb::SignupRequest {
    pb::SignupRequest {
        email: email.into(),
        password: password.into(),
        name: name.into(),
    }
}

fn reset(token: &str, new_password: &str) -> pb::ResetPasswordRequest {
    pb::ResetPasswordRequest {
        token: token.into(),
        new_password: new_password.into(),
    }
}

fn verify(token: &str) -> pb::VerifyEmailRequest {
    pb::VerifyEmailRequest {
        token: token.into(),
    }
}

fn reset_request(email: &str) -> pb::RequestPasswordResetRequest {
    pb::RequestPasswordResetRequest {
        email: email.into(),
    }
}

/// Refusing oversized input must not cost a hash of it, or anything else of note.
fn assert_quick(started: Instant) {
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// A well-formed token (256 random bits, base64url) that authd never issued.
fn unknown_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Asserts that no mail is waiting in the inbox. The outbox sends oldest first, one after the
/// other, so once the mail of a signup made now has arrived, any mail queued earlier has too.
async fn assert_nothing_else_mailed(app: &mut TestApp) {
    let sentinel = format!("sentinel-{}@example.com", uuid::Uuid::now_v7().simple());
    app.signup(&sentinel).await;
    app.smtp.wait_for_mail_to(&sentinel, MAIL_WAIT).await;
    assert_eq!(app.smtp.count(), 0, "mails nobody asked for");
}

#[tokio::test]
async fn malformed_emails_are_refused_by_every_rpc_that_takes_one() {
    let mut app = TestApp::spawn().await;
    for bad in [
        "alice",
        "alice.example.com",
        "alice@example",
        "alice@",
        "@example.com",
        "a b@example.com",
        "alice@exa mple.com",
        "alice @example.com",
        "",
        "   ",
        "\t\n",
    ] {
        let resend = pb::ResendVerificationRequest { email: bad.into() };
        let refused = [
            violations(app.client.signup(signup(bad, PASSWORD, "Al")).await),
            violations(app.login(bad, PASSWORD).await),
            violations(app.client.resend_verification(resend).await),
            violations(app.client.request_password_reset(reset_request(bad)).await),
        ];
        for fields in refused {
            assert_eq!(fields, ["email"], "for {bad:?}");
        }
    }
    assert_nothing_else_mailed(&mut app).await;
}

#[tokio::test]
async fn password_policy_counts_characters_and_refused_signups_leave_nothing() {
    let mut app = TestApp::spawn_with(&[
        "--require-verified-email",
        "false",
        "--password-min-length",
        "8",
    ])
    .await;
    let email = "pw@example.com";
    for bad in [
        "1234567".to_owned(),
        "x".repeat(129),
        "é".repeat(7),    // 14 bytes, 7 characters
        "🔑".repeat(129), // 516 bytes
    ] {
        let refused = app.client.signup(signup(email, &bad, "Pat")).await;
        assert_eq!(
            violations(refused),
            ["password"],
            "{} chars",
            bad.chars().count()
        );
    }
    // The refused signups left no account behind: the address is still free.
    let keys = "🔑🔒".repeat(64); // 512 bytes, 128 characters: allowed
    app.client
        .signup(signup(email, &keys, "Pat"))
        .await
        .expect("128 characters are allowed");
    app.smtp.wait_for_mail_to(email, MAIL_WAIT).await;
    let tokens = app.login(email, &keys).await.expect("128 characters work");
    // `--require-verified-email false`: an unverified account may log in.
    assert!(!tokens.user.unwrap().email_verified);
    let introspected = app.introspect(&tokens.access_token).await;
    assert!(introspected.active && !introspected.email_verified);
    app.client
        .signup(signup("eight@example.com", "dog7cat2", "Eight"))
        .await
        .expect("8 characters");
    app.smtp
        .wait_for_mail_to("eight@example.com", MAIL_WAIT)
        .await;

    // Login refuses what cannot be a password at all, before looking anything up.
    let too_long = app.login(email, &"🔑".repeat(129)).await;
    assert_eq!(violations(too_long), ["password"]);
    let too_short = app.login(email, "1234567").await;
    assert_eq!(violations(too_short), ["password"]);
    assert_eq!(
        violations(app.login("nobody@example.com", &"x".repeat(129)).await),
        ["password"]
    );
    assert_nothing_else_mailed(&mut app).await;
}

#[tokio::test]
async fn display_names_that_are_blank_or_hide_their_text_are_refused() {
    let mut app = TestApp::spawn().await;
    let email = "names@example.com";
    for bad in [
        "",
        "   ",
        "\t\n",
        "\u{3000}",            // ideographic space: blank too
        "Ada\u{202E}nimda",    // right-to-left override: shows as "Adaadmin"
        "\u{2067}Ada\u{2069}", // right-to-left isolate
        "Ada\u{200F}",         // right-to-left mark
        "Ad\u{200B}a",         // zero-width space: looks like "Ada"
        "\u{FEFF}Ada",         // byte order mark
        "Ada\u{7}",            // bell
    ] {
        let refused = app.client.signup(signup(email, PASSWORD, bad)).await;
        assert_eq!(violations(refused), ["name"], "for {bad:?}");
    }
    // Nothing was kept of them: the address is still free, and the name given is what is stored.
    let user = app
        .client
        .signup(signup(email, PASSWORD, "  Ada Lovelace "))
        .await
        .expect("a plain name")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.name, "Ada Lovelace");
    app.smtp.wait_for_mail_to(email, MAIL_WAIT).await;
    assert_nothing_else_mailed(&mut app).await;
}

#[tokio::test]
async fn one_megabyte_fields_are_refused_quickly_without_being_stored() {
    let mut app = TestApp::spawn().await;
    let email = "big@example.com";
    let huge = "a".repeat(1 << 20);
    let huge_email = format!("{huge}@example.com");
    let cases = [
        (signup(&huge_email, PASSWORD, "Big"), vec!["email"]),
        (signup(email, &huge, "Big"), vec!["password"]),
        (signup(email, PASSWORD, &huge), vec!["name"]),
        (
            signup(&huge_email, &huge, &huge),
            vec!["email", "name", "password"],
        ),
    ];
    for (request, expected) in cases {
        let started = Instant::now();
        let refused = app.client.signup(request).await;
        assert_eq!(violations(refused), expected);
        assert_quick(started);
    }
    for (login_email, password, field) in [
        (huge_email.as_str(), PASSWORD, "email"),
        (email, huge.as_str(), "password"),
    ] {
        let started = Instant::now();
        assert_eq!(violations(app.login(login_email, password).await), [field]);
        assert_quick(started);
    }
    let refused = app.client.verify_email(verify(&huge)).await;
    assert_eq!(violations(refused), ["token"]);
    assert_eq!(
        violations(app.client.reset_password(reset(&huge, &huge)).await),
        ["new_password"]
    );

    app.signup(email).await; // no account was made above
    app.smtp.wait_for_mail_to(email, MAIL_WAIT).await;
    assert_nothing_else_mailed(&mut app).await;
}

#[tokio::test]
async fn empty_requests_name_every_missing_field() {
    let mut app = TestApp::spawn().await;
    let c = &mut app.client;
    let signup = c.signup(pb::SignupRequest::default()).await;
    assert_eq!(violations(signup), ["email", "name", "password"]);
    let login = c.login(pb::LoginRequest::default()).await;
    assert_eq!(violations(login), ["email", "password"]);
    let verify_empty = c.verify_email(pb::VerifyEmailRequest::default()).await;
    assert_eq!(violations(verify_empty), ["token"]);
    let verify_blank = c.verify_email(verify("  ")).await;
    assert_eq!(violations(verify_blank), ["token"]);
    let reset_empty = c.reset_password(pb::ResetPasswordRequest::default()).await;
    assert_eq!(violations(reset_empty), ["new_password", "token"]);
    let reset_blank = c.reset_password(reset(" ", PASSWORD)).await;
    assert_eq!(violations(reset_blank), ["token"]);
    let resend = c
        .resend_verification(pb::ResendVerificationRequest::default())
        .await;
    assert_eq!(violations(resend), ["email"]);
    let request_reset = c
        .request_password_reset(pb::RequestPasswordResetRequest::default())
        .await;
    assert_eq!(violations(request_reset), ["email"]);

    // A missing refresh token is a bad credential, not a bad argument.
    let refresh = c.refresh(pb::RefreshRequest::default()).await;
    assert_eq!(code(refresh), Code::Unauthenticated);
    for all_sessions in [false, true] {
        let logout = c
            .logout(pb::LogoutRequest {
                refresh_token: String::new(),
                all_sessions,
            })
            .await;
        assert_eq!(
            code(logout),
            Code::Unauthenticated,
            "all_sessions={all_sessions}"
        );
    }
    assert_eq!(app.introspect("").await, pb::IntrospectResponse::default());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let mut app = TestApp::spawn().await;
    app.signup_verified_login("known@example.com").await;
    app.signup("unverified@example.com").await;

    let wrong = app
        .login("known@example.com", "wrong password")
        .await
        .unwrap_err();
    let unknown = app
        .login("unknown@example.com", PASSWORD)
        .await
        .unwrap_err();
    let unverified_wrong = app
        .login("unverified@example.com", "wrong password")
        .await
        .unwrap_err();
    for status in [&wrong, &unknown, &unverified_wrong] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), wrong.message());
        assert_eq!(status.details(), wrong.details());
    }
    let unverified = app.login("unverified@example.com", PASSWORD).await;
    assert_eq!(
        code(unverified),
        Code::PermissionDenied,
        "only the right password learns this"
    );
    let too_long = app.login("known@example.com", &"p".repeat(129)).await;
    assert_eq!(violations(too_long), ["password"]);
    app.login("known@example.com", PASSWORD)
        .await
        .expect("the right password still works");
}

#[tokio::test]
async fn unusable_verification_and_reset_tokens_are_invalid_argument_and_spend_nothing() {
    let mut app = TestApp::spawn().await;
    let email = "ot@example.com";
    app.signup(email).await;
    let verify_token = app.mailed_token(email, "verify-email").await;
    let reset_token = app.reset_token(email).await;

    let unknown = unknown_token();
    let garbage = [
        "abc",
        "a.b.c",
        "%%%",
        &"*".repeat(43),
        &"a".repeat(44),
        &unknown,
    ];
    for token in garbage.iter().copied().chain([reset_token.as_str()]) {
        let refused = app.client.verify_email(verify(token)).await;
        assert_eq!(violations(refused), ["token"], "VerifyEmail with {token:?}");
    }
    for token in garbage.iter().copied().chain([verify_token.as_str()]) {
        let refused = app
            .client
            .reset_password(reset(token, "a brand new password"))
            .await;
        assert_eq!(
            violations(refused),
            ["token"],
            "ResetPassword with {token:?}"
        );
    }

    // Nothing was spent or changed: still unverified, same password, both tokens still good.
    assert_eq!(
        code(app.login(email, PASSWORD).await),
        Code::PermissionDenied
    );
    app.client
        .verify_email(verify(&verify_token))
        .await
        .expect("the verification token still works");
    app.client
        .reset_password(reset(&reset_token, "a brand new password"))
        .await
        .expect("the reset token still works");
    app.login(email, "a brand new password")
        .await
        .expect("new password");
}

#[tokio::test]
async fn expired_verification_and_reset_tokens_are_invalid_argument() {
    // Each app's other token lifetime is the default: the control that time alone decides.
    let mut verify_app = TestApp::spawn_with(&["--verify-ttl", "1s"]).await;
    let mut reset_app = TestApp::spawn_with(&["--reset-ttl", "1s"]).await;
    let email = "late@example.com";
    let mut tokens = Vec::new();
    for app in [&mut verify_app, &mut reset_app] {
        app.signup(email).await;
        let verify_token = app.mailed_token(email, "verify-email").await;
        tokens.push((verify_token, app.reset_token(email).await));
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (verify_token, reset_token) = &tokens[0];
    let expired = verify_app.client.verify_email(verify(verify_token)).await;
    assert_eq!(violations(expired), ["token"]);
    verify_app
        .client
        .reset_password(reset(reset_token, "a new password 1"))
        .await
        .expect("1h reset token");

    let (verify_token, reset_token) = &tokens[1];
    let expired = reset_app
        .client
        .reset_password(reset(reset_token, "a new password 2"))
        .await;
    assert_eq!(violations(expired), ["token"]);
    reset_app
        .client
        .verify_email(verify(verify_token))
        .await
        .expect("24h verify token");
    reset_app
        .login(email, PASSWORD)
        .await
        .expect("the expired reset changed nothing");
}
