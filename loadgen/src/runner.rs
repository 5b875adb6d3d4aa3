//! Runs one or more workloads at once: spawns their workers and held connections, ticks the
//! per-second progress, and collects what each recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::LoadArgs;
use crate::api::ApiArgs;
use crate::crossnode::CrossNodeArgs;
use crate::dns::DnsArgs;
use crate::driver::{self, Share};
use crate::exporter::Exporter;
use crate::heartbeat::{HeartbeatArgs, HostClient};
use crate::held::{self, Behaviour, HeldCount};
use crate::progress::Progress;
use crate::recorder::{Recorder, Totals};
use crate::schedule::RateProfile;
use crate::target::{self, Resolve, Target, TargetSpec};

/// Setup time between preparing the workers and the first intended send.
const START_DELAY: Duration = Duration::from_millis(50);
/// Extra time, beyond the profile and one request timeout, before stragglers are aborted.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// One kind of workload with its options.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Registrations/heartbeats.
    Heartbeat(HeartbeatArgs),
    /// DNS queries.
    Dns(DnsArgs),
    /// REST API requests.
    Api(ApiArgs),
    /// Register on one node, query DNS on another until the name answers.
    CrossNode(CrossNodeArgs),
}

impl Workload {
    /// The kind's report name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Heartbeat(_) => "heartbeat",
            Self::Dns(_) => "dns",
            Self::Api(_) => "api",
            Self::CrossNode(_) => "cross-node",
        }
    }

    /// Where the traffic goes, as given.
    pub fn target_specs(&self) -> Vec<TargetSpec> {
        match self {
            Self::Heartbeat(args) => args.targets.clone(),
            Self::Dns(args) => args.targets.clone(),
            Self::Api(args) => args.targets.clone(),
            Self::CrossNode(args) => args.dns_targets.clone(),
        }
    }

    /// Rate, duration and caps.
    pub fn load(&self) -> &LoadArgs {
        match self {
            Self::Heartbeat(args) => &args.load,
            Self::Dns(args) => &args.load,
            Self::Api(args) => &args.load,
            Self::CrossNode(args) => &args.load,
        }
    }
}

/// A workload ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Name in progress lines and reports.
    pub name: String,
    /// What to send.
    pub workload: Workload,
    /// When to send it.
    pub profile: RateProfile,
    /// Where to send it, resolved at start.
    pub targets: Vec<Target>,
}

impl Plan {
    /// The plans of one workload: its targets resolved once (through `overrides` first), and
    /// for a DNS workload with `--keep-alive` the heartbeat plan that keeps its names online.
    pub fn for_workload(
        name: String,
        mut workload: Workload,
        profile: RateProfile,
        overrides: &[Resolve],
    ) -> anyhow::Result<Vec<Plan>> {
        let targets = target::resolve_all(&workload.target_specs(), overrides)?;
        if !matches!(workload, Workload::Api(_)) {
            anyhow::ensure!(
                targets.iter().all(|target| target.spec.scheme.is_none()),
                "{name}: http:// and https:// targets are for the api workload only"
            );
        }
        if let Workload::CrossNode(args) = &mut workload {
            args.register_resolved = target::resolve_all(&args.register_targets, overrides)?;
        }
        let mut plans = Vec::with_capacity(2);
        if let Workload::Dns(args) = &workload {
            args.validate()?;
            if let Some(keep_alive) = args.keep_alive_workload(profile.duration()) {
                let keep_profile = keep_alive.load.profile(None)?;
                plans.extend(Plan::for_workload(
                    format!("{name}-keepalive"),
                    Workload::Heartbeat(keep_alive),
                    keep_profile,
                    overrides,
                )?);
            }
        }
        plans.insert(
            0,
            Plan {
                name,
                workload,
                profile,
                targets,
            },
        );
        Ok(plans)
    }

    /// The resolved addresses, in target order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.targets.iter().map(|target| target.addr).collect()
    }

    /// Target labels as written, in target order.
    pub fn labels(&self) -> Vec<String> {
        self.targets.iter().map(Target::label).collect()
    }
}

/// What one workload did.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The plan it ran.
    pub plan: Plan,
    /// Everything recorded.
    pub totals: Totals,
    /// Peak of deliberately held connections, by behaviour (`idle`, `slow`).
    pub held: BTreeMap<&'static str, u64>,
}

/// Extras of a run beyond its plans.
#[derive(Default)]
pub struct RunOptions {
    /// Live Prometheus metrics to feed (`--metrics-listen`).
    pub exporter: Option<Exporter>,
    /// Ends the run early when it resolves (the drill stops its faults this way).
    pub stop: Option<tokio::sync::oneshot::Receiver<()>>,
}

struct Running {
    plan: Plan,
    recorder: Arc<Recorder>,
    held: Vec<(&'static str, Arc<HeldCount>)>,
}

/// Runs every plan at once and returns what each recorded.
pub async fn run(
    plans: Vec<Plan>,
    progress: &mut Progress,
    options: RunOptions,
) -> anyhow::Result<Vec<Finished>> {
    raise_file_limit();
    let mut host_clients = Vec::with_capacity(plans.len());
    for plan in &plans {
        host_clients.push(match &plan.workload {
            Workload::Heartbeat(args) => connected_hosts(args, &plan.addrs()).await?,
            _ => Vec::new(),
        });
    }
    let mut stop = options.stop;
    let start = Instant::now() + START_DELAY;
    let mut workers = JoinSet::new();
    let mut holders = JoinSet::new();
    let mut running = Vec::with_capacity(plans.len());
    let mut stop_at = start;
    for (plan, hosts) in plans.into_iter().zip(host_clients) {
        let live = options
            .exporter
            .as_ref()
            .map(|exporter| exporter.workload(&plan.name, &plan.labels()));
        let recorder = Arc::new(Recorder::new(plan.targets.len(), live));
        let addrs = plan.addrs();
        let profile = Arc::new(plan.profile.clone());
        let end = start + profile.duration();
        stop_at = stop_at.max(end + plan.workload.load().timeout + STOP_MARGIN);
        let share = |worker: u64, workers: u64| Share {
            profile: Arc::clone(&profile),
            start,
            worker,
            workers,
        };
        let mut held_counts = Vec::new();
        match &plan.workload {
            Workload::Heartbeat(args) => {
                for (host, client) in (0..args.hosts).zip(hosts) {
                    let recorder = Arc::clone(&recorder);
                    workers.spawn(driver::drive(client, share(host, args.hosts), recorder));
                }
                for (count, behaviour, label) in [
                    (args.connections, Behaviour::Idle, "idle"),
                    (args.slow_clients, Behaviour::StallMidFrame, "slow"),
                ] {
                    if count > 0 {
                        let held = held::spawn(&mut holders, &addrs, count, behaviour, end);
                        held_counts.push((label, held));
                    }
                }
            }
            Workload::Dns(args) => {
                for worker in 0..args.concurrency {
                    let recorder = Arc::clone(&recorder);
                    let share = share(worker, args.concurrency);
                    workers.spawn(driver::drive(args.client(&addrs), share, recorder));
                }
            }
            Workload::Api(args) => {
                let http = args.http_client(&plan.targets)?;
                for worker in 0..args.concurrency {
                    let recorder = Arc::clone(&recorder);
                    let share = share(worker, args.concurrency);
                    let client = args.client(http.clone(), &plan.targets);
                    workers.spawn(driver::drive(client, share, recorder));
                }
            }
            Workload::CrossNode(args) => {
                for worker in 0..args.concurrency {
                    let recorder = Arc::clone(&recorder);
                    let share = share(worker, args.concurrency);
                    let client = args.client(worker, &addrs);
                    workers.spawn(driver::drive(client, share, recorder));
                }
            }
        }
        running.push(Running {
            plan,
            recorder,
            held: held_counts,
        });
    }

    let mut ticker =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last_roll = start;
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Err(err)) if err.is_panic() => anyhow::bail!("a load worker panicked: {err}"),
                Some(_) => {}
            },
            now = ticker.tick() => {
                roll_all(&running, start, now, progress);
                last_roll = now;
            }
            () = tokio::time::sleep_until(stop_at), if !aborted => {
                // Every request has its own timeout, so this only guards against a stuck task.
                workers.abort_all();
                aborted = true;
            }
            _ = async { if let Some(stop) = stop.as_mut() { let _ = stop.await; } },
                if stop.is_some() && !aborted => {
                workers.abort_all();
                holders.abort_all();
                aborted = true;
            }
        }
    }
    let now = Instant::now();
    if now.saturating_duration_since(last_roll) > Duration::from_millis(50) {
        roll_all(&running, start, now, progress);
    }
    progress.finish();
    holders.abort_all();
    while holders.join_next().await.is_some() {}

    Ok(running
        .into_iter()
        .map(|run| Finished {
            totals: run.recorder.totals(),
            held: run
                .held
                .iter()
                .map(|(label, count)| (*label, count.peak()))
                .collect(),
            plan: run.plan,
        })
        .collect())
}

/// The simulated hosts of a heartbeat workload, their persistent connections already open
/// (all at once, before the clock starts, as wrk does).
async fn connected_hosts(
    args: &HeartbeatArgs,
    targets: &[SocketAddr],
) -> anyhow::Result<Vec<HostClient>> {
    let tokens = args.tokens()?;
    let register = args.register_before_start;
    let mut connecting = JoinSet::new();
    for host in 0..args.hosts {
        let mut client = args.host_client(host, &tokens, targets);
        connecting.spawn(async move {
            client.preconnect().await;
            let accepted = !register || client.register_once().await;
            (host, client, accepted)
        });
    }
    let mut hosts = Vec::with_capacity(connecting.len());
    let mut refused = 0u64;
    while let Some(joined) = connecting.join_next().await {
        let (host, client, accepted) = joined?;
        refused += u64::from(!accepted);
        hosts.push((host, client));
    }
    if refused > 0 {
        eprintln!(
            "prism-loadgen: {refused} of {} hosts could not register before the start",
            args.hosts
        );
    }
    hosts.sort_by_key(|(host, _)| *host);
    Ok(hosts.into_iter().map(|(_, client)| client).collect())
}

fn roll_all(running: &[Running], start: Instant, now: Instant, progress: &mut Progress) {
    let elapsed = now.saturating_duration_since(start).as_secs_f64();
    let lines: Vec<(&str, f64, crate::recorder::Second)> = running
        .iter()
        .map(|run| {
            let target = run.plan.profile.rate_at(elapsed - 0.5);
            (
                run.plan.name.as_str(),
                target,
                run.recorder.roll(elapsed, target),
            )
        })
        .collect();
    progress.tick(elapsed, &lines);
}

/// Many simulated hosts need many sockets: lift the soft descriptor limit to the hard one.
fn raise_file_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::increase_nofile_limit(hard);
    }
}
