//! The API's own runtime: API reads (listings of a large registry, `/metrics`) are the
//! operator's path and may cost milliseconds each; heartbeats and DNS answers are the product's
//! hot path and must not queue behind them. The API therefore runs on threads of its own, at a
//! lower CPU priority (nice +10) than the rest of the process: when the machine is busy, the
//! kernel runs registrations and DNS first.

use std::io;

/// How much lower than the rest of the process the API threads run (a nice increment).
pub const API_NICE_INCREMENT: i32 = 10;

/// The API's runtime; dropping it (also from async code, on an early error return) shuts it
/// down without waiting for its tasks.
pub struct ApiRuntime {
    /// Taken when dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Its handle.
    handle: tokio::runtime::Handle,
}

impl ApiRuntime {
    /// Where to spawn the API's tasks.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// Runs `future` on the API's runtime.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A multi-threaded runtime of `threads` threads named `prism-api`, each at
/// [`API_NICE_INCREMENT`] lower priority. A thread whose priority cannot be lowered keeps
/// running as it is (the API still works; it only competes as an equal).
pub fn runtime(threads: usize) -> io::Result<ApiRuntime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("prism-api")
        .on_thread_start(|| {
            // On Linux the nice value is per thread: this lowers only the API's threads.
            if let Err(err) = rustix::process::nice(API_NICE_INCREMENT) {
                tracing::debug!(error = %err, "cannot lower the API threads' priority");
            }
        })
        .enable_all()
        .build()
        .map(|runtime| ApiRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
}
