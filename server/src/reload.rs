//! Run-time reconfiguration: SIGHUP loads the configuration again, applies the keys that can
//! change while running, and records the outcome in the config-reload metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config_loader::{ConfigError, ConfigSources};
use crate::core::Core;
use crate::metrics::Metrics;

/// Keys a SIGHUP applies without a restart. A change to any other key is logged as needing a
/// restart and otherwise ignored until then.
pub const RELOADABLE_KEYS: &[&str] = &[
    "logging.level",
    "rate_limit.registrations_per_minute",
    "rate_limit.burst",
    "maintenance.enabled",
    "maintenance.message",
];

/// Replaces the active log filter; returns why a filter was refused.
pub type LogFilterSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A 52-bit fingerprint of `config` (exact in a float gauge), stable across runs and builds.
pub fn config_hash(config: &Config) -> i64 {
    let canonical = serde_json::to_vec(config).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    i64::try_from(u64::from_be_bytes(head) >> 12).unwrap_or(0)
}

/// Records a successful load of `config` at `at`: reload timestamp, success flag, hash and
/// the maintenance-mode gauge.
pub fn record_loaded(metrics: &Metrics, config: &Config, at: SystemTime) {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    metrics.config_last_reload_timestamp.set(seconds);
    metrics.config_last_reload_successful.set(1);
    metrics.config_hash.set(config_hash(config));
    metrics
        .maintenance_mode
        .set(i64::from(config.maintenance.enabled));
}

/// What a successful reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Reloadable keys whose value changed and now applies.
    pub applied: Vec<String>,
    /// Keys whose value changed but only take effect after a restart.
    pub needs_restart: Vec<String>,
}

/// Loads the configuration again from the same sources and applies what it can.
pub struct Reloader {
    /// The file, environment and flags the process started with.
    sources: ConfigSources,
    /// The running server.
    core: Arc<Core>,
    /// The configuration now in force (start-up values for the non-reloadable keys).
    current: Mutex<Config>,
    /// Swaps the tracing filter.
    set_log_filter: LogFilterSetter,
}

impl Reloader {
    /// A reloader for `core`, which was started from `sources`.
    pub fn new(core: Arc<Core>, sources: ConfigSources, set_log_filter: LogFilterSetter) -> Self {
        Self {
            current: Mutex::new(core.config.clone()),
            sources,
            core,
            set_log_filter,
        }
    }

    /// Reloads once. On error nothing changes and `prism_config_last_reload_successful` drops
    /// to 0; on success the reloadable keys apply and the reload metrics are updated.
    pub fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let metrics = &self.core.metrics;
        let new = match self.sources.load() {
            Ok(new) => new,
            Err(err) => {
                metrics.config_last_reload_successful.set(0);
                return Err(err);
            }
        };
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport::default();
        for key in changed_keys(&current, &new) {
            if RELOADABLE_KEYS.contains(&key.as_str()) {
                report.applied.push(key);
            } else {
                report.needs_restart.push(key);
            }
        }
        if new.logging.level != current.logging.level
            && let Err(reason) = (self.set_log_filter)(&new.logging.level)
        {
            metrics.config_last_reload_successful.set(0);
            return Err(ConfigError::Invalid {
                origin: "reload".into(),
                key: "logging.level".into(),
                reason,
            });
        }
        self.core.apply_reloadable(&new);
        // Only the reloadable keys take the new values; the rest stay as started.
        current.logging = new.logging.clone();
        current.rate_limit = new.rate_limit.clone();
        current.maintenance = new.maintenance.clone();
        record_loaded(metrics, &new, self.core.clock.wall());
        Ok(report)
    }

    /// The configuration now in force.
    pub fn current(&self) -> Config {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Installs the SIGHUP handler now (so a signal sent after this returns is never the
    /// default "terminate"), and returns the task that reloads on every SIGHUP until `stop`.
    pub fn watch_sighup(
        self,
        stop: CancellationToken,
    ) -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    received = hangup.recv() => if received.is_none() { return },
                }
                match self.reload() {
                    Ok(report) => tracing::info!(
                        applied = ?report.applied,
                        needs_restart = ?report.needs_restart,
                        "configuration reloaded"
                    ),
                    Err(err) => tracing::error!(
                        error = %err,
                        "configuration reload failed; keeping the previous configuration"
                    ),
                }
            }
        })
    }
}

/// Dotted keys whose values differ between `old` and `new`.
fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (flatten(old), flatten(new));
    new.iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect()
}

fn flatten(config: &Config) -> BTreeMap<String, Value> {
    let mut keys = BTreeMap::new();
    if let Ok(Value::Object(sections)) = serde_json::to_value(config) {
        for (section, values) in sections {
            if let Value::Object(values) = values {
                for (key, value) in values {
                    keys.insert(format!("{section}.{key}"), value);
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_the_configuration_and_fits_52_bits() {
        let default = Config::default();
        let mut changed = Config::default();
        changed.maintenance.enabled = true;
        assert_eq!(config_hash(&default), config_hash(&Config::default()));
        assert_ne!(config_hash(&default), config_hash(&changed));
        assert!(config_hash(&changed) < 1 << 52);
    }

    #[test]
    fn changed_keys_are_reported_by_dotted_name() {
        let mut new = Config::default();
        new.server.tcp_port = 1;
        new.logging.level = "debug".into();
        assert_eq!(
            changed_keys(&Config::default(), &new),
            vec!["logging.level".to_owned(), "server.tcp_port".to_owned()]
        );
    }
}
