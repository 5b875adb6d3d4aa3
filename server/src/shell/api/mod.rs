//! The REST API shell (axum): routes, request IDs and HTTP metrics around the handlers.
//!
//! The same router answers on the API port and, restricted to `/metrics` and `/api/health`,
//! on the registration port when a connection starts with an HTTP request
//! ([`crate::shell::http_sniff`]).

mod conn;
mod error;
mod gate;
mod handlers;
mod runtime;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use rand::RngCore;

pub use conn::{serve, serve_connection};
pub use error::ApiError;
pub use gate::{MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};
pub use runtime::{API_NICE_INCREMENT, ApiRuntime, runtime};

use crate::config::LiveConfig;
use crate::core::auth::Authenticator;
use crate::core::registry::Registry;
use crate::core::{Clock, Metrics, Node};
use crate::store::Store;

/// Header carrying the request ID, propagated from the request or generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `endpoint` label of requests that matched no route, so raw paths never become labels.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";
/// Longest incoming request ID that is propagated; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Which routes a router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The API port: every route.
    Api,
    /// The registration port's HTTP side door: `/metrics` and `/api/health` only.
    Registration,
}

/// What the API reads: the registry view, the token cache, the store's health probe, the
/// metrics, the clock and the configuration in force. Cheap to clone (every field is shared).
#[derive(Clone)]
pub struct ApiState {
    /// Host listings and lookups.
    pub(crate) registry: Arc<Registry>,
    /// Bearer-token checks.
    pub(crate) auth: Arc<Authenticator>,
    /// The health probe.
    pub(crate) store: Arc<dyn Store>,
    /// HTTP metrics and the `/metrics` exposition.
    pub(crate) metrics: Metrics,
    /// Request durations.
    pub(crate) clock: Arc<dyn Clock>,
    /// Maintenance mode and message, as in force now.
    pub(crate) config: LiveConfig,
}

impl ApiState {
    /// The API's handles on `node`.
    pub fn of(node: &Node) -> Self {
        Self {
            registry: Arc::clone(node.registry()),
            auth: Arc::clone(node.auth()),
            store: Arc::clone(node.store()),
            metrics: node.metrics().clone(),
            clock: Arc::clone(node.clock()),
            config: node.config().clone(),
        }
    }
}

/// The route template a request matched, handed from the routing layer to the observer.
#[derive(Clone)]
struct Endpoint(Arc<str>);

/// The router for `surface`, with request IDs and HTTP metrics on every response.
pub fn router(state: ApiState, surface: Surface) -> Router {
    let mut routes = Router::new()
        .route("/api/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics));
    if surface == Surface::Api {
        routes = routes
            .route("/api/stats", get(handlers::stats))
            .route("/api/hosts", get(handlers::list_hosts))
            .route("/api/hosts/{hostname}", get(handlers::get_host));
    }
    routes
        .route_layer(middleware::from_fn(tag_endpoint))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Runs only for matched routes: records the route template for [`observe`].
async fn tag_endpoint(request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| Endpoint(path.as_str().into()));
    let mut response = next.run(request).await;
    if let Some(endpoint) = endpoint {
        response.extensions_mut().insert(endpoint);
    }
    response
}

/// Wraps every request: sets `X-Request-ID` and records `prism_http_*`.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = state.clock.now();
    let method = method_label(request.method());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|id| acceptable_request_id(id))
        .cloned()
        .unwrap_or_else(generate_request_id);
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let endpoint = response
        .extensions()
        .get::<Endpoint>()
        .map_or_else(|| Arc::from(UNMATCHED_ENDPOINT), |e| Arc::clone(&e.0));
    let status = response.status();
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id.clone());
    let metrics = &state.metrics;
    metrics
        .http_requests
        .with_label_values(&[method, &endpoint, status.as_str()])
        .inc();
    metrics
        .http_request_duration
        .with_label_values(&[method, &endpoint])
        .observe((state.clock.now() - started).as_secs_f64());
    tracing::debug!(
        method,
        %path,
        status = status.as_u16(),
        request_id = request_id.to_str().unwrap_or_default(),
        "http request"
    );
    response
}

/// The `method` label: standard methods by name, anything else as `other` (bounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Incoming IDs are kept when short and made of URL-safe characters, so they cannot
/// inject anything into logs.
fn acceptable_request_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub(crate) fn generate_request_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    HeaderValue::from_str(&hex::encode(bytes))
        .unwrap_or_else(|_| HeaderValue::from_static("unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_with_odd_characters_are_replaced() {
        assert!(acceptable_request_id(&HeaderValue::from_static(
            "abc-123_x.y:z"
        )));
        assert!(!acceptable_request_id(&HeaderValue::from_static("a b")));
        assert!(!acceptable_request_id(&HeaderValue::from_static("")));
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        assert!(!acceptable_request_id(
            &HeaderValue::from_str(&long).expect("header")
        ));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let custom = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::GET), "GET");
    }
}
