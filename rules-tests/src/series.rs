//! The series selectors (`name{matchers}`) of PromQL expressions, and a promtool test proving a `/metrics` exposition has a series for each.
//!
//! Matching is left to promtool, so regex matchers (`status=~"5.."`) mean exactly what they
//! mean in Prometheus.

use std::fmt::Write as _;

/// PromQL words that are not metric names: aggregations, operators, modifiers (besides
/// [`LABEL_LIST_KEYWORDS`]).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "atan2",
    "inf",
    "nan",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Every metric selector of a PromQL expression, as written: the metric name with its
/// `{…}` matchers when it has them. String literals, functions, keywords, label lists and
/// durations are skipped.
pub fn selectors_in_promql(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut selectors = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if matches!(c, '"' | '\'' | '`') {
            index = end_of_string(&chars, index);
            continue;
        }
        if !is_name_char(c) {
            index += 1;
            continue;
        }
        let start = index;
        while index < chars.len() && is_name_char(chars[index]) {
            index += 1;
        }
        let name: String = chars[start..index].iter().collect();
        let mut after = index;
        while after < chars.len() && chars[after].is_whitespace() {
            after += 1;
        }
        let next = chars.get(after).copied();
        if LABEL_LIST_KEYWORDS.contains(&name.as_str()) && next == Some('(') {
            index = chars[after..]
                .iter()
                .position(|c| *c == ')')
                .map_or(chars.len(), |offset| after + offset + 1);
        } else if c.is_ascii_digit()
            || KEYWORDS.contains(&name.as_str())
            || LABEL_LIST_KEYWORDS.contains(&name.as_str())
            || next == Some('(')
        {
            continue;
        } else if next == Some('{') {
            let close = end_of_matchers(&chars, after);
            let matchers: String = chars[after..close].iter().collect();
            selectors.push(format!("{name}{matchers}"));
            index = close;
        } else {
            selectors.push(name);
        }
    }
    selectors
}

/// The `prism_*` selectors of [`selectors_in_promql`].
pub fn prism_selectors_in_promql(expr: &str) -> Vec<String> {
    selectors_in_promql(expr)
        .into_iter()
        .filter(|selector| selector.starts_with("prism_"))
        .collect()
}

/// The metric name of a selector (`up{job="prism"}` → `up`).
pub fn selector_name(selector: &str) -> &str {
    selector.split('{').next().unwrap_or(selector)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index just past the string literal opening at `open`.
fn end_of_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut index = open + 1;
    while index < chars.len() {
        match chars[index] {
            '\\' if quote != '`' => index += 2,
            c if c == quote => return index + 1,
            _ => index += 1,
        }
    }
    chars.len()
}

/// Index just past the `}` closing the matchers opening at `open`.
fn end_of_matchers(chars: &[char], open: usize) -> usize {
    let mut index = open + 1;
    while index < chars.len() {
        match chars[index] {
            '"' | '\'' | '`' => index = end_of_string(chars, index),
            '}' => return index + 1,
            _ => index += 1,
        }
    }
    chars.len()
}

/// The samples of a text exposition as promtool `input_series` lines (one sample each, at
/// time 0), with the `job` and `instance` labels a Prometheus scrape adds.
pub fn exposition_as_input_series(metrics_text: &str, job: &str, instance: &str) -> String {
    let target = format!("instance=\"{instance}\",job=\"{job}\"");
    let mut yaml = String::new();
    for line in metrics_text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let series = match series.split_once('{') {
            Some((name, labels)) => format!("{name}{{{target},{labels}"),
            None => format!("{series}{{{target}}}"),
        };
        let _ = writeln!(
            yaml,
            "      - series: '{}'\n        values: '{value}'",
            series.replace('\'', "''")
        );
    }
    yaml
}

/// A promtool unit test file asserting that every selector matches at least one of
/// `input_series` at time 0 (`absent(selector)` is empty); promtool names each selector that
/// matches nothing.
pub fn presence_test(input_series: &str, selectors: &[String]) -> String {
    let mut yaml = format!(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{input_series}    promql_expr_test:\n"
    );
    for selector in selectors {
        let _ = write!(
            yaml,
            "      - expr: 'absent({})'\n        eval_time: 0m\n        exp_samples: []\n",
            selector.replace('\'', "''")
        );
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_metrics_from_functions_keywords_label_lists_and_durations() {
        let selectors = selectors_in_promql(
            r#"histogram_quantile(0.95, sum by (instance, le) (rate(x_bucket{job="a"}[5m] offset 1h)))
               > 5 or max without (mode) (node_cpu) * on (instance) group_left (node) up"#,
        );
        assert_eq!(selectors, [r#"x_bucket{job="a"}"#, "node_cpu", "up"]);
        assert_eq!(selector_name(&selectors[0]), "x_bucket");
    }

    #[test]
    fn finds_selectors_with_their_matchers_and_skips_strings() {
        let selectors = prism_selectors_in_promql(
            r#"sum by (status) (rate(prism_dns_queries_total {job="prism", status=~"N.*}"}[5m]))
               / on (instance) prism_build_info and label_replace(up, "x", "prism_fake", "", "")"#,
        );
        assert_eq!(
            selectors,
            [
                r#"prism_dns_queries_total{job="prism", status=~"N.*}"}"#,
                "prism_build_info"
            ]
        );
    }

    #[test]
    fn exposition_samples_get_scrape_labels() {
        let series = exposition_as_input_series(
            "# TYPE a counter\na{status=\"ok\"} 0\nb 1.5\n",
            "prism",
            "p:1",
        );
        assert_eq!(
            series,
            "      - series: 'a{instance=\"p:1\",job=\"prism\",status=\"ok\"}'\n        values: '0'\n\
             \x20     - series: 'b{instance=\"p:1\",job=\"prism\"}'\n        values: '1.5'\n"
        );
    }
}
