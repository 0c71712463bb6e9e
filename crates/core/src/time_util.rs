//! Timestamps are stored as microseconds since the Unix epoch: exact, portable across SQLite and
//! PostgreSQL, and what the audit hash chain is computed over.

use time::OffsetDateTime;

/// Truncates to whole microseconds, the precision every timestamp is stored with, so a value
/// read back compares equal to the one written.
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    from_micros(to_micros(at))
}

pub fn to_micros(at: OffsetDateTime) -> i64 {
    // i64 microseconds cover ±292,000 years; the clamp only guards against absurd inputs.
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let truncated = truncate_to_micros(at);
        assert_eq!(to_micros(truncated), 1_700_000_000_123_456);
        assert_eq!(from_micros(to_micros(truncated)), truncated);
    }
}

/// Where "now" comes from. Passed in, so expiry rules can be tested without waiting.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// The system's clock moved on by a chosen amount: what tests hand a server so that expiries
/// can be passed by advancing time instead of sleeping past a deadline.
#[derive(Debug, Default)]
pub struct AdvancedClock {
    ahead_micros: std::sync::atomic::AtomicI64,
}

impl AdvancedClock {
    /// Moves this clock `by` further ahead of the system's.
    pub fn advance(&self, by: time::Duration) {
        let micros = i64::try_from(by.whole_microseconds()).unwrap_or(i64::MAX);
        self.ahead_micros
            .fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for AdvancedClock {
    fn now(&self) -> OffsetDateTime {
        let ahead = self.ahead_micros.load(std::sync::atomic::Ordering::SeqCst);
        SystemClock.now() + time::Duration::microseconds(ahead)
    }
}
