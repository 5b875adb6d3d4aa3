//! `monitoring/RUNBOOK.md` has one section per alert, no section for an alert that does not
//! exist, and each section states the alert's severity and `for`, names every metric its
//! expression uses, and is where the alert's `runbook_url` points.

use std::collections::BTreeSet;

use prism_rules_tests::coverage::AlertRule;
use prism_rules_tests::series::{selector_name, selectors_in_promql};
use prism_rules_tests::{alert_rules_path, load_alert_rules, load_yaml, repo_root};

/// One `<a id="…"></a>` + `## …` section of the runbook.
struct Section {
    anchor: String,
    heading: String,
    body: String,
}

fn sections() -> Vec<Section> {
    let text = std::fs::read_to_string(repo_root().join("monitoring/RUNBOOK.md"))
        .expect("monitoring/RUNBOOK.md exists");
    let mut sections = Vec::new();
    for chunk in text.split("<a id=\"").skip(1) {
        let (anchor, rest) = chunk
            .split_once("\"></a>")
            .unwrap_or_else(|| panic!("unterminated anchor: <a id=\"{chunk:.40}"));
        let rest = rest.trim_start();
        let (heading, body) = rest.split_once('\n').unwrap_or((rest, ""));
        sections.push(Section {
            anchor: anchor.to_owned(),
            heading: heading.to_owned(),
            body: body.to_owned(),
        });
    }
    sections
}

fn rules() -> Vec<AlertRule> {
    load_alert_rules().expect("alert rules load")
}

/// `for: 90s` as the runbook writes it: `1m30s`, `15m`, `1h`.
fn for_text(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    [(hours, "h"), (minutes, "m"), (seconds, "s")]
        .iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect::<String>()
}

#[test]
fn every_alert_has_one_section_with_its_severity_and_for() {
    let sections = sections();
    let rules = rules();
    let mut problems = Vec::new();
    for rule in &rules {
        let anchor = rule.name.to_lowercase();
        let found: Vec<&Section> = sections.iter().filter(|s| s.anchor == anchor).collect();
        let [section] = found[..] else {
            problems.push(format!(
                "{}: {} sections with <a id=\"{anchor}\"></a>, want exactly one",
                rule.name,
                found.len()
            ));
            continue;
        };
        let severity = rule.labels.get("severity").map_or("", String::as_str);
        let wanted = format!(
            "## {} ({severity}, for {})",
            rule.name,
            for_text(rule.for_seconds)
        );
        if section.heading != wanted {
            problems.push(format!(
                "{}: heading is `{}`, want `{wanted}`",
                rule.name, section.heading
            ));
        }
        for part in ["**Meaning.**", "**First checks.**", "**Common causes.**"] {
            if !section.body.contains(part) {
                problems.push(format!("{}: section lacks {part}", rule.name));
            }
        }
    }
    for section in &sections {
        if !rules
            .iter()
            .any(|rule| rule.name.to_lowercase() == section.anchor)
        {
            problems.push(format!(
                "RUNBOOK.md has a section `{}` for an alert that is not in the rules",
                section.heading
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "RUNBOOK.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_section_names_the_metrics_its_alert_uses() {
    let sections = sections();
    let mut problems = Vec::new();
    for rule in rules() {
        let Some(section) = sections
            .iter()
            .find(|s| s.anchor == rule.name.to_lowercase())
        else {
            continue;
        };
        let names: BTreeSet<String> = selectors_in_promql(&rule.expr)
            .iter()
            .map(|selector| selector_name(selector).to_owned())
            .collect();
        for name in names {
            if !section.body.contains(&name) {
                problems.push(format!(
                    "{}: the expression uses {name}, the runbook section never names it",
                    rule.name
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "RUNBOOK.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_runbook_url_points_at_its_alerts_section() {
    let document = load_yaml(&alert_rules_path()).expect("alert rules load");
    let mut checked = 0;
    for group in document["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default();
            assert!(
                url.ends_with(&format!("/monitoring/RUNBOOK.md#{}", name.to_lowercase())),
                "{name}: runbook_url {url} does not point at RUNBOOK.md#{}",
                name.to_lowercase()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no alert rules found");
}
