//! Invariants checked every simulated second against the live server.

use std::fmt;
use std::time::Duration;

use prism_server::Node;
use prism_server::core::registry::HostStatus;

use crate::ledger::Ledger;

/// A broken invariant: which host, when, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// The host concerned, or "server" for server-wide checks.
    pub host: String,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {}: {}", self.host, self.message)
    }
}

/// Bounds the checks allow for: offline detection runs once a second, messages take up to
/// the maximum latency and the driver observes at tick granularity.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// `interval × multiplier + grace`.
    pub offline_after: Duration,
    /// Slack on either side of the deadline.
    pub slack: Duration,
}

/// Checks, for every host the clients know:
/// - online only if it tried to heartbeat within the timeout (+ slack);
/// - offline only if its last acknowledged heartbeat is older than the timeout (− slack);
/// - an acknowledged host is never unknown to the server (durability across crashes);
/// - the host gauges equal the registry's counts.
pub fn check(
    now: Duration,
    node: &Node,
    ledger: &Ledger,
    tolerance: Tolerance,
) -> Result<(), Breach> {
    ledger.try_for_each(|host, facts| {
        let breach = |message: String| Breach {
            host: host.to_owned(),
            message,
        };
        let Some(view) = node.registry().get(host) else {
            if facts.acknowledged {
                return Err(breach(
                    "acknowledged registration is missing from the server's registry".into(),
                ));
            }
            return Ok(());
        };
        match view.status {
            HostStatus::Online => {
                if let Some(attempt) = facts.last_attempt {
                    let silent = now.saturating_sub(attempt);
                    if silent > tolerance.offline_after + tolerance.slack {
                        return Err(breach(format!(
                            "still online {:.1} s after its last heartbeat attempt (offline after {} s)",
                            silent.as_secs_f64(),
                            tolerance.offline_after.as_secs()
                        )));
                    }
                }
            }
            HostStatus::Offline => {
                if let Some(ack) = facts.last_ack {
                    let silent = now.saturating_sub(ack);
                    if silent + tolerance.slack < tolerance.offline_after {
                        return Err(breach(format!(
                            "offline only {:.1} s after its last acknowledged heartbeat (offline after {} s)",
                            silent.as_secs_f64(),
                            tolerance.offline_after.as_secs()
                        )));
                    }
                }
            }
        }
        Ok(())
    })?;
    let counts = node.registry().counts();
    let metrics = node.metrics();
    let gauges = (
        metrics.registered_hosts.get(),
        metrics.online_hosts.get(),
        metrics.offline_hosts.get(),
    );
    let expected = (
        counts.registered as i64,
        counts.online as i64,
        counts.offline as i64,
    );
    if gauges != expected {
        return Err(Breach {
            host: "server".into(),
            message: format!("host gauges {gauges:?} disagree with the registry {expected:?}"),
        });
    }
    Ok(())
}
