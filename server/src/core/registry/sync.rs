//! Keeping a registry in step with a store that other nodes write to: records from the
//! store's change feed and from resyncs are applied unless this registry already has the
//! change (or a newer one), or has a durable write of its own in flight for the host.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::hosts::{Deferred, Host, State};
use super::{HostStatus, Registry};
use crate::store::HostRecord;

/// How a stored record's status is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Derive {
    /// As the store has it (the sweeper decided it).
    Stored,
    /// As the store has it, or offline when silent past the deadline (a restart: nobody
    /// swept while the server was down).
    FromSilence,
}

impl Registry {
    /// Puts `record` into `state` as the store has it, with deadlines computed from its
    /// `last_seen`. Keeps a later local `last_seen` (heartbeats written behind).
    pub(super) fn put_record(&self, state: &mut State, record: HostRecord, derive: Derive) {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let name: Arc<str> = record.hostname.into();
        let previous = state
            .hosts
            .get(&name)
            .map(|host| (host.last_seen, host.version));
        let last_seen = previous.map_or(record.last_seen, |(seen, _)| seen.max(record.last_seen));
        let silent_for = wall.duration_since(last_seen).unwrap_or_default();
        let offline =
            record.offline || (derive == Derive::FromSilence && silent_for >= self.offline_after);
        let (status, until) = if offline {
            (HostStatus::Offline, self.delete_after)
        } else {
            (HostStatus::Online, self.offline_after)
        };
        let version = match previous {
            Some((_, version)) => version,
            None => state.bump_version(),
        };
        let host = Host {
            owner: record.owner.into(),
            address: record.address,
            status,
            first_seen: record.first_seen,
            last_seen,
            deadline: now + until.saturating_sub(silent_for),
            version,
            change: record.change,
            in_flight: None,
            pace: now,
        };
        state.applied = state.applied.max(record.change);
        state.generation += 1;
        state.put(name, host);
    }

    /// Applies a host record from the store's change feed: a host created, moved, back or
    /// gone offline on another node. Returns whether it changed this registry.
    pub fn apply_stored(&self, record: HostRecord) -> bool {
        let mut state = self.lock();
        if defer(&state, &record.hostname, record.change) {
            state
                .deferred
                .insert(record.hostname.as_str().into(), Deferred::Record(record));
            return false;
        }
        if !newer_than_local(&state, &record.hostname, record.change) {
            state.applied = state.applied.max(record.change);
            return false;
        }
        self.put_record(&mut state, record, Derive::Stored);
        self.publish_counts(&state);
        true
    }

    /// Applies a deletion from the store's change feed.
    pub fn apply_deleted(&self, hostname: &str, change: u64) -> bool {
        let mut state = self.lock();
        if defer(&state, hostname, change) {
            state
                .deferred
                .insert(hostname.into(), Deferred::Deleted(change));
            return false;
        }
        state.applied = state.applied.max(change);
        if !newer_than_local(&state, hostname, change) {
            return false;
        }
        let name: Arc<str> = hostname.into();
        if state.remove(&name).is_none() {
            return false;
        }
        state.stale_freshness.remove(&name);
        state.generation += 1;
        self.publish_counts(&state);
        true
    }

    /// Makes the registry what the store holds (`records`, every stored host): repairs
    /// whatever the change feed missed. Hosts with a write of this node's in flight get
    /// their stored record once that write settles; hosts whose change is newer than
    /// everything in `records` (made after the snapshot) are left alone. Returns how many
    /// hosts changed.
    pub fn reconcile(&self, records: Vec<HostRecord>) -> usize {
        let snapshot = records
            .iter()
            .map(|record| record.change)
            .max()
            .unwrap_or(0);
        let stored: HashSet<String> = records.iter().map(|r| r.hostname.clone()).collect();
        let mut changed = 0;
        let mut state = self.lock();
        for record in records {
            if defer(&state, &record.hostname, record.change) {
                // Settles with this node's own write (a name another node may have won).
                let name: Arc<str> = record.hostname.as_str().into();
                state.deferred.insert(name, Deferred::Record(record));
                continue;
            }
            let differs = state
                .hosts
                .get(record.hostname.as_str())
                .is_none_or(|host| {
                    host.owner.as_ref() != record.owner
                        || host.address != record.address
                        || (host.status == HostStatus::Offline) != record.offline
                        || host.last_seen < record.last_seen
                });
            if differs && newer_or_equal_than_local(&state, &record.hostname, record.change) {
                self.put_record(&mut state, record, Derive::Stored);
                changed += 1;
            } else {
                state.applied = state.applied.max(record.change);
            }
        }
        let gone: Vec<Arc<str>> = state
            .hosts
            .iter()
            .filter(|(name, host)| {
                !stored.contains(name.as_ref())
                    && host.in_flight.is_none()
                    && host.change <= snapshot
            })
            .map(|(name, _)| Arc::clone(name))
            .collect();
        for name in gone {
            state.remove(&name);
            state.stale_freshness.remove(&name);
            changed += 1;
        }
        if changed > 0 {
            state.generation += 1;
            self.publish_counts(&state);
        }
        changed
    }

    /// Applies the feed's change of `hostname` deferred while this node's own write was in
    /// flight, now that it settled, if it is newer than what the registry holds.
    pub(super) fn apply_deferred(&self, state: &mut State, hostname: &Arc<str>) {
        let Some(deferred) = state.deferred.remove(hostname) else {
            return;
        };
        if !newer_than_local(state, hostname, deferred.change()) {
            return;
        }
        match deferred {
            Deferred::Record(record) => self.put_record(state, record, Derive::Stored),
            Deferred::Deleted(change) => {
                state.applied = state.applied.max(change);
                if state.remove(hostname).is_some() {
                    state.stale_freshness.remove(hostname);
                    state.generation += 1;
                }
            }
        }
    }

    /// The newest store change position this registry has applied.
    pub fn applied_position(&self) -> u64 {
        self.lock().applied
    }

    /// How long after its last heartbeat a host goes offline.
    pub fn offline_after(&self) -> Duration {
        self.offline_after
    }
}

/// Whether a feed change at `change` of `hostname` must wait: this node has a write of the
/// host in flight, and no newer change is deferred already.
fn defer(state: &State, hostname: &str, change: u64) -> bool {
    let in_flight = state
        .hosts
        .get(hostname)
        .is_some_and(|host| host.in_flight.is_some());
    in_flight
        && state
            .deferred
            .get(hostname)
            .is_none_or(|deferred| deferred.change() < change)
}

/// Whether a change at `change` of `hostname` is news to `state`: the host is unknown, or
/// its known change is older, and no write of this node's is in flight for it.
fn newer_than_local(state: &State, hostname: &str, change: u64) -> bool {
    state
        .hosts
        .get(hostname)
        .is_none_or(|host| host.in_flight.is_none() && (change == 0 || host.change < change))
}

/// Like [`newer_than_local`], but a resync also repairs a host whose change position it
/// already has (a missed freshness or status it may not).
fn newer_or_equal_than_local(state: &State, hostname: &str, change: u64) -> bool {
    state
        .hosts
        .get(hostname)
        .is_none_or(|host| host.in_flight.is_none() && (change == 0 || host.change <= change))
}
