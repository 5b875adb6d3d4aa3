//! The registration protocol as a client speaks it: 4-byte big-endian length, then JSON.

use std::io;
use std::time::SystemTime;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest response payload accepted from the server (the protocol's frame limit).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A registration (heartbeat) request frame, length prefix included.
pub fn registration(hostname: &str, token: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "version": "1.0",
        "type": "registration",
        "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "hostname": hostname,
        "auth_token": token,
    })
    .to_string();
    framed(body.as_bytes())
}

/// A frame whose payload is not JSON: the server must answer one error and close.
pub fn malformed() -> Vec<u8> {
    framed(b"{\"version\": \"1.0\", this is not json")
}

/// `payload` with its length prefix.
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The fields of a response the load generator looks at.
#[derive(Debug, Deserialize)]
pub struct Response {
    /// `success` or `error`.
    pub status: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
}

impl Response {
    /// Whether the server accepted the request.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

/// Why reading a response failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed or closed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The frame was too large or not a JSON response.
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// A connection whose reads are buffered, so a whole response usually takes one read call.
pub type BufferedStream = BufReader<TcpStream>;

/// Writes `frame` and reads one response frame.
pub async fn exchange(stream: &mut BufferedStream, frame: &[u8]) -> Result<Response, ReadError> {
    stream.get_mut().write_all(frame).await?;
    read_response(stream).await
}

/// Reads one response frame.
pub async fn read_response(stream: &mut BufferedStream) -> Result<Response, ReadError> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let length = u32::from_be_bytes(prefix) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(ReadError::Malformed(format!(
            "declared length {length} exceeds {MAX_FRAME_BYTES}"
        )));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|err| ReadError::Malformed(err.to_string()))
}
