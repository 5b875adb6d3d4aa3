//! Test kit for the Prism server's integration tests.
//!
//! One way to start a server in the test's process — [`TestServer::builder`] — and the
//! client-side pieces every test needs to talk to it:
//!
//! - [`server`]: the builder, the running server (its [`prism_server::Node`] and bound
//!   addresses) and its graceful stop.
//! - [`protocol`]: registration frames and a registration-protocol client.
//! - [`http`]: GET, JSON and `/metrics` scrapes against the REST API or the registration port.
//! - [`dns`]: hickory-net clients over UDP and TCP and checks on their answers.
//! - [`exposition`]: reading samples out of the metrics text, and `promtool check metrics`.
//! - [`setup`]: the usual test configurations and token creation.
//! - [`process`]: the real `prism-server` binary as a child process.
//! - [`postgres`]: a throwaway PostgreSQL server in a temporary directory.
//! - [`clock`]: network waits that keep a paused tokio clock still, so tests under
//!   `#[tokio::test(start_paused = true)]` can use real loopback sockets.

pub mod clock;
pub mod dns;
pub mod exposition;
pub mod http;
pub mod postgres;
pub mod process;
pub mod protocol;
pub mod server;
pub mod setup;

use std::time::Duration;

pub use server::{TestServer, TestServerBuilder};

/// Longest any single network step of a test may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
