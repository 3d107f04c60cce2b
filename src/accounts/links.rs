//! Mailed one-time links: the verification link (sent at signup, again on request, redeemed by
//! VerifyEmail) and the password-reset link (requested, redeemed by ResetPassword).

use super::Accounts;
use super::queries::{NewOneTimeToken, Purpose};
use crate::audit::{AuditEvent, AuditKind};
use crate::crypto::token::IssuedToken;
use crate::db::{OneTimeTokenRecord, UserRecord};
use crate::domain::{
    ClientInfo, Email, FieldViolation, Password, UserId, UserView, Violations, after,
};
use crate::error::AuthError;
use crate::mail::queries::Mail;
use chrono::{DateTime, Utc};
use std::sync::Arc;

impl Accounts {
    /// Spends a verification token and marks the email verified.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<UserView, AuthError> {
        let record = self
            .live_one_time_token("token", token, Purpose::VerifyEmail, client)
            .await?;
        let user = self
            .store
            .verify_email(&record, Utc::now())
            .await?
            .ok_or(AuthError::InvalidOneTimeToken { field: "token" })?;
        self.audit(AuditEvent::new(AuditKind::EmailVerified, client).user(UserId(user.id)));
        Ok(user.into())
    }

    /// Sends a fresh verification mail if the account exists and is unverified. The answer is the
    /// same whether or not it does, and so is its timing: the lookup and the mail happen after
    /// the answer.
    #[tracing::instrument(skip_all)]
    pub async fn resend_verification(
        self: &Arc<Self>,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.mail_link_after_answer(email, client, Purpose::VerifyEmail)
            .await
    }

    /// Counts a mail request against the address and the client; refuses when either has asked
    /// too often.
    pub(super) async fn count_mail_request(
        &self,
        email: &Email,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let counted = self.throttle.mail_request(email, &client.ip).await;
        if let Err(AuthError::RateLimited { .. }) = &counted {
            self.audit(AuditEvent::new(AuditKind::Throttled, client).detail("mail request"));
        }
        counted
    }

    /// The unspent, unexpired one-time token of `purpose` that `raw` is, or why not. A client
    /// that keeps presenting unusable tokens is throttled.
    pub(super) async fn live_one_time_token(
        &self,
        field: &'static str,
        raw: &str,
        purpose: Purpose,
        client: &ClientInfo,
    ) -> Result<OneTimeTokenRecord, AuthError> {
        required_token(field, raw).map_err(|v| vec![v])?;
        let now = Utc::now();
        self.throttle
            .find_presented(&client.ip, raw, |digest| async move {
                let record = self.store.one_time_token(&digest, purpose).await?;
                Ok(record.filter(|r| r.spent_at.is_none() && r.expires_at > now))
            })
            .await?
            .map(|(_, record)| record)
            .ok_or(AuthError::InvalidOneTimeToken { field })
    }

    /// Sends a reset mail if the account exists; the answer is the same either way, and so is
    /// its timing: the lookup and the mail happen after the answer. Earlier reset links of the
    /// user stop working.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        self: &Arc<Self>,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.mail_link_after_answer(email, client, Purpose::ResetPassword)
            .await
    }

    /// Counts a mail request for `email`, then, after the caller has been answered, looks the
    /// account up and mails it a fresh link of `purpose`: a verification link only while the
    /// email is unverified (earlier ones keep working), a reset link always (earlier ones stop
    /// working). The answer and its timing are the same whether or not the account exists.
    async fn mail_link_after_answer(
        self: &Arc<Self>,
        email: &str,
        client: &ClientInfo,
        purpose: Purpose,
    ) -> Result<(), AuthError> {
        let email = Email::parse("email", email).map_err(|v| vec![v])?;
        self.count_mail_request(&email, client).await?;
        let (what, kind, replace_earlier) = match purpose {
            Purpose::VerifyEmail => (
                "resend verification",
                AuditKind::VerificationRequested,
                false,
            ),
            Purpose::ResetPassword => (
                "password reset request",
                AuditKind::PasswordResetRequested,
                true,
            ),
        };
        let service = Arc::clone(self);
        let client = client.clone();
        self.background
            .spawn(what, async move {
                let Some(user) = service.store.user_by_email(&email).await? else {
                    return Ok(());
                };
                if purpose == Purpose::VerifyEmail && user.email_verified {
                    return Ok(());
                }
                service
                    .mail_one_time_link(&user, purpose, replace_earlier)
                    .await?;
                service.audit(AuditEvent::new(kind, &client).user(UserId(user.id)));
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
        v.check(required_token("token", token));
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

    /// A fresh one-time token of `purpose` for `to`, and the mail that carries its link.
    pub(super) fn one_time_link(
        &self,
        to: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(NewOneTimeToken, Mail)> {
        let token = IssuedToken::generate()?;
        let (ttl, mail) = match purpose {
            Purpose::VerifyEmail => {
                let ttl = self.policy.verify_ttl;
                (ttl, self.mails.verification(to, &token.secret, ttl))
            }
            Purpose::ResetPassword => {
                let ttl = self.policy.reset_ttl;
                (ttl, self.mails.password_reset(to, &token.secret, ttl))
            }
        };
        let token = NewOneTimeToken {
            purpose,
            digest: token.digest,
            expires_at: after(now, ttl),
        };
        Ok((token, mail))
    }

    /// Stores a new one-time token for an existing user and queues its mail. With
    /// `replace_earlier`, the user's earlier links of that purpose stop working.
    async fn mail_one_time_link(
        &self,
        user: &UserRecord,
        purpose: Purpose,
        replace_earlier: bool,
    ) -> Result<(), AuthError> {
        let now = Utc::now();
        let (token, mail) = self.one_time_link(&user.email, purpose, now)?;
        self.store
            .issue_one_time_token(UserId(user.id), token, &mail, replace_earlier, now)
            .await?;
        Ok(())
    }
}

/// A one-time token field must not be empty; what it holds is checked against the store.
fn required_token(field: &'static str, raw: &str) -> Result<(), FieldViolation> {
    if raw.trim().is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    Ok(())
}
