//! Login rate limit: failed attempts per key (user name, client address) in a fixed window.
//! Bounded: at most `MAX_KEYS` keys are tracked; expired ones are dropped first. Pure: time
//! comes in as an argument.

use std::collections::HashMap;

const MAX_KEYS: usize = 100_000;

/// Failure counters.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window_ms: i64,
    entries: HashMap<String, (i64, u32)>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window_ms: i64) -> Self {
        LoginLimiter { max_failures, window_ms, entries: HashMap::new() }
    }

    /// Whether `key` may try now.
    pub fn allowed(&self, key: &str, now: i64) -> bool {
        match self.entries.get(key) {
            Some(&(start, n)) if now - start < self.window_ms => n < self.max_failures,
            _ => true,
        }
    }

    /// Records a failed attempt of `key`.
    pub fn failed(&mut self, key: &str, now: i64) {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(key) {
            let window = self.window_ms;
            self.entries.retain(|_, (start, _)| now - *start < window);
            if self.entries.len() >= MAX_KEYS {
                self.entries.clear();
            }
        }
        let e = self.entries.entry(key.to_string()).or_insert((now, 0));
        if now - e.0 >= self.window_ms {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    /// Clears `key` after a success.
    pub fn succeeded(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_window_ends() {
        let mut l = LoginLimiter::new(3, 1000);
        for _ in 0..3 {
            assert!(l.allowed("u", 0));
            l.failed("u", 0);
        }
        assert!(!l.allowed("u", 500));
        assert!(l.allowed("other", 500));
        assert!(l.allowed("u", 1000));
        l.failed("u", 1000);
        assert!(l.allowed("u", 1001));
        l.succeeded("u");
        assert!(l.allowed("u", 1002));
    }
}
