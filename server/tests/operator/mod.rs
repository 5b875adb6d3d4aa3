//! Helpers for the operator-surface tests (REST API, metrics, HTTP on the registration port):
//! an in-process server with registration, API and DNS listeners on loopback port 0, and small
//! protocol and HTTP clients.

#![allow(dead_code)]

#[path = "../support/serve_task.rs"]
mod serve_task;
pub use serve_task::ServeTask;
#[path = "../support/wire.rs"]
mod wire;
#[allow(unused_imports)]
pub use wire::{frame, registration_frame};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prism_server::store::Store;
use prism_server::{Config, Listeners, Metrics, Node, SystemClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

/// Longest any single network step in a test may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server running in this process.
pub struct OperatorServer {
    /// Registration port.
    pub tcp: SocketAddr,
    /// REST API port.
    pub api: SocketAddr,
    /// DNS over UDP.
    pub dns: SocketAddr,
    /// The running core, to compare the API with the registry.
    pub core: Arc<Node>,
    /// HTTP client for both ports.
    pub http: reqwest::Client,
    server: ServeTask,
}

impl OperatorServer {
    /// Starts `config` on `store` with every listener on 127.0.0.1, port 0.
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Self {
        Self::start_with_metrics(config, store, Metrics::new().expect("metrics")).await
    }

    /// Like [`Self::start`], on `metrics` (which a SQLite store may already record into).
    pub async fn start_with_metrics(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Metrics,
    ) -> Self {
        let registration = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dns = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let (tcp_addr, api_addr) = (
            registration.local_addr().expect("addr"),
            api.local_addr().expect("addr"),
        );
        let dns_addr = dns.local_addr().expect("addr");
        let core = Node::start(config, store, Arc::new(SystemClock), metrics)
            .await
            .expect("core starts");
        let mut listeners = Listeners::new(registration);
        listeners.api = Some(api);
        listeners.dns_udp = vec![dns];
        let server = ServeTask::spawn(Arc::clone(&core), listeners);
        let http = reqwest::Client::builder()
            .timeout(IO_TIMEOUT)
            .build()
            .expect("http client");
        Self {
            tcp: tcp_addr,
            api: api_addr,
            dns: dns_addr,
            core,
            http,
            server,
        }
    }

    /// `http://<api>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// `http://<registration port>/<path>`.
    pub fn tcp_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.tcp)
    }

    /// GET on the API port, with a bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("API answers")
    }

    /// GET returning status and JSON body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let response = self.get(path, token).await;
        let status = response.status().as_u16();
        let body = response.json().await.expect("JSON body");
        (status, body)
    }

    /// The metrics text from the API port.
    pub async fn scrape(&self) -> String {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status().as_u16(), 200, "/metrics answers 200");
        response.text().await.expect("metrics text")
    }

    /// Stops the server and waits for its graceful shutdown.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Token-mode defaults without the rate limit.
pub fn token_config() -> Config {
    let mut config = Config::default();
    config.rate_limit.registrations_per_minute = 0;
    config
}

/// Creates a token in `store` (before the core starts, so its cache holds it).
pub async fn token(store: &dyn Store, owner: &str, admin: bool) -> String {
    prism_server::core::tokens::create(store, owner, admin, SystemTime::now())
        .await
        .expect("token")
        .1
}

/// Connects to `server`, from `local` when given (e.g. 127.0.0.2 to appear as another host).
pub async fn connect(server: SocketAddr, local: Option<IpAddr>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(local) = local {
        socket
            .bind(SocketAddr::new(local, 0))
            .expect("bind local address");
    }
    tokio::time::timeout(IO_TIMEOUT, socket.connect(server))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads one response frame; `None` when the server closed the connection.
pub async fn read_response(stream: &mut TcpStream) -> Option<serde_json::Value> {
    let read = async {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await.ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut payload).await.ok()?;
        serde_json::from_slice(&payload).ok()
    };
    tokio::time::timeout(IO_TIMEOUT, read)
        .await
        .expect("a response or a close in time")
}

/// Sends raw bytes and reads one response.
pub async fn exchange(stream: &mut TcpStream, bytes: &[u8]) -> Option<serde_json::Value> {
    stream.write_all(bytes).await.expect("write");
    read_response(stream).await
}

/// Registers `hostname` over a fresh connection from `local`; returns the response.
pub async fn register(
    server: SocketAddr,
    local: Option<IpAddr>,
    hostname: &str,
    token: Option<&str>,
) -> serde_json::Value {
    let mut stream = connect(server, local).await;
    exchange(&mut stream, &registration_frame(hostname, token))
        .await
        .expect("a response")
}

/// The value of the sample `series` (name with labels exactly as exposed) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}

/// Sum of every sample of `name` whose labels contain all of `labels` (`key="value"` pairs).
pub fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, l)) => (n, l),
                None => (series, ""),
            };
            (series_name == name && labels.iter().all(|label| series_labels.contains(label)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Runs `promtool check metrics` on `text` and returns its complaints, except the documented
/// `_total` suffix on the three host gauges. Fails the test when promtool is missing.
pub fn promtool_complaints(text: &str) -> Vec<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const ALLOWED: [&str; 3] = [
        "prism_registered_hosts_total",
        "prism_online_hosts_total",
        "prism_offline_hosts_total",
    ];
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool must be installed (Debian: apt-get install --no-install-recommends prometheus)",
        );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool exits non-zero for the allowed lint lines too, so its lines decide.
    all.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !ALLOWED.iter().any(|name| line.starts_with(name)))
        .map(str::to_owned)
        .collect()
}
