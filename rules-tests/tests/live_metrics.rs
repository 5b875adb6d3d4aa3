//! A live server's `/metrics` has what the rules and the dashboard use: every series they
//! select exists at 0 before any traffic, and every exported name is there once one
//! registration, one API request and one DNS query have touched every label set.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::sync::Arc;

use prism_rules_tests::metric_names::{
    Presence, dashboard_exprs, dashboard_variable_queries, load_exported_metrics,
    missing_from_exposition, substitute_grafana_variables,
};
use prism_rules_tests::series::{
    exposition_as_input_series, presence_test, prism_selectors_in_promql, selector_name,
};
use prism_rules_tests::{load_alert_rules, load_dashboard, run_tool};
use prism_server::config::AuthMode;
use prism_server::store::{SqliteStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Label values the server knows in advance, so their series must exist before the first
/// event even where no rule or panel selects them one by one.
fn known_label_sets() -> Vec<String> {
    let mut selectors = Vec::new();
    for (message_type, statuses) in [
        ("registration", &["success", "error"][..]),
        ("invalid", &["error"][..]),
        ("unknown", &["error"][..]),
    ] {
        for status in statuses {
            selectors.push(format!(
                r#"prism_messages_processed_total{{message_type="{message_type}",status="{status}"}}"#
            ));
        }
        selectors.push(format!(
            r#"prism_message_processing_duration_seconds_count{{message_type="{message_type}"}}"#
        ));
    }
    for query_type in ["A", "AAAA", "SOA", "NS"] {
        for rcode in ["NOERROR", "NXDOMAIN", "REFUSED"] {
            selectors.push(format!(
                r#"prism_dns_queries_total{{query_type="{query_type}",status="{rcode}"}}"#
            ));
        }
    }
    selectors
}

/// An in-process server on loopback ports (SQLite in a temp dir, open auth), stopped on drop.
struct Server {
    registration: SocketAddr,
    api: SocketAddr,
    dns: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let mut config = Config::default();
        config.auth.mode = AuthMode::Open;
        let metrics = Metrics::new().expect("metrics");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("prism.db"), Some(metrics.clone()))
            .expect("open the SQLite store");
        let core = Node::start(
            config,
            Arc::new(store) as Arc<dyn Store>,
            Arc::new(SystemClock),
            metrics,
        )
        .await
        .expect("core starts");
        let registration = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dns = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addresses = (
            registration.local_addr().expect("addr"),
            api.local_addr().expect("addr"),
            dns.local_addr().expect("addr"),
        );
        let mut listeners = Listeners::new(registration);
        listeners.api = Some(api);
        listeners.dns_udp = vec![dns];
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(core, listeners, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            registration: addresses.0,
            api: addresses.1,
            dns: addresses.2,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn http_get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(self.api)
            .await
            .expect("connect to the API");
        let request = format!("GET {path} HTTP/1.1\r\nHost: prism\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read response");
        response
    }

    /// The `/metrics` body.
    async fn metrics(&self) -> String {
        let response = self.http_get("/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server shuts down");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A minimal DNS query for `name`/A, built by hand so this test needs no DNS library.
fn dns_query(name: &str) -> Vec<u8> {
    let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        packet.push(u8::try_from(label.len()).expect("short label"));
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}

/// Every `prism_*` selector of the rules and the dashboard (Grafana variables replaced by
/// values Prometheus accepts), except those of families that appear lazily or not yet.
fn selectors_the_monitoring_needs() -> Vec<String> {
    let exported = load_exported_metrics().expect("rules-tests/exported-metrics.txt");
    let not_from_start: Vec<String> = exported
        .iter()
        .filter(|metric| metric.presence != Presence::FromStart)
        .flat_map(|metric| metric.series_names())
        .collect();
    let dashboard = load_dashboard().expect("dashboard loads");
    let mut exprs: Vec<String> = load_alert_rules()
        .expect("alert rules load")
        .into_iter()
        .map(|rule| rule.expr)
        .collect();
    exprs.extend(dashboard_exprs(&dashboard));
    exprs.extend(dashboard_variable_queries(&dashboard));
    let mut selectors: Vec<String> = exprs
        .iter()
        .flat_map(|expr| prism_selectors_in_promql(&substitute_grafana_variables(expr)))
        .filter(|selector| {
            !not_from_start
                .iter()
                .any(|name| name == selector_name(selector))
        })
        .collect();
    selectors.sort();
    selectors.dedup();
    selectors
}

#[tokio::test]
async fn every_series_the_rules_and_dashboard_select_exists_before_any_traffic() {
    let server = Server::start().await;
    let page = server.metrics().await;
    server.shutdown().await;

    let mut selectors = selectors_the_monitoring_needs();
    assert!(
        selectors.len() > 10,
        "too few selectors found in rules and dashboard: {selectors:?}"
    );
    selectors.extend(known_label_sets());
    let dir = tempfile::tempdir().expect("tempdir");
    let test_file = dir.path().join("fresh-server.test.yml");
    std::fs::write(
        &test_file,
        presence_test(
            &exposition_as_input_series(&page, "prism", "prism:8081"),
            &selectors,
        ),
    )
    .expect("write the presence test");
    let run = run_tool(
        "promtool",
        &[
            OsStr::new("test"),
            OsStr::new("rules"),
            test_file.as_os_str(),
        ],
    )
    .unwrap_or_else(|problem| panic!("{problem}"));
    assert!(
        run.success,
        "a fresh server's /metrics lacks series that rules or dashboard panels select (each \
         `absent(…)` below that returned 1 names one; export it at 0 in \
         Metrics::touch_known_series, or mark its family `lazy` in exported-metrics.txt if \
         its label values cannot be known in advance):\n{}\n--- /metrics before any traffic ---\n{page}",
        run.output
    );
}

#[tokio::test]
async fn every_name_the_monitoring_uses_is_on_a_live_metrics_page() {
    let server = Server::start().await;

    let payload = br#"{"version":"1.0","type":"registration","hostname":"web-01"}"#;
    let mut client = TcpStream::connect(server.registration)
        .await
        .expect("connect");
    let mut frame = u32::try_from(payload.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(payload);
    client.write_all(&frame).await.expect("send registration");
    let mut header = [0u8; 4];
    client.read_exact(&mut header).await.expect("response");

    let resolver = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    resolver
        .send_to(&dns_query("web-01.managed.prism.local"), server.dns)
        .await
        .expect("send query");
    let mut answer = [0u8; 512];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        resolver.recv_from(&mut answer),
    )
    .await
    .expect("DNS answers in time")
    .expect("receive answer");

    assert!(
        server
            .http_get("/api/health")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let page = server.metrics().await;
    server.shutdown().await;
    let exported = load_exported_metrics().expect("rules-tests/exported-metrics.txt");
    let missing = missing_from_exposition(&page, &exported);
    assert!(
        missing.is_empty(),
        "names in rules-tests/exported-metrics.txt (used by rules and dashboard) are not on \
         the live /metrics page: {missing:?} (families marked `upcoming` are not asked for)"
    );
}
