//! Targets by name, `--resolve` overrides, several targets with the hosts spread over them
//! and the per-target breakdown, and the `cross-node` measurement's mechanics.

mod common;

use common::{TestServer, loadgen_line};

#[test]
fn a_name_target_resolves_once_and_runs() {
    let server = TestServer::open();
    let target = format!("localhost:{}", server.registration.port());
    let run = loadgen_line(&format!(
        "heartbeat --target {target} --hosts 10 --rate 100 --duration 1s"
    ));
    run.assert_clean(100.0);
    assert!(
        run.stderr.contains(&format!("{target} resolved to")),
        "the start-up lines name every address: {}",
        run.stderr
    );
    let workload = &run.report().workloads[0];
    assert_eq!(workload.target, target);
    assert_eq!(workload.targets[0].address, server.registration.to_string());
}

#[test]
fn resolve_pins_a_staging_name_to_a_local_address_without_a_lookup() {
    let server = TestServer::open();
    let port = server.registration.port();
    let target = format!("staging.example.net:{port}");
    let pin = format!("staging.example.net:{port}:127.0.0.1");
    let run = loadgen_line(&format!(
        "heartbeat --target {target} --resolve {pin} --hosts 5 --rate 50 \
         --duration 1s"
    ));
    run.assert_clean(50.0);
    assert!(
        run.stderr.contains("traffic goes to 127.0.0.1"),
        "{}",
        run.stderr
    );
}

#[test]
fn heartbeat_hosts_spread_over_two_servers_and_dns_round_robin_are_reported_per_target() {
    let (first, second) = (TestServer::open(), TestServer::open());
    let targets = format!("{},{}", first.registration, second.registration);
    let run = loadgen_line(&format!(
        "heartbeat --target {targets} --hosts 20 --rate 200 --duration 2s"
    ));
    run.assert_clean(200.0);
    let per_target = &run.report().workloads[0].targets;
    assert_eq!(per_target.len(), 2);
    for (target, server) in per_target.iter().zip([&first, &second]) {
        assert_eq!(target.target, server.registration.to_string());
        assert_eq!(
            (target.sent, target.ok, target.errors),
            (200, 200, 0),
            "{target:?}"
        );
    }
    // Host k went to server k mod 2: each server registered exactly its ten hosts.
    for server in [&first, &second] {
        let page = server.metrics();
        let registered = page
            .lines()
            .find(|line| line.starts_with("prism_registered_hosts_total "))
            .unwrap_or_default();
        assert_eq!(registered, "prism_registered_hosts_total 10", "{page}");
    }
    let (one, two) = (first.dns.to_string(), second.dns.to_string());
    let run = loadgen_line(&format!(
        "dns --target {one} --target {two} --hit-ratio 0 --rate 100 \
         --duration 2s"
    ));
    run.assert_clean(100.0);
    let sent: Vec<u64> = run.report().workloads[0]
        .targets
        .iter()
        .map(|target| target.sent)
        .collect();
    assert_eq!(sent, [100, 100], "queries alternate between the servers");
}

#[test]
fn random_spread_is_reproducible_from_its_seed() {
    let (first, second) = (TestServer::open(), TestServer::open());
    let targets = format!("{},{}", first.registration, second.registration);
    let shares = |seed: &str| -> Vec<u64> {
        let run = loadgen_line(&format!(
            "heartbeat --target {targets} --hosts 40 --spread random --seed {seed} \
             --rate 200 --duration 1s"
        ));
        run.assert_clean(200.0);
        run.report().workloads[0]
            .targets
            .iter()
            .map(|t| t.sent)
            .collect()
    };
    let first_run = shares("7");
    assert_eq!(first_run.iter().sum::<u64>(), 200);
    assert_eq!(shares("7"), first_run, "the same seed spreads the same way");
}

#[test]
fn cross_node_against_one_server_given_twice_measures_every_name_visible() {
    let server = TestServer::open();
    // The register node by a name pinned with --resolve.
    let register = format!("node-a.example.net:{}", server.registration.port());
    let pin = format!("{register}:127.0.0.1");
    // The same DNS server under two spellings: two targets, one registry.
    let dns = format!("{},localhost:{}", server.dns, server.dns.port());
    let run = loadgen_line(&format!(
        "cross-node --register-target {register} --resolve {pin} \
         --dns-target {dns} --rate 20 --duration 2s"
    ));
    let summary = run.assert_clean(20.0);
    assert_eq!(summary.ok, 40, "every sample's name became visible");
    let workload = &run.report().workloads[0];
    assert_eq!(workload.kind, "cross-node");
    let per_target: Vec<(u64, u64)> = workload.targets.iter().map(|t| (t.sent, t.ok)).collect();
    assert_eq!(per_target, [(20, 20), (20, 20)]);
}
