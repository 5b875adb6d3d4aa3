//! The simulated database host of a cluster world, and the store the nodes reach it through.
//!
//! A real PostgreSQL cannot run inside turmoil, so the shared store is a small service on a
//! turmoil host of its own ([`Database`]): it applies writes in arrival order on a
//! [`MemoryStore`] (which arbitrates ownership and keeps the change order), holds the sweeper
//! role as a lease, and publishes every committed change to the nodes' change feeds. The
//! nodes reach it over simulated TCP through [`DatabaseClient`], a [`Store`] like
//! `PostgresStore`: every operation is bounded in time, the feed is a connection of its own
//! that reconnects and then says [`FeedEvent::Resync`]. So the nodes run the same change-feed
//! consumer, leader logic and registry code as on PostgreSQL, and partitions, latency and
//! crashes between a node and the database are faults the simulator injects.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use prism_server::store::{
    ChangeFeed, Due, Expired, FeedEvent, HostRecord, HostWrite, MemoryStore, Pending, Store,
    StoreError, TokenHash, TokenRecord,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use turmoil::net::{TcpListener, TcpStream};

use crate::adapters::sim_now;

/// Turmoil host name of the database.
pub const DATABASE: &str = "database";
/// Port the database listens on.
pub const DATABASE_PORT: u16 = 5432;
/// How long a granted sweeper lease lasts unless renewed (a PostgreSQL session's keepalives
/// free the advisory lock in about as long).
pub const LEASE: Duration = Duration::from_secs(5);
/// Longest any store operation may take before it fails (as `PostgresStore`).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a lease request may take (as the PostgreSQL sweeper-lock check).
pub const LEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the database writes a keepalive on an idle feed connection.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// A feed connection silent this long is dead: reconnect.
pub const FEED_SILENCE: Duration = Duration::from_secs(3);
/// First and longest wait before a feed reconnects.
pub const FEED_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// Largest frame either side accepts.
const MAX_FRAME: usize = 64 << 20;
/// Events buffered between a node's feed connection and the node.
const FEED_BUFFER: usize = 65_536;

/// One request, with the node that sent it.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    WriteHost(HostWrite),
    Expire(Vec<Due>),
    LoadHosts,
    ListTokens,
    CreateToken {
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
    },
    RevokeToken {
        id: i64,
        revoked_at: SystemTime,
    },
    Ping,
    Lead,
    Head,
    /// Turns the connection into a change feed.
    Subscribe,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Position(u64),
    Expired(Vec<Expired>),
    Hosts(Vec<HostRecord>),
    Tokens(Vec<TokenRecord>),
    Token(TokenRecord),
    Revoked(bool),
    Done,
    Leading(bool),
    Failed(StoreError),
}

/// What a feed connection carries.
#[derive(Debug, Serialize, Deserialize)]
enum FeedMessage {
    /// Nothing changed; the connection is alive (the first one confirms the subscription).
    Keepalive,
    /// A committed change.
    Event(FeedEvent),
}

/// A deliberately broken database, to prove the invariants catch what it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBug {
    /// Grants the sweeper lease to every node that asks: several nodes sweep at once.
    LeaseForEveryone,
}

/// The database's state; the driver reads it between simulation steps.
#[derive(Default)]
struct DbState {
    store: MemoryStore,
    /// The node holding the sweeper lease, and until when (simulated time).
    lease: Option<(String, Duration)>,
    /// Every connected feed.
    feeds: Vec<mpsc::UnboundedSender<FeedEvent>>,
    /// While set, committed changes are not published (notifications lost).
    dropping_notifications: bool,
    bug: Option<DatabaseBug>,
    /// The first expiry applied for a node that did not hold the lease.
    breach: Option<String>,
}

/// The simulated database: its state (shared with the driver) and its service.
#[derive(Clone, Default)]
pub struct Database {
    state: Rc<RefCell<DbState>>,
}

impl Database {
    /// A correct database, or one with `bug` planted.
    pub fn new(bug: Option<DatabaseBug>) -> Self {
        let database = Self::default();
        database.state.borrow_mut().bug = bug;
        database
    }

    /// The stored hosts and tokens (the durable truth).
    pub fn store(&self) -> MemoryStore {
        self.state.borrow().store.clone()
    }

    /// The node holding a lease that has not run out at `now`.
    pub fn lease_holder(&self, now: Duration) -> Option<String> {
        let state = self.state.borrow();
        state
            .lease
            .as_ref()
            .filter(|(_, until)| *until > now)
            .map(|(node, _)| node.clone())
    }

    /// Loses (`true`) or publishes again (`false`) every change notification; feed
    /// connections stay up, so only a resync repairs what was lost.
    pub fn set_dropping_notifications(&self, dropping: bool) {
        self.state.borrow_mut().dropping_notifications = dropping;
    }

    /// The first expiry applied for a node that did not hold the sweeper lease, if any.
    pub fn take_breach(&self) -> Option<String> {
        self.state.borrow_mut().breach.take()
    }

    /// Serves connections until the host is crashed.
    pub async fn serve(self) -> turmoil::Result {
        let listener = TcpListener::bind(("0.0.0.0", DATABASE_PORT)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::task::spawn_local(self.clone().connection(stream));
        }
    }

    async fn connection(self, mut stream: TcpStream) {
        loop {
            let Ok(envelope) = read_frame::<Envelope, _>(&mut stream).await else {
                return;
            };
            if matches!(envelope.request, Request::Subscribe) {
                self.feed(stream).await;
                return;
            }
            let reply = self.handle(envelope).await;
            if write_frame(&mut stream, &reply).await.is_err() {
                return;
            }
        }
    }

    /// Pumps committed changes (and keepalives) to one feed connection.
    async fn feed(self, mut stream: TcpStream) {
        let (sender, mut events) = mpsc::unbounded_channel();
        self.state.borrow_mut().feeds.push(sender);
        if write_frame(&mut stream, &FeedMessage::Keepalive)
            .await
            .is_err()
        {
            return;
        }
        loop {
            let message = match tokio::time::timeout(KEEPALIVE, events.recv()).await {
                Ok(Some(event)) => FeedMessage::Event(event),
                Ok(None) => return,
                Err(_) => FeedMessage::Keepalive,
            };
            if write_frame(&mut stream, &message).await.is_err() {
                return;
            }
        }
    }

    async fn handle(&self, Envelope { node, request }: Envelope) -> Reply {
        let store = self.store();
        match request {
            Request::WriteHost(write) => {
                let hostname = match &write {
                    HostWrite::Upsert(record) => Some(record.hostname.clone()),
                    HostWrite::Freshness(_) => None,
                };
                match store.write_host(write).wait().await {
                    Ok(position) => {
                        if let Some(record) = hostname.and_then(|name| store.host(&name)) {
                            self.publish(FeedEvent::Host(record));
                        }
                        Reply::Position(position)
                    }
                    Err(err) => Reply::Failed(err),
                }
            }
            Request::Expire(due) => {
                self.check_sweeper(&node);
                match store.expire(due).wait().await {
                    Ok(outcomes) => {
                        for outcome in &outcomes {
                            if let Expired::Done { hostname, change } = outcome {
                                self.publish(match store.host(hostname) {
                                    Some(record) => FeedEvent::Host(record),
                                    None => FeedEvent::Deleted {
                                        hostname: hostname.clone(),
                                        change: *change,
                                    },
                                });
                            }
                        }
                        Reply::Expired(outcomes)
                    }
                    Err(err) => Reply::Failed(err),
                }
            }
            Request::LoadHosts => reply(store.load_hosts().wait().await, Reply::Hosts),
            Request::ListTokens => reply(store.list_tokens().wait().await, Reply::Tokens),
            Request::CreateToken {
                owner,
                admin,
                hash,
                created_at,
            } => {
                let created = store
                    .create_token(owner, admin, hash, created_at)
                    .wait()
                    .await;
                if created.is_ok() {
                    self.publish(FeedEvent::Tokens);
                }
                reply(created, Reply::Token)
            }
            Request::RevokeToken { id, revoked_at } => {
                let revoked = store.revoke_token(id, revoked_at).wait().await;
                if revoked == Ok(true) {
                    self.publish(FeedEvent::Tokens);
                }
                reply(revoked, Reply::Revoked)
            }
            Request::Ping => reply(store.ping().wait().await, |()| Reply::Done),
            Request::Head => reply(store.head().wait().await, Reply::Position),
            Request::Lead => Reply::Leading(self.lead(node)),
            Request::Subscribe => Reply::Failed(StoreError::Database(
                "subscribe opens a feed connection of its own".into(),
            )),
        }
    }

    /// Grants or renews the lease for `node` unless another node holds one that has not
    /// run out.
    fn lead(&self, node: String) -> bool {
        let now = sim_now();
        let mut state = self.state.borrow_mut();
        let held_by_other = state
            .lease
            .as_ref()
            .is_some_and(|(holder, until)| *holder != node && *until > now);
        if held_by_other && state.bug != Some(DatabaseBug::LeaseForEveryone) {
            return false;
        }
        state.lease = Some((node, now + LEASE));
        true
    }

    /// Records a breach when `node` expires hosts without holding the lease.
    fn check_sweeper(&self, node: &str) {
        let now = sim_now();
        let holder = self.lease_holder(now);
        if holder.as_deref() != Some(node) {
            let mut state = self.state.borrow_mut();
            state.breach.get_or_insert_with(|| {
                format!(
                    "node {node} expired hosts while {} held the sweeper lease: two sweepers",
                    holder.as_deref().unwrap_or("no node")
                )
            });
        }
    }

    fn publish(&self, event: FeedEvent) {
        let mut state = self.state.borrow_mut();
        if state.dropping_notifications {
            return;
        }
        state.feeds.retain(|feed| feed.send(event.clone()).is_ok());
    }
}

fn reply<T>(result: Result<T, StoreError>, wrap: impl FnOnce(T) -> Reply) -> Reply {
    match result {
        Ok(value) => wrap(value),
        Err(err) => Reply::Failed(err),
    }
}

/// A node's [`Store`]: every operation is one request on a connection of its own to the
/// database host, bounded like `PostgresStore`'s.
pub struct DatabaseClient {
    node: String,
    /// Planted bug: the node gets no change feed (and so never resyncs either).
    ignore_feed: bool,
    subscribed: AtomicBool,
}

impl DatabaseClient {
    /// The store of node `node`; `ignore_feed` plants a node that ignores the change feed.
    pub fn new(node: &str, ignore_feed: bool) -> Self {
        Self {
            node: node.to_owned(),
            ignore_feed,
            subscribed: AtomicBool::new(false),
        }
    }

    fn call<T: Send + 'static>(
        &self,
        request: Request,
        limit: Duration,
        pick: fn(Reply) -> Option<T>,
    ) -> Pending<T> {
        let (done, pending) = oneshot::channel();
        let envelope = Envelope {
            node: self.node.clone(),
            request,
        };
        tokio::spawn(async move {
            let result = match tokio::time::timeout(limit, exchange(&envelope)).await {
                Ok(Ok(Reply::Failed(err))) => Err(err),
                Ok(Ok(reply)) => pick(reply).ok_or_else(|| {
                    StoreError::Database(format!("unexpected reply to {:?}", envelope.request))
                }),
                Ok(Err(err)) => Err(StoreError::Database(format!(
                    "cannot reach the database: {err}"
                ))),
                Err(_) => Err(StoreError::Database(format!(
                    "the database did not answer within {} s",
                    limit.as_secs()
                ))),
            };
            let _ = done.send(result);
        });
        Pending::waiting(pending)
    }
}

async fn exchange(envelope: &Envelope) -> io::Result<Reply> {
    let mut stream = TcpStream::connect((DATABASE, DATABASE_PORT)).await?;
    write_frame(&mut stream, envelope).await?;
    read_frame(&mut stream).await
}

impl Store for DatabaseClient {
    fn write_host(&self, write: HostWrite) -> Pending<u64> {
        self.call(
            Request::WriteHost(write),
            OPERATION_TIMEOUT,
            |reply| match reply {
                Reply::Position(position) => Some(position),
                _ => None,
            },
        )
    }

    fn expire(&self, due: Vec<Due>) -> Pending<Vec<Expired>> {
        self.call(
            Request::Expire(due),
            OPERATION_TIMEOUT,
            |reply| match reply {
                Reply::Expired(outcomes) => Some(outcomes),
                _ => None,
            },
        )
    }

    fn load_hosts(&self) -> Pending<Vec<HostRecord>> {
        self.call(Request::LoadHosts, OPERATION_TIMEOUT, |reply| match reply {
            Reply::Hosts(hosts) => Some(hosts),
            _ => None,
        })
    }

    fn list_tokens(&self) -> Pending<Vec<TokenRecord>> {
        self.call(
            Request::ListTokens,
            OPERATION_TIMEOUT,
            |reply| match reply {
                Reply::Tokens(tokens) => Some(tokens),
                _ => None,
            },
        )
    }

    fn create_token(
        &self,
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
    ) -> Pending<TokenRecord> {
        let request = Request::CreateToken {
            owner,
            admin,
            hash,
            created_at,
        };
        self.call(request, OPERATION_TIMEOUT, |reply| match reply {
            Reply::Token(token) => Some(token),
            _ => None,
        })
    }

    fn revoke_token(&self, id: i64, revoked_at: SystemTime) -> Pending<bool> {
        let request = Request::RevokeToken { id, revoked_at };
        self.call(request, OPERATION_TIMEOUT, |reply| match reply {
            Reply::Revoked(revoked) => Some(revoked),
            _ => None,
        })
    }

    fn ping(&self) -> Pending<()> {
        self.call(Request::Ping, OPERATION_TIMEOUT, |reply| match reply {
            Reply::Done => Some(()),
            _ => None,
        })
    }

    fn lead(&self) -> Pending<bool> {
        self.call(Request::Lead, LEAD_TIMEOUT, |reply| match reply {
            Reply::Leading(leading) => Some(leading),
            _ => None,
        })
    }

    fn subscribe(&self) -> Option<ChangeFeed> {
        if self.ignore_feed || self.subscribed.swap(true, Ordering::SeqCst) {
            return None;
        }
        let (events, feed) = mpsc::channel(FEED_BUFFER);
        tokio::spawn(follow(self.node.clone(), events));
        Some(feed)
    }

    fn head(&self) -> Pending<u64> {
        self.call(Request::Head, OPERATION_TIMEOUT, |reply| match reply {
            Reply::Position(position) => Some(position),
            _ => None,
        })
    }
}

/// The feed connection of one node: subscribes, says Resync once the subscription holds,
/// forwards changes, and reconnects with backoff when the connection goes silent.
async fn follow(node: String, events: mpsc::Sender<FeedEvent>) {
    let mut backoff = FEED_BACKOFF.0;
    loop {
        if let Ok(Ok(mut stream)) = tokio::time::timeout(OPERATION_TIMEOUT, subscribe(&node)).await
        {
            backoff = FEED_BACKOFF.0;
            // Changes committed before the subscription held are not delivered: reload.
            if events.send(FeedEvent::Resync).await.is_err() {
                return;
            }
            while let Ok(Ok(message)) =
                tokio::time::timeout(FEED_SILENCE, read_frame::<FeedMessage, _>(&mut stream)).await
            {
                if let FeedMessage::Event(event) = message
                    && events.send(event).await.is_err()
                {
                    return;
                }
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(FEED_BACKOFF.1);
    }
}

/// Opens a feed connection and waits for the database to confirm it.
async fn subscribe(node: &str) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect((DATABASE, DATABASE_PORT)).await?;
    let envelope = Envelope {
        node: node.to_owned(),
        request: Request::Subscribe,
    };
    write_frame(&mut stream, &envelope).await?;
    match read_frame::<FeedMessage, _>(&mut stream).await? {
        FeedMessage::Keepalive => Ok(stream),
        FeedMessage::Event(_) => Err(io::Error::other("feed began without its confirmation")),
    }
}

/// Writes `value` as a 4-byte big-endian length and JSON.
async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    stream: &mut W,
    value: &T,
) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    let length = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut frame = length.to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

/// Reads one frame written by [`write_frame`].
async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<T> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let length = u32::from_be_bytes(header) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::other(format!("frame of {length} bytes")));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(io::Error::other)
}
