//! Criterion benchmarks of the read paths over 10 000 registered hosts: DNS answers (request
//! bytes in, response bytes out through [`Answerer::answer`], no sockets) and the `/metrics`
//! text exposition ([`Metrics::encode`]).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prism_benches::filled_node;
use prism_server::Metrics;
use prism_server::core::dns::Transport;

/// Hosts registered before measuring.
const HOSTS: u32 = 10_000;
/// The client every benchmark query comes from (response rate limiting is off here).
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn query(name: &str, query_type: RecordType) -> Vec<u8> {
    let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.queries.push(Query::query(
        Name::from_ascii(name).expect("query name"),
        query_type,
    ));
    message.edns = Some(Edns::new());
    message.to_vec().expect("query encodes")
}

fn dns_answers(c: &mut Criterion) {
    let answerer = filled_node(HOSTS)
        .answerer(&[])
        .expect("zone over the registry");
    let mut group = c.benchmark_group("dns_answer");
    group.throughput(Throughput::Elements(1));
    let cases = [
        (
            "a_hit",
            query("host-4242.managed.prism.local.", RecordType::A),
        ),
        (
            "nxdomain",
            query("nobody.managed.prism.local.", RecordType::A),
        ),
        (
            "nodata_aaaa",
            query("host-4242.managed.prism.local.", RecordType::AAAA),
        ),
        ("apex_soa", query("managed.prism.local.", RecordType::SOA)),
        ("refused", query("example.com.", RecordType::A)),
    ];
    for (label, request) in &cases {
        assert!(
            answerer.answer(request, Transport::Udp, CLIENT).is_some(),
            "{label}: the answerer must reply"
        );
        group.bench_function(*label, |b| {
            b.iter(|| answerer.answer(black_box(request), Transport::Udp, CLIENT));
        });
    }
    group.finish();
}

fn metrics_encoding(c: &mut Criterion) {
    let node = filled_node(HOSTS);
    let page = node.metrics().encode().expect("metrics encode");
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.bench_function("encode_with_10k_hosts", |b| {
        b.iter(|| node.metrics().encode());
    });
    group.finish();
}

/// The metric updates one heartbeat makes (Core::handle_frame and Registry): the message
/// counter and duration, the update counter and the three host gauges. Against
/// `handle_frame/heartbeat` this bounds what metrics cost per heartbeat, since the server has
/// no switch to turn them off.
fn metrics_per_heartbeat(c: &mut Criterion) {
    let metrics = Metrics::new().expect("metrics registry");
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(1));
    group.bench_function("record_one_heartbeat", |b| {
        b.iter(|| {
            metrics
                .messages_processed
                .with_label_values(&["registration", "success"])
                .inc();
            metrics
                .message_duration
                .with_label_values(&["registration"])
                .observe(black_box(0.000_05));
            metrics.host_updates.with_label_values(&["heartbeat"]).inc();
            metrics.registered_hosts.set(black_box(10_000));
            metrics.online_hosts.set(black_box(9_000));
            metrics.offline_hosts.set(black_box(1_000));
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    dns_answers,
    metrics_encoding,
    metrics_per_heartbeat
);
criterion_main!(benches);
