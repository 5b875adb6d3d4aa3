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
use super::ratelimit::{Limited, Limits, RefusalLog, SourceLimiter};
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
    /// New names per source IP, process-wide; its pace is read from `config` on every check.
    new_names: SourceLimiter,
    /// Keeps rate-limit refusals to one log line per source and window.
    refusal_log: RefusalLog,
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
            new_names: SourceLimiter::default(),
            refusal_log: RefusalLog::default(),
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

    /// Parse → authorize → apply within the rate limits (the registry tells a new name,
    /// which spends the source's budget, from a known host, which spends its own).
    async fn execute(
        &self,
        payload: &[u8],
        peer: IpAddr,
    ) -> Result<(Hostname, Principal, Outcome), Refusal> {
        let request = Request::parse(payload).map_err(Refusal::Parse)?;
        let principal = self
            .auth
            .authenticate(request.auth_token.as_deref())
            .map_err(|err| Refusal::Auth(request.hostname.clone(), err))?;
        self.names
            .check(&request.hostname)
            .map_err(|err| Refusal::Name(request.hostname.clone(), err))?;
        let limits = {
            let config = self.config.get();
            Limits::from_config(&config.rate_limit, &config.heartbeat, &self.new_names)
        };
        let outcome = self
            .registry
            .register_within(&request.hostname, &principal.owner, peer, limits)
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
        let (registration_status, reason, message, close) = match refusal {
            Refusal::Parse(err) => {
                tracing::debug!(%peer, error = %err, "refused message");
                let counted = !matches!(
                    err,
                    ParseError::NotUtf8 | ParseError::NotJson(_) | ParseError::UnknownType(_)
                );
                (
                    counted.then_some("rejected"),
                    "invalid_request",
                    err.to_string(),
                    err.closes_connection(),
                )
            }
            Refusal::Name(hostname, err) => {
                tracing::info!(%peer, %hostname, error = %err, "hostname refused");
                (Some("rejected"), "name_refused", err.to_string(), false)
            }
            Refusal::Auth(hostname, err) => {
                tracing::info!(%peer, %hostname, error = %err, "authentication failed");
                (Some("rejected"), "auth", err.to_string(), false)
            }
            Refusal::Register(hostname, RegisterError::Limited(limited)) => {
                self.log_limited(peer, &hostname, limited);
                (
                    Some("rejected"),
                    limited.reason(),
                    limited_message(peer, &hostname, limited),
                    false,
                )
            }
            Refusal::Register(hostname, err) => {
                tracing::warn!(%hostname, %peer, error = %err, "registration refused");
                let (status, reason) = match err {
                    RegisterError::Store(_) => ("failed", "store"),
                    _ => ("rejected", "owned_by_other"),
                };
                (Some(status), reason, err.to_string(), false)
            }
        };
        if let Some(status) = registration_status {
            self.metrics
                .host_registrations
                .with_label_values(&[status])
                .inc();
            self.metrics
                .registrations_refused
                .with_label_values(&[reason])
                .inc();
        }
        Reply {
            response: self.response(Status::Error, message),
            close,
            auth_refused,
        }
    }

    /// One warning per source and window for rate-limit refusals, with how many were left
    /// out of the log since the previous one.
    fn log_limited(&self, peer: IpAddr, hostname: &Hostname, limited: Limited) {
        if let Some(suppressed) = self.refusal_log.record(peer, self.clock.now()) {
            tracing::warn!(
                source = %peer,
                reason = limited.reason(),
                %hostname,
                suppressed,
                "registrations refused by the rate limit (logged once a minute per source)"
            );
        }
    }

    /// Forgets idle per-IP rate-limit and refusal-log entries (run periodically by the
    /// node's maintenance).
    pub(super) fn prune_rate_limits(&self) {
        let now = self.clock.now();
        self.new_names.prune(now);
        self.refusal_log.prune(now);
    }
}

/// The error message of a rate-limit refusal: which limit, and when to retry.
fn limited_message(peer: IpAddr, hostname: &Hostname, limited: Limited) -> String {
    match limited {
        Limited::NewNames {
            per_minute,
            retry_after,
        } => format!(
            "rate limit exceeded for {peer}: at most {per_minute} new hostnames per minute \
             from one address; '{hostname}' is not registered; retry in {}",
            retry_text(retry_after)
        ),
        Limited::HeartbeatTooFast {
            min_interval,
            retry_after,
        } => format!(
            "rate limit exceeded for '{hostname}': heartbeats at most every {}; retry in {}",
            retry_text(min_interval),
            retry_text(retry_after)
        ),
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
