//! The REST API (SPEC §7): every endpoint's happy path, bad parameters, authentication,
//! ownership, pagination edges, search and status filters, and health when the database fails.

use std::time::{Duration, SystemTime};

use prism_server::Config;
use prism_server::config::AuthMode;
use prism_server::store::{MemoryStore, SqliteStore, Store};
use prism_testkit::TestServer;
use prism_testkit::http::HttpClient;
use prism_testkit::setup::{create_token, token_config};

/// A server with owners alice (web-*, db-01) and bob (bob-01), and an admin token.
struct World {
    server: TestServer,
    alice: String,
    bob: String,
    admin: String,
}

impl World {
    fn api(&self) -> &HttpClient {
        self.server.api()
    }
}

async fn world() -> World {
    let store = MemoryStore::new();
    let alice = create_token(&store, "alice", false).await;
    let bob = create_token(&store, "bob", false).await;
    let admin = create_token(&store, "ops", true).await;
    let server = api_server(token_config(), store).await;
    for name in ["web-01", "web-02", "web-03", "db-01"] {
        server.register(name, Some(&alice)).await;
    }
    server.register("bob-01", Some(&bob)).await;
    World {
        server,
        alice,
        bob,
        admin,
    }
}

/// A server with the REST API on `store`.
async fn api_server(config: Config, store: impl Store) -> TestServer {
    TestServer::builder(config).store(store).api().start().await
}

fn names(body: &serde_json::Value) -> Vec<String> {
    body["hosts"]
        .as_array()
        .expect("hosts array")
        .iter()
        .map(|host| host["hostname"].as_str().expect("hostname").to_owned())
        .collect()
}

fn assert_error_body(status: u16, body: &serde_json::Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["error"].is_string() && body["detail"].is_string(),
        "error bodies are {{error, detail}}: {body}"
    );
}

#[tokio::test]
async fn health_reports_healthy_when_the_database_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("prism.db"), None).expect("store");
    let server = api_server(token_config(), store).await;
    let api = server.api();
    let (status, body) = api.get_json("/api/health", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["database"], "ok");
    server.shutdown().await;
}

#[tokio::test]
async fn health_returns_503_when_the_database_file_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prism.db");
    let store = SqliteStore::open(&path, None).expect("store");
    let server = api_server(token_config(), store).await;
    let api = server.api();
    std::fs::remove_file(&path).expect("remove database file");
    let (status, body) = api.get_json("/api/health", None).await;
    assert_error_body(status, &body, 503);
    assert_eq!(body["status"], "degraded");
    server.shutdown().await;
}

#[tokio::test]
async fn health_returns_503_when_the_database_file_is_made_unwritable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prism.db");
    let store = SqliteStore::open(&path, None).expect("store");
    let server = api_server(token_config(), store).await;
    let api = server.api();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let (status, body) = api.get_json("/api/health", None).await;
    assert_error_body(status, &body, 503);
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("read-only"),
        "{body}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (status, _) = api.get_json("/api/health", None).await;
    assert_eq!(
        status, 200,
        "health recovers once the file is writable again"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_incoming_ids_are_kept() {
    let world = world().await;
    let api = world.api();
    for path in [
        "/api/health",
        "/api/stats",
        "/metrics",
        "/api/hosts",
        "/nowhere",
    ] {
        let response = api.get(path, None).await;
        let id = response.headers().get("x-request-id");
        assert!(
            id.is_some_and(|id| id.len() == 32),
            "{path} answers with a generated X-Request-ID"
        );
    }
    let response = api
        .client()
        .get(api.url("/api/health"))
        .header("X-Request-ID", "trace-42")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.headers()["x-request-id"], "trace-42");
}

#[tokio::test]
async fn hosts_need_a_valid_bearer_token() {
    let world = world().await;
    let api = world.api();
    let (status, body) = api.get_json("/api/hosts", None).await;
    assert_error_body(status, &body, 401);
    let (status, body) = api.get_json("/api/hosts", Some("prism_not_a_token")).await;
    assert_error_body(status, &body, 401);
    let (status, body) = api.get_json("/api/hosts/web-01", None).await;
    assert_error_body(status, &body, 401);
    let response = api
        .client()
        .get(api.url("/api/hosts"))
        .header("Authorization", format!("Basic {}", world.alice))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        response.status().as_u16(),
        401,
        "only the Bearer scheme is accepted"
    );
    assert!(response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn owners_see_their_own_hosts_and_admins_see_all() {
    let world = world().await;
    let api = world.api();
    let (status, body) = api.get_json("/api/hosts", Some(&world.alice)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["db-01", "web-01", "web-02", "web-03"]);
    assert_eq!(body["total"], 4);
    let (_, body) = api.get_json("/api/hosts", Some(&world.bob)).await;
    assert_eq!(names(&body), ["bob-01"]);
    let (_, body) = api.get_json("/api/hosts", Some(&world.admin)).await;
    assert_eq!(body["total"], 5);
    let (_, body) = api
        .get_json("/api/hosts?owner=bob", Some(&world.admin))
        .await;
    assert_eq!(names(&body), ["bob-01"], "admins may filter by owner");
}

#[tokio::test]
async fn listing_another_owners_hosts_is_forbidden_for_owners() {
    let world = world().await;
    let (status, body) = world
        .api()
        .get_json("/api/hosts?owner=bob", Some(&world.alice))
        .await;
    assert_error_body(status, &body, 403);
    let (status, _) = world
        .api()
        .get_json("/api/hosts?owner=alice", Some(&world.alice))
        .await;
    assert_eq!(status, 200, "an owner may name itself");
}

#[tokio::test]
async fn host_by_name_returns_it_and_404s_unknown_or_foreign_hosts() {
    let world = world().await;
    let api = world.api();
    let (status, body) = api.get_json("/api/hosts/WEB-01", Some(&world.alice)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hostname"], "web-01");
    assert_eq!(body["status"], "online");
    assert_eq!(body["address"], "127.0.0.1");
    assert_eq!(body["owner"], "alice");
    assert!(body["last_seen"].is_string() && body["first_seen"].is_string());
    let (status, body) = api.get_json("/api/hosts/nope-99", Some(&world.alice)).await;
    assert_error_body(status, &body, 404);
    let (status, foreign) = api.get_json("/api/hosts/bob-01", Some(&world.alice)).await;
    assert_error_body(status, &foreign, 404);
    assert_eq!(
        foreign["error"], body["error"],
        "another owner's host looks exactly like an unknown one"
    );
    let (status, _) = api.get_json("/api/hosts/bob-01", Some(&world.admin)).await;
    assert_eq!(status, 200);
    let (status, body) = api
        .get_json("/api/hosts/not_a_hostname!", Some(&world.alice))
        .await;
    assert_error_body(status, &body, 400);
}

#[tokio::test]
async fn pagination_accepts_per_page_1000_and_refuses_1001() {
    let world = world().await;
    let api = world.api();
    let token = Some(world.admin.as_str());
    let (status, body) = api.get_json("/api/hosts?per_page=1000", token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["per_page"], 1000);
    for bad in [
        "per_page=1001",
        "per_page=0",
        "per_page=-5",
        "per_page=many",
        "page=0",
        "page=abc",
        "page=1&page=2",
        "sort=name",
        "status=sleeping",
        "page=99999999999999999999999",
    ] {
        let (status, body) = api.get_json(&format!("/api/hosts?{bad}"), token).await;
        assert_error_body(status, &body, 400);
        assert!(
            !body["detail"].as_str().unwrap_or_default().is_empty(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn pages_split_the_sorted_listing_and_past_the_end_is_empty() {
    let world = world().await;
    let api = world.api();
    let token = Some(world.alice.as_str());
    let (_, first) = api.get_json("/api/hosts?per_page=3", token).await;
    let (_, second) = api.get_json("/api/hosts?per_page=3&page=2", token).await;
    let (status, beyond) = api.get_json("/api/hosts?per_page=3&page=3", token).await;
    assert_eq!(names(&first), ["db-01", "web-01", "web-02"]);
    assert_eq!(names(&second), ["web-03"]);
    assert_eq!(first["total_pages"], 2);
    assert_eq!(status, 200);
    assert!(
        names(&beyond).is_empty(),
        "a page past the end is empty, not an error"
    );
    assert_eq!(beyond["total"], 4);
}

#[tokio::test]
async fn search_matches_substrings_case_insensitively() {
    let world = world().await;
    let token = Some(world.alice.as_str());
    let (status, body) = world.api().get_json("/api/hosts?search=WEB-0", token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["web-01", "web-02", "web-03"]);
    let (_, body) = world.api().get_json("/api/hosts?search=zzz", token).await;
    assert!(names(&body).is_empty());
    let long = "a".repeat(254);
    let (status, _) = world
        .api()
        .get_json(&format!("/api/hosts?search={long}"), token)
        .await;
    assert_eq!(status, 400, "search longer than any hostname is refused");
}

#[tokio::test(start_paused = true)]
async fn status_filter_separates_online_from_offline_hosts() {
    let store = MemoryStore::new();
    let alice = create_token(&store, "alice", false).await;
    let mut config = token_config();
    config.heartbeat.interval = 1;
    config.heartbeat.timeout_multiplier = 1;
    config.heartbeat.grace_period = 0;
    config.heartbeat.check_interval = 0.05;
    let server = api_server(config, store).await;
    let token = Some(alice.as_str());
    server.register("gone-01", token).await;
    // Keep stay-01 alive while gone-01 misses its 1 s deadline.
    let mut offline = false;
    for _ in 0..40 {
        server.register("stay-01", token).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if server.node().registry().counts().offline == 1 {
            offline = true;
            break;
        }
    }
    assert!(offline, "gone-01 went offline within 4 s");
    let api = server.api();
    let (_, online) = api.get_json("/api/hosts?status=online", token).await;
    let (_, gone) = api.get_json("/api/hosts?status=offline", token).await;
    assert_eq!(names(&online), ["stay-01"]);
    assert_eq!(names(&gone), ["gone-01"]);
    assert_eq!(gone["hosts"][0]["status"], "offline");
    server.shutdown().await;
}

#[tokio::test]
async fn stats_report_the_registry_counts() {
    let world = world().await;
    let (status, body) = world.api().get_json("/api/stats", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hosts"]["registered"], 5);
    assert_eq!(body["hosts"]["online"], 5);
    assert_eq!(body["hosts"]["offline"], 0);
    assert!(body["connections"]["active"].is_number());
}

#[tokio::test]
async fn metrics_endpoint_serves_the_exposition_format() {
    let world = world().await;
    let response = world.api().get("/metrics", None).await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains("# TYPE prism_registered_hosts_total gauge"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let world = world().await;
    let api = world.api();
    let (status, body) = api.get_json("/api/nothing", None).await;
    assert_error_body(status, &body, 404);
    let response = api
        .client()
        .post(api.url("/api/hosts"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn open_auth_mode_serves_hosts_without_a_token() {
    let mut config = token_config();
    config.auth.mode = AuthMode::Open;
    let server = api_server(config, MemoryStore::new()).await;
    server.register("dev-01", None).await;
    let (status, body) = server.api().get_json("/api/hosts", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["dev-01"]);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn revoked_tokens_are_refused_after_the_cache_refresh() {
    let store = MemoryStore::new();
    let alice = create_token(&store, "alice", false).await;
    let mut config = token_config();
    config.auth.refresh_ms = 50;
    let server = api_server(config, store.clone()).await;
    let api = server.api();
    let (status, _) = api.get_json("/api/hosts", Some(&alice)).await;
    assert_eq!(status, 200);
    let id = store.list_tokens().wait().await.expect("tokens")[0].id;
    prism_server::core::tokens::revoke(&store, id, SystemTime::now())
        .await
        .expect("revoke");
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if api.get("/api/hosts", Some(&alice)).await.status().as_u16() == 401 {
            refused = true;
            break;
        }
    }
    assert!(refused, "a revoked token is refused within 2.5 s");
    server.shutdown().await;
}
