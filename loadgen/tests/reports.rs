//! Thresholds and exit codes, the HTML report, and scenario files, against a real Prism.

mod common;

use common::{TestServer, assert_rate_within_5_percent, loadgen};

fn short_heartbeat_run(server: &TestServer, extra: &[&str]) -> common::Run {
    let target = server.registration.to_string();
    let mut args = vec![
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "10",
        "--rate",
        "100",
        "--duration",
        "1s",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

#[test]
fn an_impossible_threshold_exits_99_and_a_passing_one_exits_0() {
    let server = TestServer::open();
    let run = short_heartbeat_run(&server, &["--threshold", "p99<1us"]);
    assert_eq!(run.code, Some(99), "stdout: {}", run.stdout);
    let report = run.report();
    assert!(!report.passed);
    assert!(!report.thresholds[0].passed);
    assert!(run.stdout.contains("FAIL"), "{}", run.stdout);

    let run = short_heartbeat_run(
        &server,
        &[
            "--threshold",
            "p99<5s",
            "--threshold",
            "errors<1%",
            "--threshold",
            "dropped==0",
        ],
    );
    assert_eq!(run.code, Some(0), "stdout: {}", run.stdout);
    assert!(run.report().passed);
    assert_eq!(run.report().thresholds.len(), 3);
}

#[test]
fn a_malformed_threshold_is_rejected_before_any_traffic() {
    let run = loadgen(&["heartbeat", "--duration", "1s", "--threshold", "p99<<5ms"]);
    assert_eq!(run.code, Some(2), "usage error");
    assert!(run.stderr.contains("invalid threshold"), "{}", run.stderr);
    assert!(run.report.is_none());
}

#[test]
fn html_report_is_self_contained_with_charts_and_the_json_numbers() {
    let server = TestServer::open();
    let run = short_heartbeat_run(&server, &["--threshold", "p99<5s"]);
    let html = std::fs::read_to_string(&run.html).expect("HTML report written");
    let summary = &run.report().workloads[0].summary;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "latency over time, throughput and percentile-distribution charts"
    );
    assert!(html.contains("log scale"), "latency axes are logarithmic");
    assert!(html.contains("Latency by percentile"));
    assert!(
        html.contains(">target</text>"),
        "the target rate is drawn on the throughput chart"
    );
    assert!(
        html.contains("Command line: <code>") && html.contains(" heartbeat --target "),
        "the command line is recorded"
    );
    assert!(
        run.report()
            .command_line
            .iter()
            .any(|arg| arg == "heartbeat")
    );
    assert!(html.contains("<polyline"));
    assert!(!html.contains("<script"), "no JavaScript at all");
    let without_svg_namespace = html.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !without_svg_namespace.contains("http://") && !without_svg_namespace.contains("https://"),
        "no external resources"
    );
    let latency = &summary.latency_ms;
    for (what, value) in [
        ("achieved rate", summary.achieved_rate.to_string()),
        ("target rate", summary.target_rate.to_string()),
        ("sent", summary.sent.to_string()),
        ("p50", latency.p50.to_string()),
        ("p90", latency.p90.to_string()),
        ("p95", latency.p95.to_string()),
        ("p99", latency.p99.to_string()),
        ("p99.9", latency.p999.to_string()),
        ("max", latency.max.to_string()),
        ("mean", latency.mean.to_string()),
    ] {
        assert!(
            html.contains(&format!("<td>{value}</td>")),
            "HTML report lacks {what} = {value}"
        );
    }
    assert!(html.contains("p99&lt;5s"), "thresholds listed");
}

#[test]
fn a_scenario_runs_heartbeat_dns_and_api_workloads_together_with_stages() {
    let server = TestServer::open();
    let dir = tempfile::tempdir().expect("temporary directory");
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
threshold = ["errors<1%"]

[[workload]]
kind = "heartbeat"
name = "hosts"
target = "{registration}"
hosts = 10
stages = [
  {{ duration = "1s", target = 100 }},
  {{ duration = "1s", target = 100 }},
  {{ duration = "1s", target = 0 }},
]

[[workload]]
kind = "dns"
target = "{dns}"
hosts = 10
hit_ratio = 0.0
rate = 100
duration = "3s"

[[workload]]
kind = "api"
target = "{api}"
path = ["/api/health", "/api/stats"]
rate = 50
duration = "2s"
"#,
            registration = server.registration,
            dns = server.dns,
            api = server.api,
        ),
    )
    .expect("scenario written");
    let scenario = scenario.to_string_lossy().into_owned();
    let run = loadgen(&["run", &scenario]);
    assert_eq!(
        run.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    let report = run.report();
    let names: Vec<&str> = report.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["hosts", "dns", "api"]);
    let hosts = &report.workloads[0].summary;
    assert_eq!(hosts.scheduled, 200, "ramp up 50 + hold 100 + ramp down 50");
    assert_eq!(hosts.sent, 200);
    let dns = &report.workloads[1].summary;
    assert_rate_within_5_percent(dns.achieved_rate, 100.0);
    let api = &report.workloads[2].summary;
    assert_rate_within_5_percent(api.achieved_rate, 50.0);
    assert_eq!(report.total.errors, 0, "{:?}", report.total.errors_by_kind);
    assert_eq!(report.total.sent, 200 + 300 + 100);
    assert!(report.passed);
    assert!(run.stdout.contains("total (3 workloads)"), "{}", run.stdout);
    let html = std::fs::read_to_string(&run.html).expect("HTML report written");
    assert!(html.contains("Total (all workloads)"));
}
