//! `prism-loadgen merge`: reports of several generators that ran at the same time, as one.
//! HDR histograms are merged (never percentiles averaged), counters summed, and thresholds
//! re-evaluated on the merged numbers.

use std::path::Path;

use anyhow::Context;

use crate::report::{Report, SCHEMA, WorkloadReport};
use crate::threshold::Threshold;

/// Reads one JSON report, refusing other schemas.
pub fn read(path: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read report {}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a prism-loadgen JSON report", path.display()))?;
    anyhow::ensure!(
        report.schema == SCHEMA,
        "{} has schema {:?}; merge needs {SCHEMA} (with serialized histograms)",
        path.display(),
        report.schema
    );
    for workload in &report.workloads {
        anyhow::ensure!(
            workload.summary.completed == 0 || !workload.histograms.latency_us.is_empty(),
            "{}: workload {} carries no histograms, so it cannot be merged exactly",
            path.display(),
            workload.name
        );
    }
    Ok(report)
}

/// Merges `reports` (with the names they were read from): workloads of the same name are
/// one workload run by several generators. Thresholds recorded in the inputs are parsed
/// again and, with `extra`, evaluated on the merge.
pub fn merge(
    reports: &[(String, Report)],
    extra: &[Threshold],
    command_line: Vec<String>,
) -> anyhow::Result<Report> {
    anyhow::ensure!(!reports.is_empty(), "nothing to merge");
    let mut names: Vec<&str> = Vec::new();
    for (_, report) in reports {
        for workload in &report.workloads {
            if !names.contains(&workload.name.as_str()) {
                names.push(&workload.name);
            }
        }
    }
    let workloads = names
        .iter()
        .map(|name| {
            let parts: Vec<&WorkloadReport> = reports
                .iter()
                .flat_map(|(_, report)| &report.workloads)
                .filter(|workload| workload.name == *name)
                .collect();
            WorkloadReport::merge(&parts)
        })
        .collect();
    let started_at = reports
        .iter()
        .map(|(_, report)| report.started_at.clone())
        .min()
        .unwrap_or_default();
    let mut merged = Report::assemble(started_at, command_line, workloads);
    merged.merged_from = reports.iter().map(|(name, _)| name.clone()).collect();
    let mut thresholds: Vec<Threshold> = Vec::new();
    for (name, report) in reports {
        for result in &report.thresholds {
            let threshold: Threshold = result
                .expression
                .parse()
                .with_context(|| format!("threshold recorded in {name}"))?;
            if !thresholds.contains(&threshold) {
                thresholds.push(threshold);
            }
        }
    }
    for threshold in extra {
        if !thresholds.contains(threshold) {
            thresholds.push(threshold.clone());
        }
    }
    crate::threshold::apply(&thresholds, &mut merged);
    Ok(merged)
}
