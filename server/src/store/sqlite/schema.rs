//! The SQLite schema: versioned migrations, the statements each store operation runs, and the
//! mapping between rows and records.

use std::net::IpAddr;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::core::clock::{from_unix_millis, unix_millis};
use crate::store::{
    Due, DueAction, Expired, HostRecord, HostWrite, StoreError, TokenHash, TokenRecord,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE hosts (
        hostname      TEXT PRIMARY KEY,
        owner         TEXT NOT NULL,
        address       TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX hosts_by_owner ON hosts(owner);
    CREATE TABLE tokens (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        owner         TEXT NOT NULL,
        admin         INTEGER NOT NULL DEFAULT 0,
        hash          BLOB NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER
    );",
    // One row the health probe rewrites: a real write, so a full disk reads as unhealthy.
    "CREATE TABLE health_probe (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        probed_at_ms INTEGER NOT NULL
    );",
    // The sweeper's verdict is stored, so a restart (and every node) agrees with it.
    "ALTER TABLE hosts ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(applied)
        .map_err(|_| StoreError::Corrupt(format!("schema version {applied}")))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "database schema version {applied} is newer than this server ({}); upgrade prism-server",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Applies one write in its own savepoint, so one refused write fails alone.
pub(super) fn apply_write(tx: &mut Transaction<'_>, write: &HostWrite) -> Result<u64, StoreError> {
    let savepoint = tx.savepoint()?;
    match write {
        HostWrite::Upsert(host) => {
            // The owner never changes: a conflicting owner makes the update a no-op.
            let changed = savepoint.execute(
                "INSERT INTO hosts (hostname, owner, address, first_seen_ms, last_seen_ms, offline)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)
                 ON CONFLICT(hostname) DO UPDATE SET
                     address = excluded.address,
                     last_seen_ms = max(hosts.last_seen_ms, excluded.last_seen_ms),
                     offline = 0
                 WHERE hosts.owner = excluded.owner",
                params![
                    host.hostname,
                    host.owner,
                    host.address.to_string(),
                    unix_millis(host.first_seen),
                    unix_millis(host.last_seen)
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::OwnedByOther {
                    hostname: host.hostname.clone(),
                });
            }
        }
        HostWrite::Freshness(refreshes) => {
            let mut update = savepoint.prepare_cached(
                "UPDATE hosts SET last_seen_ms = ?2 WHERE hostname = ?1 AND last_seen_ms < ?2",
            )?;
            for (hostname, last_seen) in refreshes {
                update.execute(params![hostname, unix_millis(*last_seen)])?;
            }
        }
    }
    savepoint.commit()?;
    Ok(0)
}

/// Expires due hosts in one transaction (see [`crate::store::Store::expire`]).
pub(super) fn expire(conn: &mut Connection, due: &[Due]) -> Result<Vec<Expired>, StoreError> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(due.len());
    {
        let mut offline = tx.prepare_cached(
            "UPDATE hosts SET offline = 1 WHERE hostname = ?1 AND last_seen_ms <= ?2",
        )?;
        let mut delete = tx.prepare_cached(
            "DELETE FROM hosts WHERE hostname = ?1 AND offline = 1 AND last_seen_ms <= ?2",
        )?;
        let mut seen = tx.prepare_cached("SELECT last_seen_ms FROM hosts WHERE hostname = ?1")?;
        for host in due {
            let statement = match host.action {
                DueAction::GoOffline => &mut offline,
                DueAction::Delete => &mut delete,
            };
            let done = statement.execute(params![host.hostname, unix_millis(host.seen_before)])?;
            let outcome = if done > 0 {
                Expired::Done {
                    hostname: host.hostname.clone(),
                    change: 0,
                }
            } else {
                match seen
                    .query_row(params![host.hostname], |row| row.get::<_, i64>(0))
                    .optional()?
                {
                    Some(last_seen) => Expired::SeenSince {
                        hostname: host.hostname.clone(),
                        last_seen: from_unix_millis(last_seen),
                    },
                    None => Expired::Gone {
                        hostname: host.hostname.clone(),
                    },
                }
            };
            outcomes.push(outcome);
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

pub(super) fn load_hosts(conn: &Connection) -> Result<Vec<HostRecord>, StoreError> {
    let mut select = conn.prepare(
        "SELECT hostname, owner, address, first_seen_ms, last_seen_ms, offline FROM hosts",
    )?;
    let rows = select.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, bool>(5)?,
        ))
    })?;
    let mut hosts = Vec::new();
    for row in rows {
        let (hostname, owner, address, first_seen, last_seen, offline) = row?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("host {hostname} has address {address:?}")))?;
        hosts.push(HostRecord {
            hostname,
            owner,
            address,
            first_seen: from_unix_millis(first_seen),
            last_seen: from_unix_millis(last_seen),
            offline,
            change: 0,
        });
    }
    Ok(hosts)
}

/// A token row as stored: id, owner, admin, hash, created_at_ms, revoked_at_ms.
type TokenRow = (i64, String, bool, Vec<u8>, i64, Option<i64>);

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn into_token_record(
    (id, owner, admin, hash, created_at, revoked_at): (
        i64,
        String,
        bool,
        Vec<u8>,
        i64,
        Option<i64>,
    ),
) -> Result<TokenRecord, StoreError> {
    let hash = TokenHash::from_slice(&hash)
        .ok_or_else(|| StoreError::Corrupt(format!("token {id} has a malformed hash")))?;
    Ok(TokenRecord {
        id,
        owner,
        admin,
        hash,
        created_at: from_unix_millis(created_at),
        revoked_at: revoked_at.map(from_unix_millis),
    })
}

const TOKEN_COLUMNS: &str = "id, owner, admin, hash, created_at_ms, revoked_at_ms";

pub(super) fn list_tokens(conn: &Connection) -> Result<Vec<TokenRecord>, StoreError> {
    let mut select = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"))?;
    let rows = select.query_map([], token_from_row)?;
    rows.map(|row| into_token_record(row?)).collect()
}

pub(super) fn create_token(
    conn: &Connection,
    owner: String,
    admin: bool,
    hash: TokenHash,
    created_at: SystemTime,
) -> Result<TokenRecord, StoreError> {
    conn.execute(
        "INSERT INTO tokens (owner, admin, hash, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![
            owner,
            admin,
            hash.as_bytes().as_slice(),
            unix_millis(created_at)
        ],
    )?;
    let id = conn.last_insert_rowid();
    let row = conn
        .query_row(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
            params![id],
            token_from_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::Database(format!("token {id} vanished after insert")))?;
    into_token_record(row)
}

/// The health probe: rewrites the probe row, so it fails whenever a write would (a full
/// disk, a read-only file, a lock held elsewhere).
pub(super) fn probe(conn: &Connection, now: SystemTime) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO health_probe (id, probed_at_ms) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET probed_at_ms = excluded.probed_at_ms",
        params![unix_millis(now)],
    )?;
    Ok(())
}
