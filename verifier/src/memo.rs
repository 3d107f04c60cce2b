//! A bounded memo of answers about access tokens, keyed by each token's SHA-256 so that it holds
//! no tokens. Remote mode keeps authd's positive Introspect answers in one; authd keeps the
//! tokens whose signature it checked in another. Both are asked about the same few tokens on
//! every request of their lifetime, and both must stay small under a flood of new ones.

use parking_lot::{Mutex, MutexGuard};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The SHA-256 of a token: what a [`TokenMemo`] is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for TokenDigest {
    /// A digest is not a secret, but a log has no use for its 64 hex digits either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Answers about tokens by [`TokenDigest`], each for as long as its caller says, at most
/// `capacity` at once.
///
/// Eviction: a new answer that finds the memo full first drops the expired ones, then, if more
/// than three quarters of the capacity is still live (a flood of valid tokens), the live ones
/// closest to their deadline, down to three quarters. So the bound always holds, a token in
/// steady use is not forgotten for a burst of new ones (the newest answers are kept), and the
/// sweep, which walks the whole memo, runs at most once per quarter-capacity of new answers.
/// A forgotten answer only costs its caller the check it stood for.
pub struct TokenMemo<V> {
    capacity: usize,
    entries: Mutex<HashMap<TokenDigest, Entry<V>>>,
}

struct Entry<V> {
    until: Instant,
    value: V,
}

impl<V: Clone> TokenMemo<V> {
    /// An empty memo that holds at most `capacity` answers (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer remembered for `digest`, unless it has expired.
    pub fn get(&self, digest: &TokenDigest) -> Option<V> {
        self.get_at(digest, Instant::now())
    }

    /// Remembers `value` for `digest` for `keep` (replacing any earlier answer); a zero `keep`
    /// remembers nothing.
    pub fn put(&self, digest: TokenDigest, value: V, keep: Duration) {
        if keep.is_zero() {
            return;
        }
        let now = Instant::now();
        self.put_at(digest, value, now + keep, now);
    }

    /// How many answers are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get_at(&self, digest: &TokenDigest, now: Instant) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(digest) {
            Some(entry) if now < entry.until => Some(entry.value.clone()),
            Some(_) => {
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    fn put_at(&self, digest: TokenDigest, value: V, until: Instant, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            make_room(&mut entries, self.capacity, now);
        }
        entries.insert(digest, Entry { until, value });
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenDigest, Entry<V>>> {
        self.entries.lock()
    }
}

/// Drops the expired entries, then the live ones closest to their deadline until at most three
/// quarters of `capacity` are left.
fn make_room<V>(entries: &mut HashMap<TokenDigest, Entry<V>>, capacity: usize, now: Instant) {
    entries.retain(|_, entry| now < entry.until);
    let keep = capacity - (capacity / 4).max(1);
    let Some(excess) = entries.len().checked_sub(keep).filter(|n| *n > 0) else {
        return;
    };
    let mut by_deadline: Vec<(Instant, TokenDigest)> = entries
        .iter()
        .map(|(digest, entry)| (entry.until, *digest))
        .collect();
    // The `excess` soonest deadlines end up first (ties broken by digest, so exactly `excess`).
    by_deadline.select_nth_unstable_by(excess - 1, |a, b| a.0.cmp(&b.0).then(a.1.0.cmp(&b.1.0)));
    for (_, digest) in &by_deadline[..excess] {
        entries.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: usize) -> TokenDigest {
        TokenDigest::of(&n.to_string())
    }

    #[test]
    fn answers_are_kept_until_their_deadline_and_then_forgotten() {
        let memo = TokenMemo::new(8);
        let now = Instant::now();
        memo.put_at(digest(1), "one", now + Duration::from_secs(10), now);
        assert_eq!(memo.get_at(&digest(1), now), Some("one"));
        assert_eq!(
            memo.get_at(&digest(1), now + Duration::from_millis(9_999)),
            Some("one")
        );
        assert_eq!(memo.get_at(&digest(2), now), None, "never seen");
        assert_eq!(
            memo.get_at(&digest(1), now + Duration::from_secs(10)),
            None,
            "expired at its deadline"
        );
        assert!(
            memo.is_empty(),
            "an expired answer is dropped when asked for"
        );
    }

    #[test]
    fn put_with_the_real_clock_expires_and_zero_keeps_nothing() {
        let memo = TokenMemo::new(8);
        memo.put(digest(1), 1, Duration::ZERO);
        assert_eq!((memo.get(&digest(1)), memo.len()), (None, 0));
        memo.put(digest(2), 2, Duration::from_millis(50));
        memo.put(digest(3), 3, Duration::from_secs(60));
        assert_eq!(memo.get(&digest(2)), Some(2));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(memo.get(&digest(2)), None);
        assert_eq!(memo.get(&digest(3)), Some(3));
        // A second answer for the same token replaces the first.
        memo.put(digest(3), 33, Duration::from_secs(60));
        assert_eq!((memo.get(&digest(3)), memo.len()), (Some(33), 1));
    }

    #[test]
    fn the_bound_holds_under_a_flood_and_the_newest_answers_stay() {
        const CAPACITY: usize = 1000;
        let memo = TokenMemo::new(CAPACITY);
        let now = Instant::now();
        // A token in steady use, with a long life left.
        let in_use = TokenDigest::of("in use");
        memo.put_at(in_use, usize::MAX, now + Duration::from_secs(3600), now);
        // Ten times the capacity of new live answers, each good for a minute from when it came.
        for i in 0..10 * CAPACITY {
            let at = now + Duration::from_millis(i as u64);
            memo.put_at(digest(i), i, at + Duration::from_secs(60), at);
            assert!(memo.len() <= CAPACITY, "{} held after {i}", memo.len());
        }
        let later = now + Duration::from_millis(10 * CAPACITY as u64);
        assert_eq!(memo.get_at(&in_use, later), Some(usize::MAX));
        let last = 10 * CAPACITY - 1;
        assert_eq!(memo.get_at(&digest(last), later), Some(last));
        assert_eq!(
            memo.get_at(&digest(0), later),
            None,
            "the oldest went first"
        );
    }

    #[test]
    fn a_full_memo_of_expired_answers_is_swept_whole() {
        let memo = TokenMemo::new(100);
        let now = Instant::now();
        for i in 0..100 {
            memo.put_at(digest(i), i, now + Duration::from_secs(1), now);
        }
        let later = now + Duration::from_secs(2);
        memo.put_at(digest(1000), 1000, later + Duration::from_secs(1), later);
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get_at(&digest(1000), later), Some(1000));
    }

    #[test]
    fn a_memo_of_one_still_takes_the_newest() {
        let memo = TokenMemo::new(0);
        let now = Instant::now();
        memo.put_at(digest(1), 1, now + Duration::from_secs(9), now);
        memo.put_at(digest(2), 2, now + Duration::from_secs(5), now);
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get_at(&digest(2), now), Some(2));
    }

    #[test]
    fn digests_are_sha256_and_debug_shows_only_a_prefix() {
        let digest = TokenDigest::of("abc");
        assert_eq!(digest.0[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(format!("{digest:?}"), "TokenDigest(ba78…)");
    }
}
