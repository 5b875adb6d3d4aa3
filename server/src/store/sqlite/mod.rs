//! The embedded SQLite store: one worker thread owns the connection and group-commits writes.
//!
//! Writes that queue up while a transaction commits are applied together in the next one, so
//! a burst of registrations costs one fsync per batch, not one per host, and each caller still
//! hears back only once its write is on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::{
    Due, Expired, HostRecord, HostWrite, Pending, Store, StoreError, TokenHash, TokenRecord,
};
use crate::core::Metrics;
use crate::core::clock::unix_millis;
use schema::{apply_write, create_token, expire, list_tokens, load_hosts, migrate, probe};

mod schema;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Write(HostWrite, Reply<u64>),
    Expire(Vec<Due>, Reply<Vec<Expired>>),
    LoadHosts(Reply<Vec<HostRecord>>),
    ListTokens(Reply<Vec<TokenRecord>>),
    CreateToken {
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
        reply: Reply<TokenRecord>,
    },
    RevokeToken {
        id: i64,
        revoked_at: SystemTime,
        reply: Reply<bool>,
    },
    Ping(Reply<()>),
}

/// SQLite-backed [`Store`]. Dropping every handle stops the worker after it drains its queue.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Queue to the worker thread that owns the connection.
    jobs: mpsc::Sender<Job>,
    /// The database file, for messages and the health check.
    path: PathBuf,
    /// The last probe's time and outcome: probes within [`PROBE_REUSE`] of a successful one
    /// share it, so a health endpoint polled hard does not cost a synchronous write per
    /// request.
    last_probe: ProbeMemo,
}

/// How long one health probe's outcome answers further probes.
const PROBE_REUSE: Duration = Duration::from_secs(1);

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrates it and starts the worker.
    pub fn open(path: &Path, metrics: Option<Metrics>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|err| {
                StoreError::Database(format!("cannot create {}: {err}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(path)?;
        let identity = FileIdentity::of(path)?;
        let last_probe: ProbeMemo = Arc::default();
        let worker_probe = Arc::clone(&last_probe);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed transaction survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        if let Some(metrics) = &metrics {
            metrics.database_pool_size.set(1);
        }
        let (jobs, queue) = mpsc::channel();
        thread::Builder::new()
            .name("prism-store".into())
            .spawn(move || {
                Worker {
                    conn,
                    metrics,
                    identity,
                    last_probe: worker_probe,
                    failed_commit: None,
                }
                .run(&queue)
            })
            .map_err(|err| StoreError::Database(format!("cannot start store thread: {err}")))?;
        Ok(Self {
            jobs,
            path: path.to_path_buf(),
            last_probe,
        })
    }

    fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Pending<T> {
        let (reply, done) = oneshot::channel();
        match self.jobs.send(job(reply)) {
            Ok(()) => Pending::waiting(done),
            Err(_) => Pending::ready(Err(StoreError::Unavailable)),
        }
    }
}

impl Store for SqliteStore {
    fn write_host(&self, write: HostWrite) -> Pending<u64> {
        self.submit(|reply| Job::Write(write, reply))
    }

    fn expire(&self, due: Vec<Due>) -> Pending<Vec<Expired>> {
        self.submit(|reply| Job::Expire(due, reply))
    }

    fn load_hosts(&self) -> Pending<Vec<HostRecord>> {
        self.submit(Job::LoadHosts)
    }

    fn list_tokens(&self) -> Pending<Vec<TokenRecord>> {
        self.submit(Job::ListTokens)
    }

    fn create_token(
        &self,
        owner: String,
        admin: bool,
        hash: TokenHash,
        created_at: SystemTime,
    ) -> Pending<TokenRecord> {
        self.submit(|reply| Job::CreateToken {
            owner,
            admin,
            hash,
            created_at,
            reply,
        })
    }

    fn revoke_token(&self, id: i64, revoked_at: SystemTime) -> Pending<bool> {
        self.submit(|reply| Job::RevokeToken {
            id,
            revoked_at,
            reply,
        })
    }

    fn ping(&self) -> Pending<()> {
        let mut last = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
        // Only a success is reused: a degraded store is probed again at every request, so
        // health turns back to 200 as soon as writes work again.
        if let Some((at, Ok(()))) = &*last
            && at.elapsed() < PROBE_REUSE
        {
            return Pending::ready(Ok(()));
        }
        // A deleted or replaced file: the open connection would go on writing into the
        // unlinked inode (root ignores permissions, so check those too).
        let result = match std::fs::metadata(&self.path) {
            Err(err) => Err(StoreError::Database(format!(
                "database file {} is not accessible: {err}",
                self.path.display()
            ))),
            Ok(meta) if meta.permissions().readonly() => Err(StoreError::Database(format!(
                "database file {} is read-only",
                self.path.display()
            ))),
            Ok(_) => {
                // The worker records the outcome in `last_probe` when it has probed.
                drop(last);
                return self.submit(Job::Ping);
            }
        };
        *last = Some((Instant::now(), result.clone()));
        Pending::ready(result)
    }
}

/// The thread that owns the connection.
struct Worker {
    conn: Connection,
    metrics: Option<Metrics>,
    /// The database file as opened: writes fail once the file at the path is another one
    /// (deleted, or replaced) rather than land in an unlinked inode.
    identity: FileIdentity,
    /// Where a probe's outcome is kept for the probes that follow it (see `PROBE_REUSE`).
    last_probe: ProbeMemo,
    /// The error of the last commit of host writes, while no later one has succeeded.
    failed_commit: Option<StoreError>,
}

/// The last health probe's time and outcome.
type ProbeMemo = Arc<Mutex<Option<(Instant, Result<(), StoreError>)>>>;

/// Which file a path names: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    path_device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|err| {
            StoreError::Database(format!(
                "database file {} is not accessible: {err}",
                path.display()
            ))
        })?;
        Ok(Self {
            path_device: meta.dev(),
            inode: meta.ino(),
        })
    }
}

impl Worker {
    fn run(mut self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let batch: Vec<Job> = std::iter::once(first)
                .chain(queue.try_iter().take(MAX_BATCH - 1))
                .collect();
            self.set_busy(true);
            let mut writes = Vec::new();
            for job in batch {
                match job {
                    Job::Write(write, reply) => writes.push((write, reply)),
                    other => {
                        self.commit_writes(std::mem::take(&mut writes));
                        self.answer(other);
                    }
                }
            }
            self.commit_writes(writes);
            self.set_busy(false);
        }
    }

    /// Fails when the path no longer names the file this connection writes (deleted or
    /// replaced at run time): acknowledging writes into an unlinked file would lose them.
    fn check_file(&self) -> Result<(), StoreError> {
        let path = self.conn.path().map(PathBuf::from).unwrap_or_default();
        match FileIdentity::of(&path) {
            Ok(identity) if identity == self.identity => Ok(()),
            Ok(_) => Err(StoreError::Database(format!(
                "database file {} was replaced while the server ran; restart it",
                path.display()
            ))),
            Err(_) => Err(StoreError::Database(format!(
                "database file {} was deleted while the server ran; restart it",
                path.display()
            ))),
        }
    }

    fn set_busy(&self, busy: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.database_pool_used.set(i64::from(busy));
        }
    }

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

    /// Applies every write in one transaction; each write in its own savepoint, so one bad
    /// write fails alone. Replies go out only after the commit.
    fn commit_writes(&mut self, writes: Vec<(HostWrite, Reply<u64>)>) {
        if writes.is_empty() {
            return;
        }
        let started = Instant::now();
        let outcome = self
            .check_file()
            .and_then(|()| self.apply_in_transaction(&writes));
        self.record("commit", started, &outcome);
        match outcome {
            Ok(results) => {
                self.failed_commit = None;
                for ((_, reply), result) in writes.into_iter().zip(results) {
                    // The caller may have gone away (connection closed); the write stands.
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "store transaction failed");
                // Health reads degraded until a commit succeeds again: on a nearly full disk
                // the probe's one-row write may still fit where real batches do not.
                self.failed_commit = Some(err.clone());
                *self.last_probe.lock().unwrap_or_else(|p| p.into_inner()) = None;
                for (_, reply) in writes {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    fn apply_in_transaction(
        &mut self,
        writes: &[(HostWrite, Reply<u64>)],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let metrics = self.metrics.clone();
        let mut tx = self.conn.transaction()?;
        let mut results = Vec::with_capacity(writes.len());
        for (write, _) in writes {
            let started = Instant::now();
            let result = apply_write(&mut tx, write);
            if let Some(metrics) = &metrics {
                let status = if result.is_ok() { "success" } else { "error" };
                metrics
                    .database_queries
                    .with_label_values(&[write.operation(), status])
                    .inc();
                metrics
                    .database_query_duration
                    .with_label_values(&[write.operation()])
                    .observe(started.elapsed().as_secs_f64());
            }
            results.push(result);
        }
        tx.commit()?;
        Ok(results)
    }

    fn answer(&mut self, job: Job) {
        let started = Instant::now();
        match job {
            Job::Write(write, reply) => self.commit_writes(vec![(write, reply)]),
            Job::Expire(due, reply) => {
                let result = self
                    .check_file()
                    .and_then(|()| expire(&mut self.conn, &due));
                self.record("expire", started, &result);
                let _ = reply.send(result);
            }
            Job::LoadHosts(reply) => {
                let result = load_hosts(&self.conn);
                self.record("load_hosts", started, &result);
                let _ = reply.send(result);
            }
            Job::ListTokens(reply) => {
                let result = list_tokens(&self.conn);
                self.record("list_tokens", started, &result);
                let _ = reply.send(result);
            }
            Job::CreateToken {
                owner,
                admin,
                hash,
                created_at,
                reply,
            } => {
                let result = create_token(&self.conn, owner, admin, hash, created_at);
                self.record("create_token", started, &result);
                let _ = reply.send(result);
            }
            Job::RevokeToken {
                id,
                revoked_at,
                reply,
            } => {
                let result = self
                    .conn
                    .execute(
                        "UPDATE tokens SET revoked_at_ms = ?2 WHERE id = ?1 AND revoked_at_ms IS NULL",
                        params![id, unix_millis(revoked_at)],
                    )
                    .map(|changed| changed > 0)
                    .map_err(StoreError::from);
                self.record("revoke_token", started, &result);
                let _ = reply.send(result);
            }
            Job::Ping(reply) => {
                // A real write, not a read or an empty transaction: a full disk or a
                // read-only or replaced database must fail here.
                let result = self
                    .check_file()
                    .and_then(|()| probe(&self.conn, SystemTime::now()))
                    .and_then(|()| self.failed_commit.clone().map_or(Ok(()), Err));
                self.record("ping", started, &result);
                *self.last_probe.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), result.clone()));
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_a_database_from_a_newer_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.db");
        Connection::open(&path)
            .and_then(|conn| conn.pragma_update(None, "user_version", 99))
            .expect("prepare");
        let err = SqliteStore::open(&path, None).expect_err("must refuse");
        assert!(err.to_string().contains("newer than this server"), "{err}");
    }
}
