//! The run report: built from what the workloads recorded, printed as a summary, written as
//! JSON (schema in README.md) and rendered as HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::recorder::{self, Second, millis};
use crate::runner::Finished;
use crate::threshold::ThresholdResult;

/// Identifies the JSON layout; bumped on incompatible changes.
pub const SCHEMA: &str = "prism-loadgen/report/v2";

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Version of prism-loadgen that produced it.
    pub tool_version: String,
    /// The command line of the run (program name first).
    pub command_line: Vec<String>,
    /// When the run started (UTC, RFC 3339).
    pub started_at: String,
    /// For a merged report: the files merged, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
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
    /// `heartbeat`, `dns`, `api` or `cross-node`.
    pub kind: String,
    /// The targets as given, comma-separated.
    pub target: String,
    /// The numbers.
    pub summary: Summary,
    /// The same numbers per target.
    pub targets: Vec<TargetReport>,
    /// Deliberately faulty requests sent, by fault (`invalid_frame`, `bad_token`).
    pub faults_sent: BTreeMap<String, u64>,
    /// Peak of deliberately held connections, by behaviour (`idle`, `slow`).
    pub held_connections: BTreeMap<String, u64>,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
    /// The HDR histograms behind the percentiles, so reports merge exactly.
    pub histograms: Histograms,
}

/// HDR histograms in microseconds as `[value, count]` pairs ([`crate::recorder::encode`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Histograms {
    /// Latency from the intended send time.
    pub latency_us: Vec<[u64; 2]>,
    /// Latency from the actual send time.
    pub service_us: Vec<[u64; 2]>,
    /// Schedule lag.
    pub schedule_lag_us: Vec<[u64; 2]>,
}

/// One target's share of a workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    /// The target as given (`staging.example.net:8080`, `https://…`).
    pub target: String,
    /// The address it resolved to and traffic went to.
    pub address: String,
    /// Requests whose send started.
    pub sent: u64,
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
    /// Answered requests per second over the load window.
    pub achieved_rate: f64,
    /// Latency from the intended send time.
    pub latency_ms: Latency,
    /// The latency histogram behind `latency_ms`, microseconds, as `[value, count]` pairs.
    pub latency_us: Vec<[u64; 2]>,
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

fn percent_of(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        (part as f64 / whole as f64 * 100_000.0).round() / 1000.0
    } else {
        0.0
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
        let error_percent = percent_of(errors, parts.sent);
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

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}

/// Decodes and adds up encoded histograms.
fn merged<'a>(encoded: impl Iterator<Item = &'a Vec<[u64; 2]>>) -> Histogram<u64> {
    let mut total = recorder::histogram();
    for pairs in encoded {
        // Identical bounds everywhere, so adding cannot fail.
        let _ = total.add(recorder::decode(pairs));
    }
    total
}

impl TargetReport {
    fn build(
        target: String,
        address: String,
        duration_s: f64,
        sent: u64,
        ok: u64,
        errors_by_kind: BTreeMap<String, u64>,
        latency: &Histogram<u64>,
    ) -> Self {
        let errors = errors_by_kind.values().sum();
        Self {
            target,
            address,
            sent,
            completed: latency.len(),
            ok,
            errors,
            error_percent: percent_of(errors, sent),
            errors_by_kind,
            achieved_rate: round_rate(latency.len() as f64 / duration_s.max(1e-9)),
            latency_ms: Latency::of(latency),
            latency_us: recorder::encode(latency),
        }
    }
}

impl WorkloadReport {
    fn of(run: &Finished) -> Self {
        let totals = &run.totals;
        let profile = &run.plan.profile;
        let duration_s = profile.duration().as_secs_f64();
        let summary = Summary::build(Parts {
            duration_s,
            target_rate: profile.mean_rate(),
            scheduled: profile.scheduled(),
            sent: totals.sent,
            ok: totals.ok,
            errors_by_kind: owned(&totals.errors_by_kind),
            latency: &totals.latency,
            service: &totals.service,
            schedule_lag: &totals.schedule_lag,
        });
        let targets = run
            .plan
            .targets
            .iter()
            .zip(&totals.by_target)
            .map(|(target, totals)| {
                TargetReport::build(
                    target.label(),
                    target.addr.to_string(),
                    duration_s,
                    totals.sent,
                    totals.ok,
                    owned(&totals.errors_by_kind),
                    &totals.latency,
                )
            })
            .collect();
        Self {
            name: run.plan.name.clone(),
            kind: run.plan.workload.kind().to_owned(),
            target: run.plan.labels().join(","),
            summary,
            targets,
            faults_sent: owned(&totals.faults_sent),
            held_connections: owned(&run.held),
            timeline: totals.timeline.clone(),
            histograms: Histograms {
                latency_us: recorder::encode(&totals.latency),
                service_us: recorder::encode(&totals.service),
                schedule_lag_us: recorder::encode(&totals.schedule_lag),
            },
        }
    }

    /// Several reports of the same workload run at the same time (by separate generators)
    /// as one: histograms merged exactly, counters summed, the longest duration.
    pub fn merge(parts: &[&WorkloadReport]) -> Self {
        let first = parts.first().copied();
        let (summary, histograms) = combine(parts);
        let mut targets: Vec<TargetReport> = Vec::new();
        let mut labels: Vec<(String, String)> = Vec::new();
        for target in parts.iter().flat_map(|part| &part.targets) {
            if !labels.iter().any(|(label, _)| label == &target.target) {
                labels.push((target.target.clone(), target.address.clone()));
            }
        }
        for (label, address) in labels {
            let same: Vec<&TargetReport> = parts
                .iter()
                .flat_map(|part| &part.targets)
                .filter(|target| target.target == label)
                .collect();
            let mut errors_by_kind = BTreeMap::new();
            for target in &same {
                add_counts(&mut errors_by_kind, &target.errors_by_kind);
            }
            targets.push(TargetReport::build(
                label,
                address,
                summary.duration_s,
                same.iter().map(|target| target.sent).sum(),
                same.iter().map(|target| target.ok).sum(),
                errors_by_kind,
                &merged(same.iter().map(|target| &target.latency_us)),
            ));
        }
        let mut faults_sent = BTreeMap::new();
        let mut held_connections = BTreeMap::new();
        for part in parts {
            add_counts(&mut faults_sent, &part.faults_sent);
            add_counts(&mut held_connections, &part.held_connections);
        }
        Self {
            name: first.map(|w| w.name.clone()).unwrap_or_default(),
            kind: first.map(|w| w.kind.clone()).unwrap_or_default(),
            target: targets
                .iter()
                .map(|target| target.target.as_str())
                .collect::<Vec<_>>()
                .join(","),
            summary,
            targets,
            faults_sent,
            held_connections,
            timeline: merge_timelines(parts),
            histograms,
        }
    }
}

/// The per-second windows of simultaneous runs: counts and rates add up; a window's
/// percentiles cannot be merged from percentiles, so p50/p99/max are the highest of the
/// runs' values for that second (max is exact, p50/p99 an upper bound).
fn merge_timelines(parts: &[&WorkloadReport]) -> Vec<Second> {
    let length = parts
        .iter()
        .map(|part| part.timeline.len())
        .max()
        .unwrap_or(0);
    (0..length)
        .map(|position| {
            let seconds: Vec<&Second> = parts
                .iter()
                .filter_map(|part| part.timeline.get(position))
                .collect();
            let highest =
                |pick: fn(&Second) -> f64| seconds.iter().map(|s| pick(s)).fold(0.0, f64::max);
            Second {
                elapsed_s: highest(|s| s.elapsed_s),
                target_rate: seconds.iter().map(|s| s.target_rate).sum(),
                completed: seconds.iter().map(|s| s.completed).sum(),
                errors: seconds.iter().map(|s| s.errors).sum(),
                rate: round_rate(seconds.iter().map(|s| s.rate).sum()),
                p50_ms: highest(|s| s.p50_ms),
                p99_ms: highest(|s| s.p99_ms),
                max_ms: highest(|s| s.max_ms),
            }
        })
        .collect()
}

/// The summary and histograms of `parts` together.
fn combine(parts: &[&WorkloadReport]) -> (Summary, Histograms) {
    let latency = merged(parts.iter().map(|part| &part.histograms.latency_us));
    let service = merged(parts.iter().map(|part| &part.histograms.service_us));
    let lag = merged(parts.iter().map(|part| &part.histograms.schedule_lag_us));
    let mut errors_by_kind = BTreeMap::new();
    for part in parts {
        add_counts(&mut errors_by_kind, &part.summary.errors_by_kind);
    }
    let summary = Summary::build(Parts {
        duration_s: parts
            .iter()
            .map(|part| part.summary.duration_s)
            .fold(0.0, f64::max),
        target_rate: parts.iter().map(|part| part.summary.target_rate).sum(),
        scheduled: parts.iter().map(|part| part.summary.scheduled).sum(),
        sent: parts.iter().map(|part| part.summary.sent).sum(),
        ok: parts.iter().map(|part| part.summary.ok).sum(),
        errors_by_kind,
        latency: &latency,
        service: &service,
        schedule_lag: &lag,
    });
    let histograms = Histograms {
        latency_us: recorder::encode(&latency),
        service_us: recorder::encode(&service),
        schedule_lag_us: recorder::encode(&lag),
    };
    (summary, histograms)
}

impl Report {
    /// Builds the report of a finished run (thresholds not yet evaluated).
    pub fn new(started_at: SystemTime, command_line: Vec<String>, finished: &[Finished]) -> Self {
        let workloads = finished.iter().map(WorkloadReport::of).collect();
        Self::assemble(
            humantime::format_rfc3339_seconds(started_at).to_string(),
            command_line,
            workloads,
        )
    }

    /// A report over `workloads`, the total computed from their histograms and counters.
    pub fn assemble(
        started_at: String,
        command_line: Vec<String>,
        workloads: Vec<WorkloadReport>,
    ) -> Self {
        let all: Vec<&WorkloadReport> = workloads.iter().collect();
        let (total, _) = combine(&all);
        Self {
            schema: SCHEMA.to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            command_line,
            started_at,
            merged_from: Vec::new(),
            workloads,
            total,
            thresholds: Vec::new(),
            passed: true,
        }
    }

    /// Whether the run proved nothing: requests were sent but none succeeded, and not
    /// because every one was a deliberate fault.
    pub fn nothing_succeeded(&self) -> bool {
        let faults: u64 = self
            .workloads
            .iter()
            .flat_map(|workload| workload.faults_sent.values())
            .sum();
        self.total.ok == 0 && self.total.sent > faults
            || self.total.sent == 0 && self.total.scheduled > 0
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
            if workload.targets.len() > 1 {
                for target in &workload.targets {
                    let _ = writeln!(
                        text,
                        "  → {:<22} {} sent, {} ok, {} errors, {}/s, p50 {} p99 {} ms",
                        target.target,
                        target.sent,
                        target.ok,
                        target.errors,
                        target.achieved_rate,
                        target.latency_ms.p50,
                        target.latency_ms.p99
                    );
                }
            }
        }
        if self.workloads.len() > 1 {
            let _ = writeln!(text, "total ({} workloads)", self.workloads.len());
            summary_lines(&mut text, &self.total);
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
    if let Some(refused) = summary.errors_by_kind.get("rate_limited") {
        let _ = writeln!(
            text,
            "  note            {refused} registrations were refused by the server's rate limits \
             (by default 1000 new names/min per source address, and per host one heartbeat per \
             a quarter of heartbeat.interval after a burst of 3, in every auth mode): lower \
             --rate, or disable the limits on the server for a load test (--rate-limit 0 and \
             PRISM_RATE_LIMIT_MIN_HEARTBEAT_INTERVAL_SECS=0)"
        );
    }
}
