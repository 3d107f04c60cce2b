//! The signed-in user's own account: profile and sessions (AccountService). The
//! caller is already authenticated (an access token of a live session, checked by the verifier
//! layer); every use case acts on that caller's rows only.

use super::Accounts;
use crate::audit::{AuditEvent, AuditKind};
use crate::db::{SessionRecord, UserRecord};
use crate::domain::{
    Caller, ClientInfo, DisplayName, FieldViolation, SessionId, SessionView, UserView,
};
use crate::error::AuthError;
use chrono::Utc;

impl Accounts {
    /// The caller's account.
    #[tracing::instrument(skip_all)]
    pub async fn profile(&self, caller: Caller) -> Result<UserView, AuthError> {
        Ok(self.caller_record(caller).await?.into())
    }

    /// Sets the caller's display name, checked as at signup.
    #[tracing::instrument(skip_all)]
    pub async fn update_profile(
        &self,
        caller: Caller,
        name: &str,
        client: &ClientInfo,
    ) -> Result<UserView, AuthError> {
        let name = DisplayName::parse("name", name).map_err(|v| vec![v])?;
        let user = self
            .store
            .update_user_name(caller.user_id, &name, Utc::now())
            .await?
            .ok_or(AuthError::InvalidAccessToken)?;
        self.audit(
            AuditEvent::new(AuditKind::ProfileUpdated, client)
                .user(caller.user_id)
                .session(caller.session_id),
        );
        Ok(user.into())
    }

    /// The caller's live sessions, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn sessions(&self, caller: Caller) -> Result<Vec<SessionView>, AuthError> {
        let sessions = self.store.live_sessions(caller.user_id, Utc::now()).await?;
        Ok(sessions
            .into_iter()
            .map(|s| session_view(s, caller.session_id))
            .collect())
    }

    /// Ends one of the caller's sessions, the calling one included. Another user's session, an
    /// unknown one and an ended one all give the same `SessionNotFound`.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_session(
        &self,
        caller: Caller,
        session_id: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let id = parse_session_id("session_id", session_id).map_err(|v| vec![v])?;
        if !self
            .store
            .revoke_own_session(caller.user_id, id, self.ending(Utc::now()))
            .await?
        {
            return Err(AuthError::SessionNotFound);
        }
        self.audit(
            AuditEvent::new(AuditKind::SessionRevoked, client)
                .user(caller.user_id)
                .session(id),
        );
        Ok(())
    }

    /// The caller's user row. A token whose user is gone (it was verified a moment ago) is
    /// refused like any token that is no longer good.
    pub(super) async fn caller_record(&self, caller: Caller) -> Result<UserRecord, AuthError> {
        self.store
            .user_by_id(caller.user_id)
            .await?
            .ok_or(AuthError::InvalidAccessToken)
    }
}

fn session_view(s: SessionRecord, current: SessionId) -> SessionView {
    SessionView {
        id: SessionId(s.id),
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        expires_at: s.expires_at,
        user_agent: s.user_agent,
        ip: s.ip,
        current: s.id == current.0,
    }
}

/// A session id as ListSessions gives it: a UUID.
fn parse_session_id(field: &'static str, raw: &str) -> Result<SessionId, FieldViolation> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    SessionId::parse(raw).ok_or_else(|| FieldViolation::new(field, "is not a session id"))
}
