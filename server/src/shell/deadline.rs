//! Write deadlines for every accepted stream: a peer that stops reading cannot hold a
//! connection (and its slot) by leaving our writes pending forever.
//!
//! [`WriteDeadline`] wraps a stream; a write, flush or shutdown that stays pending longer
//! than the deadline fails with [`io::ErrorKind::TimedOut`]. Reads are untouched (each shell
//! bounds its reads with its own idle timeout). The timer is armed only while a write is
//! pending, so a connection whose writes complete at once pays nothing for it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose writes must make progress within a deadline.
pub struct WriteDeadline<S> {
    inner: S,
    /// How long one write, flush or shutdown may stay pending.
    deadline: Duration,
    /// Armed while a write is pending; dropped as soon as it makes progress.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`; its writes must progress within `deadline`.
    pub fn new(inner: S, deadline: Duration) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Polls `op`; while it is pending, polls the deadline too.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let deadline = self.deadline;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
                ready!(timer.as_mut().poll(cx));
                self.timer = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the peer did not read for {} s (write deadline)",
                        deadline.as_secs_f64()
                    ),
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, |inner, cx| inner.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_fails_the_write_after_the_deadline() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(ours, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = stream
            .write_all(&[0u8; 4096])
            .await
            .expect_err("the duplex buffer fills and nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_progress_never_time_out() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(ours, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut sink)
                .await
                .map(|_| sink.len())
        });
        stream
            .write_all(&[1u8; 100_000])
            .await
            .expect("a reading peer");
        stream.shutdown().await.expect("shutdown");
        assert_eq!(reader.await.expect("task").expect("read"), 100_000);
    }
}
