//! Per-source-IP registration rate limit, shared by every connection of the process.
//!
//! A generic cell rate algorithm keyed by IP. It reads tokio's clock through the injected
//! [`Clock`](crate::clock::Clock) instants, so limits behave the same under paused and
//! simulated time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimitSection;

/// Registrations per source IP: a steady pace plus a burst allowance.
#[derive(Debug)]
pub struct RateLimiter {
    /// The pace and the per-IP state behind one lock, so a reload (SIGHUP) can change the pace
    /// without a second lock on the hot path.
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    /// Time one registration "costs"; `None` when the limit is off.
    emission_interval: Option<Duration>,
    /// How far ahead of now an IP's theoretical arrival time may run (the burst allowance).
    tolerance: Duration,
    /// The configured registrations per minute, for messages.
    per_minute: u32,
    /// Theoretical arrival time per IP; entries in the past are pruned.
    arrivals: HashMap<IpAddr, Instant>,
}

impl LimiterState {
    fn configure(&mut self, config: &RateLimitSection) {
        self.emission_interval = (config.registrations_per_minute > 0)
            .then(|| Duration::from_secs(60) / config.registrations_per_minute);
        self.tolerance = self.emission_interval.map_or(Duration::ZERO, |interval| {
            interval * config.burst.saturating_sub(1)
        });
        self.per_minute = config.registrations_per_minute;
    }
}

/// A refused registration: how long until the next one will be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RateLimiter {
    /// A limiter configured by `rate_limit.*`.
    pub fn new(config: &RateLimitSection) -> Self {
        let mut state = LimiterState {
            emission_interval: None,
            tolerance: Duration::ZERO,
            per_minute: 0,
            arrivals: HashMap::new(),
        };
        state.configure(config);
        Self {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a new pace and burst (configuration reload). Each IP keeps its history.
    pub fn reconfigure(&self, config: &RateLimitSection) {
        self.lock().configure(config);
    }

    /// The registrations per minute now in force (0: no limit).
    pub fn per_minute(&self) -> u32 {
        self.lock().per_minute
    }

    /// Counts one registration from `ip` at `now`, or refuses it.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let mut state = self.lock();
        let Some(interval) = state.emission_interval else {
            return Ok(());
        };
        let tolerance = state.tolerance;
        let arrival = state
            .arrivals
            .get(&ip)
            .copied()
            .map_or(now, |tat| tat.max(now));
        let ahead = arrival - now;
        if ahead > tolerance {
            return Err(RetryAfter(ahead - tolerance));
        }
        state.arrivals.insert(ip, arrival + interval);
        Ok(())
    }

    /// Forgets IPs that have been quiet long enough to have their whole burst back.
    pub fn prune(&self, now: Instant) {
        self.lock().arrivals.retain(|_, arrival| *arrival > now);
    }

    /// Source IPs currently tracked.
    pub fn tracked(&self) -> usize {
        self.lock().arrivals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitSection {
            registrations_per_minute: per_minute,
            burst,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn allows_the_burst_then_the_pace() {
        let limiter = limiter(60, 3);
        let ip = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip, now), Ok(()));
        }
        assert_eq!(
            limiter.check(ip, now),
            Err(RetryAfter(Duration::from_secs(1)))
        );
        assert_eq!(limiter.check(ip, now + Duration::from_secs(1)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn reconfigure_changes_the_pace_at_once() {
        let limiter = limiter(60, 1);
        let ip = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        assert_eq!(limiter.check(ip, now), Ok(()));
        assert!(limiter.check(ip, now).is_err());
        limiter.reconfigure(&RateLimitSection {
            registrations_per_minute: 0,
            burst: 1,
        });
        assert_eq!(limiter.per_minute(), 0);
        assert_eq!(limiter.check(ip, now), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn limits_each_ip_separately() {
        let limiter = limiter(60, 1);
        let now = Instant::now();
        assert_eq!(limiter.check(IpAddr::from([192, 0, 2, 1]), now), Ok(()));
        assert_eq!(limiter.check(IpAddr::from([192, 0, 2, 2]), now), Ok(()));
        assert!(limiter.check(IpAddr::from([192, 0, 2, 1]), now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_disables_the_limit_and_prune_forgets_quiet_ips() {
        let off = limiter(0, 0);
        let ip = IpAddr::from([192, 0, 2, 1]);
        let now = Instant::now();
        assert!((0..10_000).all(|_| off.check(ip, now).is_ok()));
        let on = limiter(60, 1);
        assert_eq!(on.check(ip, now), Ok(()));
        on.prune(now + Duration::from_secs(2));
        assert_eq!(on.tracked(), 0);
    }
}
