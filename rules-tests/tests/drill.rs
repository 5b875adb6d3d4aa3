//! `prism-loadgen drill` against a live stack: its plan comes from the rule Prometheus
//! runs, a ManyHostsOffline drill passes through every phase, and a rule whose expression
//! can never fire makes the drill fail with a message that says so.

mod live_stack;

use live_stack::{MonitoringStack, PrismServer, fast_alert_rules};

/// The fast rules with HighErrorRate's expression replaced by one that never holds.
fn rules_with_a_broken_error_rate_alert() -> serde_norway::Value {
    let mut rules = fast_alert_rules();
    let groups = rules["groups"].as_sequence_mut().expect("groups");
    for group in groups {
        for rule in group["rules"].as_sequence_mut().expect("rules") {
            if rule["alert"].as_str() == Some("HighErrorRate") {
                rule["expr"] = "vector(0) > 1".into();
            }
        }
    }
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_fails_clearly_when_the_rule_can_never_fire() {
    let server = PrismServer::start(None).await;
    let stack = MonitoringStack::start(server.api, &rules_with_a_broken_error_rate_alert())
        .await
        .unwrap_or_else(|e| panic!("starting Prometheus and Alertmanager: {e}"));
    let report = stack
        .drill("HighErrorRate", server.registration, &["--slack", "3s"])
        .await
        .unwrap_or_else(|e| panic!("the drill runs: {e}\n{}", stack.logs()));
    assert!(
        !report.passed,
        "a rule that never fires cannot pass:\n{report}"
    );
    let text = report.to_string();
    assert!(text.starts_with("drill HighErrorRate: FAIL"), "{text}");
    assert!(
        text.contains("never became pending") && text.contains("vector(0) > 1"),
        "the failure names the phase and the expression:\n{text}"
    );
    assert!(
        report.phases.iter().all(|phase| phase.reached.is_none()),
        "no phase held:\n{text}"
    );
    assert!(
        text.contains("not attempted: the alert never fired"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_from_the_rule_prometheus_runs_and_sends_nothing() {
    let server = PrismServer::start(None).await;
    let stack = MonitoringStack::start(server.api, &fast_alert_rules())
        .await
        .unwrap_or_else(|e| panic!("starting Prometheus and Alertmanager: {e}"));
    let report = stack
        .drill(
            "HighTCPConnectionCount",
            server.registration,
            &["--dry-run"],
        )
        .await
        .unwrap_or_else(|e| panic!("the plan: {e}"));
    let text = report.to_string();
    assert!(report.dry_run && !report.passed, "{text}");
    assert!(text.contains("945 idle registration connections"), "{text}");
    assert!(
        text.contains("for 5.0 s"),
        "the rule's shortened `for`: {text}"
    );
    // for 5 s, no window, evaluated every 1 s, slack 10 s: pending within 0 + 3 + 10.
    let pending = &report.phases[0];
    assert_eq!((pending.name, pending.bound.as_secs()), ("pending", 13));
    assert_eq!(report.phases[1].bound.as_secs(), 13 + 5 + 2);
    assert!(report.fault_traffic.is_empty(), "nothing was sent");

    let err = stack
        .drill("HighResponseTime", server.registration, &["--dry-run"])
        .await
        .expect_err("no fault mix provokes it");
    assert!(err.contains("cannot be provoked from outside"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hosts_offline_drill_passes_when_most_of_a_fleet_stops_heartbeating() {
    let server = PrismServer::start(Some(2)).await;
    let stack = MonitoringStack::start(server.api, &fast_alert_rules())
        .await
        .unwrap_or_else(|e| panic!("starting Prometheus and Alertmanager: {e}"));
    let report = stack
        .drill(
            "ManyHostsOffline",
            server.registration,
            &["--hosts", "20", "--offline-after", "2s", "--hold", "1s"],
        )
        .await
        .unwrap_or_else(|e| panic!("the drill runs: {e}\n{}", stack.logs()));
    assert!(report.passed, "{report}\n{}", stack.logs());
}
