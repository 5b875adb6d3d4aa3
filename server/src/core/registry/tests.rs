//! Unit tests of the registry's rules: outcomes, ownership, deadlines, restore, and the
//! durable-before-ack rule for registrations that race a commit.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::core::TokioClock;
use crate::store::{MemoryStore, Store};

/// A clock whose wall time moves with paused tokio time, from a fixed origin.
fn clock() -> Arc<dyn Clock> {
    Arc::new(TokioClock::starting_at(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ))
}

fn registry(store: &MemoryStore) -> Arc<Registry> {
    registry_on(store, clock())
}

fn registry_on(store: &MemoryStore, clock: Arc<dyn Clock>) -> Arc<Registry> {
    Arc::new(Registry::new(
        &HeartbeatSection::default(),
        Arc::new(store.clone()) as Arc<dyn Store>,
        clock,
        Metrics::new().expect("metrics"),
    ))
}

/// One sweep as the leading node runs it: take the due hosts, let the store expire them,
/// apply the verdict.
async fn sweep(registry: &Registry, store: &MemoryStore) -> SweepReport {
    let due = registry.take_due();
    let outcomes = store.expire(due.clone()).wait().await.expect("expire");
    registry.apply_expired(&due, outcomes)
}

fn name(text: &str) -> Hostname {
    Hostname::parse(text).expect("valid hostname")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn owner(text: &str) -> Arc<str> {
    Arc::from(text)
}

#[tokio::test(start_paused = true)]
async fn outcomes_follow_the_host_lifecycle() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    let (web, alice) = (name("web"), owner("alice"));
    let register = |address: &str| registry.register(&web, &alice, ip(address));
    assert_eq!(register("192.0.2.1").await, Ok(Outcome::Registered));
    assert_eq!(register("192.0.2.1").await, Ok(Outcome::Heartbeat));
    assert_eq!(
        register("192.0.2.2").await,
        Ok(Outcome::IpChanged {
            from: ip("192.0.2.1"),
            to: ip("192.0.2.2")
        })
    );
    tokio::time::advance(Duration::from_secs(151)).await;
    let sweep = sweep(&registry, &store).await;
    assert_eq!(sweep.went_offline, vec![Arc::<str>::from("web")]);
    assert_eq!(
        register("192.0.2.3").await,
        Ok(Outcome::Reconnected {
            from: ip("192.0.2.2"),
            to: ip("192.0.2.3")
        })
    );
    assert_eq!(store.hosts()[0].address, ip("192.0.2.3"));
}

#[tokio::test(start_paused = true)]
async fn another_owner_cannot_take_a_name_and_changes_nothing() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    let web = name("web");
    registry
        .register(&web, &owner("alice"), ip("192.0.2.1"))
        .await
        .expect("first owner");
    assert_eq!(
        registry
            .register(&web, &owner("bob"), ip("192.0.2.9"))
            .await,
        Err(RegisterError::OwnedByOther("web".into()))
    );
    let host = registry.get("web").expect("still registered");
    assert_eq!((&*host.owner, host.address), ("alice", ip("192.0.2.1")));
}

#[tokio::test(start_paused = true)]
async fn offline_hosts_are_deleted_after_cleanup_and_restore_derives_status() {
    let (store, clock) = (MemoryStore::new(), clock());
    let registry = registry_on(&store, Arc::clone(&clock));
    registry
        .register(&name("old"), &owner("alice"), ip("192.0.2.1"))
        .await
        .expect("registered");
    tokio::time::advance(Duration::from_secs(151)).await;
    assert_eq!(sweep(&registry, &store).await.went_offline.len(), 1);
    let restored = registry_on(&store, clock);
    restored.restore(store.hosts());
    assert_eq!(
        restored.get("old").map(|host| host.status),
        Some(HostStatus::Offline),
        "a host silent for longer than the timeout restores offline"
    );
    tokio::time::advance(Duration::from_secs(30 * 86_400)).await;
    let sweep = sweep(&registry, &store).await;
    assert_eq!(sweep.deleted.len(), 1);
    assert!(registry.get("old").is_none() && store.hosts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_racing_a_new_registration_is_acknowledged_only_after_its_commit() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    store.hold_writes();
    let first = tokio::spawn({
        let registry = Arc::clone(&registry);
        async move {
            registry
                .register(&name("web"), &owner("alice"), ip("192.0.2.1"))
                .await
        }
    });
    tokio::task::yield_now().await;
    let second = tokio::spawn({
        let registry = Arc::clone(&registry);
        async move {
            registry
                .register(&name("web"), &owner("alice"), ip("192.0.2.1"))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "a registration was answered before the host's write committed"
    );
    store.release_writes(true);
    assert_eq!(first.await.expect("task"), Ok(Outcome::Registered));
    assert_eq!(second.await.expect("task"), Ok(Outcome::Heartbeat));
    assert_eq!(store.hosts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn when_the_creating_write_fails_every_waiter_gets_the_error_and_the_host_is_gone() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    store.hold_writes();
    let racers: Vec<_> = (0..100)
        .map(|_| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                registry
                    .register(&name("web"), &owner("alice"), ip("192.0.2.1"))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.held_writes(), 1, "one durable write for one new host");
    store.release_writes(false);
    for racer in racers {
        let result = racer.await.expect("task");
        assert!(
            matches!(result, Err(RegisterError::Store(_))),
            "a racer got {result:?} for a host that is not in the store"
        );
    }
    assert!(
        registry.get("web").is_none(),
        "the registry still shows the host"
    );
    assert_eq!(registry.counts(), HostCounts::default());
    assert!(store.hosts().is_empty());
}

fn stored(hostname: &str, owner: &str, address: &str, change: u64) -> crate::store::HostRecord {
    crate::store::HostRecord {
        hostname: hostname.into(),
        owner: owner.into(),
        address: ip(address),
        first_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        last_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        offline: false,
        change,
    }
}

/// Registers `web` for `owner` from `address` in a task of its own, and lets it reach the
/// store (whose writes the test holds).
async fn register_in_flight(
    registry: &Arc<Registry>,
    owner_name: &str,
    address: &str,
) -> tokio::task::JoinHandle<Result<Outcome, RegisterError>> {
    let (registry, owner_name, address) = (Arc::clone(registry), owner(owner_name), ip(address));
    let task =
        tokio::spawn(async move { registry.register(&name("web"), &owner_name, address).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    task
}

#[tokio::test(start_paused = true)]
async fn a_name_another_node_won_while_our_write_was_in_flight_shows_the_winner() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    store.hold_writes();
    let loser = register_in_flight(&registry, "bob", "192.0.2.2").await;

    // The winner's commit arrives on the feed before this node's store answer.
    assert!(!registry.apply_stored(stored("web", "alice", "192.0.2.1", 7)));
    store.release_writes(false);

    assert!(loser.await.expect("task").is_err());
    let shown = registry.get("web").expect("the winner's host is shown");
    assert_eq!((&*shown.owner, shown.address), ("alice", ip("192.0.2.1")));
}

#[tokio::test(start_paused = true)]
async fn a_resync_during_our_write_shows_the_stored_winner_once_it_fails() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    store.hold_writes();
    let loser = register_in_flight(&registry, "bob", "192.0.2.2").await;

    // The winner committed before this node listened: only a resync carries it.
    registry.reconcile(vec![stored("web", "alice", "192.0.2.1", 7)]);
    store.release_writes(false);

    assert!(loser.await.expect("task").is_err());
    let shown = registry.get("web").expect("the stored winner is shown");
    assert_eq!(&*shown.owner, "alice");
}

#[tokio::test(start_paused = true)]
async fn a_newer_change_from_the_feed_applies_after_our_write_commits() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    store.hold_writes();
    let ours = register_in_flight(&registry, "alice", "192.0.2.1").await;
    // Another node moved the host after our write committed (a later change position).
    registry.apply_stored(stored("web", "alice", "192.0.2.9", 100));
    store.release_writes(true);

    assert_eq!(ours.await.expect("task"), Ok(Outcome::Registered));
    assert_eq!(registry.get("web").expect("shown").address, ip("192.0.2.9"));
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_from_the_new_address_waits_for_the_move_and_shares_its_failure() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    let (web, alice) = (name("web"), owner("alice"));
    registry
        .register(&web, &alice, ip("192.0.2.1"))
        .await
        .expect("registered");
    store.hold_writes();
    let mover = tokio::spawn({
        let (registry, web, alice) = (Arc::clone(&registry), web.clone(), Arc::clone(&alice));
        async move { registry.register(&web, &alice, ip("192.0.2.2")).await }
    });
    tokio::task::yield_now().await;
    let follower = tokio::spawn({
        let (registry, web, alice) = (Arc::clone(&registry), web.clone(), Arc::clone(&alice));
        async move { registry.register(&web, &alice, ip("192.0.2.2")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !follower.is_finished(),
        "acknowledged before the move committed"
    );
    store.release_writes(false);
    assert!(matches!(
        mover.await.expect("task"),
        Err(RegisterError::Store(_))
    ));
    assert!(matches!(
        follower.await.expect("task"),
        Err(RegisterError::Store(_))
    ));
    assert_eq!(
        registry.get("web").map(|host| host.address),
        Some(ip("192.0.2.1")),
        "the failed move is undone"
    );
    assert_eq!(store.hosts()[0].address, ip("192.0.2.1"));
}

#[tokio::test(start_paused = true)]
async fn a_move_back_while_a_move_is_in_flight_applies_after_it() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    let (web, alice) = (name("web"), owner("alice"));
    registry
        .register(&web, &alice, ip("192.0.2.1"))
        .await
        .expect("registered");
    store.hold_writes();
    let away = tokio::spawn({
        let (registry, web, alice) = (Arc::clone(&registry), web.clone(), Arc::clone(&alice));
        async move { registry.register(&web, &alice, ip("192.0.2.2")).await }
    });
    tokio::task::yield_now().await;
    let back = tokio::spawn({
        let (registry, web, alice) = (Arc::clone(&registry), web.clone(), Arc::clone(&alice));
        async move { registry.register(&web, &alice, ip("192.0.2.1")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        store.held_writes(),
        1,
        "the second move waits for the first"
    );
    store.release_writes(false);
    assert!(away.await.expect("task").is_err());
    assert_eq!(
        back.await.expect("task"),
        Ok(Outcome::Heartbeat),
        "applied on top of the undone move: same address as before"
    );
    assert_eq!(store.hosts()[0].address, ip("192.0.2.1"));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_registration_reverts_its_change_and_fails_its_waiters() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    store.hold_writes();
    let owner_task = tokio::spawn({
        let registry = Arc::clone(&registry);
        async move {
            registry
                .register(&name("web"), &owner("alice"), ip("192.0.2.1"))
                .await
        }
    });
    tokio::task::yield_now().await;
    let waiter = tokio::spawn({
        let registry = Arc::clone(&registry);
        async move {
            registry
                .register(&name("web"), &owner("alice"), ip("192.0.2.1"))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    owner_task.abort();
    assert!(matches!(
        waiter.await.expect("task"),
        Err(RegisterError::Store(StoreError::Unavailable))
    ));
    assert!(registry.get("web").is_none());
}

#[tokio::test(start_paused = true)]
async fn pages_filter_by_owner_status_and_search_and_count_the_matches() {
    let store = MemoryStore::new();
    let registry = registry(&store);
    for n in 0..30 {
        let owner = if n % 3 == 0 {
            owner("bob")
        } else {
            owner("alice")
        };
        registry
            .register(&name(&format!("host-{n:02}")), &owner, ip("192.0.2.1"))
            .await
            .expect("registered");
    }
    tokio::time::advance(Duration::from_secs(100)).await;
    for n in 0..5 {
        registry
            .register(
                &name(&format!("host-{n:02}")),
                &owner(if n % 3 == 0 { "bob" } else { "alice" }),
                ip("192.0.2.1"),
            )
            .await
            .expect("heartbeat");
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(sweep(&registry, &store).await.went_offline.len(), 25);

    let names = |page: &HostPage| {
        page.hosts
            .iter()
            .map(|h| h.hostname.to_string())
            .collect::<Vec<_>>()
    };
    let alice = HostQuery {
        owner: Some("alice"),
        ..HostQuery::default()
    };
    let page = registry.page(&alice, 5, 5);
    assert_eq!(page.total, 20);
    assert_eq!(
        names(&page),
        ["host-08", "host-10", "host-11", "host-13", "host-14"]
    );
    let online = HostQuery {
        status: Some(HostStatus::Online),
        ..HostQuery::default()
    };
    let page = registry.page(&online, 0, 100);
    assert_eq!(
        (page.total, names(&page)),
        (
            5,
            vec![
                "host-00".into(),
                "host-01".into(),
                "host-02".into(),
                "host-03".into(),
                "host-04".into()
            ]
        )
    );
    let search = HostQuery {
        owner: Some("bob"),
        search: Some("-2"),
        ..HostQuery::default()
    };
    let page = registry.page(&search, 1, 1);
    assert_eq!((page.total, names(&page)), (3, vec!["host-24".to_string()]));
    let nobody = HostQuery {
        owner: Some("carol"),
        ..HostQuery::default()
    };
    assert_eq!(registry.page(&nobody, 0, 10).total, 0);
}
