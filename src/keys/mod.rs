//! The signing key life cycle, shared by every replica and the `authd keys` commands:
//!
//! | state | in the JWK Set | signs |
//! |---|---|---|
//! | `next` | yes, for `AUTHD_KEY_PUBLISH_LEAD` before it signs | no |
//! | `active` | yes | yes: the key with the latest `activates_at` that has passed |
//! | `retiring` | yes, until every token it signed has expired | no |
//! | `retired` | no (its private half is erased) | no |
//!
//! States follow from each key's `activates_at` and the clock, so every replica signs with the
//! same key at the same moment without asking the others; the rows change only when a key is
//! made, brought forward or retired. Those changes are made under one lock
//! ([`Store::change_signing_keys`]), after reading the rows again, so two replicas (or a
//! replica and the CLI) never both make a key for one rotation.

mod manager;
pub mod queries;
mod rules;

pub use manager::KeyManager;
use rules::Step;
#[cfg(test)]
use rules::due_steps;
pub use rules::{KeyPolicy, KeyState, KeyStatus, RETIRE_MARGIN, key_policy_of, statuses};

use crate::crypto::keys::{KeyPair, KeyRing, KeySet, ScheduledKey, SigningAlg};
use crate::crypto::seal::Sealer;
use crate::db::Store;
use crate::domain::after;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use queries::{KeyChange, KeyMeta, KeyRow};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What `authd keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// A new `next` key, published now, signing from `activates_at`.
    Added {
        kid: String,
        algorithm: SigningAlg,
        activates_at: DateTime<Utc>,
    },
    /// A `next` key of the configured algorithm was already waiting: nothing to do.
    AlreadyPending {
        kid: String,
        activates_at: DateTime<Utc>,
    },
}

/// What `authd keys retire` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    Retired {
        kid: String,
        /// The key that signs now, when the retired key was the one signing.
        now_signing: Option<String>,
    },
    AlreadyRetired {
        kid: String,
    },
}

/// Runs [`KeyManager::reload`] every interval until shutdown, so a rotation made anywhere is
/// picked up without a restart.
pub struct KeyReloader {
    pub keys: Arc<KeyManager>,
    pub interval: Duration,
}

impl KeyReloader {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
            match self.keys.reload().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("signing keys reloaded again");
                }
                Ok(()) => {}
                // Once per outage: the ring in hand keeps signing and verifying meanwhile.
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(
                        error = %crate::telemetry::error_chain(&err),
                        "reloading the signing keys failed; keeping the keys in hand"
                    );
                }
                Err(_) => {}
            }
        }
    }
}

/// `authd keys reseal`: every live key sealed with `new` (in the clear when `None`), opened
/// with `old` (keys in the clear need none). All or nothing: a key neither key opens stops it
/// before anything changes. Returns how many keys were resealed.
pub async fn reseal(
    store: &Store,
    old: Option<&Sealer>,
    new: Option<&Sealer>,
) -> anyhow::Result<usize> {
    store
        .change_signing_keys(|rows| {
            let mut changes = Vec::new();
            for row in rows.iter().filter(|r| r.meta.retired_at.is_none()) {
                let meta = &row.meta;
                if meta.sealed_with.as_deref() == new.map(Sealer::id) {
                    continue;
                }
                let what = sealed_name(&meta.kid);
                let clear = match (&meta.sealed_with, old) {
                    (None, _) => row.private_key.clone(),
                    (Some(id), Some(old)) if id == old.id() => old.open(&what, &row.private_key)?,
                    (Some(id), _) => anyhow::bail!(
                        "signing key {} is sealed with the key-encryption key {id}, which is \
                         neither the old key ({}) nor the new one ({})",
                        meta.kid,
                        old.map_or("none given", Sealer::id),
                        new.map_or("none: store in the clear", Sealer::id),
                    ),
                };
                let algorithm = algorithm_of(meta)?;
                KeyPair::from_parts(meta.kid.clone(), algorithm, clear.clone())?;
                let private_key = match new {
                    Some(new) => new.seal(&what, &clear)?,
                    None => clear,
                };
                changes.push(KeyChange::Reseal {
                    kid: meta.kid.clone(),
                    private_key,
                    sealed_with: new.map(|s| s.id().to_owned()),
                });
            }
            let count = changes.len();
            Ok((changes, count))
        })
        .await
}

/// Every key and where it stands now (`authd keys list`).
pub async fn list(store: &Store, access_ttl: Duration) -> anyhow::Result<Vec<KeyStatus>> {
    let rows = store.signing_keys().await?;
    Ok(statuses(&metas(&rows), Utc::now(), access_ttl))
}

fn is_outage(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<crate::db::StoreError>(),
        Some(crate::db::StoreError::Unavailable(_))
    )
}

/// The name a key's private half is sealed under (the AEAD's associated data).
fn sealed_name(kid: &str) -> String {
    format!("signing key {kid}")
}

fn metas(rows: &[KeyRow]) -> Vec<KeyMeta> {
    rows.iter().map(|row| row.meta.clone()).collect()
}

fn algorithm_of(meta: &KeyMeta) -> anyhow::Result<SigningAlg> {
    SigningAlg::from_name(&meta.algorithm).ok_or_else(|| {
        anyhow::anyhow!(
            "signing key {} has the algorithm {:?}, which this authd does not know",
            meta.kid,
            meta.algorithm
        )
    })
}

/// Checks that `sealer` opens every live key, and seals those stored in the clear when it is
/// set. Errors name the key-encryption keys by id, never by value.
fn sealing_changes(rows: &[KeyRow], sealer: Option<&Sealer>) -> anyhow::Result<Vec<KeyChange>> {
    let mut changes = Vec::new();
    for row in rows.iter().filter(|r| r.meta.retired_at.is_none()) {
        let meta = &row.meta;
        match (&meta.sealed_with, sealer) {
            (None, None) => {}
            (None, Some(sealer)) => changes.push(KeyChange::Reseal {
                kid: meta.kid.clone(),
                private_key: sealer.seal(&sealed_name(&meta.kid), &row.private_key)?,
                sealed_with: Some(sealer.id().to_owned()),
            }),
            (Some(id), None) => anyhow::bail!(
                "signing key {} is sealed (key-encryption key {id}) but no \
                 AUTHD_KEY_ENCRYPTION_KEY is set: set the key it was sealed with",
                meta.kid
            ),
            (Some(id), Some(sealer)) if id != sealer.id() => anyhow::bail!(
                "signing key {} is sealed with the key-encryption key {id}, but \
                 AUTHD_KEY_ENCRYPTION_KEY is the key {}: set the key it was sealed with, or move \
                 the keys to the new one with `authd keys reseal`",
                meta.kid,
                sealer.id()
            ),
            (Some(_), Some(_)) => {}
        }
    }
    Ok(changes)
}

/// The changes that carry out `steps`.
fn realise(
    steps: &[Step],
    policy: &KeyPolicy,
    sealer: Option<&Sealer>,
    now: DateTime<Utc>,
    spare: &mut Option<KeyPair>,
) -> anyhow::Result<Vec<KeyChange>> {
    let mut changes = Vec::with_capacity(steps.len());
    for step in steps {
        changes.push(match step {
            Step::Make { activates_at } => {
                let pair = take_or_make(spare, policy.algorithm)?;
                new_key(pair, sealer, *activates_at, now)?.1
            }
            Step::BringForward { kid } => KeyChange::Activate {
                kid: kid.clone(),
                at: now,
            },
            Step::Retire { kid } => KeyChange::Retire {
                kid: kid.clone(),
                at: now,
            },
        });
    }
    Ok(changes)
}

/// A new key pair, made on a blocking thread (RSA key generation takes a while).
async fn generate(algorithm: SigningAlg) -> anyhow::Result<KeyPair> {
    tokio::task::spawn_blocking(move || KeyPair::generate(algorithm))
        .await
        .map_err(|e| anyhow::anyhow!("making a signing key stopped: {e}"))?
}

/// The key made in advance when it is of the algorithm wanted, else a new one.
fn take_or_make(spare: &mut Option<KeyPair>, algorithm: SigningAlg) -> anyhow::Result<KeyPair> {
    match spare.take() {
        Some(pair) if pair.algorithm() == algorithm => Ok(pair),
        _ => KeyPair::generate(algorithm),
    }
}

/// A new key's row: its kid, and the insert (its private half sealed when a sealer is set).
fn new_key(
    pair: KeyPair,
    sealer: Option<&Sealer>,
    activates_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<(String, KeyChange)> {
    let algorithm = pair.algorithm();
    let public_key = serde_json::to_vec(&pair.public_jwk()?)?;
    let (private_key, sealed_with) = match sealer {
        Some(sealer) => (
            sealer.seal(&sealed_name(pair.kid()), pair.private_der())?,
            Some(sealer.id().to_owned()),
        ),
        None => (pair.private_der().to_vec(), None),
    };
    let kid = pair.kid().to_owned();
    let meta = KeyMeta {
        kid: kid.clone(),
        algorithm: algorithm.name().to_owned(),
        created_at: now,
        activates_at,
        retired_at: None,
        sealed_with,
    };
    Ok((
        kid,
        KeyChange::Insert {
            meta,
            private_key,
            public_key,
        },
    ))
}

fn log_steps(steps: &[Step]) {
    for step in steps {
        match step {
            Step::Make { activates_at } => {
                tracing::info!(%activates_at, "made a new signing key")
            }
            Step::BringForward { kid } => {
                tracing::warn!(%kid, "no key was signing: brought the next key forward")
            }
            Step::Retire { kid } => {
                tracing::info!(%kid, "retired a signing key: every token it signed has expired")
            }
        }
    }
}

/// The key set of the published keys in the database at `now`, and the live keys it came from.
async fn build(
    store: &Store,
    policy: &KeyPolicy,
    sealer: Option<&Sealer>,
    now: DateTime<Utc>,
) -> anyhow::Result<(KeySet, Vec<KeyMeta>)> {
    let rows = store.signing_keys().await?;
    let statuses = statuses(&metas(&rows), now, policy.access_ttl);
    let mut published = Vec::new();
    for status in statuses.iter().filter(|s| s.state.published()) {
        let Some(row) = rows.iter().find(|r| r.meta.kid == status.meta.kid) else {
            continue;
        };
        let meta = &row.meta;
        let clear = match (&meta.sealed_with, sealer) {
            (None, _) => row.private_key.clone(),
            (Some(id), Some(sealer)) if id == sealer.id() => {
                sealer.open(&sealed_name(&meta.kid), &row.private_key)?
            }
            (Some(id), _) => anyhow::bail!(
                "signing key {} is sealed with the key-encryption key {id}, which is not \
                 AUTHD_KEY_ENCRYPTION_KEY",
                meta.kid
            ),
        };
        published.push(ScheduledKey {
            pair: KeyPair::from_parts(meta.kid.clone(), algorithm_of(meta)?, clear)?,
            activates_at_ms: meta.activates_at.timestamp_millis(),
        });
    }
    let set = KeySet::new(&published)?;
    let mut live: Vec<KeyMeta> = metas(&rows)
        .into_iter()
        .filter(|m| m.retired_at.is_none())
        .collect();
    live.sort_by(|a, b| a.kid.cmp(&b.kid));
    Ok((set, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(1_000_000 + minutes)
    }

    fn key(kid: &str, activates: i64) -> KeyMeta {
        KeyMeta {
            kid: kid.into(),
            algorithm: "EdDSA".into(),
            created_at: at(activates - 20),
            activates_at: at(activates),
            retired_at: None,
            sealed_with: None,
        }
    }

    fn policy() -> KeyPolicy {
        KeyPolicy {
            algorithm: SigningAlg::EdDSA,
            publish_lead: 20 * MIN,
            rotation_interval: 30 * 24 * 60 * MIN,
            access_ttl: 15 * MIN,
        }
    }

    fn states(keys: &[KeyMeta], now: i64) -> Vec<(String, &'static str)> {
        statuses(keys, at(now), 15 * MIN)
            .into_iter()
            .map(|s| (s.meta.kid, s.state.name()))
            .collect()
    }

    #[test]
    fn a_key_is_next_then_active_then_retiring_until_its_tokens_expired() {
        let keys = [key("b", 100), key("a", 0)];
        assert_eq!(
            states(&keys, 50),
            [("a".into(), "active"), ("b".into(), "next")]
        );
        assert_eq!(
            states(&keys, 100),
            [("a".into(), "retiring"), ("b".into(), "active")]
        );
        // 15 minutes of access token and the margin.
        assert_eq!(
            states(&keys, 115),
            [("a".into(), "retiring"), ("b".into(), "active")]
        );
        assert_eq!(
            states(&keys, 116),
            [("a".into(), "retired"), ("b".into(), "active")]
        );
        let until = statuses(&keys, at(100), 15 * MIN)[0].published_until;
        assert_eq!(until, Some(at(115) + chrono::Duration::seconds(60)));
    }

    #[test]
    fn a_retired_key_is_retired_whatever_the_times_and_the_previous_key_signs_again() {
        let mut keys = vec![key("a", 0), key("b", 100)];
        keys[1].retired_at = Some(at(101));
        assert_eq!(
            states(&keys, 102),
            [("a".into(), "active"), ("b".into(), "retired")]
        );
    }

    fn steps(keys: &[KeyMeta], now: i64, policy: &KeyPolicy) -> Vec<String> {
        due_steps(keys, at(now), policy)
            .into_iter()
            .map(|s| match s {
                Step::Make { activates_at } => {
                    format!("make {}", (activates_at - at(0)).num_minutes())
                }
                Step::BringForward { kid } => format!("bring {kid} forward"),
                Step::Retire { kid } => format!("retire {kid}"),
            })
            .collect()
    }

    #[test]
    fn rotation_is_due_one_lead_before_the_interval_ends_and_only_once() {
        let month = 30 * 24 * 60;
        let keys = vec![key("a", 0)];
        assert!(steps(&keys, month - 21, &policy()).is_empty());
        assert_eq!(
            steps(&keys, month - 20, &policy()),
            [format!("make {month}")]
        );
        let mut with_next = keys.clone();
        with_next.push(key("b", month));
        assert!(
            steps(&with_next, month - 19, &policy()).is_empty(),
            "one key per rotation"
        );
        let off = KeyPolicy {
            rotation_interval: Duration::ZERO,
            ..policy()
        };
        assert!(steps(&keys, 10 * month, &off).is_empty());
    }

    #[test]
    fn with_no_key_signing_the_next_comes_forward_or_one_is_made() {
        assert_eq!(steps(&[], 0, &policy()), ["make 0"]);
        let mut keys = vec![key("a", 0), key("b", 100)];
        keys[0].retired_at = Some(at(10));
        assert_eq!(steps(&keys, 20, &policy()), ["bring b forward"]);
        let done = vec![key("a", 0), key("b", 100)];
        assert_eq!(steps(&done, 200, &policy()), ["retire a"]);
    }
}
