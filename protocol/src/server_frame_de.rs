//! Reading a [`ServerFrame`]: the frame's fields in one pass, then the
//! variant its `type` names.
//!
//! Why not `#[derive(Deserialize)]`: serde reads an internally tagged enum
//! by first buffering the whole object in a generic tree, then reading that
//! tree again as the variant, and that machinery is a sizeable part of the
//! browser's code for no gain here. Fields may come in any order, unknown
//! ones are skipped, and a missing one is an error, as with the derive
//! (`online`, `blocked` and the roster lists default to empty, `role` to a
//! player).
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::moderation::{Action, Mute, Removed, Report};
use crate::{ChatMessage, ErrorCode, Role, ServerFrame};

/// The frame types, as `type` spells them.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Welcome,
    Message,
    MemberJoined,
    MemberLeft,
    Presence,
    Roster,
    Typing,
    Ack,
    Pong,
    Done,
    Reported,
    ReportClosed,
    RoleChanged,
    Blocked,
    Unblocked,
    Error,
}

/// Every field any frame has.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    Type,
    Members,
    LastSeq,
    ResumeAfter,
    HeartbeatMs,
    Online,
    Offline,
    Joined,
    Seq,
    UserId,
    Body,
    ClientMsgId,
    AtMs,
    Code,
    Message,
    Role,
    Action,
    Removed,
    Muted,
    SlowModeSecs,
    RequestId,
    Report,
    Id,
    System,
    Blocked,
    Target,
    NowMs,
    #[serde(other)]
    Unknown,
}

/// `online`: a list of users in a welcome or a roster, a flag in a
/// presence change.
enum Online {
    Flag(bool),
    Users(Vec<String>),
}

impl<'de> Deserialize<'de> for Online {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlineVisitor;
        impl<'de> Visitor<'de> for OnlineVisitor {
            type Value = Online;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean or a list of user ids")
            }

            fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Online, E> {
                Ok(Online::Flag(flag))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Online, A::Error> {
                let mut users = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(user) = seq.next_element()? {
                    users.push(user);
                }
                Ok(Online::Users(users))
            }
        }
        deserializer.deserialize_any(OnlineVisitor)
    }
}

/// What one pass over the object found.
#[derive(Default)]
struct Fields {
    kind: Option<Kind>,
    members: Option<Vec<String>>,
    last_seq: Option<i64>,
    resume_after: Option<i64>,
    heartbeat_ms: Option<u32>,
    online: Option<Online>,
    offline: Option<Vec<String>>,
    joined: Option<Vec<String>>,
    seq: Option<i64>,
    user_id: Option<String>,
    body: Option<String>,
    client_msg_id: Option<String>,
    at_ms: Option<i64>,
    code: Option<ErrorCode>,
    message: Option<String>,
    role: Option<Role>,
    action: Option<Action>,
    removed: Option<Removed>,
    muted: Option<Mute>,
    slow_mode_secs: Option<u32>,
    request_id: Option<String>,
    report: Option<Report>,
    id: Option<i64>,
    system: Option<bool>,
    blocked: Option<Vec<String>>,
    target: Option<String>,
    now_ms: Option<i64>,
}

fn required<T, E: de::Error>(value: Option<T>, name: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(name))
}

fn users<E: de::Error>(online: Option<Online>) -> Result<Vec<String>, E> {
    match online {
        None => Ok(Vec::new()),
        Some(Online::Users(users)) => Ok(users),
        Some(Online::Flag(_)) => Err(E::custom("`online` must be a list here")),
    }
}

impl Fields {
    fn read<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => f.kind = Some(map.next_value()?),
                Key::Members => f.members = Some(map.next_value()?),
                Key::LastSeq => f.last_seq = Some(map.next_value()?),
                Key::ResumeAfter => f.resume_after = Some(map.next_value()?),
                Key::HeartbeatMs => f.heartbeat_ms = Some(map.next_value()?),
                Key::Online => f.online = Some(map.next_value()?),
                Key::Offline => f.offline = Some(map.next_value()?),
                Key::Joined => f.joined = Some(map.next_value()?),
                Key::Seq => f.seq = Some(map.next_value()?),
                Key::UserId => f.user_id = Some(map.next_value()?),
                Key::Body => f.body = Some(map.next_value()?),
                Key::ClientMsgId => f.client_msg_id = map.next_value()?,
                Key::AtMs => f.at_ms = Some(map.next_value()?),
                Key::Code => f.code = Some(map.next_value()?),
                Key::Message => f.message = Some(map.next_value()?),
                Key::Role => f.role = Some(map.next_value()?),
                Key::Action => f.action = map.next_value()?,
                Key::Removed => f.removed = map.next_value()?,
                Key::Muted => f.muted = map.next_value()?,
                Key::SlowModeSecs => f.slow_mode_secs = Some(map.next_value()?),
                Key::RequestId => f.request_id = map.next_value()?,
                Key::Report => f.report = Some(map.next_value()?),
                Key::Id => f.id = Some(map.next_value()?),
                Key::System => f.system = Some(map.next_value()?),
                Key::Blocked => f.blocked = Some(map.next_value()?),
                Key::Target => f.target = Some(map.next_value()?),
                Key::NowMs => f.now_ms = Some(map.next_value()?),
                Key::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }

    fn into_frame<E: de::Error>(self) -> Result<ServerFrame, E> {
        Ok(match required(self.kind, "type")? {
            Kind::Welcome => ServerFrame::Welcome {
                members: required(self.members, "members")?,
                last_seq: required(self.last_seq, "last_seq")?,
                resume_after: required(self.resume_after, "resume_after")?,
                heartbeat_ms: required(self.heartbeat_ms, "heartbeat_ms")?,
                online: users(self.online)?,
                role: self.role.unwrap_or_default(),
                muted: self.muted,
                slow_mode_secs: self.slow_mode_secs.unwrap_or_default(),
                blocked: self.blocked.unwrap_or_default(),
                now_ms: self.now_ms.unwrap_or_default(),
            },
            Kind::Message => ServerFrame::Message(ChatMessage {
                seq: required(self.seq, "seq")?,
                user_id: required(self.user_id, "user_id")?,
                body: required(self.body, "body")?,
                client_msg_id: required(self.client_msg_id, "client_msg_id")?,
                at_ms: required(self.at_ms, "at_ms")?,
                action: self.action,
                removed: self.removed,
                system: self.system.unwrap_or_default(),
            }),
            Kind::MemberJoined => ServerFrame::MemberJoined { user_id: required(self.user_id, "user_id")? },
            Kind::MemberLeft => ServerFrame::MemberLeft { user_id: required(self.user_id, "user_id")? },
            Kind::Presence => match self.online {
                Some(Online::Flag(online)) => {
                    ServerFrame::Presence { user_id: required(self.user_id, "user_id")?, online }
                }
                Some(Online::Users(_)) => return Err(E::custom("`online` must be a boolean here")),
                None => return Err(E::missing_field("online")),
            },
            Kind::Roster => ServerFrame::Roster {
                joined: self.joined.unwrap_or_default(),
                online: users(self.online)?,
                offline: self.offline.unwrap_or_default(),
            },
            Kind::Typing => ServerFrame::Typing { user_id: required(self.user_id, "user_id")? },
            Kind::Ack => ServerFrame::Ack {
                client_msg_id: required(self.client_msg_id, "client_msg_id")?,
                seq: required(self.seq, "seq")?,
            },
            Kind::Pong => ServerFrame::Pong,
            Kind::Done => ServerFrame::Done { request_id: required(self.request_id, "request_id")? },
            Kind::Reported => ServerFrame::Reported { report: required(self.report, "report")? },
            Kind::ReportClosed => ServerFrame::ReportClosed { id: required(self.id, "id")? },
            Kind::RoleChanged => ServerFrame::RoleChanged {
                user_id: required(self.user_id, "user_id")?,
                role: required(self.role, "role")?,
            },
            Kind::Blocked => ServerFrame::Blocked {
                user_id: required(self.user_id, "user_id")?,
                target: required(self.target, "target")?,
            },
            Kind::Unblocked => ServerFrame::Unblocked {
                user_id: required(self.user_id, "user_id")?,
                target: required(self.target, "target")?,
            },
            Kind::Error => ServerFrame::Error {
                code: required(self.code, "code")?,
                message: required(self.message, "message")?,
                client_msg_id: self.client_msg_id,
                request_id: self.request_id,
            },
        })
    }
}

impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FrameVisitor;
        impl<'de> Visitor<'de> for FrameVisitor {
            type Value = ServerFrame;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a server frame (an object with a `type`)")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServerFrame, A::Error> {
                Fields::read(map)?.into_frame()
            }
        }
        deserializer.deserialize_map(FrameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use crate::moderation::{Action, Mute, Removed, Report};
    use crate::{ChatMessage, ErrorCode, ServerFrame};

    fn every_frame() -> Vec<ServerFrame> {
        vec![
            ServerFrame::Welcome {
                members: vec!["ana".into(), "bob".into()],
                last_seq: 9,
                resume_after: 3,
                heartbeat_ms: 15_000,
                online: vec!["ana".into()],
                role: crate::Role::Moderator,
                muted: None,
                slow_mode_secs: 0,
                blocked: vec!["bob".into()],
                now_ms: 1_796_000_000_000,
            },
            ServerFrame::Welcome {
                members: vec![],
                last_seq: 0,
                resume_after: 0,
                heartbeat_ms: 1,
                online: vec![],
                role: crate::Role::Player,
                muted: Some(Mute { until_ms: Some(5), reason: "spam".into() }),
                slow_mode_secs: 30,
                blocked: vec![],
                now_ms: 0,
            },
            ServerFrame::Message(ChatMessage {
                seq: 7,
                user_id: "john".into(),
                body: "hi \"there\" ☺".into(),
                client_msg_id: "c1".into(),
                at_ms: 1_764_086_645_123,
                ..Default::default()
            }),
            ServerFrame::Message(ChatMessage {
                seq: 8,
                user_id: "mod".into(),
                client_msg_id: "action-8".into(),
                at_ms: 1,
                action: Some(Action::Mute { user_id: "bob".into(), until_ms: None, reason: "spam".into() }),
                ..Default::default()
            }),
            ServerFrame::Message(ChatMessage {
                seq: 2,
                user_id: "bob".into(),
                client_msg_id: "c2".into(),
                removed: Some(Removed { by: "mod".into(), at_ms: 9 }),
                ..Default::default()
            }),
            ServerFrame::Message(ChatMessage {
                seq: 3,
                user_id: "game".into(),
                body: "Round 2 starts".into(),
                client_msg_id: "round-2".into(),
                system: true,
                ..Default::default()
            }),
            ServerFrame::MemberJoined { user_id: "ana".into() },
            ServerFrame::MemberLeft { user_id: "ana".into() },
            ServerFrame::Presence { user_id: "ana".into(), online: false },
            ServerFrame::Roster {
                joined: vec!["a".into()],
                online: vec!["b".into()],
                offline: vec!["c".into()],
            },
            ServerFrame::Roster { joined: vec![], online: vec![], offline: vec![] },
            ServerFrame::Typing { user_id: "ana".into() },
            ServerFrame::Ack { client_msg_id: "c9".into(), seq: 12 },
            ServerFrame::Pong,
            ServerFrame::Done { request_id: "r1".into() },
            ServerFrame::Reported {
                report: Report {
                    id: 3,
                    seq: 2,
                    author: "bob".into(),
                    body: "rude".into(),
                    reporter: "ana".into(),
                    reason: String::new(),
                    at_ms: 4,
                },
            },
            ServerFrame::ReportClosed { id: 3 },
            ServerFrame::Blocked { user_id: "ana".into(), target: "bob".into() },
            ServerFrame::Unblocked { user_id: "ana".into(), target: "bob".into() },
            ServerFrame::RoleChanged { user_id: "ana".into(), role: crate::Role::Moderator },
            ServerFrame::Error {
                code: ErrorCode::Resync,
                message: "behind".into(),
                client_msg_id: None,
                request_id: None,
            },
            ServerFrame::Error {
                code: ErrorCode::InvalidInput,
                message: "too long".into(),
                client_msg_id: Some("c3".into()),
                request_id: None,
            },
            ServerFrame::Error {
                code: ErrorCode::Forbidden,
                message: "Only a moderator can do that.".into(),
                client_msg_id: None,
                request_id: Some("r2".into()),
            },
        ]
    }

    #[test]
    fn every_frame_reads_back_as_written() {
        for frame in every_frame() {
            let json = serde_json::to_string(&frame).unwrap();
            assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), frame, "{json}");
        }
    }

    #[test]
    fn fields_may_come_in_any_order_and_unknown_ones_are_skipped() {
        let json = r#"{"seq":4,"extra":{"nested":[1,2]},"type":"ack","client_msg_id":"x"}"#;
        assert_eq!(
            serde_json::from_str::<ServerFrame>(json).unwrap(),
            ServerFrame::Ack { client_msg_id: "x".into(), seq: 4 }
        );
    }

    #[test]
    fn a_frame_missing_a_field_or_of_an_unknown_type_is_an_error() {
        for bad in [
            r#"{"type":"ack","seq":4}"#,
            r#"{"type":"presence","user_id":"ana"}"#,
            r#"{"type":"presence","user_id":"ana","online":["x"]}"#,
            r#"{"type":"welcome","members":[],"last_seq":0,"resume_after":0,"heartbeat_ms":1,"online":true}"#,
            r#"{"type":"explode"}"#,
            r#"{"user_id":"ana"}"#,
            r#"["type","pong"]"#,
            r#"{"type":"ack","seq":"four","client_msg_id":"x"}"#,
        ] {
            assert!(serde_json::from_str::<ServerFrame>(bad).is_err(), "{bad}");
        }
    }
}
