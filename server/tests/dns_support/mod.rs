//! Shared helpers for the DNS tests: an in-process server with registration and DNS
//! listeners on loopback, registration from a chosen source address, and hickory-net clients
//! over UDP and TCP.

#![allow(dead_code)]

#[path = "../support/serve_task.rs"]
mod serve_task;
pub use serve_task::ServeTask;
#[path = "../support/wire.rs"]
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use prism_server::config::AuthMode;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

/// Longest any network step in a DNS test may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server in this process: registration on `registration`, DNS on `dns` (UDP and TCP).
pub struct DnsServer {
    /// Registration protocol address.
    pub registration: SocketAddr,
    /// DNS address, UDP and TCP.
    pub dns: SocketAddr,
    /// The running core.
    pub core: Arc<Node>,
    server: ServeTask,
}

impl DnsServer {
    /// Starts a server with `config` on 127.0.0.1, ports chosen by the system.
    pub async fn start(config: Config) -> Self {
        Self::start_on(config, IpAddr::from([127, 0, 0, 1])).await
    }

    /// Starts a server with `config` whose listeners bind `host` (e.g. `::1`).
    pub async fn start_on(config: Config, host: IpAddr) -> Self {
        let listener = TcpListener::bind(SocketAddr::new(host, 0))
            .await
            .expect("bind the registration listener on loopback");
        let registration = listener.local_addr().expect("registration address");
        let dns_sockets = prism_server::shell::dns::bind(host, 0, 2, 0)
            .await
            .expect("bind the DNS sockets on loopback");
        let dns = dns_sockets.local_addr;
        let core = Node::start(
            config,
            Arc::new(MemoryStore::new()) as Arc<dyn Store>,
            Arc::new(SystemClock),
            Metrics::new().expect("metrics"),
        )
        .await
        .expect("core starts");
        let mut listeners = Listeners::new(listener);
        listeners.dns_udp = dns_sockets.udp;
        listeners.dns_tcp = Some(dns_sockets.tcp);
        let server = ServeTask::spawn(Arc::clone(&core), listeners);
        Self {
            registration,
            dns,
            core,
            server,
        }
    }

    /// Registers (or heartbeats) `hostname` over the real protocol from `source` (port 0).
    pub async fn register_from(&self, hostname: &str, source: IpAddr) {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .expect("client socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .unwrap_or_else(|err| panic!("bind the client to {source}: {err}"));
        let mut stream = tokio::time::timeout(IO_TIMEOUT, socket.connect(self.registration))
            .await
            .expect("connect in time")
            .expect("connect to the registration port");
        let framed = wire::registration_frame(hostname, None);
        stream.write_all(&framed).await.expect("send registration");
        let mut header = [0_u8; 4];
        tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut header))
            .await
            .expect("registration response in time")
            .expect("registration response");
        let mut body = vec![0_u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut body).await.expect("response body");
        let response: serde_json::Value = serde_json::from_slice(&body).expect("json response");
        assert_eq!(
            response["status"], "success",
            "registering {hostname} from {source} failed: {response}"
        );
    }

    /// Registers `hostname` from the loopback address of the server's family.
    pub async fn register(&self, hostname: &str) {
        let source = match self.registration.ip() {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        };
        self.register_from(hostname, source).await;
    }

    /// A hickory-net client speaking to the server over UDP, with EDNS(0).
    pub fn udp_client(&self) -> Client<TokioRuntimeProvider> {
        udp_client(self.dns)
    }

    /// A hickory-net client speaking to the server over one TCP connection.
    pub async fn tcp_client(&self) -> Client<TokioRuntimeProvider> {
        tcp_client(self.dns).await
    }

    /// Stops the server and waits for its graceful shutdown.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A hickory-net client speaking to `server` over UDP, with EDNS(0).
pub fn udp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(IO_TIMEOUT))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

/// A hickory-net client speaking to `server` over one TCP connection.
pub async fn tcp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (connect, handle) = TcpClientStream::new(
        server,
        None,
        Some(IO_TIMEOUT),
        TokioRuntimeProvider::default(),
    );
    let stream = tokio::time::timeout(IO_TIMEOUT, connect)
        .await
        .expect("TCP connect in time")
        .expect("TCP connect to the DNS port");
    let (client, background) = Client::<TokioRuntimeProvider>::new(stream, handle);
    tokio::spawn(background);
    client
}

/// A configuration for DNS tests: open auth, no rate limit.
pub fn open_config() -> Config {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config.rate_limit.registrations_per_minute = 0;
    config
}

/// `text` as a DNS name.
pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|err| panic!("{text:?} is not a name: {err}"))
}

/// Sends one query with `client` and returns the response.
pub async fn query(
    client: &mut Client<TokioRuntimeProvider>,
    qname: &str,
    query_type: RecordType,
) -> DnsResponse {
    tokio::time::timeout(
        IO_TIMEOUT,
        client.query(name(qname), DNSClass::IN, query_type),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer for {qname} {query_type} in time"))
    .unwrap_or_else(|err| panic!("query {qname} {query_type} failed: {err}"))
}

/// The addresses in the answer section.
pub fn answer_addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// Fails with the whole message when its rcode is not `expected`.
pub fn assert_rcode(message: &Message, expected: ResponseCode) {
    assert_eq!(
        message.metadata.response_code, expected,
        "unexpected rcode in {message:?}"
    );
}
