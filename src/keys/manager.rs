//! One process's key ring, and the life cycle's changes to it (at start, on reload, and for
//! `authd keys rotate` and `retire`).

use super::queries::KeyMeta;
use super::rules::{KeyPolicy, KeyState, due_steps, needs_key, signing_after, statuses};
use super::*;

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

    /// Says at start what a reader of the log should know: a signing algorithm that differs
    /// from the active key's (it takes effect at the next rotation). Keys in the clear are said
    /// with the settings' warnings, together with the TOTP secrets.
    pub fn explain(&self) {
        let now = Utc::now();
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
