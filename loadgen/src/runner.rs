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
use crate::dns::DnsArgs;
use crate::driver::{self, Share};
use crate::heartbeat::{HeartbeatArgs, HostClient};
use crate::held::{self, Behaviour, HeldCount};
use crate::progress::Progress;
use crate::recorder::{Recorder, Totals};
use crate::schedule::RateProfile;

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
}

impl Workload {
    /// The kind's report name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Heartbeat(_) => "heartbeat",
            Self::Dns(_) => "dns",
            Self::Api(_) => "api",
        }
    }

    /// Where the traffic goes.
    pub fn target(&self) -> SocketAddr {
        match self {
            Self::Heartbeat(args) => args.target,
            Self::Dns(args) => args.target,
            Self::Api(args) => args.target,
        }
    }

    /// Rate, duration and caps.
    pub fn load(&self) -> &LoadArgs {
        match self {
            Self::Heartbeat(args) => &args.load,
            Self::Dns(args) => &args.load,
            Self::Api(args) => &args.load,
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

struct Running {
    plan: Plan,
    recorder: Arc<Recorder>,
    held: Vec<(&'static str, Arc<HeldCount>)>,
}

/// Runs every plan at once and returns what each recorded.
pub async fn run(plans: Vec<Plan>, progress: &mut Progress) -> anyhow::Result<Vec<Finished>> {
    raise_file_limit();
    let mut host_clients = Vec::with_capacity(plans.len());
    for plan in &plans {
        host_clients.push(match &plan.workload {
            Workload::Heartbeat(args) => connected_hosts(args).await?,
            _ => Vec::new(),
        });
    }
    let start = Instant::now() + START_DELAY;
    let mut workers = JoinSet::new();
    let mut holders = JoinSet::new();
    let mut running = Vec::with_capacity(plans.len());
    let mut stop_at = start;
    for (plan, hosts) in plans.into_iter().zip(host_clients) {
        let recorder = Arc::new(Recorder::new());
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
                        let held = held::spawn(&mut holders, args.target, count, behaviour, end);
                        held_counts.push((label, held));
                    }
                }
            }
            Workload::Dns(args) => {
                args.validate()?;
                for worker in 0..args.concurrency {
                    let recorder = Arc::clone(&recorder);
                    let share = share(worker, args.concurrency);
                    workers.spawn(driver::drive(args.client(), share, recorder));
                }
            }
            Workload::Api(args) => {
                let http = args.http_client()?;
                for worker in 0..args.concurrency {
                    let recorder = Arc::clone(&recorder);
                    let share = share(worker, args.concurrency);
                    workers.spawn(driver::drive(args.client(http.clone()), share, recorder));
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
async fn connected_hosts(args: &HeartbeatArgs) -> anyhow::Result<Vec<HostClient>> {
    let tokens = args.tokens()?;
    let mut connecting = JoinSet::new();
    for host in 0..args.hosts {
        let mut client = args.host_client(host, &tokens);
        connecting.spawn(async move {
            client.preconnect().await;
            (host, client)
        });
    }
    let mut hosts = Vec::with_capacity(connecting.len());
    while let Some(joined) = connecting.join_next().await {
        hosts.push(joined?);
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
            (run.plan.name.as_str(), target, run.recorder.roll(elapsed))
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
