//! Criterion benchmark of offline detection: one sweep (take the due hosts, let the store
//! expire them, apply the verdict, as the leading node does) that moves 10 000 hosts
//! offline, in a registry of 1 000 000 hosts (1 % expire) and in one of 10 000 hosts (all
//! expire). The deadline index should make both cost the same; only the sweep is timed.
//!
//! Time comes from a [`ManualClock`]: the expiring hosts heartbeat at offset 0, the others at
//! [`STABLE_HEARTBEAT_AT`], and each sweep runs at [`SWEEP_AT`], when only the first group is
//! past its deadline (the default heartbeat settings put it 150 s after the last heartbeat).
//! Before every timed sweep the clock is set back to 0 and the expiring hosts heartbeat again
//! (untimed), so each sweep finds exactly 10 000 hosts due.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prism_benches::{ManualClock, register_on_registry, registry, runtime};
use prism_server::Clock;
use prism_server::core::registry::Registry;
use prism_server::store::{MemoryStore, Store};

/// Hosts that go offline in each sweep.
const EXPIRING: u32 = 10_000;
/// When the hosts that must stay online last heartbeated.
const STABLE_HEARTBEAT_AT: Duration = Duration::from_secs(100);
/// When each sweep runs: past the expiring hosts' deadline (150 s), before the others' (250 s).
const SWEEP_AT: Duration = Duration::from_secs(151);

fn filled_registry(
    rt: &tokio::runtime::Runtime,
    total: u32,
) -> (Registry, MemoryStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let (registry, store) = registry(Arc::clone(&clock) as Arc<dyn Clock>);
    rt.block_on(async {
        clock.set(STABLE_HEARTBEAT_AT);
        register_on_registry(&registry, EXPIRING..total).await;
    });
    (registry, store, clock)
}

fn offline_detection(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("offline_detection");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(u64::from(EXPIRING)));
    for (label, total) in [
        ("10k_expire_of_1m_hosts", 1_000_000u32),
        ("10k_expire_of_10k_hosts", EXPIRING),
    ] {
        let (registry, store, clock) = filled_registry(&rt, total);
        group.bench_function(label, |b| {
            b.iter_batched(
                || {
                    clock.set(Duration::ZERO);
                    rt.block_on(register_on_registry(&registry, 0..EXPIRING));
                    clock.set(SWEEP_AT);
                },
                |()| {
                    let due = registry.take_due();
                    let outcomes = rt
                        .block_on(store.expire(due.clone()).wait())
                        .unwrap_or_else(|err| panic!("the memory store expires: {err}"));
                    let sweep = registry.apply_expired(&due, outcomes);
                    assert_eq!(
                        sweep.went_offline.len(),
                        EXPIRING as usize,
                        "the sweep must find exactly the expiring hosts due"
                    );
                    sweep
                },
                BatchSize::PerIteration,
            );
        });
        let counts = registry.counts();
        assert_eq!(counts.registered, total as usize, "no host was deleted");
    }
    group.finish();
}

criterion_group!(benches, offline_detection);
criterion_main!(benches);
