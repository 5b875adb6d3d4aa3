//! prism-loadgen: an open-loop load generator for Prism (SPEC §10).
//!
//! Requests are sent at intended times from a rate profile whatever the target does, and
//! latency is measured from those intended times, so a stalled server cannot hide the
//! requests it delayed (no coordinated omission). The generator speaks the registration
//! protocol, DNS and HTTP with its own small clients and links nothing of the server.

use std::time::Duration;

use clap::Args;

pub mod api;
pub mod cli;
pub mod crossnode;
pub mod dns;
pub mod drill;
pub mod driver;
pub mod exporter;
pub mod frame;
pub mod heartbeat;
pub mod held;
pub mod html;
pub mod merge;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod target;
pub mod threshold;

use crate::schedule::{RateProfile, Stage};

/// Highest rate any cap may be raised to, requests per second.
pub const ABSOLUTE_MAX_RATE: f64 = 10_000_000.0;
/// Longest duration any cap may be raised to.
pub const ABSOLUTE_MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Rate, duration and the safety caps every workload has.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target requests per second, sent open-loop (at most --max-rate).
    #[arg(long, default_value_t = 1000.0, value_parser = parse_rate)]
    pub rate: f64,
    /// How long to generate load, e.g. 30s or 2m (at most --max-duration).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Safety cap on the rate; raise it explicitly for bigger runs.
    #[arg(long, default_value_t = 100_000.0, value_parser = parse_rate)]
    pub max_rate: f64,
    /// Safety cap on the duration; raise it explicitly for longer runs.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub max_duration: Duration,
    /// How long one request may take before it counts as a timeout.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl LoadArgs {
    /// The rate profile: `stages` when given (from a scenario), else constant `--rate` for
    /// `--duration`; refused when it exceeds the caps.
    pub fn profile(&self, stages: Option<(f64, Vec<Stage>)>) -> anyhow::Result<RateProfile> {
        let profile = match stages {
            Some((start_rate, stages)) => RateProfile::staged(start_rate, stages),
            None => RateProfile::constant(self.rate, self.duration),
        };
        let peak = profile.peak_rate();
        anyhow::ensure!(
            peak <= self.max_rate,
            "rate {peak}/s exceeds the safety cap --max-rate {}/s; raise --max-rate explicitly \
             to allow it",
            self.max_rate
        );
        let duration = profile.duration();
        anyhow::ensure!(
            duration <= self.max_duration,
            "duration {} exceeds the safety cap --max-duration {}; raise --max-duration \
             explicitly to allow it",
            humantime::format_duration(duration),
            humantime::format_duration(self.max_duration)
        );
        anyhow::ensure!(
            duration > Duration::ZERO && profile.scheduled() > 0,
            "the rate profile schedules no requests"
        );
        Ok(profile)
    }
}

/// Parses a positive, bounded request rate.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim_end_matches("/s")
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (requests per second, e.g. 1000)"))?;
    if (0.0..=ABSOLUTE_MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("rate must be between 0 and {ABSOLUTE_MAX_RATE}/s"))
    }
}

/// Parses a positive, bounded duration such as `500ms`, `30s` or `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|err| format!("{text:?} is not a duration like 30s or 2m: {err}"))?;
    if duration.is_zero() || duration > ABSOLUTE_MAX_DURATION {
        return Err(format!(
            "duration must be positive and at most {}",
            humantime::format_duration(ABSOLUTE_MAX_DURATION)
        ));
    }
    Ok(duration)
}

/// Parses a duration such as `0s`, `30s` or `2m`, zero allowed, at most the absolute cap.
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    if humantime::parse_duration(text).is_ok_and(|duration| duration.is_zero()) {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// Parses a share between 0 and 1.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio between 0 and 1")),
    }
}
