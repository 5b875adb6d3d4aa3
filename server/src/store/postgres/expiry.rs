//! Offline detection and cleanup in one transaction: each due host is marked offline (or
//! deleted) only if its stored `last_seen` did not move past the sweeper's cutoff, so a
//! heartbeat another node took since keeps the host; one outcome per due host, in order.

use std::collections::HashMap;
use std::time::SystemTime;

use super::schema::position;
use super::{TOMBSTONE_RETENTION, millis};
use crate::core::clock::from_unix_millis;
use crate::store::{Due, DueAction, Expired, StoreError};

/// Expires `due` with `client`, in one transaction.
pub(super) async fn expire(
    mut client: deadpool_postgres::Object,
    due: Vec<Due>,
) -> Result<Vec<Expired>, StoreError> {
    let (mut offline, mut delete) = (Vec::new(), Vec::new());
    for host in &due {
        let entry = (host.hostname.clone(), millis(host.seen_before));
        match host.action {
            DueAction::GoOffline => offline.push(entry),
            DueAction::Delete => delete.push(entry),
        }
    }
    let tx = client.transaction().await?;
    let mut done = HashMap::new();
    if !offline.is_empty() {
        let (names, cutoffs): (Vec<String>, Vec<i64>) = offline.into_iter().unzip();
        for row in tx
            .query(
                "UPDATE hosts SET offline = true, change = nextval('prism_change')
                 FROM unnest($1::text[], $2::bigint[]) AS due(hostname, cutoff)
                 WHERE hosts.hostname = due.hostname AND NOT hosts.offline
                   AND hosts.last_seen_ms <= due.cutoff
                 RETURNING hosts.hostname, hosts.change",
                &[&names, &cutoffs],
            )
            .await?
        {
            done.insert(row.try_get::<_, String>(0)?, position(row.try_get(1)?));
        }
    }
    if !delete.is_empty() {
        let (names, cutoffs): (Vec<String>, Vec<i64>) = delete.into_iter().unzip();
        let deleted: Vec<String> = tx
            .query(
                "DELETE FROM hosts USING unnest($1::text[], $2::bigint[]) AS due(hostname, cutoff)
                 WHERE hosts.hostname = due.hostname AND hosts.offline
                   AND hosts.last_seen_ms <= due.cutoff
                 RETURNING hosts.hostname",
                &[&names, &cutoffs],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        for row in tx
            .query(
                "SELECT hostname, max(change) FROM deleted_hosts
                 WHERE hostname = ANY($1) GROUP BY hostname",
                &[&deleted],
            )
            .await?
        {
            done.insert(row.try_get::<_, String>(0)?, position(row.try_get(1)?));
        }
        let horizon = millis(SystemTime::now() - TOMBSTONE_RETENTION);
        tx.execute(
            "DELETE FROM deleted_hosts WHERE deleted_at_ms < $1",
            &[&horizon],
        )
        .await?;
    }
    let rest: Vec<String> = due
        .iter()
        .filter(|host| !done.contains_key(&host.hostname))
        .map(|host| host.hostname.clone())
        .collect();
    let mut stored = HashMap::new();
    if !rest.is_empty() {
        for row in tx
            .query(
                "SELECT hostname, last_seen_ms, offline, change FROM hosts WHERE hostname = ANY($1)",
                &[&rest],
            )
            .await?
        {
            stored.insert(
                row.try_get::<_, String>(0)?,
                (
                    row.try_get::<_, i64>(1)?,
                    row.try_get::<_, bool>(2)?,
                    position(row.try_get(3)?),
                ),
            );
        }
    }
    tx.commit().await?;
    Ok(due
        .into_iter()
        .map(|host| {
            if let Some(change) = done.get(&host.hostname) {
                return Expired::Done {
                    change: *change,
                    hostname: host.hostname,
                };
            }
            match stored.get(&host.hostname) {
                // Another sweeper marked it offline already: the verdict stands.
                Some((_, true, change)) if host.action == DueAction::GoOffline => Expired::Done {
                    change: *change,
                    hostname: host.hostname,
                },
                Some((last_seen, _, _)) => Expired::SeenSince {
                    last_seen: from_unix_millis(*last_seen),
                    hostname: host.hostname,
                },
                None => Expired::Gone {
                    hostname: host.hostname,
                },
            }
        })
        .collect())
}
