//! The `prism-loadgen` command: parses the command line, runs the workloads, prints the
//! summary, writes the reports and turns thresholds into the exit code.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Parser;
use prism_loadgen::cli::Cli;
use prism_loadgen::progress::Progress;
use prism_loadgen::report::Report;
use prism_loadgen::{html, runner, threshold};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let (plans, thresholds) = cli.plans()?;
    for plan in &plans {
        eprintln!(
            "prism-loadgen: {} ({}) → {} at {}/s peak for {}",
            plan.name,
            plan.workload.kind(),
            plan.workload.target(),
            plan.profile.peak_rate(),
            humantime::format_duration(plan.profile.duration())
        );
    }
    let runtime = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(cli.threads))
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    let started_at = SystemTime::now();
    let mut progress = Progress::new(!cli.quiet);
    let finished = runtime.block_on(runner::run(plans, &mut progress))?;
    let mut report = Report::new(started_at, &finished);
    let passed = threshold::apply(&thresholds, &mut report);
    print!("{}", report.summary_text());
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &cli.html {
        std::fs::write(path, html::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(threshold::EXIT_THRESHOLD_FAILED)
    })
}
