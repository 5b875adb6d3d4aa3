//! The live stack the alert drills run against: an in-process Prism server, the real
//! Prometheus (scraping and evaluating every second) over a fast copy of the alert rules,
//! Alertmanager, and a wiremock webhook receiver; plus in-process loadgen runs and drills.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prism_loadgen::cli::{Cli, Command};
use prism_loadgen::drill::{self, DrillReport};
use prism_loadgen::progress::Progress;
use prism_loadgen::runner::{self, RunOptions};
use prism_rules_tests::live::{
    ChildGuard, alertmanager_config, fast_rules, free_loopback_port, prometheus_config,
};
use prism_rules_tests::{alert_rules_path, load_yaml};
use prism_server::config::AuthMode;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock, serve};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every `for` in the test copy of the rules.
pub const TEST_FOR: &str = "5s";
/// Every range window in the test copy of the rules.
pub const TEST_WINDOW: &str = "30s";
/// How long Prometheus, Alertmanager and the first scrape may take to come up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A Prism server in this process with open auth, no rate limit and idle connections kept
/// for 10 minutes (the default 30 s would close the held connections mid-test).
pub struct PrismServer {
    /// Registration protocol address.
    pub registration: SocketAddr,
    /// REST API and /metrics address.
    pub api: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl PrismServer {
    /// Starts the server; `offline_after_secs` shortens the offline deadline (interval 1 s,
    /// multiplier 1, grace the rest) when given.
    pub async fn start(offline_after_secs: Option<u64>) -> Self {
        let mut config = Config::default();
        config.auth.mode = AuthMode::Open;
        config.rate_limit.registrations_per_minute = 0;
        config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
        config.server.idle_timeout_secs = 600;
        // Every fault connection comes from 127.0.0.1.
        config.server.max_connections_per_ip = 0;
        config.server.shutdown_grace_secs = 1;
        if let Some(seconds) = offline_after_secs {
            config.heartbeat.interval = 1;
            config.heartbeat.timeout_multiplier = 1;
            config.heartbeat.grace_period = seconds.saturating_sub(1);
            config.heartbeat.check_interval = 0.2;
        }
        let core = Node::start(
            config,
            Arc::new(MemoryStore::new()) as Arc<dyn Store>,
            Arc::new(SystemClock),
            Metrics::new().expect("metrics registry"),
        )
        .await
        .expect("the core starts over an empty store");
        let registration = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (registration_addr, api_addr) = (
            registration.local_addr().expect("addr"),
            api.local_addr().expect("addr"),
        );
        let mut listeners = Listeners::new(registration);
        listeners.api = Some(api);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(core, listeners, async {
            let _ = stopped.await;
        }));
        Self {
            registration: registration_addr,
            api: api_addr,
            stop: Some(stop),
            task,
        }
    }
}

impl Drop for PrismServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// The fast test copy of `monitoring/rules/prism-alerts.yml`.
pub fn fast_alert_rules() -> serde_norway::Value {
    let rules = load_yaml(&alert_rules_path()).unwrap_or_else(|e| panic!("{e}"));
    fast_rules(&rules, TEST_FOR, TEST_WINDOW).unwrap_or_else(|e| panic!("{e}"))
}

/// Prometheus and Alertmanager as child processes over generated configuration, and the
/// webhook Alertmanager delivers to.
pub struct MonitoringStack {
    /// Prometheus' base URL.
    pub prometheus_url: String,
    /// Alertmanager's base URL.
    pub alertmanager_url: String,
    /// The webhook receiver.
    pub webhook: MockServer,
    prometheus: ChildGuard,
    alertmanager: ChildGuard,
    http: reqwest::Client,
    /// Holds the configuration, rules and storage until the processes are gone.
    _dir: tempfile::TempDir,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

impl MonitoringStack {
    /// Starts the stack scraping `prism_api` and evaluating `rules`, and waits until
    /// Prometheus has scraped the server once.
    pub async fn start(prism_api: SocketAddr, rules: &serde_norway::Value) -> Result<Self, String> {
        let webhook = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&webhook)
            .await;
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let rules_file = dir.path().join("prism-alerts.test-copy.yml");
        write(
            &rules_file,
            &serde_norway::to_string(rules).map_err(|e| format!("rules: {e}"))?,
        )?;
        let am_addr = SocketAddr::from(([127, 0, 0, 1], free_loopback_port()?));
        let prom_addr = SocketAddr::from(([127, 0, 0, 1], free_loopback_port()?));
        let am_config = dir.path().join("alertmanager.yml");
        write(
            &am_config,
            &alertmanager_config(&format!("{}/alerts", webhook.uri()))?,
        )?;
        let prom_config = dir.path().join("prometheus.yml");
        write(
            &prom_config,
            &prometheus_config(prism_api, &rules_file, am_addr)?,
        )?;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut alertmanager = ChildGuard::spawn(
            "alertmanager",
            "prometheus-alertmanager",
            &[
                format!("--config.file={}", path(&am_config)),
                format!("--storage.path={}", path(&dir.path().join("am-data"))),
                format!("--web.listen-address={am_addr}"),
                "--cluster.listen-address=".to_owned(),
            ],
            dir.path(),
        )?;
        let mut prometheus = ChildGuard::spawn(
            "prometheus",
            "prometheus",
            &[
                format!("--config.file={}", path(&prom_config)),
                format!("--storage.tsdb.path={}", path(&dir.path().join("tsdb"))),
                format!("--web.listen-address={prom_addr}"),
            ],
            dir.path(),
        )?;
        alertmanager.wait_listening(am_addr, STARTUP_TIMEOUT)?;
        prometheus.wait_listening(prom_addr, STARTUP_TIMEOUT)?;
        let stack = Self {
            prometheus_url: format!("http://{prom_addr}"),
            alertmanager_url: format!("http://{am_addr}"),
            webhook,
            prometheus,
            alertmanager,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| format!("HTTP client: {e}"))?,
            _dir: dir,
        };
        let started = Instant::now();
        while !stack.prism_scraped().await {
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "Prometheus never scraped the Prism server at {prism_api}\n{}",
                    stack.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(stack)
    }

    /// Whether Prometheus has scraped the Prism server successfully (`up{job="prism"} == 1`).
    async fn prism_scraped(&self) -> bool {
        let Ok(response) = self
            .http
            // The query is `up{job="prism"} == 1`, percent-encoded.
            .get(format!(
                "{}/api/v1/query?query=up%7Bjob%3D%22prism%22%7D%20%3D%3D%201",
                self.prometheus_url
            ))
            .send()
            .await
        else {
            return false;
        };
        let Ok(body) = response.json::<Value>().await else {
            return false;
        };
        body["data"]["result"]
            .as_array()
            .is_some_and(|result| !result.is_empty())
    }

    /// `(alertname, state)` of every alert Prometheus currently reports.
    pub async fn alerts(&self) -> Result<Vec<(String, String)>, String> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/alerts", self.prometheus_url))
            .send()
            .await
            .map_err(|e| format!("GET /api/v1/alerts: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GET /api/v1/alerts body: {e}"))?;
        let alerts = body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Ok(alerts
            .iter()
            .map(|alert| (text(&alert["labels"]["alertname"]), text(&alert["state"])))
            .collect())
    }

    /// `(alertname, severity)` of every firing alert the webhook received.
    pub async fn delivered(&self) -> Vec<(String, String)> {
        let requests = self.webhook.received_requests().await.unwrap_or_default();
        let mut delivered = Vec::new();
        for request in requests {
            let Ok(body) = request.body_json::<Value>() else {
                continue;
            };
            for alert in body["alerts"].as_array().into_iter().flatten() {
                if alert["status"] == "firing" {
                    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                    delivered.push((
                        text(&alert["labels"]["alertname"]),
                        text(&alert["labels"]["severity"]),
                    ));
                }
            }
        }
        delivered
    }

    /// The last lines Prometheus and Alertmanager logged.
    pub fn logs(&self) -> String {
        format!(
            "{}\n{}",
            self.prometheus.log_tail(15),
            self.alertmanager.log_tail(15)
        )
    }

    /// Runs `prism-loadgen drill --alert ALERT` in-process against this stack, the faults
    /// going to `registration`; `extra` adds options (`--slack` defaults to 10 s).
    pub async fn drill(
        &self,
        alert: &str,
        registration: SocketAddr,
        extra: &[&str],
    ) -> Result<DrillReport, String> {
        let target = registration.to_string();
        let mut args = vec![
            "drill",
            "--prometheus",
            &self.prometheus_url,
            "--alertmanager",
            &self.alertmanager_url,
            "--alert",
            alert,
            "--target",
            &target,
            "--poll",
            "500ms",
        ];
        if !extra.contains(&"--slack") {
            args.extend_from_slice(&["--slack", "10s"]);
        }
        args.extend_from_slice(extra);
        let cli = Cli::from_args(args)?;
        let Command::Drill(drill_args) = &cli.command else {
            return Err("not a drill command line".to_owned());
        };
        drill::run(drill_args, &cli.resolve)
            .await
            .map_err(|e| format!("{e:#}"))
    }
}

/// Runs a loadgen command line (after the program name) in-process to its end.
pub async fn loadgen(args: &[&str]) -> Result<(), String> {
    let cli = Cli::from_args(args)?;
    let (plans, _) = cli.plans().map_err(|e| format!("{e:#}"))?;
    runner::run(plans, &mut Progress::new(false), RunOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}
