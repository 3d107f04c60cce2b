//! Signing keys for access tokens, the server's half: Ed25519 key pairs as stored, the JWK Set
//! that publishes their public halves, and the key ring that the issuer signs with. Verifying
//! is `authd_verifier`'s (the same code other services run), fed from the published JWK Set.
//! Keys are parsed once, when the ring is built, never per request.

use authd_verifier::PublicKeys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::sync::{Arc, RwLock};

/// How long verifiers may cache the JWK Set (the `Cache-Control` of the HTTP endpoint).
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// A key pair as the database keeps it. The private half is PKCS#8 DER and never leaves authd.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub private_pkcs8_der: Vec<u8>,
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    /// A fresh Ed25519 key pair; its `kid` is the RFC 7638 thumbprint of the public key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("cannot encode signing key: {e}"))?;
        let mut key = Self {
            kid: String::new(),
            private_pkcs8_der: der.as_bytes().to_vec(),
            public_key: signing.verifying_key().to_bytes().to_vec(),
        };
        key.kid = key
            .public_jwk()?
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| anyhow::anyhow!("cannot compute the key's thumbprint: {e}"))?;
        Ok(key)
    }

    /// Checks that the stored halves belong together, so a corrupt row fails at start-up.
    fn check(&self) -> anyhow::Result<()> {
        let signing = ed25519_dalek::SigningKey::from_pkcs8_der(&self.private_pkcs8_der)
            .map_err(|_| anyhow::anyhow!("signing key {} is not valid PKCS#8 Ed25519", self.kid))?;
        anyhow::ensure!(
            signing.verifying_key().as_bytes().as_slice() == self.public_key.as_slice(),
            "signing key {}: public key does not match private key",
            self.kid
        );
        Ok(())
    }

    /// The JWS `alg` this key signs with.
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }

    fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ed_der(&self.private_pkcs8_der)
    }

    /// The public half as published, with `kid`, `use` and `alg`. (`check` has made sure it
    /// belongs to the private half.)
    fn public_jwk(&self) -> anyhow::Result<Jwk> {
        let x = URL_SAFE_NO_PAD.encode(&self.public_key);
        let mut jwk = DecodingKey::from_ed_components(&x)
            .and_then(|key| Jwk::from_decoding_key(&key, Some(self.algorithm())))
            .map_err(|e| anyhow::anyhow!("signing key {}: no public JWK: {e}", self.kid))?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }
}

/// The keys in force: one signs, all verify, all are published.
pub struct KeySet {
    pub signing_kid: String,
    pub signing_key: EncodingKey,
    /// The published keys as the verifier reads them: parsed from the very JWK Set served.
    public: PublicKeys,
    jwks_json: Arc<str>,
    algorithms: Vec<Algorithm>,
}

impl KeySet {
    /// `signing` signs new tokens; `published` (which includes it) verify and appear in the JWKS.
    pub fn new(signing: &StoredKey, published: &[StoredKey]) -> anyhow::Result<Self> {
        signing.check()?;
        let mut set = JwkSet::default();
        let mut algorithms = Vec::new();
        for key in published {
            key.check()?;
            set.keys.push(key.public_jwk()?);
            if !algorithms.contains(&key.algorithm()) {
                algorithms.push(key.algorithm());
            }
        }
        let public = PublicKeys::from_jwk_set(&set);
        anyhow::ensure!(
            public.len() == published.len(),
            "a published key is not usable by verifiers"
        );
        anyhow::ensure!(
            public.contains(&signing.kid),
            "the signing key must be published"
        );
        let jwks_json = serde_json::to_string(&set)
            .map_err(|e| anyhow::anyhow!("cannot serialise the JWK Set: {e}"))?;
        Ok(Self {
            signing_kid: signing.kid.clone(),
            signing_key: signing.encoding_key(),
            public,
            jwks_json: jwks_json.into(),
            algorithms,
        })
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
    pub fn new(keys: KeySet) -> Self {
        Self {
            current: RwLock::new(Arc::new(keys)),
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a complete key set: the swap is a single assignment.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn replace(&self, keys: KeySet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_publish() -> anyhow::Result<()> {
        let key = StoredKey::generate()?;
        let set = KeySet::new(&key, std::slice::from_ref(&key))?;
        let jwks: serde_json::Value = serde_json::from_str(&set.jwks_json())?;
        assert_eq!(jwks["keys"][0]["kid"], key.kid.as_str());
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert!(
            jwks.to_string().find("\"d\"").is_none(),
            "private key published"
        );
        assert!(!format!("{key:?}").contains("private"));
        Ok(())
    }

    #[test]
    fn mismatched_halves_are_refused() -> anyhow::Result<()> {
        let mut key = StoredKey::generate()?;
        key.public_key = StoredKey::generate()?.public_key;
        assert!(KeySet::new(&key, std::slice::from_ref(&key)).is_err());
        Ok(())
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() -> anyhow::Result<()> {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key, whose private half
        // (`d`) is given in appendix A.1.
        use base64::Engine;
        let d = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")?;
        let signing = ed25519_dalek::SigningKey::try_from(d.as_slice())?;
        let key = StoredKey {
            kid: "example".into(),
            private_pkcs8_der: signing.to_pkcs8_der()?.as_bytes().to_vec(),
            public_key: signing.verifying_key().to_bytes().to_vec(),
        };
        let jwk = key.public_jwk()?;
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256)?,
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        Ok(())
    }

    #[test]
    fn the_published_set_is_what_verifiers_parse() -> anyhow::Result<()> {
        let key = StoredKey::generate()?;
        let set = KeySet::new(&key, std::slice::from_ref(&key))?;
        let parsed = PublicKeys::from_json(&set.jwks_json())?;
        assert!(parsed.contains(&key.kid));
        assert_eq!(parsed.len(), 1);
        Ok(())
    }
}
