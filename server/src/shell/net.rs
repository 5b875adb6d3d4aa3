//! The socket seam: the server accepts from any [`Listener`], so tests bind port 0 and a
//! simulator can hand in its own sockets.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::task::TaskTracker;

/// A source of accepted byte streams.
pub trait Listener: Send + 'static {
    /// The accepted connection type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Responses are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

/// A bound datagram socket, for DNS over UDP.
pub trait Datagram: Send + Sync + 'static {
    /// Waits for the next datagram; returns its length and sender.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;

    /// Sends one datagram to `target`.
    fn send_to(
        &self,
        buf: &[u8],
        target: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Starts `run` (the answer loop over this socket), tracked by `tasks` so that waiting
    /// for `tasks` waits for the loop too. By default the loop is a task of the caller's
    /// runtime, which is what simulated sockets need.
    fn spawn_loop<F, Fut>(self, tasks: &TaskTracker, run: F) -> io::Result<()>
    where
        Self: Sized,
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tasks.spawn(run(self));
        Ok(())
    }
}

impl Datagram for tokio::net::UdpSocket {
    /// A real UDP socket runs its loop on a dedicated OS thread with a current-thread runtime:
    /// no hand-offs between threads on the hot path (SO_REUSEPORT spreads the queries over
    /// the sockets, one thread each).
    fn spawn_loop<F, Fut>(self, tasks: &TaskTracker, run: F) -> io::Result<()>
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let socket = self.into_std()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("prism-udp-{}", socket.local_addr()?.port()))
            .spawn(move || {
                let socket = {
                    let _context = runtime.enter();
                    tokio::net::UdpSocket::from_std(socket)
                };
                match socket {
                    Ok(socket) => runtime.block_on(run(socket)),
                    Err(err) => tracing::error!(error = %err, "UDP socket unusable"),
                }
                let _ = finished.send(());
            })?;
        tasks.spawn(async move {
            // Resolves when the thread's loop has returned (or the thread died).
            let _ = done.await;
        });
        Ok(())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        tokio::net::UdpSocket::recv_from(self, buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::send_to(self, buf, target).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

/// The address this node is reached at, for a nameserver name configured without one:
/// `server.host` when it names one, else the address of the interface the default route
/// leaves by (found without sending anything), else loopback.
pub fn own_address(host: IpAddr) -> IpAddr {
    if !host.is_unspecified() {
        return host;
    }
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            // A documentation address: connect() only picks the route, no packet is sent.
            socket.connect("192.0.2.1:53")?;
            socket.local_addr()
        })
        .map(|local| local.ip());
    match probe {
        Ok(address) if !address.is_unspecified() => address,
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}
