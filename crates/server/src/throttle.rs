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

/// An attempt that `Backoff::reserve` let through, counted as a failure of its key until
/// `succeeded` or `refund` says otherwise. Dropped unsettled (a wrong password, or an error
/// half-way) it stays a failure.
#[must_use = "an unsettled reservation counts as a failure"]
#[derive(Debug)]
pub struct Reservation<'a> {
    backoff: &'a Backoff,
    key: String,
}

impl Reservation<'_> {
    /// The attempt proved the key's owner: its failures are forgotten.
    pub fn succeeded(self) {
        locked(&self.backoff.entries).remove(&self.key);
    }

    /// The attempt did not fail, but proves nothing about the key (an address one person
    /// signed in from): only this attempt's count is given back.
    pub fn refund(self) {
        if let Some(entry) = locked(&self.backoff.entries).get_mut(&self.key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }
}

impl Backoff {
    /// Lets one attempt for `key` through, counted as a failure at once so that attempts
    /// made at the same time each see the others; or the wait before the key may try again.
    pub fn reserve(
        &self,
        key: &str,
        now: Instant,
        policy: &BackoffPolicy,
    ) -> Result<Reservation<'_>, Duration> {
        let mut entries = locked(&self.entries);
        if let Some((failures, last)) = entries.get(key) {
            let quiet = now.saturating_duration_since(*last) >= QUIET;
            if let Some(penalty) = policy.penalty(*failures).filter(|_| !quiet) {
                let elapsed = now.saturating_duration_since(*last);
                if elapsed < penalty {
                    return Err(penalty - elapsed);
                }
            }
        }
        if entries.len() >= MAX_TRACKED {
            entries.retain(|_, (_, last)| now.saturating_duration_since(*last) < QUIET);
        }
        if entries.len() >= MAX_TRACKED && !entries.contains_key(key) {
            // Full of keys that failed within the quiet period: an attack from very many
            // addresses or on very many accounts. Refuse new keys rather than forget old ones
            // (which would give their attackers a fresh start) or grow without bound.
            return Err(Duration::from_secs(1));
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= QUIET {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
        Ok(Reservation {
            backoff: self,
            key: key.to_owned(),
        })
    }

    /// Where `key` stands: its counted failures, when the last one was, and how long it must
    /// still wait. `None` when it has nothing counted (or its failures are forgotten).
    pub fn standing(&self, key: &str, now: Instant, policy: &BackoffPolicy) -> Option<Standing> {
        let entries = locked(&self.entries);
        let (failures, last) = *entries.get(key)?;
        let since_last = now.saturating_duration_since(last);
        if since_last >= QUIET || failures == 0 {
            return None;
        }
        let wait = policy
            .penalty(failures)
            .and_then(|penalty| penalty.checked_sub(since_last))
            .filter(|wait| !wait.is_zero());
        Some(Standing {
            failures,
            since_last,
            wait,
        })
    }

    /// Forgets `key`'s failures (an administrator's unlock). Returns what was forgotten.
    pub fn forget(&self, key: &str) -> Option<u32> {
        locked(&self.entries)
            .remove(key)
            .map(|(failures, _)| failures)
    }

    /// Lets one attempt through on each of two keys (an account and the address it is tried
    /// from), or neither: the wait is the longer of the two.
    pub fn reserve_both<'a>(
        (first, first_key, first_policy): (&'a Backoff, &str, &BackoffPolicy),
        (second, second_key, second_policy): (&'a Backoff, &str, &BackoffPolicy),
        now: Instant,
    ) -> Result<(Reservation<'a>, Reservation<'a>), Duration> {
        let one = first.reserve(first_key, now, first_policy);
        let two = second.reserve(second_key, now, second_policy);
        match (one, two) {
            (Ok(one), Ok(two)) => Ok((one, two)),
            (Ok(one), Err(wait)) | (Err(wait), Ok(one)) => {
                one.refund();
                Err(wait)
            }
            (Err(a), Err(b)) => Err(a.max(b)),
        }
    }
}

/// A key's back-off as `Backoff::standing` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub failures: u32,
    pub since_last: Duration,
    /// How long before it may try again; `None` when it may now.
    pub wait: Option<Duration>,
}

/// Attempts refused because their key was throttled, counted per (tenant, account, address,
/// method) and written to the audit trail as one `authn.throttled` event per key and window
/// with the count, instead of one event per refused request: a flood of refused attempts
/// must not flood the audit trail.
#[derive(Debug, Default)]
pub struct ThrottledAttempts {
    pending: Mutex<HashMap<ThrottledKey, ThrottledCount>>,
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

#[derive(Debug, Clone, Copy)]
pub struct ThrottledCount {
    pub first: time::OffsetDateTime,
    pub last: time::OffsetDateTime,
    pub count: u64,
}

impl ThrottledAttempts {
    pub fn note(&self, key: ThrottledKey, at: time::OffsetDateTime) {
        metrics::counter!("portcullis_auth_throttled_total", "method" => key.method).increment(1);
        let mut pending = locked(&self.pending);
        if pending.len() >= MAX_TRACKED && !pending.contains_key(&key) {
            metrics::counter!("portcullis_auth_throttled_unrecorded_total").increment(1);
            return;
        }
        pending
            .entry(key)
            .and_modify(|c| {
                c.last = at;
                c.count += 1;
            })
            .or_insert(ThrottledCount {
                first: at,
                last: at,
                count: 1,
            });
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
    pub fn take(&self) -> Vec<(ThrottledKey, ThrottledCount)> {
        locked(&self.pending).drain().collect()
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
    fn simultaneous_reservations_get_only_the_free_attempts() {
        let b = Backoff::default();
        let p = BackoffPolicy {
            free: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let let_through = AtomicU32::new(0);
        let now = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..200 {
                scope.spawn(|| {
                    if b.reserve("acct", now, &p).is_ok() {
                        let_through.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(let_through.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn standing_shows_the_wait_and_forgetting_unlocks() {
        let b = Backoff::default();
        let p = BackoffPolicy {
            free: 2,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        assert_eq!(b.standing("acct", t0, &p), None);
        for _ in 0..2 {
            drop(b.reserve("acct", t0, &p).expect("free"));
        }
        let third = t0 + Duration::from_secs(10);
        drop(b.reserve("acct", third, &p).expect("after the first wait"));
        let later = third + Duration::from_secs(4);
        let standing = b.standing("acct", later, &p).expect("counted");
        assert_eq!(standing.failures, 3);
        assert_eq!(standing.since_last, Duration::from_secs(4));
        // The third failure doubled the wait to 20 s, 4 of which have passed.
        assert_eq!(standing.wait, Some(Duration::from_secs(16)));
        assert!(b.reserve("acct", later, &p).is_err());
        assert_eq!(b.forget("acct"), Some(3));
        assert_eq!(b.standing("acct", later, &p), None);
        assert!(b.reserve("acct", later, &p).is_ok());
        assert_eq!(b.forget("nobody"), None);
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
        let wait = |at| b.reserve("acct", at, &p).err();
        for _ in 0..3 {
            drop(b.reserve("acct", t0, &p).expect("free"));
        }
        assert_eq!(wait(t0), Some(Duration::from_secs(1)));
        drop(
            b.reserve("acct", t0 + Duration::from_secs(1), &p)
                .expect("waited"),
        );
        assert_eq!(
            wait(t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        let t1 = t0 + Duration::from_secs(3);
        for step in 0..10 {
            let at = t1 + Duration::from_secs(10 * step);
            drop(b.reserve("acct", at, &p).expect("after the capped wait"));
        }
        let t2 = t1 + Duration::from_secs(90);
        assert_eq!(wait(t2), Some(Duration::from_secs(10)), "capped");
        let lenient = BackoffPolicy { free: 100, ..p };
        assert!(b.reserve("other", t2, &p).is_ok(), "keys are separate");
        let r = b
            .reserve("acct", t2, &lenient)
            .expect("the policy is the caller's");
        r.succeeded();
        assert!(b.reserve("acct", t2, &p).is_ok(), "a success forgets");
        let quiet = t2 + QUIET;
        assert!(b.reserve("other", quiet, &p).is_ok());
    }

    #[test]
    fn a_refund_returns_one_attempt_and_reserve_both_is_all_or_nothing() {
        let b = Backoff::default();
        let addresses = Backoff::default();
        let p = BackoffPolicy {
            free: 1,
            base: Duration::from_secs(60),
            max: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        b.reserve("acct", t0, &p).expect("free").refund();
        b.reserve("acct", t0, &p)
            .expect("refunded, still free")
            .refund();
        drop(addresses.reserve("ip", t0, &p).expect("free"));
        assert!(addresses.reserve("ip", t0, &p).is_err());
        let both = Backoff::reserve_both((&b, "acct", &p), (&addresses, "ip", &p), t0);
        assert!(both.is_err(), "the address is backing off");
        b.reserve("acct", t0, &p)
            .expect("the account's reservation was given back")
            .refund();
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
