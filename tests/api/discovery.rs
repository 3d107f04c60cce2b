//! Discovery (RFC 8414, OIDC Discovery 1.0) and the JWK Set's caching headers, as a verifier
//! that starts from the issuer URL alone sees them.

use crate::helpers::{HttpResponse, TestApp, verify_with_jwks};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

const DOCUMENTS: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

fn max_age(answer: &HttpResponse) -> u64 {
    let cache = answer.header("cache-control").expect("Cache-Control");
    cache
        .strip_prefix("public, max-age=")
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("Cache-Control {cache}"))
}

/// The path of a URL on the test issuer's origin, to ask the side port for it.
fn path_of(url: &str, issuer: &str) -> String {
    url.strip_prefix(issuer.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("{url} is not under {issuer}"))
        .to_owned()
}

#[tokio::test]
async fn both_documents_name_the_issuer_the_jwks_and_only_what_exists() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("discover@example.com").await;
    let mut documents = Vec::new();
    for path in DOCUMENTS {
        let answer = app.http_get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(max_age(&answer) > 0);
        assert!(answer.header("etag").is_some());
        documents.push(serde_json::from_str::<Value>(&answer.body).unwrap());
    }
    assert_eq!(documents[0], documents[1], "one document at both paths");
    let doc = &documents[0];
    assert_eq!(
        doc["issuer"], "http://authd.test",
        "exactly the configured iss"
    );
    assert_eq!(doc["jwks_uri"], "http://authd.test/.well-known/jwks.json");
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!([]));
    assert_eq!(doc["grant_types_supported"], serde_json::json!([]));
    for claim in ["sub", "sid", "client_id", "email_verified"] {
        let claims = doc["claims_supported"].as_array().unwrap();
        assert!(claims.iter().any(|c| c == claim), "{claim} in {claims:?}");
    }
    // authd has none of these as HTTP endpoints (Login, Refresh, Introspect are gRPC).
    for absent in [
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "userinfo_endpoint",
        "registration_endpoint",
        "revocation_endpoint",
    ] {
        assert!(doc.get(absent).is_none(), "{absent} advertised: {doc}");
    }
    // The token's iss is the document's issuer, and the keys at jwks_uri verify it.
    let claims = verify_with_jwks(&app, &tokens.access_token).await.unwrap();
    assert_eq!(claims["iss"], doc["issuer"]);
    let jwks_path = path_of(doc["jwks_uri"].as_str().unwrap(), "http://authd.test");
    let jwks: Value = serde_json::from_str(&app.http_get(&jwks_path).await.body).unwrap();
    let kid = jsonwebtoken::decode_header(&tokens.access_token)
        .unwrap()
        .kid
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str())
    );
}

#[tokio::test]
async fn the_issuer_is_echoed_exactly_and_the_jwks_uri_has_no_double_slash() {
    for (issuer, jwks_uri) in [
        (
            "https://auth.example.com/",
            "https://auth.example.com/.well-known/jwks.json",
        ),
        (
            "https://example.com/tenant-1",
            "https://example.com/tenant-1/.well-known/jwks.json",
        ),
    ] {
        let app = TestApp::spawn_with(&["--issuer", issuer]).await;
        let doc: Value = serde_json::from_str(&app.http_get(DOCUMENTS[0]).await.body).unwrap();
        assert_eq!(doc["issuer"], issuer);
        assert_eq!(doc["jwks_uri"], jwks_uri);
    }
}

#[tokio::test]
async fn the_jwks_has_its_media_type_a_strong_etag_and_answers_if_none_match() {
    let app = TestApp::spawn().await;
    let first = app.http_get("/.well-known/jwks.json").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type"),
        Some("application/jwk-set+json")
    );
    let etag = first.header("etag").expect("ETag").to_owned();
    assert!(!etag.starts_with("W/"), "a strong validator: {etag}");
    let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(first.body.as_bytes()));
    assert_eq!(etag, format!("\"{hash}\""), "the hash of the body");
    assert_eq!(
        app.http_get("/.well-known/jwks.json").await.header("etag"),
        Some(etag.as_str())
    );

    let weak = format!("W/{etag}");
    let listed = format!("\"stale\", {etag}");
    for matching in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let answer = app
            .http_request(
                "GET",
                "/.well-known/jwks.json",
                &[("If-None-Match", matching)],
            )
            .await;
        assert_eq!(answer.status, 304, "If-None-Match: {matching}");
        assert_eq!(answer.body, "", "a 304 has no body");
        assert_eq!(answer.header("etag"), Some(etag.as_str()));
        assert_eq!(max_age(&answer), max_age(&first), "304 keeps Cache-Control");
    }
    let huge = format!("\"{}\"", "x".repeat(6000));
    let unquoted = etag.trim_matches('"').to_owned();
    for other in [
        "\"stale\"",
        "",
        ",,,",
        "W/",
        unquoted.as_str(),
        huge.as_str(),
    ] {
        let answer = app
            .http_request("GET", "/.well-known/jwks.json", &[("If-None-Match", other)])
            .await;
        assert_eq!(
            answer.status,
            200,
            "If-None-Match: {}",
            &other[..other.len().min(20)]
        );
        assert_eq!(answer.body, first.body);
    }
    // Several If-None-Match headers count together.
    let answer = app
        .http_request(
            "GET",
            "/.well-known/jwks.json",
            &[("If-None-Match", "\"a\""), ("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(answer.status, 304);
    // HEAD: the same headers, no body.
    let head = app
        .http_request("HEAD", "/.well-known/jwks.json", &[])
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.body, "");
}

#[tokio::test]
async fn many_parallel_conditional_requests_all_get_304() {
    let app = TestApp::spawn().await;
    let etag = app
        .http_get("/.well-known/jwks.json")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let addr = app.http_addr;
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let etag = etag.clone();
            tokio::spawn(async move {
                let path = if i % 2 == 0 {
                    DOCUMENTS[0]
                } else {
                    "/.well-known/jwks.json"
                };
                let tag = if i % 2 == 0 {
                    "\"nope\"".to_owned()
                } else {
                    etag
                };
                crate::helpers::http_request(addr, "GET", path, &[("If-None-Match", &tag)])
                    .await
                    .status
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), if i % 2 == 0 { 200 } else { 304 });
    }
}

#[tokio::test]
async fn a_new_published_key_changes_the_etag_replicas_agree() {
    let app = TestApp::spawn_with(&["--key-reload-interval", "1s"]).await;
    let replica = TestApp::spawn_on(
        app.db.share(),
        crate::smtp::SmtpServer::start().await,
        &["--key-reload-interval", "1s"],
    )
    .await;
    let before = app.http_get("/.well-known/jwks.json").await;
    let etag = before.header("etag").unwrap().to_owned();
    assert_eq!(
        replica
            .http_get("/.well-known/jwks.json")
            .await
            .header("etag"),
        Some(etag.as_str()),
        "the same keys give the same ETag on every replica"
    );

    // A rotation by the CLI publishes a second key on both, without a restart.
    let rotated = app.db.keys_command(&["rotate"], &[]).await;
    assert!(rotated.status.success(), "{rotated:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    for server in [&app, &replica] {
        loop {
            let after = server
                .http_request("GET", "/.well-known/jwks.json", &[("If-None-Match", &etag)])
                .await;
            if after.status == 200 {
                assert_ne!(after.header("etag"), Some(etag.as_str()));
                let jwks: Value = serde_json::from_str(&after.body).unwrap();
                assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
                break;
            }
            assert_eq!(
                after.status, 304,
                "the old ETag still matches until the reload"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new key was never published"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let (a, b) = (
        app.http_get("/.well-known/jwks.json").await,
        replica.http_get("/.well-known/jwks.json").await,
    );
    assert_eq!(a.header("etag"), b.header("etag"), "replicas agree again");
}
