//! The signed-in user's password: changing it, and checking it where a call needs proof of it.

use super::Accounts;
use crate::accounts::queries::{PasswordChange, PasswordChanged};
use crate::audit::{AuditEvent, AuditKind};
use crate::crypto::password::StoredHash;
use crate::db::UserRecord;
use crate::domain::{Caller, ClientInfo, Email, Password, UserId, Violations};
use crate::error::AuthError;
use chrono::Utc;

impl Accounts {
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
                        .verify(
                            &current,
                            Some(StoredHash {
                                user_id: caller.user_id,
                                hash: &now_stored,
                            }),
                            &Default::default(),
                        )
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
            .verify(
                password,
                Some(StoredHash {
                    user_id: UserId(user.id),
                    hash: &user.password_hash,
                }),
                attempt.started(),
            )
            .await?;
        if verified.matches {
            attempt.succeeded().await?;
        } else {
            attempt.failed();
        }
        Ok(verified.matches)
    }
}
