//! What a page shows of a room, as plain data: the conversation (stored
//! messages in seq order, then this page's messages still waiting for the
//! server) and the member list. Stream frames are applied here, so the rules
//! (no duplicates, seq order, pending until acknowledged) are tested without
//! a browser.
use crate::protocol::ChatMessage;

/// One line of the conversation as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// `None` while the message is pending (sent, not yet stored).
    pub seq: Option<i64>,
    pub user_id: String,
    pub body: String,
    pub client_msg_id: String,
    pub at_ms: Option<i64>,
}

impl Line {
    pub fn is_pending(&self) -> bool {
        self.seq.is_none()
    }

    /// Stable key for keyed rendering: the seq once stored, else the
    /// page's own id (a pending line turning into a stored one re-renders).
    pub fn key(&self) -> String {
        match self.seq {
            Some(seq) => format!("s{seq}"),
            None => format!("p{}", self.client_msg_id),
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
        }
    }
}

/// A room's conversation on one page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    stored: Vec<Line>,
    pending: Vec<Line>,
}

impl Conversation {
    /// Starts from the history a page was rendered with (oldest first).
    pub fn from_history(history: Vec<ChatMessage>) -> Self {
        let mut conversation = Conversation::default();
        for message in history {
            conversation.apply(message);
        }
        conversation
    }

    /// The newest seq shown (0 when none): where a reconnect resumes.
    pub fn last_seq(&self) -> i64 {
        self.stored.last().and_then(|l| l.seq).unwrap_or(0)
    }

    /// Lines to render: stored ones in seq order, then pending ones in the
    /// order they were typed.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.stored.iter().chain(self.pending.iter())
    }

    pub fn pending(&self) -> impl Iterator<Item = &Line> {
        self.pending.iter()
    }

    /// Adds a message this page is sending, shown as pending.
    pub fn push_pending(&mut self, user_id: &str, client_msg_id: &str, body: &str) {
        self.pending.push(Line {
            seq: None,
            user_id: user_id.to_owned(),
            body: body.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            at_ms: None,
        });
    }

    /// Applies a stored message from the server. Returns `false` when it was
    /// already shown (a replay overlapping live delivery). A stored message
    /// that matches a pending one replaces it.
    pub fn apply(&mut self, message: ChatMessage) -> bool {
        self.pending.retain(|p| !(p.client_msg_id == message.client_msg_id && p.user_id == message.user_id));
        let seq = message.seq;
        if seq <= self.last_seq() {
            if self.stored.iter().any(|l| l.seq == Some(seq)) {
                return false;
            }
            // Older than the newest shown but missing: keep seq order.
            let at = self.stored.partition_point(|l| l.seq < Some(seq));
            self.stored.insert(at, message.into());
            return true;
        }
        self.stored.push(message.into());
        true
    }
}

impl Conversation {
    /// The server confirmed one of this page's messages under `seq`. If the
    /// stored copy is already shown (a retry of a message stored before),
    /// the pending line goes; otherwise it stays until the copy arrives.
    pub fn ack(&mut self, client_msg_id: &str, seq: i64) {
        if seq <= self.last_seq() {
            self.pending.retain(|p| p.client_msg_id != client_msg_id);
        }
    }

    /// The server resumes the stream after `resume_after`. If that is past
    /// the newest message shown, the page was too far behind to catch up
    /// message by message: what it shows is dropped (pending lines stay)
    /// and the replay that follows becomes the conversation.
    pub fn resume_after(&mut self, resume_after: i64) {
        if resume_after > self.last_seq() {
            self.stored.clear();
        }
    }

    /// The server refused one of this page's messages: it is not pending
    /// any more. Returns its text, to put back in the input.
    pub fn reject(&mut self, client_msg_id: &str) -> Option<String> {
        let at = self.pending.iter().position(|p| p.client_msg_id == client_msg_id)?;
        Some(self.pending.remove(at).body)
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

    #[test]
    fn a_refused_message_leaves_the_conversation() {
        let mut c = Conversation::default();
        c.push_pending("me", "m1", "too long");
        assert_eq!(c.reject("m1").as_deref(), Some("too long"));
        assert_eq!(c.reject("m1"), None);
        assert_eq!(c.lines().count(), 0);
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
