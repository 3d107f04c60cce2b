//! Bad settings, as a user sets them: the real `authd` binary, configured through the
//! environment (or flags), must stop before touching anything, with exit code 2 and one message
//! that names what was set and never the secret in it.

use crate::helpers::authd_command;
use std::path::Path;
use std::process::Output;

const SECRET: &str = "hunter2";

/// `authd` with nothing of the caller's environment that could configure it, a scratch SQLite
/// file, and mail to the log, plus `env` and `args`.
fn authd(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = authd_command();
    command
        .current_dir(dir)
        .env(
            "AUTHD_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("authd.db").display()),
        )
        .env("AUTHD_GRPC_ADDR", "127.0.0.1:0")
        .env("AUTHD_HTTP_ADDR", "127.0.0.1:0")
        .env("AUTHD_MAIL_TO_LOG", "true");
    for (name, value) in env {
        command.env(name, value);
    }
    command.args(args).output().expect("run the authd binary")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One bad setting: exit 2, nothing created, one message naming `names` once, no secret.
fn refused(env: &[(&str, &str)], args: &[&str], names: &str) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = authd(dir.path(), env, args);
    let (stdout, stderr) = text(&output);
    let case = format!("{env:?} {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(output.status.code(), Some(2), "{case}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "secret shown: {case}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {case}");
    assert!(lines[0].starts_with("authd: "), "{case}");
    assert_eq!(
        stderr.matches(names).count(),
        1,
        "names {names} once: {case}"
    );
    assert!(
        !stdout.contains(names),
        "the message is printed once, on stderr: {case}"
    );
    assert!(
        !dir.path().join("authd.db").exists(),
        "the database was touched before the settings were checked: {case}"
    );
}

#[test]
fn every_bad_setting_stops_start_up_naming_it() {
    let secret_url = format!("postgres://app:{SECRET}@db:54x32/auth");
    let cases: Vec<(&str, String)> = vec![
        ("AUTHD_ACCESS_TTL", "0s".into()),
        ("AUTHD_ACCESS_TTL", "soon".into()),
        ("AUTHD_REFRESH_TTL", "0".into()),
        ("AUTHD_VERIFY_TTL", "-5m".into()),
        ("AUTHD_RESET_TTL", "99999999d".into()),
        ("AUTHD_SESSION_MAX_LIFETIME", "0s".into()),
        ("AUTHD_DATABASE_TIMEOUT", "0s".into()),
        ("AUTHD_DATABASE_MAX_CONNECTIONS", "0".into()),
        ("AUTHD_DATABASE_MAX_CONNECTIONS", "many".into()),
        ("AUTHD_DATABASE_URL", secret_url.clone()),
        (
            "AUTHD_DATABASE_URL",
            format!("mysql://app:{SECRET}@db/auth"),
        ),
        (
            "AUTHD_DATABASE_URL",
            format!("postgres://app:{SECRET}@/auth"),
        ),
        ("AUTHD_DATABASE_URL", format!("app:{SECRET}@db")),
        ("AUTHD_ISSUER", "not a url".into()),
        ("AUTHD_ISSUER", "".into()),
        ("AUTHD_AUDIENCE", "".into()),
        ("AUTHD_AUDIENCE", "a,,b".into()),
        ("AUTHD_APP_URL", "ftp://app.example".into()),
        ("AUTHD_MAIL_FROM", "nobody".into()),
        ("AUTHD_LOG_FORMAT", "xml".into()),
        ("AUTHD_REQUIRE_VERIFIED_EMAIL", "yes".into()),
        ("AUTHD_NO_MIGRATE", "maybe".into()),
        ("AUTHD_GRPC_ADDR", "localhost".into()),
        ("AUTHD_HTTP_ADDR", "127.0.0.1:99999".into()),
        ("AUTHD_PASSWORD_HASH", "md5".into()),
        ("AUTHD_PASSWORD_MIN_LENGTH", "4".into()),
        ("AUTHD_BCRYPT_COST", "99".into()),
        ("AUTHD_ARGON2_MEMORY_KIB", "1".into()),
        ("AUTHD_MAX_CONCURRENT_HASHES", "0".into()),
        ("AUTHD_THROTTLE_MAX_DELAY", "0s".into()),
        ("AUTHD_THROTTLE_CLIENT_FAILURES", "0".into()),
        ("AUTHD_THROTTLE_ACCOUNT_MAX_FAILURES", "101".into()),
        ("AUTHD_TRUSTED_PROXIES", "10.0.0.0/99".into()),
        ("AUTHD_TLS_HANDSHAKE_TIMEOUT", "0s".into()),
        ("AUTHD_SHUTDOWN_GRACE", "5 seconds".into()),
        ("AUTHD_SERVICE_NAME", " ".into()),
        ("AUTHD_INTROSPECT_CLIENTS", format!("billing:{SECRET}")),
        ("AUTHD_SIGNING_ALG", "HS256".into()),
        ("AUTHD_KEY_ROTATION_INTERVAL", "10m".into()),
        ("AUTHD_KEY_RELOAD_INTERVAL", "0s".into()),
        ("AUTHD_KEY_ENCRYPTION_KEY", SECRET.into()),
        (
            "AUTHD_KEY_ENCRYPTION_KEY",
            format!("{SECRET}{SECRET}{SECRET}{SECRET}"),
        ),
        ("AUTHD_KEY_ENCRYPTION_KEY_FILE", "/nonexistent/kek".into()),
    ];
    for (name, value) in &cases {
        refused(&[(name, value)], &["serve"], name);
    }
}

#[test]
fn the_keys_commands_check_their_settings_too() {
    for command in [["keys", "list"], ["keys", "rotate"], ["keys", "reseal"]] {
        refused(
            &[("AUTHD_KEY_ENCRYPTION_KEY", SECRET)],
            &command,
            "AUTHD_KEY_ENCRYPTION_KEY",
        );
        refused(&[("AUTHD_ACCESS_TTL", "0s")], &command, "AUTHD_ACCESS_TTL");
    }
    refused(
        &[("AUTHD_OLD_KEY_ENCRYPTION_KEY", SECRET)],
        &["keys", "reseal"],
        "AUTHD_OLD_KEY_ENCRYPTION_KEY",
    );
    refused(
        &[],
        &["keys", "rotate", "--key-reload-interval", "0s"],
        "--key-reload-interval",
    );
}

#[test]
fn a_rust_log_that_is_not_a_filter_is_said_not_ignored() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let output = authd(
        dir.path(),
        &[("AUTHD_GRPC_ADDR", &port), ("RUST_LOG", "authd=verbose")],
        &["serve"],
    );
    let (stdout, stderr) = text(&output);
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains("RUST_LOG is not a log filter") && said.contains("authd=verbose"),
        "{said}"
    );
}

#[test]
fn a_sqlite_file_that_cannot_be_opened_says_why() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let fresh = dir.path().join("fresh.db");
    let cases = [
        (
            format!("sqlite://{}", fresh.display()),
            "does not exist: add ?mode=rwc to AUTHD_DATABASE_URL to create it",
        ),
        (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("nope/fresh.db").display()
            ),
            "does not exist",
        ),
    ];
    for (url, why) in cases {
        let output = authd(dir.path(), &[("AUTHD_DATABASE_URL", &url)], &["serve"]);
        let (stdout, stderr) = text(&output);
        assert!(!output.status.success(), "{url}: {stdout}{stderr}");
        assert!(
            format!("{stdout}{stderr}").contains(why),
            "{url}: {stdout}{stderr}"
        );
    }
    assert!(!fresh.exists(), "nothing was created without mode=rwc");
}

#[test]
fn a_host_name_for_an_address_is_refused_saying_to_give_an_ip_address() {
    for (variable, value) in [
        ("AUTHD_GRPC_ADDR", "localhost:50051"),
        ("AUTHD_HTTP_ADDR", "auth.internal:8080"),
    ] {
        refused(&[(variable, value)], &["serve"], variable);
        let dir = tempfile::tempdir().expect("temporary folder");
        let (_, stderr) = text(&authd(dir.path(), &[(variable, value)], &["serve"]));
        assert!(
            stderr.contains("names a host: give an IP address and a port"),
            "{variable}={value}: {stderr}"
        );
    }
}

#[test]
fn a_bad_flag_is_named_as_the_flag() {
    refused(&[], &["serve", "--access-ttl", "0s"], "--access-ttl");
    refused(&[], &["serve", "--access-ttl=soon"], "--access-ttl");
    // The flag wins over the variable, and the message names the one that was used.
    refused(
        &[("AUTHD_ACCESS_TTL", "15m")],
        &["serve", "--database-max-connections", "0"],
        "--database-max-connections",
    );
    refused(
        &[],
        &[
            "migrate",
            "--database-url",
            &format!("postgres://a:{SECRET}@h:1x/d"),
        ],
        "--database-url",
    );
}

#[test]
fn the_database_url_fallback_is_named_too() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut command = authd_command();
    command
        .current_dir(dir.path())
        .env("DATABASE_URL", format!("postgres://a:{SECRET}@h:1x/d"))
        .args(["migrate"]);
    let output = command.output().expect("run authd");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.starts_with("authd: DATABASE_URL: "), "{stderr}");
    assert!(!stderr.contains(SECRET) && !stdout.contains(SECRET));
}

#[test]
fn serve_without_a_way_to_send_mail_is_refused() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = authd(dir.path(), &[("AUTHD_MAIL_TO_LOG", "false")], &["serve"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("AUTHD_SMTP_URL") && stderr.contains("AUTHD_MAIL_TO_LOG=true"),
        "says both ways: {stderr}"
    );
    let both = authd(
        dir.path(),
        &[("AUTHD_SMTP_URL", &format!("smtp://u:{SECRET}@127.0.0.1:25"))],
        &["serve"],
    );
    let (stdout, stderr) = text(&both);
    assert_eq!(both.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("both set"), "{stderr}");
    assert!(!stderr.contains(SECRET) && !stdout.contains(SECRET));
    assert!(!dir.path().join("authd.db").exists());
}

#[test]
fn a_database_that_cannot_be_reached_fails_once_without_its_password() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("postgres://app:{SECRET}@127.0.0.1:1/auth");
    let output = authd(
        dir.path(),
        &[
            ("AUTHD_DATABASE_URL", &url),
            ("AUTHD_DATABASE_TIMEOUT", "1s"),
        ],
        &["serve"],
    );
    let (stdout, stderr) = text(&output);
    let all = format!("{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(!all.contains(SECRET), "{all}");
    assert_eq!(
        all.matches("connecting to the database").count(),
        1,
        "{all}"
    );
    assert!(all.contains("postgres://***@127.0.0.1:1/auth"), "{all}");
}

#[test]
fn an_unmigrated_database_says_to_run_authd_migrate() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = authd(dir.path(), &[("AUTHD_NO_MIGRATE", "1")], &["serve"]);
    let (stdout, stderr) = text(&output);
    let all = format!("{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("run `authd migrate`"), "{all}");
    assert!(!all.contains("no such table"), "{all}");

    // After `authd migrate`, the same start-up gets past the check (it is then stopped by a
    // port that is taken, which proves it went on).
    let migrated = authd(dir.path(), &[], &["migrate"]);
    assert!(migrated.status.success(), "{:?}", text(&migrated));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let output = authd(
        dir.path(),
        &[("AUTHD_NO_MIGRATE", "true"), ("AUTHD_GRPC_ADDR", &port)],
        &["serve"],
    );
    let (stdout, stderr) = text(&output);
    let all = format!("{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("binding the gRPC address"), "{all}");
}

#[test]
fn a_misspelt_variable_is_warned_about() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let output = authd(
        dir.path(),
        &[("AUTHD_ACESS_TTL", "1m"), ("AUTHD_GRPC_ADDR", &port)],
        &["serve"],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        format!("{stdout}{stderr}").contains("AUTHD_ACESS_TTL is set but is not a setting"),
        "{stdout}{stderr}"
    );
}

#[test]
fn without_a_key_encryption_key_the_log_says_keys_and_totp_secrets_are_in_the_clear() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let output = authd(dir.path(), &[("AUTHD_GRPC_ADDR", &port)], &["serve"]);
    let (stdout, stderr) = text(&output);
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains("AUTHD_KEY_ENCRYPTION_KEY is not set")
            && said.contains("signing keys and TOTP secrets are stored in the clear"),
        "{said}"
    );
    // With the key, nothing is said of it.
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = authd(
        dir.path(),
        &[
            ("AUTHD_GRPC_ADDR", &port),
            (
                "AUTHD_KEY_ENCRYPTION_KEY",
                "8a1f0c3b5d7e9f2a4c6e8b0d2f4a6c8e1b3d5f7a9c2e4b6d8f0a2c4e6b8d0f2a",
            ),
        ],
        &["serve"],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        !format!("{stdout}{stderr}").contains("AUTHD_KEY_ENCRYPTION_KEY is not set"),
        "{stdout}{stderr}"
    );
}

#[test]
fn an_issuer_left_to_its_default_is_warned_about_beyond_loopback() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let output = authd(
        dir.path(),
        &[("AUTHD_HTTP_ADDR", "0.0.0.0:0"), ("AUTHD_GRPC_ADDR", &port)],
        &["serve"],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        format!("{stdout}{stderr}").contains("AUTHD_ISSUER is not set"),
        "{stdout}{stderr}"
    );
}
