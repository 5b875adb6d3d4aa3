//! What an operator relies on in the first hour: exit codes without thresholds, `--help`,
//! `--warmup`, DNS hit names kept alive, and the token recipe against a server as shipped.

mod common;

use common::{TestServer, loadgen_line};

/// Sum of every `prism_messages_processed_total` sample on a metrics page.
fn messages_processed(page: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with("prism_messages_processed_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_run_in_which_nothing_succeeded_exits_3_even_without_thresholds() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = closed.local_addr().expect("address").to_string();
    drop(closed);
    let run = loadgen_line(&format!(
        "heartbeat --target {target} --hosts 2 --rate 20 --duration 1s"
    ));
    assert_eq!(run.code, Some(3), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("no request succeeded"),
        "{}",
        run.stderr
    );
    assert_eq!(run.report().total.ok, 0);
}

#[test]
fn help_lists_the_exit_codes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_prism-loadgen"))
        .arg("--help")
        .output()
        .expect("loadgen runs");
    let help = String::from_utf8_lossy(&output.stdout);
    for code in ["0 ", "1 ", "2 ", "3 ", "99 "] {
        assert!(
            help.lines().any(|line| line.trim_start().starts_with(code)),
            "--help does not explain exit code {code}:\n{help}"
        );
    }
}

#[test]
fn warmup_runs_the_workload_first_without_measuring_it() {
    let server = TestServer::open();
    let target = server.registration.to_string();
    let run = loadgen_line(&format!(
        "heartbeat --target {target} --hosts 10 --rate 100 --duration 1s \
         --warmup 1s"
    ));
    let summary = run.assert_clean(100.0);
    assert_eq!(
        summary.scheduled, 100,
        "only the measured second is in the report"
    );
    assert_eq!(
        messages_processed(&server.metrics()),
        200.0,
        "the server saw the warm-up second too"
    );
}

#[test]
fn dns_keep_alive_heartbeats_its_hit_names_so_they_never_go_offline() {
    let server = TestServer::open_with_short_offline_deadline();
    let (registration, dns) = (server.registration.to_string(), server.dns.to_string());
    let run = loadgen_line(&format!(
        "dns --target {dns} --hosts 10 --rate 50 --duration 5s \
         --keep-alive {registration} --keep-alive-interval 500ms"
    ));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.report();
    let names: Vec<&str> = report.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["dns", "dns-keepalive"]);
    let dns = &report.workloads[0].summary;
    assert_eq!(
        dns.errors, 0,
        "names stayed online: {:?}",
        dns.errors_by_kind
    );
    assert_eq!(report.workloads[1].summary.errors, 0);
}

#[test]
fn without_keep_alive_hit_names_go_offline_and_answer_nxdomain() {
    let server = TestServer::open_with_short_offline_deadline();
    let (registration, dns) = (server.registration.to_string(), server.dns.to_string());
    loadgen_line(&format!(
        "heartbeat --target {registration} --hosts 10 --one-shot \
         --rate 10 --duration 1s"
    ))
    .assert_clean(10.0);
    let run = loadgen_line(&format!(
        "dns --target {dns} --hosts 10 --rate 50 --duration 5s"
    ));
    let summary = &run.report().workloads[0].summary;
    assert!(
        summary
            .errors_by_kind
            .get("dns_unexpected_nxdomain")
            .copied()
            .unwrap_or(0)
            > 0,
        "names registered once went offline during the run: {:?}",
        summary.errors_by_kind
    );
}

#[test]
fn token_recipe_works_against_a_server_with_default_rate_limits_and_says_when_it_is_limited() {
    let server = TestServer::with_token_and_default_rate_limit();
    let target = server.registration.to_string();
    let token = server.token.clone().expect("token mode has a token");
    // Each host well under its minimum heartbeat interval (15 s): never limited.
    let run = loadgen_line(&format!(
        "heartbeat --target {target} --token {token} --hosts 100 --rate 20 \
         --duration 2s"
    ));
    run.assert_clean(20.0);
    // Each host many times a second: the refusals are named as such, with the fix.
    let run = loadgen_line(&format!(
        "heartbeat --target {target} --token {token} --hosts 50 \
         --rate 600 --duration 3s"
    ));
    let summary = &run.report().workloads[0].summary;
    let limited = summary
        .errors_by_kind
        .get("rate_limited")
        .copied()
        .unwrap_or(0);
    assert!(limited > 0, "{:?}", summary.errors_by_kind);
    assert_eq!(summary.errors, limited, "{:?}", summary.errors_by_kind);
    assert!(
        run.stdout.contains("rate limits") && run.stdout.contains("--rate-limit 0"),
        "{}",
        run.stdout
    );
}
