//! A brake on repeated attempts per key (an email address): a fixed window counter kept in this
//! process. It slows guessing and mail flooding; it is not a substitute for a rate limit at the
//! edge, and replicas count separately.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

pub struct AttemptLimiter {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

impl AttemptLimiter {
    /// At most `max` counted attempts per key within `window`; `max = 0` turns the brake off.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when the key has used up its attempts.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(w) if w.count >= self.max && now.duration_since(w.started) < self.window => {
                Err(self.window.saturating_sub(now.duration_since(w.started)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one attempt against the key.
    pub fn record(&self, key: &str) {
        if self.max == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= SWEEP_AT {
            let window = self.window;
            entries.retain(|_, w| now.duration_since(w.started) < window);
        }
        let window = entries.entry(key.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= self.window {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
    }

    /// Forgets the key (after a successful login).
    pub fn clear(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_within_window() {
        let limiter = AttemptLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("a").is_ok());
        limiter.record("a");
        limiter.record("a");
        assert!(limiter.check("a").is_err());
        assert!(limiter.check("b").is_ok(), "keys are independent");
        limiter.clear("a");
        assert!(limiter.check("a").is_ok());
    }

    #[test]
    fn window_expiry_resets() {
        let limiter = AttemptLimiter::new(1, Duration::from_millis(10));
        limiter.record("a");
        assert!(limiter.check("a").is_err());
        std::thread::sleep(Duration::from_millis(20));
        assert!(limiter.check("a").is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = AttemptLimiter::new(0, Duration::from_secs(60));
        limiter.record("a");
        assert!(limiter.check("a").is_ok());
    }
}
