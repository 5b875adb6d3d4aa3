//! Shared fixtures for Prism's benchmarks: a hand-driven clock, registration payloads and
//! nodes/registries filled with many hosts, all over the in-memory store and open auth.
//!
//! The benchmarks live in `benches/` (run them with `cargo bench -p prism-benches`); the
//! memory measurement with 1 000 000 hosts is `examples/rss_million_hosts.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use prism_server::config::{AuthMode, HeartbeatSection};
use prism_server::core::protocol::{Hostname, Status};
use prism_server::core::registry::Registry;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Clock, Config, Core, Metrics, Node, SystemClock};
use tokio::time::Instant;

/// A clock that only moves when told to, in both directions.
///
/// Offline detection is benchmarked by setting the clock to just before a batch of hosts
/// re-registers, then past their deadline, without ever waiting for real time.
#[derive(Debug)]
pub struct ManualClock {
    /// The instant that offset zero stands for.
    origin: Instant,
    /// Wall time at offset zero.
    origin_wall: SystemTime,
    /// Current offset from `origin`, in nanoseconds.
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock reading offset zero.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            origin_wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Sets the clock to `offset` after its origin.
    pub fn set(&self, offset: Duration) {
        let nanos = u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.store(nanos, Ordering::Relaxed);
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::Relaxed))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.offset()
    }

    fn wall(&self) -> SystemTime {
        self.origin_wall + self.offset()
    }
}

/// The registration/heartbeat message a client sends for `hostname` (open auth, no token).
pub fn registration_payload(hostname: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "1.0",
        "type": "registration",
        "timestamp": "2026-11-26T10:00:00Z",
        "hostname": hostname,
    }))
    .unwrap_or_default()
}

/// The name of the `n`th benchmark host.
pub fn host_name(n: u32) -> String {
    format!("host-{n}")
}

/// A distinct IPv4 address for the `n`th host (10.0.0.0/8 and up).
pub fn host_address(n: u32) -> IpAddr {
    IpAddr::from(0x0A00_0000u32.wrapping_add(n).to_be_bytes())
}

/// A single-threaded tokio runtime for driving async core calls from benchmark loops.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("cannot build a tokio runtime: {err}"))
}

/// A node over an empty in-memory store with open auth, no registration rate limits and no
/// DNS response rate limit.
pub async fn open_node(metrics: Metrics, clock: Arc<dyn Clock>) -> Arc<Node> {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config.rate_limit.registrations_per_minute = 0;
    config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
    // One benchmark client sends every query: response rate limiting would drop them.
    config.dns.rrl_responses_per_second = 0;
    Node::start(
        config,
        Arc::new(MemoryStore::new()) as Arc<dyn Store>,
        clock,
        metrics,
    )
    .await
    .unwrap_or_else(|err| panic!("the node does not start over an empty store: {err}"))
}

/// Registers hosts `range` through the full frame path ([`Core::handle_frame`]), panicking on
/// any refusal so a benchmark never measures an unexpected error path.
pub async fn register_through_core(core: &Core, range: std::ops::Range<u32>) {
    for n in range {
        let reply = core
            .handle_frame(&registration_payload(&host_name(n)), host_address(n))
            .await;
        assert_eq!(
            reply.response.status,
            Status::Success,
            "registering {} was refused: {:?}",
            host_name(n),
            reply.response
        );
    }
}

/// A node with hosts `0..hosts` registered through the frame path, on the system clock.
pub fn filled_node(hosts: u32) -> Arc<Node> {
    runtime().block_on(async {
        let node = open_node(
            Metrics::new().expect("metrics registry"),
            Arc::new(SystemClock),
        )
        .await;
        register_through_core(&node.frames(), 0..hosts).await;
        node
    })
}

/// A registry over an in-memory store (returned too, for the sweeps' expiry), with the
/// default heartbeat settings.
pub fn registry(clock: Arc<dyn Clock>) -> (Registry, MemoryStore) {
    let store = MemoryStore::new();
    let registry = Registry::new(
        &HeartbeatSection::default(),
        Arc::new(store.clone()) as Arc<dyn Store>,
        clock,
        Metrics::new().unwrap_or_else(|err| panic!("metrics registry: {err}")),
    );
    (registry, store)
}

/// Registers hosts `range` directly on `registry` (owner `bench`), panicking on refusal.
pub async fn register_on_registry(registry: &Registry, range: std::ops::Range<u32>) {
    let owner: Arc<str> = Arc::from("bench");
    for n in range {
        let hostname = Hostname::parse(&host_name(n))
            .unwrap_or_else(|err| panic!("benchmark hostname {n} is invalid: {err}"));
        registry
            .register(&hostname, &owner, host_address(n))
            .await
            .unwrap_or_else(|err| panic!("registering {hostname} was refused: {err}"));
    }
}
