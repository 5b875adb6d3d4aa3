//! The `dns` and `api` subcommands against a real Prism on loopback.

mod common;

use common::{TestServer, assert_rate_within_5_percent, loadgen};

/// Registers PREFIX-0 … PREFIX-(hosts-1) once, as the DNS hit names.
fn register_hosts(server: &TestServer, hosts: &str) {
    let target = server.registration.to_string();
    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        hosts,
        "--one-shot",
        "--rate",
        hosts,
        "--duration",
        "1s",
    ]);
    assert_eq!(run.report().total.ok.to_string(), hosts, "{}", run.stdout);
}

#[test]
fn dns_over_udp_reaches_200_per_second_with_hits_and_misses_answered_correctly() {
    let server = TestServer::open();
    register_hosts(&server, "20");
    let target = server.dns.to_string();
    let run = loadgen(&[
        "dns",
        "--target",
        &target,
        "--hosts",
        "20",
        "--hit-ratio",
        "0.8",
        "--aaaa-ratio",
        "0.1",
        "--rate",
        "200",
        "--duration",
        "3s",
    ]);
    let summary = run.assert_clean(200.0);
    assert_eq!(summary.dropped, 0);
}

#[test]
fn dns_over_tcp_reaches_the_rate_without_errors() {
    let server = TestServer::open();
    register_hosts(&server, "10");
    let target = server.dns.to_string();
    let run = loadgen(&[
        "dns",
        "--target",
        &target,
        "--tcp",
        "--hosts",
        "10",
        "--hit-ratio",
        "0.5",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--concurrency",
        "8",
    ]);
    let summary = &run.report().workloads[0].summary;
    assert_rate_within_5_percent(summary.achieved_rate, 200.0);
    assert_eq!(summary.errors, 0, "errors: {:?}", summary.errors_by_kind);
}

#[test]
fn dns_names_that_were_never_registered_count_as_unexpected_nxdomain() {
    let server = TestServer::open();
    let target = server.dns.to_string();
    let run = loadgen(&[
        "dns",
        "--target",
        &target,
        "--hosts",
        "5",
        "--rate",
        "100",
        "--duration",
        "1s",
    ]);
    let summary = &run.report().workloads[0].summary;
    assert_eq!(
        summary.errors_by_kind.get("dns_unexpected_nxdomain"),
        Some(&100)
    );
}

#[test]
fn api_health_reaches_200_per_second_without_errors() {
    let server = TestServer::open();
    let target = server.api.to_string();
    let run = loadgen(&[
        "api",
        "--target",
        &target,
        "--path",
        "/api/health",
        "--rate",
        "200",
        "--duration",
        "3s",
    ]);
    run.assert_clean(200.0);
}

#[test]
fn api_requests_without_the_bearer_token_are_counted_as_4xx() {
    let server = TestServer::with_token();
    let target = server.api.to_string();
    let run = loadgen(&[
        "api",
        "--target",
        &target,
        "--path",
        "/api/health",
        "--path",
        "/api/hosts",
        "--rate",
        "100",
        "--duration",
        "2s",
    ]);
    let summary = &run.report().workloads[0].summary;
    assert_eq!(summary.sent, 200);
    // Every second request asks for /api/hosts without a token.
    assert_eq!(
        summary.errors_by_kind.get("http_4xx"),
        Some(&100),
        "{:?}",
        summary.errors_by_kind
    );
    assert_eq!(summary.ok, 100);
}

#[test]
fn api_requests_with_the_bearer_token_succeed() {
    let server = TestServer::with_token();
    let target = server.api.to_string();
    let token = server.token.clone().expect("token mode has a token");
    let run = loadgen(&[
        "api",
        "--target",
        &target,
        "--path",
        "/api/hosts",
        "--path",
        "/api/stats",
        "--token",
        &token,
        "--rate",
        "100",
        "--duration",
        "2s",
    ]);
    let summary = &run.report().workloads[0].summary;
    assert_eq!(summary.errors, 0, "errors: {:?}", summary.errors_by_kind);
    assert_rate_within_5_percent(summary.achieved_rate, 100.0);
}
