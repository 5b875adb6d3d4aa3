//! Criterion benchmarks of the registration hot path: frame decode/encode, and a whole frame
//! through [`prism_server::Core::handle_frame`] for a new host versus a heartbeat.

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prism_benches::{
    host_address, host_name, open_node, register_through_core, registration_payload, runtime,
};
use prism_server::core::protocol::frame::{FrameDecoder, encode};
use prism_server::core::protocol::{Request, Status};
use prism_server::{Metrics, SystemClock};

/// Hosts that heartbeat in the heartbeat benchmark, cycled in order.
const HEARTBEATING_HOSTS: u32 = 1_000;

fn framing(c: &mut Criterion) {
    let payload = registration_payload("web-01.example");
    let decoder = FrameDecoder::new(64 * 1024);
    let mut framed = BytesMut::new();
    encode(&payload, &mut framed);

    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode", |b| {
        b.iter_batched(
            || framed.clone(),
            |mut buf| decoder.decode(black_box(&mut buf)),
            BatchSize::SmallInput,
        );
    });
    let mut out = BytesMut::with_capacity(1024);
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode(black_box(&payload), &mut out);
        });
    });
    group.bench_function("parse_request", |b| {
        b.iter(|| Request::parse(black_box(&payload)));
    });
    group.finish();
}

fn registration(c: &mut Criterion) {
    let rt = runtime();
    let core = rt.block_on(async {
        let core = open_node(
            Metrics::new().expect("metrics registry"),
            Arc::new(SystemClock),
        )
        .await
        .frames();
        register_through_core(&core, 0..HEARTBEATING_HOSTS).await;
        core
    });

    let mut group = c.benchmark_group("handle_frame");
    group.throughput(Throughput::Elements(1));
    let mut next_new_host = HEARTBEATING_HOSTS;
    group.bench_function("new_host", |b| {
        b.iter_batched(
            || {
                next_new_host += 1;
                (
                    registration_payload(&host_name(next_new_host)),
                    host_address(next_new_host),
                )
            },
            |(payload, address)| {
                let reply = rt.block_on(core.handle_frame(&payload, address));
                debug_assert_eq!(reply.response.status, Status::Success);
                reply
            },
            BatchSize::SmallInput,
        );
    });
    let heartbeats: Vec<_> = (0..HEARTBEATING_HOSTS)
        .map(|n| (registration_payload(&host_name(n)), host_address(n)))
        .collect();
    let mut turn = 0usize;
    group.bench_function("heartbeat", |b| {
        b.iter(|| {
            let (payload, address) = &heartbeats[turn % heartbeats.len()];
            turn += 1;
            rt.block_on(core.handle_frame(black_box(payload), *address))
        });
    });
    group.finish();
}

criterion_group!(benches, framing, registration);
criterion_main!(benches);
