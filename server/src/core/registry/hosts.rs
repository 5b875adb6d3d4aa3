//! The indexed collection of hosts behind the registry: hosts by name, the same names in
//! order, the deadline index and the online count, kept in step by [`State::put`] and
//! [`State::remove`]. No lifecycle rules here: [`super::Registry`] decides, this stores.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::SystemTime;

use tokio::time::Instant;

use super::durable::InFlight;
use super::listing::Listing;
use super::{DeadlineQueue, HostCounts, HostStatus, HostView};

#[derive(Debug, Clone)]
pub(super) struct Host {
    pub(super) owner: Arc<str>,
    pub(super) address: IpAddr,
    pub(super) status: HostStatus,
    pub(super) first_seen: SystemTime,
    pub(super) last_seen: SystemTime,
    /// When the host next changes state: going offline, or (when offline) being deleted.
    pub(super) deadline: Instant,
    /// Identifies the host's last durable change (creation or move), so an undo only
    /// reverts the change it belongs to. Heartbeats leave it alone.
    pub(super) version: u64,
    /// The store's change position of the host's last change this node knows (0 in stores
    /// that keep none): a change from the feed applies only when it is newer.
    pub(super) change: u64,
    /// That change's write while it is not yet durable: every registration of the host waits
    /// for it before it is acknowledged.
    pub(super) in_flight: Option<InFlight>,
    /// The theoretical arrival time of the host's next registration under the per-host
    /// rate limit (see [`crate::core::ratelimit::Pace`]): kept here, so the check needs no
    /// lookup of its own.
    pub(super) pace: Instant,
}

#[derive(Default)]
pub(super) struct State {
    /// Hosts by name: O(1) lookups, so a sweep's cost does not grow with the registry.
    pub(super) hosts: HashMap<Arc<str>, Host>,
    /// Names, owners and status for listings, under a lock of their own (see
    /// [`Listing`]); written here only when a host is added, deleted, or changes owner or
    /// status — never on a heartbeat.
    pub(super) listing: Arc<RwLock<Listing>>,
    pub(super) deadlines: DeadlineQueue,
    /// Hosts whose `last_seen` moved since the last write-behind flush.
    pub(super) stale_freshness: HashSet<Arc<str>>,
    pub(super) online: usize,
    pub(super) next_version: u64,
    /// Increases with every change visible in DNS (a zone serial can follow it).
    pub(super) generation: u64,
    /// The newest store change position applied to this registry.
    pub(super) applied: u64,
    /// Changes from the feed for hosts with a write of this node's in flight: applied once
    /// that write settles, if still newer (another node's registration that won the name).
    pub(super) deferred: HashMap<Arc<str>, Deferred>,
}

/// A change from the feed waiting for this node's own write of the host to settle.
#[derive(Debug, Clone)]
pub(super) enum Deferred {
    /// The host as another node stored it.
    Record(crate::store::HostRecord),
    /// Another node deleted it, at this change position.
    Deleted(u64),
}

impl Deferred {
    /// The change's position in the store.
    pub(super) fn change(&self) -> u64 {
        match self {
            Self::Record(record) => record.change,
            Self::Deleted(change) => *change,
        }
    }
}

pub(super) fn view(name: &Arc<str>, host: &Host) -> HostView {
    HostView {
        hostname: Arc::clone(name),
        owner: Arc::clone(&host.owner),
        address: host.address,
        status: host.status,
        first_seen: host.first_seen,
        last_seen: host.last_seen,
    }
}

impl State {
    pub(super) fn bump_version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    pub(super) fn counts(&self) -> HostCounts {
        HostCounts {
            registered: self.hosts.len(),
            online: self.online,
            offline: self.hosts.len() - self.online,
        }
    }

    /// The listing index, for a change (lock order: the registry state, then this).
    pub(super) fn listing(&self) -> RwLockWriteGuard<'_, Listing> {
        self.listing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `host`, or replaces the host of that name, keeping the deadline entry, the online
    /// count and the listing index in step.
    pub(super) fn put(&mut self, name: Arc<str>, host: Host) {
        let (deadline, online) = (host.deadline, host.status == HostStatus::Online);
        let listed = (Arc::clone(&host.owner), host.status);
        let relisted = match self.hosts.insert(Arc::clone(&name), host) {
            Some(old) => {
                if old.status == HostStatus::Online {
                    self.online -= 1;
                }
                self.deadlines.remove(old.deadline, &name);
                old.owner != listed.0 || old.status != listed.1
            }
            None => true,
        };
        if relisted {
            self.listing().set(&name, &listed.0, listed.1);
        }
        if online {
            self.online += 1;
        }
        self.deadlines.insert(deadline, name);
    }

    /// Marks an online host offline until `deadline` (when it is deleted).
    pub(super) fn set_offline(&mut self, name: &Arc<str>, deadline: tokio::time::Instant) {
        let Some(host) = self.hosts.get_mut(name) else {
            return;
        };
        if host.status == HostStatus::Online {
            self.online -= 1;
        }
        host.status = HostStatus::Offline;
        host.deadline = deadline;
        let owner = Arc::clone(&host.owner);
        self.listing().set(name, &owner, HostStatus::Offline);
        self.deadlines.insert(deadline, Arc::clone(name));
    }

    /// Removes a host, its deadline entry and its listing.
    pub(super) fn remove(&mut self, name: &Arc<str>) -> Option<Host> {
        let host = self.hosts.remove(name)?;
        self.listing().remove(name);
        if host.status == HostStatus::Online {
            self.online -= 1;
        }
        self.deadlines.remove(host.deadline, name);
        Some(host)
    }
}
