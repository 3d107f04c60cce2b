//! Signup and email verification.

use super::{AuditEvent, AuditKind, AuthError, AuthService, ClientInfo, UserView};
use crate::crypto::token::TokenDigest;
use crate::domain::{DisplayName, Email, FieldViolation, Password, UserId, Violations};
use crate::store::{NewUser, Purpose, StoreError};
use chrono::Utc;
use std::sync::Arc;

impl AuthService {
    /// Creates an unverified user and queues the verification mail, in one transaction.
    ///
    /// A taken email is ALREADY_EXISTS, unless enumeration protection is on: then the answer
    /// looks like a new signup (after the same hashing work), and the owner of the address gets
    /// a mail saying someone tried to sign up with it.
    #[tracing::instrument(skip_all)]
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        name: &str,
        client: &ClientInfo,
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
        if let Err(err) = self.throttle.signup(&client.ip).await {
            self.audit(AuditEvent::new(AuditKind::Throttled, client).detail("signup"));
            return Err(err);
        }

        let protect = self.policy.signup_enumeration_protection;
        // Without protection, answer a taken email before paying for a hash; the unique index
        // settles races either way.
        let taken = self.store.user_by_email(&email).await?;
        if taken.is_some() && !protect {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.hasher.hash(&password).await?;
        let now = Utc::now();
        if taken.is_some() {
            return self.taken_signup(&email, &name, client, now).await;
        }
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
            Err(StoreError::Conflict(_)) if protect => {
                return self.taken_signup(&email, &name, client, now).await;
            }
            Err(StoreError::Conflict(_)) => return Err(AuthError::EmailTaken),
            Err(err) => return Err(err.into()),
        };
        self.audit(AuditEvent::new(AuditKind::Signup, client).user(UserId(user.id)));
        Ok(user.into())
    }

    /// With enumeration protection, a signup for a taken email: the owner is told by mail (as
    /// often as the mail throttle allows), and the caller gets an answer shaped like a new user's.
    async fn taken_signup(
        &self,
        email: &Email,
        name: &DisplayName,
        client: &ClientInfo,
        now: chrono::DateTime<Utc>,
    ) -> Result<UserView, AuthError> {
        match self.throttle.mail_request(email, &client.ip).await {
            Ok(()) => {
                let mail = self.mails.signup_attempted(email.as_str());
                self.store.queue_mail(&mail, now).await?;
            }
            Err(AuthError::RateLimited { .. }) => {}
            Err(err) => return Err(err),
        }
        self.audit(AuditEvent::new(AuditKind::Signup, client).detail("email already registered"));
        Ok(UserView {
            id: UserId::new(),
            email: email.as_str().to_owned(),
            name: name.as_str().to_owned(),
            email_verified: false,
            created_at: now,
            ext_id: None,
            mfa_enabled: false,
        })
    }

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
        let email = Email::parse("email", email).map_err(|v| vec![v])?;
        self.count_mail_request(&email, client).await?;
        let service = Arc::clone(self);
        let client = client.clone();
        self.in_background("resend verification", async move {
            let Some(user) = service.store.user_by_email(&email).await? else {
                return Ok(());
            };
            if user.email_verified {
                return Ok(());
            }
            service
                .mail_one_time_link(&user, Purpose::VerifyEmail, false)
                .await?;
            service.audit(
                AuditEvent::new(AuditKind::VerificationRequested, &client).user(UserId(user.id)),
            );
            Ok(())
        })
        .await;
        Ok(())
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
    ) -> Result<crate::store::OneTimeTokenRecord, AuthError> {
        required_token(field, raw).map_err(|v| vec![v])?;
        self.throttle.check_client(&client.ip).await?;
        let record = match TokenDigest::of_presented(raw.trim()) {
            Some(digest) => self.store.one_time_token(&digest, purpose).await?,
            None => None,
        };
        match record {
            Some(record) if record.spent_at.is_none() && record.expires_at > Utc::now() => {
                Ok(record)
            }
            _ => {
                self.throttle.client_failed(&client.ip).await?;
                Err(AuthError::InvalidOneTimeToken { field })
            }
        }
    }
}

/// A one-time token field must not be empty; what it holds is checked against the store.
pub(super) fn required_token(field: &'static str, raw: &str) -> Result<(), FieldViolation> {
    if raw.trim().is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    Ok(())
}
