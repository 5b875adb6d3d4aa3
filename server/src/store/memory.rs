//! An in-memory store for tests and simulations: the same contract, no disk.
//!
//! Clones share state, so a simulated crash can drop a server and start a new one on the
//! "durable" state its predecessor acknowledged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::TokenHash;
use tokio::sync::oneshot;

use super::{
    Due, DueAction, Expired, HostRecord, HostWrite, Pending, Store, StoreError, TokenRecord,
};

/// A store that keeps everything in memory; every operation completes immediately.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// Shared between clones, like a database file shared between process lifetimes.
    state: Arc<Mutex<MemoryState>>,
}

/// A host write waiting for [`MemoryStore::release_writes`], with its reply.
type HeldWrite = (HostWrite, oneshot::Sender<Result<u64, StoreError>>);

/// Applies one host write to the stored hosts; the change position it got.
fn apply(state: &mut MemoryState, write: HostWrite) -> Result<u64, StoreError> {
    match write {
        HostWrite::Upsert(record) => {
            state.next_change += 1;
            let change = state.next_change;
            let merged = match state.hosts.get(&record.hostname) {
                Some(old) if old.owner != record.owner => {
                    state.next_change -= 1;
                    return Err(StoreError::OwnedByOther {
                        hostname: record.hostname,
                    });
                }
                Some(old) => HostRecord {
                    first_seen: old.first_seen,
                    last_seen: old.last_seen.max(record.last_seen),
                    offline: false,
                    change,
                    ..record
                },
                None => HostRecord {
                    offline: false,
                    change,
                    ..record
                },
            };
            state.hosts.insert(merged.hostname.clone(), merged);
            Ok(change)
        }
        HostWrite::Freshness(refreshes) => {
            for (hostname, last_seen) in refreshes {
                if let Some(host) = state.hosts.get_mut(&hostname) {
                    host.last_seen = host.last_seen.max(last_seen);
                }
            }
            Ok(0)
        }
    }
}

/// Expires one due host (see [`Store::expire`]).
fn expire_one(state: &mut MemoryState, due: Due) -> Expired {
    let Some(host) = state.hosts.get_mut(&due.hostname) else {
        return Expired::Gone {
            hostname: due.hostname,
        };
    };
    if host.last_seen > due.seen_before {
        return Expired::SeenSince {
            last_seen: host.last_seen,
            hostname: due.hostname,
        };
    }
    state.next_change += 1;
    let change = state.next_change;
    match due.action {
        DueAction::GoOffline => {
            host.offline = true;
            host.change = change;
        }
        DueAction::Delete => {
            state.hosts.remove(&due.hostname);
        }
    }
    Expired::Done {
        hostname: due.hostname,
        change,
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    hosts: BTreeMap<String, HostRecord>,
    /// The last change position given out.
    next_change: u64,
    tokens: Vec<TokenRecord>,
    /// When set, every operation fails, to exercise error paths.
    failing: bool,
    /// When set, host writes wait here until [`MemoryStore::release_writes`], to exercise
    /// registrations that race a slow commit.
    held: Option<Vec<HeldWrite>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later operation fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.state().failing = failing;
    }

    /// Holds every later host write unanswered (and unapplied) until
    /// [`MemoryStore::release_writes`], like a commit that stalls.
    pub fn hold_writes(&self) {
        let mut state = self.state();
        if state.held.is_none() {
            state.held = Some(Vec::new());
        }
    }

    /// Answers the held writes in order: applies each and reports success when `succeed`,
    /// otherwise fails each without applying it. Later writes are no longer held.
    pub fn release_writes(&self, succeed: bool) {
        let mut state = self.state();
        for (write, reply) in state.held.take().unwrap_or_default() {
            let result = if succeed {
                apply(&mut state, write)
            } else {
                Err(StoreError::Database(
                    "injected failure (MemoryStore::release_writes)".into(),
                ))
            };
            let _ = reply.send(result);
        }
    }

    /// Host writes held now.
    pub fn held_writes(&self) -> usize {
        self.state().held.as_ref().map_or(0, Vec::len)
    }

    /// A copy of the stored hosts, for assertions.
    pub fn hosts(&self) -> Vec<HostRecord> {
        self.state().hosts.values().cloned().collect()
    }

    /// A copy of one stored host.
    pub fn host(&self, hostname: &str) -> Option<HostRecord> {
        self.state().hosts.get(hostname).cloned()
    }

    fn state(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run<T>(&self, operation: impl FnOnce(&mut MemoryState) -> T) -> Pending<T> {
        self.try_run(|state| Ok(operation(state)))
    }

    fn try_run<T>(
        &self,
        operation: impl FnOnce(&mut MemoryState) -> Result<T, StoreError>,
    ) -> Pending<T> {
        let mut state = self.state();
        if state.failing {
            return Pending::ready(Err(StoreError::Database(
                "injected failure (MemoryStore::set_failing)".into(),
            )));
        }
        Pending::ready(operation(&mut state))
    }
}

impl Store for MemoryStore {
    fn write_host(&self, write: HostWrite) -> Pending<u64> {
        let mut state = self.state();
        if let Some(held) = &mut state.held {
            let (reply, done) = oneshot::channel();
            held.push((write, reply));
            return Pending::waiting(done);
        }
        drop(state);
        self.try_run(|state| apply(state, write))
    }

    fn expire(&self, due: Vec<Due>) -> Pending<Vec<Expired>> {
        self.run(|state| due.into_iter().map(|due| expire_one(state, due)).collect())
    }

    fn head(&self) -> Pending<u64> {
        self.run(|state| state.next_change)
    }

    fn load_hosts(&self) -> Pending<Vec<HostRecord>> {
        self.run(|state| state.hosts.values().cloned().collect())
    }

    fn list_tokens(&self) -> Pending<Vec<TokenRecord>> {
        self.run(|state| state.tokens.clone())
    }

    fn create_token(
        &self,
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
    ) -> Pending<TokenRecord> {
        self.run(|state| {
            let record = TokenRecord {
                id: state.tokens.last().map_or(1, |last| last.id + 1),
                owner,
                admin,
                hash,
                created_at,
                revoked_at: None,
            };
            state.tokens.push(record.clone());
            record
        })
    }

    fn revoke_token(&self, id: i64, revoked_at: SystemTime) -> Pending<bool> {
        self.run(|state| {
            match state
                .tokens
                .iter_mut()
                .find(|token| token.id == id && token.revoked_at.is_none())
            {
                Some(token) => {
                    token.revoked_at = Some(revoked_at);
                    true
                }
                None => false,
            }
        })
    }

    fn ping(&self) -> Pending<()> {
        self.run(|_| ())
    }
}
