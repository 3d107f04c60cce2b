//! Revocation-aware local mode: a [`crate::LocalVerifier`] that also holds authd's
//! WatchRevocations stream refuses the tokens of a logged-out session within a second, with no
//! call to authd per token.
//!
//! The set of revoked sessions lives here; the stream that fills it is in
//! `revocation_stream.rs`. While the stream is down the set may be missing revocations, so it is
//! trusted for [`RevocationSettings::max_disconnected`] after the break is noticed and not
//! after; then [`WhenDisconnected`] decides. Before the first catch-up nothing is known, so
//! start-up gets no such grace.
//!
//! Memory: one entry per session revoked within the access-token lifetime (authd sends only
//! those, and entries go once their `not_after` plus the leeway has passed): a 16-byte session
//! id and an 8-byte deadline in a hash map, about 40 bytes with the map's overhead, so 100 000
//! logouts per access-token lifetime cost about 4 MB. A flood of logouts is bounded by what authd
//! sends; authd, not the verifier, is where to throttle it.

use crate::client::VerifierError;
use crate::{Claims, Refusal, RemoteSettings, RemoteVerifier, Verify};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How long revocations received before a break are trusted, by default.
pub const DEFAULT_MAX_DISCONNECTED: Duration = Duration::from_secs(5);

/// Where the revocation stream comes from and what to do while it is down.
#[derive(Clone)]
pub struct RevocationSettings {
    /// authd's gRPC address, e.g. `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// `(client id, secret)` of a credential in authd's `AUTHD_INTROSPECT_CLIENTS`, sent as
    /// `authorization: Basic …` on the stream and on the Introspect fallback; `None` when authd
    /// leaves them open.
    pub client: Option<(String, String)>,
    /// How long after a break (noticed at once when authd closes the connection, within about
    /// 3 s of a silently cut network thanks to HTTP/2 keep-alive) the revocations already
    /// received are still trusted alone: default [`DEFAULT_MAX_DISCONNECTED`], 5 s. A token of a
    /// session revoked during a break is accepted for at most this long (plus the time to
    /// notice the break).
    pub max_disconnected: Duration,
    /// What happens to tokens once the stream has been down longer than `max_disconnected`, or
    /// before it first caught up.
    pub when_disconnected: WhenDisconnected,
}

impl RevocationSettings {
    /// The stream from `endpoint`, no credentials, the default bound and fallback.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            client: None,
            max_disconnected: DEFAULT_MAX_DISCONNECTED,
            when_disconnected: WhenDisconnected::default(),
        }
    }
}

impl std::fmt::Debug for RevocationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationSettings")
            .field("endpoint", &self.endpoint)
            .field("client", &self.client.as_ref().map(|(id, _)| id))
            .field("max_disconnected", &self.max_disconnected)
            .field("when_disconnected", &self.when_disconnected)
            .finish()
    }
}

/// What a revocation-aware verifier does with a token it cannot vouch for: the stream has been
/// down longer than the bound, or has not caught up since start-up.
///
/// Both choices are safe: neither accepts a token of a possibly revoked session on local
/// knowledge past the bound. The default, [`WhenDisconnected::Introspect`], is the one that
/// stays up when only the stream is broken (a proxy that cuts long-lived streams, a slow
/// consumer cut off again and again) and costs nothing more when authd itself is down (then
/// Introspect fails too and tokens are refused as unavailable); its price is a round trip to
/// authd per token while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenDisconnected {
    /// Refuse every token with [`Refusal::Unavailable`] (the caller may retry) until the stream
    /// has caught up again. For services that must never add load to authd.
    FailClosed,
    /// Ask authd's Introspect about every token (no cache), as [`crate::RemoteVerifier`] does,
    /// until the stream has caught up again.
    #[default]
    Introspect,
}

/// What the verifier knows about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Not caught up since start-up: nothing is known yet.
    Never,
    /// Caught up and still connected: every revocation so far is in the set.
    CaughtUp,
    /// Was caught up; broken (or catching up again) since this instant.
    Lost(Instant),
}

/// The revoked sessions and the state of the stream, shared by the verifier and its task.
pub(crate) struct State {
    /// Session id → the unix second from which it may be forgotten (`not_after`, rounded up,
    /// plus the leeway).
    revoked: RwLock<HashMap<uuid::Uuid, i64>>,
    link: watch::Sender<Link>,
    max_disconnected: Duration,
    leeway_secs: i64,
    pub(crate) endpoint: String,
    reconnects: AtomicU64,
    /// Whether the fallback has been announced since the link was last caught up.
    warned: AtomicBool,
    /// Dropped with the state: the stream task ends.
    _stop: oneshot::Sender<()>,
}

impl State {
    pub(crate) fn new(
        endpoint: String,
        max_disconnected: Duration,
        leeway: Duration,
    ) -> (Arc<Self>, oneshot::Receiver<()>) {
        let (stop, stopped) = oneshot::channel();
        let state = Arc::new(Self {
            revoked: RwLock::new(HashMap::new()),
            link: watch::Sender::new(Link::Never),
            max_disconnected,
            leeway_secs: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
            endpoint,
            reconnects: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            _stop: stop,
        });
        (state, stopped)
    }

    /// Adds a revoked session unless its tokens have all expired by `now` (unix seconds).
    pub(crate) fn insert(&self, session: uuid::Uuid, not_after: i64, now: i64) {
        let until = not_after.saturating_add(self.leeway_secs);
        if now >= until {
            return;
        }
        let mut revoked = self.revoked.write();
        let entry = revoked.entry(session).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Forgets the sessions whose tokens have all expired by `now`.
    pub(crate) fn prune(&self, now: i64) {
        let mut revoked = self.revoked.write();
        revoked.retain(|_, until| now < *until);
    }

    pub(crate) fn is_revoked(&self, session: &uuid::Uuid) -> bool {
        let revoked = self.revoked.read();
        revoked.contains_key(session)
    }

    pub(crate) fn len(&self) -> usize {
        self.revoked.read().len()
    }

    /// Whether the set alone may decide now.
    pub(crate) fn trusted(&self) -> bool {
        match *self.link.borrow() {
            Link::CaughtUp => true,
            Link::Lost(since) => since.elapsed() < self.max_disconnected,
            Link::Never => false,
        }
    }

    pub(crate) fn link(&self) -> Link {
        *self.link.borrow()
    }

    pub(crate) fn caught_up(&self) {
        self.warned.store(false, Ordering::Relaxed);
        self.link.send_replace(Link::CaughtUp);
    }

    /// The stream broke (or a new one is not caught up yet): the clock of the bound starts now,
    /// unless it already runs.
    pub(crate) fn lost(&self) {
        self.link.send_if_modified(|link| match link {
            Link::CaughtUp => {
                *link = Link::Lost(Instant::now());
                true
            }
            Link::Lost(_) | Link::Never => false,
        });
    }

    pub(crate) fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` until the stream is caught up; whether it is.
    pub(crate) async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let mut link = self.link.subscribe();
        tokio::time::timeout(timeout, link.wait_for(|link| *link == Link::CaughtUp))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }
}

/// The revocation side of a local verifier: the set, and what to do when it cannot decide.
pub(crate) struct Revocations {
    pub(crate) state: Arc<State>,
    fallback: Fallback,
}

enum Fallback {
    FailClosed,
    Introspect(RemoteVerifier),
}

impl Revocations {
    /// Starts the stream task on the current runtime. `leeway` is the checks' leeway: an entry
    /// is kept as long as a token of its session could pass them.
    pub(crate) fn start(
        settings: RevocationSettings,
        leeway: Duration,
    ) -> Result<Self, VerifierError> {
        let stream = crate::revocation_stream::Stream::new(&settings)?;
        let fallback = match settings.when_disconnected {
            WhenDisconnected::FailClosed => Fallback::FailClosed,
            WhenDisconnected::Introspect => {
                Fallback::Introspect(RemoteVerifier::new(RemoteSettings {
                    endpoint: settings.endpoint.clone(),
                    client: settings.client.clone(),
                    cache_ttl: Duration::ZERO,
                })?)
            }
        };
        let (state, stopped) = State::new(settings.endpoint, settings.max_disconnected, leeway);
        tokio::spawn(stream.run(Arc::downgrade(&state), stopped));
        Ok(Self { state, fallback })
    }

    /// After the local checks passed: refused if the session is revoked; accepted if the set
    /// can vouch for it; otherwise the fallback decides.
    pub(crate) async fn admit(&self, claims: Claims, token: &str) -> Result<Claims, Refusal> {
        if self.state.is_revoked(&claims.session_id) {
            return Err(Refusal::Revoked);
        }
        if self.state.trusted() {
            return Ok(claims);
        }
        let introspect = match &self.fallback {
            Fallback::FailClosed => None,
            Fallback::Introspect(remote) => Some(remote),
        };
        if !self.state.warned.swap(true, Ordering::Relaxed) {
            let link = match self.state.link() {
                Link::Never => "has not caught up since start-up".to_owned(),
                Link::Lost(since) => format!("has been down for {:?}", since.elapsed()),
                Link::CaughtUp => "has just caught up".to_owned(),
            };
            let what = match introspect {
                Some(_) => "every token is sent to Introspect",
                None => "every token is refused as unavailable",
            };
            tracing::warn!(
                "the revocation stream from {} {link}: {what} until it catches up",
                self.state.endpoint
            );
        }
        match introspect {
            Some(remote) => remote.verify(token).await,
            None => Err(Refusal::Unavailable),
        }
    }
}

#[cfg(test)]
#[path = "revocations_tests.rs"]
mod tests;
