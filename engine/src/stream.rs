//! The room stream: one websocket per open page, at `/api/stream`.
//!
//! A connection is one task. It waits for the page's `Hello`, is admitted
//! by the rooms service (which subscribes it to the room before reading
//! anything), replays from the store every message after the page's last
//! seq (at most `replay_limit` of them), then forwards the room's live
//! events — skipping what it already sent, filling any gap from the store —
//! while it handles the page's `Send`, `Typing` and `Ping` frames. A page
//! may pipeline up to `MAX_IN_FLIGHT` sends (see `writer`); their acks come
//! back in the order sent, and the room's events keep flowing meanwhile.
//! The task alone writes the socket: the room's events wait in its queue
//! (see `mailbox`) and a burst goes out in one write, which a sender's ack
//! and its own copy of the message usually share.
//!
//! While admitted, a connection counts its user as online in the room (see
//! `hub`); the welcome lists who is online, the user included. `Typing` is
//! relayed to the room's other pages through the bus, never stored, and
//! at most once a second per connection.
//!
//! Memory: an idle connection holds only what waiting needs. Admitting,
//! handling a frame and writing a batch run in boxed futures that exist
//! while they run (else the task would reserve room for the largest of them
//! for its whole life), and the welcome's member list is dropped once sent.
//!
//! Whatever one page does, its room stays healthy: a connection that falls
//! a whole queue behind (or whose bus may have lost events) is closed with
//! `RESYNC` and its page catches up from the store (nothing is dropped
//! silently, nobody waits for the slow page); every write has a deadline; a
//! page silent almost `idle_timeout` long is sent a websocket ping, which
//! its browser answers without the page's code (a hidden tab's timers may
//! run only once a minute, and its player has not left); a page that
//! answers nothing for `idle_timeout` is dropped; on shutdown each connection
//! has its sends in flight committed and acknowledged, then goes away.
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::hub::{Chore, PresenceGuard, RoomEvent, Subscription};
use super::identity::Access;
use super::limits::client_ip;
use super::mailbox::Lagged;
use super::metrics as m;
use super::rooms::{OpenRoom, RoomError, Rooms};
use super::websocket::{Incoming, ReadError, ReadGate, Upgrade};
use crate::protocol::{ClientFrame, ErrorCode, Role, ServerFrame};
use crate::Engine;

/// A page's upgraded connection.
type Socket = super::websocket::Socket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Largest frame a page may send (2000 characters of 4 bytes fit easily).
const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Most room events written to one page before a flush.
const MAX_BATCH: usize = 64;
/// Most messages of one connection waiting to be stored: past it the
/// connection reads nothing more from its page until acks go out.
const MAX_IN_FLIGHT: usize = 32;
/// Messages read from the store per query while catching up.
const REPLAY_BATCH: u64 = 500;
/// A page's `Typing` frames closer together than this are ignored (pages
/// send one every two seconds while typing).
const TYPING_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// One write in this many (of those with a message, from the first on)
/// records its fan-out time: recording takes a shared atomic list, a cost
/// not worth paying on every write, and the histogram keeps its shape.
const FANOUT_SAMPLE_EVERY: u32 = 16;

/// Tunables of the stream (from the server's configuration).
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// How often pages send a heartbeat (told to them in the welcome).
    pub heartbeat: Duration,
    /// A connection with no frame from the page for this long is dropped.
    pub idle_timeout: Duration,
    /// A write that takes longer than this drops the connection.
    pub write_timeout: Duration,
    /// Most messages replayed on reconnect; a page further behind gets the
    /// latest ones and replaces what it shows.
    pub replay_limit: u64,
}

impl StreamSettings {
    /// How often each connection is asked whether its page is still there
    /// (see `Hub::keep_house`).
    pub fn idle_check_every(&self) -> Duration {
        self.heartbeat.min(self.idle_timeout)
    }

    /// Whether a connection silent for `silent` gets a websocket ping at
    /// this check: the next check would find it past `idle_timeout` (with
    /// half a period to spare). With the defaults (a heartbeat every 15 s,
    /// 45 s idle), a page on time never gets one.
    pub fn ping_due(&self, silent: Duration) -> bool {
        silent + self.idle_check_every() * 3 / 2 > self.idle_timeout
    }
}

/// Close codes the page acts on (4000–4999 are for applications).
pub mod close_code {
    /// The server is shutting down: reconnect (to another node) at once.
    pub const GOING_AWAY: u16 = 1001;
    /// The first frame was not a valid `Hello`.
    pub const BAD_HELLO: u16 = 4400;
    /// The user left the room (or was never in it): do not reconnect.
    pub const NOT_MEMBER: u16 = 4403;
    /// The page was silent for too long.
    pub const IDLE: u16 = 4408;
    /// The connection fell behind: reconnect and catch up.
    pub const RESYNC: u16 = 4409;
    /// The token is missing, invalid, expired or for another room: do not
    /// reconnect with it.
    pub const UNAUTHORIZED: u16 = 4401;
    /// A moderator removed the user from the room (kicked or banned; the
    /// event itself came just before): do not reconnect.
    pub const REMOVED: u16 = 4410;
    /// A frame over the size limit (the standard "message too big").
    pub const TOO_BIG: u16 = 1009;
    /// The server failed (the standard "internal error").
    pub const INTERNAL: u16 = 1011;
}

pub async fn stream_handler(
    upgrade: Upgrade,
    State(state): State<Engine>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Engine { rooms, stream, lifecycle, connections, access } = state;
    let stopping = lifecycle.stopping_token();
    if stopping.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "The server is restarting.").into_response();
    }
    // The last header line: a balancer that adds a line of its own
    // (rather than appending to the client's) puts it after theirs.
    let forwarded_for = headers.get_all("x-forwarded-for").iter().next_back().and_then(|v| v.to_str().ok());
    let ip = client_ip(peer.ip(), forwarded_for, connections.trust_forwarded_for);
    let Some(slot) = connections.per_ip.admit(ip) else {
        metrics::counter!(m::REFUSED_CONNECTIONS).increment(1);
        tracing::info!(%ip, "too many stream connections from one address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many chat connections from your network. Please close some tabs.",
        )
            .into_response();
    };
    let context = Box::new(Context { rooms, access, settings: stream, stopping, _slot: slot });
    upgrade.on_upgrade(MAX_FRAME_BYTES, move |socket| lifecycle.track(connection(socket, context)))
}

/// What a connection needs besides its socket, boxed once: the futures
/// that carry it there (upgrade, tracking) each hold a pointer, not a copy.
struct Context {
    rooms: Rooms,
    access: Access,
    settings: StreamSettings,
    stopping: CancellationToken,
    /// The connection's place among its address's (freed on drop).
    _slot: super::limits::ConnectionSlot,
}

/// Why a connection ends (for the log).
#[derive(Debug)]
enum End {
    PeerClosed,
    SocketError,
    Closed(&'static str),
}

/// A connection's socket, with its write deadline. One task reads and
/// writes it (no split halves behind a lock): it reads in `select!`
/// branches and writes in their handlers, once the reads are dropped.
struct Outbox {
    ws: Socket,
    write_timeout: Duration,
}

/// Runs a write (or a batch of them) under a deadline, armed only if it has
/// to wait: most finish in their first poll (the socket takes the bytes).
/// A stalled write is counted and ends the connection like a failed one.
async fn within<T>(deadline: Duration, write: impl Future<Output = Result<T, End>>) -> Result<T, End> {
    let mut write = std::pin::pin!(write);
    if let Poll::Ready(done) = futures::poll!(write.as_mut()) {
        return done;
    }
    tokio::time::timeout(deadline, write).await.unwrap_or_else(|_| {
        metrics::counter!(m::WRITE_TIMEOUTS).increment(1);
        Err(End::SocketError)
    })
}

impl Outbox {
    /// Queues a frame; `flush` writes everything queued at once.
    fn queue(&mut self, frame: &ServerFrame) {
        self.ws.queue_text(&serde_json::to_string(frame).expect("server frames always serialize"));
    }

    async fn flush(&mut self) -> Result<(), End> {
        within(self.write_timeout, async { self.ws.flush().await.map_err(|_| End::SocketError) }).await
    }

    /// Sends one frame now.
    async fn frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        self.queue(frame);
        self.flush().await
    }

    /// Sends a close frame and says why the connection ended.
    async fn close(&mut self, code: u16, reason: &'static str) -> End {
        self.ws.queue_close(code, reason);
        let _ = self.flush().await;
        End::Closed(reason)
    }

    /// Tells the page what is wrong, then closes.
    async fn refuse(&mut self, code: ErrorCode, message: &str, close: u16, why: &'static str) -> End {
        let _ = self.frame(&error(code, message)).await;
        self.close(close, why).await
    }

    /// Sends the stored messages with `after < seq < until` (oldest first)
    /// and returns the last seq sent. Moderation events among them update
    /// the connection's view of the room; one that removes its user from
    /// the room ends the connection once sent.
    async fn replay(
        &mut self,
        rooms: &Rooms,
        room: &mut OpenRoom,
        after: i64,
        until: i64,
    ) -> Result<i64, End> {
        let mut last = after;
        let mut removed = false;
        loop {
            let batch = match rooms.messages_after(room.room_id, last, REPLAY_BATCH).await {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::error!(%err, "replay failed");
                    return Err(self.close(close_code::INTERNAL, "store unavailable").await);
                }
            };
            let full = batch.len() as u64 == REPLAY_BATCH;
            for message in batch.into_iter().take_while(|m| m.seq < until) {
                last = message.seq;
                removed = !room.apply(&message);
                self.queue(&ServerFrame::Message(message));
                if removed {
                    // Nothing after the user's removal is theirs to see.
                    break;
                }
            }
            self.flush().await?;
            if removed {
                return Err(self.close(close_code::REMOVED, "removed by a moderator").await);
            }
            if !full || last + 1 >= until {
                return Ok(last);
            }
        }
    }

    /// Closes the connection with "resync": the page reconnects at once
    /// from its last seq and gets the room's members afresh.
    async fn resync(&mut self) -> End {
        metrics::counter!(m::RESYNCS).increment(1);
        let msg = "This page fell behind and is catching up.";
        self.refuse(ErrorCode::Resync, msg, close_code::RESYNC, "resync").await
    }
}

/// An error frame about the connection (not about one of its sends).
fn error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error { code, message: message.into(), client_msg_id: None, request_id: None }
}

/// The answer to a frame that could not be read: it names the send or the
/// request the frame was, when the frame says (a body that is not text, a
/// seq that is not a number), so that the page's wait for that answer ends.
fn not_understood(text: &str) -> ServerFrame {
    let frame = serde_json::from_str::<serde_json::Value>(text).ok();
    let named = |field: &str| Some(frame.as_ref()?.get(field)?.as_str()?.to_owned());
    ServerFrame::Error {
        code: ErrorCode::BadFrame,
        message: "That frame could not be understood.".to_owned(),
        client_msg_id: named("client_msg_id"),
        request_id: named("request_id"),
    }
}

async fn connection(socket: Socket, context: Box<Context>) {
    let Context { rooms, access, settings, stopping, .. } = &*context;
    let mut out = Outbox { ws: socket, write_timeout: settings.write_timeout };
    // Admitting and serving run boxed: the connection's own task stays
    // small (see the module docs on memory).
    let admitted = tokio::select! {
        admitted = Box::pin(admit(&mut out, rooms, access, settings)) => admitted,
        _ = stopping.cancelled() => Err(out.close(close_code::GOING_AWAY, "server shutting down").await),
    };
    let end = match admitted {
        Ok(admitted) => {
            let span = tracing::info_span!(
                "stream",
                channel_id = %admitted.room.channel_id,
                user_id = %admitted.room.user_id
            );
            Box::pin(serve(admitted, settings, stopping).instrument(span)).await
        }
        Err(end) => end,
    };
    match end {
        End::Closed(why) => tracing::debug!(why, "stream closed by the server"),
        End::PeerClosed => tracing::debug!("stream closed by the page"),
        End::SocketError => tracing::debug!("stream socket failed or stalled"),
    }
}

/// Reads the `Hello`, admits the connection and replays what the page missed.
async fn admit<'a>(
    out: &'a mut Outbox,
    rooms: &'a Rooms,
    access: &Access,
    settings: &StreamSettings,
) -> Result<Box<Serving<'a>>, End> {
    let (hello, why) = match tokio::time::timeout(settings.idle_timeout, out.ws.next()).await {
        Ok(None | Some(Err(_)) | Some(Ok(Incoming::Close(_)))) => return Err(End::PeerClosed),
        Ok(Some(Ok(Incoming::Text(text)))) => (serde_json::from_str(&text).ok(), "bad hello"),
        Err(_) | Ok(Some(Ok(_))) => (None, "no hello"),
    };
    let Some(ClientFrame::Hello { channel_id, user_id, after_seq, token }) = hello else {
        let msg = "The connection must start with a hello frame.";
        return Err(out.refuse(ErrorCode::BadFrame, msg, close_code::BAD_HELLO, why).await);
    };
    let (opened, role) = match access.resolve(&channel_id, &user_id, token.as_deref()) {
        Ok(actor) => {
            let opened = rooms.open(&actor.channel_id, &actor.user_id).await;
            if matches!(opened, Err(RoomError::NotMember)) {
                // Kicked while the page was away: it hears so, as it would have.
                let kicked = rooms.kicked_while_away(&actor.channel_id, &actor.user_id, after_seq).await;
                if let Ok(Some(kick)) = kicked {
                    out.queue(&ServerFrame::Message(kick));
                    return Err(out.close(close_code::REMOVED, "kicked while away").await);
                }
            }
            (opened, actor.role)
        }
        Err(err) => (Err(RoomError::Identity(err)), Role::Player),
    };
    let (mut room, subscription) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            let (code, close, why) = match err {
                RoomError::Identity(_) => (ErrorCode::Unauthorized, close_code::UNAUTHORIZED, "bad token"),
                RoomError::NotMember | RoomError::NoSuchRoom | RoomError::Banned(_) => {
                    (ErrorCode::NotMember, close_code::NOT_MEMBER, "refused")
                }
                _ if err.is_client_error() => (ErrorCode::InvalidInput, close_code::BAD_HELLO, "refused"),
                _ => {
                    tracing::error!(%err, "admitting a stream failed");
                    (ErrorCode::Internal, close_code::INTERNAL, "refused")
                }
            };
            return Err(out.refuse(code, &err.public_message(), close, why).await);
        }
    };
    // Listening already: presence changes after this snapshot reach the
    // page after the welcome, in order.
    let present = subscription.present(&room.user_id);
    // The identity's role, or the one the game's server API stored.
    room.identity_role = role;
    room.role = room.role.max(role);
    let role = room.role;
    let resume_after = resume_point(after_seq, room.last_seq, settings.replay_limit);
    let welcome = ServerFrame::Welcome {
        // An idle connection should not hold its room's member list.
        members: std::mem::take(&mut room.members),
        last_seq: room.last_seq,
        resume_after,
        heartbeat_ms: settings.heartbeat.as_millis().min(u32::MAX as u128) as u32,
        online: subscription.online(),
        role,
        muted: room.muted.clone(),
        slow_mode_secs: room.slow_mode_secs,
        blocked: std::mem::take(&mut room.blocked),
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    out.frame(&welcome).await?;
    let last_sent = out.replay(rooms, &mut room, resume_after, i64::MAX).await?;
    Ok(Box::new(Serving {
        out,
        rooms,
        room,
        _present: present,
        subscription,
        last_sent,
        last_typing: None,
        in_flight: FuturesOrdered::new(),
        metrics: ConnectionMetrics::new(),
    }))
}

/// Where the replay for a page that has seen `after_seq` starts: right
/// after it, unless that is more than `limit` messages back (then only the
/// latest `limit`), and never past the room's newest message.
pub fn resume_point(after_seq: i64, last_seq: i64, limit: u64) -> i64 {
    let after = after_seq.clamp(0, last_seq);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    after.max(last_seq.saturating_sub(limit))
}

async fn serve(conn: Box<Serving<'_>>, settings: &StreamSettings, stopping: &CancellationToken) -> End {
    // Out of its box: the connection's serving future is boxed already.
    let mut conn = *conn;
    let mut last_heard = Instant::now();
    // Room events wake the task far more often than the page speaks.
    let gate = ReadGate::default();
    // The idle check and the shutdown come as chores through the room
    // (see `hub`); one that went out before this connection subscribed
    // has cancelled `stopping` first.
    if stopping.is_cancelled() {
        return conn.out.close(close_code::GOING_AWAY, "server shutting down").await;
    }
    loop {
        let first = tokio::select! {
            incoming = conn.out.ws.next_through(&gate), if conn.in_flight.len() < MAX_IN_FLIGHT => {
                last_heard = Instant::now();
                if let Err(end) = conn.handle_incoming(incoming).await {
                    return end;
                }
                continue;
            }
            event = conn.subscription.recv() => Some(event),
            Some(reply) = conn.in_flight.next(), if !conn.in_flight.is_empty() => {
                conn.out.queue(&reply);
                None
            }
        };
        // Boxed: its future (which may read from the store) must not be
        // sized into the connection's.
        match within(settings.write_timeout, Box::pin(conn.write_ready(first))).await {
            Ok(Some(Chore::CheckIdle)) if last_heard.elapsed() > settings.idle_timeout => {
                return conn.out.close(close_code::IDLE, "no heartbeat").await;
            }
            Ok(Some(Chore::CheckIdle)) if settings.ping_due(last_heard.elapsed()) => {
                // Most often a hidden tab, whose timers the browser runs
                // once a minute: its socket still answers.
                conn.out.ws.queue_ping();
                if let Err(end) = conn.out.flush().await {
                    return end;
                }
            }
            Ok(None | Some(Chore::CheckIdle)) => {}
            Ok(Some(Chore::Stop)) => {
                // What the page sent is stored and acknowledged first.
                while let Some(reply) = conn.in_flight.next().await {
                    conn.out.queue(&reply);
                }
                return conn.out.close(close_code::GOING_AWAY, "server shutting down").await;
            }
            Err(end) => return end,
        }
    }
}

/// A connection admitted to its room, while it serves its page.
struct Serving<'a> {
    out: &'a mut Outbox,
    rooms: &'a Rooms,
    room: OpenRoom,
    /// Counts the user online in the room while the connection lives
    /// (dropped before the subscription, as fields drop in this order).
    _present: PresenceGuard,
    subscription: Subscription,
    /// The last message's seq the page has (or has queued).
    last_sent: i64,
    last_typing: Option<Instant>,
    /// The answers to the page's sends (once stored, or refused), in the
    /// order sent.
    in_flight: FuturesOrdered<Pin<Box<dyn Future<Output = ServerFrame> + Send>>>,
    metrics: ConnectionMetrics,
}

impl Serving<'_> {
    /// Handles what the page sent (a frame, or the end of its socket).
    async fn handle_incoming(&mut self, incoming: Option<Result<Incoming, ReadError>>) -> Result<(), End> {
        match incoming {
            Some(Ok(Incoming::Text(text))) => Box::pin(self.handle_client_frame(&text)).await,
            Some(Ok(Incoming::Binary(_))) => {
                self.out.frame(&error(ErrorCode::BadFrame, "Frames must be JSON text.")).await
            }
            // The pong is queued.
            Some(Ok(Incoming::Ping)) => self.out.flush().await,
            Some(Ok(Incoming::Pong)) => Ok(()),
            Some(Ok(Incoming::Close(_))) => {
                // Answer the close (queued) and end.
                let _ = self.out.flush().await;
                Err(End::PeerClosed)
            }
            None => Err(End::PeerClosed),
            Some(Err(ReadError::TooBig)) => Err(self.out.close(close_code::TOO_BIG, "frame too big").await),
            Some(Err(err)) => match err.close_code() {
                Some(code) => Err(self.out.close(code, "protocol error").await),
                None => Err(End::SocketError),
            },
        }
    }

    /// Handles one frame from the page: sends go to the writer, their answers
    /// queued in `in_flight` (a page may pipeline them); the rest is answered.
    async fn handle_client_frame(&mut self, text: &str) -> Result<(), End> {
        let reply = match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Typing) => {
                // Unanswered: an ignored one costs nothing, the page sends
                // another while the person keeps typing.
                if self.last_typing.is_none_or(|at| at.elapsed() >= TYPING_AT_MOST_EVERY) {
                    self.last_typing = Some(Instant::now());
                    self.rooms.typing(&self.room).await;
                }
                return Ok(());
            }
            Ok(ClientFrame::Send { client_msg_id, body }) => {
                let accepted = self.rooms.accept(&self.room, &client_msg_id, &body).await;
                // A refused send's answer, too, waits behind earlier ones: the
                // page hears about its sends in the order it made them.
                self.in_flight.push_back(Box::pin(async move {
                    match async { accepted?.stored().await }.await {
                        Ok(stored) => ServerFrame::Ack { client_msg_id, seq: stored.seq },
                        Err(err) => send_refused(err, client_msg_id),
                    }
                }));
                return Ok(());
            }
            Ok(ClientFrame::Act { request_id, request }) => {
                match self.rooms.moderate(&self.room, request).await {
                    Ok(_) => ServerFrame::Done { request_id },
                    Err(err) => ServerFrame::Error {
                        code: refusal_code(&err),
                        message: err.public_message(),
                        client_msg_id: None,
                        request_id: Some(request_id),
                    },
                }
            }
            Ok(ClientFrame::Ping) => ServerFrame::Pong,
            Ok(ClientFrame::Hello { .. }) => {
                error(ErrorCode::BadFrame, "This connection already said hello.")
            }
            Err(_) => not_understood(text),
        };
        self.out.frame(&reply).await
    }

    /// Writes everything ready for the page at once: the room's events
    /// (`first`, then what else is queued, up to `MAX_BATCH`) and the
    /// answers to the page's sends that are ready. A chore of the node's
    /// ends the batch (after the write) and is handed back.
    async fn write_ready(
        &mut self,
        mut first: Option<Result<Arc<RoomEvent>, Lagged>>,
    ) -> Result<Option<Chore>, End> {
        let mut chore = None;
        // Messages written, and when the first was published (the fan-out
        // latency is sampled once per batch, not per message).
        let mut messages = 0;
        let mut first_published = None;
        for _ in 0..MAX_BATCH {
            let Some(event) = first.take().or_else(|| self.subscription.try_recv()) else { break };
            let event = match event {
                Ok(event) => event,
                Err(Lagged(missed)) => {
                    tracing::info!(missed, channel_id = %self.room.channel_id, "slow reader told to resync");
                    return Err(self.out.resync().await);
                }
            };
            if event.chore.is_some() {
                // What is queued goes out; the connection does the chore.
                chore = event.chore;
                break;
            }
            self.forward(&event).await?;
            if event.frame.seq().is_some() {
                messages += 1;
                first_published.get_or_insert(event.published_at);
            }
        }
        // Polled without waiting: the select loop polls `in_flight` again
        // (with the task's waker) before the task sleeps.
        while !self.in_flight.is_empty() {
            let Some(Some(reply)) = self.in_flight.next().now_or_never() else { break };
            self.out.queue(&reply);
        }
        self.out.ws.flush().await.map_err(|_| End::SocketError)?;
        self.metrics.delivered(messages, first_published);
        Ok(chore)
    }

    /// Queues one room event for the page (the caller flushes): skips what
    /// the page already has, fills a gap from the store first, and ends the
    /// connection when the bus lost events or the page's user left.
    async fn forward(&mut self, event: &RoomEvent) -> Result<(), End> {
        let route = route(&self.room, self.last_sent, event);
        match route {
            Route::Skip => return Ok(()),
            Route::Resync => {
                tracing::info!(channel_id = %self.room.channel_id, "bus lost events: page told to resync");
                return Err(self.out.resync().await);
            }
            // An event went missing upstream: the store has it.
            Route::CatchUp(seq) => {
                self.out.replay(self.rooms, &mut self.room, self.last_sent, seq).await?;
            }
            Route::Send | Route::Left => {}
        }
        self.last_sent = event.frame.seq().unwrap_or(self.last_sent);
        match &event.frame {
            ServerFrame::RoleChanged { user_id, role } => {
                // The role the page acts with (and is told): a token's
                // claim outranks the game's.
                self.room.role = self.room.identity_role.max(*role);
                if self.room.role == *role {
                    self.out.ws.queue_text(&event.text);
                } else {
                    self.out
                        .queue(&ServerFrame::RoleChanged { user_id: user_id.clone(), role: self.room.role });
                }
                return Ok(());
            }
            _ => self.out.ws.queue_text(&event.text),
        }
        if route == Route::Left {
            return Err(self.out.close(close_code::NOT_MEMBER, "left the room").await);
        }
        if let ServerFrame::Message(message) = &event.frame {
            if !self.room.apply(message) {
                return Err(self.out.close(close_code::REMOVED, "removed by a moderator").await);
            }
        }
        Ok(())
    }
}

/// A connection's part in the node's metrics: it counts among the open
/// connections while it lives, and its writes count what they delivered.
struct ConnectionMetrics {
    delivered: metrics::Counter,
    fanout: metrics::Histogram,
    /// Writes with a message so far, for sampling the fan-out time.
    writes: u32,
}

impl ConnectionMetrics {
    fn new() -> Self {
        metrics::gauge!(m::CONNECTIONS).increment(1.0);
        ConnectionMetrics {
            delivered: metrics::counter!(m::MESSAGES_DELIVERED),
            fanout: metrics::histogram!(m::FANOUT_SECONDS),
            writes: 0,
        }
    }

    /// One write's `messages`, the first of them published at
    /// `first_published`.
    fn delivered(&mut self, messages: u64, first_published: Option<std::time::Instant>) {
        let Some(published_at) = first_published else { return };
        self.delivered.increment(messages);
        if self.writes.is_multiple_of(FANOUT_SAMPLE_EVERY) {
            self.fanout.record(published_at.elapsed());
        }
        self.writes = self.writes.wrapping_add(1);
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        metrics::gauge!(m::CONNECTIONS).decrement(1.0);
    }
}

/// What a room event means for one page of `user_id` that has every
/// message up to `last_sent`.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// Nothing to send: the page has it or needs no news of it.
    Skip,
    Send,
    /// Messages before this seq went missing upstream: send them from the
    /// store first, then it.
    CatchUp(i64),
    /// The bus may have lost events: the page must resync.
    Resync,
    /// The page's own user left the room: send it, then close.
    Left,
}

fn route(room: &OpenRoom, last_sent: i64, event: &RoomEvent) -> Route {
    if event.is_resync() {
        return Route::Resync;
    }
    let user_id = room.user_id.as_str();
    match &event.frame {
        // Reports are for the room's moderators only.
        ServerFrame::Reported { .. } | ServerFrame::ReportClosed { .. } if room.role.is_player() => {
            return Route::Skip
        }
        // A role change, a block, are news to their user's pages only.
        ServerFrame::RoleChanged { user_id: who, .. }
        | ServerFrame::Blocked { user_id: who, .. }
        | ServerFrame::Unblocked { user_id: who, .. }
            if who != user_id =>
        {
            return Route::Skip
        }
        // The typer's own pages know.
        ServerFrame::Typing { user_id: typer } if typer == user_id => return Route::Skip,
        // The page's own user is online while the page is (the welcome
        // said so); this is the news of the page itself arriving.
        ServerFrame::Presence { user_id: who, .. } if who == user_id => return Route::Skip,
        ServerFrame::MemberLeft { user_id: who } if who == user_id => return Route::Left,
        _ => {}
    }
    match event.frame.seq() {
        Some(seq) if seq <= last_sent => Route::Skip,
        Some(seq) if seq > last_sent + 1 => Route::CatchUp(seq),
        _ => Route::Send,
    }
}

/// The answer to a send that was not stored.
fn send_refused(err: RoomError, client_msg_id: String) -> ServerFrame {
    ServerFrame::Error {
        code: refusal_code(&err),
        message: err.public_message(),
        client_msg_id: Some(client_msg_id),
        request_id: None,
    }
}

/// The code of a refused send or request.
fn refusal_code(err: &RoomError) -> ErrorCode {
    match err {
        RoomError::Muted(_) => ErrorCode::Muted,
        RoomError::SlowMode(_) => ErrorCode::SlowMode,
        RoomError::Refused(_) => ErrorCode::Forbidden,
        RoomError::NotMember | RoomError::Banned(_) => ErrorCode::NotMember,
        _ if err.is_client_error() => ErrorCode::InvalidInput,
        _ => {
            tracing::error!(%err, "a request failed");
            ErrorCode::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{resume_point, route, RoomEvent, Route, ServerFrame, StreamSettings};
    use crate::protocol::moderation::{Action, Report};
    use crate::protocol::{ChatMessage, Role};
    use crate::rooms::OpenRoom;

    fn page_of(user_id: &str, role: Role) -> OpenRoom {
        OpenRoom {
            room_id: 1,
            channel_id: "room".into(),
            user_id: user_id.into(),
            members: Vec::new(),
            last_seq: 3,
            role,
            identity_role: role,
            muted: None,
            slow_mode_secs: 0,
            blocked: Vec::new(),
        }
    }

    fn message(seq: i64) -> RoomEvent {
        let message = crate::protocol::ChatMessage {
            seq,
            user_id: "bob".into(),
            body: "hi".into(),
            client_msg_id: format!("c{seq}"),
            at_ms: 0,
            ..Default::default()
        };
        std::sync::Arc::into_inner(RoomEvent::new(ServerFrame::Message(message))).unwrap()
    }

    fn event(frame: ServerFrame) -> RoomEvent {
        std::sync::Arc::into_inner(RoomEvent::new(frame)).unwrap()
    }

    #[test]
    fn a_page_gets_each_message_once_and_catches_up_over_a_gap() {
        assert_eq!(route(&page_of("ana", Role::Player), 4, &message(5)), Route::Send);
        assert_eq!(route(&page_of("ana", Role::Player), 5, &message(5)), Route::Skip, "already sent");
        assert_eq!(
            route(&page_of("ana", Role::Player), 6, &message(5)),
            Route::Skip,
            "older than what it has"
        );
        assert_eq!(
            route(&page_of("ana", Role::Player), 4, &message(7)),
            Route::CatchUp(7),
            "5 and 6 come from the store first"
        );
    }

    #[test]
    fn a_page_hears_of_others_and_of_its_user_leaving() {
        let typing = |who: &str| event(ServerFrame::Typing { user_id: who.into() });
        let online = |who: &str| event(ServerFrame::Presence { user_id: who.into(), online: true });
        let left = |who: &str| event(ServerFrame::MemberLeft { user_id: who.into() });
        assert_eq!(route(&page_of("ana", Role::Player), 0, &typing("bob")), Route::Send);
        assert_eq!(
            route(&page_of("ana", Role::Player), 0, &typing("ana")),
            Route::Skip,
            "the typer's own pages know"
        );
        assert_eq!(route(&page_of("ana", Role::Player), 0, &online("bob")), Route::Send);
        assert_eq!(
            route(&page_of("ana", Role::Player), 0, &online("ana")),
            Route::Skip,
            "the page itself arriving"
        );
        assert_eq!(route(&page_of("ana", Role::Player), 0, &left("bob")), Route::Send);
        assert_eq!(route(&page_of("ana", Role::Player), 0, &left("ana")), Route::Left);
        assert_eq!(route(&page_of("ana", Role::Player), 0, &RoomEvent::resync()), Route::Resync);
    }

    #[test]
    fn reports_reach_only_moderators_pages() {
        let report = Report {
            id: 1,
            seq: 2,
            author: "bob".into(),
            body: "rude".into(),
            reporter: "ana".into(),
            reason: String::new(),
            at_ms: 0,
        };
        let reported = event(ServerFrame::Reported { report });
        let closed = event(ServerFrame::ReportClosed { id: 1 });
        for frame in [&reported, &closed] {
            assert_eq!(route(&page_of("eve", Role::Player), 0, frame), Route::Skip);
            assert_eq!(route(&page_of("mod", Role::Moderator), 0, frame), Route::Send);
        }
    }

    #[test]
    fn a_block_reaches_only_the_pages_of_who_blocked() {
        let blocked = event(ServerFrame::Blocked { user_id: "ana".into(), target: "bob".into() });
        let lifted = event(ServerFrame::Unblocked { user_id: "ana".into(), target: "bob".into() });
        for frame in [&blocked, &lifted] {
            assert_eq!(route(&page_of("ana", Role::Player), 0, frame), Route::Send);
            assert_eq!(route(&page_of("bob", Role::Player), 0, frame), Route::Skip);
            assert_eq!(route(&page_of("mod", Role::Moderator), 0, frame), Route::Skip);
        }
    }

    #[test]
    fn a_page_follows_its_users_mute_and_the_rooms_slow_mode_and_ends_when_removed() {
        let action = |seq: i64, action: Action| ChatMessage {
            seq,
            user_id: "mod".into(),
            action: Some(action),
            ..Default::default()
        };
        let mut page = page_of("ana", Role::Player);
        let mute = Action::Mute { user_id: "ana".into(), until_ms: Some(9), reason: "spam".into() };
        assert!(page.apply(&action(2, mute.clone())), "older than the admission: already read");
        assert_eq!(page.muted, None);
        assert!(page.apply(&action(4, mute)));
        assert_eq!(page.muted.as_ref().map(|m| m.reason.as_str()), Some("spam"));
        assert!(page.apply(&action(5, Action::Unmute { user_id: "bob".into() })), "someone else's");
        assert!(page.muted.is_some());
        assert!(page.apply(&action(6, Action::Unmute { user_id: "ana".into() })));
        assert_eq!(page.muted, None);
        assert!(page.apply(&action(7, Action::SlowMode { seconds: 30 })));
        assert_eq!(page.slow_mode_secs, 30);
        assert!(page.apply(&action(8, Action::Kick { user_id: "bob".into(), reason: String::new() })));
        assert!(!page.apply(&action(9, Action::Kick { user_id: "ana".into(), reason: String::new() })));
        let ban = Action::Ban { user_id: "ana".into(), until_ms: None, reason: String::new() };
        assert!(!page.apply(&action(10, ban)));
    }

    #[test]
    fn a_page_resumes_right_after_what_it_has() {
        assert_eq!(resume_point(7, 10, 1000), 7);
        assert_eq!(resume_point(0, 0, 1000), 0);
    }

    #[test]
    fn a_page_too_far_behind_gets_the_latest_messages_only() {
        assert_eq!(resume_point(0, 5000, 1000), 4000);
        assert_eq!(resume_point(3999, 5000, 1000), 4000);
        assert_eq!(resume_point(4001, 5000, 1000), 4001);
    }

    #[test]
    fn a_page_cannot_claim_more_than_the_room_holds() {
        assert_eq!(resume_point(50, 10, 1000), 10);
        assert_eq!(resume_point(-3, 10, 1000), 0);
    }

    #[test]
    fn a_silent_page_is_pinged_before_the_check_that_would_drop_it() {
        let settings = |heartbeat, idle| StreamSettings {
            heartbeat: Duration::from_secs(heartbeat),
            idle_timeout: Duration::from_secs(idle),
            write_timeout: Duration::from_secs(10),
            replay_limit: 100,
        };
        let secs = Duration::from_secs;
        // The defaults: a page on time (every 15 s) never is; one 30 s
        // silent is, and the next check (at 45 s at the latest) finds it answered.
        let defaults = settings(15, 45);
        assert!(!defaults.ping_due(secs(15)));
        assert!(!defaults.ping_due(secs(22)));
        assert!(defaults.ping_due(secs(23)));
        // A timeout close to the heartbeat: pinged at every check.
        assert!(settings(30, 45).ping_due(secs(1)));
        assert!(settings(1, 3).ping_due(Duration::from_millis(1600)));
        assert!(!settings(1, 3).ping_due(Duration::from_millis(1400)));
    }
}
