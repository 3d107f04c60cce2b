//! A second factor (TOTP, RFC 6238) as a user and an attacker meet it: enrollment from the
//! otpauth URI, Login answering `mfa_required`, VerifyMfa with a code or a recovery code, and
//! what is refused: replayed, old, wrong, malformed and spent codes, a worn-out or reused
//! mfa_token, guessing past the throttle, and of parallel calls with one code all but one.
//!
//! The codes are computed here from the secret authd hands out, by this file's own TOTP (checked
//! against RFC 6238's test vectors below), not by authd's.

use crate::account::Account;
use crate::helpers::{PASSWORD, TestApp, TestDb, code};
use crate::smtp::SmtpServer;
use authd::pb;
use ring::hmac;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;

/// Calls sent at once in the race tests.
const PARALLEL: usize = 30;

const KEK: &str = "8a1f0c3b5d7e9f2a4c6e8b0d2f4a6c8e1b3d5f7a9c2e4b6d8f0a2c4e6b8d0f2a";

/// RFC 4226 §5.3 HOTP with HMAC-SHA1, 6 digits; RFC 6238 counts 30-second steps.
pub(crate) fn totp_at(secret: &[u8], step: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

fn step_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// RFC 4648 base32 without padding, as authenticator apps read the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u64, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        };
        buffer = (buffer << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[test]
fn this_files_totp_matches_rfc_6238_appendix_b() {
    let secret = b"12345678901234567890";
    // (time, 8-digit code of the RFC); 6 digits are its last six.
    for (time, expected) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
    ] {
        assert_eq!(totp_at(secret, time / 30), expected[2..], "t={time}");
    }
}

/// A user with TOTP on: the secret, the recovery codes, and the step spent by ConfirmTotp.
pub(crate) struct Enrolled {
    pub(crate) email: String,
    pub(crate) secret: Vec<u8>,
    recovery_codes: Vec<String>,
    pub(crate) confirmed_step: u64,
    account: Account,
}

pub(crate) async fn enrolled(app: &mut TestApp, email: &str) -> Enrolled {
    let tokens = app.signup_verified_login(email).await;
    let account = Account::new(app, &tokens.access_token);
    let begun = account.begin_totp().await.expect("begin");
    let secret = base32_decode(&begun.secret);
    assert_eq!(secret.len(), 20, "160 bits");
    // A code for the step on either side is accepted too; the current one is the honest case.
    let step = step_now();
    let recovery_codes = account
        .confirm_totp(&totp_at(&secret, step))
        .await
        .expect("confirm");
    Enrolled {
        email: email.to_owned(),
        secret,
        recovery_codes,
        confirmed_step: step,
        account,
    }
}

pub(crate) async fn challenge(app: &mut TestApp, email: &str) -> String {
    let answer = app.login(email, PASSWORD).await.expect("password login");
    assert!(answer.mfa_required, "{answer:?}");
    assert!(answer.access_token.is_empty() && answer.refresh_token.is_empty());
    answer.mfa_token
}

pub(crate) async fn verify(
    app: &TestApp,
    mfa_token: &str,
    code: &str,
    recovery_code: &str,
) -> Result<pb::TokenResponse, tonic::Status> {
    app.client
        .clone()
        .verify_mfa(pb::VerifyMfaRequest {
            mfa_token: mfa_token.into(),
            code: code.into(),
            recovery_code: recovery_code.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn claims(access_token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = access_token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn enrollment_gives_an_app_readable_secret_and_changes_nothing_until_confirmed() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("enrol@example.com").await;
    let account = Account::new(&app, &tokens.access_token);
    let begun = account.begin_totp().await.unwrap();
    assert!(
        begun
            .otpauth_uri
            .starts_with("otpauth://totp/authd:enrol%40example.com?"),
        "{}",
        begun.otpauth_uri
    );
    assert!(
        begun
            .otpauth_uri
            .contains(&format!("secret={}", begun.secret))
    );
    assert!(begun.otpauth_uri.contains("issuer=authd"));
    // A PNG (that it scans back to the URI is crypto::qr's own test): a square IHDR first.
    assert_eq!(&begun.qr_png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&begun.qr_png[12..16], b"IHDR");
    let width = u32::from_be_bytes(begun.qr_png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(begun.qr_png[20..24].try_into().unwrap());
    assert!(width == height && width >= 100, "{width}x{height}");

    // Not confirmed: login is as before.
    let again = app.login("enrol@example.com", PASSWORD).await.unwrap();
    assert!(!again.mfa_required && !again.access_token.is_empty());
    assert!(!account.profile().await.unwrap().mfa_enabled);
    // Beginning again replaces the secret; the first one no longer confirms.
    let second = account.begin_totp().await.unwrap();
    assert_ne!(second.secret, begun.secret);
    let old = totp_at(&base32_decode(&begun.secret), step_now());
    let new = totp_at(&base32_decode(&second.secret), step_now());
    if old != new {
        assert_eq!(
            code(account.confirm_totp(&old).await),
            Code::InvalidArgument
        );
    }
    let codes = account.confirm_totp(&new).await.unwrap();
    assert_eq!(codes.len(), 10);
    assert!(account.profile().await.unwrap().mfa_enabled);
    assert_eq!(code(account.begin_totp().await), Code::FailedPrecondition);
    assert_eq!(
        code(account.confirm_totp(&new).await),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn a_user_with_totp_logs_in_with_a_code_once_and_a_recovery_code_once() {
    let mut app = TestApp::spawn().await;
    let user = enrolled(&mut app, "ada@example.com").await;
    assert_eq!(user.recovery_codes.len(), 10);

    let mfa_token = challenge(&mut app, &user.email).await;
    let answer = app.login(&user.email, PASSWORD).await.unwrap();
    assert_eq!(answer.mfa_factors, ["otp", "recovery_code"]);
    assert!(answer.mfa_expires_in > 0 && answer.mfa_expires_in <= 300);
    assert!(
        answer.user.is_none(),
        "nothing about the user before the second factor"
    );

    // The step ConfirmTotp spent is spent: its code does not log in.
    let spent = totp_at(&user.secret, user.confirmed_step);
    assert_eq!(
        code(verify(&app, &mfa_token, &spent, "").await),
        Code::Unauthenticated
    );
    // An old code (two steps back) and a wrong one are refused.
    let old = totp_at(&user.secret, user.confirmed_step - 2);
    assert_eq!(
        code(verify(&app, &mfa_token, &old, "").await),
        Code::Unauthenticated
    );
    let next = totp_at(&user.secret, user.confirmed_step + 1);
    let wrong = if next == "000000" { "000001" } else { "000000" };
    assert_eq!(
        code(verify(&app, &mfa_token, wrong, "").await),
        Code::Unauthenticated
    );

    // The next step's code (clock skew of one step) works, with spaces as apps show it.
    let spaced = format!("{} {}", &next[..3], &next[3..]);
    let tokens = verify(&app, &mfa_token, &spaced, "").await.unwrap();
    assert!(!tokens.mfa_required);
    let claims = claims(&tokens.access_token);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
    let introspected = app.introspect(&tokens.access_token).await;
    assert!(introspected.active);
    assert_eq!(introspected.amr, ["pwd", "otp"]);
    assert!(tokens.user.unwrap().mfa_enabled);
    // A refresh keeps what the login proved.
    let refreshed = app.refresh(&tokens.refresh_token).await.unwrap();
    assert_eq!(
        claims_of(&refreshed)["amr"],
        serde_json::json!(["pwd", "otp"])
    );

    // The mfa_token is spent, and the code too, on a new challenge.
    assert_eq!(
        code(verify(&app, &mfa_token, &next, "").await),
        Code::Unauthenticated
    );
    let second = challenge(&mut app, &user.email).await;
    assert_eq!(
        code(verify(&app, &second, &next, "").await),
        Code::Unauthenticated
    );

    // A recovery code works once, however it is typed.
    let recovery = user.recovery_codes[3].to_uppercase().replace('-', " ");
    let by_recovery = verify(&app, &second, "", &recovery).await.unwrap();
    assert_eq!(
        claims_of(&by_recovery)["amr"],
        serde_json::json!(["pwd", "otp"])
    );
    let third = challenge(&mut app, &user.email).await;
    assert_eq!(
        code(verify(&app, &third, "", &user.recovery_codes[3]).await),
        Code::Unauthenticated
    );
    verify(&app, &third, "", &user.recovery_codes[4])
        .await
        .expect("another recovery code");
}

fn claims_of(tokens: &pb::TokenResponse) -> serde_json::Value {
    claims(&tokens.access_token)
}

#[tokio::test]
async fn of_parallel_verifications_with_one_code_exactly_one_wins() {
    let mut app = TestApp::spawn().await;
    let user = enrolled(&mut app, "race@example.com").await;
    let next = totp_at(&user.secret, user.confirmed_step + 1);

    // Thirty challenges, one code: the time step is spent once.
    let mut challenges = Vec::new();
    for _ in 0..PARALLEL {
        challenges.push(challenge(&mut app, &user.email).await);
    }
    let answers = all_at_once(
        &app,
        challenges
            .iter()
            .map(|t| (t.clone(), next.clone(), String::new())),
    )
    .await;
    let won = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(won, 1, "{answers:?}");
    // The losers: the code is spent, or (thirty guesses at one account at once) the throttle
    // turned away the ones counted past its free tries.
    for a in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert!(
            matches!(a.code(), Code::Unauthenticated | Code::ResourceExhausted),
            "{a:?}"
        );
    }
    // Losers counted after the winner cleared the account's count: wait out their delay.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // One challenge, one recovery code, thirty at once: one session.
    let one = challenge(&mut app, &user.email).await;
    let recovery = &user.recovery_codes[0];
    let answers = all_at_once(
        &app,
        (0..PARALLEL).map(|_| (one.clone(), String::new(), recovery.clone())),
    )
    .await;
    assert_eq!(
        answers.iter().filter(|a| a.is_ok()).count(),
        1,
        "{answers:?}"
    );
    let sessions = user.account.sessions().await.unwrap();
    // The enrolling login's session, and the two second-factor logins.
    assert_eq!(sessions.len(), 3, "{sessions:?}");
}

/// VerifyMfa with each (mfa_token, code, recovery_code), all sent at once on their own tasks.
async fn all_at_once(
    app: &TestApp,
    calls: impl ExactSizeIterator<Item = (String, String, String)>,
) -> Vec<Result<pb::TokenResponse, tonic::Status>> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(calls.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for (token, code, recovery) in calls {
        let mut client = app.client.clone();
        let start = std::sync::Arc::clone(&start);
        tasks.spawn(async move {
            start.wait().await;
            client
                .verify_mfa(pb::VerifyMfaRequest {
                    mfa_token: token,
                    code,
                    recovery_code: recovery,
                })
                .await
                .map(tonic::Response::into_inner)
        });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn wrong_codes_wear_out_the_challenge_and_then_the_account_waits() {
    let mut app = TestApp::spawn().await;
    let user = enrolled(&mut app, "guess@example.com").await;
    let right = totp_at(&user.secret, user.confirmed_step + 1);
    let wrong = |i: u32| {
        let guess = format!("{:06}", (i * 7919) % 1_000_000);
        if guess == right {
            "999999".to_owned()
        } else {
            guess
        }
    };

    let worn = challenge(&mut app, &user.email).await;
    for i in 0..5 {
        assert_eq!(
            code(verify(&app, &worn, &wrong(i), "").await),
            Code::Unauthenticated
        );
    }
    // Five wrong codes: this challenge is spent, even for the right code.
    assert_eq!(
        code(verify(&app, &worn, &right, "").await),
        Code::Unauthenticated
    );
    // And the account now waits, however many right passwords open new challenges.
    let fresh = challenge(&mut app, &user.email).await;
    let refused = verify(&app, &fresh, &right, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Once the wait is over, the right code gets in and clears the count.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verify(&app, &fresh, &right, "")
        .await
        .expect("after the wait");
}

#[tokio::test]
async fn malformed_codes_and_tokens_are_refused_before_anything_is_spent() {
    let mut app = TestApp::spawn().await;
    let user = enrolled(&mut app, "junk@example.com").await;
    let mfa_token = challenge(&mut app, &user.email).await;
    let huge = "1".repeat(1 << 20);
    for (code_field, recovery) in [
        ("", ""),
        ("１２３４５６", ""),
        ("12345", ""),
        ("1234567", ""),
        ("12a456", ""),
        (huge.as_str(), ""),
        ("", huge.as_str()),
        ("", "not-a-code"),
        ("123456", "abcd-efgh-ijkl"),
    ] {
        let answer = verify(&app, &mfa_token, code_field, recovery).await;
        assert_eq!(
            code(answer),
            Code::InvalidArgument,
            "{:?}",
            &code_field[..code_field.len().min(12)]
        );
    }
    for token in ["", "garbage", &"x".repeat(43)] {
        let answer = verify(&app, token, "123456", "").await;
        assert!(
            matches!(code(answer), Code::Unauthenticated | Code::InvalidArgument),
            "{token:?}"
        );
    }
    // None of it touched the challenge: the right code still works.
    let next = totp_at(&user.secret, user.confirmed_step + 1);
    verify(&app, &mfa_token, &next, "")
        .await
        .expect("untouched");
}

#[tokio::test]
async fn disabling_needs_proof_and_regenerating_replaces_the_codes() {
    let mut app = TestApp::spawn().await;
    let user = enrolled(&mut app, "off@example.com").await;
    let account = &user.account;

    assert_eq!(
        code(account.disable_totp("wrong password!", "").await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(account.disable_totp("", "").await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(account.disable_totp(PASSWORD, "123456").await),
        Code::InvalidArgument
    );
    let spent = totp_at(&user.secret, user.confirmed_step);
    assert_eq!(
        code(account.regenerate("", &spent).await),
        Code::Unauthenticated
    );

    // New recovery codes with a current code; the old ones stop working.
    let next = totp_at(&user.secret, user.confirmed_step + 1);
    let fresh = account.regenerate("", &next).await.unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !user.recovery_codes.contains(c)));
    let t = challenge(&mut app, &user.email).await;
    assert_eq!(
        code(verify(&app, &t, "", &user.recovery_codes[0]).await),
        Code::Unauthenticated
    );
    verify(&app, &t, "", &fresh[0]).await.expect("a new code");

    // A pending challenge dies with the factor.
    let pending = challenge(&mut app, &user.email).await;
    account.disable_totp(PASSWORD, "").await.unwrap();
    assert_eq!(
        code(verify(&app, &pending, "", &fresh[1]).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(account.disable_totp(PASSWORD, "").await),
        Code::FailedPrecondition
    );
    let plain = app.login(&user.email, PASSWORD).await.unwrap();
    assert!(!plain.mfa_required);
    assert_eq!(claims_of(&plain)["amr"], serde_json::json!(["pwd"]));
    assert!(!plain.user.unwrap().mfa_enabled);
}

#[tokio::test]
async fn a_password_reset_ends_pending_challenges() {
    let mut app = TestApp::spawn().await;
    let user = enrolled(&mut app, "reset@example.com").await;
    let pending = challenge(&mut app, &user.email).await;
    let token = app.reset_token(&user.email).await;
    app.client
        .reset_password(pb::ResetPasswordRequest {
            token,
            new_password: "an entirely new passphrase".into(),
        })
        .await
        .unwrap();
    let next = totp_at(&user.secret, user.confirmed_step + 1);
    assert_eq!(
        code(verify(&app, &pending, &next, "").await),
        Code::Unauthenticated
    );
    // The factor itself stays on: the new password still needs it.
    let answer = app
        .login(&user.email, "an entirely new passphrase")
        .await
        .unwrap();
    assert!(answer.mfa_required);
}

#[tokio::test]
async fn with_an_encryption_key_the_secret_is_stored_sealed() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start().await;
    let mut app = TestApp::spawn_on(db, smtp, &["--key-encryption-key", KEK]).await;
    let user = enrolled(&mut app, "sealed@example.com").await;

    use authd::db::entity::totp_factor;
    use sea_orm::EntityTrait;
    let rows = totp_factor::Entity::find()
        .all(&app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].sealed_with.is_some());
    assert!(
        !rows[0]
            .secret
            .windows(user.secret.len())
            .any(|w| w == user.secret),
        "the secret is not in the row"
    );
    // And it still works, after a restart too.
    let mut app = app.restart().await;
    let t = challenge(&mut app, &user.email).await;
    let next = totp_at(&user.secret, user.confirmed_step + 1);
    verify(&app, &t, &next, "")
        .await
        .expect("sealed secret opens");
}

#[tokio::test]
async fn keys_reseal_moves_the_totp_secrets_to_the_new_key_all_or_nothing() {
    const OTHER_KEK: &str = "0f2a4c6e8b0d2f4a6c8e1b3d5f7a9c2e4b6d8f0a2c4e6b8d0f2a8a1f0c3b5d7e";
    let (db, smtp) = (TestDb::new().await, SmtpServer::start().await);
    let mut app = TestApp::spawn_on(db, smtp, &["--key-encryption-key", KEK]).await;
    let user = enrolled(&mut app, "moved@example.com").await;
    let (db, smtp) = app.stop().await;
    let sealed_with = |db: &TestDb| {
        let db = db.share();
        async move {
            use authd::db::entity::totp_factor;
            use sea_orm::EntityTrait;
            let rows = totp_factor::Entity::find()
                .all(&db.connect().await)
                .await
                .unwrap();
            rows.into_iter()
                .map(|r| (r.sealed_with, r.secret))
                .collect::<Vec<_>>()
        }
    };
    let before = sealed_with(&db).await;

    // The wrong old key: nothing moves, the secrets stay as they were.
    let wrong = db
        .keys_command(
            &["reseal"],
            &[
                ("AUTHD_OLD_KEY_ENCRYPTION_KEY", OTHER_KEK),
                ("AUTHD_KEY_ENCRYPTION_KEY", OTHER_KEK),
            ],
        )
        .await;
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("TOTP secret") && !said.contains(OTHER_KEK),
        "{said}"
    );
    assert_eq!(sealed_with(&db).await, before);

    let moved = db
        .keys_command(
            &["reseal"],
            &[
                ("AUTHD_OLD_KEY_ENCRYPTION_KEY", KEK),
                ("AUTHD_KEY_ENCRYPTION_KEY", OTHER_KEK),
            ],
        )
        .await;
    assert!(moved.status.success(), "{moved:?}");
    assert!(String::from_utf8_lossy(&moved.stdout).contains("1 TOTP secret(s) resealed"));
    let after = sealed_with(&db).await;
    assert_ne!(after[0].0, before[0].0, "sealed with the other key now");

    // Under the new key the user still gets in with a code.
    let mut app = TestApp::spawn_on(db, smtp, &["--key-encryption-key", OTHER_KEK]).await;
    let t = challenge(&mut app, &user.email).await;
    let next = totp_at(&user.secret, user.confirmed_step + 1);
    verify(&app, &t, &next, "")
        .await
        .expect("the resealed secret opens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_verify_mfa_is_unavailable_and_the_code_still_works_after() {
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
    let user = enrolled(&mut app, "gone@example.com").await;
    let t = challenge(&mut app, &user.email).await;
    let next = totp_at(&user.secret, user.confirmed_step + 1);

    cluster.down();
    let answer = verify(&app, &t, &next, "").await;
    assert_eq!(code(answer), Code::Unavailable);
    cluster.up();
    // Nothing was spent while the database was away: the same challenge and code get in.
    let mut last = None;
    for _ in 0..20 {
        match verify(&app, &t, &next, "").await {
            Ok(tokens) => {
                last = Some(tokens);
                break;
            }
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    let tokens = last.expect("VerifyMfa once the database is back");
    assert_eq!(claims_of(&tokens)["amr"], serde_json::json!(["pwd", "otp"]));
}
