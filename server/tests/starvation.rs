//! No client can starve the server: a peer that never reads loses its connection after the
//! write deadline (registration port and DNS over TCP), one address cannot take every
//! registration slot, and a connection that only sends refused tokens is closed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use prism_server::core::protocol::Status;
use prism_server::shell::AT_CAPACITY;
use prism_server::store::MemoryStore;
use prism_testkit::TestServer;
use prism_testkit::protocol::{frame, registration};
use prism_testkit::setup::{create_token, open_config, token_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection with a tiny receive window, so the server's writes to it block at once
/// when it stops reading.
async fn non_reader(server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    socket.connect(server).await.expect("connect")
}

/// Sends `bytes` over and over from a background task, never reading, until the server
/// closes the connection (at most 100 times, at most 60 s): the kernel buffers fill, the
/// server's writes block, and only the write deadline can end it.
fn flood(mut stream: TcpStream, bytes: Vec<u8>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sending = async {
            for _ in 0..100 {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), sending).await;
    })
}

#[tokio::test]
async fn clients_that_never_read_lose_their_slots_after_the_write_deadline() {
    let mut config = open_config();
    config.server.max_connections = 5;
    config.server.write_timeout_secs = 1;
    let server = TestServer::builder(config).start().await;
    let heartbeats: Vec<u8> = (0..20_000)
        .flat_map(|_| frame(&registration("flood", None)))
        .collect();
    let floods: Vec<_> = {
        let mut floods = Vec::new();
        for _ in 0..5 {
            let stream = non_reader(server.registration_addr()).await;
            floods.push(flood(stream, heartbeats.clone()));
        }
        floods
    };
    // Before the deadline every slot is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut early = server.connect().await;
    let refused = early.call(&registration("newcomer", None)).await;
    assert_eq!(
        refused.message, AT_CAPACITY,
        "the five floods hold every slot"
    );
    // After it, they are gone and a newcomer is served.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut newcomer = server.connect().await;
        let response = newcomer.call(&registration("newcomer", None)).await;
        if response.status == Status::Success {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "clients that never read still hold every slot 10 s later: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    floods.iter().for_each(tokio::task::JoinHandle::abort);
    server.shutdown().await;
}

#[tokio::test]
async fn dns_tcp_clients_that_never_read_lose_their_slots_after_the_write_deadline() {
    let mut config = open_config();
    config.dns.max_tcp_connections = 2;
    config.dns.tcp_write_timeout_secs = 1;
    config.dns.tcp_idle_timeout_secs = 600;
    let server = TestServer::builder(config).dns().start().await;
    let mut query = hickory_proto::op::Message::query();
    query.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("managed.prism.local.").expect("name"),
        hickory_proto::rr::RecordType::SOA,
    ));
    let wire = query.to_vec().expect("encode");
    let mut one = (u16::try_from(wire.len()).expect("small"))
        .to_be_bytes()
        .to_vec();
    one.extend_from_slice(&wire);
    let queries: Vec<u8> = std::iter::repeat_n(one.clone(), 100_000)
        .flatten()
        .collect();
    let floods = [
        flood(non_reader(server.dns_addr()).await, queries.clone()),
        flood(non_reader(server.dns_addr()).await, queries),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if answered_over_tcp(server.dns_addr(), &one).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "DNS-over-TCP clients that never read still hold every slot 10 s later"
        );
    }
    floods.iter().for_each(tokio::task::JoinHandle::abort);
    server.shutdown().await;
}

/// Whether a fresh DNS-over-TCP connection gets an answer to `framed` within a second.
async fn answered_over_tcp(server: SocketAddr, framed: &[u8]) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        stream.write_all(framed).await?;
        let length = stream.read_u16().await?;
        let mut answer = vec![0; usize::from(length)];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(()))
    )
}

#[tokio::test]
async fn one_address_cannot_take_every_registration_slot() {
    let mut config = open_config();
    config.server.max_connections = 10;
    config.server.max_connections_per_ip = 4;
    let server = TestServer::builder(config).start().await;
    let crowd = IpAddr::from([127, 0, 0, 1]);
    let mut held = Vec::new();
    for i in 0..4 {
        let mut client = server.connect_from(crowd).await;
        let response = client
            .call(&registration(&format!("crowd-{i}"), None))
            .await;
        assert_eq!(response.status, Status::Success, "connection {i}");
        held.push(client);
    }
    let mut fifth = server.connect_from(crowd).await;
    let refused = fifth.recv().await.expect("a refusal frame");
    assert_eq!(refused.status, Status::Error);
    assert!(
        refused.message.starts_with(AT_CAPACITY) && refused.message.contains("127.0.0.1"),
        "{refused:?}"
    );
    assert!(fifth.is_closed().await);
    let mut other = server.connect_from(IpAddr::from([127, 0, 0, 2])).await;
    let served = other.call(&registration("elsewhere", None)).await;
    assert_eq!(
        served.status,
        Status::Success,
        "another address still gets a slot"
    );
    drop(held);
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_only_sends_refused_tokens_is_closed() {
    let store = MemoryStore::new();
    let good = create_token(&store, "alice", false).await;
    let server = TestServer::builder(token_config())
        .store(store)
        .start()
        .await;

    let mut prober = server.connect().await;
    for attempt in 1..=3 {
        let response = prober
            .call(&registration(
                &format!("probe-{attempt}"),
                Some("prism_guess"),
            ))
            .await;
        assert_eq!(response.status, Status::Error, "attempt {attempt}");
    }
    assert!(
        prober.is_closed().await,
        "three refused tokens in a row and the connection stays open"
    );

    let mut honest = server.connect().await;
    for round in 0..3 {
        for _ in 0..2 {
            let refused = honest.call(&registration("typo", Some("prism_typo"))).await;
            assert_eq!(refused.status, Status::Error);
        }
        let ok = honest.call(&registration("web", Some(&good))).await;
        assert_eq!(
            ok.status,
            Status::Success,
            "round {round}: a good token resets the count"
        );
    }
    server.shutdown().await;
}
