//! What one call has counted, held until it is settled: taken back when the call is cancelled
//! before it did anything, kept once its guess was made.

use super::queries::{ThrottleKey, ThrottleSettle};
use super::{Scope, now_ms};
use crate::crypto::password::HashStarted;
use crate::db::Store;
use crate::error::AuthError;

/// Counts made for one call. Dropped without `keep`, they are taken back (in a task of their
/// own, since the call may be gone).
pub(super) struct Counts {
    pub(super) store: Store,
    pub(super) keys: Vec<ThrottleKey>,
    pub(super) kept: bool,
}

impl Counts {
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Counts {
    fn drop(&mut self) {
        if self.kept || self.keys.is_empty() {
            return;
        }
        let store = self.store.clone();
        let keys = std::mem::take(&mut self.keys);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = store.throttle_refund(&keys).await {
                    tracing::warn!(error = %err, "could not take back a cancelled call's counts");
                }
            });
        }
    }
}

/// A login attempt that has been counted as a failure in advance. Settle it with `succeeded`
/// or `failed`; dropped unsettled (the call was cancelled, or failed for another reason) before
/// its hash started, its counts are taken back.
pub struct LoginAttempt {
    pub(super) counts: Counts,
    pub(super) known: ThrottleKey,
    pub(super) known_until: i64,
    pub(super) started: HashStarted,
    pub(super) settled: bool,
}

impl LoginAttempt {
    /// Set by the password hasher once the guess's hash is certain to run.
    pub fn started(&self) -> &HashStarted {
        &self.started
    }

    /// The password was right: clears the account's consecutive failures and this client's,
    /// takes back this attempt's advance count on the client's address (a success is not a
    /// failure; the address's other failures stand, so logging in to one's own account between
    /// guesses at others clears nothing), and remembers the client as known to the account;
    /// all in one statement.
    pub async fn succeeded(mut self) -> Result<(), AuthError> {
        self.settled = true;
        let mut settled: Vec<(ThrottleKey, ThrottleSettle)> = self
            .counts
            .keys
            .iter()
            .map(|k| {
                let settle = if k.scope == Scope::ClientFailures.name() {
                    ThrottleSettle::TakeBack
                } else {
                    ThrottleSettle::Clear
                };
                (k.clone(), settle)
            })
            .collect();
        settled.push((
            self.known.clone(),
            ThrottleSettle::Remember {
                until_ms: self.known_until,
            },
        ));
        self.counts
            .store
            .throttle_settle(&settled, now_ms())
            .await?;
        Ok(())
    }

    /// The password was wrong: the counts stand.
    pub fn failed(mut self) {
        self.settled = true;
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        // Settled, or the hash ran (the guess was made): the counts stand. Otherwise the
        // counts' own drop takes them back.
        self.counts.kept = self.settled || self.started.get();
    }
}

/// A second-factor code counted as wrong in advance. Call `checked` as soon as the code has
/// been compared (before the next await): from then on the count stands whatever happens to the
/// call, until `succeeded` clears it. Dropped before `checked` (the call was cancelled before
/// its code was looked at), the count is taken back.
pub struct SecondFactorAttempt {
    pub(super) counts: Counts,
}

impl SecondFactorAttempt {
    /// The code has been compared: a cancelled call can no longer take its count back.
    pub fn checked(&mut self) {
        self.counts.kept = true;
    }

    /// A right code: the account's wrong codes are forgotten.
    pub async fn succeeded(mut self) -> Result<(), AuthError> {
        self.counts.kept = true;
        let keys = std::mem::take(&mut self.counts.keys);
        self.counts.store.throttle_delete(&keys).await?;
        Ok(())
    }
}
