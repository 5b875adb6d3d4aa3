//! `--metrics-listen`: the run's own Prometheus metrics, served while it runs, so one
//! Prometheus scrapes the generator beside the servers and dashboards overlay offered load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Latency buckets in seconds: the same bounds as the server's request-duration histograms,
/// so generator and server latencies line up bucket for bucket.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Largest HTTP request head read from a scraper.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a scraper may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Every metric the generator exports, on its own registry.
#[derive(Clone)]
pub struct Exporter {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    schedule_lag: HistogramVec,
    dropped: IntCounterVec,
    target_rate: GaugeVec,
}

/// The metric handles of one workload and target.
#[derive(Clone)]
pub struct TargetMetrics {
    workload: String,
    target: String,
    requests: IntCounterVec,
    latency: Histogram,
    schedule_lag: Histogram,
}

/// The metric handles of one workload.
#[derive(Clone)]
pub struct WorkloadMetrics {
    /// Per target, by target index.
    pub targets: Vec<TargetMetrics>,
    dropped: IntCounter,
    target_rate: Gauge,
}

impl TargetMetrics {
    /// One request ended with `outcome` (`ok` or an error kind).
    pub fn ended(&self, outcome: &str) {
        self.requests
            .with_label_values(&[self.workload.as_str(), self.target.as_str(), outcome])
            .inc();
    }

    /// An answer arrived after `latency`.
    pub fn latency(&self, latency: Duration) {
        self.latency.observe(latency.as_secs_f64());
    }

    /// A send started `lag` after its intended time.
    pub fn lag(&self, lag: Duration) {
        self.schedule_lag.observe(lag.as_secs_f64());
    }
}

impl WorkloadMetrics {
    /// `count` scheduled requests will never be sent.
    pub fn dropped(&self, count: u64) {
        self.dropped.inc_by(count);
    }

    /// The intended rate now.
    pub fn set_target_rate(&self, rate: f64) {
        self.target_rate.set(rate);
    }
}

impl Exporter {
    /// A registry with every metric registered.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "prism_loadgen_requests_total",
                "Requests that ended, by workload, target and outcome (ok or the error kind).",
            ),
            &["workload", "target", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "prism_loadgen_request_duration_seconds",
                "Latency of answered requests from their intended send time.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["workload", "target"],
        )?;
        let schedule_lag = HistogramVec::new(
            HistogramOpts::new(
                "prism_loadgen_schedule_lag_seconds",
                "How late sends started against their schedule (generator health).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["workload", "target"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "prism_loadgen_dropped_total",
                "Scheduled requests never sent because the generator fell behind.",
            ),
            &["workload"],
        )?;
        let target_rate = GaugeVec::new(
            Opts::new(
                "prism_loadgen_target_rate",
                "Intended requests per second now (the offered load).",
            ),
            &["workload"],
        )?;
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(schedule_lag.clone()),
            Box::new(dropped.clone()),
            Box::new(target_rate.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Self {
            registry,
            requests,
            latency,
            schedule_lag,
            dropped,
            target_rate,
        })
    }

    /// Handles for workload `name` over `targets` (labels as written).
    pub fn workload(&self, name: &str, targets: &[String]) -> WorkloadMetrics {
        WorkloadMetrics {
            targets: targets
                .iter()
                .map(|target| TargetMetrics {
                    workload: name.to_owned(),
                    target: target.clone(),
                    requests: self.requests.clone(),
                    latency: self.latency.with_label_values(&[name, target]),
                    schedule_lag: self.schedule_lag.with_label_values(&[name, target]),
                })
                .collect(),
            dropped: self.dropped.with_label_values(&[name]),
            target_rate: self.target_rate.with_label_values(&[name]),
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding our own well-formed metrics into memory cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Binds `addr` and serves `/metrics` until the returned task is aborted.
    pub async fn serve(
        self,
        addr: SocketAddr,
    ) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?;
        let bound = listener.local_addr()?;
        let exporter = Arc::new(self);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, Arc::clone(&exporter)));
            }
        });
        Ok((bound, task))
    }
}

/// Answers one scrape: `GET /metrics` gets the page, anything else 404; then closes.
async fn answer(mut stream: TcpStream, exporter: Arc<Exporter>) {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let request_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = if (method == "GET" || method == "HEAD") && path == "/metrics" {
        ("200 OK", exporter.render())
    } else {
        (
            "404 Not Found",
            "only GET /metrics is served here\n".to_owned(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_requests_by_outcome_and_latency_with_the_server_buckets() {
        let exporter = Exporter::new().expect("registry");
        let workload = exporter.workload("dns", &["127.0.0.1:5353".to_owned()]);
        workload.targets[0].ended("ok");
        workload.targets[0].ended("timeout");
        workload.targets[0].latency(Duration::from_millis(3));
        workload.dropped(2);
        let page = exporter.render();
        assert!(page.contains(
            "prism_loadgen_requests_total{outcome=\"ok\",target=\"127.0.0.1:5353\",workload=\"dns\"} 1"
        ), "{page}");
        assert!(
            page.contains("le=\"0.0005\"") && page.contains("le=\"30\""),
            "{page}"
        );
        assert!(
            page.contains("prism_loadgen_dropped_total{workload=\"dns\"} 2"),
            "{page}"
        );
    }
}
