//! The whole journey a caller makes, as the contract describes it.

use crate::helpers::{PASSWORD, TestApp, code, verify_with_jwks};
use authd::pb;
use tonic::Code;

#[tokio::test]
async fn signup_verify_login_introspect_refresh_logout() {
    let mut app = TestApp::spawn().await;

    let user = app.signup("  Ada@Example.COM ").await;
    assert_eq!(
        user.email, "ada@example.com",
        "emails are trimmed and lower-cased"
    );
    assert!(!user.email_verified);
    assert_eq!(user.name, "Test User");
    assert!(uuid::Uuid::parse_str(&user.id).is_ok());

    // Unverified: the right password is refused with PERMISSION_DENIED, a wrong one is not told apart.
    assert_eq!(
        app.login("ada@example.com", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        app.login("ada@example.com", "wrong password")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mail = app
        .smtp
        .wait_for_mail_to("ada@example.com", crate::helpers::MAIL_WAIT)
        .await;
    assert_eq!(mail.subject, "Verify your email address");
    assert!(
        mail.body
            .contains("https://app.example/verify-email?token="),
        "{}",
        mail.body
    );
    let token = crate::smtp::extract_token(&mail.body, "verify-email");
    let verified = app
        .client
        .verify_email(pb::VerifyEmailRequest {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.user.unwrap().email_verified);
    let again = app
        .client
        .verify_email(pb::VerifyEmailRequest { token })
        .await;
    assert_eq!(
        code(again),
        Code::InvalidArgument,
        "verification tokens are single-use"
    );

    let tokens = app.login("ADA@example.com", PASSWORD).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.refresh_expires_in, 7 * 24 * 3600);
    assert!(tokens.refresh_token.len() >= 43, "at least 256 bits");
    assert_eq!(
        tokens.refresh_token.split('.').count(),
        1,
        "refresh tokens are opaque, not JWTs"
    );
    assert!(tokens.user.as_ref().unwrap().email_verified);

    let claims = verify_with_jwks(&app, &tokens.access_token)
        .await
        .expect("access token verifies with the JWKS");
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let header = jsonwebtoken::decode_header(&tokens.access_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);

    let introspected = app.introspect(&tokens.access_token).await;
    assert!(introspected.active);
    assert_eq!(introspected.sub, user.id);
    assert_eq!(introspected.email, "ada@example.com");
    assert_eq!(introspected.sid, claims["sid"].as_str().unwrap());
    assert_eq!(introspected.jti, claims["jti"].as_str().unwrap());
    assert_eq!(introspected.iss, "http://authd.test");
    assert_eq!(introspected.aud, vec!["authd".to_owned()]);
    assert_eq!(introspected.token_type, "Bearer");
    assert!(introspected.email_verified);

    let rotated = app.refresh(&tokens.refresh_token).await.unwrap();
    assert_ne!(rotated.refresh_token, tokens.refresh_token);
    let new_claims = verify_with_jwks(&app, &rotated.access_token).await.unwrap();
    assert_eq!(
        new_claims["sid"], claims["sid"],
        "refresh keeps the session"
    );
    assert_ne!(new_claims["jti"], claims["jti"]);

    app.client
        .logout(pb::LogoutRequest {
            refresh_token: rotated.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .unwrap();
    assert!(
        !app.introspect(&rotated.access_token).await.active,
        "logout takes effect at once"
    );
    assert!(!app.introspect(&tokens.access_token).await.active);
    assert_eq!(
        code(app.refresh(&rotated.refresh_token).await),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn password_reset_sets_the_password_and_ends_every_session() {
    let mut app = TestApp::spawn().await;
    let first = app.signup_verified_login("grace@example.com").await;
    let second = app.login("grace@example.com", PASSWORD).await.unwrap();

    app.client
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "Grace@Example.com".into(),
        })
        .await
        .unwrap();
    let earlier = app
        .mailed_token("grace@example.com", "reset-password")
        .await;
    app.client
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "grace@example.com".into(),
        })
        .await
        .unwrap();
    let mail = app
        .smtp
        .wait_for_mail_to("grace@example.com", crate::helpers::MAIL_WAIT)
        .await;
    assert_eq!(mail.subject, "Reset your password");
    assert!(
        mail.body
            .contains("https://app.example/reset-password?token=")
    );
    let token = crate::smtp::extract_token(&mail.body, "reset-password");

    let reset = |token: String, new_password: &str| pb::ResetPasswordRequest {
        token,
        new_password: new_password.into(),
    };
    let stale = app
        .client
        .reset_password(reset(earlier, "a brand new password"))
        .await;
    assert_eq!(
        code(stale),
        Code::InvalidArgument,
        "a newer reset mail voids the earlier link"
    );
    let short = app
        .client
        .reset_password(reset(token.clone(), "short"))
        .await;
    assert_eq!(
        code(short),
        Code::InvalidArgument,
        "the new password must meet the policy"
    );

    app.client
        .reset_password(reset(token.clone(), "a brand new password"))
        .await
        .unwrap();
    assert_eq!(
        code(
            app.client
                .reset_password(reset(token, "another new password"))
                .await
        ),
        Code::InvalidArgument
    );

    for session in [&first, &second] {
        assert!(
            !app.introspect(&session.access_token).await.active,
            "reset ends every session"
        );
        assert_eq!(
            code(app.refresh(&session.refresh_token).await),
            Code::Unauthenticated
        );
    }
    assert_eq!(
        code(app.login("grace@example.com", PASSWORD).await),
        Code::Unauthenticated
    );
    app.login("grace@example.com", "a brand new password")
        .await
        .expect("the new password works");
}

#[tokio::test]
async fn logout_all_sessions_ends_every_session_of_the_user() {
    let mut app = TestApp::spawn().await;
    let a = app.signup_verified_login("alan@example.com").await;
    let b = app.login("alan@example.com", PASSWORD).await.unwrap();
    let other = app.signup_verified_login("other@example.com").await;

    app.client
        .logout(pb::LogoutRequest {
            refresh_token: b.refresh_token.clone(),
            all_sessions: true,
        })
        .await
        .unwrap();
    assert!(!app.introspect(&a.access_token).await.active);
    assert!(!app.introspect(&b.access_token).await.active);
    assert_eq!(
        code(app.refresh(&a.refresh_token).await),
        Code::Unauthenticated
    );
    assert!(
        app.introspect(&other.access_token).await.active,
        "other users keep their sessions"
    );

    // Logging out an ended session again is harmless; ending all sessions needs a current token.
    let again = app
        .client
        .logout(pb::LogoutRequest {
            refresh_token: b.refresh_token.clone(),
            all_sessions: false,
        })
        .await;
    assert_eq!(code(again), Code::Ok);
    let all_again = app
        .client
        .logout(pb::LogoutRequest {
            refresh_token: b.refresh_token,
            all_sessions: true,
        })
        .await;
    assert_eq!(code(all_again), Code::Unauthenticated);
}

#[tokio::test]
async fn duplicate_signup_is_already_exists_whatever_the_case() {
    let mut app = TestApp::spawn().await;
    app.signup("dup@example.com").await;
    let again = app
        .client
        .signup(pb::SignupRequest {
            email: " DUP@example.com".into(),
            password: PASSWORD.into(),
            name: "Test User".into(),
        })
        .await;
    assert_eq!(code(again), Code::AlreadyExists);
}

#[tokio::test]
async fn resend_verification_mails_a_fresh_link_and_answers_the_same_for_unknown_emails() {
    let mut app = TestApp::spawn().await;
    app.signup("kay@example.com").await;
    let first = app.mailed_token("kay@example.com", "verify-email").await;
    app.client
        .resend_verification(pb::ResendVerificationRequest {
            email: "kay@example.com".into(),
        })
        .await
        .unwrap();
    let second = app.mailed_token("kay@example.com", "verify-email").await;
    assert_ne!(first, second);
    let unknown = app
        .client
        .resend_verification(pb::ResendVerificationRequest {
            email: "nobody@example.com".into(),
        })
        .await;
    assert_eq!(code(unknown), Code::Ok, "same answer for unknown emails");

    app.client
        .verify_email(pb::VerifyEmailRequest { token: second })
        .await
        .unwrap();
    // Verified: no further mail, same answer.
    app.client
        .resend_verification(pb::ResendVerificationRequest {
            email: "kay@example.com".into(),
        })
        .await
        .unwrap();
    let unknown_reset = app
        .client
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "nobody@example.com".into(),
        })
        .await;
    assert_eq!(code(unknown_reset), Code::Ok);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.smtp.mails_to("kay@example.com").is_empty());
    assert!(app.smtp.mails_to("nobody@example.com").is_empty());
}
