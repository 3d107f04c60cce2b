//! Who may call AccountService: the verifier crate's layer, in remote mode against authd's own
//! store. Instead of calling Introspect over the network, [`SessionTokens`] asks the same use
//! case in-process, so a token is accepted exactly when Introspect would call it active: a
//! logged-out, revoked or expired session's token is refused at once.

use crate::error::AuthError;
use crate::sessions::{Introspection, Sessions};
use authd_verifier::{AuthLayer, BoxFuture, Claims, Refusal, Verify};
use std::sync::Arc;

/// Checks bearer tokens with [`Sessions::introspect`].
pub struct SessionTokens {
    sessions: Arc<Sessions>,
}

impl SessionTokens {
    pub fn new(sessions: Arc<Sessions>) -> Self {
        Self { sessions }
    }

    /// The layer that guards AccountService with these checks.
    pub fn into_layer(self) -> AuthLayer {
        AuthLayer::new(self)
    }
}

impl Verify for SessionTokens {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, Refusal>> {
        Box::pin(async move {
            match self.sessions.introspect(token).await {
                Ok(Introspection::Active(claims)) => Claims::try_from(claims),
                Ok(Introspection::Inactive) => Err(Refusal::Inactive),
                // The token may be good: the caller can retry (UNAVAILABLE), and the cause goes
                // to the log, never to the caller.
                Err(AuthError::Unavailable(cause)) => {
                    tracing::warn!(error = %cause, "cannot check an access token: database unavailable");
                    Err(Refusal::Unavailable)
                }
                Err(err) => {
                    tracing::error!(error = ?err, "cannot check an access token");
                    Err(Refusal::Unavailable)
                }
            }
        })
    }
}
