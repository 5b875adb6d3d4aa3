//! Offline detection and cleanup, as the sweeping node runs it: take the hosts whose
//! deadline passed, let the store expire them (it knows heartbeats other nodes took), and
//! apply its verdict. The cost follows the hosts that expire, not the hosts that exist.

use std::sync::Arc;

use super::{HostStatus, Registry};
use crate::store::{Due, DueAction, Expired, HostRecord};

/// What applying one sweep's verdict did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Hosts that went offline.
    pub went_offline: Vec<Arc<str>>,
    /// Hosts deleted after `heartbeat.cleanup_after_days` offline.
    pub deleted: Vec<Arc<str>>,
    /// Hosts the store expired although this node took a heartbeat from them meanwhile:
    /// their online state must be written again.
    pub seen_meanwhile: Vec<HostRecord>,
}

impl Registry {
    /// Takes every host whose deadline has passed: online hosts to go offline, offline
    /// hosts past cleanup to be deleted. Their state is unchanged until
    /// [`Registry::apply_expired`]; if the store cannot be asked, [`Registry::requeue`].
    pub fn take_due(&self) -> Vec<Due> {
        let now = self.clock.now();
        let mut state = self.lock();
        let mut due = Vec::new();
        while let Some((_, name)) = state.deadlines.pop_due(now) {
            let Some(host) = state.hosts.get(&name) else {
                continue;
            };
            due.push(Due {
                hostname: name.to_string(),
                action: match host.status {
                    HostStatus::Online => DueAction::GoOffline,
                    HostStatus::Offline => DueAction::Delete,
                },
                seen_before: host.last_seen,
            });
        }
        due
    }

    /// Puts hosts taken by [`Registry::take_due`] back, due now, for the next sweep.
    pub fn requeue(&self, due: &[Due]) {
        let now = self.clock.now();
        let mut state = self.lock();
        for host in due {
            let name: Arc<str> = host.hostname.as_str().into();
            if let Some(known) = state.hosts.get_mut(&name) {
                known.deadline = now;
                state.deadlines.insert(now, name);
            }
        }
    }

    /// Applies the store's verdict on the hosts of `due` (`outcomes` in the same order).
    pub fn apply_expired(&self, due: &[Due], outcomes: Vec<Expired>) -> SweepReport {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let mut report = SweepReport::default();
        let mut state = self.lock();
        for (asked, outcome) in due.iter().zip(outcomes) {
            let name: Arc<str> = asked.hostname.as_str().into();
            let Some(host) = state.hosts.get(&name).cloned() else {
                continue;
            };
            let seen_locally = host.last_seen > asked.seen_before;
            match outcome {
                Expired::Done { change, .. } if seen_locally => {
                    // A heartbeat reached this node between the two steps: it stays online,
                    // and the store must hear so.
                    report.seen_meanwhile.push(HostRecord {
                        hostname: asked.hostname.clone(),
                        owner: host.owner.to_string(),
                        address: host.address,
                        first_seen: host.first_seen,
                        last_seen: host.last_seen,
                        offline: false,
                        change,
                    });
                }
                Expired::Done { change, .. } => {
                    state.applied = state.applied.max(change);
                    match asked.action {
                        DueAction::GoOffline => {
                            let silent = wall.duration_since(host.last_seen).unwrap_or_default();
                            let deletion = now + self.delete_after.saturating_sub(silent);
                            state.set_offline(&name, deletion);
                            if let Some(offline) = state.hosts.get_mut(&name) {
                                offline.change = offline.change.max(change);
                            }
                            report.went_offline.push(name);
                        }
                        DueAction::Delete => {
                            state.remove(&name);
                            state.stale_freshness.remove(&name);
                            report.deleted.push(name);
                        }
                    }
                }
                Expired::SeenSince { last_seen, .. } => {
                    // Another node took a heartbeat: wait from that one.
                    let last_seen = last_seen.max(host.last_seen);
                    let silent = wall.duration_since(last_seen).unwrap_or_default();
                    let until = match host.status {
                        HostStatus::Online => self.offline_after,
                        HostStatus::Offline => self.delete_after,
                    };
                    let mut refreshed = host;
                    refreshed.last_seen = last_seen;
                    refreshed.deadline = now + until.saturating_sub(silent);
                    state.put(Arc::clone(&name), refreshed);
                }
                Expired::Gone { .. } if host.in_flight.is_none() => {
                    state.remove(&name);
                    state.stale_freshness.remove(&name);
                    report.deleted.push(name);
                }
                Expired::Gone { .. } => {}
            }
        }
        if !report.went_offline.is_empty() || !report.deleted.is_empty() {
            state.generation += 1;
            self.publish_counts(&state);
        }
        drop(state);
        let offline = u64::try_from(report.went_offline.len()).unwrap_or(u64::MAX);
        self.metrics.heartbeat_timeouts.inc_by(offline);
        self.metrics
            .host_updates
            .with_label_values(&["offline"])
            .inc_by(offline);
        report
    }
}
