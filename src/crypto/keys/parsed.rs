//! A private key parsed once, when the key set is built, into ring's key pair, and the JWS
//! signatures it makes.

use super::pair::{KeyPair, SigningAlg};

/// A private key as ring keeps it once parsed, ready to sign.
pub(super) enum ParsedKey {
    Ed25519(ring::signature::Ed25519KeyPair),
    Es256(ring::signature::EcdsaKeyPair, ring::rand::SystemRandom),
    Rs256(ring::signature::RsaKeyPair, ring::rand::SystemRandom),
}

impl ParsedKey {
    pub(super) fn parse(pair: &KeyPair) -> anyhow::Result<Self> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        use ring::signature::{Ed25519KeyPair, RsaKeyPair};
        let invalid = || pair.invalid();
        let rng = ring::rand::SystemRandom::new();
        let der = pair.private_der();
        Ok(match pair.algorithm() {
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
    pub(super) fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
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
