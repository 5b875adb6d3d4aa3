//! Live end-to-end alert test: an in-process Prism server, the real Prometheus (scraping and
//! evaluating every second) and Alertmanager, and a wiremock webhook receiver.
//!
//! Prometheus loads a test copy of `monitoring/rules/prism-alerts.yml` generated here with
//! every `for` shortened to 5 s and every range window to 30 s (thresholds unchanged). Clean
//! heartbeats must deliver neither HighErrorRate nor HighTCPConnectionCount; then malformed
//! frames plus more than 900 idle registration connections must make Prometheus report both
//! firing and Alertmanager deliver both to the webhook with their severity labels.
//!
//! The fault mix is driven by this file's own small client (malformed frames on one
//! connection, idle connections held open) rather than the prism-loadgen binary, so the test
//! needs no other package's binary to be built first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prism_rules_tests::live::{
    ChildGuard, alertmanager_config, fast_rules, free_loopback_port, prometheus_config,
};
use prism_rules_tests::{alert_rules_path, load_yaml};
use prism_server::config::AuthMode;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock, serve};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The two alerts this test provokes, with the severity the rules file gives them.
const PROVOKED: [(&str, &str); 2] = [
    ("HighErrorRate", "critical"),
    ("HighTCPConnectionCount", "warning"),
];
/// Every `for` in the test copy of the rules.
const TEST_FOR: &str = "5s";
/// Every range window in the test copy of the rules.
const TEST_WINDOW: &str = "30s";
/// Idle registration connections held open: above the rule's 900, below max_connections 1000.
const IDLE_CONNECTIONS: usize = 950;
/// How long clean traffic runs while nothing may be delivered: several times `for` plus the
/// Alertmanager group_wait, after Prometheus has scraped the server at least once.
const CLEAN_WINDOW: Duration = Duration::from_secs(15);
/// How long the faults may take to make both alerts fire and reach the webhook.
const FIRE_TIMEOUT: Duration = Duration::from_secs(75);
/// How long Prometheus, Alertmanager and the first scrape may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A Prism server in this process with open auth, no rate limit and idle connections kept
/// for 10 minutes (the default 30 s would close the held connections mid-test).
struct PrismServer {
    registration: SocketAddr,
    api: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl PrismServer {
    async fn start() -> Self {
        let mut config = Config::default();
        config.auth.mode = AuthMode::Open;
        config.rate_limit.registrations_per_minute = 0;
        config.server.idle_timeout_secs = 600;
        config.server.shutdown_grace_secs = 1;
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

/// Prometheus and Alertmanager as child processes over generated configuration.
struct MonitoringStack {
    prometheus_url: String,
    prometheus: ChildGuard,
    alertmanager: ChildGuard,
    /// Holds the configuration, rules and storage until the processes are gone.
    _dir: tempfile::TempDir,
}

impl MonitoringStack {
    fn start(prism_api: SocketAddr, webhook_url: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let rules = fast_rules(&load_yaml(&alert_rules_path())?, TEST_FOR, TEST_WINDOW)?;
        let rules_file = dir.path().join("prism-alerts.test-copy.yml");
        write(
            &rules_file,
            &serde_norway::to_string(&rules).map_err(|e| format!("rules: {e}"))?,
        )?;
        let am_addr = SocketAddr::from(([127, 0, 0, 1], free_loopback_port()?));
        let prom_addr = SocketAddr::from(([127, 0, 0, 1], free_loopback_port()?));
        let am_config = dir.path().join("alertmanager.yml");
        write(&am_config, &alertmanager_config(webhook_url)?)?;
        let prom_config = dir.path().join("prometheus.yml");
        write(
            &prom_config,
            &prometheus_config(prism_api, &rules_file, am_addr)?,
        )?;
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
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
        Ok(Self {
            prometheus_url: format!("http://{prom_addr}"),
            prometheus,
            alertmanager,
            _dir: dir,
        })
    }

    /// `(alertname, state, severity)` of every alert Prometheus currently reports.
    async fn alerts(
        &self,
        http: &reqwest::Client,
    ) -> Result<Vec<(String, String, String)>, String> {
        let body: Value = http
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
        Ok(alerts
            .iter()
            .map(|alert| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (
                    text(&alert["labels"]["alertname"]),
                    text(&alert["state"]),
                    text(&alert["labels"]["severity"]),
                )
            })
            .collect())
    }

    /// Whether Prometheus has scraped the Prism server successfully (`up{job="prism"} == 1`).
    async fn prism_scraped(&self, http: &reqwest::Client) -> bool {
        let Ok(response) = http
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

    fn logs(&self) -> String {
        format!(
            "{}\n{}",
            self.prometheus.log_tail(15),
            self.alertmanager.log_tail(15)
        )
    }
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len())
        .expect("short payload")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// Sends `payload` as frames on one connection, reading each response, every `pause`, until
/// the task is aborted; reconnects if the server closes the connection.
fn send_frames_forever(
    addr: SocketAddr,
    payloads: Vec<Vec<u8>>,
    pause: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let frames: Vec<Vec<u8>> = payloads.iter().map(|p| frame(p)).collect();
        let mut turn = 0usize;
        loop {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                tokio::time::sleep(pause).await;
                continue;
            };
            loop {
                let sent = stream.write_all(&frames[turn % frames.len()]).await;
                turn += 1;
                let mut header = [0u8; 4];
                if sent.is_err() || stream.read_exact(&mut header).await.is_err() {
                    break;
                }
                let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
                if stream.read_exact(&mut body).await.is_err() {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
    })
}

fn clean_heartbeats(addr: SocketAddr) -> JoinHandle<()> {
    let payloads = (0..20)
        .map(|n| {
            serde_json::to_vec(&serde_json::json!({
                "version": "1.0", "type": "registration", "hostname": format!("clean-{n}")
            }))
            .expect("json")
        })
        .collect();
    send_frames_forever(addr, payloads, Duration::from_millis(20))
}

fn malformed_frames(addr: SocketAddr) -> JoinHandle<()> {
    send_frames_forever(
        addr,
        vec![b"{this is not json".to_vec()],
        Duration::from_millis(5),
    )
}

async fn hold_idle_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for n in 0..count {
        held.push(
            TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("holding idle connection {n} of {count}: {e}")),
        );
    }
    held
}

/// `(alertname, severity)` of every firing alert the webhook received.
async fn delivered(webhook: &MockServer) -> Vec<(String, String)> {
    let requests = webhook.received_requests().await.unwrap_or_default();
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

fn is_provoked(name: &str) -> bool {
    PROVOKED.iter().any(|(provoked, _)| *provoked == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_and_connection_alerts_reach_the_webhook_under_faults_and_not_on_clean_traffic()
{
    rlimit::increase_nofile_limit(8192).expect("raise the open-file limit");
    let server = PrismServer::start().await;
    let webhook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&webhook)
        .await;
    let stack = MonitoringStack::start(server.api, &format!("{}/alerts", webhook.uri()))
        .unwrap_or_else(|e| panic!("starting Prometheus and Alertmanager: {e}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");

    // Clean phase: heartbeats only.
    let clean = clean_heartbeats(server.registration);
    let started = Instant::now();
    while !stack.prism_scraped(&http).await {
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "Prometheus never scraped the Prism server at {}\n{}",
            server.api,
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(CLEAN_WINDOW).await;
    let active: Vec<_> = stack
        .alerts(&http)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()))
        .into_iter()
        .filter(|(name, _, _)| is_provoked(name))
        .collect();
    assert!(
        active.is_empty(),
        "clean heartbeats for {CLEAN_WINDOW:?} made Prometheus report {active:?} \
         (pending or firing); these alerts must stay silent without faults"
    );
    let noise: Vec<_> = delivered(&webhook)
        .await
        .into_iter()
        .filter(|(name, _)| is_provoked(name))
        .collect();
    assert!(
        noise.is_empty(),
        "clean heartbeats delivered {noise:?} to the webhook"
    );
    clean.abort();

    // Fault phase: malformed frames and more than 900 idle connections.
    let invalid = malformed_frames(server.registration);
    let held = hold_idle_connections(server.registration, IDLE_CONNECTIONS).await;
    let started = Instant::now();
    let (mut firing, mut received) = (Vec::new(), Vec::new());
    while started.elapsed() < FIRE_TIMEOUT {
        firing = stack.alerts(&http).await.unwrap_or_default();
        received = delivered(&webhook).await;
        let done = PROVOKED.iter().all(|(name, _)| {
            firing
                .iter()
                .any(|(n, state, _)| n == name && state == "firing")
                && received.iter().any(|(n, _)| n == name)
        });
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    invalid.abort();
    drop(held);

    let mut failures = Vec::new();
    for (name, severity) in PROVOKED {
        if !firing
            .iter()
            .any(|(n, state, _)| n == name && state == "firing")
        {
            failures.push(format!(
                "{name} never fired in Prometheus within {FIRE_TIMEOUT:?} of the fault traffic"
            ));
        }
        match received.iter().find(|(n, _)| n == name) {
            None => failures.push(format!(
                "{name} was never delivered to the webhook within {FIRE_TIMEOUT:?}"
            )),
            Some((_, got)) if got != severity => failures.push(format!(
                "{name} reached the webhook with severity `{got}`, expected `{severity}`"
            )),
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nPrometheus alerts (name, state, severity): {firing:?}\nwebhook received \
         (name, severity): {received:?}\n{}",
        failures.join("\n"),
        stack.logs()
    );
}
