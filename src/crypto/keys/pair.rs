//! A signing key pair as stored: its algorithm, its private half, and the public half it
//! publishes as a JWK (whose RFC 7638 thumbprint is its `kid`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

/// RSA keys authd makes: 2048 bits, the size every JOSE library accepts.
const RSA_BITS: usize = 2048;

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

    pub(super) fn jws(self) -> Algorithm {
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

    pub(super) fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            SigningAlg::EdDSA => EncodingKey::from_ed_der(&self.private_der),
            SigningAlg::ES256 => EncodingKey::from_ec_der(&self.private_der),
            SigningAlg::RS256 => EncodingKey::from_rsa_der(&self.private_der),
        }
    }

    /// The error for a private half that does not parse as a key of its algorithm (names the
    /// key, never its bytes).
    pub(super) fn invalid(&self) -> anyhow::Error {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
