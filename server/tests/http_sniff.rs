//! Plain HTTP on the registration port (SPEC §1): `GET`/`HEAD` for `/metrics` and
//! `/api/health` are answered and the connection closed; nothing else of the API is served
//! there, and registrations on the same port are unaffected.

use prism_testkit::setup::open_config;
use prism_testkit::{IO_TIMEOUT, TestServer};
use tokio::io::AsyncReadExt;

async fn open_server() -> TestServer {
    TestServer::builder(open_config()).start().await
}

/// Sends a raw request and reads until the server closes.
async fn raw_http(server: &TestServer, request: &str) -> String {
    let mut client = server.connect().await;
    client.send_raw(request.as_bytes()).await;
    let mut answer = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, client.stream().read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn get_metrics_on_the_registration_port_answers_and_closes() {
    let server = open_server().await;
    let answer = raw_http(&server, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id: "),
        "{answer}"
    );
    assert!(
        answer.contains("# TYPE prism_tcp_active_connections gauge"),
        "{answer}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn health_and_head_work_on_the_registration_port() {
    let server = open_server().await;
    let answer = raw_http(&server, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"healthy\""), "{answer}");
    let answer = raw_http(&server, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(!answer.contains("# TYPE"), "HEAD has no body: {answer}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_rest_of_the_api_is_not_served_on_the_registration_port() {
    let server = open_server().await;
    let answer = raw_http(&server, "GET /api/hosts HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    server.shutdown().await;
}

#[tokio::test]
async fn registrations_still_work_beside_http_on_the_same_port() {
    let server = open_server().await;
    raw_http(&server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    server.register("web-01", None).await;
    server.shutdown().await;
}
