//! Criterion benchmark of the DNS answer path: request bytes in, response bytes out, through
//! [`Answerer::answer`] over a registry of 10 000 hosts (no sockets).

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prism_server::config::AuthMode;
use prism_server::dns::{Answerer, Transport};
use prism_server::protocol::Status;
use prism_server::store::{MemoryStore, Store};
use prism_server::{Config, Core, Metrics, SystemClock};

const HOSTS: u32 = 10_000;

fn registration(hostname: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "1.0",
        "type": "registration",
        "timestamp": "2026-11-26T10:00:00Z",
        "hostname": hostname,
    }))
    .expect("json")
}

fn answerer() -> Answerer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut config = Config::default();
        config.auth.mode = AuthMode::Open;
        config.rate_limit.registrations_per_minute = 0;
        let core = Core::start(
            config,
            Arc::new(MemoryStore::new()) as Arc<dyn Store>,
            Arc::new(SystemClock),
            Metrics::new().expect("metrics"),
        )
        .await
        .expect("core");
        for n in 0..HOSTS {
            let address = IpAddr::from((0x0A00_0000 + n).to_be_bytes());
            let reply = core
                .handle_frame(&registration(&format!("host-{n}")), address)
                .await;
            assert_eq!(
                reply.response.status,
                Status::Success,
                "{:?}",
                reply.response
            );
        }
        Answerer::new(core).expect("zone")
    })
}

fn query(name: &str, query_type: RecordType) -> Vec<u8> {
    let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.queries.push(Query::query(
        Name::from_ascii(name).expect("name"),
        query_type,
    ));
    message.edns = Some(Edns::new());
    message.to_vec().expect("query")
}

fn answer_path(c: &mut Criterion) {
    let answerer = answerer();
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
        assert!(answerer.answer(request, Transport::Udp).is_some());
        group.bench_function(*label, |b| {
            b.iter(|| answerer.answer(black_box(request), Transport::Udp));
        });
    }
    group.finish();
}

criterion_group!(benches, answer_path);
criterion_main!(benches);
