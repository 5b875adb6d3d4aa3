//! The API's request handlers: health, stats, metrics and host reads with bearer-token auth.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::core::auth::Principal;
use crate::core::clock::rfc3339;
use crate::core::protocol::Hostname;
use crate::core::registry::{HostQuery, HostStatus, HostView};

/// Longest the health check waits for the database before reporting it degraded.
pub const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest accepted `per_page`.
pub const MAX_PER_PAGE: usize = 1000;
/// `per_page` when the request does not say.
pub const DEFAULT_PER_PAGE: usize = 100;
/// Longest accepted `search` (the longest possible hostname).
const MAX_SEARCH_LEN: usize = 253;
/// Content type of the Prometheus text exposition format.
const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /api/health`: 200 when the database answers a write probe, 503 otherwise.
pub(super) async fn health(State(state): State<ApiState>) -> Response {
    let probe = tokio::time::timeout(HEALTH_PROBE_TIMEOUT, state.store.ping().wait()).await;
    let counts = state.registry.counts();
    let hosts = json!({
        "registered": counts.registered,
        "online": counts.online,
        "offline": counts.offline,
    });
    let failure = match probe {
        Ok(Ok(())) => {
            let body = json!({
                "status": "healthy",
                "database": "ok",
                "version": VERSION,
                "hosts": hosts,
            });
            return Json(with_node_state(&state, body)).into_response();
        }
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!(
            "the database did not answer within {} s",
            HEALTH_PROBE_TIMEOUT.as_secs()
        ),
    };
    tracing::warn!(error = %failure, "health check: database degraded");
    let body = json!({
        "status": "degraded",
        "error": "database unavailable",
        "detail": failure,
        "database": "error",
        "version": VERSION,
        "hosts": hosts,
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(with_node_state(&state, body)),
    )
        .into_response()
}

/// `GET /metrics`: the Prometheus text exposition.
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .encode()
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok(([(CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], text).into_response())
}

/// `GET /api/stats`: host counts and connection figures (the same totals `/metrics` shows,
/// so it is as open as `/metrics`).
pub(super) async fn stats(State(state): State<ApiState>) -> Json<Value> {
    let counts = state.registry.counts();
    let metrics = &state.metrics;
    let body = json!({
        "hosts": {
            "registered": counts.registered,
            "online": counts.online,
            "offline": counts.offline,
        },
        "connections": {
            "active": metrics.tcp_active_connections.get(),
        },
        "version": VERSION,
    });
    Json(with_node_state(&state, body))
}

/// `GET /api/hosts`: a page of the caller's hosts (every host for admins).
pub(super) async fn list_hosts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let principal = authenticate(&state, &headers)?;
    let Query(pairs) = query.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let params = ListParams::parse(&pairs)?;
    let owner = match &params.owner {
        Some(owner) if !principal.admin && **owner != *principal.owner => {
            return Err(ApiError::Forbidden(
                "only admin tokens may list another owner's hosts".into(),
            ));
        }
        Some(owner) => Some(owner.as_str()),
        None if principal.admin => None,
        None => Some(&*principal.owner),
    };
    let query = HostQuery {
        owner,
        status: params.status,
        search: params.search.as_deref(),
    };
    let offset = (params.page - 1).saturating_mul(params.per_page);
    let page = state.registry.page(&query, offset, params.per_page);
    Ok(Json(json!({
        "hosts": page.hosts.iter().map(host_json).collect::<Vec<_>>(),
        "page": params.page,
        "per_page": params.per_page,
        "total": page.total,
        "total_pages": page.total.div_ceil(params.per_page),
    })))
}

/// `GET /api/hosts/{hostname}`: one host. Another owner's host answers 404 like an unknown
/// one, so tokens cannot probe which names exist.
pub(super) async fn get_host(
    State(state): State<ApiState>,
    headers: HeaderMap,
    hostname: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let principal = authenticate(&state, &headers)?;
    let Path(raw) = hostname.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let hostname = Hostname::parse(&raw)
        .map_err(|err| ApiError::BadRequest(format!("hostname {raw:?}: {err}")))?;
    state
        .registry
        .get(hostname.as_str())
        .filter(|host| principal.admin || host.owner == principal.owner)
        .map(|host| Json(host_json(&host)))
        .ok_or_else(|| ApiError::NotFound(format!("no host named '{hostname}'")))
}

/// Fallback for paths without a route.
pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {}; routes: /api/health, /api/stats, /api/hosts, /api/hosts/{{hostname}}, /metrics",
        uri.path()
    ))
}

/// Fallback for known paths with another method than GET/HEAD.
pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} is not supported on {}; use GET",
        uri.path()
    ))
}

/// `body` with this node's name, store and role, and maintenance mode as in force now:
/// `"maintenance": true|false`, and while it is on the operator's `"maintenance_message"`.
fn with_node_state(state: &ApiState, mut body: Value) -> Value {
    let config = state.config.get();
    let maintenance = &config.maintenance;
    // Which node answered, on which store, and whether it runs offline detection: a load
    // balancer or an operator reading one node's health needs to know which one it is.
    body["node"] = Value::String(config.cluster.node_name.clone());
    body["store"] = Value::String(
        match config.database.store() {
            Ok(crate::config::StoreChoice::Postgres(_)) => "postgresql",
            _ => "sqlite",
        }
        .to_owned(),
    );
    body["leader"] = Value::Bool(state.metrics.cluster_leader.get() == 1);
    body["maintenance"] = Value::Bool(maintenance.enabled);
    if maintenance.enabled {
        body["maintenance_message"] = Value::String(maintenance.message.clone());
    }
    body
}

/// The caller of a `/api/hosts*` request: a valid bearer token, or anyone in `auth.mode =
/// open` (decided by [`crate::core::auth::Authenticator::authenticate`]).
fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Ok(open) = state.auth.authenticate(None) {
        return Ok(open);
    }
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "send 'Authorization: Bearer <token>' (create a token with 'prism-server token create')"
                .into(),
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })?;
    state
        .auth
        .authenticate(Some(token))
        .map_err(|_| ApiError::Unauthorized("token is not valid or has been revoked".into()))
}

/// Validated query parameters of `GET /api/hosts`.
#[derive(Debug, PartialEq, Eq)]
struct ListParams {
    page: usize,
    per_page: usize,
    status: Option<HostStatus>,
    search: Option<String>,
    owner: Option<String>,
}

impl ListParams {
    const ACCEPTED: &str = "page, per_page, status, search, owner";

    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut params = Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            status: None,
            search: None,
            owner: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "parameter `{name}` given more than once"
                )));
            }
            seen.push(name);
            match name.as_str() {
                "page" => params.page = number(name, value, 1, usize::MAX / 2, "1 or more")?,
                "per_page" => {
                    params.per_page = number(name, value, 1, MAX_PER_PAGE, "1 to 1000")?;
                }
                "status" => {
                    params.status = Some(match value.as_str() {
                        "online" => HostStatus::Online,
                        "offline" => HostStatus::Offline,
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "status {other:?} is not accepted; accepted: online, offline"
                            )));
                        }
                    });
                }
                "search" => {
                    if value.len() > MAX_SEARCH_LEN {
                        return Err(ApiError::BadRequest(format!(
                            "search is {} characters long; accepted: at most {MAX_SEARCH_LEN}",
                            value.len()
                        )));
                    }
                    params.search = Some(value.to_ascii_lowercase()).filter(|s| !s.is_empty());
                }
                "owner" => params.owner = Some(value.clone()),
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown parameter `{other}`; accepted: {}",
                        Self::ACCEPTED
                    )));
                }
            }
        }
        Ok(params)
    }
}

fn number(
    name: &str,
    value: &str,
    min: usize,
    max: usize,
    accepted: &str,
) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name} {value:?} is not accepted; accepted: a whole number, {accepted}"
            ))
        })
}

fn host_json(host: &HostView) -> Value {
    json!({
        "hostname": &*host.hostname,
        "address": host.address.to_string(),
        "status": host.status,
        "owner": &*host.owner,
        "first_seen": rfc3339(host.first_seen),
        "last_seen": rfc3339(host.last_seen),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn list_parameters_default_to_the_first_page() {
        let params = ListParams::parse(&[]).expect("valid");
        assert_eq!((params.page, params.per_page), (1, DEFAULT_PER_PAGE));
    }

    #[test]
    fn per_page_accepts_1000_and_refuses_1001_and_0() {
        assert!(ListParams::parse(&pairs(&[("per_page", "1000")])).is_ok());
        for bad in ["1001", "0", "-1", "ten", ""] {
            let err = ListParams::parse(&pairs(&[("per_page", bad)])).expect_err(bad);
            assert!(err.to_string().contains("1 to 1000"), "{err}");
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let err = ListParams::parse(&pairs(&[("sort", "name")])).expect_err("unknown");
        assert!(err.to_string().contains("sort"), "{err}");
        let err = ListParams::parse(&pairs(&[("page", "1"), ("page", "2")])).expect_err("twice");
        assert!(err.to_string().contains("more than once"), "{err}");
    }
}
