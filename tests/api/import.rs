//! `authd import`, the real binary, moving in the users of the two seed apps: their tables are
//! built as the seed documents have them in a PostgreSQL database of the test's own, filled with
//! bcrypt (cost 10, as the apps hash) hashes the test makes, imported into authd's database
//! (SQLite or PostgreSQL, as AUTHD_TEST_DATABASE says), and then the users log in over gRPC with
//! their old passwords. A second import changes nothing; bad rows are reported and skipped
//! without costing the rows around them.

use crate::account::Account;
use crate::helpers::{TestApp, TestDb, authd_command, code, stored_hash, verify_with_jwks};
use crate::smtp::SmtpServer;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};
use std::process::Output;

/// The Drizzle seed's `users` table (`src/db/schema.ts`), as drizzle-kit creates it.
const DRIZZLE_USERS: &str = r#"
    CREATE TABLE users (
        id bigserial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        name text NOT NULL,
        password_hash text NOT NULL,
        email_verified boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX users_email_idx ON users (email);
"#;

/// The Prisma seed's `User` model, as `prisma migrate` creates it.
const PRISMA_USER: &str = r#"
    CREATE TABLE "User" (
        "id" TEXT NOT NULL,
        "email" TEXT NOT NULL,
        "name" TEXT,
        "password" TEXT NOT NULL,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,
        CONSTRAINT "User_pkey" PRIMARY KEY ("id")
    );
    CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
    CREATE INDEX "User_email_idx" ON "User"("email");
"#;

/// A hash as the seed apps make it: bcrypt, 10 rounds.
async fn bcrypt10(password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || bcrypt::hash(password, 10).unwrap())
        .await
        .unwrap()
}

/// A PostgreSQL database of the test's own (whatever the target is) with `sql` run in it.
async fn source(sql: &str) -> TestDb {
    let db = TestDb::postgres().await;
    let conn = db.connect().await;
    conn.execute_unprepared(sql).await.expect("source schema");
    conn.close().await.ok();
    db
}

fn from_db(source: &TestDb) -> Vec<String> {
    vec!["--from-db".into(), source.url.clone()]
}

/// `authd import ARGS` into `target`: its output.
async fn import(target: &TestDb, args: &[String]) -> Output {
    let mut command = authd_command();
    command
        .arg("import")
        .args(args)
        .env("AUTHD_DATABASE_URL", &target.url)
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("run authd import"))
        .await
        .unwrap()
}

/// The report of a run that went through.
struct Report(String);

impl Report {
    fn of(output: &Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "authd import failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self(stdout)
    }

    /// The count on the line that starts with `label` (`imported`, or a reason's words).
    fn count(&self, label: &str) -> u64 {
        self.0
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with(label))
            .and_then(|line| line.split_once(": "))
            .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The examples given for the reason that starts with `label`.
    fn examples(&self, label: &str) -> String {
        self.0
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with(label))
            .and_then(|line| line.split_once("(e.g. "))
            .map(|(_, examples)| examples.strip_suffix(')').unwrap_or(examples).to_owned())
            .unwrap_or_default()
    }

    /// The counts, without the header's timing.
    fn counts(&self) -> Vec<&str> {
        self.0.lines().skip(1).collect()
    }
}

/// Every users row as (email, name, password hash, verified, ext_id, id), by email.
async fn users(db: &TestDb) -> Vec<(String, String, String, bool, Option<String>, uuid::Uuid)> {
    use authd::db::entity::user;
    user::Entity::find()
        .order_by_asc(user::Column::Email)
        .all(&db.connect().await)
        .await
        .unwrap()
        .into_iter()
        .map(|u| {
            (
                u.email,
                u.name,
                u.password_hash,
                u.email_verified,
                u.ext_id,
                u.id,
            )
        })
        .collect()
}

/// Logs in as each `(email, password, ext_id)`, sees the hash upgraded and the ext_id in the
/// profile and the token; then imports again and sees nothing change (every user in authd's
/// database reported as already imported).
async fn logs_in_and_imports_once(
    app: &mut TestApp,
    args: &[String],
    people: &[(&str, &str, &str)],
) {
    for (email, password, ext_id) in people {
        assert!(stored_hash(app, email).await.starts_with("$2b$10$"));
        let tokens = app
            .login(email, password)
            .await
            .expect("old password logs in");
        assert!(
            stored_hash(app, email).await.starts_with("$argon2id$"),
            "{email}'s hash is upgraded at login"
        );
        let profile = Account::new(app, &tokens.access_token)
            .profile()
            .await
            .unwrap();
        assert_eq!(profile.ext_id, *ext_id);
        assert_eq!(profile.email, *email);
        let claims = verify_with_jwks(app, &tokens.access_token).await.unwrap();
        assert_eq!(claims["ext_id"], *ext_id, "{claims}");
        assert_eq!(
            code(app.login(email, "not the password they had").await),
            tonic::Code::Unauthenticated
        );
    }
    let before = users(&app.db).await;
    let again = Report::of(&import(&app.db, args).await);
    assert_eq!(again.count("imported"), 0, "{}", again.0);
    assert_eq!(
        again.count("already imported"),
        before.len() as u64,
        "{}",
        again.0
    );
    assert_eq!(users(&app.db).await, before, "a second import changed rows");
    let third = Report::of(&import(&app.db, args).await);
    assert_eq!(third.counts(), again.counts());
}

#[tokio::test]
async fn drizzle_seed_users_log_in_with_their_old_passwords_and_a_rerun_changes_nothing() {
    let source = source(DRIZZLE_USERS).await;
    let (ada, bob, cy) = (
        bcrypt10("ada's old password").await,
        bcrypt10("bob's old password").await,
        bcrypt10("cy's old password").await,
    );
    source
        .connect()
        .await
        .execute_unprepared(&format!(
            "INSERT INTO users (email, name, password_hash, email_verified) VALUES \
             ('Ada@Example.com', 'Ada Lovelace', '{ada}', true), \
             ('bob@example.com', 'Bob', '{bob}', true), \
             ('cy@example.com', 'Cy', '{cy}', false)"
        ))
        .await
        .unwrap();
    let target = TestDb::new().await;
    let mut args = from_db(&source);
    args.extend(["--preset".into(), "drizzle-seed".into()]);
    let output = import(&target, &args).await;
    let report = Report::of(&output);
    assert_eq!(report.count("imported"), 3, "{}", report.0);
    assert_eq!(report.count("skipped"), 0, "{}", report.0);
    let printed = format!("{}{}", report.0, String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("3 of 3 rows read"), "{printed}");
    for hash in [&ada, &bob, &cy] {
        assert!(!printed.contains(hash.as_str()), "a hash was printed");
    }

    let mut app = TestApp::spawn_on(target, SmtpServer::start().await, &[]).await;
    logs_in_and_imports_once(
        &mut app,
        &args,
        &[
            ("ada@example.com", "ada's old password", "1"),
            ("bob@example.com", "bob's old password", "2"),
        ],
    )
    .await;
    // Cy had not verified her email in the app: authd says so at the right password.
    assert_eq!(
        code(app.login("cy@example.com", "cy's old password").await),
        tonic::Code::PermissionDenied
    );
}

#[tokio::test]
async fn prisma_seed_users_with_uuid_ids_log_in_and_a_rerun_changes_nothing() {
    let source = source(PRISMA_USER).await;
    let (dee, eve) = (
        bcrypt10("dee's old password").await,
        bcrypt10("eve's old password").await,
    );
    let (dee_id, eve_id) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    source
        .connect()
        .await
        .execute_unprepared(&format!(
            "INSERT INTO \"User\" (\"id\", \"email\", \"name\", \"password\", \"updatedAt\") \
             VALUES ('{dee_id}', 'dee@example.com', 'Dee', '{dee}', now()), \
             ('{eve_id}', 'eve@example.com', NULL, '{eve}', now())"
        ))
        .await
        .unwrap();
    let target = TestDb::new().await;
    // Prisma's User has no verified column: the app let its users in unverified.
    let mut args = from_db(&source);
    args.extend(["--preset", "prisma-seed", "--assume-verified"].map(String::from));
    let report = Report::of(&import(&target, &args).await);
    assert_eq!(report.count("imported"), 2, "{}", report.0);
    assert!(
        report.0.contains("1 imported user(s) had no name"),
        "{}",
        report.0
    );

    let mut app = TestApp::spawn_on(target, SmtpServer::start().await, &[]).await;
    let rows = users(&app.db).await;
    assert_eq!(rows[1].1, "eve", "a missing name is the email's local part");
    logs_in_and_imports_once(
        &mut app,
        &args,
        &[
            ("dee@example.com", "dee's old password", &dee_id.to_string()),
            ("eve@example.com", "eve's old password", &eve_id.to_string()),
        ],
    )
    .await;
}

#[tokio::test]
async fn bad_rows_are_reported_and_the_good_rows_around_them_imported() {
    // The seed's table, but with a nullable hash column, so that a NULL hash can be tried.
    let source =
        source(&DRIZZLE_USERS.replace("password_hash text NOT NULL", "password_hash text")).await;
    let good = bcrypt10("a good old password").await;
    let long_name = "n".repeat(201);
    source
        .connect()
        .await
        .execute_unprepared(&format!(
            "INSERT INTO users (id, email, name, password_hash, email_verified) VALUES \
             (1, 'first@example.com', 'First', '{good}', true), \
             (2, '', 'Empty', '{good}', true), \
             (3, 'FIRST@example.COM', 'First again', '{good}', true), \
             (4, 'md5@example.com', 'Md5', '5f4dcc3b5aa765d61d8327deb882cf99', true), \
             (5, 'null@example.com', 'Null', NULL, true), \
             (6, 'long@example.com', '{long_name}', '{good}', true), \
             (7, 'taken@example.com', 'Taken', '{good}', true), \
             (8, 'last@example.com', 'Last', '{good}', true)"
        ))
        .await
        .unwrap();
    // taken@example.com signed up to authd on its own before the import.
    let mut app = TestApp::spawn().await;
    app.signup("taken@example.com").await;
    let taken_hash = stored_hash(&app, "taken@example.com").await;

    let mut args = from_db(&source);
    args.extend(["--preset", "drizzle-seed", "--batch-size", "3"].map(String::from));
    let mut dry_args = args.clone();
    dry_args.push("--dry-run".into());
    let dry = Report::of(&import(&app.db, &dry_args).await);
    assert_eq!(users(&app.db).await.len(), 1, "a dry run wrote rows");
    let output = import(&app.db, &args).await;
    let report = Report::of(&output);
    assert_eq!(
        dry.counts(),
        report.counts(),
        "a dry run counts as the real run"
    );
    assert_eq!(report.count("imported"), 2, "{}", report.0);
    assert_eq!(report.count("skipped"), 6, "{}", report.0);
    for (reason, example) in [
        ("invalid email", "2"),
        ("duplicate email in the source", "3"),
        ("password hash is not bcrypt", "4"),
        ("no password hash", "5"),
        ("invalid name", "6"),
        ("email taken by another authd user", "7"),
    ] {
        assert_eq!(report.count(reason), 1, "{reason}: {}", report.0);
        assert_eq!(report.examples(reason), example, "{reason}: {}", report.0);
    }
    let printed = format!("{}{}", report.0, String::from_utf8_lossy(&output.stderr));
    assert!(
        !printed.contains(&good) && !printed.contains("5f4dcc3b"),
        "{printed}"
    );

    for email in ["first@example.com", "last@example.com"] {
        app.login(email, "a good old password").await.unwrap();
    }
    assert_eq!(stored_hash(&app, "taken@example.com").await, taken_hash);
    assert_eq!(users(&app.db).await.len(), 3);

    let again = Report::of(&import(&app.db, &args).await);
    assert_eq!(again.count("already imported"), 2, "{}", again.0);
    assert_eq!(
        again.count("duplicate email in the source"),
        1,
        "{}",
        again.0
    );
    assert_eq!(again.count("email taken by another authd user"), 1);
}

#[tokio::test]
async fn a_json_lines_file_imports_the_same_way_and_names_its_malformed_lines() {
    let good = bcrypt10("a json old password").await;
    let line = |fields: &str| format!("{{{fields}}}\n");
    let mut file = String::new();
    file += &line(&format!(
        r#""id": 1, "email": "j1@example.com", "password_hash": "{good}", "name": "J One", "email_verified": true"#
    ));
    file += "this is not json\n";
    file += &line(&format!(
        r#""id": 2, "email": "", "password_hash": "{good}""#
    ));
    file += &line(&format!(
        r#""id": 3, "email": "J1@EXAMPLE.COM", "password_hash": "{good}""#
    ));
    file += &format!("{}\n", "x".repeat(1 << 20));
    file += &line(r#""id": 4, "email": "j4@example.com", "password_hash": "plain""#);
    file += &line(r#""id": 5, "email": "j5@example.com", "password_hash": null"#);
    file += &line(&format!(
        r#""id": 6, "email": "j6@example.com", "password_hash": "{good}", "name": "{}""#,
        "n".repeat(201)
    ));
    file += &line(&format!(
        r#""id": "cl9ab2x", "email": "j2@example.com", "password_hash": "{good}""#
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    std::fs::write(&path, file).unwrap();

    let target = TestDb::new().await;
    let args: Vec<String> = vec![
        "--from-jsonl".into(),
        path.display().to_string(),
        "--assume-verified".into(),
    ];
    let report = Report::of(&import(&target, &args).await);
    assert_eq!(report.count("imported"), 2, "{}", report.0);
    assert_eq!(report.count("skipped"), 7, "{}", report.0);
    assert_eq!(
        report.examples("malformed line"),
        "line 2: not JSON, line 5: longer than 64 KiB"
    );
    for (reason, example) in [
        ("invalid email", "line 3 (id 2)"),
        ("duplicate email in the source", "line 4 (id 3)"),
        ("password hash is not bcrypt", "line 6 (id 4)"),
        ("no password hash", "line 7 (id 5)"),
        ("invalid name", "line 8 (id 6)"),
    ] {
        assert_eq!(report.examples(reason), example, "{reason}: {}", report.0);
    }

    let mut app = TestApp::spawn_on(target, SmtpServer::start().await, &[]).await;
    logs_in_and_imports_once(
        &mut app,
        &args,
        &[
            ("j1@example.com", "a json old password", "1"),
            ("j2@example.com", "a json old password", "cl9ab2x"),
        ],
    )
    .await;
}

#[tokio::test]
async fn bad_flags_and_an_unreachable_source_stop_the_import_before_anything_is_written() {
    let target = TestDb::new().await;
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let source_url = "postgres://postgres@127.0.0.1:5432/postgres".to_owned();
    let injected = import(
        &target,
        &[
            "--from-db".into(),
            source_url.clone(),
            "--preset".into(),
            "drizzle-seed".into(),
            "--table".into(),
            "users; DROP TABLE x".into(),
        ],
    )
    .await;
    assert_eq!(injected.status.code(), Some(2), "{}", stderr(&injected));
    assert!(
        stderr(&injected).contains("--table: `users; DROP TABLE x` is not a plain identifier"),
        "{}",
        stderr(&injected)
    );
    let no_columns = import(&target, &["--from-db".into(), source_url]).await;
    assert_eq!(no_columns.status.code(), Some(2));
    assert!(
        stderr(&no_columns).contains("AUTHD_TABLE: is needed with --from-db"),
        "{}",
        stderr(&no_columns)
    );
    let sqlite = import(
        &target,
        &["--from-db", "sqlite://app.db", "--preset", "drizzle-seed"].map(String::from),
    )
    .await;
    assert_eq!(sqlite.status.code(), Some(2));
    assert!(stderr(&sqlite).contains("must be a PostgreSQL URL"));
    let neither = import(&target, &[]).await;
    assert_eq!(neither.status.code(), Some(2));

    // Nothing listens on port 1; the password never shows.
    let unreachable = import(
        &target,
        &[
            "--from-db",
            "postgres://app:hunter2@127.0.0.1:1/app",
            "--preset",
            "drizzle-seed",
        ]
        .map(String::from),
    )
    .await;
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        stderr(&unreachable)
    );
    assert!(stderr(&unreachable).contains("postgres://***@127.0.0.1:1/app"));
    assert!(!stderr(&unreachable).contains("hunter2"));
    let missing = import(
        &target,
        &["--from-jsonl", "/nonexistent/users.jsonl"].map(String::from),
    )
    .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(users(&target).await.is_empty());
}

#[tokio::test]
async fn hashes_that_cost_more_than_a_login_may_are_skipped_with_the_reason() {
    let good = bcrypt10("a json old password").await;
    let bcrypt31 = format!("$2b$31${}", &good[7..]);
    let argon2_4_gib = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNhbA$\
                        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // Within the bounds: Node's argon2 defaults.
    let argon2_node = "$argon2id$v=19$m=65536,t=3,p=4$c2l4dGVlbiBieXRlIHNhbA$\
                       AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let rows = [
        ("1", "c1@example.com", good.as_str()),
        ("2", "c2@example.com", bcrypt31.as_str()),
        ("3", "c3@example.com", argon2_4_gib),
        ("4", "c4@example.com", argon2_node),
    ];
    let file: String = rows
        .iter()
        .map(|(id, email, hash)| {
            format!(r#"{{"id": {id}, "email": "{email}", "password_hash": "{hash}"}}"#) + "\n"
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    std::fs::write(&path, file).unwrap();

    let target = TestDb::new().await;
    let args: Vec<String> = vec![
        "--from-jsonl".into(),
        path.display().to_string(),
        "--assume-verified".into(),
    ];
    let output = import(&target, &args).await;
    let report = Report::of(&output); // exit 0, as for every skipped row
    assert_eq!(report.count("imported"), 2, "{}", report.0);
    assert_eq!(report.count("skipped"), 2, "{}", report.0);
    let reason = "password hash costs more to check than a login may";
    assert_eq!(report.count(reason), 2, "{}", report.0);
    assert_eq!(
        report.examples(reason),
        "line 2 (id 2), line 3 (id 3)",
        "{}",
        report.0
    );
    let printed = format!("{}{}", report.0, String::from_utf8_lossy(&output.stderr));
    assert!(!printed.contains("c2l4dGVlbiBieXRlIHNhbA") && !printed.contains(&good[7..]));
    let kept: Vec<_> = users(&target)
        .await
        .into_iter()
        .map(|(email, _, hash, ..)| (email, hash))
        .collect();
    assert_eq!(
        kept,
        [
            ("c1@example.com".to_owned(), good.clone()),
            ("c4@example.com".to_owned(), argon2_node.to_owned()),
        ]
    );

    let mut app = TestApp::spawn_on(target, SmtpServer::start().await, &[]).await;
    app.login("c1@example.com", "a json old password")
        .await
        .expect("the good row logs in");
}
