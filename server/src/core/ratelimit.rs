//! Registration rate limits: what is abusive, not what is many.
//!
//! Two limits, both a generic cell rate algorithm ([`Pace`]):
//!
//! - **new names per source address** ([`SourceLimiter`]): registrations that create a host
//!   not yet known, counted per source IP across all its connections. Known hosts never spend
//!   this budget, so a thousand hosts behind one NAT address heartbeat freely.
//! - **heartbeats per host** faster than a minimum interval, after a small burst. Its state is
//!   one instant kept with the host in the registry, so the check costs no lookup and no
//!   allocation.
//!
//! Both read tokio's clock through the instants they are given, so limits behave the same
//! under paused and simulated time; both take their pace from the live configuration on every
//! check ([`Limits::from_config`]), so a reload applies at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{HeartbeatSection, RateLimitSection};

/// How long a source's rate-limit refusals are summed into one log line.
pub const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(60);

/// A steady pace plus a burst allowance (GCRA): each admitted event moves a theoretical
/// arrival time `interval` ahead; an event is refused while that time runs more than
/// `tolerance` ahead of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// What one event costs.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: `interval × (burst − 1)`.
    tolerance: Duration,
}

/// A refused event: how long until the next one will be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl Pace {
    /// One event per `interval`, `burst` at once; `None` (no limit) for a zero interval.
    pub fn new(interval: Duration, burst: u32) -> Option<Self> {
        (!interval.is_zero()).then(|| Self {
            interval,
            tolerance: interval.saturating_mul(burst.saturating_sub(1)),
        })
    }

    /// `per_minute` events a minute, `burst` at once; `None` (no limit) for 0.
    pub fn per_minute(per_minute: u32, burst: u32) -> Option<Self> {
        if per_minute == 0 {
            return None;
        }
        Self::new(Duration::from_secs(60) / per_minute, burst)
    }

    /// Admits one event at `now` against the theoretical arrival time `tat` (moving it on),
    /// or refuses it and leaves `tat` alone.
    pub fn admit(&self, tat: &mut Instant, now: Instant) -> Result<(), RetryAfter> {
        let arrival = (*tat).max(now);
        let ahead = arrival - now;
        if ahead > self.tolerance {
            return Err(RetryAfter(ahead - self.tolerance));
        }
        *tat = arrival + self.interval;
        Ok(())
    }

    /// The time one event costs.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// Why a registration was refused by a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The source address created too many new hosts.
    NewNames {
        /// The limit in force.
        per_minute: u32,
        /// When the next new name will be admitted.
        retry_after: Duration,
    },
    /// This host heartbeats faster than the minimum interval.
    HeartbeatTooFast {
        /// The minimum interval in force.
        min_interval: Duration,
        /// When the host's next heartbeat will be admitted.
        retry_after: Duration,
    },
}

impl Limited {
    /// The `reason` label of `prism_registrations_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NewNames { .. } => "new_names_rate",
            Self::HeartbeatTooFast { .. } => "heartbeat_too_fast",
        }
    }
}

/// The limits a registration is checked against, taken from the configuration in force.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// New names per source address, and the limiter that keeps each address's pace.
    new_names: Option<(&'a SourceLimiter, Pace, u32)>,
    /// Registrations of one known host.
    per_host: Option<Pace>,
}

impl<'a> Limits<'a> {
    /// No limit at all.
    pub const NONE: Limits<'static> = Limits {
        new_names: None,
        per_host: None,
    };

    /// The limits `rate_limit` sets (with `heartbeat` for the default minimum interval),
    /// new names counted in `sources`.
    pub fn from_config(
        rate_limit: &RateLimitSection,
        heartbeat: &HeartbeatSection,
        sources: &'a SourceLimiter,
    ) -> Self {
        let new_names = Pace::per_minute(rate_limit.registrations_per_minute, rate_limit.burst)
            .map(|pace| (sources, pace, rate_limit.registrations_per_minute));
        let per_host = Pace::new(
            rate_limit.min_heartbeat_interval(heartbeat),
            rate_limit.heartbeat_burst,
        );
        Self {
            new_names,
            per_host,
        }
    }

    /// Admits a registration from `source` that creates a host not yet known.
    pub fn admit_new_name(&self, source: IpAddr, now: Instant) -> Result<(), Limited> {
        let Some((sources, pace, per_minute)) = self.new_names else {
            return Ok(());
        };
        sources
            .admit(source, now, pace)
            .map_err(|RetryAfter(retry_after)| Limited::NewNames {
                per_minute,
                retry_after,
            })
    }

    /// Admits a registration of a known host whose theoretical arrival time is `tat`.
    pub fn admit_known_host(&self, tat: &mut Instant, now: Instant) -> Result<(), Limited> {
        let Some(pace) = self.per_host else {
            return Ok(());
        };
        pace.admit(tat, now)
            .map_err(|RetryAfter(retry_after)| Limited::HeartbeatTooFast {
                min_interval: pace.interval(),
                retry_after,
            })
    }
}

/// Per-source-IP pace of new names, shared by every connection of the process.
#[derive(Debug, Default)]
pub struct SourceLimiter {
    /// Theoretical arrival time per IP; entries in the past are pruned.
    arrivals: Mutex<HashMap<IpAddr, Instant>>,
}

impl SourceLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.arrivals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one new name from `ip` at `now` under `pace`, or refuses it.
    pub fn admit(&self, ip: IpAddr, now: Instant, pace: Pace) -> Result<(), RetryAfter> {
        let mut arrivals = self.lock();
        let tat = arrivals.entry(ip).or_insert(now);
        pace.admit(tat, now)
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

/// Keeps rate-limit refusals to one log line per source address and [`REFUSAL_LOG_WINDOW`]:
/// the first refusal of a window is logged, the rest are summed into the next line.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// Per source: when its last line was written, and refusals not logged since.
    sources: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl RefusalLog {
    /// Records a refusal from `source` at `now`; returns `Some(suppressed)` when a line is
    /// due now, with the refusals left out since the previous line.
    pub fn record(&self, source: IpAddr, now: Instant) -> Option<u64> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        match sources.get_mut(&source) {
            Some((logged, suppressed)) if now < *logged + REFUSAL_LOG_WINDOW => {
                *suppressed += 1;
                None
            }
            Some((logged, suppressed)) => {
                let left_out = std::mem::take(suppressed);
                *logged = now;
                Some(left_out)
            }
            None => {
                sources.insert(source, (now, 0));
                Some(0)
            }
        }
    }

    /// Forgets sources whose window ended with nothing left out.
    pub fn prune(&self, now: Instant) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.retain(|_, (logged, suppressed)| {
            *suppressed > 0 || now < *logged + REFUSAL_LOG_WINDOW
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, burst: u32) -> RateLimitSection {
        RateLimitSection {
            registrations_per_minute: per_minute,
            burst,
            ..RateLimitSection::default()
        }
    }

    const SOURCE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[tokio::test(start_paused = true)]
    async fn new_names_get_the_burst_then_the_pace() {
        let sources = SourceLimiter::default();
        let config = limits(60, 3);
        let limits = Limits::from_config(&config, &HeartbeatSection::default(), &sources);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.admit_new_name(SOURCE, now), Ok(()));
        }
        assert_eq!(
            limits.admit_new_name(SOURCE, now),
            Err(Limited::NewNames {
                per_minute: 60,
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!(
            limits.admit_new_name(SOURCE, now + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_names_are_counted_per_source() {
        let sources = SourceLimiter::default();
        let config = limits(60, 1);
        let limits = Limits::from_config(&config, &HeartbeatSection::default(), &sources);
        let now = Instant::now();
        let other = IpAddr::from([192, 0, 2, 2]);
        assert_eq!(limits.admit_new_name(SOURCE, now), Ok(()));
        assert_eq!(limits.admit_new_name(other, now), Ok(()));
        assert!(limits.admit_new_name(SOURCE, now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_host_at_its_interval_is_never_limited_but_a_fast_one_is() {
        let config = RateLimitSection::default();
        let heartbeat = HeartbeatSection::default();
        let sources = SourceLimiter::default();
        let limits = Limits::from_config(&config, &heartbeat, &sources);
        let start = Instant::now();
        let mut tat = start;
        for beat in 0..100 {
            let at = start + Duration::from_secs(heartbeat.interval) * beat;
            assert_eq!(limits.admit_known_host(&mut tat, at), Ok(()), "beat {beat}");
        }
        let mut fast = start;
        for _ in 0..config.heartbeat_burst {
            assert_eq!(limits.admit_known_host(&mut fast, start), Ok(()));
        }
        let min_interval = Duration::from_secs(heartbeat.interval) / 4;
        assert_eq!(
            limits.admit_known_host(&mut fast, start),
            Err(Limited::HeartbeatTooFast {
                min_interval,
                retry_after: min_interval
            })
        );
        assert_eq!(
            sources.tracked(),
            0,
            "known hosts never touch the source budget"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_turns_each_limit_off_and_prune_forgets_quiet_sources() {
        let sources = SourceLimiter::default();
        let mut config = limits(0, 0);
        config.min_heartbeat_interval_secs = Some(0.0);
        let limits = Limits::from_config(&config, &HeartbeatSection::default(), &sources);
        let now = Instant::now();
        let mut tat = now;
        assert!((0..10_000).all(|_| limits.admit_new_name(SOURCE, now).is_ok()));
        assert!((0..10_000).all(|_| limits.admit_known_host(&mut tat, now).is_ok()));
        assert_eq!(sources.tracked(), 0);
        let pace = Pace::per_minute(60, 1).expect("limited");
        assert_eq!(sources.admit(SOURCE, now, pace), Ok(()));
        sources.prune(now + Duration::from_secs(2));
        assert_eq!(sources.tracked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_logged_once_per_source_and_window() {
        let log = RefusalLog::default();
        let now = Instant::now();
        assert_eq!(log.record(SOURCE, now), Some(0));
        assert_eq!(log.record(SOURCE, now + Duration::from_secs(1)), None);
        assert_eq!(log.record(SOURCE, now + Duration::from_secs(2)), None);
        assert_eq!(
            log.record(IpAddr::from([192, 0, 2, 9]), now),
            Some(0),
            "another source has its own window"
        );
        assert_eq!(log.record(SOURCE, now + REFUSAL_LOG_WINDOW), Some(2));
        log.prune(now + REFUSAL_LOG_WINDOW * 3);
        assert_eq!(log.record(SOURCE, now + REFUSAL_LOG_WINDOW * 3), Some(0));
    }
}
