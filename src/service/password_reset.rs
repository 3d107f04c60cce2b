//! Forgotten passwords: the reset mail and the reset itself.

use super::{AuthError, AuthService};
use crate::domain::{Email, Password, UserId, Violations};
use crate::store::Purpose;
use chrono::Utc;

impl AuthService {
    /// Sends a reset mail if the account exists; the answer is the same either way. Earlier
    /// reset links of the user stop working.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AuthError> {
        let email = Email::parse("email", email).map_err(|v| vec![v])?;
        self.count_mail_request(&email)?;
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        self.mail_one_time_link(&user, Purpose::ResetPassword, true)
            .await?;
        tracing::info!(user_id = %user.id, "password reset requested");
        Ok(())
    }

    /// Sets the new password, spends the token and ends every session of the user, together.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), AuthError> {
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
            .live_one_time_token("token", token, Purpose::ResetPassword)
            .await?;
        // The email is known only now, through the token.
        if let Some(user) = self.store.user_by_id(UserId(record.user_id)).await? {
            password
                .check_not_email("new_password", &user.email)
                .map_err(|v| vec![v])?;
        }
        let hash = self.hasher.hash(&password).await?;
        if !self.store.reset_password(&record, hash, Utc::now()).await? {
            return Err(AuthError::InvalidOneTimeToken { field: "token" });
        }
        tracing::info!(user_id = %record.user_id, "password reset; all sessions ended");
        Ok(())
    }
}
