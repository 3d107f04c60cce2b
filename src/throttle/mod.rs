//! Throttling that protects users instead of locking them out.
//!
//! Every counter lives in the database (`Store::throttle_*`), so all replicas count together and
//! no process holds a table of its own. A key that has used its free tries waits a delay that
//! doubles with each further failure, up to a maximum, and is forgotten some time after its last
//! count. Logins are counted three ways:
//!
//! - per (account, client address) pair, hard: the client that keeps guessing waits;
//! - per client address across accounts: password spraying from one place waits;
//! - per account, softly: only clients that have been failing are held back by it, and clients
//!   that have logged in to the account before ("known") are exempt from the account-wide
//!   limits, so the owner still gets in while strangers guess. After `account_max_failures`
//!   consecutive failures (NIST SP 800-63B: at most 100) only known clients may try until a
//!   password reset.
//!
//! A login attempt is counted before its hash runs, so guesses sent in parallel count as they
//! arrive; if the call is cancelled before its hash started, the count is taken back. A correct
//! password or a password reset clears the account's counts.

mod attempts;
mod keys;
mod presented;
pub mod queries;

use attempts::Counts;
pub use attempts::{LoginAttempt, SecondFactorAttempt};
use keys::{account_id, account_id_of, client_id, counted, key, millis, now_ms, wait};

use crate::crypto::password::HashStarted;
use crate::db::Store;
use crate::domain::{Email, UserId};
use crate::error::AuthError;
use queries::{ThrottleCount, ThrottleKey};
use std::time::Duration;

/// What is counted, with the delay its first throttled try waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Failed logins of one client for one account.
    LoginPair,
    /// Consecutive failed logins of one account.
    LoginAccount,
    /// A client that has logged in to the account (a marker, not a count).
    LoginKnown,
    /// Failures of one client address: logins, and refresh, verification and reset tokens.
    ClientFailures,
    /// Mails asked for one account.
    MailAccount,
    /// Mail requests from one client address.
    MailClient,
    /// Signups from one client address.
    SignupClient,
    /// Consecutive wrong second-factor codes of one account (by user id).
    MfaAccount,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::LoginPair => "login.pair",
            Self::LoginAccount => "login.account",
            Self::LoginKnown => "login.known",
            Self::ClientFailures => "client.failures",
            Self::MailAccount => "mail.account",
            Self::MailClient => "mail.client",
            Self::SignupClient => "signup.client",
            Self::MfaAccount => "mfa.account",
        }
    }

    /// The wait after the first try over the free ones; each further one doubles it.
    fn base_delay(self) -> Duration {
        match self {
            Self::LoginPair
            | Self::LoginAccount
            | Self::LoginKnown
            | Self::ClientFailures
            | Self::MfaAccount => Duration::from_secs(1),
            Self::MailAccount => Duration::from_secs(60),
            Self::MailClient | Self::SignupClient => Duration::from_secs(10),
        }
    }
}

/// The limits, from settings.
#[derive(Debug, Clone)]
pub struct ThrottleLimits {
    pub client_account_failures: u32,
    pub account_failures: u32,
    pub account_max_failures: u32,
    pub account_mfa_failures: u32,
    pub client_failures: u32,
    pub account_mails: u32,
    pub client_mails: u32,
    pub client_signups: u32,
    pub max_delay: Duration,
    pub forget_after: Duration,
    pub known_client_for: Duration,
}

/// The throttle: limits plus the store that holds the counts.
#[derive(Clone)]
pub struct Throttle {
    store: Store,
    limits: ThrottleLimits,
}

/// One key to check and count, with its free tries.
struct Counted {
    key: ThrottleKey,
    scope: Scope,
    free: u32,
}

impl Throttle {
    pub fn new(store: Store, limits: ThrottleLimits) -> Self {
        Self { store, limits }
    }

    /// Checks and counts a login attempt for `email` from `client`, before its hash runs.
    pub async fn begin_login(
        &self,
        email: &Email,
        client: &str,
    ) -> Result<LoginAttempt, AuthError> {
        let account = account_id(email);
        let address = client_id(client);
        let limits = &self.limits;
        let pair = counted(
            Scope::LoginPair,
            &account,
            &address,
            limits.client_account_failures,
        );
        let by_account = counted(Scope::LoginAccount, &account, "", limits.account_failures);
        let by_client = counted(Scope::ClientFailures, "", &address, limits.client_failures);
        let known = key(Scope::LoginKnown, &account, &address);

        let now = now_ms();
        let keys = [
            pair.key.clone(),
            by_account.key.clone(),
            by_client.key.clone(),
            known.clone(),
        ];
        let counts = self.store.throttle_counts(&keys, now).await?;
        let count = |k: &ThrottleKey| counts.get(&k.key).copied().unwrap_or_default();
        let is_known = counts.contains_key(&known.key);

        // The limits that apply to this client, each with the count it was checked against.
        let mut checked = vec![(&pair, count(&pair.key))];
        if !is_known {
            checked.push((&by_client, count(&by_client.key)));
            let account_count = count(&by_account.key);
            if account_count.failures >= limits.account_max_failures {
                tracing::warn!(account = %account, "login refused: account at its failure cap");
                return Err(AuthError::RateLimited {
                    retry_after: limits.max_delay,
                });
            }
            let failing = count(&pair.key).failures > 0 || count(&by_client.key).failures > 0;
            if failing {
                checked.push((&by_account, account_count));
            }
        }
        self.refuse_if_waiting(&checked, now)?;

        let bumped = [&pair, &by_account, &by_client];
        let counts = self.bump_all(&bumped, &checked, now).await?;
        Ok(LoginAttempt {
            counts,
            known,
            known_until: now.saturating_add(millis(limits.known_client_for)),
            started: HashStarted::default(),
            settled: false,
        })
    }

    /// Checks and counts a request for a mail to `email` from `client`.
    pub async fn mail_request(&self, email: &Email, client: &str) -> Result<(), AuthError> {
        let account = account_id(email);
        let address = client_id(client);
        let by_account = counted(Scope::MailAccount, &account, "", self.limits.account_mails);
        let by_client = counted(Scope::MailClient, "", &address, self.limits.client_mails);
        self.check_and_count(&[&by_account, &by_client]).await
    }

    /// Checks and counts a signup from `client`.
    pub async fn signup(&self, client: &str) -> Result<(), AuthError> {
        let address = client_id(client);
        let by_client = counted(
            Scope::SignupClient,
            "",
            &address,
            self.limits.client_signups,
        );
        self.check_and_count(&[&by_client]).await
    }

    /// Checks and counts a second-factor code for `user` before it is checked. Unlike a
    /// password, the account-wide count is hard: whoever tries codes already knows the password,
    /// so the owner waits too, and only a right code clears it (a right password does not).
    /// With `client`, that address's failures are checked in the same read (VerifyMfa, whose
    /// challenge was looked up first); they are not counted here.
    pub async fn begin_second_factor(
        &self,
        user: UserId,
        client: Option<&str>,
    ) -> Result<SecondFactorAttempt, AuthError> {
        let account = user.to_string();
        let by_account = counted(
            Scope::MfaAccount,
            &account,
            "",
            self.limits.account_mfa_failures,
        );
        let by_client = client.map(|client| self.client_failures(client));
        let now = now_ms();
        let mut keys = vec![by_account.key.clone()];
        keys.extend(by_client.iter().map(|c| c.key.clone()));
        let counts = self.store.throttle_counts(&keys, now).await?;
        let count = |c: &Counted| counts.get(&c.key.key).copied().unwrap_or_default();
        let mut checked = vec![(&by_account, count(&by_account))];
        checked.extend(by_client.iter().map(|c| (c, count(c))));
        self.refuse_if_waiting(&checked, now)?;
        let counts = self.bump_all(&[&by_account], &checked, now).await?;
        Ok(SecondFactorAttempt { counts })
    }

    /// Refuses a client address that has been failing too often (before it presents a token).
    pub async fn check_client(&self, client: &str) -> Result<(), AuthError> {
        let by_client = self.client_failures(client);
        let now = now_ms();
        let counts = self
            .store
            .throttle_counts(std::slice::from_ref(&by_client.key), now)
            .await?;
        let count = counts.get(&by_client.key.key).copied().unwrap_or_default();
        self.refuse_if_waiting(&[(&by_client, count)], now)
    }

    /// Counts a failure of a client address (an unknown or spent token).
    pub async fn client_failed(&self, client: &str) -> Result<(), AuthError> {
        let by_client = self.client_failures(client);
        let now = now_ms();
        let expires = now.saturating_add(millis(self.limits.forget_after));
        self.store
            .throttle_bump(std::slice::from_ref(&by_client.key), now, expires)
            .await?;
        Ok(())
    }

    /// Forgets an account's failed logins (after a password reset), whoever made them.
    pub async fn clear_account(&self, email: &str) -> Result<(), AuthError> {
        let account = account_id_of(email);
        self.store
            .throttle_clear_account(
                &account,
                &[Scope::LoginAccount.name(), Scope::LoginPair.name()],
            )
            .await?;
        Ok(())
    }

    fn client_failures(&self, client: &str) -> Counted {
        counted(
            Scope::ClientFailures,
            "",
            &client_id(client),
            self.limits.client_failures,
        )
    }

    async fn check_and_count(&self, keys: &[&Counted]) -> Result<(), AuthError> {
        let now = now_ms();
        let wanted: Vec<ThrottleKey> = keys.iter().map(|c| c.key.clone()).collect();
        let counts = self.store.throttle_counts(&wanted, now).await?;
        let checked: Vec<(&Counted, ThrottleCount)> = keys
            .iter()
            .map(|c| (*c, counts.get(&c.key.key).copied().unwrap_or_default()))
            .collect();
        self.refuse_if_waiting(&checked, now)?;
        self.bump_all(keys, &checked, now).await?.keep();
        Ok(())
    }

    /// RESOURCE_EXHAUSTED with the longest wait among the checked keys, if any must wait.
    fn refuse_if_waiting(
        &self,
        checked: &[(&Counted, ThrottleCount)],
        now: i64,
    ) -> Result<(), AuthError> {
        let wait = checked
            .iter()
            .filter_map(|(c, count)| {
                wait(
                    *count,
                    c.free,
                    c.scope.base_delay(),
                    self.limits.max_delay,
                    now,
                )
            })
            .max();
        match wait {
            Some(retry_after) => Err(AuthError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts one more for each key, in one statement. A checked key whose count moved on
    /// between the check and the count (a concurrent attempt) is checked again against its free
    /// tries, so attempts in parallel cannot all slip through on one stale read; a refused
    /// attempt takes its counts back. The counting runs in a task of its own, so a call
    /// cancelled half-way cannot leave counts behind that nothing takes back: they are held by a
    /// guard that takes them back when dropped, unless kept.
    async fn bump_all(
        &self,
        keys: &[&Counted],
        checked: &[(&Counted, ThrottleCount)],
        now: i64,
    ) -> Result<Counts, AuthError> {
        let plan: Vec<(ThrottleKey, u32, Option<u32>, Duration)> = keys
            .iter()
            .map(|c| {
                let seen = checked
                    .iter()
                    .find(|(k, _)| k.key == c.key)
                    .map(|(_, n)| n.failures);
                (c.key.clone(), c.free, seen, c.scope.base_delay())
            })
            .collect();
        let store = self.store.clone();
        let expires = now.saturating_add(millis(self.limits.forget_after));
        let counting = tokio::spawn(async move {
            let keys: Vec<ThrottleKey> = plan.iter().map(|(key, ..)| key.clone()).collect();
            let after = store.throttle_bump(&keys, now, expires).await?;
            // One statement: every key has been counted, or none has.
            let counts = Counts {
                store,
                keys,
                kept: false,
            };
            let raced = plan
                .iter()
                .filter(|(key, free, seen, _)| {
                    let before = after
                        .get(&key.key)
                        .map_or(0, |after| after.saturating_sub(1));
                    seen.is_some_and(|seen| before > seen && before >= *free)
                })
                .map(|(.., base)| *base)
                .max();
            match raced {
                // Dropping the counts takes them back.
                Some(retry_after) => Err(AuthError::RateLimited { retry_after }),
                None => Ok(counts),
            }
        });
        counting
            .await
            .map_err(|e| AuthError::Unexpected(anyhow::anyhow!("throttle count task: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn count(failures: u32, last_at_ms: i64) -> ThrottleCount {
        ThrottleCount {
            failures,
            last_at_ms,
        }
    }

    #[test]
    fn free_tries_pass_then_delays_double_up_to_the_cap() {
        let max = Duration::from_secs(900);
        assert_eq!(wait(count(4, 0), 5, SECOND, max, 0), None);
        assert_eq!(wait(count(5, 0), 5, SECOND, max, 0), Some(SECOND));
        assert_eq!(wait(count(7, 0), 5, SECOND, max, 0), Some(4 * SECOND));
        assert_eq!(
            wait(count(7, 0), 5, SECOND, max, 4_000),
            None,
            "the wait is over"
        );
        assert_eq!(wait(count(60, 0), 5, SECOND, max, 0), Some(max));
        assert_eq!(wait(count(u32::MAX, 0), 5, SECOND, max, 0), Some(max));
    }

    #[test]
    fn ipv6_clients_count_by_their_slash_64() {
        assert_eq!(
            client_id("2001:db8:1:2:aaaa::1"),
            client_id("2001:db8:1:2:bbbb::2")
        );
        assert_ne!(client_id("2001:db8:1:2::1"), client_id("2001:db8:1:3::1"));
        assert_eq!(client_id("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(client_id(""), "unknown");
    }

    #[test]
    fn accounts_are_digested_case_insensitively() {
        assert_eq!(
            account_id_of("Ada@Example.com"),
            account_id_of("ada@example.com")
        );
        assert_eq!(account_id_of("ada@example.com").len(), 32);
        assert!(!account_id_of("ada@example.com").contains("ada"));
    }
}
