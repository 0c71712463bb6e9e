//! Counting failed authentications per source address, so credential guessing and scanning are
//! slowed to a trickle. Fixed one-minute windows; the table is bounded so a flood of
//! addresses cannot exhaust memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub struct FailureThrottle {
    limit: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureThrottle {
    pub fn new(limit_per_minute: u32) -> Self {
        Self {
            limit: limit_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, if it has used up its failures for this window.
    pub fn blocked_for(&self, key: &str, now: Instant) -> Option<u64> {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (start, count) = windows.get(key)?;
        let elapsed = now.saturating_duration_since(*start);
        (elapsed < WINDOW && *count >= self.limit).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        if windows.len() >= MAX_TRACKED {
            // Still full of live windows: an attack from very many addresses. Forget the oldest
            // half rather than grow without bound.
            let mut starts: Vec<Instant> = windows.values().map(|(s, _)| *s).collect();
            starts.sort_unstable();
            let cutoff = starts[starts.len() / 2];
            windows.retain(|_, (start, _)| *start > cutoff);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// Exponential back-off for password sign-in, per account and per source address: the first
/// `free` failures cost nothing; from then on each failure locks the key for twice as long as
/// the one before, up to `max`. A success, or `QUIET` time without a failure, forgets them.
/// Only password and code attempts count, so a locked account can still use a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
}

impl BackoffPolicy {
    fn penalty(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free)?;
        let factor = 2u32.saturating_pow(over.min(20));
        Some(self.base.saturating_mul(factor).min(self.max))
    }
}

const QUIET: Duration = Duration::from_secs(15 * 60);

/// Failure counts per key; how long they lock is the caller's policy (accounts follow their
/// tenant's settings).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long `key` must still wait before its next attempt, if at all.
    pub fn wait(&self, key: &str, now: Instant, policy: &BackoffPolicy) -> Option<Duration> {
        let entries = self.lock();
        let (failures, last) = entries.get(key)?;
        let penalty = policy.penalty(*failures)?;
        let elapsed = now.saturating_duration_since(*last);
        (elapsed < penalty).then(|| penalty - elapsed)
    }

    pub fn failure(&self, key: &str, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= MAX_TRACKED {
            entries.retain(|_, (_, last)| now.saturating_duration_since(*last) < QUIET);
        }
        if entries.len() >= MAX_TRACKED {
            return;
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= QUIET {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
    }

    pub fn success(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = FailureThrottle::new(3);
        let t0 = Instant::now();
        for _ in 0..2 {
            throttle.record_failure("ip:1", t0);
        }
        assert_eq!(throttle.blocked_for("ip:1", t0), None);
        throttle.record_failure("ip:1", t0);
        assert!(throttle.blocked_for("ip:1", t0).is_some());
        assert_eq!(throttle.blocked_for("ip:2", t0), None);
        assert_eq!(throttle.blocked_for("ip:1", t0 + WINDOW), None);
        throttle.record_failure("ip:1", t0 + WINDOW);
        assert_eq!(throttle.blocked_for("ip:1", t0 + WINDOW), None);
    }

    #[test]
    fn back_off_doubles_after_the_free_failures_and_a_success_forgets() {
        let b = Backoff::default();
        let p = BackoffPolicy {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.wait("acct", t0, &p), None);
            b.failure("acct", t0);
        }
        assert_eq!(b.wait("acct", t0, &p), Some(Duration::from_secs(1)));
        b.failure("acct", t0);
        assert_eq!(b.wait("acct", t0, &p), Some(Duration::from_secs(2)));
        for _ in 0..10 {
            b.failure("acct", t0);
        }
        assert_eq!(
            b.wait("acct", t0, &p),
            Some(Duration::from_secs(10)),
            "capped"
        );
        assert_eq!(b.wait("acct", t0 + Duration::from_secs(10), &p), None);
        assert_eq!(b.wait("other", t0, &p), None);
        let lenient = BackoffPolicy { free: 100, ..p };
        assert_eq!(
            b.wait("acct", t0, &lenient),
            None,
            "the policy is the caller's"
        );
        b.success("acct");
        assert_eq!(b.wait("acct", t0, &p), None);
    }
}
