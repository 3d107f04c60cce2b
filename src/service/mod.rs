//! The use cases: signup, login, refresh, logout, email verification, password reset and token
//! introspection. Plain async methods on `AuthService`, with no gRPC types: the gRPC layer converts
//! requests into calls here and `AuthError` into a status, in one place.

mod error;
mod introspect;
mod limiter;
mod password_reset;
mod session;
mod signup;

pub use error::AuthError;
pub use introspect::Introspection;
pub use limiter::AttemptLimiter;

use crate::crypto::jwt::AccessTokens;
use crate::crypto::keys::KeyRing;
use crate::crypto::password::PasswordHasher;
use crate::crypto::token::IssuedToken;
use crate::domain::{PasswordPolicy, UserId};
use crate::mail::{Mail, MailComposer};
use crate::store::{NewOneTimeToken, Purpose, Store, UserRecord};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The settings the use cases need, taken from `Settings` once at start.
#[derive(Debug, Clone)]
pub struct Policy {
    pub refresh_ttl: Duration,
    pub verify_ttl: Duration,
    pub reset_ttl: Duration,
    pub require_verified_email: bool,
    pub refresh_reuse_grace: Duration,
    pub password: PasswordPolicy,
}

/// Where a call comes from, for the session record.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: String,
    pub ip: String,
}

/// A user as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> Self {
        Self {
            id: UserId(user.id),
            email: user.email,
            name: user.name,
            email_verified: user.email_verified,
            created_at: user.created_at,
        }
    }
}

/// What Login and Refresh hand back.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
    pub refresh_expires_in: Duration,
    pub user: UserView,
}

/// Everything the use cases work with. Built once by `startup`.
pub struct AuthService {
    pub(crate) store: Store,
    pub(crate) hasher: PasswordHasher,
    pub(crate) tokens: AccessTokens,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) mails: MailComposer,
    /// Wakes the outbox worker when a mail is queued, so it goes out at once.
    pub(crate) outbox_wake: Arc<Notify>,
    pub(crate) login_limiter: AttemptLimiter,
    pub(crate) mail_limiter: AttemptLimiter,
    pub(crate) policy: Policy,
}

impl AuthService {
    /// The JWK Set that verifies access tokens.
    pub fn jwks_json(&self) -> Arc<str> {
        self.keys.current().jwks_json()
    }

    /// A fresh one-time token of `purpose` for `to`, and the mail that carries its link.
    fn one_time_link(
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
        self.outbox_wake.notify_one();
        Ok(())
    }
}

/// `now + duration`, saturating far in the future rather than failing.
fn after(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
