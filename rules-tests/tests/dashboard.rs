//! Every PromQL expression of the dashboard parses, and dashboard and rules name only metrics the server exports.

use std::ffi::OsStr;

use prism_rules_tests::metric_names::{
    dashboard_exprs, dashboard_variable_queries, load_exported_metrics,
    substitute_grafana_variables, unknown_prism_names,
};
use prism_rules_tests::{load_alert_rules, load_dashboard, run_tool};

fn dashboard() -> serde_json::Value {
    load_dashboard().expect("dashboard JSON loads")
}

fn variables(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .expect("the dashboard has a templating list")
}

fn rule_exprs() -> Vec<String> {
    load_alert_rules()
        .expect("alert rules load")
        .into_iter()
        .map(|rule| rule.expr)
        .collect()
}

#[test]
fn dashboard_is_prism_dns_overview_with_the_spec_panels() {
    let dashboard = dashboard();
    assert_eq!(dashboard["title"], "Prism DNS Overview");
    let exprs = dashboard_exprs(&dashboard).join("\n");
    for metric in [
        "up{",
        "prism_http_requests_total",
        "prism_message_processing_duration_seconds_bucket",
        "prism_registered_hosts_total",
        "prism_online_hosts_total",
        "prism_offline_hosts_total",
        "prism_tcp_active_connections",
        "prism_dns_queries_total",
        "prism_cluster_change_feed_head_position",
        "prism_cluster_change_feed_applied_position",
        "prism_cluster_leader",
        "prism_cluster_database_up",
    ] {
        assert!(
            exprs.contains(metric),
            "no dashboard panel queries {metric}"
        );
    }
}

#[test]
fn a_node_variable_selects_the_instances_of_the_chosen_nodes() {
    let dashboard = dashboard();
    let variables = variables(&dashboard);
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    assert_eq!(
        variable("node")["query"]["query"],
        r#"label_values(prism_build_info{job="prism"}, node)"#
    );
    // Matches servers that export no node label too.
    assert_eq!(variable("node")["allValue"], ".*");
    assert_eq!(
        variable("instance")["query"]["query"],
        r#"label_values(prism_build_info{job="prism", node=~"$node"}, instance)"#
    );
    // A custom "All" value would ignore the node selection.
    assert!(variable("instance").get("allValue").is_none());
    for expr in dashboard_exprs(&dashboard) {
        if expr.contains("prism_") {
            assert!(
                expr.contains(r#"instance=~"$instance""#),
                "a panel ignores the node/instance selection: {expr}"
            );
        }
    }
}

#[test]
fn host_counts_are_never_summed_over_nodes_that_report_the_same_registry() {
    for expr in dashboard_exprs(&dashboard()) {
        if expr.contains("_hosts_total") {
            assert!(
                !expr.contains("sum("),
                "every node reports the same registry, so a sum counts each host once per node: {expr}"
            );
        }
    }
}

#[test]
fn every_dashboard_expression_parses_with_promtool() {
    let exprs = dashboard_exprs(&dashboard());
    assert!(!exprs.is_empty(), "dashboard has no queries");
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, expr)| {
            serde_json::json!({
                "record": format!("dashboard:panel_query_{i}"),
                "expr": substitute_grafana_variables(expr),
            })
        })
        .collect();
    // JSON is valid YAML, so the rules file needs no YAML writer.
    let document = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, document.to_string()).expect("write temp rules file");
    let run = run_tool(
        "promtool",
        &[OsStr::new("check"), OsStr::new("rules"), path.as_os_str()],
    )
    .unwrap_or_else(|problem| panic!("{problem}"));
    assert!(
        run.success,
        "a dashboard query does not parse:\n{}",
        run.output
    );
}

#[test]
fn dashboard_and_rules_name_only_exported_metrics() {
    let exported = load_exported_metrics().expect("rules-tests/exported-metrics.txt");
    let mut exprs = dashboard_exprs(&dashboard());
    exprs.extend(dashboard_variable_queries(&dashboard()));
    exprs.extend(rule_exprs());
    let unknown = unknown_prism_names(exprs.iter().map(String::as_str), &exported);
    assert!(
        unknown.is_empty(),
        "these prism_* names are not in rules-tests/exported-metrics.txt: {unknown:?}"
    );
}

/// Every `datasource` object of a panel or target, nested rows included.
fn panel_datasources(panels: &serde_json::Value, found: &mut Vec<serde_json::Value>) {
    for panel in panels.as_array().map(Vec::as_slice).unwrap_or_default() {
        found.extend(panel.get("datasource").cloned());
        for target in panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            found.extend(target.get("datasource").cloned());
        }
        panel_datasources(&panel["panels"], found);
    }
}

#[test]
fn dashboard_queries_the_datasource_variable_so_it_imports_into_any_grafana() {
    let dashboard = dashboard();
    let variables = variables(&dashboard);
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no `datasource` variable of type datasource (query prometheus)"
    );
    let mut found: Vec<serde_json::Value> = variables
        .iter()
        .filter(|v| v["type"] == "query")
        .filter_map(|v| v.get("datasource").cloned())
        .collect();
    panel_datasources(&dashboard["panels"], &mut found);
    assert!(!found.is_empty());
    for datasource in found {
        assert_eq!(
            datasource["uid"], "${datasource}",
            "a panel, query or variable names a fixed datasource: {datasource}"
        );
    }
}
