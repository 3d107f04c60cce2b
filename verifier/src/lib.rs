//! authd-verifier: what a service that receives authd access tokens needs to check them. It
//! pulls in no database, password-hashing, mail or CLI code.
//!
//! Protect a tonic service in five lines (local mode: authd's public keys, checked here):
//!
//! ```no_run
//! # use tonic_health::pb::health_server::HealthServer as MyServer;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let (reporter, _) = tonic_health::server::health_reporter();
//! # let my_service = tonic_health::server::HealthService::from_health_reporter(reporter);
//! # let addr = "127.0.0.1:50061".parse()?;
//! use authd_verifier::{AuthLayer, Checks, JwksSource, LocalSettings, LocalVerifier};
//! use tonic::transport::Server;
//!
//! let verifier = LocalVerifier::start(LocalSettings::new(
//!     JwksSource::Http("http://127.0.0.1:8080/.well-known/jwks.json".into()),
//!     Checks::new("http://127.0.0.1:8080", vec!["authd".into()]),
//! ));
//! Server::builder()
//!     .layer(AuthLayer::new(verifier).allow_health_and_reflection())
//!     .add_service(MyServer::new(my_service))
//!     .serve(addr).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A handler then reads `request.extensions().get::<authd_verifier::Claims>()`.
//!
//! - [`AccessClaims`]: the token's claims as authd signs them; [`Claims`]: the typed form a
//!   protected handler reads from the request extensions.
//! - [`PublicKeys`]: the public keys of a JWK Set, decoded once.
//! - [`Checks`]: every check on one token (type, algorithm, key, signature, issuer, audience,
//!   lifetime), with no I/O.
//! - [`Refusal`]: why a token was refused.
//! - [`Verify`]: the question the layer asks; [`AuthLayer`]: the tower layer that asks it, for
//!   tonic servers and axum routers alike.
//! - [`LocalVerifier`]: local mode, keys from authd's JWK Set, checked here: no round trip, but
//!   a logged-out session's tokens pass until they expire, unless
//!   [`LocalSettings::with_revocations`] turns on revocation-aware local mode
//!   ([`RevocationSettings`]): authd pushes every ended session to the verifier, whose tokens
//!   are then refused within a second, still with no round trip per token.
//! - [`RemoteVerifier`]: remote mode, every token sent to authd's Introspect: a logout is seen
//!   at once, for a round trip per token (or per cache TTL).
//! - [`TokenMemo`]: a bounded memo of answers about tokens by their [`TokenDigest`], as remote
//!   mode's cache and authd's own memory of checked signatures use it.

#![deny(missing_docs)]

mod checks;
mod claims;
mod client;
#[cfg(test)]
mod fake_authd;
mod jwks;
mod keys;
mod layer;
mod local;
mod memo;
mod refusal;
mod remote;
mod revocation_settings;
mod revocation_stream;
mod revocations;
mod revoked_set;
#[cfg(test)]
mod test_support;
mod verify;

pub use checks::{Checks, MAX_TOKEN_LEN};
pub use claims::{ACCESS_TOKEN_TYP, AccessClaims, Audience, Claims};
pub use client::VerifierError;
pub use jwks::JwksSource;
pub use keys::{KeysError, PublicKey, PublicKeys};
pub use layer::{AuthLayer, RequireAuth, bearer_value};
pub use local::{LocalSettings, LocalVerifier};
pub use memo::{TokenDigest, TokenMemo};
pub use refusal::Refusal;
pub use remote::{CACHE_CAPACITY, RemoteSettings, RemoteVerifier};
pub use revocation_settings::{DEFAULT_MAX_DISCONNECTED, RevocationSettings, WhenDisconnected};
pub use verify::{BoxFuture, Verify};
