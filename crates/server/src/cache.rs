//! A small time-bounded cache for the token endpoint's hot reads (tenant, client credential,
//! client settings). Entries live `ttl` at most, so a change made on any node — a revoked
//! secret, a disabled client — takes effect everywhere within that time; each lookup still
//! checks expiry and the secret itself.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub fn insert(&self, key: K, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            // Full of live entries is a flood of distinct keys: start over rather than grow.
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (now, value));
    }

    /// Forgets every entry whose value matches (after a change this node made).
    pub fn forget_where(&self, matches: impl Fn(&V) -> bool) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, value)| !matches(value));
    }

    /// Forgets `key` (after a change this node made), so the next lookup reads the store.
    pub fn forget(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let cache = TtlCache::new(Duration::from_secs(1), 2);
        let start = Instant::now();
        cache.insert("a", 1, start);
        assert_eq!(cache.get(&"a", start + Duration::from_millis(999)), Some(1));
        assert_eq!(cache.get(&"a", start + Duration::from_secs(1)), None);
        cache.insert("b", 2, start);
        cache.insert("c", 3, start);
        assert!(cache.entries.lock().unwrap().len() <= 2);
        cache.forget(&"c");
        assert_eq!(cache.get(&"c", start), None);
    }
}
