//! The TCP shell: accepts registration connections, enforces the connection limit and the
//! idle timeout, and shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::{self, ApiState};
use super::connection::{Connection, ReadError};
use super::deadline::WriteDeadline;
use super::dns;
use super::http_sniff::{self, Sniffed};
use super::net::{Datagram, Listener};
use super::slots::{NoSlot, Slot, Slots};
use crate::config::LiveConfig;
use crate::core::protocol::Status;
use crate::core::{Clock, Core, Metrics, Node};

/// Message sent to a connection over `server.max_connections` before it is closed.
pub const AT_CAPACITY: &str = "Server at capacity";
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The listeners the server serves on, already bound by the caller.
pub struct Listeners<L, U = tokio::net::UdpSocket> {
    /// Registration protocol listener (port 8080 by default).
    pub registration: L,
    /// DNS over UDP (`dns.port`): one answer loop per socket, so several sockets bound with
    /// `SO_REUSEPORT` spread queries over cores. Empty: no DNS over UDP.
    pub dns_udp: Vec<U>,
    /// DNS over TCP (`dns.port`). `None`: no DNS over TCP.
    pub dns_tcp: Option<L>,
    /// REST API and `/metrics` (`server.api_port`, 8081 by default). `None`: no API.
    pub api: Option<L>,
    /// The runtime the API's tasks run on (the binary's low-priority one, see
    /// [`super::api::runtime`]). `None`: the caller's runtime.
    pub api_runtime: Option<tokio::runtime::Handle>,
}

impl<L> Listeners<L> {
    /// Only the registration listener: no DNS, no REST API (set the fields to add them).
    pub fn new(registration: L) -> Self {
        Self {
            registration,
            dns_udp: Vec::new(),
            dns_tcp: None,
            api: None,
            api_runtime: None,
        }
    }
}

/// What the registration shell needs: the frame handler, its own metrics and settings, and
/// the API state for HTTP requests sniffed on the registration port.
struct Registrations {
    /// Turns frames into replies.
    frames: Arc<Core>,
    /// Connection metrics.
    metrics: Metrics,
    /// Connection durations.
    clock: Arc<dyn Clock>,
    /// Connection limits and timeouts.
    config: LiveConfig,
    /// `/metrics` and `/api/health` on this port.
    http: ApiState,
}

/// Serves `node` on `listeners` until `shutdown` completes, then stops accepting, lets open
/// connections answer the frames they already received (up to `server.shutdown_grace_secs`),
/// and flushes the write-behind batch before returning.
pub async fn serve<L: Listener, U: Datagram>(
    node: Arc<Node>,
    listeners: Listeners<L, U>,
    shutdown: impl Future<Output = ()>,
) {
    let stop_connections = CancellationToken::new();
    let stop_maintenance = CancellationToken::new();
    let connections = TaskTracker::new();
    let maintenance = tokio::spawn(Arc::clone(&node).run_maintenance(stop_maintenance.clone()));
    let config = node.config().snapshot();
    if !listeners.dns_udp.is_empty() || listeners.dns_tcp.is_some() {
        let started = node
            .answerer(&[super::net::own_address(config.server.host)])
            .map_err(|err| err.to_string())
            .and_then(|answerer| {
                dns::spawn(
                    Arc::new(answerer),
                    &config.dns,
                    listeners.dns_udp,
                    listeners.dns_tcp,
                    &stop_connections,
                    &connections,
                )
                .map_err(|err| err.to_string())
            });
        if let Err(err) = started {
            tracing::error!(error = %err, "DNS not served");
        }
    }
    if let Some(listener) = listeners.api {
        let api = api::serve(
            ApiState::of(&node),
            listener,
            stop_connections.clone(),
            connections.clone(),
        );
        match &listeners.api_runtime {
            Some(runtime) => connections.spawn_on(api, runtime),
            None => connections.spawn(api),
        };
    }
    let shell = Arc::new(Registrations {
        frames: node.frames(),
        metrics: node.metrics().clone(),
        clock: Arc::clone(node.clock()),
        config: node.config().clone(),
        http: ApiState::of(&node),
    });
    tokio::select! {
        () = accept_loop(&shell, listeners.registration, &connections, &stop_connections) => {}
        () = shutdown => tracing::info!("shutdown requested; no longer accepting connections"),
    }

    stop_connections.cancel();
    connections.close();
    let grace = config.server.shutdown_grace();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    stop_maintenance.cancel();
    if let Err(err) = maintenance.await {
        tracing::error!(error = %err, "maintenance task failed");
    }
    tracing::info!("shutdown complete");
}

async fn accept_loop<L: Listener>(
    shell: &Arc<Registrations>,
    mut listener: L,
    connections: &TaskTracker,
    stop: &CancellationToken,
) {
    let (slots, write_timeout) = {
        let config = shell.config.get();
        let server = &config.server;
        (
            Slots::new(server.max_connections, server.max_connections_per_ip),
            server.write_timeout(),
        )
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                shell
                    .metrics
                    .tcp_connections
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let stream = WriteDeadline::new(stream, write_timeout);
        match slots.acquire(peer.ip()) {
            Ok(slot) => {
                shell
                    .metrics
                    .tcp_connections
                    .with_label_values(&["accepted"])
                    .inc();
                connections.spawn(handle_connection(
                    Arc::clone(shell),
                    stream,
                    peer,
                    stop.clone(),
                    slot,
                ));
            }
            Err(refusal) => {
                shell
                    .metrics
                    .tcp_connections
                    .with_label_values(&["rejected"])
                    .inc();
                let message = match refusal {
                    NoSlot::AtCapacity => {
                        tracing::warn!(%peer, "connection refused: server at capacity");
                        AT_CAPACITY.to_owned()
                    }
                    NoSlot::PerAddress { limit } => {
                        tracing::warn!(%peer, limit, "connection refused: too many from one address");
                        format!(
                            "{AT_CAPACITY}: {} already holds {limit} connections, the most one \
                             address may hold",
                            peer.ip().to_canonical()
                        )
                    }
                };
                connections.spawn(refuse(Arc::clone(shell), stream, message));
            }
        }
    }
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    shell: Arc<Registrations>,
    stream: S,
    message: String,
) {
    let max_frame_bytes = shell.config.get().protocol.max_frame_bytes;
    let mut connection = Connection::new(stream, max_frame_bytes);
    connection.queue(&shell.frames.response(Status::Error, message));
    connection.close_gracefully().await;
}

async fn handle_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shell: Arc<Registrations>,
    stream: S,
    peer: SocketAddr,
    stop: CancellationToken,
    _slot: Slot,
) {
    let opened = shell.clock.now();
    shell.metrics.tcp_active_connections.inc();
    let idle_timeout = shell.config.get().server.idle_timeout();
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(idle_timeout, http_sniff::sniff(stream)) => {
            sniffed.map_err(|_| Elapsed)
        }
        () = stop.cancelled() => Err(Elapsed),
    };
    match sniffed {
        Ok(Ok(Sniffed::Frames(stream))) => serve_frames(&shell, stream, peer, &stop).await,
        Ok(Ok(Sniffed::Http(stream))) => {
            http_sniff::serve_http(&shell.http, stream, idle_timeout, &stop).await;
        }
        Ok(Err(err)) => {
            shell
                .metrics
                .tcp_connections
                .with_label_values(&["failed"])
                .inc();
            tracing::debug!(%peer, error = %err, "connection failed");
        }
        Err(Elapsed) => tracing::debug!(%peer, "closing connection that sent nothing"),
    }
    shell.metrics.tcp_active_connections.dec();
    shell
        .metrics
        .tcp_connection_duration
        .observe((shell.clock.now() - opened).as_secs_f64());
}

/// The connection sent nothing within the idle timeout, or the server is shutting down.
struct Elapsed;

/// Answers registration frames until the peer closes, idles, breaks framing or shutdown.
async fn serve_frames<S: AsyncRead + AsyncWrite + Unpin>(
    shell: &Registrations,
    stream: S,
    peer: SocketAddr,
    stop: &CancellationToken,
) {
    let config = shell.config.get();
    let mut connection = Connection::new(stream, config.protocol.max_frame_bytes);
    let idle_timeout = config.server.idle_timeout();
    let max_auth_failures = config.server.max_auth_failures;
    drop(config);
    let core = &shell.frames;
    let mut auth_failures = 0;
    let ending = loop {
        let next = if stop.is_cancelled() {
            // Shutting down: answer what already arrived, read nothing new.
            match connection.buffered_frame() {
                Ok(Some(frame)) => Ok(Ok(Some(frame))),
                Ok(None) => break Ending::Shutdown,
                Err(err) => Ok(Err(ReadError::Frame(err))),
            }
        } else {
            tokio::select! {
                biased;
                next = tokio::time::timeout(idle_timeout, connection.read_frame()) => next,
                () = stop.cancelled() => continue,
            }
        };
        match next {
            Err(_elapsed) => break Ending::Idle,
            Ok(Ok(None)) => break Ending::PeerClosed,
            Ok(Ok(Some(payload))) => {
                let reply = core.handle_frame(&payload, peer.ip()).await;
                connection.queue(&reply.response);
                if reply.close {
                    break Ending::FramingError;
                }
                auth_failures = if reply.auth_refused {
                    auth_failures + 1
                } else {
                    0
                };
                if auth_failures >= max_auth_failures {
                    break Ending::AuthFailures;
                }
                if !connection.has_buffered_frame()
                    && let Err(err) = connection.flush().await
                {
                    break Ending::Failed(err.into());
                }
            }
            Ok(Err(ReadError::Frame(err))) => {
                connection.queue(&core.framing_error(&err).response);
                break Ending::FramingError;
            }
            Ok(Err(err)) => break Ending::Failed(err),
        }
    };
    match ending {
        Ending::Failed(err) => {
            shell
                .metrics
                .tcp_connections
                .with_label_values(&["failed"])
                .inc();
            tracing::debug!(%peer, error = %err, "connection failed");
        }
        Ending::Idle => tracing::debug!(%peer, "closing idle connection"),
        Ending::FramingError => tracing::debug!(%peer, "closing connection after a framing error"),
        Ending::AuthFailures => {
            tracing::info!(%peer, auth_failures, "closing connection: every frame refused for authentication");
        }
        Ending::PeerClosed | Ending::Shutdown => {}
    }
    connection.close_gracefully().await;
}

/// Why a connection ended.
enum Ending {
    PeerClosed,
    Idle,
    Shutdown,
    FramingError,
    /// `server.max_auth_failures` frames in a row were refused for authentication.
    AuthFailures,
    Failed(ReadError),
}
