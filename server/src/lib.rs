//! Prism: a managed dynamic-DNS server.
//!
//! Hosts register and heartbeat over a length-prefixed JSON protocol; the server tracks them
//! online/offline, stores them durably and answers DNS for them. The crate is split the way
//! the server is built:
//!
//! - [`core`]: the sans-IO heart — frame handling, the host registry, tokens, rate limiting,
//!   the clock, the DNS zone and answerer, metrics. No sockets; time comes from a [`Clock`].
//! - [`shell`]: the IO shells around it — the registration listener and connections, HTTP
//!   sniffing, the DNS sockets, the REST API, and the socket traits they are written against,
//!   so tests and the simulator hand in their own sockets.
//! - [`config`]: configuration types, loading from file/environment/flags, validation, the
//!   live (reloadable) configuration and SIGHUP reloads.
//! - [`store`]: durable storage behind one trait (SQLite, and an in-memory store for tests).

pub mod config;
pub mod core;
pub mod shell;
pub mod store;

pub use crate::config::Config;
pub use crate::core::{Clock, Core, Metrics, Node, SystemClock, TokioClock};
pub use crate::shell::{Listeners, serve};
