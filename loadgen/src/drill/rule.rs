//! What the drill learns about an alerting rule from Prometheus' `/api/v1/rules`: its
//! expression, `for`, `keep_firing_for`, labels, evaluation interval, the longest range window
//! of its expression and the threshold it compares with.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// One alerting rule as Prometheus runs it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleInfo {
    /// The alert name.
    pub name: String,
    /// The PromQL expression.
    pub query: String,
    /// Its `for`.
    pub for_duration: Duration,
    /// Its `keep_firing_for`.
    pub keep_firing_for: Duration,
    /// Its group's evaluation interval.
    pub interval: Duration,
    /// Its static labels (`severity`, …).
    pub labels: BTreeMap<String, String>,
    /// The longest range window (`[5m]`) in the expression, zero when there is none.
    pub window: Duration,
    /// The number after the last `>` of the expression, if any (the firing threshold).
    pub threshold: Option<f64>,
}

/// Finds alerting rule `name` in a `/api/v1/rules` answer; the error lists the names there.
pub fn find(body: &Value, name: &str) -> Result<RuleInfo, String> {
    let groups = body["data"]["groups"]
        .as_array()
        .ok_or("the /api/v1/rules answer has no data.groups")?;
    let mut seen = Vec::new();
    for group in groups {
        let interval = seconds(&group["interval"]);
        for rule in group["rules"].as_array().into_iter().flatten() {
            if rule["type"] != "alerting" {
                continue;
            }
            let rule_name = rule["name"].as_str().unwrap_or_default();
            if rule_name != name {
                seen.push(rule_name.to_owned());
                continue;
            }
            let query = rule["query"].as_str().unwrap_or_default().to_owned();
            let labels = labels(&rule["labels"]);
            return Ok(RuleInfo {
                name: name.to_owned(),
                window: longest_window(&query),
                threshold: threshold(&query),
                query,
                for_duration: seconds(&rule["duration"]),
                keep_firing_for: seconds(&rule["keepFiringFor"]),
                interval: if interval.is_zero() {
                    Duration::from_secs(15)
                } else {
                    interval
                },
                labels,
            });
        }
    }
    seen.sort();
    seen.dedup();
    Err(format!(
        "Prometheus has no alerting rule named {name}; it has: {}",
        seen.join(", ")
    ))
}

/// A JSON object of string labels as a map (other values are skipped).
pub fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn seconds(value: &Value) -> Duration {
    Duration::from_secs_f64(value.as_f64().unwrap_or(0.0).max(0.0))
}

/// Parses a Prometheus duration such as `30s`, `5m` or `1h30m`.
pub fn parse_prometheus_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit, length) = [
            ("ms", 0.001),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
            ("d", 86_400.0),
            ("w", 604_800.0),
            ("y", 31_536_000.0),
        ]
        .into_iter()
        .find_map(|(unit, seconds)| rest.starts_with(unit).then_some((seconds, unit.len())))?;
        total += number * unit;
        rest = rest.get(length..)?;
    }
    Some(Duration::from_secs_f64(total))
}

/// The longest `[…]` range (or subquery range) in `query`.
fn longest_window(query: &str) -> Duration {
    let mut longest = Duration::ZERO;
    let mut rest = query;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            break;
        };
        let range = after[..close].split(':').next().unwrap_or_default();
        if let Some(window) = parse_prometheus_duration(range) {
            longest = longest.max(window);
        }
        rest = &after[close + 1..];
    }
    longest
}

/// The number right after the last `>` (or `>=`) of `query`.
fn threshold(query: &str) -> Option<f64> {
    let position = query.rfind('>')?;
    let after = query[position + 1..].trim_start_matches('=').trim_start();
    let end = after
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
        .unwrap_or(after.len());
    after[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_for_windows_labels_and_threshold_of_a_rule() {
        let body: Value = serde_json::json!({"status": "success", "data": {"groups": [{
        "name": "prism-critical", "interval": 1,
        "rules": [
            {"type": "recording", "name": "x"},
            {"type": "alerting", "name": "HighErrorRate", "duration": 120, "keepFiringFor": 0,
             "query": "sum(rate(a[5m])) / clamp_min(sum(rate(b[1h30m])), 1e-9) > 0.10",
             "labels": {"severity": "critical"}}
        ]}]}});
        let rule = find(&body, "HighErrorRate").expect("found");
        assert_eq!(rule.for_duration, Duration::from_secs(120));
        assert_eq!(rule.window, Duration::from_secs(5400));
        assert_eq!(rule.interval, Duration::from_secs(1));
        assert_eq!(rule.threshold, Some(0.10));
        assert_eq!(
            rule.labels.get("severity").map(String::as_str),
            Some("critical")
        );
        let err = find(&body, "Nope").expect_err("missing");
        assert!(err.contains("HighErrorRate"), "{err}");
    }

    #[test]
    fn parses_prometheus_durations_and_subquery_ranges() {
        assert_eq!(
            parse_prometheus_duration("1h30m"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_prometheus_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_prometheus_duration("5"), None);
        assert_eq!(
            longest_window("max_over_time(x[10m:1m]) > 900"),
            Duration::from_secs(600)
        );
        assert_eq!(threshold("max(x) > 900"), Some(900.0));
        assert_eq!(threshold("vector(0)"), None);
    }
}
