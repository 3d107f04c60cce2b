//! The use cases: signup, login, refresh, logout, email verification, password reset, token
//! introspection, the revocation feed, and the signed-in user's own account (profile, password,
//! sessions). Plain async methods on `AuthService`, with no gRPC types: the gRPC layer converts
//! requests into calls here and `AuthError` into a status, in one place.

mod account;
mod audit;
mod cleanup;
mod introspect;
mod keys;
mod mfa;
mod password_reset;
mod revocations;
mod session;
mod signup;
mod throttle;
mod totp;

pub use crate::domain::{Caller, ClientInfo, SessionView, TokenPair, UserView};
pub use crate::error::AuthError;
pub use audit::{AuditEvent, AuditKind, AuditLog, AuditWriter};
pub use cleanup::CleanupJob;
pub use introspect::Introspection;
pub use keys::list as list_keys;
pub use keys::{
    KeyManager, KeyPolicy, KeyReloader, KeyState, KeyStatus, RETIRE_MARGIN, Retirement, Rotation,
    reseal,
};
pub use mfa::{FACTORS as MFA_FACTORS, LoginOutcome, MAX_CODE_ATTEMPTS, MfaChallenge, reseal_totp};
pub use revocations::{
    MAX_STREAMS, POLL_INTERVAL, RevocationFeed, RevocationPoller, RevocationStream, RevocationView,
    RevocationWatch,
};
pub use throttle::{Throttle, ThrottleLimits};
pub use totp::TotpEnrollment;

use crate::crypto::jwt::AccessTokens;
use crate::crypto::keys::KeyRing;
use crate::crypto::password::PasswordHasher;
use crate::crypto::token::IssuedToken;
use crate::domain::{ClientId, PasswordPolicy, UserId};
use crate::mail::MailComposer;
use crate::store::{Ending, Mail, NewOneTimeToken, Purpose, Store, UserRecord};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Work that may run after its call has been answered, at most this much at once.
const BACKGROUND_TASKS: u32 = 64;

/// The settings the use cases need, taken from `Settings` once at start.
#[derive(Debug, Clone)]
pub struct Policy {
    pub refresh_ttl: Duration,
    /// A session ends this long after it started, however often it is refreshed.
    pub session_max_lifetime: Duration,
    pub verify_ttl: Duration,
    pub reset_ttl: Duration,
    /// How long a login's `mfa_token` stays good.
    pub mfa_token_ttl: Duration,
    /// The issuer authenticator apps show for the account.
    pub totp_issuer: String,
    pub require_verified_email: bool,
    pub refresh_reuse_grace: Duration,
    /// Signup answers alike for a taken email (and mails its owner instead).
    pub signup_enumeration_protection: bool,
    pub password: PasswordPolicy,
    /// The `client_id` of sessions whose login named none, and of sessions from before the
    /// client id was recorded.
    pub default_client_id: ClientId,
}

/// Everything the use cases work with. Built once by `startup`.
pub struct AuthService {
    pub(crate) store: Store,
    pub(crate) hasher: PasswordHasher,
    pub(crate) tokens: AccessTokens,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) mails: MailComposer,
    pub(crate) throttle: Throttle,
    pub(crate) audit: AuditLog,
    pub(crate) policy: Policy,
    /// Bounds the work done after a call is answered (see `in_background`).
    pub(crate) background: Arc<Semaphore>,
    /// Ended sessions, for WatchRevocations.
    pub(crate) revocations: RevocationFeed,
    /// Seals TOTP secrets (AUTHD_KEY_ENCRYPTION_KEY); without one they are stored in the clear.
    pub(crate) sealer: Option<crate::crypto::seal::Sealer>,
}

impl AuthService {
    /// The permits of `background`, for `AuthService::background`.
    pub fn background_permits() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(BACKGROUND_TASKS as usize))
    }

    /// Sessions ending at `now`: their revocations last as long as their access tokens.
    pub(crate) fn ending(&self, now: DateTime<Utc>) -> Ending {
        Ending {
            at: now,
            token_ttl: chrono::Duration::from_std(self.tokens.ttl())
                .unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Every revocation after `after_cursor` that still matters, then each new one.
    pub async fn watch_revocations(&self, after_cursor: i64) -> Result<RevocationWatch, AuthError> {
        self.revocations.watch(after_cursor).await
    }

    /// The JWK Set that verifies access tokens.
    pub fn jwks_json(&self) -> Arc<str> {
        self.keys.current().jwks_json()
    }

    fn audit(&self, event: AuditEvent) {
        self.audit.record(event);
    }

    /// Runs `work` after the caller has been answered, so that the answer's timing does not
    /// depend on what the work finds. At most `BACKGROUND_TASKS` run at once; beyond that the
    /// caller waits for a slot (its wait then depends on load, never on the request).
    async fn in_background<F>(&self, what: &'static str, work: F)
    where
        F: Future<Output = Result<(), AuthError>> + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.background).acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(err) = work.await {
                tracing::warn!(error = %err, what, "background work failed");
            }
        });
    }

    /// Waits until the work started by `in_background` has finished (at shutdown).
    pub async fn finish_background(&self) {
        let _ = self.background.acquire_many(BACKGROUND_TASKS).await;
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
