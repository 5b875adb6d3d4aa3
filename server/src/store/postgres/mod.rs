//! The PostgreSQL store, for several nodes sharing one database.
//!
//! PostgreSQL is the one owner of durable truth: it decides ownership of a name in one
//! statement (an upsert that only updates a row of the same owner), publishes every
//! committed change with `NOTIFY` from triggers ([`feed`]), and elects the one node that
//! sweeps with an advisory lock held on a dedicated session ([`leader`]). Queries go
//! through a `deadpool-postgres` pool whose size and use feed the pool gauges; every
//! operation is bounded in time, so a database that stops answering reads as an error.

mod expiry;
mod feed;
mod leader;
mod schema;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

use super::{
    ChangeFeed, Due, Expired, HostRecord, HostWrite, Pending, Store, StoreError, TokenHash,
    TokenRecord,
};
use crate::core::Metrics;
use crate::core::clock::unix_millis;
use leader::Leader;
use schema::{HOST_COLUMNS, TOKEN_COLUMNS, host_from_row, migrate, position, token_from_row};

/// Longest any one store operation may take before it fails.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Deletion tombstones are kept this long (they only serve the newest change position).
const TOMBSTONE_RETENTION: Duration = Duration::from_secs(3600);

/// A [`Store`] on a PostgreSQL database. Clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Connections for queries.
    pool: Pool,
    /// How to open connections of our own (the feed listener, the sweeper-lock session).
    config: tokio_postgres::Config,
    /// The pool's size, for its gauge.
    pool_size: usize,
    /// Query and pool metrics, when the store serves a node.
    metrics: Option<Metrics>,
    /// The session that holds (or tries for) the sweeper lock.
    leader: tokio::sync::Mutex<Leader>,
    /// Whether the feed was handed out already.
    subscribed: Mutex<bool>,
}

impl PostgresStore {
    /// Connects to the database at `url` with a pool of `pool_size` connections and applies
    /// the migrations it has not had yet (refusing a schema newer than this server's).
    pub async fn open(
        url: &str,
        pool_size: usize,
        metrics: Option<Metrics>,
    ) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::Database(format!("database.url is not usable: {err}")))?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .application_name("prism-server");
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(OPERATION_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|err| {
                StoreError::Database(format!("cannot build the connection pool: {err}"))
            })?;
        let mut client = pool.get().await.map_err(unreachable)?;
        migrate(&mut client).await?;
        drop(client);
        if let Some(metrics) = &metrics {
            metrics
                .database_pool_size
                .set(i64::try_from(pool_size).unwrap_or(i64::MAX));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                leader: tokio::sync::Mutex::new(Leader::new(config.clone())),
                pool,
                config,
                pool_size,
                metrics,
                subscribed: Mutex::new(false),
            }),
        })
    }

    /// Runs `work` with a pooled connection on the runtime, bounded by [`OPERATION_TIMEOUT`],
    /// recording it as `operation`.
    fn run<T, F, Fut>(&self, operation: &'static str, work: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let (reply, done) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let started = Instant::now();
            let attempt = async {
                let client = inner.pool.get().await.map_err(unreachable)?;
                inner.record_pool();
                work(client).await
            };
            let result = match tokio::time::timeout(OPERATION_TIMEOUT, attempt).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::Database(format!(
                    "the database did not answer within {} s",
                    OPERATION_TIMEOUT.as_secs()
                ))),
            };
            inner.record(operation, started, &result);
            inner.record_pool();
            let _ = reply.send(result);
        });
        Pending::waiting(done)
    }
}

impl Inner {
    fn record<T>(&self, operation: &str, started: Instant, result: &Result<T, StoreError>) {
        if let Some(metrics) = &self.metrics {
            let status = if result.is_ok() { "success" } else { "error" };
            metrics
                .database_queries
                .with_label_values(&[operation, status])
                .inc();
            metrics
                .database_query_duration
                .with_label_values(&[operation])
                .observe(started.elapsed().as_secs_f64());
        }
    }

    fn record_pool(&self) {
        if let Some(metrics) = &self.metrics {
            let status = self.pool.status();
            let used = status.size.saturating_sub(status.available);
            metrics
                .database_pool_used
                .set(i64::try_from(used).unwrap_or(i64::MAX));
            metrics
                .database_pool_size
                .set(i64::try_from(self.pool_size).unwrap_or(i64::MAX));
        }
    }
}

/// A pool that cannot hand out a connection: the database is unreachable.
fn unreachable(err: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Database(format!("cannot reach PostgreSQL: {err}"))
}

/// Milliseconds for a `bigint` column.
fn millis(time: SystemTime) -> i64 {
    unix_millis(time)
}

impl Store for PostgresStore {
    fn write_host(&self, write: HostWrite) -> Pending<u64> {
        match write {
            HostWrite::Upsert(host) => self.run("upsert_host", move |client| async move {
                // One statement decides ownership: the update only happens for the same owner.
                let row = client
                    .query_opt(
                        "INSERT INTO hosts (hostname, owner, address, first_seen_ms, last_seen_ms, offline, change)
                         VALUES ($1, $2, $3, $4, $5, false, nextval('prism_change'))
                         ON CONFLICT (hostname) DO UPDATE SET
                             address = EXCLUDED.address,
                             last_seen_ms = GREATEST(hosts.last_seen_ms, EXCLUDED.last_seen_ms),
                             offline = false,
                             change = EXCLUDED.change
                         WHERE hosts.owner = EXCLUDED.owner
                         RETURNING change",
                        &[
                            &host.hostname,
                            &host.owner,
                            &host.address.to_string(),
                            &millis(host.first_seen),
                            &millis(host.last_seen),
                        ],
                    )
                    .await?;
                match row {
                    Some(row) => Ok(position(row.try_get(0)?)),
                    None => Err(StoreError::OwnedByOther {
                        hostname: host.hostname,
                    }),
                }
            }),
            HostWrite::Freshness(refreshes) => {
                self.run("refresh_last_seen", move |client| async move {
                    let (names, seen): (Vec<String>, Vec<i64>) = refreshes
                        .into_iter()
                        .map(|(name, last_seen)| (name, millis(last_seen)))
                        .unzip();
                    client
                        .execute(
                            "UPDATE hosts SET last_seen_ms = fresh.last_seen_ms
                             FROM unnest($1::text[], $2::bigint[]) AS fresh(hostname, last_seen_ms)
                             WHERE hosts.hostname = fresh.hostname
                               AND hosts.last_seen_ms < fresh.last_seen_ms",
                            &[&names, &seen],
                        )
                        .await?;
                    Ok(0)
                })
            }
        }
    }

    fn expire(&self, due: Vec<Due>) -> Pending<Vec<Expired>> {
        self.run("expire", move |client| expiry::expire(client, due))
    }

    fn load_hosts(&self) -> Pending<Vec<HostRecord>> {
        self.run("load_hosts", |client| async move {
            client
                .query(&format!("SELECT {HOST_COLUMNS} FROM hosts"), &[])
                .await?
                .iter()
                .map(host_from_row)
                .collect()
        })
    }

    fn list_tokens(&self) -> Pending<Vec<TokenRecord>> {
        self.run("list_tokens", |client| async move {
            client
                .query(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"),
                    &[],
                )
                .await?
                .iter()
                .map(token_from_row)
                .collect()
        })
    }

    fn create_token(
        &self,
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
    ) -> Pending<TokenRecord> {
        self.run("create_token", move |client| async move {
            let row = client
                .query_one(
                    &format!(
                        "INSERT INTO tokens (owner, admin, hash, created_at_ms) VALUES ($1, $2, $3, $4)
                         RETURNING {TOKEN_COLUMNS}"
                    ),
                    &[&owner, &admin, &hash.as_bytes().as_slice(), &millis(created_at)],
                )
                .await?;
            token_from_row(&row)
        })
    }

    fn revoke_token(&self, id: i64, revoked_at: SystemTime) -> Pending<bool> {
        self.run("revoke_token", move |client| async move {
            let changed = client
                .execute(
                    "UPDATE tokens SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
                    &[&id, &millis(revoked_at)],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn ping(&self) -> Pending<()> {
        self.run("ping", |client| async move {
            // A real write: a read-only or full database must fail here.
            client
                .execute(
                    "INSERT INTO health_probe (id, probed_at_ms) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET probed_at_ms = EXCLUDED.probed_at_ms",
                    &[&millis(SystemTime::now())],
                )
                .await?;
            Ok(())
        })
    }

    fn lead(&self) -> Pending<bool> {
        let (reply, done) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let started = Instant::now();
            let result = inner.leader.lock().await.hold().await;
            inner.record("lead", started, &result);
            let _ = reply.send(result);
        });
        Pending::waiting(done)
    }

    fn subscribe(&self) -> Option<ChangeFeed> {
        let mut subscribed = self
            .inner
            .subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *subscribed {
            return None;
        }
        *subscribed = true;
        Some(feed::start(self.inner.config.clone()))
    }

    fn head(&self) -> Pending<u64> {
        self.run("head", |client| async move {
            let row = client
                .query_one(
                    "SELECT GREATEST(
                        (SELECT coalesce(max(change), 0) FROM hosts),
                        (SELECT coalesce(max(change), 0) FROM deleted_hosts))",
                    &[],
                )
                .await?;
            Ok(position(row.try_get(0)?))
        })
    }
}
