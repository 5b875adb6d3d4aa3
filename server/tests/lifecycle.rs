//! Host lifecycle under paused tokio time (SPEC §4): offline within 1 s of the deadline,
//! reconnection, moves, cleanup, ownership, case-insensitive names. Frames go straight to a
//! test server's frame handler (from peers no loopback socket can be) while its maintenance
//! loop runs as in production.

use std::time::{Duration, SystemTime};

use prism_server::config::AuthMode;
use prism_server::core::protocol::{Response, Status};
use prism_server::core::registry::HostStatus;
use prism_server::store::MemoryStore;
use prism_server::{Config, TokioClock};
use prism_testkit::TestServer;
use prism_testkit::setup::create_token;

/// Offline deadline with the default heartbeat settings (60 s × 2 + 30 s).
const OFFLINE_AFTER: Duration = Duration::from_secs(150);

/// Wall time that advances with paused tokio time from a fixed origin.
fn test_clock() -> TokioClock {
    TokioClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// The defaults in open auth mode.
fn open_auth() -> Config {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config
}

/// A server on `store` under `clock`, its maintenance loop running as in production.
async fn start(config: Config, store: &MemoryStore, clock: TokioClock) -> TestServer {
    TestServer::builder(config)
        .store(store.clone())
        .clock(clock)
        .start()
        .await
}

/// Registers `hostname` as if over a connection from `from`, through the frame handler.
async fn register(server: &TestServer, hostname: &str, from: &str) -> Response {
    let peer = from.parse().expect("address");
    server.handle_registration(peer, hostname, None).await
}

/// `hostname`'s state, if the registry knows it.
fn status(server: &TestServer, hostname: &str) -> Option<HostStatus> {
    server
        .node()
        .registry()
        .get(hostname)
        .map(|host| host.status)
}

#[tokio::test(start_paused = true)]
async fn host_goes_offline_within_one_second_of_its_deadline() {
    let store = MemoryStore::new();
    let server = start(open_auth(), &store, test_clock()).await;
    assert_eq!(
        register(&server, "web-01", "192.0.2.1").await.status,
        Status::Success
    );
    tokio::time::sleep(OFFLINE_AFTER - Duration::from_millis(100)).await;
    assert_eq!(
        status(&server, "web-01"),
        Some(HostStatus::Online),
        "online before the deadline"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        status(&server, "web-01"),
        Some(HostStatus::Offline),
        "offline no later than deadline + 1 s"
    );
    let metrics = server.node().metrics();
    assert_eq!(metrics.heartbeat_timeouts.get(), 1);
    assert_eq!(metrics.offline_hosts.get(), 1);
    assert_eq!(metrics.online_hosts.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_push_the_deadline_back() {
    let store = MemoryStore::new();
    let server = start(open_auth(), &store, test_clock()).await;
    register(&server, "web-01", "192.0.2.1").await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let response = register(&server, "web-01", "192.0.2.1").await;
        assert!(response.message.contains("Heartbeat"), "{response:?}");
    }
    assert_eq!(
        status(&server, "web-01"),
        Some(HostStatus::Online),
        "300 s of heartbeats"
    );
    let host = server.node().registry().get("web-01").expect("host");
    assert_eq!(
        host.last_seen
            .duration_since(host.first_seen)
            .expect("ordered"),
        Duration::from_secs(300),
        "last_seen is the last heartbeat"
    );
}

#[tokio::test(start_paused = true)]
async fn offline_host_reconnects_with_its_new_address() {
    let store = MemoryStore::new();
    let server = start(open_auth(), &store, test_clock()).await;
    register(&server, "web-01", "192.0.2.1").await;
    tokio::time::sleep(OFFLINE_AFTER + Duration::from_secs(2)).await;
    assert_eq!(status(&server, "web-01"), Some(HostStatus::Offline));
    let response = register(&server, "web-01", "192.0.2.9").await;
    assert_eq!(response.status, Status::Success);
    assert!(
        response
            .message
            .contains("reconnected at 192.0.2.9 (was 192.0.2.1)"),
        "{response:?}"
    );
    assert_eq!(status(&server, "web-01"), Some(HostStatus::Online));
    assert_eq!(
        store.hosts()[0].address.to_string(),
        "192.0.2.9",
        "move is durable"
    );
    let updates = &server.node().metrics().host_updates;
    assert_eq!(updates.with_label_values(&["reconnection"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn moves_between_addresses_v4_and_v6_are_reported_and_stored() {
    let mut config = open_auth();
    // Four registrations of one host at one instant: past the per-host limit's burst.
    config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
    let store = MemoryStore::new();
    let server = start(config, &store, test_clock()).await;
    register(&server, "web-01", "192.0.2.1").await;
    let to_v6 = register(&server, "web-01", "2001:db8::7").await;
    assert!(
        to_v6.message.contains("changed: 192.0.2.1 -> 2001:db8::7"),
        "{to_v6:?}"
    );
    assert_eq!(store.hosts()[0].address.to_string(), "2001:db8::7");
    let to_v4 = register(&server, "web-01", "198.51.100.4").await;
    assert!(
        to_v4.message.contains("2001:db8::7 -> 198.51.100.4"),
        "{to_v4:?}"
    );
    // An IPv4-mapped IPv6 peer (a dual-stack listener) is the IPv4 host it maps.
    let mapped = register(&server, "web-01", "::ffff:198.51.100.4").await;
    assert!(mapped.message.contains("Heartbeat"), "{mapped:?}");
    assert_eq!(
        server
            .node()
            .metrics()
            .host_updates
            .with_label_values(&["ip_change"])
            .get(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn offline_hosts_are_deleted_after_cleanup_after_days() {
    let mut config = open_auth();
    config.heartbeat.cleanup_after_days = 2;
    let store = MemoryStore::new();
    let server = start(config, &store, test_clock()).await;
    register(&server, "old-01", "192.0.2.1").await;
    register(&server, "keep-01", "192.0.2.2").await;
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    register(&server, "keep-01", "192.0.2.2").await;
    tokio::time::sleep(Duration::from_secs(86_400) - Duration::from_secs(5)).await;
    assert_eq!(
        status(&server, "old-01"),
        Some(HostStatus::Offline),
        "kept until 2 days"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(status(&server, "old-01"), None, "deleted after 2 days");
    assert_eq!(
        status(&server, "keep-01"),
        Some(HostStatus::Offline),
        "1 day offline: kept"
    );
    let stored: Vec<_> = store.hosts().into_iter().map(|h| h.hostname).collect();
    assert_eq!(stored, ["keep-01"], "deleted from the store too");
    assert_eq!(server.node().metrics().registered_hosts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn hostnames_are_case_insensitive() {
    let store = MemoryStore::new();
    let server = start(open_auth(), &store, test_clock()).await;
    register(&server, "Web-01", "192.0.2.1").await;
    let again = register(&server, "WEB-01", "192.0.2.1").await;
    assert!(
        again.message.contains("Heartbeat accepted for 'web-01'"),
        "{again:?}"
    );
    assert_eq!(server.node().registry().counts().registered, 1);
    assert!(server.node().registry().get("wEb-01").is_some());
}

#[tokio::test(start_paused = true)]
async fn restart_restores_state_from_last_seen() {
    let store = MemoryStore::new();
    // One clock for both lifetimes, as the wall clock runs on across a real restart.
    let clock = test_clock();
    let server = start(open_auth(), &store, clock).await;
    register(&server, "fresh", "192.0.2.1").await;
    register(&server, "stale", "192.0.2.2").await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    register(&server, "fresh", "192.0.2.1").await;
    // Write-behind: the heartbeat's freshness reaches the store within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.shutdown().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let restarted = start(open_auth(), &store, clock).await;
    assert_eq!(
        status(&restarted, "fresh"),
        Some(HostStatus::Online),
        "seen 61 s ago"
    );
    assert_eq!(
        status(&restarted, "stale"),
        Some(HostStatus::Offline),
        "seen 161 s ago"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_durable_write_reverts_the_registration() {
    let store = MemoryStore::new();
    let server = start(open_auth(), &store, test_clock()).await;
    store.set_failing(true);
    let response = register(&server, "web-01", "192.0.2.1").await;
    assert_eq!(response.status, Status::Error);
    assert!(
        response.message.contains("registration not saved"),
        "{response:?}"
    );
    assert_eq!(
        status(&server, "web-01"),
        None,
        "not acknowledged, not visible"
    );
    store.set_failing(false);
    assert_eq!(
        register(&server, "web-01", "192.0.2.1").await.status,
        Status::Success
    );
    assert_eq!(
        server
            .node()
            .metrics()
            .host_registrations
            .with_label_values(&["failed"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn ownership_is_kept_by_the_first_owner() {
    let store = MemoryStore::new();
    let alice = create_token(&store, "alice", false).await;
    let bob = create_token(&store, "bob", false).await;
    let server = start(Config::default(), &store, test_clock()).await;
    async fn register(server: &TestServer, token: &str, from: &str) -> Response {
        let peer = from.parse().expect("address");
        server.handle_registration(peer, "db-01", Some(token)).await
    }
    assert_eq!(
        register(&server, &alice, "192.0.2.1").await.status,
        Status::Success
    );
    let refused = register(&server, &bob, "192.0.2.66").await;
    assert_eq!(refused.status, Status::Error);
    let host = server.node().registry().get("db-01").expect("host");
    assert_eq!(
        (&*host.owner, host.address.to_string().as_str()),
        ("alice", "192.0.2.1")
    );
    // Even offline, the name stays with its owner.
    tokio::time::sleep(OFFLINE_AFTER + Duration::from_secs(2)).await;
    let alice_again = register(&server, &alice, "192.0.2.1").await;
    assert!(
        alice_again.message.contains("reconnected"),
        "{alice_again:?}"
    );
}
