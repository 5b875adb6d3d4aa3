//! Racing registrations over real connections: 100 connections register one new name at
//! once while the store stalls; none hears success before the host is stored, and when the
//! write fails, every one hears the error and nothing of the host is left anywhere.

use std::sync::Arc;
use std::time::Duration;

use prism_server::core::protocol::{Response, Status};
use prism_server::store::MemoryStore;
use prism_testkit::TestServer;
use prism_testkit::protocol::registration;
use prism_testkit::setup::open_config;

/// Sends one registration of `hostname` on each of `count` fresh connections at once; the
/// tasks finish as the answers arrive.
async fn race(
    server: &TestServer,
    hostname: &str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<Response>> {
    let mut racers = Vec::with_capacity(count);
    for _ in 0..count {
        let mut client = server.connect().await;
        let payload = registration(hostname, None);
        racers.push(tokio::spawn(async move { client.call(&payload).await }));
    }
    racers
}

#[tokio::test]
async fn no_racer_hears_success_until_the_host_is_stored_and_a_failed_write_fails_them_all() {
    let store = MemoryStore::new();
    let server = Arc::new(
        TestServer::builder(open_config())
            .store(store.clone())
            .start()
            .await,
    );

    store.hold_writes();
    let racers = race(&server, "contested", 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store.held_writes() >= 1, "the host's write is held");
    let early: Vec<_> = racers.iter().filter(|racer| racer.is_finished()).collect();
    assert!(
        early.is_empty(),
        "{} racers were answered before the host's write committed",
        early.len()
    );
    store.release_writes(false);
    for racer in racers {
        let response = racer.await.expect("racer");
        assert_eq!(
            response.status,
            Status::Error,
            "success for a host that is not in the store: {response:?}"
        );
    }
    assert!(store.hosts().is_empty());
    assert!(server.node().registry().get("contested").is_none());
    assert_eq!(server.node().registry().counts().registered, 0);

    store.hold_writes();
    let racers = race(&server, "contested", 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(racers.iter().all(|racer| !racer.is_finished()));
    store.release_writes(true);
    for racer in racers {
        assert_eq!(racer.await.expect("racer").status, Status::Success);
    }
    assert_eq!(store.hosts().len(), 1);
    if let Ok(server) = Arc::try_unwrap(server) {
        server.shutdown().await;
    }
}
