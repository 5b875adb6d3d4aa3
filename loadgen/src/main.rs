//! The `prism-loadgen` command: parses the command line, runs the workloads (or merges
//! reports, or runs a drill), prints the summary, writes the reports and turns thresholds
//! into the exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Parser;
use prism_loadgen::cli::{Cli, Command, EXIT_NOTHING_SUCCEEDED};
use prism_loadgen::exporter::Exporter;
use prism_loadgen::progress::Progress;
use prism_loadgen::report::Report;
use prism_loadgen::runner::{Plan, RunOptions, Workload};
use prism_loadgen::schedule::RateProfile;
use prism_loadgen::{drill, html, merge, runner, threshold};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Merge { reports } => merge_reports(&cli, reports),
        Command::Drill(args) => {
            runtime(&cli).and_then(|runtime| runtime.block_on(run_drill(&cli, args)))
        }
        _ => generate(&cli),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(cli: &Cli) -> anyhow::Result<tokio::runtime::Runtime> {
    if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(cli.threads))
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")
}

fn command_line() -> Vec<String> {
    std::env::args().collect()
}

fn announce(plans: &[Plan]) {
    for plan in plans {
        eprintln!(
            "prism-loadgen: {} ({}) → {} at {:.1}/s peak for {}",
            plan.name,
            plan.workload.kind(),
            plan.labels().join(", "),
            plan.profile.peak_rate(),
            humantime::format_duration(plan.profile.duration())
        );
        for target in plan.targets.iter().filter(|target| target.is_name()) {
            let all: Vec<String> = target.resolved.iter().map(ToString::to_string).collect();
            eprintln!(
                "prism-loadgen:   {} resolved to {}; traffic goes to {}",
                target.label(),
                all.join(", "),
                target.addr
            );
        }
        if let Workload::Api(args) = &plan.workload
            && args.insecure
        {
            eprintln!("{}", prism_loadgen::api::INSECURE_WARNING);
        }
    }
}

/// The same plans at their mean rate for `warmup`, unmeasured.
fn warmup_plans(plans: &[Plan], warmup: std::time::Duration) -> Vec<Plan> {
    plans
        .iter()
        .map(|plan| Plan {
            profile: RateProfile::constant(plan.profile.mean_rate(), warmup),
            ..plan.clone()
        })
        .collect()
}

fn generate(cli: &Cli) -> anyhow::Result<ExitCode> {
    let (plans, thresholds) = cli.plans()?;
    announce(&plans);
    let runtime = runtime(cli)?;
    let exporter = cli.metrics_listen.map(|_| Exporter::new()).transpose()?;
    let serving = match (&exporter, cli.metrics_listen) {
        (Some(exporter), Some(addr)) => {
            let (bound, task) = runtime.block_on(exporter.clone().serve(addr))?;
            eprintln!("prism-loadgen: metrics on http://{bound}/metrics");
            Some(task)
        }
        _ => None,
    };
    let mut progress = Progress::new(!cli.quiet);
    if let Some(warmup) = cli.warmup {
        eprintln!(
            "prism-loadgen: warming up for {} (not measured)",
            humantime::format_duration(warmup)
        );
        runtime.block_on(runner::run(
            warmup_plans(&plans, warmup),
            &mut Progress::new(false),
            RunOptions::default(),
        ))?;
    }
    let started_at = SystemTime::now();
    let options = RunOptions {
        exporter,
        stop: None,
    };
    let finished = runtime.block_on(runner::run(plans, &mut progress, options))?;
    let mut report = Report::new(started_at, command_line(), &finished);
    let passed = threshold::apply(&thresholds, &mut report);
    print!("{}", report.summary_text());
    write_reports(cli, &report)?;
    if let Some(task) = serving {
        if let Some(linger) = cli.metrics_linger {
            runtime.block_on(async { tokio::time::sleep(linger).await });
        }
        task.abort();
    }
    Ok(verdict(&report, passed))
}

fn verdict(report: &Report, passed: bool) -> ExitCode {
    if report.nothing_succeeded() {
        eprintln!(
            "prism-loadgen: no request succeeded ({} sent, errors {:?}); exit {EXIT_NOTHING_SUCCEEDED}",
            report.total.sent, report.total.errors_by_kind
        );
        return ExitCode::from(EXIT_NOTHING_SUCCEEDED);
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(threshold::EXIT_THRESHOLD_FAILED)
    }
}

fn write_reports(cli: &Cli, report: &Report) -> anyhow::Result<()> {
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &cli.html {
        std::fs::write(path, html::render(report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn merge_reports(cli: &Cli, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let reports = paths
        .iter()
        .map(|path| Ok((path.display().to_string(), merge::read(path)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = merge::merge(&reports, &cli.thresholds, command_line())?;
    print!("{}", report.summary_text());
    write_reports(cli, &report)?;
    let passed = report.passed;
    Ok(verdict(&report, passed))
}

async fn run_drill(cli: &Cli, args: &drill::DrillArgs) -> anyhow::Result<ExitCode> {
    let report = drill::run(args, &cli.resolve).await?;
    print!("{report}");
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed || report.dry_run {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(drill::EXIT_DRILL_FAILED)
    })
}
