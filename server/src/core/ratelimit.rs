//! Per-source-IP registration rate limit, shared by every connection of the process.
//!
//! A generic cell rate algorithm keyed by IP. It reads tokio's clock through the injected
//! [`Clock`](crate::core::Clock) instants, so limits behave the same under paused and
//! simulated time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimitSection;

/// Registrations per source IP: a steady pace plus a burst allowance. The pace is passed in
/// on every check from the live configuration, so a reload applies at once and the limiter
/// keeps no copy of it.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Theoretical arrival time per IP; entries in the past are pruned.
    arrivals: Mutex<HashMap<IpAddr, Instant>>,
}

/// A refused registration: how long until the next one will be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RateLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.arrivals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one registration from `ip` at `now` under `limit`, or refuses it.
    pub fn check(
        &self,
        ip: IpAddr,
        now: Instant,
        limit: &RateLimitSection,
    ) -> Result<(), RetryAfter> {
        if limit.registrations_per_minute == 0 {
            return Ok(());
        }
        // The time one registration "costs", and how far ahead of now an IP's theoretical
        // arrival time may run (the burst allowance).
        let interval = Duration::from_secs(60) / limit.registrations_per_minute;
        let tolerance = interval * limit.burst.saturating_sub(1);
        let mut arrivals = self.lock();
        let arrival = arrivals.get(&ip).copied().map_or(now, |tat| tat.max(now));
        let ahead = arrival - now;
        if ahead > tolerance {
            return Err(RetryAfter(ahead - tolerance));
        }
        arrivals.insert(ip, arrival + interval);
        Ok(())
    }

    /// Forgets IPs that have been quiet long enough to have their whole burst back.
    pub fn prune(&self, now: Instant) {
        self.lock().retain(|_, arrival| *arrival > now);
    }

    /// Source IPs currently tracked.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_minute: u32, burst: u32) -> RateLimitSection {
        RateLimitSection {
            registrations_per_minute: per_minute,
            burst,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn allows_the_burst_then_the_pace() {
        let (limiter, limit) = (RateLimiter::default(), limit(60, 3));
        let ip = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip, now, &limit), Ok(()));
        }
        assert_eq!(
            limiter.check(ip, now, &limit),
            Err(RetryAfter(Duration::from_secs(1)))
        );
        assert_eq!(
            limiter.check(ip, now + Duration::from_secs(1), &limit),
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_limit_applies_at_once() {
        let limiter = RateLimiter::default();
        let ip = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        assert_eq!(limiter.check(ip, now, &limit(60, 1)), Ok(()));
        assert!(limiter.check(ip, now, &limit(60, 1)).is_err());
        assert_eq!(limiter.check(ip, now, &limit(0, 1)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn limits_each_ip_separately() {
        let (limiter, limit) = (RateLimiter::default(), limit(60, 1));
        let now = Instant::now();
        assert_eq!(
            limiter.check(IpAddr::from([192, 0, 2, 1]), now, &limit),
            Ok(())
        );
        assert_eq!(
            limiter.check(IpAddr::from([192, 0, 2, 2]), now, &limit),
            Ok(())
        );
        assert!(
            limiter
                .check(IpAddr::from([192, 0, 2, 1]), now, &limit)
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_disables_the_limit_and_prune_forgets_quiet_ips() {
        let limiter = RateLimiter::default();
        let ip = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.check(ip, now, &limit(0, 0)).is_ok()));
        assert_eq!(limiter.tracked(), 0);
        assert_eq!(limiter.check(ip, now, &limit(60, 1)), Ok(()));
        limiter.prune(now + Duration::from_secs(2));
        assert_eq!(limiter.tracked(), 0);
    }
}
