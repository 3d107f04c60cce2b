//! Refresh: a refresh token spent for the next one, under the reuse policy of `rules::decide`.

use super::rules::{self, Decision};
use super::start::Grant;
use super::{Sessions, used_from};
use crate::audit::{AuditEvent, AuditKind};
use crate::crypto::token::IssuedToken;
use crate::db::{RefreshTokenRecord, SessionRecord, UserRecord};
use crate::domain::{AuthMethods, ClientInfo, SessionId, TokenPair, UserId};
use crate::error::AuthError;
use crate::sessions::queries::Rotation;
use chrono::Utc;

impl Sessions {
    /// Spends a refresh token and returns a new pair for the same session. Presenting a spent
    /// token again is taken as theft and ends the session (RFC 9700 §4.14.2), unless it happens
    /// within the configured reuse grace.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let (token, session, user) = self.find_refresh(refresh_token, client).await?;
        let now = Utc::now();
        // Past its absolute lifetime a session ends, however recently it was refreshed.
        let expires_at = self.expiry(session.created_at, now);
        let grace = self.policy.refresh_reuse_grace;
        let new = IssuedToken::generate()?;
        let session_id = SessionId(session.id);

        let mut decision = rules::decide(&token, &session, token.spent_at, now, expires_at, grace);
        let rotated = loop {
            let rotation = match decision {
                Decision::Refuse => return Err(AuthError::InvalidRefreshToken),
                Decision::Rotate => {
                    self.store
                        .rotate_refresh(&token, &new.digest, now, expires_at, used_from(client))
                        .await?
                }
                Decision::Grace => {
                    self.store
                        .add_refresh(session_id, &new.digest, now, expires_at, used_from(client))
                        .await?
                }
                Decision::EndSession => {
                    self.end_reused(&session, client).await?;
                    return Err(AuthError::InvalidRefreshToken);
                }
            };
            match rotation {
                Rotation::Rotated => break true,
                Rotation::SessionEnded => break false,
                // Lost a race to a concurrent refresh with the same token: that is reuse as
                // well, spent just now.
                Rotation::AlreadySpent if decision == Decision::Rotate => {
                    decision = rules::decide(&token, &session, Some(now), now, expires_at, grace);
                }
                Rotation::AlreadySpent => break false,
            }
        };
        if !rotated {
            return Err(AuthError::InvalidRefreshToken);
        }
        self.audit(
            AuditEvent::new(AuditKind::Refreshed, client)
                .user(UserId(session.user_id))
                .session(session_id),
        );
        let client_id = self.session_client_id(&session);
        let grant = Grant {
            session_id,
            client_id: &client_id,
            methods: AuthMethods::from_stored(session.amr.as_deref()),
        };
        self.token_pair(user, &grant, new.secret, now, expires_at)
    }

    /// The refresh token `raw`, its session and its user. A client that keeps presenting
    /// unknown tokens is throttled.
    pub(super) async fn find_refresh(
        &self,
        raw: &str,
        client: &ClientInfo,
    ) -> Result<(RefreshTokenRecord, SessionRecord, UserRecord), AuthError> {
        self.throttle
            .find_presented(&client.ip, raw, |digest| async move {
                self.store.refresh_token(&digest).await
            })
            .await?
            .map(|(_, found)| found)
            .ok_or(AuthError::InvalidRefreshToken)
    }

    /// A spent token presented after the grace: the session ends.
    async fn end_reused(
        &self,
        session: &SessionRecord,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        tracing::warn!(user_id = %session.user_id, session_id = %session.id, "spent refresh token reused: session ended");
        self.audit(
            AuditEvent::new(AuditKind::RefreshReuse, client)
                .user(UserId(session.user_id))
                .session(SessionId(session.id)),
        );
        self.store
            .revoke_session(SessionId(session.id), self.ending(Utc::now()))
            .await?;
        Ok(())
    }
}
