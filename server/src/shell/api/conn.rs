//! Serving HTTP/1.1 connections: the API port's accept loop with its connection limits, and
//! one connection behind the [`Gate`] (used by the registration port's HTTP side door too).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::{Gate, GateTimeouts, Refusal};
use super::{ApiState, Surface, UNMATCHED_ENDPOINT, generate_request_id, router};
use crate::config::ApiSection;
use crate::core::Metrics;
use crate::shell::deadline::WriteDeadline;
use crate::shell::net::Listener;
use crate::shell::slots::{NoSlot, Slots};

/// Pause after a failed `accept` before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the API on `listener` until `stop` is cancelled, then lets open requests finish.
/// Connections are bounded in all and per source address (`api.max_connections`,
/// `api.max_connections_per_ip`); one over either limit is answered 503 and closed.
pub async fn serve<L: Listener>(
    state: ApiState,
    mut listener: L,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let limits = state.config.get().api.clone();
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_ip);
    let app = router(state.clone(), Surface::Api);
    let accept = async {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "API accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let stream = WriteDeadline::new(stream, limits.write_timeout());
            match slots.acquire(peer.ip()) {
                Ok(slot) => {
                    let (state, app) = (state.clone(), app.clone());
                    let (stop, limits) = (stop.clone(), limits.clone());
                    connections.spawn(async move {
                        serve_connection(&state, app, stream, &limits, true, &stop).await;
                        drop(slot);
                    });
                }
                Err(refusal) => {
                    let detail = match refusal {
                        NoSlot::AtCapacity => format!(
                            "the API serves at most {} connections at once; retry later",
                            limits.max_connections
                        ),
                        NoSlot::PerAddress { limit } => format!(
                            "{} already holds {limit} API connections, the most one address may hold",
                            peer.ip().to_canonical()
                        ),
                    };
                    tracing::warn!(%peer, %detail, "API connection refused");
                    count_unrouted(&state.metrics, StatusCode::SERVICE_UNAVAILABLE);
                    connections.spawn(refuse(stream, StatusCode::SERVICE_UNAVAILABLE, detail));
                }
            }
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = accept => {}
    }
}

/// Serves one HTTP/1.1 connection with `app` behind a [`Gate`] until the client closes it,
/// the gate refuses a request (answered, then closed), or `stop` is cancelled (requests in
/// progress finish). `keep_alive: false` answers one request and closes.
pub async fn serve_connection<S>(
    state: &ApiState,
    app: Router,
    stream: S,
    limits: &ApiSection,
    keep_alive: bool,
    stop: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeouts = GateTimeouts {
        header: limits.header_timeout(),
        body: limits.body_timeout(),
    };
    let metrics = state.metrics.clone();
    let answer = Arc::new(move |refusal: &Refusal| {
        tracing::debug!(
            status = refusal.status.as_u16(),
            detail = %refusal.detail,
            "HTTP request refused before routing"
        );
        count_unrouted(&metrics, refusal.status);
        error_response(refusal.status, &refusal.detail)
    });
    let gate = Gate::new(stream, timeouts, answer);
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(gate), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = served {
        tracing::debug!(error = %err, "HTTP connection ended with an error");
    }
}

/// Answers `status` with `detail` on a connection that gets no service, then closes it.
async fn refuse<S: AsyncWrite + Unpin>(mut stream: S, status: StatusCode, detail: String) {
    let response = error_response(status, &detail);
    if stream.write_all(&response).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// A complete HTTP/1.1 error response that closes the connection: the same
/// `{"error","detail"}` body and `X-Request-ID` as every routed response.
pub(super) fn error_response(status: StatusCode, detail: &str) -> Bytes {
    let reason = status.canonical_reason().unwrap_or("error");
    let body = json!({ "error": reason.to_ascii_lowercase(), "detail": detail }).to_string();
    let request_id = generate_request_id();
    let request_id = request_id.to_str().unwrap_or("unavailable");
    Bytes::from(format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    ))
}

/// Counts a request answered below the router, like a routed one without a route.
fn count_unrouted(metrics: &Metrics, status: StatusCode) {
    metrics
        .http_requests
        .with_label_values(&["other", UNMATCHED_ENDPOINT, status.as_str()])
        .inc();
}
