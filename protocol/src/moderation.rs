//! Moderation on the wire, and its rules: what a member may ask of a room
//! ([`Request`]), what a room records when it is done ([`Action`], stored in
//! the room's seq order like a message, so that every page and every replay
//! carries it), and who may ask what ([`authorize`]). Shared by the page,
//! which shows only what its user may do, and the server, which decides.
//!
//! A player may remove their own messages and report others'; a moderator
//! may also remove any message, mute, kick and ban members, lift mutes and
//! bans, set the room's slow mode and close reports. Anyone may block
//! another player (no more of their messages on the blocker's pages, in
//! every room). Nobody acts on themselves, nor on the game.
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::validate::{normalize_id, InputError};
use crate::Role;

/// Longest reason given with a report or a sanction, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// Longest mute or ban with a duration: a year (none means until lifted).
pub const MAX_MINUTES: u32 = 365 * 24 * 60;
/// Slowest slow mode: one message an hour.
pub const MAX_SLOW_MODE_SECS: u32 = 3600;
/// Most players one player may have blocked at once.
pub const MAX_BLOCKED: u64 = 1000;

/// What a member asks of a room (a server function's argument, or a stream
/// frame's). Externally tagged: `{"mute": {"user_id": "ana", …}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Remove a message: its author or a moderator.
    Remove {
        seq: i64,
    },
    /// Report a message to the room's moderators (any member).
    Report {
        seq: i64,
        #[serde(default)]
        reason: String,
    },
    /// Mute a member for `minutes` (none: until lifted).
    Mute {
        user_id: String,
        #[serde(default)]
        minutes: Option<u32>,
        #[serde(default)]
        reason: String,
    },
    Unmute {
        user_id: String,
    },
    /// Remove a member from the room; they may come back.
    Kick {
        user_id: String,
        #[serde(default)]
        reason: String,
    },
    /// Remove a member and keep them out for `minutes` (none: for good).
    Ban {
        user_id: String,
        #[serde(default)]
        minutes: Option<u32>,
        #[serde(default)]
        reason: String,
    },
    Unban {
        user_id: String,
    },
    /// Remove every message a member has written in the room so far (a
    /// moderator): a spammer's, or an account closed.
    Purge {
        user_id: String,
    },
    /// One message per `seconds` per member (0: off); moderators exempt.
    SlowMode {
        seconds: u32,
    },
    /// Close a report: `resolved` (acted upon) or dismissed.
    CloseReport {
        id: i64,
        resolved: bool,
    },
    /// Stop seeing what `user_id` writes, in every room (any member; the
    /// blocked player is not told).
    Block {
        user_id: String,
    },
    Unblock {
        user_id: String,
    },
}

/// A moderation event as the room records it, in its seq order: a stored
/// [`crate::ChatMessage`] whose `user_id` is who acted and whose `action`
/// is this. Externally tagged, like [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The message `seq` was removed.
    Remove {
        seq: i64,
    },
    /// `user_id` may not send until `until_ms` (Unix ms; none: until lifted).
    Mute {
        user_id: String,
        until_ms: Option<i64>,
        reason: String,
    },
    Unmute {
        user_id: String,
    },
    Kick {
        user_id: String,
        reason: String,
    },
    /// `user_id` is out of the room and may not come back until `until_ms`
    /// (none: for good).
    Ban {
        user_id: String,
        until_ms: Option<i64>,
        reason: String,
    },
    Unban {
        user_id: String,
    },
    /// Every message `user_id` wrote in the room before this event was
    /// removed.
    Purge {
        user_id: String,
    },
    SlowMode {
        seconds: u32,
    },
}

impl Action {
    /// The member the action is about, if it is about one.
    pub fn target_user(&self) -> Option<&str> {
        match self {
            Action::Mute { user_id, .. }
            | Action::Unmute { user_id }
            | Action::Kick { user_id, .. }
            | Action::Ban { user_id, .. }
            | Action::Unban { user_id }
            | Action::Purge { user_id } => Some(user_id),
            Action::Remove { .. } | Action::SlowMode { .. } => None,
        }
    }
}

/// A member's mute: why, and until when (Unix ms; none: until lifted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mute {
    pub until_ms: Option<i64>,
    pub reason: String,
}

impl Mute {
    /// Whether the mute still holds at `now_ms`.
    pub fn holds_at(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|until| until > now_ms)
    }
}

/// Who removed a message, and when (Unix ms). A removed message's text is
/// never sent again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Removed {
    pub by: String,
    pub at_ms: i64,
}

/// A reported message, as the room's moderators see it in their queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub id: i64,
    pub seq: i64,
    /// Who wrote the message, and its text when it was reported.
    pub author: String,
    pub body: String,
    pub reporter: String,
    pub reason: String,
    pub at_ms: i64,
}

/// Why a request was refused. `Display` is for people.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("Only a moderator can do that.")]
    NotModerator,
    #[error("You can only remove your own messages.")]
    NotYours,
    #[error("You cannot do that to yourself.")]
    Yourself,
    #[error("You cannot report your own message.")]
    OwnMessage,
    #[error("That is the game itself.")]
    TheGame,
    #[error("The reason is too long (at most {MAX_REASON_CHARS} characters).")]
    ReasonTooLong,
    #[error("The reason contains characters that are not allowed.")]
    ReasonControlCharacters,
    #[error("The duration must be between 1 minute and 365 days.")]
    BadDuration,
    #[error("Slow mode must be between 0 (off) and {MAX_SLOW_MODE_SECS} seconds.")]
    BadSlowMode,
    #[error(transparent)]
    Invalid(#[from] InputError),
}

/// Whether `me`, of `role`, may make `request`. `author` is the author of
/// the message a remove or a report names (the caller finds it). Checks
/// the request's own fields too (reasons, durations, user ids).
pub fn authorize(me: &str, role: Role, request: &Request, author: Option<&str>) -> Result<(), Refusal> {
    let moderator = role == Role::Moderator;
    let on_someone = |user_id: &str| -> Result<(), Refusal> {
        let user_id = normalize_id(user_id, "user name")?;
        if user_id == me {
            return Err(Refusal::Yourself);
        }
        if user_id.eq_ignore_ascii_case(crate::validate::GAME_USER_ID) {
            return Err(Refusal::TheGame);
        }
        Ok(())
    };
    let on_member = |user_id: &str| -> Result<(), Refusal> {
        if !moderator {
            return Err(Refusal::NotModerator);
        }
        on_someone(user_id)
    };
    match request {
        Request::Remove { .. } => match author {
            Some(author) if author != me && !moderator => Err(Refusal::NotYours),
            _ => Ok(()),
        },
        Request::Report { reason, .. } => {
            check_reason(reason)?;
            if author == Some(me) {
                return Err(Refusal::OwnMessage);
            }
            Ok(())
        }
        Request::Mute { user_id, minutes, reason } | Request::Ban { user_id, minutes, reason } => {
            on_member(user_id)?;
            check_reason(reason)?;
            check_minutes(*minutes)
        }
        Request::Kick { user_id, reason } => {
            on_member(user_id)?;
            check_reason(reason)
        }
        Request::Unmute { user_id } | Request::Unban { user_id } | Request::Purge { user_id } => {
            on_member(user_id)
        }
        Request::Block { user_id } | Request::Unblock { user_id } => on_someone(user_id),
        Request::SlowMode { .. } | Request::CloseReport { .. } if !moderator => Err(Refusal::NotModerator),
        Request::SlowMode { seconds } if *seconds > MAX_SLOW_MODE_SECS => Err(Refusal::BadSlowMode),
        Request::SlowMode { .. } | Request::CloseReport { .. } => Ok(()),
    }
}

/// A reason as stored: trimmed, at most [`MAX_REASON_CHARS`], one line.
pub fn normalize_reason(reason: &str) -> Result<String, Refusal> {
    check_reason(reason)?;
    Ok(reason.trim().to_owned())
}

fn check_reason(reason: &str) -> Result<(), Refusal> {
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Refusal::ReasonTooLong);
    }
    if reason.chars().any(char::is_control) {
        return Err(Refusal::ReasonControlCharacters);
    }
    if crate::validate::stacks_marks(reason) {
        return Err(Refusal::Invalid(InputError::StackedMarks("reason")));
    }
    Ok(())
}

fn check_minutes(minutes: Option<u32>) -> Result<(), Refusal> {
    match minutes {
        Some(0) => Err(Refusal::BadDuration),
        Some(m) if m > MAX_MINUTES => Err(Refusal::BadDuration),
        _ => Ok(()),
    }
}

/// The end of a sanction of `minutes` from `now_ms` (none: no end).
pub fn until_ms(now_ms: i64, minutes: Option<u32>) -> Option<i64> {
    minutes.map(|m| now_ms + i64::from(m) * 60_000)
}

/// A length of time in plain words, rounded up to the unit that reads best:
/// "45 seconds", "1 minute", "10 minutes", "2 hours", "3 days".
pub fn plain_duration(ms: i64) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    let (n, unit) = match secs {
        s if s < 60 => (s.max(1), "second"),
        s if s < 3600 => ((s + 59) / 60, "minute"),
        s if s < 86_400 => ((s + 3599) / 3600, "hour"),
        s => ((s + 86_399) / 86_400, "day"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Moderator, Player};

    fn mute(user_id: &str, minutes: Option<u32>, reason: &str) -> Request {
        Request::Mute { user_id: user_id.into(), minutes, reason: reason.into() }
    }

    #[test]
    fn a_player_removes_only_their_own_messages_and_reports_only_others() {
        let remove = Request::Remove { seq: 3 };
        assert_eq!(authorize("ana", Player, &remove, Some("ana")), Ok(()));
        assert_eq!(authorize("ana", Player, &remove, Some("bob")), Err(Refusal::NotYours));
        assert_eq!(authorize("mod", Moderator, &remove, Some("bob")), Ok(()));
        let report = Request::Report { seq: 3, reason: "rude".into() };
        assert_eq!(authorize("ana", Player, &report, Some("bob")), Ok(()));
        assert_eq!(authorize("ana", Player, &report, Some("ana")), Err(Refusal::OwnMessage));
    }

    #[test]
    fn every_action_on_members_and_the_room_is_a_moderators() {
        let requests = [
            mute("bob", Some(10), ""),
            Request::Unmute { user_id: "bob".into() },
            Request::Kick { user_id: "bob".into(), reason: String::new() },
            Request::Ban { user_id: "bob".into(), minutes: None, reason: String::new() },
            Request::Unban { user_id: "bob".into() },
            Request::Purge { user_id: "bob".into() },
            Request::SlowMode { seconds: 30 },
            Request::CloseReport { id: 1, resolved: true },
        ];
        for request in &requests {
            assert_eq!(authorize("ana", Player, request, None), Err(Refusal::NotModerator), "{request:?}");
            assert_eq!(authorize("mod", Moderator, request, None), Ok(()), "{request:?}");
        }
    }

    #[test]
    fn nobody_acts_on_themselves_and_fields_are_checked() {
        assert_eq!(authorize("mod", Moderator, &mute(" mod ", None, ""), None), Err(Refusal::Yourself));
        assert_eq!(authorize("mod", Moderator, &mute("bob", Some(0), ""), None), Err(Refusal::BadDuration));
        let too_long = Some(MAX_MINUTES + 1);
        assert_eq!(authorize("mod", Moderator, &mute("bob", too_long, ""), None), Err(Refusal::BadDuration));
        let long_reason = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(
            authorize("mod", Moderator, &mute("bob", None, &long_reason), None),
            Err(Refusal::ReasonTooLong)
        );
        assert_eq!(
            authorize("mod", Moderator, &mute("bob", None, "a\u{7}"), None),
            Err(Refusal::ReasonControlCharacters)
        );
        let piled = format!("spam{}", "\u{301}".repeat(9));
        assert_eq!(
            authorize("mod", Moderator, &mute("bob", None, &piled), None),
            Err(Refusal::Invalid(InputError::StackedMarks("reason")))
        );
        assert!(matches!(authorize("mod", Moderator, &mute("  ", None, ""), None), Err(Refusal::Invalid(_))));
        assert_eq!(authorize("mod", Moderator, &mute("Game", None, ""), None), Err(Refusal::TheGame));
        let purge = |user_id: &str| Request::Purge { user_id: user_id.into() };
        assert_eq!(authorize("mod", Moderator, &purge("mod"), None), Err(Refusal::Yourself));
        assert_eq!(authorize("mod", Moderator, &purge("game"), None), Err(Refusal::TheGame));
        let too_slow = Request::SlowMode { seconds: MAX_SLOW_MODE_SECS + 1 };
        assert_eq!(authorize("mod", Moderator, &too_slow, None), Err(Refusal::BadSlowMode));
    }

    #[test]
    fn anyone_blocks_anyone_but_themselves_and_the_game() {
        let block = |user_id: &str| Request::Block { user_id: user_id.into() };
        let unblock = |user_id: &str| Request::Unblock { user_id: user_id.into() };
        for role in [Player, Moderator] {
            assert_eq!(authorize("ana", role, &block("bob"), None), Ok(()));
            assert_eq!(authorize("ana", role, &unblock("bob"), None), Ok(()));
            assert_eq!(authorize("ana", role, &block(" ana "), None), Err(Refusal::Yourself));
            assert_eq!(authorize("ana", role, &block("GAME"), None), Err(Refusal::TheGame));
            assert!(matches!(authorize("ana", role, &block(""), None), Err(Refusal::Invalid(_))));
        }
        let json = r#"{"block":{"user_id":"bob"}}"#;
        assert_eq!(serde_json::from_str::<Request>(json).unwrap(), block("bob"));
    }

    #[test]
    fn requests_and_actions_read_as_externally_tagged_json() {
        let json = r#"{"mute":{"user_id":"bob","minutes":10}}"#;
        assert_eq!(serde_json::from_str::<Request>(json).unwrap(), mute("bob", Some(10), ""));
        let action = Action::Ban { user_id: "bob".into(), until_ms: None, reason: "spam".into() };
        let text = serde_json::to_string(&action).unwrap();
        assert_eq!(text, r#"{"ban":{"user_id":"bob","until_ms":null,"reason":"spam"}}"#);
        assert_eq!(serde_json::from_str::<Action>(&text).unwrap(), action);
        assert_eq!(action.target_user(), Some("bob"));
        assert!(serde_json::from_str::<Request>(r#"{"promote":{"user_id":"me"}}"#).is_err());
    }

    #[test]
    fn durations_read_in_plain_words() {
        assert_eq!(plain_duration(0), "1 second");
        assert_eq!(plain_duration(45_000), "45 seconds");
        assert_eq!(plain_duration(60_000), "1 minute");
        assert_eq!(plain_duration(61_000), "2 minutes");
        assert_eq!(plain_duration(10 * 60_000), "10 minutes");
        assert_eq!(plain_duration(2 * 3_600_000), "2 hours");
        assert_eq!(plain_duration(3 * 86_400_000), "3 days");
        assert_eq!(until_ms(1_000, Some(2)), Some(121_000));
        assert_eq!(until_ms(1_000, None), None);
        let mute = Mute { until_ms: Some(5), reason: String::new() };
        assert!(mute.holds_at(4) && !mute.holds_at(5));
        assert!(Mute { until_ms: None, reason: String::new() }.holds_at(i64::MAX));
    }
}
