//! The simulated world: one Prism server host, client fleets, scripted faults, continuous
//! invariant checks and a metrics timeline.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prism_server::config::AuthMode;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, serve};

use crate::adapters::{SimClock, SimListener, SimUdp};
use crate::fleet::{self, FleetSpec, REGISTRATION_PORT, SERVER};
use crate::invariants::{self, Tolerance};
use crate::ledger::Ledger;
use crate::resolver::{self, DNS_PORT, ResolverSetup};
use crate::seed::replay_command;
use crate::timeline::{SAMPLE_INTERVAL, Timeline};

/// Simulated wall time at the start of every run (2026-01-01T00:00:00Z).
const EPOCH_SECS: u64 = 1_767_225_600;
/// How late after its deadline a host may still be online (SPEC §4).
const OFFLINE_PRECISION: Duration = Duration::from_secs(1);
/// Pending connections and in-flight segments a simulated socket can hold.
const TCP_CAPACITY: usize = 4096;
/// How often invariants are checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A scripted change to the world.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Cut these nodes off from the server (messages are dropped).
    Partition(Vec<String>),
    /// Undo a partition.
    Repair(Vec<String>),
    /// Hold messages between these nodes and the server until released.
    Hold(Vec<String>),
    /// Deliver held messages again.
    Release(Vec<String>),
    /// Maximum message latency between every pair of hosts from now on.
    MaxLatency(Duration),
    /// Probability that a link fails on each step (messages on it are lost until it repairs).
    LinkFailures(f64),
    /// Kill the server process: durable state survives, the write-behind buffer does not.
    CrashServer,
    /// Start the server again on its durable state.
    RestartServer,
}

/// An invariant that failed, with everything needed to replay it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Scenario name.
    pub scenario: &'static str,
    /// Seed of the run.
    pub seed: u64,
    /// Simulated time of the failed check.
    pub at: Duration,
    /// What failed.
    pub breach: invariants::Breach,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant violated in scenario {} with seed {} at simulated {}: {}\nreplay: {}",
            self.scenario,
            self.seed,
            clock_text(self.at),
            self.breach,
            replay_command(self.scenario, self.seed)
        )
    }
}

impl std::error::Error for Violation {}

/// The result of a run.
#[derive(Debug)]
pub struct Run {
    /// Scenario name.
    pub scenario: &'static str,
    /// Seed of the run.
    pub seed: u64,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall time it took.
    pub wall: Duration,
    /// Metrics scraped every 15 simulated seconds.
    pub timeline: Timeline,
    /// Faults, first acknowledgements and crashes, in order.
    pub events: Vec<String>,
    /// DNS answers the resolver host compared with the registry.
    pub dns_answers_checked: u64,
}

/// Builds and runs one simulated world.
pub struct World {
    scenario: &'static str,
    seed: u64,
    config: Config,
    fleets: Vec<FleetSpec>,
    faults: Vec<(Duration, Fault)>,
    tick: Duration,
    latency: (Duration, Duration),
    /// Interval of the DNS resolver host's queries, if the world has one.
    resolver: Option<Duration>,
}

impl World {
    /// A world for `scenario` with `seed`: open auth, no rate limits (every fleet node would
    /// share a budget otherwise), 200 ms ticks and 1–20 ms message latency.
    pub fn new(scenario: &'static str, seed: u64) -> Self {
        let mut config = Config::default();
        config.auth.mode = AuthMode::Open;
        config.rate_limit.registrations_per_minute = 0;
        config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
        Self {
            scenario,
            seed,
            config,
            fleets: Vec::new(),
            faults: Vec::new(),
            tick: Duration::from_millis(200),
            latency: (Duration::from_millis(1), Duration::from_millis(20)),
            resolver: None,
        }
    }

    /// Adds a resolver host that asks the server's DNS for a random fleet host (or an unknown
    /// name) every `interval` and checks each answer against the registry.
    pub fn resolver(mut self, interval: Duration) -> Self {
        self.resolver = Some(interval);
        self
    }

    /// Changes the server configuration.
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Adds a fleet of client hosts.
    pub fn fleet(mut self, spec: FleetSpec) -> Self {
        self.fleets.push(spec);
        self
    }

    /// Applies `fault` at simulated time `at`.
    pub fn at(mut self, at: Duration, fault: Fault) -> Self {
        self.faults.push((at, fault));
        self
    }

    /// Runs for `duration` of simulated time, checking invariants every simulated second.
    pub fn run_for(mut self, duration: Duration) -> Result<Run, Violation> {
        let started = Instant::now();
        self.faults.sort_by_key(|(at, _)| *at);
        let mut sim = turmoil::Builder::new()
            .simulation_duration(duration + Duration::from_secs(60))
            .tick_duration(self.tick)
            .min_message_latency(self.latency.0)
            .max_message_latency(self.latency.1)
            .rng_seed(self.seed)
            // Room for connection storms: the default backlog is sized for small examples.
            .tcp_capacity(TCP_CAPACITY)
            .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
            .build();
        let store = MemoryStore::new();
        let running: Rc<RefCell<Option<Arc<Node>>>> = Rc::default();
        let ledger = Ledger::default();
        let config = self.config.clone();
        {
            let (store, running) = (store.clone(), Rc::clone(&running));
            sim.host(SERVER, move || {
                let (store, running, config) = (store.clone(), Rc::clone(&running), config.clone());
                async move {
                    let listener =
                        turmoil::net::TcpListener::bind(("0.0.0.0", REGISTRATION_PORT)).await?;
                    let dns = turmoil::net::UdpSocket::bind(("0.0.0.0", DNS_PORT)).await?;
                    let core = Node::start(
                        config,
                        Arc::new(store) as Arc<dyn Store>,
                        Arc::new(SimClock),
                        Metrics::new()?,
                    )
                    .await?;
                    *running.borrow_mut() = Some(Arc::clone(&core));
                    let listeners = Listeners {
                        registration: SimListener(listener),
                        dns_udp: vec![SimUdp(dns)],
                        dns_tcp: None,
                        api: None,
                        api_runtime: None,
                    };
                    serve(core, listeners, std::future::pending()).await;
                    Ok(())
                }
            });
        }
        for spec in &self.fleets {
            for index in 0..spec.nodes {
                let node =
                    fleet::run_node(spec.clone(), index, self.seed, ledger.clone(), duration);
                sim.client(spec.node_name(index), node);
            }
        }
        if let Some(interval) = self.resolver {
            let mut hostnames: Vec<String> = self
                .fleets
                .iter()
                .flat_map(|spec| {
                    (0..spec.nodes).flat_map(move |node| {
                        (0..spec.hosts_per_node)
                            .map(move |host| format!("{}-{node}-{host}", spec.name))
                    })
                })
                .collect();
            hostnames.extend((0..3).map(|n| format!("never-registered-{n}")));
            let setup = ResolverSetup {
                hostnames,
                server: Rc::clone(&running),
                ledger: ledger.clone(),
                seed: self.seed,
                end: duration,
            };
            sim.client("resolver", resolver::run(setup, interval));
        }

        let mut tolerance = Tolerance {
            offline_after: self.config.heartbeat.offline_after(),
            // SPEC §4: offline within 1 s of the deadline, whatever check_interval says.
            slack: OFFLINE_PRECISION + self.latency.1 + self.tick * 2,
        };
        let mut timeline = Timeline::default();
        let mut faults = self.faults.into_iter().peekable();
        let mut next_sample = Duration::ZERO;
        let mut next_check = CHECK_INTERVAL;
        let mut server_up = true;
        loop {
            let now = sim.elapsed();
            while let Some((_, fault)) = faults.next_if(|(at, _)| *at <= now) {
                ledger.log(now, format!("fault {fault:?}"));
                match &fault {
                    Fault::Partition(nodes) => {
                        nodes.iter().for_each(|n| sim.partition(SERVER, n.as_str()))
                    }
                    Fault::Repair(nodes) => {
                        nodes.iter().for_each(|n| sim.repair(SERVER, n.as_str()))
                    }
                    Fault::Hold(nodes) => nodes.iter().for_each(|n| sim.hold(SERVER, n.as_str())),
                    Fault::Release(nodes) => {
                        nodes.iter().for_each(|n| sim.release(SERVER, n.as_str()))
                    }
                    Fault::MaxLatency(max) => {
                        sim.set_max_message_latency(*max);
                        tolerance.slack += max.saturating_sub(self.latency.1);
                    }
                    Fault::LinkFailures(rate) => sim.set_fail_rate(*rate),
                    Fault::CrashServer => {
                        sim.crash(SERVER);
                        running.borrow_mut().take();
                        server_up = false;
                        // Heartbeat freshness written behind may be lost: allow for it.
                        tolerance.slack +=
                            Duration::from_millis(self.config.database.write_behind_ms);
                    }
                    Fault::RestartServer => {
                        sim.bounce(SERVER);
                        server_up = true;
                    }
                }
            }
            let core = running.borrow().clone().filter(|_| server_up);
            if now >= next_sample {
                timeline.push(core.as_ref().and_then(|core| core.metrics().encode().ok()));
                next_sample += SAMPLE_INTERVAL;
            }
            if now >= next_check {
                let breach = match (&core, ledger.take_breach()) {
                    (_, Some(breach)) => Err(breach),
                    (Some(core), None) => invariants::check(now, core, &ledger, tolerance),
                    (None, None) => Ok(()),
                };
                breach.map_err(|breach| Violation {
                    scenario: self.scenario,
                    seed: self.seed,
                    at: now,
                    breach,
                })?;
                next_check += CHECK_INTERVAL;
            }
            if now >= duration {
                break;
            }
            if let Err(err) = sim.step() {
                return Err(Violation {
                    scenario: self.scenario,
                    seed: self.seed,
                    at: now,
                    breach: invariants::Breach {
                        host: "simulation".into(),
                        message: format!("a simulated host failed: {err}"),
                    },
                });
            }
        }
        Ok(Run {
            scenario: self.scenario,
            seed: self.seed,
            simulated: duration,
            wall: started.elapsed(),
            timeline,
            events: ledger.events(),
            dns_answers_checked: ledger.dns_answers_checked(),
        })
    }
}

/// `h:mm:ss.s` for messages.
pub fn clock_text(at: Duration) -> String {
    let secs = at.as_secs_f64();
    let whole = at.as_secs();
    format!(
        "{}:{:02}:{:04.1}",
        whole / 3600,
        (whole / 60) % 60,
        secs % 60.0
    )
}
