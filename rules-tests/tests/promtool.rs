//! Prism's monitoring files pass promtool and amtool, and every promtool unit test (hand-written and simulator-generated) passes.

use std::ffi::OsStr;

use prism_rules_tests::{
    alert_rules_path, generated_test_files, repo_root, run_tool, unit_test_files,
};

fn must_pass(tool: &str, args: &[&OsStr]) {
    let run = run_tool(tool, args).unwrap_or_else(|problem| panic!("{problem}"));
    assert!(
        run.success,
        "`{tool} {}` failed:\n{}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        run.output
    );
}

#[test]
fn prometheus_config_is_valid() {
    let config = repo_root().join("monitoring/prometheus.yml");
    must_pass(
        "promtool",
        &[
            OsStr::new("check"),
            OsStr::new("config"),
            config.as_os_str(),
        ],
    );
}

#[test]
fn alert_rules_are_valid() {
    let rules = alert_rules_path();
    must_pass(
        "promtool",
        &[OsStr::new("check"), OsStr::new("rules"), rules.as_os_str()],
    );
}

#[test]
fn alertmanager_config_is_valid() {
    let config = repo_root().join("monitoring/alertmanager.yml");
    must_pass("amtool", &[OsStr::new("check-config"), config.as_os_str()]);
}

#[test]
fn every_promtool_unit_test_passes() {
    let files = unit_test_files().expect("list rules-tests/*.test.yml");
    assert!(!files.is_empty(), "no rules-tests/*.test.yml found");
    for file in files {
        must_pass(
            "promtool",
            &[OsStr::new("test"), OsStr::new("rules"), file.as_os_str()],
        );
    }
}

#[test]
fn every_simulator_generated_test_passes() {
    let files = generated_test_files().expect("list rules-tests/generated/*.test.yml");
    let names: Vec<String> = files
        .iter()
        .filter_map(|file| file.file_name()?.to_str().map(str::to_owned))
        .collect();
    for scenario in [
        "steady_state",
        "partition_half_the_hosts",
        "invalid_traffic",
        "connection_storm",
    ] {
        assert!(
            names.contains(&format!("{scenario}.test.yml")),
            "rules-tests/generated/{scenario}.test.yml is missing; regenerate with \
             PRISM_SIM_WRITE_GENERATED=1 cargo test -p prism-sim"
        );
    }
    for file in files {
        must_pass(
            "promtool",
            &[OsStr::new("test"), OsStr::new("rules"), file.as_os_str()],
        );
    }
}
