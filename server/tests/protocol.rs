//! Registration protocol v1.0 over real loopback connections (SPEC §2).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use prism_server::core::protocol::Status;
use prism_testkit::TestServer;
use prism_testkit::protocol::{frame, registration};
use prism_testkit::setup::open_config;

#[tokio::test]
async fn accepts_both_wire_forms_of_deployed_clients() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server.connect().await;
    let compact = br#"{"version":"1.0","type":"registration","timestamp":"2026-11-26T10:00:00.123456","hostname":"web-01","auth_token":"x","client_ip":"10.9.9.9"}"#;
    let spaced = br#"{"version": "1.0", "type": "registration", "timestamp": "2026-11-26T10:00:00.123456", "hostname": "web-01", "auth_token": "x", "client_ip": "10.9.9.9"}"#;
    let first = client.call(compact).await;
    assert_eq!(first.status, Status::Success, "{first:?}");
    assert!(first.message.contains("registered"), "{first:?}");
    let second = client.call(spaced).await;
    assert_eq!(second.status, Status::Success, "{second:?}");
    assert!(second.message.contains("Heartbeat"), "{second:?}");
    let host = server
        .node()
        .registry()
        .get("web-01")
        .expect("host registered");
    assert_eq!(
        host.address.to_string(),
        "127.0.0.1",
        "the address is the TCP peer, never client_ip"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn answers_100_pipelined_frames_on_one_connection_in_order() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server.connect().await;
    let mut burst = Vec::new();
    for i in 0..100 {
        // Alternate valid and invalid hostnames so the order of answers is observable.
        let hostname = if i % 2 == 0 {
            format!("host-{i}")
        } else {
            format!("bad_{i}")
        };
        burst.extend_from_slice(&frame(&registration(&hostname, None)));
    }
    client.send_raw(&burst).await;
    for i in 0..100 {
        let response = client.recv().await.expect("one response per frame");
        if i % 2 == 0 {
            assert_eq!(response.status, Status::Success, "frame {i}: {response:?}");
            assert!(
                response.message.contains(&format!("host-{i}")),
                "frame {i}: {response:?}"
            );
        } else {
            assert_eq!(response.status, Status::Error, "frame {i}: {response:?}");
            assert!(response.message.contains("'_'"), "frame {i}: {response:?}");
        }
    }
    assert_eq!(server.node().registry().counts().registered, 50);
    server.shutdown().await;
}

#[tokio::test]
async fn one_shot_client_that_never_reads_still_registers() {
    let server = TestServer::builder(open_config()).start().await;
    {
        let mut client = server.connect().await;
        client.send(&registration("oneshot-01", None)).await;
        // Dropped without reading: the deployed clients' fire-and-forget heartbeat.
    }
    let registered = async {
        while server.node().registry().get("oneshot-01").is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), registered)
        .await
        .expect("the one-shot registration is applied");
    let mut other = server.connect().await;
    let response = other.call(&registration("oneshot-02", None)).await;
    assert_eq!(
        response.status,
        Status::Success,
        "server keeps serving: {response:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rejects_oversized_declared_length_with_one_error_frame_and_closes() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server.connect().await;
    // Declares 4 GiB and sends nothing more: an answer proves the body was never awaited.
    client.send_raw(&u32::MAX.to_be_bytes()).await;
    let response = client.recv().await.expect("an error frame");
    assert_eq!(response.status, Status::Error);
    assert!(
        response.message.contains("exceeds the 65536-byte limit"),
        "{response:?}"
    );
    assert!(
        client.is_closed().await,
        "connection must close after a framing error"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rejects_a_frame_one_byte_over_the_limit_but_accepts_the_limit() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server.connect().await;
    let padding = " ".repeat(65_536 - registration("big", None).len());
    let mut at_limit = registration("big", None);
    at_limit.extend_from_slice(padding.as_bytes());
    assert_eq!(at_limit.len(), 65_536);
    assert_eq!(client.call(&at_limit).await.status, Status::Success);
    at_limit.push(b' ');
    client.send(&at_limit).await;
    let response = client.recv().await.expect("an error frame");
    assert!(response.message.contains("65537"), "{response:?}");
    assert!(client.is_closed().await);
    server.shutdown().await;
}

#[tokio::test]
async fn rejects_invalid_json_with_one_error_frame_and_closes() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server.connect().await;
    client.send(b"{\"version\": \"1.0\", oops").await;
    // A second frame after the bad one must not be answered: one error, then close.
    client.send(&registration("after", None)).await;
    let response = client.recv().await.expect("an error frame");
    assert_eq!(response.status, Status::Error);
    assert!(response.message.contains("not valid JSON"), "{response:?}");
    assert!(
        client.recv().await.is_none(),
        "no endless error loop, no second answer"
    );
    assert!(server.node().registry().get("after").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn rejects_invalid_utf8_with_one_error_frame_and_closes() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server.connect().await;
    client.send(b"{\"hostname\":\"\xff\"}").await;
    let response = client.recv().await.expect("an error frame");
    assert!(response.message.contains("UTF-8"), "{response:?}");
    assert!(client.is_closed().await);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn closes_idle_connections_after_the_idle_timeout() {
    let mut config = open_config();
    config.server.idle_timeout_secs = 1;
    let server = TestServer::builder(config).start().await;
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&registration("idle-01", None)).await.status,
        Status::Success
    );
    let started = tokio::time::Instant::now();
    assert!(client.is_closed().await, "idle connection is closed");
    let waited = started.elapsed();
    // Paused time stands still during the exchange, so the wait is the idle timeout itself.
    assert!(
        waited >= Duration::from_secs(1),
        "closed after {waited:?}, before the 1 s idle timeout"
    );
    assert!(
        waited < Duration::from_millis(1100),
        "closed only after {waited:?}, long after the 1 s idle timeout"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn connection_1001_gets_server_at_capacity_while_1000_keep_working() {
    rlimit::increase_nofile_limit(8192).expect("raise the open-file limit");
    let server = TestServer::builder(open_config()).start().await;
    let mut clients = Vec::with_capacity(1000);
    for i in 0..1000 {
        // Ten source addresses, 100 connections each: under the per-address limit.
        let source = IpAddr::from([127, 0, 0, 10 + (i % 10) as u8]);
        let mut client = server.connect_from(source).await;
        let response = client.call(&registration(&format!("cap-{i}"), None)).await;
        assert_eq!(
            response.status,
            Status::Success,
            "connection {i}: {response:?}"
        );
        clients.push(client);
    }
    let mut extra = server.connect().await;
    extra.send(&registration("cap-extra", None)).await;
    let refused = extra.recv().await.expect("a capacity error frame");
    assert_eq!(refused.status, Status::Error);
    assert_eq!(refused.message, "Server at capacity");
    assert!(extra.is_closed().await);
    assert!(server.node().registry().get("cap-extra").is_none());
    for (i, client) in clients.iter_mut().enumerate().step_by(97) {
        let response = client.call(&registration(&format!("cap-{i}"), None)).await;
        assert_eq!(
            response.status,
            Status::Success,
            "existing connection {i} unaffected"
        );
    }
    drop(clients);
    server.shutdown().await;
}

#[tokio::test]
async fn rate_limit_is_per_source_ip_across_connections() {
    let mut config = open_config();
    config.rate_limit.registrations_per_minute = 60;
    config.rate_limit.burst = 3;
    let server = TestServer::builder(config).start().await;
    // Three connections share the budget of one IP: a per-connection limiter would allow 9.
    let mut outcomes = Vec::new();
    for round in 0..3 {
        let mut client = server.connect().await;
        for i in 0..3 {
            outcomes.push(
                client
                    .call(&registration(&format!("rl-{round}-{i}"), None))
                    .await,
            );
        }
    }
    let accepted = outcomes
        .iter()
        .filter(|r| r.status == Status::Success)
        .count();
    assert_eq!(accepted, 3, "{outcomes:?}");
    let refused = outcomes
        .iter()
        .find(|r| r.status == Status::Error)
        .expect("a refusal");
    assert!(
        refused
            .message
            .contains("rate limit exceeded for 127.0.0.1"),
        "{refused:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_answers_a_registration_from_a_second_loopback_address() {
    let server = TestServer::builder(open_config()).start().await;
    let mut client = server
        .connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .await;
    assert_eq!(
        client.call(&registration("far-01", None)).await.status,
        Status::Success
    );
    assert_eq!(
        server
            .node()
            .registry()
            .get("far-01")
            .map(|h| h.address.to_string()),
        Some("127.0.0.2".to_owned())
    );
    server.shutdown().await;
}
