//! Frame handling: one complete frame payload in, one reply out.
//!
//! [`Core::handle_frame`] is parse → authorize → apply, and only then, at the edge, the
//! wording of the response, the log line and the message metrics. No sockets here: the TCP
//! shell, the simulator, the benchmarks and the tests all call it, so they exercise exactly
//! the code the binary runs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{AuthError, Authenticator, Principal};
use super::clock::{Clock, rfc3339};
use super::dns::{NamePolicy, NameRefused};
use super::metrics::Metrics;
use super::protocol::message::REGISTRATION;
use super::protocol::{FrameError, Hostname, ParseError, Request, Response, Status};
use super::ratelimit::{RateLimiter, RetryAfter};
use super::registry::{Outcome, RegisterError, Registry};
use crate::config::LiveConfig;

/// The response to one frame and whether the connection must close after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response frame to send.
    pub response: Response,
    /// True after a framing error: answer once, then close.
    pub close: bool,
    /// The frame was refused for authentication (a missing, unknown or revoked token); the
    /// shell closes connections that send nothing else.
    pub auth_refused: bool,
}

/// Why a frame was not applied.
enum Refusal {
    /// The payload is not a valid request.
    Parse(ParseError),
    /// The source address sent too many registrations.
    RateLimited {
        /// When the next one will be allowed.
        retry_after: Duration,
        /// The limit in force.
        per_minute: u32,
    },
    /// The zone has no room for this hostname, or keeps it for itself.
    Name(Hostname, NameRefused),
    /// No valid token for a registration of this hostname.
    Auth(Hostname, AuthError),
    /// The registry refused this hostname or could not make the change durable.
    Register(Hostname, RegisterError),
}

/// Turns registration frames into replies. Built by [`super::Node`]; shells get it as an
/// `Arc<Core>` and call nothing but [`Core::handle_frame`], [`Core::framing_error`] and
/// [`Core::response`].
pub struct Core {
    /// Host state.
    registry: Arc<Registry>,
    /// Token cache.
    auth: Arc<Authenticator>,
    /// Per-source-IP limit, process-wide; its pace is read from `config` on every check.
    rate_limiter: RateLimiter,
    /// Message metrics.
    metrics: Metrics,
    /// Time source for durations and response timestamps.
    clock: Arc<dyn Clock>,
    /// The configuration in force (the rate limit is reloadable).
    config: LiveConfig,
    /// Which hostnames the zone lets hosts register.
    names: NamePolicy,
}

impl Core {
    pub(super) fn new(
        registry: Arc<Registry>,
        auth: Arc<Authenticator>,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        config: LiveConfig,
        names: NamePolicy,
    ) -> Self {
        Self {
            registry,
            auth,
            rate_limiter: RateLimiter::default(),
            metrics,
            clock,
            config,
            names,
        }
    }

    /// Handles one complete frame payload from `peer`.
    pub async fn handle_frame(&self, payload: &[u8], peer: IpAddr) -> Reply {
        let started = self.clock.now();
        let peer = peer.to_canonical();
        let outcome = self.execute(payload, peer).await;
        let message_type = match &outcome {
            Err(Refusal::Parse(ParseError::NotUtf8 | ParseError::NotJson(_))) => "invalid",
            Err(Refusal::Parse(ParseError::UnknownType(_))) => "unknown",
            _ => REGISTRATION,
        };
        let reply = self.answer(outcome, peer);
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
            auth_refused: false,
        }
    }

    /// A response stamped with the current wall time.
    pub fn response(&self, status: Status, message: impl Into<String>) -> Response {
        Response::new(status, message, rfc3339(self.clock.wall()))
    }

    /// Parse → rate limit → authorize → apply.
    async fn execute(
        &self,
        payload: &[u8],
        peer: IpAddr,
    ) -> Result<(Hostname, Principal, Outcome), Refusal> {
        let request = Request::parse(payload).map_err(Refusal::Parse)?;
        let rate_limit = self.config.get().rate_limit.clone();
        if let Err(RetryAfter(retry_after)) =
            self.rate_limiter.check(peer, self.clock.now(), &rate_limit)
        {
            return Err(Refusal::RateLimited {
                retry_after,
                per_minute: rate_limit.registrations_per_minute,
            });
        }
        let principal = self
            .auth
            .authenticate(request.auth_token.as_deref())
            .map_err(|err| Refusal::Auth(request.hostname.clone(), err))?;
        self.names
            .check(&request.hostname)
            .map_err(|err| Refusal::Name(request.hostname.clone(), err))?;
        let outcome = self
            .registry
            .register(&request.hostname, &principal.owner, peer)
            .await
            .map_err(|err| Refusal::Register(request.hostname.clone(), err))?;
        Ok((request.hostname, principal, outcome))
    }

    /// The edge: response wording, the log line, the registration counters.
    fn answer(
        &self,
        outcome: Result<(Hostname, Principal, Outcome), Refusal>,
        peer: IpAddr,
    ) -> Reply {
        let (hostname, principal, outcome) = match outcome {
            Ok(applied) => applied,
            Err(refusal) => return self.refuse(refusal, peer),
        };
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
            auth_refused: false,
        }
    }

    fn refuse(&self, refusal: Refusal, peer: IpAddr) -> Reply {
        let auth_refused = matches!(refusal, Refusal::Auth(..));
        let (registration_status, message, close) = match refusal {
            Refusal::Parse(err) => {
                tracing::debug!(%peer, error = %err, "refused message");
                let counted = !matches!(
                    err,
                    ParseError::NotUtf8 | ParseError::NotJson(_) | ParseError::UnknownType(_)
                );
                (
                    counted.then_some("rejected"),
                    err.to_string(),
                    err.closes_connection(),
                )
            }
            Refusal::RateLimited {
                retry_after,
                per_minute,
            } => (
                Some("rejected"),
                format!(
                    "rate limit exceeded for {peer}: at most {per_minute} registrations per \
                     minute; retry in {}",
                    retry_text(retry_after)
                ),
                false,
            ),
            Refusal::Name(hostname, err) => {
                tracing::info!(%peer, %hostname, error = %err, "hostname refused");
                (Some("rejected"), err.to_string(), false)
            }
            Refusal::Auth(hostname, err) => {
                tracing::info!(%peer, %hostname, error = %err, "authentication failed");
                (Some("rejected"), err.to_string(), false)
            }
            Refusal::Register(hostname, err) => {
                tracing::warn!(%hostname, %peer, error = %err, "registration refused");
                let status = match err {
                    RegisterError::OwnedByOther(_) => "rejected",
                    RegisterError::Store(_) => "failed",
                };
                (Some(status), err.to_string(), false)
            }
        };
        if let Some(status) = registration_status {
            self.metrics
                .host_registrations
                .with_label_values(&[status])
                .inc();
        }
        Reply {
            response: self.response(Status::Error, message),
            close,
            auth_refused,
        }
    }

    /// Forgets idle per-IP rate-limit entries (run periodically by the node's maintenance).
    pub(super) fn prune_rate_limits(&self) {
        self.rate_limiter.prune(self.clock.now());
    }
}

/// A wait as the client should read it: rounded up, never "0.0 s" — milliseconds below a
/// second, tenths of a second above.
fn retry_text(wait: Duration) -> String {
    let millis = wait.as_nanos().div_ceil(1_000_000).max(1);
    if millis < 1000 {
        format!("{millis} ms")
    } else {
        format!("{:.1} s", millis.div_ceil(100) as f64 / 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_round_up_and_are_never_zero() {
        assert_eq!(retry_text(Duration::from_micros(40)), "1 ms");
        assert_eq!(retry_text(Duration::from_nanos(1)), "1 ms");
        assert_eq!(retry_text(Duration::ZERO), "1 ms");
        assert_eq!(retry_text(Duration::from_micros(59_001)), "60 ms");
        assert_eq!(retry_text(Duration::from_millis(1_001)), "1.1 s");
        assert_eq!(retry_text(Duration::from_secs(2)), "2.0 s");
    }
}
