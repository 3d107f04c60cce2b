//! The RFC 9068 `client_id` claim: declared at Login (or the configured default), kept by the
//! session through every Refresh, answered by Introspect; malformed ids refused with a field
//! violation; sessions from before the column get the default.

use crate::helpers::{PASSWORD, TestApp, verify_with_jwks};
use authd::pb;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The token's claim, Introspect's field, and after two refreshes still the same.
async fn assert_client_through_refreshes(app: &mut TestApp, tokens: pb::TokenResponse, id: &str) {
    let verified = verify_with_jwks(app, &tokens.access_token).await.unwrap();
    assert_eq!(verified["client_id"], id);
    assert_eq!(app.introspect(&tokens.access_token).await.client_id, id);
    let mut refresh_token = tokens.refresh_token;
    for round in 1..=2 {
        let next = app.refresh(&refresh_token).await.unwrap();
        assert_eq!(
            claims(&next.access_token)["client_id"],
            id,
            "refresh {round}"
        );
        let answer = app.introspect(&next.access_token).await;
        assert!(answer.active);
        assert_eq!(answer.client_id, id, "refresh {round}");
        refresh_token = next.refresh_token;
    }
}

#[tokio::test]
async fn login_without_a_client_id_gets_the_default_and_keeps_it() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("default@example.com").await;
    assert_client_through_refreshes(&mut app, tokens, "authd").await;
}

#[tokio::test]
async fn a_declared_client_id_is_in_the_token_introspect_and_every_refresh() {
    let mut app = TestApp::spawn().await;
    app.signup_verified_login("web@example.com").await;
    let web = app
        .login_as("web@example.com", PASSWORD, "web-app.v2_1")
        .await
        .unwrap();
    let cli = app
        .login_as("web@example.com", PASSWORD, "cli")
        .await
        .unwrap();
    assert_client_through_refreshes(&mut app, web, "web-app.v2_1").await;
    assert_client_through_refreshes(&mut app, cli, "cli").await;
    // The longest id allowed.
    let long = "x".repeat(64);
    let tokens = app
        .login_as("web@example.com", PASSWORD, &long)
        .await
        .unwrap();
    assert_eq!(app.introspect(&tokens.access_token).await.client_id, long);
}

#[tokio::test]
async fn the_default_client_id_is_a_setting() {
    let mut app = TestApp::spawn_with(&["--default-client-id", "portal"]).await;
    let tokens = app.signup_verified_login("portal@example.com").await;
    assert_client_through_refreshes(&mut app, tokens, "portal").await;
}

#[tokio::test]
async fn malformed_client_ids_are_invalid_argument_naming_the_field_and_start_nothing() {
    let mut app = TestApp::spawn().await;
    app.signup_verified_login("strict@example.com").await;
    let db = app.db.connect().await;
    let sessions = || async {
        authd::db::entity::session::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .len()
    };
    let before = sessions().await;
    let huge = "a".repeat(100_000);
    for bad in [
        " ",
        "web app",
        "web/app",
        "web:app",
        "wéb",
        "web\n",
        "web\u{0}",
        "ｗｅｂ",
        "web\u{202e}",
        "{}",
        &"x".repeat(65),
        &huge,
    ] {
        let status = app
            .login_as("strict@example.com", PASSWORD, bad)
            .await
            .unwrap_err();
        let shown: String = bad.chars().take(12).collect();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown:?}");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("a BadRequest detail")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["client_id"], "{shown:?}");
        assert!(!status.message().contains(&huge), "the value is not echoed");
    }
    // With other bad fields, every violation at once; a wrong password is never reached.
    let status = app
        .login_as("not-an-email", PASSWORD, "a b")
        .await
        .unwrap_err();
    let mut fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(fields, ["client_id", "email"]);
    let status = app
        .login_as("strict@example.com", "wrong password entirely", "a b")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(sessions().await, before, "no session started");
}

#[tokio::test]
async fn parallel_logins_with_different_clients_keep_theirs() {
    // Logins in flight count against the throttle until they succeed: room for eight at once.
    let mut app = TestApp::spawn_with(&["--throttle-client-account-failures", "50"]).await;
    app.signup_verified_login("many@example.com").await;
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                let id = format!("client-{i}");
                let tokens = client
                    .login(pb::LoginRequest {
                        email: "many@example.com".into(),
                        password: PASSWORD.into(),
                        client_id: id.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (id, tokens)
            })
        })
        .collect();
    for call in calls {
        let (id, tokens) = call.await.unwrap();
        assert_eq!(claims(&tokens.access_token)["client_id"], id.as_str());
        let next = app.refresh(&tokens.refresh_token).await.unwrap();
        assert_eq!(app.introspect(&next.access_token).await.client_id, id);
    }
}

#[tokio::test]
async fn sessions_from_before_the_migration_refresh_with_the_default_client_id() {
    use migration::{Migrator, MigratorTrait};
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("old@example.com").await;
    let (db, smtp) = app.stop().await;
    // Back to the schema of the migrations before this one, with the session still there; its
    // row now holds what a session made by the previous version holds.
    let conn = db.connect().await;
    let applied = Migrator::get_applied_migrations(&conn).await.unwrap();
    let this_one = applied
        .iter()
        .position(|m| m.name() == "m20261202_000003_session_client_id")
        .unwrap();
    // This migration and every later one, newest first.
    let steps = u32::try_from(applied.len() - this_one).unwrap();
    Migrator::down(&conn, Some(steps)).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&conn).await.unwrap().len(),
        this_one
    );
    let columns = if db.is_postgres() {
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions' AND column_name = 'client_id'"
    } else {
        "SELECT name FROM pragma_table_info('sessions') WHERE name = 'client_id'"
    };
    let found = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            columns,
        ))
        .await
        .unwrap();
    assert!(found.is_empty(), "the column is gone after down");
    conn.close().await.unwrap();

    // The new version migrates at start; the old session is the default client's.
    let mut app = TestApp::spawn_on(db, smtp, &["--default-client-id", "legacy-default"]).await;
    let old_access = app.introspect(&tokens.access_token).await;
    assert!(
        old_access.active,
        "the access token from before still works"
    );
    let refreshed = app
        .refresh(&tokens.refresh_token)
        .await
        .expect("old refresh works");
    assert_eq!(
        claims(&refreshed.access_token)["client_id"],
        "legacy-default"
    );
    assert_client_through_refreshes(&mut app, refreshed, "legacy-default").await;
    let stored = authd::db::entity::session::Entity::find()
        .all(&app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].client_id, None, "NULL: the default, read at use");
}

#[tokio::test]
async fn an_access_token_without_the_claim_introspects_with_its_sessions_client() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    // A token issued by the version before the claim: same key, no client_id.
    let mut app = TestApp::spawn().await;
    app.signup_verified_login("before@example.com").await;
    let tokens = app
        .login_as("before@example.com", PASSWORD, "mobile")
        .await
        .unwrap();
    let mut old_claims = claims(&tokens.access_token);
    old_claims.as_object_mut().unwrap().remove("client_id");
    let kid = jsonwebtoken::decode_header(&tokens.access_token)
        .unwrap()
        .kid
        .unwrap();
    let private_key = app.stored_private_key(&kid).await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.clone());
    let old_token = jsonwebtoken::encode(
        &header,
        &old_claims,
        &EncodingKey::from_ed_der(&private_key),
    )
    .unwrap();
    let answer = app.introspect(&old_token).await;
    assert!(
        answer.active,
        "a token from before the claim stays valid until it expires"
    );
    assert_eq!(answer.client_id, "mobile");
}
