//! Run-time reconfiguration: SIGHUP loads the configuration again, applies the keys that can
//! change while running, and records the outcome in the config-reload metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::loader::Problem;
use super::{Config, ConfigError, ConfigSources, LiveConfig};
use crate::core::{Clock, Metrics};

/// Keys a SIGHUP applies without a restart — the one list: a reload copies exactly these from
/// the new configuration into the live one. A change to any other key is logged as needing a
/// restart and otherwise ignored until then.
pub const RELOADABLE_KEYS: &[&str] = &[
    "logging.level",
    "rate_limit.registrations_per_minute",
    "rate_limit.burst",
    "rate_limit.min_heartbeat_interval_secs",
    "rate_limit.heartbeat_burst",
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
    /// The configuration in force, which a successful reload replaces.
    live: LiveConfig,
    /// Where the reload outcome is recorded.
    metrics: Metrics,
    /// Stamps the reload timestamp.
    clock: Arc<dyn Clock>,
    /// Swaps the tracing filter.
    set_log_filter: LogFilterSetter,
    /// Serialises reloads, so two SIGHUPs never interleave their read-modify-write of `live`.
    reloading: Mutex<()>,
}

impl Reloader {
    /// A reloader for the server whose live configuration is `live`, started from `sources`.
    pub fn new(
        live: LiveConfig,
        sources: ConfigSources,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        set_log_filter: LogFilterSetter,
    ) -> Self {
        Self {
            sources,
            live,
            metrics,
            clock,
            set_log_filter,
            reloading: Mutex::new(()),
        }
    }

    /// Reloads once. On error nothing changes and `prism_config_last_reload_successful` drops
    /// to 0; on success the reloadable keys apply and the reload metrics are updated.
    pub fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let new = match self.sources.load() {
            Ok(new) => new,
            Err(err) => {
                self.metrics.config_last_reload_successful.set(0);
                return Err(err);
            }
        };
        let current = self.live.snapshot();
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
            self.metrics.config_last_reload_successful.set(0);
            return Err(ConfigError::Invalid(vec![Problem {
                origin: "reload".into(),
                key: "logging.level".into(),
                reason,
            }]));
        }
        let effective = with_reloadable_keys(&current, &new);
        self.metrics.record_config_loaded(&new, self.clock.wall());
        self.live.replace(effective);
        Ok(report)
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

/// `current` with every key of [`RELOADABLE_KEYS`] taken from `new`; everything else keeps
/// its start-up value.
fn with_reloadable_keys(current: &Config, new: &Config) -> Config {
    let (Ok(Value::Object(mut tree)), Ok(Value::Object(new_tree))) =
        (serde_json::to_value(current), serde_json::to_value(new))
    else {
        return current.clone();
    };
    for dotted in RELOADABLE_KEYS {
        let Some((section, key)) = dotted.split_once('.') else {
            continue;
        };
        let value = new_tree
            .get(section)
            .and_then(|keys| keys.get(key))
            .cloned();
        if let (Some(Value::Object(keys)), Some(value)) = (tree.get_mut(section), value) {
            keys.insert(key.to_owned(), value);
        }
    }
    serde_json::from_value(Value::Object(tree)).unwrap_or_else(|_| current.clone())
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
    fn only_reloadable_keys_take_the_new_value() {
        let mut new = Config::default();
        new.server.tcp_port = 1;
        new.maintenance.message = "ticket 42".into();
        new.rate_limit.burst = 3;
        new.rate_limit.min_heartbeat_interval_secs = Some(2.5);
        new.rate_limit.heartbeat_burst = 5;
        let effective = with_reloadable_keys(&Config::default(), &new);
        assert_eq!(effective.server.tcp_port, Config::default().server.tcp_port);
        assert_eq!(effective.maintenance.message, "ticket 42");
        assert_eq!(effective.rate_limit.burst, 3);
        assert_eq!(effective.rate_limit.min_heartbeat_interval_secs, Some(2.5));
        assert_eq!(effective.rate_limit.heartbeat_burst, 5);
    }

    #[test]
    fn every_reloadable_key_exists() {
        let keys: Vec<String> = flatten(&Config::default()).into_keys().collect();
        for key in RELOADABLE_KEYS {
            assert!(
                keys.iter().any(|k| k == key),
                "{key} is not a configuration key"
            );
        }
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
