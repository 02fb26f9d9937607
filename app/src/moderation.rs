//! Moderation as a page shows it, as plain data and text (tested without a
//! browser): the notice a moderation event leaves in the conversation,
//! what a removed message says in its place, which actions a menu offers
//! (by the protocol's own rules, `authorize`; the server decides again)
//! and the request each moderation form makes, where the page's user
//! stands (muted, held back by slow mode, removed) and what the page says
//! about it, and the moderators' report queue.
//!
//! Every text is plain words for players who never read a manual: "bob was
//! muted for 10 minutes (reason: spam)", not codes or durations in
//! seconds.
use crate::protocol::moderation::{authorize, plain_duration, Action, Mute, Removed, Report, Request};
use crate::protocol::Role;

/// The notice an action leaves in the conversation, or `None` for one
/// that shows no line of its own (a removed message says so in its
/// place). `at_ms` is when it was done, `me` the page's user, who reads
/// about themselves as "You".
pub fn notice(action: &Action, at_ms: i64, me: &str) -> Option<String> {
    let target = action.target_user().unwrap_or_default();
    let (who, was) = if target == me { ("You", "were") } else { (target, "was") };
    let text = match action {
        Action::Remove { .. } => return None,
        Action::Mute { until_ms, reason, .. } => {
            let how_long = match until_ms {
                Some(until) => format!("for {}", plain_duration(until - at_ms)),
                None => "until a moderator lifts it".to_owned(),
            };
            format!("{who} {was} muted {how_long}{}", because(reason))
        }
        Action::Unmute { .. } => format!("{who} can send messages again"),
        Action::Kick { reason, .. } => format!("{who} {was} removed from the room{}", because(reason)),
        Action::Ban { until_ms, reason, .. } => {
            let how_long = match until_ms {
                Some(until) => format!("for {}", plain_duration(until - at_ms)),
                None => "for good".to_owned(),
            };
            format!("{who} {was} banned {how_long}{}", because(reason))
        }
        Action::Unban { user_id } if user_id == me => "Your ban was lifted".to_owned(),
        Action::Unban { user_id } => format!("{user_id}'s ban was lifted"),
        Action::Purge { .. } if target == me => "Your messages were removed".to_owned(),
        Action::Purge { user_id } => format!("{user_id}'s messages were removed"),
        Action::SlowMode { seconds: 0 } => "Slow mode is off".to_owned(),
        Action::SlowMode { seconds } => format!("Slow mode is on: one message every {}", every(*seconds)),
    };
    Some(text)
}

/// " (reason: spam)", or nothing when no reason was given.
pub fn because(reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() {
        String::new()
    } else {
        format!(" (reason: {reason})")
    }
}

/// "30 seconds", "5 minutes"; "second" and "minute" for one ("one
/// message every minute").
pub fn every(seconds: u32) -> String {
    let duration = plain_duration(i64::from(seconds) * 1000);
    match duration.strip_prefix("1 ") {
        Some(unit) => unit.to_owned(),
        None => duration,
    }
}

/// What a removed message shows in place of its text: who removed it,
/// when that was not its author.
pub fn removed_text(author: &str, removed: &Removed) -> &'static str {
    if removed.by == author {
        "Message removed"
    } else {
        "Message removed by a moderator"
    }
}

/// What the page's user may do with a stored message (the menu's items).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageActions {
    /// Delete it: one's own, or any as a moderator.
    pub delete: bool,
    /// Report it to the moderators: a player, on someone else's message
    /// (a moderator acts instead).
    pub report: bool,
    /// Act on its author (mute, kick, ban): a moderator, on someone else.
    pub sanction: bool,
    /// Block its author: anyone, on another player (not the game).
    pub block: bool,
}

impl MessageActions {
    pub fn of(me: &str, role: Role, author: &str, seq: i64) -> Self {
        let allowed = |request: &Request, author: Option<&str>| authorize(me, role, request, author).is_ok();
        let report = Request::Report { seq, reason: String::new() };
        let kick = Request::Kick { user_id: author.to_owned(), reason: String::new() };
        MessageActions {
            delete: allowed(&Request::Remove { seq }, Some(author)),
            report: role.is_player() && allowed(&report, Some(author)),
            sanction: allowed(&kick, None),
            block: allowed(&Request::Block { user_id: author.to_owned() }, None),
        }
    }

    pub fn any(&self) -> bool {
        self.delete || self.report || self.sanction || self.block
    }
}

/// What a moderator's member menu offers, each a button of the menu's
/// form (its `value` is what the form posts without JavaScript).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanction {
    MuteTenMinutes,
    MuteHour,
    MuteUntilLifted,
    Unmute,
    RemoveMessages,
    Kick,
    BanDay,
    BanForGood,
    Unban,
}

impl Sanction {
    /// The member menu's buttons, in order (a banned member is not in the
    /// room: lifting a ban has a field of its own).
    pub const MENU: [Sanction; 8] = [
        Sanction::MuteTenMinutes,
        Sanction::MuteHour,
        Sanction::MuteUntilLifted,
        Sanction::Unmute,
        Sanction::RemoveMessages,
        Sanction::Kick,
        Sanction::BanDay,
        Sanction::BanForGood,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Sanction::MuteTenMinutes => "Mute 10 minutes",
            Sanction::MuteHour => "Mute 1 hour",
            Sanction::MuteUntilLifted => "Mute until lifted",
            Sanction::Unmute => "Unmute",
            Sanction::RemoveMessages => "Remove all their messages",
            Sanction::Kick => "Kick",
            Sanction::BanDay => "Ban 1 day",
            Sanction::BanForGood => "Ban for good",
            Sanction::Unban => "Lift ban",
        }
    }

    pub fn value(self) -> &'static str {
        match self {
            Sanction::MuteTenMinutes => "mute-10m",
            Sanction::MuteHour => "mute-1h",
            Sanction::MuteUntilLifted => "mute",
            Sanction::Unmute => "unmute",
            Sanction::RemoveMessages => "purge",
            Sanction::Kick => "kick",
            Sanction::BanDay => "ban-1d",
            Sanction::BanForGood => "ban",
            Sanction::Unban => "unban",
        }
    }

    pub fn from_value(value: &str) -> Option<Self> {
        Sanction::MENU.into_iter().chain([Sanction::Unban]).find(|s| s.value() == value)
    }

    /// Whether it takes the member out of the room (the menu says so).
    pub fn removes(self) -> bool {
        matches!(self, Sanction::Kick | Sanction::BanDay | Sanction::BanForGood)
    }

    /// The request it makes of the room about `member`.
    pub fn request(self, member: &str, reason: &str) -> Request {
        let user_id = member.trim().to_owned();
        let reason = reason.trim().to_owned();
        match self {
            Sanction::MuteTenMinutes => Request::Mute { user_id, minutes: Some(10), reason },
            Sanction::MuteHour => Request::Mute { user_id, minutes: Some(60), reason },
            Sanction::MuteUntilLifted => Request::Mute { user_id, minutes: None, reason },
            Sanction::Unmute => Request::Unmute { user_id },
            Sanction::RemoveMessages => Request::Purge { user_id },
            Sanction::Kick => Request::Kick { user_id, reason },
            Sanction::BanDay => Request::Ban { user_id, minutes: Some(24 * 60), reason },
            Sanction::BanForGood => Request::Ban { user_id, minutes: None, reason },
            Sanction::Unban => Request::Unban { user_id },
        }
    }
}

/// The moderation request a room form makes: the form's `action` (the
/// server function it posts to without JavaScript) and its fields by name,
/// the pressed button's among them. What the page's script sends up the
/// room stream instead of posting; `None` for a form that is not one of
/// these.
pub fn form_request(action: &str, field: impl Fn(&str) -> Option<String>) -> Option<Request> {
    let number = |name: &str| field(name)?.trim().parse::<i64>().ok();
    let reason = || field("reason").unwrap_or_default();
    match action {
        "/api/remove_message" => Some(Request::Remove { seq: number("seq")? }),
        "/api/report_message" => {
            Some(Request::Report { seq: number("seq")?, reason: reason().trim().to_owned() })
        }
        "/api/moderate_member" => {
            Some(Sanction::from_value(&field("sanction")?)?.request(&field("member")?, &reason()))
        }
        "/api/set_slow_mode" => Some(Request::SlowMode { seconds: u32::try_from(number("seconds")?).ok()? }),
        "/api/close_report" => {
            Some(Request::CloseReport { id: number("id")?, resolved: field("resolved")? == "true" })
        }
        "/api/block_user" => {
            let user_id = field("member")?;
            Some(match field("blocked")?.as_str() {
                "true" => Request::Block { user_id },
                "false" => Request::Unblock { user_id },
                _ => return None,
            })
        }
        _ => None,
    }
}

/// The slow mode choices a moderator has: seconds, and how they read.
pub const SLOW_MODE_CHOICES: [(u32, &str); 5] =
    [(0, "Off"), (10, "10 seconds"), (30, "30 seconds"), (60, "1 minute"), (300, "5 minutes")];

/// How long a player waits before sending again, after a send slow mode
/// refused: the rest of the period since their last stored message (when
/// the page knows it), else a whole period; at least a second.
pub fn slow_mode_wait_ms(period_secs: u32, last_sent_at_ms: Option<i64>, now_ms: i64) -> i64 {
    let period = i64::from(period_secs) * 1000;
    let waited = last_sent_at_ms.map_or(0, |at| (now_ms - at).clamp(0, period));
    (period - waited).max(1000)
}

/// Where the page's user stands in the room: what holds their messages
/// back, as the page learns it (the join, each welcome, the events that
/// come live after it), and what the page says about it under the message
/// box.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Standing {
    /// The user's mute, if any.
    pub muted: Option<Mute>,
    /// The room's slow mode: seconds between a player's messages (0: off).
    pub slow_mode_secs: u32,
    /// When slow mode lets this player send again (ms since the epoch).
    pub send_again_at: Option<f64>,
    /// Set once a moderator took the user out of the room.
    pub removal: Option<Removal>,
    /// The time the page shows this at (ms since the epoch): 0 until the
    /// page runs in the browser, then moved on while a countdown runs.
    pub now_ms: f64,
}

impl Standing {
    pub fn new(muted: Option<Mute>, slow_mode_secs: u32) -> Self {
        Standing { muted, slow_mode_secs, ..Standing::default() }
    }

    /// Whether the user may not send at all: muted, or out of the room.
    pub fn silenced(&self) -> bool {
        self.muted.is_some() || self.removal.is_some()
    }

    /// How things are, as a welcome says. Returns whether anything changed.
    pub fn welcomed(&mut self, muted: Option<Mute>, slow_mode_secs: u32) -> bool {
        let before = self.clone();
        self.muted = muted;
        self.set_slow_mode(slow_mode_secs);
        *self != before
    }

    fn set_slow_mode(&mut self, seconds: u32) {
        self.slow_mode_secs = seconds;
        if seconds == 0 {
            self.send_again_at = None;
        }
    }

    /// Takes in an event that came live, for the page's user `me`. Returns
    /// whether anything changed.
    pub fn take(&mut self, action: &Action, me: &str) -> bool {
        let before = self.clone();
        match action {
            Action::Mute { user_id, until_ms, reason } if user_id == me => {
                self.muted = Some(Mute { until_ms: *until_ms, reason: reason.clone() });
            }
            Action::Unmute { user_id } if user_id == me => self.muted = None,
            Action::SlowMode { seconds } => self.set_slow_mode(*seconds),
            _ => {}
        }
        if let Some(removal) = Removal::of(action, me) {
            self.removal = Some(removal);
        }
        *self != before
    }

    /// Slow mode holds this player back for `wait_ms` from `now_ms`.
    pub fn wait(&mut self, now_ms: f64, wait_ms: f64) {
        self.now_ms = now_ms;
        self.send_again_at = Some(now_ms + wait_ms);
    }

    /// Moves on to `now_ms`: a slow mode wait or a mute that has run out
    /// ends, a countdown moves on. Returns whether anything shown changed.
    pub fn tick(&mut self, now_ms: f64) -> bool {
        let before = self.clone();
        if self.send_again_at.is_some_and(|at| at <= now_ms) {
            self.send_again_at = None;
        }
        if self.muted.as_ref().is_some_and(|m| !m.holds_at(now_ms as i64)) {
            self.muted = None;
        }
        if self.now_ms == 0.0 || self.send_again_at.is_some() {
            self.now_ms = now_ms;
        }
        *self != before
    }

    /// The line under the message box, if any: until when the user is
    /// muted, or how long slow mode still holds a player back. `time`
    /// writes a moment ("14:05").
    pub fn status(&self, role: Role, time: impl Fn(i64) -> String) -> Option<String> {
        if self.removal.is_some() {
            return None;
        }
        if let Some(mute) = &self.muted {
            let until = mute.until_ms.map_or_else(|| "a moderator lifts it".to_owned(), time);
            return Some(format!("You are muted until {until}{}", because(&mute.reason)));
        }
        if let Some(at) = self.send_again_at {
            let seconds = ((at - self.now_ms) / 1000.0).ceil().max(1.0) as u32;
            return Some(format!("Slow mode: you can send again in {seconds} s"));
        }
        (self.slow_mode_secs > 0 && role.is_player())
            .then(|| format!("Slow mode is on: one message every {}", every(self.slow_mode_secs)))
    }

    /// What a user a moderator took out of the room reads where they
    /// typed. `time` writes a moment.
    pub fn removal_text(&self, time: impl Fn(i64) -> String) -> Option<String> {
        Some(match self.removal.as_ref()? {
            Removal::Kicked { reason } => {
                format!("A moderator removed you from this room{}.", because(reason))
            }
            Removal::Banned { until_ms: Some(at), reason } => {
                format!("You are banned from this room until {}{}.", time(*at), because(reason))
            }
            Removal::Banned { until_ms: None, reason } => {
                format!("You are banned from this room for good{}.", because(reason))
            }
        })
    }
}

/// How the page's user was taken out of the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Kicked: they may open the room again.
    Kicked { reason: String },
    /// Banned until `until_ms` (none: for good).
    Banned { until_ms: Option<i64>, reason: String },
}

impl Removal {
    /// The removal an action means for `me`, if it names them.
    pub fn of(action: &Action, me: &str) -> Option<Removal> {
        match action {
            Action::Kick { user_id, reason } if user_id == me => {
                Some(Removal::Kicked { reason: reason.clone() })
            }
            Action::Ban { user_id, until_ms, reason } if user_id == me => {
                Some(Removal::Banned { until_ms: *until_ms, reason: reason.clone() })
            }
            _ => None,
        }
    }
}

/// The open reports a moderator's page shows, oldest first: read from the
/// server when the page connects, then kept live by the reports and
/// closings the stream brings. A read races those frames: what came live
/// while it was under way is kept (a report filed after the read) or left
/// out (a report closed after it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportQueue {
    /// Oldest (lowest id) first.
    open: Vec<Report>,
    /// Reports and closings that came live since the last read started.
    arrived: Vec<Report>,
    closed: Vec<i64>,
}

impl ReportQueue {
    pub fn new(reports: Vec<Report>) -> Self {
        let mut queue = ReportQueue::default();
        queue.loaded(reports);
        queue
    }

    /// A read of the queue starts.
    pub fn reading(&mut self) {
        self.arrived.clear();
        self.closed.clear();
    }

    /// The queue as read: it replaces what is shown, with what came live
    /// meanwhile.
    pub fn loaded(&mut self, reports: Vec<Report>) {
        self.open.clear();
        for report in reports.into_iter().chain(std::mem::take(&mut self.arrived)) {
            self.add(report);
        }
        self.open.retain(|r| !self.closed.contains(&r.id));
    }

    /// A new report came live.
    pub fn reported(&mut self, report: Report) {
        self.add(report.clone());
        self.arrived.push(report);
    }

    /// A report was resolved or dismissed.
    pub fn closed(&mut self, id: i64) {
        self.open.retain(|r| r.id != id);
        self.closed.push(id);
    }

    /// Adds a report in its place, once.
    fn add(&mut self, report: Report) {
        let at = self.open.partition_point(|r| r.id < report.id);
        if self.open.get(at).is_none_or(|r| r.id != report.id) {
            self.open.insert(at, report);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Report> {
        self.open.iter()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn mute(user_id: &str, until_ms: Option<i64>, reason: &str) -> Action {
        Action::Mute { user_id: user_id.into(), until_ms, reason: reason.into() }
    }

    fn ban(user_id: &str, until_ms: Option<i64>, reason: &str) -> Action {
        Action::Ban { user_id: user_id.into(), until_ms, reason: reason.into() }
    }

    fn said(action: &Action) -> Option<String> {
        notice(action, 1_000, "me")
    }

    #[test]
    fn a_moderation_event_reads_as_a_plain_sentence() {
        let at = 1_000;
        assert_eq!(
            said(&mute("bob", Some(at + 10 * MINUTE), "spam")).unwrap(),
            "bob was muted for 10 minutes (reason: spam)"
        );
        assert_eq!(said(&mute("bob", None, "")).unwrap(), "bob was muted until a moderator lifts it");
        assert_eq!(said(&Action::Unmute { user_id: "bob".into() }).unwrap(), "bob can send messages again");
        let kick = Action::Kick { user_id: "bob".into(), reason: String::new() };
        assert_eq!(said(&kick).unwrap(), "bob was removed from the room");
        assert_eq!(said(&ban("bob", Some(at + 24 * 60 * MINUTE), "")).unwrap(), "bob was banned for 1 day");
        assert_eq!(
            said(&ban("bob", None, "cheating")).unwrap(),
            "bob was banned for good (reason: cheating)"
        );
        assert_eq!(said(&Action::Unban { user_id: "bob".into() }).unwrap(), "bob's ban was lifted");
        assert_eq!(
            said(&Action::SlowMode { seconds: 30 }).unwrap(),
            "Slow mode is on: one message every 30 seconds"
        );
        assert_eq!(
            said(&Action::SlowMode { seconds: 60 }).unwrap(),
            "Slow mode is on: one message every minute"
        );
        assert_eq!(
            said(&Action::SlowMode { seconds: 300 }).unwrap(),
            "Slow mode is on: one message every 5 minutes"
        );
        assert_eq!(said(&Action::SlowMode { seconds: 0 }).unwrap(), "Slow mode is off");
        let purge = |user_id: &str| Action::Purge { user_id: user_id.into() };
        assert_eq!(said(&purge("bob")).unwrap(), "bob's messages were removed");
        assert_eq!(said(&purge("me")).unwrap(), "Your messages were removed");
    }

    #[test]
    fn a_removal_shows_no_line_of_its_own() {
        assert_eq!(said(&Action::Remove { seq: 4 }), None);
    }

    #[test]
    fn the_page_user_reads_about_themselves_as_you() {
        assert_eq!(said(&mute("me", Some(1_000 + 60 * MINUTE), " ")).unwrap(), "You were muted for 1 hour");
        assert_eq!(said(&Action::Unmute { user_id: "me".into() }).unwrap(), "You can send messages again");
        let kick = Action::Kick { user_id: "me".into(), reason: "rude".into() };
        assert_eq!(said(&kick).unwrap(), "You were removed from the room (reason: rude)");
        assert_eq!(said(&Action::Unban { user_id: "me".into() }).unwrap(), "Your ban was lifted");
    }

    #[test]
    fn a_removed_message_says_who_removed_it_when_not_its_author() {
        let by = |by: &str| Removed { by: by.into(), at_ms: 1 };
        assert_eq!(removed_text("ana", &by("ana")), "Message removed");
        assert_eq!(removed_text("ana", &by("mod")), "Message removed by a moderator");
    }

    #[test]
    fn a_player_deletes_their_own_messages_and_reports_others() {
        let own = MessageActions::of("ana", Role::Player, "ana", 1);
        assert_eq!(own, MessageActions { delete: true, report: false, sanction: false, block: false });
        let others = MessageActions::of("ana", Role::Player, "bob", 1);
        assert_eq!(others, MessageActions { delete: false, report: true, sanction: false, block: true });
        assert!(own.any() && others.any());
        let game = MessageActions::of("ana", Role::Player, "game", 1);
        assert!(!game.block, "nobody blocks the game");
    }

    #[test]
    fn a_moderator_deletes_any_message_and_acts_on_others_not_on_themselves() {
        let others = MessageActions::of("mod", Role::Moderator, "bob", 1);
        assert_eq!(others, MessageActions { delete: true, report: false, sanction: true, block: true });
        let own = MessageActions::of("mod", Role::Moderator, "mod", 1);
        assert_eq!(own, MessageActions { delete: true, report: false, sanction: false, block: false });
    }

    #[test]
    fn each_sanction_posts_a_value_that_reads_back_as_its_request() {
        for sanction in Sanction::MENU.into_iter().chain([Sanction::Unban]) {
            assert_eq!(Sanction::from_value(sanction.value()), Some(sanction));
        }
        assert_eq!(Sanction::from_value("promote"), None);
        assert_eq!(
            Sanction::MuteTenMinutes.request(" bob ", " spam "),
            Request::Mute { user_id: "bob".into(), minutes: Some(10), reason: "spam".into() }
        );
        assert_eq!(
            Sanction::RemoveMessages.request(" bob ", "spam"),
            Request::Purge { user_id: "bob".into() }
        );
        assert_eq!(
            Sanction::BanDay.request("bob", ""),
            Request::Ban { user_id: "bob".into(), minutes: Some(1440), reason: String::new() }
        );
        assert_eq!(
            Sanction::BanForGood.request("bob", ""),
            Request::Ban { user_id: "bob".into(), minutes: None, reason: String::new() }
        );
        assert_eq!(Sanction::Unban.request("bob", "x"), Request::Unban { user_id: "bob".into() });
        assert!(Sanction::Kick.removes() && !Sanction::MuteHour.removes());
    }

    fn posted<'a>(fields: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn a_room_form_reads_as_the_request_it_posts() {
        let request = |action: &str, fields: &[(&str, &str)]| form_request(action, posted(fields));
        assert_eq!(request("/api/remove_message", &[("seq", "7")]), Some(Request::Remove { seq: 7 }));
        assert_eq!(
            request("/api/report_message", &[("seq", "7"), ("reason", " rude ")]),
            Some(Request::Report { seq: 7, reason: "rude".into() })
        );
        assert_eq!(
            request("/api/report_message", &[("seq", "7")]),
            Some(Request::Report { seq: 7, reason: String::new() })
        );
        assert_eq!(
            request(
                "/api/moderate_member",
                &[("member", "bob"), ("sanction", "mute-1h"), ("reason", "spam")]
            ),
            Some(Request::Mute { user_id: "bob".into(), minutes: Some(60), reason: "spam".into() })
        );
        assert_eq!(
            request("/api/set_slow_mode", &[("seconds", "30")]),
            Some(Request::SlowMode { seconds: 30 })
        );
        assert_eq!(
            request("/api/close_report", &[("id", "3"), ("resolved", "false")]),
            Some(Request::CloseReport { id: 3, resolved: false })
        );
        assert_eq!(
            request("/api/block_user", &[("member", "bob"), ("blocked", "true")]),
            Some(Request::Block { user_id: "bob".into() })
        );
        assert_eq!(
            request("/api/block_user", &[("member", "bob"), ("blocked", "false")]),
            Some(Request::Unblock { user_id: "bob".into() })
        );
        assert_eq!(request("/api/block_user", &[("member", "bob"), ("blocked", "maybe")]), None);
    }

    #[test]
    fn other_forms_and_malformed_ones_make_no_request() {
        let request = |action: &str, fields: &[(&str, &str)]| form_request(action, posted(fields));
        assert_eq!(request("/api/send_message", &[("body", "hi")]), None);
        assert_eq!(request("/api/remove_message", &[("seq", "x")]), None);
        assert_eq!(request("/api/moderate_member", &[("member", "bob"), ("sanction", "promote")]), None);
        assert_eq!(request("/api/close_report", &[("id", "3")]), None);
    }

    #[test]
    fn slow_mode_makes_a_player_wait_the_rest_of_the_period() {
        assert_eq!(slow_mode_wait_ms(30, Some(10_000), 22_000), 18_000);
        assert_eq!(slow_mode_wait_ms(30, None, 22_000), 30_000, "no message known: a whole period");
        assert_eq!(slow_mode_wait_ms(30, Some(0), 90_000), 1_000, "at least a second");
        assert_eq!(slow_mode_wait_ms(10, Some(5_000), 1_000), 10_000, "a clock behind counts as no wait yet");
    }

    fn at(hm: &str) -> impl Fn(i64) -> String + '_ {
        move |_| hm.to_owned()
    }

    #[test]
    fn a_muted_user_reads_until_when_and_why() {
        let mut standing = Standing::new(Some(Mute { until_ms: Some(600_000), reason: "spam".into() }), 0);
        assert!(standing.silenced());
        let line = standing.status(Role::Player, at("14:05"));
        assert_eq!(line.as_deref(), Some("You are muted until 14:05 (reason: spam)"));
        assert!(standing.tick(1.0), "the clock starts");
        assert!(!standing.tick(599_999.0));
        assert!(standing.tick(600_000.0), "the mute runs out");
        assert!(!standing.silenced());
        assert_eq!(standing.status(Role::Player, at("")), None);

        let lifted_by_hand = Standing::new(Some(Mute { until_ms: None, reason: String::new() }), 0);
        let line = lifted_by_hand.status(Role::Player, at(""));
        assert_eq!(line.as_deref(), Some("You are muted until a moderator lifts it"));
    }

    #[test]
    fn live_events_naming_the_user_mute_unmute_and_remove_them() {
        let mut standing = Standing::default();
        assert!(standing.take(&mute("me", None, "spam"), "me"));
        assert!(!standing.take(&mute("bob", None, ""), "me"), "someone else's mute");
        assert!(standing.silenced());
        assert!(standing.take(&Action::Unmute { user_id: "me".into() }, "me"));
        assert!(!standing.silenced());
        assert!(!standing.take(&Action::Remove { seq: 1 }, "me"));
        assert!(standing.take(&ban("me", None, "cheating"), "me"));
        assert!(standing.silenced());
        assert_eq!(standing.status(Role::Player, at("")), None, "the removal says it all");
        assert_eq!(
            standing.removal_text(at("")).as_deref(),
            Some("You are banned from this room for good (reason: cheating).")
        );
        let kicked =
            Standing { removal: Some(Removal::Kicked { reason: String::new() }), ..Standing::default() };
        assert_eq!(kicked.removal_text(at("")).as_deref(), Some("A moderator removed you from this room."));
        let banned = Standing { removal: Removal::of(&ban("me", Some(5), ""), "me"), ..Standing::default() };
        assert_eq!(
            banned.removal_text(at("3 Jan, 16:04")).as_deref(),
            Some("You are banned from this room until 3 Jan, 16:04.")
        );
    }

    #[test]
    fn slow_mode_counts_down_for_players_and_ends_when_turned_off() {
        let mut standing = Standing::default();
        assert!(standing.take(&Action::SlowMode { seconds: 30 }, "me"));
        assert_eq!(
            standing.status(Role::Player, at("")).as_deref(),
            Some("Slow mode is on: one message every 30 seconds")
        );
        assert_eq!(standing.status(Role::Moderator, at("")), None, "moderators are not held back");
        standing.wait(1_000.0, 30_000.0);
        assert_eq!(
            standing.status(Role::Player, at("")).as_deref(),
            Some("Slow mode: you can send again in 30 s")
        );
        assert!(standing.tick(19_500.0), "the countdown moves on");
        assert_eq!(
            standing.status(Role::Player, at("")).as_deref(),
            Some("Slow mode: you can send again in 12 s")
        );
        assert!(!standing.silenced(), "a player may still type");
        assert!(standing.tick(31_000.0));
        assert_eq!(standing.send_again_at, None);
        standing.wait(40_000.0, 30_000.0);
        assert!(standing.welcomed(None, 0), "slow mode turned off meanwhile");
        assert_eq!(standing.send_again_at, None);
        assert!(!standing.welcomed(None, 0));
    }

    #[test]
    fn a_kick_or_ban_naming_the_page_user_removes_them() {
        let kick = Action::Kick { user_id: "me".into(), reason: "rude".into() };
        assert_eq!(Removal::of(&kick, "me"), Some(Removal::Kicked { reason: "rude".into() }));
        assert_eq!(Removal::of(&kick, "ana"), None);
        assert_eq!(
            Removal::of(&ban("me", Some(5), ""), "me"),
            Some(Removal::Banned { until_ms: Some(5), reason: String::new() })
        );
        assert_eq!(Removal::of(&mute("me", None, ""), "me"), None);
    }

    fn report(id: i64) -> Report {
        Report {
            id,
            seq: id * 10,
            author: "bob".into(),
            body: format!("text {id}"),
            reporter: "ana".into(),
            reason: String::new(),
            at_ms: id,
        }
    }

    fn ids(queue: &ReportQueue) -> Vec<i64> {
        queue.iter().map(|r| r.id).collect()
    }

    #[test]
    fn reports_come_and_go_live_once_each_oldest_first() {
        let mut queue = ReportQueue::new(vec![report(2), report(1)]);
        assert_eq!(ids(&queue), [1, 2]);
        queue.reported(report(3));
        queue.reported(report(3));
        assert_eq!(ids(&queue), [1, 2, 3]);
        queue.closed(2);
        queue.closed(9);
        assert_eq!(ids(&queue), [1, 3]);
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn a_read_keeps_what_came_live_meanwhile_and_drops_what_closed() {
        let mut queue = ReportQueue::new(vec![report(1), report(2)]);
        queue.reading();
        // While the read is under way: 3 is filed, 1 is closed.
        queue.reported(report(3));
        queue.closed(1);
        // The read saw 1 and 2 (before either frame).
        queue.loaded(vec![report(1), report(2)]);
        assert_eq!(ids(&queue), [2, 3]);
        // A later read is the truth again: 2 was closed while disconnected.
        queue.reading();
        queue.loaded(vec![report(3)]);
        assert_eq!(ids(&queue), [3]);
        queue.closed(3);
        assert!(queue.is_empty());
    }
}
