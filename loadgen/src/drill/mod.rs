//! `prism-loadgen drill`: proves that an alert fires on real traffic in the real monitoring
//! stack. It reads the rule from Prometheus (`/api/v1/rules`), runs the fault mix that should
//! provoke it against the target, polls Prometheus' `/api/v1/alerts` until the alert is
//! pending and firing (and Alertmanager's `/api/v2/alerts` until it arrived with the rule's
//! labels), stops the faults and waits until the alert resolves. Every phase is bounded by a
//! timeout derived from the rule's `for`, windows and evaluation interval.

pub mod faults;
pub mod rule;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::progress::Progress;
use crate::runner::{self, RunOptions};
use crate::target::{Resolve, TargetSpec};
use faults::FaultMix;
use rule::RuleInfo;

/// Exit code of a drill in which a phase did not hold (as for a failed threshold).
pub const EXIT_DRILL_FAILED: u8 = 99;
/// Timeout of one request to Prometheus or Alertmanager.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of `drill`.
#[derive(Args, Debug, Clone)]
pub struct DrillArgs {
    /// Prometheus base URL, e.g. http://prometheus.staging:9090.
    #[arg(long, value_name = "URL")]
    pub prometheus: String,
    /// Alertmanager base URL; when given, the alert must also arrive there.
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,
    /// The alert to provoke: HighErrorRate, HighTCPConnectionCount or ManyHostsOffline.
    #[arg(long)]
    pub alert: String,
    /// Registration endpoint HOST:PORT of the server under drill (where the faults go).
    #[arg(
        long = "target",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub targets: Vec<TargetSpec>,
    /// Registration token for the fault traffic's valid requests (token-mode servers).
    #[arg(long, env = "PRISM_LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A label the delivered alert must carry besides the rule's own (NAME=VALUE);
    /// repeatable.
    #[arg(long = "expect-label", value_name = "NAME=VALUE", value_parser = parse_label)]
    pub expect_labels: Vec<(String, String)>,
    /// Fault requests per second (HighErrorRate, ManyHostsOffline heartbeats).
    #[arg(long, default_value_t = 50.0, value_parser = crate::parse_rate)]
    pub fault_rate: f64,
    /// Share of malformed frames for HighErrorRate; must exceed the rule's threshold.
    #[arg(long, default_value_t = 0.5, value_parser = crate::parse_ratio)]
    pub fault_ratio: f64,
    /// Idle connections for HighTCPConnectionCount (default: 5 % above the rule's threshold).
    #[arg(long)]
    pub connections: Option<u32>,
    /// Fleet size for ManyHostsOffline (80 % of it stops heartbeating); it must outnumber
    /// the hosts already registered on the target.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub hosts: u64,
    /// The server's offline deadline (interval × multiplier + grace) for ManyHostsOffline.
    #[arg(long, default_value = "150s", value_parser = crate::parse_duration)]
    pub offline_after: Duration,
    /// Added to every phase bound: scrape interval, delivery and clock slack.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    pub slack: Duration,
    /// Keep the faults running this long after the alert reached Alertmanager, so that its
    /// notification goes out (group_wait, 30 s by default) before the alert resolves.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration_or_zero)]
    pub hold: Duration,
    /// How often Prometheus and Alertmanager are polled.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub poll: Duration,
    /// Hostnames of the fault traffic are PREFIX-…
    #[arg(long, default_value = "drill")]
    pub hostname_prefix: String,
    /// Print the plan (rule, fault mix, phase bounds) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    Ok((name.to_owned(), value.trim_matches('"').to_owned()))
}

/// The bounds of every phase, from the rule.
#[derive(Debug, Clone, Serialize)]
pub struct Bounds {
    /// From the start of the faults until the alert must be pending.
    pub pending: Duration,
    /// From the start of the faults until it must be firing.
    pub firing: Duration,
    /// From the start of the faults until it must be in Alertmanager.
    pub delivered: Duration,
    /// From the end of the faults until it must have resolved.
    pub resolved: Duration,
}

impl Bounds {
    /// Pending needs the windows to fill with the faults (plus whatever delay the fault mix
    /// has, such as the offline deadline) and a few evaluations; firing `for` more; delivery
    /// a few evaluations more; resolution the windows to empty again plus `keep_firing_for`.
    pub fn of(rule: &RuleInfo, delay: Duration, slack: Duration) -> Self {
        let evaluations = rule.interval * 3;
        let pending = delay + rule.window + evaluations + slack;
        let firing = pending + rule.for_duration + rule.interval * 2;
        Self {
            pending,
            firing,
            delivered: firing + evaluations + slack,
            resolved: rule.window + rule.keep_firing_for + evaluations + slack,
        }
    }
}

/// One phase's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `pending`, `firing`, `delivered` or `resolved`.
    pub name: &'static str,
    /// How long it may take.
    pub bound: Duration,
    /// How long it took, when it happened within the bound.
    pub reached: Option<Duration>,
    /// What was observed (labels, states), or why it failed.
    pub detail: String,
}

/// What a drill did and whether every phase held.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The alert.
    pub alert: String,
    /// The rule as Prometheus reported it.
    pub rule: RuleInfo,
    /// The fault mix, in words.
    pub faults: String,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Requests the fault traffic sent and how many the server refused.
    pub fault_traffic: String,
    /// Whether every phase held (false for a dry run, which proves nothing).
    pub passed: bool,
    /// Whether this was only the plan.
    pub dry_run: bool,
}

impl fmt::Display for DrillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match (self.dry_run, self.passed) {
            (true, _) => "plan (dry run, nothing sent)",
            (false, true) => "PASS",
            (false, false) => "FAIL",
        };
        writeln!(f, "drill {}: {verdict}", self.alert)?;
        let rule = &self.rule;
        let labels: Vec<String> = rule
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "  rule       for {}, longest window {}, evaluated every {}, labels {{{}}}",
            human(rule.for_duration),
            human(rule.window),
            human(rule.interval),
            labels.join(", ")
        )?;
        writeln!(f, "  faults     {}", self.faults)?;
        if !self.fault_traffic.is_empty() {
            writeln!(f, "  traffic    {}", self.fault_traffic)?;
        }
        for phase in &self.phases {
            let since = if phase.name == "resolved" {
                "after the faults stopped"
            } else {
                "after the faults started"
            };
            match phase.reached {
                Some(took) => writeln!(
                    f,
                    "  {:<10} {} {since} (bound {}){}",
                    phase.name,
                    human(took),
                    human(phase.bound),
                    if phase.detail.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", phase.detail)
                    }
                )?,
                None if self.dry_run => {
                    writeln!(
                        f,
                        "  {:<10} within {} {since}",
                        phase.name,
                        human(phase.bound)
                    )?;
                }
                None => writeln!(f, "  {:<10} FAILED: {}", phase.name, phase.detail)?,
            }
        }
        Ok(())
    }
}

/// A duration rounded to 0.1 s for people.
fn human(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// Prometheus' and Alertmanager's HTTP APIs.
struct Apis {
    http: reqwest::Client,
    prometheus: String,
    alertmanager: Option<String>,
}

impl Apis {
    async fn get(&self, url: String) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET {url}: HTTP {status}");
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))
    }

    async fn rule(&self, alert: &str) -> anyhow::Result<RuleInfo> {
        let body = self
            .get(format!("{}/api/v1/rules?type=alert", self.prometheus))
            .await?;
        rule::find(&body, alert).map_err(anyhow::Error::msg)
    }

    /// The states (`pending`, `firing`) of `alert` in Prometheus now.
    async fn states(&self, alert: &str) -> anyhow::Result<Vec<String>> {
        let body = self
            .get(format!("{}/api/v1/alerts", self.prometheus))
            .await?;
        Ok(body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["labels"]["alertname"] == alert)
            .filter_map(|entry| entry["state"].as_str().map(str::to_owned))
            .collect())
    }

    /// `alert` as Alertmanager holds it: `(labels, state)` of each instance.
    async fn delivered(
        &self,
        alert: &str,
    ) -> anyhow::Result<Vec<(BTreeMap<String, String>, String)>> {
        let Some(base) = &self.alertmanager else {
            return Ok(Vec::new());
        };
        let body = self.get(format!("{base}/api/v2/alerts")).await?;
        Ok(body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["labels"]["alertname"] == alert)
            .map(|entry| {
                let labels = rule::labels(&entry["labels"]);
                let state = entry["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (labels, state)
            })
            .collect())
    }
}

/// Runs the drill (or, with `--dry-run`, only plans it). `Err` means the drill could not be
/// run at all (Prometheus unreachable, no such rule, no fault mix for the alert, the alert
/// already active); a drill that ran returns its report, passed or not.
/// Names in `--target` are resolved through `overrides` (`--resolve`) first.
pub async fn run(args: &DrillArgs, overrides: &[Resolve]) -> anyhow::Result<DrillReport> {
    let apis = Apis {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(API_TIMEOUT)
            .build()?,
        prometheus: args.prometheus.trim_end_matches('/').to_owned(),
        alertmanager: args
            .alertmanager
            .as_ref()
            .map(|url| url.trim_end_matches('/').to_owned()),
    };
    let rule = apis.rule(&args.alert).await?;
    let mix = FaultMix::for_alert(args, &rule, overrides)?;
    let bounds = Bounds::of(&rule, mix.delay, args.slack);
    let mut phases = vec![
        phase("pending", bounds.pending),
        phase("firing", bounds.firing),
    ];
    if apis.alertmanager.is_some() {
        phases.push(phase("delivered", bounds.delivered));
    }
    phases.push(phase("resolved", bounds.resolved));
    let mut report = DrillReport {
        alert: args.alert.clone(),
        rule: rule.clone(),
        faults: mix.description.clone(),
        phases,
        fault_traffic: String::new(),
        passed: false,
        dry_run: args.dry_run,
    };
    if args.dry_run {
        return Ok(report);
    }
    let active = apis.states(&args.alert).await?;
    anyhow::ensure!(
        active.is_empty(),
        "{} is already {} before the drill; a drill can only prove an alert that is inactive",
        args.alert,
        active.join(", ")
    );
    let mut expected = rule.labels.clone();
    expected.extend(args.expect_labels.iter().cloned());

    mix.prepare().await?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    // Long enough for the slowest phase before the stop, plus the hold after delivery.
    let plans = mix.plans(bounds.delivered.max(bounds.firing) + args.hold)?;
    let faults = tokio::spawn(async move {
        let mut quiet = Progress::new(false);
        let options = RunOptions {
            exporter: None,
            stop: Some(stopped),
        };
        runner::run(plans, &mut quiet, options).await
    });
    let started = Instant::now();
    let need_delivery = apis.alertmanager.is_some();
    let mut observed = Observed::default();
    loop {
        let elapsed = started.elapsed();
        if let Ok(states) = apis.states(&args.alert).await {
            if observed.pending.is_none() && !states.is_empty() {
                observed.pending = Some(elapsed);
                if states.iter().all(|state| state == "firing") {
                    observed.note_pending = "not seen pending: first seen firing".to_owned();
                }
            }
            if observed.firing.is_none() && states.iter().any(|state| state == "firing") {
                observed.firing = Some(elapsed);
            }
        }
        if need_delivery
            && observed.delivered.is_none()
            && let Ok(arrived) = apis.delivered(&args.alert).await
        {
            match arrived
                .iter()
                .find(|(labels, _)| expected.iter().all(|(k, v)| labels.get(k) == Some(v)))
            {
                Some((labels, state)) => {
                    observed.delivered = Some(elapsed);
                    let labels: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    observed.note_delivered =
                        format!("{state} in Alertmanager with {{{}}}", labels.join(", "));
                }
                None if !arrived.is_empty() => {
                    observed.note_delivered = format!(
                        "arrived in Alertmanager without the expected labels {expected:?}: {:?}",
                        arrived.iter().map(|(labels, _)| labels).collect::<Vec<_>>()
                    );
                }
                None => {}
            }
        }
        let done = observed.firing.is_some() && (!need_delivery || observed.delivered.is_some());
        let out_of_time = (observed.pending.is_none() && elapsed > bounds.pending)
            || (observed.firing.is_none() && elapsed > bounds.firing)
            || (need_delivery && observed.delivered.is_none() && elapsed > bounds.delivered);
        if done || out_of_time {
            break;
        }
        tokio::time::sleep(args.poll).await;
    }
    if observed.firing.is_some() && (!need_delivery || observed.delivered.is_some()) {
        tokio::time::sleep(args.hold).await;
    }
    let _ = stop.send(());
    let finished = faults.await.context("the fault traffic task failed")??;
    let sent: u64 = finished.iter().map(|run| run.totals.sent).sum();
    let refused: u64 = finished.iter().map(|run| run.totals.errors()).sum();
    let held: u64 = finished.iter().flat_map(|run| run.held.values()).sum();
    report.fault_traffic = format!(
        "{sent} requests sent, {refused} answered with an error or failed, {held} connections held at peak"
    );
    mix.recover().await?;

    let stopped_at = Instant::now();
    if observed.firing.is_some() {
        loop {
            let elapsed = stopped_at.elapsed();
            if let Ok(states) = apis.states(&args.alert).await
                && states.is_empty()
            {
                observed.resolved = Some(elapsed);
                break;
            }
            if elapsed > bounds.resolved {
                break;
            }
            tokio::time::sleep(args.poll).await;
        }
    }
    observed.fill(&mut report, &rule, &bounds);
    report.passed = report.phases.iter().all(|phase| phase.reached.is_some());
    Ok(report)
}

fn phase(name: &'static str, bound: Duration) -> Phase {
    Phase {
        name,
        bound,
        reached: None,
        detail: String::new(),
    }
}

/// When each phase was first observed.
#[derive(Default)]
struct Observed {
    pending: Option<Duration>,
    firing: Option<Duration>,
    delivered: Option<Duration>,
    resolved: Option<Duration>,
    note_pending: String,
    note_delivered: String,
}

impl Observed {
    fn fill(self, report: &mut DrillReport, rule: &RuleInfo, bounds: &Bounds) {
        let alert = &report.alert;
        for phase in &mut report.phases {
            let (reached, detail) = match phase.name {
                "pending" => (
                    self.pending,
                    if self.pending.is_some() {
                        self.note_pending.clone()
                    } else {
                        let mut why = format!(
                            "{alert} never became pending within {} of the faults: the rule \
                             `{}` did not hold on this fault mix",
                            human(bounds.pending),
                            rule.query.split_whitespace().collect::<Vec<_>>().join(" ")
                        );
                        let _ = write!(
                            why,
                            "; check that Prometheus scrapes the target and that the expression \
                             can fire at all"
                        );
                        why
                    },
                ),
                "firing" => (
                    self.firing,
                    if self.firing.is_some() || self.pending.is_none() {
                        String::new()
                    } else {
                        format!(
                            "{alert} was pending but did not fire within {}: the condition did \
                             not hold for the rule's `for` of {}",
                            human(bounds.firing),
                            human(rule.for_duration)
                        )
                    },
                ),
                "delivered" => (
                    self.delivered,
                    if self.delivered.is_some() || !self.note_delivered.is_empty() {
                        self.note_delivered.clone()
                    } else if self.firing.is_none() {
                        "not attempted: the alert never fired".to_owned()
                    } else {
                        format!(
                            "{alert} fired but never reached Alertmanager within {}: check \
                             Prometheus' alerting.alertmanagers",
                            human(bounds.delivered)
                        )
                    },
                ),
                _ => (
                    self.resolved,
                    if self.resolved.is_some() {
                        String::new()
                    } else if self.firing.is_none() {
                        "not attempted: the alert never fired".to_owned()
                    } else {
                        format!(
                            "{alert} was still active {} after the faults stopped",
                            human(bounds.resolved)
                        )
                    },
                ),
            };
            if phase.name == "pending" && reached.is_none() && self.firing.is_some() {
                phase.reached = self.firing;
            } else {
                phase.reached = reached;
            }
            phase.detail = detail;
        }
    }
}
