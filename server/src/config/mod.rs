//! Configuration: every setting of the server with its default, in one place, plus loading
//! ([`loader`]), validation ([`validate`]), the live value ([`live`]) and reloads ([`reload`]).
//!
//! The section and key names follow the earlier implementation's `server.yaml`, so the same
//! structure deserializes from a configuration file.

mod database;
mod dns;
pub mod live;
pub mod loader;
mod problems;
pub mod reload;
pub mod validate;

pub use database::{ClusterSection, DatabaseSection, StoreChoice, absolute_path, redact_password};
pub use dns::{DnsSection, Nameserver};
pub use live::LiveConfig;
pub use loader::{ConfigError, ConfigSources};

use std::net::IpAddr;
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
    /// Rate limits on new names per source address and on heartbeats per host.
    pub rate_limit: RateLimitSection,
    /// Token authentication.
    pub auth: AuthSection,
    /// Log output.
    pub logging: LoggingSection,
    /// Maintenance mode (reloadable with SIGHUP).
    pub maintenance: MaintenanceSection,
    /// Authoritative DNS for the managed zone.
    pub dns: DnsSection,
    /// Limits of the REST API port.
    pub api: ApiSection,
    /// This node's place in a cluster of nodes sharing one PostgreSQL database.
    pub cluster: ClusterSection,
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
    /// Concurrent registration connections from one source address (0: no such limit), so
    /// one address cannot take every slot; generous, since many hosts may share a NAT.
    pub max_connections_per_ip: usize,
    /// Frames refused for authentication in a row after which a connection is closed.
    pub max_auth_failures: u32,
    /// Seconds a write to a registration connection may stay blocked (the peer does not
    /// read) before the connection is closed.
    pub write_timeout_secs: u64,
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
            max_connections_per_ip: 200,
            max_auth_failures: 3,
            write_timeout_secs: 10,
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

    /// The write timeout as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    /// The shutdown grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// `api.*`: limits of the REST API port (`server.api_port`), so no client can hold its
/// connections with requests it never finishes or by opening more than its share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Concurrent API connections; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Concurrent API connections from one source address (0: no such limit).
    pub max_connections_per_ip: usize,
    /// Seconds from waiting for a request to its complete head (request line and headers);
    /// an idle keep-alive connection is closed after this too.
    pub header_timeout_secs: u64,
    /// Seconds a request body may take to arrive after its head.
    pub body_timeout_secs: u64,
    /// Seconds a write to an API connection may stay blocked (the client does not read).
    pub write_timeout_secs: u64,
    /// Threads of the API's own runtime, which runs at a lower CPU priority than
    /// registrations and DNS so that API reads can never delay a heartbeat.
    pub worker_threads: usize,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_ip: 64,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            write_timeout_secs: 10,
            worker_threads: 1,
        }
    }
}

impl ApiSection {
    /// The header timeout as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    /// The body timeout as a duration.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// The write timeout as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
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
    /// Seconds (fractions allowed, e.g. 0.5) between offline-detection sweeps; a host goes
    /// offline at most this long after its deadline.
    pub check_interval: f64,
    /// Days an offline host is kept before it is deleted.
    pub cleanup_after_days: u64,
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        Self {
            interval: 60,
            timeout_multiplier: 2,
            grace_period: 30,
            check_interval: 1.0,
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
        // Validation keeps the value finite and positive; the floor guards hand-built configs.
        Duration::try_from_secs_f64(self.check_interval)
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(1))
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

/// `rate_limit.*`: what a source address or a host may not do too fast. Known hosts
/// heartbeating at their interval are never limited, however many share one address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSection {
    /// Registrations that create a host not yet known, per minute per source IP (across all
    /// its connections); 0 disables this limit.
    pub registrations_per_minute: u32,
    /// New hosts a source IP may register at once before the per-minute pace applies.
    pub burst: u32,
    /// Shortest interval, in seconds, between registrations of one known host (heartbeats,
    /// moves) after `heartbeat_burst`; 0 disables this limit. Unset: a quarter of
    /// `heartbeat.interval`.
    pub min_heartbeat_interval_secs: Option<f64>,
    /// Registrations of one known host that may come back to back (client retries) before
    /// the minimum interval applies.
    pub heartbeat_burst: u32,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        Self {
            registrations_per_minute: 1000,
            burst: 1000,
            min_heartbeat_interval_secs: None,
            heartbeat_burst: 3,
        }
    }
}

impl RateLimitSection {
    /// Share of `heartbeat.interval` a host's heartbeats may come apart when
    /// `min_heartbeat_interval_secs` is unset.
    pub const DEFAULT_MIN_HEARTBEAT_SHARE: u32 = 4;

    /// The minimum interval between registrations of one known host (zero: no limit).
    pub fn min_heartbeat_interval(&self, heartbeat: &HeartbeatSection) -> Duration {
        match self.min_heartbeat_interval_secs {
            Some(secs) => Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO),
            None => Duration::from_secs(heartbeat.interval) / Self::DEFAULT_MIN_HEARTBEAT_SHARE,
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

/// `maintenance.*`: announces planned maintenance to operators and alerting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSection {
    /// While true, `prism_maintenance_mode` is 1 (the info alert fires) and `/api/health`
    /// reports it; registrations are still served.
    pub enabled: bool,
    /// Free text shown by `/api/health` while maintenance is on, e.g. a ticket reference.
    pub message: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (coloured only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `logging.*`: log output (on stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// A `tracing` filter such as `info` or `prism_server=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
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
