//! Length-prefixed framing: a 4-byte big-endian payload length, then the payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// A framing violation; the connection is answered once and then closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared length exceeds the limit; the body is never read or allocated.
    #[error("frame of {declared} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// Length the peer declared.
        declared: usize,
        /// Configured limit.
        max: usize,
    },
    /// A zero-length frame carries no message.
    #[error("empty frame: a frame must carry a JSON message")]
    Empty,
}

/// Splits a byte stream into frame payloads, enforcing the size limit on the declared length.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    /// Largest payload accepted.
    max_payload: usize,
}

impl FrameDecoder {
    /// A decoder that refuses payloads larger than `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Self { max_payload }
    }

    /// Bytes still needed before the next frame is complete (0 if one is complete).
    ///
    /// Lets a reader reserve exactly what is needed, never the declared size of a frame that
    /// will be refused.
    pub fn missing(&self, buf: &[u8]) -> usize {
        match declared_len(buf) {
            None => HEADER_LEN - buf.len(),
            Some(len) if len > self.max_payload => 0,
            Some(len) => (HEADER_LEN + len).saturating_sub(buf.len()),
        }
    }

    /// Removes and returns the next complete payload, `Ok(None)` if more bytes are needed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = declared_len(buf) else {
            return Ok(None);
        };
        if len > self.max_payload {
            return Err(FrameError::Oversized {
                declared: len,
                max: self.max_payload,
            });
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Appends `payload` as one frame to `dst`.
pub fn encode(payload: &[u8], dst: &mut BytesMut) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_u32(len);
    dst.put_slice(payload);
}

fn declared_len(buf: &[u8]) -> Option<usize> {
    let header: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(header)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode(payload, &mut buf);
        buf
    }

    #[test]
    fn decodes_a_frame_split_across_reads() {
        let decoder = FrameDecoder::new(64);
        let whole = framed(b"{\"a\":1}");
        let mut buf = BytesMut::from(&whole[..6]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.missing(&buf), whole.len() - 6);
        buf.extend_from_slice(&whole[6..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Bytes::from_static(b"{\"a\":1}")))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_back_to_back_frames_in_order() {
        let decoder = FrameDecoder::new(64);
        let mut buf = framed(b"one");
        buf.extend_from_slice(&framed(b"two"));
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Bytes::from_static(b"one")))
        );
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Bytes::from_static(b"two")))
        );
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    #[test]
    fn rejects_oversized_declared_length_from_the_header_alone() {
        let decoder = FrameDecoder::new(65_536);
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::Oversized {
                declared: u32::MAX as usize,
                max: 65_536
            })
        );
        assert_eq!(decoder.missing(&buf), 0, "must not ask to read the body");
    }

    #[test]
    fn accepts_a_payload_of_exactly_the_limit() {
        let decoder = FrameDecoder::new(8);
        let mut buf = framed(b"12345678");
        assert!(matches!(decoder.decode(&mut buf), Ok(Some(_))));
    }

    #[test]
    fn rejects_empty_frames() {
        let decoder = FrameDecoder::new(8);
        let mut buf = framed(b"");
        assert_eq!(decoder.decode(&mut buf), Err(FrameError::Empty));
    }
}
