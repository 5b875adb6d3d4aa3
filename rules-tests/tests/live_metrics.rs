//! The names the rules and the dashboard depend on are exported by a live server's `/metrics`,
//! after one registration, one API request and one DNS query have touched every label set.

use std::sync::Arc;

use prism_rules_tests::metric_names::{load_exported_metrics, missing_from_exposition};
use prism_server::config::AuthMode;
use prism_server::store::{SqliteStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
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

#[tokio::test]
async fn every_name_the_monitoring_uses_is_on_a_live_metrics_page() {
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
    let (registration_addr, api_addr, dns_addr) = (
        registration.local_addr().expect("addr"),
        api.local_addr().expect("addr"),
        dns.local_addr().expect("addr"),
    );
    let mut listeners = Listeners::new(registration);
    listeners.api = Some(api);
    listeners.dns_udp = vec![dns];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(core, listeners, async {
        let _ = stopped.await;
    }));

    let payload = br#"{"version":"1.0","type":"registration","hostname":"web-01"}"#;
    let mut client = TcpStream::connect(registration_addr)
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
        .send_to(&dns_query("web-01.managed.prism.local"), dns_addr)
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
        http_get(api_addr, "/api/health")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let page = http_get(api_addr, "/metrics").await;
    let exported = load_exported_metrics().expect("rules-tests/exported-metrics.txt");
    let missing = missing_from_exposition(&page, &exported);
    assert!(
        missing.is_empty(),
        "names in rules-tests/exported-metrics.txt (used by rules and dashboard) are not on \
         the live /metrics page: {missing:?}"
    );
    let _ = stop.send(());
    server.await.expect("server shuts down");
}
