//! Response rate limiting over real UDP: one client prefix gets its rate, then drops and
//! truncated "slips", counted in the metrics; TCP is never limited.

use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use prism_testkit::TestServer;
use prism_testkit::setup::open_config;
use tokio::net::UdpSocket;

#[tokio::test]
async fn one_client_over_its_rate_gets_drops_and_truncated_slips() {
    let mut config = open_config();
    config.dns.rrl_responses_per_second = 20;
    config.dns.rrl_slip = 2;
    let server = TestServer::builder(config).dns().start().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(server.dns_addr()).await.expect("connect");
    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii("managed.prism.local.").expect("name"),
        RecordType::SOA,
    ));
    for id in 0..100u16 {
        query.metadata.id = id;
        socket
            .send(&query.to_vec().expect("encode"))
            .await
            .expect("send");
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok(Ok(len)) =
        tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await
    {
        let answer = Message::from_vec(&buf[..len]).expect("a DNS message");
        if answer.metadata.truncation {
            assert!(answer.answers.is_empty(), "a slip carries no records");
            truncated += 1;
        } else {
            full += 1;
        }
    }
    // 100 queries sent within well under a second: the burst of 20 (plus what refilled
    // meanwhile) is answered, and of the rest every second one slips.
    assert!((20..=30).contains(&full), "{full} full answers");
    let limited = 100 - full;
    assert!(
        truncated >= limited / 2 - 1 && truncated <= limited / 2 + 1,
        "{truncated} slips of {limited} limited responses"
    );
    let metrics = server.node().metrics();
    let count = |action: &str| metrics.dns_rate_limited.with_label_values(&[action]).get();
    assert_eq!(count("slipped"), truncated);
    assert_eq!(count("dropped") + count("slipped"), limited);

    // Over TCP the same client is answered whatever its UDP budget.
    let mut tcp = server.tcp_client().await;
    let answer = prism_testkit::dns::query(&mut tcp, "managed.prism.local.", RecordType::SOA).await;
    assert!(!answer.answers.is_empty());
    server.shutdown().await;
}
