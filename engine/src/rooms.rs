//! The rooms service: join, add, leave and send. Every change is committed
//! to the store first and published on the bus only after the commit, so
//! nobody ever sees an event that was not stored.
//!
//! Events of one room are published in commit order. Messages go through
//! the node's writer (see `writer`), which stores them in groups and
//! publishes each group in `seq` order; member changes take one of a fixed
//! set of per-room locks, held from the write to the publish. (With several
//! nodes the receiving side also orders messages by `seq`.)
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use moderation::WordFilter;
use sea_orm::{DatabaseConnection, DbErr};
use thiserror::Error;
use tokio::sync::{Mutex, MutexGuard};

use super::bus::{Bus, BusError};
use super::events::{EventKind, Events};
use super::hub::{RoomEvent, Subscription};
use super::identity::TokenError;
use super::limits::{SendRate, SlowMode};
use super::store::moderation::{sanctions_in_force, RemovedText};
use super::store::{self, NewMessage};
use super::writer::{Stored, Writer};
use crate::protocol::moderation::{plain_duration, Action, Mute, Refusal};
use crate::protocol::{ChatMessage, HistoryPage, Role, RoomSnapshot, ServerFrame};
use crate::validate::{
    check_new_id, normalize_body_within, normalize_id, normalize_user_id, valid_client_msg_id, InputError,
};

const LOCK_STRIPES: usize = 64;

/// Messages a page gets at once: the latest ones when a room opens, then
/// older ones as the reader scrolls back. Opening a room costs the same
/// whatever the size of its history.
pub const HISTORY_PAGE: u64 = 50;

/// Why a room operation failed. `Display` of the first variants is meant
/// for people; store and bus failures are logged and shown generically.
#[derive(Debug, Error)]
pub enum RoomError {
    #[error(transparent)]
    Invalid(#[from] InputError),
    #[error("The message id is missing or malformed.")]
    BadMessageId,
    #[error("You are not a member of this room.")]
    NotMember,
    #[error("This room does not exist yet.")]
    NoSuchRoom,
    #[error("You are sending messages too fast. Please wait a moment.")]
    TooFast,
    #[error("Your message was not sent: it contains words this chat does not allow.")]
    Blocked,
    #[error("{}", muted_sentence(.0))]
    Muted(Mute),
    #[error("Slow mode is on: you can send again in {}.", plain_duration(.0.as_millis() as i64))]
    SlowMode(std::time::Duration),
    #[error("{}", banned_sentence(.0))]
    Banned(Mute),
    #[error("{0} is banned from this room.")]
    UserBanned(String),
    #[error(transparent)]
    Refused(Refusal),
    #[error("That message does not exist.")]
    NoSuchMessage,
    #[error("That message was removed.")]
    AlreadyRemoved,
    #[error("That report is closed already.")]
    NoSuchReport,
    #[error("{0} is not in this room.")]
    NotInRoom(String),
    #[error("{0}")]
    Unchanged(String),
    #[error(transparent)]
    Identity(#[from] TokenError),
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// "You are muted in this room for another 9 minutes: spam."
fn muted_sentence(mute: &Mute) -> String {
    format!("You are muted in this room{}.", sanction_terms(mute))
}

fn banned_sentence(ban: &Mute) -> String {
    format!("You are banned from this room{}.", sanction_terms(ban))
}

/// How long a sanction still holds, and why, as the end of a sentence.
fn sanction_terms(sanction: &Mute) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let until = match sanction.until_ms {
        Some(until) => format!(" for another {}", plain_duration(until - now)),
        None => " until a moderator lifts it".to_owned(),
    };
    let reason =
        if sanction.reason.is_empty() { String::new() } else { format!(" (reason: {})", sanction.reason) };
    format!("{until}{reason}")
}

impl RoomError {
    /// The sentence a client may see: never SQL or internal details.
    pub fn public_message(&self) -> String {
        if self.is_client_error() {
            return self.to_string();
        }
        if self.is_storage_full() {
            return "The chat cannot store anything right now: its storage is full. Please try again later."
                .to_owned();
        }
        "Something went wrong on our side. Please try again.".to_owned()
    }

    /// Whether the database refused a write for want of disk space: the
    /// operator's to mend, a caller's to retry later.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, RoomError::Store(err) if store::is_storage_full(err))
    }

    /// Whether the client's input was at fault (HTTP 4xx) or the server (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, RoomError::Store(_) | RoomError::Bus(_))
    }
}

/// A connection's view of a room it was admitted to: read at admission,
/// then kept up to date by the room's moderation events (see
/// [`OpenRoom::apply`]).
pub struct OpenRoom {
    pub room_id: i64,
    pub channel_id: String,
    pub user_id: String,
    pub members: Vec<String>,
    /// The room's newest seq when the connection was admitted.
    pub last_seq: i64,
    /// What the user may do here: the larger of the identity's role (token
    /// or settings) and the one the game's server API stored.
    pub role: Role,
    /// The identity's role alone (a stored role may change while the page
    /// is open).
    pub identity_role: Role,
    /// The user's mute in this room, if any.
    pub muted: Option<Mute>,
    /// The room's slow mode, in seconds (0: off).
    pub slow_mode_secs: u32,
    /// Whom the user has blocked, read at admission for the welcome (and
    /// not kept after it, like `members`).
    pub blocked: Vec<String>,
}

impl OpenRoom {
    /// Takes in a moderation event of the room that is newer than the
    /// admission (older ones are in what was read then). Returns `false`
    /// when it takes the connection's user out of the room (kicked or
    /// banned): the connection ends.
    pub fn apply(&mut self, message: &ChatMessage) -> bool {
        let Some(action) = message.action.as_ref().filter(|_| message.seq > self.last_seq) else {
            return true;
        };
        let mine = action.target_user() == Some(self.user_id.as_str());
        match action {
            Action::Mute { until_ms, reason, .. } if mine => {
                self.muted = Some(Mute { until_ms: *until_ms, reason: reason.clone() });
            }
            Action::Unmute { .. } if mine => self.muted = None,
            Action::Kick { .. } | Action::Ban { .. } if mine => return false,
            Action::SlowMode { seconds } => self.slow_mode_secs = *seconds,
            _ => {}
        }
        true
    }
}

/// The message writer's default wait for more messages under load: a
/// millisecond or two more between send and delivery in a busy room, for
/// fewer commits and fewer, larger writes to each page (the trade is
/// measured in `bench/README.md`).
pub const GROUP_WAIT: std::time::Duration = std::time::Duration::from_millis(4);

/// What one user may send.
#[derive(Clone)]
pub struct SendLimits {
    pub max_body_chars: usize,
    pub rate: Arc<SendRate>,
    pub words: Arc<WordFilter>,
}

/// How long a node that was not listening to a room waits for the other
/// nodes to say who has it open (they answer at once: a round trip
/// through Redis).
const PRESENCE_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Clone)]
pub struct Rooms {
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    locks: Arc<[Mutex<()>]>,
    limits: SendLimits,
    writer: Writer,
    members: Arc<store::MemberLists>,
    slow_mode: Arc<SlowMode>,
    removed_text: RemovedText,
    events: Events,
}

/// A message accepted for storing: resolves to the stored message.
pub struct Accepted(tokio::sync::oneshot::Receiver<Stored>);

impl Accepted {
    pub async fn stored(self) -> Result<ChatMessage, RoomError> {
        let gone = || RoomError::Store(DbErr::Custom("the message writer has stopped".to_owned()));
        Ok(self.0.await.map_err(|_| gone())??)
    }
}

impl Rooms {
    /// `group_wait`: how long the message writer waits for more messages
    /// under load before storing a group (see `writer`).
    pub fn with_limits(
        db: DatabaseConnection,
        bus: Arc<dyn Bus>,
        limits: SendLimits,
        group_wait: std::time::Duration,
    ) -> Self {
        let locks: Vec<Mutex<()>> = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        let events = Events::default();
        let writer = Writer::start(db.clone(), bus.clone(), group_wait, events.clone());
        Rooms {
            db,
            bus,
            locks: locks.into(),
            limits,
            writer,
            members: Arc::default(),
            slow_mode: Arc::default(),
            removed_text: RemovedText::default(),
            events,
        }
    }

    /// Where this node tells what happens in its rooms (see `events`).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// What happens to a removed message's text in the database (it is
    /// never sent to a page again either way).
    pub fn with_removed_text(self, removed_text: RemovedText) -> Self {
        Rooms { removed_text, ..self }
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn removed_text(&self) -> RemovedText {
        self.removed_text
    }

    /// Whether the member may make one more request now (their send rate).
    pub(crate) fn send_rate_allows(&self, room: &OpenRoom) -> bool {
        self.limits.rate.allows(&room.channel_id, &room.user_id)
    }

    /// Whether `user_id` may change their blocks once more now: one budget
    /// for all their rooms (a change goes to every room they are in), kept
    /// apart from any room's by a name no room can have.
    pub(crate) fn block_rate_allows(&self, user_id: &str) -> bool {
        self.limits.rate.allows("", user_id)
    }

    pub(crate) fn max_body_chars(&self) -> usize {
        self.limits.max_body_chars
    }

    pub(crate) fn words(&self) -> &WordFilter {
        &self.limits.words
    }

    /// Hands a checked message to the writer.
    pub(crate) async fn submit(&self, channel_id: &str, message: NewMessage) -> Accepted {
        Accepted(self.writer.submit(channel_id.into(), message).await)
    }

    /// Keeps a room's membership changes, and the events telling of them,
    /// in one order.
    pub(crate) async fn lock(&self, channel_id: &str) -> MutexGuard<'_, ()> {
        let stripe = BuildHasherDefault::<DefaultHasher>::default().hash_one(channel_id) as usize;
        self.locks[stripe % self.locks.len()].lock().await
    }

    pub(crate) async fn publish(&self, channel_id: &str, frame: ServerFrame) {
        self.publish_frames(channel_id, vec![frame]).await;
    }

    async fn publish_frames(&self, channel_id: &str, frames: Vec<ServerFrame>) {
        // The change is committed: a failed publish is recovered by the
        // readers' catch-up from the store, not by failing the request.
        let events = frames.into_iter().map(RoomEvent::new).collect();
        if let Err(err) = self.bus.publish_all(channel_id, events).await {
            tracing::warn!(channel_id, %err, "publish failed after commit");
        }
    }

    /// Tells the room's pages and the webhooks that `user_id` joined (or
    /// left) the room, once the change is committed.
    pub(crate) async fn announce(&self, channel_id: &str, user_id: &str, joined: bool) {
        let frame = self.membership(channel_id, user_id.to_owned(), joined);
        self.publish(channel_id, frame).await;
    }

    /// Tells the room's pages and the webhooks that its members left: the
    /// room is gone. Every webhook event is queued before anything waits.
    pub(crate) async fn announce_all_left(&self, channel_id: &str, members: Vec<String>) {
        let frames = members.into_iter().map(|user_id| self.membership(channel_id, user_id, false)).collect();
        self.publish_frames(channel_id, frames).await;
    }

    /// Queues the webhook event of a membership change; the page's frame.
    fn membership(&self, channel_id: &str, user_id: String, joined: bool) -> ServerFrame {
        let kind = if joined { EventKind::MemberJoined } else { EventKind::MemberLeft };
        self.events.membership(kind, channel_id, &user_id);
        if joined {
            ServerFrame::MemberJoined { user_id }
        } else {
            ServerFrame::MemberLeft { user_id }
        }
    }

    /// Opens a room for `user_id`: creates the room on first visit, makes
    /// the user a member (announcing it if new) and returns what the page
    /// renders: the members and the latest page of history.
    pub async fn join(&self, channel_id: &str, user_id: &str) -> Result<RoomSnapshot, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_user_id(user_id)?;
        let (room, role) = {
            let _order = self.lock(&channel_id).await;
            let found = store::find_room(&self.db, &channel_id).await?;
            // A member coming back (a reload, another tab) costs a read, not a write.
            let role = match &found {
                Some(room) => store::member_role(&self.db, room.id, &user_id).await?,
                None => None,
            };
            if role.is_none() {
                // Checked before a room is made for them.
                self.check_new_user(&user_id).await?;
            }
            let room = match found {
                Some(room) => room,
                None => {
                    check_new_id(&channel_id, "room")?;
                    store::ensure_room(&self.db, &channel_id).await?
                }
            };
            if role.is_none() {
                // Banned members are not members: only a newcomer may be one.
                self.refuse_banned(room.id, &user_id, RoomError::Banned).await?;
                if store::add_member(&self.db, room.id, &user_id).await? {
                    self.announce(&channel_id, &user_id, true).await;
                }
            }
            (room, role.unwrap_or_default())
        };
        let muted = self.sanctions(room.id, &channel_id, &user_id).await?;
        let members = self.members.read(&self.db, room.id).await?;
        let blocked = store::blocks::blocked_by(&self.db, &user_id).await?;
        let HistoryPage { messages, has_older } = self.page_before(room.id, i64::MAX).await?;
        let last_seq = messages.last().map_or(0, |m| m.seq);
        Ok(RoomSnapshot {
            channel_id,
            user_id,
            members,
            messages,
            last_seq,
            has_older,
            // As the game's server API stored it (the caller adds the identity's).
            role,
            muted,
            slow_mode_secs: room.slow_mode_secs.max(0) as u32,
            blocked,
        })
    }

    /// A user id seen for the first time must pass [`check_new_id`]; one
    /// recorded before the rule (or since) is let through.
    pub(crate) async fn check_new_user(&self, user_id: &str) -> Result<(), RoomError> {
        if !store::user_known(&self.db, user_id).await? {
            check_new_id(user_id, "user name")?;
        }
        Ok(())
    }

    /// Refuses (with `refusal`) a user banned from the room.
    pub(crate) async fn refuse_banned(
        &self,
        room_id: i64,
        user_id: &str,
        refusal: impl FnOnce(Mute) -> RoomError,
    ) -> Result<(), RoomError> {
        match sanctions_in_force(&self.db, room_id, user_id, chrono::Utc::now()).await?.ban {
            Some(ban) => Err(refusal(ban)),
            None => Ok(()),
        }
    }

    /// The user's mute in the room, if one holds now; refuses a banned
    /// user (one read for both). A member found banned (a ban that
    /// committed while they were joining) is taken out of the room.
    async fn sanctions(
        &self,
        room_id: i64,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<Mute>, RoomError> {
        let in_force = sanctions_in_force(&self.db, room_id, user_id, chrono::Utc::now()).await?;
        if let Some(ban) = in_force.ban {
            if store::remove_member(&self.db, room_id, user_id).await? {
                self.announce(channel_id, user_id, false).await;
            }
            return Err(RoomError::Banned(ban));
        }
        Ok(in_force.mute)
    }

    /// The page of history just before `before_seq`, for a member of the
    /// room (older messages are loaded as the reader scrolls up).
    pub async fn messages_before(
        &self,
        channel_id: &str,
        user_id: &str,
        before_seq: i64,
    ) -> Result<HistoryPage, RoomError> {
        let room = self.member_room(channel_id, user_id).await?;
        self.page_before(room.room_id, before_seq).await
    }

    /// The room (without its members), if it exists and `user_id` is a
    /// member of it. Access is the member table's to say, not a kept list's.
    pub(crate) async fn member_room(&self, channel_id: &str, user_id: &str) -> Result<OpenRoom, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let room = store::find_room(&self.db, &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        let Some(role) = store::member_role(&self.db, room.id, &user_id).await? else {
            // A banned user hears so (read only on this path: a member's
            // request costs nothing more).
            self.refuse_banned(room.id, &user_id, RoomError::Banned).await?;
            return Err(RoomError::NotMember);
        };
        Ok(OpenRoom {
            room_id: room.id,
            channel_id,
            user_id,
            members: Vec::new(),
            last_seq: room.last_seq,
            // The game's server API may have made them a moderator; the
            // caller adds what the identity says.
            role,
            identity_role: Role::Player,
            muted: None,
            slow_mode_secs: room.slow_mode_secs.max(0) as u32,
            blocked: Vec::new(),
        })
    }

    /// Up to [`HISTORY_PAGE`] messages before `before_seq`. One more is
    /// read to learn whether anything older exists.
    async fn page_before(&self, room_id: i64, before_seq: i64) -> Result<HistoryPage, RoomError> {
        let mut messages =
            store::messages(&self.db, room_id, store::Side::Before, before_seq, HISTORY_PAGE + 1).await?;
        let has_older = messages.len() as u64 > HISTORY_PAGE;
        messages.drain(..usize::from(has_older)); // the one more, read only to learn that
        Ok(HistoryPage { messages, has_older })
    }

    /// `actor` (only a member may) adds `new_user` to the room; adding
    /// someone already there changes nothing.
    pub async fn add_user(&self, channel_id: &str, actor: &str, new_user: &str) -> Result<(), RoomError> {
        let new_user = normalize_user_id(new_user)?;
        self.check_new_user(&new_user).await?;
        let channel_id = normalize_id(channel_id, "room")?;
        let _order = self.lock(&channel_id).await;
        let room = self.member_room(&channel_id, actor).await?;
        self.refuse_banned(room.room_id, &new_user, |_| RoomError::UserBanned(new_user.clone())).await?;
        if store::add_member(&self.db, room.room_id, &new_user).await? {
            self.announce(&channel_id, &new_user, true).await;
        }
        Ok(())
    }

    /// `user_id` leaves the room. Leaving a room one is not in is a no-op.
    pub async fn leave(&self, channel_id: &str, user_id: &str) -> Result<(), RoomError> {
        self.take_out(channel_id, user_id).await.map(drop)
    }

    /// Takes `user_id` out of the room and tells its pages: `None` if there
    /// is no such room, else whether they were a member.
    pub(crate) async fn take_out(&self, channel_id: &str, user_id: &str) -> Result<Option<bool>, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let _order = self.lock(&channel_id).await;
        let Some(room) = store::find_room(&self.db, &channel_id).await? else {
            return Ok(None);
        };
        let removed = store::remove_member(&self.db, room.id, &user_id).await?;
        if removed {
            self.announce(&channel_id, &user_id, false).await;
        }
        Ok(Some(removed))
    }

    /// Admits a stream connection: the room must exist and the user be a
    /// member. Subscribes before reading anything, so no event falls
    /// between the snapshot (members, last seq) and the live stream.
    pub async fn open(&self, channel_id: &str, user_id: &str) -> Result<(OpenRoom, Subscription), RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        // A message is committed before it is published: the room's last
        // seq, read below, counts every message published before the
        // subscription, and the ones after it arrive live.
        let subscription = self.bus.subscribe(&channel_id).await?;
        let mut room = self.member_room(&channel_id, &user_id).await?;
        room.members = self.members.read(&self.db, room.room_id).await?;
        room.muted = self.sanctions(room.room_id, &room.channel_id, &room.user_id).await?;
        room.blocked = store::blocks::blocked_by(&self.db, &room.user_id).await?;
        Ok((room, subscription))
    }

    /// Checks a message and hands it to the writer without waiting for it
    /// to be stored, so a connection can keep several in flight (acks come
    /// back in the order sent). Errors here are the sender's: bad input or
    /// sending too fast. A retry of a stored message (same user and client
    /// id) gets the stored copy, published again: if the node that stored
    /// it died before publishing, the retry (through another node) is what
    /// brings it to the room; readers skip a seq they already have.
    pub async fn accept(
        &self,
        room: &OpenRoom,
        client_msg_id: &str,
        body: &str,
    ) -> Result<Accepted, RoomError> {
        if !valid_client_msg_id(client_msg_id) {
            return Err(RoomError::BadMessageId);
        }
        let body = normalize_body_within(body, self.limits.max_body_chars)?;
        if let Some(mute) = room.muted.as_ref().filter(|m| m.holds_at(chrono::Utc::now().timestamp_millis()))
        {
            return Err(RoomError::Muted(mute.clone()));
        }
        if !self.limits.rate.allows(&room.channel_id, &room.user_id) {
            return Err(RoomError::TooFast);
        }
        // Filtered before slow mode counts it: a player whose message the
        // filter refuses may send the corrected one at once.
        let body = self.limits.words.apply(body).ok_or(RoomError::Blocked)?;
        if room.slow_mode_secs > 0 && room.role.is_player() {
            let period = std::time::Duration::from_secs(room.slow_mode_secs.into());
            let counted = self.bus.slow_mode_send(room.room_id, &room.user_id, period).await;
            counted
                .unwrap_or_else(|| self.slow_mode.check(room.room_id, &room.user_id, period))
                .map_err(RoomError::SlowMode)?;
        }
        let message = NewMessage {
            room_id: room.room_id,
            user_id: room.user_id.clone(),
            client_msg_id: client_msg_id.to_owned(),
            body,
            system: false,
        };
        Ok(Accepted(self.writer.submit(room.channel_id.as_str().into(), message).await))
    }

    /// Who has the room open right now, on any node, sorted. A node that
    /// was not listening to the room listens for a moment first: the
    /// other nodes tell it at once who they have (see `bus::redis`).
    pub async fn online(&self, channel_id: &str) -> Result<Vec<String>, RoomError> {
        let listening = self.bus.subscribe(channel_id).await?;
        if listening.alone() && self.bus.has_other_nodes() {
            tokio::time::sleep(PRESENCE_ANSWER_WAIT).await;
        }
        Ok(listening.online())
    }

    /// Tells the room's pages (on every node) that the user is typing.
    /// Nothing is stored: a lost one is harmless, the page sends another.
    pub async fn typing(&self, room: &OpenRoom) {
        let frame = ServerFrame::Typing { user_id: room.user_id.clone() };
        if let Err(err) = self.bus.publish_all(&room.channel_id, vec![RoomEvent::new(frame)]).await {
            tracing::debug!(channel_id = %room.channel_id, %err, "a typing notice was not published");
        }
    }

    /// Sends a message outside a stream (a form posted without
    /// JavaScript): the room must exist and the user be a member. Returns
    /// it once stored (see [`Rooms::accept`]).
    pub async fn send_as(
        &self,
        channel_id: &str,
        user_id: &str,
        role: Role,
        client_msg_id: &str,
        body: &str,
    ) -> Result<ChatMessage, RoomError> {
        let mut room = self.member_room(channel_id, user_id).await?;
        room.role = room.role.max(role);
        room.muted = self.sanctions(room.room_id, &room.channel_id, &room.user_id).await?;
        self.accept(&room, client_msg_id, body).await?.stored().await
    }

    /// Messages of the room after `after_seq`, oldest first, at most `limit`.
    pub async fn messages_after(
        &self,
        room_id: i64,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<ChatMessage>, RoomError> {
        Ok(store::messages(&self.db, room_id, store::Side::After, after_seq, limit).await?)
    }
}

#[cfg(test)]
mod paging_tests {
    use super::*;
    use crate::bus::LocalBus;
    use crate::hub::Hub;

    async fn rooms_with_history(messages: usize) -> Rooms {
        use migration::MigratorTrait;
        let pool = store::PoolSettings { max_connections: 1, timeout: std::time::Duration::from_secs(5) };
        let db = store::connect("sqlite::memory:", pool).await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let limits = SendLimits {
            max_body_chars: crate::validate::MAX_BODY_CHARS,
            rate: Arc::new(SendRate::new(5, 20)),
            words: Arc::default(),
        };
        let rooms = Rooms::with_limits(db, Arc::new(LocalBus::new(Hub::new(64))), limits, GROUP_WAIT);
        rooms.join("big", "ana").await.unwrap();
        let room = store::find_room(&rooms.db, "big").await.unwrap().unwrap();
        for i in 1..=messages {
            store::insert_message(&rooms.db, room.id, "ana", &format!("c{i}"), "hi").await.unwrap();
        }
        rooms
    }

    fn seqs(messages: &[ChatMessage]) -> Vec<i64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[tokio::test]
    async fn a_room_opens_with_its_latest_page_and_pages_back_to_the_start() {
        let rooms = rooms_with_history(120).await;
        let snapshot = rooms.join("big", "ana").await.unwrap();
        assert_eq!(seqs(&snapshot.messages), (71..=120).collect::<Vec<_>>());
        assert!(snapshot.has_older);
        assert_eq!(snapshot.last_seq, 120);

        let page = rooms.messages_before("big", "ana", 71).await.unwrap();
        assert_eq!(seqs(&page.messages), (21..=70).collect::<Vec<_>>());
        assert!(page.has_older);
        let page = rooms.messages_before("big", "ana", 21).await.unwrap();
        assert_eq!(seqs(&page.messages), (1..=20).collect::<Vec<_>>());
        assert!(!page.has_older);
        assert!(rooms.messages_before("big", "ana", 1).await.unwrap().messages.is_empty());
    }

    #[tokio::test]
    async fn a_room_of_exactly_one_page_has_nothing_older() {
        let rooms = rooms_with_history(HISTORY_PAGE as usize).await;
        let snapshot = rooms.join("big", "ana").await.unwrap();
        assert_eq!(snapshot.messages.len() as u64, HISTORY_PAGE);
        assert!(!snapshot.has_older);
    }

    #[tokio::test]
    async fn only_members_may_page_through_a_rooms_history() {
        let rooms = rooms_with_history(3).await;
        assert!(matches!(rooms.messages_before("big", "mallory", 10).await, Err(RoomError::NotMember)));
        assert!(matches!(rooms.messages_before("nowhere", "ana", 10).await, Err(RoomError::NoSuchRoom)));
        assert!(matches!(rooms.messages_before("big", " ", 10).await, Err(RoomError::Invalid(_))));
    }
}
