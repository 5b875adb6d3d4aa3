//! Measurement: HDR histograms of latency, outcome counters by kind and a per-second timeline,
//! shared by every task of one workload.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histograms track (longer ones are clamped to it), in microseconds.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits kept by the histograms.
const SIGNIFICANT_DIGITS: u8 = 3;

use crate::exporter::WorkloadMetrics;

/// Why a request did not succeed. The names appear in reports as `errors_by_kind` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be opened.
    Connect,
    /// The connection failed or closed while sending or waiting for the answer.
    Io,
    /// The server answered a valid request with an error.
    ErrorResponse,
    /// The answer could not be decoded.
    MalformedResponse,
    /// The server rejected a deliberately malformed frame (expected with `--invalid-ratio`).
    InvalidFrameRejected,
    /// The server rejected a deliberately wrong token (expected with `--bad-token-ratio`).
    BadTokenRejected,
    /// The server accepted a deliberately faulty request (a server defect).
    FaultAccepted,
    /// DNS: NXDOMAIN for a name that should exist.
    DnsUnexpectedNxdomain,
    /// DNS: an answer for a name that should not exist.
    DnsUnexpectedAnswer,
    /// DNS: SERVFAIL, REFUSED or another failure code.
    DnsFailureRcode,
    /// HTTP: a 4xx status.
    Http4xx,
    /// HTTP: a 5xx status.
    Http5xx,
    /// The server refused a registration under its per-source rate limit.
    RateLimited,
    /// The TLS handshake failed (for example a certificate no trusted root signed).
    Tls,
}

impl ErrorKind {
    /// The stable report name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Io => "io",
            Self::ErrorResponse => "error_response",
            Self::MalformedResponse => "malformed_response",
            Self::InvalidFrameRejected => "invalid_frame_rejected",
            Self::BadTokenRejected => "bad_token_rejected",
            Self::FaultAccepted => "fault_accepted",
            Self::DnsUnexpectedNxdomain => "dns_unexpected_nxdomain",
            Self::DnsUnexpectedAnswer => "dns_unexpected_answer",
            Self::DnsFailureRcode => "dns_failure_rcode",
            Self::Http4xx => "http_4xx",
            Self::Http5xx => "http_5xx",
            Self::RateLimited => "rate_limited",
            Self::Tls => "tls",
        }
    }
}

/// One second of the run, as shown in progress lines and charts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Second {
    /// Seconds since the run started, at the end of this window.
    pub elapsed_s: f64,
    /// Intended requests per second in this window (the rate profile at its middle).
    #[serde(default)]
    pub target_rate: f64,
    /// Requests answered in this window (successes and error answers).
    pub completed: u64,
    /// Requests that ended in an error in this window.
    pub errors: u64,
    /// Answered requests per second in this window.
    pub rate: f64,
    /// Median latency in this window, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in this window, milliseconds.
    pub p99_ms: f64,
    /// Highest latency in this window, milliseconds.
    pub max_ms: f64,
}

/// Everything recorded for one workload.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Latency from the intended send time (coordinated-omission corrected), microseconds.
    pub latency: Histogram<u64>,
    /// Latency from the actual send time, as a closed-loop tool would report, microseconds.
    pub service: Histogram<u64>,
    /// How late sends started against their intended time, microseconds.
    pub schedule_lag: Histogram<u64>,
    /// Requests whose send started.
    pub sent: u64,
    /// Requests answered with success.
    pub ok: u64,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Faulty requests sent on purpose, by fault (`invalid_frame`, `bad_token`).
    pub faults_sent: BTreeMap<&'static str, u64>,
    /// Per-second windows.
    pub timeline: Vec<Second>,
    /// The same numbers per target, by target index.
    pub by_target: Vec<TargetTotals>,
}

/// What one workload recorded for one of its targets.
#[derive(Debug, Clone)]
pub struct TargetTotals {
    /// Latency from the intended send time, microseconds.
    pub latency: Histogram<u64>,
    /// Requests whose send started.
    pub sent: u64,
    /// Requests answered with success.
    pub ok: u64,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<&'static str, u64>,
}

impl TargetTotals {
    fn new() -> Self {
        Self {
            latency: histogram(),
            sent: 0,
            ok: 0,
            errors_by_kind: BTreeMap::new(),
        }
    }
}

impl Totals {
    /// Total failed requests.
    pub fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }
}

struct State {
    totals: Totals,
    window: Histogram<u64>,
    window_completed: u64,
    window_errors: u64,
    window_started_s: f64,
}

/// Thread-safe recorder for one workload.
pub struct Recorder {
    state: Mutex<State>,
    /// Live Prometheus metrics, with `--metrics-listen`.
    live: Option<WorkloadMetrics>,
}

/// An empty histogram with the bounds every loadgen histogram uses (1 µs … 1 h, 3 digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A histogram value in microseconds as milliseconds rounded to the microsecond.
pub fn millis(value_us: u64) -> f64 {
    value_us as f64 / 1000.0
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new(1, None)
    }
}

impl Recorder {
    /// An empty recorder for a workload over `targets` targets, feeding `live` metrics.
    pub fn new(targets: usize, live: Option<WorkloadMetrics>) -> Self {
        Self {
            live,
            state: Mutex::new(State {
                totals: Totals {
                    latency: histogram(),
                    service: histogram(),
                    schedule_lag: histogram(),
                    sent: 0,
                    ok: 0,
                    errors_by_kind: BTreeMap::new(),
                    faults_sent: BTreeMap::new(),
                    timeline: Vec::new(),
                    by_target: (0..targets.max(1)).map(|_| TargetTotals::new()).collect(),
                },
                window: histogram(),
                window_completed: 0,
                window_errors: 0,
                window_started_s: 0.0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another task cannot leave the counters half-updated in a harmful way.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A send to target number `target` started `lag` after its intended time; `fault`
    /// names a deliberate fault.
    pub fn sent(&self, target: usize, lag: Duration, fault: Option<&'static str>) {
        if let Some(live) = self.live_target(target) {
            live.lag(lag);
        }
        let mut state = self.lock();
        state.totals.sent += 1;
        if let Some(totals) = state.totals.by_target.get_mut(target) {
            totals.sent += 1;
        }
        state.totals.schedule_lag.saturating_record(micros(lag));
        if let Some(fault) = fault {
            *state.totals.faults_sent.entry(fault).or_default() += 1;
        }
    }

    /// An answer arrived: `latency` from the intended time, `service` from the actual send;
    /// `error` is set when the answer was a failure.
    pub fn answered(
        &self,
        target: usize,
        latency: Duration,
        service: Duration,
        error: Option<ErrorKind>,
    ) {
        if let Some(live) = self.live_target(target) {
            live.latency(latency);
            live.ended(error.map_or("ok", ErrorKind::as_str));
        }
        let mut state = self.lock();
        let latency_us = micros(latency);
        if let Some(totals) = state.totals.by_target.get_mut(target) {
            totals.latency.saturating_record(latency_us);
            match error {
                None => totals.ok += 1,
                Some(kind) => *totals.errors_by_kind.entry(kind.as_str()).or_default() += 1,
            }
        }
        state.totals.latency.saturating_record(latency_us);
        state.totals.service.saturating_record(micros(service));
        state.window.saturating_record(latency_us);
        state.window_completed += 1;
        match error {
            None => state.totals.ok += 1,
            Some(kind) => {
                state.window_errors += 1;
                *state
                    .totals
                    .errors_by_kind
                    .entry(kind.as_str())
                    .or_default() += 1;
            }
        }
    }

    /// A request failed without an answer (timeout, connection failure).
    pub fn failed(&self, target: usize, kind: ErrorKind) {
        if let Some(live) = self.live_target(target) {
            live.ended(kind.as_str());
        }
        let mut state = self.lock();
        state.window_errors += 1;
        if let Some(totals) = state.totals.by_target.get_mut(target) {
            *totals.errors_by_kind.entry(kind.as_str()).or_default() += 1;
        }
        *state
            .totals
            .errors_by_kind
            .entry(kind.as_str())
            .or_default() += 1;
    }

    /// `count` scheduled requests will never be sent (the generator fell behind).
    pub fn dropped(&self, count: u64) {
        if let Some(live) = &self.live {
            live.dropped(count);
        }
    }

    fn live_target(&self, target: usize) -> Option<&crate::exporter::TargetMetrics> {
        self.live.as_ref().and_then(|live| live.targets.get(target))
    }

    /// Closes the current one-second window at `elapsed_s`, whose intended rate was
    /// `target_rate`, and returns it.
    pub fn roll(&self, elapsed_s: f64, target_rate: f64) -> Second {
        if let Some(live) = &self.live {
            live.set_target_rate(target_rate);
        }
        let mut state = self.lock();
        let length = (elapsed_s - state.window_started_s).max(1e-3);
        let second = Second {
            elapsed_s: (elapsed_s * 1000.0).round() / 1000.0,
            target_rate: (target_rate * 10.0).round() / 10.0,
            completed: state.window_completed,
            errors: state.window_errors,
            rate: (state.window_completed as f64 / length * 10.0).round() / 10.0,
            p50_ms: millis(state.window.value_at_quantile(0.5)),
            p99_ms: millis(state.window.value_at_quantile(0.99)),
            max_ms: millis(state.window.max()),
        };
        state.window.reset();
        state.window_completed = 0;
        state.window_errors = 0;
        state.window_started_s = elapsed_s;
        state.totals.timeline.push(second.clone());
        second
    }

    /// A copy of everything recorded so far.
    pub fn totals(&self) -> Totals {
        self.lock().totals.clone()
    }
}

/// A histogram as `[value, count]` pairs of its recorded buckets (each value the highest of
/// its bucket), which [`decode`] turns back into the same histogram: merging decoded
/// histograms is exact.
pub fn encode(histogram: &Histogram<u64>) -> Vec<[u64; 2]> {
    histogram
        .iter_recorded()
        .map(|bucket| [bucket.value_iterated_to(), bucket.count_at_value()])
        .collect()
}

/// The histogram [`encode`] produced.
pub fn decode(pairs: &[[u64; 2]]) -> Histogram<u64> {
    let mut histogram = histogram();
    for [value, count] in pairs {
        histogram.saturating_record_n(*value, *count);
    }
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_encoded_histograms_give_the_percentiles_of_one_histogram_recording_both() {
        let mut first = histogram();
        let mut second = histogram();
        let mut both = histogram();
        // Two runs with different shapes: a fast one and one with a slow tail.
        for i in 0..5000u64 {
            let fast = 200 + (i * 37) % 900;
            first.saturating_record(fast);
            both.saturating_record(fast);
            let slow = if i % 20 == 0 {
                40_000 + i * 13
            } else {
                700 + (i * 53) % 4000
            };
            second.saturating_record(slow);
            both.saturating_record(slow);
        }
        let mut merged = decode(&encode(&first));
        merged.add(decode(&encode(&second))).expect("same bounds");
        for quantile in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                merged.value_at_quantile(quantile),
                both.value_at_quantile(quantile),
                "quantile {quantile}"
            );
        }
        assert_eq!(merged.len(), both.len());
        assert_eq!(merged.max(), both.max());
        // Averaging the two runs' p99 would be wrong: it is not the p99 of both.
        let averaged = (first.value_at_quantile(0.99) + second.value_at_quantile(0.99)) / 2;
        assert_ne!(averaged, both.value_at_quantile(0.99));
    }
}
