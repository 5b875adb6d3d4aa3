//! `dns.*`: the authoritative DNS server for the managed zone, and its nameservers.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One nameserver of the zone: a bare name, or a name with its addresses (needed for a name
/// inside the zone, which Prism then answers and glues).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Nameserver {
    /// `ns1.example.net.`: a name whose addresses are published elsewhere.
    Name(String),
    /// `{name: ns1.example.net., addresses: [192.0.2.1]}`.
    WithAddresses {
        /// The nameserver's name (relative names are taken inside the zone).
        name: String,
        /// Its IPv4 and IPv6 addresses.
        addresses: Vec<IpAddr>,
    },
}

/// The map form of [`Nameserver`], so a bad field is reported by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameserverEntry {
    name: String,
    #[serde(default)]
    addresses: Vec<IpAddr>,
}

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Nameserver;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name or {name, addresses}")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Nameserver, E> {
                Ok(Nameserver::Name(name.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Nameserver, A::Error> {
                let entry = NameserverEntry::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Nameserver::WithAddresses {
                    name: entry.name,
                    addresses: entry.addresses,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Nameserver {
    /// The name as configured.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::WithAddresses { name, .. } => name,
        }
    }

    /// The configured addresses (none for a bare name).
    pub fn addresses(&self) -> &[IpAddr] {
        match self {
            Self::Name(_) => &[],
            Self::WithAddresses { addresses, .. } => addresses,
        }
    }
}

impl From<&str> for Nameserver {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

/// `dns.*`: the authoritative DNS server for the managed zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSection {
    /// Serve DNS at all.
    pub enabled: bool,
    /// UDP and TCP port (53 in production).
    pub port: u16,
    /// The zone Prism is authoritative for; host `web-01` answers as `web-01.<zone>`.
    pub zone: String,
    /// TTL in seconds of every record served (A, AAAA, SOA, NS).
    pub ttl: u32,
    /// Keep answering for offline hosts with their last address instead of NXDOMAIN.
    pub serve_offline: bool,
    /// The zone's nameservers (the cluster's nodes), each a name or `{name, addresses}`; the
    /// first is the SOA primary. In-zone names are answered with their addresses and given
    /// as glue. Empty means `ns1.<zone>` at this node's address (see docs/DNS.md).
    pub nameservers: Vec<Nameserver>,
    /// SOA RNAME (the responsible mailbox, `@` written as `.`). Empty means `hostmaster.<zone>`.
    pub hostmaster: String,
    /// Hostnames no host may register (relative to the zone), beside the zone's own
    /// in-zone nameservers and SOA mailbox label, which are always reserved.
    pub reserved_names: Vec<String>,
    /// SOA refresh in seconds.
    pub refresh: u32,
    /// SOA retry in seconds.
    pub retry: u32,
    /// SOA expire in seconds.
    pub expire: u32,
    /// SOA minimum: with `ttl`, the negative-caching TTL (RFC 2308 uses the smaller one).
    pub minimum: u32,
    /// Largest UDP response in bytes when the client advertises more with EDNS(0).
    pub max_udp_payload: u16,
    /// Receive buffer requested for each DNS UDP socket, in bytes, so bursts of queries are
    /// queued rather than dropped (the kernel caps it at `net.core.rmem_max`).
    pub udp_receive_buffer_bytes: usize,
    /// Concurrent DNS-over-TCP connections; further connections are closed at once.
    pub max_tcp_connections: usize,
    /// Seconds a DNS-over-TCP connection may stay silent before it is closed.
    pub tcp_idle_timeout_secs: u64,
    /// Seconds a write to a DNS-over-TCP connection may stay blocked before it is closed.
    pub tcp_write_timeout_secs: u64,
    /// Response rate limiting: UDP responses per second per client prefix (0: off).
    pub rrl_responses_per_second: u32,
    /// Every this many rate-limited UDP responses one is sent truncated, so real clients
    /// retry over TCP (0: drop them all; 1: truncate them all).
    pub rrl_slip: u32,
    /// Prefix length that makes one IPv4 client for rate limiting.
    pub rrl_ipv4_prefix_len: u8,
    /// Prefix length that makes one IPv6 client for rate limiting.
    pub rrl_ipv6_prefix_len: u8,
}

impl Default for DnsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 5353,
            zone: "managed.prism.local.".to_owned(),
            ttl: 60,
            serve_offline: false,
            nameservers: Vec::new(),
            hostmaster: String::new(),
            reserved_names: Vec::new(),
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            minimum: 60,
            max_udp_payload: 1232,
            udp_receive_buffer_bytes: 4 << 20,
            max_tcp_connections: 256,
            tcp_idle_timeout_secs: 10,
            tcp_write_timeout_secs: 10,
            rrl_responses_per_second: 200,
            rrl_slip: 2,
            rrl_ipv4_prefix_len: 24,
            rrl_ipv6_prefix_len: 56,
        }
    }
}

impl DnsSection {
    /// The TCP idle timeout as a duration.
    pub fn tcp_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.tcp_idle_timeout_secs)
    }

    /// The TCP write timeout as a duration.
    pub fn tcp_write_timeout(&self) -> Duration {
        Duration::from_secs(self.tcp_write_timeout_secs)
    }
}
