//! Signup and email verification.

use super::{AuthError, AuthService, UserView};
use crate::crypto::token::TokenDigest;
use crate::domain::{DisplayName, Email, FieldViolation, Password, UserId, Violations};
use crate::store::{NewUser, Purpose, StoreError};
use chrono::Utc;

impl AuthService {
    /// Creates an unverified user and queues the verification mail, in one transaction.
    #[tracing::instrument(skip_all)]
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<UserView, AuthError> {
        let mut v = Violations::default();
        let email = v.check(Email::parse("email", email));
        let password = v.check(Password::parse_new(
            "password",
            password,
            &self.policy.password,
            email.as_ref(),
        ));
        let name = v.check(DisplayName::parse("name", name));
        let (email, password, name) =
            v.finish(email.zip(password).zip(name).map(|((e, p), n)| (e, p, n)))?;

        // Answer a taken email before paying for a hash; the unique index settles races.
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.hasher.hash(&password).await?;
        let now = Utc::now();
        let (verification, mail) = self.one_time_link(email.as_str(), Purpose::VerifyEmail, now)?;
        let new_user = NewUser {
            id: UserId::new(),
            email: &email,
            name: &name,
            password_hash,
            now,
        };
        let user = match self.store.create_user(new_user, verification, &mail).await {
            Ok(user) => user,
            Err(StoreError::Conflict(_)) => return Err(AuthError::EmailTaken),
            Err(err) => return Err(err.into()),
        };
        self.outbox_wake.notify_one();
        tracing::info!(user_id = %user.id, "user signed up");
        Ok(user.into())
    }

    /// Spends a verification token and marks the email verified.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(&self, token: &str) -> Result<UserView, AuthError> {
        let record = self
            .live_one_time_token("token", token, Purpose::VerifyEmail)
            .await?;
        let user = self
            .store
            .verify_email(&record, Utc::now())
            .await?
            .ok_or(AuthError::InvalidOneTimeToken { field: "token" })?;
        tracing::info!(user_id = %user.id, "email verified");
        Ok(user.into())
    }

    /// Sends a fresh verification mail if the account exists and is unverified. The answer is the
    /// same whether or not it does, so nobody learns which addresses have accounts.
    #[tracing::instrument(skip_all)]
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        let email = Email::parse("email", email).map_err(|v| vec![v])?;
        self.count_mail_request(&email)?;
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        if user.email_verified {
            return Ok(());
        }
        self.mail_one_time_link(&user, Purpose::VerifyEmail, false)
            .await
    }

    /// Counts a mail request against the address; refuses when it has asked too often.
    pub(super) fn count_mail_request(&self, email: &Email) -> Result<(), AuthError> {
        self.mail_limiter
            .attempt(email.as_str())
            .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        Ok(())
    }

    /// The unspent, unexpired one-time token of `purpose` that `raw` is, or why not.
    pub(super) async fn live_one_time_token(
        &self,
        field: &'static str,
        raw: &str,
        purpose: Purpose,
    ) -> Result<crate::store::OneTimeTokenRecord, AuthError> {
        required_token(field, raw).map_err(|v| vec![v])?;
        let invalid = || AuthError::InvalidOneTimeToken { field };
        let digest = TokenDigest::of_presented(raw.trim()).ok_or_else(invalid)?;
        let record = self
            .store
            .one_time_token(&digest, purpose)
            .await?
            .ok_or_else(invalid)?;
        if record.spent_at.is_some() || record.expires_at <= Utc::now() {
            return Err(invalid());
        }
        Ok(record)
    }
}

/// A one-time token field must not be empty; what it holds is checked against the store.
pub(super) fn required_token(field: &'static str, raw: &str) -> Result<(), FieldViolation> {
    if raw.trim().is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    Ok(())
}
