//! Local mode: tokens are checked here against authd's public keys, with no call to authd per
//! token. The JWK Set is fetched in the background, kept as long as its `Cache-Control:
//! max-age` says (or [`LocalSettings::default_max_age`]) and refreshed before that runs out.
//!
//! A token whose `kid` is not in the key set may be signed by a key authd has just added, so it
//! triggers a refetch, but at most one per [`LocalSettings::min_refetch_interval`] however many
//! tokens ask: tokens that arrive while that fetch runs wait for it and share its answer, and a
//! flood of made-up `kid`s costs authd a fetch every interval at most. When a fetch fails the
//! last good key set stays in use.
//!
//! A logout is not seen in plain local mode until the token expires. With
//! [`LocalSettings::with_revocations`] the verifier also holds authd's revocation stream and
//! refuses the tokens of ended sessions ([`Refusal::Revoked`]) within a second (see
//! [`crate::RevocationSettings`]); [`crate::RemoteVerifier`] asks authd about every token instead.

use crate::client::VerifierError;
use crate::jwks::{FetchError, Fetched, Fetcher};
use crate::revocations::Revocations;
use crate::{
    BoxFuture, Checks, Claims, JwksSource, PublicKeys, Refusal, RevocationSettings, Verify,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};

/// No key set is kept longer than this, whatever `max-age` says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The first retry after a failed fetch; each further failure doubles it up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How [`LocalVerifier`] gets and keeps its keys.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Where the JWK Set comes from.
    pub jwks: JwksSource,
    /// What tokens must satisfy.
    pub checks: Checks,
    /// Unknown-`kid` refetches happen at most this often (default 10 s). Also the shortest time
    /// a key set is kept, whatever its `max-age`.
    pub min_refetch_interval: Duration,
    /// How long a key set is kept when the answer has no `max-age` (or says `no-store` or
    /// `no-cache`; the GetJwks source never says): default 5 minutes.
    pub default_max_age: Duration,
    /// Revocation-aware local mode, when set: see [`Self::with_revocations`]. Default: off.
    pub revocations: Option<RevocationSettings>,
}

impl LocalSettings {
    /// Keys from `jwks`, tokens checked with `checks`, the default intervals.
    pub fn new(jwks: JwksSource, checks: Checks) -> Self {
        Self {
            jwks,
            checks,
            min_refetch_interval: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
            revocations: None,
        }
    }

    /// Also holds authd's revocation stream (one HTTP/2 stream per verifier and its clones,
    /// a few bytes per revoked session), so that a token of an ended session is refused within
    /// a second of the logout, with no call to authd per token. While the stream is down
    /// longer than [`RevocationSettings::max_disconnected`], or before it first caught up,
    /// [`RevocationSettings::when_disconnected`] decides.
    pub fn with_revocations(mut self, revocations: RevocationSettings) -> Self {
        self.revocations = Some(revocations);
        self
    }
}

/// Checks tokens against the JWK Set it keeps fresh in the background. Cheap to clone: clones
/// share the keys and the background task, which ends when the last clone is dropped.
#[derive(Clone)]
pub struct LocalVerifier {
    shared: Arc<Shared>,
}

struct Shared {
    checks: Checks,
    source: JwksSource,
    fetcher: Fetcher,
    min_refetch_interval: Duration,
    default_max_age: Duration,
    /// The key set in use; `None` until the first fetch succeeds.
    keys: watch::Sender<Option<Arc<PublicKeys>>>,
    /// When the last unknown-`kid` refetch started. Held while it runs, so that concurrent
    /// tokens wait for it instead of fetching again.
    last_refetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    /// Revocation-aware mode: the revoked sessions and the stream's state.
    revocations: Option<Revocations>,
    /// Revocation-aware mode was asked for but could not start (a bad endpoint, no runtime):
    /// every token is refused as unavailable rather than checked without it.
    revocations_broken: bool,
}

impl LocalVerifier {
    /// Returns at once and fetches the JWK Set in the background, retrying with backoff (and a
    /// warning naming the source at each failure) while authd is unreachable. Until keys
    /// arrive, tokens get [`Refusal::Unavailable`].
    ///
    /// Call it inside a Tokio runtime; outside one it logs an error and every token gets
    /// [`Refusal::Unavailable`], as it does when revocation-aware mode is asked for with an
    /// endpoint that is not a URI (logged too).
    pub fn start(settings: LocalSettings) -> Self {
        let runtime = tokio::runtime::Handle::try_current();
        let fetcher = match runtime {
            Ok(_) => Fetcher::new(&settings.jwks),
            Err(_) => Fetcher::Broken(VerifierError::NoRuntime.to_string()),
        };
        let revocations = settings.revocations.map(|revocations| {
            let endpoint = revocations.endpoint.clone();
            Revocations::start(revocations, settings.checks.leeway()).map_err(|err| {
                tracing::error!(
                    "authd-verifier: revocation stream from {endpoint}: {err}; every token \
                     will be refused"
                );
            })
        });
        let revocations_broken = matches!(revocations, Some(Err(())));
        let shared = Arc::new(Shared {
            checks: settings.checks,
            source: settings.jwks,
            fetcher,
            min_refetch_interval: settings.min_refetch_interval,
            default_max_age: settings.default_max_age,
            keys: watch::Sender::new(None),
            last_refetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            revocations: revocations.and_then(Result::ok),
            revocations_broken,
        });
        match runtime {
            Ok(runtime) => drop(runtime.spawn(refresh(Arc::downgrade(&shared)))),
            Err(_) => tracing::error!(
                jwks = %shared.source,
                "authd-verifier: {}; every token will be refused",
                VerifierError::NoRuntime
            ),
        }
        Self { shared }
    }

    /// Waits up to `timeout` for the first key set; whether it has arrived.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut keys = self.shared.keys.subscribe();
        tokio::time::timeout(timeout, keys.wait_for(Option::is_some))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// How many JWK Set fetches have been attempted (background and unknown-`kid` ones), for
    /// metrics.
    pub fn fetch_count(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// The number of usable keys in the set in use (0 before the first fetch).
    pub fn key_count(&self) -> usize {
        self.shared.current().map_or(0, |keys| keys.len())
    }

    /// Revocation-aware mode: how many revoked sessions are kept (0 when the mode is off).
    pub fn revoked_count(&self) -> usize {
        self.shared
            .revocations
            .as_ref()
            .map_or(0, |r| r.state.len())
    }

    /// Revocation-aware mode: whether the stream is open and has delivered every revocation
    /// authd had when it opened (false when the mode is off).
    pub fn is_caught_up(&self) -> bool {
        let link = self.shared.revocations.as_ref().map(|r| r.state.link());
        link == Some(crate::revoked_set::Link::CaughtUp)
    }

    /// Revocation-aware mode: waits up to `timeout` for [`Self::is_caught_up`]; whether it is.
    pub async fn caught_up(&self, timeout: Duration) -> bool {
        match &self.shared.revocations {
            Some(revocations) => revocations.state.wait_caught_up(timeout).await,
            None => false,
        }
    }

    /// Revocation-aware mode: how many times the stream was opened again after the first
    /// (failed attempts included), for metrics.
    pub fn reconnect_count(&self) -> u64 {
        self.shared
            .revocations
            .as_ref()
            .map_or(0, |r| r.state.reconnects())
    }
}

impl Verify for LocalVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, Refusal>> {
        Box::pin(async move {
            let shared = &self.shared;
            let keys = shared.current().ok_or(Refusal::Unavailable)?;
            let claims = match shared.checks.check(token, &keys) {
                Err(Refusal::UnknownKey) => match shared.refetch_for_unknown_kid(&keys).await {
                    Some(newer) => shared.checks.check(token, &newer),
                    None => Err(Refusal::UnknownKey),
                },
                other => other,
            }?;
            let claims = Claims::try_from(claims)?;
            match &shared.revocations {
                Some(revocations) => revocations.admit(claims, token).await,
                None if shared.revocations_broken => Err(Refusal::Unavailable),
                None => Ok(claims),
            }
        })
    }
}

impl Shared {
    fn current(&self) -> Option<Arc<PublicKeys>> {
        self.keys.borrow().clone()
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.fetcher.fetch().await
    }

    /// Puts a fetched key set in use; how long it may be kept.
    fn apply(&self, fetched: Fetched) -> Duration {
        let max_age = match fetched {
            Fetched::Keys(keys, max_age) => {
                let fresh = Arc::new(keys);
                let previous = self.keys.send_replace(Some(Arc::clone(&fresh)));
                if previous.is_none_or(|old| !same_kids(&old, &fresh)) {
                    let mut kids: Vec<&str> = fresh.kids().collect();
                    kids.sort_unstable();
                    tracing::info!(?kids, "JWK Set from {} in use", self.source);
                }
                max_age
            }
            Fetched::NotModified(max_age) => max_age,
        };
        let floor = self.min_refetch_interval.max(Duration::from_secs(1));
        max_age
            .unwrap_or(self.default_max_age)
            .clamp(floor, MAX_LIFETIME.max(floor))
    }

    /// After a token named a `kid` that `seen` lacks: a newer key set, fetched now unless one
    /// was fetched within the interval (or arrived while this call waited its turn).
    async fn refetch_for_unknown_kid(&self, seen: &Arc<PublicKeys>) -> Option<Arc<PublicKeys>> {
        let mut last = self.last_refetch.lock().await;
        let current = self.current()?;
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return None;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(fetched) => {
                self.apply(fetched);
                self.current()
            }
            Err(err) => {
                tracing::warn!(
                    "JWKS refetch for an unknown kid from {} failed: {err}; keeping the last good \
                     key set",
                    self.source
                );
                None
            }
        }
    }
}

fn same_kids(a: &PublicKeys, b: &PublicKeys) -> bool {
    a.len() == b.len() && a.kids().all(|kid| b.contains(kid))
}

/// The background task: fetch, keep, refresh before the lifetime runs out; on failure retry
/// with backoff. Ends once every [`LocalVerifier`] clone is gone.
async fn refresh(shared: Weak<Shared>) {
    let mut failures: u32 = 0;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let pause = match strong.fetch().await {
            Ok(fetched) => {
                failures = 0;
                let lifetime = strong.apply(fetched);
                // Refresh a tenth before the end, so the keys never run out while it runs.
                lifetime - lifetime / 10
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                let retry = FIRST_RETRY
                    .saturating_mul(1 << failures.saturating_sub(1).min(5))
                    .min(MAX_RETRY);
                let source = &strong.source;
                if strong.current().is_some() {
                    tracing::warn!(
                        "JWKS refresh from {source} failed (attempt {failures}): {err}; keeping \
                         the last good key set, retrying in {retry:?}"
                    );
                } else {
                    tracing::warn!(
                        "JWKS fetch from {source} failed (attempt {failures}): {err}; tokens are \
                         refused as unavailable until it succeeds, retrying in {retry:?}"
                    );
                }
                retry
            }
        };
        drop(strong);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
