//! Sessions: Login, VerifyMfa, Refresh, Logout and Introspect. Every way in ends in
//! [`start`](start.rs), the one place a session begins and its token pair is handed out; the
//! decisions about a session's life (is it live, may this refresh token rotate, is this reuse
//! theft) are pure functions in `rules`; the SQL is in `queries`.

mod introspect;
mod login;
mod logout;
pub mod queries;
mod refresh;
pub mod rules;
mod start;
mod verify_mfa;

pub use introspect::Introspection;

use crate::audit::{AuditEvent, AuditLog};
use crate::crypto::jwt::AccessTokens;
use crate::crypto::password::PasswordHasher;
use crate::db::{SessionRecord, Store};
use crate::domain::{ClientId, ClientInfo};
use crate::mfa::SecondFactors;
use crate::revocations::queries::Ending;
use crate::throttle::Throttle;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The settings sessions live by, taken from `Settings` once at start.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Idle lifetime: a session not refreshed for this long ends.
    pub refresh_ttl: Duration,
    /// A session ends this long after it started, however often it is refreshed.
    pub session_max_lifetime: Duration,
    pub require_verified_email: bool,
    pub refresh_reuse_grace: Duration,
    /// The `client_id` of sessions whose login named none, and of sessions from before the
    /// client id was recorded.
    pub default_client_id: ClientId,
}

/// What the session use cases work with, and nothing more.
pub struct Sessions {
    store: Store,
    hasher: PasswordHasher,
    tokens: Arc<AccessTokens>,
    throttle: Throttle,
    audit: AuditLog,
    factors: Arc<SecondFactors>,
    policy: SessionPolicy,
}

impl Sessions {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        tokens: Arc<AccessTokens>,
        throttle: Throttle,
        audit: AuditLog,
        factors: Arc<SecondFactors>,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            throttle,
            audit,
            factors,
            policy,
        }
    }

    fn audit(&self, event: AuditEvent) {
        self.audit.record(event);
    }

    /// Sessions ending at `now`: their revocations last as long as their access tokens.
    fn ending(&self, now: DateTime<Utc>) -> Ending {
        Ending::new(now, self.tokens.ttl())
    }

    /// The client a session is for: the one its login named, or for a session from before
    /// client ids were recorded, the configured default.
    fn session_client_id(&self, session: &SessionRecord) -> ClientId {
        session
            .client_id
            .as_deref()
            .and_then(|raw| ClientId::parse("client_id", raw).ok())
            .unwrap_or_else(|| self.policy.default_client_id.clone())
    }
}

/// Where a refresh comes from, as the session keeps it.
fn used_from(client: &ClientInfo) -> queries::UsedFrom<'_> {
    queries::UsedFrom {
        user_agent: &client.user_agent,
        ip: &client.ip,
    }
}
