//! What a page shows of a room, as plain data: the conversation (stored
//! messages in seq order, then this page's own messages not stored yet) and
//! the member list. Stream frames and older history pages are applied
//! here, so the rules (no duplicates, seq order, pending until
//! acknowledged, which lines start a group) are tested without a browser.
//!
//! A message the server refuses (too fast, too long, muted) is never lost:
//! it stays among the page's own lines, in the order it was typed, marked
//! with the server's reason, until the person retries it (it goes out
//! again as a new pending message, with a new id, at the end) or dismisses
//! it. Refused lines live in the page only: the server never stored them,
//! so a reload drops them.
//!
//! Moderation takes its place in the same order: an event (a mute, a
//! kick, slow mode) is a line of its own, shown as a notice; a removal
//! shows no line but marks the removed message, whose text is gone (a
//! history page or a replay brings a removed message marked already).
//!
//! What a player the page's user blocked writes is kept but not shown
//! (moderation notices about them still are); unblocking shows it again.
use crate::protocol::moderation::{Action, Removed};
use crate::protocol::ChatMessage;

/// One line of the conversation as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// `None` while the message is this page's own and not stored
    /// (pending or refused).
    pub seq: Option<i64>,
    pub user_id: String,
    pub body: String,
    pub client_msg_id: String,
    pub at_ms: Option<i64>,
    /// Why the server refused the message (a sentence for people); `None`
    /// unless refused.
    pub refused: Option<String>,
    /// Set for a moderation event: a notice, not a message anyone wrote
    /// (`user_id` is who acted).
    pub action: Option<Action>,
    /// Set once the message was removed (its `body` is then empty).
    pub removed: Option<Removed>,
    /// Posted by the game itself (shown apart, as the game's).
    pub system: bool,
}

impl Line {
    /// Sent (or waiting to be sent), not stored yet.
    pub fn is_pending(&self) -> bool {
        self.seq.is_none() && self.refused.is_none()
    }

    /// A moderation event, shown as a notice.
    pub fn is_notice(&self) -> bool {
        self.action.is_some()
    }

    /// Whether the line is shown: a removal is not (the removed message
    /// says so in its place).
    fn is_shown(&self) -> bool {
        !matches!(self.action, Some(Action::Remove { .. }))
    }

    /// Stable key for keyed rendering: the seq once stored (and whether
    /// removed: a line losing its text re-renders), else the page's own id
    /// with its state (a pending line turning into a stored or a refused
    /// one re-renders).
    pub fn key(&self) -> String {
        match (self.seq, &self.refused) {
            (Some(seq), _) if self.removed.is_some() => format!("s{seq}x"),
            (Some(seq), _) => format!("s{seq}"),
            (None, Some(_)) => format!("r{}", self.client_msg_id),
            (None, None) => format!("p{}", self.client_msg_id),
        }
    }

    /// The first words of the message, to name what a button acts on.
    pub fn preview(&self) -> String {
        preview(&self.body)
    }
}

/// Whether `body` names `user_id` as `@user_id` (letters in any case), not
/// inside a longer name or an address: `@ana,`, `(@ANA)`,
/// `@ana.`, `“@ana”`, `@ana’s` and `@ana！` do; `@anna`, `@ana_b`, `@ana.b`
/// and `x@ana` do not. Beyond ASCII, what is not punctuation, a symbol or
/// an emoji (by their blocks: Unicode's letter tables would cost the page's
/// download several kilobytes) counts as part of a name.
pub fn mentions(body: &str, user_id: &str) -> bool {
    let word = |c: char| {
        if c.is_ascii() {
            return c.is_ascii_alphanumeric() || c == '_' || c == '-';
        }
        !(c.is_whitespace()
            || matches!(
                c,
                '\u{A0}'..='\u{BF}'
                    | '\u{D7}'
                    | '\u{F7}'
                    | '\u{5BE}'
                    | '\u{5F3}'..='\u{5F4}'
                    | '\u{60C}'
                    | '\u{61B}'
                    | '\u{61F}'
                    | '\u{6D4}'
                    | '\u{964}'..='\u{965}'
                    // General punctuation, but the joiners, which are part of names.
                    | '\u{2000}'..='\u{200B}'
                    | '\u{200E}'..='\u{206F}'
                    | '\u{2190}'..='\u{2BFF}'
                    | '\u{3000}'..='\u{303F}'
                    | '\u{FE30}'..='\u{FE4F}'
                    | '\u{FF00}'..='\u{FF0F}'
                    | '\u{FF1A}'..='\u{FF20}'
                    | '\u{FF3B}'..='\u{FF40}'
                    | '\u{FF5B}'..='\u{FF65}'
                    | '\u{1F000}'..='\u{1FAFF}'
            ))
    };
    if user_id.is_empty() || !body.contains('@') {
        return false;
    }
    let (body, user_id) = (lower(body), lower(user_id));
    body.match_indices('@').any(|(at, _)| {
        let rest = &body[at + 1..];
        let Some(after) = rest.strip_prefix(user_id.as_str()) else { return false };
        let mut after = after.chars();
        let ends = match after.next() {
            Some('.') => !after.next().is_some_and(word),
            Some(c) => !word(c),
            None => true,
        };
        ends && !body[..at].chars().next_back().is_some_and(word)
    })
}

/// `text` in lower case, as Unicode has it: the browser's own tables on
/// the page (Rust's would add kilobytes to its download), Rust's on the
/// server.
/// Final sigma as sigma: a name lowered alone ends in `ς`, within a
/// message (`@ΝΙΚΟΣ's`) it may not.
fn lower(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    let lower: String = js_sys::JsString::from(text).to_lower_case().into();
    #[cfg(not(feature = "hydrate"))]
    let lower = text.to_lowercase();
    lower.replace('ς', "σ")
}

/// The first words of a text (about 30 characters, cut between words), to
/// name what a button acts on.
pub fn preview(text: &str) -> String {
    const MAX_CHARS: usize = 30;
    let text = text.trim();
    match text.char_indices().nth(MAX_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => {
            // Cut between words when there is a space to cut at.
            let cut = if text[end..].starts_with(char::is_whitespace) {
                end
            } else {
                text[..end].rfind(char::is_whitespace).filter(|&at| at > 0).unwrap_or(end)
            };
            format!("{}…", text[..cut].trim_end())
        }
    }
}

impl From<ChatMessage> for Line {
    fn from(m: ChatMessage) -> Self {
        Line {
            seq: Some(m.seq),
            user_id: m.user_id,
            body: m.body,
            client_msg_id: m.client_msg_id,
            at_ms: Some(m.at_ms),
            refused: None,
            action: m.action,
            removed: m.removed,
            system: m.system,
        }
    }
}

/// Consecutive messages of one user closer together than this form one
/// group: the name is shown once, above the first.
pub const GROUP_GAP_MS: i64 = 5 * 60 * 1000;

/// Whether `line` starts a new group after `previous` (a different
/// author, or a pause of more than [`GROUP_GAP_MS`]). A pending line has no
/// time yet: it joins its author's group. A notice stands alone: it starts
/// a group, and so does the message after it (which shows its author's
/// name again).
pub fn starts_group(previous: Option<&Line>, line: &Line) -> bool {
    let Some(previous) = previous else { return true };
    if previous.user_id != line.user_id
        || previous.system != line.system
        || previous.is_notice()
        || line.is_notice()
    {
        return true;
    }
    match (previous.at_ms, line.at_ms) {
        (Some(before), Some(at)) => at.saturating_sub(before) > GROUP_GAP_MS,
        _ => false,
    }
}

/// A room's conversation on one page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    stored: Vec<Line>,
    /// This page's messages not stored yet, pending or refused, in the
    /// order they were typed.
    own: Vec<Line>,
    /// Whether the room has messages older than the first stored line.
    has_older: bool,
    /// Where the shown history starts when it was replaced after a long
    /// disconnection (the seq the replay started after), else 0.
    start_after: i64,
    /// The players the page's user has blocked, sorted (a lookup per line
    /// drawn): their messages are kept (unblocking shows them again) but
    /// not shown.
    blocked: Vec<String>,
}

impl Conversation {
    /// Starts from the history a page was rendered with (oldest first).
    pub fn from_history(history: Vec<ChatMessage>) -> Self {
        Self::from_page(history, false)
    }

    /// Starts from the latest page of history; `has_older` says whether
    /// the room has older messages to load on demand.
    pub fn from_page(history: Vec<ChatMessage>, has_older: bool) -> Self {
        Self::from_page_blocking(history, has_older, Vec::new())
    }

    /// [`from_page`](Self::from_page), for a user who has blocked `blocked`.
    pub fn from_page_blocking(history: Vec<ChatMessage>, has_older: bool, blocked: Vec<String>) -> Self {
        let mut conversation = Conversation { has_older, ..Conversation::default() };
        conversation.set_blocked_list(blocked);
        for message in history {
            conversation.apply(message);
        }
        conversation
    }

    /// Where the next page of older history ends (its messages have seqs
    /// below this), or `None` when everything is shown.
    pub fn older_cursor(&self) -> Option<i64> {
        if !self.has_older {
            return None;
        }
        Some(self.stored.first().and_then(|l| l.seq).unwrap_or(self.start_after + 1))
    }

    /// Puts a page of older history, loaded with `cursor` = what
    /// [`older_cursor`](Self::older_cursor) said, before the lines shown.
    /// Lines already shown are not repeated. A page that no longer fits
    /// (the history was replaced meanwhile) is dropped: returns `false`.
    pub fn prepend_older(&mut self, cursor: i64, page: Vec<ChatMessage>, has_older: bool) -> bool {
        if self.older_cursor() != Some(cursor) {
            return false;
        }
        let mut older: Vec<Line> = page
            .into_iter()
            .filter(|m| m.seq < cursor && !self.stored.iter().any(|l| l.seq == Some(m.seq)))
            .map(Line::from)
            .collect();
        older.sort_by_key(|l| l.seq);
        older.dedup_by_key(|l| l.seq);
        self.stored.splice(0..0, older);
        self.has_older = has_older;
        true
    }

    /// Forgets the oldest stored lines when there are more than `most`,
    /// down to `keep`: a long session holds a bounded conversation. What
    /// is forgotten can be loaded again as older history.
    pub fn forget_oldest(&mut self, most: usize, keep: usize) {
        if self.stored.len() > most {
            self.stored.drain(..self.stored.len() - keep);
            self.has_older = true;
        }
    }

    /// The newest seq shown (0 when none): where a reconnect resumes.
    pub fn last_seq(&self) -> i64 {
        self.stored.last().and_then(|l| l.seq).unwrap_or(0)
    }

    /// Lines to render: stored ones in seq order (removals, and what
    /// blocked players wrote, aside), then this page's own (pending or
    /// refused) in the order they were typed.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.stored.iter().filter(|l| l.is_shown() && !self.hides(l)).chain(self.own.iter())
    }

    /// Whether `line` is hidden by a block: a message (not a moderation
    /// notice, nor the game's) of a blocked player.
    fn hides(&self, line: &Line) -> bool {
        !line.is_notice() && !line.system && self.is_blocked(&line.user_id)
    }

    /// Whether the page's user has blocked `user_id`.
    pub fn is_blocked(&self, user_id: &str) -> bool {
        self.blocked.binary_search_by(|b| b.as_str().cmp(user_id)).is_ok()
    }

    /// Whom the page's user has blocked, sorted.
    pub fn blocked(&self) -> &[String] {
        &self.blocked
    }

    /// The page's user blocked `user_id` (or, `blocked` false, lifted the
    /// block): their lines go (or come back). Whether anything changed.
    pub fn set_blocked(&mut self, user_id: &str, blocked: bool) -> bool {
        match (self.blocked.binary_search_by(|b| b.as_str().cmp(user_id)), blocked) {
            (Err(at), true) => self.blocked.insert(at, user_id.to_owned()),
            (Ok(at), false) => {
                self.blocked.remove(at);
            }
            _ => return false,
        }
        true
    }

    /// Replaces the whole list (a welcome's).
    pub fn set_blocked_list(&mut self, mut blocked: Vec<String>) {
        blocked.sort_unstable();
        blocked.dedup();
        self.blocked = blocked;
    }

    /// When `user_id`'s latest stored message shown was sent, if any.
    pub fn last_sent_at(&self, user_id: &str) -> Option<i64> {
        self.stored.iter().rev().find(|l| l.user_id == user_id && !l.is_notice()).and_then(|l| l.at_ms)
    }

    /// The messages still to be stored: what a reconnect sends again.
    /// Refused ones are not among them (they go again only on a retry).
    pub fn pending(&self) -> impl Iterator<Item = &Line> {
        self.own.iter().filter(|l| l.is_pending())
    }

    /// Adds a message this page is sending, shown as pending.
    pub fn push_pending(&mut self, user_id: &str, client_msg_id: &str, body: &str) {
        self.own.push(Line {
            seq: None,
            user_id: user_id.to_owned(),
            body: body.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            at_ms: None,
            refused: None,
            action: None,
            removed: None,
            system: false,
        });
    }

    /// Applies a stored message from the server. Returns `false` when it was
    /// already shown (a replay overlapping live delivery) or is not shown
    /// (a blocked player's: kept, for an unblock). A stored message
    /// that matches one of this page's lines replaces it (even a refused
    /// one: stored after all, it was sent). A removal marks the message it
    /// names, if shown.
    pub fn apply(&mut self, message: ChatMessage) -> bool {
        let removed = || Removed { by: message.user_id.clone(), at_ms: message.at_ms };
        match &message.action {
            Some(Action::Remove { seq }) => self.mark_removed(|l| l.seq == Some(*seq), removed()),
            Some(Action::Purge { user_id }) => {
                self.mark_removed(|l| &l.user_id == user_id && l.seq < Some(message.seq), removed());
            }
            _ => {}
        }
        self.own.retain(|p| !(p.client_msg_id == message.client_msg_id && p.user_id == message.user_id));
        let seq = message.seq;
        let line = Line::from(message);
        let shown = !self.hides(&line);
        if seq <= self.last_seq() {
            if self.stored.iter().any(|l| l.seq == Some(seq)) {
                return false;
            }
            // Older than the newest shown but missing: keep seq order.
            let at = self.stored.partition_point(|l| l.seq < Some(seq));
            self.stored.insert(at, line);
            return shown;
        }
        self.stored.push(line);
        shown
    }
}

impl Conversation {
    /// The stored messages `which` picks were removed: their text goes.
    fn mark_removed(&mut self, which: impl Fn(&Line) -> bool, removed: Removed) {
        let shown = self.stored.iter_mut().filter(|l| l.removed.is_none() && l.action.is_none() && which(l));
        for line in shown {
            line.body.clear();
            line.removed = Some(removed.clone());
        }
    }

    /// The server confirmed one of this page's messages under `seq`. If the
    /// stored copy is already shown (a retry of a message stored before),
    /// the pending line goes; otherwise it stays until the copy arrives.
    pub fn ack(&mut self, client_msg_id: &str, seq: i64) {
        if seq <= self.last_seq() {
            self.own.retain(|p| p.client_msg_id != client_msg_id);
        }
    }

    /// The server resumes the stream after `resume_after`. If that is past
    /// the newest message shown, the page was too far behind to catch up
    /// message by message: what it shows is dropped (the page's own lines
    /// stay)
    /// and the replay that follows becomes the conversation; paging back
    /// continues from where the replay starts.
    pub fn resume_after(&mut self, resume_after: i64) {
        if resume_after > self.last_seq() {
            self.stored.clear();
            self.start_after = resume_after;
            self.has_older = resume_after > 0;
        }
    }

    /// The server refused one of this page's pending messages for
    /// `reason`: it stays where it is, marked refused, and is no longer
    /// sent again. Returns `false` when no pending line has that id.
    pub fn refuse(&mut self, client_msg_id: &str, reason: &str) -> bool {
        let Some(line) = self.own.iter_mut().find(|l| l.is_pending() && l.client_msg_id == client_msg_id)
        else {
            return false;
        };
        line.refused = Some(reason.to_owned());
        true
    }

    /// Refuses every pending message with `reason`: none will be sent.
    pub fn refuse_pending(&mut self, reason: &str) {
        for line in self.own.iter_mut().filter(|l| l.is_pending()) {
            line.refused = Some(reason.to_owned());
        }
    }

    /// Sends a refused message again: it becomes a new pending message
    /// under `new_client_msg_id`, at the end (after whatever was typed
    /// since). Returns its text, to send, or `None` when no refused line
    /// has that id.
    pub fn retry(&mut self, client_msg_id: &str, new_client_msg_id: &str) -> Option<String> {
        let mut line = self.take_refused(client_msg_id)?;
        line.client_msg_id = new_client_msg_id.to_owned();
        line.refused = None;
        let body = line.body.clone();
        self.own.push(line);
        Some(body)
    }

    /// The person let a refused message go: its line leaves the
    /// conversation. Returns `false` when no refused line has that id.
    pub fn dismiss(&mut self, client_msg_id: &str) -> bool {
        self.take_refused(client_msg_id).is_some()
    }

    fn take_refused(&mut self, client_msg_id: &str) -> Option<Line> {
        let at = self.own.iter().position(|l| l.refused.is_some() && l.client_msg_id == client_msg_id)?;
        Some(self.own.remove(at))
    }
}

/// The member list of a room on one page, in join order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members(Vec<String>);

impl Members {
    pub fn new(members: Vec<String>) -> Self {
        let mut list = Members::default();
        for m in members {
            list.add(m);
        }
        list
    }

    /// Adds a member; a member already listed stays where it is.
    pub fn add(&mut self, user_id: String) {
        if !self.0.contains(&user_id) {
            self.0.push(user_id);
        }
    }

    pub fn remove(&mut self, user_id: &str) {
        self.0.retain(|m| m != user_id);
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.0.iter().any(|m| m == user_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64, user: &str, id: &str) -> ChatMessage {
        ChatMessage {
            seq,
            user_id: user.into(),
            body: format!("body {seq}"),
            client_msg_id: id.into(),
            at_ms: seq * 1000,
            ..Default::default()
        }
    }

    fn seqs(c: &Conversation) -> Vec<Option<i64>> {
        c.lines().map(|l| l.seq).collect()
    }

    #[test]
    fn history_is_kept_in_seq_order() {
        let c = Conversation::from_history(vec![msg(2, "a", "x2"), msg(1, "a", "x1")]);
        assert_eq!(seqs(&c), [Some(1), Some(2)]);
        assert_eq!(c.last_seq(), 2);
    }

    #[test]
    fn a_message_seen_twice_is_shown_once() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        assert!(c.apply(msg(2, "b", "y")));
        assert!(!c.apply(msg(2, "b", "y")));
        assert!(!c.apply(msg(1, "a", "x1")));
        assert_eq!(seqs(&c), [Some(1), Some(2)]);
    }

    #[test]
    fn a_pending_message_is_replaced_by_its_stored_copy() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        c.push_pending("me", "m1", "hello");
        c.push_pending("me", "m2", "again");
        assert_eq!(seqs(&c), [Some(1), None, None]);
        assert!(c.lines().nth(1).unwrap().is_pending());

        c.apply(msg(2, "me", "m1"));
        assert_eq!(seqs(&c), [Some(1), Some(2), None]);
        assert_eq!(c.pending().count(), 1);
    }

    #[test]
    fn someone_else_using_the_same_client_id_does_not_confirm_mine() {
        let mut c = Conversation::default();
        c.push_pending("me", "m1", "hello");
        c.apply(msg(1, "other", "m1"));
        assert_eq!(c.pending().count(), 1);
    }

    #[test]
    fn a_late_older_message_is_inserted_in_order() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "1"), msg(3, "a", "3")]);
        assert!(c.apply(msg(2, "a", "2")));
        assert_eq!(seqs(&c), [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn an_ack_for_a_message_already_shown_clears_the_pending_line() {
        let mut c = Conversation::from_history(vec![msg(1, "me", "m1")]);
        c.push_pending("me", "m1", "body 1");
        c.push_pending("me", "m2", "later");
        c.ack("m1", 1);
        c.ack("m2", 5);
        assert_eq!(c.pending().map(|l| l.client_msg_id.as_str()).collect::<Vec<_>>(), ["m2"]);
    }

    /// What the page's own lines show: (id, body, refusal).
    fn own(c: &Conversation) -> Vec<(String, String, Option<String>)> {
        c.lines()
            .filter(|l| l.seq.is_none())
            .map(|l| (l.client_msg_id.clone(), l.body.clone(), l.refused.clone()))
            .collect()
    }

    fn typed(c: &mut Conversation, ids: &[&str]) {
        for id in ids {
            c.push_pending("me", id, &format!("text {id}"));
        }
    }

    const TOO_FAST: &str = "You are sending messages too fast. Please wait a moment.";

    #[test]
    fn a_refused_message_keeps_its_text_reason_and_place() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        typed(&mut c, &["m1", "m2", "m3"]);
        assert!(c.refuse("m2", TOO_FAST));

        assert_eq!(seqs(&c), [Some(1), None, None, None]);
        let refused = c.lines().nth(2).unwrap();
        assert_eq!(refused.body, "text m2");
        assert_eq!(refused.refused.as_deref(), Some(TOO_FAST));
        assert!(!refused.is_pending());
        assert_eq!(refused.key(), "rm2", "a line turning refused renders anew");
        assert_eq!(own(&c).iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["m1", "m2", "m3"]);
    }

    #[test]
    fn a_refusal_is_applied_once_and_only_to_a_pending_line() {
        let mut c = Conversation::default();
        typed(&mut c, &["m1"]);
        assert!(c.refuse("m1", "first"));
        assert!(!c.refuse("m1", "second"), "already refused");
        assert!(!c.refuse("unknown", "third"));
        assert_eq!(own(&c), [("m1".into(), "text m1".into(), Some("first".into()))]);
    }

    #[test]
    fn a_long_session_forgets_its_oldest_lines_which_load_again_as_older() {
        let history = (1..=600).map(|seq| msg(seq, "a", &format!("x{seq}"))).collect();
        let mut c = Conversation::from_history(history);
        c.forget_oldest(600, 500);
        assert_eq!(c.lines().count(), 600, "not past the most");
        assert_eq!(c.older_cursor(), None);
        c.apply(msg(601, "a", "x601"));
        c.forget_oldest(600, 500);
        assert_eq!(c.lines().count(), 500);
        assert_eq!((c.older_cursor(), c.last_seq()), (Some(102), 601));
        assert!(c.prepend_older(102, (92..102).map(|seq| msg(seq, "a", "again")).collect(), true));
        assert_eq!(c.lines().next().and_then(|l| l.seq), Some(92));
    }

    #[test]
    fn a_stream_closed_for_good_refuses_what_waits_and_only_that() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        typed(&mut c, &["m1", "m2", "m3"]);
        c.refuse("m1", TOO_FAST);
        c.apply(msg(2, "me", "m2"));
        c.refuse_pending("closed");
        assert_eq!(c.pending().count(), 0);
        let own = own(&c);
        assert_eq!(own[0].2.as_deref(), Some(TOO_FAST), "a refusal stands");
        assert_eq!(own.last().map(|l| (l.0.as_str(), l.2.as_deref())), Some(("m3", Some("closed"))));
        assert_eq!(seqs(&c), [Some(1), Some(2), None, None]);
    }

    #[test]
    fn a_refused_line_stays_below_messages_stored_after_it() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        typed(&mut c, &["m1", "m2", "m3"]);
        c.refuse("m2", TOO_FAST);
        c.apply(msg(2, "me", "m1"));
        c.apply(msg(3, "b", "y"));
        c.apply(msg(4, "me", "m3"));
        assert_eq!(seqs(&c), [Some(1), Some(2), Some(3), Some(4), None]);
        assert_eq!(c.lines().last().unwrap().client_msg_id, "m2");
    }

    #[test]
    fn a_refused_message_is_not_sent_again_after_a_reconnect() {
        let mut c = Conversation::default();
        typed(&mut c, &["m1", "m2", "m3"]);
        c.refuse("m2", TOO_FAST);
        let resend: Vec<&str> = c.pending().map(|l| l.client_msg_id.as_str()).collect();
        assert_eq!(resend, ["m1", "m3"]);
        // A history replacement keeps it too.
        c.resume_after(900);
        assert_eq!(own(&c).len(), 3);
        assert_eq!(c.pending().count(), 2);
    }

    #[test]
    fn a_retry_sends_the_text_again_as_a_new_pending_message_at_the_end() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        typed(&mut c, &["m1", "m2", "m3"]);
        c.refuse("m1", TOO_FAST);
        c.apply(msg(2, "me", "m2"));

        assert_eq!(c.retry("m1", "n1").as_deref(), Some("text m1"));
        assert_eq!(seqs(&c), [Some(1), Some(2), None, None], "stored lines neither move nor repeat");
        assert_eq!(own(&c), [("m3".into(), "text m3".into(), None), ("n1".into(), "text m1".into(), None)]);
        assert_eq!(c.pending().map(|l| l.client_msg_id.as_str()).collect::<Vec<_>>(), ["m3", "n1"]);
        assert_eq!(c.lines().last().unwrap().user_id, "me");

        // Stored under its new id, it replaces the pending line once.
        assert!(c.apply(ChatMessage { body: "text m1".into(), ..msg(3, "me", "n1") }));
        assert_eq!(seqs(&c), [Some(1), Some(2), Some(3), None]);
    }

    #[test]
    fn only_a_refused_line_can_be_retried_or_dismissed() {
        let mut c = Conversation::from_history(vec![msg(1, "me", "m1")]);
        typed(&mut c, &["m2"]);
        assert_eq!(c.retry("m2", "n2"), None, "pending: already on its way");
        assert!(!c.dismiss("m2"));
        assert_eq!(c.retry("m1", "n1"), None, "stored");
        assert!(!c.dismiss("m1"));
        assert_eq!(seqs(&c), [Some(1), None]);
        assert_eq!(c.pending().count(), 1);
    }

    #[test]
    fn a_retry_refused_again_waits_at_the_end_for_another_retry() {
        let mut c = Conversation::default();
        typed(&mut c, &["m1", "m2"]);
        c.refuse("m1", TOO_FAST);
        c.retry("m1", "n1");
        assert!(!c.refuse("m1", TOO_FAST), "the old id is gone");
        assert!(c.refuse("n1", TOO_FAST));
        assert_eq!(own(&c).iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["m2", "n1"]);
        assert_eq!(c.retry("n1", "o1").as_deref(), Some("text m1"));
    }

    #[test]
    fn dismissing_removes_only_that_line() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        typed(&mut c, &["m1", "m2", "m3", "m4"]);
        c.refuse("m2", TOO_FAST);
        c.refuse("m3", TOO_FAST);
        assert!(c.dismiss("m2"));
        assert!(!c.dismiss("m2"));
        assert_eq!(seqs(&c), [Some(1), None, None, None]);
        assert_eq!(own(&c).iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["m1", "m3", "m4"]);
        assert_eq!(c.pending().count(), 2);
    }

    #[test]
    fn acks_and_messages_of_other_lines_leave_a_refused_line_alone() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "x1")]);
        typed(&mut c, &["m1", "m2", "m3"]);
        c.refuse("m2", TOO_FAST);
        c.apply(msg(2, "me", "m1"));
        c.ack("m1", 2);
        c.ack("m3", 3);
        c.apply(msg(3, "me", "m3"));
        c.apply(msg(4, "other", "m2"));
        assert_eq!(own(&c), [("m2".into(), "text m2".into(), Some(TOO_FAST.into()))]);
    }

    #[test]
    fn a_refused_message_that_was_stored_after_all_shows_once_as_stored() {
        let mut c = Conversation::default();
        typed(&mut c, &["m1"]);
        c.refuse("m1", "Something went wrong on our side. Please try again.");
        assert!(c.apply(msg(1, "me", "m1")));
        assert_eq!(seqs(&c), [Some(1)]);
    }

    #[test]
    fn a_preview_names_a_message_by_its_first_words() {
        let line = |body: &str| Line { body: body.into(), ..line("me", None) };
        assert_eq!(line("  short one ").preview(), "short one");
        assert_eq!(
            line("the quick brown fox jumps over the lazy dog").preview(),
            "the quick brown fox jumps over…"
        );
        assert_eq!(
            line("the quick brown fox jumped over the lazy dog").preview(),
            "the quick brown fox jumped…"
        );
        assert_eq!(line(&"é".repeat(40)).preview(), format!("{}…", "é".repeat(30)));
    }

    #[test]
    fn a_page_too_far_behind_replaces_its_history_but_keeps_pending_lines() {
        let mut c = Conversation::from_history(vec![msg(1, "a", "1"), msg(2, "a", "2")]);
        c.push_pending("me", "m1", "typed offline");
        c.resume_after(2);
        assert_eq!(c.last_seq(), 2, "resuming right after the last line keeps everything");
        c.resume_after(900);
        assert_eq!(seqs(&c), [None]);
        c.apply(msg(901, "b", "x"));
        assert_eq!(seqs(&c), [Some(901), None]);
    }

    fn page(seqs: std::ops::RangeInclusive<i64>) -> Vec<ChatMessage> {
        seqs.map(|s| msg(s, "a", &format!("x{s}"))).collect()
    }

    #[test]
    fn older_pages_go_before_the_lines_shown_in_order_without_duplicates() {
        let mut c = Conversation::from_page(page(101..=150), true);
        c.push_pending("me", "m1", "typing");
        assert_eq!(c.older_cursor(), Some(101));

        // A page that overlaps what is shown adds only the missing lines.
        assert!(c.prepend_older(101, page(51..=101), true));
        assert_eq!(c.older_cursor(), Some(51));
        assert!(c.prepend_older(51, page(1..=50), false));
        assert_eq!(c.older_cursor(), None);

        let expected: Vec<Option<i64>> = (1..=150).map(Some).chain([None]).collect();
        assert_eq!(seqs(&c), expected);
        assert_eq!(c.last_seq(), 150, "paging back does not move the resume point");
    }

    #[test]
    fn a_page_loaded_for_an_old_cursor_is_dropped() {
        let mut c = Conversation::from_page(page(101..=150), true);
        assert!(c.prepend_older(101, page(51..=100), true));
        // The same answer again (a double click, a retry) changes nothing.
        assert!(!c.prepend_older(101, page(51..=100), true));
        assert_eq!(c.lines().count(), 100);
        // Nothing older to load: nothing is prepended.
        let mut done = Conversation::from_page(page(1..=3), false);
        assert!(!done.prepend_older(1, page(1..=3), false));
        assert_eq!(done.lines().count(), 3);
    }

    #[test]
    fn a_page_with_unordered_or_repeated_messages_is_still_merged_in_order() {
        let mut c = Conversation::from_page(page(10..=12), true);
        let mut messy = page(5..=9);
        messy.reverse();
        messy.push(msg(7, "a", "x7"));
        messy.push(msg(11, "a", "x11"));
        assert!(c.prepend_older(10, messy, true));
        assert_eq!(seqs(&c), (5..=12).map(Some).collect::<Vec<_>>());
        assert_eq!(c.older_cursor(), Some(5));
    }

    #[test]
    fn after_a_history_replacement_paging_back_continues_below_the_replay() {
        let mut c = Conversation::from_page(page(1..=50), false);
        assert_eq!(c.older_cursor(), None);
        // Far behind: the server replays from 900 on.
        c.resume_after(900);
        assert_eq!(c.older_cursor(), Some(901), "before the replay arrives");
        // A page requested before the replacement no longer fits.
        assert!(!c.prepend_older(1, page(1..=1), false));
        c.apply(msg(901, "b", "x901"));
        c.apply(msg(902, "b", "x902"));
        assert_eq!(c.older_cursor(), Some(901));
        assert!(c.prepend_older(901, page(851..=900), true));
        assert_eq!(seqs(&c).first(), Some(&Some(851)));
        assert_eq!(c.lines().count(), 52);
    }

    fn line(user: &str, at_ms: Option<i64>) -> Line {
        Line {
            seq: at_ms.map(|_| 1),
            user_id: user.into(),
            body: String::new(),
            client_msg_id: String::new(),
            at_ms,
            refused: None,
            action: None,
            removed: None,
            system: false,
        }
    }

    #[test]
    fn consecutive_messages_of_one_user_form_a_group_until_a_pause() {
        let first = line("ana", Some(0));
        assert!(starts_group(None, &first));
        assert!(!starts_group(Some(&first), &line("ana", Some(GROUP_GAP_MS))));
        assert!(starts_group(Some(&first), &line("ana", Some(GROUP_GAP_MS + 1))));
        assert!(starts_group(Some(&first), &line("bob", Some(1))));
        assert!(!starts_group(Some(&first), &line("ana", None)), "a pending line joins its group");
        assert!(starts_group(Some(&first), &line("bob", None)));
    }

    fn action(seq: i64, by: &str, action: Action) -> ChatMessage {
        ChatMessage {
            seq,
            user_id: by.into(),
            client_msg_id: format!("action-{seq}"),
            at_ms: seq * 1000,
            action: Some(action),
            ..Default::default()
        }
    }

    fn removal(seq: i64, by: &str, removed_seq: i64) -> ChatMessage {
        action(seq, by, Action::Remove { seq: removed_seq })
    }

    #[test]
    fn a_removal_marks_the_message_and_shows_no_line_of_its_own() {
        let mut c = Conversation::from_history(vec![msg(1, "ana", "a1"), msg(2, "bob", "b2")]);
        let before = c.lines().nth(1).unwrap().key();
        assert!(c.apply(removal(3, "mod", 2)));
        assert_eq!(seqs(&c), [Some(1), Some(2)], "the removal itself is not shown");
        assert_eq!(c.last_seq(), 3, "but a reconnect resumes after it");
        let removed = c.lines().nth(1).unwrap();
        assert_eq!(removed.body, "", "the text is gone");
        assert_eq!(removed.removed, Some(Removed { by: "mod".into(), at_ms: 3000 }));
        assert_ne!(removed.key(), before, "a removed line renders anew");
        assert_eq!(c.lines().next().unwrap().body, "body 1");
    }

    #[test]
    fn a_purge_marks_what_its_user_wrote_before_it_and_nothing_else() {
        let history = vec![msg(1, "ana", "a1"), msg(2, "bob", "b2"), msg(3, "ana", "a3")];
        let mut c = Conversation::from_history(history);
        assert!(c.apply(action(4, "mod", Action::Purge { user_id: "ana".into() })));
        assert!(c.apply(msg(5, "ana", "a5")));
        let shown: Vec<_> = c.lines().map(|l| (l.seq, l.body.as_str(), l.removed.is_some())).collect();
        assert_eq!(
            shown,
            [
                (Some(1), "", true),
                (Some(2), "body 2", false),
                (Some(3), "", true),
                (Some(4), "", false), // the notice, by the moderator
                (Some(5), "body 5", false),
            ]
        );
    }

    #[test]
    fn a_replayed_removal_marks_the_message_once() {
        let mut c = Conversation::from_history(vec![msg(1, "ana", "a1")]);
        // Replayed after a reconnect: the message, then its removal, twice.
        assert!(c.apply(removal(2, "ana", 1)));
        assert!(!c.apply(removal(2, "ana", 1)));
        assert_eq!(c.lines().next().unwrap().removed.as_ref().map(|r| r.by.as_str()), Some("ana"));
        // A removal of a message not shown (older than the page) changes nothing.
        assert!(c.apply(removal(3, "mod", 0)));
        assert_eq!(seqs(&c), [Some(1)]);
    }

    #[test]
    fn history_brings_removed_messages_marked_already() {
        let removed = ChatMessage {
            body: String::new(),
            removed: Some(Removed { by: "mod".into(), at_ms: 9 }),
            ..msg(5, "bob", "b5")
        };
        let mut c = Conversation::from_page(vec![msg(6, "ana", "a6"), removal(7, "mod", 5)], true);
        assert!(c.prepend_older(6, vec![msg(4, "bob", "b4"), removed], false));
        assert_eq!(seqs(&c), [Some(4), Some(5), Some(6)]);
        let line = c.lines().nth(1).unwrap();
        assert_eq!((line.body.as_str(), line.removed.is_some()), ("", true));
    }

    #[test]
    fn a_notice_stands_alone_in_the_conversation() {
        let mute = Action::Mute { user_id: "bob".into(), until_ms: None, reason: String::new() };
        let mut c = Conversation::from_history(vec![msg(1, "mod", "m1")]);
        c.apply(action(2, "mod", mute));
        c.apply(msg(3, "mod", "m3"));
        c.apply(msg(4, "mod", "m4"));
        let lines: Vec<&Line> = c.lines().collect();
        assert!(lines[1].is_notice());
        assert!(starts_group(Some(lines[0]), lines[1]), "a notice after its author's message");
        assert!(starts_group(Some(lines[1]), lines[2]), "a message after a notice shows its author");
        assert!(!starts_group(Some(lines[2]), lines[3]));
        let notice = Line { at_ms: Some(2500), ..lines[1].clone() };
        assert!(
            starts_group(Some(&notice), &Line { at_ms: Some(2600), ..notice.clone() }),
            "notices do not group"
        );
    }

    #[test]
    fn a_removed_message_keeps_its_place_in_its_authors_group() {
        let mut c =
            Conversation::from_history(vec![msg(1, "ana", "a1"), msg(2, "ana", "a2"), msg(3, "ana", "a3")]);
        c.apply(removal(4, "ana", 2));
        let lines: Vec<&Line> = c.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(!starts_group(Some(lines[0]), lines[1]));
        assert!(!starts_group(Some(lines[1]), lines[2]));
    }

    #[test]
    fn the_time_of_a_users_last_message_skips_notices_and_others() {
        let slow = Action::SlowMode { seconds: 30 };
        let mut c = Conversation::from_history(vec![msg(1, "ana", "a1"), msg(2, "bob", "b2")]);
        c.apply(action(3, "ana", slow));
        assert_eq!(c.last_sent_at("ana"), Some(1000));
        assert_eq!(c.last_sent_at("cy"), None);
    }

    #[test]
    fn a_blocked_players_messages_are_kept_but_not_shown_until_unblocked() {
        let mut c = Conversation::from_page_blocking(
            vec![
                msg(1, "ana", "a1"),
                msg(2, "bob", "b2"),
                action(3, "bob", Action::SlowMode { seconds: 10 }),
            ],
            false,
            vec!["bob".into()],
        );
        // bob's notice (a moderator's) stays; his message does not.
        assert_eq!(seqs(&c), [Some(1), Some(3)]);
        assert!(!c.apply(msg(4, "bob", "b4")), "a blocked player's new message is not shown");
        let game = ChatMessage { system: true, ..msg(5, "bob", "g5") };
        assert!(c.apply(game), "the game's messages are never hidden");
        assert!(c.apply(msg(6, "cy", "c6")));
        assert_eq!(c.last_seq(), 6);
        assert!(c.set_blocked("bob", false));
        assert!(!c.set_blocked("bob", false));
        assert_eq!(seqs(&c), [Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)]);
        assert!(c.set_blocked("cy", true));
        assert!(c.is_blocked("cy"));
        assert_eq!(seqs(&c), [Some(1), Some(2), Some(3), Some(4), Some(5)]);
        c.set_blocked_list(vec![]);
        assert_eq!(c.lines().count(), 6);
    }

    #[test]
    fn a_mention_is_the_name_after_an_at_sign_and_nothing_more() {
        for body in [
            "@ana look",
            "hi @ana",
            "hi @ANA!",
            "(@ana)",
            "@ana, @bob",
            "ok @ana.",
            "@ana: yes",
            "@Ana\nnext",
            "“@ana”",
            "@ana’s turn",
            "@ana…",
            "@ana！",
            "@ana、はい",
            "—@ana",
            "@ana👍",
            "«@ana»",
            "@ana، سلام",
            "@ana।",
        ] {
            assert!(mentions(body, "ana"), "{body:?}");
        }
        for body in ["ana", "@anna", "@ana_b", "@ana-b", "@ana.b", "mail ana@ana.org", "x@ana", "@ an", "@"] {
            assert!(!mentions(body, "ana"), "{body:?}");
        }
        assert!(mentions("bonjour @Zoë !", "Zoë"));
        assert!(mentions("@Nguyễn Văn ơi", "Nguyễn Văn"));
        assert!(!mentions("@Nguyễn", "Nguyễn Văn"));
        assert!(!mentions("@کتاب\u{200C}ها", "کتاب"), "a joiner is part of the name");
        assert!(!mentions("@ana", ""));
    }

    #[test]
    fn a_mention_may_change_the_case_of_any_alphabet_a_name_is_written_in() {
        for (body, name) in [
            ("@zoë ?", "Zoë"),
            ("@ZOË", "zoë"),
            ("@émile", "Émile"),
            ("@łukasz", "Łukasz"),
            ("@ŞEYMA", "şeyma"),
            ("@nguyễn văn", "Nguyễn Văn"),
            ("@ΣΩΚΡΆΤΗΣ", "σωκράτης"),
            ("@иван", "Иван"),
            ("@ЁЖИК", "ёжик"),
            ("@ԱՐԱՄ", "արամ"),
            ("@ΝΙΚΟΣ's turn", "ΝΙΚΟΣ"),
            ("@νίκος", "ΝΊΚΟΣ"),
        ] {
            assert!(mentions(body, name), "{body:?} names {name:?}");
        }
        assert!(!mentions("@ivan", "Иван"), "a letter of another alphabet is another letter");
        assert!(!mentions("@zoe", "Zoë"));
    }

    #[test]
    fn members_are_listed_once_in_join_order() {
        let mut m = Members::new(vec!["john".into(), "ana".into(), "john".into()]);
        m.add("bob".into());
        m.add("ana".into());
        assert_eq!(m.iter().cloned().collect::<Vec<_>>(), ["john", "ana", "bob"]);
        m.remove("ana");
        assert!(!m.contains("ana"));
        assert_eq!(m.len(), 2);
    }
}
