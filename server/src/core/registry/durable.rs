//! Durable writes in flight: the write that creates or moves a host is submitted under the
//! registry lock, and every registration of that host — the one that submitted it and any
//! that arrive before it commits — is acknowledged only once it is on disk.
//!
//! The submitting registration owns the write ([`OwnWrite`]) and broadcasts its outcome to
//! the others ([`InFlight`]). If the owner is dropped before the store answers (its task was
//! cancelled), the change is reverted and the others hear the store is unavailable: nobody
//! is ever told "success" for a write nobody saw commit.
//!
//! Also here: settling a write once the store answered, and the write-behind flush of
//! heartbeat freshness, which keeps its names stale when the store cannot take them.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use super::{Host, RegisterError, Registry};
use crate::store::{HostWrite, Pending, StoreError};

/// The outcome of a durable write, once known.
type Outcome = Option<Result<(), StoreError>>;

/// How to revert a change whose durable write failed.
pub(super) struct Undo {
    /// The host changed.
    pub(super) hostname: Arc<str>,
    /// The version the change gave the host.
    pub(super) version: u64,
    /// The host before the change (`None`: it was new).
    pub(super) previous: Option<Host>,
}

/// A registration's view of a durable write another registration owns.
#[derive(Debug, Clone)]
pub(super) struct InFlight(watch::Receiver<Outcome>);

impl InFlight {
    /// Waits for the write: `Ok` once it is durable, the store's error otherwise.
    pub(super) async fn outcome(mut self) -> Result<(), RegisterError> {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => match &*outcome {
                Some(Ok(())) => Ok(()),
                Some(Err(err)) => Err(err.clone().into()),
                None => Err(StoreError::Unavailable.into()),
            },
            // The owner went away without an outcome (see `OwnWrite`'s drop).
            Err(_) => Err(StoreError::Unavailable.into()),
        }
    }
}

/// The write a registration submitted, which it must complete.
pub(super) struct OwnWrite<'a> {
    /// The registry whose change this write makes durable.
    registry: &'a Registry,
    /// The store's answer; taken when awaited.
    pending: Option<Pending<u64>>,
    /// How to undo the change; taken once settled.
    undo: Option<Undo>,
    /// Tells the other waiters.
    done: watch::Sender<Outcome>,
}

impl<'a> OwnWrite<'a> {
    /// A write of the change `undo` reverts in `registry`, and the handle other registrations
    /// wait on.
    pub(super) fn new(
        registry: &'a Registry,
        pending: Pending<u64>,
        undo: Undo,
    ) -> (Self, InFlight) {
        let (done, watching) = watch::channel(None);
        let write = Self {
            registry,
            pending: Some(pending),
            undo: Some(undo),
            done,
        };
        (write, InFlight(watching))
    }

    /// Waits for the store, settles the change and tells every waiter.
    pub(super) async fn complete(mut self) -> Result<(), RegisterError> {
        let result = match self.pending.take() {
            Some(pending) => pending.wait().await,
            None => Err(StoreError::Unavailable),
        };
        self.settle(result.clone());
        result.map(drop).map_err(RegisterError::from)
    }

    fn settle(&mut self, result: Result<u64, StoreError>) {
        if let Some(undo) = self.undo.take() {
            self.registry
                .settle(undo, result.as_ref().map(|change| *change).map_err(drop));
            self.done.send_replace(Some(result.map(drop)));
        }
    }
}

impl Drop for OwnWrite<'_> {
    /// A write dropped before the store answered (the registration's task was cancelled):
    /// revert, and tell the waiters the store did not confirm it.
    fn drop(&mut self) {
        self.settle(Err(StoreError::Unavailable));
    }
}

impl Registry {
    /// The durable write of `undo` finished: on success the host no longer waits on it; on
    /// failure the change is undone. Only the change that submitted the write is touched.
    pub(super) fn settle(&self, undo: Undo, outcome: Result<u64, ()>) {
        let mut state = self.lock();
        let Some(host) = state.hosts.get_mut(&undo.hostname) else {
            return;
        };
        if host.version != undo.version {
            return;
        }
        if let Ok(change) = outcome {
            host.in_flight = None;
            host.change = host.change.max(change);
            state.applied = state.applied.max(change);
        } else {
            match undo.previous {
                Some(previous) => state.put(Arc::clone(&undo.hostname), previous),
                None => {
                    state.remove(&undo.hostname);
                    state.stale_freshness.remove(&undo.hostname);
                }
            }
            state.generation += 1;
        }
        // What another node committed meanwhile (e.g. the registration that won the name).
        self.apply_deferred(&mut state, &undo.hostname);
        self.publish_counts(&state);
    }

    /// Writes the write-behind batch of heartbeat freshness, if any.
    /// When the store cannot take it (the database is away), keeps
    /// its hosts stale so the next flush writes their freshness again.
    pub async fn flush_freshness(&self) -> Result<(), StoreError> {
        let (names, pending) = {
            let mut state = self.lock();
            if state.stale_freshness.is_empty() {
                return Ok(());
            }
            let stale = std::mem::take(&mut state.stale_freshness);
            let (names, refreshes): (Vec<Arc<str>>, Vec<(String, SystemTime)>) = stale
                .into_iter()
                .filter_map(|name| {
                    let last_seen = state.hosts.get(&name)?.last_seen;
                    let key = name.to_string();
                    Some((name, (key, last_seen)))
                })
                .unzip();
            (
                names,
                self.store.write_host(HostWrite::Freshness(refreshes)),
            )
        };
        let result = pending.wait().await.map(drop);
        if result.is_err() {
            let mut state = self.lock();
            for name in names {
                if state.hosts.contains_key(&name) {
                    state.stale_freshness.insert(name);
                }
            }
        }
        result
    }
}
