//! Scenario files: several workloads at once, each with the same options as its subcommand
//! and optional stages (ramp up, hold, ramp down).
//!
//! Option keys are the subcommand's long options (`hosts = 1000`, `one-shot = true`) and are
//! parsed by the same command-line parser, so defaults and checks cannot drift apart.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

use crate::api::ApiArgs;
use crate::crossnode::CrossNodeArgs;
use crate::dns::DnsArgs;
use crate::heartbeat::HeartbeatArgs;
use crate::runner::{Plan, Workload};
use crate::schedule::Stage;
use crate::target::Resolve;
use crate::threshold::Threshold;

/// A parsed scenario.
#[derive(Debug)]
pub struct Scenario {
    /// The workloads, all started together.
    pub plans: Vec<Plan>,
    /// Thresholds from the file.
    pub thresholds: Vec<Threshold>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    threshold: Vec<String>,
    #[serde(default)]
    workload: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageSpec {
    duration: String,
    target: f64,
}

#[derive(Parser)]
struct HeartbeatOptions {
    #[command(flatten)]
    args: HeartbeatArgs,
}

#[derive(Parser)]
struct DnsOptions {
    #[command(flatten)]
    args: DnsArgs,
}

#[derive(Parser)]
struct ApiOptions {
    #[command(flatten)]
    args: ApiArgs,
}

#[derive(Parser)]
struct CrossNodeOptions {
    #[command(flatten)]
    args: CrossNodeArgs,
}

/// Reads and parses a scenario file, resolving its targets (through `overrides` first).
pub fn load(path: &Path, overrides: &[Resolve]) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read scenario {}", path.display()))?;
    parse(&text, overrides).with_context(|| format!("invalid scenario {}", path.display()))
}

/// Parses scenario text.
pub fn parse(text: &str, overrides: &[Resolve]) -> anyhow::Result<Scenario> {
    let file: ScenarioFile = toml::from_str(text)?;
    anyhow::ensure!(!file.workload.is_empty(), "no [[workload]] tables");
    let thresholds = file
        .threshold
        .iter()
        .map(|text| text.parse::<Threshold>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    let mut plans = Vec::with_capacity(file.workload.len());
    for (position, table) in file.workload.into_iter().enumerate() {
        let workload_plans =
            workload(table, overrides).with_context(|| format!("workload #{}", position + 1))?;
        for plan in workload_plans {
            anyhow::ensure!(
                names.insert(plan.name.clone()),
                "two workloads are named {:?}; give each a distinct name",
                plan.name
            );
            plans.push(plan);
        }
    }
    Ok(Scenario { plans, thresholds })
}

fn workload(mut table: toml::Table, overrides: &[Resolve]) -> anyhow::Result<Vec<Plan>> {
    let kind = match table.remove("kind") {
        Some(toml::Value::String(kind)) => kind,
        _ => anyhow::bail!("missing kind = \"heartbeat\" | \"dns\" | \"api\""),
    };
    let name = match table.remove("name") {
        Some(toml::Value::String(name)) => name,
        Some(_) => anyhow::bail!("name must be a string"),
        None => kind.clone(),
    };
    let start_rate = match table.remove("start_rate") {
        Some(value) => Some(
            value
                .try_into::<f64>()
                .context("start_rate must be a number")?,
        ),
        None => None,
    };
    let stages = match table.remove("stages") {
        Some(value) => {
            let specs: Vec<StageSpec> = value
                .try_into()
                .context("stages must be a list of { duration = \"10s\", target = 100 }")?;
            let stages = specs
                .into_iter()
                .map(|spec| {
                    let duration =
                        crate::parse_duration(&spec.duration).map_err(anyhow::Error::msg)?;
                    let target =
                        crate::parse_rate(&spec.target.to_string()).map_err(anyhow::Error::msg)?;
                    Ok(Stage { duration, target })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            anyhow::ensure!(!stages.is_empty(), "stages is empty");
            Some((start_rate.unwrap_or(0.0), stages))
        }
        None => {
            anyhow::ensure!(start_rate.is_none(), "start_rate needs stages");
            None
        }
    };
    let arguments = to_arguments(&kind, table)?;
    let workload = match kind.as_str() {
        "heartbeat" => Workload::Heartbeat(HeartbeatOptions::try_parse_from(arguments)?.args),
        "dns" => Workload::Dns(DnsOptions::try_parse_from(arguments)?.args),
        "api" => Workload::Api(ApiOptions::try_parse_from(arguments)?.args),
        "cross-node" => Workload::CrossNode(CrossNodeOptions::try_parse_from(arguments)?.args),
        other => {
            anyhow::bail!("unknown kind {other:?}; expected heartbeat, dns, api or cross-node")
        }
    };
    let profile = workload.load().profile(stages)?;
    Plan::for_workload(name, workload, profile, overrides)
}

/// Turns `key = value` pairs into `--key=value` arguments for the subcommand parser.
fn to_arguments(kind: &str, table: toml::Table) -> anyhow::Result<Vec<String>> {
    let mut arguments = vec![kind.to_owned()];
    for (key, value) in table {
        let option = format!("--{}", key.replace('_', "-"));
        let values = match value {
            toml::Value::Array(values) => values,
            single => vec![single],
        };
        for value in values {
            match value {
                toml::Value::Boolean(true) => arguments.push(option.clone()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(text) => arguments.push(format!("{option}={text}")),
                toml::Value::Integer(number) => arguments.push(format!("{option}={number}")),
                toml::Value::Float(number) => arguments.push(format!("{option}={number}")),
                other => anyhow::bail!("{key}: unsupported value {other}"),
            }
        }
    }
    Ok(arguments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workloads_with_options_and_stages() {
        let scenario = parse(
            r#"
            threshold = ["p99<5ms"]
            [[workload]]
            kind = "heartbeat"
            name = "hosts"
            hosts = 10
            one-shot = true
            stages = [
              { duration = "1s", target = 100 },
              { duration = "2s", target = 100 },
              { duration = "1s", target = 0 },
            ]
            [[workload]]
            kind = "dns"
            rate = 50
            duration = "2s"
            hit_ratio = 0.5
            "#,
            &[],
        )
        .expect("valid scenario");
        assert_eq!(scenario.plans.len(), 2);
        assert_eq!(scenario.thresholds.len(), 1);
        let hosts = &scenario.plans[0];
        assert_eq!(hosts.name, "hosts");
        assert_eq!(hosts.profile.scheduled(), 300);
        let Workload::Heartbeat(args) = &hosts.workload else {
            panic!("first workload should be heartbeat");
        };
        assert!(args.one_shot);
        assert_eq!(args.hosts, 10);
        assert_eq!(scenario.plans[1].profile.scheduled(), 100);
    }

    #[test]
    fn rejects_unknown_options_and_rates_over_the_cap() {
        let err = parse("[[workload]]\nkind = \"dns\"\nhots = 3\n", &[]).expect_err("typo");
        assert!(format!("{err:#}").contains("--hots"), "{err:#}");
        let err = parse("[[workload]]\nkind = \"api\"\nrate = 200000\n", &[]).expect_err("cap");
        assert!(format!("{err:#}").contains("--max-rate"), "{err:#}");
    }
}
