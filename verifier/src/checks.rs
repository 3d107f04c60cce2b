//! Every check on one access token against a key set, with no I/O: size, form, `typ`, `alg`
//! (from the allow-list and equal to the key's own; never the token's choice), `kid`, signature,
//! claims, `exp`/`nbf` with the leeway, `iss`, `aud`.
//!
//! Only `alg`, `typ`, `kid` and `crit` of the header are read: `jwk`, `jku`, `x5u` and `x5c`
//! would let the token name its own key, so they are never looked at.

use crate::{ACCESS_TOKEN_TYP, AccessClaims, Audience, PublicKeys, Refusal};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;
use std::str::FromStr;
use std::time::Duration;

/// Tokens longer than this are refused before any parsing (authd's are under 1 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What a token must satisfy besides its signature: issuer, audiences, algorithms, leeway.
#[derive(Debug, Clone)]
pub struct Checks {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: i64,
}

/// The header members that are read; every other member is ignored.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the verifier would have to understand (RFC 7515 §4.1.11): none are.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The payload: [`AccessClaims`] and `nbf`, which authd does not set but a token may carry.
#[derive(Deserialize)]
struct Payload {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    jti: String,
    sid: String,
    #[serde(default)]
    client_id: Option<String>,
    email: String,
    email_verified: bool,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    amr: Vec<String>,
    #[serde(default)]
    ext_id: Option<String>,
}

impl Checks {
    /// Tokens from `issuer` (authd's `AUTHD_ISSUER`) for any of `audiences`; every algorithm
    /// authd can sign with ([`Self::DEFAULT_ALGORITHMS`], so that tokens keep passing when
    /// `AUTHD_SIGNING_ALG` changes), each only under a key of its own type; no leeway. With no
    /// audience every token is refused.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            algorithms: Self::DEFAULT_ALGORITHMS.to_vec(),
            leeway_secs: 0,
        }
    }

    /// The algorithms [`Self::new`] accepts: EdDSA (Ed25519 keys), ES256 (P-256 keys) and RS256
    /// (RSA keys of 2048 bits or more).
    pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
        [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

    /// Allows for clock skew between authd and this service on `exp` and `nbf` (whole seconds;
    /// keep it small: a minute at most).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway_secs = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// The algorithms accepted, in place of [`Self::DEFAULT_ALGORITHMS`]: `&[Algorithm::EdDSA]`,
    /// say, to narrow them when authd is known to sign with nothing else. HMAC algorithms are
    /// dropped: their key would be one anyone can read in the JWK Set. Whatever the list, a
    /// token's `alg` must also be its key's own algorithm, so a key of one type never checks a
    /// token that claims another.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms
            .iter()
            .copied()
            .filter(|alg| alg.family() != AlgorithmFamily::Hmac)
            .collect();
        self
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences of which a token must name one.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The leeway on `exp` and `nbf`, whole seconds.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.leeway_secs).unwrap_or(0))
    }

    /// The claims of `token` when it passes every check now.
    pub fn check(&self, token: &str, keys: &PublicKeys) -> Result<AccessClaims, Refusal> {
        self.check_at(token, keys, unix_now())
    }

    /// [`Self::check`] at `now` (unix seconds).
    pub fn check_at(
        &self,
        token: &str,
        keys: &PublicKeys,
        now: i64,
    ) -> Result<AccessClaims, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::Malformed);
        }
        let (message, signature) = token.rsplit_once('.').ok_or(Refusal::Malformed)?;
        let (header, payload) = message.split_once('.').ok_or(Refusal::Malformed)?;
        if payload.contains('.') {
            return Err(Refusal::Malformed);
        }
        let header: JoseHeader = decode_json(header)?;
        if header.crit.is_some() {
            return Err(Refusal::Malformed);
        }
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(Refusal::Type);
        }
        let alg = Algorithm::from_str(&header.alg).map_err(|_| Refusal::Algorithm)?;
        if !self.algorithms.contains(&alg) {
            return Err(Refusal::Algorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.get(kid))
            .ok_or(Refusal::UnknownKey)?;
        if key.algorithm() != alg {
            return Err(Refusal::Algorithm);
        }
        if !key.verifies(message.as_bytes(), signature) {
            return Err(Refusal::Signature);
        }
        let payload: Payload = decode_json(payload).map_err(|refusal| match refusal {
            Refusal::Malformed => Refusal::Claims,
            other => other,
        })?;
        if now >= payload.exp.saturating_add(self.leeway_secs) {
            return Err(Refusal::Expired);
        }
        if payload
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.leeway_secs) < nbf)
        {
            return Err(Refusal::NotYetValid);
        }
        if payload.iss != self.issuer {
            return Err(Refusal::Issuer);
        }
        if !self.audiences.iter().any(|ours| payload.aud.contains(ours)) {
            return Err(Refusal::Audience);
        }
        Ok(AccessClaims {
            iss: payload.iss,
            sub: payload.sub,
            aud: payload.aud,
            exp: payload.exp,
            iat: payload.iat,
            jti: payload.jti,
            sid: payload.sid,
            client_id: payload.client_id,
            email: payload.email,
            email_verified: payload.email_verified,
            amr: payload.amr,
            ext_id: payload.ext_id,
        })
    }
}

/// A base64url JSON part of the token: bad base64 or JSON is [`Refusal::Malformed`].
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

/// Unix seconds now (0 for a clock before 1970, which no token survives).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
