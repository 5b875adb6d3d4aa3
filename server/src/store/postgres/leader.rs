//! The sweeper election: a PostgreSQL advisory lock held on a session of its own, never a
//! pooled one (a pooled connection handed back would keep the lock for its next borrower).
//! The lock dies with the session, so when the leading node dies or loses the database,
//! another one takes it at its next try. The session asks the server for short TCP
//! keepalives, so the server notices a vanished leader within seconds and frees the lock.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::store::StoreError;

/// The advisory lock key of the sweeper role.
const SWEEPER_LOCK: i64 = 0x7072_6973_6d00_0002;
/// Longest a check of the session may take before the role counts as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's session for the sweeper lock.
pub(super) struct Leader {
    config: tokio_postgres::Config,
    /// The session, while connected.
    session: Option<Client>,
    /// Whether the session holds the lock.
    holding: bool,
}

impl Leader {
    pub(super) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            session: None,
            holding: false,
        }
    }

    /// Whether this node leads now: confirms a held lock is still held (the session
    /// answers), or tries to take it. An error means the database is unreachable.
    pub(super) async fn hold(&mut self) -> Result<bool, StoreError> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.try_hold()).await {
            Ok(Ok(leading)) => Ok(leading),
            Ok(Err(err)) => {
                self.drop_session();
                Err(err)
            }
            Err(_) => {
                self.drop_session();
                Err(StoreError::Database(format!(
                    "the sweeper-lock session did not answer within {} s",
                    CHECK_TIMEOUT.as_secs()
                )))
            }
        }
    }

    async fn try_hold(&mut self) -> Result<bool, StoreError> {
        if self.session.as_ref().is_none_or(Client::is_closed) {
            self.holding = false;
            self.session = Some(self.connect().await?);
        }
        let Some(session) = &self.session else {
            return Ok(false);
        };
        if self.holding {
            session.simple_query("SELECT 1").await?;
            return Ok(true);
        }
        let row = session
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEPER_LOCK])
            .await?;
        self.holding = row.try_get(0)?;
        if self.holding {
            tracing::info!("this node now leads: it runs offline detection and cleanup");
        }
        Ok(self.holding)
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "sweeper-lock session ended");
            }
        });
        // The server's side of the keepalive: it drops a session whose node vanished.
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; \
                 SET tcp_keepalives_count = 3",
            )
            .await?;
        Ok(client)
    }

    fn drop_session(&mut self) {
        if self.holding {
            tracing::warn!("this node no longer leads: its database session is gone");
        }
        self.holding = false;
        self.session = None;
    }
}
