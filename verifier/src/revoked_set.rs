//! The revoked sessions and the state of the stream: filled by the stream task
//! (`revocation_stream.rs`), read by the verifier (`revocations.rs`).

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

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
    pub(crate) warned: AtomicBool,
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
