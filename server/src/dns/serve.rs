//! The DNS socket loops over injected sockets: UDP (receive, answer, send; no task per
//! datagram) and TCP (2-byte length prefix, any number of queries per connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Answerer, MAX_TCP_MESSAGE, Transport, ZoneError};
use crate::core::Core;
use crate::net::{Datagram, Listener};

/// Pause after a failed receive or accept, so a persistent socket error cannot spin a core.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Starts one UDP loop per socket in `udp` and the TCP accept loop on `tasks`; all of them
/// end once `stop` is cancelled. Fails before starting anything when `dns.*` does not
/// describe a valid zone.
pub fn spawn<U: Datagram, L: Listener>(
    core: &Arc<Core>,
    udp: Vec<U>,
    tcp: Option<L>,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(), ZoneError> {
    let answerer = Arc::new(Answerer::new(Arc::clone(core))?);
    for socket in udp {
        tasks.spawn(serve_udp(Arc::clone(&answerer), socket, stop.clone()));
    }
    if let Some(listener) = tcp {
        tasks.spawn(serve_tcp(answerer, listener, stop.clone(), tasks.clone()));
    }
    Ok(())
}

/// DNS served outside [`crate::serve`], the way the binary runs it: each UDP socket on its own
/// OS thread with a current-thread runtime (no hand-offs between threads on the hot path),
/// the TCP listener as a task of the caller's runtime.
pub struct DedicatedDns {
    /// Cancelled by [`DedicatedDns::shutdown`]; every loop and connection selects on it.
    stop: CancellationToken,
    /// The UDP threads, joined at shutdown.
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    /// The TCP accept loop and its connections.
    tcp_tasks: TaskTracker,
}

impl DedicatedDns {
    /// Starts serving `sockets` for `core`. Must be called inside a tokio runtime (for TCP).
    pub fn start(core: &Arc<Core>, sockets: super::DnsSockets) -> anyhow::Result<Self> {
        let answerer = Arc::new(Answerer::new(Arc::clone(core))?);
        let stop = CancellationToken::new();
        let mut udp_threads = Vec::with_capacity(sockets.udp.len());
        for (index, socket) in sockets.udp.into_iter().enumerate() {
            let socket = socket.into_std()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (answerer, stop) = (Arc::clone(&answerer), stop.clone());
            let thread = std::thread::Builder::new()
                .name(format!("prism-dns-udp-{index}"))
                .spawn(move || {
                    let socket = {
                        let _context = runtime.enter();
                        tokio::net::UdpSocket::from_std(socket)
                    };
                    match socket {
                        Ok(socket) => runtime.block_on(serve_udp(answerer, socket, stop)),
                        Err(err) => tracing::error!(error = %err, "DNS UDP socket unusable"),
                    }
                })?;
            udp_threads.push(thread);
        }
        let tcp_tasks = TaskTracker::new();
        tcp_tasks.spawn(serve_tcp(
            answerer,
            sockets.tcp,
            stop.clone(),
            tcp_tasks.clone(),
        ));
        Ok(Self {
            stop,
            udp_threads,
            tcp_tasks,
        })
    }

    /// Stops every loop, waits up to `grace` for open TCP connections, and joins the UDP
    /// threads (each stops at its next wake-up, which the cancellation triggers).
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        self.tcp_tasks.close();
        if tokio::time::timeout(grace, self.tcp_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("DNS TCP connections still open after the shutdown grace period");
        }
        let threads = self.udp_threads;
        let joined = tokio::task::spawn_blocking(move || {
            threads.into_iter().all(|thread| thread.join().is_ok())
        })
        .await;
        if !matches!(joined, Ok(true)) {
            tracing::error!("a DNS UDP thread panicked");
        }
    }
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
            let Some(response) = answerer.answer(request, Transport::Udp) else {
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
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let dns = &answerer.core.config.dns;
    let slots = Arc::new(Semaphore::new(dns.max_tcp_connections));
    let idle_timeout = dns.tcp_idle_timeout();
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
                stream,
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
        let Some(response) = answerer.answer(&request, Transport::Tcp) else {
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
