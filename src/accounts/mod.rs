//! Accounts: signup, the mailed one-time links (verify the email, reset the password), and the
//! signed-in user's own account (profile, password, sessions, TOTP enrollment). The SQL is in
//! `queries`; a use case that changes several features' tables (a reset spends the token, sets
//! the hash, ends every session and queues a mail) runs there in one transaction.

mod background;
mod links;
mod password;
mod profile;
pub mod queries;
mod signup;
mod totp;

pub use background::Background;
pub use totp::TotpEnrollment;

use crate::audit::{AuditEvent, AuditLog};
use crate::crypto::password::PasswordHasher;
use crate::db::Store;
use crate::domain::PasswordPolicy;
use crate::mail::MailComposer;
use crate::mfa::SecondFactors;
use crate::revocations::queries::Ending;
use crate::throttle::Throttle;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The settings accounts live by, taken from `Settings` once at start.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    pub verify_ttl: Duration,
    pub reset_ttl: Duration,
    /// Signup answers alike for a taken email (and mails its owner instead).
    pub signup_enumeration_protection: bool,
    pub password: PasswordPolicy,
    /// `AUTHD_ACCESS_TTL`: how long the revocations of the sessions an account change ends
    /// must last.
    pub access_ttl: Duration,
}

/// What the account use cases work with, and nothing more.
pub struct Accounts {
    store: Store,
    hasher: PasswordHasher,
    mails: MailComposer,
    throttle: Throttle,
    audit: AuditLog,
    factors: Arc<SecondFactors>,
    background: Background,
    policy: AccountPolicy,
}

impl Accounts {
    #[allow(
        clippy::too_many_arguments,
        reason = "wiring: one argument per part it is handed"
    )]
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        mails: MailComposer,
        throttle: Throttle,
        audit: AuditLog,
        factors: Arc<SecondFactors>,
        background: Background,
        policy: AccountPolicy,
    ) -> Self {
        Self {
            store,
            hasher,
            mails,
            throttle,
            audit,
            factors,
            background,
            policy,
        }
    }

    fn audit(&self, event: AuditEvent) {
        self.audit.record(event);
    }

    /// Sessions ending at `now`: their revocations last as long as their access tokens.
    fn ending(&self, now: DateTime<Utc>) -> Ending {
        Ending::new(now, self.policy.access_ttl)
    }
}
