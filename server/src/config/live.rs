//! The live configuration: one swappable value that a reload replaces and every reader reads.
//!
//! Nothing keeps its own copy of a setting that can change at run time: the rate limiter,
//! `/api/health` and the maintenance gauge all read the value in force through a
//! [`LiveConfig`], so after a SIGHUP there is exactly one answer to "what is configured".

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::Config;

/// A shared handle on the configuration now in force. Clones share the value.
#[derive(Clone)]
pub struct LiveConfig(Arc<ArcSwap<Config>>);

impl LiveConfig {
    /// A live configuration starting at `config`.
    pub fn new(config: Config) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(config)))
    }

    /// The configuration now in force, for a short read (no lock, no copy, no reference-count
    /// traffic on the hot path). Call it where the value is needed rather than keeping it.
    pub fn get(&self) -> Guard<Arc<Config>> {
        self.0.load()
    }

    /// The configuration now in force, as an owned handle that may be kept.
    pub fn snapshot(&self) -> Arc<Config> {
        self.0.load_full()
    }

    /// Puts `config` in force for every reader at once.
    pub fn replace(&self, config: Config) {
        self.0.store(Arc::new(config));
    }
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveConfig").field(&**self.get()).finish()
    }
}

impl From<Config> for LiveConfig {
    fn from(config: Config) -> Self {
        Self::new(config)
    }
}
