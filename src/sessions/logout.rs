//! Logout: one session, or with `all_sessions` every session of the user.

use super::{Sessions, rules};
use crate::audit::{AuditEvent, AuditKind};
use crate::domain::{ClientInfo, SessionId, UserId};
use crate::error::AuthError;
use chrono::Utc;

impl Sessions {
    /// Ends the session of the refresh token, or with `all_sessions` every session of its user
    /// (which needs a token that is still current).
    #[tracing::instrument(skip_all)]
    pub async fn logout(
        &self,
        refresh_token: &str,
        all_sessions: bool,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let (token, session, _) = self.find_refresh(refresh_token, client).await?;
        let now = Utc::now();
        let user_id = UserId(session.user_id);
        if all_sessions {
            if !rules::is_current(&token, &session, now) {
                return Err(AuthError::InvalidRefreshToken);
            }
            let ended = self
                .store
                .revoke_user_sessions(user_id, self.ending(now))
                .await?;
            tracing::info!(user_id = %session.user_id, ended, "all sessions ended");
            self.audit(AuditEvent::new(AuditKind::LogoutAll, client).user(user_id));
        } else {
            self.store
                .revoke_session(SessionId(session.id), self.ending(now))
                .await?;
            self.audit(
                AuditEvent::new(AuditKind::Logout, client)
                    .user(user_id)
                    .session(SessionId(session.id)),
            );
        }
        Ok(())
    }
}
