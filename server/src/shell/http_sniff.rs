//! Plain HTTP on the registration port: a connection whose first bytes are `GET ` or `HEAD`
//! is handed to the API router (only `/metrics` and `/api/health`), answered once, and closed.
//!
//! No valid frame starts that way: the 4-byte length prefix would declare more than 1 GB,
//! far above the frame limit.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::api::{self, ApiState, Surface};

/// Bytes looked at to tell HTTP from a frame: exactly one length prefix.
const SNIFF_LEN: usize = 4;
/// Request-line prefixes answered as HTTP.
const HTTP_PREFIXES: [&[u8; SNIFF_LEN]; 2] = [b"GET ", b"HEAD"];

/// Whether a connection's first bytes are an HTTP request.
pub fn looks_like_http(prefix: &[u8]) -> bool {
    HTTP_PREFIXES
        .iter()
        .any(|method| prefix == method.as_slice())
}

/// What a new registration-port connection turned out to be.
pub enum Sniffed<S> {
    /// An HTTP request; serve it with [`serve_http`].
    Http(Prefixed<S>),
    /// Registration frames (or fewer than 4 bytes before the peer closed).
    Frames(Prefixed<S>),
}

/// Reads the first bytes of `stream` (until 4 arrived or the peer closed) and classifies it.
/// The bytes read are replayed by the returned stream.
pub async fn sniff<S: AsyncRead + Unpin>(mut stream: S) -> io::Result<Sniffed<S>> {
    let mut prefix = [0u8; SNIFF_LEN];
    let mut filled = 0;
    while filled < SNIFF_LEN {
        let read = stream.read(&mut prefix[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    let is_http = looks_like_http(&prefix[..filled]);
    let stream = Prefixed {
        prefix,
        start: 0,
        end: filled,
        inner: stream,
    };
    Ok(if is_http {
        Sniffed::Http(stream)
    } else {
        Sniffed::Frames(stream)
    })
}

/// Answers one HTTP/1.1 request with the registration-port router and closes, all within
/// `deadline`, behind the same gate and limits as the API port.
pub async fn serve_http<S>(
    state: &ApiState,
    stream: Prefixed<S>,
    deadline: Duration,
    stop: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = api::router(state.clone(), Surface::Registration);
    let limits = state.config.get().api.clone();
    let connection = api::serve_connection(state, app, stream, &limits, false, stop);
    if tokio::time::timeout(deadline, connection).await.is_err() {
        tracing::debug!("HTTP request on the registration port timed out");
    }
}

/// A stream that first replays the sniffed bytes, then reads from the socket.
pub struct Prefixed<S> {
    prefix: [u8; SNIFF_LEN],
    /// Next unread byte of `prefix`.
    start: usize,
    /// End of the valid bytes of `prefix`.
    end: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.start < self.end {
            let count = (self.end - self.start).min(buf.remaining());
            let start = self.start;
            buf.put_slice(&self.prefix[start..start + count]);
            self.start += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_methods_are_recognised_and_frame_prefixes_are_not() {
        assert!(looks_like_http(b"GET "));
        assert!(looks_like_http(b"HEAD"));
        assert!(!looks_like_http(b"GET"));
        assert!(!looks_like_http(&[0, 0, 0, 60]));
        // The largest valid frame declares 64 KiB: 00 01 00 00.
        assert!(!looks_like_http(&65_536u32.to_be_bytes()));
    }

    #[tokio::test]
    async fn sniffed_bytes_are_replayed_before_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"\0\0\0\x05hello")
            .await
            .expect("write");
        drop(client);
        let Sniffed::Frames(mut stream) = sniff(server).await.expect("sniff") else {
            panic!("a frame prefix was taken for HTTP");
        };
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.expect("read");
        assert_eq!(all, b"\0\0\0\x05hello");
    }
}
