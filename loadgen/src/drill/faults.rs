//! The fault mix that should provoke each alert, built from the ordinary workloads: malformed
//! frames for HighErrorRate, held connections for HighTCPConnectionCount, a fleet that stops
//! heartbeating for ManyHostsOffline.

use std::time::Duration;

use super::DrillArgs;
use super::rule::RuleInfo;
use crate::LoadArgs;
use crate::heartbeat::HeartbeatArgs;
use crate::progress::Progress;
use crate::runner::{self, Plan, RunOptions, Workload};
use crate::schedule::RateProfile;
use crate::target::{Resolve, Spread, TargetSpec};

/// Rule threshold of HighTCPConnectionCount when the expression has none to read.
const DEFAULT_CONNECTION_THRESHOLD: f64 = 900.0;
/// Share of the ManyHostsOffline fleet that stops heartbeating.
const OFFLINE_SHARE: f64 = 0.8;

/// What the drill sends to provoke one alert.
#[derive(Debug, Clone)]
pub struct FaultMix {
    /// The mix in words, for the plan and the report.
    pub description: String,
    /// How long the faults need before the rule's expression can hold at all (the offline
    /// deadline for ManyHostsOffline, else zero).
    pub delay: Duration,
    kind: Kind,
    targets: Vec<TargetSpec>,
    overrides: Vec<Resolve>,
    token: Option<String>,
    prefix: String,
    rate: f64,
}

#[derive(Debug, Clone)]
enum Kind {
    InvalidFrames {
        ratio: f64,
    },
    HeldConnections {
        count: u32,
    },
    HostsOffline {
        fleet: u64,
        online: u64,
        interval: Duration,
    },
}

impl FaultMix {
    /// The mix for `args.alert`, checked against the rule's threshold.
    pub fn for_alert(
        args: &DrillArgs,
        rule: &RuleInfo,
        overrides: &[Resolve],
    ) -> anyhow::Result<Self> {
        let (kind, description, delay) = match args.alert.as_str() {
            "HighErrorRate" => {
                // A threshold below 1 is the error ratio the faults must exceed.
                if let Some(threshold) = rule.threshold.filter(|threshold| *threshold < 1.0) {
                    anyhow::ensure!(
                        args.fault_ratio > threshold,
                        "--fault-ratio {} does not exceed the rule's threshold {threshold}",
                        args.fault_ratio
                    );
                }
                (
                    Kind::InvalidFrames {
                        ratio: args.fault_ratio,
                    },
                    format!(
                        "registrations at {}/s, {} % of them malformed frames (rule threshold {})",
                        args.fault_rate,
                        args.fault_ratio * 100.0,
                        shown(rule.threshold)
                    ),
                    Duration::ZERO,
                )
            }
            "HighTCPConnectionCount" => {
                let threshold = rule.threshold.unwrap_or(DEFAULT_CONNECTION_THRESHOLD);
                let count = match args.connections {
                    Some(count) => count,
                    None => (threshold * 1.05).ceil() as u32,
                };
                anyhow::ensure!(
                    f64::from(count) > threshold,
                    "--connections {count} does not exceed the rule's threshold {threshold}"
                );
                (
                    Kind::HeldConnections { count },
                    format!(
                        "{count} idle registration connections held open (rule threshold {threshold}; \
                         the server's max_connections must be higher)"
                    ),
                    Duration::ZERO,
                )
            }
            "ManyHostsOffline" => {
                let online = ((1.0 - OFFLINE_SHARE) * args.hosts as f64).floor() as u64;
                // Online hosts heartbeat three times per offline deadline.
                let interval = args.offline_after / 3;
                (
                    Kind::HostsOffline {
                        fleet: args.hosts,
                        online,
                        interval,
                    },
                    format!(
                        "{} hosts register, then {} stop heartbeating and go offline after {:?}; \
                         the fleet must outnumber the hosts already registered",
                        args.hosts,
                        args.hosts - online,
                        args.offline_after
                    ),
                    args.offline_after,
                )
            }
            "HighResponseTime" => anyhow::bail!(
                "HighResponseTime cannot be provoked from outside: it watches the server's own \
                 processing time (p95 above 5 s), which client traffic at a bounded rate does \
                 not raise; drill it with a slowed database or CPU on staging instead"
            ),
            other => anyhow::bail!(
                "no fault mix provokes {other}; drills exist for HighErrorRate, \
                 HighTCPConnectionCount and ManyHostsOffline"
            ),
        };
        Ok(Self {
            description,
            delay,
            kind,
            targets: args.targets.clone(),
            overrides: overrides.to_vec(),
            token: args.token.clone(),
            prefix: args.hostname_prefix.clone(),
            rate: args.fault_rate,
        })
    }

    fn heartbeat(&self, hosts: u64, rate: f64, duration: Duration, suffix: &str) -> HeartbeatArgs {
        HeartbeatArgs {
            targets: self.targets.clone(),
            spread: Spread::Modulo,
            seed: 1,
            hosts,
            host_offset: 0,
            hostname_prefix: format!("{}-{suffix}", self.prefix),
            token: self.token.clone(),
            token_file: None,
            one_shot: false,
            invalid_ratio: 0.0,
            bad_token_ratio: 0.0,
            slow_clients: 0,
            connections: 0,
            load: LoadArgs {
                rate,
                duration,
                max_rate: rate.max(1.0),
                max_duration: duration,
                timeout: Duration::from_secs(2),
            },
            register_before_start: false,
        }
    }

    /// The fault traffic, `duration` long at most (the drill stops it earlier).
    pub fn plans(&self, duration: Duration) -> anyhow::Result<Vec<Plan>> {
        let args = match self.kind {
            Kind::InvalidFrames { ratio } => HeartbeatArgs {
                invalid_ratio: ratio,
                ..self.heartbeat(10, self.rate, duration, "errors")
            },
            Kind::HeldConnections { count } => HeartbeatArgs {
                connections: count,
                ..self.heartbeat(1, 1.0, duration, "connections")
            },
            Kind::HostsOffline {
                online, interval, ..
            } => {
                let rate = online.max(1) as f64 / interval.as_secs_f64().max(1.0);
                HeartbeatArgs {
                    one_shot: true,
                    ..self.heartbeat(online.max(1), rate, duration, "fleet")
                }
            }
        };
        let profile = RateProfile::constant(args.load.rate, duration);
        Plan::for_workload(
            "drill-faults".to_owned(),
            Workload::Heartbeat(args),
            profile,
            &self.overrides,
        )
    }

    async fn whole_fleet_once(&self, fleet: u64) -> anyhow::Result<()> {
        let args = HeartbeatArgs {
            one_shot: true,
            ..self.heartbeat(fleet, fleet as f64, Duration::from_secs(1), "fleet")
        };
        let profile = RateProfile::constant(args.load.rate, Duration::from_secs(1));
        let plans = Plan::for_workload(
            "drill-fleet".to_owned(),
            Workload::Heartbeat(args),
            profile,
            &self.overrides,
        )?;
        let finished = runner::run(plans, &mut Progress::new(false), RunOptions::default()).await?;
        let ok: u64 = finished.iter().map(|run| run.totals.ok).sum();
        anyhow::ensure!(
            ok == fleet,
            "only {ok} of the {fleet} fleet hosts could register; is the server's rate limit lower?"
        );
        Ok(())
    }

    /// What must happen before the faults (ManyHostsOffline: the whole fleet registers).
    pub async fn prepare(&self) -> anyhow::Result<()> {
        match self.kind {
            Kind::HostsOffline { fleet, .. } => self.whole_fleet_once(fleet).await,
            _ => Ok(()),
        }
    }

    /// What undoes the faults (ManyHostsOffline: the whole fleet heartbeats again).
    pub async fn recover(&self) -> anyhow::Result<()> {
        match self.kind {
            Kind::HostsOffline { fleet, .. } => self.whole_fleet_once(fleet).await,
            _ => Ok(()),
        }
    }
}

fn shown(threshold: Option<f64>) -> String {
    threshold.map_or_else(|| "unknown".to_owned(), |value| value.to_string())
}
