//! The simulated clients every scenario is made of, and the state they
//! share with the scenario that drives them.
//!
//! A client is one task holding one connection. It answers heartbeats,
//! records every message it receives (latency while a measurement window
//! is open, per-sender order, our server's room `seq`) and, if it is a
//! sender, sends stamped bodies on a fixed schedule while the scenario says
//! so. The scenario steers all clients at once through a [`Phase`] and reads
//! their counters; each client hands back its [`Outcome`] when told to
//! close.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::body::{self, Stamp};
use crate::proto::{self, Incoming, Proto, Session};
use crate::track::{SenderTrack, SeqTrack};

/// Longest a single connect-and-join may take before it counts as failed.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest drain after the last send, however slowly deliveries trickle.
const MAX_DRAIN: Duration = Duration::from_secs(180);
/// A timer that never fires within a run.
const NEVER: Duration = Duration::from_secs(24 * 3600);

/// What all clients are doing; senders send only in `Send`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Wait,
    Send,
    /// Senders stop for a while (`Send` starts them again); everyone keeps
    /// reading.
    Pause,
    /// Senders stop; everyone keeps reading what is still on its way.
    Drain,
    Close,
}

/// Who is where: `clients` spread over rooms of `room_size` in order
/// (client `i` is in room `i / room_size`); the first `senders_per_room`
/// members of each room send.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Prefix of room and user names, unique per scenario, so scenarios on
    /// the same server never share a room.
    pub prefix: String,
    pub clients: usize,
    pub room_size: usize,
    pub senders_per_room: usize,
}

impl Layout {
    pub fn new(prefix: &str, clients: usize, room_size: usize, senders_per_room: usize) -> Self {
        let room_size = room_size.clamp(1, clients.max(1));
        Layout {
            prefix: prefix.to_owned(),
            clients,
            room_size,
            senders_per_room: senders_per_room.min(room_size),
        }
    }

    pub fn rooms(&self) -> usize {
        self.clients.div_ceil(self.room_size)
    }

    pub fn room_of(&self, client: usize) -> usize {
        client / self.room_size
    }

    pub fn slot_of(&self, client: usize) -> usize {
        client % self.room_size
    }

    pub fn members(&self, room: usize) -> usize {
        self.room_size.min(self.clients.saturating_sub(room * self.room_size))
    }

    pub fn is_sender(&self, client: usize) -> bool {
        self.slot_of(client) < self.senders_per_room
    }

    pub fn senders(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.clients).filter(|&i| self.is_sender(i))
    }

    /// Deliveries one message from each sender makes (its room's size,
    /// the sender included), summed over senders.
    pub fn deliveries_per_round(&self) -> u64 {
        self.senders().map(|s| self.members(self.room_of(s)) as u64).sum()
    }

    pub fn room_name(&self, room: usize) -> String {
        format!("{}-r{room}", self.prefix)
    }

    pub fn user_name(&self, client: usize) -> String {
        format!("{}-u{client}", self.prefix)
    }
}

/// Counters and the latency histogram all clients of a run write to.
pub struct Shared {
    pub proto: Proto,
    pub layout: Layout,
    /// Microseconds between two sends of one sender.
    pub interval_us: AtomicU64,
    /// Where every sender's schedule starts: sender `rank` of `senders`
    /// sends at `epoch + (k + rank / senders) × interval`, so that senders
    /// stay evenly spread over a round whatever the interval.
    pub epoch: Instant,
    /// Whether a measurement window is open (latency and window counts).
    pub measuring: AtomicBool,
    pub latency_us: Mutex<Histogram<u64>>,
    pub window_delivered: AtomicU64,
    /// Deliveries the sends of the window should make.
    pub window_offered: AtomicU64,
    pub delivered: AtomicU64,
    /// Messages sent so far, per client (only senders' entries move).
    pub sent: Vec<AtomicU64>,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// Clients connected and admitted to their room.
    pub ready: AtomicUsize,
    /// Pages asked for again after a turned-away answer, and streams
    /// opened again after a failed open.
    pub retries: AtomicU64,
    pub failed: AtomicUsize,
    /// Clients that received their room's history (see [`Role`]).
    pub history_done: AtomicUsize,
    /// Senders that may still send (they stop counting once they saw the
    /// drain, or their connection ended): the drain waits for zero, so no
    /// message leaves after the books are closed.
    pub active_senders: AtomicUsize,
    /// Senders that stopped for a [`Phase::Pause`] and wait to go on.
    pub paused_senders: AtomicUsize,
    /// Send slots skipped because a sender fell more than one interval
    /// behind its schedule (the load generator could not keep up).
    pub behind: AtomicU64,
}

impl Shared {
    pub fn new(proto: Proto, layout: Layout) -> Arc<Self> {
        let sent = (0..layout.clients).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Shared {
            proto,
            layout,
            interval_us: AtomicU64::new(1_000_000),
            epoch: Instant::now(),
            measuring: AtomicBool::new(false),
            latency_us: Mutex::new(new_histogram()),
            window_delivered: AtomicU64::new(0),
            window_offered: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            sent,
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            ready: AtomicUsize::new(0),
            retries: AtomicU64::new(0),
            failed: AtomicUsize::new(0),
            history_done: AtomicUsize::new(0),
            behind: AtomicU64::new(0),
            active_senders: AtomicUsize::new(0),
            paused_senders: AtomicUsize::new(0),
        })
    }

    pub fn note_error(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().expect("error lock");
        first.get_or_insert(error);
    }

    /// Deliveries the messages sent so far should make.
    pub fn expected_deliveries(&self) -> u64 {
        let layout = &self.layout;
        layout
            .senders()
            .map(|s| self.sent[s].load(Ordering::Relaxed) * layout.members(layout.room_of(s)) as u64)
            .sum()
    }

    /// Opens a measurement window: fresh histogram and window counters.
    pub fn open_window(&self) {
        *self.latency_us.lock().expect("histogram lock") = new_histogram();
        self.window_delivered.store(0, Ordering::Relaxed);
        self.window_offered.store(0, Ordering::Relaxed);
        self.measuring.store(true, Ordering::Release);
    }

    pub fn close_window(&self) -> Histogram<u64> {
        self.measuring.store(false, Ordering::Release);
        std::mem::replace(&mut *self.latency_us.lock().expect("histogram lock"), new_histogram())
    }
}

/// Latencies from 1 µs to a minute, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What one client saw, handed back when it closes.
#[derive(Debug, Default)]
pub struct Outcome {
    pub client: usize,
    /// Per sender of the client's room, by slot.
    pub tracks: Vec<SenderTrack>,
    /// Our server's room seq as this client saw it.
    pub seq: SeqTrack,
    /// Stamped messages from a sender of another room (must never happen).
    pub foreign: u64,
    /// Messages without a stamp (history seeded before the run).
    pub unstamped: u64,
    /// Frames that were neither messages nor acks (presence, pongs, …).
    pub other_frames: u64,
    /// Close code, if the server closed the connection.
    pub closed_by_server: Option<u16>,
    /// The connection broke without a close frame.
    pub broken: bool,
    /// From the start of the scenario to the welcome, and to the moment
    /// the room's history had arrived.
    pub welcomed_after: Option<Duration>,
    pub history_after: Option<Duration>,
}

/// How a client takes part in a scenario.
#[derive(Clone, Copy, Debug)]
pub struct Role {
    pub client: usize,
    /// When the scenario started (for the welcome and history times).
    pub started: Instant,
}

/// Every client of the layout, already joined (over HTTP, on our
/// server), each in its own task waiting for the phase to say send.
pub struct Started {
    pub phase: watch::Sender<Phase>,
    pub tasks: Vec<JoinHandle<Option<Outcome>>>,
    pub started: Instant,
}

/// Starts every client of `shared`'s layout, at most `concurrency`
/// connecting at once.
pub fn spawn_all(shared: &Arc<Shared>, addr: std::net::SocketAddr, concurrency: usize) -> Started {
    let (phase, phase_rx) = watch::channel(Phase::Wait);
    let opening = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let tasks = (0..shared.layout.clients)
        .map(|client| {
            let role = Role { client, started };
            spawn_client(shared.clone(), addr, role, Entry::Direct, opening.clone(), phase_rx.clone())
        })
        .collect();
    Started { phase, tasks, started }
}

/// How a client enters its room before opening the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Opens the stream at once (a member already, or a peer server).
    Direct,
    /// Joins with the `join_room` server function first (our server).
    JoinCall,
    /// Loads the room page first, as a browser does, coming back when the
    /// server says so (`Retry-After`) and opening the stream again when it
    /// is refused or dropped before the welcome (our server).
    Page,
}

/// How often a page-entering client tries the stream before giving up.
const STREAM_TRIES: u32 = 5;

/// Connects and joins as `entry` says, then runs the client until the
/// phase says close. `None` when the connection could not be opened
/// (counted in `failed`).
pub fn spawn_client(
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
    role: Role,
    entry: Entry,
    opening: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
) -> JoinHandle<Option<Outcome>> {
    tokio::spawn(async move {
        let layout = &shared.layout;
        let room = layout.room_name(layout.room_of(role.client));
        let user = layout.user_name(role.client);
        let open = async {
            let _permit = opening.acquire().await.expect("semaphore never closes");
            let open = async {
                match entry {
                    Entry::Direct => proto::open(shared.proto, addr, &room, &user).await,
                    Entry::JoinCall => {
                        proto::join_room(addr, &room, &user).await?;
                        proto::open(shared.proto, addr, &room, &user).await
                    }
                    Entry::Page => enter_by_page(&shared, addr, &room, &user).await,
                }
            };
            match tokio::time::timeout(OPEN_TIMEOUT, open).await {
                Ok(result) => result,
                Err(_) => Err(format!("no welcome within {} s", OPEN_TIMEOUT.as_secs())),
            }
        };
        // A scenario that gives up (a storm past its limit) stops the
        // clients still waiting to open, too.
        let opened = tokio::select! {
            opened = open => opened,
            () = closing(phase.clone()) => return None,
        };
        match opened {
            Ok(session) => Some(run_client(shared, role, session, phase).await),
            Err(err) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                shared.note_error(err);
                None
            }
        }
    })
}

/// What a browser does: loads the room page (waiting as long as a
/// turned-away answer's `Retry-After` says, then asking again), then opens
/// the stream, trying again a second later when it fails before the
/// welcome. Each retry is counted in `shared.retries`.
async fn enter_by_page(
    shared: &Shared,
    addr: std::net::SocketAddr,
    room: &str,
    user: &str,
) -> Result<Session, String> {
    let path =
        format!("/chat_room?user_id={}&channel_id={}", crate::http::plain(user), crate::http::plain(room));
    loop {
        let page = crate::http::get(addr, &path).await.map_err(|e| format!("GET the room page: {e}"))?;
        match (page.status, page.retry_after) {
            (200, _) => break,
            (503, Some(secs)) => {
                shared.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            (status, _) => return Err(format!("the room page answered {status}")),
        }
    }
    let mut tries = 0;
    loop {
        match proto::open(shared.proto, addr, room, user).await {
            Ok(session) => return Ok(session),
            Err(err) if tries + 1 >= STREAM_TRIES => return Err(err),
            Err(_) => {
                tries += 1;
                shared.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Resolves once the phase is `Close`.
async fn closing(mut phase: watch::Receiver<Phase>) {
    while *phase.borrow_and_update() != Phase::Close {
        if phase.changed().await.is_err() {
            return;
        }
    }
}

async fn run_client(
    shared: Arc<Shared>,
    role: Role,
    session: Session,
    mut phase: watch::Receiver<Phase>,
) -> Outcome {
    let layout = &shared.layout;
    let proto = shared.proto;
    let me = role.client;
    let my_room = layout.room_of(me);
    let room_members = layout.members(my_room) as u64;
    let is_sender = layout.is_sender(me);
    let mut out = Outcome {
        client: me,
        tracks: vec![SenderTrack::default(); layout.senders_per_room],
        seq: SeqTrack::after(session.resume_after),
        welcomed_after: Some(role.started.elapsed()),
        ..Outcome::default()
    };
    let mut active = is_sender;
    let mut paused = false;
    if active {
        shared.active_senders.fetch_add(1, Ordering::Relaxed);
    }
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let history_until = session.last_seq;
    if history_until <= session.resume_after {
        out.history_after = out.welcomed_after;
        shared.history_done.fetch_add(1, Ordering::Relaxed);
    }

    let mut ws = session.ws;
    let heartbeat = session.heartbeat.unwrap_or(NEVER);
    let mut ping_timer = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let send_timer = sleep_until(Instant::now() + NEVER);
    tokio::pin!(send_timer);
    let mut next_send = Instant::now() + NEVER;
    let mut sending = false;
    let mut n = 0u64;
    let mut sent_interval = Duration::ZERO;
    // Senders are spread over each round rather than all at once.
    let rank = layout.room_of(me) * layout.senders_per_room + layout.slot_of(me);
    let senders = (layout.rooms() * layout.senders_per_room).max(1);

    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let reply = receive(&shared, &mut out, my_room, history_until, role, text.as_str());
                    if let Some(reply) = reply {
                        if ws.send(reply).await.is_err() {
                            out.broken = true;
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    out.closed_by_server = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    out.broken = true;
                    break;
                }
            },
            () = &mut send_timer, if sending => {
                n += 1;
                let text = body::encode(Stamp { sender: me as u32, n, sent_us: body::now_us() });
                let client_msg_id = format!("{me}-{n}");
                if ws.send(proto::send(proto, &client_msg_id, &text)).await.is_err() {
                    out.broken = true;
                    break;
                }
                shared.sent[me].store(n, Ordering::Relaxed);
                if shared.measuring.load(Ordering::Relaxed) {
                    shared.window_offered.fetch_add(room_members, Ordering::Relaxed);
                }
                let interval = Duration::from_micros(shared.interval_us.load(Ordering::Relaxed).max(1));
                let now = Instant::now();
                // A small lag is caught up (timers fire up to a millisecond
                // late). A lag of a whole interval is skipped, not bursted,
                // and a new interval (the next step) starts afresh: either
                // way the sender goes to its next slot of the shared grid,
                // not to now, which would line up every sender one stall
                // held back (or crowd them into the start of a longer round)
                // and make them send in bursts from then on.
                if interval != sent_interval || next_send + interval * 2 < now {
                    if interval == sent_interval {
                        shared.behind.fetch_add(1, Ordering::Relaxed);
                    }
                    next_send = shared.epoch + next_slot(now - shared.epoch, interval, rank, senders);
                } else {
                    next_send += interval;
                }
                sent_interval = interval;
                send_timer.as_mut().reset(next_send);
            }
            _ = ping_timer.tick() => {
                if let Some(ping) = proto::ping(proto) {
                    if ws.send(ping).await.is_err() {
                        out.broken = true;
                        break;
                    }
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now_phase = *phase.borrow_and_update();
                match now_phase {
                    Phase::Send if is_sender && !sending => {
                        if paused {
                            paused = false;
                            shared.paused_senders.fetch_sub(1, Ordering::Relaxed);
                        }
                        sending = true;
                        sent_interval = Duration::from_micros(shared.interval_us.load(Ordering::Relaxed).max(1));
                        let since = Instant::now() - shared.epoch;
                        next_send = shared.epoch + next_slot(since, sent_interval, rank, senders);
                        send_timer.as_mut().reset(next_send);
                    }
                    Phase::Pause if sending => {
                        sending = false;
                        paused = true;
                        shared.paused_senders.fetch_add(1, Ordering::Relaxed);
                    }
                    Phase::Drain | Phase::Close => {
                        sending = false;
                        if paused {
                            paused = false;
                            shared.paused_senders.fetch_sub(1, Ordering::Relaxed);
                        }
                        if active {
                            active = false;
                            shared.active_senders.fetch_sub(1, Ordering::Relaxed);
                        }
                        if now_phase == Phase::Close {
                            break;
                        }
                    }
                    Phase::Wait | Phase::Send | Phase::Pause => {}
                }
            }
        }
    }
    if active {
        shared.active_senders.fetch_sub(1, Ordering::Relaxed);
    }
    if paused {
        shared.paused_senders.fetch_sub(1, Ordering::Relaxed);
    }
    // A polite close; the outcome does not depend on it.
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    out
}

/// The first send slot of sender `rank` of `senders` after `since` (both
/// counted from [`Shared::epoch`]).
fn next_slot(since: Duration, interval: Duration, rank: usize, senders: usize) -> Duration {
    let interval_us = interval.as_micros().max(1);
    let offset_us = interval_us * rank as u128 / senders.max(1) as u128;
    let since_us = since.as_micros();
    let rounds = if since_us < offset_us { 0 } else { (since_us - offset_us) / interval_us + 1 };
    Duration::from_micros(u64::try_from(offset_us + rounds * interval_us).unwrap_or(u64::MAX))
}

/// Books one text frame; returns a frame to answer with, if any.
fn receive(
    shared: &Shared,
    out: &mut Outcome,
    my_room: usize,
    history_until: i64,
    role: Role,
    text: &str,
) -> Option<Message> {
    let layout = &shared.layout;
    match proto::decode(shared.proto, text) {
        Incoming::Message { body, seq } => {
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(seq) = seq {
                out.seq.see(seq);
                if out.history_after.is_none() && seq >= history_until {
                    out.history_after = Some(role.started.elapsed());
                    shared.history_done.fetch_add(1, Ordering::Relaxed);
                }
            }
            let Some(stamp) = body::decode(&body) else {
                out.unstamped += 1;
                return None;
            };
            if shared.measuring.load(Ordering::Relaxed) {
                shared.window_delivered.fetch_add(1, Ordering::Relaxed);
                let latency = body::now_us().saturating_sub(stamp.sent_us).max(1);
                shared.latency_us.lock().expect("histogram lock").saturating_record(latency);
            }
            let sender = stamp.sender as usize;
            let slot = layout.slot_of(sender);
            if sender < layout.clients && layout.room_of(sender) == my_room && slot < out.tracks.len() {
                out.tracks[slot].see(stamp.n);
            } else {
                out.foreign += 1;
            }
            None
        }
        Incoming::Ack => {
            shared.acked.fetch_add(1, Ordering::Relaxed);
            None
        }
        Incoming::Error(message) => {
            shared.note_error(message);
            None
        }
        Incoming::Reply(reply) => Some(reply),
        Incoming::Other => {
            out.other_frames += 1;
            None
        }
    }
}

/// Waits until every client is admitted or failed, up to `limit`.
pub async fn wait_until_open(shared: &Shared, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let ready = shared.ready.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        if ready + failed >= shared.layout.clients {
            if failed > 0 {
                let first = shared.first_error.lock().expect("error lock").clone().unwrap_or_default();
                return Err(format!(
                    "{failed} of {} clients failed to open; first: {first}",
                    shared.layout.clients
                ));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {ready} of {} clients open after {} s",
                shared.layout.clients,
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the senders and waits until every message sent has been
/// delivered everywhere it should be — for as long as deliveries keep
/// coming (a saturated server works off its backlog), giving up after
/// `quiet` without a single delivery, or after [`MAX_DRAIN`] in all.
pub async fn drain(phase: &watch::Sender<Phase>, shared: &Shared, quiet: Duration) {
    phase.send_replace(Phase::Drain);
    until_delivered(shared, quiet, || shared.active_senders.load(Ordering::Relaxed) == 0).await;
}

/// Stops the senders for a moment and waits, as [`drain`] does, until
/// what they sent has arrived; `Phase::Send` starts them again. A window
/// measured after a pause starts from an idle server and load generator,
/// not from the backlog of a step neither kept up with.
pub async fn pause(phase: &watch::Sender<Phase>, shared: &Shared, quiet: Duration) {
    phase.send_replace(Phase::Pause);
    until_delivered(shared, quiet, || {
        shared.paused_senders.load(Ordering::Relaxed) == shared.active_senders.load(Ordering::Relaxed)
    })
    .await;
}

/// Waits until the senders have stopped and every message sent has been
/// delivered, or `quiet` went by without a delivery, or [`MAX_DRAIN`].
async fn until_delivered(shared: &Shared, quiet: Duration, senders_stopped: impl Fn() -> bool) {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut seen = shared.delivered.load(Ordering::Relaxed);
    loop {
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if delivered != seen {
            seen = delivered;
            last_progress = Instant::now();
        }
        if senders_stopped() && delivered >= shared.expected_deliveries() {
            return;
        }
        if last_progress.elapsed() >= quiet || started.elapsed() >= MAX_DRAIN {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tells every client to close and collects what they saw.
pub async fn close_all(
    phase: &watch::Sender<Phase>,
    tasks: Vec<JoinHandle<Option<Outcome>>>,
) -> Vec<Outcome> {
    phase.send_replace(Phase::Close);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Some(outcome)) = task.await {
            outcomes.push(outcome);
        }
    }
    outcomes
}

/// Joins every client over HTTP (our server's first request of a page),
/// `concurrency` at a time. Returns the response bytes received.
pub async fn join_all(
    addr: std::net::SocketAddr,
    layout: &Layout,
    concurrency: usize,
) -> Result<u64, String> {
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(layout.clients);
    for client in 0..layout.clients {
        let room = layout.room_name(layout.room_of(client));
        let user = layout.user_name(client);
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore never closes");
            proto::join_room(addr, &room, &user).await
        }));
    }
    let mut bytes = 0;
    for task in tasks {
        let joined = task.await.map_err(|e| format!("join task: {e}"))??;
        bytes += joined.body_bytes as u64;
    }
    Ok(bytes)
}

/// Correctness of a run, from every client's outcome and every sender's
/// count.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Correctness {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub expected: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub unstamped: u64,
    pub seq_gaps: u64,
    pub seq_repeats: u64,
    pub server_closes: BTreeMap<u16, u64>,
    pub broken: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub behind: u64,
}

impl Correctness {
    pub fn tally(shared: &Shared, outcomes: &[Outcome]) -> Self {
        let layout = &shared.layout;
        let sent_by = |s: usize| shared.sent[s].load(Ordering::Relaxed);
        let mut c = Correctness {
            sent: layout.senders().map(sent_by).sum(),
            acked: shared.acked.load(Ordering::Relaxed),
            delivered: shared.delivered.load(Ordering::Relaxed),
            expected: shared.expected_deliveries(),
            errors: shared.errors.load(Ordering::Relaxed),
            first_error: shared.first_error.lock().expect("error lock").clone(),
            behind: shared.behind.load(Ordering::Relaxed),
            ..Correctness::default()
        };
        for out in outcomes {
            let room = layout.room_of(out.client);
            for (slot, track) in out.tracks.iter().enumerate() {
                let sender = room * layout.room_size + slot;
                if sender < layout.clients {
                    c.lost += track.lost(sent_by(sender));
                }
                c.duplicated += track.duplicated;
                c.out_of_order += track.out_of_order;
            }
            c.foreign += out.foreign;
            c.unstamped += out.unstamped;
            c.seq_gaps += out.seq.gaps;
            c.seq_repeats += out.seq.repeats;
            if let Some(code) = out.closed_by_server {
                *c.server_closes.entry(code).or_default() += 1;
            }
            c.broken += u64::from(out.broken);
        }
        c
    }

    /// Nothing lost, repeated, reordered, misrouted or refused, and (on
    /// our server) every message acknowledged.
    pub fn is_clean(&self, proto: Proto) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.foreign == 0
            && self.unstamped == 0
            && self.seq_gaps == 0
            && self.seq_repeats == 0
            && self.server_closes.is_empty()
            && self.broken == 0
            && self.errors == 0
            && self.delivered == self.expected
            && (proto != Proto::Ours || self.acked == self.sent)
    }

    pub fn summary(&self) -> String {
        let closes = if self.server_closes.is_empty() {
            String::new()
        } else {
            format!(", closed by server {:?}", self.server_closes)
        };
        format!(
            "sent {} delivered {}/{} lost {} dup {} out-of-order {} foreign {} seq gaps {} errors {}{closes}",
            self.sent,
            self.delivered,
            self.expected,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.foreign,
            self.seq_gaps,
            self.errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_fill_rooms_in_order_and_the_first_members_send() {
        let layout = Layout::new("t", 25, 10, 2);
        assert_eq!(layout.rooms(), 3);
        assert_eq!((layout.room_of(19), layout.slot_of(19)), (1, 9));
        assert_eq!(layout.members(2), 5);
        assert_eq!(layout.senders().collect::<Vec<_>>(), vec![0, 1, 10, 11, 20, 21]);
        // Two full rooms of 10 and one of 5, two senders each.
        assert_eq!(layout.deliveries_per_round(), 2 * 10 + 2 * 10 + 2 * 5);
    }

    #[test]
    fn senders_keep_their_place_in_the_round_whatever_the_interval() {
        let ms = Duration::from_millis;
        // Four senders, a 40 ms round: 0, 10, 20, 30 ms into each round.
        assert_eq!(next_slot(ms(0), ms(40), 0, 4), ms(40));
        assert_eq!(next_slot(ms(0), ms(40), 1, 4), ms(10));
        assert_eq!(next_slot(ms(10), ms(40), 1, 4), ms(50));
        assert_eq!(next_slot(ms(95), ms(40), 3, 4), ms(110));
        // Far behind: the next slot after now, not a burst of missed ones.
        assert_eq!(next_slot(ms(1_000_001), ms(40), 2, 4), ms(1_000_020));
        // A longer round (the next step): spread over all of it.
        let slots: Vec<_> = (0..4).map(|rank| next_slot(ms(1000), ms(120), rank, 4)).collect();
        assert_eq!(slots, vec![ms(1080), ms(1110), ms(1020), ms(1050)]);
    }

    #[test]
    fn rooms_never_exceed_the_client_count() {
        let layout = Layout::new("t", 40, 1000, 10);
        assert_eq!((layout.room_size, layout.rooms(), layout.members(0)), (40, 1, 40));
        assert_eq!(layout.room_name(0), "t-r0");
        assert_eq!(layout.user_name(7), "t-u7");
    }
}
