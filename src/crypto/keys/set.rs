//! The keys in force: the key set that signs each token with the key active at its time and
//! serves the JWK Set, and the key ring that swaps the set as a whole.

use super::pair::KeyPair;
use super::parsed::ParsedKey;
use authd_verifier::PublicKeys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use parking_lot::RwLock;
use std::sync::Arc;

/// A published key and when it signs (unix milliseconds): from `activates_at_ms` until a later
/// key's.
#[derive(Debug, Clone)]
pub struct ScheduledKey {
    pub pair: KeyPair,
    pub activates_at_ms: i64,
}

struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: ParsedKey,
    activates_at_ms: i64,
}

/// The keys in force: all are published and verify; each signs in its time.
pub struct KeySet {
    /// In the order they sign: ascending by `activates_at_ms`, ties in the order given.
    signers: Vec<Signer>,
    /// The published keys as the verifier reads them: parsed from the very JWK Set served.
    public: PublicKeys,
    jwks_json: Arc<str>,
    algorithms: Vec<Algorithm>,
}

impl KeySet {
    /// Publishes `keys`, given in the order they sign. Each is checked by signing a probe and verifying it with the key as a
    /// verifier reads it from the JWK Set, so a key that could not be verified never signs.
    pub fn new(keys: &[ScheduledKey]) -> anyhow::Result<Self> {
        anyhow::ensure!(!keys.is_empty(), "no signing key");
        let mut set = JwkSet::default();
        let mut algorithms = Vec::new();
        let mut signers = Vec::with_capacity(keys.len());
        for scheduled in keys {
            let pair = &scheduled.pair;
            set.keys.push(pair.public_jwk()?);
            let algorithm = pair.algorithm().jws();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
            signers.push(Signer {
                kid: pair.kid().to_owned(),
                algorithm,
                key: ParsedKey::parse(pair)?,
                activates_at_ms: scheduled.activates_at_ms,
            });
        }
        // Stable: keys that start in the same millisecond keep the life cycle's order.
        signers.sort_by_key(|s| s.activates_at_ms);
        let public = PublicKeys::from_jwk_set(&set);
        anyhow::ensure!(
            public.len() == keys.len(),
            "a signing key is not usable by verifiers (or two share a kid)"
        );
        for signer in &signers {
            let probe = b"authd signing key check";
            let usable = signer
                .key
                .sign(probe)
                .ok()
                .zip(public.get(&signer.kid))
                .is_some_and(|(signature, key)| {
                    jsonwebtoken::crypto::verify(
                        &URL_SAFE_NO_PAD.encode(signature),
                        probe,
                        key.decoding_key(),
                        signer.algorithm,
                    )
                    .unwrap_or(false)
                });
            anyhow::ensure!(
                usable,
                "signing key {}: its signatures do not verify with its published key",
                signer.kid
            );
        }
        let jwks_json = serde_json::to_string(&set)
            .map_err(|e| anyhow::anyhow!("cannot serialise the JWK Set: {e}"))?;
        Ok(Self {
            signers,
            public,
            jwks_json: jwks_json.into(),
            algorithms,
        })
    }

    /// Signs `claims` as a JWT with the key active at `now` (unix seconds, the token's `iat`):
    /// the last to start at or before it (the earliest key, should none be active yet). A key
    /// starting within a second signs from the next whole second, never early.
    pub fn sign(
        &self,
        header: &mut jsonwebtoken::Header,
        claims: &impl serde::Serialize,
        now: i64,
    ) -> anyhow::Result<String> {
        let signer = self
            .signers
            .iter()
            .rev()
            .find(|s| s.activates_at_ms <= now.saturating_mul(1000))
            .or_else(|| self.signers.first())
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        header.alg = signer.algorithm;
        header.kid = Some(signer.kid.clone());
        // The JWS compact serialisation (RFC 7515 §7.1), as jsonwebtoken's `encode` makes it.
        let header_json = serde_json::to_vec(header)
            .map_err(|e| anyhow::anyhow!("cannot serialise a token header: {e}"))?;
        let claims_json = serde_json::to_vec(claims)
            .map_err(|e| anyhow::anyhow!("cannot serialise token claims: {e}"))?;
        // Base64 makes 4 characters of every 3 bytes; an RSA signature is the longest, 342.
        let mut token =
            String::with_capacity((header_json.len() + claims_json.len()) * 4 / 3 + 350);
        URL_SAFE_NO_PAD.encode_string(&header_json, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims_json, &mut token);
        let signature = signer
            .key
            .sign(token.as_bytes())
            .map_err(|e| e.context("signing an access token failed"))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The `alg` values of the published keys: what verifiers must accept (the discovery
    /// documents' `id_token_signing_alg_values_supported`).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The published keys, for verifying tokens.
    pub fn public_keys(&self) -> &PublicKeys {
        &self.public
    }

    /// The JWK Set, serialised once.
    pub fn jwks_json(&self) -> Arc<str> {
        Arc::clone(&self.jwks_json)
    }
}

/// The current key set, swappable as a whole (for rotation) without blocking readers for long.
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    /// The JWK Set of the current keys, as both ports serve it.
    pub fn jwks_json(&self) -> Arc<str> {
        self.current().jwks_json()
    }

    pub fn new(keys: KeySet) -> Self {
        Self {
            current: RwLock::new(Arc::new(keys)),
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read())
    }

    pub fn replace(&self, keys: KeySet) {
        *self.current.write() = Arc::new(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::pair::SigningAlg;

    fn scheduled(pair: &KeyPair, activates_at_secs: i64) -> ScheduledKey {
        ScheduledKey {
            pair: pair.clone(),
            activates_at_ms: activates_at_secs * 1000,
        }
    }

    #[test]
    fn generated_keys_of_every_algorithm_round_trip_and_publish() -> anyhow::Result<()> {
        for algorithm in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let key = KeyPair::generate(algorithm)?;
            let again =
                KeyPair::from_parts(key.kid().into(), algorithm, key.private_der().to_vec())?;
            assert_eq!(again.kid(), key.kid());
            let set = KeySet::new(&[scheduled(&key, 0)])?;
            let jwks: serde_json::Value = serde_json::from_str(&set.jwks_json())?;
            assert_eq!(jwks["keys"][0]["kid"], key.kid());
            assert_eq!(jwks["keys"][0]["alg"], algorithm.name());
            assert_eq!(jwks["keys"][0]["use"], "sig");
            for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\""] {
                assert!(
                    !jwks.to_string().contains(private),
                    "{algorithm}: private part"
                );
            }
            assert!(!format!("{key:?}").contains("private_der"));
            let parsed = PublicKeys::from_json(&set.jwks_json())?;
            assert_eq!(parsed.len(), 1, "{algorithm}: the verifier reads the set");
        }
        Ok(())
    }

    #[test]
    fn the_key_active_at_the_time_signs() -> anyhow::Result<()> {
        let old = KeyPair::generate(SigningAlg::EdDSA)?;
        let new = KeyPair::generate(SigningAlg::ES256)?;
        let set = KeySet::new(&[scheduled(&new, 200), scheduled(&old, 100)])?;
        let kid_at = |now| -> anyhow::Result<(Option<String>, Algorithm)> {
            let mut header = jsonwebtoken::Header::default();
            let token = set.sign(&mut header, &serde_json::json!({"a": 1}), now)?;
            let header = jsonwebtoken::decode_header(&token)?;
            Ok((header.kid, header.alg))
        };
        assert_eq!(kid_at(150)?, (Some(old.kid().into()), Algorithm::EdDSA));
        assert_eq!(kid_at(200)?, (Some(new.kid().into()), Algorithm::ES256));
        assert_eq!(kid_at(50)?.0.as_deref(), Some(old.kid()), "none active yet");
        // Two keys that start in the same second: the order given decides, as the life cycle
        // ordered them; one starting within the second signs from the next.
        let mut first = scheduled(&old, 300);
        first.activates_at_ms += 200;
        let mut second = scheduled(&new, 300);
        second.activates_at_ms += 200;
        let set = KeySet::new(&[first, second])?;
        let mut header = jsonwebtoken::Header::default();
        let at_300 = set.sign(&mut header, &serde_json::json!({}), 300)?;
        assert_eq!(
            jsonwebtoken::decode_header(&at_300)?.kid.as_deref(),
            Some(old.kid())
        );
        let at_301 = set.sign(&mut header, &serde_json::json!({}), 301)?;
        assert_eq!(
            jsonwebtoken::decode_header(&at_301)?.kid.as_deref(),
            Some(new.kid())
        );
        assert_eq!(set.algorithms().len(), 2);
        Ok(())
    }

    #[test]
    fn tokens_signed_with_the_parsed_key_are_the_tokens_jsonwebtoken_makes() -> anyhow::Result<()> {
        let claims = serde_json::json!({"sub": "u", "exp": 2_000_000_000_i64, "amr": ["pwd"]});
        for algorithm in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let key = KeyPair::generate(algorithm)?;
            let set = KeySet::new(&[scheduled(&key, 0)])?;
            let mut header = jsonwebtoken::Header::default();
            let token = set.sign(&mut header, &claims, 10)?;
            // Ed25519 and PKCS#1 v1.5 signatures are deterministic: byte for byte the same.
            if algorithm != SigningAlg::ES256 {
                let expected = jsonwebtoken::encode(&header, &claims, &key.encoding_key())?;
                assert_eq!(token, expected, "{algorithm}");
            }
            // Every algorithm's token verifies under the published key, and nothing else does.
            let public = set.public_keys().get(key.kid()).expect("published");
            let mut validation = jsonwebtoken::Validation::new(algorithm.jws());
            validation.required_spec_claims.clear();
            validation.validate_aud = false;
            let decoded: serde_json::Value =
                jsonwebtoken::decode(&token, public.decoding_key(), &validation)?.claims;
            assert_eq!(decoded, claims, "{algorithm}");
            let (signed, signature) = token.rsplit_once('.').expect("three parts");
            let tampered = format!("{}.{signature}", signed.replace("eyJ", "eyK"));
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(
                    &tampered,
                    public.decoding_key(),
                    &validation
                )
                .is_err(),
                "{algorithm}: a changed token verifies"
            );
        }
        Ok(())
    }
}
