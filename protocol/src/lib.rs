//! Wire types shared by the browser and the server: what a page receives
//! when it renders a room or pages back through its history, and the
//! frames of the room stream (`/api/stream`, a websocket carrying JSON text
//! frames).
//!
//! A connection starts with the page's [`ClientFrame::Hello`]; the server
//! answers [`ServerFrame::Welcome`], replays every message after the seq the
//! page already has, then streams the room's events live. Messages go up
//! the same socket as [`ClientFrame::Send`] and are confirmed by
//! [`ServerFrame::Ack`] once stored. Both sides watch the connection: the
//! page sends [`ClientFrame::Ping`] every `heartbeat_ms` (from the welcome)
//! and the server answers [`ServerFrame::Pong`]; the page drops a
//! connection whose ping stays unanswered too long. A page silent well
//! past its beat gets a websocket ping from the server, which browsers
//! answer on their own (a hidden tab's timers may be held back for a
//! minute); the server drops a connection that answers nothing too long.
//!
//! Besides stored events, a room carries two ephemeral ones that are never
//! stored nor replayed: [`ServerFrame::Presence`] (whether a member has the
//! room open somewhere) and [`ServerFrame::Typing`] (relayed from a page's
//! [`ClientFrame::Typing`]). A page learns who is online from the welcome
//! and follows the changes.
//!
//! A busy room (many pages open on one node) sends member and presence
//! changes a few times a second as one [`ServerFrame::Roster`] instead of
//! one frame per change: a crowd joining at once costs each page a handful
//! of frames, not one per newcomer.
use serde::{Deserialize, Serialize};

pub mod backoff;
pub mod moderation;
mod server_frame_de;
pub mod validate;

/// One stored message of a room. `seq` numbers a room's messages 1, 2, 3, …
/// without gaps, in the order they were committed. A moderation event
/// takes its place in that order too: then `action` says what was done
/// and `user_id` who did it (see [`moderation`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    pub seq: i64,
    pub user_id: String,
    pub body: String,
    /// The id the sending page gave the message (idempotent retries).
    pub client_msg_id: String,
    /// Time the server stored the message, Unix milliseconds, UTC.
    pub at_ms: i64,
    /// Set for a moderation event (not a message anyone wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<moderation::Action>,
    /// Set once the message is removed: its `body` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<moderation::Removed>,
    /// A message the game posted as itself (through its server API), shown
    /// apart from what players write.
    #[serde(default, skip_serializing_if = "is_false")]
    pub system: bool,
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// What a member may do in a room: a player chats; a moderator may also
/// act on others' messages and on members. The role comes from the game
/// (a claim in the signed token) or, in open mode, from the server's
/// settings; never from the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Player,
    Moderator,
}

impl Role {
    pub fn is_player(&self) -> bool {
        *self == Role::Player
    }
}

/// Everything a page needs to render a room: who is in it and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub channel_id: String,
    pub user_id: String,
    /// Members in the order they joined.
    pub members: Vec<String>,
    /// History, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The room's newest seq (0 for a room without messages).
    pub last_seq: i64,
    /// Whether the room has messages older than the first of `messages`
    /// (the page loads them on demand, a page at a time).
    #[serde(default)]
    pub has_older: bool,
    /// The role of the page's user in this room.
    #[serde(default)]
    pub role: Role,
    /// Whether the page's user is muted here, why and until when.
    #[serde(default)]
    pub muted: Option<moderation::Mute>,
    /// The room's slow mode: seconds between a player's messages (0: off).
    #[serde(default)]
    pub slow_mode_secs: u32,
    /// The players the page's user has blocked, in every room: their
    /// messages are not shown.
    #[serde(default)]
    pub blocked: Vec<String>,
}

/// A page of older history: the messages just before a seq, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub messages: Vec<ChatMessage>,
    /// Whether there are messages older still (before the first of these).
    pub has_older: bool,
}

/// Browser → server frames of the room stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame of every connection: who is speaking in which room, and
    /// the newest seq the page has already shown (0 for none). The server
    /// replays everything after it.
    ///
    /// When the server requires signed identities, `token` is the page's
    /// identity token; the ids it names win over the ones given here.
    Hello {
        channel_id: String,
        user_id: String,
        after_seq: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// A message to store and deliver. `client_msg_id` is chosen by the page
    /// and makes a retried send harmless.
    Send { client_msg_id: String, body: String },
    /// Heartbeat: the server answers `Pong`.
    Ping,
    /// The user is typing. Pages send it at most every few seconds while
    /// the draft changes; the server relays it to the room's other pages
    /// (and ignores a page that sends it more often than once a second).
    Typing,
    /// A moderation request (see [`moderation::Request`]), answered by
    /// `Done` or by an `Error` naming `request_id`.
    Act { request_id: String, request: moderation::Request },
}

/// Server → browser frames of the room stream. Read by hand (see
/// `server_frame_de`), written by serde.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Answer to `Hello`: the current members, the room's newest seq, and
    /// where the replay that follows starts. `resume_after` equals the
    /// page's `after_seq` unless the page was too far behind: then only the
    /// latest messages are replayed, and the page replaces what it shows.
    Welcome {
        members: Vec<String>,
        last_seq: i64,
        resume_after: i64,
        /// How often the page should send `Ping`.
        heartbeat_ms: u32,
        /// Members who have the room open right now (on any node), this
        /// page's user included. Changes follow as `Presence`.
        #[serde(default)]
        online: Vec<String>,
        /// The role of this page's user in the room.
        #[serde(default)]
        role: Role,
        /// This page's user is muted here: why, and until when.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        muted: Option<moderation::Mute>,
        /// The room's slow mode, in seconds (0: off).
        #[serde(default, skip_serializing_if = "is_zero")]
        slow_mode_secs: u32,
        /// The players this page's user has blocked (their messages and
        /// typing are not shown). Changes follow as `Blocked` and
        /// `Unblocked`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        blocked: Vec<String>,
        /// The server's clock when it welcomed the page (Unix ms; 0:
        /// unknown): mutes and slow mode are counted by it, whatever the
        /// device's clock says.
        #[serde(default)]
        now_ms: i64,
    },
    /// A stored message (replayed or live).
    Message(ChatMessage),
    /// Someone joined the room or was added to it.
    MemberJoined { user_id: String },
    /// Someone left the room.
    MemberLeft { user_id: String },
    /// A member came online (opened the room on a first page) or went
    /// offline (closed the last one). Several pages of one user count once.
    Presence { user_id: String, online: bool },
    /// Several member and presence changes at once (what a busy room sends
    /// instead of `MemberJoined` and `Presence` frames): who joined, in
    /// order, then who is now online and who offline (each user at most
    /// once, in their latest state).
    Roster {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joined: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        online: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        offline: Vec<String>,
    },
    /// A member is typing; a page shows it for a few seconds, or until a
    /// message from them arrives.
    Typing { user_id: String },
    /// A message sent on this connection is stored under `seq`.
    Ack { client_msg_id: String, seq: i64 },
    /// Answer to `Ping`.
    Pong,
    /// A moderation request of this connection was done.
    Done { request_id: String },
    /// A member reported a message (sent to the room's moderators only).
    Reported { report: moderation::Report },
    /// A report was resolved or dismissed (sent to moderators only).
    ReportClosed { id: i64 },
    /// The game's server changed this page's user's role in the room
    /// (sent to that user's pages only).
    RoleChanged { user_id: String, role: Role },
    /// `user_id` blocked `target`, in every room (sent to `user_id`'s
    /// pages only, on every node).
    Blocked { user_id: String, target: String },
    /// `user_id` lifted their block of `target`.
    Unblocked { user_id: String, target: String },
    /// Something the page asked for was refused; `message` is for people.
    /// `client_msg_id` names the refused message, if it was one;
    /// `request_id` the refused moderation request, if it was one.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
}

/// Machine-readable reason of a [`ServerFrame::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be understood.
    BadFrame,
    /// A field was empty, too long or malformed; the frame was ignored.
    InvalidInput,
    /// The user is not (or no longer) a member of the room.
    NotMember,
    /// The connection fell too far behind; reload the room to catch up.
    Resync,
    /// The identity token is missing, invalid, expired or for another room.
    Unauthorized,
    /// A problem on the server; the page may retry.
    Internal,
    /// The user's role does not allow it (a player asking for a
    /// moderator's action, or acting on someone else's message).
    Forbidden,
    /// The user is muted in this room.
    Muted,
    /// Slow mode: the user must wait before sending again.
    SlowMode,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ServerFrame {
    /// The seq a frame carries, if it is a message.
    pub fn seq(&self) -> Option<i64> {
        match self {
            ServerFrame::Message(m) => Some(m.seq),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_with_a_snake_case_type() {
        let hello = ClientFrame::Hello {
            channel_id: "game_1".into(),
            user_id: "john".into(),
            after_seq: 3,
            token: None,
        };
        let json = serde_json::to_string(&hello).unwrap();
        assert_eq!(json, r#"{"type":"hello","channel_id":"game_1","user_id":"john","after_seq":3}"#);
        let joined = ServerFrame::MemberJoined { user_id: "ana".into() };
        assert_eq!(serde_json::to_string(&joined).unwrap(), r#"{"type":"member_joined","user_id":"ana"}"#);
        let online = ServerFrame::Presence { user_id: "ana".into(), online: true };
        assert_eq!(
            serde_json::to_string(&online).unwrap(),
            r#"{"type":"presence","user_id":"ana","online":true}"#
        );
        assert_eq!(serde_json::to_string(&ClientFrame::Typing).unwrap(), r#"{"type":"typing"}"#);
    }

    #[test]
    fn a_roster_names_only_the_lists_it_has() {
        let roster =
            ServerFrame::Roster { joined: vec!["ana".into()], online: vec![], offline: vec!["bob".into()] };
        let json = serde_json::to_string(&roster).unwrap();
        assert_eq!(json, r#"{"type":"roster","joined":["ana"],"offline":["bob"]}"#);
        assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), roster);
    }

    #[test]
    fn a_welcome_without_the_online_list_reads_as_nobody_online() {
        let old =
            r#"{"type":"welcome","members":["ana"],"last_seq":0,"resume_after":0,"heartbeat_ms":15000}"#;
        match serde_json::from_str::<ServerFrame>(old).unwrap() {
            ServerFrame::Welcome { online, .. } => assert!(online.is_empty()),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    #[test]
    fn a_message_frame_flattens_the_message_fields() {
        let frame = ServerFrame::Message(ChatMessage {
            seq: 7,
            user_id: "john".into(),
            body: "hi".into(),
            client_msg_id: "c1".into(),
            at_ms: 1,
            ..Default::default()
        });
        let json = serde_json::to_string(&frame).unwrap();
        assert!(json.starts_with(r#"{"type":"message","seq":7,"#), "{json}");
        assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), frame);
        assert_eq!(frame.seq(), Some(7));
    }

    #[test]
    fn unknown_frames_are_rejected() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nuke"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>("not json").is_err());
    }
}
