//! The `dns` workload: A/AAAA queries for names that should exist (hits) and names that
//! should not (misses), over UDP or TCP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::LoadArgs;
use crate::driver::{Attempt, Client, Outcome};
use crate::recorder::ErrorKind;
use crate::schedule::picked;

/// Largest DNS answer read over UDP (EDNS-sized).
const UDP_BUFFER: usize = 4096;

/// Options of the `dns` workload.
#[derive(Args, Debug, Clone)]
pub struct DnsArgs {
    /// DNS server, an explicit IP:port.
    #[arg(long, default_value = "127.0.0.1:5353")]
    pub target: SocketAddr,
    /// Zone the hosts live in.
    #[arg(long, default_value = "managed.prism.local.")]
    pub zone: String,
    /// Hit names are PREFIX-0 … PREFIX-(hosts-1) (as registered by the heartbeat workload).
    #[arg(long, default_value = "loadgen")]
    pub hostname_prefix: String,
    /// How many hit names exist.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub hosts: u64,
    /// Share of queries for existing names (0–1); the rest ask for names that must be NXDOMAIN.
    #[arg(long, default_value_t = 1.0, value_parser = crate::parse_ratio)]
    pub hit_ratio: f64,
    /// Share of queries of type AAAA (0–1); the rest are A.
    #[arg(long, default_value_t = 0.0, value_parser = crate::parse_ratio)]
    pub aaaa_ratio: f64,
    /// Query over TCP (one connection per worker) instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// Concurrent workers (sockets); must cover rate × latency.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Rate, duration and safety caps.
    #[command(flatten)]
    pub load: LoadArgs,
}

impl DnsArgs {
    /// Checks that the names this workload asks for are valid DNS names.
    pub fn validate(&self) -> anyhow::Result<()> {
        let name = self.hit_name(0);
        Name::from_ascii(&name)
            .map_err(|err| anyhow::anyhow!("invalid query name {name}: {err}"))?;
        Ok(())
    }

    fn zone(&self) -> &str {
        self.zone.trim_end_matches('.')
    }

    fn hit_name(&self, host: u64) -> String {
        format!("{}-{host}.{}.", self.hostname_prefix, self.zone())
    }

    fn miss_name(&self, index: u64) -> String {
        format!("{}-miss-{index}.{}.", self.hostname_prefix, self.zone())
    }

    /// The client of worker number `worker`.
    pub fn client(&self) -> DnsClient {
        DnsClient {
            args: self.clone(),
            udp: None,
            tcp: None,
            buffer: vec![0u8; UDP_BUFFER],
        }
    }
}

/// One DNS worker and its socket.
pub struct DnsClient {
    args: DnsArgs,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    buffer: Vec<u8>,
}

enum QueryError {
    Connect,
    Io,
    Malformed,
}

impl DnsClient {
    async fn udp_exchange(&mut self, query: &[u8], id: u16) -> Result<Header, QueryError> {
        let socket = match self.udp.take() {
            Some(socket) => socket,
            None => {
                let local: SocketAddr = if self.args.target.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local)
                    .await
                    .map_err(|_| QueryError::Connect)?;
                socket
                    .connect(self.args.target)
                    .await
                    .map_err(|_| QueryError::Connect)?;
                socket
            }
        };
        socket.send(query).await.map_err(|_| QueryError::Io)?;
        // Answers to earlier, timed-out queries may still arrive: skip those by id.
        let header = loop {
            let length = socket
                .recv(&mut self.buffer)
                .await
                .map_err(|_| QueryError::Io)?;
            let header = decode_header(&self.buffer[..length])?;
            if header.metadata.id == id {
                break header;
            }
        };
        self.udp = Some(socket);
        Ok(header)
    }

    async fn tcp_exchange(&mut self, query: &[u8], id: u16) -> Result<Header, QueryError> {
        let mut stream = match self.tcp.take() {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.args.target)
                    .await
                    .map_err(|_| QueryError::Connect)?;
                stream.set_nodelay(true).map_err(|_| QueryError::Connect)?;
                stream
            }
        };
        let length = u16::try_from(query.len()).map_err(|_| QueryError::Malformed)?;
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream
            .write_all(&framed)
            .await
            .map_err(|_| QueryError::Io)?;
        let mut prefix = [0u8; 2];
        stream
            .read_exact(&mut prefix)
            .await
            .map_err(|_| QueryError::Io)?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream
            .read_exact(&mut answer)
            .await
            .map_err(|_| QueryError::Io)?;
        let header = decode_header(&answer)?;
        if header.metadata.id != id {
            return Err(QueryError::Malformed);
        }
        self.tcp = Some(stream);
        Ok(header)
    }
}

fn decode_header(bytes: &[u8]) -> Result<Header, QueryError> {
    Header::read(&mut BinDecoder::new(bytes)).map_err(|_| QueryError::Malformed)
}

fn encode_query(name: &str, record_type: RecordType, id: u16) -> Option<Vec<u8>> {
    let name = Name::from_ascii(name).ok()?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(name, record_type));
    message.to_vec().ok()
}

impl Client for DnsClient {
    async fn request(&mut self, index: u64) -> Attempt {
        let hit = !picked(index, 1.0 - self.args.hit_ratio, 0.25);
        let record_type = if picked(index, self.args.aaaa_ratio, 0.75) {
            RecordType::AAAA
        } else {
            RecordType::A
        };
        let name = if hit {
            self.args.hit_name(index % self.args.hosts)
        } else {
            self.args.miss_name(index)
        };
        // Ids wrap; a late answer to an older query with the same id is vanishingly unlikely
        // within one timeout.
        let id = (index & 0xffff) as u16;
        let Some(query) = encode_query(&name, record_type, id) else {
            return Attempt {
                fault: None,
                outcome: Outcome::Failed(ErrorKind::MalformedResponse),
            };
        };
        let timeout: Duration = self.args.load.timeout;
        let result = if self.args.tcp {
            tokio::time::timeout(timeout, self.tcp_exchange(&query, id)).await
        } else {
            tokio::time::timeout(timeout, self.udp_exchange(&query, id)).await
        };
        let outcome = match result {
            Err(_elapsed) => Outcome::Failed(ErrorKind::Timeout),
            Ok(Err(QueryError::Connect)) => Outcome::Failed(ErrorKind::Connect),
            Ok(Err(QueryError::Io)) => Outcome::Failed(ErrorKind::Io),
            Ok(Err(QueryError::Malformed)) => Outcome::Answered(Some(ErrorKind::MalformedResponse)),
            Ok(Ok(header)) => Outcome::Answered(classify(hit, header.metadata.response_code)),
        };
        Attempt {
            fault: None,
            outcome,
        }
    }
}

fn classify(hit: bool, code: ResponseCode) -> Option<ErrorKind> {
    match (hit, code) {
        (true, ResponseCode::NoError) | (false, ResponseCode::NXDomain) => None,
        (true, ResponseCode::NXDomain) => Some(ErrorKind::DnsUnexpectedNxdomain),
        (false, ResponseCode::NoError) => Some(ErrorKind::DnsUnexpectedAnswer),
        _ => Some(ErrorKind::DnsFailureRcode),
    }
}
