//! The public keys of a JWK Set (RFC 7517), decoded once when the set is built, never per token.
//!
//! Only asymmetric signature keys are kept: a symmetric (`oct`) key in a published set would let
//! anyone who reads the set sign tokens, so it is skipped, and so are RSA keys too small or of an
//! exponent too weak to trust. Ed25519 (EdDSA) and P-256 (ES256) keys are decoded into their
//! curve point here, once; RSA and P-384 keys are kept as jsonwebtoken [`DecodingKey`]s, which
//! jsonwebtoken turns into its verifier for each token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr;

/// Ed25519 signatures and ES256 ones (`r || s`, 32 bytes each: RFC 7518 §3.4, never DER) are
/// 64 bytes: 86 base64url characters without padding.
const SIGNATURE_64_B64_LEN: usize = 86;
/// RSA moduli under this many bits are refused (NIST SP 800-131A; authd makes 2048-bit keys).
const RSA_MIN_BITS: usize = 2048;
/// The largest modulus and exponent jsonwebtoken's RSA verifier takes (the `rsa` crate's
/// `RsaPublicKey::new`): a key past them would be kept and then fail every token.
const RSA_MAX_BITS: usize = 4096;
const RSA_MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Why a JWK Set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The text is not JSON of a JWK Set's shape (`{"keys": [...]}`).
    #[error("the JWK Set is not a JSON object with a `keys` array (line {line}, column {column})")]
    Json {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
}

/// One usable public key: its algorithm and its decoded key material.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: Algorithm,
    decoding: DecodingKey,
    native: Native,
}

/// The key decoded once, for the algorithms whose verifier is called here directly.
#[derive(Clone, PartialEq)]
enum Native {
    /// EdDSA keys.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ES256 keys.
    P256(p256::ecdsa::VerifyingKey),
    /// RSA and ES384 keys: jsonwebtoken decodes them for each token.
    None,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The one algorithm this key verifies (the JWK's `alg`, or the only one its curve allows).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key as jsonwebtoken uses it.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether `signature` (base64url, as in the token) signs `message` (`header.payload`)
    /// under this key and its algorithm.
    pub(crate) fn verifies(&self, message: &[u8], signature: &str) -> bool {
        match &self.native {
            Native::Ed25519(key) => {
                let Some(bytes) = signature_64(signature) else {
                    return false;
                };
                // RFC 8032's check, as jsonwebtoken and most JWT libraries make it. dalek refuses
                // a non-canonical S (so a signature cannot be re-encoded), and weak keys never
                // get here (`ed25519_key` refuses them when the set is built), which leaves
                // `verify_strict` only its small-order-R refusal: a forger gains nothing from
                // that (R is hashed into the challenge), and it costs a fifth of a check.
                use ed25519_dalek::Verifier;
                let signature = ed25519_dalek::Signature::from_bytes(&bytes);
                key.verify(message, &signature).is_ok()
            }
            Native::P256(key) => {
                let Some(bytes) = signature_64(signature) else {
                    return false;
                };
                // `from_slice` refuses an r or s of zero or not below the group order. A high s
                // is accepted, as jsonwebtoken and other JWT libraries accept it: p256 signs
                // without normalising s, so half of authd's own tokens carry one. The (r, n - s)
                // twin of a token says nothing the token did not.
                let Ok(signature) = p256::ecdsa::Signature::from_slice(&bytes) else {
                    return false;
                };
                use p256::ecdsa::signature::Verifier;
                key.verify(message, &signature).is_ok()
            }
            Native::None => {
                jsonwebtoken::crypto::verify(signature, message, &self.decoding, self.algorithm)
                    .unwrap_or(false)
            }
        }
    }
}

/// The 64 bytes of an Ed25519 or ES256 signature, or `None` for any other length or bad
/// base64url.
fn signature_64(signature: &str) -> Option<[u8; 64]> {
    let mut bytes = [0u8; 64];
    // An exact length first: decode_slice would accept a shorter signature, and a DER-encoded
    // ECDSA signature (70 bytes or so) is refused here without being parsed.
    (signature.len() == SIGNATURE_64_B64_LEN
        && URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes) == Ok(bytes.len()))
    .then_some(bytes)
}

/// The keys of a JWK Set by `kid`.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, PublicKey>,
}

impl PublicKeys {
    /// The usable keys of `set`. Skipped (each with a warning naming its `kid`): keys without a
    /// `kid`, keys whose `use` is not `sig` or whose `key_ops` lack `verify`, symmetric keys,
    /// keys whose `alg` is unknown or does not fit the key, RSA keys without `alg`, RSA keys
    /// whose modulus is under 2048 bits (or over 4096) or whose exponent is even or 1, malformed
    /// keys (an Ed25519 or P-256 point not on its curve among them), and a second key with a
    /// `kid` already seen (the first one stays).
    pub fn from_jwk_set(set: &JwkSet) -> Self {
        let mut keys = HashMap::with_capacity(set.keys.len());
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.as_deref() else {
                tracing::warn!("JWK Set: a key without kid skipped");
                continue;
            };
            if keys.contains_key(kid) {
                tracing::warn!(kid, "JWK Set: a second key with this kid skipped");
                continue;
            }
            match usable(jwk) {
                Ok(key) => {
                    keys.insert(kid.to_owned(), key);
                }
                Err(why) => tracing::warn!(kid, why, "JWK Set: key skipped"),
            }
        }
        Self { keys }
    }

    /// Parses a JWK Set's JSON and keeps its usable keys (see [`Self::from_jwk_set`]).
    pub fn from_json(jwks_json: &str) -> Result<Self, KeysError> {
        let set: JwkSet = serde_json::from_str(jwks_json).map_err(|e| KeysError::Json {
            line: e.line(),
            column: e.column(),
        })?;
        Ok(Self::from_jwk_set(&set))
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// Whether a key has this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// The key of `jwk` when it can verify signatures, or why not (for the log).
fn usable(jwk: &Jwk) -> Result<PublicKey, &'static str> {
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("use is not sig"),
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("key_ops lacks verify");
    }
    let declared = match jwk.common.key_algorithm {
        Some(alg) => {
            Some(Algorithm::from_str(&alg.to_string()).map_err(|_| "alg is not a JWS algorithm")?)
        }
        None => None,
    };
    let algorithm = match (&jwk.algorithm, declared) {
        (AlgorithmParameters::OctetKey(_), _) => return Err("symmetric keys are never trusted"),
        (AlgorithmParameters::OctetKeyPair(okp), alg) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("OKP curve is not Ed25519");
            }
            alg.unwrap_or(Algorithm::EdDSA)
        }
        (AlgorithmParameters::EllipticCurve(ec), alg) => {
            let curve_alg = match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("EC curve not supported"),
            };
            alg.unwrap_or(curve_alg)
        }
        (AlgorithmParameters::RSA(_), Some(alg)) => alg,
        (AlgorithmParameters::RSA(_), None) => return Err("RSA key without alg"),
        (_, _) => return Err("key type not supported"),
    };
    let family = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        _ => AlgorithmFamily::Rsa,
    };
    if algorithm.family() != family {
        return Err("alg does not fit the key type");
    }
    if let (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256 | Algorithm::ES384) =
        (&jwk.algorithm, algorithm)
        && (ec.curve == EllipticCurve::P256) != (algorithm == Algorithm::ES256)
    {
        return Err("alg does not fit the curve");
    }
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "key material is not base64url")?;
    let native = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) => Native::Ed25519(ed25519_key(&okp.x)?),
        AlgorithmParameters::EllipticCurve(ec) if algorithm == Algorithm::ES256 => {
            Native::P256(p256_key(&ec.x, &ec.y)?)
        }
        AlgorithmParameters::RSA(rsa) => {
            rsa_key_fits(&rsa.n, &rsa.e)?;
            Native::None
        }
        _ => Native::None,
    };
    Ok(PublicKey {
        algorithm,
        decoding,
        native,
    })
}

/// An Ed25519 public key from a JWK's `x`, refusing points that are not on the curve and weak
/// (small-order) keys, for which any signature would be easy to forge.
fn ed25519_key(x: &str) -> Result<ed25519_dalek::VerifyingKey, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| "x is not base64url")?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "x is not 32 bytes")?;
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "x is not an Ed25519 point")?;
    if key.is_weak() {
        return Err("x is a weak Ed25519 key");
    }
    Ok(key)
}

/// A P-256 public key from a JWK's `x` and `y`, refusing coordinates that are not 32 bytes or
/// not a point on the curve.
fn p256_key(x: &str, y: &str) -> Result<p256::ecdsa::VerifyingKey, &'static str> {
    let coordinate = |c: &str| -> Result<[u8; 32], &'static str> {
        let bytes = URL_SAFE_NO_PAD
            .decode(c)
            .map_err(|_| "x or y is not base64url")?;
        bytes.try_into().map_err(|_| "x or y is not 32 bytes")
    };
    // The SEC1 uncompressed form: 0x04, x, y.
    let mut sec1 = [4u8; 65];
    sec1[1..33].copy_from_slice(&coordinate(x)?);
    sec1[33..].copy_from_slice(&coordinate(y)?);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "x, y is not a P-256 point")
}

/// Whether an RSA key's `n` and `e` are worth trusting: a modulus of 2048 bits or more (a
/// smaller one may be factored), and an odd exponent other than 1 (with e = 1 anyone can sign:
/// the signature is the padded hash itself; an even e has no inverse, so no real key has one),
/// both within what the verifier takes.
fn rsa_key_fits(n: &str, e: &str) -> Result<(), &'static str> {
    let n = URL_SAFE_NO_PAD
        .decode(n)
        .map_err(|_| "n is not base64url")?;
    let e = URL_SAFE_NO_PAD
        .decode(e)
        .map_err(|_| "e is not base64url")?;
    let n = strip_leading_zeros(&n);
    let bits = n
        .first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if bits < RSA_MIN_BITS {
        return Err("RSA modulus under 2048 bits");
    }
    if bits > RSA_MAX_BITS {
        return Err("RSA modulus over 4096 bits");
    }
    let e = strip_leading_zeros(&e);
    if e.last().is_none_or(|low| low % 2 == 0) || e == [1] {
        return Err("RSA exponent is even or 1");
    }
    let value = e.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(256).map(|acc| acc | u64::from(b))
    });
    if value.is_none_or(|e| e > RSA_MAX_EXPONENT) {
        return Err("RSA exponent over 2^33 - 1");
    }
    Ok(())
}

/// A big-endian number without its leading zero bytes.
fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
