//! A `serve` task running in the background of a test, and its graceful stop.
//!
//! Included by each test-helper module with `#[path]`, so every helper starts and stops the
//! server the same way.

use std::sync::Arc;
use std::time::Duration;

use prism_server::shell::net::{Datagram, Listener};
use prism_server::{Listeners, Node, serve};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest a test waits for the server's graceful shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `serve` and the switch that stops it.
pub struct ServeTask {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServeTask {
    /// Serves `listeners` with `core` until [`ServeTask::shutdown`].
    pub fn spawn<L: Listener, U: Datagram>(core: Arc<Node>, listeners: Listeners<L, U>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(core, listeners, async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits for its graceful shutdown.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(SHUTDOWN_TIMEOUT, task)
                .await
                .expect("graceful shutdown finishes in time")
                .expect("server task");
        }
    }
}
