//! The DNS shell: binding the sockets ([`bind`]) and the answer loops over them ([`serve`]).
//! The answers themselves come from [`crate::core::dns::Answerer`].

mod bind;
pub mod serve;

pub use bind::{DnsSockets, bind};
pub use serve::spawn;
