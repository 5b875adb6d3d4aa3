//! The metric names the server exports (rules-tests/exported-metrics.txt) and the checks that rules, dashboard and a live /metrics agree with them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::repo_root;

/// One metric from `rules-tests/exported-metrics.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedMetric {
    /// Metric family name, e.g. `prism_http_request_duration_seconds`.
    pub name: String,
    /// Prometheus type: counter, gauge or histogram.
    pub kind: String,
    /// When a fresh server has the family on its `/metrics` page.
    pub presence: Presence,
}

/// When a metric family appears on a server's `/metrics` page (the optional third column of
/// `exported-metrics.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// From start, every series the rules and dashboard select at 0 before any traffic
    /// (no third column).
    FromStart,
    /// With its first event, because its label values are not known in advance (`lazy`:
    /// HTTP route × status).
    Lazy,
    /// Not exported by the server yet; rules and dashboard already use it (`upcoming`). The
    /// checks against a live server ask nothing of these.
    Upcoming,
}

impl ExportedMetric {
    /// The series names this family produces (a histogram adds `_bucket`, `_sum`, `_count`).
    pub fn series_names(&self) -> Vec<String> {
        if self.kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{}{suffix}", self.name))
                .collect()
        } else {
            vec![self.name.clone()]
        }
    }
}

/// `rules-tests/exported-metrics.txt`, the one list of names the server exports.
pub fn exported_metrics_path() -> PathBuf {
    repo_root().join("rules-tests/exported-metrics.txt")
}

/// Reads the exported-metric list.
pub fn load_exported_metrics() -> Result<Vec<ExportedMetric>, String> {
    let path = exported_metrics_path();
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_exported_metrics(&text)
}

/// Parses `name type [lazy|upcoming]` lines; `#` starts a comment.
pub fn parse_exported_metrics(text: &str) -> Result<Vec<ExportedMetric>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, kind, presence) = match line.split_whitespace().collect::<Vec<_>>()[..] {
                [name, kind] => (name, kind, Presence::FromStart),
                [name, kind, "lazy"] => (name, kind, Presence::Lazy),
                [name, kind, "upcoming"] => (name, kind, Presence::Upcoming),
                _ => ("", "", Presence::FromStart),
            };
            if !matches!(kind, "counter" | "gauge" | "histogram") {
                return Err(format!(
                    "exported-metrics.txt: `{line}` is not `name counter|gauge|histogram [lazy|upcoming]`"
                ));
            }
            Ok(ExportedMetric {
                name: name.to_owned(),
                kind: kind.to_owned(),
                presence,
            })
        })
        .collect()
}

/// Every `prism_*` identifier a PromQL expression uses, ignoring string literals.
pub fn prism_names_in_promql(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut quote: Option<char> = None;
    let mut current = String::new();
    let mut previous = ' ';
    for c in expr.chars() {
        if let Some(open) = quote {
            if c == open && previous != '\\' {
                quote = None;
            }
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            take_name(&mut current, &mut names);
            if matches!(c, '"' | '\'' | '`') {
                quote = Some(c);
            }
        }
        previous = c;
    }
    take_name(&mut current, &mut names);
    names
}

fn take_name(current: &mut String, names: &mut BTreeSet<String>) {
    if current.starts_with("prism_") {
        names.insert(current.clone());
    }
    current.clear();
}

/// The `prism_*` names used by `exprs` that the server does not export, sorted.
pub fn unknown_prism_names<'a>(
    exprs: impl IntoIterator<Item = &'a str>,
    exported: &[ExportedMetric],
) -> Vec<String> {
    let known: BTreeSet<String> = exported
        .iter()
        .flat_map(ExportedMetric::series_names)
        .collect();
    exprs
        .into_iter()
        .flat_map(prism_names_in_promql)
        .filter(|name| !known.contains(name))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Metric families from `exported` that a live `/metrics` text exposition does not contain,
/// [`Presence::Upcoming`] families aside (the server does not export them yet).
///
/// Use it against a running server (`curl http://127.0.0.1:8081/metrics`) to prove that
/// the names the rules and dashboard rely on really exist. A family counts as present
/// when the exposition has a `# TYPE` line for it or any sample of one of its series.
pub fn missing_from_exposition(metrics_text: &str, exported: &[ExportedMetric]) -> Vec<String> {
    let mut present = BTreeSet::new();
    for line in metrics_text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                present.insert(name.to_owned());
            }
        } else if !line.starts_with('#') {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !name.is_empty() {
                present.insert(name);
            }
        }
    }
    exported
        .iter()
        .filter(|metric| metric.presence != Presence::Upcoming)
        .filter(|metric| {
            !present.contains(&metric.name)
                && !metric
                    .series_names()
                    .iter()
                    .any(|series| present.contains(series))
        })
        .map(|metric| metric.name.clone())
        .collect()
}

/// Every `expr` of the dashboard's panel targets (nested rows included).
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    collect_panel_exprs(&dashboard["panels"], &mut exprs);
    exprs
}

/// The query of every query-type dashboard variable (e.g. `label_values(up{job="prism"}, instance)`).
pub fn dashboard_variable_queries(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|variable| variable["type"] == "query")
        .filter_map(|variable| {
            variable["query"]["query"]
                .as_str()
                .or_else(|| variable["query"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

fn collect_panel_exprs(panels: &serde_json::Value, exprs: &mut Vec<String>) {
    for panel in panels.as_array().map(Vec::as_slice).unwrap_or_default() {
        for target in panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
        collect_panel_exprs(&panel["panels"], exprs);
    }
}

/// Replaces Grafana variables with values Prometheus accepts (`$__rate_interval` → `5m`, any other `$var` → `.*`, meant for regex matchers).
pub fn substitute_grafana_variables(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut variable = String::new();
        while let Some(&next) = chars.peek() {
            if next.is_ascii_alphanumeric() || next == '_' {
                variable.push(next);
                chars.next();
            } else {
                break;
            }
        }
        out.push_str(match variable.as_str() {
            "__rate_interval" | "__interval" | "__range" => "5m",
            _ => ".*",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported() -> Vec<ExportedMetric> {
        parse_exported_metrics(
            "# comment\nprism_http_requests_total counter lazy\nprism_http_request_duration_seconds histogram\nprism_cluster_leader gauge upcoming\n",
        )
        .expect("valid list")
    }

    #[test]
    fn presence_column_is_parsed_and_a_bad_one_rejected() {
        let presences: Vec<Presence> = exported().iter().map(|m| m.presence).collect();
        assert_eq!(
            presences,
            [Presence::Lazy, Presence::FromStart, Presence::Upcoming]
        );
        assert!(parse_exported_metrics("prism_x gauge soon\n").is_err());
        assert!(parse_exported_metrics("prism_x gauge\n").is_ok());
        assert!(parse_exported_metrics("prism_x summary\n").is_err());
    }

    #[test]
    fn finds_prism_names_but_not_label_values() {
        let names = prism_names_in_promql(
            r#"sum(rate(prism_http_requests_total{endpoint="prism_fake"}[5m])) / up"#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["prism_http_requests_total"]
        );
    }

    #[test]
    fn histogram_series_are_known_and_typos_are_reported() {
        let unknown = unknown_prism_names(
            [
                "prism_http_request_duration_seconds_bucket",
                "prism_http_request_total",
            ],
            &exported(),
        );
        assert_eq!(unknown, ["prism_http_request_total"]);
    }

    #[test]
    fn live_exposition_check_reports_missing_families_but_not_upcoming_ones() {
        let text = "# TYPE prism_http_requests_total counter\nprism_http_requests_total{status=\"200\"} 3\n";
        assert_eq!(
            missing_from_exposition(text, &exported()),
            ["prism_http_request_duration_seconds"]
        );
    }

    #[test]
    fn grafana_variables_become_promql() {
        assert_eq!(
            substitute_grafana_variables(r#"rate(x{instance=~"$instance"}[$__rate_interval])"#),
            r#"rate(x{instance=~".*"}[5m])"#
        );
    }
}
