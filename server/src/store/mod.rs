//! Durable state behind one trait: hosts and tokens.
//!
//! Every operation returns a [`Pending`] that resolves once the store has done it; for writes
//! that means "committed". The registry submits at most one durable write per host at a time
//! (see `core::registry`), so stores may apply writes of different hosts concurrently.
//!
//! A store shared by several nodes (PostgreSQL) also arbitrates ownership of names, elects
//! the one node that sweeps ([`Store::lead`]) and publishes every committed change on a
//! change feed ([`Store::subscribe`]); an embedded store (SQLite) has one writer, so it
//! always leads and has no feed.
//!
//! The types crossing the [`Store`] boundary are serialisable, so a store can also sit behind
//! a network transport (the simulator's database host does).

pub mod memory;
pub mod postgres;
pub mod sqlite;

use std::net::IpAddr;
use std::time::SystemTime;

use std::fmt;

use tokio::sync::oneshot;

pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A host as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRecord {
    /// Lowercase hostname, the key.
    pub hostname: String,
    /// Owner of the token that first registered the name.
    pub owner: String,
    /// Last address the host registered from.
    pub address: IpAddr,
    /// When the host first registered.
    pub first_seen: SystemTime,
    /// Its last heartbeat.
    pub last_seen: SystemTime,
    /// Marked offline by the sweeper (stored, so every node and a restart agree).
    pub offline: bool,
    /// Position of the host's last change in the store's change order: a larger one is a
    /// later change. 0 where the store keeps no order (embedded stores).
    pub change: u64,
}

/// SHA-256 of a token: what is stored and compared, never the token itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Rebuilds a hash from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// A token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRecord {
    /// Identifier shown by `token list` and taken by `token revoke`.
    pub id: i64,
    /// Owner name; hosts registered with the token belong to it.
    pub owner: String,
    /// Admin tokens see every host in the API.
    pub admin: bool,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
}

/// A change to the stored hosts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HostWrite {
    /// Creates a host, or brings it online at a new address (new registrations, moves and
    /// reconnections: durable before the ack). Keeps the stored `first_seen`; never moves
    /// `last_seen` backwards. Refused with [`StoreError::OwnedByOther`] when the stored host
    /// belongs to another owner: the store, not a node's cache, decides who owns a name.
    Upsert(HostRecord),
    /// Refreshes `last_seen` of known hosts (write-behind heartbeat freshness). A refresh never
    /// moves `last_seen` backwards.
    Freshness(Vec<(String, SystemTime)>),
}

impl HostWrite {
    /// The `operation` label of the database metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::Upsert(_) => "upsert_host",
            Self::Freshness(_) => "refresh_last_seen",
        }
    }
}

/// A host whose deadline passed in the sweeper's registry, to expire in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Due {
    /// The host.
    pub hostname: String,
    /// Go offline (an online host), or be deleted (an offline host past cleanup).
    pub action: DueAction,
    /// Expire only if the stored `last_seen` is no later than this: a heartbeat taken by
    /// another node since (written behind within a second) keeps the host.
    pub seen_before: SystemTime,
}

/// What a due host is up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DueAction {
    /// Mark it offline.
    GoOffline,
    /// Delete it (it has been offline past `heartbeat.cleanup_after_days`).
    Delete,
}

/// What the store did with a [`Due`] host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Expired {
    /// Marked offline (or deleted) as asked, at change position `change`.
    Done {
        /// The host.
        hostname: String,
        /// Its change position (0 for embedded stores).
        change: u64,
    },
    /// Not expired: the stored host was seen later than the deadline allowed.
    SeenSince {
        /// The host.
        hostname: String,
        /// Its stored `last_seen`.
        last_seen: SystemTime,
    },
    /// The store has no such host (any more).
    Gone {
        /// The host.
        hostname: String,
    },
}

/// A committed change another node (or another process) made, from a store's change feed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FeedEvent {
    /// A host was created, moved, came back or went offline: its stored record now.
    Host(HostRecord),
    /// A host was deleted, at change position `change`.
    Deleted {
        /// The host.
        hostname: String,
        /// The deletion's change position.
        change: u64,
    },
    /// Tokens were created or revoked.
    Tokens,
    /// The feed (re)connected: changes committed meanwhile were not delivered, so the
    /// subscriber must reload everything.
    Resync,
}

/// A store's change feed: every committed change in commit order, while connected.
pub type ChangeFeed = tokio::sync::mpsc::Receiver<FeedEvent>;

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The store's worker is gone (shut down or crashed).
    #[error("store is not running")]
    Unavailable,
    /// Stored data that cannot be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The name is stored as another owner's; nothing changed.
    #[error("hostname '{hostname}' is registered to another owner")]
    OwnedByOther {
        /// The refused name.
        hostname: String,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Database(err.to_string())
    }
}

/// The result of a store operation, now or later.
#[must_use = "a store operation is only known done once its Pending resolves"]
pub struct Pending<T>(PendingState<T>);

enum PendingState<T> {
    Ready(Result<T, StoreError>),
    Waiting(oneshot::Receiver<Result<T, StoreError>>),
}

impl<T> Pending<T> {
    /// An operation that already finished.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self(PendingState::Ready(result))
    }

    /// An operation a worker will finish, reporting through `done`.
    pub fn waiting(done: oneshot::Receiver<Result<T, StoreError>>) -> Self {
        Self(PendingState::Waiting(done))
    }

    /// Waits for the operation to finish.
    pub async fn wait(self) -> Result<T, StoreError> {
        match self.0 {
            PendingState::Ready(result) => result,
            PendingState::Waiting(done) => done.await.unwrap_or(Err(StoreError::Unavailable)),
        }
    }
}

/// Durable storage of hosts and tokens.
pub trait Store: Send + Sync + 'static {
    /// Applies a host change; resolves once it is durable, with the change position it got
    /// (0 for freshness, and in stores that keep no change order).
    fn write_host(&self, write: HostWrite) -> Pending<u64>;
    /// Expires due hosts: marks each offline (or deletes it) unless the store has seen it
    /// since its deadline allowed, in one transaction. One outcome per host, in order.
    fn expire(&self, due: Vec<Due>) -> Pending<Vec<Expired>>;
    /// Every stored host.
    fn load_hosts(&self) -> Pending<Vec<HostRecord>>;
    /// Every token, revoked ones included.
    fn list_tokens(&self) -> Pending<Vec<TokenRecord>>;
    /// Stores a new token; resolves with its record once durable.
    fn create_token(
        &self,
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
    ) -> Pending<TokenRecord>;
    /// Marks a token revoked; resolves with `false` when no active token has that id.
    fn revoke_token(&self, id: i64, revoked_at: SystemTime) -> Pending<bool>;
    /// Checks that the store can read and write (health probes).
    fn ping(&self) -> Pending<()>;

    /// Asks to be (or to stay) the node that sweeps: `true` while this node holds the
    /// sweeper role. An embedded store has one node, which always leads.
    fn lead(&self) -> Pending<bool> {
        Pending::ready(Ok(true))
    }

    /// The change feed of a store other nodes write to; `None` for an embedded store (its
    /// one node sees every change it makes). Called once.
    fn subscribe(&self) -> Option<ChangeFeed> {
        None
    }

    /// The newest change position committed in the store (0 where it keeps none).
    fn head(&self) -> Pending<u64> {
        Pending::ready(Ok(0))
    }
}
