//! Malformed DNS messages never crash the server: each gets FORMERR (when its id is
//! readable) or is dropped, both in the answerer itself and over a real UDP socket, after
//! which the server still answers good queries.

use std::sync::{Arc, OnceLock};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use prism_server::Node;
use prism_server::core::dns::{Answerer, Transport};
use prism_testkit::dns::name;
use prism_testkit::setup::open_config;
use prism_testkit::{IO_TIMEOUT, TestServer};
use proptest::prelude::*;
use tokio::net::UdpSocket;

/// A 12-byte query header: id 0xBEEF, RD set, the given question count, no records.
fn header(questions: u16) -> Vec<u8> {
    let mut bytes = vec![0xBE, 0xEF, 0x01, 0x00];
    bytes.extend_from_slice(&questions.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    bytes
}

/// A header claiming one question, followed by `question` bytes.
fn with_question(question: &[u8]) -> Vec<u8> {
    let mut bytes = header(1);
    bytes.extend_from_slice(question);
    bytes
}

/// Malformed messages whose header is intact, with what makes each malformed.
fn malformed_with_header() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("no question although one is announced", header(1)),
        ("zero questions", header(0)),
        (
            "label length beyond the message",
            with_question(&[20, b'a', b'b', b'c']),
        ),
        (
            "label length in the reserved 64..191 range",
            with_question(&[0x45, b'a', 0, 0, 1, 0, 1]),
        ),
        (
            "compression pointer to itself",
            with_question(&[0xC0, 12, 0, 1, 0, 1]),
        ),
        (
            "compression pointer loop between two names",
            with_question(&[1, b'a', 0xC0, 12, 0, 1, 0, 1]),
        ),
        (
            "compression pointer forward, past the end",
            with_question(&[0xC0, 0xFF, 0, 1, 0, 1]),
        ),
        (
            "question without type and class",
            with_question(&[3, b'w', b'w', b'w', 0]),
        ),
        ("announced answer record missing", missing_answer_record()),
    ]
}

/// A well-formed question whose header also announces an answer record that is absent.
fn missing_answer_record() -> Vec<u8> {
    let mut bytes = with_question(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
    bytes[7] = 1;
    bytes
}

/// Where every query of these tests comes from.
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A node whose answerer takes thousands of queries from one client: response rate limiting
/// (tested on its own) is off.
async fn start_core() -> Arc<Node> {
    let mut config = open_config();
    config.dns.rrl_responses_per_second = 0;
    TestServer::builder(config).start_node().await
}

async fn answerer() -> Answerer {
    start_core()
        .await
        .answerer(&[])
        .expect("default zone is valid")
}

/// One answerer shared by every property-test case.
fn shared_answerer() -> &'static Answerer {
    static ANSWERER: OnceLock<Answerer> = OnceLock::new();
    ANSWERER.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(answerer())
    })
}

fn good_query(id: u16) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message
        .queries
        .push(Query::query(name("managed.prism.local."), RecordType::SOA));
    message.edns = Some(Edns::new());
    message.to_vec().expect("encodable query")
}

#[tokio::test]
async fn messages_shorter_than_a_header_are_dropped() {
    let answerer = answerer().await;
    for len in 0..12 {
        let bytes = vec![0xAB; len];
        assert_eq!(
            answerer.answer(&bytes, Transport::Udp, CLIENT),
            None,
            "a {len}-byte message has no readable id and must be dropped"
        );
    }
}

#[tokio::test]
async fn malformed_queries_with_a_readable_header_get_formerr() {
    let core = start_core().await;
    let answerer = core.answerer(&[]).expect("default zone is valid");
    for (what, bytes) in malformed_with_header() {
        let response = answerer
            .answer(&bytes, Transport::Udp, CLIENT)
            .unwrap_or_else(|| panic!("{what}: expected FORMERR, got nothing"));
        let response = Message::from_vec(&response)
            .unwrap_or_else(|err| panic!("{what}: unparseable response: {err}"));
        assert_eq!(response.metadata.id, 0xBEEF, "{what}: the id is echoed");
        assert_eq!(
            response.metadata.message_type,
            MessageType::Response,
            "{what}"
        );
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::FormErr,
            "{what}: {response:?}"
        );
    }
    let formerr_without_question = core
        .metrics()
        .dns_queries
        .with_label_values(&["NONE", "FORMERR"])
        .get();
    assert!(
        formerr_without_question >= 2,
        "FORMERR without a readable question is counted as query_type NONE"
    );
}

#[tokio::test]
async fn responses_are_never_answered() {
    let answerer = answerer().await;
    let mut response = good_query(7);
    response[2] |= 0x80;
    assert_eq!(answerer.answer(&response, Transport::Udp, CLIENT), None);
    let mut broken_response = header(1);
    broken_response[2] |= 0x80;
    assert_eq!(
        answerer.answer(&broken_response, Transport::Udp, CLIENT),
        None
    );
}

#[tokio::test]
async fn server_keeps_answering_after_malformed_datagrams() {
    let server = TestServer::builder(open_config()).dns().start().await;
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    client.connect(server.dns_addr()).await.expect("connect");
    let mut buf = vec![0_u8; 4096];

    for (what, bytes) in malformed_with_header() {
        client.send(&bytes).await.expect("send");
        let len = tokio::time::timeout(IO_TIMEOUT, client.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: no FORMERR in time"))
            .expect("recv");
        let response = Message::from_vec(&buf[..len]).expect("parseable response");
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::FormErr,
            "{what}"
        );
    }
    for garbage in [vec![], vec![0xFF; 3], vec![0x00; 11]] {
        client.send(&garbage).await.expect("send");
    }
    client.send(&good_query(0x1234)).await.expect("send");
    let len = tokio::time::timeout(IO_TIMEOUT, client.recv(&mut buf))
        .await
        .expect("the good query is answered in time")
        .expect("recv");
    let response = Message::from_vec(&buf[..len]).expect("parseable response");

    assert_eq!(
        response.metadata.id, 0x1234,
        "the short datagrams were dropped, not answered"
    );
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers.len(), 1, "the SOA: {response:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn server_keeps_answering_after_malformed_tcp_messages() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::builder(open_config()).dns().start().await;
    let mut stream = tokio::net::TcpStream::connect(server.dns_addr())
        .await
        .expect("connect");
    for (what, bytes) in malformed_with_header() {
        let prefix = u16::try_from(bytes.len()).expect("small").to_be_bytes();
        stream.write_all(&prefix).await.expect("write");
        stream.write_all(&bytes).await.expect("write");
        let len = tokio::time::timeout(IO_TIMEOUT, stream.read_u16())
            .await
            .unwrap_or_else(|_| panic!("{what}: no FORMERR in time"))
            .expect("length prefix");
        let mut response = vec![0_u8; usize::from(len)];
        stream.read_exact(&mut response).await.expect("response");
        let response = Message::from_vec(&response).expect("parseable response");
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::FormErr,
            "{what}"
        );
    }
    server.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes at all: no panic; an answer, if any, is a parseable response to that id.
    #[test]
    fn random_bytes_never_crash_the_answerer(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let answerer = shared_answerer();
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Some(response) = answerer.answer(&bytes, transport, CLIENT) {
                let parsed = Message::from_vec(&response);
                prop_assert!(parsed.is_ok(), "unparseable response to {bytes:?}");
                let parsed = parsed.expect("checked");
                prop_assert_eq!(parsed.metadata.message_type, MessageType::Response);
                prop_assert_eq!(&response[..2], &bytes[..2], "the id is echoed");
                prop_assert!(transport == Transport::Tcp || response.len() <= 1232, "UDP size cap");
            }
        }
    }

    /// A valid header with a random body: answered (FORMERR or a real answer) or dropped,
    /// never a panic.
    #[test]
    fn random_bodies_behind_a_query_header_get_formerr_or_a_real_answer(
        questions in 0_u16..3,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let answerer = shared_answerer();
        let mut bytes = header(questions);
        bytes.extend_from_slice(&body);
        let response = answerer.answer(&bytes, Transport::Udp, CLIENT);
        prop_assert!(response.is_some(), "a readable query header is always answered");
        let parsed = Message::from_vec(&response.expect("checked"));
        prop_assert!(parsed.is_ok());
        let parsed = parsed.expect("checked");
        prop_assert_eq!(parsed.metadata.id, 0xBEEF);
        if questions != 1 {
            prop_assert_eq!(parsed.metadata.response_code, ResponseCode::FormErr);
        }
    }
}
