//! Sealing secrets at rest (AUTHD_KEY_ENCRYPTION_KEY): AES-256-GCM from ring, a fresh random
//! 96-bit nonce per seal, and what the secret is (its kind and id, a signing key's `kid`) as
//! associated data, so a sealed value copied onto another row does not open there.
//!
//! A sealed value is `version (1) || nonce (12) || ciphertext || tag (16)`. Each row also names
//! the key-encryption key that sealed it by its id (a hash of the key, not the key), so a wrong
//! key is told apart from damaged data before anything is decrypted.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;

/// Why a key-encryption key or a sealed value was refused. Never holds key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "a key-encryption key is 32 bytes written as 64 hexadecimal digits or in base64 (make \
         one with `authd keys new-encryption-key`)"
    )]
    BadKey,
    #[error("cannot unseal {0}: the data is damaged or was sealed with another key-encryption key")]
    Open(String),
}

/// A key-encryption key.
pub struct Sealer {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The key from its text: 64 hex digits, or base64 (standard or URL-safe, padded or not).
    pub fn parse(text: &SecretString) -> Result<Self, SealError> {
        let text = text.expose_secret().trim();
        let bytes = decode_hex(text).or_else(|| decode_base64(text));
        let bytes = bytes
            .filter(|b| b.len() == KEY_LEN)
            .ok_or(SealError::BadKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        let digest = Sha256::new()
            .chain_update(b"authd key-encryption key id\0")
            .chain_update(&bytes)
            .finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            key: LessSafeKey::new(key),
            id,
        })
    }

    /// A fresh random key, as text for AUTHD_KEY_ENCRYPTION_KEY.
    pub fn generate_text() -> anyhow::Result<SecretString> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into())
    }

    /// Names this key in the database without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `secret`, bound to `what` (e.g. `signing key <kid>`).
    pub fn seal(&self, what: &str, secret: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + secret.len() + AES_256_GCM.tag_len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.as_bytes()),
                &mut body,
            )
            .map_err(|_| anyhow::anyhow!("sealing {what} failed"))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The secret that [`Self::seal`] sealed for `what`.
    pub fn open(&self, what: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let refused = || SealError::Open(what.to_owned());
        let (&version, rest) = sealed.split_first().ok_or_else(refused)?;
        if version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(refused());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(what.as_bytes()), &mut body)
            .map_err(|_| refused())?;
        Ok(opened.to_vec())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let unpadded = text.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(text: &str) -> Sealer {
        Sealer::parse(&SecretString::from(text)).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_their_name() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = sealer(hex);
        let sealed = a.seal("signing key k1", b"private").unwrap();
        assert_eq!(a.open("signing key k1", &sealed).unwrap(), b"private");
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_ne!(
            sealed,
            a.seal("signing key k1", b"private").unwrap(),
            "fresh nonce"
        );
        assert!(matches!(
            a.open("signing key k2", &sealed),
            Err(SealError::Open(_))
        ));
        let b = sealer(&hex.replace("ff", "fe"));
        assert_ne!(a.id(), b.id());
        assert!(b.open("signing key k1", &sealed).is_err());
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert!(a.open("signing key k1", &flipped).is_err());
        assert!(a.open("signing key k1", &sealed[..10]).is_err());
        assert!(a.open("signing key k1", &[]).is_err());
    }

    #[test]
    fn keys_are_read_as_hex_or_base64_and_nothing_else() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        use base64::Engine;
        let bytes: Vec<u8> = decode_hex(hex).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        let ids: Vec<String> = [hex, &b64, &url, &format!("  {hex}\n")]
            .iter()
            .map(|t| sealer(t).id().to_owned())
            .collect();
        assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
        for bad in [
            "",
            "abc",
            &hex[..62],
            &format!("{hex}00"),
            "zz",
            "short key",
        ] {
            let err = Sealer::parse(&SecretString::from(bad)).map(|_| ());
            assert_eq!(err, Err(SealError::BadKey), "{bad:?}");
        }
        let generated = Sealer::generate_text().unwrap();
        assert!(Sealer::parse(&generated).is_ok());
        assert!(!format!("{:?}", sealer(hex)).contains("0011"));
    }
}
