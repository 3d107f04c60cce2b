//! Signup: a new, unverified user and the mail that verifies them.

use super::Accounts;
use super::queries::{NewUser, Purpose};
use crate::audit::{AuditEvent, AuditKind};
use crate::db::StoreError;
use crate::domain::{ClientInfo, DisplayName, Email, Password, UserId, UserView, Violations};
use crate::error::AuthError;
use chrono::Utc;

impl Accounts {
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
}
