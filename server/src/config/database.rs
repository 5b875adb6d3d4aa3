//! `database.*` and `cluster.*`: which store holds hosts and tokens, and this node's place
//! among nodes sharing a PostgreSQL database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `database.*`: where hosts and tokens are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// Which store: empty (or `sqlite:PATH`) for the embedded SQLite file, or
    /// `postgres://USER@HOST:PORT/DB` for a PostgreSQL database several nodes share.
    pub url: String,
    /// SQLite database file (when `url` is empty); its directory is created on first start.
    pub path: PathBuf,
    /// Connections to PostgreSQL in the pool (SQLite has one writer and uses one).
    pub connection_pool_size: usize,
    /// Milliseconds between write-behind flushes of heartbeat freshness (at most 1000).
    pub write_behind_ms: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            path: PathBuf::from("./data/prism.db"),
            connection_pool_size: 8,
            write_behind_ms: 1000,
        }
    }
}

/// The store `database.*` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by connection URL.
    Postgres(String),
}

impl DatabaseSection {
    /// The store to open, or why `url` names none.
    pub fn store(&self) -> Result<StoreChoice, String> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(StoreChoice::Sqlite(self.path.clone()));
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            return if path.is_empty() {
                Err(format!("{url:?} names no file; accepted: sqlite:PATH"))
            } else {
                Ok(StoreChoice::Sqlite(PathBuf::from(path)))
            };
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreChoice::Postgres(url.to_owned()));
        }
        Err(format!(
            "{url:?} is not a database URL; accepted: postgres://USER@HOST:PORT/DB, sqlite:PATH, \
             or empty for database.path"
        ))
    }

    /// The store, for messages: the SQLite file as an absolute path, or the PostgreSQL URL
    /// without its password, each followed by the engine (`/srv/prism.db (SQLite)`).
    pub fn describe(&self) -> String {
        match self.store() {
            Ok(StoreChoice::Sqlite(path)) => {
                format!("{} (SQLite)", absolute_path(&path).display())
            }
            Ok(StoreChoice::Postgres(url)) => format!("{} (PostgreSQL)", redact_password(&url)),
            Err(_) => self.url.clone(),
        }
    }
}

/// `path` made absolute (symbolic links resolved once the file exists).
pub fn absolute_path(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `url` with any password replaced by `***`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// `cluster.*`: nodes sharing one PostgreSQL database (`database.url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// This node's name, in `/api/health` and `prism_build_info{node}`. Default: the
    /// machine's hostname.
    pub node_name: String,
    /// Seconds between full reloads of the hosts from the database, which repair anything
    /// the change feed missed (a dropped listener connection). Only with PostgreSQL.
    pub resync_interval_secs: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            node_name: machine_hostname(),
            resync_interval_secs: 30,
        }
    }
}

impl ClusterSection {
    /// The resync interval as a duration.
    pub fn resync_interval(&self) -> Duration {
        Duration::from_secs(self.resync_interval_secs)
    }
}

/// The machine's hostname (Linux), or `prism` when it cannot be read.
fn machine_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let name = std::fs::read_to_string(path).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "prism".to_owned())
}
