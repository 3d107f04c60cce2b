//! What a successful Login and VerifyMfa cost the database, read from `authd_db_statements_total` on
//! /metrics: every statement is counted there by kind and table. Background work (the
//! revocation poll, key reloads, the audit writer, the mail outbox) runs all the time and only
//! on tables of its own, so the Login's statements are the ones on the tables it uses; anything
//! else that moves fails the test rather than being subtracted.

use crate::helpers::{PASSWORD, TestApp};
use authd::pb;
use std::collections::BTreeMap;
use std::time::Duration;

/// (statement, table) → how many so far.
type Counts = BTreeMap<(String, String), u64>;

/// The tables a Login reads or writes.
const LOGIN_TABLES: [&str; 4] = ["users", "throttles", "sessions", "refresh_tokens"];
/// The tables only background work touches while the Login runs.
const BACKGROUND_TABLES: [&str; 4] = ["revocations", "signing_keys", "audit_events", "mail_outbox"];

async fn statement_counts(app: &TestApp) -> Counts {
    let scrape = app.http_get("/metrics").await;
    assert_eq!(scrape.status, 200);
    let mut counts = Counts::new();
    for line in scrape.body.lines() {
        let Some(rest) = line.strip_prefix("authd_db_statements_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect(line);
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .and_then(|v| v.strip_suffix('"'))
                .expect(line)
                .to_owned()
        };
        counts.insert(
            (label("statement"), label("table")),
            value.trim().parse().expect(line),
        );
    }
    counts
}

/// How the counts on the Login's tables moved from `before` to `after`, by (statement, table);
/// panics if a table that is neither the Login's nor background work's moved.
fn login_statements(before: &Counts, after: &Counts) -> Counts {
    statements_on(&LOGIN_TABLES, before, after)
}

/// How the counts on `tables` moved from `before` to `after`; panics if a table that is neither
/// one of them nor background work's moved.
fn statements_on(tables: &[&str], before: &Counts, after: &Counts) -> Counts {
    let mut moved = Counts::new();
    for (labels, n) in after {
        let delta = n - before.get(labels).copied().unwrap_or(0);
        if delta == 0 || BACKGROUND_TABLES.contains(&labels.1.as_str()) {
            continue;
        }
        assert!(
            tables.contains(&labels.1.as_str()),
            "{delta} statement(s) {labels:?} during the call, on a table this test does not \
             know: {after:?}"
        );
        moved.insert(labels.clone(), delta);
    }
    moved
}

fn count(counts: &Counts, statement: &str, table: &str) -> u64 {
    counts
        .get(&(statement.to_owned(), table.to_owned()))
        .copied()
        .unwrap_or(0)
}

/// Waits until no statement on the Login's tables has run for a while (signup's and
/// verification's own work is done), and returns the counts then.
async fn quiet(app: &TestApp) -> Counts {
    quiet_on(app, &LOGIN_TABLES).await
}

/// Waits until no statement on `tables` has run for a while, and returns the counts then.
async fn quiet_on(app: &TestApp, tables: &[&str]) -> Counts {
    let on_login_tables = |counts: &Counts| -> Counts {
        counts
            .iter()
            .filter(|((_, table), _)| tables.contains(&table.as_str()))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let mut last = statement_counts(app).await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = statement_counts(app).await;
        if on_login_tables(&now) == on_login_tables(&last) {
            return now;
        }
        last = now;
    }
    panic!("statements on the Login's tables never stopped: {last:?}");
}

#[tokio::test]
async fn a_successful_login_makes_at_most_four_statements_before_its_session() {
    // No cleanup round (it deletes from the Login's tables) while the test counts.
    let mut app = TestApp::spawn_with(&["--cleanup-interval", "0s"]).await;
    let email = "counted@example.com";
    app.signup(email).await;
    let token = app.mailed_token(email, "verify-email").await;
    app.client
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect("verify email");

    // The first Login from this client, then one from a client the account now knows.
    for login in ["first", "known client"] {
        let before = quiet(&app).await;
        let tokens = app.login(email, PASSWORD).await.expect("login");
        let after = statement_counts(&app).await;
        assert!(
            !tokens.access_token.is_empty() && !tokens.refresh_token.is_empty(),
            "the Login gave tokens"
        );
        let moved = login_statements(&before, &after);
        // The session transaction: the user's row lock with the hash re-checked, the session
        // and its refresh token. It happened, once.
        let transaction = [
            ("update", "users"),
            ("insert", "sessions"),
            ("insert", "refresh_tokens"),
        ];
        for (statement, table) in transaction {
            assert_eq!(
                count(&moved, statement, table),
                1,
                "{login} login: {statement} {table} in the session transaction: {moved:?}"
            );
        }
        let all: u64 = moved.values().sum();
        let before_session = all - transaction.len() as u64;
        eprintln!(
            "{login} login ({}): {before_session} statements before the session transaction, \
             {all} in all: {moved:?}",
            if app.db.is_postgres() {
                "PostgreSQL"
            } else {
                "SQLite"
            },
        );
        assert_eq!(
            count(&moved, "select", "users"),
            1,
            "{login} login: one read of the user: {moved:?}"
        );
        assert!(
            before_session <= 4,
            "{login} login: {before_session} statements before the session transaction (the \
             user, the throttle's read, its count and its settling make 4): {moved:?}"
        );
    }
}

/// The tables a VerifyMfa reads or writes.
const VERIFY_MFA_TABLES: [&str; 7] = [
    "users",
    "throttles",
    "sessions",
    "refresh_tokens",
    "mfa_challenges",
    "totp_factors",
    "recovery_codes",
];

#[tokio::test]
async fn verify_mfa_reads_the_throttle_once_and_the_challenge_with_its_factor_once() {
    let mut app = TestApp::spawn_with(&["--cleanup-interval", "0s"]).await;
    let user = crate::mfa::enrolled(&mut app, "counted-mfa@example.com").await;
    let mfa_token = crate::mfa::challenge(&mut app, &user.email).await;
    // The next step's code: the step enrollment spent is refused.
    let code = crate::mfa::totp_at(&user.secret, user.confirmed_step + 1);

    let before = quiet_on(&app, &VERIFY_MFA_TABLES).await;
    let tokens = crate::mfa::verify(&app, &mfa_token, &code, "")
        .await
        .expect("verify mfa");
    let after = statement_counts(&app).await;
    assert!(!tokens.access_token.is_empty(), "VerifyMfa gave tokens");
    let moved = statements_on(&VERIFY_MFA_TABLES, &before, &after);
    eprintln!(
        "VerifyMfa ({}): {moved:?}",
        if app.db.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
    );
    assert_eq!(
        count(&moved, "select", "throttles"),
        1,
        "one read of the throttle table: {moved:?}"
    );
    assert_eq!(
        count(&moved, "select", "mfa_challenges"),
        1,
        "one read of the challenge: {moved:?}"
    );
    for table in ["totp_factors", "users"] {
        assert_eq!(
            count(&moved, "select", table),
            0,
            "the challenge's read brings the {table} row along: {moved:?}"
        );
    }
    // The transaction that starts the session did happen, once.
    for (statement, table) in [
        ("update", "mfa_challenges"),
        ("update", "totp_factors"),
        ("insert", "sessions"),
        ("insert", "refresh_tokens"),
    ] {
        assert_eq!(
            count(&moved, statement, table),
            1,
            "{statement} {table}: {moved:?}"
        );
    }
}
