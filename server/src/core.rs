//! The sans-IO heart of the server: turns one frame payload into one response.
//!
//! No sockets here. The TCP shell, the simulator and the tests all call
//! [`Core::handle_frame`], so they exercise exactly the code the binary runs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Authenticator};
use crate::clock::{Clock, rfc3339};
use crate::config::{AuthMode, Config};
use crate::metrics::Metrics;
use crate::protocol::message::REGISTRATION;
use crate::protocol::{FrameError, ParseError, Request, Response, Status};
use crate::ratelimit::{RateLimiter, RetryAfter};
use crate::registry::{Outcome, RegisterError, Registry};
use crate::store::{Store, StoreError};

/// How often idle per-IP rate-limit entries are forgotten.
const RATE_LIMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The response to one frame and whether the connection must close after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response frame to send.
    pub response: Response,
    /// True after a framing error: answer once, then close.
    pub close: bool,
}

/// Failure to start the core.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not load the hosts or tokens.
    #[error("cannot load state from the store: {0}")]
    Store(#[from] StoreError),
}

/// Everything a registration needs, shared by all connections.
pub struct Core {
    /// The configuration the core was started with.
    pub config: Config,
    /// Host state.
    pub registry: Registry,
    /// Token cache.
    pub auth: Authenticator,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Every metric.
    pub metrics: Metrics,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Per-source-IP limit, process-wide.
    rate_limiter: RateLimiter,
}

impl Core {
    /// Loads tokens and hosts from `store` and returns a core ready to serve.
    pub async fn start(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, StartError> {
        if config.auth.mode == AuthMode::Open {
            tracing::warn!("auth.mode is \"open\": any client may register any free hostname");
        }
        let auth = Authenticator::new(config.auth.mode);
        auth.replace_tokens(&store.list_tokens().wait().await?);
        let registry = Registry::new(
            &config.heartbeat,
            Arc::clone(&store),
            Arc::clone(&clock),
            metrics.clone(),
        );
        let records = store.load_hosts().wait().await?;
        let loaded = records.len();
        for deletion in registry.restore(records) {
            deletion.wait().await?;
        }
        crate::reload::record_loaded(&metrics, &config, clock.wall());
        let counts = registry.counts();
        tracing::info!(
            loaded,
            online = counts.online,
            offline = counts.offline,
            "restored hosts from the store"
        );
        Ok(Arc::new(Self {
            rate_limiter: RateLimiter::new(&config.rate_limit),
            config,
            registry,
            auth,
            store,
            metrics,
            clock,
        }))
    }

    /// Handles one complete frame payload from `peer`.
    pub async fn handle_frame(&self, payload: &[u8], peer: IpAddr) -> Reply {
        let started = self.clock.now();
        let peer = peer.to_canonical();
        let (reply, message_type) = match Request::parse(payload) {
            Ok(request) => (self.register(&request, peer).await, REGISTRATION),
            Err(err) => {
                let message_type = match err {
                    ParseError::NotUtf8 | ParseError::NotJson(_) => "invalid",
                    ParseError::UnknownType(_) => "unknown",
                    _ => REGISTRATION,
                };
                if message_type == REGISTRATION {
                    self.count_registration("rejected");
                }
                tracing::debug!(%peer, error = %err, "refused message");
                (
                    Reply {
                        response: self.response(Status::Error, err.to_string()),
                        close: err.closes_connection(),
                    },
                    message_type,
                )
            }
        };
        let status = match reply.response.status {
            Status::Success => "success",
            Status::Error => "error",
        };
        self.metrics
            .messages_processed
            .with_label_values(&[message_type, status])
            .inc();
        self.metrics
            .message_duration
            .with_label_values(&[message_type])
            .observe((self.clock.now() - started).as_secs_f64());
        reply
    }

    /// The response for a framing error detected before a payload existed (oversized or
    /// empty frame). The connection must close after it.
    pub fn framing_error(&self, err: &FrameError) -> Reply {
        self.metrics
            .messages_processed
            .with_label_values(&["invalid", "error"])
            .inc();
        Reply {
            response: self.response(Status::Error, err.to_string()),
            close: true,
        }
    }

    /// A response stamped with the current wall time.
    pub fn response(&self, status: Status, message: impl Into<String>) -> Response {
        Response::new(status, message, rfc3339(self.clock.wall()))
    }

    async fn register(&self, request: &Request, peer: IpAddr) -> Reply {
        let refuse = |message: String| Reply {
            response: self.response(Status::Error, message),
            close: false,
        };
        if let Err(RetryAfter(wait)) = self.rate_limiter.check(peer, self.clock.now()) {
            self.count_registration("rejected");
            return refuse(format!(
                "rate limit exceeded for {peer}: at most {} registrations per minute; retry in {:.1} s",
                self.rate_limiter.per_minute(),
                wait.as_secs_f64()
            ));
        }
        let principal = match self.auth.authenticate(request.auth_token.as_deref()) {
            Ok(principal) => principal,
            Err(err @ (AuthError::MissingToken | AuthError::InvalidToken)) => {
                self.count_registration("rejected");
                tracing::info!(%peer, hostname = %request.hostname, error = %err, "authentication failed");
                return refuse(err.to_string());
            }
        };
        let hostname = &request.hostname;
        match self
            .registry
            .register(hostname, &principal.owner, peer)
            .await
        {
            Ok(outcome) => {
                let message = match outcome {
                    Outcome::Registered => {
                        tracing::info!(%hostname, address = %peer, owner = %principal.owner, "host registered");
                        format!("Host '{hostname}' registered at {peer}")
                    }
                    Outcome::Heartbeat => format!("Heartbeat accepted for '{hostname}'"),
                    Outcome::IpChanged { from, to } => {
                        tracing::info!(%hostname, %from, %to, "host moved");
                        format!("IP address of '{hostname}' changed: {from} -> {to}")
                    }
                    Outcome::Reconnected { from, to } => {
                        tracing::info!(%hostname, %from, %to, "host reconnected");
                        if from == to {
                            format!("Host '{hostname}' reconnected at {to}")
                        } else {
                            format!("Host '{hostname}' reconnected at {to} (was {from})")
                        }
                    }
                };
                Reply {
                    response: self.response(Status::Success, message),
                    close: false,
                }
            }
            Err(err) => {
                let status = match err {
                    RegisterError::OwnedByOther(_) => "rejected",
                    RegisterError::Store(_) => "failed",
                };
                self.count_registration(status);
                tracing::warn!(%hostname, %peer, error = %err, "registration refused");
                refuse(err.to_string())
            }
        }
    }

    /// Applies the run-time-changeable settings of a reloaded configuration (see
    /// [`crate::reload::RELOADABLE_KEYS`]). `self.config` keeps the values the core started with.
    pub fn apply_reloadable(&self, config: &Config) {
        self.rate_limiter.reconfigure(&config.rate_limit);
    }

    fn count_registration(&self, status: &str) {
        self.metrics
            .host_registrations
            .with_label_values(&[status])
            .inc();
    }

    /// Runs offline detection, the write-behind flush, the token refresh and rate-limit
    /// pruning until `stop` is cancelled; then flushes the last write-behind batch.
    pub async fn run_maintenance(self: Arc<Self>, stop: CancellationToken) {
        let mut sweep = tokio::time::interval(self.config.heartbeat.check_interval());
        let mut flush = tokio::time::interval(Duration::from_millis(
            self.config.database.write_behind_ms.clamp(1, 1000),
        ));
        let mut refresh =
            tokio::time::interval(Duration::from_millis(self.config.auth.refresh_ms.max(1)));
        let mut prune = tokio::time::interval(RATE_LIMIT_PRUNE_INTERVAL);
        for timer in [&mut sweep, &mut flush, &mut refresh, &mut prune] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = sweep.tick() => self.sweep().await,
                _ = flush.tick() => self.flush_freshness().await,
                _ = refresh.tick() => self.refresh_tokens().await,
                _ = prune.tick() => self.rate_limiter.prune(self.clock.now()),
            }
        }
        self.flush_freshness().await;
    }

    async fn sweep(&self) {
        let sweep = self.registry.sweep();
        for hostname in &sweep.went_offline {
            tracing::info!(%hostname, "host went offline");
        }
        for hostname in &sweep.deleted {
            tracing::info!(%hostname, "host deleted after cleanup_after_days offline");
        }
        for deletion in sweep.deletions {
            if let Err(err) = deletion.wait().await {
                tracing::error!(error = %err, "could not delete an expired host from the store");
            }
        }
    }

    /// Writes the pending heartbeat freshness to the store now.
    pub async fn flush_freshness(&self) {
        if let Some(pending) = self.registry.flush_freshness()
            && let Err(err) = pending.wait().await
        {
            tracing::error!(error = %err, "write-behind flush of heartbeat freshness failed");
        }
    }

    async fn refresh_tokens(&self) {
        match self.store.list_tokens().wait().await {
            Ok(tokens) => self.auth.replace_tokens(&tokens),
            Err(err) => {
                tracing::warn!(error = %err, "token refresh failed; keeping the cached tokens")
            }
        }
    }
}
