//! `--metrics-listen` scraped by a real Prometheus (the Debian package) during a run: the
//! request count Prometheus scraped equals the report's.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestServer, finished, loadgen_command};
use prism_rules_tests::live::{ChildGuard, free_loopback_port};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Queries Prometheus at `prometheus` for the scalar value of `query`, if it has one.
fn query(prometheus: SocketAddr, query: &str) -> Option<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    runtime.block_on(async {
        let encoded: String = query
            .bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() {
                    char::from(byte).to_string()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect();
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("http://{prometheus}/api/v1/query?query={encoded}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    })
}

#[test]
fn prometheus_scrapes_the_run_and_counts_the_same_requests_as_the_report() {
    let server = TestServer::open();
    let dir = tempfile::tempdir().expect("temporary directory");
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_loopback_port().expect("port")));
    let prometheus = SocketAddr::from(([127, 0, 0, 1], free_loopback_port().expect("port")));
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: loadgen\n    \
             static_configs: [{{ targets: ['{metrics}'] }}]\n"
        ),
    )
    .expect("config written");
    let mut child = ChildGuard::spawn(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address={prometheus}"),
        ],
        dir.path(),
    )
    .expect("prometheus starts (apt-get install prometheus)");
    child
        .wait_listening(prometheus, STARTUP_TIMEOUT)
        .expect("prometheus listens");

    let target = server.registration.to_string();
    let listen = metrics.to_string();
    let reports = tempfile::tempdir().expect("temporary directory");
    let output = loadgen_command(
        &[
            "heartbeat",
            "--target",
            &target,
            "--hosts",
            "10",
            "--rate",
            "100",
            "--duration",
            "4s",
            "--metrics-listen",
            &listen,
            "--metrics-linger",
            "3s",
        ],
        reports.path(),
    )
    .output()
    .expect("loadgen runs");
    let run = finished(output, reports);
    let summary = run.assert_clean(100.0).clone();

    // The last scrapes happened while the endpoint lingered; the target is gone now, so ask
    // for the highest value seen over the last minute.
    let total = "sum(max_over_time(prism_loadgen_requests_total{workload=\"heartbeat\"}[1m]))";
    let latency = "sum(max_over_time(prism_loadgen_request_duration_seconds_count[1m]))";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut scraped = None;
    while Instant::now() < deadline {
        scraped = query(prometheus, total);
        if scraped == Some(summary.sent as f64) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        scraped,
        Some(summary.sent as f64),
        "Prometheus scraped a different request count than the report's {} sent\n{}",
        summary.sent,
        child.log_tail(10)
    );
    assert_eq!(query(prometheus, latency), Some(summary.completed as f64));
    let buckets = "count(max_over_time(prism_loadgen_request_duration_seconds_bucket[1m]))";
    assert_eq!(
        query(prometheus, buckets),
        Some(16.0),
        "the server's 15 latency buckets plus +Inf"
    );
}
