//! Connections held open on purpose: idle ones (`--connections`) and slow clients that stall
//! in the middle of a frame (`--slow-clients`), to push the server's connection count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Pause before reopening a connection the server refused or closed.
const REOPEN_BACKOFF: Duration = Duration::from_millis(100);
/// Spacing of the first opens, so a thousand connections arrive at 1 000/s rather than all
/// at once: a burst overflows the server's accept backlog, and a connection whose final ACK
/// was dropped there looks open to the client but never reaches the server.
const OPEN_SPACING: Duration = Duration::from_millis(1);
/// Declared payload length of a slow client's frame, of which only half is sent.
const SLOW_FRAME_DECLARED: u32 = 128;

/// How many held connections are open now and at most.
#[derive(Debug, Default)]
pub struct HeldCount {
    open: AtomicU64,
    peak: AtomicU64,
}

impl HeldCount {
    /// The highest number open at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a held connection does once open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Sends nothing.
    Idle,
    /// Sends a length prefix and half the declared payload, then nothing more.
    StallMidFrame,
}

/// Holds `count` connections, spread round-robin over `targets`, until `end`, reopening any
/// the server closes.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    targets: &[SocketAddr],
    count: u32,
    behaviour: Behaviour,
    end: Instant,
) -> Arc<HeldCount> {
    let held = Arc::new(HeldCount::default());
    let first = Instant::now();
    for (number, target) in (0..count).zip(targets.iter().cycle()) {
        let opens_at = first + OPEN_SPACING * number;
        tasks.spawn(hold_one(
            *target,
            behaviour,
            opens_at,
            end,
            Arc::clone(&held),
        ));
    }
    held
}

async fn hold_one(
    target: SocketAddr,
    behaviour: Behaviour,
    opens_at: Instant,
    end: Instant,
    held: Arc<HeldCount>,
) {
    tokio::time::sleep_until(opens_at.min(end)).await;
    while Instant::now() < end {
        let opened = tokio::select! {
            opened = TcpStream::connect(target) => opened,
            () = tokio::time::sleep_until(end) => return,
        };
        let Ok(mut stream) = opened else {
            tokio::time::sleep(REOPEN_BACKOFF).await;
            continue;
        };
        if behaviour == Behaviour::StallMidFrame {
            let mut partial = SLOW_FRAME_DECLARED.to_be_bytes().to_vec();
            partial.extend(std::iter::repeat_n(b'{', SLOW_FRAME_DECLARED as usize / 2));
            if stream.write_all(&partial).await.is_err() {
                tokio::time::sleep(REOPEN_BACKOFF).await;
                continue;
            }
        }
        held.opened();
        let opened_at = Instant::now();
        let mut scratch = [0u8; 512];
        let closed_by_server = loop {
            tokio::select! {
                read = stream.read(&mut scratch) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                () = tokio::time::sleep_until(end) => break false,
            }
        };
        held.closed();
        // A connection the server kept a while and then closed (its idle timeout) is
        // reopened at once, so the count does not dip; one refused at once (at capacity)
        // is retried after a pause, never in a tight loop.
        if closed_by_server && opened_at.elapsed() < 10 * REOPEN_BACKOFF {
            tokio::time::sleep(REOPEN_BACKOFF).await;
        }
    }
}
