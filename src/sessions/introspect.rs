//! Token introspection (RFC 7662): is this a current access token of a live session?

use super::{Sessions, rules};
use crate::domain::SessionId;
use crate::error::AuthError;
use authd_verifier::AccessClaims;
use chrono::Utc;

/// The claims of an active token, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per call, moved straight into the answer: a box would only add an allocation"
)]
pub enum Introspection {
    Active(AccessClaims),
    Inactive,
}

impl Sessions {
    /// Checks the signature, `typ`, issuer, audience and expiry, then that the session is still
    /// live, so a logout takes effect at once. Only a database outage is an error.
    #[tracing::instrument(skip_all)]
    pub async fn introspect(&self, token: &str) -> Result<Introspection, AuthError> {
        let Some(claims) = self.tokens.verify(token.trim()) else {
            return Ok(Introspection::Inactive);
        };
        let Some(session_id) = SessionId::parse(&claims.sid) else {
            return Ok(Introspection::Inactive);
        };
        let session = self.store.session(session_id).await?;
        Ok(match session {
            Some(s) if rules::is_live(&s, Utc::now()) && s.user_id.to_string() == claims.sub => {
                // A token issued before the claim existed names its session's client.
                let client_id = match claims.client_id {
                    Some(client_id) => client_id,
                    None => self.session_client_id(&s).to_string(),
                };
                Introspection::Active(AccessClaims {
                    client_id: Some(client_id),
                    ..claims
                })
            }
            _ => Introspection::Inactive,
        })
    }
}
