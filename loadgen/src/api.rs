//! The `api` workload: HTTP GETs on the REST endpoints, in turn, over plain HTTP or HTTPS
//! (rustls with the system roots, or `--cacert`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::LoadArgs;
use crate::driver::{Attempt, Client, Outcome};
use crate::recorder::ErrorKind;
use crate::target::{Scheme, Target, TargetSpec};

/// Options of the `api` workload.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// REST API server: HOST:PORT (plain HTTP), http://HOST:PORT or https://HOST:PORT; a name
    /// is resolved once at start. Repeat or give a comma list to spread requests round-robin.
    #[arg(
        long = "target",
        value_delimiter = ',',
        default_value = "127.0.0.1:8081"
    )]
    pub targets: Vec<TargetSpec>,
    /// Path to GET; repeat for several, requested in turn.
    #[arg(long = "path", default_value = "/api/health", value_parser = parse_path)]
    pub paths: Vec<String>,
    /// Bearer token sent with every request (needed for /api/hosts*).
    #[arg(long, env = "PRISM_LOADGEN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the certificate authorities to trust for https:// targets, instead of the
    /// system roots (e.g. a staging CA or a self-signed certificate).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Accept any certificate of https:// targets, unverified (prints a warning).
    #[arg(long)]
    pub insecure: bool,
    /// Concurrent workers (HTTP connections); must cover rate × latency.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Rate, duration and safety caps.
    #[command(flatten)]
    pub load: LoadArgs,
}

fn parse_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') && !text.contains(char::is_whitespace) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a path; give the path only (e.g. /api/health), the server is --target"
        ))
    }
}

/// The warning `--insecure` prints before any traffic.
pub const INSECURE_WARNING: &str = "WARNING: --insecure: TLS certificates of https:// targets \
    are NOT verified; anyone on the path can read and alter this traffic";

impl ApiArgs {
    /// One HTTP client shared by the workers (its pool holds their connections). Names are
    /// pinned to the addresses resolved at start, so no lookup happens during the run, while
    /// TLS still verifies the certificate against the name.
    pub fn http_client(&self, targets: &[Target]) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            // Only the named target gets traffic: never a proxy from the environment.
            .no_proxy()
            .timeout(self.load.timeout)
            .pool_max_idle_per_host(usize::try_from(self.concurrency).unwrap_or(usize::MAX))
            .tcp_nodelay(true);
        for target in targets.iter().filter(|target| target.is_name()) {
            builder = builder.resolve(&target.spec.host, target.addr);
        }
        if targets
            .iter()
            .any(|target| target.spec.scheme == Some(Scheme::Https))
        {
            if let Some(path) = &self.cacert {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read --cacert {}", path.display()))?;
                let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                    .with_context(|| format!("--cacert {} is not a PEM bundle", path.display()))?;
                anyhow::ensure!(
                    !certificates.is_empty(),
                    "--cacert {} holds no certificate",
                    path.display()
                );
                builder = builder.tls_certs_only(certificates);
            }
            if self.insecure {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
        builder.build().context("cannot build the HTTP client")
    }

    /// The client of one worker, requesting the paths on `targets` in turn.
    pub fn client(&self, http: reqwest::Client, targets: &[Target]) -> ApiClient {
        let urls = targets
            .iter()
            .map(|target| {
                let spec = &target.spec;
                let scheme = match spec.scheme {
                    Some(Scheme::Https) => "https",
                    Some(Scheme::Http) | None => "http",
                };
                let host = if spec.host.contains(':') {
                    format!("[{}]", spec.host)
                } else {
                    spec.host.clone()
                };
                self.paths
                    .iter()
                    .map(|path| format!("{scheme}://{host}:{}{path}", spec.port))
                    .collect()
            })
            .collect();
        ApiClient {
            http,
            urls: Arc::new(urls),
            token: self.token.clone(),
        }
    }
}

/// One API worker.
pub struct ApiClient {
    http: reqwest::Client,
    /// Per target, the URL of every path.
    urls: Arc<Vec<Vec<String>>>,
    token: Option<String>,
}

impl Client for ApiClient {
    async fn request(&mut self, index: u64) -> Attempt {
        let targets = self.urls.len().max(1) as u64;
        let target = usize::try_from(index % targets).unwrap_or(0);
        let url = self.urls.get(target).and_then(|paths| {
            let position = (index / targets) % paths.len().max(1) as u64;
            paths.get(usize::try_from(position).unwrap_or(0))
        });
        let Some(url) = url else {
            return Attempt::plain(target, Outcome::Failed(ErrorKind::Connect));
        };
        let mut request = self.http.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let outcome = match request.send().await {
            Err(err) => Outcome::Failed(transport_error(&err)),
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Err(err) => Outcome::Failed(transport_error(&err)),
                    Ok(_) if status.is_server_error() => {
                        Outcome::Answered(Some(ErrorKind::Http5xx))
                    }
                    Ok(_) if status.is_client_error() => {
                        Outcome::Answered(Some(ErrorKind::Http4xx))
                    }
                    Ok(_) => Outcome::Answered(None),
                }
            }
        };
        Attempt::plain(target, outcome)
    }
}

/// The TLS error among `err`'s causes, if any.
fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error hides the error it wraps from `source()`.
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        // hyper-util's connect errors box their cause as a plain string-bearing error.
        let text = current.to_string();
        if text.contains("certificate") || text.contains("handshake") {
            return Some(text);
        }
        cause = current.source();
    }
    None
}

/// Set once the first TLS failure has been explained on stderr.
static TLS_FAILURE_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn transport_error(err: &reqwest::Error) -> ErrorKind {
    if err.is_timeout() {
        ErrorKind::Timeout
    } else if let Some(reason) = tls_error(err) {
        if !TLS_FAILURE_SHOWN.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "prism-loadgen: TLS handshake failed: {reason}; for a certificate the system \
                 roots do not trust, pass --cacert FILE (counted as error kind `tls`)"
            );
        }
        ErrorKind::Tls
    } else if err.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Io
    }
}
