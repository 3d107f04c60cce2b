//! The key life cycle's decisions, as pure functions of the keys' rows, the clock and the
//! settings: which state each key is in, and which steps are due.

use super::queries::{KeyChange, KeyMeta};
use crate::crypto::keys::SigningAlg;
use crate::domain::after;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A retiring key stays published this much longer than its last token lives: room for clocks
/// of replicas that disagree a little, and for a replica that signed just before it reloaded.
pub const RETIRE_MARGIN: Duration = Duration::from_secs(60);

/// The life-cycle settings (AUTHD_SIGNING_ALG, AUTHD_KEY_*), and the access token lifetime,
/// which decides how long a retiring key stays published.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub algorithm: SigningAlg,
    pub publish_lead: Duration,
    /// `ZERO`: no automatic rotation.
    pub rotation_interval: Duration,
    pub access_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    Retiring,
    Retired,
}

impl KeyState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    pub(super) fn published(self) -> bool {
        !matches!(self, Self::Retired)
    }
}

/// A key and where it stands at one moment.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub meta: KeyMeta,
    pub state: KeyState,
    /// For a retiring key: when it leaves the JWK Set.
    pub published_until: Option<DateTime<Utc>>,
}

/// Where each key stands at `now`, in the order they sign. A key whose retiring time is over
/// is `Retired` even before its row says so.
pub fn statuses(keys: &[KeyMeta], now: DateTime<Utc>, access_ttl: Duration) -> Vec<KeyStatus> {
    let mut keys: Vec<&KeyMeta> = keys.iter().collect();
    keys.sort_by(|a, b| {
        (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid))
    });
    let signed: Vec<&KeyMeta> = keys
        .iter()
        .copied()
        .filter(|k| k.retired_at.is_none() && k.activates_at <= now)
        .collect();
    keys.iter()
        .map(|key| {
            let (state, published_until) = if key.retired_at.is_some() {
                (KeyState::Retired, None)
            } else if key.activates_at > now {
                (KeyState::Next, None)
            } else {
                let position = signed.iter().position(|k| k.kid == key.kid);
                match position.and_then(|i| signed.get(i + 1)) {
                    None => (KeyState::Active, None),
                    Some(successor) => {
                        let until = after(successor.activates_at, access_ttl + RETIRE_MARGIN);
                        let state = if now < until {
                            KeyState::Retiring
                        } else {
                            KeyState::Retired
                        };
                        (state, Some(until))
                    }
                }
            };
            KeyStatus {
                meta: (*key).clone(),
                state,
                published_until,
            }
        })
        .collect()
}

/// What the keys need at `now`: a key whose retiring time is over is retired; with no active
/// key, the earliest `next` key is brought forward or, without one, a key is made that signs at
/// once; an active key older than the rotation interval (less the lead) gets a `next` key.
pub(super) enum Step {
    Make { activates_at: DateTime<Utc> },
    BringForward { kid: String },
    Retire { kid: String },
}

pub(super) fn due_steps(keys: &[KeyMeta], now: DateTime<Utc>, policy: &KeyPolicy) -> Vec<Step> {
    let statuses = statuses(keys, now, policy.access_ttl);
    let mut steps: Vec<Step> = statuses
        .iter()
        .filter(|s| s.state == KeyState::Retired && s.meta.retired_at.is_none())
        .map(|s| Step::Retire {
            kid: s.meta.kid.clone(),
        })
        .collect();
    let active = statuses.iter().find(|s| s.state == KeyState::Active);
    let next = statuses.iter().find(|s| s.state == KeyState::Next);
    match (active, next) {
        (None, Some(next)) => steps.push(Step::BringForward {
            kid: next.meta.kid.clone(),
        }),
        (None, None) => steps.push(Step::Make { activates_at: now }),
        (Some(active), None) if !policy.rotation_interval.is_zero() => {
            let due = after(
                active.meta.activates_at,
                policy.rotation_interval.saturating_sub(policy.publish_lead),
            );
            if now >= due {
                steps.push(Step::Make {
                    activates_at: after(now, policy.publish_lead),
                });
            }
        }
        (Some(_), _) => {}
    }
    steps
}

pub(super) fn needs_key(steps: &[Step]) -> bool {
    steps.iter().any(|step| matches!(step, Step::Make { .. }))
}

/// Which key signs after a retirement and the steps it caused.
pub(super) fn signing_after(
    after: &[KeyMeta],
    steps: &[Step],
    changes: &[KeyChange],
    now: DateTime<Utc>,
    policy: &KeyPolicy,
) -> Option<String> {
    for step in steps {
        if let Step::BringForward { kid } = step {
            return Some(kid.clone());
        }
    }
    for change in changes {
        if let KeyChange::Insert { meta, .. } = change
            && meta.activates_at <= now
        {
            return Some(meta.kid.clone());
        }
    }
    statuses(after, now, policy.access_ttl)
        .into_iter()
        .find(|s| s.state == KeyState::Active)
        .map(|s| s.meta.kid)
}

/// The key life cycle's settings, as `serve` and `authd keys` both read them.
pub fn key_policy_of(keys: &crate::config::KeySettings, access_ttl: Duration) -> KeyPolicy {
    KeyPolicy {
        algorithm: keys.signing_alg,
        publish_lead: keys.key_publish_lead,
        rotation_interval: keys.key_rotation_interval,
        access_ttl,
    }
}
