//! The simulations: every scenario under its seed(s), the determinism check, a deliberately
//! broken server, and the promtool tests generated from the timelines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use prism_sim::fleet::FleetSpec;
use prism_sim::scenarios::{self, Scenario};
use prism_sim::seed::seeds;
use prism_sim::world::{Fault, World};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scenario` for every seed, then checks its alerts with promtool on the timeline of the
/// first seed. Writes the generated test to rules-tests/generated/ when
/// `PRISM_SIM_WRITE_GENERATED=1`.
fn run_scenario(scenario: &Scenario) {
    for (index, seed) in seeds().into_iter().enumerate() {
        let run = (scenario.run)(seed).unwrap_or_else(|violation| panic!("{violation}"));
        eprintln!(
            "{} seed {seed}: {:.0} simulated s in {:.2} wall s ({:.0}x)",
            scenario.name,
            run.simulated.as_secs_f64(),
            run.wall.as_secs_f64(),
            run.simulated.as_secs_f64() / run.wall.as_secs_f64().max(1e-9)
        );
        if let Some(minimum) = scenario.min_dns_answers_checked {
            assert!(
                run.dns_answers_checked >= minimum,
                "{}: only {} DNS answers were checked against the registry",
                scenario.name,
                run.dns_answers_checked
            );
        }
        if index > 0 {
            continue;
        }
        let rules = repo_root().join("monitoring/rules/prism-alerts.yml");
        let dir = tempfile::tempdir().expect("tempdir");
        let test_file = dir.path().join(format!("{}.test.yml", scenario.name));
        std::fs::write(
            &test_file,
            run.timeline
                .promtool_test(&rules, &(scenario.expectations)()),
        )
        .expect("write generated promtool test");
        promtool_passes(&test_file, scenario.name, seed);
        if std::env::var("PRISM_SIM_WRITE_GENERATED").is_ok_and(|v| v == "1") {
            let relative = Path::new("../../monitoring/rules/prism-alerts.yml");
            let generated = repo_root().join("rules-tests/generated");
            std::fs::create_dir_all(&generated).expect("create rules-tests/generated");
            std::fs::write(
                generated.join(format!("{}.test.yml", scenario.name)),
                run.timeline
                    .promtool_test(relative, &(scenario.expectations)()),
            )
            .expect("write rules-tests/generated");
        }
    }
}

fn promtool_passes(test_file: &Path, scenario: &str, seed: u64) {
    let output = Command::new("promtool")
        .args(["test", "rules"])
        .arg(test_file)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run promtool ({err}); run scripts/test, or apt-get install prometheus")
        });
    assert!(
        output.status.success(),
        "alerts on the {scenario} timeline (seed {seed}) differ from the expectations:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scenario(name: &str) -> &'static Scenario {
    scenarios::ALL
        .iter()
        .find(|scenario| scenario.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

/// One test per scenario, named after it, plus the list of names they cover.
macro_rules! scenario_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_scenario(scenario(stringify!($name)));
            }
        )+
        const TESTED_SCENARIOS: &[&str] = &[$(stringify!($name)),+];
    };
}

scenario_tests!(
    steady_state,
    partition_half_the_hosts,
    fleet_loses_the_server,
    server_crashes_mid_burst,
    flapping_hosts,
    invalid_traffic,
    connection_storm,
    quiet_day,
);

#[test]
fn every_scenario_has_a_test() {
    for scenario in &scenarios::ALL {
        assert!(
            TESTED_SCENARIOS.contains(&scenario.name),
            "scenario {} has no test in scenario_tests!",
            scenario.name
        );
    }
}

#[test]
fn same_seed_gives_byte_identical_event_logs_and_timelines() {
    let seed = seeds()[0];
    let first = scenarios::server_crashes_mid_burst(seed).unwrap_or_else(|v| panic!("{v}"));
    let second = scenarios::server_crashes_mid_burst(seed).unwrap_or_else(|v| panic!("{v}"));
    assert!(
        first.events.len() > 400,
        "the log records the burst: {}",
        first.events.len()
    );
    assert_eq!(
        first.events.join("\n"),
        second.events.join("\n"),
        "event logs differ for seed {seed}"
    );
    assert_eq!(
        first.timeline.input_series(),
        second.timeline.input_series(),
        "metric timelines differ for seed {seed}"
    );
}

#[test]
fn a_server_without_offline_detection_breaks_an_invariant_naming_seed_host_and_time() {
    let seed = seeds()[0];
    // Deliberately broken: the offline sweep effectively never runs.
    let outcome = World::new("broken_offline_detection", seed)
        .configure(|config| config.heartbeat.check_interval = 86_400.0)
        .fleet(FleetSpec::steady("web", 2, 5))
        .at(
            Duration::from_secs(120),
            Fault::Partition(vec!["web-1".into()]),
        )
        .run_for(Duration::from_secs(600));
    let Err(violation) = outcome else {
        panic!("a server that never marks hosts offline must break an invariant");
    };
    let message = violation.to_string();
    assert!(message.contains(&format!("seed {seed}")), "{message}");
    assert!(message.contains("host web-1-"), "{message}");
    assert!(message.contains("still online"), "{message}");
    assert!(message.contains("at simulated 0:0"), "{message}");
    assert!(message.contains("PRISM_SIM_SEED="), "{message}");
}
