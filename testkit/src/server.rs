//! The test server: [`prism_server::serve`] over [`prism_server::Node::start`] on loopback
//! port-0 listeners, in the test's own runtime, and its graceful stop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use prism_server::store::{MemoryStore, Store};
use prism_server::{Clock, Config, Listeners, Metrics, Node, SystemClock, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::HttpClient;

/// Longest a test waits for the server's graceful shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// UDP sockets bound for DNS: more than one, so the `SO_REUSEPORT` group is exercised.
const DNS_UDP_SOCKETS: usize = 2;

/// How a test server is put together; see [`TestServer::builder`].
pub struct TestServerBuilder {
    /// The configuration the node starts with (its host and ports are not used: the
    /// listeners are bound here).
    config: Config,
    /// Where the node loads from and persists to.
    store: Arc<dyn Store>,
    /// The node's time source.
    clock: Arc<dyn Clock>,
    /// The node's metrics, when the test shares them with a store that records into them.
    metrics: Option<Metrics>,
    /// The address every listener binds (port 0).
    host: IpAddr,
    /// Whether to serve the REST API.
    api: bool,
    /// Whether to serve DNS over UDP and TCP.
    dns: bool,
}

impl TestServerBuilder {
    /// Serves `store` instead of a fresh [`MemoryStore`]. Keep a clone to look into it.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Reads time from `clock` instead of [`SystemClock`] (e.g. a
    /// [`prism_server::TokioClock`] under paused time).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Records into `metrics` (e.g. the ones a SQLite store already records into).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Binds the listeners on `host` (e.g. `::1`) instead of 127.0.0.1.
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// Also serves the REST API.
    pub fn api(mut self) -> Self {
        self.api = true;
        self
    }

    /// Also serves DNS, over UDP and TCP on one port.
    pub fn dns(mut self) -> Self {
        self.dns = true;
        self
    }

    /// Starts the node alone: no listeners, no `serve`, no maintenance loop — for tests of
    /// the node's own handles (the DNS answerer, reloads).
    pub async fn start_node(self) -> Arc<Node> {
        let metrics = match self.metrics {
            Some(metrics) => metrics,
            None => Metrics::new().expect("the metrics registry builds"),
        };
        Node::start(self.config, self.store, self.clock, metrics)
            .await
            .expect("the node starts on its store")
    }

    /// Binds the listeners asked for on port 0, starts the node and serves it in the
    /// background (maintenance loop included) until [`TestServer::shutdown`].
    pub async fn start(self) -> TestServer {
        let (host, with_api, with_dns) = (self.host, self.api, self.dns);
        let (registration, registration_addr) = bind_tcp(host, "registration").await;
        let mut listeners = Listeners::new(registration);
        let api_addr = if with_api {
            let (api, addr) = bind_tcp(host, "API").await;
            listeners.api = Some(api);
            Some(addr)
        } else {
            None
        };
        let dns_addr = if with_dns {
            let sockets = prism_server::shell::dns::bind(host, 0, DNS_UDP_SOCKETS, 0)
                .await
                .unwrap_or_else(|err| panic!("bind the DNS sockets on {host}: {err}"));
            listeners.dns_udp = sockets.udp;
            listeners.dns_tcp = Some(sockets.tcp);
            Some(sockets.local_addr)
        } else {
            None
        };
        let node = self.start_node().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(serve(Arc::clone(&node), listeners, async move {
            // A dropped sender stops the server too, like a sent stop.
            let _ = stopped.await;
        }));
        TestServer {
            node,
            registration: registration_addr,
            api: api_addr.map(|addr| (addr, HttpClient::new(addr))),
            dns: dns_addr,
            stop,
            serving,
        }
    }
}

/// A TCP listener on `host`, port 0, and the address it got.
async fn bind_tcp(host: IpAddr, what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(SocketAddr::new(host, 0))
        .await
        .unwrap_or_else(|err| panic!("bind the {what} listener on {host}: {err}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|err| panic!("the {what} listener's address: {err}"));
    (listener, addr)
}

/// A server running in the test's process on loopback port-0 listeners. Dropped without
/// [`TestServer::shutdown`], it shuts down in the background.
pub struct TestServer {
    /// The running node, to compare what the server says with its registry and metrics.
    node: Arc<Node>,
    /// The registration listener's address (always bound).
    registration: SocketAddr,
    /// The REST API's address and a client for it, when asked for.
    api: Option<(SocketAddr, HttpClient)>,
    /// The DNS address (UDP and TCP), when asked for.
    dns: Option<SocketAddr>,
    /// Sending (or dropping) it makes `serve` shut down.
    stop: oneshot::Sender<()>,
    /// The `serve` task, awaited by [`TestServer::shutdown`].
    serving: JoinHandle<()>,
}

impl TestServer {
    /// A builder for a server with `config` on a fresh [`MemoryStore`], the [`SystemClock`]
    /// and new metrics, listening for registrations on 127.0.0.1.
    pub fn builder(config: Config) -> TestServerBuilder {
        TestServerBuilder {
            config,
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            metrics: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            api: false,
            dns: false,
        }
    }

    /// The running node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The registration protocol's address.
    pub fn registration_addr(&self) -> SocketAddr {
        self.registration
    }

    /// The REST API's address; fails the test when the server was built without
    /// [`TestServerBuilder::api`].
    pub fn api_addr(&self) -> SocketAddr {
        self.api_parts().0
    }

    /// An HTTP client for the REST API; fails the test when the server was built without
    /// [`TestServerBuilder::api`].
    pub fn api(&self) -> &HttpClient {
        &self.api_parts().1
    }

    /// The DNS address (UDP and TCP); fails the test when the server was built without
    /// [`TestServerBuilder::dns`].
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.expect("this test server was built without .dns()")
    }

    /// Stops the server and waits for its graceful shutdown, failing the test if it takes
    /// longer than 10 s of real time.
    ///
    /// Real time, because under a paused clock the shutdown's waits on the server's threads
    /// (the store, the DNS answer loops) let tokio jump to the next timer — a tokio timeout
    /// here would fire at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let (finished, watched) = mpsc::channel::<()>();
        let (expired, expiry) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = watched.recv_timeout(SHUTDOWN_TIMEOUT) {
                let _ = expired.send(());
            }
        });
        tokio::select! {
            served = self.serving => served.expect("the serve task ends without panicking"),
            _ = expiry => panic!("graceful shutdown did not finish within {SHUTDOWN_TIMEOUT:?}"),
        }
        drop(finished);
    }

    fn api_parts(&self) -> &(SocketAddr, HttpClient) {
        self.api
            .as_ref()
            .expect("this test server was built without .api()")
    }
}
