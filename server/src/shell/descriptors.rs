//! The open-file budget: every connection the configuration allows is a file descriptor, so
//! the process's limit must hold them all — or the capacity refusals themselves fail
//! ("Too many open files") and the server starves. At start the soft limit is raised
//! towards the hard one; if even that cannot hold the budget, the server refuses to start.

use crate::config::Config;

/// Descriptors beside the connections: stdio, the runtime's epoll and wake-up handles,
/// log files, short-lived refusals of connections over a limit.
const RESERVE: u64 = 64;
/// Files the SQLite store keeps open: the database, its write-ahead log and shared memory.
const SQLITE_FILES: u64 = 3;

/// What the configuration needs, item by item, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// (what, how many descriptors).
    pub items: Vec<(String, u64)>,
}

impl Budget {
    /// The descriptors `config` can need at once, with `udp_sockets` DNS UDP sockets.
    pub fn of(config: &Config, udp_sockets: usize) -> Self {
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut items = vec![
            (
                format!("server.max_connections {}", config.server.max_connections),
                as_u64(config.server.max_connections),
            ),
            (
                format!("api.max_connections {}", config.api.max_connections),
                as_u64(config.api.max_connections),
            ),
            ("the registration and API listeners".to_owned(), 2),
        ];
        if config.dns.enabled {
            items.push((
                format!("dns.max_tcp_connections {}", config.dns.max_tcp_connections),
                as_u64(config.dns.max_tcp_connections),
            ));
            items.push((
                format!("the DNS listener and {udp_sockets} UDP sockets"),
                as_u64(udp_sockets) + 1,
            ));
        }
        items.push(("the SQLite store".to_owned(), SQLITE_FILES));
        items.push(("stdio, the runtime and spare room".to_owned(), RESERVE));
        Self { items }
    }

    /// The total.
    pub fn total(&self) -> u64 {
        self.items
            .iter()
            .fold(0u64, |sum, (_, count)| sum.saturating_add(*count))
    }

    fn explain(&self) -> String {
        self.items
            .iter()
            .map(|(what, _)| what.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// The limit could not be made to hold the budget.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// Even the hard limit is too small.
    #[error(
        "the open-file limit is {soft} (hard limit {hard}), but this configuration needs {needed} \
         descriptors ({explain}); raise the limit (ulimit -n {needed}, or LimitNOFILE={needed} \
         in a systemd unit) or lower those settings"
    )]
    TooLow {
        /// The soft limit after trying to raise it.
        soft: u64,
        /// The hard limit.
        hard: u64,
        /// What the configuration needs.
        needed: u64,
        /// The budget's items.
        explain: String,
    },
    /// The limit could not be read or set.
    #[error("cannot read or raise the open-file limit: {0}")]
    System(#[from] std::io::Error),
}

/// Raises the soft open-file limit towards the hard one (as far as the budget needs and the
/// hard limit allows) and checks it holds `budget`. Returns the soft limit in force.
pub fn ensure(budget: &Budget) -> Result<u64, DescriptorError> {
    let needed = budget.total();
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft < needed {
        let raised = needed.max(soft).min(hard);
        rlimit::setrlimit(rlimit::Resource::NOFILE, raised, hard)?;
    }
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft < needed {
        return Err(DescriptorError::TooLow {
            soft,
            hard,
            needed,
            explain: budget.explain(),
        });
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_counts_every_listener_and_connection_limit() {
        let budget = Budget::of(&Config::default(), 2);
        assert_eq!(
            budget.total(),
            1000 + 512 + 2 + 256 + 3 + SQLITE_FILES + RESERVE
        );
        let mut no_dns = Config::default();
        no_dns.dns.enabled = false;
        assert_eq!(
            Budget::of(&no_dns, 2).total(),
            1000 + 512 + 2 + SQLITE_FILES + RESERVE
        );
    }
}
