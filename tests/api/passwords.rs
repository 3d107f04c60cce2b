//! The password policy over gRPC (NIST SP 800-63B rev 4): common, context and trivial passwords
//! refused with a reason that never repeats them; one password whichever Unicode form it is typed
//! in, including hashes stored before authd normalized; bcrypt never letting in more than the
//! 72 bytes it reads.

use crate::helpers::{MAIL_WAIT, PASSWORD, TestApp, code, insert_user_with_hash};
use authd::pb;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Composed (NFC) and decomposed (NFD) spellings of one password, as two keyboards send it.
const NFC: &str = "cr\u{e8}me br\u{fb}l\u{e9}e \u{e0} la fran\u{e7}aise";
const NFD: &str = "cre\u{300}me bru\u{302}le\u{301}e a\u{300} la franc\u{327}aise";

/// 72 bytes exactly: all that bcrypt reads.
const BYTES_72: &str = "correct horse battery staple, every day of the week, twice before lunch!";

fn signup(email: &str, password: &str) -> pb::SignupRequest {
    pb::SignupRequest {
        email: email.into(),
        password: password.into(),
        name: "Pat".into(),
    }
}

/// Asserts INVALID_ARGUMENT with one field violation on `field` that does not repeat the
/// password; returns its description.
#[track_caller]
pub(crate) fn refusal<T: std::fmt::Debug>(
    result: Result<T, Status>,
    field: &str,
    password: &str,
) -> String {
    let status = result.expect_err("the password must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no google.rpc.BadRequest in {status:?}"));
    let [violation] = details.field_violations.as_slice() else {
        panic!("one violation expected: {details:?}");
    };
    assert_eq!(violation.field, field);
    for shown in [&violation.description, &status.message().to_owned()] {
        assert!(
            !shown.to_lowercase().contains(&password.to_lowercase()),
            "the answer repeats the password: {shown:?}"
        );
    }
    violation.description.clone()
}

/// A hash as authd made them before it normalized passwords: of the bytes as typed, with the
/// test suite's argon2id cost, so only the normalization can ask for a rehash.
fn argon2_hash_of(raw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
    argon2
        .hash_password(raw.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// A bcrypt hash as Node's bcryptjs writes it.
fn bcrypt_hash_of(raw: &str) -> String {
    bcrypt::hash_with_salt(raw, 4, *b"sixteen byte slt")
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA)
}

#[tokio::test]
async fn common_passwords_are_refused_whatever_the_case_and_the_minimum() {
    let mut lowered = TestApp::spawn_with(&["--password-min-length", "8"]).await;
    let email = "common@example.com";
    for common in [
        "password123",
        "PASSWORD123",
        "Password123",
        "football",
        "iloveyou",
        "ｐａｓｓｗｏｒｄ１２３", // fullwidth forms: NFKC makes them ASCII
    ] {
        let refused = lowered.client.signup(signup(email, common)).await;
        let why = refusal(refused, "password", common);
        assert!(why.contains("too common"), "{common:?}: {why}");
    }
    lowered
        .client
        .signup(signup(email, "dog7cat2"))
        .await
        .expect("8 characters, not on the list");

    // The default minimum of 15: short entries fail on length, long ones are still on the list.
    let mut app = TestApp::spawn().await;
    let why = refusal(
        app.client.signup(signup(email, "password123")).await,
        "password",
        "password123",
    );
    assert!(why.contains("15 to 128 characters"), "{why}");
    for common in [
        "1234567890qwertyuiop",
        "QwertyuiopAsdfghJKL",
        "MANCHESTERUNITED",
    ] {
        let refused = app.client.signup(signup(email, common)).await;
        assert!(refusal(refused, "password", common).contains("too common"));
    }
    // Nothing was stored: the address is still free.
    app.signup(email).await;
    app.smtp.wait_for_mail_to(email, MAIL_WAIT).await;
}

#[tokio::test]
async fn the_email_its_parts_and_the_service_name_are_refused() {
    let mut app = TestApp::spawn_with(&[
        "--password-min-length",
        "8",
        "--service-name",
        "Acme Accounts",
    ])
    .await;
    let email = "Jonathan.Stevenson@Longexample.com";
    for own in [
        "jonathan.stevenson@longexample.com",
        "JONATHAN.STEVENSON@LONGEXAMPLE.COM",
        "Jonathan.Stevenson",
        "longexample.com",
        "LongExample",
        "jonathan.stevenson@longexample.com!!",
    ] {
        let refused = app.client.signup(signup(email, own)).await;
        let why = refusal(refused, "password", own);
        assert!(why.contains("email"), "{own:?}: {why}");
    }
    for service in ["acme accounts", "ACME ACCOUNTS", "Acme\u{a0}Accounts"] {
        let refused = app.client.signup(signup(email, service)).await;
        assert!(refusal(refused, "password", service).contains("service"));
    }
    // The same words are fine for someone else, and the rule is about the password only.
    app.client
        .signup(signup("someone@example.com", "Jonathan.Stevenson"))
        .await
        .expect("another user's name is not context");

    // A reset learns the email through its token, and refuses it just the same, without
    // spending the token.
    app.signup(email).await;
    app.mailed_token(&email.to_lowercase(), "verify-email")
        .await;
    let token = app.reset_token(&email.to_lowercase()).await;
    let reset = |new_password: &str| pb::ResetPasswordRequest {
        token: token.clone(),
        new_password: new_password.into(),
    };
    let refused = app.client.reset_password(reset("LONGEXAMPLE.COM")).await;
    assert!(refusal(refused, "new_password", "longexample.com").contains("email"));
    let refused = app.client.reset_password(reset("password1234")).await;
    assert!(refusal(refused, "new_password", "password1234").contains("too common"));
    app.client
        .reset_password(reset("an entirely new password"))
        .await
        .expect("the token still works after refusals");
}

#[tokio::test]
async fn blank_repeated_and_sequential_passwords_are_refused() {
    let mut app = TestApp::spawn().await;
    let email = "trivial@example.com";
    for trivial in [
        " ".repeat(16),
        "\t \u{a0}\u{3000}".repeat(4), // tabs, spaces, no-break and ideographic spaces
        "a".repeat(16),
        "aAaAaAaAaAaAaAaA".to_owned(),
        "🔑".repeat(20),
        "123456789012345".to_owned(),
        "987654321098765".to_owned(),
        "abcdefghijklmno".to_owned(),
        "ZYXWVUTSRQPONMLK".to_owned(),
    ] {
        let refused = app.client.signup(signup(email, &trivial)).await;
        let why = refusal(refused, "password", &trivial);
        assert!(why.starts_with("must not be"), "{trivial:?}: {why}");
    }
    for fine in [
        "aaaaaaaaaaaaaab",
        "  two words  here  ",
        "🔑🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑🔒🔑",
    ] {
        let email = format!("fine{}@example.com", fine.len());
        app.client
            .signup(signup(&email, fine))
            .await
            .unwrap_or_else(|e| panic!("{fine:?}: {e:?}"));
    }
}

#[tokio::test]
async fn a_password_set_composed_logs_in_decomposed_and_the_other_way_round() {
    assert_ne!(NFC, NFD);
    let mut app = TestApp::spawn().await;
    for (email, set, typed) in [("nfc@example.com", NFC, NFD), ("nfd@example.com", NFD, NFC)] {
        app.client.signup(signup(email, set)).await.unwrap();
        let token = app.mailed_token(email, "verify-email").await;
        app.client
            .verify_email(pb::VerifyEmailRequest { token })
            .await
            .unwrap();
        app.login(email, typed).await.expect("the other form");
        app.login(email, set).await.expect("the same form");
        assert_eq!(
            code(
                app.login(email, "cre\u{300}me brule\u{301}e a\u{300} la francaise")
                    .await
            ),
            Code::Unauthenticated,
            "a different password is still wrong"
        );
    }
    // A fullwidth spelling is the same password under NFKC too.
    app.client
        .signup(signup("wide@example.com", "wide open spaces"))
        .await
        .unwrap();
    let token = app.mailed_token("wide@example.com", "verify-email").await;
    app.client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .unwrap();
    app.login("wide@example.com", "ｗｉｄｅ　ｏｐｅｎ　ｓｐａｃｅｓ")
        .await
        .expect("NFKC folds fullwidth letters and the ideographic space");
}

#[tokio::test]
async fn a_hash_made_before_normalization_logs_in_and_is_rehashed() {
    // Logins sent in parallel are counted before their hash runs; leave room for all six.
    let mut app = TestApp::spawn_with(&["--throttle-client-account-failures", "20"]).await;
    let email = "legacy@example.com";
    let legacy = argon2_hash_of(NFD);
    insert_user_with_hash(&app, email, legacy.clone()).await;

    assert_eq!(
        code(app.login(email, NFC).await),
        Code::Unauthenticated,
        "the old hash is of the decomposed bytes only"
    );
    assert_eq!(crate::helpers::stored_hash(&app, email).await, legacy);

    // Several logins at once with the form the hash was made from. One upgrade wins; a login
    // that verified the old hash and starts its session after that upgrade checks the password
    // again against the upgraded hash, so every one of them logs in.
    let mut logins = JoinSet::new();
    for _ in 0..6 {
        let mut client = app.client.clone();
        logins.spawn(async move {
            client
                .login(pb::LoginRequest {
                    email: email.into(),
                    password: NFD.into(),
                    client_id: String::new(),
                })
                .await
        });
    }
    while let Some(login) = logins.join_next().await {
        login
            .unwrap()
            .expect("a login racing the upgrade still logs in");
    }
    let rehashed = crate::helpers::stored_hash(&app, email).await;
    assert_ne!(rehashed, legacy, "rehashed from the normalized form");
    assert!(rehashed.starts_with("$argon2id$"), "{rehashed}");
    app.login(email, NFC)
        .await
        .expect("after the rehash, the composed form logs in too");
    app.login(email, NFD).await.expect("and the decomposed one");
    assert_eq!(
        crate::helpers::stored_hash(&app, email).await,
        rehashed,
        "no rehash once current"
    );
}

#[tokio::test]
async fn bcrypt_never_lets_in_more_than_the_72_bytes_it_reads() {
    assert_eq!(BYTES_72.len(), 72);
    let mut app = TestApp::spawn().await;
    let email = "node72@example.com";
    let imported = bcrypt_hash_of(BYTES_72);
    insert_user_with_hash(&app, email, imported.clone()).await;

    for longer in [
        format!("{BYTES_72}!"),                        // 73 bytes
        format!("{BYTES_72} and then some more text"), // the 72 bytes plus any suffix
        format!("{BYTES_72}{}", "é".repeat(28)),       // 128 characters, 128 bytes
    ] {
        let started = Instant::now();
        assert_eq!(
            code(app.login(email, &longer).await),
            Code::Unauthenticated,
            "{} bytes",
            longer.len()
        );
        assert!(started.elapsed() < Duration::from_secs(5), "does not hang");
        assert_eq!(
            crate::helpers::stored_hash(&app, email).await,
            imported,
            "a refused login never upgrades the hash"
        );
    }
    let tokens = app.login(email, BYTES_72).await.expect("72 bytes exactly");
    assert!(tokens.user.is_some());
    let upgraded = crate::helpers::stored_hash(&app, email).await;
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert_eq!(
        code(app.login(email, &format!("{BYTES_72}!")).await),
        Code::Unauthenticated,
        "the upgraded hash is of the 72 bytes, not of a longer input"
    );
}

#[tokio::test]
async fn with_bcrypt_configured_long_inputs_neither_log_in_nor_get_hashed() {
    let mut app = TestApp::spawn_with(&["--password-hash", "bcrypt"]).await;
    let email = "bcrypt72@example.com";
    // A cost below the configured one would ask for a rehash, were the login let in.
    let weak = bcrypt::hash_with_salt(BYTES_72, 4, *b"sixteen byte slt")
        .unwrap()
        .to_string();
    insert_user_with_hash(&app, email, weak.clone()).await;
    app.client
        .signup(signup("new72@example.com", &format!("{BYTES_72}?")))
        .await
        .expect_err("a new password over 72 bytes would be cut");

    let mut calls = JoinSet::new();
    for suffix in ["!", "?", " and more", "\u{301}"] {
        let mut client = app.client.clone();
        calls.spawn(async move {
            client
                .login(pb::LoginRequest {
                    email: email.into(),
                    password: format!("{BYTES_72}{suffix}"),
                    client_id: String::new(),
                })
                .await
        });
    }
    while let Some(call) = calls.join_next().await {
        assert_eq!(code(call.unwrap()), Code::Unauthenticated);
    }
    assert_eq!(
        crate::helpers::stored_hash(&app, email).await,
        weak,
        "never upgraded"
    );
    app.login(email, BYTES_72).await.expect("72 bytes exactly");
}

#[tokio::test]
async fn hostile_password_fields_are_refused_quickly() {
    let mut app = TestApp::spawn().await;
    let email = "hostile@example.com";
    for hostile in [
        "e\u{301}".repeat(1 << 18),           // 768 KiB of combining marks
        "\u{fdfa}".repeat(120),               // 120 characters, 2160 once NFKC expands them
        format!("{PASSWORD}\u{0}\u{0}\u{0}"), // NUL bytes are just characters: fine
    ] {
        let started = Instant::now();
        let signed_up = app.client.signup(signup(email, &hostile)).await;
        let login = app.login(email, &hostile).await;
        assert!(started.elapsed() < Duration::from_secs(5), "does not hang");
        if hostile.starts_with(PASSWORD) {
            signed_up.expect("control characters are not refused");
            assert_eq!(
                code(login),
                Code::PermissionDenied,
                "right password, unverified"
            );
        } else {
            refusal(signed_up, "password", &hostile);
            let code = code(login);
            assert!(
                matches!(code, Code::InvalidArgument | Code::Unauthenticated),
                "{code:?}"
            );
        }
    }
}

/// Stored hashes over the cost bounds, well formed: bcrypt's top cost (2^31 rounds, hours) and
/// argon2id asking for 4 GiB.
fn hashes_over_the_cost_bounds() -> [String; 2] {
    let bcrypt31 = bcrypt::hash_with_salt("the old password", 4, *b"sixteen byte slt")
        .unwrap()
        .to_string()
        .replacen("$04$", "$31$", 1);
    let argon2_4_gib = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNhbA$\
                        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .to_owned();
    [bcrypt31, argon2_4_gib]
}

#[tokio::test]
async fn a_stored_hash_over_the_cost_bounds_answers_like_a_wrong_password_and_blocks_nobody() {
    let mut app = TestApp::spawn_with(&["--max-concurrent-hashes", "2"]).await;
    app.signup_verified_login("normal@example.com").await;
    let wrong = app
        .login("normal@example.com", "a wrong password")
        .await
        .unwrap_err();
    let costly = ["bcrypt31@example.com", "argon2@example.com"];
    for (email, hash) in costly.iter().zip(hashes_over_the_cost_bounds()) {
        insert_user_with_hash(&app, email, hash).await;
    }
    // Two logins for each at once (as many as there are hashing threads), and a normal login
    // meanwhile: before the bounds, the bcrypt pair held both threads for hours.
    let mut calls = JoinSet::new();
    for email in costly.iter().chain(&costly) {
        let mut client = app.client.clone();
        let email = email.to_string();
        calls.spawn(async move {
            client
                .login(pb::LoginRequest {
                    email,
                    password: "the old password".into(),
                    client_id: String::new(),
                })
                .await
        });
    }
    let answers = tokio::time::timeout(Duration::from_secs(60), async {
        let normal = app.login("normal@example.com", PASSWORD).await;
        (normal, calls.join_all().await)
    })
    .await
    .expect("logins against costly hashes must not hold the hashing threads");
    answers.0.expect("a normal login goes on meanwhile");
    for answer in answers.1 {
        let status = answer.expect_err("a costly hash never logs in");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), wrong.message(), "as a wrong password");
        assert_eq!(status.details(), wrong.details());
    }
}
