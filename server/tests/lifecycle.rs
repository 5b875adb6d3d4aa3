//! Host lifecycle under paused tokio time (SPEC §4): offline within 1 s of the deadline,
//! reconnection, moves, cleanup, ownership, case-insensitive names. Drives the sans-IO core
//! directly, with the maintenance loop running as in the server.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prism_server::config::AuthMode;
use prism_server::core::protocol::{Response, Status};
use prism_server::core::registry::HostStatus;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Metrics, Node, TokioClock};
use tokio_util::sync::CancellationToken;

/// Offline deadline with the default heartbeat settings (60 s × 2 + 30 s).
const OFFLINE_AFTER: Duration = Duration::from_secs(150);

struct Harness {
    core: Arc<Node>,
    store: MemoryStore,
    stop: CancellationToken,
}

impl Harness {
    async fn start(config: Config, store: MemoryStore) -> Self {
        Self::start_with_clock(config, store, test_clock()).await
    }

    async fn start_with_clock(config: Config, store: MemoryStore, clock: TokioClock) -> Self {
        let core = Node::start(
            config,
            Arc::new(store.clone()) as Arc<dyn Store>,
            Arc::new(clock),
            Metrics::new().expect("metrics"),
        )
        .await
        .expect("core");
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&core).run_maintenance(stop.clone()));
        Self { core, store, stop }
    }

    async fn open() -> Self {
        let mut config = Config::default();
        config.auth.mode = AuthMode::Open;
        Self::start(config, MemoryStore::new()).await
    }

    async fn register(&self, hostname: &str, from: &str) -> Response {
        let payload = serde_json::to_vec(&serde_json::json!({
            "version": "1.0", "type": "registration", "hostname": hostname,
        }))
        .expect("json");
        let peer: IpAddr = from.parse().expect("address");
        self.core
            .frames()
            .handle_frame(&payload, peer)
            .await
            .response
    }

    fn status(&self, hostname: &str) -> Option<HostStatus> {
        self.core.registry().get(hostname).map(|host| host.status)
    }
}

/// Wall time that advances with paused tokio time from a fixed origin.
fn test_clock() -> TokioClock {
    TokioClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test(start_paused = true)]
async fn host_goes_offline_within_one_second_of_its_deadline() {
    let harness = Harness::open().await;
    assert_eq!(
        harness.register("web-01", "192.0.2.1").await.status,
        Status::Success
    );
    tokio::time::sleep(OFFLINE_AFTER - Duration::from_millis(100)).await;
    assert_eq!(
        harness.status("web-01"),
        Some(HostStatus::Online),
        "online before the deadline"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        harness.status("web-01"),
        Some(HostStatus::Offline),
        "offline no later than deadline + 1 s"
    );
    let metrics = &harness.core.metrics();
    assert_eq!(metrics.heartbeat_timeouts.get(), 1);
    assert_eq!(metrics.offline_hosts.get(), 1);
    assert_eq!(metrics.online_hosts.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_push_the_deadline_back() {
    let harness = Harness::open().await;
    harness.register("web-01", "192.0.2.1").await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let response = harness.register("web-01", "192.0.2.1").await;
        assert!(response.message.contains("Heartbeat"), "{response:?}");
    }
    assert_eq!(
        harness.status("web-01"),
        Some(HostStatus::Online),
        "300 s of heartbeats"
    );
    let host = harness.core.registry().get("web-01").expect("host");
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
    let harness = Harness::open().await;
    harness.register("web-01", "192.0.2.1").await;
    tokio::time::sleep(OFFLINE_AFTER + Duration::from_secs(2)).await;
    assert_eq!(harness.status("web-01"), Some(HostStatus::Offline));
    let response = harness.register("web-01", "192.0.2.9").await;
    assert_eq!(response.status, Status::Success);
    assert!(
        response
            .message
            .contains("reconnected at 192.0.2.9 (was 192.0.2.1)"),
        "{response:?}"
    );
    assert_eq!(harness.status("web-01"), Some(HostStatus::Online));
    assert_eq!(
        harness.store.hosts()[0].address.to_string(),
        "192.0.2.9",
        "move is durable"
    );
    let updates = &harness.core.metrics().host_updates;
    assert_eq!(updates.with_label_values(&["reconnection"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn moves_between_addresses_v4_and_v6_are_reported_and_stored() {
    let harness = Harness::open().await;
    harness.register("web-01", "192.0.2.1").await;
    let to_v6 = harness.register("web-01", "2001:db8::7").await;
    assert!(
        to_v6.message.contains("changed: 192.0.2.1 -> 2001:db8::7"),
        "{to_v6:?}"
    );
    assert_eq!(harness.store.hosts()[0].address.to_string(), "2001:db8::7");
    let to_v4 = harness.register("web-01", "198.51.100.4").await;
    assert!(
        to_v4.message.contains("2001:db8::7 -> 198.51.100.4"),
        "{to_v4:?}"
    );
    // An IPv4-mapped IPv6 peer (a dual-stack listener) is the IPv4 host it maps.
    let mapped = harness.register("web-01", "::ffff:198.51.100.4").await;
    assert!(mapped.message.contains("Heartbeat"), "{mapped:?}");
    assert_eq!(
        harness
            .core
            .metrics()
            .host_updates
            .with_label_values(&["ip_change"])
            .get(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn offline_hosts_are_deleted_after_cleanup_after_days() {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config.heartbeat.cleanup_after_days = 2;
    let harness = Harness::start(config, MemoryStore::new()).await;
    harness.register("old-01", "192.0.2.1").await;
    harness.register("keep-01", "192.0.2.2").await;
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    harness.register("keep-01", "192.0.2.2").await;
    tokio::time::sleep(Duration::from_secs(86_400) - Duration::from_secs(5)).await;
    assert_eq!(
        harness.status("old-01"),
        Some(HostStatus::Offline),
        "kept until 2 days"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(harness.status("old-01"), None, "deleted after 2 days");
    assert_eq!(
        harness.status("keep-01"),
        Some(HostStatus::Offline),
        "1 day offline: kept"
    );
    let stored: Vec<_> = harness
        .store
        .hosts()
        .into_iter()
        .map(|h| h.hostname)
        .collect();
    assert_eq!(stored, ["keep-01"], "deleted from the store too");
    assert_eq!(harness.core.metrics().registered_hosts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn hostnames_are_case_insensitive() {
    let harness = Harness::open().await;
    harness.register("Web-01", "192.0.2.1").await;
    let again = harness.register("WEB-01", "192.0.2.1").await;
    assert!(
        again.message.contains("Heartbeat accepted for 'web-01'"),
        "{again:?}"
    );
    assert_eq!(harness.core.registry().counts().registered, 1);
    assert!(harness.core.registry().get("wEb-01").is_some());
}

#[tokio::test(start_paused = true)]
async fn restart_restores_state_from_last_seen() {
    let store = MemoryStore::new();
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    // One clock for both lifetimes, as the wall clock runs on across a real restart.
    let clock = test_clock();
    {
        let harness = Harness::start_with_clock(config.clone(), store.clone(), clock).await;
        harness.register("fresh", "192.0.2.1").await;
        harness.register("stale", "192.0.2.2").await;
        tokio::time::sleep(Duration::from_secs(100)).await;
        harness.register("fresh", "192.0.2.1").await;
        // Write-behind: the heartbeat's freshness reaches the store within a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let restarted = Harness::start_with_clock(config, store, clock).await;
    assert_eq!(
        restarted.status("fresh"),
        Some(HostStatus::Online),
        "seen 61 s ago"
    );
    assert_eq!(
        restarted.status("stale"),
        Some(HostStatus::Offline),
        "seen 161 s ago"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_durable_write_reverts_the_registration() {
    let harness = Harness::open().await;
    harness.store.set_failing(true);
    let response = harness.register("web-01", "192.0.2.1").await;
    assert_eq!(response.status, Status::Error);
    assert!(
        response.message.contains("registration not saved"),
        "{response:?}"
    );
    assert_eq!(
        harness.status("web-01"),
        None,
        "not acknowledged, not visible"
    );
    harness.store.set_failing(false);
    assert_eq!(
        harness.register("web-01", "192.0.2.1").await.status,
        Status::Success
    );
    assert_eq!(
        harness
            .core
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
    let alice = prism_server::core::tokens::create(&store, "alice", false, SystemTime::UNIX_EPOCH)
        .await
        .expect("token")
        .1;
    let bob = prism_server::core::tokens::create(&store, "bob", false, SystemTime::UNIX_EPOCH)
        .await
        .expect("token")
        .1;
    let harness = Harness::start(Config::default(), store).await;
    let register = |token: String, from: &'static str| {
        let core = Arc::clone(&harness.core);
        async move {
            let payload = serde_json::to_vec(&serde_json::json!({
                "version": "1.0", "type": "registration", "hostname": "db-01", "auth_token": token,
            }))
            .expect("json");
            core.frames()
                .handle_frame(&payload, from.parse().expect("ip"))
                .await
                .response
        }
    };
    assert_eq!(
        register(alice.clone(), "192.0.2.1").await.status,
        Status::Success
    );
    let refused = register(bob, "192.0.2.66").await;
    assert_eq!(refused.status, Status::Error);
    let host = harness.core.registry().get("db-01").expect("host");
    assert_eq!(
        (&*host.owner, host.address.to_string().as_str()),
        ("alice", "192.0.2.1")
    );
    // Even offline, the name stays with its owner.
    tokio::time::sleep(OFFLINE_AFTER + Duration::from_secs(2)).await;
    let alice_again = register(alice, "192.0.2.1").await;
    assert!(
        alice_again.message.contains("reconnected"),
        "{alice_again:?}"
    );
}
