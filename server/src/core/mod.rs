//! The sans-IO core: everything that decides, nothing that touches a socket.
//!
//! [`Node`] assembles the pieces (registry, tokens, store, metrics, clock, live configuration)
//! and hands each shell the narrow handle it needs; [`Core`] turns one frame into one reply.
//! The binary, the tests, the benchmarks and the simulator all drive this same code.

pub mod auth;
pub mod clock;
mod cluster;
pub mod dns;
mod handler;
pub mod metrics;
mod node;
pub mod protocol;
pub mod ratelimit;
pub mod registry;
pub mod tokens;

pub use clock::{Clock, SystemClock, TokioClock};
pub use handler::{Core, Reply};
pub use metrics::Metrics;
pub use node::{Node, StartError};
