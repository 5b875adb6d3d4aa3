//! Live end-to-end alert test: an in-process Prism server, the real Prometheus (scraping and
//! evaluating every second) and Alertmanager, and a wiremock webhook receiver.
//!
//! Prometheus loads a test copy of `monitoring/rules/prism-alerts.yml` generated here with
//! every `for` shortened to 5 s and every range window to 30 s (thresholds unchanged). Clean
//! heartbeats (a loadgen heartbeat run) must make neither HighErrorRate nor
//! HighTCPConnectionCount pending, firing or delivered; then the loadgen drills for both
//! alerts must see each go pending, fire, arrive in Alertmanager with the rule's labels and
//! resolve once its faults stop, and the webhook must receive both with their severity.

mod live_stack;

use std::time::{Duration, Instant};

use live_stack::{MonitoringStack, PrismServer, fast_alert_rules, loadgen};

/// The two alerts this test provokes, with the severity the rules file gives them.
const PROVOKED: [(&str, &str); 2] = [
    ("HighErrorRate", "critical"),
    ("HighTCPConnectionCount", "warning"),
];
/// How long clean traffic runs while nothing may be delivered: several times `for` plus the
/// Alertmanager group_wait, after Prometheus has scraped the server at least once.
const CLEAN_WINDOW: &str = "15s";
/// How long the webhook may take to receive what Alertmanager holds.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

fn is_provoked(name: &str) -> bool {
    PROVOKED.iter().any(|(provoked, _)| *provoked == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_and_connection_alerts_reach_the_webhook_under_faults_and_not_on_clean_traffic()
{
    rlimit::increase_nofile_limit(8192).expect("raise the open-file limit");
    let server = PrismServer::start(None).await;
    let stack = MonitoringStack::start(server.api, &fast_alert_rules())
        .await
        .unwrap_or_else(|e| panic!("starting Prometheus and Alertmanager: {e}"));

    // Clean phase: heartbeats only.
    let target = server.registration.to_string();
    loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "20",
        "--rate",
        "50",
        "--duration",
        CLEAN_WINDOW,
    ])
    .await
    .unwrap_or_else(|e| panic!("clean heartbeats: {e}"));
    let active: Vec<_> = stack
        .alerts()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()))
        .into_iter()
        .filter(|(name, _)| is_provoked(name))
        .collect();
    assert!(
        active.is_empty(),
        "clean heartbeats for {CLEAN_WINDOW} made Prometheus report {active:?} \
         (pending or firing); these alerts must stay silent without faults"
    );
    let noise: Vec<_> = stack
        .delivered()
        .await
        .into_iter()
        .filter(|(name, _)| is_provoked(name))
        .collect();
    assert!(
        noise.is_empty(),
        "clean heartbeats delivered {noise:?} to the webhook"
    );

    // Fault phase: one drill per alert, at the same time (malformed frames; more than 900
    // idle connections), each holding its faults 3 s past delivery so that Alertmanager's
    // 1 s group_wait sends the notification before the alert resolves.
    let hold = ["--hold", "3s"];
    let (errors, connections) = tokio::join!(
        stack.drill("HighErrorRate", server.registration, &hold),
        stack.drill("HighTCPConnectionCount", server.registration, &hold),
    );
    let mut failures = Vec::new();
    for report in [errors, connections] {
        match report {
            Ok(report) if report.passed => {}
            Ok(report) => failures.push(report.to_string()),
            Err(err) => failures.push(err),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        stack.logs()
    );

    let started = Instant::now();
    let mut received = stack.delivered().await;
    while !PROVOKED
        .iter()
        .all(|(name, _)| received.iter().any(|(n, _)| n == name))
        && started.elapsed() < WEBHOOK_TIMEOUT
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        received = stack.delivered().await;
    }
    for (name, severity) in PROVOKED {
        match received.iter().find(|(n, _)| n == name) {
            None => panic!(
                "{name} was never delivered to the webhook; received {received:?}\n{}",
                stack.logs()
            ),
            Some((_, got)) => assert_eq!(
                got, severity,
                "{name} reached the webhook with the wrong severity"
            ),
        }
    }
}
