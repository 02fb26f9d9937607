//! The rooms service: join, add, leave and send. Every change is committed
//! to the store first and published on the bus only after the commit, so
//! nobody ever sees an event that was not stored.
//!
//! Events of one room are published in commit order: each room maps to one
//! of a fixed set of locks, held from the write to the publish. (With
//! several nodes the receiving side also orders by `seq`.)
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};
use thiserror::Error;
use tokio::sync::{Mutex, MutexGuard};

use super::bus::{Bus, BusError};
use super::hub::{RoomEvent, Subscription};
use super::metrics as m;
use super::store;
use crate::protocol::{ChatMessage, RoomSnapshot, ServerFrame};
use crate::validate::{normalize_body, normalize_id, valid_client_msg_id, InputError};

const LOCK_STRIPES: usize = 64;

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
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl RoomError {
    /// The sentence a client may see: never SQL or internal details.
    pub fn public_message(&self) -> String {
        match self {
            RoomError::Store(_) | RoomError::Bus(_) => {
                "Something went wrong on our side. Please try again.".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// Whether the client's input was at fault (HTTP 4xx) or the server (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, RoomError::Store(_) | RoomError::Bus(_))
    }
}

/// A connection's view of a room it was admitted to.
pub struct OpenRoom {
    pub room_id: i64,
    pub channel_id: String,
    pub user_id: String,
    pub members: Vec<String>,
    pub last_seq: i64,
}

#[derive(Clone)]
pub struct Rooms {
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    locks: Arc<[Mutex<()>]>,
}

impl Rooms {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn Bus>) -> Self {
        let locks: Vec<Mutex<()>> = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        Rooms { db, bus, locks: locks.into() }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    async fn lock(&self, channel_id: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        channel_id.hash(&mut hasher);
        self.locks[(hasher.finish() as usize) % self.locks.len()].lock().await
    }

    async fn publish(&self, channel_id: &str, frame: ServerFrame) {
        // The change is committed: a failed publish is recovered by the
        // readers' catch-up from the store, not by failing the request.
        if let Err(err) = self.bus.publish(channel_id, RoomEvent::new(frame)).await {
            tracing::warn!(channel_id, %err, "publish failed after commit");
        }
    }

    /// Opens a room for `user_id`: creates the room on first visit, makes
    /// the user a member (announcing it if new) and returns what the page
    /// renders.
    pub async fn join(&self, channel_id: &str, user_id: &str) -> Result<RoomSnapshot, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let room = {
            let _order = self.lock(&channel_id).await;
            let room = store::ensure_room(&self.db, &channel_id).await?;
            store::ensure_user(&self.db, &user_id).await?;
            if store::add_member(&self.db, room.id, &user_id).await? {
                self.publish(&channel_id, ServerFrame::MemberJoined { user_id: user_id.clone() }).await;
            }
            room
        };
        let members = store::members(&self.db, room.id).await?;
        let messages = store::messages_after(&self.db, room.id, 0, u64::MAX).await?;
        let last_seq = messages.last().map_or(0, |m| m.seq);
        Ok(RoomSnapshot { channel_id, user_id, members, messages, last_seq })
    }

    /// `actor` adds `new_user` to the room. Only members may add.
    /// Adding someone already there changes nothing.
    pub async fn add_user(&self, channel_id: &str, actor: &str, new_user: &str) -> Result<(), RoomError> {
        let new_user = normalize_id(new_user, "user name")?;
        let channel_id = normalize_id(channel_id, "room")?;
        let actor = normalize_id(actor, "user name")?;
        let _order = self.lock(&channel_id).await;
        let room = store::find_room(&self.db, &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        if !store::is_member(&self.db, room.id, &actor).await? {
            return Err(RoomError::NotMember);
        }
        store::ensure_user(&self.db, &new_user).await?;
        if store::add_member(&self.db, room.id, &new_user).await? {
            self.publish(&channel_id, ServerFrame::MemberJoined { user_id: new_user }).await;
        }
        Ok(())
    }

    /// `user_id` leaves the room. Leaving a room one is not in is a no-op.
    pub async fn leave(&self, channel_id: &str, user_id: &str) -> Result<(), RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let _order = self.lock(&channel_id).await;
        let Some(room) = store::find_room(&self.db, &channel_id).await? else {
            return Ok(());
        };
        if store::remove_member(&self.db, room.id, &user_id).await? {
            self.publish(&channel_id, ServerFrame::MemberLeft { user_id }).await;
        }
        Ok(())
    }

    /// Admits a stream connection: the room must exist and the user be a
    /// member. Subscribes before reading anything, so no event falls
    /// between the snapshot (members, last seq) and the live stream.
    pub async fn open(&self, channel_id: &str, user_id: &str) -> Result<(OpenRoom, Subscription), RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let subscription = self.bus.subscribe(&channel_id).await?;
        let room = store::find_room(&self.db, &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        let members = store::members(&self.db, room.id).await?;
        if !members.contains(&user_id) {
            return Err(RoomError::NotMember);
        }
        let open = OpenRoom { room_id: room.id, channel_id, user_id, members, last_seq: room.last_seq };
        Ok((open, subscription))
    }

    /// Stores a message and then publishes it. A retry of a stored message
    /// (same user and client id) returns the stored copy and publishes
    /// nothing.
    pub async fn send(
        &self,
        room: &OpenRoom,
        client_msg_id: &str,
        body: &str,
    ) -> Result<ChatMessage, RoomError> {
        if !valid_client_msg_id(client_msg_id) {
            return Err(RoomError::BadMessageId);
        }
        let body = normalize_body(body)?;
        let _order = self.lock(&room.channel_id).await;
        let started = std::time::Instant::now();
        let inserted =
            store::insert_message(&self.db, room.room_id, &room.user_id, client_msg_id, &body).await?;
        metrics::histogram!(m::DB_SECONDS, "op" => "insert_message").record(started.elapsed());
        if inserted.is_new {
            metrics::counter!(m::MESSAGES_STORED).increment(1);
            self.publish(&room.channel_id, ServerFrame::Message(inserted.message.clone())).await;
        }
        Ok(inserted.message)
    }

    /// Sends a message outside a stream (a form posted without
    /// JavaScript): the room must exist and the user be a member.
    pub async fn send_as(
        &self,
        channel_id: &str,
        user_id: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Result<ChatMessage, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let room = store::find_room(&self.db, &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        if !store::is_member(&self.db, room.id, &user_id).await? {
            return Err(RoomError::NotMember);
        }
        let open =
            OpenRoom { room_id: room.id, channel_id, user_id, members: Vec::new(), last_seq: room.last_seq };
        self.send(&open, client_msg_id, body).await
    }

    /// Messages of the room after `after_seq`, oldest first, at most `limit`.
    pub async fn messages_after(
        &self,
        room_id: i64,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<ChatMessage>, RoomError> {
        Ok(store::messages_after(&self.db, room_id, after_seq, limit).await?)
    }
}
