//! The one question the layer asks: is this token good, and whose is it? Local mode
//! ([`crate::LocalVerifier`]), remote mode ([`crate::RemoteVerifier`]) and authd's own
//! in-process check answer it.

use crate::{Claims, Refusal};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future (what [`Verify::verify`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Checks a bearer token and says whose it is.
pub trait Verify: Send + Sync + 'static {
    /// The claims of `token` (the text after `Bearer `), or why it is refused. Implementations
    /// never log the token.
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, Refusal>>;
}

impl<V: Verify + ?Sized> Verify for Arc<V> {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, Refusal>> {
        (**self).verify(token)
    }
}
