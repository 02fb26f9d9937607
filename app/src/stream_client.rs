//! Browser side of the room stream (feature `hydrate`): a websocket to
//! `/api/stream` that says hello with the last seq the page shows, applies
//! the server's frames to the room's signals, sends the page's messages,
//! and reconnects by itself with backoff when the connection drops.
//!
//! Messages typed while disconnected stay pending and are sent (again)
//! after each welcome; the server stores a retried message once. A message
//! the server refuses stays on the page, marked with the reason, until the
//! person retries or dismisses it (see `conversation`); it is not sent
//! again by itself, and the message input is left as the person has it.
//!
//! It also keeps who is online (the welcome's list, then presence frames)
//! and who else is typing (typing frames, each shown for a few seconds),
//! and tells the room when this page's user types.
//!
//! Moderation: the page's requests go up as `Act` frames, each answered
//! by `Done` or a refusal naming it (while disconnected, they are refused
//! at once). The welcome says the user's role, mute and the room's slow
//! mode as they are; moderation events that come after it change them. When a moderator kicks or bans the page's user, the
//! event comes first, then the server closes the socket (code 4410): the
//! page says so and does not reconnect.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::activity::{typing_notice_due, TYPING_SHOWN_MS};
use crate::backoff;
use crate::components::chat_room::{ConnState, RoomSignals};
use crate::conversation::Members;
use crate::moderation::slow_mode_wait_ms;
use crate::protocol::moderation::Request;
use crate::protocol::{ClientFrame, ErrorCode, Role, ServerFrame};

/// Close code the server uses when the user is not (or no longer) a member.
const CLOSE_NOT_MEMBER: u16 = 4403;
const CLOSE_UNAUTHORIZED: u16 = 4401;
/// The server is shutting down: reconnect at once (another node may be up).
const CLOSE_GOING_AWAY: u16 = 1001;
/// The page fell behind the room: reconnect at once and catch up.
const CLOSE_RESYNC: u16 = 4409;
/// A moderator removed the user from the room (kicked or banned).
const CLOSE_REMOVED: u16 = 4410;
/// Heartbeats a ping may go unanswered before the page gives up on the
/// connection (with the beat before it, about 3 beats since the last frame).
const MISSED_HEARTBEATS: f64 = 1.5;

/// A random id for a message this page sends.
pub fn new_client_msg_id() -> String {
    random_id('m')
}

/// A random id starting with `prefix`.
fn random_id(prefix: char) -> String {
    let mut bytes = [0u8; 12];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in bytes.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let mut id = String::with_capacity(25);
    id.push(prefix);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The page's connection to its room. Dropping it does not close the
/// socket: call [`RoomStream::stop`].
pub struct RoomStream {
    shared: Rc<Shared>,
}

struct Shared {
    room: RoomSignals,
    socket: RefCell<Option<Socket>>,
    attempt: Cell<u32>,
    stopped: Cell<bool>,
    welcomed: Cell<bool>,
    /// When the ping still unanswered went out (ms since the epoch): any
    /// frame from the server answers it.
    pinged_at: Cell<Option<f64>>,
    /// When this page last told the room its user is typing.
    last_typing: Cell<Option<f64>>,
    heartbeat: RefCell<Option<IntervalHandle>>,
    /// The room's newest seq at the last welcome: events up to it are in
    /// what the welcome said already.
    welcomed_at_seq: Cell<i64>,
    /// Moderation requests sent and not answered yet, with who hears the
    /// answer.
    requests: RefCell<Vec<(String, Answer)>>,
}

/// Hears how a moderation request went: a sentence for people if refused.
pub type Answer = Box<dyn FnOnce(Result<(), String>)>;

/// A websocket and the callbacks it holds on to.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn shut(&self) {
        self.ws.set_onerror(None);
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

impl RoomStream {
    pub fn start(room: RoomSignals) -> Self {
        let shared = Rc::new(Shared {
            room,
            socket: RefCell::new(None),
            attempt: Cell::new(0),
            stopped: Cell::new(false),
            welcomed: Cell::new(false),
            pinged_at: Cell::new(None),
            last_typing: Cell::new(None),
            heartbeat: RefCell::new(None),
            welcomed_at_seq: Cell::new(0),
            requests: RefCell::new(Vec::new()),
        });
        connect(&shared);
        RoomStream { shared }
    }

    /// Shows `body` as pending and sends it now if connected; otherwise it
    /// goes out after the next welcome.
    pub fn send_new(&self, body: String) {
        let id = new_client_msg_id();
        let me = self.shared.room.user_id.get_value();
        self.shared.room.conversation.update(|c| c.push_pending(&me, &id, &body));
        self.send_pending(id, body);
        // The message ends this bout of typing: typing again is news.
        self.shared.last_typing.set(None);
    }

    /// Sends a refused message again, as a new pending message (a new id:
    /// the server's answer to the old one stands) at the end.
    pub fn retry(&self, client_msg_id: &str) {
        let id = new_client_msg_id();
        let body = self.shared.room.conversation.try_update(|c| c.retry(client_msg_id, &id)).flatten();
        if let Some(body) = body {
            self.send_pending(id, body);
        }
    }

    /// Sends a message already shown as pending now if connected;
    /// otherwise it goes out after the next welcome.
    fn send_pending(&self, client_msg_id: String, body: String) {
        if self.shared.stopped.get() {
            self.shared.room.conversation.update(|c| {
                c.refuse(&client_msg_id, NEVER_SENT);
            });
        } else if self.shared.welcomed.get() {
            send(&self.shared, &ClientFrame::Send { client_msg_id, body });
        }
    }

    /// The user changed the draft: tells the room they are typing, at most
    /// every two seconds and only while connected (a notice that waited
    /// would be stale).
    pub fn typing(&self, draft: &str) {
        let now = js_sys::Date::now();
        if self.shared.welcomed.get() && typing_notice_due(draft, self.shared.last_typing.get(), now) {
            self.shared.last_typing.set(Some(now));
            send(&self.shared, &ClientFrame::Typing);
        }
    }

    /// Asks the room for `request` up the stream; `answer` hears how it
    /// went. While the stream is down it is refused at once (a moderation
    /// request waiting for a reconnect would act on what the person may
    /// no longer see).
    pub fn act(&self, request: Request, answer: Answer) {
        if !self.shared.welcomed.get() {
            answer(Err("The chat is not connected right now. Please try again in a moment.".to_owned()));
            return;
        }
        let request_id = random_id('r');
        self.shared.requests.borrow_mut().push((request_id.clone(), answer));
        send(&self.shared, &ClientFrame::Act { request_id, request });
    }

    /// Closes the connection for good.
    pub fn stop(&self) {
        self.shared.stopped.set(true);
        stop_heartbeat(&self.shared);
        if let Some(socket) = self.shared.socket.borrow_mut().take() {
            socket.shut();
        }
    }
}

fn stream_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/api/stream", location.host().ok()?))
}

fn send(shared: &Shared, frame: &ClientFrame) {
    if let Some(socket) = shared.socket.borrow().as_ref() {
        if socket.ws.ready_state() == WebSocket::OPEN {
            if let Ok(text) = serde_json::to_string(frame) {
                let _ = socket.ws.send_with_str(&text);
            }
        }
    }
}

fn connect(shared: &Rc<Shared>) {
    if shared.stopped.get() {
        return;
    }
    let Some(url) = stream_url() else { return };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => return schedule_reconnect(shared),
    };
    shared.welcomed.set(false);

    let on_open = {
        let shared = Rc::clone(shared);
        Closure::<dyn FnMut()>::new(move || {
            let room = shared.room;
            let hello = ClientFrame::Hello {
                channel_id: room.channel_id.get_value(),
                user_id: room.user_id.get_value(),
                after_seq: room.conversation.with_untracked(|c| c.last_seq()),
                token: room.token.get_value(),
            };
            send(&shared, &hello);
        })
    };
    let on_message = {
        let shared = Rc::clone(shared);
        Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            shared.pinged_at.set(None);
            let Some(text) = ev.data().as_string() else { return };
            match serde_json::from_str::<ServerFrame>(&text) {
                Ok(frame) => apply(&shared, frame),
                Err(err) => leptos::logging::warn!("unreadable frame from the room stream: {err}"),
            }
        })
    };
    let on_close = {
        let shared = Rc::clone(shared);
        Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            // Drop the old socket (and this very callback) after it returns.
            let old = shared.socket.borrow_mut().take();
            set_timeout(move || drop(old), Duration::ZERO);
            shared.welcomed.set(false);
            stop_heartbeat(&shared);
            unanswered(&shared);
            if shared.stopped.get() {
                return;
            }
            match ev.code() {
                CLOSE_NOT_MEMBER | CLOSE_UNAUTHORIZED => close_for_good(&shared),
                CLOSE_REMOVED => {
                    // The kick or ban came just before; if it did not (it
                    // happened while this page was away), say it plainly.
                    close_for_good(&shared);
                    shared.room.removed_unseen();
                }
                CLOSE_GOING_AWAY | CLOSE_RESYNC => {
                    shared.attempt.set(0);
                    schedule_reconnect(&shared);
                }
                _ => schedule_reconnect(&shared),
            }
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    *shared.socket.borrow_mut() =
        Some(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close });
}

/// Sends a ping every `every`, and closes the socket (which reconnects)
/// when one stays unanswered (no frame at all since) for a few beats. Time
/// since the last frame would not do: a hidden tab's timers may run only
/// once a minute, and a quiet room says nothing between them. A beat far
/// behind time (the machine slept, or the tab was held back) checks its
/// ping again a moment later: a link lost meanwhile shows at once.
fn start_heartbeat(shared: &Rc<Shared>, every: Duration) {
    stop_heartbeat(shared);
    shared.pinged_at.set(None);
    let every_ms = every.as_millis() as f64;
    let beat_at = Cell::new(js_sys::Date::now());
    let weak = Rc::downgrade(shared);
    let handle = set_interval_with_handle(
        move || {
            let Some(shared) = weak.upgrade() else { return };
            let now = js_sys::Date::now();
            let late = now - beat_at.replace(now) > 2.0 * every_ms;
            let sent = shared.pinged_at.get().unwrap_or(now);
            if now - sent > every_ms * MISSED_HEARTBEATS {
                return drop_dead(&shared);
            }
            shared.pinged_at.set(Some(sent));
            send(&shared, &ClientFrame::Ping);
            if late {
                let weak = weak.clone();
                set_timeout(
                    move || {
                        let Some(shared) = weak.upgrade() else { return };
                        if shared.welcomed.get() && shared.pinged_at.get() == Some(sent) {
                            drop_dead(&shared);
                        }
                    },
                    every.min(Duration::from_secs(5)),
                );
            }
        },
        every,
    );
    *shared.heartbeat.borrow_mut() = handle.ok();
}

/// The connection is dead even if the browser has not noticed: drops it
/// without waiting for a closing handshake, and reconnects.
fn drop_dead(shared: &Rc<Shared>) {
    let dead = shared.socket.borrow_mut().take();
    if let Some(socket) = dead {
        socket.shut();
    }
    shared.welcomed.set(false);
    stop_heartbeat(shared);
    unanswered(shared);
    schedule_reconnect(shared);
}

/// Stored lines a page keeps while its reader is at the newest ones.
const KEPT_LINES: usize = 500;

/// What a message waiting when the stream closed for good says (one sent
/// just before may have been stored: a reload shows it).
const NEVER_SENT: &str = "The chat closed before this was confirmed as sent.";

/// The stream is over for good: nothing more goes out, and what waits to
/// be sent never will.
fn close_for_good(shared: &Shared) {
    shared.stopped.set(true);
    shared.welcomed.set(false);
    shared.room.status.set(ConnState::Closed);
    shared.room.conversation.update(|c| c.refuse_pending(NEVER_SENT));
}

/// The connection ended with moderation requests unanswered: whether they
/// were done is unknown, so say so.
fn unanswered(shared: &Shared) {
    let waiting = std::mem::take(&mut *shared.requests.borrow_mut());
    for (_, answer) in waiting {
        answer(Err("The connection dropped before the answer came. Please check and try again.".to_owned()));
    }
}

/// Passes the answer to the moderation request `request_id` on.
fn answered(shared: &Shared, request_id: &str, result: Result<(), String>) {
    let answer = {
        let mut requests = shared.requests.borrow_mut();
        let at = requests.iter().position(|(id, _)| id == request_id);
        at.map(|at| requests.remove(at).1)
    };
    if let Some(answer) = answer {
        answer(result);
    }
}

fn stop_heartbeat(shared: &Shared) {
    if let Some(handle) = shared.heartbeat.borrow_mut().take() {
        handle.clear();
    }
}

fn schedule_reconnect(shared: &Rc<Shared>) {
    let online = web_sys::window().is_none_or(|w| w.navigator().on_line());
    shared.room.status.set(if online { ConnState::Reconnecting } else { ConnState::Offline });
    let attempt = shared.attempt.get();
    shared.attempt.set(attempt.saturating_add(1));
    let delay = backoff::delay_ms(attempt, js_sys::Math::random());
    let shared = Rc::clone(shared);
    set_timeout(move || connect(&shared), Duration::from_millis(delay.into()));
}

fn apply(shared: &Rc<Shared>, frame: ServerFrame) {
    let room = shared.room;
    match frame {
        ServerFrame::Welcome {
            members,
            last_seq,
            resume_after,
            heartbeat_ms,
            online,
            role,
            muted,
            slow_mode_secs,
            blocked,
            now_ms,
        } => {
            room.server_clock(now_ms);
            if room.role.get_untracked() != role {
                room.role.set(role);
            }
            room.welcomed(muted, slow_mode_secs);
            shared.welcomed_at_seq.set(last_seq);
            if role == Role::Moderator {
                room.reload_reports();
            }
            room.conversation.update(|c| {
                c.resume_after(resume_after);
                c.set_blocked_list(blocked);
            });
            room.members.set(Members::new(members));
            room.online.update(|o| o.replace(online));
            start_heartbeat(shared, Duration::from_millis(heartbeat_ms.max(1000).into()));
            room.status.set(ConnState::Connected);
            shared.attempt.set(0);
            shared.welcomed.set(true);
            let pending: Vec<ClientFrame> = room.conversation.with_untracked(|c| {
                c.pending()
                    .map(|l| ClientFrame::Send {
                        client_msg_id: l.client_msg_id.clone(),
                        body: l.body.clone(),
                    })
                    .collect()
            });
            for frame in &pending {
                send(shared, frame);
            }
        }
        ServerFrame::Message(message) => {
            // A reader at the newest lines does not need the oldest.
            let at_bottom = room.at_bottom.get_untracked();
            let shown = room
                .conversation
                .try_update(|c| {
                    let shown = c.apply(message.clone());
                    if at_bottom {
                        c.forget_oldest(KEPT_LINES + 100, KEPT_LINES);
                    }
                    shown
                })
                .unwrap_or(false);
            if shown {
                room.message_arrived(&message);
                // Events the welcome did not know of yet.
                let news = message.action.as_ref().filter(|_| message.seq > shared.welcomed_at_seq.get());
                if news.is_some_and(|action| room.take_action(action)) {
                    // Out of the room: the server closes the socket next.
                    close_for_good(shared);
                }
            }
            stopped_typing(room, &message.user_id);
        }
        ServerFrame::MemberJoined { user_id } => room.members.update(|m| m.add(user_id)),
        ServerFrame::Presence { user_id, online } => {
            room.online.update(|o| o.set(&user_id, online));
            if !online {
                stopped_typing(room, &user_id);
            }
        }
        ServerFrame::Roster { joined, online, offline } => {
            if !joined.is_empty() {
                room.members.update(|m| joined.into_iter().for_each(|user_id| m.add(user_id)));
            }
            room.online.update(|o| {
                online.iter().for_each(|user_id| o.set(user_id, true));
                offline.iter().for_each(|user_id| o.set(user_id, false));
            });
            for user_id in &offline {
                stopped_typing(room, user_id);
            }
        }
        ServerFrame::Typing { user_id } => {
            let blocked = room.conversation.with_untracked(|c| c.is_blocked(&user_id));
            if !blocked && room.user_id.with_value(|me| *me != user_id) {
                room.typists.update(|t| t.typing(&user_id, js_sys::Date::now()));
                // Shown until a little after the notice runs out, unless a
                // newer one (or a message) came meanwhile.
                set_timeout(
                    move || {
                        let _ = room.typists.try_update(|t| t.expire(js_sys::Date::now()));
                    },
                    Duration::from_millis(TYPING_SHOWN_MS as u64 + 100),
                );
            }
        }
        ServerFrame::MemberLeft { user_id } => {
            let me = room.user_id.with_value(|me| *me == user_id);
            stopped_typing(room, &user_id);
            room.members.update(|m| m.remove(&user_id));
            // A member removed by a moderator stays on the page to read why.
            if me && !room.is_removed() {
                close_for_good(shared);
                if let Some(window) = web_sys::window() {
                    let _ = window.location().set_href("/");
                }
            }
        }
        ServerFrame::Ack { client_msg_id, seq } => room.conversation.update(|c| c.ack(&client_msg_id, seq)),
        ServerFrame::Pong => {}
        ServerFrame::RoleChanged { user_id, role } => {
            if room.user_id.with_value(|me| *me == user_id) && room.role.get_untracked() != role {
                room.role.set(role);
                // A new moderator's queue.
                if role == Role::Moderator {
                    room.reload_reports();
                }
            }
        }
        ServerFrame::Blocked { user_id, target } => block_changed(room, &user_id, &target, true),
        ServerFrame::Unblocked { user_id, target } => block_changed(room, &user_id, &target, false),
        ServerFrame::Done { request_id } => answered(shared, &request_id, Ok(())),
        ServerFrame::Reported { report } => room.reports.update(|q| q.reported(report)),
        ServerFrame::ReportClosed { id } => room.reports.update(|q| q.closed(id)),
        ServerFrame::Error { request_id: Some(request_id), message, .. } => {
            answered(shared, &request_id, Err(message));
        }
        ServerFrame::Error { code, message, client_msg_id, .. } => {
            // A refused message shows the reason on its own line.
            let on_a_line = client_msg_id
                .is_some_and(|id| room.conversation.try_update(|c| c.refuse(&id, &message)).unwrap_or(false));
            if on_a_line {
                room.announcement.set(format!("Not sent: {message}"));
            }
            if code == ErrorCode::SlowMode && room.role.get_untracked().is_player() {
                let now = room.now_ms();
                let me = room.user_id.get_value();
                let last_sent = room.conversation.with_untracked(|c| c.last_sent_at(&me));
                let period = room.standing.with_untracked(|s| s.slow_mode_secs);
                let wait = slow_mode_wait_ms(period, last_sent, now as i64);
                room.slow_mode_wait(now, wait as f64);
            }
            match code {
                ErrorCode::NotMember | ErrorCode::Unauthorized => {
                    close_for_good(shared);
                    room.notice.set(Some(message));
                }
                // The server closes the socket; reconnecting catches up.
                ErrorCode::Resync => {}
                _ if on_a_line => {}
                _ => room.notice.set(Some(message)),
            }
        }
    }
}

/// The page's user blocked `target` (or lifted the block), here or on
/// another page: their lines go (or come back).
fn block_changed(room: RoomSignals, user_id: &str, target: &str, blocked: bool) {
    if room.user_id.with_value(|me| me == user_id) {
        room.conversation.update(|c| {
            c.set_blocked(target, blocked);
        });
        stopped_typing(room, target);
    }
}

/// Takes `user_id` off the typing line, if they are on it.
fn stopped_typing(room: RoomSignals, user_id: &str) {
    if room.typists.with_untracked(|t| t.contains(user_id)) {
        room.typists.update(|t| {
            t.stopped(user_id);
        });
    }
}
