//! Signing keys for access tokens: Ed25519 key pairs, their JWK form and the key ring that the
//! token issuer and verifier read. Keys are parsed once, when the ring is built, never per request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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
        let public_key = signing.verifying_key().to_bytes().to_vec();
        Ok(Self {
            kid: thumbprint(&public_key),
            private_pkcs8_der: der.as_bytes().to_vec(),
            public_key,
        })
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
    fn algorithm(&self) -> &'static str {
        "EdDSA"
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(&self.public_key),
            "kid": self.kid,
            "use": "sig",
            "alg": self.algorithm(),
        })
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key (members in lexicographic order).
fn thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The keys in force: one signs, all verify, all are published.
pub struct KeySet {
    pub signing_kid: String,
    pub signing_key: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks_json: Arc<str>,
    algorithms: Vec<&'static str>,
}

impl KeySet {
    /// `signing` signs new tokens; `published` (which includes it) verify and appear in the JWKS.
    pub fn new(signing: &StoredKey, published: &[StoredKey]) -> anyhow::Result<Self> {
        signing.check()?;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        let mut algorithms = Vec::new();
        for key in published {
            key.check()?;
            let x = URL_SAFE_NO_PAD.encode(&key.public_key);
            let decoding = DecodingKey::from_ed_components(&x)
                .map_err(|e| anyhow::anyhow!("public key {} unusable: {e}", key.kid))?;
            verifying.insert(key.kid.clone(), decoding);
            jwks.push(key.jwk());
            if !algorithms.contains(&key.algorithm()) {
                algorithms.push(key.algorithm());
            }
        }
        anyhow::ensure!(
            verifying.contains_key(&signing.kid),
            "the signing key must be published"
        );
        let jwks_json = serde_json::json!({ "keys": jwks }).to_string();
        Ok(Self {
            signing_kid: signing.kid.clone(),
            signing_key: EncodingKey::from_ed_der(&signing.private_pkcs8_der),
            verifying,
            jwks_json: jwks_json.into(),
            algorithms,
        })
    }

    /// The `alg` values of the published keys: what verifiers must accept (the discovery
    /// documents' `id_token_signing_alg_values_supported`).
    pub fn algorithms(&self) -> &[&'static str] {
        &self.algorithms
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
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
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let public_key = URL_SAFE_NO_PAD.decode(x).unwrap_or_default();
        assert_eq!(
            thumbprint(&public_key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
