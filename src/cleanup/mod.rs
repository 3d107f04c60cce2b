//! The periodic clean-up: deletes sessions and one-time tokens nobody can use any more, expired
//! throttle counters, and audit rows past their retention. Safe to run on every replica at once:
//! each round is a few plain `DELETE … WHERE <expired>` statements.

pub mod queries;

use crate::db::Store;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Ended sessions and spent tokens are kept at least this long (for support and the audit
/// trail's context), and never less than an access token lives.
const KEEP_ENDED: Duration = Duration::from_secs(24 * 3600);

pub struct CleanupJob {
    pub store: Store,
    pub interval: Duration,
    pub audit_retention: Duration,
    pub access_ttl: Duration,
}

impl CleanupJob {
    /// Runs a round every `interval` (none if it is zero) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.cancelled() => return,
            }
            self.round().await;
        }
    }

    /// One round; a failure is logged and the next round tries again.
    pub async fn round(&self) {
        let now = Utc::now();
        let ended_before = before(now, KEEP_ENDED.max(self.access_ttl));
        let audit_before = before(now, self.audit_retention);
        match self
            .store
            .delete_expired(now, ended_before, audit_before)
            .await
        {
            Ok(cleaned) => tracing::info!(
                sessions = cleaned.sessions,
                one_time_tokens = cleaned.one_time_tokens,
                mfa_challenges = cleaned.mfa_challenges,
                throttles = cleaned.throttles,
                audit_events = cleaned.audit_events,
                revocations = cleaned.revocations,
                "expired rows deleted"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "clean-up round failed; next round tries again")
            }
        }
    }
}

/// `now - duration`, saturating at the earliest time rather than failing.
fn before(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
