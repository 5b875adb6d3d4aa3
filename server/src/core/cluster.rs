//! What keeps a node current while it serves: offline detection and cleanup (on the one
//! node that leads), the write-behind flush of heartbeat freshness, the token refresh, the
//! rate-limit pruning, and — with a store other nodes share — the change feed, periodic
//! resyncs and the change-position gauges.
//!
//! The same loop runs on a single node over SQLite (it always leads; there is no feed) and
//! on every node of a cluster; under the simulator it runs over a simulated database.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::node::Node;
use crate::store::{ChangeFeed, FeedEvent};

/// How often idle per-IP rate-limit entries are forgotten.
const RATE_LIMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How often a node reads the store's newest change position (for the view-lag gauges).
const HEAD_POLL_INTERVAL: Duration = Duration::from_secs(5);

impl Node {
    /// Runs the node's periodic work until `stop` is cancelled; then flushes the last
    /// write-behind batch.
    pub async fn run_maintenance(self: Arc<Self>, stop: CancellationToken) {
        let settings = self.config.snapshot();
        let mut sweep = tokio::time::interval(settings.heartbeat.check_interval());
        let mut flush = tokio::time::interval(Duration::from_millis(
            settings.database.write_behind_ms.clamp(1, 1000),
        ));
        let mut refresh =
            tokio::time::interval(Duration::from_millis(settings.auth.refresh_ms.max(1)));
        let mut prune = tokio::time::interval(RATE_LIMIT_PRUNE_INTERVAL);
        let mut resync = tokio::time::interval(settings.cluster.resync_interval());
        let mut head = tokio::time::interval(HEAD_POLL_INTERVAL);
        for timer in [
            &mut sweep,
            &mut flush,
            &mut refresh,
            &mut prune,
            &mut resync,
            &mut head,
        ] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        // The start-up load was the first full read; the feed's own Resync and the timer
        // take it from there.
        resync.reset();
        let mut feed: Option<ChangeFeed> = self.store.subscribe();
        let shared = feed.is_some();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = sweep.tick() => self.sweep_if_leading().await,
                _ = flush.tick() => self.flush_freshness().await,
                _ = refresh.tick() => self.refresh_tokens().await,
                _ = prune.tick() => self.frames.prune_rate_limits(),
                _ = resync.tick(), if shared => self.resync().await,
                _ = head.tick(), if shared => self.poll_head().await,
                event = next_event(&mut feed) => match event {
                    Some(event) => self.apply(event).await,
                    None => {
                        tracing::error!("the store's change feed ended; relying on resyncs");
                        feed = None;
                    }
                },
            }
        }
        self.flush_freshness().await;
    }

    /// Asks the store whether this node leads; if it does, sweeps.
    async fn sweep_if_leading(&self) {
        let metrics = &self.metrics;
        match self.store.lead().wait().await {
            Ok(leading) => {
                metrics.cluster_database_up.set(1);
                metrics.cluster_leader.set(i64::from(leading));
                if leading {
                    self.sweep().await;
                }
            }
            Err(err) => {
                metrics.cluster_database_up.set(0);
                metrics.cluster_leader.set(0);
                tracing::warn!(error = %err, "cannot reach the database; not sweeping");
            }
        }
    }

    /// Offline detection and cleanup: the store decides each due host.
    async fn sweep(&self) {
        let due = self.registry.take_due();
        if due.is_empty() {
            return;
        }
        let outcomes = match self.store.expire(due.clone()).wait().await {
            Ok(outcomes) => outcomes,
            Err(err) => {
                tracing::error!(error = %err, hosts = due.len(), "cannot expire due hosts; retrying");
                self.registry.requeue(&due);
                return;
            }
        };
        let report = self.registry.apply_expired(&due, outcomes);
        for hostname in &report.went_offline {
            tracing::info!(%hostname, "host went offline");
        }
        for hostname in &report.deleted {
            tracing::info!(%hostname, "host deleted after cleanup_after_days offline");
        }
        for record in report.seen_meanwhile {
            let hostname = record.hostname.clone();
            if let Err(err) = self
                .store
                .write_host(crate::store::HostWrite::Upsert(record))
                .wait()
                .await
            {
                tracing::warn!(%hostname, error = %err, "cannot write a heartbeat taken while the host expired");
            }
        }
        self.metrics
            .cluster_change_feed_applied_position
            .set(gauge(self.registry.applied_position()));
    }

    /// Writes the pending heartbeat freshness to the store now.
    pub async fn flush_freshness(&self) {
        if let Err(err) = self.registry.flush_freshness().await {
            tracing::error!(error = %err, "write-behind flush of heartbeat freshness failed");
        }
    }

    async fn refresh_tokens(&self) {
        match self.store.list_tokens().wait().await {
            Ok(tokens) => self.auth.replace_tokens(&tokens),
            Err(err) => {
                tracing::warn!(error = %err, "token refresh failed; keeping the cached tokens")
            }
        }
    }

    /// Applies one event of the change feed.
    async fn apply(&self, event: FeedEvent) {
        match event {
            FeedEvent::Host(record) => {
                self.registry.apply_stored(record);
            }
            FeedEvent::Deleted { hostname, change } => {
                self.registry.apply_deleted(&hostname, change);
            }
            FeedEvent::Tokens => self.refresh_tokens().await,
            FeedEvent::Resync => {
                self.resync().await;
                self.refresh_tokens().await;
            }
        }
        self.metrics
            .cluster_change_feed_applied_position
            .set(gauge(self.registry.applied_position()));
    }

    /// Reloads every host from the store and repairs what the feed missed.
    async fn resync(&self) {
        match self.store.load_hosts().wait().await {
            Ok(records) => {
                let changed = self.registry.reconcile(records);
                if changed > 0 {
                    tracing::info!(changed, "resync repaired hosts the change feed missed");
                }
                self.metrics
                    .cluster_change_feed_applied_position
                    .set(gauge(self.registry.applied_position()));
            }
            Err(err) => tracing::warn!(error = %err, "resync failed; keeping the current view"),
        }
    }

    /// Reads the store's newest change position for the view-lag gauges.
    async fn poll_head(&self) {
        if let Ok(head) = self.store.head().wait().await {
            self.metrics
                .cluster_change_feed_head_position
                .set(gauge(head));
            self.metrics
                .cluster_change_feed_applied_position
                .set(gauge(self.registry.applied_position()));
        }
    }
}

/// The next feed event, or never when there is no feed.
async fn next_event(feed: &mut Option<ChangeFeed>) -> Option<FeedEvent> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

fn gauge(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}
