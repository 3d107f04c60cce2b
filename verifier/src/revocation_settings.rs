//! The settings of revocation-aware local mode: where authd's WatchRevocations stream comes
//! from, and what a verifier does while it is down.

use std::time::Duration;

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
    /// Refuse every token with [`Refusal::Unavailable`](crate::Refusal::Unavailable) (the caller may retry) until the stream
    /// has caught up again. For services that must never add load to authd.
    FailClosed,
    /// Ask authd's Introspect about every token (no cache), as [`crate::RemoteVerifier`] does,
    /// until the stream has caught up again.
    #[default]
    Introspect,
}
