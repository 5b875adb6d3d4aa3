//! The DNS socket loops over injected sockets: UDP (receive, answer, send; no task per
//! datagram) and TCP (2-byte length prefix, any number of queries per connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::DnsSection;
use crate::core::dns::{Answerer, MAX_TCP_MESSAGE, Transport};
use crate::shell::deadline::WriteDeadline;
use crate::shell::net::{Datagram, Listener};

/// Pause after a failed receive or accept, so a persistent socket error cannot spin a core.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Starts one answer loop per UDP socket and the TCP accept loop, all tracked by `tasks` and
/// ending once `stop` is cancelled. Each UDP loop runs where its socket type says
/// ([`Datagram::spawn_loop`]): tokio sockets on a dedicated thread each, simulated sockets
/// as tasks of the simulation. The binary, the tests and the simulator all start DNS here.
pub fn spawn<U: Datagram, L: Listener>(
    answerer: Arc<Answerer>,
    dns: &DnsSection,
    udp: Vec<U>,
    tcp: Option<L>,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> std::io::Result<()> {
    for socket in udp {
        let (answerer, stop) = (Arc::clone(&answerer), stop.clone());
        socket.spawn_loop(tasks, move |socket| serve_udp(answerer, socket, stop))?;
    }
    if let Some(listener) = tcp {
        let limits = TcpLimits {
            max_connections: dns.max_tcp_connections,
            idle_timeout: dns.tcp_idle_timeout(),
            write_timeout: dns.tcp_write_timeout(),
        };
        tasks.spawn(serve_tcp(
            answerer,
            listener,
            limits,
            stop.clone(),
            tasks.clone(),
        ));
    }
    Ok(())
}

/// Bounds on DNS-over-TCP connections (`dns.max_tcp_connections`, `dns.tcp_idle_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Concurrent connections; further ones are closed at once.
    pub max_connections: usize,
    /// How long a connection may stay silent.
    pub idle_timeout: Duration,
    /// How long a write may stay blocked by a peer that does not read.
    pub write_timeout: Duration,
}

/// Answers datagrams on `socket` until `stop` is cancelled.
pub async fn serve_udp<U: Datagram>(answerer: Arc<Answerer>, socket: U, stop: CancellationToken) {
    let mut buf = vec![0_u8; MAX_TCP_MESSAGE];
    let serve = async {
        loop {
            let (len, peer) = match socket.recv_from(&mut buf).await {
                Ok(received) => received,
                Err(err) => {
                    tracing::debug!(error = %err, "DNS UDP receive failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            let Some(request) = buf.get(..len) else {
                continue;
            };
            let Some(response) = answerer.answer(request, Transport::Udp, peer.ip()) else {
                continue;
            };
            if let Err(err) = socket.send_to(&response, peer).await {
                tracing::debug!(%peer, error = %err, "DNS UDP send failed");
            }
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = serve => {}
    }
}

/// Accepts DNS-over-TCP connections on `listener` until `stop` is cancelled, at most
/// `dns.max_tcp_connections` at a time; connections over the limit are closed at once.
pub async fn serve_tcp<L: Listener>(
    answerer: Arc<Answerer>,
    mut listener: L,
    limits: TcpLimits,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let idle_timeout = limits.idle_timeout;
    let accept = async {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "DNS TCP accept failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!(%peer, "DNS TCP connection refused: at capacity");
                continue;
            };
            connections.spawn(answer_connection(
                Arc::clone(&answerer),
                WriteDeadline::new(stream, limits.write_timeout),
                peer,
                idle_timeout,
                stop.clone(),
                slot,
            ));
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = accept => {}
    }
}

/// Answers length-prefixed queries on one connection until the peer closes it, it stays
/// idle for `idle_timeout`, it sends a malformed frame, or `stop` is cancelled.
async fn answer_connection<S: AsyncRead + AsyncWrite + Unpin>(
    answerer: Arc<Answerer>,
    mut stream: S,
    peer: SocketAddr,
    idle_timeout: Duration,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let mut request = Vec::new();
    let mut framed = Vec::new();
    loop {
        let read = async {
            let len = usize::from(stream.read_u16().await?);
            request.resize(len, 0);
            stream.read_exact(&mut request).await?;
            Ok::<_, std::io::Error>(len)
        };
        let len = tokio::select! {
            () = stop.cancelled() => break,
            read = tokio::time::timeout(idle_timeout, read) => match read {
                Ok(Ok(len)) => len,
                Ok(Err(_)) | Err(_) => break,
            },
        };
        if len == 0 {
            tracing::debug!(%peer, "empty DNS TCP message; closing");
            break;
        }
        let Some(response) = answerer.answer(&request, Transport::Tcp, peer.ip()) else {
            continue;
        };
        let Ok(prefix) = u16::try_from(response.len()) else {
            break;
        };
        framed.clear();
        framed.extend_from_slice(&prefix.to_be_bytes());
        framed.extend_from_slice(&response);
        if let Err(err) = stream.write_all(&framed).await {
            tracing::debug!(%peer, error = %err, "DNS TCP write failed");
            break;
        }
    }
    // The connection is finished either way; a failed shutdown has nothing left to lose.
    let _ = stream.shutdown().await;
}
