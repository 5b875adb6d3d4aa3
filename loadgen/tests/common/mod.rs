//! Shared test support: a real Prism server started in-process on loopback port-0 listeners,
//! and a runner for the loadgen binary that returns its parsed JSON report.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prism_loadgen::report::{Report, Summary};
use prism_server::config::AuthMode;
use prism_server::core::tokens;
use prism_server::store::SqliteStore;
use prism_server::{Config, Listeners, Metrics, Node, SystemClock, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A Prism server running on its own runtime until dropped.
pub struct TestServer {
    /// Registration protocol address.
    pub registration: SocketAddr,
    /// REST API address.
    pub api: SocketAddr,
    /// DNS (UDP and TCP) address.
    pub dns: SocketAddr,
    /// A valid registration token (token mode only).
    pub token: Option<String>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// How a test server differs from the defaults.
#[derive(Clone, Copy)]
struct Setup {
    mode: AuthMode,
    /// Keep the default per-IP registration rate limit (else it is off).
    default_rate_limit: bool,
    /// Hosts go offline 2 s after their last heartbeat (else the default 150 s).
    short_offline: bool,
}

impl TestServer {
    /// A server in open auth mode with the per-IP rate limit off.
    pub fn open() -> Self {
        Self::start(Setup {
            mode: AuthMode::Open,
            default_rate_limit: false,
            short_offline: false,
        })
    }

    /// A server in token auth mode (rate limit off) with one token for owner `loadgen`.
    pub fn with_token() -> Self {
        Self::start(Setup {
            mode: AuthMode::Token,
            default_rate_limit: false,
            short_offline: false,
        })
    }

    /// A server as shipped: token auth mode and the default per-IP rate limit.
    pub fn with_token_and_default_rate_limit() -> Self {
        Self::start(Setup {
            mode: AuthMode::Token,
            default_rate_limit: true,
            short_offline: false,
        })
    }

    /// An open server whose hosts go offline 2 s after their last heartbeat.
    pub fn open_with_short_offline_deadline() -> Self {
        Self::start(Setup {
            mode: AuthMode::Open,
            default_rate_limit: false,
            short_offline: true,
        })
    }

    /// The server's `/metrics` page.
    pub fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.api);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        runtime.block_on(async {
            reqwest::get(&url)
                .await
                .expect("GET /metrics")
                .text()
                .await
                .expect("metrics text")
        })
    }

    fn start(setup: Setup) -> Self {
        let mode = setup.mode;
        let dir = tempfile::tempdir().expect("temporary directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let mut config = Config::default();
        config.server.host = LOOPBACK.into();
        config.database.path = dir.path().join("prism.db");
        config.auth.mode = mode;
        if !setup.default_rate_limit {
            config.rate_limit.registrations_per_minute = 0;
            config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
            // Every DNS query of a test comes from 127.0.0.1, far over one client's rate.
            config.dns.rrl_responses_per_second = 0;
        }
        if setup.short_offline {
            config.heartbeat.interval = 1;
            config.heartbeat.timeout_multiplier = 1;
            config.heartbeat.grace_period = 1;
            config.heartbeat.check_interval = 0.2;
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let (registration, api, dns, token) = runtime.block_on(async {
            let metrics = Metrics::new().expect("metrics");
            let store = SqliteStore::open(&config.database.path, Some(metrics.clone()))
                .expect("database opens");
            let token = if mode == AuthMode::Token {
                let (_, token) = tokens::create(&store, "loadgen", false, SystemTime::now())
                    .await
                    .expect("token created");
                Some(token)
            } else {
                None
            };
            let registration = TcpListener::bind((LOOPBACK, 0)).await.expect("bind");
            let api = TcpListener::bind((LOOPBACK, 0)).await.expect("bind");
            // Port 0: the server finds a port free for both UDP and TCP.
            let dns = prism_server::shell::dns::bind(LOOPBACK.into(), 0, 1, 0)
                .await
                .expect("bind DNS");
            let addresses = (
                registration.local_addr().expect("address"),
                api.local_addr().expect("address"),
                dns.local_addr,
            );
            let core = Node::start(config, Arc::new(store), Arc::new(SystemClock), metrics)
                .await
                .expect("core starts");
            let mut listeners = Listeners::new(registration);
            listeners.api = Some(api);
            listeners.dns_udp = dns.udp;
            listeners.dns_tcp = Some(dns.tcp);
            tokio::spawn(serve(core, listeners, async {
                let _ = stopped.await;
            }));
            (addresses.0, addresses.1, addresses.2, token)
        });
        Self {
            registration,
            api,
            dns,
            token,
            runtime: Some(runtime),
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// What one loadgen run produced.
pub struct Run {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output (the summary).
    pub stdout: String,
    /// Standard error (progress, errors).
    pub stderr: String,
    /// The JSON report, when the run wrote one.
    pub report: Option<Report>,
    /// Where the HTML report was written.
    pub html: PathBuf,
    /// Keeps the report files until the test ends.
    pub dir: tempfile::TempDir,
}

impl Run {
    /// The parsed report; fails the test with the run's output when there is none.
    pub fn report(&self) -> &Report {
        self.report.as_ref().unwrap_or_else(|| {
            panic!(
                "loadgen wrote no report (exit {:?})\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// Asserts a clean single-workload run: exit 0, the achieved rate within 5 % of
    /// `target_rate`, no errors. Returns the summary for further checks.
    pub fn assert_clean(&self, target_rate: f64) -> &Summary {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        let summary = &self.report().workloads[0].summary;
        assert_rate_within_5_percent(summary.achieved_rate, target_rate);
        assert_eq!(summary.errors, 0, "errors: {:?}", summary.errors_by_kind);
        summary
    }
}

/// The loadgen binary with `args` plus `--json` and `--html` into `dir`, environment tokens
/// removed; not started yet.
pub fn loadgen_command(args: &[&str], dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prism-loadgen"));
    command
        .args(args)
        .arg("--json")
        .arg(dir.join("report.json"))
        .arg("--html")
        .arg(dir.join("report.html"))
        .env_remove("PRISM_LOADGEN_TOKEN")
        .env_remove("PRISM_LOADGEN_API_TOKEN");
    command
}

/// Runs the loadgen binary with `args` plus `--json` and `--html` into a temporary directory.
pub fn loadgen(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = loadgen_command(args, dir.path())
        .output()
        .expect("loadgen binary runs");
    finished(output, dir)
}

/// Runs the loadgen binary with the whitespace-separated arguments of `line` (see
/// [`loadgen`]); reads like the command a user types.
pub fn loadgen_line(line: &str) -> Run {
    loadgen(&line.split_whitespace().collect::<Vec<_>>())
}

/// The run of a loadgen process that wrote its reports into `dir`.
pub fn finished(output: Output, dir: tempfile::TempDir) -> Run {
    let json = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    // A drill writes its own report, which has no run-report schema.
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|text| serde_json::from_str::<serde_json::Value>(&text).expect("JSON"))
        .filter(|json| json.get("schema").is_some())
        .map(|json| {
            serde_json::from_value::<Report>(json).expect("the JSON report matches the schema")
        });
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report,
        html,
        dir,
    }
}

/// Asserts `achieved` is within 5 % of `target`.
pub fn assert_rate_within_5_percent(achieved: f64, target: f64) {
    assert!(
        (achieved - target).abs() <= target * 0.05,
        "achieved rate {achieved}/s is not within 5 % of the target {target}/s"
    );
}
