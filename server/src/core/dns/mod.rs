//! Authoritative DNS for the managed zone (SPEC §6), sans-IO.
//!
//! [`Zone`] answers a parsed query from the registry's read view; [`Answerer`] wraps it for
//! the wire: bytes in, bytes out, with FORMERR for malformed queries, EDNS(0) payload sizes,
//! truncation and the `prism_dns_queries_total` metric. The socket loops in
//! [`crate::shell::dns`] call [`Answerer::answer`], whoever supplies the sockets.

mod names;
pub mod rrl;
mod zone;

use std::sync::Arc;

use hickory_proto::op::{Header, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

pub use names::{NamePolicy, NameRefused};
pub use zone::{Zone, ZoneError, ZoneView};

use std::net::IpAddr;

use rrl::{ResponseRateLimiter, Verdict};

use crate::config::DnsSection;
use crate::core::clock::Clock;
use crate::core::metrics::Metrics;
use crate::core::registry::Registry;

/// Largest UDP response to a query without EDNS(0) (RFC 1035 §4.2.1).
pub const CLASSIC_UDP_PAYLOAD: usize = 512;
/// Largest DNS message over TCP (its 2-byte length prefix).
pub const MAX_TCP_MESSAGE: usize = u16::MAX as usize;
/// `query_type` label for a query type this server has no name for.
pub const OTHER_QUERY_TYPE: &str = "OTHER";
/// `query_type` label when a malformed query had no readable question.
pub const NO_QUERY_TYPE: &str = "NONE";

/// How a query arrived, which decides how large the response may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram: 512 bytes, or the EDNS(0) size the client advertised (capped by
    /// `dns.max_udp_payload`); larger answers are sent truncated with TC=1.
    Udp,
    /// A length-prefixed stream: up to 65535 bytes.
    Tcp,
}

/// Turns request bytes into response bytes for the zone, recording every answered query.
pub struct Answerer {
    /// The registry view: the zone's content.
    registry: Arc<Registry>,
    /// Counts the answered queries.
    metrics: Metrics,
    /// The zone built from `dns.*`.
    zone: Zone,
    /// Per-client-prefix budgets of UDP responses.
    rrl: ResponseRateLimiter,
    /// The time the rate limiter counts in.
    clock: Arc<dyn Clock>,
}

impl Answerer {
    /// An answerer for the zone `dns` describes over `registry`; `serial_base` as in
    /// [`Zone::from_config`]; in-zone nameservers configured without addresses answer with
    /// `own_addresses` (this node's).
    pub fn new(
        registry: Arc<Registry>,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        dns: &DnsSection,
        serial_base: u32,
        own_addresses: &[IpAddr],
    ) -> Result<Self, ZoneError> {
        let zone = Zone::from_config(dns, serial_base)?.with_nameserver_addresses(own_addresses);
        Ok(Self {
            registry,
            metrics,
            zone,
            rrl: ResponseRateLimiter::new(dns),
            clock,
        })
    }

    /// Answers one DNS message from `client` received over `transport`. `None` means send
    /// nothing: the message was too short to carry an id or was itself a response, or the
    /// client's prefix is over its response rate (UDP only; every `dns.rrl_slip`-th such
    /// answer is sent truncated instead). A message whose header is readable but whose body
    /// is not gets FORMERR. Never panics.
    pub fn answer(&self, request: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>> {
        let verdict = match transport {
            Transport::Udp => self.rrl.check(client, self.clock.now()),
            // A TCP client has proven its address.
            Transport::Tcp => Verdict::Answer,
        };
        match verdict {
            Verdict::Answer => {}
            Verdict::Drop => {
                self.metrics
                    .dns_rate_limited
                    .with_label_values(&["dropped"])
                    .inc();
                return None;
            }
            Verdict::Slip => {
                self.metrics
                    .dns_rate_limited
                    .with_label_values(&["slipped"])
                    .inc();
                let response = match Message::from_vec(request) {
                    Ok(request) => self.answer_message(&request)?,
                    Err(_) => self.malformed(request)?,
                };
                return encode_truncated(&response, CLASSIC_UDP_PAYLOAD);
            }
        }
        let (response, limit) = match Message::from_vec(request) {
            Ok(request) => {
                let response = self.answer_message(&request)?;
                let limit = response_limit(&request, transport, self.zone.max_udp_payload());
                (response, limit)
            }
            Err(err) => {
                let response = self.malformed(request)?;
                tracing::debug!(error = %err, "malformed DNS query");
                (response, CLASSIC_UDP_PAYLOAD)
            }
        };
        encode_within(&response, limit)
    }

    /// Answers a parsed query and records it in `prism_dns_queries_total`. `None` when the
    /// message is a response, which is never answered.
    pub fn answer_message(&self, request: &Message) -> Option<Message> {
        let response = self.zone.respond(request, &*self.registry)?;
        record(
            &self.metrics,
            request.queries.first(),
            response.metadata.response_code,
        );
        Some(response)
    }

    /// FORMERR for a message whose header is readable but the rest is not; `None` when even
    /// the header is unreadable or the message is a response.
    fn malformed(&self, request: &[u8]) -> Option<Message> {
        let mut decoder = BinDecoder::new(request);
        let header = Header::read(&mut decoder).ok()?;
        if header.metadata.message_type != MessageType::Query {
            return None;
        }
        // Echo the question when it alone is readable, so the client can match the answer.
        let question = (header.counts.queries == 1)
            .then(|| Query::read(&mut decoder).ok())
            .flatten();
        let mut response = Message::error_msg(
            header.metadata.id,
            header.metadata.op_code,
            ResponseCode::FormErr,
        );
        response.metadata.recursion_desired = header.metadata.recursion_desired;
        record(&self.metrics, question.as_ref(), ResponseCode::FormErr);
        response.queries.extend(question);
        Some(response)
    }
}

/// How many bytes the response to `request` may take on `transport`: over UDP the size the
/// client advertised with EDNS(0), capped at `max_udp_payload`, and never below 512.
fn response_limit(request: &Message, transport: Transport, max_udp_payload: u16) -> usize {
    match (transport, &request.edns) {
        (Transport::Tcp, _) => MAX_TCP_MESSAGE,
        (Transport::Udp, None) => CLASSIC_UDP_PAYLOAD,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload().min(max_udp_payload)).max(CLASSIC_UDP_PAYLOAD)
        }
    }
}

/// Encodes `response`; when it exceeds `limit`, sends the header, question and OPT record
/// with TC=1 instead (the client retries over TCP). `None` only if even that cannot be
/// encoded.
fn encode_within(response: &Message, limit: usize) -> Option<Vec<u8>> {
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => return Some(bytes),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot encode a DNS response; sending TC"),
    }
    encode_truncated(response, limit)
}

/// The header, question and OPT record of `response` with TC=1: the client retries over TCP.
fn encode_truncated(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let mut truncated = Message::new(
        response.metadata.id,
        MessageType::Response,
        response.metadata.op_code,
    );
    truncated.metadata = response.metadata;
    truncated.metadata.truncation = true;
    truncated.queries.clone_from(&response.queries);
    truncated.edns.clone_from(&response.edns);
    match truncated.to_vec() {
        Ok(bytes) if bytes.len() <= limit => Some(bytes),
        _ => None,
    }
}

/// Counts one answered query in `prism_dns_queries_total{query_type,status}`.
fn record(metrics: &Metrics, question: Option<&Query>, rcode: ResponseCode) {
    let query_type = question.map_or(NO_QUERY_TYPE, |query| query_type_label(query.query_type));
    metrics
        .dns_queries
        .with_label_values(&[query_type, rcode_label(rcode)])
        .inc();
}

/// The `query_type` label: the type's mnemonic (A, AAAA, SOA, …), or [`OTHER_QUERY_TYPE`] for
/// numeric types unknown to hickory, so the label set stays bounded.
pub fn query_type_label(query_type: RecordType) -> &'static str {
    match query_type {
        RecordType::Unknown(_) => OTHER_QUERY_TYPE,
        known => known.into(),
    }
}

/// The `status` label: the rcode's mnemonic as dig prints it (NOERROR, NXDOMAIN, …).
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}
