//! The server side of websockets (RFC 6455), as lean as the room stream
//! needs: the upgrade handshake, then frames read from and written to the
//! TCP stream directly.
//!
//! Why not a general websocket library: a chat node holds thousands of
//! connections that are idle nearly all the time, and a general library
//! keeps a read buffer and a write buffer per connection for its whole
//! life (tens of KiB at their defaults, several KiB at their smallest).
//! Here bytes are read into a buffer on the stack of the call that polls
//! the socket; a
//! connection keeps only the bytes of a frame that has not fully arrived,
//! and its outgoing buffer lives from the first frame queued to the end of
//! the flush. An idle connection costs its task, its socket and little
//! else. Writes stay batched: frames are queued, then flushed in one write.
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
use base64::Engine;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The GUID every websocket server appends to the client's key (RFC 6455
/// section 1.3).
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
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
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
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if decoded.map_or(true, |k| k.len() != 16) {
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
    /// The peer closes (with its code, if it gave one). A close frame in
    /// answer is queued for the next flush.
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

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One frame from the peer, unmasked.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// Parses the frame at the start of `buf`: `Ok(None)` until all of it has
/// arrived, else the frame and the bytes it took. A frame declaring more
/// than `max_payload` bytes is refused as soon as its header is read.
fn parse_frame(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, ReadError> {
    let [first, second, ..] = *buf else { return Ok(None) };
    if first & 0x70 != 0 {
        return Err(ReadError::Protocol("reserved bits set (no extension was negotiated)"));
    }
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0F;
    if second & 0x80 == 0 {
        return Err(ReadError::Protocol("frames from a client must be masked"));
    }
    let (len, mut at) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("eight bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let is_control = opcode & 0x08 != 0;
    if is_control && (len > 125 || !fin) {
        return Err(ReadError::Protocol("control frames must be short and whole"));
    }
    if len > max_payload as u64 {
        return Err(ReadError::TooBig);
    }
    let len = len as usize;
    let Some(mask) = buf.get(at..at + 4) else { return Ok(None) };
    let mask: [u8; 4] = mask.try_into().expect("four bytes");
    at += 4;
    let Some(masked) = buf.get(at..at + len) else { return Ok(None) };
    let payload = masked.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
    Ok(Some((Frame { fin, opcode, payload }, at + len)))
}

/// The longest header of a server frame (no mask).
const MAX_HEADER: usize = 10;

/// Appends one unmasked (server) frame to `out`.
fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    // One allocation for the frame, not one per part of it.
    out.reserve(MAX_HEADER + payload.len());
    out.push(0x80 | opcode);
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
/// when something else woke it.
///
/// A connection's task wakes for every event of its room, and polling a
/// socket that has nothing to read is not free: its readiness is kept
/// under a lock, behind three layers of wrappers. Through the gate, the
/// socket holds the gate's waker while nothing can be read; that waker
/// notes that the socket woke the task, and the socket is polled again
/// only then (or after it gave a message: more may be buffered).
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
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl ReadGate {
    pub fn new() -> Self {
        let flag = Arc::new(GateFlag { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        ReadGate { waker: Waker::from(flag.clone()), flag }
    }
}

impl Default for ReadGate {
    fn default() -> Self {
        ReadGate::new()
    }
}

/// An upgraded connection.
pub struct Socket<S> {
    stream: S,
    /// Bytes read but not yet parsed (part of a frame still arriving).
    unread: Vec<u8>,
    /// The parts so far of a fragmented message, and its opcode.
    fragments: Option<(u8, Vec<u8>)>,
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
            match self.next_buffered() {
                Ok(Some(incoming)) => return Some(Ok(incoming)),
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            match poll_fn(|cx| self.poll_read_some(cx)).await {
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

    /// Reads what the socket has into `unread`, through a buffer that
    /// lives on the stack of this call only: a waiting connection holds no
    /// read buffer.
    fn poll_read_some(&mut self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<usize>> {
        // Not zeroed: most polls find nothing to read, and filling 4 KiB
        // on each is work for nothing.
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                self.unread.extend_from_slice(buf.filled());
                Poll::Ready(Ok(buf.filled().len()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next whole message among the bytes already read, if any.
    fn next_buffered(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            let Some((frame, used)) = parse_frame(&self.unread, self.max_message)? else {
                return Ok(None);
            };
            self.unread.drain(..used);
            if self.unread.is_empty() {
                // Nothing pending: an idle connection keeps no buffer.
                self.unread = Vec::new();
            }
            if let Some(incoming) = self.take_frame(frame)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// Turns a frame into a message, or keeps it as a fragment of one.
    fn take_frame(&mut self, frame: Frame) -> Result<Option<Incoming>, ReadError> {
        let Frame { fin, opcode, payload } = frame;
        let (opcode, payload) = match opcode {
            OP_PING => {
                write_frame(&mut self.outgoing, OP_PONG, &payload);
                return Ok(Some(Incoming::Ping));
            }
            OP_PONG => return Ok(Some(Incoming::Pong)),
            OP_CLOSE => {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                let echo = code.map(u16::to_be_bytes);
                write_frame(&mut self.outgoing, OP_CLOSE, echo.as_ref().map_or(&[][..], |c| &c[..]));
                return Ok(Some(Incoming::Close(code)));
            }
            OP_TEXT | OP_BINARY if self.fragments.is_some() => {
                return Err(ReadError::Protocol("a new message began inside a fragmented one"));
            }
            OP_TEXT | OP_BINARY if !fin => {
                self.fragments = Some((opcode, payload));
                return Ok(None);
            }
            OP_TEXT | OP_BINARY => (opcode, payload),
            OP_CONTINUATION => {
                let Some((first_opcode, mut so_far)) = self.fragments.take() else {
                    return Err(ReadError::Protocol("a continuation frame without a message to continue"));
                };
                if so_far.len() + payload.len() > self.max_message {
                    return Err(ReadError::TooBig);
                }
                so_far.extend_from_slice(&payload);
                if !fin {
                    self.fragments = Some((first_opcode, so_far));
                    return Ok(None);
                }
                (first_opcode, so_far)
            }
            _ => return Err(ReadError::Protocol("unknown opcode")),
        };
        if opcode == OP_BINARY {
            return Ok(Some(Incoming::Binary(payload)));
        }
        String::from_utf8(payload).map(|text| Some(Incoming::Text(text))).map_err(|_| ReadError::NotUtf8)
    }

    /// Queues a text message for the next flush.
    pub fn queue_text(&mut self, text: &str) {
        write_frame(&mut self.outgoing, OP_TEXT, text.as_bytes());
    }

    /// Queues a close frame for the next flush (the reason is cut to fit
    /// a control frame).
    pub fn queue_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        write_frame(&mut self.outgoing, OP_CLOSE, &payload);
    }

    /// Writes everything queued, then releases the buffer: one allocation
    /// per write is nothing next to the write itself, and an idle
    /// connection keeps no buffer.
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
    use super::*;
    use tokio::net::TcpStream;

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
            assert_eq!((frame.fin, frame.opcode, used), (true, OP_BINARY, bytes.len()));
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
        write_frame(&mut out, OP_TEXT, b"hi");
        assert_eq!(out, [0x81, 0x02, b'h', b'i']);
        out.clear();
        write_frame(&mut out, OP_TEXT, &[b'x'; 300]);
        assert_eq!(out[..4], [0x81, 126, 0x01, 0x2c]);
        out.clear();
        write_frame(&mut out, OP_BINARY, &vec![0; 70_000]);
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
        let gate = ReadGate::new();
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
}
