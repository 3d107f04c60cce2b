//! Settings from a table instead of the environment.

use super::*;
use std::collections::HashMap;
use std::ffi::OsString;

fn read(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let table: HashMap<String, OsString> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
        .collect();
    Settings::from_lookup(|name| table.get(name).cloned())
}

#[test]
fn defaults_are_local_mode_against_authds_defaults() {
    let settings = read(&[]).unwrap();
    assert_eq!(settings.addr.to_string(), DEFAULT_ADDR);
    assert_eq!(settings.database_url, DEFAULT_DATABASE_URL);
    let AuthdSettings::Local {
        jwks_url,
        issuer,
        audiences,
        revocations,
    } = settings.authd
    else {
        panic!("local mode by default");
    };
    assert_eq!(jwks_url, DEFAULT_JWKS_URL);
    assert_eq!(issuer, DEFAULT_ISSUER);
    assert_eq!(audiences, vec!["authd".to_owned()]);
    let revocations = revocations.expect("revocation-aware by default");
    assert_eq!(revocations.endpoint, DEFAULT_GRPC);
    assert_eq!(revocations.when_disconnected, WhenDisconnected::Introspect);
    assert_eq!(revocations.max_disconnected, Duration::from_secs(5));
    assert_eq!(revocations.client, None);
}

#[test]
fn revocation_mode_is_configured_or_turned_off() {
    let settings = read(&[
        ("HABITS_AUTHD_GRPC", "http://authd:50051"),
        ("HABITS_AUTHD_WHEN_DISCONNECTED", "fail-closed"),
        ("HABITS_AUTHD_MAX_DISCONNECTED", "1500ms"),
        ("HABITS_AUTHD_CLIENT_ID", "habits"),
        ("HABITS_AUTHD_CLIENT_SECRET", "s3cret"),
    ])
    .unwrap();
    let AuthdSettings::Local {
        revocations: Some(revocations),
        ..
    } = &settings.authd
    else {
        panic!("revocation-aware local mode");
    };
    assert_eq!(revocations.endpoint, "http://authd:50051");
    assert_eq!(revocations.when_disconnected, WhenDisconnected::FailClosed);
    assert_eq!(revocations.max_disconnected, Duration::from_millis(1500));
    assert_eq!(
        revocations.client,
        Some(("habits".to_owned(), "s3cret".to_owned()))
    );
    assert!(!format!("{settings:?}").contains("s3cret"));

    let plain = read(&[("HABITS_AUTHD_REVOCATIONS", "off")]).unwrap();
    assert!(matches!(
        plain.authd,
        AuthdSettings::Local {
            revocations: None,
            ..
        }
    ));
    let err = read(&[
        ("HABITS_AUTHD_REVOCATIONS", "off"),
        ("HABITS_AUTHD_CLIENT_ID", "habits"),
        ("HABITS_AUTHD_CLIENT_SECRET", "s3cret"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("HABITS_AUTHD_REVOCATIONS=on"), "{err}");
    let err = read(&[
        ("HABITS_AUTHD_REVOCATIONS", "maybe"),
        ("HABITS_AUTHD_GRPC", "authd:50051"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("HABITS_AUTHD_REVOCATIONS"), "{err}");
    let err = read(&[
        ("HABITS_AUTHD_GRPC", "authd:50051"),
        ("HABITS_AUTHD_WHEN_DISCONNECTED", "pray"),
        ("HABITS_AUTHD_MAX_DISCONNECTED", "5 parsecs"),
    ])
    .unwrap_err()
    .to_string();
    for name in [
        "HABITS_AUTHD_GRPC",
        "HABITS_AUTHD_WHEN_DISCONNECTED",
        "HABITS_AUTHD_MAX_DISCONNECTED",
    ] {
        assert!(err.contains(name), "{name} not named in {err}");
    }
}

#[test]
fn durations_take_ms_s_and_m() {
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    for bad in ["", "s", "-1s", "1h", "1.5s", "99999999999999999999m"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn introspect_means_remote_mode_with_optional_credentials() {
    let settings = read(&[
        ("HABITS_AUTHD_INTROSPECT", "http://127.0.0.1:50051"),
        ("HABITS_AUTHD_CLIENT_ID", "habits"),
        ("HABITS_AUTHD_CLIENT_SECRET", "s3cret"),
    ])
    .unwrap();
    let AuthdSettings::Remote { endpoint, client } = &settings.authd else {
        panic!("remote mode");
    };
    assert_eq!(endpoint, "http://127.0.0.1:50051");
    assert_eq!(client, &Some(("habits".to_owned(), "s3cret".to_owned())));
    assert!(!format!("{settings:?}").contains("s3cret"));
}

#[test]
fn empty_means_unset() {
    let settings = read(&[("HABITS_AUTHD_INTROSPECT", ""), ("HABITS_ADDR", " ")]).unwrap();
    assert!(matches!(settings.authd, AuthdSettings::Local { .. }));
    assert_eq!(settings.addr.to_string(), DEFAULT_ADDR);
}

#[test]
fn every_bad_value_is_named() {
    let err = read(&[
        ("HABITS_ADDR", "localhost"),
        ("HABITS_DATABASE_URL", "postgres://db/habits"),
        (
            "HABITS_AUTHD_JWKS_URL",
            "https://authd/.well-known/jwks.json",
        ),
        ("HABITS_AUTHD_AUDIENCE", " , "),
        ("HABITS_AUTHD_CLIENT_ID", "habits"),
    ])
    .unwrap_err()
    .to_string();
    for name in [
        "HABITS_ADDR",
        "HABITS_DATABASE_URL",
        "HABITS_AUTHD_JWKS_URL",
        "HABITS_AUTHD_AUDIENCE",
        "HABITS_AUTHD_CLIENT_ID",
    ] {
        assert!(err.contains(name), "{name} not named in {err}");
    }
    assert_eq!(err.lines().count(), 5, "{err}");
}

#[test]
fn remote_mode_checks_its_endpoint_and_credential_pair() {
    let err = read(&[
        ("HABITS_AUTHD_INTROSPECT", "127.0.0.1:50051"),
        ("HABITS_AUTHD_CLIENT_SECRET", "s3cret"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("HABITS_AUTHD_INTROSPECT"), "{err}");
    assert!(err.contains("set both or neither"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
