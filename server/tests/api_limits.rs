//! The API port cannot be held or starved: heads and bodies have deadlines, connections are
//! limited in all and per address, and every refusal — even one hyper never sees — carries
//! `X-Request-ID` and a `{"error","detail"}` body.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use prism_testkit::TestServer;
use prism_testkit::setup::open_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One HTTP response as read off the wire.
struct Answer {
    status: u16,
    request_id: Option<String>,
    body: serde_json::Value,
    /// How long after the request was sent the server closed the connection.
    after: Duration,
    /// How many status lines the server sent.
    responses: usize,
}

async fn connect(server: SocketAddr, source: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind the source");
    socket.connect(server).await.expect("connect")
}

/// Sends `bytes` on `stream` and reads until the server closes it (at most 10 s).
async fn answer(mut stream: TcpStream, bytes: &[u8]) -> Answer {
    let sent = Instant::now();
    stream.write_all(bytes).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes within 10 s")
        .expect("read");
    let after = sent.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let request_id = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-request-id")
            .then(|| value.trim().to_owned())
    });
    let responses = text.matches("HTTP/1.1 ").count();
    let body = serde_json::Deserializer::from_str(body)
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("not a JSON body: {body:?}"));
    Answer {
        status,
        request_id,
        body,
        after,
        responses,
    }
}

fn assert_error_shape(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.request_id.as_ref().is_some_and(|id| id.len() >= 16),
        "{what}: no X-Request-ID"
    );
    assert!(
        answer.body["error"].is_string() && answer.body["detail"].is_string(),
        "{what}: body {}",
        answer.body
    );
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn refusals_below_the_router_carry_a_request_id_and_a_json_error() {
    let server = TestServer::builder(open_config()).api().start().await;
    let headers: String = (0..2000).map(|n| format!("X-Filler-{n}: 1\r\n")).collect();
    let cases = [
        (
            "a 70 KB path",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            414,
        ),
        (
            "2 000 headers",
            format!("GET /api/health HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes(),
            431,
        ),
        (
            "a control character in a header",
            b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a chunked body",
            b"GET /api/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            411,
        ),
    ];
    for (what, request, status) in cases {
        let reply = answer(connect(server.api_addr(), LOOPBACK).await, &request).await;
        assert_error_shape(&reply, status, what);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn half_sent_heads_and_bodies_are_answered_408_after_their_deadlines() {
    let mut config = open_config();
    config.api.header_timeout_secs = 1;
    config.api.body_timeout_secs = 1;
    let server = TestServer::builder(config).api().start().await;
    let head = answer(
        connect(server.api_addr(), LOOPBACK).await,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nUser-Ag",
    )
    .await;
    assert_error_shape(&head, 408, "a head that never ends");
    // No route reads a body: the request is answered at once, and the connection, which
    // still owes the rest of the body, is closed — by the body deadline at the latest.
    let body = answer(
        connect(server.api_addr(), LOOPBACK).await,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
    )
    .await;
    assert_eq!(body.status, 200, "{}", body.body);
    assert_eq!(body.responses, 1, "one request, one response");
    assert!(
        head.after >= Duration::from_millis(900) && head.after < Duration::from_secs(5),
        "the head was cut off after {:?}, not at its 1 s deadline",
        head.after
    );
    assert!(
        body.after < Duration::from_secs(2),
        "the connection owing a body stayed open {:?}, past its 1 s deadline",
        body.after
    );
    // A whole request with a small body is served as usual.
    let ok = answer(
        connect(server.api_addr(), LOOPBACK).await,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    server.shutdown().await;
}

#[tokio::test]
async fn api_connections_are_limited_per_address_and_in_all() {
    let mut config = open_config();
    config.api.max_connections = 6;
    config.api.max_connections_per_ip = 3;
    let server = TestServer::builder(config).api().start().await;
    let crowd = IpAddr::from([127, 0, 0, 1]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(server.api_addr(), crowd).await);
    }
    // Held connections are only accepted, not yet counted, until the server sees them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = answer(connect(server.api_addr(), crowd).await, b"").await;
    assert_error_shape(&refused, 503, "a fourth connection from one address");
    for source in [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]] {
        held.push(connect(server.api_addr(), IpAddr::from(source)).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let full = answer(
        connect(server.api_addr(), IpAddr::from([127, 0, 0, 5])).await,
        b"",
    )
    .await;
    assert_error_shape(&full, 503, "a seventh connection in all");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = answer(
        connect(server.api_addr(), crowd).await,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(served.status, 200, "freed slots serve again");
    server.shutdown().await;
}
