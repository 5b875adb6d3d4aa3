//! Client hosts: simulated machines that heartbeat like the deployed Prism clients.

use std::ops::Range;
use std::time::Duration;

use prism_server::core::protocol::{Response, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

use crate::adapters::sim_now;
use crate::ledger::Ledger;

/// Turmoil host name of the server.
pub const SERVER: &str = "server";
/// Registration port of the server.
pub const REGISTRATION_PORT: u16 = 8080;
/// Longest a client waits for a connection and its response before giving up on a heartbeat.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How a host talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// Connect, send one frame, read the response, close (the deployed clients).
    OneShot,
    /// Keep one connection open and send every heartbeat on it; reconnect after errors.
    Persistent,
}

/// A group of client machines, `nodes` turmoil hosts with `hosts_per_node` hosts each.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Prefix of node names (`web-3`) and host names (`web-3-17`).
    pub name: &'static str,
    /// Turmoil hosts (distinct addresses); faults target these.
    pub nodes: usize,
    /// Simulated hosts on each node.
    pub hosts_per_node: usize,
    /// Heartbeat interval.
    pub interval: Duration,
    /// Each heartbeat is sent up to this much earlier or later than the interval.
    pub jitter: Duration,
    /// One-shot or persistent connections.
    pub mode: ClientMode,
    /// Fraction of frames replaced by malformed JSON.
    pub invalid_ratio: f64,
    /// When the hosts heartbeat (simulated time since the start).
    pub active: Range<Duration>,
    /// `(on, off)`: heartbeat for `on`, then stay silent for `off`, repeatedly.
    pub flapping: Option<(Duration, Duration)>,
}

impl FleetSpec {
    /// `nodes × hosts_per_node` well-behaved one-shot clients heartbeating every 60 s.
    pub fn steady(name: &'static str, nodes: usize, hosts_per_node: usize) -> Self {
        Self {
            name,
            nodes,
            hosts_per_node,
            interval: Duration::from_secs(60),
            jitter: Duration::from_secs(2),
            mode: ClientMode::OneShot,
            invalid_ratio: 0.0,
            active: Duration::ZERO..Duration::MAX,
            flapping: None,
        }
    }

    /// The turmoil host name of node `index`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{index}", self.name)
    }

    /// Every node name.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.nodes).map(|index| self.node_name(index)).collect()
    }

    /// Total simulated hosts.
    pub fn host_count(&self) -> usize {
        self.nodes * self.hosts_per_node
    }
}

/// Runs node `index` of `spec` until `end`: one task per host.
pub async fn run_node(
    spec: FleetSpec,
    index: usize,
    seed: u64,
    ledger: Ledger,
    end: Duration,
) -> turmoil::Result {
    let mut hosts = Vec::with_capacity(spec.hosts_per_node);
    for host in 0..spec.hosts_per_node {
        let hostname = format!("{}-{index}-{host}", spec.name);
        let host_seed =
            seed ^ (((index as u64) << 32) | host as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        hosts.push(tokio::task::spawn_local(run_host(
            spec.clone(),
            hostname,
            StdRng::seed_from_u64(host_seed),
            ledger.clone(),
            end,
        )));
    }
    for host in hosts {
        host.await?;
    }
    Ok(())
}

async fn run_host(
    spec: FleetSpec,
    hostname: String,
    mut rng: StdRng,
    ledger: Ledger,
    end: Duration,
) {
    let start = spec.active.start.max(Duration::from_millis(
        rng.random_range(0..spec.interval.as_millis().max(1) as u64),
    ));
    tokio::time::sleep(start.saturating_sub(sim_now())).await;
    let registration = serde_json::json!({
        "version": "1.0", "type": "registration", "timestamp": "2026-11-26T00:00:00",
        "hostname": hostname, "auth_token": "simulated", "client_ip": "10.0.0.1",
    })
    .to_string()
    .into_bytes();
    let mut connection: Option<TcpStream> = None;
    loop {
        let now = sim_now();
        if now >= end.min(spec.active.end) {
            break;
        }
        if !silent_while_flapping(&spec, now) {
            let invalid = rng.random_bool(spec.invalid_ratio);
            let payload: &[u8] = if invalid {
                b"{\"version\": \"1.0\", garbage"
            } else {
                &registration
            };
            let attempt = |at| {
                if !invalid {
                    ledger.attempted(&hostname, at);
                }
            };
            let outcome =
                tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut connection, payload, attempt))
                    .await;
            match outcome {
                Ok(Some(response)) if response.status == Status::Success => {
                    ledger.acknowledged(&hostname, sim_now());
                }
                _ => connection = None,
            }
            if spec.mode == ClientMode::OneShot || invalid {
                connection = None;
            }
        }
        let jitter = spec.jitter.as_millis() as i64;
        let offset = if jitter > 0 {
            rng.random_range(-jitter..=jitter)
        } else {
            0
        };
        let pause = (spec.interval.as_millis() as i64 + offset).max(1) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn silent_while_flapping(spec: &FleetSpec, now: Duration) -> bool {
    let Some((on, off)) = spec.flapping else {
        return false;
    };
    let period = (on + off).as_millis().max(1);
    let phase = now.saturating_sub(spec.active.start).as_millis() % period;
    phase >= on.as_millis()
}

/// Sends one frame (connecting first if needed) and reads the response. `attempt` is told
/// when the frame is handed to a connected socket: from then on it may reach the server.
async fn exchange(
    connection: &mut Option<TcpStream>,
    payload: &[u8],
    attempt: impl FnOnce(Duration),
) -> Option<Response> {
    if connection.is_none() {
        *connection = Some(TcpStream::connect((SERVER, REGISTRATION_PORT)).await.ok()?);
    }
    let stream = connection.as_mut()?;
    attempt(sim_now());
    let mut frame = u32::try_from(payload.len()).ok()?.to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await.ok()?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}
