//! Every setting of the server with its default, in one place.
//!
//! The section and key names follow the earlier implementation's `server.yaml`, so the same
//! structure deserializes from a configuration file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole server configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening addresses and connection limits.
    pub server: ServerSection,
    /// Where and how hosts and tokens are stored.
    pub database: DatabaseSection,
    /// Host lifecycle timing.
    pub heartbeat: HeartbeatSection,
    /// Registration protocol limits.
    pub protocol: ProtocolSection,
    /// Per-source-IP registration rate limit.
    pub rate_limit: RateLimitSection,
    /// Token authentication.
    pub auth: AuthSection,
    /// Log output.
    pub logging: LoggingSection,
}

/// `server.*`: listening addresses and connection limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Address every listener binds to.
    pub host: IpAddr,
    /// Registration protocol port.
    pub tcp_port: u16,
    /// REST API port.
    pub api_port: u16,
    /// Concurrent registration connections; one more is answered "Server at capacity".
    pub max_connections: usize,
    /// Seconds a registration connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds graceful shutdown waits for open connections before it closes them.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: IpAddr::from([0, 0, 0, 0]),
            tcp_port: 8080,
            api_port: 8081,
            max_connections: 1000,
            idle_timeout_secs: 30,
            shutdown_grace_secs: 5,
        }
    }
}

impl ServerSection {
    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The shutdown grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// `database.*`: the embedded SQLite store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// SQLite database file; its directory is created on first start.
    pub path: PathBuf,
    /// Connections to the database. SQLite has one writer, so the embedded store uses one;
    /// the key is kept for the PostgreSQL backend.
    pub connection_pool_size: usize,
    /// Milliseconds between write-behind flushes of heartbeat freshness (at most 1000).
    pub write_behind_ms: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data/prism.db"),
            connection_pool_size: 1,
            write_behind_ms: 1000,
        }
    }
}

/// `heartbeat.*`: when hosts go offline and when they are deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatSection {
    /// Seconds between heartbeats the clients are configured with.
    pub interval: u64,
    /// Missed intervals before a host is considered offline.
    pub timeout_multiplier: u64,
    /// Extra seconds of tolerance on top of `interval × timeout_multiplier`.
    pub grace_period: u64,
    /// Milliseconds between offline-detection sweeps; a host goes offline at most this long
    /// after its deadline.
    pub check_interval_ms: u64,
    /// Days an offline host is kept before it is deleted.
    pub cleanup_after_days: u64,
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        Self {
            interval: 60,
            timeout_multiplier: 2,
            grace_period: 30,
            check_interval_ms: 1000,
            cleanup_after_days: 30,
        }
    }
}

impl HeartbeatSection {
    /// How long after its last heartbeat a host goes offline.
    pub fn offline_after(&self) -> Duration {
        Duration::from_secs(
            self.interval
                .saturating_mul(self.timeout_multiplier)
                .saturating_add(self.grace_period),
        )
    }

    /// How long after its last heartbeat an offline host is deleted.
    pub fn delete_after(&self) -> Duration {
        Duration::from_secs(self.cleanup_after_days.saturating_mul(86_400))
    }

    /// Period of the offline-detection sweep.
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms.max(1))
    }
}

/// `protocol.*`: registration protocol limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolSection {
    /// Largest accepted frame payload in bytes, checked on the declared length.
    pub max_frame_bytes: usize,
}

impl Default for ProtocolSection {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
        }
    }
}

/// `rate_limit.*`: registrations allowed per source IP, across all its connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSection {
    /// Registrations per minute per source IP; 0 disables the limit.
    pub registrations_per_minute: u32,
    /// Registrations a source IP may send at once before the per-minute pace applies.
    pub burst: u32,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        Self {
            registrations_per_minute: 1000,
            burst: 1000,
        }
    }
}

/// How registrations are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every registration needs a valid token (the default).
    #[default]
    Token,
    /// No token needed; every host belongs to the owner `open`. For development and simulation.
    Open,
}

/// `auth.*`: token authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `token` (default) or `open`.
    pub mode: AuthMode,
    /// Milliseconds between refreshes of the token cache from the store; a token created or
    /// revoked with the CLI takes effect within this time.
    pub refresh_ms: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            mode: AuthMode::Token,
            refresh_ms: 1000,
        }
    }
}

/// `logging.*`: log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// A `tracing` filter such as `info` or `prism_server=debug`.
    pub level: String,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_offline_timeout_is_150_seconds() {
        assert_eq!(
            HeartbeatSection::default().offline_after(),
            Duration::from_secs(150)
        );
    }
}
