//! Signing keys for access tokens, the server's half: key pairs as stored, the JWK Set that
//! publishes their public halves, and the key ring that the issuer signs with. Verifying is
//! `authd_verifier`'s (the same code other services run), fed from the published JWK Set.
//! Keys are parsed once, when the ring is built, never per request: tokens are signed with
//! ring's parsed key pairs, not with jsonwebtoken's `encode`, which parses the private key's DER
//! again for every token (and, for Ed25519, derives its public key, which costs as much as the
//! signature). When each key signs and how long it stays published is the key life cycle's
//! (`keys`).

mod pair;
mod parsed;
mod set;

pub use pair::{KeyPair, SigningAlg};
pub use set::{KeyRing, KeySet, ScheduledKey};

use std::time::Duration;

/// The longest verifiers may cache the JWK Set (the `Cache-Control` of the HTTP endpoint); a
/// shorter publish lead shortens it (see [`jwks_max_age`]).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// How long the HTTP JWK Set may be cached when new keys are published `lead` before they
/// sign: half the lead (at most [`JWKS_MAX_AGE`]), so a verifier that honours `Cache-Control`
/// has fetched a new key at least once before the key's first token.
pub fn jwks_max_age(lead: Duration) -> Duration {
    JWKS_MAX_AGE.min(lead / 2)
}
