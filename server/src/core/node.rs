//! A Prism node: the core's pieces assembled over one store, and the periodic work that keeps
//! them current (offline detection, the write-behind flush, the token refresh).
//!
//! Shells never get the node's fields: each takes the narrow handle it needs — the frame
//! handler ([`Node::frames`]), the DNS answerer ([`Node::answerer`]), the registry view, the
//! token cache, the metrics, the live configuration.

use std::net::IpAddr;
use std::sync::Arc;

use super::auth::Authenticator;
use super::clock::{Clock, unix_millis};
use super::dns::{Answerer, Zone, ZoneError};
use super::handler::Core;
use super::metrics::Metrics;
use super::registry::Registry;
use crate::config::{AuthMode, LiveConfig};
use crate::store::{Store, StoreError};

/// Failure to start a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not load the hosts or tokens.
    #[error("cannot load state from the store: {0}")]
    Store(#[from] StoreError),
    /// `dns.*` does not describe a zone (hostnames are names in it even with DNS off).
    #[error(transparent)]
    Zone(#[from] ZoneError),
}

/// One running server's state, shared by its shells.
pub struct Node {
    /// The frame handler the registration shell calls.
    pub(super) frames: Arc<Core>,
    /// Host state: written by the frame handler and the maintenance loop, read by DNS and the
    /// API.
    pub(super) registry: Arc<Registry>,
    /// Active tokens, for the frame handler and the API.
    pub(super) auth: Arc<Authenticator>,
    /// Durable storage.
    pub(super) store: Arc<dyn Store>,
    /// Every metric.
    pub(super) metrics: Metrics,
    /// Time source.
    pub(super) clock: Arc<dyn Clock>,
    /// The configuration in force.
    pub(super) config: LiveConfig,
}

impl Node {
    /// Loads tokens and hosts from `store` and returns a node ready to serve.
    pub async fn start(
        config: impl Into<LiveConfig>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, StartError> {
        let config = config.into();
        let settings = config.snapshot();
        if settings.auth.mode == AuthMode::Open {
            tracing::warn!("auth.mode is \"open\": any client may register any free hostname");
        }
        let names = Zone::from_config(&settings.dns, 0)?.name_policy().clone();
        let auth = Arc::new(Authenticator::new(settings.auth.mode));
        auth.replace_tokens(&store.list_tokens().wait().await?);
        let registry = Arc::new(Registry::new(
            &settings.heartbeat,
            Arc::clone(&store),
            Arc::clone(&clock),
            metrics.clone(),
        ));
        let records = store.load_hosts().wait().await?;
        let loaded = records.len();
        registry.restore(records);
        metrics.record_config_loaded(&settings, clock.wall());
        metrics.set_node(&settings.cluster.node_name);
        let counts = registry.counts();
        tracing::info!(
            loaded,
            online = counts.online,
            offline = counts.offline,
            "restored hosts from the store"
        );
        let frames = Arc::new(Core::new(
            Arc::clone(&registry),
            Arc::clone(&auth),
            metrics.clone(),
            Arc::clone(&clock),
            config.clone(),
            names,
        ));
        Ok(Arc::new(Self {
            frames,
            registry,
            auth,
            store,
            metrics,
            clock,
            config,
        }))
    }

    /// The frame handler, for the registration shell.
    pub fn frames(&self) -> Arc<Core> {
        Arc::clone(&self.frames)
    }

    /// A DNS answerer over this node's registry view, for the `dns.*` section in force. The
    /// SOA serial starts from the clock's wall time in seconds (see
    /// [`super::dns::Zone::serial`]). `own_addresses` are this node's, given to in-zone
    /// nameservers configured without addresses.
    pub fn answerer(&self, own_addresses: &[IpAddr]) -> Result<Answerer, ZoneError> {
        let started_secs = unix_millis(self.clock.wall()) / 1000;
        // Serials are compared modulo 2^32 (RFC 1982), so the low 32 bits are what counts.
        let config = self.config.get();
        Answerer::new(
            Arc::clone(&self.registry),
            self.metrics.clone(),
            Arc::clone(&self.clock),
            &config.dns,
            started_secs as u32,
            own_addresses,
        )
    }

    /// The host registry (its read view for DNS and the API; writes go through the frame
    /// handler).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The token cache.
    pub fn auth(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    /// The store (health probes).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Every metric.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The time source.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The configuration in force; reloads replace it.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }
}
