//! Revocation-aware local mode: a [`crate::LocalVerifier`] that also holds authd's
//! WatchRevocations stream refuses the tokens of a logged-out session within a second, with no
//! call to authd per token.
//!
//! The set of revoked sessions is in `revoked_set.rs`; the stream that fills it is in
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
use crate::revocation_settings::{RevocationSettings, WhenDisconnected};
use crate::revocation_stream::Stream;
use crate::revoked_set::{Link, State};
use crate::{Claims, Refusal, RemoteSettings, RemoteVerifier, Verify};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
        let stream = Stream::new(&settings)?;
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
