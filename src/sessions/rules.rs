//! The decisions about a session's life, as pure functions of the records and the clock: no
//! database, no side effects, so each can be read (and tested) on its own.

use crate::db::{RefreshTokenRecord, SessionRecord};
use crate::domain::after;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Not revoked and not expired at `now`.
pub fn is_live(session: &SessionRecord, now: DateTime<Utc>) -> bool {
    session.revoked_at.is_none() && session.expires_at > now
}

/// When a session that started at `started` ends if it is used at `now`: the idle lifetime
/// from now, but never past the absolute lifetime from its start.
pub fn expiry(
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    idle: Duration,
    absolute: Duration,
) -> DateTime<Utc> {
    after(now, idle).min(after(started, absolute))
}

/// What a presented refresh token leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The token, its session or the session's lifetime is over: refused, nothing changes.
    Refuse,
    /// A current token: spend it and hand out the next.
    Rotate,
    /// A spent token presented again within the reuse grace (a client that retried after a
    /// lost answer): another token is added to the session.
    Grace,
    /// A spent token presented again after the grace: taken as theft, the session ends
    /// (RFC 9700 §4.14.2).
    EndSession,
}

/// The refresh reuse policy in one place. `spent_at` is when the token was spent: as read, or
/// `now` when a concurrent refresh spent it first (losing that race is reuse as well).
/// `expires_at` is when the session would end if refreshed now (see [`expiry`]).
pub fn decide(
    token: &RefreshTokenRecord,
    session: &SessionRecord,
    spent_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    grace: Duration,
) -> Decision {
    if !is_live(session, now) || token.expires_at <= now || expires_at <= now {
        return Decision::Refuse;
    }
    match spent_at {
        None => Decision::Rotate,
        Some(spent_at) => {
            let window = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
            if !grace.is_zero() && now - spent_at <= window {
                Decision::Grace
            } else {
                Decision::EndSession
            }
        }
    }
}

/// Whether `token` is its session's current refresh token at `now` (what logging out of every
/// session needs: a spent or expired one does not prove the caller is the session's holder).
pub fn is_current(token: &RefreshTokenRecord, session: &SessionRecord, now: DateTime<Utc>) -> bool {
    token.spent_at.is_none() && token.expires_at > now && is_live(session, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    fn session(expires_at: DateTime<Utc>, revoked_at: Option<DateTime<Utc>>) -> SessionRecord {
        SessionRecord {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            created_at: at(0),
            last_used_at: at(0),
            expires_at,
            revoked_at,
            user_agent: String::new(),
            ip: String::new(),
            client_id: None,
            amr: None,
        }
    }

    fn token(expires_at: DateTime<Utc>, spent_at: Option<DateTime<Utc>>) -> RefreshTokenRecord {
        RefreshTokenRecord {
            id: Uuid::nil(),
            token_hash: Vec::new(),
            session_id: Uuid::nil(),
            created_at: at(0),
            expires_at,
            spent_at,
        }
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn a_current_token_of_a_live_session_rotates() {
        let (s, t) = (session(at(100), None), token(at(100), None));
        assert_eq!(
            decide(&t, &s, None, at(50), at(100), GRACE),
            Decision::Rotate
        );
    }

    #[test]
    fn ended_sessions_expired_tokens_and_past_lifetimes_are_refused() {
        let live = session(at(100), None);
        let fresh = token(at(100), None);
        let revoked = session(at(100), Some(at(10)));
        assert_eq!(
            decide(&fresh, &revoked, None, at(50), at(100), GRACE),
            Decision::Refuse
        );
        let expired = token(at(40), None);
        assert_eq!(
            decide(&expired, &live, None, at(50), at(100), GRACE),
            Decision::Refuse
        );
        // Past the absolute lifetime, however recently refreshed.
        assert_eq!(
            decide(&fresh, &live, None, at(50), at(50), GRACE),
            Decision::Refuse
        );
        assert!(
            !is_live(&session(at(50), None), at(50)),
            "expiry is exclusive"
        );
    }

    #[test]
    fn reuse_within_the_grace_adds_a_token_and_after_it_ends_the_session() {
        let (s, t) = (session(at(100), None), token(at(100), Some(at(40))));
        assert_eq!(
            decide(&t, &s, Some(at(40)), at(50), at(100), GRACE),
            Decision::Grace
        );
        assert_eq!(
            decide(&t, &s, Some(at(40)), at(51), at(100), GRACE),
            Decision::EndSession
        );
        assert_eq!(
            decide(&t, &s, Some(at(50)), at(50), at(100), Duration::ZERO),
            Decision::EndSession,
            "no grace: every reuse is theft"
        );
    }

    #[test]
    fn only_an_unspent_unexpired_token_of_a_live_session_is_current() {
        let s = session(at(100), None);
        assert!(is_current(&token(at(100), None), &s, at(50)));
        assert!(!is_current(&token(at(100), Some(at(10))), &s, at(50)));
        assert!(!is_current(&token(at(50), None), &s, at(50)));
        assert!(!is_current(
            &token(at(100), None),
            &session(at(100), Some(at(1))),
            at(50)
        ));
    }
}
