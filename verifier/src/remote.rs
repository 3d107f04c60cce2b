//! Remote mode: every token is sent to authd's Introspect (RFC 7662), so a logout, a revoked
//! session or a changed password is seen at once. Each check costs a round trip to authd; an
//! optional cache of positive answers, as long-lived as the caller chooses, trades that back
//! for a window in which a logged-out token still passes.
//!
//! authd checks its own issuer and audience; a refused or unreachable authd is
//! [`Refusal::Unavailable`] (the caller may retry), and `active: false` is [`Refusal::Inactive`].

use crate::client::{self, VerifierError, error_chain, pb};
use crate::memo::{TokenDigest, TokenMemo};
use crate::{AccessClaims, Audience, BoxFuture, Claims, MAX_TOKEN_LEN, Refusal, Verify};
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

/// How long one Introspect call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most positive answers cached at once.
pub const CACHE_CAPACITY: usize = 10_000;

/// Where authd is and how to call it.
#[derive(Clone)]
pub struct RemoteSettings {
    /// authd's gRPC address, e.g. `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// `(client id, secret)` of a credential in authd's `AUTHD_INTROSPECT_CLIENTS`, sent as
    /// `authorization: Basic …`; `None` when authd leaves Introspect open.
    pub client: Option<(String, String)>,
    /// How long a positive answer is reused (never past the token's `exp`); zero, the default,
    /// asks authd every time.
    pub cache_ttl: Duration,
}

impl RemoteSettings {
    /// Introspect at `endpoint`, no credentials, no cache.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            client: None,
            cache_ttl: Duration::ZERO,
        }
    }
}

impl std::fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("endpoint", &self.endpoint)
            .field("client", &self.client.as_ref().map(|(id, _)| id))
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}

/// Asks authd's Introspect about every token (or its cache of recent positive answers).
/// Cheap to clone: clones share the connection and the cache.
#[derive(Clone)]
pub struct RemoteVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: String,
    client: pb::auth_service_client::AuthServiceClient<Channel>,
    authorization: Option<AsciiMetadataValue>,
    cache: Option<Cache>,
}

impl RemoteVerifier {
    /// A verifier that connects to `settings.endpoint` on first use (and again after authd
    /// restarts). Fails on an endpoint that is not a URI, or outside a Tokio runtime.
    pub fn new(settings: RemoteSettings) -> Result<Self, VerifierError> {
        let channel = client::channel(&settings.endpoint, CALL_TIMEOUT)?;
        let authorization = client::basic_authorization(settings.client.as_ref());
        let cache = (!settings.cache_ttl.is_zero()).then(|| Cache::new(settings.cache_ttl));
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: settings.endpoint,
                client: pb::auth_service_client::AuthServiceClient::new(channel),
                authorization,
                cache,
            }),
        })
    }
}

impl Verify for RemoteVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, Refusal>> {
        Box::pin(self.inner.verify(token))
    }
}

impl Inner {
    async fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::Malformed);
        }
        let key = self.cache.as_ref().map(|_| TokenDigest::of(token));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(claims) = cache.get(key)
        {
            return Ok(claims);
        }
        let answer = self.introspect(token).await?;
        if !answer.active {
            return Err(Refusal::Inactive);
        }
        let claims = Claims::try_from(AccessClaims {
            iss: answer.iss,
            sub: answer.sub,
            aud: Audience::Many(answer.aud),
            exp: answer.exp,
            iat: answer.iat,
            jti: answer.jti,
            sid: answer.sid,
            client_id: Some(answer.client_id).filter(|id| !id.is_empty()),
            email: answer.email,
            email_verified: answer.email_verified,
            amr: answer.amr,
            ext_id: Some(answer.ext_id).filter(|id| !id.is_empty()),
        })?;
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.put(key, &claims, crate::checks::unix_now());
        }
        Ok(claims)
    }

    async fn introspect(&self, token: &str) -> Result<pb::IntrospectResponse, Refusal> {
        let mut request = tonic::Request::new(pb::IntrospectRequest {
            token: token.to_owned(),
        });
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        let mut client = self.client.clone();
        match client.introspect(request).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(status) => {
                let endpoint = &self.endpoint;
                if status.code() == tonic::Code::Unauthenticated {
                    tracing::warn!(
                        "authd at {endpoint} refused this service's Introspect credentials: {}; \
                         check RemoteSettings::client against AUTHD_INTROSPECT_CLIENTS",
                        status.message()
                    );
                } else {
                    let cause = std::error::Error::source(&status)
                        .map(|cause| format!(" ({})", error_chain(cause)))
                        .unwrap_or_default();
                    tracing::warn!(
                        "Introspect at {endpoint} failed: {:?}: {}{cause}",
                        status.code(),
                        status.message()
                    );
                }
                Err(Refusal::Unavailable)
            }
        }
    }
}

/// Positive answers by token digest, each until the caller's TTL or the token's `exp`,
/// whichever is first; at most [`CACHE_CAPACITY`] of them (a forgotten one is asked again).
struct Cache {
    ttl: Duration,
    answers: TokenMemo<Claims>,
}

impl Cache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            answers: TokenMemo::new(CACHE_CAPACITY),
        }
    }

    fn get(&self, key: &TokenDigest) -> Option<Claims> {
        self.answers.get(key)
    }

    /// Keeps `claims` (checked at `now`, unix seconds) for the TTL, but never past `exp`.
    fn put(&self, key: TokenDigest, claims: &Claims, now: i64) {
        let left = u64::try_from(claims.expires_at.saturating_sub(now)).unwrap_or(0);
        let keep = self.ttl.min(Duration::from_secs(left));
        self.answers.put(key, claims.clone(), keep);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.answers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_at: i64) -> Claims {
        Claims::try_from(AccessClaims {
            iss: "i".into(),
            sub: uuid::Uuid::from_u128(1).to_string(),
            aud: Audience::One("a".into()),
            exp: expires_at,
            iat: 0,
            jti: "j".into(),
            sid: uuid::Uuid::from_u128(2).to_string(),
            client_id: None,
            email: "e@example.com".into(),
            email_verified: true,
            amr: Vec::new(),
            ext_id: None,
        })
        .unwrap()
    }

    #[test]
    fn answers_are_kept_for_the_ttl_but_never_past_exp() {
        let cache = Cache::new(Duration::from_secs(60));
        let now = crate::checks::unix_now();
        cache.put(digest("a"), &claims(now + 600), now);
        assert_eq!(cache.get(&digest("a")), Some(claims(now + 600)));
        assert_eq!(cache.get(&digest("b")), None);
        // Expired already, or expiring now: not cached at all.
        cache.put(digest("old"), &claims(now - 1), now);
        cache.put(digest("edge"), &claims(now), now);
        assert_eq!(
            (cache.get(&digest("old")), cache.get(&digest("edge"))),
            (None, None)
        );
        // One second left: kept one second, not sixty.
        cache.put(digest("soon"), &claims(now + 1), now);
        assert!(cache.get(&digest("soon")).is_some());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(cache.get(&digest("soon")), None);
        assert!(cache.get(&digest("a")).is_some());
    }

    fn digest(token: &str) -> TokenDigest {
        TokenDigest::of(token)
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = Cache::new(Duration::from_secs(60));
        let now = crate::checks::unix_now();
        for i in 0..CACHE_CAPACITY + 500 {
            cache.put(digest(&i.to_string()), &claims(now + 600), now);
        }
        assert!(cache.len() <= CACHE_CAPACITY, "{} cached", cache.len());
        let last = (CACHE_CAPACITY + 499).to_string();
        assert!(
            cache.get(&digest(&last)).is_some(),
            "the newest answer is kept"
        );
    }

    #[test]
    fn settings_debug_hides_the_secret() {
        let mut settings = RemoteSettings::new("http://127.0.0.1:50051");
        settings.client = Some(("svc".into(), "s3cret-value".into()));
        let text = format!("{settings:?}");
        assert!(text.contains("svc") && !text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn bad_endpoints_are_errors_and_unreachable_ones_unavailable() {
        let err = RemoteVerifier::new(RemoteSettings::new("not a uri")).err();
        assert_eq!(err, Some(VerifierError::Endpoint("not a uri".into())));
        let verifier = RemoteVerifier::new(RemoteSettings::new("http://127.0.0.1:1")).unwrap();
        assert_eq!(verifier.verify("a.b.c").await, Err(Refusal::Unavailable));
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(verifier.verify(&huge).await, Err(Refusal::Malformed));
    }

    #[test]
    fn outside_a_runtime_new_says_so() {
        let err = RemoteVerifier::new(RemoteSettings::new("http://127.0.0.1:50051")).err();
        assert_eq!(err, Some(VerifierError::NoRuntime));
    }
}
