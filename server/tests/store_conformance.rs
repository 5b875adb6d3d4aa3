//! One set of store cases, run against every backend: the in-memory store the simulator uses,
//! SQLite (the embedded default) and PostgreSQL (a throwaway server per test). A backend that
//! behaves differently from the others fails here, not in production.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use prism_server::core::auth::hash_token;
use prism_server::core::clock::from_unix_millis;
use prism_server::store::{
    Due, DueAction, Expired, HostRecord, HostWrite, MemoryStore, PostgresStore, SqliteStore, Store,
    StoreError,
};
use prism_testkit::postgres::TestPostgres;

/// A store under test, and what keeps its files or server alive.
struct Fixture {
    store: Arc<dyn Store>,
    /// Opens the same stored data again (a restart), where the backend can.
    reopen: Option<Reopen>,
    /// Whether the backend keeps a change order (shared stores and the simulator's memory
    /// store do; the embedded SQLite store has one writer and keeps none).
    keeps_order: bool,
    _guard: Box<dyn std::any::Any>,
}

type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Store>>>>>;

async fn memory() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new()),
        reopen: None,
        keeps_order: true,
        _guard: Box::new(()),
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/prism.db");
    let store = Arc::new(SqliteStore::open(&path, None).expect("open SQLite"));
    Fixture {
        store,
        reopen: Some(Box::new(move || {
            let path = path.clone();
            Box::pin(async move {
                Arc::new(SqliteStore::open(&path, None).expect("reopen SQLite")) as Arc<dyn Store>
            })
        })),
        keeps_order: false,
        _guard: Box::new(dir),
    }
}

async fn postgres() -> Fixture {
    let server = TestPostgres::start();
    let url = server.create_database("conformance");
    let store = Arc::new(
        PostgresStore::open(&url, 4, None)
            .await
            .expect("open PostgreSQL"),
    );
    Fixture {
        store,
        reopen: Some(Box::new(move || {
            let url = url.clone();
            Box::pin(async move {
                Arc::new(
                    PostgresStore::open(&url, 4, None)
                        .await
                        .expect("reopen PostgreSQL"),
                ) as Arc<dyn Store>
            })
        })),
        keeps_order: true,
        _guard: Box::new(server),
    }
}

fn at(millis: i64) -> SystemTime {
    from_unix_millis(millis)
}

fn host(name: &str, owner: &str, last_seen_ms: i64) -> HostRecord {
    HostRecord {
        hostname: name.into(),
        owner: owner.into(),
        address: IpAddr::from([192, 0, 2, 1]),
        first_seen: at(1_000),
        last_seen: at(last_seen_ms),
        offline: false,
        change: 0,
    }
}

async fn upsert(store: &dyn Store, record: HostRecord) -> Result<u64, StoreError> {
    store.write_host(HostWrite::Upsert(record)).wait().await
}

async fn load(store: &dyn Store) -> Vec<HostRecord> {
    let mut hosts = store.load_hosts().wait().await.expect("load hosts");
    hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    hosts
}

/// The stored records without their change positions (which only some backends keep).
async fn load_plain(store: &dyn Store) -> Vec<HostRecord> {
    load(store)
        .await
        .into_iter()
        .map(|record| HostRecord {
            change: 0,
            ..record
        })
        .collect()
}

fn due(name: &str, action: DueAction, seen_before_ms: i64) -> Due {
    Due {
        hostname: name.into(),
        action,
        seen_before: at(seen_before_ms),
    }
}

// ---- the cases ----

async fn upsert_creates_and_moves_a_host_keeping_first_seen(store: &dyn Store) {
    upsert(store, host("web-01", "alice", 5_000))
        .await
        .expect("create");
    let mut moved = host("web-01", "alice", 9_000);
    moved.first_seen = at(8_000);
    moved.address = IpAddr::from([198, 51, 100, 7]);
    upsert(store, moved).await.expect("move");

    let stored = load_plain(store).await;
    let mut expected = host("web-01", "alice", 9_000);
    expected.address = IpAddr::from([198, 51, 100, 7]);
    assert_eq!(
        stored,
        vec![expected],
        "first_seen is the first registration's"
    );
}

async fn last_seen_never_moves_backwards(store: &dyn Store) {
    upsert(store, host("a", "alice", 5_000))
        .await
        .expect("create");
    store
        .write_host(HostWrite::Freshness(vec![("a".into(), at(4_000))]))
        .wait()
        .await
        .expect("older freshness");
    assert_eq!(
        load(store).await[0].last_seen,
        at(5_000),
        "after an older refresh"
    );
    upsert(store, host("a", "alice", 3_000))
        .await
        .expect("older upsert");
    assert_eq!(
        load(store).await[0].last_seen,
        at(5_000),
        "after an older upsert"
    );
    store
        .write_host(HostWrite::Freshness(vec![
            ("a".into(), at(7_000)),
            ("not-stored".into(), at(7_000)),
        ]))
        .wait()
        .await
        .expect("newer freshness, one unknown name");
    let stored = load(store).await;
    assert_eq!(
        stored.len(),
        1,
        "freshness never creates a host: {stored:?}"
    );
    assert_eq!(stored[0].last_seen, at(7_000));
}

async fn another_owner_is_refused_and_nothing_changes(store: &dyn Store) {
    upsert(store, host("shared", "alice", 5_000))
        .await
        .expect("alice first");
    let mut theirs = host("shared", "bob", 6_000);
    theirs.address = IpAddr::from([203, 0, 113, 9]);

    let refused = upsert(store, theirs).await;

    assert_eq!(
        refused,
        Err(StoreError::OwnedByOther {
            hostname: "shared".into()
        })
    );
    assert_eq!(
        load_plain(store).await,
        vec![host("shared", "alice", 5_000)]
    );
}

async fn expiry_marks_offline_deletes_and_respects_later_heartbeats(store: &dyn Store) {
    for name in ["quiet", "busy", "old"] {
        upsert(store, host(name, "alice", 5_000))
            .await
            .expect("create");
    }
    store
        .write_host(HostWrite::Freshness(vec![("busy".into(), at(8_000))]))
        .wait()
        .await
        .expect("busy heartbeats");

    let outcomes = store
        .expire(vec![
            due("quiet", DueAction::GoOffline, 6_000),
            due("busy", DueAction::GoOffline, 6_000),
            due("missing", DueAction::GoOffline, 6_000),
        ])
        .wait()
        .await
        .expect("expire");

    assert!(
        matches!(&outcomes[0], Expired::Done { hostname, .. } if hostname == "quiet"),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1],
        Expired::SeenSince {
            hostname: "busy".into(),
            last_seen: at(8_000)
        }
    );
    assert_eq!(
        outcomes[2],
        Expired::Gone {
            hostname: "missing".into()
        }
    );
    let stored = load(store).await;
    let offline: Vec<(&str, bool)> = stored
        .iter()
        .map(|host| (host.hostname.as_str(), host.offline))
        .collect();
    assert_eq!(
        offline,
        vec![("busy", false), ("old", false), ("quiet", true)]
    );

    let deleted = store
        .expire(vec![due("quiet", DueAction::Delete, 6_000)])
        .wait()
        .await
        .expect("delete");
    assert!(matches!(&deleted[0], Expired::Done { .. }), "{deleted:?}");
    let names: Vec<String> = load(store).await.into_iter().map(|h| h.hostname).collect();
    assert_eq!(names, vec!["busy", "old"]);
}

async fn a_registration_brings_an_offline_host_back(store: &dyn Store) {
    upsert(store, host("back", "alice", 5_000))
        .await
        .expect("create");
    store
        .expire(vec![due("back", DueAction::GoOffline, 6_000)])
        .wait()
        .await
        .expect("offline");
    assert!(load(store).await[0].offline);

    upsert(store, host("back", "alice", 9_000))
        .await
        .expect("back");

    let stored = load(store).await;
    assert!(!stored[0].offline, "online again: {stored:?}");
    assert_eq!(stored[0].last_seen, at(9_000));
}

async fn change_positions_grow_with_every_change_or_are_not_kept(
    store: &dyn Store,
    keeps_order: bool,
) {
    let first = upsert(store, host("a", "alice", 5_000)).await.expect("a");
    let second = upsert(store, host("b", "alice", 5_000)).await.expect("b");
    let third = upsert(store, host("a", "alice", 6_000))
        .await
        .expect("a again");
    let head = store.head().wait().await.expect("head");
    let stored = load(store).await;

    if !keeps_order {
        assert_eq!(first, 0, "an embedded store keeps no change order");
        assert_eq!(
            (second, third, head),
            (0, 0, 0),
            "a store keeps order or not"
        );
        assert!(stored.iter().all(|host| host.change == 0), "{stored:?}");
    } else {
        assert!(first < second && second < third, "{first} {second} {third}");
        assert!(head >= third, "head {head} behind the last change {third}");
        assert_eq!(
            stored[0].change, third,
            "a's record carries its last change"
        );
        assert_eq!(stored[1].change, second);
    }
}

async fn tokens_are_created_listed_and_revoked_once(store: &dyn Store) {
    let alice = store
        .create_token("alice".into(), true, hash_token("secret-a"), at(7))
        .wait()
        .await
        .expect("alice's token");
    let bob = store
        .create_token("bob".into(), false, hash_token("secret-b"), at(8))
        .wait()
        .await
        .expect("bob's token");
    assert_ne!(alice.id, bob.id, "ids are unique");

    assert!(
        store
            .revoke_token(bob.id, at(9))
            .wait()
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_token(bob.id, at(10))
            .wait()
            .await
            .expect("again"),
        "a second revocation reports the token as not active"
    );
    assert!(
        !store
            .revoke_token(bob.id + 1000, at(10))
            .wait()
            .await
            .expect("unknown"),
        "an unknown id is reported"
    );

    let mut tokens = store.list_tokens().wait().await.expect("list");
    tokens.sort_by_key(|token| token.id);
    assert_eq!(tokens.len(), 2, "revoked tokens stay listed");
    assert_eq!(tokens[0], alice);
    assert_eq!((tokens[1].owner.as_str(), tokens[1].admin), ("bob", false));
    assert_eq!(tokens[1].hash, hash_token("secret-b"));
    assert_eq!(tokens[1].revoked_at, Some(at(9)));
}

async fn a_healthy_store_answers_the_probe_and_leads_alone(store: &dyn Store) {
    store.ping().wait().await.expect("ping");
    assert!(
        store.lead().wait().await.expect("lead"),
        "the only node leads"
    );
}

async fn hosts_and_tokens_survive_reopening(fixture: Fixture) {
    let store = &*fixture.store;
    upsert(store, host("kept", "alice", 5_000))
        .await
        .expect("create");
    store
        .expire(vec![due("kept", DueAction::GoOffline, 6_000)])
        .wait()
        .await
        .expect("offline");
    store
        .create_token("alice".into(), true, hash_token("secret"), at(7))
        .wait()
        .await
        .expect("token");
    let before = load(store).await;
    drop(fixture.store);

    let reopened = (fixture.reopen.expect("a backend that reopens"))().await;

    assert_eq!(
        load(&*reopened).await,
        before,
        "hosts with offline state and change"
    );
    let tokens = reopened.list_tokens().wait().await.expect("tokens");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].hash, hash_token("secret"));
    assert!(tokens[0].admin);
}

/// One `#[tokio::test]` per case for a backend.
macro_rules! conformance {
    ($backend:ident $(, $reopening:ident)?) => {
        mod $backend {
            conformance!(@case $backend, upsert_creates_and_moves_a_host_keeping_first_seen);
            conformance!(@case $backend, last_seen_never_moves_backwards);
            conformance!(@case $backend, another_owner_is_refused_and_nothing_changes);
            conformance!(@case $backend, expiry_marks_offline_deletes_and_respects_later_heartbeats);
            conformance!(@case $backend, a_registration_brings_an_offline_host_back);
            #[tokio::test]
            async fn change_positions_grow_with_every_change_or_are_not_kept() {
                let fixture = super::$backend().await;
                super::change_positions_grow_with_every_change_or_are_not_kept(
                    &*fixture.store,
                    fixture.keeps_order,
                )
                .await;
            }
            conformance!(@case $backend, tokens_are_created_listed_and_revoked_once);
            conformance!(@case $backend, a_healthy_store_answers_the_probe_and_leads_alone);
            $(
                #[tokio::test]
                async fn $reopening() {
                    super::$reopening(super::$backend().await).await;
                }
            )?
        }
    };
    (@case $backend:ident, $case:ident) => {
        #[tokio::test]
        async fn $case() {
            let fixture = super::$backend().await;
            super::$case(&*fixture.store).await;
        }
    };
}

conformance!(memory);
conformance!(sqlite, hosts_and_tokens_survive_reopening);
conformance!(postgres, hosts_and_tokens_survive_reopening);
