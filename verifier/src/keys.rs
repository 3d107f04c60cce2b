//! The public keys of a JWK Set (RFC 7517), decoded once when the set is built, never per token.
//!
//! Only asymmetric signature keys are kept: a symmetric (`oct`) key in a published set would let
//! anyone who reads the set sign tokens, so it is skipped. Ed25519 keys (what authd signs with)
//! are decoded into their curve point here; keys of other algorithms are kept as jsonwebtoken
//! [`DecodingKey`]s, which jsonwebtoken turns into its verifier for each token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr;

/// Ed25519 signatures are 64 bytes: 86 base64url characters without padding.
const ED25519_SIGNATURE_B64_LEN: usize = 86;

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
    /// The decoded curve point, for EdDSA keys.
    ed25519: Option<ed25519_dalek::VerifyingKey>,
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
        match &self.ed25519 {
            Some(key) => {
                let mut bytes = [0u8; 64];
                // An exact length first: decode_slice would accept a shorter signature.
                if signature.len() != ED25519_SIGNATURE_B64_LEN
                    || URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes) != Ok(bytes.len())
                {
                    return false;
                }
                // RFC 8032's check, as jsonwebtoken and most JWT libraries make it. dalek refuses
                // a non-canonical S (so a signature cannot be re-encoded), and weak keys never
                // get here (`ed25519_key` refuses them when the set is built), which leaves
                // `verify_strict` only its small-order-R refusal: a forger gains nothing from
                // that (R is hashed into the challenge), and it costs a fifth of a check.
                use ed25519_dalek::Verifier;
                let signature = ed25519_dalek::Signature::from_bytes(&bytes);
                key.verify(message, &signature).is_ok()
            }
            None => {
                jsonwebtoken::crypto::verify(signature, message, &self.decoding, self.algorithm)
                    .unwrap_or(false)
            }
        }
    }
}

/// The keys of a JWK Set by `kid`.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, PublicKey>,
}

impl PublicKeys {
    /// The usable keys of `set`. Skipped (each with a warning naming its `kid`): keys without a
    /// `kid`, keys whose `use` is not `sig` or whose `key_ops` lack `verify`, symmetric keys,
    /// keys whose `alg` is unknown or does not fit the key, RSA keys without `alg`, malformed
    /// keys, and a second key with a `kid` already seen (the first one stays).
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
    let ed25519 = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) => Some(ed25519_key(&okp.x)?),
        _ => None,
    };
    Ok(PublicKey {
        algorithm,
        decoding,
        ed25519,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn okp(kid: &str, x: &str, extra: &str) -> String {
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"{kid}"{extra}}}"#)
    }

    fn x_of(seed: u8) -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_skipped() -> Result<(), KeysError> {
        let x = x_of(1);
        let weak = URL_SAFE_NO_PAD.encode([0u8; 32]); // the identity point: small order
        let keys = [
            okp("good", &x, r#","use":"sig","alg":"EdDSA""#),
            okp("no-alg", &x, ""),
            okp("ops", &x, r#","key_ops":["verify"]"#),
            okp("enc", &x, r#","use":"enc""#),
            okp("sign-only", &x, r#","key_ops":["sign"]"#),
            okp("wrong-alg", &x, r#","alg":"RS256""#),
            okp("hmac-alg", &x, r#","alg":"HS256""#),
            okp("weak", &weak, ""),
            okp("short", "AAAA", ""),
            okp("not-b64", "!!!", ""),
            r#"{"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"ed448"}"#.to_owned(),
            r#"{"kty":"oct","k":"c2VjcmV0","kid":"oct","alg":"HS256"}"#.to_owned(),
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa-no-alg"}"#.to_owned(),
            r#"{"kty":"weird","kid":"weird"}"#.to_owned(),
            okp("", &x, "").replace(r#","kid":"""#, ""),
            okp("good", &x_of(2), ""),
        ];
        let json = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        let set = PublicKeys::from_json(&json)?;
        let mut kids: Vec<&str> = set.kids().collect();
        kids.sort_unstable();
        assert_eq!(kids, ["good", "no-alg", "ops"]);
        let good = set.get("good").map(PublicKey::algorithm);
        assert_eq!(good, Some(Algorithm::EdDSA));
        // The first key under a repeated kid stays.
        let first = ed25519_key(&x).ok();
        assert_eq!(set.get("good").and_then(|k| k.ed25519), first);
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty() && set.contains("ops") && !set.contains("oct"));
        Ok(())
    }

    #[test]
    fn ec_keys_take_their_curve_algorithm() -> Result<(), KeysError> {
        let p256 = r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"p256"}"#;
        let mismatch =
            r#"{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","kid":"m","alg":"ES256"}"#;
        let set = PublicKeys::from_json(&format!(r#"{{"keys":[{p256},{mismatch}]}}"#))?;
        assert_eq!(
            set.get("p256").map(PublicKey::algorithm),
            Some(Algorithm::ES256)
        );
        assert!(!set.contains("m"));
        Ok(())
    }

    #[test]
    fn malformed_sets_are_errors_that_echo_nothing() {
        for json in ["", "[]", r#"{"keys":{}}"#, r#"{"keys":[1]}"#, "secret-ish"] {
            let err = PublicKeys::from_json(json).map(|k| k.len());
            assert!(
                matches!(err, Err(KeysError::Json { .. })),
                "{json}: {err:?}"
            );
            if let Err(err) = err {
                assert!(!err.to_string().contains("secret"), "{err}");
            }
        }
        assert_eq!(
            PublicKeys::from_json(r#"{"keys":[]}"#).map(|k| k.len()),
            Ok(0)
        );
    }

    #[test]
    fn debug_shows_no_key_material() -> Result<(), KeysError> {
        let x = x_of(3);
        let set = PublicKeys::from_json(&format!(r#"{{"keys":[{}]}}"#, okp("k", &x, "")))?;
        assert!(!format!("{set:?}").contains(&x));
        Ok(())
    }
}
