//! The zone answerer: one parsed query plus the registry's read view in, one response out.
//!
//! Pure and synchronous: no sockets, no clock. [`Zone::respond`] decides the rcode, the
//! records and the flags; the wire layer ([`super::Answerer`]) handles bytes, size limits and
//! metrics around it.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::names::NamePolicy;
use crate::config::DnsSection;
use crate::core::registry::{HostStatus, HostView, Registry};

/// EDNS version this server speaks; a query with a higher one gets BADVERS (RFC 6891 §6.1.3).
const EDNS_VERSION: u8 = 0;

/// The registry's read view as the zone sees it.
pub trait ZoneView {
    /// The host called `hostname` (already lowercase, without the zone suffix).
    fn host(&self, hostname: &str) -> Option<HostView>;
    /// A number that increases with every change visible in DNS.
    fn generation(&self) -> u64;
    /// Whether any host (any online one, unless `include_offline`) is named
    /// `<labels>.<hostname>`, which makes `hostname` exist in the zone (RFC 8020).
    fn has_hosts_under(&self, hostname: &str, include_offline: bool) -> bool;
}

impl ZoneView for Registry {
    fn host(&self, hostname: &str) -> Option<HostView> {
        self.get(hostname)
    }

    fn generation(&self) -> u64 {
        Registry::generation(self)
    }

    fn has_hosts_under(&self, hostname: &str, include_offline: bool) -> bool {
        Registry::has_hosts_under(self, hostname, include_offline)
    }
}

/// A configuration value that is not a usable domain name.
#[derive(Debug, thiserror::Error)]
#[error("dns.{key} = {value:?} is not a valid domain name: {reason}")]
pub struct ZoneError {
    /// The configuration key.
    pub key: &'static str,
    /// The value found.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The managed zone: its apex records and how it answers for hosts.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The apex, lowercase and fully qualified.
    origin: Name,
    /// TTL of every positive record.
    ttl: u32,
    /// TTL of the SOA sent with negative answers: min(SOA minimum, SOA TTL), RFC 2308 §3.
    negative_ttl: u32,
    /// Answer offline hosts with their last address instead of NXDOMAIN.
    serve_offline: bool,
    /// The SOA with serial 0; [`Zone::soa`] fills in the current serial.
    soa: SOA,
    /// NS names at the apex.
    nameservers: Vec<Name>,
    /// The nameservers inside the zone, with the addresses they answer with (and are glued
    /// with in the NS answer).
    in_zone_nameservers: Vec<(Name, Vec<IpAddr>)>,
    /// Added to the registry generation to form the SOA serial (see [`Zone::serial`]).
    serial_base: u32,
    /// Largest UDP payload advertised in our OPT record.
    max_udp_payload: u16,
    /// Which hostnames may be registered under this zone.
    names: NamePolicy,
}

/// Why the zone gave the rcode it gave, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// An answer or a negative answer from the zone (AA set).
    Authoritative,
    /// The question is outside the zone or not something we serve (REFUSED/NOTIMP/FORMERR).
    Declined,
}

impl Zone {
    /// Builds the zone from `dns.*`. `serial_base` is usually the start time in Unix seconds,
    /// so serials keep increasing across restarts (see [`Zone::serial`]).
    pub fn from_config(config: &DnsSection, serial_base: u32) -> Result<Self, ZoneError> {
        let origin = parse_name("zone", &config.zone, &Name::root())?;
        let configured = if config.nameservers.is_empty() {
            vec![(prefixed("ns1", &origin)?, Vec::new())]
        } else {
            config
                .nameservers
                .iter()
                .map(|ns| {
                    let name = parse_name("nameservers", ns.name(), &origin)?;
                    Ok((name, ns.addresses().to_vec()))
                })
                .collect::<Result<Vec<_>, ZoneError>>()?
        };
        let nameservers: Vec<Name> = configured.iter().map(|(name, _)| name.clone()).collect();
        let in_zone_nameservers = configured
            .into_iter()
            .filter(|(name, _)| origin.zone_of(name))
            .collect();
        let hostmaster = if config.hostmaster.is_empty() {
            prefixed("hostmaster", &origin)?
        } else {
            parse_name("hostmaster", &config.hostmaster, &origin)?
        };
        let names = NamePolicy::new(&origin, &nameservers, &hostmaster, &config.reserved_names);
        let soa = SOA::new(
            nameservers[0].clone(),
            hostmaster,
            0,
            saturating_i32(config.refresh),
            saturating_i32(config.retry),
            saturating_i32(config.expire),
            config.minimum,
        );
        Ok(Self {
            origin,
            ttl: config.ttl,
            negative_ttl: config.ttl.min(config.minimum),
            serve_offline: config.serve_offline,
            soa,
            nameservers,
            in_zone_nameservers,
            serial_base,
            max_udp_payload: config.max_udp_payload.max(512),
            names,
        })
    }

    /// Which hostnames may be registered under this zone.
    pub fn name_policy(&self) -> &NamePolicy {
        &self.names
    }

    /// Gives `addresses` to every in-zone nameserver configured without any (the default
    /// `ns1.<zone>` among them), so the zone's own nameserver names always resolve.
    pub fn with_nameserver_addresses(mut self, addresses: &[IpAddr]) -> Self {
        for (_, known) in &mut self.in_zone_nameservers {
            if known.is_empty() {
                known.extend_from_slice(addresses);
            }
        }
        self
    }

    /// The addresses of an in-zone nameserver called `name`, if it is one.
    fn nameserver_addresses(&self, name: &Name) -> Option<&[IpAddr]> {
        self.in_zone_nameservers
            .iter()
            .find(|(ns, _)| ns == name)
            .map(|(_, addresses)| addresses.as_slice())
    }

    /// Whether an in-zone nameserver's name lies strictly below `name`.
    fn has_nameserver_below(&self, name: &Name) -> bool {
        self.in_zone_nameservers
            .iter()
            .any(|(ns, _)| ns != name && name.zone_of(ns))
    }

    /// Address records of `name` for `query_type` (A or AAAA) among `addresses`.
    fn address_records(
        &self,
        name: &Name,
        query_type: RecordType,
        addresses: &[IpAddr],
    ) -> Vec<Record> {
        addresses
            .iter()
            .filter_map(|address| address_rdata(query_type, *address))
            .map(|rdata| Record::from_rdata(name.clone(), self.ttl, rdata))
            .collect()
    }

    /// Largest UDP payload this server sends, whatever the client advertises.
    pub fn max_udp_payload(&self) -> u16 {
        self.max_udp_payload
    }

    /// The apex of the zone.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The SOA serial for a registry generation: `serial_base + generation` in RFC 1982
    /// arithmetic. With the start time as base, a restarted server's serial is ahead of the
    /// previous run's as long as that run made fewer DNS-visible changes than seconds passed
    /// between the two starts.
    pub fn serial(&self, generation: u64) -> u32 {
        // Truncation is intended: serials are compared modulo 2^32.
        self.serial_base.wrapping_add(generation as u32)
    }

    /// The response to `request`, or `None` when it must not be answered (it is itself a
    /// response). Never panics, whatever the message holds.
    pub fn respond(&self, request: &Message, view: &impl ZoneView) -> Option<Message> {
        if request.metadata.message_type != hickory_proto::op::MessageType::Query {
            return None;
        }
        let mut response = Message::new(
            request.metadata.id,
            hickory_proto::op::MessageType::Response,
            request.metadata.op_code,
        );
        response.metadata = Metadata::response_from_request(&request.metadata);
        response.queries.clone_from(&request.queries);
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(self.max_udp_payload)
                .set_version(EDNS_VERSION);
            response.edns = Some(ours);
            if edns.version() > EDNS_VERSION {
                response.metadata.response_code = ResponseCode::BADVERS;
                return Some(response);
            }
        }
        let (rcode, disposition) = self.fill(request, view, &mut response);
        response.metadata.response_code = rcode;
        response.metadata.authoritative = disposition == Disposition::Authoritative;
        Some(response)
    }

    fn fill(
        &self,
        request: &Message,
        view: &impl ZoneView,
        response: &mut Message,
    ) -> (ResponseCode, Disposition) {
        use Disposition::{Authoritative, Declined};
        if request.metadata.op_code != OpCode::Query {
            return (ResponseCode::NotImp, Declined);
        }
        let [query] = request.queries.as_slice() else {
            // RFC 9619: a query has exactly one question.
            return (ResponseCode::FormErr, Declined);
        };
        if query.query_class != DNSClass::IN || !self.origin.zone_of(&query.name) {
            return (ResponseCode::Refused, Declined);
        }
        match query.query_type {
            // The zone changes with every registration, so a transferred copy would be stale at
            // once; secondaries are not supported.
            RecordType::AXFR | RecordType::IXFR => return (ResponseCode::Refused, Declined),
            RecordType::ANY => return (ResponseCode::NotImp, Declined),
            _ => {}
        }
        let generation = view.generation();
        if query.name.iter().len() == self.origin.iter().len() {
            match query.query_type {
                RecordType::SOA => response.answers.push(self.soa_record(generation, self.ttl)),
                RecordType::NS => {
                    for ns in &self.nameservers {
                        response.answers.push(Record::from_rdata(
                            self.origin.clone(),
                            self.ttl,
                            RData::NS(NS(ns.clone())),
                        ));
                    }
                    // Glue for in-zone nameservers: a resolver needs it to reach them.
                    for (ns, addresses) in &self.in_zone_nameservers {
                        for glue in [RecordType::A, RecordType::AAAA] {
                            response
                                .additionals
                                .extend(self.address_records(ns, glue, addresses));
                        }
                    }
                }
                _ => self.negative(response, generation),
            }
            return (ResponseCode::NoError, Authoritative);
        }
        if let Some(addresses) = self.nameserver_addresses(&query.name) {
            let answers = self.address_records(&query.name, query.query_type, addresses);
            if answers.is_empty() {
                self.negative(response, generation);
            } else {
                response.answers.extend(answers);
            }
            return (ResponseCode::NoError, Authoritative);
        }
        let hostname = self.hostname_of(&query.name);
        let host = hostname
            .as_deref()
            .and_then(|hostname| view.host(hostname))
            .filter(|host| self.serve_offline || host.status == HostStatus::Online);
        let Some(host) = host else {
            self.negative(response, generation);
            // A name with hosts (or nameservers) below it exists, even without records of
            // its own: NODATA, never NXDOMAIN, which would deny the whole subtree (RFC 8020).
            let exists = hostname
                .is_some_and(|hostname| view.has_hosts_under(&hostname, self.serve_offline))
                || self.has_nameserver_below(&query.name);
            let rcode = if exists {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            return (rcode, Authoritative);
        };
        match address_rdata(query.query_type, host.address) {
            Some(rdata) => {
                response
                    .answers
                    .push(Record::from_rdata(query.name.clone(), self.ttl, rdata))
            }
            None => self.negative(response, generation),
        }
        (ResponseCode::NoError, Authoritative)
    }

    /// The registry hostname for a name strictly inside the zone: its labels before the
    /// zone's, lowercase, joined with dots. `None` when no registered host could have it.
    fn hostname_of(&self, name: &Name) -> Option<String> {
        // `iter().len()`, not `num_labels()`, which leaves out a leading `*` label.
        let host_labels = name.iter().len().saturating_sub(self.origin.iter().len());
        let mut hostname = String::with_capacity(name.len());
        for (index, label) in name.iter().take(host_labels).enumerate() {
            // A dot inside a label would alias a different, multi-label hostname.
            if !label.is_ascii() || label.contains(&b'.') {
                return None;
            }
            if index > 0 {
                hostname.push('.');
            }
            hostname.extend(
                label
                    .iter()
                    .map(|byte| char::from(byte.to_ascii_lowercase())),
            );
        }
        Some(hostname)
    }

    /// Makes `response` a negative answer: the SOA in authority with the negative TTL.
    fn negative(&self, response: &mut Message, generation: u64) {
        response
            .authorities
            .push(self.soa_record(generation, self.negative_ttl));
    }

    fn soa_record(&self, generation: u64, ttl: u32) -> Record {
        let mut soa = self.soa.clone();
        soa.serial = self.serial(generation);
        Record::from_rdata(self.origin.clone(), ttl, RData::SOA(soa))
    }
}

/// Parses a configured name; a relative name is taken relative to `origin`.
fn parse_name(key: &'static str, value: &str, origin: &Name) -> Result<Name, ZoneError> {
    let error = |reason: String| ZoneError {
        key,
        value: value.to_owned(),
        reason,
    };
    if value.trim().is_empty() {
        return Err(error("it is empty".to_owned()));
    }
    let name = Name::parse(value, Some(origin)).map_err(|err| error(err.to_string()))?;
    Ok(name.to_lowercase())
}

fn prefixed(label: &str, origin: &Name) -> Result<Name, ZoneError> {
    origin.prepend_label(label).map_err(|err| ZoneError {
        key: "zone",
        value: origin.to_ascii(),
        reason: format!("cannot prefix {label:?}: {err}"),
    })
}

fn saturating_i32(seconds: u32) -> i32 {
    i32::try_from(seconds).unwrap_or(i32::MAX)
}
/// The A record of an IPv4 address for an A question, the AAAA record of an IPv6 one for an
/// AAAA question; `None` for any other pairing.
fn address_rdata(query_type: RecordType, address: IpAddr) -> Option<RData> {
    match (query_type, address.to_canonical()) {
        (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
        (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
        _ => None,
    }
}
