//! Network waits that keep a paused tokio clock still.
//!
//! Under `#[tokio::test(start_paused = true)]` tokio moves its clock to the next timer
//! whenever the runtime has nothing to run — also while a reply is on its way over a socket,
//! or from a thread of the server's (the DNS answer loops). A test would then see a
//! maintenance tick, a heartbeat deadline or its own timeout pass in the middle of one
//! exchange. Every client in this kit awaits its exchanges through [`hold_clock`], so under
//! paused time the clock moves only when the test sleeps; with a running clock nothing
//! changes.

use std::future::Future;
use std::sync::mpsc;

use crate::IO_TIMEOUT;

/// Awaits `io` without letting a paused tokio clock auto-advance meanwhile.
///
/// Holds for at most [`IO_TIMEOUT`] of real time: an exchange that hangs lets the clock go
/// again after that, and the caller's own timeout fails the test.
pub async fn hold_clock<F: Future>(io: F) -> F::Output {
    let (release, released) = mpsc::channel::<()>();
    // tokio does not auto-advance a paused clock while a blocking task runs (documented
    // under `tokio::time::pause`); this one runs until the exchange is over.
    let _holder = tokio::task::spawn_blocking(move || {
        let _ = released.recv_timeout(IO_TIMEOUT);
    });
    let output = io.await;
    drop(release);
    output
}
