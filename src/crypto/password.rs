//! Password hashing: argon2id by default, bcrypt for teams that need it or import it.
//!
//! Hashing is slow on purpose, so it never runs on the async workers: every hash or verify goes to
//! a fixed set of hashing threads ([`super::hash_pool`]), one per hash allowed at once, so a burst
//! of logins queues instead of starving the machine, and argon2's memory is reused instead of
//! allocated per hash. A login for an unknown email verifies against a dummy hash so that it costs
//! the same as a wrong password.

use super::hash_bounds::{CostBounds, OverCost, bcrypt_cost, is_bcrypt};
pub use super::hash_params::{HashAlgorithm, HashParams};
use super::hash_pool::{self, HashPool};
use crate::domain::{Password, UserId};
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash is of another algorithm or weaker cost than configured: store a new one.
    pub needs_rehash: bool,
}

/// Tells whether a verification got as far as hashing: set once the hash is certain to run to its
/// end, even if its caller goes away meanwhile. A login throttle counts a cancelled guess only if
/// its hash ran, since only then did the guess learn anything.
#[derive(Debug, Clone, Default)]
pub struct HashStarted(Arc<AtomicBool>);

impl HashStarted {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A user's stored hash, as [`PasswordHasher::verify`] checks it: whose it is, so that a hash
/// refused for its cost can be named in the log by its user (never by itself).
#[derive(Debug, Clone, Copy)]
pub struct StoredHash<'a> {
    pub user_id: UserId,
    pub hash: &'a str,
}

/// How many users whose stored hash was refused for its cost are remembered, so that each is
/// logged once; when the set is full it starts over (memory stays bounded; a user may then be
/// logged again).
const REFUSED_REMEMBERED: usize = 1024;

/// Hashes and verifies passwords with the configured algorithm and cost.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
    pool: Arc<HashPool>,
    /// Users already logged for a stored hash over the cost bounds.
    refused: Arc<Mutex<HashSet<UserId>>>,
}

#[derive(Clone)]
struct Inner {
    algorithm: HashAlgorithm,
    /// The most a stored hash may cost to check.
    bounds: CostBounds,
    argon2_params: Params,
    bcrypt_cost: u32,
    dummy_hash: String,
}

impl PasswordHasher {
    /// Checks the cost, starts the hashing threads and prepares the dummy hash (one hash at
    /// start-up, which this waits for).
    pub fn new(settings: &HashParams) -> anyhow::Result<Self> {
        let argon2_params = settings
            .argon2()
            .map_err(|e| anyhow::anyhow!("invalid argon2 cost: {e}"))?;
        let pool = Arc::new(HashPool::new(
            settings.max_concurrent.max(1),
            argon2_params.block_count(),
            hash_pool::IDLE_RELEASE,
        )?);
        let mut inner = Inner {
            algorithm: settings.algorithm,
            bounds: CostBounds::new(settings),
            argon2_params,
            bcrypt_cost: settings.bcrypt_cost,
            dummy_hash: String::new(),
        };
        // On a thread of its own, not on the pool: a hashing thread would keep the buffer
        // (19 MiB at the default cost) for IDLE_RELEASE after start-up. Off the pool the buffer
        // is one mapping, unmapped when the hash is done, and the thread ends with it.
        let first = inner.clone();
        inner.dummy_hash = std::thread::scope(|scope| {
            scope
                .spawn(|| first.hash("authd dummy password: never matches a real login"))
                .join()
                .map_err(|_| anyhow::anyhow!("the dummy hash panicked"))?
        })?;
        Ok(Self {
            inner: Arc::new(inner),
            pool,
            refused: Arc::default(),
        })
    }

    /// A new hash of `password` in PHC (argon2) or modular crypt (bcrypt) format.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        // bcrypt would hash only a prefix: a hash that any longer string with that prefix matches.
        if self.inner.algorithm == HashAlgorithm::Bcrypt
            && password.expose().len() > BCRYPT_MAX_BYTES
        {
            anyhow::bail!("refusing to bcrypt-hash a password over {BCRYPT_MAX_BYTES} bytes");
        }
        let password = password.clone();
        self.run_blocking(None, move |inner| inner.hash(password.expose()))
            .await
    }

    /// Checks `password` against `stored`; with no stored hash (unknown user) checks against the
    /// dummy hash, so the caller cannot tell the two apart by timing. The result then never matches.
    /// A stored hash over the cost bounds ([`CostBounds`]) is not checked: the dummy hash is, as
    /// for an unknown user, the result never matches, and the user is logged (once). `started` is
    /// set once the hash is certain to run.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<StoredHash<'_>>,
        started: &HashStarted,
    ) -> anyhow::Result<Verified> {
        let password = password.clone();
        let stored = stored.and_then(|stored| match self.inner.bounds.check(stored.hash) {
            Ok(()) => Some(stored.hash.to_owned()),
            Err(over) => {
                self.log_refused(stored.user_id, over);
                None
            }
        });
        self.run_blocking(Some(started), move |inner| match stored {
            Some(stored) => inner.verify_forms(&password, &stored),
            None => inner
                .verify_forms(&password, &inner.dummy_hash)
                .map(|_| Verified {
                    matches: false,
                    needs_rehash: false,
                }),
        })
        .await
    }

    /// Logs a user whose stored hash costs too much to check, the first time it is refused.
    fn log_refused(&self, user_id: UserId, over: OverCost) {
        let first = {
            let mut refused = self.refused.lock();
            if refused.len() >= REFUSED_REMEMBERED && !refused.contains(&user_id) {
                refused.clear();
            }
            refused.insert(user_id)
        };
        if first {
            tracing::warn!(
                user_id = %user_id,
                cause = %over,
                "stored password hash costs too much to check: its logins are refused like a \
                 wrong password until the password is reset"
            );
        }
    }

    async fn run_blocking<T, F>(&self, started: Option<&HashStarted>, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> anyhow::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // A child of the caller's span, entered on the hashing thread.
        let span = tracing::debug_span!("password_hash");
        // The pool keeps the slot taken until the hash ends, even if the caller goes away (a
        // cancelled call), so the bound holds; a caller that goes away while waiting runs nothing.
        self.pool
            .run(
                move || span.in_scope(|| work(&inner)),
                || {
                    if let Some(started) = started {
                        started.0.store(true, Ordering::Release);
                    }
                },
            )
            .await
    }
}

impl Inner {
    fn argon2(&self) -> Argon2<'_> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.argon2_params.clone(),
        )
    }

    fn hash(&self, password: &str) -> anyhow::Result<String> {
        match self.algorithm {
            HashAlgorithm::Argon2id => {
                let mut salt = [0u8; 16];
                getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                let salt = SaltString::encode_b64(&salt)
                    .map_err(|e| anyhow::anyhow!("cannot encode salt: {e}"))?;
                let params = &self.argon2_params;
                let output = argon2_output(&self.argon2(), params, password, salt.as_salt())?
                    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
                let phc = PasswordHash {
                    algorithm: Algorithm::Argon2id.ident(),
                    version: Some(Version::V0x13.into()),
                    params: ParamsString::try_from(params)
                        .map_err(|e| anyhow::anyhow!("cannot encode argon2 params: {e}"))?,
                    salt: Some(salt.as_salt()),
                    hash: Some(output),
                };
                Ok(phc.to_string())
            }
            // bcrypt reads at most 72 bytes, like the Node.js libraries whose hashes it imports.
            HashAlgorithm::Bcrypt => bcrypt::hash(password, self.bcrypt_cost)
                .map_err(|e| anyhow::anyhow!("bcrypt hashing failed: {e}")),
        }
    }

    /// Verifies the normalized form; if that fails and the password was typed in another form,
    /// that form too, since hashes stored before authd normalized were made from what was typed.
    /// A match on the typed form asks for a rehash, which stores a hash of the normalized form.
    fn verify_forms(&self, password: &Password, stored: &str) -> anyhow::Result<Verified> {
        let verified = self.verify(password.expose(), stored)?;
        match password.expose_as_typed() {
            Some(as_typed) if !verified.matches => {
                let legacy = self.verify(as_typed, stored)?;
                Ok(Verified {
                    matches: legacy.matches,
                    needs_rehash: legacy.matches || legacy.needs_rehash,
                })
            }
            _ => Ok(verified),
        }
    }

    fn verify(&self, password: &str, stored: &str) -> anyhow::Result<Verified> {
        if is_bcrypt(stored) {
            // bcrypt reads only the first 72 bytes, so a longer input would match on its prefix
            // alone (and then be "upgraded" to a hash of the wrong password). It never matches;
            // its prefix is still verified, so that a long input costs what a wrong one does.
            let bytes = password.as_bytes();
            let prefix = bytes.get(..BCRYPT_MAX_BYTES).unwrap_or(bytes);
            let matches = bcrypt::verify(prefix, stored)
                .map_err(|e| anyhow::anyhow!("stored bcrypt hash is unreadable: {e}"))?
                && bytes.len() <= BCRYPT_MAX_BYTES;
            let weaker = bcrypt_cost(stored).is_none_or(|cost| cost < self.bcrypt_cost);
            let needs_rehash = self.algorithm != HashAlgorithm::Bcrypt || weaker;
            return Ok(Verified {
                matches,
                needs_rehash,
            });
        }
        let parsed = PasswordHash::new(stored)
            .map_err(|e| anyhow::anyhow!("stored password hash is unreadable: {e}"))?;
        let matches = argon2_matches(password, &parsed)?;
        let same_cost = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.argon2_params.m_cost()
                    && p.t_cost() == self.argon2_params.t_cost()
                    && p.p_cost() == self.argon2_params.p_cost()
            });
        let needs_rehash = self.algorithm != HashAlgorithm::Argon2id || !same_cost;
        Ok(Verified {
            matches,
            needs_rehash,
        })
    }
}

/// The most bytes bcrypt reads; it ignores the rest.
const BCRYPT_MAX_BYTES: usize = 72;

/// Whether `password` gives the output `parsed` holds, computed with that hash's own algorithm,
/// version, cost and salt (a stored hash may predate the configured cost) and compared in constant
/// time. A hash that argon2 cannot compute (no salt, unknown variant) matches nothing.
fn argon2_matches(password: &str, parsed: &PasswordHash<'_>) -> anyhow::Result<bool> {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        version,
        Params::try_from(parsed),
    ) else {
        return Ok(false);
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    // `Output` compares in constant time.
    Ok(argon2_output(&argon2, &params, password, salt)?.is_ok_and(|computed| computed == expected))
}

/// Computes an argon2 output in the hashing thread's reusable memory. The outer error is about
/// memory (a cost over the cap, allocation); the inner one is argon2 refusing its inputs.
fn argon2_output(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &str,
    salt: Salt<'_>,
) -> anyhow::Result<argon2::password_hash::Result<Output>> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = match salt.decode_b64(&mut salt_bytes) {
        Ok(salt) => salt,
        Err(e) => return Ok(Err(e)),
    };
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    hash_pool::with_blocks(params.block_count(), |blocks| {
        Output::init_with(len, |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt, out, blocks)
                .map_err(Into::into)
        })
    })
}

/// Whether `stored` is a hash authd can take over as it is (`authd import`): bcrypt as Node's
/// bcrypt and bcryptjs write it (`$2a$`, `$2b$` or `$2y$`, a cost of 4 to 31, 22 characters of
/// salt and 31 of hash in bcrypt's base64: 60 in all), or an argon2id PHC string with a salt and
/// an output. Both verify at login and are upgraded to the configured algorithm. This is the
/// format only: what a hash may cost is [`CostBounds`]'s to say.
pub fn is_importable_hash(stored: &str) -> bool {
    let bytes = stored.as_bytes();
    if let Some(rest) = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|prefix| stored.strip_prefix(prefix))
    {
        let bcrypt_base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/';
        return bytes.len() == 60
            && bcrypt_cost(stored).is_some_and(|cost| (4..=31).contains(&cost))
            && rest.as_bytes().get(2) == Some(&b'$')
            && rest
                .as_bytes()
                .get(3..)
                .is_some_and(|b| b.iter().all(bcrypt_base64));
    }
    PasswordHash::new(stored).is_ok_and(|parsed| {
        parsed.algorithm.as_str() == "argon2id"
            && parsed.salt.is_some()
            && parsed.hash.is_some()
            && Params::try_from(&parsed).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn importable_hashes_are_well_formed_bcrypt_or_argon2id() {
        let bcrypt = bcrypt::hash("an imported password", 4).unwrap();
        assert!(is_importable_hash(&bcrypt), "{bcrypt}");
        for prefix in ["$2a$", "$2y$"] {
            let other = format!("{prefix}{}", &bcrypt[4..]);
            assert!(is_importable_hash(&other), "{other}");
        }
        let argon2 = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))
            .unwrap()
            .hash(&password("an imported password"))
            .await
            .unwrap();
        assert!(is_importable_hash(&argon2), "{argon2}");
        let refused = [
            String::new(),
            "plaintext password".to_owned(),
            format!("$2x${}", &bcrypt[4..]),
            format!("$2b$03{}", &bcrypt[6..]),
            format!("$2b$32{}", &bcrypt[6..]),
            format!("$2b$1x{}", &bcrypt[6..]),
            bcrypt[..59].to_owned(),
            format!("{bcrypt}x"),
            format!("{}!", &bcrypt[..59]),
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1".to_owned(),
            "5f4dcc3b5aa765d61d8327deb882cf99".to_owned(),
        ];
        for bad in refused {
            assert!(!is_importable_hash(&bad), "accepted {bad:?}");
        }
    }

    fn settings(algorithm: HashAlgorithm) -> HashParams {
        HashParams {
            algorithm,
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            bcrypt_cost: 4,
            max_concurrent: 2,
        }
    }

    /// `hash` as some user's stored hash.
    fn of_user(hash: &str) -> Option<StoredHash<'_>> {
        Some(StoredHash {
            user_id: UserId::new(),
            hash,
        })
    }

    fn password(raw: &str) -> Password {
        Password::parse_attempt("password", raw).unwrap_or_else(|_| panic!("bad test password"))
    }

    #[tokio::test]
    async fn argon2_round_trip_and_wrong_password() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let hash = hasher.hash(&password("correct horse")).await?;
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        let ok = hasher
            .verify(
                &password("correct horse"),
                of_user(&hash),
                &HashStarted::default(),
            )
            .await?;
        assert_eq!(
            ok,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(
                &password("correct horsf"),
                of_user(&hash),
                &HashStarted::default(),
            )
            .await?;
        assert!(!wrong.matches);
        Ok(())
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_ask_for_upgrade() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        // A hash as Node's bcryptjs writes it ($2a$, cost 4).
        let legacy = bcrypt::hash_with_salt("node secret", 4, [7; 16])?
            .format_for_version(bcrypt::Version::TwoA);
        let verified = hasher
            .verify(
                &password("node secret"),
                of_user(&legacy),
                &HashStarted::default(),
            )
            .await?;
        assert_eq!(
            verified,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
        assert!(
            !hasher
                .verify(
                    &password("node secreT"),
                    of_user(&legacy),
                    &HashStarted::default()
                )
                .await?
                .matches
        );
        Ok(())
    }

    #[tokio::test]
    async fn changed_cost_asks_for_rehash() -> anyhow::Result<()> {
        let weak = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let hash = weak.hash(&password("correct horse")).await?;
        let mut stronger = settings(HashAlgorithm::Argon2id);
        stronger.argon2_memory_kib = 128;
        let strong = PasswordHasher::new(&stronger)?;
        let verified = strong
            .verify(
                &password("correct horse"),
                of_user(&hash),
                &HashStarted::default(),
            )
            .await?;
        assert_eq!(
            verified,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_cancelled_call_keeps_its_permit_until_the_hash_ends() -> anyhow::Result<()> {
        let mut slow = settings(HashAlgorithm::Argon2id);
        slow.argon2_memory_kib = 32 * 1024;
        slow.argon2_iterations = 6;
        let hasher = PasswordHasher::new(&HashParams {
            max_concurrent: 1,
            ..slow
        })?;
        let busy = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&password("correct horse")).await })
        };
        while hasher.pool.available() == 1 {
            tokio::task::yield_now().await;
        }
        busy.abort(); // the caller goes away mid-hash
        let _ = busy.await;
        assert_eq!(
            hasher.pool.available(),
            0,
            "the hash still runs, so its permit must still be taken"
        );
        let free = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while hasher.pool.available() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        assert!(
            free.await.is_ok(),
            "the permit comes back when the hash ends"
        );
        Ok(())
    }

    /// A hasher with one thread and a hash slow enough (32 MiB, t=6) to queue behind.
    fn one_slow_thread() -> anyhow::Result<PasswordHasher> {
        let mut slow = settings(HashAlgorithm::Argon2id);
        slow.argon2_memory_kib = 32 * 1024;
        slow.argon2_iterations = 6;
        PasswordHasher::new(&HashParams {
            max_concurrent: 1,
            ..slow
        })
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_caller_dropped_while_queued_is_not_started_and_its_hash_never_runs()
    -> anyhow::Result<()> {
        let hasher = one_slow_thread()?;
        let stored = hasher.hash(&password("correct horse")).await?;
        let before = hasher.pool.finished();
        let busy = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&password("correct horse")).await })
        };
        wait_until("the busy hash holds the only thread", || {
            hasher.pool.available() == 0
        })
        .await;
        let queued_started = HashStarted::default();
        let queued = {
            let (hasher, started, stored) =
                (hasher.clone(), queued_started.clone(), stored.clone());
            tokio::spawn(async move {
                hasher
                    .verify(&password("a wrong guess"), of_user(&stored), &started)
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!queued_started.get(), "still waiting for the thread");
        queued.abort(); // the caller goes away while queued
        let _ = queued.await;
        busy.await??;
        wait_until("the thread is free", || hasher.pool.available() == 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(hasher.pool.finished(), before + 1, "only the busy hash ran");
        assert!(!queued_started.get());

        // The same call, not dropped, does get started.
        let started = HashStarted::default();
        hasher
            .verify(&password("a wrong guess"), of_user(&stored), &started)
            .await?;
        assert!(started.get());
        assert_eq!(hasher.pool.finished(), before + 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_caller_dropped_mid_hash_is_started_and_its_hash_runs_to_its_end()
    -> anyhow::Result<()> {
        let hasher = one_slow_thread()?;
        let stored = hasher.hash(&password("correct horse")).await?;
        let before = hasher.pool.finished();
        let started = HashStarted::default();
        let call = {
            let (hasher, started) = (hasher.clone(), started.clone());
            tokio::spawn(async move {
                hasher
                    .verify(&password("a wrong guess"), of_user(&stored), &started)
                    .await
            })
        };
        wait_until("the hash is started", || started.get()).await;
        call.abort(); // the caller goes away mid-hash
        let _ = call.await;
        // Until the hash has ended, its slot stays taken. (The slot is read first: a free slot
        // with the hash still unfinished after it is the bound broken.)
        wait_until("the hash ends", || {
            let free = hasher.pool.available() == 1;
            let ended = hasher.pool.finished() > before;
            assert!(!free || ended, "the slot came free before the hash ended");
            ended
        })
        .await;
        wait_until("the slot is free", || hasher.pool.available() == 1).await;
        Ok(())
    }

    #[tokio::test]
    async fn stored_hashes_of_other_variants_versions_and_costs_verify() -> anyhow::Result<()> {
        use argon2::password_hash::PasswordHasher as _;
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let salt =
            SaltString::encode_b64(b"sixteen byte sal").map_err(|e| anyhow::anyhow!("{e}"))?;
        let cases = [
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(256, 1, 1, None),
            ),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(32, 3, 4, Some(64)),
            ),
            (
                Algorithm::Argon2i,
                Version::V0x10,
                Params::new(64, 2, 2, Some(24)),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x13,
                Params::new(40, 1, 1, None),
            ),
        ];
        for (algorithm, version, params) in cases {
            let params = params.map_err(|e| anyhow::anyhow!("{e}"))?;
            // Written by the argon2 crate's own hasher, as an older authd or another app would.
            let stored = Argon2::new(algorithm, version, params)
                .hash_password(b"correct horse", &salt)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .to_string();
            let right = hasher
                .verify(
                    &password("correct horse"),
                    of_user(&stored),
                    &HashStarted::default(),
                )
                .await?;
            assert_eq!(
                right,
                Verified {
                    matches: true,
                    needs_rehash: true
                },
                "{stored}"
            );
            let wrong = hasher
                .verify(
                    &password("correct horsf"),
                    of_user(&stored),
                    &HashStarted::default(),
                )
                .await?;
            assert!(!wrong.matches, "{stored}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn new_hashes_verify_with_the_argon2_crate_itself() -> anyhow::Result<()> {
        use argon2::password_hash::PasswordVerifier as _;
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let stored = hasher.hash(&password("correct horse")).await?;
        let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horsf", &parsed)
                .is_err()
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_stored_hash_over_the_cost_bounds_never_matches_and_costs_the_dummy_hash()
    -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let over = [
            // 4 GiB (m is in KiB) per verification: refused, not allocated.
            "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNhbA$\
             AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_owned(),
            // 2^31 rounds: hours on one thread.
            bcrypt::hash_with_salt("correct horse", 4, [7; 16])?
                .to_string()
                .replacen("$04$", "$31$", 1),
        ];
        for stored_hash in &over {
            let before = hasher.pool.finished();
            let started = HashStarted::default();
            let verified = hasher
                .verify(&password("correct horse"), of_user(stored_hash), &started)
                .await?;
            assert_eq!(
                verified,
                Verified {
                    matches: false,
                    needs_rehash: false
                }
            );
            assert!(started.get(), "the dummy hash ran in its place");
            assert_eq!(hasher.pool.finished(), before + 1);
        }
        // The thread is still there for the next login.
        let fine = hasher.hash(&password("correct horse")).await?;
        assert!(
            hasher
                .verify(
                    &password("correct horse"),
                    of_user(&fine),
                    &HashStarted::default()
                )
                .await?
                .matches
        );
        Ok(())
    }

    #[test]
    fn users_refused_for_cost_are_remembered_in_a_bounded_set() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let over = OverCost::BcryptCost { cost: 31, max: 13 };
        let user = UserId::new();
        hasher.log_refused(user, over);
        hasher.log_refused(user, over);
        assert_eq!(hasher.refused.lock().len(), 1);
        for _ in 0..REFUSED_REMEMBERED * 2 {
            hasher.log_refused(UserId::new(), over);
        }
        assert!(hasher.refused.lock().len() <= REFUSED_REMEMBERED);
        Ok(())
    }

    #[tokio::test]
    async fn bcrypt_never_matches_an_input_over_72_bytes() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let exactly_72 = "correct horse battery staple, every day of the week, twice before lunch!";
        assert_eq!(exactly_72.len(), 72);
        let legacy = bcrypt::hash_with_salt(exactly_72, 4, [7; 16])?
            .format_for_version(bcrypt::Version::TwoA);
        let check = |raw: String| {
            let hasher = hasher.clone();
            let legacy = legacy.clone();
            async move {
                hasher
                    .verify(&password(&raw), of_user(&legacy), &HashStarted::default())
                    .await
            }
        };
        assert!(check(exactly_72.to_owned()).await?.matches);
        for longer in [
            format!("{exactly_72}!"),
            format!("{exactly_72} and anything else"),
            format!("{exactly_72}{}", "x".repeat(56)),
        ] {
            assert!(
                !check(longer).await?.matches,
                "bcrypt's cut must not let it in"
            );
        }
        // The same for bcrypt's own hash of a longer input: only its first 72 bytes were hashed.
        let cut = bcrypt::hash_with_salt(format!("{exactly_72}?"), 4, [7; 16])?.to_string();
        let verified = hasher
            .verify(
                &password(&format!("{exactly_72}?")),
                of_user(&cut),
                &HashStarted::default(),
            )
            .await?;
        assert!(!verified.matches);
        Ok(())
    }

    #[tokio::test]
    async fn bcrypt_refuses_to_hash_what_it_would_cut() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Bcrypt))?;
        assert!(hasher.hash(&password(&"x".repeat(72))).await.is_ok());
        assert!(hasher.hash(&password(&"x".repeat(73))).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn a_hash_of_the_typed_form_verifies_and_asks_for_a_rehash() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Argon2id))?;
        let nfd = "cre\u{300}me bru\u{302}le\u{301}e";
        let nfc = "cr\u{e8}me br\u{fb}l\u{e9}e";
        // As authd stored hashes before it normalized passwords: of the bytes as typed.
        let legacy = hasher.inner.hash(nfd)?;
        let typed = hasher
            .verify(&password(nfd), of_user(&legacy), &HashStarted::default())
            .await?;
        assert_eq!(
            typed,
            Verified {
                matches: true,
                needs_rehash: true
            },
            "the same parameters, yet the hash is of the unnormalized form"
        );
        // The rehash is of the normalized form, which both ways of typing it then match.
        let rehashed = hasher.hash(&password(nfd)).await?;
        for form in [nfd, nfc] {
            let verified = hasher
                .verify(&password(form), of_user(&rehashed), &HashStarted::default())
                .await?;
            assert_eq!(
                verified,
                Verified {
                    matches: true,
                    needs_rehash: false
                }
            );
        }
        let wrong = hasher
            .verify(
                &password("cre\u{300}me brulee"),
                of_user(&legacy),
                &HashStarted::default(),
            )
            .await?;
        assert!(!wrong.matches);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_user_never_matches() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(&settings(HashAlgorithm::Bcrypt))?;
        let verified = hasher
            .verify(
                &password("authd dummy password: never matches a real login"),
                None,
                &HashStarted::default(),
            )
            .await?;
        assert!(!verified.matches);
        Ok(())
    }
}
