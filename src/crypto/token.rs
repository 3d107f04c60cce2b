//! Opaque secrets handed to callers (refresh, verification and reset tokens): 256 random bits,
//! URL-safe, stored only as their SHA-256 digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;
/// Length of a token's text form (base64url, no padding).
const TOKEN_CHARS: usize = 43;

/// A token to give the caller once, and the digest to store.
pub struct IssuedToken {
    pub secret: String,
    pub digest: TokenDigest,
}

/// SHA-256 of a token: what the database holds and looks tokens up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl IssuedToken {
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let digest = TokenDigest::of(&secret);
        Ok(Self { secret, digest })
    }
}

impl TokenDigest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// The digest of what a caller presented, or `None` when it cannot be a token of ours, which
    /// spares the database a lookup for garbage.
    pub fn of_presented(secret: &str) -> Option<Self> {
        let well_formed = secret.len() == TOKEN_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self::of(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_are_unique_and_well_formed() -> anyhow::Result<()> {
        let a = IssuedToken::generate()?;
        let b = IssuedToken::generate()?;
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), TOKEN_CHARS);
        assert_eq!(TokenDigest::of_presented(&a.secret), Some(a.digest));
        assert_eq!(a.digest, TokenDigest::of(&a.secret));
        assert_ne!(a.digest, b.digest);
        Ok(())
    }

    proptest! {
        #[test]
        fn garbage_is_refused_without_lookup(raw in "\\PC{0,100}") {
            prop_assume!(raw.len() != TOKEN_CHARS);
            prop_assert_eq!(TokenDigest::of_presented(&raw), None);
        }
    }
}
