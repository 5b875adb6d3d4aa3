//! The `cross-node` measurement: register a new name on one node, then query DNS on another
//! node until the name answers; the latency recorded is the time from the registration's
//! acknowledgement to the first DNS answer that contains the record (cluster visibility).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use hickory_proto::op::{Header, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::LoadArgs;
use crate::driver::{Attempt, Client, Outcome};
use crate::frame::{self, BufferedStream};
use crate::recorder::ErrorKind;
use crate::target::{Target, TargetSpec};

/// Options of the `cross-node` measurement.
#[derive(Args, Debug, Clone)]
pub struct CrossNodeArgs {
    /// Registration endpoint(s) HOST:PORT of the node(s) to register on; sample i uses the
    /// i-th in turn.
    #[arg(
        long = "register-target",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub register_targets: Vec<TargetSpec>,
    /// DNS endpoint(s) HOST:PORT of the node(s) to query; sample i asks the i-th in turn.
    /// Give other nodes than --register-target to measure propagation between them.
    #[arg(
        long = "dns-target",
        value_delimiter = ',',
        default_value = "127.0.0.1:5353"
    )]
    pub dns_targets: Vec<TargetSpec>,
    /// Zone the hosts live in.
    #[arg(long, default_value = "managed.prism.local.")]
    pub zone: String,
    /// New names are PREFIX-RUN-i (RUN is unique per run); they stay registered and go
    /// offline once the run ends.
    #[arg(long, default_value = "xnode")]
    pub hostname_prefix: String,
    /// Registration token (not needed with a server in open auth mode).
    #[arg(long, env = "PRISM_LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Pause between DNS queries while the name does not answer yet.
    #[arg(long, default_value = "1ms", value_parser = crate::parse_duration)]
    pub poll_interval: Duration,
    /// Samples in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub concurrency: u64,
    /// Samples per second (--rate), run length, caps; --timeout bounds one sample.
    #[command(flatten)]
    pub load: LoadArgs,
    /// `--register-target`, resolved when the plan is made.
    #[arg(skip)]
    pub register_resolved: Vec<Target>,
}

/// A name unique to this run, so an earlier run's registrations cannot answer early.
fn run_tag() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    format!("{millis:x}")
}

impl CrossNodeArgs {
    /// The client of worker `worker`.
    pub fn client(&self, worker: u64, dns: &[SocketAddr]) -> CrossNodeClient {
        let register = &self.register_resolved;
        CrossNodeClient {
            args: self.clone(),
            tag: format!("{}-{}", run_tag(), worker),
            register: register.iter().map(|target| target.addr).collect(),
            dns: dns.to_vec(),
            streams: register.iter().map(|_| None).collect(),
            sockets: dns.iter().map(|_| None).collect(),
            buffer: vec![0u8; 4096],
        }
    }
}

/// One cross-node worker: a registration connection per register node, a UDP socket per
/// DNS node.
pub struct CrossNodeClient {
    args: CrossNodeArgs,
    tag: String,
    register: Vec<SocketAddr>,
    dns: Vec<SocketAddr>,
    streams: Vec<Option<BufferedStream>>,
    sockets: Vec<Option<UdpSocket>>,
    buffer: Vec<u8>,
}

impl CrossNodeClient {
    async fn register(
        &mut self,
        node: usize,
        hostname: &str,
    ) -> Result<frame::Response, ErrorKind> {
        let addr = *self.register.get(node).ok_or(ErrorKind::Connect)?;
        let token = self.args.token.clone().unwrap_or_default();
        let request = frame::registration(hostname, &token);
        let mut stream = match self.streams.get_mut(node).and_then(Option::take) {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                let _ = stream.set_nodelay(true);
                tokio::io::BufReader::new(stream)
            }
        };
        let response = frame::exchange(&mut stream, &request)
            .await
            .map_err(|err| match err {
                frame::ReadError::Io(_) => ErrorKind::Io,
                frame::ReadError::Malformed(_) => ErrorKind::MalformedResponse,
            })?;
        if let Some(slot) = self.streams.get_mut(node) {
            *slot = Some(stream);
        }
        Ok(response)
    }

    /// Queries `name` on DNS node `node` until it answers with a record.
    async fn until_visible(&mut self, node: usize, name: &str, id: u16) -> Result<(), ErrorKind> {
        let addr = *self.dns.get(node).ok_or(ErrorKind::Connect)?;
        let query = crate::dns::encode_query(name, RecordType::A, id)
            .ok_or(ErrorKind::MalformedResponse)?;
        let socket = match self.sockets.get_mut(node).and_then(Option::take) {
            Some(socket) => socket,
            None => crate::dns::connected_udp(addr)
                .await
                .map_err(|_| ErrorKind::Connect)?,
        };
        loop {
            socket.send(&query).await.map_err(|_| ErrorKind::Io)?;
            let answered = tokio::time::timeout(
                self.args.poll_interval.max(Duration::from_millis(50)),
                async {
                    loop {
                        let length = socket
                            .recv(&mut self.buffer)
                            .await
                            .map_err(|_| ErrorKind::Io)?;
                        let Some(bytes) = self.buffer.get(..length) else {
                            continue;
                        };
                        let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
                            continue;
                        };
                        if header.metadata.id == id {
                            return Ok::<_, ErrorKind>(header);
                        }
                    }
                },
            )
            .await;
            match answered {
                Ok(Ok(header))
                    if header.metadata.response_code == ResponseCode::NoError
                        && header.counts.answers > 0 =>
                {
                    break;
                }
                Ok(Ok(header))
                    if !matches!(
                        header.metadata.response_code,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    return Err(ErrorKind::DnsFailureRcode);
                }
                Ok(Err(kind)) => return Err(kind),
                // Not visible yet (NXDOMAIN, NODATA) or the answer was lost: ask again.
                _ => tokio::time::sleep(self.args.poll_interval).await,
            }
        }
        if let Some(slot) = self.sockets.get_mut(node) {
            *slot = Some(socket);
        }
        Ok(())
    }

    async fn sample(&mut self, index: u64, dns_node: usize) -> Result<Duration, (ErrorKind, bool)> {
        let register_node = usize::try_from(index % self.register.len().max(1) as u64).unwrap_or(0);
        let hostname = format!("{}-{}-{index}", self.args.hostname_prefix, self.tag);
        let response = self
            .register(register_node, &hostname)
            .await
            .map_err(|kind| (kind, false))?;
        if !response.is_success() {
            let kind = if response.message.contains("rate limit") {
                ErrorKind::RateLimited
            } else {
                ErrorKind::ErrorResponse
            };
            return Err((kind, true));
        }
        let acknowledged = Instant::now();
        let name = format!("{hostname}.{}.", self.args.zone.trim_end_matches('.'));
        let id = (index & 0xffff) as u16;
        self.until_visible(dns_node, &name, id)
            .await
            .map_err(|kind| (kind, false))?;
        Ok(acknowledged.elapsed())
    }
}

impl Client for CrossNodeClient {
    async fn request(&mut self, index: u64) -> Attempt {
        let dns_node = usize::try_from(index % self.dns.len().max(1) as u64).unwrap_or(0);
        let result =
            tokio::time::timeout(self.args.load.timeout, self.sample(index, dns_node)).await;
        let (outcome, measured) = match result {
            Err(_elapsed) => {
                // The connection state is unknown after a timeout.
                self.streams.iter_mut().for_each(|slot| *slot = None);
                (Outcome::Failed(ErrorKind::Timeout), None)
            }
            Ok(Ok(visible_after)) => (Outcome::Answered(None), Some(visible_after)),
            Ok(Err((kind, true))) => (Outcome::Answered(Some(kind)), None),
            Ok(Err((kind, false))) => (Outcome::Failed(kind), None),
        };
        Attempt {
            target: dns_node,
            fault: None,
            outcome,
            measured,
        }
    }
}
