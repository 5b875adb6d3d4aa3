//! The `heartbeat` workload: simulated hosts registering and heartbeating over the
//! registration protocol, with optional deliberate faults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpStream;

use crate::LoadArgs;
use crate::driver::{Attempt, Client, Outcome};
use crate::frame::{self, ReadError};
use crate::recorder::ErrorKind;
use crate::schedule::picked;
use crate::target::{Spread, TargetSpec};

/// The token sent on purpose by `--bad-token-ratio` requests; no server issues it.
pub const BAD_TOKEN: &str = "prism-loadgen-deliberately-invalid-token";
/// Fault name of malformed frames in reports.
pub const FAULT_INVALID_FRAME: &str = "invalid_frame";
/// Fault name of wrong-token registrations in reports.
pub const FAULT_BAD_TOKEN: &str = "bad_token";

/// Options of the `heartbeat` workload.
#[derive(Args, Debug, Clone)]
pub struct HeartbeatArgs {
    /// Registration endpoint HOST:PORT (a name is resolved once at start); repeat or give a
    /// comma list to spread the hosts over several nodes.
    #[arg(
        long = "target",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub targets: Vec<TargetSpec>,
    /// How hosts are assigned to several targets: host k to target k mod n, or by a seeded
    /// hash of k.
    #[arg(long, value_enum, default_value_t = Spread::Modulo)]
    pub spread: Spread,
    /// Seed of `--spread random`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated hosts; each has its own hostname and connection and heartbeats every
    /// hosts/rate seconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub hosts: u64,
    /// Number of the first host: hosts are PREFIX-OFFSET … PREFIX-(OFFSET+hosts-1), so
    /// several generators can run disjoint ranges.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub host_offset: u64,
    /// Hostnames are PREFIX-0, PREFIX-1, …
    #[arg(long, default_value = "loadgen")]
    pub hostname_prefix: String,
    /// Registration token for every host (not needed with a server in open auth mode).
    #[arg(
        long,
        env = "PRISM_LOADGEN_TOKEN",
        conflicts_with = "token_file",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File with one token per line; hosts use them in turn.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Connect, send one frame and close for every heartbeat, like the deployed clients.
    #[arg(long)]
    pub one_shot: bool,
    /// Share of requests sent as malformed frames (0–1); the server must reject each.
    #[arg(long, default_value_t = 0.0, value_parser = crate::parse_ratio)]
    pub invalid_ratio: f64,
    /// Share of requests sent with a wrong token (0–1); needs a server in token auth mode.
    #[arg(long, default_value_t = 0.0, value_parser = crate::parse_ratio)]
    pub bad_token_ratio: f64,
    /// Connections that send half a frame and then stall until the run ends.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub slow_clients: u32,
    /// Idle connections held open (reopened if the server closes them) until the run ends.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub connections: u32,
    /// Rate, duration and safety caps.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Every host registers once before the clock starts (the DNS workload's keep-alive
    /// uses this so its names answer from the first query).
    #[arg(skip)]
    pub register_before_start: bool,
}

impl HeartbeatArgs {
    /// The tokens hosts use in turn (one empty token when none is given).
    pub fn tokens(&self) -> anyhow::Result<Vec<Arc<str>>> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token file {}", path.display()))?;
            let tokens: Vec<Arc<str>> = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(Arc::from)
                .collect();
            anyhow::ensure!(
                !tokens.is_empty(),
                "token file {} has no tokens",
                path.display()
            );
            return Ok(tokens);
        }
        Ok(vec![Arc::from(self.token.as_deref().unwrap_or(""))])
    }

    /// The client of simulated host number `host` (counted from `--host-offset`), connecting
    /// to its share of `targets`.
    pub fn host_client(
        &self,
        host: u64,
        tokens: &[Arc<str>],
        targets: &[SocketAddr],
    ) -> HostClient {
        let number = self.host_offset + host;
        let token = tokens
            .get((number % tokens.len().max(1) as u64) as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""));
        let target_index = self.spread.pick(host, targets.len(), self.seed);
        HostClient {
            target_index,
            target: targets
                .get(target_index)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            hostname: format!("{}-{number}", self.hostname_prefix),
            token,
            one_shot: self.one_shot,
            invalid_ratio: self.invalid_ratio,
            bad_token_ratio: self.bad_token_ratio,
            timeout: self.load.timeout,
            stream: None,
        }
    }
}

/// One simulated host: its hostname, token and (persistent) connection.
pub struct HostClient {
    target_index: usize,
    target: SocketAddr,
    hostname: String,
    token: Arc<str>,
    one_shot: bool,
    invalid_ratio: f64,
    bad_token_ratio: f64,
    timeout: Duration,
    /// Kept between heartbeats unless `one_shot`; dropped after any failure.
    stream: Option<frame::BufferedStream>,
}

enum ExchangeError {
    Connect,
    Read(ReadError),
}

impl HostClient {
    async fn connect(&self) -> Result<frame::BufferedStream, ExchangeError> {
        let stream = TcpStream::connect(self.target)
            .await
            .map_err(|_| ExchangeError::Connect)?;
        // Small frames, latency-sensitive: never wait for Nagle.
        stream
            .set_nodelay(true)
            .map_err(|_| ExchangeError::Connect)?;
        Ok(tokio::io::BufReader::new(stream))
    }

    /// Opens the persistent connection ahead of the run (not in one-shot mode), so the first
    /// heartbeat's latency is not a connection storm. A failure here is retried, and counted,
    /// at the first heartbeat.
    pub async fn preconnect(&mut self) {
        if self.one_shot || self.stream.is_some() {
            return;
        }
        if let Ok(Ok(stream)) = tokio::time::timeout(self.timeout, self.connect()).await {
            self.stream = Some(stream);
        }
    }

    /// Registers once, unmeasured, before the clock starts; returns whether the server
    /// accepted it.
    pub async fn register_once(&mut self) -> bool {
        let request = frame::registration(&self.hostname, &self.token);
        let accepted = matches!(
            tokio::time::timeout(self.timeout, self.exchange(&request)).await,
            Ok(Ok(response)) if response.is_success()
        );
        if self.one_shot {
            self.stream = None;
        }
        accepted
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<frame::Response, ExchangeError> {
        if let Some(mut stream) = self.stream.take() {
            match frame::exchange(&mut stream, request).await {
                Ok(response) => {
                    self.stream = Some(stream);
                    return Ok(response);
                }
                // The server may have closed a connection that sat idle longer than its idle
                // timeout; a deployed client would simply reconnect, so retry once.
                Err(ReadError::Io(_)) => {}
                Err(err) => return Err(ExchangeError::Read(err)),
            }
        }
        let mut stream = self.connect().await?;
        let response = frame::exchange(&mut stream, request)
            .await
            .map_err(ExchangeError::Read)?;
        self.stream = Some(stream);
        Ok(response)
    }
}

impl Client for HostClient {
    async fn request(&mut self, index: u64) -> Attempt {
        let fault = if picked(index, self.invalid_ratio, 0.0) {
            Some(FAULT_INVALID_FRAME)
        } else if picked(index, self.bad_token_ratio, 0.5) {
            Some(FAULT_BAD_TOKEN)
        } else {
            None
        };
        let request = match fault {
            Some(FAULT_INVALID_FRAME) => frame::malformed(),
            Some(_) => frame::registration(&self.hostname, BAD_TOKEN),
            None => frame::registration(&self.hostname, &self.token),
        };
        let result = tokio::time::timeout(self.timeout, self.exchange(&request)).await;
        let outcome = match result {
            Err(_elapsed) => Outcome::Failed(ErrorKind::Timeout),
            Ok(Err(ExchangeError::Connect)) => Outcome::Failed(ErrorKind::Connect),
            Ok(Err(ExchangeError::Read(ReadError::Io(_)))) => Outcome::Failed(ErrorKind::Io),
            Ok(Err(ExchangeError::Read(ReadError::Malformed(_)))) => {
                Outcome::Answered(Some(ErrorKind::MalformedResponse))
            }
            Ok(Ok(response)) => Outcome::Answered(classify(fault, &response)),
        };
        // The server closes after a framing error; one-shot clients close after each frame;
        // after any failure the connection state is unknown.
        let broken = matches!(
            outcome,
            Outcome::Failed(_) | Outcome::Answered(Some(ErrorKind::MalformedResponse))
        );
        if self.one_shot || fault == Some(FAULT_INVALID_FRAME) || broken {
            self.stream = None;
        }
        Attempt {
            target: self.target_index,
            fault,
            outcome,
            measured: None,
        }
    }
}

fn classify(fault: Option<&'static str>, response: &frame::Response) -> Option<ErrorKind> {
    match (fault, response.is_success()) {
        (None, true) => None,
        (None, false) if response.message.contains("rate limit") => Some(ErrorKind::RateLimited),
        (None, false) => Some(ErrorKind::ErrorResponse),
        (Some(_), true) => Some(ErrorKind::FaultAccepted),
        (Some(FAULT_INVALID_FRAME), false) => Some(ErrorKind::InvalidFrameRejected),
        (Some(_), false) => Some(ErrorKind::BadTokenRejected),
    }
}
