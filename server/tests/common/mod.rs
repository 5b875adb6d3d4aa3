//! Shared helpers for the server's integration tests: an in-process server on loopback and a
//! minimal protocol client.

#![allow(dead_code)]

#[path = "../support/serve_task.rs"]
mod serve_task;
pub use serve_task::ServeTask;
#[path = "../support/wire.rs"]
mod wire;
#[allow(unused_imports)]
pub use wire::{frame, registration};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prism_server::config::AuthMode;
use prism_server::core::protocol::Response;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Listeners, Metrics, Node, SystemClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest any single read in a test may wait before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server running in this process on a port-0 loopback listener.
pub struct TestServer {
    pub addr: SocketAddr,
    pub core: Arc<Node>,
    pub store: MemoryStore,
    server: ServeTask,
}

impl TestServer {
    /// Starts a server with `config` (host and port are overridden) on a fresh memory store.
    pub async fn start(config: Config) -> Self {
        Self::start_with_store(config, MemoryStore::new()).await
    }

    /// Starts a server on `store`.
    pub async fn start_with_store(config: Config, store: MemoryStore) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let core = Node::start(
            config,
            Arc::new(store.clone()) as Arc<dyn Store>,
            Arc::new(SystemClock),
            Metrics::new().expect("metrics"),
        )
        .await
        .expect("core starts");
        let server = ServeTask::spawn(Arc::clone(&core), Listeners::new(listener));
        Self {
            addr,
            core,
            store,
            server,
        }
    }

    /// Stops the server and waits for its graceful shutdown.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Opens a client connection.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A configuration for tests: open auth, no rate limit.
pub fn open_config() -> Config {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config.rate_limit.registrations_per_minute = 0;
    config
}

/// A protocol client over one connection.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self { stream }
    }

    /// Connects from a chosen local address, e.g. 127.0.0.2, to appear as another host.
    pub async fn connect_from(local: SocketAddr, addr: SocketAddr) -> Self {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("socket");
        socket.bind(local).expect("bind local address");
        let stream = tokio::time::timeout(IO_TIMEOUT, socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self { stream }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, payload: &[u8]) {
        self.send_raw(&frame(payload)).await;
    }

    /// Reads one response frame; `None` if the server closed the connection.
    pub async fn recv(&mut self) -> Option<Response> {
        tokio::time::timeout(IO_TIMEOUT, read_response(&mut self.stream))
            .await
            .expect("a response or a close in time")
    }

    pub async fn call(&mut self, payload: &[u8]) -> Response {
        self.send(payload).await;
        self.recv().await.expect("a response, not a close")
    }

    /// True when the server has closed the connection (after any unread responses).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

async fn read_response(stream: &mut TcpStream) -> Option<Response> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some(serde_json::from_slice(&payload).expect("responses are valid JSON"))
}

/// Creates a token for `owner` in `store` and returns its text.
pub async fn token_for(store: &MemoryStore, owner: &str) -> String {
    let (_, token) =
        prism_server::core::tokens::create(store, owner, false, std::time::SystemTime::now())
            .await
            .expect("token");
    token
}
