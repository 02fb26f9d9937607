//! The server side of the websocket (`engine::websocket`) read from
//! arbitrary client byte streams: never a panic, never more memory than a
//! few times the size limit, and only well-formed server frames written
//! back.
//!
//! An input is six control bytes, then the bytes the client sends:
//!   0, 1  the size limit (`max_message`): 0..=255, one of the edges of
//!         the length encodings, the server's 16 KiB, or up to ~76 KiB;
//!   2..=4 the sizes of the reads the stream gives, in turn (0: as much as
//!         the socket asks for);
//!   5     bit 0: read through a `ReadGate`; bit 1: every other read is
//!         `Pending` first; bit 2: a read that is `Pending` is cancelled
//!         (the future dropped) and started again.
//!
//! The socket is reached through the public API only: `Socket::new` is
//! private, so each run upgrades a connection the way the server does, an
//! HTTP request through hyper into `Upgrade::on_upgrade`, over an
//! in-memory stream that gives the request, then the client's bytes in the
//! chosen pieces, then the end. What the socket gives is answered as the
//! room stream answers it (`engine/src/stream.rs`): a text is echoed, a
//! binary message gets a text, a ping's pong is flushed, a close is
//! answered, a failure gets a close with its code. Each answer is checked
//! frame by frame: server frames, unmasked, FIN set, a valid opcode, the
//! shortest length encoding, exactly what was asked for.
//!
//! Seeds (fuzz/seeds/websocket_frames, a dozen small inputs) are client
//! frames as browsers send them: texts, fragments with a ping between
//! them, a character cut between fragments, closes, a length over the
//! limit, a stream cut mid-frame.
//!
//! Every input is also read a second time in one piece, without the gate
//! or cancellations: the same bytes must give the same messages and the
//! same end whatever the pieces and however the reads were interrupted.
//!
//! Memory: a counting global allocator tracks the bytes live; the peak
//! during the read loop must stay under [`loop_bound`] (the reasoning is
//! there), and the peak of a whole run (handshake included) under it plus
//! [`HANDSHAKE_ROOM`].
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum::extract::FromRequestParts;
use engine::websocket::{Incoming, ReadError, ReadGate, Socket, Upgrade};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

// ---- memory ------------------------------------------------------------

/// The system allocator, counting the bytes live and their peaks.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The peak of `LIVE` since [`Window::open`] on it: one for a whole run,
/// one for the read loop inside it.
static PEAK_RUN: AtomicUsize = AtomicUsize::new(0);
static PEAK_LOOP: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK_RUN.fetch_max(now, Relaxed);
    PEAK_LOOP.fetch_max(now, Relaxed);
}

fn shrank(n: usize) {
    LIVE.fetch_sub(n, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    /// Counted as a moving realloc holds memory: the old block and the new
    /// one both live until the copy is done.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        shrank(if p.is_null() { new_size } else { layout.size() });
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of the bytes allocated from now on, over what was live now.
struct Window {
    base: usize,
    peak: &'static AtomicUsize,
}

impl Window {
    fn open(peak: &'static AtomicUsize) -> Self {
        let base = LIVE.load(Relaxed);
        peak.store(base, Relaxed);
        Window { base, peak }
    }

    fn peak(&self) -> usize {
        self.peak.load(Relaxed).saturating_sub(self.base)
    }
}

/// `READ_CHUNK` in websocket.rs: the most one read takes.
const READ_CHUNK: usize = 4096;
/// The longest header of a client frame: 2 bytes, 8 of length, 4 of mask.
const CLIENT_HEADER: usize = 14;

/// The most the socket may hold at once while it reads, for a size limit
/// `limit` (M below), from how websocket.rs keeps its bytes:
///
/// - `unread`, the bytes read but not parsed: before a read it holds less
///   than one frame (`parse_frame` takes every whole frame first, and
///   refuses a frame declaring more than M from its header alone), so
///   fewer than 14 + M bytes; a read adds at most 4096. Its length stays
///   under U = M + 14 + 4096, and its capacity (doubling, or exactly what
///   is needed) under 2U; while it grows, old and new blocks together
///   under 3U. `drain` keeps the capacity; it is freed once empty.
/// - a frame's payload, collected out of `unread`: at most M, exact.
/// - the parts of a fragmented message: at most M bytes (checked before
///   each extend), capacity under 2M, and 3M while it grows.
/// - `outgoing`: a pong or a close (under 140 bytes), or, in this
///   harness, the echo of a message: M + 10 bytes, reserved at once.
///
/// At each moment: while reading, unread growing and the parts (3U + 2M);
/// while parsing, unread, a payload and the parts growing (2U + M + 3M);
/// while answering, unread, a message (the parts, under 2M) and its echo
/// (2U + 2M + M + 10). The largest is 6M + 2 * 4110, or 5M + 3 * 4110:
/// under 6M + 3 * 4110. The slack is for the small frames and the
/// runtime's bookkeeping.
fn loop_bound(limit: usize) -> usize {
    6 * limit + 3 * (READ_CHUNK + CLIENT_HEADER) + 8 * 1024
}

/// What a run costs besides the read loop, whatever the input: hyper's
/// connection (its 8 KiB read buffer, its write buffer), the request's
/// head, the 101 response, the task the socket is served on. Fixed: the
/// handshake is the same for every input.
const HANDSHAKE_ROOM: usize = 64 * 1024;

// ---- the plan of a run -----------------------------------------------------

const CONTROL: usize = 6;

/// Limits at the edges of the length encodings and of a read.
const LIMITS: [usize; 16] =
    [0, 1, 2, 3, 125, 126, 127, 128, 4095, 4096, 4097, 16 * 1024, 65_535, 65_536, 65_537, 70_000];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    limit: usize,
    /// Read sizes, in turn; 0 is as much as asked for.
    chunks: [usize; 3],
    gate: bool,
    pending: bool,
    cancel: bool,
}

impl Plan {
    fn new(control: &[u8; CONTROL]) -> Self {
        let limit = match control[0] % 4 {
            0 => usize::from(control[1]),
            1 => LIMITS[usize::from(control[1]) % LIMITS.len()],
            2 => 16 * 1024, // the room stream's
            _ => usize::from(control[1]) * 300,
        };
        Plan {
            limit,
            chunks: [control[2], control[3], control[4]].map(usize::from),
            gate: control[5] & 1 != 0,
            pending: control[5] & 2 != 0,
            cancel: control[5] & 4 != 0,
        }
    }

    /// The same limit, the bytes in one piece, nothing interrupted.
    fn whole(self) -> Self {
        Plan { chunks: [0; 3], gate: false, pending: false, cancel: false, ..self }
    }
}

// ---- the client's side of the connection -----------------------------------

const REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// RFC 6455's example answer to that key.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What the server writes, one step's worth at a time (allocated before
/// the run, never grown: a write past it fails the run).
type Written = Arc<Mutex<Vec<u8>>>;

/// The client, in memory: gives the upgrade request, waits for the 101,
/// then gives `input` in reads of the plan's sizes, then the end; keeps
/// what the server writes.
struct Peer {
    request_at: usize,
    upgraded: bool,
    /// The first read after the upgrade was answered `Pending`.
    primed: bool,
    parked: Option<Waker>,
    input: Vec<u8>,
    at: usize,
    plan: Plan,
    reads: usize,
    pend: bool,
    written: Written,
}

impl AsyncRead for Peer {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.request_at < REQUEST.len() {
            let end = REQUEST.len().min(this.request_at + buf.remaining());
            buf.put_slice(&REQUEST[this.request_at..end]);
            this.request_at = end;
            return Poll::Ready(Ok(()));
        }
        if !this.upgraded {
            // Nothing more until the server has answered: none of the
            // client's frames end up in hyper's buffer.
            this.parked = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if !this.primed {
            // See `serve`: hyper's buffer is let go before memory counts.
            this.primed = true;
            return Poll::Pending;
        }
        if this.plan.pending {
            this.pend = !this.pend;
            if this.pend {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let size = match this.plan.chunks[this.reads % 3] {
            0 => usize::MAX,
            n => n,
        };
        this.reads += 1;
        let end = this.at + size.min(buf.remaining()).min(this.input.len() - this.at);
        buf.put_slice(&this.input[this.at..end]);
        this.at = end;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut written = this.written.lock().unwrap();
        assert!(
            written.len() + buf.len() <= written.capacity(),
            "the server wrote {} bytes after {} in one step: more than it was asked to",
            buf.len(),
            written.len()
        );
        written.extend_from_slice(buf);
        if !this.upgraded && written.ends_with(b"\r\n\r\n") {
            let head = std::str::from_utf8(&written).expect("a response head in ASCII");
            assert!(head.starts_with("HTTP/1.1 101 "), "the upgrade was refused: {head}");
            let accept = head.split("\r\n").find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-accept").then(|| value.trim())
            });
            assert_eq!(accept, Some(ACCEPT), "the accept key: {head}");
            written.clear();
            this.upgraded = true;
            if let Some(waker) = this.parked.take() {
                waker.wake();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---- what the server writes ----------------------------------------------------

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PONG: u8 = 0xA;

/// The one server frame `bytes` must be: FIN, no reserved bits, a known
/// opcode, unmasked, the shortest length encoding, a control frame's
/// payload at most 125 bytes, and nothing after it. Its opcode and payload.
fn one_frame(bytes: &[u8]) -> (u8, &[u8]) {
    assert!(bytes.len() >= 2, "a truncated server frame: {bytes:02x?}");
    let (first, second) = (bytes[0], bytes[1]);
    assert_eq!(first & 0xF0, 0x80, "FIN and no reserved bits: {first:02x}");
    let opcode = first & 0x0F;
    assert!(matches!(opcode, 0x1 | 0x2 | 0x8 | 0x9 | 0xA), "a server frame's opcode {opcode:x}");
    assert_eq!(second & 0x80, 0, "a server frame must not be masked");
    let (len, at) = match second & 0x7F {
        126 => {
            let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            assert!(len >= 126, "a 16-bit length for {len} bytes");
            (len, 4)
        }
        127 => {
            let len = u64::from_be_bytes(bytes[2..10].try_into().unwrap());
            assert!(len > 65_535 && len >> 63 == 0, "a 64-bit length for {len} bytes");
            (len as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    assert_eq!(bytes.len(), at + len, "one server frame of {len} bytes, exactly: {} written", bytes.len());
    if opcode & 0x08 != 0 {
        assert!(len <= 125, "a control frame of {len} bytes");
    }
    (opcode, &bytes[at..])
}

/// Takes what the server wrote since the last step.
fn check_written<R>(written: &Written, check: impl FnOnce(&[u8]) -> R) -> R {
    let mut written = written.lock().unwrap();
    let r = check(&written);
    written.clear();
    r
}

// ---- a run -----------------------------------------------------------------------

/// What a binary message is answered with (the room stream's way: it
/// wants JSON text).
const BINARY_ANSWER: &str = r#"{"type":"error","code":"bad_frame","message":"Frames must be JSON text."}"#;
/// A close reason longer than a control frame holds, with characters of
/// every UTF-8 length; the cut at 123 bytes falls inside the second 𝄞,
/// and goes back to the boundary before it (121).
const REASON: &str = "protocol error: é € 𝄞 ✓ — the connection is closed because the frame \
    broke RFC 6455, and this reason is longer:𝄞 字é than a close frame holds";

/// A running hash of what the socket gave: two readings of the same
/// bytes must give the same.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Digest(u64, usize);

impl Digest {
    fn event(&mut self, tag: u8, bytes: &[u8]) {
        let len = (bytes.len() as u64).to_le_bytes();
        for &b in [tag].iter().chain(&len).chain(bytes) {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.1 += 1;
    }
}

/// The next message: through the gate or not, and, if the plan says so,
/// each read that waits cancelled and started again.
async fn next(
    socket: &mut Socket<TokioIo<Upgraded>>,
    gate: &ReadGate,
    plan: &Plan,
) -> Option<Result<Incoming, ReadError>> {
    loop {
        let polled = {
            let mut reading = pin!(async {
                if plan.gate {
                    socket.next_through(gate).await
                } else {
                    socket.next().await
                }
            });
            if plan.cancel {
                poll_fn(|cx| Poll::Ready(reading.as_mut().poll(cx))).await
            } else {
                Poll::Ready(reading.await)
            }
        };
        if let Poll::Ready(incoming) = polled {
            return incoming;
        }
        // Dropped while waiting: what was read so far must not be lost.
    }
}

/// The read loop, answering as the room stream does and checking each
/// answer; returns the digest of what was read.
async fn serve(mut socket: Socket<TokioIo<Upgraded>>, written: Written, plan: Plan) -> Digest {
    let gate = ReadGate::default();
    // The first read through hyper's `Upgraded` drops what hyper had
    // read ahead (nothing, here) and its buffer, 8 KiB: a read that the
    // stream answers `Pending`, cancelled, lets it go before the count
    // starts, so that it does not hide what the socket holds.
    let primed = pin!(socket.next()).poll(&mut Context::from_waker(Waker::noop()));
    assert!(primed.is_pending(), "hyper read the client's bytes ahead of the upgrade: {primed:?}");
    let window = Window::open(&PEAK_LOOP);
    let mut digest = Digest(0xcbf2_9ce4_8422_2325, 0);
    loop {
        let incoming = next(&mut socket, &gate, &plan).await;
        let flushed = |r: io::Result<()>| r.expect("writing to memory does not fail");
        match incoming {
            Some(Ok(Incoming::Text(text))) => {
                assert!(
                    text.len() <= plan.limit,
                    "a text of {} bytes, over the limit {}",
                    text.len(),
                    plan.limit
                );
                assert!(std::str::from_utf8(text.as_bytes()).is_ok());
                digest.event(1, text.as_bytes());
                socket.queue_text(&text);
                flushed(socket.flush().await);
                check_written(&written, |w| assert_eq!(one_frame(w), (OP_TEXT, text.as_bytes()), "the echo"));
            }
            Some(Ok(Incoming::Binary(data))) => {
                assert!(data.len() <= plan.limit, "{} bytes, over the limit {}", data.len(), plan.limit);
                digest.event(2, &data);
                socket.queue_text(BINARY_ANSWER);
                flushed(socket.flush().await);
                check_written(&written, |w| assert_eq!(one_frame(w), (OP_TEXT, BINARY_ANSWER.as_bytes())));
            }
            Some(Ok(Incoming::Ping)) => {
                digest.event(3, &[]);
                flushed(socket.flush().await);
                check_written(&written, |w| assert_eq!(one_frame(w).0, OP_PONG, "a ping is answered"));
            }
            Some(Ok(Incoming::Pong)) => {
                digest.event(4, &[]);
                flushed(socket.flush().await);
                check_written(&written, |w| assert!(w.is_empty(), "a pong is not answered: {w:02x?}"));
            }
            Some(Ok(Incoming::Close(code))) => {
                if let Some(code) = code {
                    assert!(matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999), "close code {code}");
                }
                digest.event(5, &code.map_or([0; 2], u16::to_be_bytes));
                flushed(socket.flush().await);
                let echo = code.map(u16::to_be_bytes);
                let echo = echo.as_ref().map_or(&[][..], |c| &c[..]);
                check_written(&written, |w| assert_eq!(one_frame(w), (OP_CLOSE, echo), "the close's answer"));
                break;
            }
            Some(Err(err)) => {
                let code = err.close_code().unwrap_or_else(|| panic!("an I/O error from memory: {err}"));
                assert!(matches!(code, 1002 | 1007 | 1009), "close code {code} for {err}");
                digest.event(6, &code.to_be_bytes());
                socket.queue_close(code, REASON);
                flushed(socket.flush().await);
                check_written(&written, |w| {
                    let (opcode, payload) = one_frame(w);
                    assert_eq!(opcode, OP_CLOSE);
                    assert_eq!(payload[..2], code.to_be_bytes());
                    let reason = std::str::from_utf8(&payload[2..]).expect("a close reason is UTF-8");
                    // Cut to fit (123 bytes), at the last character boundary.
                    assert_eq!(reason, &REASON[..121], "the close reason, cut");
                });
                break;
            }
            None => {
                digest.event(7, &[]);
                check_written(&written, |w| assert!(w.is_empty(), "written after nothing: {w:02x?}"));
                break;
            }
        }
    }
    let (peak, bound) = (window.peak(), loop_bound(plan.limit));
    assert!(peak <= bound, "the read loop held {peak} bytes, over {bound} ({plan:?})");
    digest
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
}

/// One connection: the upgrade, then `input` read by the socket.
fn run(input: &[u8], plan: Plan) -> Digest {
    RUNTIME.with(|runtime| {
        // The request, the 101 and an echo (at most the limit and a header).
        let written: Written = Arc::new(Mutex::new(Vec::with_capacity(plan.limit + 1024)));
        let peer = Peer {
            request_at: 0,
            upgraded: false,
            primed: false,
            parked: None,
            input: input.to_vec(),
            at: 0,
            plan,
            reads: 0,
            pend: false,
            written: written.clone(),
        };
        let window = Window::open(&PEAK_RUN);
        let digest = runtime.block_on(async move {
            let (done, served) = tokio::sync::oneshot::channel();
            let done = Mutex::new(Some(done));
            let service =
                hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let done = done.lock().unwrap().take().expect("one request per connection");
                    let written = written.clone();
                    async move {
                        let (mut parts, _body) = request.into_parts();
                        let upgrade = Upgrade::from_request_parts(&mut parts, &())
                            .await
                            .unwrap_or_else(|refused| panic!("the upgrade was refused: {refused:?}"));
                        Ok::<_, Infallible>(upgrade.on_upgrade(plan.limit, move |socket| async move {
                            let _ = done.send(serve(socket, written, plan).await);
                        }))
                    }
                });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(peer), service)
                .with_upgrades()
                .await
                .expect("the connection is upgraded");
            served.await.expect("the socket is served to its end")
        });
        let (peak, bound) = (window.peak(), loop_bound(plan.limit) + HANDSHAKE_ROOM);
        assert!(peak <= bound, "a run held {peak} bytes, over {bound} ({plan:?})");
        digest
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((control, stream)) = data.split_first_chunk::<CONTROL>() else { return };
    let plan = Plan::new(control);
    let seen = run(stream, plan);
    if plan.whole() != plan {
        let whole = run(stream, plan.whole());
        assert_eq!(seen, whole, "the same bytes in other pieces ({plan:?}) read otherwise than in one");
    }
});
