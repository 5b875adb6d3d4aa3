//! The `heartbeat` subcommand against a real Prism on loopback: rates, clean runs and the
//! exact error counts of deliberate faults.

mod common;

use common::{TestServer, assert_rate_within_5_percent, loadgen};
use prism_loadgen::schedule::picked;

#[test]
fn persistent_heartbeats_reach_200_per_second_without_errors() {
    let server = TestServer::open();
    let target = server.registration.to_string();
    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "20",
        "--rate",
        "200",
        "--duration",
        "3s",
    ]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let summary = &run.report().workloads[0].summary;
    assert_eq!(summary.scheduled, 600);
    assert_rate_within_5_percent(summary.achieved_rate, 200.0);
    assert_eq!(summary.errors, 0, "errors: {:?}", summary.errors_by_kind);
    assert_eq!(summary.dropped, 0);
    assert_eq!(summary.ok, 600);
}

#[test]
fn one_shot_heartbeats_reach_200_per_second_without_errors() {
    let server = TestServer::open();
    let target = server.registration.to_string();
    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "50",
        "--one-shot",
        "--rate",
        "200",
        "--duration",
        "3s",
    ]);
    run.assert_clean(200.0);
}

#[test]
fn invalid_ratio_gets_exactly_that_many_frames_rejected() {
    let server = TestServer::open();
    let target = server.registration.to_string();
    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "20",
        "--rate",
        "200",
        "--duration",
        "3s",
        "--invalid-ratio",
        "0.1",
    ]);
    let workload = &run.report().workloads[0];
    let summary = &workload.summary;
    assert_eq!(summary.sent, 600);
    assert_eq!(workload.faults_sent.get("invalid_frame"), Some(&60));
    assert_eq!(
        summary.errors_by_kind.get("invalid_frame_rejected"),
        Some(&60),
        "{:?}",
        summary.errors_by_kind
    );
    assert_eq!(
        summary.errors, 60,
        "only the invalid frames fail: {:?}",
        summary.errors_by_kind
    );
    assert_eq!(summary.ok, 540);
}

#[test]
fn bad_token_ratio_gets_exactly_that_many_registrations_refused() {
    let server = TestServer::with_token();
    let target = server.registration.to_string();
    let token = server.token.clone().expect("token mode has a token");
    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "20",
        "--rate",
        "200",
        "--duration",
        "3s",
        "--token",
        &token,
        "--bad-token-ratio",
        "0.05",
    ]);
    let summary = &run.report().workloads[0].summary;
    let expected = (0..summary.scheduled)
        .filter(|index| picked(*index, 0.05, 0.5))
        .count() as u64;
    assert_eq!(expected, 30);
    assert_eq!(
        summary.errors_by_kind.get("bad_token_rejected"),
        Some(&expected),
        "{:?}",
        summary.errors_by_kind
    );
    assert_eq!(summary.errors, expected, "{:?}", summary.errors_by_kind);
}

#[test]
fn idle_connections_and_slow_clients_are_held_for_the_whole_run() {
    let server = TestServer::open();
    let target = server.registration.to_string();
    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "5",
        "--rate",
        "50",
        "--duration",
        "2s",
        "--connections",
        "7",
        "--slow-clients",
        "3",
    ]);
    let workload = &run.report().workloads[0];
    assert_eq!(workload.held_connections.get("idle"), Some(&7));
    assert_eq!(workload.held_connections.get("slow"), Some(&3));
    assert_eq!(
        workload.summary.errors, 0,
        "{:?}",
        workload.summary.errors_by_kind
    );
}

#[test]
fn rates_above_the_safety_cap_are_refused_unless_the_cap_is_raised() {
    let run = loadgen(&["heartbeat", "--rate", "200000", "--duration", "1s"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("--max-rate"), "stderr: {}", run.stderr);
    assert!(run.report.is_none(), "no traffic, no report");
    let run = loadgen(&["heartbeat", "--duration", "2h"]);
    assert!(
        run.stderr.contains("--max-duration"),
        "stderr: {}",
        run.stderr
    );
}
