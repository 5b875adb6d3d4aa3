//! A scripted session against a real server (registrations, heartbeats, an IP change, bad
//! frames, capacity, API calls good and bad, DNS, hosts going offline), then the metrics are
//! checked: every SPEC §8 name is exported, every counter the session should have moved did,
//! the host gauges equal the registry, both ports serve the same exposition text and
//! `promtool check metrics` accepts it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prism_server::core::protocol::{Response, Status};
use prism_server::store::SqliteStore;
use prism_testkit::TestServer;
use prism_testkit::dns::{assert_rcode, query};
use prism_testkit::exposition::{promtool_complaints, sample, sum};
use prism_testkit::http::HttpClient;
use prism_testkit::protocol::{Client, frame, registration};
use prism_testkit::setup::{create_token, token_config};

/// Every metric SPEC §8 names, plus the extra ones it asks for.
const SPEC_METRICS: [&str; 23] = [
    "prism_http_requests_total",
    "prism_http_request_duration_seconds",
    "prism_tcp_connections_total",
    "prism_tcp_active_connections",
    "prism_tcp_connection_duration_seconds",
    "prism_registered_hosts_total",
    "prism_online_hosts_total",
    "prism_offline_hosts_total",
    "prism_messages_processed_total",
    "prism_message_processing_duration_seconds",
    "prism_database_queries_total",
    "prism_database_query_duration_seconds",
    "prism_database_connection_pool_size",
    "prism_database_connection_pool_used",
    "prism_dns_queries_total",
    "prism_host_registrations_total",
    "prism_host_updates_total",
    "prism_heartbeat_timeouts_total",
    "prism_build_info",
    "prism_config_last_reload_timestamp_seconds",
    "prism_config_last_reload_successful",
    "prism_config_hash",
    "prism_maintenance_mode",
];

const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const MAX_CONNECTIONS: usize = 4;
const LOCAL_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A host heartbeating over its own persistent connection.
struct Heartbeater {
    client: Client,
    payload: Vec<u8>,
}

impl Heartbeater {
    async fn connect(server: &TestServer, source: IpAddr, name: &str, token: &str) -> Self {
        Self {
            client: server.connect_from(source).await,
            payload: registration(name, Some(token)),
        }
    }

    async fn beat(&mut self) -> Response {
        self.client.call(&self.payload).await
    }
}

/// Waits until no registration connection is open (at most 2 s), so the capacity limit
/// only sees the connections a step opens itself.
async fn wait_until_idle(server: &TestServer) {
    for _ in 0..100 {
        if server.node().metrics().tcp_active_connections.get() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("earlier connections are closed within 2 s");
}

/// Heartbeats `hosts` every 100 ms until `done` holds (at most 8 s).
async fn heartbeat_until(hosts: &mut [Heartbeater], done: impl Fn() -> bool) -> bool {
    for _ in 0..80 {
        for host in hosts.iter_mut() {
            let reply = host.beat().await;
            assert_eq!(reply.status, Status::Success, "{reply:?}");
        }
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_session_moves_every_metric_and_promtool_accepts_both_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = prism_server::Metrics::new().expect("metrics");
    let store =
        SqliteStore::open(&dir.path().join("prism.db"), Some(metrics.clone())).expect("store");
    let alice = create_token(&store, "alice", false).await;
    let ops = create_token(&store, "ops", true).await;
    let mut config = token_config();
    config.server.max_connections = MAX_CONNECTIONS;
    config.heartbeat.interval = 1;
    config.heartbeat.timeout_multiplier = 1;
    config.heartbeat.grace_period = 0;
    config.heartbeat.check_interval = 0.05;
    let server = TestServer::builder(config)
        .store(store)
        .metrics(metrics)
        .api()
        .dns()
        .start()
        .await;
    let core = Arc::clone(server.node());

    // Registrations, a heartbeat and a move to another address.
    for name in ["web-01", "db-01"] {
        server.register(name, Some(&alice)).await;
    }
    server.register("web-01", Some(&alice)).await;
    let moved = server
        .register_from(OTHER_HOST, "db-01", Some(&alice))
        .await;
    assert!(
        moved.message.contains("127.0.0.2"),
        "IP change acknowledged: {moved:?}"
    );
    server.register("tmp-01", Some(&ops)).await;

    // Refused registrations and bad frames.
    let refused = server
        .connect()
        .await
        .call(&registration("web-01", Some(&ops)))
        .await;
    assert_eq!(
        refused.status,
        Status::Error,
        "another owner's name: {refused:?}"
    );
    let refused = server
        .connect()
        .await
        .call(&registration("x-01", Some("prism_bogus")))
        .await;
    assert_eq!(refused.status, Status::Error, "bad token: {refused:?}");
    for bad in [frame(b"{not json"), u32::MAX.to_be_bytes().to_vec()] {
        let mut client = server.connect().await;
        client.send_raw(&bad).await;
        let reply = client.recv().await.expect("one error frame");
        assert_eq!(reply.status, Status::Error, "{reply:?}");
        assert!(client.recv().await.is_none(), "then closed");
    }
    let mut truncated = server.connect().await;
    truncated.send_raw(&[0, 0, 0, 100, b'{']).await;
    drop(truncated);

    // Over capacity: the connection after MAX_CONNECTIONS is refused.
    wait_until_idle(&server).await;
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut client = server.connect().await;
        let reply = client.call(&registration("web-01", Some(&alice))).await;
        assert_eq!(reply.status, Status::Success, "{reply:?}");
        held.push(client);
    }
    let mut extra = server.connect().await;
    let reply = extra.recv().await.expect("refusal");
    assert_eq!(reply.message, "Server at capacity");
    drop((held, extra));
    wait_until_idle(&server).await;

    // tmp-01 goes offline, comes back (reconnection), and goes offline again, while the
    // others keep heartbeating.
    let mut others = [
        Heartbeater::connect(&server, LOCAL_HOST, "web-01", &alice).await,
        Heartbeater::connect(&server, OTHER_HOST, "db-01", &alice).await,
    ];
    let offline = || core.registry().counts().offline == 1;
    assert!(
        heartbeat_until(&mut others, offline).await,
        "tmp-01 went offline"
    );
    let back = server.register("tmp-01", Some(&ops)).await;
    assert!(back.message.contains("reconnected"), "{back:?}");
    assert!(
        heartbeat_until(&mut others, offline).await,
        "tmp-01 went offline again"
    );

    // API calls, good and bad.
    let api = server.api();
    let alice_token = Some(alice.as_str());
    let (status, body) = api.get_json("/api/hosts", alice_token).await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(
        api.get_json("/api/hosts?per_page=1001", alice_token)
            .await
            .0,
        400
    );
    assert_eq!(api.get_json("/api/hosts", None).await.0, 401);
    assert_eq!(api.get_json("/api/hosts/db-01", alice_token).await.0, 200);
    assert_eq!(api.get_json("/api/hosts/nope-01", alice_token).await.0, 404);
    assert_eq!(api.get_json("/api/stats", None).await.0, 200);
    assert_eq!(api.get_json("/api/health", None).await.0, 200);
    assert_eq!(api.get_json("/not/a/route", None).await.0, 404);

    // DNS: an online host and an unknown one.
    let mut dns = server.udp_client();
    for (name, rcode) in [
        ("web-01.managed.prism.local.", ResponseCode::NoError),
        ("nope.managed.prism.local.", ResponseCode::NXDomain),
    ] {
        let answer = query(&mut dns, name, RecordType::A).await;
        assert_rcode(&answer, rcode);
    }

    // Both ports serve the metrics; the scrape over the registration port is itself an
    // open connection.
    let tcp_text = HttpClient::new(server.registration_addr()).scrape().await;
    assert!(
        sample(&tcp_text, "prism_tcp_active_connections").unwrap_or_default() >= 1.0,
        "the scraping connection counts as active"
    );
    for host in &mut others {
        host.beat().await;
    }
    let text = api.scrape().await;
    let counts = core.registry().counts();

    for name in SPEC_METRICS {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is exported:\n{text}"
        );
        assert!(
            tcp_text.contains(&format!("# TYPE {name} ")),
            "{name} on port 8080 too"
        );
    }
    let gauge = |name: &str| sample(&text, name).unwrap_or(-1.0);
    assert_eq!(
        (counts.registered, counts.online, counts.offline),
        (3, 2, 1)
    );
    assert_eq!(gauge("prism_registered_hosts_total"), 3.0);
    assert_eq!(gauge("prism_online_hosts_total"), 2.0);
    assert_eq!(gauge("prism_offline_hosts_total"), 1.0);

    let moved = |name: &str, labels: &[&str]| {
        let total = sum(&text, name, labels);
        assert!(total > 0.0, "{name}{labels:?} moved (is {total})\n{text}");
    };
    moved("prism_tcp_connections_total", &["status=\"accepted\""]);
    moved("prism_tcp_connections_total", &["status=\"rejected\""]);
    moved("prism_tcp_connections_total", &["status=\"failed\""]);
    moved("prism_tcp_connection_duration_seconds_count", &[]);
    moved(
        "prism_messages_processed_total",
        &["message_type=\"registration\"", "status=\"success\""],
    );
    moved(
        "prism_messages_processed_total",
        &["message_type=\"registration\"", "status=\"error\""],
    );
    moved(
        "prism_messages_processed_total",
        &["message_type=\"invalid\"", "status=\"error\""],
    );
    moved("prism_message_processing_duration_seconds_count", &[]);
    moved(
        "prism_database_queries_total",
        &["operation=\"upsert_host\"", "status=\"success\""],
    );
    moved("prism_database_query_duration_seconds_count", &[]);
    assert_eq!(gauge("prism_database_connection_pool_size"), 1.0);
    assert!((0.0..=1.0).contains(&gauge("prism_database_connection_pool_used")));
    moved(
        "prism_dns_queries_total",
        &["query_type=\"A\"", "status=\"NOERROR\""],
    );
    moved("prism_dns_queries_total", &["status=\"NXDOMAIN\""]);
    moved("prism_host_registrations_total", &["status=\"success\""]);
    moved("prism_host_registrations_total", &["status=\"rejected\""]);
    for kind in ["heartbeat", "ip_change", "reconnection", "offline"] {
        moved("prism_host_updates_total", &[&format!("kind=\"{kind}\"")]);
    }
    assert!(gauge("prism_heartbeat_timeouts_total") >= 2.0);
    moved("prism_build_info", &["version=\""]);
    moved("prism_config_last_reload_timestamp_seconds", &[]);
    assert_eq!(gauge("prism_config_last_reload_successful"), 1.0);
    moved("prism_config_hash", &[]);
    assert_eq!(gauge("prism_maintenance_mode"), 0.0);
    for (endpoint, status) in [
        ("/api/hosts", "200"),
        ("/api/hosts", "400"),
        ("/api/hosts", "401"),
        ("/api/hosts/{hostname}", "200"),
        ("/api/hosts/{hostname}", "404"),
        ("/api/stats", "200"),
        ("/api/health", "200"),
        ("/metrics", "200"),
        ("unmatched", "404"),
    ] {
        moved(
            "prism_http_requests_total",
            &[
                "method=\"GET\"",
                &format!("endpoint=\"{endpoint}\""),
                &format!("status=\"{status}\""),
            ],
        );
    }
    moved(
        "prism_http_request_duration_seconds_count",
        &["endpoint=\"/api/hosts\""],
    );
    for bucket in ["2.5", "5", "10"] {
        assert!(
            text.contains(&format!(
                "prism_http_request_duration_seconds_bucket{{endpoint=\"/api/hosts\",method=\"GET\",le=\"{bucket}\"}}"
            )),
            "histogram buckets straddle the alert thresholds ({bucket} s)"
        );
    }

    for (port, exposition) in [("API port", &text), ("registration port", &tcp_text)] {
        let complaints = promtool_complaints(exposition);
        assert!(
            complaints.is_empty(),
            "promtool check metrics on the {port}: {complaints:#?}"
        );
    }
    server.shutdown().await;
}
