//! One registration connection: reads whole frames, writes responses, closes cleanly.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::protocol::Response;
use crate::core::protocol::frame::{self, FrameDecoder, FrameError};

/// Read buffer growth step; frames larger than this grow the buffer as they arrive.
const READ_CHUNK: usize = 8 * 1024;
/// Longest a closing connection waits for the peer to read the last response.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes discarded from the peer while lingering.
const LINGER_DISCARD_LIMIT: usize = 1024 * 1024;

/// Why reading the next frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer broke the framing rules.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer closed in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A stream plus its read and write buffers; handlers see whole frames, never bytes.
pub struct Connection<S> {
    stream: S,
    decoder: FrameDecoder,
    /// Bytes received but not yet consumed as frames.
    read_buf: BytesMut,
    /// Encoded responses waiting to be written; flushed when no complete frame is buffered,
    /// so pipelined requests are answered in one write.
    write_buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps `stream`, refusing frames larger than `max_frame_bytes`.
    pub fn new(stream: S, max_frame_bytes: usize) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(max_frame_bytes),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The next frame payload; `Ok(None)` on a clean end of stream.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            if let Some(payload) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(Some(payload));
            }
            // Grow by what the frame still needs (bounded by the frame limit, which the
            // decoder already checked), never by an unchecked declared length.
            let missing = self.decoder.missing(&self.read_buf);
            self.read_buf.reserve(missing.clamp(1, READ_CHUNK));
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return if self.read_buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
        }
    }

    /// A frame already fully buffered, without reading from the socket.
    pub fn buffered_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.decoder.decode(&mut self.read_buf)
    }

    /// Whether another complete frame (or a framing error) is already buffered.
    pub fn has_buffered_frame(&self) -> bool {
        self.decoder.missing(&self.read_buf) == 0
    }

    /// Queues a response frame.
    pub fn queue(&mut self, response: &Response) {
        frame::encode(&response.to_json(), &mut self.write_buf);
    }

    /// Writes every queued response.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
        }
        self.stream.flush().await
    }

    /// Flushes, half-closes, then discards what the peer still sends until it closes (bounded
    /// in time and bytes), so the last response is not destroyed by a reset.
    pub async fn close_gracefully(mut self) {
        if self.flush().await.is_err() || self.stream.shutdown().await.is_err() {
            return;
        }
        let drain = async {
            let mut discarded = 0;
            let mut scratch = [0u8; READ_CHUNK];
            while discarded < LINGER_DISCARD_LIMIT {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}
