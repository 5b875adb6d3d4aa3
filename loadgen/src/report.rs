//! The run report: built from what the workloads recorded, printed as a summary, written as
//! JSON (schema in README.md) and rendered as HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::recorder::{Second, millis};
use crate::runner::Finished;
use crate::threshold::ThresholdResult;

/// Identifies the JSON layout; bumped on incompatible changes.
pub const SCHEMA: &str = "prism-loadgen/report/v1";

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Version of prism-loadgen that produced it.
    pub tool_version: String,
    /// When the run started (UTC, RFC 3339).
    pub started_at: String,
    /// One entry per workload.
    pub workloads: Vec<WorkloadReport>,
    /// All workloads together (histograms merged, counters summed).
    pub total: Summary,
    /// Every threshold and whether it held.
    pub thresholds: Vec<ThresholdResult>,
    /// Whether every threshold held.
    pub passed: bool,
}

/// One workload's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Workload name.
    pub name: String,
    /// `heartbeat`, `dns` or `api`.
    pub kind: String,
    /// Address the traffic went to.
    pub target: String,
    /// The numbers.
    pub summary: Summary,
    /// Deliberately faulty requests sent, by fault (`invalid_frame`, `bad_token`).
    pub faults_sent: BTreeMap<String, u64>,
    /// Peak of deliberately held connections, by behaviour (`idle`, `slow`).
    pub held_connections: BTreeMap<String, u64>,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
}

/// Counters, rates and latency percentiles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Length of the load window, seconds.
    pub duration_s: f64,
    /// Intended requests per second (mean over the profile).
    pub target_rate: f64,
    /// Answered requests per second over the load window.
    pub achieved_rate: f64,
    /// Requests the profile scheduled.
    pub scheduled: u64,
    /// Requests whose send started.
    pub sent: u64,
    /// Scheduled requests never sent because the generator fell behind.
    pub dropped: u64,
    /// Requests answered (successes and error answers).
    pub completed: u64,
    /// Requests answered with success.
    pub ok: u64,
    /// Requests that failed, of any kind.
    pub errors: u64,
    /// `errors / sent` in percent.
    pub error_percent: f64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency from the intended send time (coordinated-omission corrected).
    pub latency_ms: Latency,
    /// Latency from the actual send time, as a closed-loop tool would report it.
    pub service_latency_ms: Latency,
    /// How late sends started against their schedule (generator health).
    pub schedule_lag_ms: Latency,
}

/// Percentiles in milliseconds, rounded to the microsecond.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Highest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        let at = |quantile: f64| millis(histogram.value_at_quantile(quantile));
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
            max: millis(histogram.max()),
            mean: histogram.mean().round() / 1000.0,
        }
    }
}

fn round_rate(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

struct Parts<'a> {
    duration_s: f64,
    target_rate: f64,
    scheduled: u64,
    sent: u64,
    ok: u64,
    errors_by_kind: BTreeMap<String, u64>,
    latency: &'a Histogram<u64>,
    service: &'a Histogram<u64>,
    schedule_lag: &'a Histogram<u64>,
}

impl Summary {
    fn build(parts: Parts<'_>) -> Self {
        let completed = parts.latency.len();
        let errors: u64 = parts.errors_by_kind.values().sum();
        let error_percent = if parts.sent > 0 {
            (errors as f64 / parts.sent as f64 * 100_000.0).round() / 1000.0
        } else {
            0.0
        };
        Self {
            duration_s: parts.duration_s,
            target_rate: round_rate(parts.target_rate),
            achieved_rate: round_rate(completed as f64 / parts.duration_s.max(1e-9)),
            scheduled: parts.scheduled,
            sent: parts.sent,
            dropped: parts.scheduled.saturating_sub(parts.sent),
            completed,
            ok: parts.ok,
            errors,
            error_percent,
            errors_by_kind: parts.errors_by_kind,
            latency_ms: Latency::of(parts.latency),
            service_latency_ms: Latency::of(parts.service),
            schedule_lag_ms: Latency::of(parts.schedule_lag),
        }
    }
}

fn owned(map: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    map.iter()
        .map(|(key, value)| ((*key).to_owned(), *value))
        .collect()
}

impl Report {
    /// Builds the report of a finished run (thresholds not yet evaluated).
    pub fn new(started_at: SystemTime, finished: &[Finished]) -> Self {
        let mut workloads = Vec::with_capacity(finished.len());
        let mut latency = None::<Histogram<u64>>;
        let mut service = None::<Histogram<u64>>;
        let mut lag = None::<Histogram<u64>>;
        let merge = |into: &mut Option<Histogram<u64>>, from: &Histogram<u64>| match into {
            Some(histogram) => {
                // Identical bounds everywhere, so adding cannot fail.
                let _ = histogram.add(from);
            }
            None => *into = Some(from.clone()),
        };
        let (mut duration_s, mut target_rate, mut scheduled, mut sent, mut ok) =
            (0.0, 0.0, 0, 0, 0);
        let mut errors_by_kind = BTreeMap::<String, u64>::new();
        for run in finished {
            let totals = &run.totals;
            let profile = &run.plan.profile;
            let summary = Summary::build(Parts {
                duration_s: profile.duration().as_secs_f64(),
                target_rate: profile.mean_rate(),
                scheduled: profile.scheduled(),
                sent: totals.sent,
                ok: totals.ok,
                errors_by_kind: owned(&totals.errors_by_kind),
                latency: &totals.latency,
                service: &totals.service,
                schedule_lag: &totals.schedule_lag,
            });
            merge(&mut latency, &totals.latency);
            merge(&mut service, &totals.service);
            merge(&mut lag, &totals.schedule_lag);
            duration_s = f64::max(duration_s, summary.duration_s);
            target_rate += profile.mean_rate();
            scheduled += summary.scheduled;
            sent += summary.sent;
            ok += summary.ok;
            for (kind, count) in &summary.errors_by_kind {
                *errors_by_kind.entry(kind.clone()).or_default() += count;
            }
            workloads.push(WorkloadReport {
                name: run.plan.name.clone(),
                kind: run.plan.workload.kind().to_owned(),
                target: run.plan.workload.target().to_string(),
                summary,
                faults_sent: owned(&totals.faults_sent),
                held_connections: owned(&run.held),
                timeline: totals.timeline.clone(),
            });
        }
        let empty = crate::recorder::Recorder::new().totals();
        let total = Summary::build(Parts {
            duration_s,
            target_rate,
            scheduled,
            sent,
            ok,
            errors_by_kind,
            latency: latency.as_ref().unwrap_or(&empty.latency),
            service: service.as_ref().unwrap_or(&empty.service),
            schedule_lag: lag.as_ref().unwrap_or(&empty.schedule_lag),
        });
        Self {
            schema: SCHEMA.to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            workloads,
            total,
            thresholds: Vec::new(),
            passed: true,
        }
    }

    /// The human-readable summary printed at the end of a run.
    pub fn summary_text(&self) -> String {
        let mut text = String::new();
        for workload in &self.workloads {
            let _ = writeln!(
                text,
                "{} ({}, target {})",
                workload.name, workload.kind, workload.target
            );
            summary_lines(&mut text, &workload.summary);
            if !workload.faults_sent.is_empty() {
                let _ = writeln!(text, "  faults sent     {:?}", workload.faults_sent);
            }
            if !workload.held_connections.is_empty() {
                let _ = writeln!(text, "  held (peak)     {:?}", workload.held_connections);
            }
        }
        for threshold in &self.thresholds {
            let verdict = if threshold.passed { "pass" } else { "FAIL" };
            let _ = writeln!(
                text,
                "threshold {:<20} {verdict} (actual {}{})",
                threshold.expression, threshold.actual, threshold.unit
            );
        }
        text
    }
}

fn summary_lines(text: &mut String, summary: &Summary) {
    let latency = &summary.latency_ms;
    let _ = writeln!(
        text,
        "  rate            {}/s achieved of {}/s target over {}s",
        summary.achieved_rate, summary.target_rate, summary.duration_s
    );
    let _ = writeln!(
        text,
        "  requests        {} scheduled, {} sent, {} dropped, {} ok, {} errors ({}%)",
        summary.scheduled,
        summary.sent,
        summary.dropped,
        summary.ok,
        summary.errors,
        summary.error_percent
    );
    let _ = writeln!(
        text,
        "  latency ms      p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  max {}",
        latency.p50, latency.p90, latency.p95, latency.p99, latency.p999, latency.max
    );
    let _ = writeln!(
        text,
        "  schedule lag ms p99 {}  max {}",
        summary.schedule_lag_ms.p99, summary.schedule_lag_ms.max
    );
    if !summary.errors_by_kind.is_empty() {
        let _ = writeln!(text, "  errors by kind  {:?}", summary.errors_by_kind);
    }
}
