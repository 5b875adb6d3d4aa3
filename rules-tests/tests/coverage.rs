//! Every alert has a firing, a before-`for` and a below-threshold promtool case, and follows the house conventions for labels, annotations and `for` (runbook sections: tests/runbook.rs).

use prism_rules_tests::coverage::{AlertRule, UnitTestFile, coverage_problems};
use prism_rules_tests::{load_alert_rules, load_yaml, unit_test_files};

fn rules() -> Vec<AlertRule> {
    load_alert_rules().expect("alert rules load and parse")
}

fn test_files() -> Vec<UnitTestFile> {
    unit_test_files()
        .expect("list rules-tests/*.test.yml")
        .into_iter()
        .map(|path| UnitTestFile {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            document: load_yaml(&path).expect("unit test file parses"),
        })
        .collect()
}

#[test]
fn every_alert_of_spec_section_9_and_the_cluster_exists() {
    let names: Vec<String> = rules().into_iter().map(|rule| rule.name).collect();
    for wanted in [
        "PrismServerDown",
        "HighErrorRate",
        "NoActiveHosts",
        "DatabaseConnectionPoolExhausted",
        "DiskSpaceLow",
        "HighResponseTime",
        "ManyHostsOffline",
        "HighCPUUsage",
        "HighMemoryUsage",
        "HighTCPConnectionCount",
        "PrismNewDeployment",
        "PrismConfigurationChanged",
        "PrismMaintenanceMode",
        // Cluster (SPEC §5a): several nodes on one database.
        "PrismClusterNoLeader",
        "PrismClusterSplitLeader",
        "PrismNodeViewLagging",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "alert {wanted} is missing from the rules"
        );
    }
}

#[test]
fn every_alert_has_fires_before_for_and_below_threshold_cases() {
    let problems = coverage_problems(&rules(), &test_files());
    assert!(
        problems.is_empty(),
        "alert test coverage is incomplete (see rules-tests/README.md):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn coverage_check_reports_an_alert_without_tests() {
    let mut rules = rules();
    rules.push(AlertRule {
        name: "UntestedAlert".to_owned(),
        expr: "vector(1)".to_owned(),
        for_seconds: 60,
        labels: [("severity".to_owned(), "warning".to_owned())].into(),
        annotation_keys: ["summary".to_owned()].into(),
    });
    let problems = coverage_problems(&rules, &test_files());
    assert_eq!(
        problems
            .iter()
            .filter(|p| p.starts_with("UntestedAlert:"))
            .count(),
        3,
        "expected the three missing cases to be reported, got {problems:#?}"
    );
}

#[test]
fn alerts_carry_severity_service_annotations_and_house_timing() {
    for rule in rules() {
        let severity = rule.labels.get("severity").map(String::as_str);
        let service = rule.labels.get("service").map(String::as_str);
        assert_eq!(
            service,
            Some("prism"),
            "{}: service label must be prism",
            rule.name
        );
        match severity {
            Some("critical") => assert!(
                rule.for_seconds <= 120,
                "{}: critical `for` must be <= 2m",
                rule.name
            ),
            Some("warning") => assert_eq!(
                rule.for_seconds, 900,
                "{}: warning `for` must be 15m",
                rule.name
            ),
            Some("info") => {}
            other => panic!(
                "{}: severity must be critical|warning|info, is {other:?}",
                rule.name
            ),
        }
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule.annotation_keys.contains(key),
                "{}: annotation {key} missing",
                rule.name
            );
        }
    }
}
