//! The IO shells around the core: they move bytes and hand whole requests to the core.
//!
//! Every shell is written against the socket traits in [`net`], so the binary passes tokio
//! sockets, tests bind port 0 and the simulator passes turmoil sockets — through the same
//! [`serve`].

pub mod api;
pub mod connection;
pub mod deadline;
pub mod descriptors;
pub mod dns;
pub mod http_sniff;
pub mod net;
mod server;
pub mod slots;

pub use server::{AT_CAPACITY, Listeners, serve};
