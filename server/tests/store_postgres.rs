//! What only a store shared by several nodes does: PostgreSQL arbitrates ownership between
//! nodes, elects one sweeper, publishes every commit on a change feed, and refuses a schema
//! newer than the server.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use prism_server::core::auth::hash_token;
use prism_server::core::clock::from_unix_millis;
use prism_server::store::{
    Due, DueAction, FeedEvent, HostRecord, HostWrite, PostgresStore, Store, StoreError,
};
use prism_testkit::postgres::TestPostgres;

/// Longest a change may take to arrive on another node's feed.
const FEED_WAIT: Duration = Duration::from_secs(5);

async fn open(url: &str) -> Arc<PostgresStore> {
    Arc::new(
        PostgresStore::open(url, 4, None)
            .await
            .expect("open PostgreSQL"),
    )
}

fn host(name: &str, owner: &str) -> HostRecord {
    HostRecord {
        hostname: name.into(),
        owner: owner.into(),
        address: IpAddr::from([192, 0, 2, 1]),
        first_seen: from_unix_millis(1_000),
        last_seen: from_unix_millis(5_000),
        offline: false,
        change: 0,
    }
}

/// `hostname` due for `action`, unless seen after 6 s (the hosts here were seen at 5 s).
fn due(hostname: &str, action: DueAction) -> Due {
    Due {
        hostname: hostname.into(),
        action,
        seen_before: from_unix_millis(6_000),
    }
}

/// The next feed event other than a (re)connection notice.
async fn next_change(feed: &mut tokio::sync::mpsc::Receiver<FeedEvent>) -> FeedEvent {
    loop {
        match tokio::time::timeout(FEED_WAIT, feed.recv()).await {
            Ok(Some(FeedEvent::Resync)) => continue,
            Ok(Some(event)) => return event,
            Ok(None) => panic!("the change feed closed"),
            Err(_) => panic!("no change arrived on the feed within {FEED_WAIT:?}"),
        }
    }
}

#[tokio::test]
async fn two_owners_racing_for_one_name_on_two_nodes_end_with_one_owner() {
    let server = TestPostgres::start();
    let url = server.create_database("race");
    let (a, b) = (open(&url).await, open(&url).await);

    for round in 0..50 {
        let name = format!("contested-{round}");
        let (alice, bob) = tokio::join!(
            a.write_host(HostWrite::Upsert(host(&name, "alice"))).wait(),
            b.write_host(HostWrite::Upsert(host(&name, "bob"))).wait(),
        );
        let winners = [&alice, &bob]
            .iter()
            .filter(|result| result.is_ok())
            .count();
        assert_eq!(winners, 1, "round {round}: alice {alice:?}, bob {bob:?}");
        let loser = if alice.is_ok() { &bob } else { &alice };
        assert_eq!(
            loser,
            &Err(StoreError::OwnedByOther {
                hostname: name.clone()
            })
        );
        let owner = server.psql(
            "race",
            &format!("SELECT owner FROM hosts WHERE hostname = '{name}'"),
        );
        assert_eq!(
            owner,
            if alice.is_ok() { "alice" } else { "bob" },
            "round {round}"
        );
    }
}

#[tokio::test]
async fn exactly_one_node_leads_and_another_takes_over_when_it_goes() {
    let server = TestPostgres::start();
    let url = server.create_database("lead");
    let (a, b) = (open(&url).await, open(&url).await);

    let (a_leads, b_leads) = (
        a.lead().wait().await.expect("a asks"),
        b.lead().wait().await.expect("b asks"),
    );
    assert!(
        a_leads ^ b_leads,
        "exactly one leads: a {a_leads}, b {b_leads}"
    );
    assert_eq!(
        (
            a.lead().wait().await.expect("a again"),
            b.lead().wait().await.expect("b again")
        ),
        (a_leads, b_leads),
        "the leader keeps its role while it lives"
    );

    let (leader, follower) = if a_leads { (a, b) } else { (b, a) };
    drop(leader);
    let mut took_over = false;
    for _ in 0..50 {
        if follower.lead().wait().await.expect("follower asks") {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        took_over,
        "the lock died with the leader's session: the other node leads"
    );
}

#[tokio::test]
async fn every_commit_reaches_the_other_nodes_feed() {
    let server = TestPostgres::start();
    let url = server.create_database("feed");
    let writer = open(&url).await;
    let reader = open(&url).await;
    let mut feed = reader.subscribe().expect("PostgreSQL has a change feed");
    // The feed says Resync once it listens: what was committed before is the resync's job.
    match tokio::time::timeout(FEED_WAIT, feed.recv()).await {
        Ok(Some(FeedEvent::Resync)) => {}
        other => panic!("expected the feed to announce it listens, got {other:?}"),
    }

    let change = writer
        .write_host(HostWrite::Upsert(host("web-01", "alice")))
        .wait()
        .await
        .expect("create");
    match next_change(&mut feed).await {
        FeedEvent::Host(record) => {
            assert_eq!(record.hostname, "web-01");
            assert_eq!(
                record.change, change,
                "the feed carries the commit's position"
            );
        }
        other => panic!("expected the new host, got {other:?}"),
    }

    writer
        .expire(vec![due("web-01", DueAction::GoOffline)])
        .wait()
        .await
        .expect("offline");
    match next_change(&mut feed).await {
        FeedEvent::Host(record) => assert!(record.offline, "{record:?}"),
        other => panic!("expected the host offline, got {other:?}"),
    }

    writer
        .expire(vec![due("web-01", DueAction::Delete)])
        .wait()
        .await
        .expect("delete");
    assert!(
        matches!(next_change(&mut feed).await, FeedEvent::Deleted { hostname, .. } if hostname == "web-01")
    );

    writer
        .create_token("alice".into(), false, hash_token("t"), from_unix_millis(1))
        .wait()
        .await
        .expect("token");
    assert_eq!(next_change(&mut feed).await, FeedEvent::Tokens);
}

#[tokio::test]
async fn a_database_from_a_newer_server_is_refused() {
    let server = TestPostgres::start();
    let url = server.create_database("newer");
    drop(open(&url).await);
    server.psql("newer", "UPDATE prism_schema SET version = version + 1");

    let err = match PostgresStore::open(&url, 4, None).await {
        Ok(_) => panic!("a newer schema was opened"),
        Err(err) => err.to_string(),
    };

    assert!(err.contains("newer than this server"), "{err}");
}
