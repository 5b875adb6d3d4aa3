//! Registration protocol v1.0: pure functions over bytes, no sockets.

pub mod frame;
pub mod hostname;
pub mod message;

pub use frame::{FrameDecoder, FrameError};
pub use hostname::{Hostname, HostnameError};
pub use message::{ParseError, Request, Response, Status};
