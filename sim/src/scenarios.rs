//! Named scenarios: each is a function of a seed that says what the world does.
//!
//! The same functions feed the tests in `tests/` and the promtool files in
//! `rules-tests/generated/`, through [`Scenario::expectations`].

use std::time::Duration;

use crate::fleet::{ClientMode, FleetSpec};
use crate::timeline::Expectation;
use crate::world::{Fault, Run, Violation, World};

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// A scenario: its name, how to run it, and which alerts its timeline must (not) raise.
pub struct Scenario {
    /// Function name, used in replay commands and generated file names.
    pub name: &'static str,
    /// Runs the scenario with a seed.
    pub run: fn(u64) -> Result<Run, Violation>,
    /// What the alert rules must conclude from the run's timeline.
    pub expectations: fn() -> Vec<Expectation>,
    /// With a resolver host: how many DNS answers must at least have been checked.
    pub min_dns_answers_checked: Option<u64>,
}

/// Every scenario, for sweeps and for generating rule tests.
pub const ALL: [Scenario; 8] = [
    Scenario {
        name: "steady_state",
        run: steady_state,
        expectations: steady_state_expectations,
        min_dns_answers_checked: Some(5_000),
    },
    Scenario {
        name: "partition_half_the_hosts",
        run: partition_half_the_hosts,
        expectations: partition_expectations,
        min_dns_answers_checked: Some(1_000),
    },
    Scenario {
        name: "fleet_loses_the_server",
        run: fleet_loses_the_server,
        expectations: fleet_loses_the_server_expectations,
        min_dns_answers_checked: None,
    },
    Scenario {
        name: "server_crashes_mid_burst",
        run: server_crashes_mid_burst,
        expectations: server_crash_expectations,
        min_dns_answers_checked: Some(500),
    },
    Scenario {
        name: "flapping_hosts",
        run: flapping_hosts,
        expectations: flapping_expectations,
        min_dns_answers_checked: Some(1_000),
    },
    Scenario {
        name: "invalid_traffic",
        run: invalid_traffic,
        expectations: invalid_traffic_expectations,
        min_dns_answers_checked: None,
    },
    Scenario {
        name: "connection_storm",
        run: connection_storm,
        expectations: connection_storm_expectations,
        min_dns_answers_checked: None,
    },
    Scenario {
        name: "quiet_day",
        run: quiet_day,
        expectations: quiet_day_expectations,
        min_dns_answers_checked: None,
    },
];

/// 500 hosts heartbeating normally for 2 simulated hours: nothing alert-worthy.
pub fn steady_state(seed: u64) -> Result<Run, Violation> {
    World::new("steady_state", seed)
        .fleet(FleetSpec::steady("web", 10, 50))
        .resolver(Duration::from_secs(1))
        .run_for(minutes(120))
}

fn steady_state_expectations() -> Vec<Expectation> {
    (1..=11)
        .map(|tenth| Expectation::NoAlerts {
            at: minutes(tenth * 10),
        })
        .collect()
}

/// 11 of 20 nodes (55 % of 400 hosts) lose the server for 20 minutes, then come back.
pub fn partition_half_the_hosts(seed: u64) -> Result<Run, Violation> {
    let fleet = FleetSpec::steady("web", 20, 20);
    let cut: Vec<String> = fleet.node_names().into_iter().take(11).collect();
    World::new("partition_half_the_hosts", seed)
        .fleet(fleet)
        .resolver(Duration::from_secs(1))
        .at(minutes(5), Fault::Partition(cut.clone()))
        .at(minutes(25), Fault::Repair(cut))
        .run_for(minutes(35))
}

fn partition_expectations() -> Vec<Expectation> {
    vec![
        Expectation::NoAlerts { at: minutes(4) },
        // Offline from ~7.5 min; ManyHostsOffline's 15 min `for` has not elapsed at 20 min.
        Expectation::Silent {
            alert: "ManyHostsOffline",
            at: minutes(20),
        },
        Expectation::Firing {
            alert: "ManyHostsOffline",
            at: minutes(24),
        },
        Expectation::Silent {
            alert: "ManyHostsOffline",
            at: minutes(34),
        },
        Expectation::Silent {
            alert: "NoActiveHosts",
            at: minutes(24),
        },
    ]
}

/// The whole fleet loses the server for 5 minutes: every host goes offline, then returns.
pub fn fleet_loses_the_server(seed: u64) -> Result<Run, Violation> {
    let fleet = FleetSpec::steady("web", 10, 20);
    let all = fleet.node_names();
    World::new("fleet_loses_the_server", seed)
        .fleet(fleet)
        .at(minutes(5), Fault::Partition(all.clone()))
        .at(minutes(10), Fault::Repair(all))
        .run_for(minutes(20))
}

fn fleet_loses_the_server_expectations() -> Vec<Expectation> {
    vec![
        Expectation::NoAlerts { at: minutes(4) },
        // Everyone offline from ~7.5 min; NoActiveHosts fires after its 2 min `for`.
        Expectation::Firing {
            alert: "NoActiveHosts",
            at: minutes(10),
        },
        Expectation::Silent {
            alert: "NoActiveHosts",
            at: minutes(19),
        },
    ]
}

/// The server is killed during the initial registration burst and restarted 30 s later.
pub fn server_crashes_mid_burst(seed: u64) -> Result<Run, Violation> {
    let mut fleet = FleetSpec::steady("web", 10, 40);
    fleet.interval = Duration::from_secs(30);
    World::new("server_crashes_mid_burst", seed)
        .fleet(fleet)
        .resolver(Duration::from_millis(500))
        .at(Duration::from_secs(15), Fault::CrashServer)
        .at(Duration::from_secs(45), Fault::RestartServer)
        .run_for(minutes(15))
}

fn server_crash_expectations() -> Vec<Expectation> {
    vec![
        // The scrape fails for 30 s: shorter than PrismServerDown's `for`.
        Expectation::Silent {
            alert: "PrismServerDown",
            at: Duration::from_secs(60),
        },
        Expectation::NoAlerts { at: minutes(14) },
    ]
}

/// Hosts that heartbeat for 6 minutes, then vanish for 4, over a lossy, slow network.
pub fn flapping_hosts(seed: u64) -> Result<Run, Violation> {
    let mut flappers = FleetSpec::steady("flap", 4, 25);
    flappers.flapping = Some((minutes(6), minutes(4)));
    World::new("flapping_hosts", seed)
        .fleet(FleetSpec::steady("web", 4, 25))
        .resolver(Duration::from_secs(1))
        .fleet(flappers)
        .at(minutes(10), Fault::MaxLatency(Duration::from_millis(400)))
        .at(minutes(20), Fault::LinkFailures(0.001))
        .at(minutes(25), Fault::LinkFailures(0.0))
        .run_for(minutes(40))
}

fn flapping_expectations() -> Vec<Expectation> {
    // Half the hosts are offline at most 4 minutes at a time: never 15 minutes in a row.
    vec![Expectation::Silent {
        alert: "ManyHostsOffline",
        at: minutes(39),
    }]
}

/// One frame in five is malformed JSON: HighErrorRate fires.
pub fn invalid_traffic(seed: u64) -> Result<Run, Violation> {
    let mut noisy = FleetSpec::steady("web", 10, 30);
    noisy.interval = Duration::from_secs(10);
    noisy.invalid_ratio = 0.2;
    World::new("invalid_traffic", seed)
        .fleet(noisy)
        .run_for(minutes(15))
}

fn invalid_traffic_expectations() -> Vec<Expectation> {
    vec![
        Expectation::Silent {
            alert: "HighErrorRate",
            at: minutes(1),
        },
        Expectation::Firing {
            alert: "HighErrorRate",
            at: minutes(12),
        },
    ]
}

/// 950 persistent connections on top of a small fleet, held for 20 minutes.
pub fn connection_storm(seed: u64) -> Result<Run, Violation> {
    let mut storm = FleetSpec::steady("storm", 5, 190);
    storm.mode = ClientMode::Persistent;
    storm.interval = Duration::from_secs(20);
    storm.active = minutes(2)..minutes(22);
    World::new("connection_storm", seed)
        .fleet(FleetSpec::steady("web", 2, 20))
        .fleet(storm)
        .run_for(minutes(25))
}

fn connection_storm_expectations() -> Vec<Expectation> {
    vec![
        Expectation::Silent {
            alert: "HighTCPConnectionCount",
            at: minutes(10),
        },
        Expectation::Firing {
            alert: "HighTCPConnectionCount",
            at: minutes(21),
        },
    ]
}

/// 200 hosts over 6 quiet hours with a slow heartbeat: long simulated time, nothing to alert.
pub fn quiet_day(seed: u64) -> Result<Run, Violation> {
    let mut fleet = FleetSpec::steady("db", 4, 50);
    fleet.interval = Duration::from_secs(120);
    World::new("quiet_day", seed)
        .configure(|config| config.heartbeat.interval = 120)
        .fleet(fleet)
        .run_for(minutes(360))
}

fn quiet_day_expectations() -> Vec<Expectation> {
    vec![
        Expectation::NoAlerts { at: minutes(180) },
        Expectation::NoAlerts { at: minutes(359) },
    ]
}
