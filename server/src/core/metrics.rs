//! Every `prism_*` metric, owned by one struct on its own registry.
//!
//! Code records through the [`Metrics`] handed to it; nothing reaches for a global. Other code
//! may add its own metric to the same registry with [`Metrics::register`].

use std::time::SystemTime;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, core::Collector,
};

use crate::config::Config;
use crate::config::reload::config_hash;

/// `node` label of `prism_build_info` before the node is named.
const UNNAMED_NODE: &str = "unnamed";

/// Buckets for request, message and query durations, in seconds. They straddle the alert
/// thresholds (2.5 s, 5 s, 10 s) so that `histogram_quantile` can tell 4 s from 6 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets for how long registration connections stay open, in seconds.
pub const CONNECTION_BUCKETS: [f64; 10] =
    [0.01, 0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Every `reason` of `prism_registrations_refused_total`: a source address registering new
/// names too fast, a host heartbeating too fast, a missing or invalid token, a hostname owned
/// by another token's owner, a hostname the zone keeps or has no room for, a request with a
/// bad field, a change the store could not make durable.
pub const REFUSAL_REASONS: [&str; 7] = [
    "new_names_rate",
    "heartbeat_too_fast",
    "auth",
    "owned_by_other",
    "name_refused",
    "invalid_request",
    "store",
];

/// Failure to build or encode metrics.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The server's metrics. Field names follow the exported names without the `prism_` prefix.
#[derive(Clone)]
pub struct Metrics {
    /// The registry every metric below is registered on.
    registry: Registry,
    /// `prism_http_requests_total{method,endpoint,status}`.
    pub http_requests: IntCounterVec,
    /// `prism_http_request_duration_seconds{method,endpoint}`.
    pub http_request_duration: HistogramVec,
    /// `prism_tcp_connections_total{status=accepted|rejected|failed}`.
    pub tcp_connections: IntCounterVec,
    /// `prism_tcp_active_connections`.
    pub tcp_active_connections: IntGauge,
    /// `prism_tcp_connection_duration_seconds`.
    pub tcp_connection_duration: Histogram,
    /// `prism_registered_hosts_total` (a gauge; the name is kept for deployed dashboards).
    pub registered_hosts: IntGauge,
    /// `prism_online_hosts_total` (a gauge).
    pub online_hosts: IntGauge,
    /// `prism_offline_hosts_total` (a gauge).
    pub offline_hosts: IntGauge,
    /// `prism_messages_processed_total{message_type,status=success|error}`.
    pub messages_processed: IntCounterVec,
    /// `prism_message_processing_duration_seconds{message_type}`.
    pub message_duration: HistogramVec,
    /// `prism_database_queries_total{operation,status=success|error}`.
    pub database_queries: IntCounterVec,
    /// `prism_database_query_duration_seconds{operation}`.
    pub database_query_duration: HistogramVec,
    /// `prism_database_connection_pool_size`.
    pub database_pool_size: IntGauge,
    /// `prism_database_connection_pool_used`.
    pub database_pool_used: IntGauge,
    /// `prism_dns_queries_total{query_type,status}`.
    pub dns_queries: IntCounterVec,
    /// `prism_dns_rate_limited_total{action=dropped|slipped}`: UDP responses withheld or
    /// truncated by response rate limiting.
    pub dns_rate_limited: IntCounterVec,
    /// `prism_host_registrations_total{status=success|rejected|failed}`.
    pub host_registrations: IntCounterVec,
    /// `prism_registrations_refused_total{reason}`: refused registrations by why (see
    /// [`REFUSAL_REASONS`]).
    pub registrations_refused: IntCounterVec,
    /// `prism_host_updates_total{kind=heartbeat|ip_change|reconnection|offline}`.
    pub host_updates: IntCounterVec,
    /// `prism_heartbeat_timeouts_total`.
    pub heartbeat_timeouts: IntCounter,
    /// `prism_build_info{version}`, always 1.
    pub build_info: IntGaugeVec,
    /// `prism_config_last_reload_timestamp_seconds`.
    pub config_last_reload_timestamp: IntGauge,
    /// `prism_config_last_reload_successful` (1 or 0).
    pub config_last_reload_successful: IntGauge,
    /// `prism_config_hash`: a 52-bit hash of the loaded configuration, so `changes()` sees edits.
    pub config_hash: IntGauge,
    /// `prism_maintenance_mode` (1 while maintenance mode is on).
    pub maintenance_mode: IntGauge,
    /// `prism_cluster_leader`: 1 on the node that runs offline detection and cleanup.
    pub cluster_leader: IntGauge,
    /// `prism_cluster_database_up`: 1 while the node reaches its database.
    pub cluster_database_up: IntGauge,
    /// `prism_cluster_change_feed_applied_position`: the newest store change this node's
    /// view has applied.
    pub cluster_change_feed_applied_position: IntGauge,
    /// `prism_cluster_change_feed_head_position`: the newest change committed in the store,
    /// as last read by this node. The view lags while head − applied stays above 0.
    pub cluster_change_feed_head_position: IntGauge,
}

impl Metrics {
    /// Creates every metric on a fresh registry and sets `prism_build_info`.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let metric = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };

        let tcp_connection_duration = Histogram::with_opts(
            HistogramOpts::new(
                "prism_tcp_connection_duration_seconds",
                "How long registration connections stayed open.",
            )
            .buckets(CONNECTION_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(tcp_connection_duration.clone()))?;
        let heartbeat_timeouts = IntCounter::new(
            "prism_heartbeat_timeouts_total",
            "Hosts that went offline because their heartbeat deadline passed.",
        )?;
        registry.register(Box::new(heartbeat_timeouts.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "prism_build_info",
                "Build information and node name; always 1.",
            ),
            &["version", "node"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), UNNAMED_NODE])
            .set(1);

        let metrics = Self {
            http_requests: counter_vec(
                "prism_http_requests_total",
                "HTTP requests answered, by route template and status code.",
                &["method", "endpoint", "status"],
            )?,
            http_request_duration: histogram_vec(
                "prism_http_request_duration_seconds",
                "HTTP request handling time.",
                &["method", "endpoint"],
                &LATENCY_BUCKETS,
            )?,
            tcp_connections: counter_vec(
                "prism_tcp_connections_total",
                "Registration connections by outcome of accepting them.",
                &["status"],
            )?,
            tcp_active_connections: gauge(
                "prism_tcp_active_connections",
                "Registration connections open now.",
            )?,
            tcp_connection_duration,
            registered_hosts: gauge("prism_registered_hosts_total", "Hosts known to the server.")?,
            online_hosts: gauge("prism_online_hosts_total", "Hosts online now.")?,
            offline_hosts: gauge("prism_offline_hosts_total", "Hosts offline now.")?,
            messages_processed: counter_vec(
                "prism_messages_processed_total",
                "Protocol messages processed, by type and outcome.",
                &["message_type", "status"],
            )?,
            message_duration: histogram_vec(
                "prism_message_processing_duration_seconds",
                "Time from a complete frame to its response being ready.",
                &["message_type"],
                &LATENCY_BUCKETS,
            )?,
            database_queries: counter_vec(
                "prism_database_queries_total",
                "Store operations, by operation and outcome.",
                &["operation", "status"],
            )?,
            database_query_duration: histogram_vec(
                "prism_database_query_duration_seconds",
                "Store operation time.",
                &["operation"],
                &LATENCY_BUCKETS,
            )?,
            database_pool_size: gauge(
                "prism_database_connection_pool_size",
                "Database connections the store may use.",
            )?,
            database_pool_used: gauge(
                "prism_database_connection_pool_used",
                "Database connections busy now.",
            )?,
            dns_queries: counter_vec(
                "prism_dns_queries_total",
                "DNS queries answered, by query type and response code.",
                &["query_type", "status"],
            )?,
            dns_rate_limited: counter_vec(
                "prism_dns_rate_limited_total",
                "UDP responses over a client prefix's rate: dropped, or slipped (sent truncated).",
                &["action"],
            )?,
            host_registrations: counter_vec(
                "prism_host_registrations_total",
                "New host registrations, by outcome.",
                &["status"],
            )?,
            registrations_refused: counter_vec(
                "prism_registrations_refused_total",
                "Registrations refused, by reason.",
                &["reason"],
            )?,
            host_updates: counter_vec(
                "prism_host_updates_total",
                "Changes to known hosts, by kind.",
                &["kind"],
            )?,
            heartbeat_timeouts,
            build_info,
            config_last_reload_timestamp: gauge(
                "prism_config_last_reload_timestamp_seconds",
                "Unix time the configuration was last loaded.",
            )?,
            config_last_reload_successful: gauge(
                "prism_config_last_reload_successful",
                "Whether the last configuration load succeeded.",
            )?,
            config_hash: gauge(
                "prism_config_hash",
                "Hash of the loaded configuration; changes when it changes.",
            )?,
            maintenance_mode: gauge(
                "prism_maintenance_mode",
                "1 while the server is in maintenance mode.",
            )?,
            cluster_leader: gauge(
                "prism_cluster_leader",
                "1 on the node that runs offline detection and cleanup.",
            )?,
            cluster_database_up: gauge(
                "prism_cluster_database_up",
                "1 while this node reaches its database.",
            )?,
            cluster_change_feed_applied_position: gauge(
                "prism_cluster_change_feed_applied_position",
                "Newest database change this node's view has applied.",
            )?,
            cluster_change_feed_head_position: gauge(
                "prism_cluster_change_feed_head_position",
                "Newest change committed in the database, as last read by this node.",
            )?,
            registry,
        };
        metrics.touch_known_series();
        Ok(metrics)
    }

    /// Exports the bounded label sets at zero from the start, so rates, alerts and dashboard
    /// panels see a series before the first event rather than an absent one. HTTP series
    /// appear with their first request: their route × status combinations are not known here.
    fn touch_known_series(&self) {
        for status in ["accepted", "rejected", "failed"] {
            self.tcp_connections.with_label_values(&[status]);
        }
        for action in ["dropped", "slipped"] {
            self.dns_rate_limited.with_label_values(&[action]);
        }
        // Every message type the registration port counts, with the outcomes it can have:
        // malformed frames ("invalid") and unknown types are always answered with an error.
        for (message_type, statuses) in [
            ("registration", &["success", "error"][..]),
            ("invalid", &["error"][..]),
            ("unknown", &["error"][..]),
        ] {
            for status in statuses {
                self.messages_processed
                    .with_label_values(&[message_type, status]);
            }
            self.message_duration.with_label_values(&[message_type]);
        }
        // The record types clients ask for, with the answers the zone gives them: an answer
        // or NODATA, an unknown or offline name, a name outside the zone.
        for query_type in ["A", "AAAA", "SOA", "NS"] {
            for rcode in ["NOERROR", "NXDOMAIN", "REFUSED"] {
                self.dns_queries.with_label_values(&[query_type, rcode]);
            }
        }
        for status in ["success", "rejected", "failed"] {
            self.host_registrations.with_label_values(&[status]);
        }
        for reason in REFUSAL_REASONS {
            self.registrations_refused.with_label_values(&[reason]);
        }
        for kind in ["heartbeat", "ip_change", "reconnection", "offline"] {
            self.host_updates.with_label_values(&[kind]);
        }
    }

    /// Names this node in `prism_build_info{node}`.
    pub fn set_node(&self, node: &str) {
        let version = env!("CARGO_PKG_VERSION");
        let _ = self
            .build_info
            .remove_label_values(&[version, UNNAMED_NODE]);
        self.build_info.with_label_values(&[version, node]).set(1);
    }

    /// Records a successful load of `config` at `at` (start-up or reload): the reload
    /// timestamp, the success flag, the configuration hash and the maintenance-mode gauge.
    pub fn record_config_loaded(&self, config: &Config, at: SystemTime) {
        let seconds = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        self.config_last_reload_timestamp.set(seconds);
        self.config_last_reload_successful.set(1);
        self.config_hash.set(config_hash(config));
        self.maintenance_mode
            .set(i64::from(config.maintenance.enabled));
    }

    /// Adds a caller's own metric to the server's registry, so `/metrics` exports it too.
    ///
    /// ```
    /// use prism_server::Metrics;
    /// use prometheus::{IntCounterVec, Opts};
    ///
    /// let metrics = Metrics::new()?;
    /// let lookups = IntCounterVec::new(
    ///     Opts::new("prism_cache_lookups_total", "Cache lookups by result."),
    ///     &["result"],
    /// )?;
    /// metrics.register(&lookups)?;
    /// lookups.with_label_values(&["hit"]).inc();
    /// assert!(metrics.encode()?.contains("prism_cache_lookups_total{result=\"hit\"} 1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register<C: Collector + Clone + 'static>(
        &self,
        collector: &C,
    ) -> Result<(), MetricsError> {
        self.registry.register(Box::new(collector.clone()))?;
        Ok(())
    }

    /// The registry, for exporters.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_metrics_are_exported_beside_the_builtin_ones() {
        let metrics = Metrics::new().expect("metrics");
        let custom = IntCounter::new("custom_events_total", "Test counter.").expect("counter");
        metrics.register(&custom).expect("register");
        custom.inc();
        let text = metrics.encode().expect("encode");
        assert!(text.contains("custom_events_total 1"), "{text}");
        assert!(
            text.contains("prism_build_info{node=\"unnamed\",version="),
            "{text}"
        );
    }
}
