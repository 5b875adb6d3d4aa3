//! The open-loop schedule: when each request is *intended* to start, from a rate profile of
//! stages (constant rate, or linear ramps between rates), independent of how fast the target
//! answers.

use std::time::Duration;

/// One stage of a rate profile: the rate moves linearly to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// Requests per second reached at the end of the stage.
    pub target: f64,
}

/// Requests per second over time: a start rate, then stages (k6-style ramps).
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    start_rate: f64,
    stages: Vec<Stage>,
}

impl RateProfile {
    /// A constant `rate` for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self::staged(
            rate,
            vec![Stage {
                duration,
                target: rate,
            }],
        )
    }

    /// Starts at `start_rate` and follows `stages`.
    pub fn staged(start_rate: f64, stages: Vec<Stage>) -> Self {
        Self { start_rate, stages }
    }

    /// Length of the whole profile.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.duration).sum()
    }

    /// The highest rate the profile reaches.
    pub fn peak_rate(&self) -> f64 {
        self.stages
            .iter()
            .map(|stage| stage.target)
            .fold(self.start_rate, f64::max)
    }

    /// Average intended rate over the profile.
    pub fn mean_rate(&self) -> f64 {
        let seconds = self.duration().as_secs_f64();
        if seconds > 0.0 {
            self.cumulative(seconds) / seconds
        } else {
            0.0
        }
    }

    /// The intended rate `seconds` into the profile (0 after its end).
    pub fn rate_at(&self, seconds: f64) -> f64 {
        let mut elapsed = 0.0;
        let mut from = self.start_rate;
        for stage in &self.stages {
            let length = stage.duration.as_secs_f64();
            if seconds < elapsed + length {
                let progress = if length > 0.0 {
                    ((seconds - elapsed) / length).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                return from + (stage.target - from) * progress;
            }
            elapsed += length;
            from = stage.target;
        }
        0.0
    }

    /// How many requests the profile schedules in total.
    pub fn scheduled(&self) -> u64 {
        // Request `i` starts at the time the cumulative count reaches `i`, for every start
        // strictly before the end: that is ⌈Λ(T)⌉ requests.
        let total = self.cumulative(self.duration().as_secs_f64());
        total.ceil() as u64
    }

    /// Λ(t): requests scheduled in `[0, t)` (fractional).
    fn cumulative(&self, seconds: f64) -> f64 {
        let mut count = 0.0;
        let mut elapsed = 0.0;
        let mut from = self.start_rate;
        for stage in &self.stages {
            let length = stage.duration.as_secs_f64();
            let within = (seconds - elapsed).clamp(0.0, length);
            if within > 0.0 {
                let slope = if length > 0.0 {
                    (stage.target - from) / length
                } else {
                    0.0
                };
                count += from * within + slope * within * within / 2.0;
            }
            if seconds <= elapsed + length {
                return count;
            }
            elapsed += length;
            from = stage.target;
        }
        count
    }

    /// When request number `index` is intended to start, or `None` past the end.
    pub fn intended_offset(&self, index: u64) -> Option<Duration> {
        let mut remaining = index as f64;
        let mut elapsed = 0.0;
        let mut from = self.start_rate;
        for stage in &self.stages {
            let length = stage.duration.as_secs_f64();
            let slope = if length > 0.0 {
                (stage.target - from) / length
            } else {
                0.0
            };
            let in_stage = from * length + slope * length * length / 2.0;
            if remaining < in_stage {
                // Solve from·t + slope·t²/2 = remaining in the numerically stable form that
                // also covers constant rates (slope 0) and ramps down (slope < 0).
                let root = (from * from + 2.0 * slope * remaining).max(0.0).sqrt();
                let denominator = from + root;
                let within = if denominator > 0.0 {
                    2.0 * remaining / denominator
                } else {
                    0.0
                };
                return Some(Duration::from_secs_f64(elapsed + within.min(length)));
            }
            remaining -= in_stage;
            elapsed += length;
            from = stage.target;
        }
        None
    }
}

/// Whether request `index` is one of the `ratio` share picked for a fault, spread evenly so
/// that exactly ⌊n·ratio⌋ of the first `n` requests are picked. `phase` shifts the pattern so
/// that two fault kinds with small ratios rarely pick the same request.
pub fn picked(index: u64, ratio: f64, phase: f64) -> bool {
    if ratio <= 0.0 {
        return false;
    }
    let before = (index as f64 * ratio + phase).floor();
    let after = ((index + 1) as f64 * ratio + phase).floor();
    after > before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_schedules_rate_times_duration_requests_evenly() {
        let profile = RateProfile::constant(200.0, Duration::from_secs(3));
        assert_eq!(profile.scheduled(), 600);
        assert_eq!(profile.intended_offset(0), Some(Duration::ZERO));
        let offset = profile
            .intended_offset(100)
            .expect("request 100 is scheduled");
        assert!((offset.as_secs_f64() - 0.5).abs() < 1e-9, "{offset:?}");
        assert!(profile.intended_offset(599).is_some());
        assert_eq!(profile.intended_offset(600), None);
    }

    #[test]
    fn linear_ramp_schedules_the_area_under_the_rate() {
        let profile = RateProfile::staged(
            0.0,
            vec![
                Stage {
                    duration: Duration::from_secs(2),
                    target: 100.0,
                },
                Stage {
                    duration: Duration::from_secs(1),
                    target: 100.0,
                },
                Stage {
                    duration: Duration::from_secs(2),
                    target: 0.0,
                },
            ],
        );
        assert_eq!(profile.scheduled(), 300);
        assert_eq!(profile.peak_rate(), 100.0);
        let offsets: Vec<f64> = (0..300)
            .map(|i| profile.intended_offset(i).expect("scheduled").as_secs_f64())
            .collect();
        assert!(
            offsets.windows(2).all(|pair| pair[0] <= pair[1]),
            "monotone"
        );
        // A ramp from 0 to 100/s over 2 s puts a quarter of its 100 requests in its first second.
        let first_second = offsets.iter().filter(|t| **t < 1.0).count();
        assert_eq!(first_second, 25);
        assert!(*offsets.last().expect("nonempty") < 5.0);
    }

    #[test]
    fn picked_selects_exactly_floor_of_ratio_times_count() {
        let count = (0..600).filter(|i| picked(*i, 0.1, 0.0)).count();
        assert_eq!(count, 60);
        let count = (0..1000).filter(|i| picked(*i, 0.25, 0.5)).count();
        assert_eq!(count, 250);
        assert!(!(0..100).any(|i| picked(i, 0.0, 0.0)));
    }
}
