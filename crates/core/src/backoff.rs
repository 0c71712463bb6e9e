//! Exponential back-off for slow credential checks (passwords, codes, passkeys, enrolment
//! links), per account and per source address: the first `free` failures cost nothing; from
//! then on each failure locks the key for twice as long as the one before, up to `max`. A
//! success, or `QUIET` time without a failure, forgets them.
//!
//! These are the rules; the counts live in the store, so that every node sees the same ones and
//! a restart forgets none.

use std::time::Duration;

use time::OffsetDateTime;

/// How a key backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
}

/// Failures older than this are forgotten.
pub const QUIET: Duration = Duration::from_secs(15 * 60);

impl BackoffPolicy {
    /// How long a key with `failures` counted must wait after its last one.
    fn penalty(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free)?;
        let factor = 2u32.saturating_pow(over.min(20));
        Some(self.base.saturating_mul(factor).min(self.max))
    }
}

/// A key's failures as counted, and when the last one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub failures: u32,
    pub last: OffsetDateTime,
}

fn since(earlier: OffsetDateTime, now: OffsetDateTime) -> Duration {
    Duration::try_from(now - earlier).unwrap_or_default()
}

/// Whether one more attempt may go ahead for a key counted as `counted`: the count to store
/// (the attempt itself counted as a failure until it is known to have succeeded), or how long
/// the key must still wait.
pub fn admit(
    counted: Option<Counted>,
    now: OffsetDateTime,
    policy: &BackoffPolicy,
) -> Result<Counted, Duration> {
    let live = counted.filter(|c| since(c.last, now) < QUIET);
    if let Some(c) = live
        && let Some(penalty) = policy.penalty(c.failures)
    {
        let elapsed = since(c.last, now);
        if elapsed < penalty {
            return Err(penalty - elapsed);
        }
    }
    Ok(Counted {
        failures: live.map_or(0, |c| c.failures).saturating_add(1),
        last: now,
    })
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub failures: u32,
    pub since_last: Duration,
    /// How long before it may try again; `None` when it may now.
    pub wait: Option<Duration>,
}

/// `None` when nothing is counted, or its failures are forgotten.
pub fn standing(counted: Counted, now: OffsetDateTime, policy: &BackoffPolicy) -> Option<Standing> {
    let since_last = since(counted.last, now);
    if since_last >= QUIET || counted.failures == 0 {
        return None;
    }
    let wait = policy
        .penalty(counted.failures)
        .and_then(|penalty| penalty.checked_sub(since_last))
        .filter(|wait| !wait.is_zero());
    Some(Standing {
        failures: counted.failures,
        since_last,
        wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    /// Runs attempts against one key as the store would, keeping its count.
    struct Key(Option<Counted>);

    impl Key {
        fn attempt(&mut self, now: OffsetDateTime, policy: &BackoffPolicy) -> Option<Duration> {
            match admit(self.0, now, policy) {
                Ok(next) => {
                    self.0 = Some(next);
                    None
                }
                Err(wait) => Some(wait),
            }
        }
    }

    #[test]
    fn back_off_doubles_after_the_free_failures_up_to_the_cap() {
        let p = BackoffPolicy {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let mut key = Key(None);
        for _ in 0..3 {
            assert_eq!(key.attempt(at(0), &p), None, "free");
        }
        assert_eq!(key.attempt(at(0), &p), Some(Duration::from_secs(1)));
        assert_eq!(key.attempt(at(1), &p), None, "waited");
        assert_eq!(key.attempt(at(1), &p), Some(Duration::from_secs(2)));
        for step in 0..10 {
            assert_eq!(
                key.attempt(at(3 + 10 * step), &p),
                None,
                "after the capped wait"
            );
        }
        assert_eq!(
            key.attempt(at(93), &p),
            Some(Duration::from_secs(10)),
            "capped"
        );
        let lenient = BackoffPolicy { free: 100, ..p };
        assert_eq!(
            key.attempt(at(93), &lenient),
            None,
            "the policy is the caller's"
        );
    }

    #[test]
    fn quiet_time_forgets_and_standing_shows_the_wait() {
        let p = BackoffPolicy {
            free: 2,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let mut key = Key(None);
        key.attempt(at(0), &p);
        key.attempt(at(0), &p);
        assert_eq!(key.attempt(at(10), &p), None, "after the first wait");
        let standing = standing(key.0.unwrap(), at(14), &p).expect("counted");
        assert_eq!(standing.failures, 3);
        assert_eq!(standing.since_last, Duration::from_secs(4));
        // The third failure doubled the wait to 20 s, 4 of which have passed.
        assert_eq!(standing.wait, Some(Duration::from_secs(16)));
        let quiet = at(10) + QUIET;
        assert_eq!(super::standing(key.0.unwrap(), quiet, &p), None);
        assert_eq!(key.attempt(quiet, &p), None);
        assert_eq!(key.0.unwrap().failures, 1, "counting starts again");
    }
}
