//! The background task that holds authd's WatchRevocations stream and fills the revoked set.
//!
//! It asks for every revocation after the last cursor it has seen, learns from the response's
//! `x-authd-backlog-end` metadata when it has caught up, and after any break (authd restarted,
//! the network cut, a slow read cut off with RESOURCE_EXHAUSTED) opens a new connection and
//! resumes from its cursor, waiting 100 ms after a first failure and doubling up to 2 s. A
//! cursor authd never gave out (OUT_OF_RANGE: the database was replaced) starts it again from 0,
//! keeping what it has. HTTP/2 keep-alive pings every second, so a silently cut network is
//! noticed within about 3 s. The task holds the state only by `Weak` and ends when the verifier
//! is dropped.

use crate::client::{self, CONNECT_TIMEOUT, VerifierError, error_chain, pb};
use crate::revocation_settings::RevocationSettings;
use crate::revoked_set::State;
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

/// The response metadata naming the cursor of the last backlog entry.
pub(crate) const BACKLOG_END: &str = "x-authd-backlog-end";
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often entries past their deadline are forgotten.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);
/// A Revocation is under 200 bytes; anything much larger is not one.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Kept this long when a Revocation lacks `not_after` (authd always sends it): longer than any
/// sensible access-token lifetime.
const MISSING_NOT_AFTER: i64 = 24 * 60 * 60;

/// How one stream ended. Either way the next one opens after the backoff: 100 ms after a
/// stream that was open, so a server that cuts every stream at once cannot make a busy loop.
enum End {
    /// Resume from the cursor.
    Resume,
    /// The cursor is ahead of the database: start again from 0.
    Restart,
}

/// What the task needs to open streams.
pub(crate) struct Stream {
    endpoint: Endpoint,
    authorization: Option<AsciiMetadataValue>,
}

impl Stream {
    pub(crate) fn new(settings: &RevocationSettings) -> Result<Self, VerifierError> {
        tokio::runtime::Handle::try_current().map_err(|_| VerifierError::NoRuntime)?;
        let endpoint = Endpoint::new(settings.endpoint.clone())
            .map_err(|_| VerifierError::Endpoint(settings.endpoint.clone()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        Ok(Self {
            endpoint,
            authorization: client::basic_authorization(settings.client.as_ref()),
        })
    }

    /// The task: the stream and the pruning, until `stopped` fires (the state was dropped).
    pub(crate) async fn run(self, state: Weak<State>, stopped: oneshot::Receiver<()>) {
        let prune = async {
            loop {
                tokio::time::sleep(PRUNE_INTERVAL).await;
                match state.upgrade() {
                    Some(state) => state.prune(crate::checks::unix_now()),
                    None => return,
                }
            }
        };
        let stopped = async {
            let _ = stopped.await;
        };
        first_of(stopped, first_of(prune, self.follow(&state))).await;
    }

    /// Opens stream after stream, forever.
    async fn follow(&self, state: &Weak<State>) {
        let mut cursor: i64 = 0;
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            if !first {
                match state.upgrade() {
                    Some(state) => state.count_reconnect(),
                    None => return,
                }
            }
            first = false;
            let end = self.one_stream(state, &mut cursor, &mut failures).await;
            let Some(strong) = state.upgrade() else {
                return;
            };
            strong.lost();
            drop(strong);
            if let End::Restart = end {
                cursor = 0;
            }
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << failures.saturating_sub(1).min(5))
                .min(MAX_BACKOFF);
            tokio::time::sleep(backoff).await;
        }
    }

    /// One connection and one stream: from `cursor` until it breaks. `failures` counts the
    /// attempts in a row that got no stream (for the backoff and the logs).
    async fn one_stream(&self, state: &Weak<State>, cursor: &mut i64, failures: &mut u32) -> End {
        let endpoint = self.endpoint.uri().to_string();
        let channel = match self.endpoint.connect().await {
            Ok(channel) => channel,
            Err(err) => {
                *failures = failures.saturating_add(1);
                log_failure(*failures, &endpoint, &error_chain(&err));
                return End::Resume;
            }
        };
        let mut request = tonic::Request::new(pb::WatchRevocationsRequest {
            after_cursor: *cursor,
        });
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        let mut client = pb::auth_service_client::AuthServiceClient::<Channel>::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let response = match client.watch_revocations(request).await {
            Ok(response) => response,
            Err(status) => return self.ended(status, &endpoint, *cursor, failures, false),
        };
        let backlog_end = response
            .metadata()
            .get(BACKLOG_END)
            .and_then(|value| value.to_str().ok()?.trim().parse::<i64>().ok());
        let Some(backlog_end) = backlog_end else {
            *failures = failures.saturating_add(1);
            log_failure(
                *failures,
                &endpoint,
                &format!("the answer has no valid {BACKLOG_END} metadata"),
            );
            return End::Resume;
        };
        if *failures > 0 {
            tracing::info!(
                "revocation stream from {endpoint} open again after {} failed attempts, from \
                 cursor {cursor}",
                *failures
            );
        } else {
            tracing::info!("revocation stream from {endpoint} open from cursor {cursor}");
        }
        *failures = 0;
        let mut caught_up = false;
        let mut catch_up = |cursor: i64, state: &Arc<State>| {
            if !caught_up && cursor >= backlog_end {
                caught_up = true;
                state.caught_up();
                tracing::debug!("revocation stream from {endpoint} caught up at cursor {cursor}");
            }
        };
        match state.upgrade() {
            Some(state) => catch_up(*cursor, &state),
            None => return End::Resume,
        }
        let mut stream = response.into_inner();
        loop {
            let message = stream.message().await;
            let Some(state) = state.upgrade() else {
                return End::Resume;
            };
            match message {
                Ok(Some(revocation)) => {
                    apply(&state, &revocation, cursor);
                    catch_up(*cursor, &state);
                }
                Ok(None) => {
                    tracing::info!(
                        "revocation stream from {endpoint} ended at cursor {cursor}; resuming"
                    );
                    return End::Resume;
                }
                Err(status) => return self.ended(status, &endpoint, *cursor, failures, true),
            }
        }
    }

    /// What to do after the stream (or the call) ended with `status`.
    fn ended(
        &self,
        status: tonic::Status,
        endpoint: &str,
        cursor: i64,
        failures: &mut u32,
        streaming: bool,
    ) -> End {
        match status.code() {
            tonic::Code::OutOfRange => {
                tracing::warn!(
                    "authd at {endpoint} never gave out revocation cursor {cursor} (a new \
                     database?): reading every revocation again from 0, keeping those known"
                );
                End::Restart
            }
            tonic::Code::ResourceExhausted if streaming => {
                tracing::info!(
                    "authd at {endpoint} cut the revocation stream off as too slow a reader: \
                     resuming from cursor {cursor}"
                );
                End::Resume
            }
            _ => {
                *failures = failures.saturating_add(1);
                let cause = std::error::Error::source(&status)
                    .map(|cause| format!(" ({})", error_chain(cause)))
                    .unwrap_or_default();
                let hint = if status.code() == tonic::Code::Unauthenticated {
                    "; check RevocationSettings::client against AUTHD_INTROSPECT_CLIENTS"
                } else {
                    ""
                };
                log_failure(
                    *failures,
                    endpoint,
                    &format!("{:?}: {}{cause}{hint}", status.code(), status.message()),
                );
                End::Resume
            }
        }
    }
}

/// Runs `a` and `b` until either ends (tokio's `select!` would need its macros feature and a
/// proc-macro crate in every user's build).
async fn first_of(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Puts one revocation into the set and moves the cursor on (never back).
fn apply(state: &State, revocation: &pb::Revocation, cursor: &mut i64) {
    let now = crate::checks::unix_now();
    let not_after = revocation.not_after.as_ref().map_or(
        now.saturating_add(MISSING_NOT_AFTER),
        // Rounded up: a token's `exp` is whole seconds, and must not outlive its entry.
        |at| at.seconds.saturating_add(i64::from(at.nanos > 0)),
    );
    match uuid::Uuid::try_parse(&revocation.session_id) {
        Ok(session) => state.insert(session, not_after, now),
        // No token can carry it: Claims needs a UUID `sid`.
        Err(_) => tracing::debug!(
            cursor = revocation.cursor,
            "revocation of a non-UUID session"
        ),
    }
    *cursor = (*cursor).max(revocation.cursor);
}

/// A warning for the first failure in a row and every 30th after it; debug for the rest, so an
/// authd that stays down does not fill the log.
fn log_failure(failures: u32, endpoint: &str, why: &str) {
    if failures == 1 || failures.is_multiple_of(30) {
        tracing::warn!(
            "revocation stream from {endpoint} failed (attempt {failures}): {why}; retrying"
        );
    } else {
        tracing::debug!(
            "revocation stream from {endpoint} failed (attempt {failures}): {why}; retrying"
        );
    }
}
