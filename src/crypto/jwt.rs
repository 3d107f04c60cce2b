//! Access tokens: RFC 9068 JWTs signed with the current key, and checked with
//! `authd_verifier`'s `Checks` against the published keys, the same checks other services run.
//! Verification trusts nothing in the token's header but the `kid` and an `alg` that must be
//! the named key's own.

use super::keys::{KeyRing, KeySet};
use crate::domain::{AuthMethods, ClientId, SessionId, UserId};
use authd_verifier::{ACCESS_TOKEN_TYP, AccessClaims, Audience, Checks, TokenDigest, TokenMemo};
use jsonwebtoken::{Algorithm, Header};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The most tokens whose passed checks are remembered at once ([`Verified`]).
const VERIFIED_CAPACITY: usize = 4096;

/// Who a token is for; what the issuer needs besides the clock and its settings.
pub struct Subject<'a> {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub client_id: &'a ClientId,
    pub email: &'a str,
    pub email_verified: bool,
    /// How the session's login was authenticated (`amr`).
    pub methods: AuthMethods,
    /// The user's id in the app they were imported from (`ext_id`).
    pub ext_id: Option<&'a str>,
}

/// Issues and verifies access tokens with the key ring.
pub struct AccessTokens {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: Audience,
    ttl: Duration,
    checks: Checks,
    verified: Verified,
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
            verified: Verified::default(),
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
            amr: subject
                .methods
                .values()
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
            ext_id: subject.ext_id.map(str::to_owned),
        };
        // The key set sets `alg` and `kid`: those of the key that signs at `now`.
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        keys.sign(&mut header, &claims, now)
    }

    /// The claims of a well-formed, correctly signed, unexpired access token of ours; `None` for
    /// anything else. Whether its session is still live is the caller's to check.
    ///
    /// Services check the same token on every request of its 15 minutes, so a token that passed
    /// is remembered (by its SHA-256) with its claims, for as long as the key set that passed it
    /// is in force: under a rotation or a retired key, nothing remembered counts. A remembered
    /// token is still refused once it expires. Only tokens that passed are remembered, so
    /// garbage cannot fill the memory, and it is bounded by [`VERIFIED_CAPACITY`].
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let keys = self.keys.current();
        let digest = TokenDigest::of(token);
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = self.verified.get(&keys, &digest, now) {
            return Some(claims);
        }
        let claims = self.checks.check(token, keys.public_keys()).ok()?;
        self.verified.put(&keys, digest, &claims, now);
        Some(claims)
    }
}

/// Access tokens that passed every check, by digest, each with the key set that passed it.
struct Verified {
    tokens: TokenMemo<(Weak<KeySet>, AccessClaims)>,
}

impl Default for Verified {
    fn default() -> Self {
        Self {
            tokens: TokenMemo::new(VERIFIED_CAPACITY),
        }
    }
}

impl Verified {
    /// The claims of a token that passed under `keys` and has not expired at `now` (unix
    /// seconds).
    fn get(&self, keys: &Arc<KeySet>, digest: &TokenDigest, now: i64) -> Option<AccessClaims> {
        // The Weak keeps the old key set's allocation, so its address is not reused while an
        // entry points at it: the same address is the same key set. It does not keep the keys.
        // authd's tokens carry no `nbf` and its checks allow no leeway: `exp` is the only time.
        self.tokens
            .get(digest)
            .filter(|(passed_under, claims)| {
                std::ptr::eq(passed_under.as_ptr(), Arc::as_ptr(keys)) && now < claims.exp
            })
            .map(|(_, claims)| claims)
    }

    /// Remembers that the token of `digest` passed under `keys` at `now` (unix seconds), until
    /// its `exp`.
    fn put(&self, keys: &Arc<KeySet>, digest: TokenDigest, claims: &AccessClaims, now: i64) {
        let left = u64::try_from(claims.exp.saturating_sub(now)).unwrap_or(0);
        self.tokens.put(
            digest,
            (Arc::downgrade(keys), claims.clone()),
            Duration::from_secs(left),
        );
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
            methods: AuthMethods::Password,
            ext_id: None,
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

    fn ring_with_new_key() -> anyhow::Result<Arc<KeyRing>> {
        Ok(Arc::new(KeyRing::new(KeySet::new(&[ScheduledKey {
            pair: KeyPair::generate(SigningAlg::EdDSA)?,
            activates_at_ms: 0,
        }])?)))
    }

    #[test]
    fn a_remembered_token_is_forgotten_when_the_key_set_changes() -> anyhow::Result<()> {
        let ring = ring_with_new_key()?;
        let tokens = AccessTokens::new(
            Arc::clone(&ring),
            "https://auth.example".into(),
            vec!["authd".into()],
            Duration::from_secs(900),
        );
        let token = tokens.issue(&subject(), now())?;
        let first = tokens.verify(&token);
        assert!(first.is_some());
        assert_eq!(
            tokens.verify(&token),
            first,
            "checked again, the same claims"
        );
        // The key that signed it retired: a ring without it. The remembered pass must not count.
        ring.replace(KeySet::new(&[ScheduledKey {
            pair: KeyPair::generate(SigningAlg::EdDSA)?,
            activates_at_ms: 0,
        }])?);
        assert_eq!(tokens.verify(&token), None);
        Ok(())
    }

    #[test]
    fn remembered_tokens_expire_and_the_memory_stays_bounded() -> anyhow::Result<()> {
        let tokens = tokens(&["authd"])?;
        let keys = tokens.keys.current();
        let now = now();
        let claims = tokens
            .verify(&tokens.issue(&subject(), now)?)
            .ok_or_else(|| anyhow::anyhow!("not verified"))?;
        let verified = Verified::default();
        let (one, two) = (TokenDigest::of("1"), TokenDigest::of("2"));
        verified.put(&keys, one, &claims, now);
        assert!(verified.get(&keys, &one, claims.exp - 1).is_some());
        assert!(verified.get(&keys, &one, claims.exp).is_none(), "expired");
        assert!(verified.get(&keys, &two, now).is_none(), "never seen");

        for i in 0..VERIFIED_CAPACITY + 10 {
            verified.put(&keys, TokenDigest::of(&i.to_string()), &claims, now);
        }
        let held = verified.tokens.len();
        assert!(held <= VERIFIED_CAPACITY, "{held} remembered");
        Ok(())
    }
}
