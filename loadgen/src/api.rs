//! The `api` workload: HTTP GETs on the REST endpoints, in turn.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use crate::LoadArgs;
use crate::driver::{Attempt, Client, Outcome};
use crate::recorder::ErrorKind;

/// Options of the `api` workload.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// REST API server, an explicit IP:port (plain HTTP/1.1).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub target: SocketAddr,
    /// Path to GET; repeat for several, requested in turn.
    #[arg(long = "path", default_value = "/api/health", value_parser = parse_path)]
    pub paths: Vec<String>,
    /// Bearer token sent with every request (needed for /api/hosts*).
    #[arg(long, env = "PRISM_LOADGEN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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

impl ApiArgs {
    /// One HTTP client shared by the workers (its pool holds their connections).
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let client = reqwest::Client::builder()
            // Only the named target gets traffic: never a proxy from the environment.
            .no_proxy()
            .timeout(self.load.timeout)
            .pool_max_idle_per_host(usize::try_from(self.concurrency).unwrap_or(usize::MAX))
            .tcp_nodelay(true)
            .build()?;
        Ok(client)
    }

    /// The client of one worker.
    pub fn client(&self, http: reqwest::Client) -> ApiClient {
        let urls = self
            .paths
            .iter()
            .map(|path| format!("http://{}{path}", self.target))
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
    urls: Arc<Vec<String>>,
    token: Option<String>,
}

impl Client for ApiClient {
    async fn request(&mut self, index: u64) -> Attempt {
        let position = usize::try_from(index % self.urls.len().max(1) as u64).unwrap_or(0);
        let Some(url) = self.urls.get(position) else {
            return Attempt {
                fault: None,
                outcome: Outcome::Failed(ErrorKind::Connect),
            };
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
        Attempt {
            fault: None,
            outcome,
        }
    }
}

fn transport_error(err: &reqwest::Error) -> ErrorKind {
    if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Io
    }
}
