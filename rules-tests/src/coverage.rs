//! The coverage check: every alert has a `fires`, a `before_for` and a `below_threshold` promtool case (naming convention in rules-tests/README.md).

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use crate::parse_duration_seconds;

/// The parts of an alerting rule the coverage check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    /// `alert:` name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// `for:` in seconds (0 when absent).
    pub for_seconds: u64,
    /// Static labels, e.g. severity and service.
    pub labels: BTreeMap<String, String>,
    /// Annotation keys, e.g. summary, description, runbook_url.
    pub annotation_keys: BTreeSet<String>,
}

/// One promtool unit test file, already parsed.
#[derive(Debug, Clone)]
pub struct UnitTestFile {
    /// File name, for messages.
    pub name: String,
    /// The parsed YAML document.
    pub document: Value,
}

/// The alerting rules of a Prometheus rules file.
pub fn alert_rules(rules_file: &Value) -> Result<Vec<AlertRule>, String> {
    let mut rules = Vec::new();
    for group in seq(&rules_file["groups"]) {
        for rule in seq(&group["rules"]) {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            let for_seconds = match rule["for"].as_str() {
                Some(text) => parse_duration_seconds(text).map_err(|e| format!("{name}: {e}"))?,
                None => 0,
            };
            rules.push(AlertRule {
                name: name.to_owned(),
                expr: rule["expr"].as_str().unwrap_or_default().to_owned(),
                for_seconds,
                labels: string_map(&rule["labels"]),
                annotation_keys: string_map(&rule["annotations"]).into_keys().collect(),
            });
        }
    }
    Ok(rules)
}

/// Everything missing from the unit tests, one human-readable line per gap; empty when every alert is covered.
pub fn coverage_problems(rules: &[AlertRule], files: &[UnitTestFile]) -> Vec<String> {
    let cases = collect_cases(files);
    let mut problems = Vec::new();
    for case in &cases {
        if !rules.iter().any(|rule| rule.name == case.alert) {
            problems.push(format!(
                "{}: test group \"{}\" names alert `{}`, which is not in the rules file",
                case.file, case.group_name, case.alert
            ));
        }
    }
    for rule in rules {
        problems.extend(problems_for_alert(rule, &cases));
    }
    problems
}

/// One test group whose name follows `<Alert>: <case>[ (detail)]`.
struct Case<'a> {
    file: &'a str,
    group_name: &'a str,
    alert: &'a str,
    kind: &'a str,
    evaluation_interval: u64,
    group: &'a Value,
}

fn collect_cases(files: &[UnitTestFile]) -> Vec<Case<'_>> {
    let mut cases = Vec::new();
    for file in files {
        let evaluation_interval = file.document["evaluation_interval"]
            .as_str()
            .and_then(|text| parse_duration_seconds(text).ok())
            .unwrap_or(60);
        for group in seq(&file.document["tests"]) {
            let Some(group_name) = group["name"].as_str() else {
                continue;
            };
            let Some((alert, rest)) = group_name.split_once(": ") else {
                continue;
            };
            let kind = rest.split_whitespace().next().unwrap_or_default();
            cases.push(Case {
                file: &file.name,
                group_name,
                alert,
                kind,
                evaluation_interval,
                group,
            });
        }
    }
    cases
}

fn problems_for_alert(rule: &AlertRule, cases: &[Case<'_>]) -> Vec<String> {
    let mine: Vec<&Case<'_>> = cases.iter().filter(|c| c.alert == rule.name).collect();
    let mut problems = Vec::new();
    if rule.for_seconds == 0 {
        problems.push(format!(
            "{}: has no `for`, so no test can show it silent before `for` elapses",
            rule.name
        ));
    }

    // (a) fires just above threshold after `for`, exact labels and annotations asserted.
    let firing: Vec<(&Case<'_>, u64)> = mine
        .iter()
        .filter(|c| c.kind == "fires")
        .flat_map(|c| {
            alert_tests(c.group, &rule.name)
                .filter(|test| fully_asserted_firing(test, rule))
                .filter_map(eval_seconds)
                .map(move |t| (*c, t))
        })
        .collect();
    if firing.is_empty() {
        problems.push(format!(
            "{}: no \"{}: fires\" test group with an alert_rule_test whose exp_alerts assert \
             the labels {:?} and the annotations {:?}",
            rule.name, rule.name, rule.labels, rule.annotation_keys
        ));
    }

    // (b) silent one evaluation before `for` elapses, on the same series, while pending.
    let before_for_ok = mine.iter().filter(|c| c.kind == "before_for").any(|c| {
        alert_tests(c.group, &rule.name)
            .filter(|test| expects_silence(test))
            .filter_map(eval_seconds)
            .any(|silent_at| {
                asserts_pending(c.group, &rule.name, silent_at)
                    && firing.iter().any(|(fires, fires_at)| {
                        fires.group["input_series"] == c.group["input_series"]
                            && *fires_at == silent_at + c.evaluation_interval
                    })
            })
    });
    if !before_for_ok {
        problems.push(format!(
            "{}: no \"{}: before_for\" test group that uses the same input_series as a \
             \"fires\" group, expects no alert one evaluation before it fires, and asserts \
             ALERTS{{alertname=\"{}\",alertstate=\"pending\"}} at that time",
            rule.name, rule.name, rule.name
        ));
    }

    // (c) silent just below threshold, late enough that `for` cannot explain the silence.
    let below_ok = mine
        .iter()
        .filter(|c| c.kind == "below_threshold")
        .any(|c| {
            alert_tests(c.group, &rule.name)
                .filter(|test| expects_silence(test))
                .filter_map(eval_seconds)
                .any(|t| t > rule.for_seconds)
        });
    if !below_ok {
        problems.push(format!(
            "{}: no \"{}: below_threshold\" test group expecting silence at an eval_time \
             later than its `for` ({} s)",
            rule.name, rule.name, rule.for_seconds
        ));
    }
    problems
}

fn alert_tests<'a>(group: &'a Value, alert: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    seq(&group["alert_rule_test"])
        .iter()
        .filter(move |test| test["alertname"].as_str() == Some(alert))
}

fn eval_seconds(test: &Value) -> Option<u64> {
    test["eval_time"]
        .as_str()
        .and_then(|text| parse_duration_seconds(text).ok())
}

fn expects_silence(test: &Value) -> bool {
    seq(&test["exp_alerts"]).is_empty()
}

fn fully_asserted_firing(test: &Value, rule: &AlertRule) -> bool {
    let alerts = seq(&test["exp_alerts"]);
    !alerts.is_empty()
        && alerts.iter().all(|alert| {
            let labels = string_map(&alert["exp_labels"]);
            let annotations: BTreeSet<String> =
                string_map(&alert["exp_annotations"]).into_keys().collect();
            rule.labels
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
                && annotations == rule.annotation_keys
        })
}

fn asserts_pending(group: &Value, alert: &str, at: u64) -> bool {
    let wanted_name = format!("alertname=\"{alert}\"");
    seq(&group["promql_expr_test"]).iter().any(|test| {
        let expr = test["expr"].as_str().unwrap_or_default();
        expr.contains("ALERTS{")
            && expr.contains(&wanted_name)
            && expr.contains("alertstate=\"pending\"")
            && eval_seconds(test) == Some(at)
            && !seq(&test["exp_samples"]).is_empty()
    })
}

fn seq(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    let Some(mapping) = value.as_mapping() else {
        return BTreeMap::new();
    };
    mapping
        .iter()
        .filter_map(|(key, value)| {
            let key = key.as_str()?.to_owned();
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => return None,
            };
            Some((key, value))
        })
        .collect()
}
