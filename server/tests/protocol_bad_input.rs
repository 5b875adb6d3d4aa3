//! Every kind of bad input of SPEC §2 gets an error a human can act on, and the server stays up.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use prism_server::Config;
use prism_server::core::protocol::Status;
use prism_server::store::MemoryStore;
use prism_testkit::TestServer;
use prism_testkit::protocol::{frame, registration};
use prism_testkit::setup::{create_token, open_config};

/// Bad messages that keep the connection open: (what is wrong, payload, expected message part).
fn message_errors(token: &str) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let with = |json: serde_json::Value| serde_json::to_vec(&json).expect("json");
    vec![
        (
            "not an object",
            b"[1,2,3]".to_vec(),
            "must be a JSON object",
        ),
        (
            "missing version",
            with(serde_json::json!({"type":"registration","hostname":"a","auth_token":token})),
            "missing required field 'version'",
        ),
        (
            "missing type",
            with(serde_json::json!({"version":"1.0","hostname":"a","auth_token":token})),
            "missing required field 'type'",
        ),
        (
            "missing hostname",
            with(serde_json::json!({"version":"1.0","type":"registration","auth_token":token})),
            "missing required field 'hostname'",
        ),
        (
            "hostname not a string",
            with(
                serde_json::json!({"version":"1.0","type":"registration","hostname":42,"auth_token":token}),
            ),
            "field 'hostname' must be a string",
        ),
        (
            "duplicate field",
            br#"{"version":"1.0","type":"registration","hostname":"a","hostname":"b"}"#.to_vec(),
            "duplicate field",
        ),
        (
            "unsupported version",
            with(
                serde_json::json!({"version":"2.0","type":"registration","hostname":"a","auth_token":token}),
            ),
            "unsupported protocol version '2.0'",
        ),
        (
            "unknown type",
            with(
                serde_json::json!({"version":"1.0","type":"deregistration","hostname":"a","auth_token":token}),
            ),
            "unknown message type 'deregistration'",
        ),
        (
            "empty hostname",
            registration("", Some(token)),
            "hostname is empty",
        ),
        (
            "underscore",
            registration("web_01", Some(token)),
            "contains '_'",
        ),
        (
            "leading hyphen",
            registration("-web", Some(token)),
            "starts or ends with '-'",
        ),
        (
            "empty label",
            registration("web..01", Some(token)),
            "empty label",
        ),
        (
            "label over 63",
            registration(&"a".repeat(64), Some(token)),
            "longer than 63 characters",
        ),
        (
            "name over 253",
            registration(&vec!["abcdefghi"; 26].join("."), Some(token)),
            "limit is 253",
        ),
        (
            "name that cannot fit under the zone",
            registration(
                &format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(42)),
                Some(token),
            ),
            "hostname is 234 characters long; under the zone managed.prism.local. the limit is 233",
        ),
        (
            "the zone's nameserver",
            registration("ns1", Some(token)),
            "hostname 'ns1' is reserved: it names one of the zone's nameservers",
        ),
        (
            "the zone's SOA contact",
            registration("HostMaster", Some(token)),
            "hostname 'hostmaster' is reserved",
        ),
        (
            "missing token",
            registration("a", None),
            "authentication required",
        ),
        (
            "unknown token",
            registration("a", Some("prism_nope")),
            "token is not valid",
        ),
    ]
}

#[tokio::test]
async fn each_bad_message_gets_a_clear_error_and_the_connection_stays_usable() {
    let store = MemoryStore::new();
    let token = create_token(&store, "alice", false).await;
    let server = TestServer::builder(Config::default())
        .store(store)
        .start()
        .await;
    let mut client = server.connect().await;
    for (what, payload, expected) in message_errors(&token) {
        let response = client.call(&payload).await;
        assert_eq!(response.status, Status::Error, "{what}: {response:?}");
        assert!(
            response.message.contains(expected),
            "{what}: expected {expected:?} in {:?}",
            response.message
        );
    }
    let ok = client.call(&registration("still-fine", Some(&token))).await;
    assert_eq!(
        ok.status,
        Status::Success,
        "same connection still works: {ok:?}"
    );
    assert_eq!(server.node().registry().counts().registered, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn framing_errors_each_close_only_their_own_connection() {
    let server = TestServer::builder(open_config()).start().await;
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "oversized",
            70_000u32.to_be_bytes().to_vec(),
            "exceeds the 65536-byte limit",
        ),
        ("empty frame", 0u32.to_be_bytes().to_vec(), "empty frame"),
        ("invalid json", frame(b"{]"), "not valid JSON"),
        ("unfinished array", frame(b"[1,2"), "not valid JSON"),
        (
            "unfinished object",
            frame(br#"{"version":1,"#),
            "not valid JSON",
        ),
        ("invalid utf-8", frame(b"\xc3\x28"), "not valid UTF-8"),
    ];
    let mut bystander = server.connect().await;
    for (what, bytes, expected) in cases {
        let mut client = server.connect().await;
        client.send_raw(&bytes).await;
        let response = client.recv().await.expect("one error frame");
        assert_eq!(response.status, Status::Error, "{what}");
        assert!(response.message.contains(expected), "{what}: {response:?}");
        assert!(client.is_closed().await, "{what}: connection closed");
        let ok = bystander.call(&registration("bystander", None)).await;
        assert_eq!(
            ok.status,
            Status::Success,
            "{what}: other connections unaffected"
        );
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn revoked_token_is_refused_within_the_refresh_interval() {
    let store = MemoryStore::new();
    let token = create_token(&store, "alice", false).await;
    let server = TestServer::builder(Config::default())
        .store(store.clone())
        .start()
        .await;
    let mut client = server.connect().await;
    assert_eq!(
        client
            .call(&registration("rev-01", Some(&token)))
            .await
            .status,
        Status::Success
    );
    prism_server::core::tokens::revoke(&store, 1, SystemTime::now())
        .await
        .expect("revoke");
    let refresh = Duration::from_millis(server.node().config().get().auth.refresh_ms);
    tokio::time::sleep(refresh + Duration::from_millis(1)).await;
    let refused = client.call(&registration("rev-01", Some(&token))).await;
    assert_eq!(refused.status, Status::Error);
    assert!(refused.message.contains("revoked"), "{refused:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn another_owners_registration_of_a_taken_name_is_refused_and_changes_nothing() {
    let store = MemoryStore::new();
    let alice = create_token(&store, "alice", false).await;
    let mallory = create_token(&store, "mallory", false).await;
    let server = TestServer::builder(Config::default())
        .store(store.clone())
        .start()
        .await;
    let mut client = server.connect().await;
    assert_eq!(
        client
            .call(&registration("web-01", Some(&alice)))
            .await
            .status,
        Status::Success
    );
    let before = store.hosts();
    let mut intruder = server
        .connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .await;
    let refused = intruder.call(&registration("WEB-01", Some(&mallory))).await;
    assert_eq!(refused.status, Status::Error);
    assert!(
        refused.message.contains("registered to another owner"),
        "{refused:?}"
    );
    let host = server.node().registry().get("web-01").expect("still there");
    assert_eq!(&*host.owner, "alice");
    assert_eq!(host.address.to_string(), "127.0.0.1", "address unchanged");
    assert_eq!(store.hosts(), before, "store unchanged");
    server.shutdown().await;
}

#[tokio::test]
async fn a_short_rate_limit_wait_is_rounded_up_never_to_zero() {
    let mut config = open_config();
    config.rate_limit.registrations_per_minute = 6_000;
    config.rate_limit.burst = 1;
    let server = TestServer::builder(config).start().await;
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&registration("fast-1", None)).await.status,
        Status::Success
    );
    let refused = client.call(&registration("fast-2", None)).await;
    assert_eq!(refused.status, Status::Error);
    let wait = refused
        .message
        .split("retry in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no wait in {:?}", refused.message));
    let millis: u64 = wait
        .strip_suffix(" ms")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a 10 ms wait is said in whole milliseconds: {wait:?}"));
    assert!((1..=10).contains(&millis), "{wait}");
    server.shutdown().await;
}
