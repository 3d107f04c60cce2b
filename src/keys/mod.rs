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

pub mod queries;

use crate::crypto::keys::{KeyPair, KeyRing, KeySet, ScheduledKey, SigningAlg};
use crate::crypto::seal::Sealer;
use crate::db::Store;
use crate::domain::after;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use queries::{KeyChange, KeyMeta, KeyRow};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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

    fn published(self) -> bool {
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
enum Step {
    Make { activates_at: DateTime<Utc> },
    BringForward { kid: String },
    Retire { kid: String },
}

fn due_steps(keys: &[KeyMeta], now: DateTime<Utc>, policy: &KeyPolicy) -> Vec<Step> {
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

/// The key ring of one process and the life cycle's changes to it.
pub struct KeyManager {
    store: Store,
    policy: KeyPolicy,
    sealer: Option<Sealer>,
    ring: Arc<KeyRing>,
    /// The live keys the ring was built from, to tell on each reload whether anything changed.
    loaded: Mutex<Vec<KeyMeta>>,
}

impl KeyManager {
    /// At start: checks that every key can be opened with the configured key-encryption key
    /// (and seals keys stored in the clear once one is configured), takes any step that is due
    /// (on the very first start, makes the first key), and builds the key ring. A key that
    /// cannot be opened stops start-up: it is never replaced by a new one.
    pub async fn start(
        store: Store,
        policy: KeyPolicy,
        sealer: Option<Sealer>,
    ) -> anyhow::Result<Self> {
        // A key that will probably be needed is made before the lock is taken: an RSA key
        // takes a while, and SQLite's lock holds every other write meanwhile.
        let mut spare = match store.signing_keys().await {
            Ok(rows) if needs_key(&due_steps(&metas(&rows), Utc::now(), &policy)) => {
                Some(generate(policy.algorithm).await?)
            }
            _ => None,
        };
        let mut attempt = 1;
        let now = loop {
            let now = Utc::now();
            let prepared = store
                .change_signing_keys(|rows| {
                    let mut changes = sealing_changes(rows, sealer.as_ref())?;
                    let steps = due_steps(&metas(rows), now, &policy);
                    changes.extend(realise(&steps, &policy, sealer.as_ref(), now, &mut spare)?);
                    Ok((changes, steps))
                })
                .await;
            match prepared {
                Ok(made) => {
                    log_steps(&made);
                    break now;
                }
                // Another process starting at the same moment may hold SQLite's lock a while.
                Err(err) if attempt < 5 && is_outage(&err) => {
                    tracing::warn!(error = %err, attempt, "preparing the signing keys failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.context("preparing the signing keys")),
            }
        };
        let (set, loaded) = build(&store, &policy, sealer.as_ref(), now).await?;
        Ok(Self {
            store,
            policy,
            sealer,
            ring: Arc::new(KeyRing::new(set)),
            loaded: Mutex::new(loaded),
        })
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring)
    }

    /// One reload: takes the steps that are due, and rebuilds the ring when the keys in the
    /// database are not those it was built from (another replica or the CLI changed them).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let mut now = Utc::now();
        let live = self.store.live_signing_keys().await?;
        let due = due_steps(&live, now, &self.policy);
        if !due.is_empty() {
            let mut spare = None;
            if needs_key(&due) {
                spare = Some(generate(self.policy.algorithm).await?);
                // Making it may have taken seconds: times count from now.
                now = Utc::now();
            }
            let made = self
                .store
                .change_signing_keys(|rows| {
                    // Keys resealed under another key-encryption key since this process
                    // started: make no key under the old one (restart with the new one).
                    let mut changes = sealing_changes(rows, self.sealer.as_ref())?;
                    let steps = due_steps(&metas(rows), now, &self.policy);
                    let sealer = self.sealer.as_ref();
                    changes.extend(realise(&steps, &self.policy, sealer, now, &mut spare)?);
                    Ok((changes, steps))
                })
                .await?;
            log_steps(&made);
        } else if *self.loaded.lock() == live {
            return Ok(());
        }
        self.rebuild(now).await
    }

    async fn rebuild(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let (set, loaded) = build(&self.store, &self.policy, self.sealer.as_ref(), now).await?;
        let kids: Vec<&str> = loaded.iter().map(|k| k.kid.as_str()).collect();
        tracing::info!(?kids, "signing keys reloaded");
        self.ring.replace(set);
        *self.loaded.lock() = loaded;
        Ok(())
    }

    /// `authd keys rotate`: a `next` key of the configured algorithm, published now and
    /// signing after the publish lead. One already waiting is kept (so two rotations at once
    /// make one key); one of another algorithm is withdrawn (it never signed) and replaced.
    pub async fn rotate(&self) -> anyhow::Result<Rotation> {
        let policy = &self.policy;
        let mut spare = Some(generate(policy.algorithm).await?);
        let now = Utc::now();
        let rotation = self
            .store
            .change_signing_keys(|rows| {
                let statuses = statuses(&metas(rows), now, policy.access_ttl);
                let pending: Vec<&KeyStatus> = statuses
                    .iter()
                    .filter(|s| s.state == KeyState::Next)
                    .collect();
                if let Some(same) = pending
                    .iter()
                    .find(|s| s.meta.algorithm == policy.algorithm.name())
                {
                    let rotation = Rotation::AlreadyPending {
                        kid: same.meta.kid.clone(),
                        activates_at: same.meta.activates_at,
                    };
                    return Ok((Vec::new(), rotation));
                }
                let mut changes: Vec<KeyChange> = pending
                    .iter()
                    .map(|s| KeyChange::Retire {
                        kid: s.meta.kid.clone(),
                        at: now,
                    })
                    .collect();
                let activates_at = after(now, policy.publish_lead);
                let pair = take_or_make(&mut spare, policy.algorithm)?;
                let (kid, insert) = new_key(pair, self.sealer.as_ref(), activates_at, now)?;
                changes.push(insert);
                let rotation = Rotation::Added {
                    kid,
                    algorithm: policy.algorithm,
                    activates_at,
                };
                Ok((changes, rotation))
            })
            .await?;
        self.rebuild(now).await?;
        Ok(rotation)
    }

    /// `authd keys retire KID`: the key leaves the JWK Set now and tokens it signed stop
    /// validating. When it was the key signing, the newest remaining published key signs from
    /// now on (a retiring key, or a `next` key brought forward); with none, a new key does.
    pub async fn retire(&self, kid: &str) -> anyhow::Result<Retirement> {
        let policy = &self.policy;
        // Needed only when the key is the last one published: made outside the lock anyway.
        let mut spare = Some(generate(policy.algorithm).await?);
        let now = Utc::now();
        let retirement = self
            .store
            .change_signing_keys(|rows| {
                let row = rows
                    .iter()
                    .find(|row| row.meta.kid == kid)
                    .ok_or_else(|| anyhow::anyhow!("there is no signing key with kid {kid}"))?;
                if row.meta.retired_at.is_some() {
                    return Ok((Vec::new(), Retirement::AlreadyRetired { kid: kid.into() }));
                }
                let before = statuses(&metas(rows), now, policy.access_ttl);
                let was_signing = before
                    .iter()
                    .any(|s| s.meta.kid == kid && s.state == KeyState::Active);
                let mut after = metas(rows);
                for meta in after.iter_mut().filter(|m| m.kid == kid) {
                    meta.retired_at = Some(now);
                }
                let steps = due_steps(&after, now, policy);
                let mut changes = vec![KeyChange::Retire {
                    kid: kid.into(),
                    at: now,
                }];
                changes.extend(realise(
                    &steps,
                    policy,
                    self.sealer.as_ref(),
                    now,
                    &mut spare,
                )?);
                let now_signing =
                    was_signing.then(|| signing_after(&after, &steps, &changes, now, policy));
                Ok((
                    changes,
                    Retirement::Retired {
                        kid: kid.into(),
                        now_signing: now_signing.flatten(),
                    },
                ))
            })
            .await?;
        self.rebuild(now).await?;
        Ok(retirement)
    }

    /// Says at start what a reader of the log should know: keys in the clear, and a signing
    /// algorithm that differs from the active key's (it takes effect at the next rotation).
    pub fn explain(&self) {
        let now = Utc::now();
        if self.sealer.is_none() {
            tracing::warn!(
                "signing keys are stored in the clear: set AUTHD_KEY_ENCRYPTION_KEY to seal them \
                 (make one with `authd keys new-encryption-key`)"
            );
        }
        let loaded = self.loaded.lock().clone();
        let statuses = statuses(&loaded, now, self.policy.access_ttl);
        let Some(active) = statuses.iter().find(|s| s.state == KeyState::Active) else {
            return;
        };
        tracing::info!(kid = %active.meta.kid, algorithm = %active.meta.algorithm, "signing key");
        let waiting = statuses
            .iter()
            .any(|s| s.state == KeyState::Next && s.meta.algorithm == self.policy.algorithm.name());
        if active.meta.algorithm != self.policy.algorithm.name() && !waiting {
            tracing::info!(
                active = %active.meta.algorithm,
                configured = %self.policy.algorithm,
                "AUTHD_SIGNING_ALG differs from the active key's algorithm: it takes effect at \
                 the next rotation (`authd keys rotate`, or the automatic one)"
            );
        }
    }
}

/// Runs [`KeyManager::reload`] every interval until shutdown, so a rotation made anywhere is
/// picked up without a restart.
pub struct KeyReloader {
    pub keys: Arc<KeyManager>,
    pub interval: Duration,
}

impl KeyReloader {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
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

fn needs_key(steps: &[Step]) -> bool {
    steps.iter().any(|step| matches!(step, Step::Make { .. }))
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

/// Which key signs after a retirement and the steps it caused.
fn signing_after(
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

/// The key life cycle's settings, as `serve` and `authd keys` both read them.
pub fn key_policy_of(keys: &crate::config::KeySettings, access_ttl: Duration) -> KeyPolicy {
    KeyPolicy {
        algorithm: keys.signing_alg,
        publish_lead: keys.key_publish_lead,
        rotation_interval: keys.key_rotation_interval,
        access_ttl,
    }
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
