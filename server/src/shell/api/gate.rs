//! The gate in front of the HTTP/1 parser: every request head is checked before hyper sees a
//! byte of it, so that every response of the API port — refusals included — carries
//! `X-Request-ID` and a `{"error","detail"}` body, and no client can hold a connection with
//! a head or body it never finishes.
//!
//! The gate reads from the socket into its own buffer and hands hyper only bytes it has
//! approved: a complete, well-formed head within the size limits, then exactly the body its
//! `Content-Length` declares. A head that breaks a limit, or that does not arrive within
//! `api.header_timeout_secs` (a body within `api.body_timeout_secs`), becomes a
//! [`Refusal`]: the gate reports end of stream to hyper, which finishes the responses it
//! owes and shuts the stream down — and the gate writes the refusal's response first. (No
//! route reads a body, so a late body usually belongs to a request already answered: then
//! the connection is only closed.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Longest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 100;
/// Largest request body accepted, in bytes (no route takes a body; small ones are drained).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// How long a client may take over one request.
#[derive(Debug, Clone, Copy)]
pub struct GateTimeouts {
    /// From waiting for a request to its complete head.
    pub header: Duration,
    /// From the end of the head to the end of its body.
    pub body: Duration,
}

/// A request the gate refused, to be answered before the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status to answer with.
    pub status: StatusCode,
    /// What was wrong, for the `detail` field.
    pub detail: String,
}

/// Renders a refusal as the complete response to send.
pub type Answer = Arc<dyn Fn(&Refusal) -> Bytes + Send + Sync>;

enum Expect {
    /// A request head.
    Head,
    /// This many more body bytes of the request whose head was approved.
    Body(u64),
}

/// A stream that only lets well-formed, timely requests through to the HTTP parser.
pub struct Gate<S> {
    inner: S,
    timeouts: GateTimeouts,
    /// Bytes read from the socket and not yet handed on.
    buf: BytesMut,
    /// How many bytes at the front of `buf` are approved for the parser.
    approved: usize,
    expect: Expect,
    /// The deadline of the head or body awaited now; armed at the first wait for it.
    timer: Option<Pin<Box<Sleep>>>,
    /// The socket reported end of stream.
    eof: bool,
    /// Response bytes went out since the last head was approved: the request is answered,
    /// so a late body of it only closes the connection (a 408 would answer nothing).
    answered: bool,
    /// Set once a request is refused: the parser sees end of stream from then on.
    refusal: Option<Refusal>,
    /// Turns a refusal into the response bytes to send (request ID, JSON body, metrics).
    answer: Answer,
    /// The refusal's response and how much of it is written; sent when the parser shuts
    /// the stream down, after every response it owed.
    reply: Option<(Bytes, usize)>,
}

impl<S> Gate<S> {
    /// A gate over `inner`; `answer` renders a refusal as the response to send.
    pub fn new(inner: S, timeouts: GateTimeouts, answer: Answer) -> Self {
        Self {
            inner,
            timeouts,
            buf: BytesMut::with_capacity(READ_CHUNK),
            approved: 0,
            expect: Expect::Head,
            timer: None,
            eof: false,
            answered: false,
            refusal: None,
            answer,
            reply: None,
        }
    }

    fn refuse(&mut self, status: StatusCode, detail: impl Into<String>) {
        let refusal = Refusal {
            status,
            detail: detail.into(),
        };
        self.reply = Some(((self.answer)(&refusal), 0));
        self.refusal = Some(refusal);
        self.buf.clear();
        self.approved = 0;
    }

    /// Approves what `buf` holds of the next head or body; returns whether it approved
    /// anything (or refused).
    fn approve(&mut self) -> bool {
        match self.expect {
            Expect::Body(remaining) => {
                let unapproved = self.buf.len() - self.approved;
                let take = u64::try_from(unapproved).unwrap_or(u64::MAX).min(remaining);
                if take == 0 {
                    return false;
                }
                self.approved += usize::try_from(take).unwrap_or(usize::MAX);
                if remaining == take {
                    self.next_request();
                } else {
                    self.expect = Expect::Body(remaining - take);
                }
                true
            }
            Expect::Head => {
                let pending = &self.buf[self.approved..];
                if pending.is_empty() {
                    return false;
                }
                match check_head(pending) {
                    Ok(None) => false,
                    Ok(Some((len, body))) => {
                        self.approved += len;
                        self.answered = false;
                        self.timer = None;
                        self.expect = Expect::Body(body);
                        if body == 0 {
                            self.next_request();
                        }
                        true
                    }
                    Err((status, detail)) => {
                        self.refuse(status, detail);
                        true
                    }
                }
            }
        }
    }

    fn next_request(&mut self) -> bool {
        self.expect = Expect::Head;
        self.timer = None;
        true
    }
}

/// Checks the head at the start of `bytes`: `Ok(None)` while it is incomplete (and within
/// limits), `Ok(Some((head length, body length)))` once it is complete and acceptable.
fn check_head(bytes: &[u8]) -> Result<Option<(usize, u64)>, (StatusCode, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            let line_done = bytes.windows(2).any(|pair| pair == b"\r\n") || bytes.contains(&b'\n');
            if !line_done && bytes.len() > MAX_URI_BYTES + 64 {
                return Err((
                    StatusCode::URI_TOO_LONG,
                    format!("the request target is longer than {MAX_URI_BYTES} bytes"),
                ));
            }
            if bytes.len() > MAX_HEAD_BYTES {
                return Err((
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {MAX_HEADERS} header fields"),
            ));
        }
        Err(err) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("malformed HTTP/1.1 request head: {err}"),
            ));
        }
    };
    if request.path.is_some_and(|path| path.len() > MAX_URI_BYTES) {
        return Err((
            StatusCode::URI_TOO_LONG,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        ));
    }
    if len > MAX_HEAD_BYTES {
        return Err((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
        ));
    }
    let mut body: Option<u64> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((
                StatusCode::LENGTH_REQUIRED,
                "chunked request bodies are not accepted; send Content-Length (no route takes a body)"
                    .to_owned(),
            ));
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let declared = std::str::from_utf8(header.value)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    (
                        StatusCode::BAD_REQUEST,
                        "Content-Length is not a number".to_owned(),
                    )
                })?;
            if body.is_some_and(|earlier| earlier != declared) {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "conflicting Content-Length headers".to_owned(),
                ));
            }
            body = Some(declared);
        }
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {body} bytes; the limit is {MAX_BODY_BYTES} (no route takes a body)"
            ),
        ));
    }
    Ok(Some((len, body)))
}

impl<S: AsyncRead + Unpin> AsyncRead for Gate<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.refusal.is_some() {
                return Poll::Ready(Ok(()));
            }
            if this.approved > 0 {
                let count = this.approved.min(out.remaining());
                out.put_slice(&this.buf[..count]);
                this.buf.advance(count);
                this.approved -= count;
                return Poll::Ready(Ok(()));
            }
            if this.approve() {
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            this.buf.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    let (limit, waiting_for_body) = match this.expect {
                        Expect::Head => (this.timeouts.header, false),
                        Expect::Body(_) => (this.timeouts.body, true),
                    };
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.timer = None;
                    if waiting_for_body && this.answered {
                        // The route answered without its body: stop waiting for it.
                        this.eof = true;
                    } else if waiting_for_body {
                        let detail = format!(
                            "the request body did not arrive within {} s",
                            limit.as_secs()
                        );
                        this.refuse(StatusCode::REQUEST_TIMEOUT, detail);
                    } else if this.buf.is_empty() {
                        // An idle keep-alive connection: close it without a word.
                        this.eof = true;
                    } else {
                        let detail = format!(
                            "the request head did not arrive within {} s",
                            limit.as_secs()
                        );
                        this.refuse(StatusCode::REQUEST_TIMEOUT, detail);
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gate<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.answered |= written > 0;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while let Some((reply, written)) = &mut this.reply {
            if *written < reply.len() {
                let count = ready!(Pin::new(&mut this.inner).poll_write(cx, &reply[*written..]))?;
                if count == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += count;
            } else {
                ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                this.reply = None;
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.answered |= written > 0;
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_checked_against_every_limit() {
        let ok = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(check_head(ok), Ok(Some((ok.len(), 0))));
        assert_eq!(check_head(b"GET /api/health HTTP/1.1\r\nHo"), Ok(None));
        let status = |bytes: &[u8]| check_head(bytes).err().map(|(status, _)| status);
        let long_path = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(status(long_path.as_bytes()), Some(StatusCode::URI_TOO_LONG));
        let unfinished_path = format!("GET /{}", "a".repeat(70_000));
        assert_eq!(
            status(unfinished_path.as_bytes()),
            Some(StatusCode::URI_TOO_LONG)
        );
        let many: String = (0..2000).map(|n| format!("X-{n}: 1\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            status(many.as_bytes()),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nX-Bad: a\x01b\r\n\r\n"),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(StatusCode::LENGTH_REQUIRED)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let with_body = b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(check_head(with_body), Ok(Some((with_body.len(), 5))));
    }
}
