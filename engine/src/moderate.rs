//! Moderation in a room: a member's [`Request`] (remove a message, report
//! one, mute, kick, ban, slow mode, close a report) checked against their
//! role by the protocol's rules, recorded with its effect by the store
//! (`store::moderation`), then published like a message: every page of the
//! room, on every node, gets it in the conversation's order, and a page
//! that reconnects replays it (one whose user was kicked meanwhile, no
//! member any more, is told the kick, then closed). The same path serves a
//! server function, a form posted without JavaScript and a stream frame.
//!
//! Reports are not part of the conversation: a new one (and a closed one)
//! goes only to the moderators' pages, as [`ServerFrame::Reported`] and
//! [`ServerFrame::ReportClosed`], and the queue is read from the store.
use chrono::Utc;

use crate::events::{Event, EventKind};

use crate::protocol::moderation::{authorize, normalize_reason, until_ms, Action, Report, Request};
use crate::protocol::{ChatMessage, Role, ServerFrame};
use crate::rooms::{OpenRoom, RoomError, Rooms};
use crate::store::moderation as store;
use crate::validate::normalize_id;

/// How far back a page that comes back to a room it was kicked from is
/// looked up: a bound on the read, whatever the `after_seq` it claims.
const KICK_LOOKBACK: i64 = 1000;

/// Most open reports shown to a moderator at once.
pub const REPORT_QUEUE: u64 = 100;
/// Most open reports one member may have in a room at once.
pub const OPEN_REPORTS_EACH: u64 = 20;

/// What a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// An action, stored in the room's order under the message's seq.
    Recorded(ChatMessage),
    /// A report filed (or the same reporter's earlier one).
    Reported(Report),
    /// A report closed.
    Closed,
    /// A player blocked or unblocked (see `blocks`).
    BlockChanged,
}

impl Rooms {
    /// `user_id`, of `role`, asks `request` of the room: refused unless
    /// they are a member and their role allows it.
    pub async fn moderate_as(
        &self,
        channel_id: &str,
        user_id: &str,
        role: Role,
        request: Request,
    ) -> Result<Done, RoomError> {
        let mut room = self.member_room(channel_id, user_id).await?;
        room.identity_role = role;
        room.role = room.role.max(role);
        self.moderate(&room, request).await
    }

    /// A request from a page admitted to the room (see [`Rooms::moderate_as`]).
    pub async fn moderate(&self, room: &OpenRoom, request: Request) -> Result<Done, RoomError> {
        let what = what(&request);
        let done = self.moderate_unmetered(room, request).await?;
        // A block is no moderation: `blocks` counts it.
        if let Some(what) = what {
            metrics::counter!(crate::metrics::MODERATION, "what" => what).increment(1);
        }
        Ok(done)
    }

    async fn moderate_unmetered(&self, room: &OpenRoom, request: Request) -> Result<Done, RoomError> {
        let me = room.user_id.as_str();
        // A player's requests count against their send rate (a flood of
        // reports is a flood like any other).
        if room.role.is_player() && !self.send_rate_allows(room) {
            return Err(RoomError::TooFast);
        }
        let target = match &request {
            Request::Remove { seq } | Request::Report { seq, .. } => {
                let found = store::message_at(self.db(), room.room_id, *seq).await?;
                let message = found.ok_or(RoomError::NoSuchMessage)?;
                if message.removed.is_some() {
                    return Err(RoomError::AlreadyRemoved);
                }
                Some(message)
            }
            _ => None,
        };
        // The game's own messages have no author a player could be.
        let author = target.as_ref().map(|m| if m.system { "" } else { m.user_id.as_str() });
        authorize(me, room.role, &request, author).map_err(RoomError::Refused)?;
        let now = Utc::now();
        let action = match request {
            Request::Report { reason, .. } => {
                let reported = target.expect("a report names a message");
                return self
                    .report(room, &reported, &normalize_reason(&reason).map_err(RoomError::Refused)?)
                    .await;
            }
            Request::CloseReport { id, resolved } => {
                if !store::close_report(self.db(), room.room_id, id, me, resolved).await? {
                    return Err(RoomError::NoSuchReport);
                }
                self.publish(&room.channel_id, ServerFrame::ReportClosed { id }).await;
                return Ok(Done::Closed);
            }
            Request::Block { user_id } => return self.block(me, &user_id, true).await,
            Request::Unblock { user_id } => return self.block(me, &user_id, false).await,
            Request::Remove { seq } => Action::Remove { seq },
            Request::Mute { user_id, minutes, reason } => {
                let user_id = self.in_room(room, &user_id).await?;
                let until_ms = until_ms(now.timestamp_millis(), minutes);
                Action::Mute {
                    user_id,
                    until_ms,
                    reason: normalize_reason(&reason).map_err(RoomError::Refused)?,
                }
            }
            Request::Unmute { user_id } => Action::Unmute { user_id: normalize_id(&user_id, "user name")? },
            Request::Kick { user_id, reason } => {
                let user_id = self.in_room(room, &user_id).await?;
                Action::Kick { user_id, reason: normalize_reason(&reason).map_err(RoomError::Refused)? }
            }
            Request::Ban { user_id, minutes, reason } => Action::Ban {
                user_id: normalize_id(&user_id, "user name")?,
                until_ms: until_ms(now.timestamp_millis(), minutes),
                reason: normalize_reason(&reason).map_err(RoomError::Refused)?,
            },
            Request::Unban { user_id } => Action::Unban { user_id: normalize_id(&user_id, "user name")? },
            // Members or not: a spammer who left leaves their messages.
            Request::Purge { user_id } => Action::Purge { user_id: normalize_id(&user_id, "user name")? },
            Request::SlowMode { seconds } => Action::SlowMode { seconds },
        };
        let recorded = store::record(self.db(), room.room_id, me, &action, self.removed_text(), now).await?;
        let store::Recorded { event, left } =
            recorded.ok_or_else(|| RoomError::Unchanged(unchanged(&action)))?;
        // The webhooks' events are queued before anything waits: as close
        // to the commit as they can be, and never lost to a dropped request.
        self.tell(&room.channel_id, &event, &action, left);
        self.publish(&room.channel_id, ServerFrame::Message(event.clone())).await;
        if let (true, Some(user_id)) = (left, action.target_user()) {
            self.publish(&room.channel_id, ServerFrame::MemberLeft { user_id: user_id.to_owned() }).await;
        }
        Ok(Done::Recorded(event))
    }

    /// A page's block or unblock: as [`Rooms::set_blocked`], and a
    /// sentence when it changes nothing.
    async fn block(&self, me: &str, user_id: &str, blocked: bool) -> Result<Done, RoomError> {
        if !self.block_rate_allows(me) {
            return Err(RoomError::TooFast);
        }
        if !self.set_blocked(me, user_id, blocked).await? {
            let already = if blocked { "blocked already" } else { "not blocked" };
            return Err(RoomError::Unchanged(format!("{} is {already}.", user_id.trim())));
        }
        Ok(Done::BlockChanged)
    }

    /// The kick that took `user_id` out of the room while their page was
    /// away (after `after_seq`, within the room's last
    /// [`KICK_LOOKBACK`] events), if that is why they are no member: the
    /// page is told it as it would have been, then closed for good.
    pub(crate) async fn kicked_while_away(
        &self,
        channel_id: &str,
        user_id: &str,
        after_seq: i64,
    ) -> Result<Option<ChatMessage>, RoomError> {
        let Some(room) = crate::store::find_room(self.db(), channel_id).await? else {
            return Ok(None);
        };
        let after_seq = after_seq.max(room.last_seq - KICK_LOOKBACK);
        Ok(store::kick_since(self.db(), room.id, user_id, after_seq).await?)
    }

    /// `user_id`, normalized, if they are a member of the room.
    async fn in_room(&self, room: &OpenRoom, user_id: &str) -> Result<String, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        if !crate::store::is_member(self.db(), room.room_id, &user_id).await? {
            return Err(RoomError::NotInRoom(user_id));
        }
        Ok(user_id)
    }

    async fn report(&self, room: &OpenRoom, reported: &ChatMessage, reason: &str) -> Result<Done, RoomError> {
        if store::open_reports_by(self.db(), room.room_id, &room.user_id).await? >= OPEN_REPORTS_EACH {
            return Err(RoomError::Unchanged(
                "You have many reports waiting for the moderators already. Thank you: they will see to them."
                    .to_owned(),
            ));
        }
        let (report, is_new) =
            store::add_report(self.db(), room.room_id, reported, &room.user_id, reason).await?;
        if is_new {
            self.publish(&room.channel_id, ServerFrame::Reported { report: report.clone() }).await;
            self.events().emit(|| {
                let data = serde_json::to_value(&report).expect("reports serialize");
                Event::new(EventKind::MessageReported, &room.channel_id, Some(report.seq), data)
            });
        }
        Ok(Done::Reported(report))
    }

    /// Tells the node's listener (webhooks) of a recorded action.
    fn tell(&self, channel_id: &str, recorded: &ChatMessage, action: &Action, left: bool) {
        let (kind, seq) = match action {
            // The removed message's seq; the event's own is in the details.
            Action::Remove { seq } => (EventKind::MessageDeleted, *seq),
            Action::Mute { .. } => (EventKind::MemberMuted, recorded.seq),
            Action::Ban { .. } => (EventKind::MemberBanned, recorded.seq),
            Action::Purge { .. } => (EventKind::MessagesPurged, recorded.seq),
            Action::Kick { .. } => (EventKind::MemberLeft, recorded.seq),
            Action::Unmute { .. } | Action::Unban { .. } | Action::SlowMode { .. } => return,
        };
        self.events().emit(|| {
            let data = serde_json::json!({
                "user_id": action.target_user(),
                "by": recorded.user_id,
                "event_seq": recorded.seq,
                "action": action,
            });
            Event::new(kind, channel_id, Some(seq), data)
        });
        if let (Action::Ban { user_id, .. }, true) = (action, left) {
            self.events().membership(EventKind::MemberLeft, channel_id, user_id);
        }
    }

    /// The room's open reports, for a moderator of it.
    pub async fn open_reports(
        &self,
        channel_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Vec<Report>, RoomError> {
        let room = self.member_room(channel_id, user_id).await?;
        if room.role.max(role) != Role::Moderator {
            return Err(RoomError::Refused(crate::protocol::moderation::Refusal::NotModerator));
        }
        Ok(store::open_reports(self.db(), room.room_id, 0, REPORT_QUEUE).await?)
    }
}

/// A request's kind, as the metric names it (none for a block).
fn what(request: &Request) -> Option<&'static str> {
    Some(match request {
        Request::Remove { .. } => "remove",
        Request::Report { .. } => "report",
        Request::Mute { .. } => "mute",
        Request::Unmute { .. } => "unmute",
        Request::Kick { .. } => "kick",
        Request::Ban { .. } => "ban",
        Request::Unban { .. } => "unban",
        Request::Purge { .. } => "purge",
        Request::SlowMode { .. } => "slow_mode",
        Request::CloseReport { .. } => "close_report",
        Request::Block { .. } | Request::Unblock { .. } => return None,
    })
}

/// Why an action changed nothing, for people.
fn unchanged(action: &Action) -> String {
    match action {
        Action::Remove { .. } => "That message was already removed.".to_owned(),
        Action::Unmute { user_id } => format!("{user_id} is not muted."),
        Action::Unban { user_id } => format!("{user_id} is not banned."),
        Action::Kick { user_id, .. } => format!("{user_id} is not in this room."),
        Action::SlowMode { seconds: 0 } => "Slow mode is already off.".to_owned(),
        Action::SlowMode { seconds } => format!("Slow mode is already {seconds} seconds."),
        Action::Mute { user_id, .. } => format!("{user_id} is already muted."),
        Action::Ban { user_id, .. } => format!("{user_id} is already banned."),
        Action::Purge { user_id } => format!("{user_id} has no messages here to remove."),
    }
}
