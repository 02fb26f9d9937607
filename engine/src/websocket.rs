//! The server side of websockets (RFC 6455), as lean as the room stream
//! needs: the upgrade handshake, then frames read from and written to the
//! TCP stream directly.
//!
//! Why not a general websocket library: a chat node holds thousands of
//! mostly idle connections, and a general library keeps a read and a write
//! buffer per connection for its whole life (several KiB at their
//! smallest). Here bytes are read into a buffer on the stack of the poll, a
//! connection keeps only the bytes of a frame not fully arrived, and its
//! outgoing buffer lives from the first frame queued to the end of the
//! flush, which writes all that was queued at once: 3.6 KiB per idle
//! connection at 15k, where the bench's naive peer on tokio-tungstenite
//! holds 7.2 (`bench/results/`).
//! Held to the protocol by the tests below (against tungstenite) and a
//! fuzz target over arbitrary byte streams (`fuzz/`, `scripts/fuzz`).
//!
//! What is supported is what browsers send: masked frames, text and binary
//! messages (fragmented or not) up to a size limit, ping, pong and close.
//! No extensions (compression) and no subprotocols are negotiated. A
//! protocol violation answers with the matching close code (1002, 1007 for
//! text that is not UTF-8, 1009 for a message over the limit).
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The GUID a websocket server appends to the client's key (RFC 6455, 1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Bytes read from the socket per call.
const READ_CHUNK: usize = 4096;

/// A websocket upgrade request, checked: extract it in a handler, then
/// answer with [`Upgrade::on_upgrade`].
pub struct Upgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request to a websocket endpoint was refused (before upgrading).
#[derive(Debug)]
pub struct UpgradeRefused(StatusCode, &'static str);

impl IntoResponse for UpgradeRefused {
    fn into_response(self) -> Response {
        let mut response = (self.0, self.1).into_response();
        if self.0 == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

/// Whether a comma-separated header holds `token` (case-insensitively).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    STANDARD.encode(Sha1::new().chain_update(key).chain_update(ACCEPT_GUID).finalize())
}

/// Checks the upgrade headers; returns the accept key to answer with.
fn check_handshake(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, UpgradeRefused> {
    let refuse = |why| Err(UpgradeRefused(StatusCode::BAD_REQUEST, why));
    if method != Method::GET {
        return refuse("A websocket upgrade must be a GET request.");
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || !header_has_token(headers, header::UPGRADE, "websocket")
    {
        return refuse("This endpoint only speaks websocket.");
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return Err(UpgradeRefused(StatusCode::UPGRADE_REQUIRED, "Only websocket version 13 is supported."));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse("The websocket key is missing.");
    };
    if STANDARD.decode(key.as_bytes()).map_or(true, |k| k.len() != 16) {
        return refuse("The websocket key is malformed.");
    }
    Ok(HeaderValue::from_str(&accept_key(key.as_bytes())).expect("base64 is a valid header value"))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = UpgradeRefused;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let accept = check_handshake(&parts.method, &parts.headers)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRefused(StatusCode::BAD_REQUEST, "This connection cannot be upgraded."))?;
        Ok(Upgrade { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers "101 Switching Protocols" and runs `serve` on the socket
    /// once the switch is done. `max_message` bounds what the peer may
    /// send in one message.
    pub fn on_upgrade<F, Fut>(self, max_message: usize, serve: F) -> Response
    where
        F: FnOnce(Socket<TokioIo<Upgraded>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade { accept, on_upgrade } = self;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(Socket::new(TokioIo::new(upgraded), max_message)).await,
                Err(err) => tracing::debug!(%err, "websocket upgrade did not complete"),
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        response
    }
}

/// A message (or control frame) from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// Answered with a pong, queued for the next flush.
    Ping,
    Pong,
    /// The peer closes (with its code, if any); an answer is queued for the
    /// next flush.
    Close(Option<u16>),
}

/// Why reading from the peer failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("message over the size limit")]
    TooBig,
    #[error("websocket protocol violation: {0}")]
    Protocol(&'static str),
    #[error("text message that is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ReadError {
    /// The close code that tells the peer what it did wrong, if it did.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ReadError::TooBig => Some(1009),
            ReadError::Protocol(_) => Some(1002),
            ReadError::NotUtf8 => Some(1007),
            ReadError::Io(_) => None,
        }
    }
}

/// The opcodes of RFC 6455 (5.2); a frame with any other is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// One frame from the peer, unmasked.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: Opcode,
    payload: Vec<u8>,
}

/// Parses the frame at the start of `buf`: `Ok(None)` until all of it has
/// arrived, else the frame and the bytes it took. A frame declaring more
/// than `max_payload` bytes is refused as soon as its header is read.
fn parse_frame(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, ReadError> {
    let [first, second, ..] = *buf else { return Ok(None) };
    let fin = first & 0x80 != 0;
    // The order of the checks decides which rule a frame that breaks
    // several is refused for: tungstenite's order (the opcode, the size,
    // then the rest), so that the two agree on every close code.
    let opcode = match first & 0x0F {
        0x0 => Opcode::Continuation,
        0x1 => Opcode::Text,
        0x2 => Opcode::Binary,
        0x8 => Opcode::Close,
        0x9 => Opcode::Ping,
        0xA => Opcode::Pong,
        _ => return Err(ReadError::Protocol("unknown opcode")),
    };
    let (len, at) = match second & 0x7F {
        126 => (buf.get(2..4).map(|b| u64::from(u16::from_be_bytes([b[0], b[1]]))), 4),
        127 => (buf.get(2..10).map(|b| u64::from_be_bytes(b.try_into().expect("eight bytes"))), 10),
        n => (Some(u64::from(n)), 2),
    };
    let Some(len) = len else { return Ok(None) };
    if len > max_payload as u64 {
        return Err(ReadError::TooBig);
    }
    if first & 0x70 != 0 {
        return Err(ReadError::Protocol("reserved bits set (no extension was negotiated)"));
    }
    if second & 0x80 == 0 {
        return Err(ReadError::Protocol("frames from a client must be masked"));
    }
    let is_control = opcode as u8 & 0x08 != 0;
    if is_control && (len > 125 || !fin) {
        return Err(ReadError::Protocol("control frames must be short and whole"));
    }
    let end = at + 4 + len as usize;
    let (Some(mask), Some(masked)) = (buf.get(at..at + 4), buf.get(at + 4..end)) else { return Ok(None) };
    let payload = masked.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m).collect();
    Ok(Some((Frame { fin, opcode, payload }, end)))
}

/// The code of a close frame's payload (RFC 6455, 5.5.1 and 7.4): none, or
/// two bytes of code and a UTF-8 reason. A code a peer may not send (1005,
/// 1006, 1015, the reserved and unassigned ones, as in tungstenite) is taken
/// as 1002, the peer's protocol error, which the answer says too.
fn close_code(payload: &[u8]) -> Result<Option<u16>, ReadError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return match payload.len() {
            0 => Ok(None),
            _ => Err(ReadError::Protocol("a close frame's code is two bytes")),
        };
    };
    std::str::from_utf8(reason).map_err(|_| ReadError::NotUtf8)?;
    let code = u16::from_be_bytes(*code);
    let allowed = matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999);
    Ok(Some(if allowed { code } else { 1002 }))
}

/// Checks that a text's bytes from `from` on go on as UTF-8 (the last
/// character may be cut, to be completed by the next fragment); returns
/// how far they are known to be.
fn utf8_so_far(text: &[u8], from: usize) -> Result<usize, ReadError> {
    match std::str::from_utf8(&text[from..]) {
        Ok(_) => Ok(text.len()),
        Err(cut) if cut.error_len().is_none() => Ok(from + cut.valid_up_to()),
        Err(_) => Err(ReadError::NotUtf8),
    }
}

/// The longest header of a server frame (no mask).
const MAX_HEADER: usize = 10;

/// Appends one unmasked (server) frame to `out`.
fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    // One allocation for the frame, not one per part of it.
    out.reserve(MAX_HEADER + payload.len());
    out.push(0x80 | opcode as u8);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Lets a task that waits on a socket among other things skip the socket
/// when something else woke it: a connection's task wakes for every event
/// of its room, and polling a socket with nothing to read is not free (its
/// readiness is under a lock, behind three layers of wrappers). The socket
/// is polled again only once the gate's waker, which it holds, fired (or
/// after it gave a message: more may be buffered).
pub struct ReadGate {
    flag: Arc<GateFlag>,
    waker: Waker,
}

struct GateFlag {
    /// The socket may have something: poll it.
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for GateFlag {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Default for ReadGate {
    fn default() -> Self {
        let flag = Arc::new(GateFlag { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        ReadGate { waker: Waker::from(flag.clone()), flag }
    }
}

/// An upgraded connection.
pub struct Socket<S> {
    stream: S,
    /// Bytes read but not yet parsed (part of a frame still arriving).
    unread: Vec<u8>,
    /// The parts so far of a fragmented message, its opcode, and how much
    /// of a text's bytes is known to be UTF-8.
    fragments: Option<(Opcode, Vec<u8>, usize)>,
    /// Frames queued for the next flush.
    outgoing: Vec<u8>,
    max_message: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    fn new(stream: S, max_message: usize) -> Self {
        Socket { stream, unread: Vec::new(), fragments: None, outgoing: Vec::new(), max_message }
    }

    /// The next message from the peer; `None` once the peer has hung up.
    /// Cancel-safe: bytes read are kept when the caller stops waiting.
    pub async fn next(&mut self) -> Option<Result<Incoming, ReadError>> {
        loop {
            // A whole frame among the bytes already read first.
            match parse_frame(&self.unread, self.max_message) {
                Ok(Some((frame, used))) => {
                    self.unread.drain(..used);
                    if self.unread.is_empty() {
                        // Nothing pending: an idle connection keeps no buffer.
                        self.unread = Vec::new();
                    }
                    match self.take_frame(frame) {
                        Ok(None) => continue,
                        taken => return taken.transpose(),
                    }
                }
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            // Read through a buffer on the stack of this poll only: a waiting
            // connection holds no read buffer. Not zeroed: most polls find
            // nothing to read, and filling 4 KiB on each is work for nothing.
            let read = poll_fn(|cx| {
                let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut buf = ReadBuf::uninit(&mut chunk);
                Pin::new(&mut self.stream).poll_read(cx, &mut buf).map_ok(|()| {
                    self.unread.extend_from_slice(buf.filled());
                    buf.filled().len()
                })
            });
            match read.await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return None,
                Err(err) => return Some(Err(err.into())),
            }
        }
    }

    /// [`Socket::next`] through a gate: the socket is polled only when it
    /// woke the task since it last had nothing (see [`ReadGate`]).
    /// Cancel-safe like `next`. Use one gate per socket.
    pub async fn next_through(&mut self, gate: &ReadGate) -> Option<Result<Incoming, ReadError>> {
        poll_fn(|cx| {
            gate.flag.task.register(cx.waker());
            if !gate.flag.woken.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let polled = std::pin::pin!(self.next()).poll(&mut Context::from_waker(&gate.waker));
            if polled.is_ready() {
                gate.flag.woken.store(true, Ordering::Release);
            }
            polled
        })
        .await
    }

    /// Turns a frame into a message, or keeps it as a fragment of one.
    fn take_frame(&mut self, Frame { fin, opcode, payload }: Frame) -> Result<Option<Incoming>, ReadError> {
        let (opcode, payload, checked) = match opcode {
            Opcode::Ping => {
                write_frame(&mut self.outgoing, Opcode::Pong, &payload);
                return Ok(Some(Incoming::Ping));
            }
            Opcode::Pong => return Ok(Some(Incoming::Pong)),
            Opcode::Close => {
                let code = close_code(&payload)?;
                let echo = code.map(u16::to_be_bytes);
                write_frame(&mut self.outgoing, Opcode::Close, echo.as_ref().map_or(&[][..], |c| &c[..]));
                return Ok(Some(Incoming::Close(code)));
            }
            Opcode::Text | Opcode::Binary if self.fragments.is_some() => {
                return Err(ReadError::Protocol("a new message began inside a fragmented one"));
            }
            Opcode::Text | Opcode::Binary => (opcode, payload, 0),
            Opcode::Continuation => {
                let Some((first_opcode, mut so_far, checked)) = self.fragments.take() else {
                    return Err(ReadError::Protocol("a continuation frame without a message to continue"));
                };
                if so_far.len() + payload.len() > self.max_message {
                    return Err(ReadError::TooBig);
                }
                so_far.extend_from_slice(&payload);
                (first_opcode, so_far, checked)
            }
        };
        if !fin {
            // A text that is not UTF-8 is refused at its first bad byte, as
            // tungstenite does, not once it is whole.
            let checked = if opcode == Opcode::Text { utf8_so_far(&payload, checked)? } else { 0 };
            self.fragments = Some((opcode, payload, checked));
            return Ok(None);
        }
        if opcode == Opcode::Binary {
            return Ok(Some(Incoming::Binary(payload)));
        }
        String::from_utf8(payload).map(|text| Some(Incoming::Text(text))).map_err(|_| ReadError::NotUtf8)
    }

    /// Queues a text message for the next flush.
    pub fn queue_text(&mut self, text: &str) {
        write_frame(&mut self.outgoing, Opcode::Text, text.as_bytes());
    }

    /// Queues a ping (empty) for the next flush: the browser answers it
    /// with a pong by itself, without running any of the page's code.
    pub fn queue_ping(&mut self) {
        write_frame(&mut self.outgoing, Opcode::Ping, &[]);
    }

    /// Queues a close frame for the next flush (the reason cut to fit).
    pub fn queue_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.as_bytes()[..reason.floor_char_boundary(123)]);
        write_frame(&mut self.outgoing, Opcode::Close, &payload);
    }

    /// Writes everything queued, then releases the buffer: an idle connection
    /// keeps none (one allocation per write is nothing next to the write).
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.outgoing).await?;
        self.stream.flush().await?;
        self.outgoing = Vec::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The tests hold this side to the protocol: a table of RFC 6455's rules,
    //! each case read whole, byte by byte and in odd chunks, and by tungstenite
    //! (the library the field uses) with the same result; thousands of random
    //! client streams read alike by both (messages, close, failure and close
    //! code); random and bit-flipped bytes that must never panic; and
    //! tungstenite as a client reading all this side writes.
    use super::*;
    use tokio::net::TcpStream;

    const OP_CONTINUATION: u8 = Opcode::Continuation as u8;
    const OP_TEXT: u8 = Opcode::Text as u8;
    const OP_BINARY: u8 = Opcode::Binary as u8;
    const OP_CLOSE: u8 = Opcode::Close as u8;
    const OP_PING: u8 = Opcode::Ping as u8;
    const OP_PONG: u8 = Opcode::Pong as u8;

    /// A frame as a browser sends it: masked.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn the_accept_key_is_the_one_of_the_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn handshakes_are_checked() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(check_handshake(&Method::GET, &headers).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(check_handshake(&Method::POST, &headers).unwrap_err().0, StatusCode::BAD_REQUEST);

        let mut old = headers.clone();
        old.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(check_handshake(&Method::GET, &old).unwrap_err().0, StatusCode::UPGRADE_REQUIRED);
        let mut short_key = headers.clone();
        short_key.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("c2hvcnQ="));
        assert_eq!(check_handshake(&Method::GET, &short_key).unwrap_err().0, StatusCode::BAD_REQUEST);
        let mut plain = headers.clone();
        plain.remove(header::UPGRADE);
        assert_eq!(check_handshake(&Method::GET, &plain).unwrap_err().0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn frames_are_parsed_once_whole_at_every_length_encoding() {
        for len in [0, 5, 125, 126, 300, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let bytes = client_frame(true, OP_BINARY, &payload);
            for cut in [0, 1, 2, 3, bytes.len() - 1] {
                assert!(parse_frame(&bytes[..cut], 100_000).unwrap().is_none(), "len {len} cut at {cut}");
            }
            let mut with_more = bytes.clone();
            with_more.extend_from_slice(&[0x81, 0x80]);
            let (frame, used) = parse_frame(&with_more, 100_000).unwrap().unwrap();
            assert_eq!((frame.fin, frame.opcode, used), (true, Opcode::Binary, bytes.len()));
            assert_eq!(frame.payload, payload);
        }
    }

    #[test]
    fn bad_frames_are_refused_with_their_close_codes() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        assert_eq!(parse_frame(&unmasked, 100).unwrap_err().close_code(), Some(1002));
        let mut reserved = client_frame(true, OP_TEXT, b"hi");
        reserved[0] |= 0x40;
        assert_eq!(parse_frame(&reserved, 100).unwrap_err().close_code(), Some(1002));
        let long_ping = client_frame(true, OP_PING, &[0; 126]);
        assert_eq!(parse_frame(&long_ping, 1000).unwrap_err().close_code(), Some(1002));
        // Refused from the header alone, before the payload arrives.
        let big = client_frame(true, OP_TEXT, &[b'a'; 70_000]);
        assert!(matches!(parse_frame(&big[..20], 16 * 1024), Err(ReadError::TooBig)));
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length() {
        let mut out = Vec::new();
        write_frame(&mut out, Opcode::Text, b"hi");
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
        out.clear();
        write_frame(&mut out, Opcode::Text, &[b'x'; 300]);
        assert_eq!(out[..4], [0x81, 126, 0x01, 0x2c]);
        out.clear();
        write_frame(&mut out, Opcode::Binary, &vec![0; 70_000]);
        assert_eq!(out[..2], [0x82, 127]);
        assert_eq!(out.len(), 10 + 70_000);
    }

    /// A socket pair: the server side as a `Socket`, the client side raw.
    async fn pair(max_message: usize) -> (Socket<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Socket::new(server, max_message), client)
    }

    #[tokio::test]
    async fn messages_arrive_whole_fragmented_or_not_and_controls_are_answered() {
        use tokio::io::AsyncReadExt;
        let (mut socket, mut client) = pair(1024).await;
        let mut bytes = client_frame(true, OP_TEXT, "héllo".as_bytes());
        bytes.extend(client_frame(false, OP_TEXT, b"one "));
        bytes.extend(client_frame(true, OP_PING, b"p"));
        bytes.extend(client_frame(false, OP_CONTINUATION, b"two "));
        bytes.extend(client_frame(true, OP_CONTINUATION, b"three"));
        bytes.extend(client_frame(true, OP_CLOSE, &1000u16.to_be_bytes()));
        // Sent in dribbles: frames cut anywhere still come out whole.
        for piece in bytes.chunks(3) {
            client.write_all(piece).await.unwrap();
        }
        assert_eq!(socket.next().await.unwrap().unwrap(), Incoming::Text("héllo".into()));
        assert_eq!(socket.next().await.unwrap().unwrap(), Incoming::Ping);
        assert_eq!(socket.next().await.unwrap().unwrap(), Incoming::Text("one two three".into()));
        assert_eq!(socket.next().await.unwrap().unwrap(), Incoming::Close(Some(1000)));
        socket.queue_text("bye");
        socket.flush().await.unwrap();
        let mut answer = [0; 64];
        let mut got = 0;
        while got < 3 + 4 + 5 {
            got += client.read(&mut answer[got..]).await.unwrap();
        }
        assert_eq!(answer[..got], [0x8A, 1, b'p', 0x88, 2, 0x03, 0xE8, 0x81, 3, b'b', b'y', b'e']);
        drop(client);
        assert!(socket.next().await.is_none(), "the peer hung up");
    }

    #[tokio::test]
    async fn through_a_gate_every_message_arrives_while_other_wakes_come_and_go() {
        let (mut socket, mut client) = pair(1024).await;
        let gate = ReadGate::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        // Three messages in one write: one read takes them all, and the
        // two left in the buffer must come out without another wake.
        let bytes: Vec<u8> =
            ["a", "b", "c"].iter().flat_map(|t| client_frame(true, OP_TEXT, t.as_bytes())).collect();
        client.write_all(&bytes).await.unwrap();
        let peer = tokio::spawn(async move {
            for i in 0..50 {
                tx.send(i).unwrap();
                tokio::task::yield_now().await;
            }
            // Arrives while the task waits on both: the socket's wake.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            client.write_all(&client_frame(true, OP_TEXT, b"d")).await.unwrap();
            client
        });
        let mut got = Vec::new();
        let mut other_wakes = 0;
        let read_all = async {
            while got.len() < 4 {
                tokio::select! {
                    Some(_) = rx.recv() => other_wakes += 1,
                    incoming = socket.next_through(&gate) => got.push(incoming.unwrap().unwrap()),
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), read_all).await.expect("no wake lost");
        let texts: Vec<Incoming> = ["a", "b", "c", "d"].map(|t| Incoming::Text(t.into())).into();
        assert_eq!(got, texts);
        assert!(other_wakes > 0);
        drop(peer.await.unwrap());
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next_through(&gate)).await;
        assert!(end.expect("the hang-up wakes the gate").is_none());
    }

    #[tokio::test]
    async fn a_message_over_the_limit_or_not_utf8_is_refused() {
        let (mut socket, mut client) = pair(10).await;
        client.write_all(&client_frame(false, OP_TEXT, b"123456")).await.unwrap();
        client.write_all(&client_frame(true, OP_CONTINUATION, b"789012")).await.unwrap();
        assert!(matches!(socket.next().await, Some(Err(ReadError::TooBig))));

        let (mut socket, mut client) = pair(10).await;
        client.write_all(&client_frame(true, OP_TEXT, &[0xff, 0xfe])).await.unwrap();
        assert!(matches!(socket.next().await, Some(Err(ReadError::NotUtf8))));
    }

    // ---- RFC 6455, case by case, and against tungstenite -----------------

    /// What a server makes of the bytes a client sent, message by message
    /// (pings and pongs left out): the conformance tests compare these.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Text(String),
        Binary(Vec<u8>),
        Close(Option<u16>),
        /// The connection failed with this close code (1002, 1007, 1009).
        Failed(u16),
    }

    /// A stream that gives `input` in reads of the sizes `chunks` cycles
    /// through, then the end; what is written to it is dropped.
    struct Scripted {
        input: Vec<u8>,
        at: usize,
        chunks: Vec<usize>,
        reads: usize,
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let size = self.chunks[self.reads % self.chunks.len()].max(1);
            let end = self.at.saturating_add(size).min(self.input.len()).min(self.at + buf.remaining());
            buf.put_slice(&self.input[self.at..end]);
            self.at = end;
            self.reads += 1;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Our server's reading of `bytes`, delivered in reads of `chunks`.
    async fn ours(bytes: &[u8], chunks: &[usize], max_message: usize) -> Vec<Seen> {
        let stream = Scripted { input: bytes.to_vec(), at: 0, chunks: chunks.to_vec(), reads: 0 };
        let mut socket = Socket::new(stream, max_message);
        let mut seen = Vec::new();
        while let Some(incoming) = socket.next().await {
            match incoming {
                Ok(Incoming::Text(text)) => seen.push(Seen::Text(text)),
                Ok(Incoming::Binary(data)) => seen.push(Seen::Binary(data)),
                Ok(Incoming::Ping | Incoming::Pong) => {}
                Ok(Incoming::Close(code)) => {
                    seen.push(Seen::Close(code));
                    break;
                }
                Err(err) => {
                    seen.push(Seen::Failed(err.close_code().expect("not an I/O error")));
                    break;
                }
            }
        }
        seen
    }

    /// tungstenite's reading of the same bytes, as a server. Its errors
    /// all count as 1002 but for size (1009) and encoding (1007).
    fn reference(bytes: &[u8], max_message: usize) -> Vec<Seen> {
        use tokio_tungstenite::tungstenite::{
            error::{CapacityError, Error, ProtocolError},
            protocol::{Role, WebSocketConfig},
            Message, WebSocket,
        };
        struct Stream(std::io::Cursor<Vec<u8>>);
        impl std::io::Read for Stream {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::io::Read::read(&mut self.0, buf)
            }
        }
        impl std::io::Write for Stream {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let config =
            WebSocketConfig::default().max_message_size(Some(max_message)).max_frame_size(Some(max_message));
        let mut ws = WebSocket::from_raw_socket(
            Stream(std::io::Cursor::new(bytes.to_vec())),
            Role::Server,
            Some(config),
        );
        let mut seen = Vec::new();
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => seen.push(Seen::Text(text.as_str().to_owned())),
                Ok(Message::Binary(data)) => seen.push(Seen::Binary(data.to_vec())),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(frame)) => {
                    seen.push(Seen::Close(frame.map(|f| u16::from(f.code))));
                    break;
                }
                // The end of the bytes, in whatever state.
                Err(
                    Error::Io(_)
                    | Error::ConnectionClosed
                    | Error::AlreadyClosed
                    | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                ) => break,
                Err(Error::Capacity(CapacityError::MessageTooLong { .. })) => {
                    seen.push(Seen::Failed(1009));
                    break;
                }
                Err(Error::Utf8(_)) => {
                    seen.push(Seen::Failed(1007));
                    break;
                }
                Err(_) => {
                    seen.push(Seen::Failed(1002));
                    break;
                }
            }
        }
        seen
    }

    /// A masked frame with any first byte (FIN, RSV, opcode) and payload.
    fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = client_frame(first & 0x80 != 0, first & 0x0F, payload);
        frame[0] = first;
        frame
    }

    fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        payload
    }

    #[tokio::test]
    async fn frames_are_read_as_rfc_6455_says() {
        use Seen::*;
        let text = |t: &str| Text(t.to_owned());
        let frame = |fin: bool, op: u8, p: &[u8]| client_frame(fin, op, p);
        let cases: Vec<(&str, Vec<u8>, Vec<Seen>)> = vec![
            ("an empty text", frame(true, OP_TEXT, b""), vec![text("")]),
            ("a binary message", frame(true, OP_BINARY, &[0, 255]), vec![Binary(vec![0, 255])]),
            (
                "fragments with a ping between them",
                [frame(false, OP_TEXT, b"a"), frame(true, OP_PING, b""), frame(true, OP_CONTINUATION, b"b")]
                    .concat(),
                vec![text("ab")],
            ),
            (
                "a character cut between fragments",
                [
                    frame(false, OP_TEXT, &"é".as_bytes()[..1]),
                    frame(true, OP_CONTINUATION, &"é".as_bytes()[1..]),
                ]
                .concat(),
                vec![text("é")],
            ),
            ("5.1: an unmasked frame", vec![0x81, 0x01, b'a'], vec![Failed(1002)]),
            ("5.2: RSV1 without an extension", raw_frame(0xC1, b"a"), vec![Failed(1002)]),
            ("5.2: RSV3", raw_frame(0x91, b"a"), vec![Failed(1002)]),
            ("5.2: reserved data opcode 3", raw_frame(0x83, b"a"), vec![Failed(1002)]),
            ("5.2: reserved control opcode 0xB", raw_frame(0x8B, b""), vec![Failed(1002)]),
            (
                "5.4: a continuation with nothing to continue",
                frame(true, OP_CONTINUATION, b"a"),
                vec![Failed(1002)],
            ),
            (
                "5.4: a new message inside a fragmented one",
                [frame(false, OP_TEXT, b"a"), frame(true, OP_TEXT, b"b")].concat(),
                vec![Failed(1002)],
            ),
            ("5.5: a ping of 126 bytes", frame(true, OP_PING, &[0; 126]), vec![Failed(1002)]),
            ("5.5: a fragmented ping", frame(false, OP_PING, b""), vec![Failed(1002)]),
            ("5.5.1: a close without a code", frame(true, OP_CLOSE, b""), vec![Close(None)]),
            (
                "5.5.1: a close with a code and reason",
                frame(true, OP_CLOSE, &close_payload(1000, b"bye")),
                vec![Close(Some(1000))],
            ),
            ("5.5.1: a close of one byte", frame(true, OP_CLOSE, &[0x03]), vec![Failed(1002)]),
            (
                "5.5.1: a close reason that is not UTF-8",
                frame(true, OP_CLOSE, &close_payload(1000, &[0xff])),
                vec![Failed(1007)],
            ),
            (
                "7.4.1: 1005 may not be sent",
                frame(true, OP_CLOSE, &close_payload(1005, b"")),
                vec![Close(Some(1002))],
            ),
            ("7.4.1: nor 1006", frame(true, OP_CLOSE, &close_payload(1006, b"")), vec![Close(Some(1002))]),
            ("7.4.1: nor 1015", frame(true, OP_CLOSE, &close_payload(1015, b"")), vec![Close(Some(1002))]),
            (
                "7.4.2: 999 is not a code",
                frame(true, OP_CLOSE, &close_payload(999, b"")),
                vec![Close(Some(1002))],
            ),
            (
                "7.4.2: 2999 is reserved",
                frame(true, OP_CLOSE, &close_payload(2999, b"")),
                vec![Close(Some(1002))],
            ),
            (
                "7.4.2: 3000 is for libraries",
                frame(true, OP_CLOSE, &close_payload(3000, b"")),
                vec![Close(Some(3000))],
            ),
            (
                "7.4.2: 4999 is private",
                frame(true, OP_CLOSE, &close_payload(4999, b"")),
                vec![Close(Some(4999))],
            ),
            (
                "7.4.2: 5000 is not a code",
                frame(true, OP_CLOSE, &close_payload(5000, b"")),
                vec![Close(Some(1002))],
            ),
            ("8.1: a text that is not UTF-8", frame(true, OP_TEXT, &[0xc3, 0x28]), vec![Failed(1007)]),
            ("a message over the limit", frame(true, OP_BINARY, &[0; 300]), vec![Failed(1009)]),
            (
                "fragments over the limit together",
                [frame(false, OP_BINARY, &[0; 200]), frame(true, OP_CONTINUATION, &[0; 200])].concat(),
                vec![Failed(1009)],
            ),
            (
                "what follows a close is not read",
                [frame(true, OP_CLOSE, b""), frame(true, OP_TEXT, b"late")].concat(),
                vec![Close(None)],
            ),
        ];
        for (case, bytes, expected) in cases {
            for chunks in [&[usize::MAX][..], &[1], &[3, 1, 7]] {
                assert_eq!(ours(&bytes, chunks, 256).await, expected, "{case}, read in {chunks:?}");
            }
            assert_eq!(reference(&bytes, 256), expected, "tungstenite on: {case}");
        }
    }

    /// A small deterministic generator (xorshift64*), so that a failing
    /// case can be found again from its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// A frame as clients send them, mostly well formed, now and then not.
    fn random_frame(rng: &mut Rng) -> Vec<u8> {
        let opcode = match rng.below(20) {
            0..=6 => OP_TEXT,
            7..=9 => OP_BINARY,
            10..=12 => OP_CONTINUATION,
            13..=14 => OP_PING,
            15 => OP_PONG,
            16 => OP_CLOSE,
            _ => rng.below(16) as u8,
        };
        let is_control = opcode & 0x08 != 0;
        let len = match rng.below(10) {
            0 => 0,
            1 => 125 + rng.below(3) as usize,
            2 => 200 + rng.below(400) as usize,
            _ => rng.below(40) as usize,
        };
        let mut payload = match opcode {
            OP_TEXT | OP_CONTINUATION if !rng.chance(10) => {
                let text: String =
                    (0..len).map(|_| ['a', 'é', '€', '𝄞', ' '][rng.below(5) as usize]).collect();
                text.into_bytes()
            }
            OP_CLOSE if len >= 2 && !rng.chance(20) => {
                let codes = [
                    1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 2000, 3000, 4000, 4999,
                    5000,
                ];
                close_payload(codes[rng.below(codes.len() as u64) as usize], "fin".as_bytes())
            }
            _ => rng.bytes(len),
        };
        if is_control && !rng.chance(5) {
            payload.truncate(125);
        }
        let fin = if is_control { !rng.chance(5) } else { !rng.chance(30) };
        let mut first = if fin { 0x80 } else { 0 } | opcode;
        if rng.chance(3) {
            first |= 0x10 << rng.below(3);
        }
        let mut frame = raw_frame(first, &payload);
        if rng.chance(3) {
            frame[1] &= 0x7F; // unmasked
        }
        frame
    }

    /// Our server and tungstenite read the same random client frames the
    /// same way: the same messages, the same close, the same failure.
    #[tokio::test]
    async fn random_frames_are_read_as_tungstenite_reads_them() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut failures = 0;
        for case in 0..4000 {
            let frames = 1 + rng.below(6) as usize;
            let bytes: Vec<u8> = (0..frames).flat_map(|_| random_frame(&mut rng)).collect();
            let chunks = [1 + rng.below(64) as usize, 1 + rng.below(8) as usize];
            let expected = reference(&bytes, 512);
            assert_eq!(ours(&bytes, &chunks, 512).await, expected, "case {case}: {bytes:02x?}");
            failures += usize::from(matches!(expected.last(), Some(Seen::Failed(_))));
        }
        assert!(
            (400..3600).contains(&failures),
            "both well-formed and broken streams were tried: {failures}"
        );
    }

    /// Whatever the bytes, reading them ends in messages, a close, an
    /// error or the end: never a panic, never more memory than the limit.
    #[tokio::test]
    async fn random_bytes_never_panic() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        for _ in 0..3000 {
            let mut bytes = match rng.below(2) {
                0 => {
                    let len = rng.below(64) as usize;
                    rng.bytes(len)
                }
                _ => (0..3).flat_map(|_| random_frame(&mut rng)).collect(),
            };
            // Flip a few bits of what may have been well formed.
            for _ in 0..rng.below(4) {
                if !bytes.is_empty() {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            ours(&bytes, &[1 + rng.below(16) as usize], 256).await;
        }
    }

    /// What our server writes, tungstenite reads as a client: every
    /// message whole and in order, then the close with its code and reason.
    #[tokio::test]
    async fn tungstenite_reads_what_the_server_writes() {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{protocol::Role, Message};
        let (server, client) = tokio::io::duplex(1 << 16);
        let mut socket = Socket::new(server, 1 << 20);
        let mut rng = Rng(42);
        let sent: Vec<String> = (0..300)
            .map(|i| {
                let len = [0, 1, 125, 126, 65_535, 65_536, 70_000][i % 7].min(1 + rng.below(70_000) as usize);
                (0..len).map(|_| ['x', 'ø', '字'][rng.below(3) as usize]).collect()
            })
            .collect();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for batch in sent.chunks(7) {
                    for text in batch {
                        socket.queue_text(text);
                    }
                    socket.flush().await.unwrap();
                }
                socket.queue_close(4000, "the room closed ✓");
                socket.flush().await.unwrap();
                socket
            })
        };
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        for (i, text) in sent.iter().enumerate() {
            match client.next().await.unwrap().unwrap() {
                Message::Text(got) => assert_eq!(got.as_str(), text, "message {i}"),
                other => panic!("message {i}: {other:?}"),
            }
        }
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => {
                assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "the room closed ✓"));
            }
            other => panic!("expected the close, got {other:?}"),
        }
        drop(writer.await.unwrap());
    }
}
