//! Signing keys for access tokens, the server's half: key pairs as stored, the JWK Set that
//! publishes their public halves, and the key ring that the issuer signs with. Verifying is
//! `authd_verifier`'s (the same code other services run), fed from the published JWK Set.
//! Keys are parsed once, when the ring is built, never per request: tokens are signed with
//! ring's parsed key pairs, not with jsonwebtoken's `encode`, which parses the private key's DER
//! again for every token (and, for Ed25519, derives its public key, which costs as much as the
//! signature). When each key signs and how long it stays published is the key life cycle's
//! (`keys`).

use authd_verifier::PublicKeys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;

/// The longest verifiers may cache the JWK Set (the `Cache-Control` of the HTTP endpoint); a
/// shorter publish lead shortens it (see [`jwks_max_age`]).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// RSA keys authd makes: 2048 bits, the size every JOSE library accepts.
const RSA_BITS: usize = 2048;

/// How long the HTTP JWK Set may be cached when new keys are published `lead` before they
/// sign: half the lead (at most [`JWKS_MAX_AGE`]), so a verifier that honours `Cache-Control`
/// has fetched a new key at least once before the key's first token.
pub fn jwks_max_age(lead: Duration) -> Duration {
    JWKS_MAX_AGE.min(lead / 2)
}

/// The algorithm a key signs with (AUTHD_SIGNING_ALG). Each key has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037): the default, small and fast.
    EdDSA,
    /// ECDSA on P-256 with SHA-256, for verifiers that lack EdDSA.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key, for verifiers that know only RSA.
    RS256,
}

impl SigningAlg {
    pub const NAMES: [&'static str; 3] = ["EdDSA", "ES256", "RS256"];

    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }

    fn jws(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key pair: its id, algorithm and private half as jsonwebtoken reads it (PKCS#8 DER for
/// EdDSA and ES256, PKCS#1 DER for RS256). The private half never leaves authd, and never
/// reaches `Debug` output.
#[derive(Clone)]
pub struct KeyPair {
    kid: String,
    algorithm: SigningAlg,
    private_der: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh key pair; its `kid` is the RFC 7638 thumbprint of its public key.
    pub fn generate(algorithm: SigningAlg) -> anyhow::Result<Self> {
        let private_der = match algorithm {
            SigningAlg::EdDSA => {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                let der = ed25519_dalek::SigningKey::from_bytes(&seed)
                    .to_pkcs8_der()
                    .map_err(|e| anyhow::anyhow!("cannot encode an Ed25519 key: {e}"))?;
                der.as_bytes().to_vec()
            }
            SigningAlg::ES256 => {
                use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
                let rng = ring::rand::SystemRandom::new();
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("cannot make a P-256 key"))?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::RS256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                    .map_err(|e| anyhow::anyhow!("cannot make an RSA key: {e}"))?;
                key.to_pkcs1_der()
                    .map_err(|e| anyhow::anyhow!("cannot encode an RSA key: {e}"))?
                    .as_bytes()
                    .to_vec()
            }
        };
        let mut pair = Self {
            kid: String::new(),
            algorithm,
            private_der,
        };
        pair.kid = pair.thumbprint()?;
        Ok(pair)
    }

    /// A stored key pair, checked: the private half parses and its public half's thumbprint is
    /// the `kid`, so a corrupt row or a key stored under another's name fails at load.
    pub fn from_parts(
        kid: String,
        algorithm: SigningAlg,
        private_der: Vec<u8>,
    ) -> anyhow::Result<Self> {
        let pair = Self {
            kid,
            algorithm,
            private_der,
        };
        let thumbprint = pair.thumbprint()?;
        anyhow::ensure!(
            thumbprint == pair.kid,
            "signing key {}: the private key stored under this kid is another key",
            pair.kid
        );
        Ok(pair)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlg {
        self.algorithm
    }

    /// The private half, for sealing and storing.
    pub fn private_der(&self) -> &[u8] {
        &self.private_der
    }

    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            SigningAlg::EdDSA => EncodingKey::from_ed_der(&self.private_der),
            SigningAlg::ES256 => EncodingKey::from_ec_der(&self.private_der),
            SigningAlg::RS256 => EncodingKey::from_rsa_der(&self.private_der),
        }
    }

    /// The error for a private half that does not parse as a key of its algorithm (names the
    /// key, never its bytes).
    fn invalid(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "signing key {}: not a valid {} private key",
            self.kid,
            self.algorithm
        )
    }

    /// The public half as published, with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> anyhow::Result<Jwk> {
        let invalid = || self.invalid();
        let mut jwk = match self.algorithm {
            // jsonwebtoken derives Ed25519 public keys only from PKCS#8 v1; authd's keys are v2
            // (with the public key), so dalek reads them.
            SigningAlg::EdDSA => {
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                let signing = ed25519_dalek::SigningKey::from_pkcs8_der(&self.private_der)
                    .map_err(|_| invalid())?;
                let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
                jsonwebtoken::DecodingKey::from_ed_components(&x)
                    .and_then(|key| Jwk::from_decoding_key(&key, Some(Algorithm::EdDSA)))
                    .map_err(|_| invalid())?
            }
            SigningAlg::ES256 | SigningAlg::RS256 => {
                Jwk::from_encoding_key(&self.encoding_key(), self.algorithm.jws())
                    .map_err(|_| invalid())?
            }
        };
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }

    fn thumbprint(&self) -> anyhow::Result<String> {
        self.public_jwk()?
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| anyhow::anyhow!("signing key {}: no thumbprint: {e}", self.kid))
    }
}

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

/// A private key as ring keeps it once parsed, ready to sign.
enum ParsedKey {
    Ed25519(ring::signature::Ed25519KeyPair),
    Es256(ring::signature::EcdsaKeyPair, ring::rand::SystemRandom),
    Rs256(ring::signature::RsaKeyPair, ring::rand::SystemRandom),
}

impl ParsedKey {
    fn parse(pair: &KeyPair) -> anyhow::Result<Self> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        use ring::signature::{Ed25519KeyPair, RsaKeyPair};
        let invalid = || pair.invalid();
        let rng = ring::rand::SystemRandom::new();
        let der = &pair.private_der;
        Ok(match pair.algorithm {
            // PKCS#8 v1 or v2: keys made before authd wrote v2 still load.
            SigningAlg::EdDSA => Self::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| invalid())?,
            ),
            SigningAlg::ES256 => Self::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|_| invalid())?,
                rng,
            ),
            SigningAlg::RS256 => {
                Self::Rs256(RsaKeyPair::from_der(der).map_err(|_| invalid())?, rng)
            }
        })
    }

    /// The JWS signature of `message`: Ed25519's 64 bytes, ECDSA's fixed-width `r || s`
    /// (RFC 7518 §3.4), or RSASSA-PKCS1-v1_5 with SHA-256.
    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            Self::Es256(key, rng) => key
                .sign(rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| anyhow::anyhow!("ECDSA signing failed")),
            Self::Rs256(key, rng) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    rng,
                    message,
                    &mut signature,
                )
                .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                Ok(signature)
            }
        }
    }
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
            let algorithm = pair.algorithm.jws();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
            signers.push(Signer {
                kid: pair.kid.clone(),
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
    fn a_key_under_another_keys_kid_or_of_another_type_is_refused() -> anyhow::Result<()> {
        let a = KeyPair::generate(SigningAlg::EdDSA)?;
        let b = KeyPair::generate(SigningAlg::EdDSA)?;
        assert!(
            KeyPair::from_parts(a.kid().into(), SigningAlg::EdDSA, b.private_der().into()).is_err()
        );
        assert!(
            KeyPair::from_parts(a.kid().into(), SigningAlg::ES256, a.private_der().into()).is_err()
        );
        assert!(KeyPair::from_parts(a.kid().into(), SigningAlg::EdDSA, vec![1, 2, 3]).is_err());
        Ok(())
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() -> anyhow::Result<()> {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key, whose private half
        // (`d`) is given in appendix A.1.
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let d = URL_SAFE_NO_PAD.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")?;
        let signing = ed25519_dalek::SigningKey::try_from(d.as_slice())?;
        let key = KeyPair::from_parts(
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into(),
            SigningAlg::EdDSA,
            signing.to_pkcs8_der()?.as_bytes().to_vec(),
        )?;
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
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
