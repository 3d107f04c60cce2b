//! The signed-in user's own account: profile, password and sessions (AccountService). The
//! caller is already authenticated (an access token of a live session, checked by the verifier
//! layer); every use case acts on that caller's rows only.

use super::{AuditEvent, AuditKind, AuthError, AuthService, ClientInfo, UserView};
use crate::domain::{Caller, SessionView};
use crate::domain::{DisplayName, Email, FieldViolation, Password, SessionId, Violations};
use crate::store::{PasswordChange, PasswordChanged, SessionRecord, UserRecord};
use chrono::Utc;

impl AuthService {
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

    /// Replaces the caller's password after checking the current one, ends every other session
    /// of the user and mails them a notice; the calling session stays signed in.
    ///
    /// A wrong current password counts in the login throttle of the account, so that a stolen
    /// access token cannot be used to guess the password faster than a login could.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        caller: Caller,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let mut v = Violations::default();
        let current = v.check(Password::parse_attempt(
            "current_password",
            current_password,
        ));
        let new = v.check(Password::parse_new(
            "new_password",
            new_password,
            &self.policy.password,
            None,
        ));
        let user = self.caller_record(caller).await?;
        if let Some(new) = &new {
            v.check(new.check_not_email("new_password", &user.email));
        }
        let (current, new) = v.finish(current.zip(new))?;

        if !self
            .check_current_password(&user, &current, client, "change password")
            .await?
        {
            self.audit(
                AuditEvent::new(AuditKind::PasswordChangeFailed, client)
                    .user(caller.user_id)
                    .session(caller.session_id)
                    .detail("wrong current password"),
            );
            return Err(AuthError::WrongCurrentPassword);
        }

        let new_hash = self.hasher.hash(&new).await?;
        let notice = self.mails.password_changed_elsewhere(&user.email);
        let mut verified_hash = user.password_hash;
        // Two rounds at most: the first may find the hash replaced by a stronger one of the
        // same password (an upgrade at a concurrent login); then the current password is checked
        // once more against what is stored now, as a login does.
        for round in 0..2 {
            let change = PasswordChange {
                user_id: caller.user_id,
                keep: caller.session_id,
                verified_hash: &verified_hash,
                new_hash: new_hash.clone(),
                notice: &notice,
                ending: self.ending(Utc::now()),
            };
            match self.store.change_password(change).await? {
                PasswordChanged::Changed { ended } => {
                    tracing::info!(user_id = %caller.user_id, ended, "password changed; other sessions ended");
                    self.audit(
                        AuditEvent::new(AuditKind::PasswordChanged, client)
                            .user(caller.user_id)
                            .session(caller.session_id),
                    );
                    return Ok(());
                }
                PasswordChanged::SessionEnded => return Err(AuthError::InvalidAccessToken),
                PasswordChanged::HashChanged if round == 0 => {
                    let now_stored = self.caller_record(caller).await?.password_hash;
                    let still = self
                        .hasher
                        .verify(&current, Some(&now_stored), &Default::default())
                        .await?
                        .matches;
                    if !still {
                        break;
                    }
                    verified_hash = now_stored;
                }
                PasswordChanged::HashChanged => break,
            }
        }
        // Another change or a reset came first: the password given as current is not the
        // current one any more.
        Err(AuthError::WrongCurrentPassword)
    }

    /// Whether `password` is the user's current one. Counted in the login throttle of the
    /// account, so that a stolen access token cannot be used to guess the password faster than
    /// a login could; `what` names the call in the audit trail when it is throttled.
    pub(super) async fn check_current_password(
        &self,
        user: &UserRecord,
        password: &Password,
        client: &ClientInfo,
        what: &'static str,
    ) -> Result<bool, AuthError> {
        let email = Email::parse("email", &user.email)
            .map_err(|_| anyhow::anyhow!("the stored email of user {} does not parse", user.id))?;
        let attempt = match self.throttle.begin_login(&email, &client.ip).await {
            Ok(attempt) => attempt,
            Err(err) => {
                if matches!(err, AuthError::RateLimited { .. }) {
                    self.audit(AuditEvent::new(AuditKind::Throttled, client).detail(what));
                }
                return Err(err);
            }
        };
        let verified = self
            .hasher
            .verify(password, Some(&user.password_hash), attempt.started())
            .await?;
        if verified.matches {
            attempt.succeeded().await?;
        } else {
            attempt.failed();
        }
        Ok(verified.matches)
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
