//! The command line: one subcommand per workload, `run` for scenario files, and the options
//! every run shares (reports, thresholds, threads).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api::ApiArgs;
use crate::dns::DnsArgs;
use crate::heartbeat::HeartbeatArgs;
use crate::runner::{Plan, Workload};
use crate::scenario;
use crate::threshold::Threshold;

/// Open-loop load generator for Prism: constant-rate registrations, DNS queries and REST API
/// requests, latency measured from the intended send time, HDR histograms.
///
/// Traffic only ever goes to the addresses given (default 127.0.0.1). Rate and duration are
/// bounded by --max-rate and --max-duration unless those are raised explicitly.
#[derive(Parser, Debug)]
#[command(name = "prism-loadgen", version, about, long_about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Write the JSON report (schema in loadgen/README.md) to this file.
    #[arg(long, global = true, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts to this file.
    #[arg(long, global = true, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Pass/fail condition such as 'p99<5ms' or 'errors<1%'; repeatable. The run exits with
    /// code 99 when one fails.
    #[arg(long = "threshold", global = true, value_name = "EXPR")]
    pub thresholds: Vec<Threshold>,
    /// Generator threads; 1 (the default) runs single-threaded, which sustains the highest
    /// rate per core.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// No per-second progress lines.
    #[arg(long, global = true)]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulated hosts registering and heartbeating over the registration protocol.
    Heartbeat(HeartbeatArgs),
    /// A/AAAA queries with a hit/miss mix over UDP or TCP.
    Dns(DnsArgs),
    /// HTTP GETs on REST API endpoints.
    Api(ApiArgs),
    /// Several workloads at once, with stages, from a TOML scenario file.
    Run {
        /// The scenario file (format in loadgen/README.md).
        scenario: PathBuf,
    },
}

impl Cli {
    /// The workloads to run and the thresholds to check (scenario thresholds first).
    pub fn plans(&self) -> anyhow::Result<(Vec<Plan>, Vec<Threshold>)> {
        let (plans, mut thresholds) = match &self.command {
            Command::Heartbeat(args) => (single(Workload::Heartbeat(args.clone()))?, Vec::new()),
            Command::Dns(args) => (single(Workload::Dns(args.clone()))?, Vec::new()),
            Command::Api(args) => (single(Workload::Api(args.clone()))?, Vec::new()),
            Command::Run { scenario } => {
                let scenario = scenario::load(scenario)?;
                (scenario.plans, scenario.thresholds)
            }
        };
        thresholds.extend(self.thresholds.iter().cloned());
        Ok((plans, thresholds))
    }
}

fn single(workload: Workload) -> anyhow::Result<Vec<Plan>> {
    let profile = workload.load().profile(None)?;
    Ok(vec![Plan {
        name: workload.kind().to_owned(),
        workload,
        profile,
    }])
}
