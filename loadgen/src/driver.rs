//! The open-loop driver: one sequential worker walks its share of the schedule, sends each
//! request at its intended time, and measures latency so that a stalled target cannot hide
//! the requests it delayed (no coordinated omission).

use std::future::Future;
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::recorder::{ErrorKind, Recorder};
use crate::schedule::RateProfile;

/// How long after the end of the profile a worker may still start requests that were due
/// before it (timer granularity, a brief hiccup) before they count as dropped.
pub const LATE_SEND_GRACE: Duration = Duration::from_millis(100);

/// How one request ended, as reported by a protocol client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer arrived; `Some(kind)` when it was a failure.
    Answered(Option<ErrorKind>),
    /// No answer (timeout, connection failure).
    Failed(ErrorKind),
}

/// One request as a client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Which of the workload's targets it went to (index).
    pub target: usize,
    /// The deliberate fault this request carries, if any (`invalid_frame`, `bad_token`).
    pub fault: Option<&'static str>,
    /// How it ended.
    pub outcome: Outcome,
    /// The latency when the client measures it itself instead of the driver (the
    /// `cross-node` measurement times from the acknowledgement, not the send).
    pub measured: Option<Duration>,
}

impl Attempt {
    /// A request to `target` that carried no fault.
    pub fn plain(target: usize, outcome: Outcome) -> Self {
        Self {
            target,
            fault: None,
            outcome,
            measured: None,
        }
    }
}

/// A protocol client owned by one worker; it keeps its connection between requests and
/// enforces its own request timeout (dropping the connection when one expires).
pub trait Client: Send + 'static {
    /// Sends request number `index` of the whole schedule and waits for its answer.
    fn request(&mut self, index: u64) -> impl Future<Output = Attempt> + Send;
}

/// Where one worker sits in the shared schedule.
#[derive(Debug, Clone)]
pub struct Share {
    /// The workload's rate profile.
    pub profile: Arc<RateProfile>,
    /// When the run started; intended times are offsets from it.
    pub start: Instant,
    /// This worker's number; it takes requests `worker`, `worker + workers`, ….
    pub worker: u64,
    /// How many workers share the schedule.
    pub workers: u64,
}

/// Runs one worker to the end of the profile. Requests not started by [`LATE_SEND_GRACE`]
/// after the end of the profile (the generator fell behind) are never sent; the report counts
/// them as dropped.
pub async fn drive<C: Client>(mut client: C, share: Share, recorder: Arc<Recorder>) {
    let last_send = share.start + share.profile.duration() + LATE_SEND_GRACE;
    let mut previous_done = share.start;
    let mut index = share.worker;
    while let Some(offset) = share.profile.intended_offset(index) {
        let intended = share.start + offset;
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        let sent_at = Instant::now();
        if sent_at >= last_send {
            let mut never_sent = 0;
            while share.profile.intended_offset(index).is_some() {
                never_sent += 1;
                index += share.workers;
            }
            recorder.dropped(never_sent);
            break;
        }
        // The request waited for the previous answer on this worker: the target delayed it,
        // so its latency counts from the intended time. Otherwise the worker was idle and any
        // lateness is the generator's own timer slop, reported separately as schedule lag.
        let measured_from = if previous_done > intended {
            intended
        } else {
            sent_at
        };
        let attempt = client.request(index).await;
        let done = Instant::now();
        let target = attempt.target;
        recorder.sent(
            target,
            sent_at.saturating_duration_since(intended),
            attempt.fault,
        );
        match (attempt.outcome, attempt.measured) {
            (Outcome::Answered(error), Some(measured)) => {
                recorder.answered(target, measured, measured, error);
            }
            (Outcome::Answered(error), None) => recorder.answered(
                target,
                done.saturating_duration_since(measured_from),
                done.saturating_duration_since(sent_at),
                error,
            ),
            (Outcome::Failed(kind), _) => recorder.failed(target, kind),
        }
        previous_done = done;
        index += share.workers;
    }
}
