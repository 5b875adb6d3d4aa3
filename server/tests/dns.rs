//! DNS over real UDP and TCP sockets on loopback, asked with hickory-net's client: what a
//! registered, moved, offline, IPv6 or unknown host resolves to, and how the zone refuses,
//! truncates and counts.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use prism_server::Config;
use prism_server::config::Nameserver;
use prism_testkit::TestServer;
use prism_testkit::dns::{answer_addresses, assert_rcode, query, udp_client};
use prism_testkit::setup::open_config;

const ZONE: &str = "managed.prism.local.";

fn fqdn(host: &str) -> String {
    format!("{host}.{ZONE}")
}

/// A server with DNS on 127.0.0.1.
async fn dns_server(config: Config) -> TestServer {
    TestServer::builder(config).dns().start().await
}

#[tokio::test]
async fn registered_host_resolves_to_its_address_with_the_configured_ttl() {
    let mut config = open_config();
    config.dns.ttl = 42;
    let server = dns_server(config).await;
    server.register("web-01", None).await;

    let response = query(&mut server.udp_client(), &fqdn("web-01"), RecordType::A).await;

    assert_rcode(&response, ResponseCode::NoError);
    assert!(response.metadata.authoritative, "AA must be set");
    assert!(
        !response.metadata.recursion_available,
        "RA must be clear: no recursion"
    );
    assert_eq!(
        answer_addresses(&response),
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    assert_eq!(response.answers[0].ttl, 42, "answer TTL is dns.ttl");
    server.shutdown().await;
}

#[tokio::test]
async fn moved_host_resolves_to_its_new_address_on_the_next_query() {
    let server = dns_server(open_config()).await;
    let mut client = server.udp_client();
    server
        .register_from(IpAddr::from([127, 0, 0, 1]), "mover", None)
        .await;
    let before = query(&mut client, &fqdn("mover"), RecordType::A).await;
    assert_eq!(
        answer_addresses(&before),
        vec![IpAddr::from([127, 0, 0, 1])]
    );

    server
        .register_from(IpAddr::from([127, 0, 0, 2]), "mover", None)
        .await;
    let after = query(&mut client, &fqdn("mover"), RecordType::A).await;

    assert_eq!(
        answer_addresses(&after),
        vec![IpAddr::from([127, 0, 0, 2])],
        "the answer must follow the move at once"
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn offline_host_answers_nxdomain() {
    let mut config = open_config();
    config.heartbeat.interval = 1;
    config.heartbeat.timeout_multiplier = 1;
    config.heartbeat.grace_period = 0;
    config.heartbeat.check_interval = 0.05;
    let server = dns_server(config).await;
    let mut client = server.udp_client();
    server.register("sleepy", None).await;
    let online = query(&mut client, &fqdn("sleepy"), RecordType::A).await;
    assert_rcode(&online, ResponseCode::NoError);

    // Offline 1 s after the heartbeat; poll for at most 5 s.
    let mut last = online;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = query(&mut client, &fqdn("sleepy"), RecordType::A).await;
        if last.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
    }

    assert_rcode(&last, ResponseCode::NXDomain);
    assert!(last.answers.is_empty(), "no address for an offline host");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn offline_host_keeps_its_address_when_serve_offline_is_set() {
    let mut config = open_config();
    config.heartbeat.interval = 1;
    config.heartbeat.timeout_multiplier = 1;
    config.heartbeat.grace_period = 0;
    config.heartbeat.check_interval = 0.05;
    config.dns.serve_offline = true;
    let server = dns_server(config).await;
    server.register("sleepy", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.node().registry().counts().offline == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "host never went offline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let response = query(&mut server.udp_client(), &fqdn("sleepy"), RecordType::A).await;

    assert_rcode(&response, ResponseCode::NoError);
    assert_eq!(
        answer_addresses(&response),
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_name_with_hosts_below_it_is_nodata_until_they_go_offline() {
    let mut config = open_config();
    config.heartbeat.interval = 1;
    config.heartbeat.timeout_multiplier = 1;
    config.heartbeat.grace_period = 0;
    config.heartbeat.check_interval = 0.05;
    let server = dns_server(config).await;
    let mut client = server.udp_client();
    server.register("db.eu-west", None).await;

    let empty_non_terminal = query(&mut client, &fqdn("eu-west"), RecordType::A).await;
    assert_rcode(&empty_non_terminal, ResponseCode::NoError);
    assert!(
        empty_non_terminal.answers.is_empty(),
        "{empty_non_terminal:?}"
    );
    assert!(
        matches!(
            empty_non_terminal.authorities.first().map(|r| &r.data),
            Some(RData::SOA(_))
        ),
        "NODATA carries the SOA: {empty_non_terminal:?}"
    );
    let upper = query(&mut client, &fqdn("EU-WEST"), RecordType::AAAA).await;
    assert_rcode(&upper, ResponseCode::NoError);
    let unrelated = query(&mut client, &fqdn("us-east"), RecordType::A).await;
    assert_rcode(&unrelated, ResponseCode::NXDomain);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.node().registry().counts().offline == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "host never went offline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hidden = query(&mut client, &fqdn("eu-west"), RecordType::A).await;
    assert_rcode(&hidden, ResponseCode::NXDomain);
    server.shutdown().await;
}

#[tokio::test]
async fn ipv6_host_answers_aaaa_and_nodata_for_a() {
    let server = TestServer::builder(open_config())
        .host(IpAddr::V6(Ipv6Addr::LOCALHOST))
        .dns()
        .start()
        .await;
    server.register("v6-host", None).await;
    let mut client = server.udp_client();

    let aaaa = query(&mut client, &fqdn("v6-host"), RecordType::AAAA).await;
    let a = query(&mut client, &fqdn("v6-host"), RecordType::A).await;

    assert_rcode(&aaaa, ResponseCode::NoError);
    assert_eq!(
        answer_addresses(&aaaa),
        vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]
    );
    assert_rcode(&a, ResponseCode::NoError);
    assert!(a.answers.is_empty(), "NODATA has an empty answer: {a:?}");
    assert!(
        matches!(a.authorities.first().map(|r| &r.data), Some(RData::SOA(_))),
        "NODATA carries the SOA in authority: {a:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_name_answers_nxdomain_with_soa_in_authority() {
    let mut config = open_config();
    config.dns.ttl = 300;
    config.dns.minimum = 30;
    let server = dns_server(config).await;

    let response = query(&mut server.udp_client(), &fqdn("nobody"), RecordType::A).await;

    assert_rcode(&response, ResponseCode::NXDomain);
    assert!(response.metadata.authoritative, "AA must be set");
    let soa = response.authorities.first().expect("SOA in authority");
    assert!(matches!(soa.data, RData::SOA(_)), "authority: {soa:?}");
    assert_eq!(soa.name.to_ascii(), ZONE, "the SOA is the zone's");
    assert_eq!(
        soa.ttl, 30,
        "negative TTL is min(SOA minimum, SOA TTL), RFC 2308"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn name_outside_the_zone_is_refused() {
    let server = dns_server(open_config()).await;

    let response = query(&mut server.udp_client(), "example.com.", RecordType::A).await;

    assert_rcode(&response, ResponseCode::Refused);
    assert!(!response.metadata.authoritative, "not authoritative there");
    assert!(response.answers.is_empty() && response.authorities.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn query_over_tcp_is_answered() {
    let server = dns_server(open_config()).await;
    server.register("tcp-host", None).await;
    let mut client = server.tcp_client().await;

    let first = query(&mut client, &fqdn("tcp-host"), RecordType::A).await;
    let second = query(&mut client, ZONE, RecordType::SOA).await;

    assert_eq!(answer_addresses(&first), vec![IpAddr::from([127, 0, 0, 1])]);
    assert!(
        matches!(second.answers.first().map(|r| &r.data), Some(RData::SOA(_))),
        "a second query on the same connection is answered: {second:?}"
    );
    server.shutdown().await;
}

/// A zone served by a dozen name servers of different providers with long names: its NS
/// answer is legitimately larger than 512 bytes, even with name compression.
fn many_nameservers() -> Vec<Nameserver> {
    (1..=12)
        .map(|n| {
            Nameserver::Name(format!(
                "ns.name-server-number-{n:02}-with-a-long-label.provider-{n:02}.test-{n:02}."
            ))
        })
        .collect()
}

#[tokio::test]
async fn udp_answer_over_512_bytes_without_edns_sets_tc() {
    let mut config = open_config();
    config.dns.nameservers = many_nameservers();
    let server = dns_server(config).await;
    let mut plain = server.udp_client();
    plain.disable_edns();

    let truncated = query(&mut plain, ZONE, RecordType::NS).await;
    let with_edns = query(&mut server.udp_client(), ZONE, RecordType::NS).await;
    let over_tcp = query(&mut server.tcp_client().await, ZONE, RecordType::NS).await;

    assert!(
        truncated.metadata.truncation,
        "TC must be set: {truncated:?}"
    );
    assert!(
        truncated.answers.is_empty(),
        "a TC answer carries no records"
    );
    assert!(!with_edns.metadata.truncation, "fits in the EDNS(0) size");
    assert_eq!(with_edns.answers.len(), 12);
    assert!(!over_tcp.metadata.truncation, "TCP is never truncated");
    assert_eq!(over_tcp.answers.len(), 12);
    server.shutdown().await;
}

#[tokio::test]
async fn apex_answers_soa_and_ns_and_the_serial_grows_with_the_zone() {
    let server = dns_server(open_config()).await;
    let mut client = server.udp_client();
    let serial = |response: &hickory_proto::op::DnsResponse| match response.answers.first() {
        Some(record) => match &record.data {
            RData::SOA(soa) => soa.serial,
            other => panic!("expected an SOA, got {other:?}"),
        },
        None => panic!("no SOA answer: {response:?}"),
    };

    let before = serial(&query(&mut client, ZONE, RecordType::SOA).await);
    server.register("newcomer", None).await;
    let after = serial(&query(&mut client, ZONE, RecordType::SOA).await);
    let ns = query(&mut client, ZONE, RecordType::NS).await;

    assert!(
        after.wrapping_sub(before) as i32 > 0,
        "serial {after} must be after {before}"
    );
    match ns.answers.first().map(|record| &record.data) {
        Some(RData::NS(ns)) => assert_eq!(ns.0.to_ascii(), "ns1.managed.prism.local."),
        other => panic!("expected the default NS, got {other:?}"),
    }
    server.shutdown().await;
}

/// The A and AAAA records of the additional section, by owner name.
fn glue(response: &hickory_proto::op::DnsResponse) -> Vec<(String, IpAddr)> {
    response
        .additionals
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some((record.name.to_ascii(), IpAddr::V4(a.0))),
            RData::AAAA(aaaa) => Some((record.name.to_ascii(), IpAddr::V6(aaaa.0))),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_default_nameserver_resolves_to_this_node_and_is_glued() {
    let mut config = open_config();
    // The node's address is `server.host` when it names one (else the primary interface's).
    config.server.host = IpAddr::from([127, 0, 0, 1]);
    let server = dns_server(config).await;
    let mut client = server.udp_client();
    let ns1 = format!("ns1.{ZONE}");

    let a = query(&mut client, &ns1, RecordType::A).await;
    let ns = query(&mut client, ZONE, RecordType::NS).await;
    let aaaa = query(&mut client, &ns1, RecordType::AAAA).await;

    assert_rcode(&a, ResponseCode::NoError);
    assert_eq!(answer_addresses(&a), vec![IpAddr::from([127, 0, 0, 1])]);
    assert!(a.metadata.authoritative, "AA must be set");
    assert_eq!(glue(&ns), vec![(ns1.clone(), IpAddr::from([127, 0, 0, 1]))]);
    assert_rcode(&aaaa, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty(), "no IPv6 address: NODATA, {aaaa:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn configured_nameservers_answer_their_addresses_and_only_in_zone_ones_are_glued() {
    let mut config = open_config();
    let v6: IpAddr = "2001:db8::53".parse().expect("v6");
    config.dns.nameservers = vec![
        Nameserver::WithAddresses {
            name: "ns1".into(),
            addresses: vec![IpAddr::from([192, 0, 2, 1]), v6],
        },
        Nameserver::WithAddresses {
            name: format!("ns2.{ZONE}"),
            addresses: vec![IpAddr::from([192, 0, 2, 2])],
        },
        Nameserver::from("ns.outside.example."),
    ];
    let server = dns_server(config).await;
    let mut client = server.udp_client();
    let (ns1, ns2) = (format!("ns1.{ZONE}"), format!("ns2.{ZONE}"));

    let a = query(&mut client, &ns1, RecordType::A).await;
    let aaaa = query(&mut client, &ns1, RecordType::AAAA).await;
    let second = query(&mut client, &ns2.to_uppercase(), RecordType::A).await;
    let ns = query(&mut client, ZONE, RecordType::NS).await;

    assert_eq!(answer_addresses(&a), vec![IpAddr::from([192, 0, 2, 1])]);
    assert_eq!(answer_addresses(&aaaa), vec![v6]);
    assert_eq!(
        answer_addresses(&second),
        vec![IpAddr::from([192, 0, 2, 2])]
    );
    let names: Vec<String> = ns
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::NS(ns) => Some(ns.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        vec![ns1.clone(), ns2.clone(), "ns.outside.example.".into()]
    );
    assert_eq!(
        glue(&ns),
        vec![
            (ns1.clone(), IpAddr::from([192, 0, 2, 1])),
            (ns1.clone(), v6),
            (ns2.clone(), IpAddr::from([192, 0, 2, 2])),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let server = dns_server(open_config()).await;
    server.register("web-01", None).await;

    let response = query(
        &mut server.udp_client(),
        "WeB-01.MANAGED.Prism.Local.",
        RecordType::A,
    )
    .await;

    assert_eq!(
        answer_addresses(&response),
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    assert_eq!(
        response.answers[0].name.to_ascii(),
        "WeB-01.MANAGED.Prism.Local.",
        "the owner name echoes the question's case"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn zone_transfers_are_refused_and_any_is_not_implemented() {
    let server = dns_server(open_config()).await;
    let mut tcp = server.tcp_client().await;

    let axfr = query(&mut tcp, ZONE, RecordType::AXFR).await;
    let any = query(&mut server.udp_client(), ZONE, RecordType::ANY).await;

    assert_rcode(&axfr, ResponseCode::Refused);
    assert_rcode(&any, ResponseCode::NotImp);
    server.shutdown().await;
}

#[tokio::test]
async fn every_query_is_counted_by_type_and_rcode() {
    let server = dns_server(open_config()).await;
    server.register("counted", None).await;
    let mut client = server.udp_client();

    query(&mut client, &fqdn("counted"), RecordType::A).await;
    query(&mut client, &fqdn("counted"), RecordType::A).await;
    query(&mut client, &fqdn("missing"), RecordType::AAAA).await;
    query(&mut client, "example.org.", RecordType::TXT).await;

    let count = |query_type: &str, status: &str| {
        server
            .node()
            .metrics()
            .dns_queries
            .with_label_values(&[query_type, status])
            .get()
    };
    assert_eq!(count("A", "NOERROR"), 2);
    assert_eq!(count("AAAA", "NXDOMAIN"), 1);
    assert_eq!(count("TXT", "REFUSED"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn udp_answer_threads_stop_when_the_server_shuts_down() {
    let server = dns_server(open_config()).await;
    server.register("threaded", None).await;
    let dns = server.dns_addr();
    let before = query(&mut udp_client(dns), &fqdn("threaded"), RecordType::A).await;
    assert_eq!(
        answer_addresses(&before),
        vec![IpAddr::from([127, 0, 0, 1])]
    );

    // `shutdown` fails the test unless serve returns in time, which it only does once every
    // UDP thread's loop has returned.
    server.shutdown().await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut question = hickory_proto::op::Message::query();
    question.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(fqdn("threaded")).expect("name"),
        RecordType::A,
    ));
    socket
        .send_to(&question.to_vec().expect("encode"), dns)
        .await
        .expect("send");
    let mut buf = [0_u8; 512];
    let answer = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "a DNS answer arrived after shutdown: the UDP threads kept running"
    );
}
