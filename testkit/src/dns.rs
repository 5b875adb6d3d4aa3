//! DNS from the client's side: hickory-net clients over UDP and TCP, one query at a time,
//! and checks on the answers.

use std::net::{IpAddr, SocketAddr};

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use crate::IO_TIMEOUT;
use crate::TestServer;
use crate::clock::hold_clock;

/// A hickory-net DNS client on the tokio runtime.
pub type DnsClient = Client<TokioRuntimeProvider>;

/// A client speaking to `server` over UDP, with EDNS(0).
pub fn udp_client(server: SocketAddr) -> DnsClient {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(IO_TIMEOUT))
        .build();
    let (client, background) = DnsClient::from_sender(stream);
    tokio::spawn(background);
    client
}

/// A client speaking to `server` over one TCP connection.
pub async fn tcp_client(server: SocketAddr) -> DnsClient {
    let (connect, handle) = TcpClientStream::new(
        server,
        None,
        Some(IO_TIMEOUT),
        TokioRuntimeProvider::default(),
    );
    let stream = hold_clock(tokio::time::timeout(IO_TIMEOUT, connect))
        .await
        .expect("TCP connect in time")
        .expect("TCP connect to the DNS port");
    let (client, background) = DnsClient::new(stream, handle);
    tokio::spawn(background);
    client
}

/// `text` as a DNS name.
pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|err| panic!("{text:?} is not a name: {err}"))
}

/// Sends one query with `client` and returns the response.
pub async fn query(client: &mut DnsClient, qname: &str, query_type: RecordType) -> DnsResponse {
    let asked = client.query(name(qname), DNSClass::IN, query_type);
    hold_clock(tokio::time::timeout(IO_TIMEOUT, asked))
        .await
        .unwrap_or_else(|_| panic!("no answer for {qname} {query_type} in time"))
        .unwrap_or_else(|err| panic!("query {qname} {query_type} failed: {err}"))
}

/// The addresses in the answer section.
pub fn answer_addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// Fails with the whole message when its rcode is not `expected`.
pub fn assert_rcode(message: &Message, expected: ResponseCode) {
    assert_eq!(
        message.metadata.response_code, expected,
        "unexpected rcode in {message:?}"
    );
}

impl TestServer {
    /// A client speaking to the server's DNS over UDP, with EDNS(0).
    pub fn udp_client(&self) -> DnsClient {
        udp_client(self.dns_addr())
    }

    /// A client speaking to the server's DNS over one TCP connection.
    pub async fn tcp_client(&self) -> DnsClient {
        tcp_client(self.dns_addr()).await
    }
}
