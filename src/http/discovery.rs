//! Authorization server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery 1.0):
//! where verifiers find the keys of authd's access tokens, starting from the issuer alone.
//!
//! authd is not an OAuth authorization server with HTTP endpoints: Login, Refresh and
//! Introspect are gRPC calls. So the documents name only what exists: the issuer, the JWK Set
//! and the signing algorithms, with empty lists where a field would otherwise default to
//! something authd does not do (`response_types_supported`, `grant_types_supported`). No
//! `authorization_endpoint`, `token_endpoint` or `introspection_endpoint`: there is no such URL
//! (Introspect is gRPC, not the RFC 7662 HTTP endpoint). Both paths serve the same document:
//! RFC 8414 registers the OpenID fields for authorization server metadata too.

use crate::crypto::keys::KeySet;

/// How long caches may keep the documents. They change only when the settings or the
/// signing algorithm do, which takes a restart.
pub const DISCOVERY_MAX_AGE_SECS: u64 = 3600;

/// The claims an access token carries (README, "Tokens").
const CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "jti",
    "sid",
    "client_id",
    "email",
    "email_verified",
];

/// The JWK Set's URL for an issuer: on the side port that the issuer names by default.
pub fn jwks_uri(issuer: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
}

/// The metadata document for `issuer` (exactly the `iss` claim) and the keys now published.
pub fn metadata(issuer: &str, keys: &KeySet) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri(issuer),
        "id_token_signing_alg_values_supported": keys.algorithms(),
        // `sub` is the user id, the same for every client.
        "subject_types_supported": ["public"],
        "response_types_supported": [],
        "grant_types_supported": [],
        "claims_supported": CLAIMS,
    })
}
