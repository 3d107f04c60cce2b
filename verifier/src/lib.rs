//! authd-verifier: what a service that receives authd access tokens needs to check them.
//!
//! - [`AccessClaims`]: the token's claims as authd signs them; [`Claims`]: the typed form a
//!   protected handler reads from the request extensions.
//! - [`PublicKeys`]: the public keys of a JWK Set, decoded once.
//! - [`Checks`]: every check on one token (type, algorithm, key, signature, issuer, audience,
//!   lifetime), with no I/O.
//! - [`Refusal`]: why a token was refused.
//! - [`Verify`]: the question the layer asks; [`AuthLayer`]: the tower layer that asks it.
//! - [`LocalVerifier`]: local mode, keys from authd's JWK Set, checked here.
//! - [`RemoteVerifier`]: remote mode, every token sent to authd's Introspect.

#![deny(missing_docs)]

mod checks;
mod claims;
mod client;
mod jwks;
mod keys;
mod layer;
mod local;
mod refusal;
mod remote;
#[cfg(test)]
mod test_support;
mod verify;

pub use checks::{Checks, MAX_TOKEN_LEN};
pub use claims::{ACCESS_TOKEN_TYP, AccessClaims, Audience, Claims};
pub use client::VerifierError;
pub use jwks::JwksSource;
pub use keys::{KeysError, PublicKey, PublicKeys};
pub use layer::{AuthLayer, RequireAuth};
pub use local::{LocalSettings, LocalVerifier};
pub use refusal::Refusal;
pub use remote::{CACHE_CAPACITY, RemoteSettings, RemoteVerifier};
pub use verify::{BoxFuture, Verify};
