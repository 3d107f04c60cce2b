//! Access tokens: RFC 9068 JWTs signed with the current key, and checked with
//! `authd_verifier`'s `Checks` against the published keys, the same checks other services run.
//! Verification trusts nothing in the token's header but the `kid` and an `alg` that must be
//! the named key's own.

use super::keys::KeyRing;
use crate::domain::{ClientId, SessionId, UserId};
use authd_verifier::{ACCESS_TOKEN_TYP, AccessClaims, Audience, Checks};
use jsonwebtoken::{Algorithm, Header};
use std::sync::Arc;
use std::time::Duration;

/// Who a token is for; what the issuer needs besides the clock and its settings.
pub struct Subject<'a> {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub client_id: &'a ClientId,
    pub email: &'a str,
    pub email_verified: bool,
}

/// Issues and verifies access tokens with the key ring.
pub struct AccessTokens {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: Audience,
    ttl: Duration,
    checks: Checks,
}

impl AccessTokens {
    pub fn new(keys: Arc<KeyRing>, issuer: String, audience: Vec<String>, ttl: Duration) -> Self {
        // authd's own clock is the one that issued the token: no skew to allow for.
        // The verifier's default algorithms are those authd signs with; a token's `alg` must
        // also be its key's own.
        let checks = Checks::new(issuer.clone(), audience.clone());
        let audience = match <[String; 1]>::try_from(audience) {
            Ok([one]) => Audience::One(one),
            Err(many) => Audience::Many(many),
        };
        Self {
            keys,
            issuer,
            audience,
            ttl,
            checks,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed access token for `subject`, issued at `now` (unix seconds).
    pub fn issue(&self, subject: &Subject<'_>, now: i64) -> anyhow::Result<String> {
        let keys = self.keys.current();
        let ttl = i64::try_from(self.ttl.as_secs())?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.user_id.to_string(),
            aud: self.audience.clone(),
            exp: now.saturating_add(ttl),
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
            sid: subject.session_id.to_string(),
            client_id: Some(subject.client_id.to_string()),
            email: subject.email.to_owned(),
            email_verified: subject.email_verified,
        };
        // The key set sets `alg` and `kid`: those of the key that signs at `now`.
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        keys.sign(&mut header, &claims, now)
    }

    /// The claims of a well-formed, correctly signed, unexpired access token of ours; `None` for
    /// anything else. Whether its session is still live is the caller's to check.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let keys = self.keys.current();
        self.checks.check(token, keys.public_keys()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{KeyPair, KeySet, ScheduledKey, SigningAlg};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn tokens(audience: &[&str]) -> anyhow::Result<AccessTokens> {
        let pair = KeyPair::generate(SigningAlg::EdDSA)?;
        let ring = KeyRing::new(KeySet::new(&[ScheduledKey {
            pair,
            activates_at_ms: 0,
        }])?);
        Ok(AccessTokens::new(
            Arc::new(ring),
            "https://auth.example".into(),
            audience.iter().map(|a| a.to_string()).collect(),
            Duration::from_secs(900),
        ))
    }

    static CLIENT: std::sync::LazyLock<ClientId> = std::sync::LazyLock::new(|| {
        ClientId::parse("client_id", "web").unwrap_or_else(|_| unreachable!())
    });

    fn subject() -> Subject<'static> {
        Subject {
            user_id: UserId::new(),
            session_id: SessionId::new(),
            client_id: &CLIENT,
            email: "a@example.com",
            email_verified: true,
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() -> anyhow::Result<()> {
        let tokens = tokens(&["authd"])?;
        let subject = subject();
        let token = tokens.issue(&subject, now())?;
        let claims = tokens
            .verify(&token)
            .ok_or_else(|| anyhow::anyhow!("not verified"))?;
        assert_eq!(claims.sub, subject.user_id.to_string());
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.aud, Audience::One("authd".into()));
        assert_eq!(claims.client_id.as_deref(), Some("web"));
        Ok(())
    }

    #[test]
    fn several_audiences_are_an_array() -> anyhow::Result<()> {
        let tokens = tokens(&["a", "b"])?;
        let claims = tokens.verify(&tokens.issue(&subject(), now())?);
        assert_eq!(
            claims.map(|c| c.aud.to_vec()),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        Ok(())
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() -> anyhow::Result<()> {
        let tokens = tokens(&["authd"])?;
        let expired = tokens.issue(&subject(), now() - 1000)?;
        assert_eq!(tokens.verify(&expired), None);

        let token = tokens.issue(&subject(), now())?;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1])?)?;
        parts[1] = URL_SAFE_NO_PAD
            .encode(payload.replace("\"email_verified\":true", "\"email_verified\":false"));
        assert_eq!(tokens.verify(&parts.join(".")), None);

        let other = self::tokens(&["authd"])?.issue(&subject(), now())?;
        assert_eq!(tokens.verify(&other), None, "a token signed by another key");
        assert_eq!(tokens.verify("not.a.jwt"), None);
        assert_eq!(tokens.verify(""), None);
        Ok(())
    }
}
