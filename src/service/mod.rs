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
use crate::domain::{PasswordPolicy, UserId};
use crate::mail::MailComposer;
use crate::store::{Store, UserRecord};
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

/// Everything the use cases work with.
pub struct AuthService {
    store: Store,
    hasher: PasswordHasher,
    tokens: AccessTokens,
    keys: Arc<KeyRing>,
    mails: MailComposer,
    outbox_wake: Arc<Notify>,
    login_limiter: AttemptLimiter,
    mail_limiter: AttemptLimiter,
    policy: Policy,
}

/// The parts an `AuthService` is made of (see `startup`).
pub struct AuthServiceParts {
    pub store: Store,
    pub hasher: PasswordHasher,
    pub tokens: AccessTokens,
    pub keys: Arc<KeyRing>,
    pub mails: MailComposer,
    pub outbox_wake: Arc<Notify>,
    pub login_limiter: AttemptLimiter,
    pub mail_limiter: AttemptLimiter,
    pub policy: Policy,
}

impl AuthService {
    pub fn new(parts: AuthServiceParts) -> Self {
        let AuthServiceParts {
            store,
            hasher,
            tokens,
            keys,
            mails,
            outbox_wake,
            login_limiter,
            mail_limiter,
            policy,
        } = parts;
        Self {
            store,
            hasher,
            tokens,
            keys,
            mails,
            outbox_wake,
            login_limiter,
            mail_limiter,
            policy,
        }
    }

    /// The JWK Set that verifies access tokens.
    pub fn jwks_json(&self) -> Arc<str> {
        self.keys.current().jwks_json()
    }
}

/// `now + duration`, saturating far in the future rather than failing.
fn after(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
