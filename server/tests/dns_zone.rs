//! The zone answerer on its own: parsed hickory messages in, responses out, over a fixed
//! view of hosts (no sockets, no registry).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use prism_server::config::DnsSection;
use prism_server::core::dns::{Zone, ZoneView};
use prism_server::core::registry::{HostStatus, HostView};

/// Hosts by lowercase name, and a fixed generation.
struct Hosts(HashMap<&'static str, (IpAddr, HostStatus)>);

impl ZoneView for Hosts {
    fn host(&self, hostname: &str) -> Option<HostView> {
        self.0.get(hostname).map(|&(address, status)| HostView {
            hostname: hostname.into(),
            owner: Arc::from("owner"),
            address,
            status,
            first_seen: SystemTime::UNIX_EPOCH,
            last_seen: SystemTime::UNIX_EPOCH,
        })
    }

    fn generation(&self) -> u64 {
        7
    }

    fn has_hosts_under(&self, hostname: &str, include_offline: bool) -> bool {
        let suffix = format!(".{hostname}");
        self.0.iter().any(|(name, (_, status))| {
            name.ends_with(&suffix) && (include_offline || *status == HostStatus::Online)
        })
    }
}

fn hosts() -> Hosts {
    Hosts(HashMap::from([
        ("web-01", (IpAddr::from([192, 0, 2, 1]), HostStatus::Online)),
        (
            "db.eu-west",
            (IpAddr::from([192, 0, 2, 2]), HostStatus::Online),
        ),
        ("gone", (IpAddr::from([192, 0, 2, 3]), HostStatus::Offline)),
        (
            "app.closed-site",
            (IpAddr::from([192, 0, 2, 4]), HostStatus::Offline),
        ),
    ]))
}

fn zone() -> Zone {
    Zone::from_config(&DnsSection::default(), 1000).expect("default zone")
}

fn request(name: &str, query_type: RecordType) -> Message {
    let mut message = Message::new(99, MessageType::Query, OpCode::Query);
    message.queries.push(Query::query(
        Name::from_ascii(name).expect("name"),
        query_type,
    ));
    message
}

fn respond(request: &Message) -> Message {
    zone()
        .respond(request, &hosts())
        .expect("queries are answered")
}

#[test]
fn hostnames_with_dots_resolve() {
    let response = respond(&request("db.eu-west.managed.prism.local.", RecordType::A));
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(
        matches!(response.answers[0].data, RData::A(a) if a.0 == std::net::Ipv4Addr::new(192, 0, 2, 2)),
        "{response:?}"
    );
}

#[test]
fn offline_hosts_are_nxdomain_by_default() {
    let response = respond(&request("gone.managed.prism.local.", RecordType::A));
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn an_empty_non_terminal_is_nodata_not_nxdomain() {
    for query_type in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
        let response = respond(&request("eu-west.managed.prism.local.", query_type));
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NoError,
            "{query_type}: eu-west has db.eu-west below it (RFC 8020)"
        );
        assert!(response.answers.is_empty(), "{response:?}");
        assert!(response.metadata.authoritative);
        assert!(
            matches!(
                response.authorities.first().map(|r| &r.data),
                Some(RData::SOA(_))
            ),
            "SOA in authority: {response:?}"
        );
    }
}

#[test]
fn names_with_no_host_below_them_stay_nxdomain() {
    for name in [
        "us-east.managed.prism.local.",
        "west.managed.prism.local.",
        "x.db.eu-west.managed.prism.local.",
        "eu.managed.prism.local.",
    ] {
        let response = respond(&request(name, RecordType::A));
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
    }
}

#[test]
fn offline_hosts_reveal_no_subtree_unless_offline_hosts_are_served() {
    let closed = request("closed-site.managed.prism.local.", RecordType::A);
    let hidden = respond(&closed);
    assert_eq!(hidden.metadata.response_code, ResponseCode::NXDomain);
    let serving_offline = Zone::from_config(
        &DnsSection {
            serve_offline: true,
            ..DnsSection::default()
        },
        1000,
    )
    .expect("zone");
    let shown = serving_offline
        .respond(&closed, &hosts())
        .expect("answered");
    assert_eq!(shown.metadata.response_code, ResponseCode::NoError);
    assert!(shown.answers.is_empty());
}

#[test]
fn a_wildcard_label_is_an_ordinary_unknown_name_not_the_apex() {
    let response = respond(&request("*.managed.prism.local.", RecordType::SOA));
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(response.answers.is_empty());
}

#[test]
fn soa_serial_is_the_base_plus_the_generation() {
    let response = respond(&request("managed.prism.local.", RecordType::SOA));
    match &response.answers[0].data {
        RData::SOA(soa) => assert_eq!(soa.serial, 1007),
        other => panic!("expected an SOA, got {other:?}"),
    }
    assert_eq!(zone().serial(u64::from(u32::MAX)), 999, "wraps modulo 2^32");
}

#[test]
fn apex_a_query_is_nodata() {
    let response = respond(&request("managed.prism.local.", RecordType::A));
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities.len(), 1, "SOA in authority");
}

#[test]
fn other_classes_are_refused() {
    let mut chaos = request("web-01.managed.prism.local.", RecordType::TXT);
    chaos.queries[0].query_class = DNSClass::CH;
    assert_eq!(
        respond(&chaos).metadata.response_code,
        ResponseCode::Refused
    );
}

#[test]
fn two_questions_are_a_format_error() {
    let mut two = request("web-01.managed.prism.local.", RecordType::A);
    two.queries.push(two.queries[0].clone());
    assert_eq!(respond(&two).metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn opcodes_other_than_query_are_not_implemented() {
    let mut notify = request("managed.prism.local.", RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    let response = respond(&notify);
    assert_eq!(response.metadata.response_code, ResponseCode::NotImp);
    assert!(!response.metadata.authoritative);
}

#[test]
fn edns_version_above_zero_gets_badvers_with_an_opt_record() {
    let mut future = request("web-01.managed.prism.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    future.edns = Some(edns);
    let response = respond(&future);
    assert_eq!(response.metadata.response_code, ResponseCode::BADVERS);
    assert_eq!(response.edns.as_ref().map(Edns::version), Some(0));
}

#[test]
fn responses_are_not_answered() {
    let mut response = request("web-01.managed.prism.local.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    assert!(zone().respond(&response, &hosts()).is_none());
}

#[test]
fn recursion_desired_is_echoed_and_never_available() {
    let mut asked = request("web-01.managed.prism.local.", RecordType::A);
    asked.metadata.recursion_desired = true;
    let response = respond(&asked);
    assert!(response.metadata.recursion_desired);
    assert!(!response.metadata.recursion_available);
    assert!(response.metadata.authoritative);
}

#[test]
fn invalid_zone_names_are_rejected_with_the_key() {
    let config = DnsSection {
        zone: "bad..zone".to_owned(),
        ..DnsSection::default()
    };
    let err = Zone::from_config(&config, 0).expect_err("an empty label is invalid");
    assert!(err.to_string().contains("dns.zone"), "{err}");
}
