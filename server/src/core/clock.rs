//! The injected time source: monotonic instants for deadlines, wall time for display and storage.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Where the core reads time from. Never call `SystemTime::now()` in the core: take a `Clock`.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time used for deadlines (tokio's clock, so paused and simulated time work).
    fn now(&self) -> Instant;
    /// Wall-clock time used for `last_seen`, response timestamps and the store.
    fn wall(&self) -> SystemTime;
}

/// Production clock: tokio's monotonic clock and the operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock whose wall time advances with tokio's clock from a fixed origin.
///
/// Under paused tokio time or a turmoil simulation the wall time then moves exactly with the
/// simulated time, which keeps runs reproducible.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    /// The tokio instant that corresponds to `origin_wall`.
    origin: Instant,
    /// Wall time at `origin`.
    origin_wall: SystemTime,
}

impl TokioClock {
    /// A clock whose wall time reads `origin_wall` now and advances with tokio time.
    pub fn starting_at(origin_wall: SystemTime) -> Self {
        Self {
            origin: Instant::now(),
            origin_wall,
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        self.origin_wall + Instant::now().saturating_duration_since(self.origin)
    }
}

/// Milliseconds since the Unix epoch, the representation used by the store.
pub fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`unix_millis`].
pub fn from_unix_millis(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// RFC 3339 UTC text with millisecond precision, as sent in protocol responses.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_millis_round_trips() {
        for millis in [0, 1, 1_764_000_000_123, -5_000] {
            assert_eq!(unix_millis(from_unix_millis(millis)), millis);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_wall_time_follows_paused_time() {
        let origin = from_unix_millis(1_000_000);
        let clock = TokioClock::starting_at(origin);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(unix_millis(clock.wall()), 1_000_000 + 90_000);
    }
}
