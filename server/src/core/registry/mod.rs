//! The host registry: the one owner of host state, its lifecycle and its deadlines.
//!
//! Durable changes (new hosts, moves) are submitted to the store while the registry lock is
//! held, so the store sees them in the registry's order, and awaited after it is released.
//! Heartbeat freshness is collected and written behind by [`Registry::flush_freshness`].

mod deadlines;
mod durable;
mod expiry;
mod hosts;
mod listing;
mod query;
mod sync;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

pub use deadlines::DeadlineQueue;
use durable::{InFlight, OwnWrite, Undo};
pub use expiry::SweepReport;
use hosts::{Host, State, view};
use listing::Listing;
pub use query::{HostPage, HostQuery};
use sync::Derive;

use crate::config::HeartbeatSection;
use crate::core::clock::Clock;
use crate::core::metrics::Metrics;
use crate::core::protocol::Hostname;
use crate::core::ratelimit::{Limited, Limits};
use crate::store::{HostRecord, HostWrite, Store, StoreError};

/// Whether a host is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Heartbeated within the timeout.
    Online,
    /// Missed its deadline; kept until cleanup.
    Offline,
}

/// What a successful registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A hostname seen for the first time.
    Registered,
    /// An online host heartbeated from the same address.
    Heartbeat,
    /// An online host heartbeated from a new address.
    IpChanged {
        /// The previous address.
        from: IpAddr,
        /// The new address.
        to: IpAddr,
    },
    /// An offline host came back (possibly from a new address).
    Reconnected {
        /// The address it had when it went offline.
        from: IpAddr,
        /// The address it came back from.
        to: IpAddr,
    },
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The hostname belongs to another owner; nothing changed.
    #[error("hostname '{0}' is registered to another owner")]
    OwnedByOther(String),
    /// The change could not be made durable; nothing changed.
    #[error("registration not saved: {0}; retry later")]
    Store(StoreError),
    /// A rate limit refused it; nothing changed.
    #[error("rate limit exceeded ({})", .0.reason())]
    Limited(Limited),
}

impl From<StoreError> for RegisterError {
    /// The store decides ownership too: its refusal reads like the registry's own.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::OwnedByOther { hostname } => Self::OwnedByOther(hostname),
            other => Self::Store(other),
        }
    }
}

/// A read-only copy of one host, for the API and DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Lowercase hostname.
    pub hostname: Arc<str>,
    /// Owner name.
    pub owner: Arc<str>,
    /// Last address.
    pub address: IpAddr,
    /// Online or offline.
    pub status: HostStatus,
    /// First registration.
    pub first_seen: SystemTime,
    /// Last heartbeat.
    pub last_seen: SystemTime,
}

/// Host counts, as exported in the host gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostCounts {
    /// Every known host.
    pub registered: usize,
    /// Hosts online.
    pub online: usize,
    /// Hosts offline.
    pub offline: usize,
}

/// What a registration must wait for before its success may be sent.
enum Wait<'a> {
    /// Nothing: the host's last durable change is committed.
    Durable,
    /// Its own durable write, which it completes.
    Own(OwnWrite<'a>),
    /// The durable write another registration of this host submitted.
    Other(InFlight),
    /// Another durable change of this host is in flight and this registration needs one of
    /// its own: wait for the first, then apply again.
    ThenRetry(InFlight),
}

/// The registry of hosts.
pub struct Registry {
    state: Mutex<State>,
    /// The listing index the state writes on membership and status changes; API readers
    /// take only this.
    listing: Arc<RwLock<Listing>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// A host goes offline this long after its last heartbeat.
    offline_after: Duration,
    /// An offline host is deleted this long after its last heartbeat.
    delete_after: Duration,
}

impl Registry {
    /// An empty registry.
    pub fn new(
        heartbeat: &HeartbeatSection,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Self {
        let state = State::default();
        Self {
            listing: Arc::clone(&state.listing),
            state: Mutex::new(state),
            store,
            clock,
            metrics,
            offline_after: heartbeat.offline_after(),
            delete_after: heartbeat.delete_after().max(heartbeat.offline_after()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Loads stored hosts at start: a host the store has offline, or that has been silent
    /// past its deadline, starts offline; hosts past cleanup are left for the sweeper.
    pub fn restore(&self, records: Vec<HostRecord>) {
        let mut state = self.lock();
        for record in records {
            self.put_record(&mut state, record, Derive::FromSilence);
        }
        self.publish_counts(&state);
    }

    /// Registers or refreshes `hostname` for `owner` from `address` without rate limits
    /// (see [`Registry::register_within`]).
    pub async fn register(
        &self,
        hostname: &Hostname,
        owner: &Arc<str>,
        address: IpAddr,
    ) -> Result<Outcome, RegisterError> {
        self.register_within(hostname, owner, address, Limits::NONE)
            .await
    }

    /// Registers or refreshes `hostname` for `owner` from `address` within `limits`: a new
    /// host spends the source address's budget of new names, a known one its own pace.
    /// Returns only once the write that created or last moved the host is durable, whichever
    /// registration submitted it. When that write fails, the change is reverted and every
    /// registration waiting on it gets the error.
    pub async fn register_within(
        &self,
        hostname: &Hostname,
        owner: &Arc<str>,
        address: IpAddr,
        limits: Limits<'_>,
    ) -> Result<Outcome, RegisterError> {
        loop {
            let (outcome, wait) = self.apply_registration(hostname, owner, address, limits)?;
            match wait {
                Wait::Durable => {}
                Wait::Own(write) => write.complete().await?,
                Wait::Other(write) => write.outcome().await?,
                Wait::ThenRetry(write) => {
                    // Another durable change of this host is in flight: apply this one on
                    // top of its outcome, never beside it.
                    let _ = write.outcome().await;
                    continue;
                }
            }
            self.record_outcome(outcome);
            return Ok(outcome);
        }
    }

    fn apply_registration(
        &self,
        hostname: &Hostname,
        owner: &Arc<str>,
        address: IpAddr,
        limits: Limits<'_>,
    ) -> Result<(Outcome, Wait<'_>), RegisterError> {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let deadline = now + self.offline_after;
        let name = hostname.as_arc();
        let mut state = self.lock();
        let previous = state.hosts.get(name).cloned();
        let outcome = match &previous {
            Some(host) if host.owner != *owner => {
                return Err(RegisterError::OwnedByOther(hostname.to_string()));
            }
            None => Outcome::Registered,
            Some(host) if host.status == HostStatus::Offline => Outcome::Reconnected {
                from: host.address,
                to: address,
            },
            Some(host) if host.address != address => Outcome::IpChanged {
                from: host.address,
                to: address,
            },
            Some(_) => Outcome::Heartbeat,
        };
        // A new host, a move, and a host coming back from offline change what every node
        // and a restart must see; a heartbeat only refreshes freshness, written behind.
        let needs_durable_write = previous
            .as_ref()
            .is_none_or(|host| host.address != address || host.status == HostStatus::Offline);
        let in_flight = previous.as_ref().and_then(|host| host.in_flight.clone());
        if needs_durable_write && let Some(write) = in_flight {
            return Ok((outcome, Wait::ThenRetry(write)));
        }
        let pace = match &previous {
            None => {
                limits
                    .admit_new_name(address, now)
                    .map_err(RegisterError::Limited)?;
                let mut pace = now;
                // The registration that creates a host is its first beat.
                let _ = limits.admit_known_host(&mut pace, now);
                pace
            }
            Some(host) => {
                let mut pace = host.pace;
                limits
                    .admit_known_host(&mut pace, now)
                    .map_err(RegisterError::Limited)?;
                pace
            }
        };
        let mut updated = Host {
            owner: Arc::clone(owner),
            address,
            status: HostStatus::Online,
            first_seen: previous.as_ref().map_or(wall, |host| host.first_seen),
            last_seen: wall,
            deadline,
            version: previous.as_ref().map_or(0, |host| host.version),
            change: previous.as_ref().map_or(0, |host| host.change),
            in_flight,
            pace,
        };
        let wait = if needs_durable_write {
            updated.version = state.bump_version();
            let pending = self.store.write_host(HostWrite::Upsert(HostRecord {
                hostname: hostname.to_string(),
                owner: owner.to_string(),
                address,
                first_seen: updated.first_seen,
                last_seen: wall,
                offline: false,
                change: 0,
            }));
            let undo = Undo {
                hostname: Arc::clone(name),
                version: updated.version,
                previous,
            };
            let (write, handle) = OwnWrite::new(self, pending, undo);
            updated.in_flight = Some(handle);
            Wait::Own(write)
        } else {
            state.stale_freshness.insert(Arc::clone(name));
            updated.in_flight.clone().map_or(Wait::Durable, Wait::Other)
        };
        if !matches!(outcome, Outcome::Heartbeat) {
            state.generation += 1;
        }
        state.put(Arc::clone(name), updated);
        self.publish_counts(&state);
        Ok((outcome, wait))
    }

    fn record_outcome(&self, outcome: Outcome) {
        let updates = &self.metrics.host_updates;
        match outcome {
            Outcome::Registered => self
                .metrics
                .host_registrations
                .with_label_values(&["success"])
                .inc(),
            Outcome::Heartbeat => updates.with_label_values(&["heartbeat"]).inc(),
            Outcome::IpChanged { .. } => updates.with_label_values(&["ip_change"]).inc(),
            Outcome::Reconnected { .. } => updates.with_label_values(&["reconnection"]).inc(),
        }
    }

    /// One host by (case-insensitive) name.
    pub fn get(&self, hostname: &str) -> Option<HostView> {
        let name = hostname.to_ascii_lowercase();
        let state = self.lock();
        state
            .hosts
            .get_key_value(name.as_str())
            .map(|(name, host)| view(name, host))
    }

    /// Whether any host (any online one, unless `include_offline`) is named
    /// `<labels>.<hostname>`. Reads the listing index, never the lock heartbeats take.
    pub fn has_hosts_under(&self, hostname: &str, include_offline: bool) -> bool {
        let name = if hostname.bytes().any(|byte| byte.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(hostname.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(hostname)
        };
        self.listing
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .any_below(&name, include_offline)
    }

    /// Registered, online and offline counts.
    pub fn counts(&self) -> HostCounts {
        let state = self.lock();
        state.counts()
    }

    /// A number that increases whenever a change visible in DNS happens.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn publish_counts(&self, state: &State) {
        let counts = state.counts();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.registered_hosts.set(gauge(counts.registered));
        self.metrics.online_hosts.set(gauge(counts.online));
        self.metrics.offline_hosts.set(gauge(counts.offline));
    }
}

#[cfg(test)]
mod tests;
