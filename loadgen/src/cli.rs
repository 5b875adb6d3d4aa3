//! The command line: one subcommand per workload, `run` for scenario files, `cross-node`,
//! `merge` and `drill`, and the options every run shares (reports, thresholds, threads,
//! name overrides, live metrics, warm-up).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::api::ApiArgs;
use crate::crossnode::CrossNodeArgs;
use crate::dns::DnsArgs;
use crate::drill::DrillArgs;
use crate::heartbeat::HeartbeatArgs;
use crate::runner::{Plan, Workload};
use crate::scenario;
use crate::target::Resolve;
use crate::threshold::Threshold;

/// Exit code of a run in which no request succeeded (and not every one was a deliberate
/// fault): it proved nothing, even without thresholds.
pub const EXIT_NOTHING_SUCCEEDED: u8 = 3;

const EXIT_CODES: &str = "Exit codes:
  0   the run finished and every threshold held (drill: every phase held)
  1   an error: a target that does not resolve, an unreadable file, a refused safety cap…
  2   usage error: an unknown option, a malformed value or threshold (nothing was sent)
  3   no request succeeded (and not all were deliberate faults)
  99  at least one threshold failed (drill: a phase did not hold)";

/// Open-loop load generator for Prism: constant-rate registrations, DNS queries and REST API
/// requests, latency measured from the intended send time, HDR histograms.
///
/// Traffic only ever goes to the targets given (default 127.0.0.1), each name resolved once
/// at start. Rate and duration are bounded by --max-rate and --max-duration unless those are
/// raised explicitly.
#[derive(Parser, Debug)]
#[command(name = "prism-loadgen", version, about, long_about, after_help = EXIT_CODES)]
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
    /// Send traffic for NAME:PORT to ADDR without a lookup (as curl's --resolve); repeatable.
    #[arg(long = "resolve", global = true, value_name = "NAME:PORT:ADDR")]
    pub resolve: Vec<Resolve>,
    /// Serve the run's own Prometheus metrics on ADDR (GET /metrics) while it runs.
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Keep serving --metrics-listen this long after the run, so a last scrape sees the
    /// final counts (set it to the scrape interval).
    #[arg(long, global = true, value_parser = crate::parse_duration)]
    pub metrics_linger: Option<Duration>,
    /// Run the workloads this long first, unmeasured (fresh registrations, warm caches),
    /// then start the measured run.
    #[arg(long, global = true, value_parser = crate::parse_duration)]
    pub warmup: Option<Duration>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulated hosts registering and heartbeating over the registration protocol.
    Heartbeat(HeartbeatArgs),
    /// A/AAAA queries with a hit/miss mix over UDP or TCP.
    Dns(DnsArgs),
    /// HTTP(S) GETs on REST API endpoints.
    Api(ApiArgs),
    /// Several workloads at once, with stages, from a TOML scenario file.
    Run {
        /// The scenario file (format in loadgen/README.md).
        scenario: PathBuf,
    },
    /// Cluster visibility: register a new name on one node, query DNS on another until it
    /// answers; the latency is acknowledgement → first answer.
    CrossNode(CrossNodeArgs),
    /// Merge the JSON reports of generators that ran at the same time into one report
    /// (histograms merged exactly, thresholds re-evaluated).
    Merge {
        /// The JSON reports.
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
    },
    /// Provoke an alert with its fault mix and prove that it goes pending, fires, reaches
    /// Alertmanager and resolves, each within bounds derived from the rule.
    Drill(DrillArgs),
}

impl Cli {
    /// Parses `args` as the command line after the program name, for code that drives
    /// loadgen in-process (the live alert tests run drills this way).
    pub fn from_args<I, T>(args: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let program = std::iter::once(std::ffi::OsString::from("prism-loadgen"));
        Self::try_parse_from(program.chain(args.into_iter().map(Into::into)))
            .map_err(|err| err.to_string())
    }

    /// The workloads to run and the thresholds to check (scenario thresholds first); targets
    /// are resolved here, once.
    pub fn plans(&self) -> anyhow::Result<(Vec<Plan>, Vec<Threshold>)> {
        let (plans, mut thresholds) = match &self.command {
            Command::Heartbeat(args) => {
                (self.single(Workload::Heartbeat(args.clone()))?, Vec::new())
            }
            Command::Dns(args) => (self.single(Workload::Dns(args.clone()))?, Vec::new()),
            Command::Api(args) => (self.single(Workload::Api(args.clone()))?, Vec::new()),
            Command::CrossNode(args) => {
                (self.single(Workload::CrossNode(args.clone()))?, Vec::new())
            }
            Command::Run { scenario } => {
                let scenario = scenario::load(scenario, &self.resolve)?;
                (scenario.plans, scenario.thresholds)
            }
            Command::Merge { .. } | Command::Drill(_) => {
                anyhow::bail!("merge and drill run no workload of their own")
            }
        };
        thresholds.extend(self.thresholds.iter().cloned());
        Ok((plans, thresholds))
    }

    fn single(&self, workload: Workload) -> anyhow::Result<Vec<Plan>> {
        let profile = workload.load().profile(None)?;
        Plan::for_workload(workload.kind().to_owned(), workload, profile, &self.resolve)
    }
}
