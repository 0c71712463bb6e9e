//! Counting failed authentications, so credential guessing and scanning are slowed to a
//! trickle, with every check and its count taken in one step: simultaneous attempts see each
//! other, so a burst gets no more tries than the same attempts one after another.
//!
//! Two shapes. A fast verification (an API key's or client secret's keyed hash, a client
//! assertion's signature) runs inside the throttle's critical section (`FailureThrottle::
//! attempt`), so only failures count and a busy client's successes never slow it down. A slow
//! one (a password hash, a code or passkey checked against the database) reserves its attempt
//! first (`Backoff::reserve`): the reservation counts as a failure until the attempt is known
//! to have succeeded. Both tables are bounded so a flood of keys cannot exhaust memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_core::TenantId;

const WINDOW: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 100_000;

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Failures per key in fixed one-minute windows, refused past `limit`.
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

    /// Seconds until `key` may try again, if it has used up its failures for this window: a
    /// cheap refusal before any work. `attempt` decides for certain.
    pub fn blocked_for(&self, key: &str, now: Instant) -> Option<u64> {
        let windows = locked(&self.windows);
        let (start, count) = windows.get(key)?;
        Self::retry_after(self.limit, *start, *count, now)
    }

    fn retry_after(limit: u32, start: Instant, count: u32, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(start);
        (elapsed < WINDOW && count >= limit).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// Runs `verify` only if `key` is within its limit, and counts its failure in the same
    /// step. `Err(seconds)`: refused without running `verify`. Keep `verify` to work that
    /// takes microseconds and never waits: every key's attempts pass through here in turn.
    pub fn attempt<T, E>(
        &self,
        key: &str,
        now: Instant,
        verify: impl FnOnce() -> Result<T, E>,
    ) -> Result<Result<T, E>, u64> {
        let mut windows = locked(&self.windows);
        if let Some(seconds) = windows
            .get(key)
            .and_then(|(start, count)| Self::retry_after(self.limit, *start, *count, now))
        {
            return Err(seconds);
        }
        let outcome = verify();
        if outcome.is_err() {
            Self::make_room(&mut windows, now);
            let entry = windows.entry(key.to_owned()).or_insert((now, 0));
            if now.saturating_duration_since(entry.0) >= WINDOW {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
        Ok(outcome)
    }

    /// Counts one event against `key` (not only failures: a rate limit), refusing it once
    /// the window's limit is reached.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        self.attempt(key, now, || Err::<(), ()>(())).map(|_| ())
    }

    fn make_room(windows: &mut HashMap<String, (Instant, u32)>, now: Instant) {
        if windows.len() < MAX_TRACKED {
            return;
        }
        windows.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        if windows.len() >= MAX_TRACKED {
            // Still full of live windows: an attack from very many addresses. Forget the
            // oldest half rather than grow without bound.
            let mut starts: Vec<Instant> = windows.values().map(|(s, _)| *s).collect();
            starts.sort_unstable();
            let cutoff = starts[starts.len() / 2];
            windows.retain(|_, (start, _)| *start > cutoff);
        }
    }
}

pub use portcullis_core::backoff::{BackoffPolicy, Standing};

/// Failure counts of slow credential checks (passwords, codes, passkeys, enrolment links),
/// kept in the store so that every node counts the same attempts and a restart forgets none
/// (rules in `portcullis_core::backoff`). `scope` keeps the accounts' and the addresses' keys
/// apart; how long a key locks is the caller's policy (accounts follow their tenant's settings).
#[derive(Clone)]
pub struct Backoff {
    store: portcullis_store::Store,
    scope: &'static str,
    hasher: portcullis_core::secrets::SecretHasher,
}

/// An attempt that `Backoff::reserve` let through, counted as a failure of its key until
/// settled otherwise. Dropped unsettled (a wrong password, or an error half-way) it stays a
/// failure.
#[must_use = "an unsettled reservation counts as a failure"]
pub struct Reservation<'a> {
    backoff: &'a Backoff,
    key: String,
}

/// How an attempt that did not fail settles its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The attempt proved the key's owner: its failures are forgotten.
    Forget,
    /// The attempt proves nothing about the key (an address one person signed in from): only
    /// this attempt's count is given back.
    Refund,
}

impl<'a> Reservation<'a> {
    /// The attempt proved the key's owner: its failures are forgotten.
    pub async fn succeeded(self) {
        settle(vec![(self, Settle::Forget)]).await;
    }

    /// Only this attempt's count is given back.
    pub async fn refund(self) {
        settle(vec![(self, Settle::Refund)]).await;
    }
}

/// Settles several attempts in one write. Should the store fail here, the failures stay
/// counted, which errs on the safe side.
pub async fn settle(attempts: Vec<(Reservation<'_>, Settle)>) {
    let Some((first, _)) = attempts.first() else {
        return;
    };
    let store = first.backoff.store.clone();
    let keys = |how: Settle| -> Vec<&str> {
        attempts
            .iter()
            .filter(|(_, settle)| *settle == how)
            .map(|(r, _)| r.key.as_str())
            .collect()
    };
    if let Err(error) = store
        .backoff_settle(&keys(Settle::Forget), &keys(Settle::Refund))
        .await
    {
        tracing::warn!(%error, "could not settle sign-in back-off attempts");
    }
}

/// Let through, or the wait before the key may try again.
pub type Admitted<T> = Result<T, Duration>;

impl Backoff {
    pub fn new(
        store: portcullis_store::Store,
        scope: &'static str,
        hasher: portcullis_core::secrets::SecretHasher,
    ) -> Self {
        Self {
            store,
            scope,
            hasher,
        }
    }

    /// The row's key: a keyed hash, so that what people typed as a user name (sometimes their
    /// password, by mistake) and the addresses they came from are not kept readable in the
    /// database, and any text (a NUL, any length) makes a valid key.
    fn key(&self, key: &str) -> String {
        let scoped = format!("{}:{key}", self.scope);
        format!(
            "{}:{}",
            self.scope,
            hex::encode(self.hasher.hash(scoped.as_bytes()))
        )
    }

    /// Lets one attempt for `key` through, counted as a failure at once so that attempts
    /// made at the same time, on any node, each see the others; or the wait before the key
    /// may try again.
    pub async fn reserve(
        &self,
        key: &str,
        now: time::OffsetDateTime,
        policy: &BackoffPolicy,
    ) -> Result<Admitted<Reservation<'_>>, portcullis_store::StoreError> {
        let key = self.key(key);
        Ok(self
            .store
            .backoff_reserve(&[(&key, policy)], now)
            .await?
            .map(|()| Reservation { backoff: self, key }))
    }

    /// Where `key` stands: its counted failures, when the last one was, and how long it must
    /// still wait. `None` when it has nothing counted (or its failures are forgotten).
    pub async fn standing(
        &self,
        key: &str,
        now: time::OffsetDateTime,
        policy: &BackoffPolicy,
    ) -> Result<Option<Standing>, portcullis_store::StoreError> {
        self.store
            .backoff_standing(&self.key(key), now, policy)
            .await
    }

    /// Forgets `key`'s failures (an administrator's unlock). Returns what was forgotten.
    pub async fn forget(&self, key: &str) -> Result<Option<u32>, portcullis_store::StoreError> {
        self.store.backoff_forget(&self.key(key)).await
    }

    /// Lets one attempt through on each of two keys (an account and the address it is tried
    /// from), or neither, in one write: the wait is the longer of the two.
    pub async fn reserve_both<'a>(
        (first, first_key, first_policy): (&'a Backoff, &str, &BackoffPolicy),
        (second, second_key, second_policy): (&'a Backoff, &str, &BackoffPolicy),
        now: time::OffsetDateTime,
    ) -> Result<Admitted<(Reservation<'a>, Reservation<'a>)>, portcullis_store::StoreError> {
        let (one, two) = (first.key(first_key), second.key(second_key));
        Ok(first
            .store
            .backoff_reserve(&[(&one, first_policy), (&two, second_policy)], now)
            .await?
            .map(|()| {
                (
                    Reservation {
                        backoff: first,
                        key: one,
                    },
                    Reservation {
                        backoff: second,
                        key: two,
                    },
                )
            }))
    }
}

/// Events counted per key between two sweeps, with the first and last time of each, so that
/// the audit trail gets one event per key and window instead of one per request. At most
/// [`MAX_TRACKED`] keys are held; `count` says whether a new key still fitted.
#[derive(Debug)]
pub struct Tally<K> {
    pending: Mutex<HashMap<K, Tallied>>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Tallied {
    pub first: time::OffsetDateTime,
    pub last: time::OffsetDateTime,
    pub count: u64,
}

impl<K: Eq + std::hash::Hash> Tally<K> {
    /// Counts one event under `key`; `false` when the tally is full and `key` new to it.
    pub fn count(&self, key: K, at: time::OffsetDateTime) -> bool {
        let mut pending = locked(&self.pending);
        if pending.len() >= MAX_TRACKED && !pending.contains_key(&key) {
            return false;
        }
        pending
            .entry(key)
            .and_modify(|c| {
                c.last = at;
                c.count += 1;
            })
            .or_insert(Tallied {
                first: at,
                last: at,
                count: 1,
            });
        true
    }

    /// Everything counted since the last call.
    pub fn take(&self) -> Vec<(K, Tallied)> {
        locked(&self.pending).drain().collect()
    }
}

/// Attempts refused because their key was throttled, counted per (tenant, account, address,
/// method) and written to the audit trail as one `authn.throttled` event per key and window
/// with the count, instead of one event per refused request: a flood of refused attempts
/// must not flood the audit trail.
#[derive(Debug, Default)]
pub struct ThrottledAttempts {
    tally: Tally<ThrottledKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottledKey {
    pub tenant: TenantId,
    /// The account tried (a user name, or a key prefix), when the attempt named one.
    pub account: Option<String>,
    pub address: Option<String>,
    /// What was tried: `pwd`, `otp`, `hwk`, `api_key`, `client_secret`, `client_assertion`.
    pub method: &'static str,
}

impl ThrottledAttempts {
    pub fn note(&self, key: ThrottledKey, at: time::OffsetDateTime) {
        metrics::counter!("portcullis_auth_throttled_total", "method" => key.method).increment(1);
        if !self.tally.count(key, at) {
            metrics::counter!("portcullis_auth_throttled_unrecorded_total").increment(1);
        }
    }

    /// Counts an attempt refused while `account` (a user name, key prefix or client id, when
    /// the attempt named one) or its source address was backing off.
    pub fn note_refused(
        &self,
        tenant: TenantId,
        account: Option<&str>,
        origin: &portcullis_core::audit::Origin,
        method: &'static str,
        at: time::OffsetDateTime,
    ) {
        let key = ThrottledKey {
            tenant,
            account: account.map(str::to_owned),
            address: origin.source_ip.clone(),
            method,
        };
        self.note(key, at);
    }

    /// Everything counted since the last call.
    pub fn take(&self) -> Vec<(ThrottledKey, Tallied)> {
        self.tally.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fail() -> Result<(), ()> {
        Err(())
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = FailureThrottle::new(3);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(throttle.attempt("ip:1", t0, fail), Ok(Err(())));
        }
        assert_eq!(throttle.blocked_for("ip:1", t0), None);
        assert_eq!(throttle.attempt("ip:1", t0, || Ok::<_, ()>(())), Ok(Ok(())));
        assert_eq!(throttle.blocked_for("ip:1", t0), None, "a success is free");
        assert_eq!(throttle.attempt("ip:1", t0, fail), Ok(Err(())));
        assert_eq!(throttle.blocked_for("ip:1", t0), Some(60));
        assert_eq!(
            throttle.attempt("ip:1", t0, || -> Result<(), ()> { unreachable!() }),
            Err(60)
        );
        assert_eq!(throttle.blocked_for("ip:2", t0), None);
        assert_eq!(throttle.blocked_for("ip:1", t0 + WINDOW), None);
        assert_eq!(throttle.take("ip:1", t0 + WINDOW), Ok(()));
        assert_eq!(throttle.blocked_for("ip:1", t0 + WINDOW), None);
    }

    #[test]
    fn simultaneous_attempts_verify_no_more_than_the_limit() {
        let throttle = FailureThrottle::new(30);
        let verified = AtomicU32::new(0);
        let now = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..80 {
                scope.spawn(|| {
                    let _ = throttle.attempt("ip:1", now, || {
                        verified.fetch_add(1, Ordering::SeqCst);
                        fail()
                    });
                });
            }
        });
        assert_eq!(verified.load(Ordering::SeqCst), 30);
    }

    #[test]
    fn throttled_attempts_are_counted_per_key() {
        let log = ThrottledAttempts::default();
        let key = ThrottledKey {
            tenant: TenantId::generate(),
            account: Some("ada".into()),
            address: Some("192.0.2.1".into()),
            method: "pwd",
        };
        let at = time::OffsetDateTime::UNIX_EPOCH;
        for _ in 0..1000 {
            log.note(key.clone(), at);
        }
        log.note(
            ThrottledKey {
                method: "otp",
                ..key.clone()
            },
            at,
        );
        let mut taken = log.take();
        taken.sort_by_key(|(k, _)| k.method);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[1].1.count, 1000);
        assert!(log.take().is_empty());
    }
}
