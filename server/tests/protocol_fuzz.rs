//! Property: arbitrary byte streams never crash the server, and every connection ends with
//! whole response frames followed by a close.

use prism_server::core::protocol::{Response, Status};
use prism_testkit::protocol::{frame, registration};
use prism_testkit::setup::open_config;
use prism_testkit::{IO_TIMEOUT, TestServer};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `input`, half-closes, and returns everything the server wrote before closing.
async fn exchange(server: &TestServer, input: &[u8]) -> Vec<u8> {
    let mut client = server.connect().await;
    let stream = client.stream();
    // The server may close early (framing error) and reset the rest of our write.
    let _ = stream.write_all(input).await;
    let _ = stream.shutdown().await;
    let mut output = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, stream.read_to_end(&mut output))
        .await
        .expect("the server closes the connection in bounded time")
        .ok();
    output
}

/// Splits `output` into response frames; fails on a partial frame or a non-response.
fn responses(output: &[u8]) -> Result<Vec<Response>, String> {
    let mut rest = output;
    let mut parsed = Vec::new();
    while !rest.is_empty() {
        let header: [u8; 4] = rest
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or("partial length prefix")?;
        let len = u32::from_be_bytes(header) as usize;
        let payload = rest.get(4..4 + len).ok_or("partial frame")?;
        parsed.push(serde_json::from_slice(payload).map_err(|e| format!("not a response: {e}"))?);
        rest = &rest[4 + len..];
    }
    Ok(parsed)
}

fn byte_streams() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Plausible frames with arbitrary payloads reach the JSON layer, not just the length check.
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..4)
            .prop_map(|payloads| payloads.iter().flat_map(|p| frame(p)).collect()),
        proptest::collection::vec("[a-zA-Z0-9_.-]{0,70}", 1..4).prop_map(|names| names
            .iter()
            .flat_map(|n| frame(&registration(n, None)))
            .collect()),
    ]
}

#[test]
fn arbitrary_byte_streams_end_in_responses_then_close_and_never_crash_the_server() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(TestServer::builder(open_config()).start());
    let config = ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    };
    proptest!(config, |(input in byte_streams())| {
        let output = runtime.block_on(exchange(&server, &input));
        let parsed = responses(&output).map_err(TestCaseError::fail)?;
        for response in &parsed {
            prop_assert_eq!(&response.version, "1.0");
            prop_assert!(!response.message.is_empty());
        }
    });
    runtime.block_on(async {
        let mut client = server.connect().await;
        let alive = client.call(&registration("still-alive", None)).await;
        assert_eq!(
            alive.status,
            Status::Success,
            "the server survived: {alive:?}"
        );
        server.shutdown().await;
    });
}
