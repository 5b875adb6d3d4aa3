//! Coordinated omission: a server that stalls once for a second must show up in the
//! reported percentiles, because latency counts from the intended send time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::loadgen;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The request (counted over all connections) before whose answer the server stalls.
const STALLED_REQUEST: u64 = 200;
const STALL: Duration = Duration::from_secs(1);
/// Hard bound on frames one connection serves, so a test bug cannot spin forever.
const MAX_FRAMES_PER_CONNECTION: u64 = 100_000;

/// Speaks the registration framing, answers success, and sleeps once for [`STALL`].
async fn stalling_server(listener: TcpListener) {
    let answered = Arc::new(AtomicU64::new(0));
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_connection(stream, Arc::clone(&answered)));
    }
}

async fn serve_connection(mut stream: TcpStream, answered: Arc<AtomicU64>) {
    let _ = stream.set_nodelay(true);
    let body = br#"{"version":"1.0","type":"response","status":"success","message":"Heartbeat","timestamp":"2026-01-01T00:00:00Z"}"#;
    let mut response = (body.len() as u32).to_be_bytes().to_vec();
    response.extend_from_slice(body);
    for _ in 0..MAX_FRAMES_PER_CONNECTION {
        let mut prefix = [0u8; 4];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let mut payload = vec![0u8; u32::from_be_bytes(prefix) as usize];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        if answered.fetch_add(1, Ordering::SeqCst) + 1 == STALLED_REQUEST {
            tokio::time::sleep(STALL).await;
        }
        if stream.write_all(&response).await.is_err() {
            return;
        }
    }
}

#[test]
fn a_one_second_stall_shows_in_p99_where_closed_loop_timing_hides_it() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let target = listener.local_addr().expect("address").to_string();
    runtime.spawn(stalling_server(listener));

    let run = loadgen(&[
        "heartbeat",
        "--target",
        &target,
        "--hosts",
        "1",
        "--rate",
        "200",
        "--duration",
        "3s",
    ]);
    let summary = &run.report().workloads[0].summary;
    assert_eq!(summary.errors, 0, "{:?}", summary.errors_by_kind);
    assert_eq!(
        summary.dropped, 0,
        "the generator caught up after the stall"
    );
    // About 200 requests were due during the stall, a third of the run: they waited up to
    // a second behind the stalled one.
    assert!(
        summary.latency_ms.p99 >= 800.0,
        "p99 from the intended send time must reflect the 1 s stall, got {} ms",
        summary.latency_ms.p99
    );
    assert!(
        summary.latency_ms.p90 >= 300.0,
        "p90 must reflect the queue behind the stall, got {} ms",
        summary.latency_ms.p90
    );
    // Timed from the actual send, only one request in 600 saw the stall: a closed-loop
    // measurement reports a normal p99.
    assert!(
        summary.service_latency_ms.p99 < 200.0,
        "closed-loop p99 should look normal, got {} ms",
        summary.service_latency_ms.p99
    );
    assert!(summary.service_latency_ms.max >= 900.0);
}
