//! A brake on repeated attempts per key (an email address): a fixed window counter kept in this
//! process. It slows guessing and mail flooding; it is not a substitute for a rate limit at the
//! edge, and replicas count separately.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked at most. Past this, new keys go uncounted (the brake fails open) rather than
/// letting a flood of made-up addresses grow memory without bound.
const MAX_KEYS: usize = 100_000;
/// Expired windows are swept at most this often, so a full table costs one scan per interval,
/// not one per call.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub struct AttemptLimiter {
    max: u32,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    entries: HashMap<String, Window>,
    last_sweep: Instant,
}

struct Window {
    started: Instant,
    count: u32,
}

impl AttemptLimiter {
    /// At most `max` attempts per key within `window`; `max = 0` turns the brake off.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            state: Mutex::new(State {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Counts an attempt for the key, or refuses it with how long until the window ends. The
    /// check and the count are one step, so attempts in flight at once count too.
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = state.entries.get_mut(key) {
            let age = now.duration_since(window.started);
            if age >= self.window {
                *window = Window {
                    started: now,
                    count: 0,
                };
            } else if window.count >= self.max {
                return Err(self.window.saturating_sub(age));
            }
            window.count = window.count.saturating_add(1);
            return Ok(());
        }
        if state.entries.len() >= MAX_KEYS && now.duration_since(state.last_sweep) >= SWEEP_EVERY {
            let window = self.window;
            state
                .entries
                .retain(|_, w| now.duration_since(w.started) < window);
            state.last_sweep = now;
        }
        if state.entries.len() < MAX_KEYS {
            state.entries.insert(
                key.to_owned(),
                Window {
                    started: now,
                    count: 1,
                },
            );
        }
        Ok(())
    }

    /// Forgets the key (after a successful login).
    pub fn clear(&self, key: &str) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_within_window() {
        let limiter = AttemptLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.attempt("a").is_ok());
        assert!(limiter.attempt("a").is_ok());
        let retry = limiter.attempt("a");
        assert!(retry.is_err_and(|d| d > Duration::from_secs(59)));
        assert!(limiter.attempt("b").is_ok(), "keys are independent");
        limiter.clear("a");
        assert!(limiter.attempt("a").is_ok());
    }

    #[test]
    fn attempts_in_flight_count_at_once() {
        let limiter = std::sync::Arc::new(AttemptLimiter::new(3, Duration::from_secs(60)));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let limiter = std::sync::Arc::clone(&limiter);
                std::thread::spawn(move || limiter.attempt("a").is_ok())
            })
            .collect();
        let allowed = threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .filter(|ok| *ok)
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn window_expiry_resets() {
        let limiter = AttemptLimiter::new(1, Duration::from_millis(10));
        assert!(limiter.attempt("a").is_ok());
        assert!(limiter.attempt("a").is_err());
        std::thread::sleep(Duration::from_millis(20));
        assert!(limiter.attempt("a").is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = AttemptLimiter::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(limiter.attempt("a").is_ok());
        }
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = AttemptLimiter::new(1, Duration::from_secs(60));
        for i in 0..(MAX_KEYS + 1_000) {
            let _ = limiter.attempt(&format!("user{i}@example.com"));
        }
        let state = limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(state.entries.len(), MAX_KEYS);
    }
}
