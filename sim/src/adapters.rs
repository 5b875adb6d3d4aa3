//! turmoil's sockets and clock behind the server's injected seams.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use prism_server::core::Clock;
use prism_server::shell::net::{Datagram, Listener};
use tokio::time::Instant;

/// A turmoil TCP listener as the server's [`Listener`].
pub struct SimListener(pub turmoil::net::TcpListener);

impl Listener for SimListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A turmoil UDP socket as the server's [`Datagram`] (DNS).
pub struct SimUdp(pub turmoil::net::UdpSocket);

impl Datagram for SimUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.0.send_to(buf, target).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Wall time from turmoil's simulated epoch: continuous across server crashes and restarts,
/// unlike a clock anchored to one host runtime's start.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + turmoil::since_epoch().unwrap_or(Duration::ZERO)
    }
}

/// Simulated time since the start of the run, from inside or outside a host.
pub fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or(Duration::ZERO)
}
