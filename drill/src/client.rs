//! One simulated chat page: it joins its room, keeps a stream open, sends
//! its messages one at a time and records everything it receives — while
//! its own socket is cut at random and the server restarts under it.
//!
//! It behaves like the browser client is meant to: after every reconnect it
//! says hello with the last seq it has seen and re-sends its unacknowledged
//! message under the same client id. Whatever the server then delivers is
//! recorded as is, for [`crate::verify`] to judge.
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{ClientFrame, ErrorCode, ServerFrame};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::rng::XorShift;
use crate::verify::ClientLog;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Heartbeat while a connection lives (the server drops silent ones after
/// 45 s; a few seconds keeps well clear of that).
const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest pause before reconnecting after a cut.
const MAX_CUT_PAUSE_MS: u64 = 300;
/// Pause before re-sending a message the server refused with an error.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who a client is and how it behaves.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub channel_id: String,
    pub user_id: String,
    pub messages: u32,
    pub send_interval: Duration,
    pub cut_probability: f64,
    pub rng: XorShift,
}

/// What all clients share: where the server is, the deadline, progress.
#[derive(Clone)]
pub struct Shared {
    pub http: reqwest::Client,
    pub base_url: String,
    pub stream_url: String,
    pub deadline: Instant,
    /// Messages acknowledged so far in the whole drill (paces restarts).
    pub acked: Arc<AtomicU64>,
}

/// Progress of one room: once all its senders are done, the number of
/// messages it holds is known, and readers know when they have seen all.
pub struct RoomProgress {
    senders_left: AtomicUsize,
    acked: AtomicI64,
    final_count: watch::Sender<Option<i64>>,
}

impl RoomProgress {
    pub fn new(senders: usize) -> Arc<Self> {
        let final_count = watch::Sender::new(if senders == 0 { Some(0) } else { None });
        Arc::new(RoomProgress {
            senders_left: AtomicUsize::new(senders),
            acked: AtomicI64::new(0),
            final_count,
        })
    }

    fn message_acked(&self) {
        self.acked.fetch_add(1, Ordering::SeqCst);
    }

    /// A sender has all its acks; the last one fixes the room's count.
    fn sender_done(&self) {
        if self.senders_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.final_count.send_replace(Some(self.acked.load(Ordering::SeqCst)));
        }
    }

    fn watch(&self) -> watch::Receiver<Option<i64>> {
        self.final_count.subscribe()
    }
}

/// Counters of what happened to one client (summed for the report).
#[derive(Clone, Debug, Default)]
pub struct ClientStats {
    /// Distinct messages sent (first send of each client id).
    pub sent: u64,
    /// Sends repeated under the same client id (after a reconnect or error).
    pub resent: u64,
    /// Sockets this client dropped on purpose.
    pub cuts: u64,
    pub connects: u64,
    pub failed_connects: u64,
    /// Close codes received from the server, with their counts.
    pub closes: BTreeMap<u16, u64>,
    /// Connections that ended without a close frame (other than cuts).
    pub broken: u64,
    /// Welcomes whose replay did not start where the client asked.
    pub truncated_replays: u64,
    /// Error frames received (first few kept verbatim).
    pub errors: Vec<String>,
}

pub struct ClientReport {
    pub log: ClientLog,
    pub stats: ClientStats,
    /// For a client that ran out of time: what it was doing (evidence).
    pub unfinished: Option<String>,
}

/// The message waiting for its ack (at most one at a time).
struct Pending {
    client_msg_id: String,
    body: String,
    /// Whether it went out on the current connection.
    sent_here: bool,
}

/// Everything a client remembers across its connections.
struct State {
    log: ClientLog,
    stats: ClientStats,
    seen: HashSet<i64>,
    /// Highest seq received; the `after_seq` of the next hello.
    highest: i64,
    /// Every seq in 1..=contiguous was received.
    contiguous: i64,
    acked_ids: HashSet<String>,
    /// Messages created so far (the next one is number `created + 1`).
    created: u32,
    pending: Option<Pending>,
    send_at: Instant,
    sending_done: bool,
    /// What the client is doing, for the report of an unfinished client.
    phase: &'static str,
    last_frame_at: Option<Instant>,
}

impl State {
    fn new(name: String) -> Self {
        State {
            log: ClientLog { name, ..ClientLog::default() },
            stats: ClientStats::default(),
            seen: HashSet::new(),
            highest: 0,
            contiguous: 0,
            acked_ids: HashSet::new(),
            created: 0,
            pending: None,
            send_at: Instant::now(),
            sending_done: false,
            phase: "joining",
            last_frame_at: None,
        }
    }

    fn record_message(&mut self, seq: i64, client_msg_id: String) {
        self.log.received.push((seq, client_msg_id));
        self.seen.insert(seq);
        self.highest = self.highest.max(seq);
        while self.seen.contains(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }

    fn finished(&self, final_count: Option<i64>) -> bool {
        self.sending_done && final_count.is_some_and(|n| self.contiguous >= n)
    }

    /// One line on where an unfinished client stood at the deadline.
    fn whereabouts(&self, final_count: Option<i64>, deadline: Instant) -> String {
        let pending = self.pending.as_ref().map_or("none", |p| p.client_msg_id.as_str());
        let silent = self.last_frame_at.map_or("no frame ever".to_owned(), |t| {
            format!("last frame {} ms before", (deadline - t).as_millis())
        });
        format!(
            "{} at the deadline: {} of {} acked, pending {pending}, seen 1..={} (highest {}) of {}, {silent}",
            self.phase,
            self.acked_ids.len(),
            self.created,
            self.contiguous,
            self.highest,
            final_count.map_or("?".to_owned(), |n| n.to_string()),
        )
    }
}

/// How one connection ended.
enum SessionEnd {
    /// The client has every ack and every message of its room.
    Done,
    Deadline,
    /// The client dropped the socket on purpose.
    Cut,
    /// The server closed with this code (None: no code given).
    Closed(Option<u16>),
    /// The socket failed or ended without a close frame.
    Broken,
}

pub async fn run_client(mut spec: ClientSpec, shared: Shared, room: Arc<RoomProgress>) -> ClientReport {
    let mut state = State::new(spec.user_id.clone());
    state.log.finished = drive(&mut spec, &shared, &room, &mut state).await;
    let unfinished =
        (!state.log.finished).then(|| state.whereabouts(*room.watch().borrow(), shared.deadline));
    ClientReport { log: state.log, stats: state.stats, unfinished }
}

/// Joins, then connects again and again until done or out of time.
async fn drive(spec: &mut ClientSpec, shared: &Shared, room: &RoomProgress, state: &mut State) -> bool {
    if !join(spec, shared).await {
        return false;
    }
    let mut final_count = room.watch();
    while Instant::now() < shared.deadline {
        state.phase = "connecting";
        let Some(socket) = connect(shared, state).await else { return false };
        let pause = match session(socket, spec, shared, room, state, &mut final_count).await {
            SessionEnd::Done => return true,
            SessionEnd::Deadline => return false,
            SessionEnd::Cut => Duration::from_millis(spec.rng.up_to(MAX_CUT_PAUSE_MS)),
            SessionEnd::Closed(code) => {
                *state.stats.closes.entry(code.unwrap_or(0)).or_default() += 1;
                match code {
                    Some(4409) => Duration::ZERO,
                    Some(4403) if !join(spec, shared).await => return false,
                    _ => Duration::from_millis(100),
                }
            }
            SessionEnd::Broken => {
                state.stats.broken += 1;
                Duration::from_millis(100)
            }
        };
        state.phase = "pausing before a reconnect";
        pause_until(shared.deadline, pause).await;
    }
    false
}

/// Opens the room page once, which makes the user a member (retried while
/// the server restarts).
async fn join(spec: &ClientSpec, shared: &Shared) -> bool {
    let url =
        format!("{}/chat_room?user_id={}&channel_id={}", shared.base_url, spec.user_id, spec.channel_id);
    while Instant::now() < shared.deadline {
        let answer = shared.http.get(&url).timeout(Duration::from_secs(5)).send().await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        pause_until(shared.deadline, Duration::from_millis(100)).await;
    }
    false
}

/// Connects the stream, retrying with a growing pause while the server is
/// down; None once the deadline passed.
async fn connect(shared: &Shared, state: &mut State) -> Option<Socket> {
    let mut backoff = Duration::from_millis(50);
    while Instant::now() < shared.deadline {
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&shared.stream_url));
        if let Ok(Ok((socket, _))) = attempt.await {
            state.stats.connects += 1;
            return Some(socket);
        }
        state.stats.failed_connects += 1;
        pause_until(shared.deadline, backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    None
}

/// One connection: hello, then frames in and out until it ends.
async fn session(
    mut socket: Socket,
    spec: &mut ClientSpec,
    shared: &Shared,
    room: &RoomProgress,
    state: &mut State,
    final_count: &mut watch::Receiver<Option<i64>>,
) -> SessionEnd {
    let after_seq = state.highest;
    let hello = ClientFrame::Hello {
        channel_id: spec.channel_id.clone(),
        user_id: spec.user_id.clone(),
        after_seq,
        token: None,
    };
    if send_frame(&mut socket, &hello).await.is_err() {
        return SessionEnd::Broken;
    }
    if let Some(pending) = state.pending.as_mut() {
        pending.sent_here = false;
        state.send_at = Instant::now();
    }
    let mut welcomed = false;
    state.phase = "waiting for the welcome";
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        let current_final = *final_count.borrow();
        if state.finished(current_final) {
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
            return SessionEnd::Done;
        }
        let may_send = welcomed && wants_to_send(spec, state);
        tokio::select! {
            _ = sleep_until(shared.deadline) => return SessionEnd::Deadline,
            incoming = socket.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => return SessionEnd::Closed(frame.map(|f| u16::from(f.code))),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return SessionEnd::Broken,
                };
                welcomed |= on_text(text.as_str(), after_seq, spec, shared, room, state);
                if cut_now(spec, state) {
                    return SessionEnd::Cut;
                }
            }
            _ = sleep_until(state.send_at), if may_send => {
                let frame = next_send(spec, state);
                if send_frame(&mut socket, &frame).await.is_err() {
                    return SessionEnd::Broken;
                }
                if cut_now(spec, state) {
                    return SessionEnd::Cut;
                }
            }
            _ = ping.tick() => {
                if send_frame(&mut socket, &ClientFrame::Ping).await.is_err() {
                    return SessionEnd::Broken;
                }
            }
            _ = final_count.changed(), if current_final.is_none() => {}
        }
    }
}

/// Handles one text frame; true if it was the welcome.
fn on_text(
    text: &str,
    after_seq: i64,
    spec: &ClientSpec,
    shared: &Shared,
    room: &RoomProgress,
    state: &mut State,
) -> bool {
    let frame = match serde_json::from_str::<ServerFrame>(text) {
        Ok(frame) => frame,
        Err(err) => {
            note_error(state, format!("unreadable frame ({err}): {text}"));
            return false;
        }
    };
    let welcome = matches!(frame, ServerFrame::Welcome { .. });
    state.last_frame_at = Some(Instant::now());
    if welcome {
        state.phase = "streaming";
    }
    if let ServerFrame::Welcome { resume_after, .. } = &frame {
        if *resume_after != after_seq {
            state.stats.truncated_replays += 1;
        }
    }
    handle_frame(frame, spec, shared, room, state);
    welcome
}

/// Rolls the dice after a frame went in or out: true means drop the
/// socket now, without a close frame.
fn cut_now(spec: &mut ClientSpec, state: &mut State) -> bool {
    let cut = spec.rng.chance(spec.cut_probability);
    if cut {
        state.stats.cuts += 1;
    }
    cut
}

/// Whether there is something to put on the wire: the pending message if
/// this connection has not carried it yet, or a new one if none is pending.
fn wants_to_send(spec: &ClientSpec, state: &State) -> bool {
    match &state.pending {
        Some(pending) => !pending.sent_here,
        None => state.created < spec.messages,
    }
}

/// The `Send` frame for the pending message, creating the next message
/// first if none is pending.
fn next_send(spec: &ClientSpec, state: &mut State) -> ClientFrame {
    match state.pending.as_mut() {
        Some(_) => state.stats.resent += 1,
        None => {
            state.created += 1;
            state.stats.sent += 1;
            let n = state.created;
            state.pending = Some(Pending {
                client_msg_id: format!("{}-{n}", spec.user_id),
                body: format!("message {n} of {} in {}", spec.user_id, spec.channel_id),
                sent_here: false,
            });
        }
    }
    let pending = state.pending.as_mut().expect("a pending message was just ensured");
    pending.sent_here = true;
    ClientFrame::Send { client_msg_id: pending.client_msg_id.clone(), body: pending.body.clone() }
}

fn handle_frame(
    frame: ServerFrame,
    spec: &ClientSpec,
    shared: &Shared,
    room: &RoomProgress,
    state: &mut State,
) {
    match frame {
        ServerFrame::Message(message) => state.record_message(message.seq, message.client_msg_id),
        ServerFrame::Ack { client_msg_id, seq } => handle_ack(client_msg_id, seq, spec, shared, room, state),
        ServerFrame::Error { code, message, client_msg_id, .. } => {
            let is_pending = client_msg_id.is_some()
                && state.pending.as_ref().map(|p| &p.client_msg_id) == client_msg_id.as_ref();
            if is_pending {
                // Try again on this connection after a pause.
                if let Some(pending) = state.pending.as_mut() {
                    pending.sent_here = false;
                }
                state.send_at = Instant::now() + RETRY_AFTER_ERROR;
            }
            if code != ErrorCode::Resync {
                note_error(state, format!("{code:?}: {message} ({client_msg_id:?})"));
            }
        }
        ServerFrame::Welcome { .. }
        | ServerFrame::MemberJoined { .. }
        | ServerFrame::MemberLeft { .. }
        | ServerFrame::Presence { .. }
        | ServerFrame::Roster { .. }
        | ServerFrame::Typing { .. }
        | ServerFrame::Pong
        | ServerFrame::Done { .. }
        | ServerFrame::Reported { .. }
        | ServerFrame::ReportClosed { .. }
        | ServerFrame::RoleChanged { .. }
        | ServerFrame::Blocked { .. }
        | ServerFrame::Unblocked { .. } => {}
    }
}

fn handle_ack(
    client_msg_id: String,
    seq: i64,
    spec: &ClientSpec,
    shared: &Shared,
    room: &RoomProgress,
    state: &mut State,
) {
    state.log.acks.push((client_msg_id.clone(), seq));
    let is_pending = state.pending.as_ref().is_some_and(|p| p.client_msg_id == client_msg_id);
    if !is_pending || !state.acked_ids.insert(client_msg_id) {
        return;
    }
    state.pending = None;
    state.send_at = Instant::now() + spec.send_interval;
    room.message_acked();
    shared.acked.fetch_add(1, Ordering::Relaxed);
    if !state.sending_done && state.acked_ids.len() as u32 >= spec.messages {
        state.sending_done = true;
        room.sender_done();
    }
}

fn note_error(state: &mut State, text: String) {
    const KEEP: usize = 5;
    if state.stats.errors.len() < KEEP {
        state.stats.errors.push(text);
    }
}

async fn send_frame(socket: &mut Socket, frame: &ClientFrame) -> Result<(), ()> {
    let text = serde_json::to_string(frame).expect("client frames always serialize");
    socket.send(Message::text(text)).await.map_err(|_| ())
}

/// Sleeps for `pause`, but not past the deadline.
async fn pause_until(deadline: Instant, pause: Duration) {
    sleep_until(deadline.min(Instant::now() + pause)).await;
}
