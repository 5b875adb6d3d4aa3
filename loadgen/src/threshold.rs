//! k6-style pass/fail thresholds such as `p99<5ms`, `errors<1%` or `dns:rate>=900`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::report::{Report, Summary};

/// Exit code of a run in which at least one threshold failed.
pub const EXIT_THRESHOLD_FAILED: u8 = 99;

const GRAMMAR: &str = "expected [WORKLOAD:]METRIC OP VALUE such as 'p99<5ms', 'errors<1%', \
    'dropped==0' or 'dns:rate>=900'; METRIC is p50, p90, p95, p99, p99.9, max, mean (with a \
    unit us, ms or s), errors or dropped (a count, or a percentage with %), or rate (per second); \
    OP is <, <=, >, >= or ==";

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

/// What a threshold looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// A latency statistic, compared in milliseconds.
    Latency(Statistic),
    /// Failed requests; `percent` compares `errors / sent`.
    Errors { percent: bool },
    /// Dropped sends; `percent` compares `dropped / scheduled`.
    Dropped { percent: bool },
    /// Achieved rate per second.
    Rate,
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    expression: String,
    workload: Option<String>,
    metric: Metric,
    op: Op,
    /// Bound, in milliseconds for latency, else in the metric's own unit.
    bound: f64,
}

/// A threshold's verdict, as stored in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The threshold as written.
    pub expression: String,
    /// The measured value it was compared with.
    pub actual: f64,
    /// Unit of `actual`: `ms`, `%`, `/s` or empty for counts.
    pub unit: String,
    /// Whether it held.
    pub passed: bool,
}

/// A threshold that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold {expression:?}: {reason}; {GRAMMAR}")]
pub struct ParseError {
    expression: String,
    reason: String,
}

/// A latency statistic of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statistic {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Statistic {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "p50" => Self::P50,
            "p90" => Self::P90,
            "p95" => Self::P95,
            "p99" => Self::P99,
            "p99.9" | "p999" => Self::P999,
            "max" => Self::Max,
            "mean" | "avg" => Self::Mean,
            _ => return None,
        })
    }

    fn of(self, summary: &Summary) -> f64 {
        let latency = &summary.latency_ms;
        match self {
            Self::P50 => latency.p50,
            Self::P90 => latency.p90,
            Self::P95 => latency.p95,
            Self::P99 => latency.p99,
            Self::P999 => latency.p999,
            Self::Max => latency.max,
            Self::Mean => latency.mean,
        }
    }
}

impl FromStr for Threshold {
    type Err = ParseError;

    fn from_str(expression: &str) -> Result<Self, ParseError> {
        let fail = |reason: &str| ParseError {
            expression: expression.to_owned(),
            reason: reason.to_owned(),
        };
        let compact: String = expression.chars().filter(|c| !c.is_whitespace()).collect();
        let (workload, rest) = match compact.split_once(':') {
            Some((name, rest)) if !name.is_empty() => (Some(name.to_owned()), rest),
            Some(_) => return Err(fail("empty workload name before ':'")),
            None => (None, compact.as_str()),
        };
        let position = rest
            .find(['<', '>', '='])
            .ok_or_else(|| fail("no comparison operator"))?;
        let (metric_name, after) = rest.split_at(position);
        let (op, value_text) = [
            ("<=", Op::LessOrEqual),
            (">=", Op::GreaterOrEqual),
            ("==", Op::Equal),
            ("<", Op::Less),
            (">", Op::Greater),
        ]
        .into_iter()
        .find_map(|(symbol, op)| after.strip_prefix(symbol).map(|value| (op, value)))
        .ok_or_else(|| fail("unknown comparison operator"))?;
        let number_end = value_text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value_text.len());
        let (number, unit) = value_text.split_at(number_end);
        let value: f64 = number
            .parse()
            .map_err(|_| fail("the value is not a number"))?;
        if metric_name.is_empty() {
            return Err(fail("no metric before the operator"));
        }
        let (metric, bound) = if let Some(statistic) = Statistic::named(metric_name) {
            let scale = match unit {
                "us" | "µs" => 0.001,
                "ms" => 1.0,
                "s" => 1000.0,
                "" => return Err(fail("a latency needs a unit (us, ms or s)")),
                _ => return Err(fail("unknown latency unit")),
            };
            (Metric::Latency(statistic), value * scale)
        } else {
            let metric = match (metric_name, unit) {
                ("errors", "%") => Metric::Errors { percent: true },
                ("errors", "") => Metric::Errors { percent: false },
                ("dropped", "%") => Metric::Dropped { percent: true },
                ("dropped", "") => Metric::Dropped { percent: false },
                ("rate", "" | "/s") => Metric::Rate,
                ("rate", "%") => return Err(fail("rate is per second, not a percentage")),
                ("errors" | "dropped" | "rate", _) => return Err(fail("unknown unit")),
                _ => return Err(fail("unknown metric")),
            };
            (metric, value)
        };
        Ok(Self {
            expression: expression.to_owned(),
            workload,
            metric,
            op,
            bound,
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 100_000.0).round() / 1000.0
    }
}

impl Threshold {
    /// Compares the report's numbers (the named workload's, or the totals) with the bound.
    pub fn evaluate(&self, report: &Report) -> ThresholdResult {
        let summary = match &self.workload {
            None => Some(&report.total),
            Some(name) => report
                .workloads
                .iter()
                .find(|workload| &workload.name == name)
                .map(|workload| &workload.summary),
        };
        let Some(summary) = summary else {
            // A threshold on a workload that did not run cannot hold.
            return ThresholdResult {
                expression: self.expression.clone(),
                actual: f64::NAN,
                unit: "no such workload".to_owned(),
                passed: false,
            };
        };
        let (actual, unit) = match self.metric {
            Metric::Latency(statistic) => (statistic.of(summary), "ms"),
            Metric::Errors { percent: true } => (percent(summary.errors, summary.sent), "%"),
            Metric::Errors { percent: false } => (summary.errors as f64, ""),
            Metric::Dropped { percent: true } => (percent(summary.dropped, summary.scheduled), "%"),
            Metric::Dropped { percent: false } => (summary.dropped as f64, ""),
            Metric::Rate => (summary.achieved_rate, "/s"),
        };
        let passed = match self.op {
            Op::Less => actual < self.bound,
            Op::LessOrEqual => actual <= self.bound,
            Op::Greater => actual > self.bound,
            Op::GreaterOrEqual => actual >= self.bound,
            Op::Equal => actual == self.bound,
        };
        ThresholdResult {
            expression: self.expression.clone(),
            actual,
            unit: unit.to_owned(),
            passed,
        }
    }
}

/// Evaluates every threshold into the report and returns whether all held.
pub fn apply(thresholds: &[Threshold], report: &mut Report) -> bool {
    report.thresholds = thresholds.iter().map(|t| t.evaluate(report)).collect();
    report.passed = report.thresholds.iter().all(|result| result.passed);
    report.passed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latency_thresholds_in_milliseconds() {
        let threshold: Threshold = "p99<5ms".parse().expect("valid");
        assert_eq!(threshold.op, Op::Less);
        assert_eq!(threshold.bound, 5.0);
        let threshold: Threshold = "dns:p99.9 <= 1.5s".parse().expect("valid");
        assert_eq!(threshold.workload.as_deref(), Some("dns"));
        assert_eq!(threshold.bound, 1500.0);
        let threshold: Threshold = "max<250us".parse().expect("valid");
        assert!((threshold.bound - 0.25).abs() < 1e-12);
    }

    #[test]
    fn parses_error_percentages_counts_and_rates() {
        let threshold: Threshold = "errors<1%".parse().expect("valid");
        assert_eq!(threshold.metric, Metric::Errors { percent: true });
        let threshold: Threshold = "dropped==0".parse().expect("valid");
        assert_eq!(threshold.metric, Metric::Dropped { percent: false });
        let threshold: Threshold = "rate>=190/s".parse().expect("valid");
        assert_eq!(threshold.metric, Metric::Rate);
    }

    #[test]
    fn rejects_malformed_thresholds_with_the_reason() {
        for (text, reason) in [
            ("p99", "no comparison operator"),
            ("p99<5", "a latency needs a unit"),
            ("p99<5 parsecs", "unknown latency unit"),
            ("p42<5ms", "unknown metric"),
            ("errors<lots", "not a number"),
            ("p99=<5ms", "unknown comparison operator"),
            ("rate>5%", "not a percentage"),
            ("<5ms", "no metric"),
        ] {
            let err = text.parse::<Threshold>().expect_err(text).to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
