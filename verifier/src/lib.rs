//! authd-verifier: what a service that receives authd access tokens needs to check them.
//!
//! - [`AccessClaims`]: the token's claims as authd signs them; [`Claims`]: the typed form a
//!   protected handler reads from the request extensions.
//! - [`PublicKeys`]: the public keys of a JWK Set, decoded once.
//! - [`Checks`]: every check on one token (type, algorithm, key, signature, issuer, audience,
//!   lifetime), with no I/O.
//! - [`Refusal`]: why a token was refused.
//! - [`Verify`]: the question the layer asks; [`AuthLayer`]: the tower layer that asks it.

#![deny(missing_docs)]

mod checks;
mod claims;
mod keys;
mod layer;
mod refusal;
#[cfg(test)]
mod test_support;
mod verify;

pub use checks::{Checks, MAX_TOKEN_LEN};
pub use claims::{ACCESS_TOKEN_TYP, AccessClaims, Audience, Claims};
pub use keys::{KeysError, PublicKey, PublicKeys};
pub use layer::{AuthLayer, RequireAuth};
pub use refusal::Refusal;
pub use verify::{BoxFuture, Verify};
