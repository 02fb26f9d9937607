//! What the game's own server does through the server API (`/api/v1` in
//! the `server` crate), with no member of the room acting: create, list,
//! look at and delete rooms, put members in and take them out, set their role,
//! post as the game or as a member, read history, and moderate (a room,
//! or a user's messages in all of them).
//!
//! The game acts as [`GAME`]: the user id its moderation is recorded under
//! and its own messages are posted by (flagged `system`). Pages show
//! neither by that name (an action never names who did it; a system
//! message is shown as the game's), so a player who picks the same name
//! gains nothing: what anyone may do comes from their role, and only the
//! server API acts as the game.
use crate::moderate::Done;
use crate::protocol::moderation::{Report, Request};
use crate::protocol::{ChatMessage, Role, ServerFrame};
use crate::rooms::{OpenRoom, RoomError, Rooms};
use crate::store::moderation::SanctionRecord;
use crate::store::{self, NewMessage, PutMember};
use crate::validate::{
    check_new_id, normalize_body_within, normalize_id, normalize_user_id, valid_client_msg_id, GAME_USER_ID,
};

/// The user id the game acts and posts as.
pub const GAME: &str = GAME_USER_ID;

/// A room as the game's server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    pub channel_id: String,
    /// Members in the order they joined, each with the role the API gave
    /// them (a token's claim may make a player a moderator on their page).
    pub members: Vec<(String, Role)>,
    /// The room's newest seq (0: none).
    pub last_seq: i64,
    pub slow_mode_secs: u32,
}

impl Rooms {
    /// Creates the room if it does not exist; whether it was created.
    pub async fn create_room(&self, channel_id: &str) -> Result<bool, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        if store::find_room(self.db(), &channel_id).await?.is_some() {
            return Ok(false);
        }
        check_new_id(&channel_id, "room")?;
        store::ensure_room(self.db(), &channel_id).await?;
        Ok(true)
    }

    /// Up to `limit` rooms after `after` in the order of their ids (a page
    /// of the listing: the next one starts after its last id).
    pub async fn list_rooms(&self, after: &str, limit: u64) -> Result<Vec<store::RoomSummary>, RoomError> {
        Ok(store::list_rooms(self.db(), after, limit).await?)
    }

    /// Up to `limit` of the rooms `user_id` is in, after `after` in the
    /// order of their ids, each with the role the API gave them.
    pub async fn user_rooms(
        &self,
        user_id: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<(String, Role)>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        Ok(store::user_rooms(self.db(), &user_id, after, limit).await?)
    }

    /// Takes `user_id` out of every room they are in, each as
    /// [`Rooms::remove_member`] does (their pages there close); returns the
    /// rooms they left.
    pub async fn remove_from_all(&self, user_id: &str) -> Result<Vec<String>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        let (mut left, mut after) = (Vec::new(), String::new());
        loop {
            let rooms = store::user_rooms(self.db(), &user_id, &after, 100).await?;
            let Some((last, _)) = rooms.last() else { return Ok(left) };
            after = last.clone();
            for (channel_id, _) in rooms {
                // Not if they left (or the room went) meanwhile.
                if self.take_out(&channel_id, &user_id).await? == Some(true) {
                    left.push(channel_id);
                }
            }
        }
    }

    /// Removes every message `user_id` has written, in every room (an
    /// account closed, a player's content taken down): in each room one
    /// purge, as [`Rooms::moderate_as_game`] records it (its pages mark the
    /// lines removed, one `messages.purged` event); returns those rooms.
    /// Unless removed text is kept, the reasons they gave with reports go
    /// too (their words as well).
    pub async fn purge_everywhere(&self, user_id: &str) -> Result<Vec<String>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        if self.removed_text() == store::moderation::RemovedText::Erase {
            store::moderation::erase_reasons_by(self.db(), &user_id).await?;
        }
        let (mut purged, mut after) = (Vec::new(), String::new());
        loop {
            let rooms = store::rooms_with_messages_of(self.db(), &user_id, &after, 100).await?;
            let Some((last, _)) = rooms.last() else { return Ok(purged) };
            after = last.clone();
            for (channel_id, _) in rooms {
                match self.moderate_as_game(&channel_id, Request::Purge { user_id: user_id.clone() }).await {
                    Ok(_) => purged.push(channel_id),
                    // Removed, or the room deleted, meanwhile.
                    Err(RoomError::Unchanged(_) | RoomError::NoSuchRoom) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// What `user_id` wrote that still stands (not removed), room by room
    /// in the order of the rooms' names, each room's oldest first, starting
    /// after `after_seq` of `after_room` (`""`: from the start): a player
    /// asking for their data. At most `limit`.
    pub async fn messages_of(
        &self,
        user_id: &str,
        after_room: &str,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<(String, ChatMessage)>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        let after_room = match after_room {
            "" => String::new(),
            room => normalize_id(room, "room")?,
        };
        // The cursor's room is looked up once; the rooms after it come
        // with their ids.
        let mut room_id = match after_room.as_str() {
            "" => None,
            name => store::find_room(self.db(), name).await?.map(|room| room.id),
        };
        let (mut channel_id, mut after_seq) = (after_room, after_seq);
        let mut found = Vec::new();
        loop {
            if let Some(room_id) = room_id {
                let wanted = limit - found.len() as u64;
                let messages = store::messages_by(self.db(), room_id, &user_id, after_seq, wanted).await?;
                found.extend(messages.into_iter().map(|m| (channel_id.clone(), m)));
                if found.len() as u64 >= limit {
                    return Ok(found);
                }
            }
            match store::rooms_with_messages_of(self.db(), &user_id, &channel_id, 1).await?.pop() {
                Some((next, id)) => (channel_id, room_id, after_seq) = (next, Some(id), 0),
                None => return Ok(found),
            }
        }
    }

    /// The room, its members with their roles, and its newest seq.
    pub async fn room_info(&self, channel_id: &str) -> Result<RoomInfo, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        let members = store::member_roles(self.db(), room.id).await?;
        Ok(RoomInfo {
            channel_id,
            members,
            last_seq: room.last_seq,
            slow_mode_secs: room.slow_mode_secs.max(0) as u32,
        })
    }

    /// Deletes the room with everything in it; its open pages are told
    /// their users left (and close).
    pub async fn delete_room(&self, channel_id: &str) -> Result<(), RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        let members = store::member_roles(self.db(), room.id).await?;
        store::delete_room(self.db(), room.id).await?;
        self.announce_all_left(&channel_id, members.into_iter().map(|(user_id, _)| user_id).collect()).await;
        Ok(())
    }

    /// Makes `user_id` a member with `role` (an existing member gets the
    /// role, their open pages at once); refused for a user banned from the
    /// room. Whether they are new to the room.
    pub async fn add_member(&self, channel_id: &str, user_id: &str, role: Role) -> Result<bool, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_user_id(user_id)?;
        let _order = self.lock(&channel_id).await;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        self.check_new_user(&user_id).await?;
        let banned = |_| RoomError::UserBanned(user_id.clone());
        self.refuse_banned(room.id, &user_id, banned).await?;
        let put = store::put_member(self.db(), room.id, &user_id, role).await?;
        match put {
            PutMember::Added => self.announce(&channel_id, &user_id, true).await,
            PutMember::RoleChanged => {
                self.publish(&channel_id, ServerFrame::RoleChanged { user_id, role }).await
            }
            PutMember::Unchanged => {}
        }
        Ok(put == PutMember::Added)
    }

    /// Takes a member out of the room (their pages close); refused for
    /// someone who is not a member.
    pub async fn remove_member(&self, channel_id: &str, user_id: &str) -> Result<(), RoomError> {
        match self.take_out(channel_id, user_id).await? {
            None => Err(RoomError::NoSuchRoom),
            Some(false) => Err(RoomError::NotInRoom(normalize_id(user_id, "user name")?)),
            Some(true) => Ok(()),
        }
    }

    /// The room's open reports with an id after `after_id`, oldest first
    /// (at most `limit`).
    pub async fn reports(
        &self,
        channel_id: &str,
        after_id: i64,
        limit: u64,
    ) -> Result<Vec<Report>, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        Ok(store::moderation::open_reports(self.db(), room.id, after_id, limit).await?)
    }

    /// The room's mutes and bans in force, by user.
    pub async fn room_sanctions(&self, channel_id: &str) -> Result<Vec<SanctionRecord>, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        Ok(store::moderation::room_sanctions(self.db(), room.id, chrono::Utc::now()).await?)
    }

    /// `user_id`'s mutes and bans in force, in every room (by room).
    pub async fn user_sanctions(&self, user_id: &str) -> Result<Vec<(String, SanctionRecord)>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        Ok(store::moderation::user_sanctions(self.db(), &user_id, chrono::Utc::now()).await?)
    }

    /// Sets a member's role; their open pages act with it at once.
    pub async fn set_role(&self, channel_id: &str, user_id: &str, role: Role) -> Result<(), RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let user_id = normalize_id(user_id, "user name")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        if !store::set_member_role(self.db(), room.id, &user_id, role).await? {
            return Err(RoomError::NotInRoom(user_id));
        }
        // Open pages act with the new role at once (a token's claim still
        // counts: either makes a moderator).
        self.publish(&channel_id, ServerFrame::RoleChanged { user_id, role }).await;
        Ok(())
    }

    /// Posts a message: as the game itself (`as_user` none: a system
    /// message), or as a member of the room. The word filter applies; a
    /// member's mute, slow mode and send rate do not (the game decides).
    /// Idempotent per (poster, `client_msg_id`): a retry gets the stored
    /// message.
    pub async fn post(
        &self,
        channel_id: &str,
        as_user: Option<&str>,
        client_msg_id: &str,
        body: &str,
    ) -> Result<ChatMessage, RoomError> {
        if !valid_client_msg_id(client_msg_id) {
            return Err(RoomError::BadMessageId);
        }
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        let user_id = match as_user {
            Some(user) => {
                let user = normalize_id(user, "user name")?;
                if !store::is_member(self.db(), room.id, &user).await? {
                    return Err(RoomError::NotInRoom(user));
                }
                user
            }
            None => {
                store::ensure_user(self.db(), GAME).await?;
                GAME.to_owned()
            }
        };
        let body = normalize_body_within(body, self.max_body_chars())?;
        let body = self.words().apply(body).ok_or(RoomError::Blocked)?;
        let message = NewMessage {
            room_id: room.id,
            user_id,
            client_msg_id: client_msg_id.to_owned(),
            body,
            system: as_user.is_none(),
        };
        self.submit(&channel_id, message).await.stored().await
    }

    /// Up to `limit` messages of the room after `after_seq`, oldest first
    /// (removed ones without their text; moderation events included).
    pub async fn history(
        &self,
        channel_id: &str,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<ChatMessage>, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        self.messages_after(room.id, after_seq, limit).await
    }

    /// A moderation request made by the game (a moderator of every room).
    pub async fn moderate_as_game(&self, channel_id: &str, request: Request) -> Result<Done, RoomError> {
        let channel_id = normalize_id(channel_id, "room")?;
        let room = store::find_room(self.db(), &channel_id).await?.ok_or(RoomError::NoSuchRoom)?;
        store::ensure_user(self.db(), GAME).await?;
        let game = OpenRoom {
            room_id: room.id,
            channel_id,
            user_id: GAME.to_owned(),
            members: Vec::new(),
            last_seq: room.last_seq,
            role: Role::Moderator,
            identity_role: Role::Moderator,
            muted: None,
            slow_mode_secs: 0,
            blocked: Vec::new(),
        };
        self.moderate(&game, request).await
    }
}
