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
}
