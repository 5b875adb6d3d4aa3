//! The PostgreSQL schema: versioned migrations (applied under an advisory lock, so nodes
//! starting together migrate once), the triggers that publish every committed change on the
//! `prism_changes` channel, and the mapping between rows and records.

use std::net::IpAddr;

use tokio_postgres::{Client, Row};

use crate::core::clock::from_unix_millis;
use crate::store::{FeedEvent, HostRecord, StoreError, TokenHash, TokenRecord};

/// The channel every committed change is published on (`LISTEN prism_changes`).
pub(super) const CHANNEL: &str = "prism_changes";
/// Advisory lock key serialising migrations between nodes that start together.
const MIGRATION_LOCK: i64 = 0x7072_6973_6d00_0001;

/// Schema migrations, applied in order; `prism_schema.version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
    CREATE SEQUENCE prism_change;
    CREATE TABLE hosts (
        hostname      text PRIMARY KEY,
        owner         text NOT NULL,
        address       text NOT NULL,
        first_seen_ms bigint NOT NULL,
        last_seen_ms  bigint NOT NULL,
        offline       boolean NOT NULL DEFAULT false,
        change        bigint NOT NULL DEFAULT nextval('prism_change')
    );
    CREATE INDEX hosts_by_owner ON hosts (owner);
    CREATE INDEX hosts_by_change ON hosts (change);
    -- Deletions leave a tombstone, so the newest change position stays readable.
    CREATE TABLE deleted_hosts (
        hostname      text NOT NULL,
        change        bigint NOT NULL,
        deleted_at_ms bigint NOT NULL
    );
    CREATE INDEX deleted_hosts_by_change ON deleted_hosts (change);
    CREATE TABLE tokens (
        id            bigserial PRIMARY KEY,
        owner         text NOT NULL,
        admin         boolean NOT NULL DEFAULT false,
        hash          bytea NOT NULL UNIQUE,
        created_at_ms bigint NOT NULL,
        revoked_at_ms bigint
    );
    CREATE TABLE health_probe (
        id           integer PRIMARY KEY CHECK (id = 1),
        probed_at_ms bigint NOT NULL
    );

    -- A host created, moved, back online or marked offline: its row, on commit.
    CREATE FUNCTION prism_publish_host() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('prism_changes', json_build_object(
            'op', 'host', 'hostname', NEW.hostname, 'owner', NEW.owner,
            'address', NEW.address, 'first_seen_ms', NEW.first_seen_ms,
            'last_seen_ms', NEW.last_seen_ms, 'offline', NEW.offline,
            'change', NEW.change)::text);
        RETURN NEW;
    END $$;
    -- A host deleted: a tombstone with a change position of its own.
    CREATE FUNCTION prism_publish_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        position bigint := nextval('prism_change');
    BEGIN
        INSERT INTO deleted_hosts (hostname, change, deleted_at_ms)
        VALUES (OLD.hostname, position, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
        PERFORM pg_notify('prism_changes', json_build_object(
            'op', 'delete', 'hostname', OLD.hostname, 'change', position)::text);
        RETURN OLD;
    END $$;
    CREATE FUNCTION prism_publish_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('prism_changes', '{"op":"tokens"}');
        RETURN NULL;
    END $$;
    CREATE TRIGGER hosts_inserted AFTER INSERT ON hosts
        FOR EACH ROW EXECUTE FUNCTION prism_publish_host();
    -- Freshness updates (last_seen only) keep their change position and publish nothing.
    CREATE TRIGGER hosts_changed AFTER UPDATE ON hosts
        FOR EACH ROW WHEN (OLD.change IS DISTINCT FROM NEW.change)
        EXECUTE FUNCTION prism_publish_host();
    CREATE TRIGGER hosts_deleted AFTER DELETE ON hosts
        FOR EACH ROW EXECUTE FUNCTION prism_publish_deletion();
    CREATE TRIGGER tokens_changed AFTER INSERT OR UPDATE OR DELETE ON tokens
        FOR EACH STATEMENT EXECUTE FUNCTION prism_publish_tokens();
"#];

/// Applies the migrations this database has not had yet; refuses a newer schema.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS prism_schema (version integer NOT NULL);
         INSERT INTO prism_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM prism_schema);",
    )
    .await?;
    let applied: i32 = tx
        .query_one("SELECT version FROM prism_schema", &[])
        .await?
        .get(0);
    let applied = usize::try_from(applied)
        .map_err(|_| StoreError::Corrupt(format!("schema version {applied}")))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "database schema version {applied} is newer than this server ({}); upgrade prism-server",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await?;
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute("UPDATE prism_schema SET version = $1", &[&version])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A position stored as `bigint`, as the store hands it out.
pub(super) fn position(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A `hosts` row (hostname, owner, address, first_seen_ms, last_seen_ms, offline, change).
pub(super) fn host_from_row(row: &Row) -> Result<HostRecord, StoreError> {
    let hostname: String = row.try_get(0)?;
    let address: String = row.try_get(2)?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("host {hostname} has address {address:?}")))?;
    Ok(HostRecord {
        owner: row.try_get(1)?,
        address,
        first_seen: from_unix_millis(row.try_get(3)?),
        last_seen: from_unix_millis(row.try_get(4)?),
        offline: row.try_get(5)?,
        change: position(row.try_get(6)?),
        hostname,
    })
}

/// The columns [`host_from_row`] reads, in its order.
pub(super) const HOST_COLUMNS: &str =
    "hostname, owner, address, first_seen_ms, last_seen_ms, offline, change";

/// A `tokens` row (id, owner, admin, hash, created_at_ms, revoked_at_ms).
pub(super) fn token_from_row(row: &Row) -> Result<TokenRecord, StoreError> {
    let id: i64 = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(3)?;
    let hash = TokenHash::from_slice(&hash)
        .ok_or_else(|| StoreError::Corrupt(format!("token {id} has a malformed hash")))?;
    Ok(TokenRecord {
        id,
        owner: row.try_get(1)?,
        admin: row.try_get(2)?,
        hash,
        created_at: from_unix_millis(row.try_get(4)?),
        revoked_at: row.try_get::<_, Option<i64>>(5)?.map(from_unix_millis),
    })
}

/// The columns [`token_from_row`] reads, in its order.
pub(super) const TOKEN_COLUMNS: &str = "id, owner, admin, hash, created_at_ms, revoked_at_ms";

/// A notification of the `prism_changes` channel as a feed event; `None` for a payload
/// this server does not understand (a newer server's), which a resync will cover.
pub(super) fn event_from_payload(payload: &str) -> Option<FeedEvent> {
    let json: serde_json::Value = serde_json::from_str(payload).ok()?;
    let text = |key: &str| json.get(key)?.as_str().map(str::to_owned);
    let number = |key: &str| json.get(key)?.as_i64();
    match json.get("op")?.as_str()? {
        "host" => Some(FeedEvent::Host(HostRecord {
            hostname: text("hostname")?,
            owner: text("owner")?,
            address: text("address")?.parse().ok()?,
            first_seen: from_unix_millis(number("first_seen_ms")?),
            last_seen: from_unix_millis(number("last_seen_ms")?),
            offline: json.get("offline")?.as_bool()?,
            change: position(number("change")?),
        })),
        "delete" => Some(FeedEvent::Deleted {
            hostname: text("hostname")?,
            change: position(number("change")?),
        }),
        "tokens" => Some(FeedEvent::Tokens),
        _ => None,
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        // The server's message (and its detail) say more than the client's summary.
        match err.as_db_error() {
            Some(db) => Self::Database(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Database(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_become_feed_events() {
        let host = event_from_payload(
            r#"{"op":"host","hostname":"web","owner":"alice","address":"192.0.2.1",
               "first_seen_ms":1000,"last_seen_ms":2000,"offline":false,"change":7}"#,
        );
        assert!(matches!(host, Some(FeedEvent::Host(record))
            if record.hostname == "web" && record.change == 7 && !record.offline));
        assert_eq!(
            event_from_payload(r#"{"op":"delete","hostname":"web","change":9}"#),
            Some(FeedEvent::Deleted {
                hostname: "web".into(),
                change: 9
            })
        );
        assert_eq!(
            event_from_payload(r#"{"op":"tokens"}"#),
            Some(FeedEvent::Tokens)
        );
        assert_eq!(event_from_payload(r#"{"op":"future"}"#), None);
        assert_eq!(event_from_payload("not json"), None);
    }
}
