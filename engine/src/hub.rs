//! This node's fan-out: for each room with listeners here, the listeners'
//! queues (see `mailbox`), whose items are room events encoded once and
//! shared by every connection (a clone is a reference-count bump, not a
//! copy). A room's entry exists while someone listens. The queues are
//! bounded: a connection that falls more than `capacity` events behind is
//! told it lagged (see `stream`), it never holds the others up.
//!
//! The hub also keeps the rooms' presence (see `presence`): the stream
//! registers each page it admits, and the hub tells the room's pages here
//! when someone's presence as a whole flips, and the other nodes (through
//! the bus's presence sink) when this node's first page of a user opens or
//! its last one closes. Counting, telling the pages and handing the news
//! to the bus happen under one lock, so they keep one order: a page that
//! closes and reopens at once can never be announced online, then offline.
//!
//! A busy room holds its member joins and presence changes for a while and
//! sends them as one `Roster` event (see `ROSTER_FROM`); a crowded room
//! gets its messages in rounds (see `ROUNDS_FROM`). Either way any other
//! event of the room sends what is held first, so pages see events in
//! order, and a quiet room's message goes at once.
//!
//! The node's housekeeping (idle checks, shutdown) reaches connections
//! through the same channels (see [`Hub::keep_house`]): a timer and a
//! shutdown signal of each connection's own would be two more things to
//! poll each time it wakes, and a room event wakes it far more often.
use std::collections::hash_map::{HashMap, RandomState};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::mailbox::{Lagged, Listeners, Mailbox};
use super::presence::PresenceBook;
use crate::protocol::{ErrorCode, ServerFrame};

/// A room event as it travels to connections: the frame (for decisions,
/// such as "was it me who left?") and its JSON text, encoded once.
#[derive(Debug)]
pub struct RoomEvent {
    pub frame: ServerFrame,
    pub text: String,
    /// When the event was published (for the fan-out latency metric).
    pub published_at: Instant,
    /// Set on the node's housekeeping, meant for the connections themselves
    /// (its `frame` is a `Pong` nobody sends, its `text` is empty).
    pub chore: Option<Chore>,
}

/// What the node's housekeeping asks of every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chore {
    /// Ping the page if it has been silent a while, close if too long.
    CheckIdle,
    /// The server is shutting down: finish what is in flight and close.
    Stop,
}

impl RoomEvent {
    pub fn new(frame: ServerFrame) -> Arc<Self> {
        let text = serde_json::to_string(&frame).expect("room events always serialize");
        RoomEvent::published_now(frame, text, None)
    }

    /// An event another node encoded: its JSON text, decoded once here.
    pub fn decode(text: &str) -> Result<Arc<Self>, serde_json::Error> {
        Ok(RoomEvent::published_now(serde_json::from_str(text)?, text.to_owned(), None))
    }

    fn chore(chore: Chore) -> Arc<Self> {
        RoomEvent::published_now(ServerFrame::Pong, String::new(), Some(chore))
    }

    fn published_now(frame: ServerFrame, text: String, chore: Option<Chore>) -> Arc<Self> {
        Arc::new(RoomEvent { frame, text, published_at: Instant::now(), chore })
    }

    /// Says the bus may have lost events of the room: every connection
    /// that receives it closes with "resync", and its page reconnects and
    /// catches up from the store (messages and members alike).
    pub fn resync() -> Arc<Self> {
        RoomEvent::new(ServerFrame::Error {
            code: ErrorCode::Resync,
            message: "Catching up after a connection problem.".to_owned(),
            client_msg_id: None,
            request_id: None,
        })
    }

    pub fn is_resync(&self) -> bool {
        matches!(self.frame, ServerFrame::Error { code: ErrorCode::Resync, .. })
    }
}

/// Where the hub hands presence news meant for the other nodes: the room,
/// and the event to publish. Called with the hub's presence lock held, in
/// the order the changes happened, so it must not block (the Redis bus
/// queues the event).
pub type PresenceSink = Box<dyn Fn(&str, &Arc<RoomEvent>) + Send + Sync>;

#[derive(Default)]
struct PresenceState {
    book: PresenceBook,
    sink: Option<PresenceSink>,
}

/// Rooms with at least this many listeners on this node get their member
/// and presence changes in rosters, held for up to `ROSTER_EVERY`: a crowd
/// of N joining costs each page a few frames and wake-ups, not N.
const ROSTER_FROM: usize = 32;
const ROSTER_EVERY: Duration = Duration::from_millis(100);
/// Rooms of thousands hold them longer: while a crowd streams in, every
/// roster is a write to each page, and nobody follows thousands of names to
/// the tenth of a second (one who leaves still shows offline within 0.5 s).
const BIG_ROSTER_FROM: usize = 1000;
const BIG_ROSTER_EVERY: Duration = Duration::from_millis(400);

/// How long a room with this many listeners here holds its member and
/// presence changes (`None`: it does not, they go at once).
fn roster_every(listeners: usize) -> Option<Duration> {
    match listeners {
        n if n >= BIG_ROSTER_FROM => Some(BIG_ROSTER_EVERY),
        n if n >= ROSTER_FROM => Some(ROSTER_EVERY),
        _ => None,
    }
}

/// Rooms with at least this many listeners on this node get their
/// messages in rounds, at most one every `ROUND_EVERY`: a message that
/// comes sooner after the last round waits for the next one, with whatever
/// else comes meanwhile, and each page gets a round in one write (a socket
/// write per listener is such a room's cost per message). A round is
/// queued at once for every listener, so one larger than `capacity` would
/// make every page resync: at the default of 512, over 25,000 messages a
/// second into one room, which the per-user send rate keeps far away.
const ROUNDS_FROM: usize = 256;
const ROUND_EVERY: Duration = Duration::from_millis(20);

/// Member and presence changes held for a busy room's next roster.
#[derive(Default)]
struct HeldRoster {
    /// How many of the room's waiting messages came before the first change.
    before: usize,
    joined: Vec<String>,
    /// Latest state of each user whose presence changed, in order.
    presence: Vec<(String, bool)>,
}

impl HeldRoster {
    /// Whether a roster carries this kind of frame.
    fn carries(frame: &ServerFrame) -> bool {
        matches!(frame, ServerFrame::MemberJoined { .. } | ServerFrame::Presence { .. })
    }

    /// Holds a change (one [`HeldRoster::carries`]).
    fn hold(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::MemberJoined { user_id } if !self.joined.contains(user_id) => {
                self.joined.push(user_id.clone());
            }
            ServerFrame::Presence { user_id, online } => {
                match self.presence.iter_mut().find(|(u, _)| u == user_id) {
                    Some((_, state)) => *state = *online,
                    None => self.presence.push((user_id.clone(), *online)),
                }
            }
            _ => {}
        }
    }

    fn into_event(self) -> Arc<RoomEvent> {
        let (online, offline): (Vec<_>, Vec<_>) = self.presence.into_iter().partition(|(_, online)| *online);
        RoomEvent::new(ServerFrame::Roster {
            joined: self.joined,
            online: online.into_iter().map(|(user, _)| user).collect(),
            offline: offline.into_iter().map(|(user, _)| user).collect(),
        })
    }
}

/// A room's channel on this node, and what it holds for its next roster
/// and round.
#[derive(Default)]
struct RoomChannel {
    listeners: Listeners,
    /// Events to hand the listeners at the end of the current call, in
    /// one go (each listener is woken once for them).
    outgoing: Vec<Arc<RoomEvent>>,
    held: Option<HeldRoster>,
    /// Messages waiting for the room's next round (in order).
    waiting: Vec<Arc<RoomEvent>>,
    /// When the room's last round went out.
    last_round: Option<Instant>,
    /// Its last listener left: it is being taken out of the hub's map, and
    /// a new listener makes a new entry.
    closed: bool,
}

impl RoomChannel {
    /// Sends what is held for the roster, if anything, and the waiting messages.
    fn release(&mut self) {
        if !self.waiting.is_empty() {
            self.last_round = Some(Instant::now());
        }
        // As they came: the messages that waited before the roster's
        // first change, the roster, the rest.
        let mut waiting = std::mem::take(&mut self.waiting).into_iter();
        if let Some(held) = self.held.take() {
            self.outgoing.extend(waiting.by_ref().take(held.before));
            self.outgoing.push(held.into_event());
        }
        self.outgoing.extend(waiting);
    }

    /// Hands the listeners what is outgoing.
    fn flush(&mut self) {
        self.listeners.send_all(&self.outgoing);
        self.outgoing.clear();
    }

    /// Whether a message must wait for the room's next round; when it
    /// need not, the round is now. Returns when the next round is due.
    fn round_for_message(&mut self, now: Instant) -> Option<Instant> {
        if self.listeners.len() < ROUNDS_FROM {
            return None;
        }
        match self.last_round {
            Some(last) if !self.waiting.is_empty() || now < last + ROUND_EVERY => Some(last + ROUND_EVERY),
            _ => {
                self.last_round = Some(now);
                None
            }
        }
    }
}

#[derive(Clone)]
pub struct Hub {
    /// Each room under a lock of its own, so that other rooms' publishes
    /// (on other threads) go on while one room's events are queued for its
    /// listeners. The map's lock is held only to find, add or drop a room.
    /// Neither is held across I/O: queueing an event is a push and a wake.
    rooms: Arc<Mutex<HashMap<String, Arc<Mutex<RoomChannel>>>>>,
    /// Lock order: `presence`, then `rooms`, then a room.
    presence: Arc<Mutex<PresenceState>>,
    node: Arc<str>,
    capacity: usize,
}

impl Hub {
    /// `capacity`: how many events a connection may fall behind its room.
    pub fn new(capacity: usize) -> Self {
        Hub {
            rooms: Arc::default(),
            presence: Arc::default(),
            node: node_id().into(),
            capacity: capacity.max(1),
        }
    }

    /// This node's id among the nodes sharing a bus (random per process).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Starts listening to a room on this node. The map's lock is let go
    /// before the room's is taken: a room busy queueing a crowd's events
    /// holds up joins to it, never to others.
    pub fn subscribe(&self, channel_id: &str) -> Subscription {
        let mut room = self.rooms.lock().entry(channel_id.to_owned()).or_default().clone();
        loop {
            let mut locked = room.lock();
            if !locked.closed {
                let mailbox = locked.listeners.subscribe(self.capacity);
                return Subscription { mailbox, channel_id: channel_id.to_owned(), hub: self.clone() };
            }
            drop(locked);
            // Its last listener left meanwhile: a new entry in its place.
            let mut rooms = self.rooms.lock();
            let entry = rooms.entry(channel_id.to_owned()).or_default();
            if Arc::ptr_eq(entry, &room) {
                *entry = Arc::default();
            }
            room = entry.clone();
        }
    }

    /// Hands an event published by `node` to every listener of the room
    /// here. Presence events update the room's presence instead, and reach
    /// the listeners only when they change it.
    pub fn deliver_from(&self, node: &str, channel_id: &str, event: Arc<RoomEvent>) {
        let ServerFrame::Presence { user_id, online } = &event.frame else {
            return self.deliver_all(channel_id, [event]);
        };
        if node == &*self.node {
            // This node's own presence is its count of pages, already
            // applied (and told) when a page opened or closed.
            return;
        }
        let mut presence = self.presence.lock();
        if presence.book.remote(channel_id, user_id, node, *online, Instant::now()) {
            self.deliver_all(channel_id, [event.clone()]);
        }
    }

    /// Hands events published on this node (such as the message writer's
    /// group of a room's messages) to every listener of the room here at
    /// once: each is woken once for them and writes them in one write.
    pub fn deliver_all(&self, channel_id: &str, events: impl IntoIterator<Item = Arc<RoomEvent>>) {
        let Some(room) = self.room(channel_id) else { return };
        let mut room = room.lock();
        for event in events {
            self.route(channel_id, &mut room, event);
        }
        room.flush();
    }

    /// The room's entry, if it has listeners here.
    fn room(&self, channel_id: &str) -> Option<Arc<Mutex<RoomChannel>>> {
        self.rooms.lock().get(channel_id).cloned()
    }

    /// Puts an event where it goes: held for a roster, waiting for a
    /// round, or in the room's outgoing events (after what was held).
    fn route(&self, channel_id: &str, room: &mut RoomChannel, event: Arc<RoomEvent>) {
        if let Some(every) = roster_every(room.listeners.len()).filter(|_| HeldRoster::carries(&event.frame))
        {
            let before = room.waiting.len();
            let held = room.held.get_or_insert_with(|| {
                self.release_at(channel_id, tokio::time::Instant::now() + every);
                HeldRoster { before, ..HeldRoster::default() }
            });
            held.hold(&event.frame);
            return;
        }
        if event.frame.seq().is_some() {
            if let Some(next_round) = room.round_for_message(Instant::now()) {
                if room.waiting.is_empty() {
                    self.release_at(channel_id, next_round.into());
                }
                room.waiting.push(event);
                return;
            }
        }
        // What is held for the room goes first: pages see events in order.
        room.release();
        room.outgoing.push(event);
    }

    /// Hands a chore to the connections of the rooms `pick` picks, in each
    /// room after what the room holds; one room at a time, under the
    /// room's own lock: the others go on publishing meanwhile.
    fn tell_rooms(&self, chore: Chore, pick: impl Fn(&str) -> bool) {
        let event = RoomEvent::chore(chore);
        let picked: Vec<_> = {
            let rooms = self.rooms.lock();
            rooms.iter().filter(|(channel_id, _)| pick(channel_id)).map(|(_, room)| room.clone()).collect()
        };
        for room in picked {
            let mut room = room.lock();
            room.release();
            room.outgoing.push(event.clone());
            room.flush();
        }
    }

    /// The node's housekeeping, until `stopping`: asks every connection to
    /// check its page every `every`, a slice of the rooms at a time
    /// (`CHECK_SLICES` of them over `every`, so a node's thousands of
    /// connections do not all wake at once), and once `stopping` is
    /// cancelled, to finish and close (a connection admitted after that
    /// sees `stopping` itself). Tying `stopping` to this is what makes
    /// `Lifecycle::stop` reach the connections (the server does it).
    pub fn keep_house(&self, every: Duration, stopping: CancellationToken) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval((every / CHECK_SLICES as u32).max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut slice = 0;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        slice = (slice + 1) % CHECK_SLICES;
                        hub.tell_rooms(Chore::CheckIdle, |channel_id| check_slice(channel_id) == slice);
                    }
                    _ = stopping.cancelled() => {
                        hub.tell_rooms(Chore::Stop, |_| true);
                        return;
                    }
                }
            }
        })
    }

    /// Sends what a room holds (its roster, its next round) at `at`.
    fn release_at(&self, channel_id: &str, at: tokio::time::Instant) {
        let hub = self.clone();
        let channel_id = channel_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(room) = hub.room(&channel_id) {
                let mut room = room.lock();
                room.release();
                room.flush();
            }
        });
    }

    /// Sets where presence news for the other nodes goes (a single node
    /// needs none).
    pub fn set_presence_sink(&self, sink: PresenceSink) {
        self.presence.lock().sink = Some(sink);
    }

    /// Counts a page of `user_id` in the room as open until the guard drops.
    pub fn present(&self, channel_id: &str, user_id: &str) -> PresenceGuard {
        self.count_page(channel_id, user_id, true);
        PresenceGuard { hub: self.clone(), channel_id: channel_id.to_owned(), user_id: user_id.to_owned() }
    }

    /// Counts a page opening (or closing) and passes the change on: to the
    /// other nodes when this node's count flipped, to this node's pages
    /// when the user's presence as a whole did.
    fn count_page(&self, channel_id: &str, user_id: &str, open: bool) {
        let mut presence = self.presence.lock();
        let book = &mut presence.book;
        let change =
            if open { book.connect(channel_id, user_id) } else { book.disconnect(channel_id, user_id) };
        if !change.flipped && !change.announce {
            return;
        }
        let event = presence_event(user_id, open);
        if let Some(sink) = presence.sink.as_ref().filter(|_| change.announce) {
            sink(channel_id, &event);
        }
        if change.flipped {
            self.deliver_all(channel_id, [event]);
        }
    }

    /// The users online in the room (on any node), sorted.
    pub fn online(&self, channel_id: &str) -> Vec<String> {
        self.presence.lock().book.online(channel_id)
    }

    /// Repeats to the other nodes who has pages open here: in `room` (a
    /// node that just started listening to it asked), or (`None`) in every
    /// room (the other nodes forget a node that stops repeating itself).
    pub fn presence_beat(&self, room: Option<&str>) {
        let presence = self.presence.lock();
        let Some(sink) = &presence.sink else { return };
        for (room, user) in presence.book.local(room) {
            sink(&room, &presence_event(&user, true));
        }
    }

    /// Forgets what other nodes said and did not repeat since
    /// `seen_before`, telling the pages here who went offline.
    pub fn expire_presence(&self, seen_before: Instant) {
        let mut presence = self.presence.lock();
        for (room, user) in presence.book.expire(seen_before) {
            self.deliver_all(&room, [presence_event(&user, false)]);
        }
    }

    /// Forgets what other nodes said about a room this node no longer
    /// hears, telling any page here who went offline.
    pub fn forget_remote_presence(&self, channel_id: &str) {
        let mut presence = self.presence.lock();
        for user in presence.book.forget_remote(channel_id) {
            self.deliver_all(channel_id, [presence_event(&user, false)]);
        }
    }

    /// Rooms with at least one listener on this node.
    pub fn room_count(&self) -> usize {
        self.rooms.lock().len()
    }

    /// The rooms with at least one listener on this node.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms.lock().keys().cloned().collect()
    }

    /// Stops a listener; the room goes with its last one.
    /// An emptied room is marked closed under its own lock, then taken out
    /// of the map (if nobody replaced it meanwhile), one lock at a time.
    fn unsubscribe(&self, channel_id: &str, mailbox: &Arc<Mailbox>) {
        let Some(room) = self.room(channel_id) else { return };
        {
            let mut locked = room.lock();
            locked.listeners.unsubscribe(mailbox);
            if !locked.listeners.is_empty() || locked.closed {
                return;
            }
            locked.closed = true;
        }
        let mut rooms = self.rooms.lock();
        if rooms.get(channel_id).is_some_and(|entry| Arc::ptr_eq(entry, &room)) {
            rooms.remove(channel_id);
        }
    }
}

/// How many slices of the rooms the idle checks go to in turn.
const CHECK_SLICES: u64 = 16;

/// A room's slice for the idle checks (the same for the process's life).
fn check_slice(channel_id: &str) -> u64 {
    channel_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into())) % CHECK_SLICES
}

fn presence_event(user_id: &str, online: bool) -> Arc<RoomEvent> {
    RoomEvent::new(ServerFrame::Presence { user_id: user_id.to_owned(), online })
}

/// A random id for this process (it only has to differ between nodes).
fn node_id() -> String {
    let random = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{random:016x}")
}

/// A page counted as open in a room; dropping it closes the page.
pub struct PresenceGuard {
    hub: Hub,
    channel_id: String,
    user_id: String,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.hub.count_page(&self.channel_id, &self.user_id, false);
    }
}

/// A listener of one room; dropping it stops listening.
pub struct Subscription {
    mailbox: Arc<Mailbox>,
    channel_id: String,
    hub: Hub,
}

impl Subscription {
    /// The room's next event (cancel safe).
    pub async fn recv(&mut self) -> Result<Arc<RoomEvent>, Lagged> {
        self.mailbox.recv().await
    }

    /// The next event if one is already waiting (`None` if not).
    pub fn try_recv(&mut self) -> Option<Result<Arc<RoomEvent>, Lagged>> {
        self.mailbox.try_recv()
    }

    /// Counts `user_id`'s page as open in this room while the guard lives.
    pub fn present(&self, user_id: &str) -> PresenceGuard {
        self.hub.present(&self.channel_id, user_id)
    }

    /// The users online in this room now (on any node), sorted.
    pub fn online(&self) -> Vec<String> {
        self.hub.online(&self.channel_id)
    }

    /// Whether this is the room's only listener on this node: the node
    /// was not listening to the room before it.
    pub fn alone(&self) -> bool {
        self.hub.room(&self.channel_id).is_some_and(|room| room.lock().listeners.len() == 1)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.channel_id, &self.mailbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigger_rooms_hold_their_member_changes_longer() {
        assert_eq!(roster_every(ROSTER_FROM - 1), None, "a small room hears of each change at once");
        assert_eq!(roster_every(ROSTER_FROM), Some(ROSTER_EVERY));
        assert_eq!(roster_every(BIG_ROSTER_FROM - 1), Some(ROSTER_EVERY));
        assert_eq!(roster_every(BIG_ROSTER_FROM), Some(BIG_ROSTER_EVERY));
    }

    fn joined(user: &str) -> Arc<RoomEvent> {
        RoomEvent::new(ServerFrame::MemberJoined { user_id: user.into() })
    }

    #[tokio::test]
    async fn events_reach_listeners_of_their_room_only() {
        let hub = Hub::new(16);
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.deliver_all("a", [joined("x")]);
        hub.deliver_all("b", [joined("y")]);
        assert_eq!(a.recv().await.unwrap().text.as_str(), r#"{"type":"member_joined","user_id":"x"}"#);
        assert_eq!(b.recv().await.unwrap().frame, ServerFrame::MemberJoined { user_id: "y".into() });
    }

    #[tokio::test]
    async fn a_room_is_dropped_with_its_last_listener() {
        let hub = Hub::new(16);
        let first = hub.subscribe("a");
        let second = hub.subscribe("a");
        assert_eq!(hub.room_count(), 1);
        drop(first);
        assert_eq!(hub.room_count(), 1);
        drop(second);
        assert_eq!(hub.room_count(), 0);
        // Delivering to a room nobody listens to is a no-op.
        hub.deliver_all("a", [joined("x")]);
    }

    fn presence(user: &str, online: bool) -> ServerFrame {
        ServerFrame::Presence { user_id: user.into(), online }
    }

    #[test]
    fn a_panic_under_a_rooms_lock_leaves_the_room_and_the_node_working() {
        let hub = Hub::new(8);
        let mut listener = hub.subscribe("r");
        let (room, book) = (hub.room("r").expect("listened to"), hub.presence.clone());
        let panicked = std::thread::spawn(move || {
            let _room = room.lock();
            let _book = book.lock();
            panic!("a bug under the room's and the presence's locks");
        })
        .join();
        assert!(panicked.is_err());
        // Neither lock is poisoned: publishing, joining, presence and
        // leaving go on, in this room and others.
        let _present = listener.present("ana");
        hub.deliver_all("r", [joined("x")]);
        assert_eq!(
            drain(&mut listener),
            [presence("ana", true), ServerFrame::MemberJoined { user_id: "x".into() }]
        );
        let mut other = hub.subscribe("r");
        drop(listener);
        hub.deliver_all("r", [joined("y")]);
        assert_eq!(drain(&mut other), [ServerFrame::MemberJoined { user_id: "y".into() }]);
        assert_eq!(hub.online("r"), ["ana"]);
        let mut elsewhere = hub.subscribe("s");
        hub.deliver_all("s", [joined("z")]);
        assert_eq!(drain(&mut elsewhere), [ServerFrame::MemberJoined { user_id: "z".into() }]);
    }

    /// The frames a listener has received so far.
    fn drain(listener: &mut Subscription) -> Vec<ServerFrame> {
        std::iter::from_fn(|| listener.try_recv()).map(|e| e.expect("no lag").frame.clone()).collect()
    }

    /// What a hub handed to the other nodes: (room, frame), in order.
    type Told = Arc<Mutex<Vec<(String, ServerFrame)>>>;

    /// A hub whose news for other nodes is collected in a list.
    fn hub_with_sink() -> (Hub, Told) {
        let hub = Hub::new(64);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let into = sent.clone();
        hub.set_presence_sink(Box::new(move |room, event| {
            into.lock().push((room.to_owned(), event.frame.clone()));
        }));
        (hub, sent)
    }

    #[tokio::test]
    async fn pages_hear_of_a_user_once_however_many_pages_they_open() {
        let (hub, sent) = hub_with_sink();
        let mut watcher = hub.subscribe("r");
        let first = hub.present("r", "ana");
        let second = hub.present("r", "ana");
        assert_eq!(hub.online("r"), ["ana"]);
        drop(first);
        assert_eq!(drain(&mut watcher), [presence("ana", true)]);
        drop(second);
        assert_eq!(drain(&mut watcher), [presence("ana", false)]);
        let sent = sent.lock().clone();
        assert_eq!(sent, [("r".into(), presence("ana", true)), ("r".into(), presence("ana", false))]);
    }

    #[tokio::test]
    async fn other_nodes_presence_reaches_pages_only_when_it_flips() {
        let (hub, sent) = hub_with_sink();
        let mut watcher = hub.subscribe("r");
        let online = RoomEvent::new(presence("bob", true));
        hub.deliver_from("n2", "r", online.clone());
        hub.deliver_from("n3", "r", online.clone());
        hub.deliver_from("n2", "r", online);
        assert_eq!(drain(&mut watcher), [presence("bob", true)]);
        hub.deliver_from("n2", "r", RoomEvent::new(presence("bob", false)));
        assert!(drain(&mut watcher).is_empty(), "bob is still online on n3");
        hub.deliver_from("n3", "r", RoomEvent::new(presence("bob", false)));
        assert_eq!(drain(&mut watcher), [presence("bob", false)]);
        assert!(sent.lock().is_empty(), "other nodes' news is not repeated to them");
    }

    #[tokio::test]
    async fn this_nodes_own_presence_coming_back_over_the_bus_is_ignored() {
        let (hub, _) = hub_with_sink();
        let mut watcher = hub.subscribe("r");
        let _page = hub.present("r", "ana");
        drain(&mut watcher);
        hub.deliver_from(hub.node_id(), "r", RoomEvent::new(presence("ana", false)));
        assert!(drain(&mut watcher).is_empty());
        assert_eq!(hub.online("r"), ["ana"]);
    }

    #[tokio::test]
    async fn beats_repeat_local_users_and_silent_nodes_expire() {
        let (hub, sent) = hub_with_sink();
        let mut watcher = hub.subscribe("r");
        let _page = hub.present("r", "ana");
        let _elsewhere = hub.present("other", "ana");
        hub.deliver_from("n2", "r", RoomEvent::new(presence("bob", true)));
        drain(&mut watcher);
        sent.lock().clear();

        hub.presence_beat(None);
        let beats = sent.lock().clone();
        assert_eq!(beats, [("other".into(), presence("ana", true)), ("r".into(), presence("ana", true))]);
        sent.lock().clear();
        hub.presence_beat(Some("r"));
        assert_eq!(sent.lock().clone(), [("r".into(), presence("ana", true))]);

        hub.expire_presence(Instant::now() - std::time::Duration::from_secs(30));
        assert!(drain(&mut watcher).is_empty(), "bob was heard from recently");
        hub.expire_presence(Instant::now() + std::time::Duration::from_secs(1));
        assert_eq!(drain(&mut watcher), [presence("bob", false)]);
        assert_eq!(hub.online("r"), ["ana"], "this node's pages never expire");
    }

    #[tokio::test]
    async fn a_room_no_longer_heard_forgets_other_nodes_users() {
        let hub = Hub::new(16);
        let mut watcher = hub.subscribe("r");
        hub.deliver_from("n2", "r", RoomEvent::new(presence("bob", true)));
        drain(&mut watcher);
        hub.forget_remote_presence("r");
        assert_eq!(drain(&mut watcher), [presence("bob", false)]);
        assert!(hub.online("r").is_empty());
    }

    #[tokio::test]
    async fn a_busy_room_gets_member_and_presence_changes_in_rosters_in_order() {
        let hub = Hub::new(64);
        let mut listeners: Vec<Subscription> = (0..ROSTER_FROM).map(|_| hub.subscribe("big")).collect();
        hub.deliver_all("big", [joined("ana")]);
        hub.deliver_all("big", [joined("bob")]);
        let _ana = hub.present("big", "ana");
        let bob = hub.present("big", "bob");
        drop(bob);
        for listener in &mut listeners {
            assert!(drain(listener).is_empty(), "held for the roster");
        }
        tokio::time::sleep(ROSTER_EVERY + Duration::from_millis(50)).await;
        let roster = ServerFrame::Roster {
            joined: vec!["ana".into(), "bob".into()],
            online: vec!["ana".into()],
            offline: vec!["bob".into()],
        };
        for listener in &mut listeners {
            assert_eq!(drain(listener), std::slice::from_ref(&roster));
        }

        // Another event sends what is held first.
        hub.deliver_all("big", [joined("cy")]);
        hub.deliver_all("big", [RoomEvent::new(ServerFrame::MemberLeft { user_id: "cy".into() })]);
        let cy_came_and_went = [
            ServerFrame::Roster { joined: vec!["cy".into()], online: vec![], offline: vec![] },
            ServerFrame::MemberLeft { user_id: "cy".into() },
        ];
        assert_eq!(drain(&mut listeners[0]), cy_came_and_went);
        tokio::time::sleep(ROSTER_EVERY + Duration::from_millis(50)).await;
        assert!(drain(&mut listeners[0]).is_empty(), "nothing held twice");
    }

    fn message(seq: i64) -> Arc<RoomEvent> {
        RoomEvent::new(ServerFrame::Message(crate::protocol::ChatMessage {
            seq,
            user_id: "ana".into(),
            body: format!("m{seq}"),
            client_msg_id: format!("c{seq}"),
            at_ms: 0,
            ..Default::default()
        }))
    }

    fn seqs(frames: &[ServerFrame]) -> Vec<Option<i64>> {
        frames.iter().map(ServerFrame::seq).collect()
    }

    #[tokio::test]
    async fn a_crowded_rooms_messages_go_out_in_rounds_in_order() {
        let hub = Hub::new(64);
        let mut listeners: Vec<Subscription> = (0..ROUNDS_FROM).map(|_| hub.subscribe("crowd")).collect();
        hub.deliver_all("crowd", [message(1)]);
        for listener in &mut listeners {
            assert_eq!(seqs(&drain(listener)), [Some(1)], "the first message goes at once");
        }
        hub.deliver_all("crowd", [message(2)]);
        hub.deliver_all("crowd", [message(3)]);
        assert!(drain(&mut listeners[0]).is_empty(), "the next ones wait for the next round");
        tokio::time::sleep(ROUND_EVERY + Duration::from_millis(100)).await;
        for listener in &mut listeners {
            assert_eq!(seqs(&drain(listener)), [Some(2), Some(3)]);
        }

        // After a quiet spell (longer than a round since the last one,
        // which went out before the drain above) a message goes at once
        // again; the next one waits, and another kind of event sends it
        // first.
        tokio::time::sleep(ROUND_EVERY + Duration::from_millis(10)).await;
        hub.deliver_all("crowd", [message(4)]);
        hub.deliver_all("crowd", [message(5)]);
        assert_eq!(seqs(&drain(&mut listeners[0])), [Some(4)]);
        let typing = ServerFrame::Typing { user_id: "bob".into() };
        hub.deliver_all("crowd", [RoomEvent::new(typing.clone())]);
        assert_eq!(drain(&mut listeners[0]), [message(5).frame.clone(), typing]);
        tokio::time::sleep(ROUND_EVERY + Duration::from_millis(30)).await;
        assert!(drain(&mut listeners[0]).is_empty(), "nothing sent twice");
    }

    #[tokio::test]
    async fn chores_reach_every_room_after_what_it_holds() {
        let hub = Hub::new(64);
        let mut quiet = hub.subscribe("quiet");
        let mut crowd: Vec<Subscription> = (0..ROUNDS_FROM).map(|_| hub.subscribe("crowd")).collect();
        hub.deliver_all("crowd", [message(1)]);
        hub.deliver_all("crowd", [message(2)]);
        hub.tell_rooms(Chore::CheckIdle, |_| true);
        let mut events = Vec::new();
        while let Some(event) = crowd[0].try_recv() {
            events.push(event.expect("no lag"));
        }
        let order: Vec<_> = events.iter().map(|e| (e.frame.seq(), e.chore)).collect();
        assert_eq!(order, [(Some(1), None), (Some(2), None), (None, Some(Chore::CheckIdle))]);
        let chore = quiet.try_recv().expect("an event").expect("no lag");
        assert_eq!(chore.chore, Some(Chore::CheckIdle));
        assert!(quiet.try_recv().is_none());
    }

    #[tokio::test]
    async fn housekeeping_asks_for_idle_checks_then_for_the_stop() {
        let hub = Hub::new(64);
        // Rooms in every slice: each is checked once per period.
        let mut listeners: Vec<Subscription> = (0..40).map(|i| hub.subscribe(&format!("room-{i}"))).collect();
        let stopping = tokio_util::sync::CancellationToken::new();
        let house = hub.keep_house(Duration::from_millis(160), stopping.clone());
        tokio::time::sleep(Duration::from_millis(600)).await;
        stopping.cancel();
        house.await.expect("housekeeping ends with the stop");
        for listener in &mut listeners {
            let mut chores = Vec::new();
            while let Some(event) = listener.try_recv() {
                chores.push(event.expect("no lag").chore.expect("only chores"));
            }
            let (stop, checks) = chores.split_last().expect("chores");
            assert_eq!(*stop, Chore::Stop);
            assert!((1..=5).contains(&checks.len()), "{} checks in 600 ms at one per 160 ms", checks.len());
            assert!(checks.iter().all(|c| *c == Chore::CheckIdle));
        }
    }

    #[tokio::test]
    async fn a_crowded_rooms_waiting_messages_and_roster_go_out_as_they_came() {
        let hub = Hub::new(64);
        let mut listeners: Vec<Subscription> = (0..ROUNDS_FROM).map(|_| hub.subscribe("crowd")).collect();
        hub.deliver_all("crowd", [message(1)]);
        hub.deliver_all("crowd", [message(2)]);
        hub.deliver_all("crowd", [joined("cy")]);
        hub.deliver_all("crowd", [message(3)]);
        // A roster and messages are held; a member leaving sends them all.
        let left = ServerFrame::MemberLeft { user_id: "dan".into() };
        hub.deliver_all("crowd", [RoomEvent::new(left.clone())]);
        let roster = ServerFrame::Roster { joined: vec!["cy".into()], online: vec![], offline: vec![] };
        let expected =
            [message(1).frame.clone(), message(2).frame.clone(), roster, message(3).frame.clone(), left];
        assert_eq!(drain(&mut listeners[0]), expected);
    }

    #[tokio::test]
    async fn a_rooms_messages_go_at_once_below_the_crowd() {
        let hub = Hub::new(64);
        let mut listeners: Vec<Subscription> = (0..ROUNDS_FROM - 1).map(|_| hub.subscribe("room")).collect();
        for seq in 1..=3 {
            hub.deliver_all("room", [message(seq)]);
        }
        assert_eq!(seqs(&drain(&mut listeners[0])), [Some(1), Some(2), Some(3)]);
    }

    #[tokio::test]
    async fn a_small_room_hears_of_each_change_at_once() {
        let hub = Hub::new(64);
        let mut listener = hub.subscribe("small");
        hub.deliver_all("small", [joined("ana")]);
        assert_eq!(drain(&mut listener), [ServerFrame::MemberJoined { user_id: "ana".into() }]);
    }

    #[test]
    fn node_ids_differ() {
        assert_ne!(Hub::new(1).node_id(), Hub::new(1).node_id());
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_it_lagged() {
        let hub = Hub::new(2);
        let mut slow = hub.subscribe("a");
        for i in 0..5 {
            hub.deliver_all("a", [joined(&i.to_string())]);
        }
        assert_eq!(slow.recv().await.unwrap_err(), Lagged(5), "told how many it missed");
    }
}
