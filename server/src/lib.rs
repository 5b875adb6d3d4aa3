//! Prism: a managed dynamic-DNS server.
//!
//! Hosts register and heartbeat over a length-prefixed JSON protocol; the server tracks them
//! online/offline and stores them durably. The core ([`core::Core`]) is sans-IO; the TCP shell
//! ([`server::serve`]) takes already-bound listeners, so tests and simulators supply their own.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod config_loader;
pub mod connection;
pub mod core;
pub mod dns;
pub mod http_sniff;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod ratelimit;
pub mod registry;
pub mod reload;
pub mod server;
pub mod store;
pub mod tokens;

pub use crate::clock::{Clock, SystemClock, TokioClock};
pub use crate::config::Config;
pub use crate::core::Core;
pub use crate::metrics::Metrics;
pub use crate::server::{Listeners, serve};
