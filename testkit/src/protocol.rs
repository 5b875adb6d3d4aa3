//! The registration protocol from the client's side: frames as the deployed clients send
//! them, a client over one connection, and registering with a test server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use prism_server::core::protocol::{Response, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::IO_TIMEOUT;
use crate::TestServer;
use crate::clock::hold_clock;

/// A registration payload in the compact form, with `auth_token` when `token` is given.
pub fn registration(hostname: &str, token: Option<&str>) -> Vec<u8> {
    let mut message = serde_json::json!({
        "version": "1.0",
        "type": "registration",
        "timestamp": "2026-11-26T10:00:00",
        "hostname": hostname,
    });
    if let Some(token) = token {
        message["auth_token"] = token.into();
    }
    serde_json::to_vec(&message).expect("a JSON value serializes")
}

/// `payload` with its 4-byte big-endian length prefix.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = u32::try_from(payload.len())
        .expect("test frames are small")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// A whole registration frame.
pub fn registration_frame(hostname: &str, token: Option<&str>) -> Vec<u8> {
    frame(&registration(hostname, token))
}

/// A registration-protocol client over one connection.
pub struct Client {
    /// The connection.
    stream: TcpStream,
}

impl Client {
    /// Connects to `server` from the system's choice of local address.
    pub async fn connect(server: SocketAddr) -> Self {
        let stream = hold_clock(tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(server)))
            .await
            .unwrap_or_else(|_| panic!("connect to {server} in time"))
            .unwrap_or_else(|err| panic!("connect to {server}: {err}"));
        Self { stream }
    }

    /// Connects to `server` from `source` (port 0), e.g. 127.0.0.2 to appear as another host.
    pub async fn connect_from(source: IpAddr, server: SocketAddr) -> Self {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .expect("client socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .unwrap_or_else(|err| panic!("bind the client to {source}: {err}"));
        let stream = hold_clock(tokio::time::timeout(IO_TIMEOUT, socket.connect(server)))
            .await
            .unwrap_or_else(|_| panic!("connect to {server} in time"))
            .unwrap_or_else(|err| panic!("connect to {server}: {err}"));
        Self { stream }
    }

    /// The connection itself, for tests that speak raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        hold_clock(self.stream.write_all(bytes))
            .await
            .expect("write to the server");
    }

    /// Writes `payload` as one frame.
    pub async fn send(&mut self, payload: &[u8]) {
        self.send_raw(&frame(payload)).await;
    }

    /// Reads one response frame; `None` when the server closed the connection first. Fails
    /// the test on a frame that is not a response.
    pub async fn recv(&mut self) -> Option<Response> {
        hold_clock(tokio::time::timeout(
            IO_TIMEOUT,
            read_response(&mut self.stream),
        ))
        .await
        .expect("a response or a close in time")
    }

    /// Sends `payload` as one frame and reads its response.
    pub async fn call(&mut self, payload: &[u8]) -> Response {
        self.send(payload).await;
        self.recv().await.expect("a response, not a close")
    }

    /// Connects to `server`; `None` when nothing accepts there within [`IO_TIMEOUT`] (a
    /// node that was killed), for tests that expect some attempts to fail.
    pub async fn try_connect(server: SocketAddr) -> Option<Self> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(server))
            .await
            .ok()?
            .ok()?;
        Some(Self { stream })
    }

    /// Sends `payload` as one frame and reads its response; `None` when the write fails or
    /// the connection closes or stays silent for [`IO_TIMEOUT`] instead (the server died).
    pub async fn try_call(&mut self, payload: &[u8]) -> Option<Response> {
        tokio::time::timeout(IO_TIMEOUT, async {
            self.stream.write_all(&frame(payload)).await.ok()?;
            read_response(&mut self.stream).await
        })
        .await
        .ok()
        .flatten()
    }

    /// True when the server has closed the connection (after any unread responses).
    ///
    /// Waits on the server's own timers (e.g. its idle timeout) too, so this one wait lets a
    /// paused clock advance.
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
    Some(serde_json::from_slice(&payload).unwrap_or_else(|err| {
        panic!(
            "not a response frame ({err}): {}",
            String::from_utf8_lossy(&payload)
        )
    }))
}

impl TestServer {
    /// Opens a protocol connection to the registration port from the loopback address of
    /// its family.
    pub async fn connect(&self) -> Client {
        self.connect_from(self.loopback()).await
    }

    /// Opens a protocol connection to the registration port from `source`.
    pub async fn connect_from(&self, source: IpAddr) -> Client {
        Client::connect_from(source, self.registration_addr()).await
    }

    /// Registers (or heartbeats) `hostname` over a fresh connection from the loopback
    /// address; fails the test unless the server answers with success.
    pub async fn register(&self, hostname: &str, token: Option<&str>) -> Response {
        self.register_from(self.loopback(), hostname, token).await
    }

    /// Registers (or heartbeats) `hostname` over a fresh connection from `source`; fails the
    /// test unless the server answers with success.
    pub async fn register_from(
        &self,
        source: IpAddr,
        hostname: &str,
        token: Option<&str>,
    ) -> Response {
        let mut client = self.connect_from(source).await;
        let response = client.call(&registration(hostname, token)).await;
        assert_eq!(
            response.status,
            Status::Success,
            "registering {hostname} from {source} failed: {response:?}"
        );
        response
    }

    /// Hands a registration from `peer` straight to the node's frame handler, as the
    /// registration shell does for a connection from `peer` — for peers no loopback socket
    /// can be (documentation addresses, IPv6 hosts on an IPv4 server).
    pub async fn handle_registration(
        &self,
        peer: IpAddr,
        hostname: &str,
        token: Option<&str>,
    ) -> Response {
        self.node()
            .frames()
            .handle_frame(&registration(hostname, token), peer)
            .await
            .response
    }

    /// The loopback address of the registration listener's family.
    fn loopback(&self) -> IpAddr {
        match self.registration_addr().ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    }
}
