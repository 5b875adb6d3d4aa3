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
use crate::heartbeat::HeartbeatArgs;
use crate::recorder::ErrorKind;
use crate::schedule::picked;
use crate::target::{Spread, TargetSpec};

/// Most hosts one heartbeat workload simulates (its `--hosts` range).
const HEARTBEAT_MAX_HOSTS: u64 = 100_000;

/// Largest DNS answer read over UDP (EDNS-sized).
const UDP_BUFFER: usize = 4096;

/// Options of the `dns` workload.
#[derive(Args, Debug, Clone)]
pub struct DnsArgs {
    /// DNS server HOST:PORT (a name is resolved once at start); repeat or give a comma list
    /// to query several servers round-robin.
    #[arg(
        long = "target",
        value_delimiter = ',',
        default_value = "127.0.0.1:5353"
    )]
    pub targets: Vec<TargetSpec>,
    /// Zone the hosts live in.
    #[arg(long, default_value = "managed.prism.local.")]
    pub zone: String,
    /// Hit names are PREFIX-0 … PREFIX-(hosts-1) (as registered by the heartbeat workload).
    #[arg(long, default_value = "loadgen")]
    pub hostname_prefix: String,
    /// How many hit names exist.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub hosts: u64,
    /// Number of the first hit name (as the heartbeat workload's --host-offset).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub host_offset: u64,
    /// Registration endpoint HOST:PORT: the hit names register there before the clock
    /// starts and heartbeat in the background every --keep-alive-interval, so they stay
    /// online however long the run lasts (reported as workload NAME-keepalive).
    #[arg(long, value_name = "HOST:PORT")]
    pub keep_alive: Option<TargetSpec>,
    /// How often each hit name heartbeats with --keep-alive; below the server's interval.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    pub keep_alive_interval: Duration,
    /// Registration token for --keep-alive (not needed with a server in open auth mode).
    #[arg(long, env = "PRISM_LOADGEN_TOKEN", hide_env_values = true)]
    pub keep_alive_token: Option<String>,
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
        anyhow::ensure!(
            self.keep_alive.is_none() || self.hosts <= HEARTBEAT_MAX_HOSTS,
            "--keep-alive heartbeats at most {HEARTBEAT_MAX_HOSTS} names; lower --hosts"
        );
        let name = self.hit_name(0);
        Name::from_ascii(&name)
            .map_err(|err| anyhow::anyhow!("invalid query name {name}: {err}"))?;
        Ok(())
    }

    /// With `--keep-alive`, the heartbeat workload that registers every hit name before the
    /// start and heartbeats each every `--keep-alive-interval` for `duration`.
    pub fn keep_alive_workload(&self, duration: Duration) -> Option<HeartbeatArgs> {
        let target = self.keep_alive.clone()?;
        let interval = self.keep_alive_interval.as_secs_f64().max(1e-3);
        Some(HeartbeatArgs {
            targets: vec![target],
            spread: Spread::Modulo,
            seed: 1,
            hosts: self.hosts.min(HEARTBEAT_MAX_HOSTS),
            host_offset: self.host_offset,
            hostname_prefix: self.hostname_prefix.clone(),
            token: self.keep_alive_token.clone(),
            token_file: None,
            one_shot: true,
            invalid_ratio: 0.0,
            bad_token_ratio: 0.0,
            slow_clients: 0,
            connections: 0,
            load: LoadArgs {
                rate: self.hosts.min(HEARTBEAT_MAX_HOSTS) as f64 / interval,
                duration,
                ..self.load.clone()
            },
            register_before_start: true,
        })
    }

    fn zone(&self) -> &str {
        self.zone.trim_end_matches('.')
    }

    fn hit_name(&self, host: u64) -> String {
        format!(
            "{}-{}.{}.",
            self.hostname_prefix,
            self.host_offset + host,
            self.zone()
        )
    }

    fn miss_name(&self, index: u64) -> String {
        format!("{}-miss-{index}.{}.", self.hostname_prefix, self.zone())
    }

    /// The client of one worker, querying `targets` in turn.
    pub fn client(&self, targets: &[SocketAddr]) -> DnsClient {
        DnsClient {
            args: self.clone(),
            targets: targets.to_vec(),
            udp: targets.iter().map(|_| None).collect(),
            tcp: targets.iter().map(|_| None).collect(),
            buffer: vec![0u8; UDP_BUFFER],
        }
    }
}

/// One DNS worker and its sockets (one per target).
pub struct DnsClient {
    args: DnsArgs,
    targets: Vec<SocketAddr>,
    udp: Vec<Option<UdpSocket>>,
    tcp: Vec<Option<TcpStream>>,
    buffer: Vec<u8>,
}

enum QueryError {
    Connect,
    Io,
    Malformed,
}

impl DnsClient {
    async fn udp_exchange(
        &mut self,
        target: usize,
        query: &[u8],
        id: u16,
    ) -> Result<Header, QueryError> {
        let addr = *self.targets.get(target).ok_or(QueryError::Connect)?;
        let socket = match self.udp.get_mut(target).and_then(Option::take) {
            Some(socket) => socket,
            None => connected_udp(addr).await.map_err(|_| QueryError::Connect)?,
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
        if let Some(slot) = self.udp.get_mut(target) {
            *slot = Some(socket);
        }
        Ok(header)
    }

    async fn tcp_exchange(
        &mut self,
        target: usize,
        query: &[u8],
        id: u16,
    ) -> Result<Header, QueryError> {
        let addr = *self.targets.get(target).ok_or(QueryError::Connect)?;
        let mut stream = match self.tcp.get_mut(target).and_then(Option::take) {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(addr)
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
        if let Some(slot) = self.tcp.get_mut(target) {
            *slot = Some(stream);
        }
        Ok(header)
    }
}

/// A UDP socket bound to an ephemeral port of `addr`'s family and connected to it.
pub(crate) async fn connected_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

fn decode_header(bytes: &[u8]) -> Result<Header, QueryError> {
    Header::read(&mut BinDecoder::new(bytes)).map_err(|_| QueryError::Malformed)
}

pub(crate) fn encode_query(name: &str, record_type: RecordType, id: u16) -> Option<Vec<u8>> {
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
        let target = usize::try_from(index % self.targets.len().max(1) as u64).unwrap_or(0);
        let Some(query) = encode_query(&name, record_type, id) else {
            return Attempt::plain(target, Outcome::Failed(ErrorKind::MalformedResponse));
        };
        let timeout: Duration = self.args.load.timeout;
        let result = if self.args.tcp {
            tokio::time::timeout(timeout, self.tcp_exchange(target, &query, id)).await
        } else {
            tokio::time::timeout(timeout, self.udp_exchange(target, &query, id)).await
        };
        let outcome = match result {
            Err(_elapsed) => Outcome::Failed(ErrorKind::Timeout),
            Ok(Err(QueryError::Connect)) => Outcome::Failed(ErrorKind::Connect),
            Ok(Err(QueryError::Io)) => Outcome::Failed(ErrorKind::Io),
            Ok(Err(QueryError::Malformed)) => Outcome::Answered(Some(ErrorKind::MalformedResponse)),
            Ok(Ok(header)) => Outcome::Answered(classify(hit, header.metadata.response_code)),
        };
        Attempt::plain(target, outcome)
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
