//! Signing keys over their life cycle, against real authd servers and the real `authd keys`
//! CLI: rotation during traffic, retirement of a leaked key, replicas that agree, the three
//! algorithms, and private keys sealed at rest.

use crate::helpers::{TestApp, TestDb, settings};
use crate::smtp::SmtpServer;
use crate::verifier::{ISSUER, READY};
use authd::crypto::keys::{KeyPair, SigningAlg};
use authd::crypto::seal::Sealer;
use authd::db::entity::signing_key;
use authd_verifier::{JwksSource, LocalSettings, LocalVerifier, Refusal, Verify};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use sea_orm::EntityTrait;
use secrecy::SecretString;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const KEK: &str = "8a1f0c3b5d7e9f2a4c6e8b0d2f4a6c8e1b3d5f7a9c2e4b6d8f0a2c4e6b8d0f2a";
const OTHER_KEK: &str = "0f2a4c6e8b0d2f4a6c8e1b3d5f7a9c2e4b6d8f0a2c4e6b8d0f2a8a1f0c3b5d7e";

/// A local verifier on the HTTP JWK Set, with its default cache times: a key set is kept for
/// its `max-age`, and at least 10 s.
async fn local_verifier(app: &TestApp) -> LocalVerifier {
    local_verifier_keeping(app, Duration::from_secs(10)).await
}

async fn local_verifier_keeping(app: &TestApp, at_least: Duration) -> LocalVerifier {
    let url = format!("http://{}/.well-known/jwks.json", app.http_addr);
    let mut settings = LocalSettings::new(JwksSource::Http(url), crate::verifier::checks());
    settings.min_refetch_interval = at_least;
    let verifier = LocalVerifier::start(settings);
    assert!(verifier.ready(READY).await, "keys from authd");
    verifier
}

/// A verifier written the way services without authd's library do it (PyJWT's
/// `PyJWKClient` and the like): the HTTP JWK Set, cached as long as `Cache-Control` allows,
/// the key picked by `kid`, the token checked by a general JWT library (jsonwebtoken).
struct OutsideVerifier {
    http_addr: std::net::SocketAddr,
    cached: Option<(Value, Instant)>,
}

impl OutsideVerifier {
    fn new(app: &TestApp) -> Self {
        Self {
            http_addr: app.http_addr,
            cached: None,
        }
    }

    async fn check(&mut self, token: &str) -> Result<Value, String> {
        if self
            .cached
            .as_ref()
            .is_none_or(|(_, until)| Instant::now() >= *until)
        {
            let answer = crate::helpers::http_get(self.http_addr, "/.well-known/jwks.json").await;
            let max_age: u64 = answer
                .header("cache-control")
                .and_then(|c| c.strip_prefix("public, max-age="))
                .and_then(|s| s.parse().ok())
                .ok_or("no max-age")?;
            let set: Value = serde_json::from_str(&answer.body).map_err(|e| e.to_string())?;
            self.cached = Some((set, Instant::now() + Duration::from_secs(max_age)));
        }
        let set = &self.cached.as_ref().ok_or("no keys")?.0;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let jwk = set["keys"]
            .as_array()
            .and_then(|keys| {
                keys.iter()
                    .find(|k| k["kid"].as_str() == header.kid.as_deref())
            })
            .ok_or_else(|| format!("kid {:?} not in the cached JWK Set", header.kid))?;
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
        let alg: Algorithm = jwk
            .common
            .key_algorithm
            .ok_or("no alg")?
            .to_string()
            .parse()
            .map_err(|_| "unknown alg")?;
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&["authd"]);
        validation.leeway = 0;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().unwrap().to_owned()
}

/// `authd keys list --json`, parsed.
async fn listed(db: &TestDb, env: &[(&str, &str)]) -> Vec<Value> {
    let out = db.keys_command(&["list", "--json"], env).await;
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn rows(db: &TestDb) -> Vec<signing_key::Model> {
    signing_key::Entity::find()
        .all(&db.connect().await)
        .await
        .unwrap()
}

/// Waits until `check` holds, for up to `limit`; how long it took.
async fn within<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn a_rotation_during_traffic_refuses_no_valid_token_anywhere() {
    // A rotation every 5 s with a 2 s lead; tokens live 4 s. The JWK Set may be cached 1 s.
    let mut app = TestApp::spawn_with(&[
        "--key-publish-lead",
        "2s",
        "--key-rotation-interval",
        "5s",
        "--key-reload-interval",
        "1s",
        "--access-ttl",
        "4s",
    ])
    .await;
    let first = app.signup_verified_login("rotating@example.com").await;
    let local = local_verifier(&app).await;
    let mut outside = OutsideVerifier::new(&app);
    let mut refresh = first.refresh_token;
    let mut live: Vec<(String, i64)> = Vec::new();
    let mut kids = BTreeSet::new();
    let mut checks = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(14) {
        let tokens = app.refresh(&refresh).await.expect("refresh");
        refresh = tokens.refresh_token;
        kids.insert(kid_of(&tokens.access_token));
        let exp = claims_of(&tokens.access_token)["exp"].as_i64().unwrap();
        live.push((tokens.access_token, exp));
        // Every token that has over a second left is checked again, each round, three ways.
        for (token, exp) in &live {
            if *exp <= chrono::Utc::now().timestamp() + 1 {
                continue;
            }
            let kid = kid_of(token);
            let introspected = app.introspect(token).await;
            assert!(
                introspected.active,
                "Introspect refused a valid token of key {kid}"
            );
            if let Err(refusal) = local.verify(token).await {
                panic!("the verifier refused a valid token of key {kid}: {refusal:?}");
            }
            if let Err(why) = outside.check(token).await {
                panic!("a JWT library with the cached JWK Set refused key {kid}: {why}");
            }
            checks += 1;
        }
        live.retain(|(_, exp)| *exp > chrono::Utc::now().timestamp());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(kids.len() >= 3, "rotations happened: {kids:?}");
    assert!(checks > 100, "{checks} checks");
    let keys = listed(&app.db, &[]).await;
    let active = keys.iter().filter(|k| k["state"] == "active").count();
    assert_eq!(active, 1, "{keys:?}");
}

#[tokio::test]
async fn retire_refuses_the_keys_tokens_at_once_and_another_key_signs() {
    let mut app = TestApp::spawn_with(&["--key-publish-lead", "4s"]).await;
    let tokens = app.signup_verified_login("leaked@example.com").await;
    let leaked = kid_of(&tokens.access_token);
    // It keeps the key set for its max-age (2 s: half the lead), at least 1 s.
    let verifier = local_verifier_keeping(&app, Duration::from_secs(1)).await;
    assert!(verifier.verify(&tokens.access_token).await.is_ok());
    assert!(app.introspect(&tokens.access_token).await.active);

    let out = app.db.keys_command(&["retire", &leaked], &[]).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains(&format!("retired key {leaked}")), "{said}");
    // The server reloads every second (the default).
    let token = tokens.access_token.clone();
    let took = within(Duration::from_secs(3), || {
        let (mut client, token) = (app.client.clone(), token.clone());
        async move {
            let answer = client
                .introspect(authd::pb::IntrospectRequest { token })
                .await
                .unwrap();
            !answer.into_inner().active
        }
    })
    .await;
    assert!(
        took.is_some(),
        "Introspect still accepts a retired key's token"
    );
    // The verifier refuses once its cached key set has run out and been fetched again.
    let refused = within(Duration::from_secs(6), || async {
        matches!(verifier.verify(&token).await, Err(Refusal::UnknownKey))
    })
    .await;
    let answer = verifier.verify(&token).await;
    assert!(
        refused.is_some(),
        "the verifier still accepts it: {answer:?}"
    );
    let jwks = app.http_get("/.well-known/jwks.json").await.body;
    assert!(!jwks.contains(&leaked), "{jwks}");

    // A new login is signed by another key, which every verifier accepts.
    let fresh = app
        .login("leaked@example.com", crate::helpers::PASSWORD)
        .await
        .unwrap();
    assert_ne!(kid_of(&fresh.access_token), leaked);
    assert!(app.introspect(&fresh.access_token).await.active);
    assert!(verifier.verify(&fresh.access_token).await.is_ok());
    // The retired key's private half is gone from the database.
    let row = rows(&app.db)
        .await
        .into_iter()
        .find(|r| r.kid == leaked)
        .unwrap();
    assert!(row.private_key.is_empty() && row.retired_at.is_some());
    let keys = listed(&app.db, &[]).await;
    let state = keys.iter().find(|k| k["kid"] == leaked.as_str()).unwrap()["state"].clone();
    assert_eq!(state, "retired");
    // Retiring it again changes nothing; an unknown kid is an error.
    let again = app.db.keys_command(&["retire", &leaked], &[]).await;
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already retired"));
    let unknown = app.db.keys_command(&["retire", "no-such-kid"], &[]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no signing key with kid"));
    let huge = "a%".repeat(50_000);
    let odd = app.db.keys_command(&["retire", &huge], &[]).await;
    let said = String::from_utf8_lossy(&odd.stderr).into_owned();
    assert!(
        !odd.status.success() && said.contains("not a key id"),
        "{said}"
    );
    assert!(said.len() < 500, "the input is not echoed");
}

#[tokio::test]
async fn replicas_see_each_rotation_and_make_one_key_per_rotation() {
    // Both replicas rotate automatically every 3 s (1 s lead), and so try at the same moments.
    let args = [
        "--key-publish-lead",
        "1s",
        "--key-rotation-interval",
        "3s",
        "--key-reload-interval",
        "1s",
    ];
    let a = TestApp::spawn_with(&args).await;
    let b = TestApp::spawn_on(a.db.share(), SmtpServer::start().await, &args).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let keys = listed(&a.db, &[]).await;
    let mut starts: Vec<i64> = keys
        .iter()
        .map(|k| {
            chrono::DateTime::parse_from_rfc3339(k["activates_at"].as_str().unwrap())
                .unwrap()
                .timestamp()
        })
        .collect();
    starts.sort_unstable();
    assert!(keys.len() >= 3, "rotations happened: {keys:?}");
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= 2,
            "two keys for one rotation: {keys:?}"
        );
    }
    // Whichever replica made a key, both publish the same set, within a reload or two.
    let agreed = within(Duration::from_secs(3), || async {
        let (x, y) = (
            a.http_get("/.well-known/jwks.json").await,
            b.http_get("/.well-known/jwks.json").await,
        );
        x.body == y.body && x.body.matches("\"kid\"").count() >= 2
    })
    .await;
    assert!(agreed.is_some(), "the replicas publish different keys");
    // Several CLI rotations at once add exactly one `next` key; both replicas publish it.
    let stop_auto = ["--key-rotation-interval", "0"];
    let (a, b) = (
        restart_with(a, &stop_auto).await,
        restart_with(b, &stop_auto).await,
    );
    // A `next` key the automatic rotation made may still wait its 1 s lead.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rows(&a.db).await.len();
    let rotations: Vec<_> = (0..4)
        .map(|_| {
            let mut command =
                a.db.keys_cli(&["rotate"], &[("AUTHD_KEY_PUBLISH_LEAD", "1m")]);
            tokio::task::spawn_blocking(move || command.output().unwrap())
        })
        .collect();
    let mut outs = Vec::new();
    for rotation in rotations {
        outs.push(rotation.await.unwrap());
    }
    let added: Vec<&std::process::Output> = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).starts_with("added"))
        .collect();
    assert!(outs.iter().all(|o| o.status.success()), "{outs:?}");
    assert_eq!(added.len(), 1, "{outs:?}");
    assert_eq!(rows(&a.db).await.len(), before + 1);
    let kid = String::from_utf8_lossy(&added[0].stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    for server in [&a, &b] {
        let seen = within(Duration::from_secs(4), || async {
            server
                .http_get("/.well-known/jwks.json")
                .await
                .body
                .contains(&kid)
        })
        .await;
        assert!(seen.is_some(), "a replica never published {kid}");
    }
}

async fn restart_with(app: TestApp, extra: &[&str]) -> TestApp {
    let (db, smtp) = app.stop().await;
    TestApp::spawn_on(db, smtp, extra).await
}

#[tokio::test]
async fn each_algorithm_validates_in_the_verifier_and_a_jwt_library() {
    for alg in ["ES256", "RS256", "EdDSA"] {
        let mut app = TestApp::spawn_with(&["--signing-alg", alg]).await;
        let tokens = app.signup_verified_login("alg@example.com").await;
        let header = header_of(&tokens.access_token);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "at+jwt");
        assert!(app.introspect(&tokens.access_token).await.active, "{alg}");
        let verifier = local_verifier(&app).await;
        let claims = verifier.verify(&tokens.access_token).await;
        assert!(claims.is_ok(), "{alg}: {claims:?}");
        let claims = OutsideVerifier::new(&app).check(&tokens.access_token).await;
        assert_eq!(
            claims.map(|c| c["email"].clone()),
            Ok("alg@example.com".into()),
            "{alg}"
        );
        let jwks: Value =
            serde_json::from_str(&app.http_get("/.well-known/jwks.json").await.body).unwrap();
        assert_eq!(jwks["keys"][0]["alg"], alg);
        let discovery = app.http_get("/.well-known/openid-configuration").await.body;
        assert!(discovery.contains(alg), "{discovery}");
    }
}

#[tokio::test]
async fn a_token_signed_by_a_key_of_one_type_under_another_keys_kid_is_refused() {
    // An EdDSA key and an RS256 key, both published.
    let mut app =
        TestApp::spawn_with(&["--key-publish-lead", "0s", "--key-rotation-interval", "0"]).await;
    let ed_tokens = app.signup_verified_login("types@example.com").await;
    let ed_kid = kid_of(&ed_tokens.access_token);
    let out = app
        .db
        .keys_command(
            &["rotate"],
            &[
                ("AUTHD_SIGNING_ALG", "RS256"),
                ("AUTHD_KEY_PUBLISH_LEAD", "0s"),
            ],
        )
        .await;
    assert!(out.status.success(), "{out:?}");
    let rsa = within(Duration::from_secs(10), || {
        let mut app_client = app.client.clone();
        async move {
            let answer = app_client
                .login(authd::pb::LoginRequest {
                    email: "types@example.com".into(),
                    password: crate::helpers::PASSWORD.into(),
                    client_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            header_of(&answer.access_token)["alg"] == "RS256"
        }
    })
    .await;
    if rsa.is_none() {
        panic!(
            "the RS256 key never signed: {:?}",
            listed(&app.db, &[]).await
        );
    }
    let rs_tokens = app
        .login("types@example.com", crate::helpers::PASSWORD)
        .await
        .unwrap();
    let rs_kid = kid_of(&rs_tokens.access_token);
    assert!(app.introspect(&rs_tokens.access_token).await.active);
    assert!(
        app.introspect(&ed_tokens.access_token).await.active,
        "the old key still verifies"
    );
    let verifier = local_verifier(&app).await;

    let swap_kid = |token: &str, kid: &str| {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut header = header_of(token);
        header["kid"] = Value::String(kid.into());
        parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
        parts.join(".")
    };
    // The RSA signature is over the changed header, so only the kid/type mismatch is wrong:
    // re-sign with the RSA key read from the database.
    let rsa_private = app.stored_private_key(&rs_kid).await;
    let rsa_key = jsonwebtoken::EncodingKey::from_rsa_der(&rsa_private);
    let claims: Value = {
        let payload = rs_tokens.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(ed_kid.clone());
    let rsa_under_ed_kid = jsonwebtoken::encode(&header, &claims, &rsa_key).unwrap();
    // An Ed25519 signature presented under the RSA key's kid, alg EdDSA.
    let ed_under_rs_kid = swap_kid(&ed_tokens.access_token, &rs_kid);
    for (what, token) in [
        ("RS256 under the EdDSA kid", rsa_under_ed_kid.as_str()),
        ("EdDSA under the RS256 kid", ed_under_rs_kid.as_str()),
    ] {
        assert!(
            !app.introspect(token).await.active,
            "Introspect took {what}"
        );
        let refusal = verifier.verify(token).await.err();
        assert_eq!(refusal, Some(Refusal::Algorithm), "{what}");
        assert!(
            OutsideVerifier::new(&app).check(token).await.is_err(),
            "{what}"
        );
    }
    // The control: the same RSA signing with the right kid passes.
    header.kid = Some(rs_kid);
    let control = jsonwebtoken::encode(&header, &claims, &rsa_key).unwrap();
    assert!(app.introspect(&control).await.active);
}

#[tokio::test]
async fn sealed_keys_are_never_in_the_clear_and_a_wrong_key_stops_start_up() {
    // Keys made in the clear are sealed at the first start with an encryption key.
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("sealed@example.com").await;
    let (db, smtp) = app.stop().await;
    let clear = rows(&db).await;
    assert!(clear.iter().all(|r| r.sealed_with.is_none()));
    let mut app = TestApp::spawn_on(db, smtp, &["--key-encryption-key", KEK]).await;
    assert!(
        app.introspect(&tokens.access_token).await.active,
        "the same key signs"
    );
    let out = app
        .db
        .keys_command(&["rotate"], &[("AUTHD_KEY_ENCRYPTION_KEY", KEK)])
        .await;
    assert!(out.status.success(), "{out:?}");
    let sealer = Sealer::parse(&SecretString::from(KEK)).unwrap();
    let sealed = rows(&app.db).await;
    assert_eq!(sealed.len(), 2);
    for row in &sealed {
        assert_eq!(row.sealed_with.as_deref(), Some(sealer.id()), "{}", row.kid);
        let opened = sealer
            .open(&format!("signing key {}", row.kid), &row.private_key)
            .unwrap();
        let alg = SigningAlg::from_name(&row.algorithm).unwrap();
        assert!(KeyPair::from_parts(row.kid.clone(), alg, opened.clone()).is_ok());
        let stored_in_clear = row.private_key.windows(opened.len()).any(|w| w == opened);
        assert!(!stored_in_clear, "the private key is in the clear");
        // Not even the Ed25519 seed (the last 32 bytes of the v1 DER) appears.
        assert!(
            !row.private_key
                .windows(16)
                .any(|w| opened.windows(16).any(|o| o == w))
        );
    }

    // A wrong key, or none, stops start-up with a message, and changes nothing.
    let (db, smtp) = app.stop().await;
    for (args, expected) in [
        (
            vec!["--key-encryption-key", OTHER_KEK],
            "is sealed with the key-encryption key",
        ),
        (vec![], "no AUTHD_KEY_ENCRYPTION_KEY is set"),
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let built = authd::app::Application::build(settings(&db.url, &smtp.url(), &args)).await;
        let err = built.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains(KEK) && !err.contains(OTHER_KEK), "{err}");
        assert_eq!(
            rows(&db).await,
            sealed,
            "start-up with a wrong key changed the keys"
        );
    }
    // The real binary exits with the message, not a panic.
    let child = crate::helpers::authd_command()
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--mail-to-log",
            "--database-url",
            &db.url,
            "--key-encryption-key",
            OTHER_KEK,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr).into_owned()
        + &String::from_utf8_lossy(&child.stdout);
    assert!(!child.status.success());
    assert!(
        stderr.contains("is sealed with the key-encryption key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains(OTHER_KEK),
        "{stderr}"
    );

    // A reseal with the wrong old key changes nothing; with the right one the keys move, and
    // tokens issued before still validate.
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
    assert_eq!(rows(&db).await, sealed);
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
    let other = Sealer::parse(&SecretString::from(OTHER_KEK)).unwrap();
    assert!(
        rows(&db)
            .await
            .iter()
            .all(|r| r.sealed_with.as_deref() == Some(other.id()))
    );
    let mut app = TestApp::spawn_on(db, smtp, &["--key-encryption-key", OTHER_KEK]).await;
    assert!(
        app.introspect(&tokens.access_token).await.active,
        "old tokens stay valid"
    );
    let fresh = app
        .login("sealed@example.com", crate::helpers::PASSWORD)
        .await
        .unwrap();
    assert!(app.introspect(&fresh.access_token).await.active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_the_keys_in_hand_keep_working_and_reloads_resume() {
    if !TestDb::new_is_postgres() {
        return; // the PostgreSQL pass runs it; it starts a server of its own either way
    }
    let cluster = crate::outage::OwnPostgres::start();
    let mut app = TestApp::spawn_on(
        TestDb::at(cluster.url()),
        SmtpServer::start().await,
        &[
            "--key-publish-lead",
            "2s",
            "--key-rotation-interval",
            "4s",
            "--database-timeout",
            "1s",
        ],
    )
    .await;
    let tokens = app.signup_verified_login("keys-outage@example.com").await;
    let before = app.http_get("/.well-known/jwks.json").await.body;

    cluster.down();
    // Reloads fail for several rounds (and a rotation falls due): the JWK Set is still served
    // from memory, unchanged.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = app.http_get("/.well-known/jwks.json").await;
    assert_eq!(during.status, 200);
    assert_eq!(during.body, before);

    cluster.up();
    // Back: the rotation that fell due is made, and published; the old key still verifies.
    let rotated = within(Duration::from_secs(20), || async {
        app.http_get("/.well-known/jwks.json").await.body != before
    })
    .await;
    assert!(rotated.is_some(), "no reload after the database came back");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !app.introspect(&tokens.access_token).await.active {
        assert!(
            Instant::now() < deadline,
            "the old key's token is refused after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
