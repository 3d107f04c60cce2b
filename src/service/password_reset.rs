//! Forgotten passwords: the reset mail and the reset itself.

use super::{AuditEvent, AuditKind, AuthError, AuthService, ClientInfo};
use crate::domain::{Email, Password, UserId, Violations};
use crate::store::Purpose;
use chrono::Utc;
use std::sync::Arc;

impl AuthService {
    /// Sends a reset mail if the account exists; the answer is the same either way, and so is
    /// its timing: the lookup and the mail happen after the answer. Earlier reset links of the
    /// user stop working.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        self: &Arc<Self>,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let email = Email::parse("email", email).map_err(|v| vec![v])?;
        self.count_mail_request(&email, client).await?;
        let service = Arc::clone(self);
        let client = client.clone();
        self.in_background("password reset request", async move {
            let Some(user) = service.store.user_by_email(&email).await? else {
                return Ok(());
            };
            service
                .mail_one_time_link(&user, Purpose::ResetPassword, true)
                .await?;
            service.audit(
                AuditEvent::new(AuditKind::PasswordResetRequested, &client).user(UserId(user.id)),
            );
            Ok(())
        })
        .await;
        Ok(())
    }

    /// Sets the new password, spends the token, ends every session of the user and queues a
    /// mail telling them, together. The account's failed logins are forgotten.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let mut v = Violations::default();
        let password = v.check(Password::parse_new(
            "new_password",
            new_password,
            &self.policy.password,
            None,
        ));
        v.check(super::signup::required_token("token", token));
        let password = v.finish(password)?;
        let record = self
            .live_one_time_token("token", token, Purpose::ResetPassword, client)
            .await?;
        let user = self
            .store
            .user_by_id(UserId(record.user_id))
            .await?
            .ok_or(AuthError::InvalidOneTimeToken { field: "token" })?;
        // The email is known only now, through the token.
        password
            .check_not_email("new_password", &user.email)
            .map_err(|v| vec![v])?;
        let hash = self.hasher.hash(&password).await?;
        let notice = self.mails.password_changed(&user.email);
        if !self
            .store
            .reset_password(&record, hash, &notice, self.ending(Utc::now()))
            .await?
        {
            return Err(AuthError::InvalidOneTimeToken { field: "token" });
        }
        self.throttle.clear_account(&user.email).await?;
        self.audit(AuditEvent::new(AuditKind::PasswordReset, client).user(UserId(user.id)));
        Ok(())
    }
}
