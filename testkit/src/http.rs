//! HTTP from the client's side: GETs with an optional bearer token, JSON bodies and
//! `/metrics` scrapes, against the REST API or the registration port.

use std::net::SocketAddr;

use crate::IO_TIMEOUT;
use crate::clock::hold_clock;

/// An HTTP client for one server address.
pub struct HttpClient {
    /// `http://<address>`, to which paths are appended.
    base: String,
    /// The connection pool, with every request bounded by [`IO_TIMEOUT`].
    client: reqwest::Client,
}

impl HttpClient {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .timeout(IO_TIMEOUT)
            .build()
            .expect("the HTTP client builds");
        Self {
            base: format!("http://{addr}"),
            client,
        }
    }

    /// `http://<address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The underlying client, for requests other than a plain GET (use [`HttpClient::url`]).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET `path`, with a bearer token when given; fails the test when no answer arrives.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        hold_clock(request.send())
            .await
            .unwrap_or_else(|err| panic!("GET {path} answers: {err}"))
    }

    /// GET `path` and return the status and the JSON body; fails the test when the body is
    /// not JSON.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let response = self.get(path, token).await;
        let status = response.status().as_u16();
        let body = hold_clock(response.json())
            .await
            .unwrap_or_else(|err| panic!("GET {path} has a JSON body: {err}"));
        (status, body)
    }

    /// The metrics text from `/metrics`; fails the test unless it answers 200.
    pub async fn scrape(&self) -> String {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status().as_u16(), 200, "/metrics answers 200");
        hold_clock(response.text())
            .await
            .expect("the metrics text arrives")
    }
}
