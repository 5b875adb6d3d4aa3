//! The checks serde cannot express: ranges, ports that collide, names that must parse. The
//! server and `check-config` both reach them through [`super::ConfigSources::load`], so a
//! configuration `check-config` accepts is one `serve` accepts.

use super::Config;
use crate::core::dns::Zone;

/// Log levels a bare `logging.level` directive may name.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Every range or consistency problem of `config`, as (dotted key, reason).
pub fn validate(config: &Config) -> Vec<(String, String)> {
    let mut problems = Problems::default();
    let server = &config.server;
    problems.at_least("server.max_connections", server.max_connections, 1);
    problems.at_least("server.idle_timeout_secs", server.idle_timeout_secs, 1);
    problems.at_least("server.write_timeout_secs", server.write_timeout_secs, 1);
    problems.at_least("server.max_auth_failures", server.max_auth_failures, 1);
    if server.api_port != 0 && server.api_port == server.tcp_port {
        problems.push(
            "server.api_port",
            format!(
                "{} is also server.tcp_port; accepted: a different port, or 0 for any free port",
                server.api_port
            ),
        );
    }
    if config.dns.enabled && config.dns.port != 0 {
        for (key, port) in [
            ("server.tcp_port", server.tcp_port),
            ("server.api_port", server.api_port),
        ] {
            if port == config.dns.port {
                problems.push(
                    "dns.port",
                    format!(
                        "{port} is also {key} (DNS listens on TCP too); accepted: a different \
                         port, or 0 for any free port"
                    ),
                );
            }
        }
    }
    let api = &config.api;
    problems.at_least("api.max_connections", api.max_connections, 1);
    problems.at_least("api.header_timeout_secs", api.header_timeout_secs, 1);
    problems.at_least("api.body_timeout_secs", api.body_timeout_secs, 1);
    problems.at_least("api.write_timeout_secs", api.write_timeout_secs, 1);
    problems.at_least("api.worker_threads", api.worker_threads, 1);
    if let Err(reason) = config.database.store() {
        problems.push("database.url", reason);
    }
    problems.at_least(
        "cluster.resync_interval_secs",
        config.cluster.resync_interval_secs,
        1,
    );
    if config.cluster.node_name.trim().is_empty() {
        problems.push(
            "cluster.node_name",
            "empty; accepted: a name for this node".into(),
        );
    }
    if config.database.path.as_os_str().is_empty() {
        problems.push("database.path", "empty; accepted: a file path".into());
    }
    problems.at_least(
        "database.connection_pool_size",
        config.database.connection_pool_size,
        1,
    );
    problems.within(
        "database.write_behind_ms",
        config.database.write_behind_ms,
        1,
        1000,
    );
    let heartbeat = &config.heartbeat;
    problems.at_least("heartbeat.interval", heartbeat.interval, 1);
    problems.at_least(
        "heartbeat.timeout_multiplier",
        heartbeat.timeout_multiplier,
        1,
    );
    problems.at_least(
        "heartbeat.cleanup_after_days",
        heartbeat.cleanup_after_days,
        1,
    );
    if !(heartbeat.check_interval.is_finite() && (0.01..=60.0).contains(&heartbeat.check_interval))
    {
        problems.push(
            "heartbeat.check_interval",
            format!(
                "{} is out of range; accepted: 0.01 to 60 seconds",
                heartbeat.check_interval
            ),
        );
    }
    problems.within(
        "protocol.max_frame_bytes",
        config.protocol.max_frame_bytes,
        64,
        16 * 1024 * 1024,
    );
    let rate_limit = &config.rate_limit;
    if rate_limit.registrations_per_minute > 0 {
        problems.at_least("rate_limit.burst", rate_limit.burst, 1);
    }
    if let Some(secs) = rate_limit.min_heartbeat_interval_secs {
        let interval = heartbeat.interval as f64;
        if !(secs.is_finite() && (0.0..=interval).contains(&secs)) {
            problems.push(
                "rate_limit.min_heartbeat_interval_secs",
                format!(
                    "{secs} is out of range; accepted: 0 (no limit) to heartbeat.interval \
                     ({interval} s), or unset for a quarter of heartbeat.interval"
                ),
            );
        }
    }
    if !rate_limit.min_heartbeat_interval(heartbeat).is_zero() {
        problems.at_least("rate_limit.heartbeat_burst", rate_limit.heartbeat_burst, 1);
    }
    problems.at_least("auth.refresh_ms", config.auth.refresh_ms, 1);
    if let Err(reason) = check_log_filter(&config.logging.level) {
        problems.push("logging.level", reason);
    }
    if config.dns.enabled {
        problems.at_least("dns.max_tcp_connections", config.dns.max_tcp_connections, 1);
        problems.at_least(
            "dns.tcp_idle_timeout_secs",
            config.dns.tcp_idle_timeout_secs,
            1,
        );
        if let Err(err) = Zone::from_config(&config.dns, 0) {
            problems.push(
                &format!("dns.{}", err.key),
                format!("{:?} is not a valid domain name: {}", err.value, err.reason),
            );
        }
    }
    problems.0
}

/// Checks a `tracing` filter strictly: `EnvFilter` takes a bare word it does not know as a
/// target name (so `loud` would silently switch every other log line off); here a bare
/// directive must be a level, and a `target=level` directive must end in one.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    let accepted = "accepted: off, error, warn, info, debug, trace, or directives such as \
                    info,prism_server=debug";
    if filter.trim().is_empty() {
        return Err(format!("empty; {accepted}"));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None => directive,
        };
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} in {filter:?} does not name a level; {accepted}"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|err| format!("{filter:?} is not a log filter ({err}); {accepted}"))
}

/// Problems found so far, in the order of the keys checked.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn push(&mut self, key: &str, reason: String) {
        self.0.push((key.to_owned(), reason));
    }

    fn at_least(&mut self, key: &str, value: impl TryInto<u64>, min: u64) {
        let value = value.try_into().unwrap_or(u64::MAX);
        if value < min {
            self.push(
                key,
                format!("{value} is too small; accepted: {min} or more"),
            );
        }
    }

    fn within(&mut self, key: &str, value: impl TryInto<u64>, min: u64, max: u64) {
        let value = value.try_into().unwrap_or(u64::MAX);
        if !(min..=max).contains(&value) {
            self.push(
                key,
                format!("{value} is out of range; accepted: {min} to {max}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_word_that_is_not_a_level_is_refused() {
        assert!(check_log_filter("loud").is_err());
        assert!(check_log_filter("info,prism_server=loud").is_err());
        assert!(check_log_filter("").is_err());
        for good in [
            "info",
            "WARN",
            "info,prism_server=debug",
            "prism_server::core=trace",
        ] {
            assert_eq!(check_log_filter(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn a_minimum_heartbeat_interval_longer_than_the_interval_is_refused() {
        let mut config = Config::default();
        config.rate_limit.min_heartbeat_interval_secs = Some(61.0);
        let problems = validate(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "rate_limit.min_heartbeat_interval_secs");
        assert!(
            problems[0].1.contains("heartbeat.interval (60 s)"),
            "{problems:?}"
        );
        config.rate_limit.min_heartbeat_interval_secs = Some(0.0);
        config.rate_limit.heartbeat_burst = 0;
        assert!(
            validate(&config).is_empty(),
            "0 turns the limit (and its burst) off"
        );
        config.rate_limit.min_heartbeat_interval_secs = None;
        assert_eq!(validate(&config)[0].0, "rate_limit.heartbeat_burst");
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let mut config = Config::default();
        config.server.max_connections = 0;
        config.database.write_behind_ms = 0;
        config.dns.zone = "not a zone".into();
        let keys: Vec<String> = validate(&config).into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            [
                "server.max_connections",
                "database.write_behind_ms",
                "dns.zone"
            ]
        );
    }
}
