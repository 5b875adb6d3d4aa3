//! Durable state behind one trait: hosts and tokens.
//!
//! Every operation returns a [`Pending`] that resolves once the store has done it; for writes
//! that means "on disk". Writes submitted in some order are applied in that order, which lets
//! the registry submit under its lock and await outside it.

pub mod memory;
pub mod sqlite;

use std::net::IpAddr;
use std::time::SystemTime;

use std::fmt;

use tokio::sync::oneshot;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// A host as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// SHA-256 of a token: what is stored and compared, never the token itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostWrite {
    /// Inserts or replaces a host (new registrations and moves: durable before the ack).
    Upsert(HostRecord),
    /// Refreshes `last_seen` of known hosts (write-behind heartbeat freshness). A refresh never
    /// moves `last_seen` backwards.
    Freshness(Vec<(String, SystemTime)>),
    /// Deletes a host (cleanup of long-offline hosts).
    Delete(String),
}

impl HostWrite {
    /// The `operation` label of the database metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::Upsert(_) => "upsert_host",
            Self::Freshness(_) => "refresh_last_seen",
            Self::Delete(_) => "delete_host",
        }
    }
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// Durable storage of hosts and tokens. Implementations apply operations in submission order.
pub trait Store: Send + Sync + 'static {
    /// Applies a host change; resolves once it is durable.
    fn write_host(&self, write: HostWrite) -> Pending<()>;
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
}
