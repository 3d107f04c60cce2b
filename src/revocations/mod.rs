//! The revocation feed behind WatchRevocations: every ended session whose access tokens may
//! still be unexpired, first the backlog a caller asks for, then each new one, from any authd
//! process on the same database.
//!
//! One poller per process reads new revocations from the database (at once when this process
//! ended a session, otherwise every [`POLL_INTERVAL`], so another replica's logout arrives within
//! that interval plus a query) and hands them to every stream through one bounded broadcast
//! ring. Polling alone, not LISTEN/NOTIFY: it is one indexed range query per process per
//! interval however many streams there are, it works the same on SQLite (several processes on
//! one file) and PostgreSQL, and it meets the one-second bound with room to spare; NOTIFY would
//! need a connection of its own per process and polling anyway for what it misses while that
//! connection is down.
//!
//! A stream reads its backlog from the database in pages after subscribing to the ring, then
//! takes the ring, skipping what its backlog already held: nothing is lost between the two and
//! nothing comes twice. A stream that falls a whole ring behind (its caller reads too slowly) is
//! cut off with RESOURCE_EXHAUSTED naming the cursor to resume from, so a slow caller costs a
//! ring slot per revocation, never an unbounded buffer.

pub mod queries;

use crate::db::Store;
use crate::domain::{FieldViolation, SessionId, UserId};
use crate::error::AuthError;
use chrono::{DateTime, Utc};
use queries::RevocationRecord;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;

/// How often the database is read for revocations made by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How far (in revocations) a stream may fall behind before it is cut off.
const RING: usize = 4096;
/// Rows per query, for backlog pages and poller rounds.
const PAGE: u64 = 500;
/// Streams one process holds at once; more are refused until one ends.
pub const MAX_STREAMS: usize = 1024;
/// After a failed poll, the next waits at least this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One ended session, as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationView {
    pub cursor: i64,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub revoked_at: DateTime<Utc>,
    /// When the session's last access token expires.
    pub not_after: DateTime<Utc>,
}

impl From<RevocationRecord> for RevocationView {
    fn from(r: RevocationRecord) -> Self {
        Self {
            cursor: r.cursor,
            session_id: SessionId(r.session_id),
            user_id: UserId(r.user_id),
            revoked_at: r.revoked_at,
            not_after: r.not_after,
        }
    }
}

/// What a stream yields: revocations in cursor order, and at most one error, after which it ends.
pub type RevocationStream = Pin<Box<dyn Stream<Item = Result<RevocationView, AuthError>> + Send>>;

/// A started watch.
pub struct RevocationWatch {
    /// The cursor of the last backlog entry (0 for none): a caller that has read it (or asked
    /// from a cursor at or past it) has caught up.
    pub backlog_end: i64,
    pub stream: RevocationStream,
}

/// The feed's shared half: what streams subscribe to.
#[derive(Clone)]
pub struct RevocationFeed {
    store: Store,
    ring: broadcast::Sender<RevocationView>,
    /// Becomes true when authd stops: every stream ends with UNAVAILABLE.
    stopping: watch::Sender<bool>,
    streams: Arc<Semaphore>,
}

/// The feed's poller, run once per process (`RevocationPoller::run`).
pub struct RevocationPoller {
    feed: RevocationFeed,
    /// The newest cursor handed to the ring.
    last: i64,
}

impl RevocationFeed {
    /// The feed and its poller, which starts after the newest revocation there is now. Called
    /// before the port serves: a stream's backlog, read later, holds everything up to here.
    pub async fn start(store: Store) -> Result<(Self, RevocationPoller), AuthError> {
        let last = store.latest_revocation_cursor().await?;
        let feed = Self {
            store,
            ring: broadcast::channel(RING).0,
            stopping: watch::channel(false).0,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        };
        let poller = RevocationPoller {
            feed: feed.clone(),
            last,
        };
        Ok((feed, poller))
    }

    /// A stream of the revocations after `after_cursor` that still matter, then every new one.
    pub async fn watch(&self, after_cursor: i64) -> Result<RevocationWatch, AuthError> {
        if after_cursor < 0 {
            return Err(vec![FieldViolation::new("after_cursor", "must be 0 or more")].into());
        }
        let permit = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| AuthError::TooManyStreams)?;
        // Subscribed before the backlog is read, so nothing falls between the two.
        let ring = self.ring.subscribe();
        let stopping = self.stopping.subscribe();
        let now = Utc::now();
        let latest = self.store.latest_revocation_cursor().await?;
        if after_cursor > latest {
            return Err(AuthError::CursorAhead { latest });
        }
        let backlog_end = self.store.backlog_end(after_cursor, now).await?;
        let stream = Watcher {
            store: self.store.clone(),
            last: after_cursor,
            now,
            ring,
            stopping,
            _permit: permit,
        }
        .into_stream();
        Ok(RevocationWatch {
            backlog_end,
            stream,
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        MAX_STREAMS - self.streams.available_permits()
    }
}

impl RevocationPoller {
    /// Reads new revocations into the ring until `shutdown`, then ends every stream.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = self.feed.store.revocations_recorded() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            if let Err(err) = self.round().await {
                tracing::warn!(error = %err, "reading new revocations failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    () = tokio::time::sleep(RETRY_AFTER) => {}
                }
            }
        }
        self.feed.stopping.send_replace(true);
    }

    /// Hands every revocation committed since the last round to the ring, in cursor order.
    async fn round(&mut self) -> Result<(), AuthError> {
        loop {
            let page = self
                .feed
                .store
                .revocations_after(self.last, Utc::now(), PAGE)
                .await?;
            let full = page.len() as u64 == PAGE;
            for record in page {
                self.last = record.cursor;
                // No stream listening is not an error: the next one reads its backlog.
                let _ = self.feed.ring.send(record.into());
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// One stream's state.
struct Watcher {
    store: Store,
    /// The cursor of the last revocation this stream yielded (or the caller's cursor).
    last: i64,
    /// The backlog is what was relevant at the start.
    now: DateTime<Utc>,
    ring: broadcast::Receiver<RevocationView>,
    stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// What the live phase of a stream got next.
enum Next {
    Revocation(RevocationView),
    End(AuthError),
}

impl Watcher {
    fn into_stream(mut self) -> RevocationStream {
        Box::pin(async_stream::stream! {
            // The backlog, page by page, only as fast as the caller reads.
            loop {
                if *self.stopping.borrow() {
                    yield Err(AuthError::ShuttingDown { resume_after: self.last });
                    return;
                }
                let page = match self.store.revocations_after(self.last, self.now, PAGE).await {
                    Ok(page) => page,
                    Err(err) => {
                        yield Err(err.into());
                        return;
                    }
                };
                let full = page.len() as u64 == PAGE;
                for record in page {
                    self.last = record.cursor;
                    yield Ok(RevocationView::from(record));
                }
                if !full {
                    break;
                }
            }
            loop {
                match self.next_live().await {
                    Next::Revocation(revocation) => yield Ok(revocation),
                    Next::End(err) => {
                        yield Err(err);
                        return;
                    }
                }
            }
        })
    }

    async fn next_live(&mut self) -> Next {
        loop {
            let received = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|stop| *stop) => {
                    return Next::End(AuthError::ShuttingDown { resume_after: self.last });
                }
                received = self.ring.recv() => received,
            };
            match received {
                Ok(revocation) if revocation.cursor > self.last => {
                    self.last = revocation.cursor;
                    return Next::Revocation(revocation);
                }
                // Already in the backlog.
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Next::End(AuthError::WatchTooSlow {
                        resume_after: self.last,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Next::End(AuthError::ShuttingDown {
                        resume_after: self.last,
                    });
                }
            }
        }
    }
}
