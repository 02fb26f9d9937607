//! Who is online and who is typing in a room, as a page shows them: plain
//! data fed by the room stream (the welcome, presence and typing frames),
//! so the rules are tested without a browser.
//!
//! Presence is unknown until the welcome: the server-rendered page cannot
//! know it, and the page renders exactly what the server did until the
//! stream says more. A typing notice is shown for [`TYPING_SHOWN_MS`] after
//! the last one, or until a message of that user arrives; a page sends one
//! at most every [`TYPING_EVERY_MS`] while its user types.
use std::collections::BTreeSet;

/// How long a user counts as typing after their last notice. Pages send one
/// every [`TYPING_EVERY_MS`] while typing, so one lost notice does not
/// make the line flicker.
pub const TYPING_SHOWN_MS: f64 = 4000.0;
/// How often a page tells the room its user is typing, at most.
pub const TYPING_EVERY_MS: f64 = 2000.0;

/// The members online in the room (on any node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Online {
    users: BTreeSet<String>,
}

impl Online {
    /// Everyone online, as the welcome lists them.
    pub fn replace(&mut self, users: Vec<String>) {
        self.users = users.into_iter().collect();
    }

    /// A user came online or went offline.
    pub fn set(&mut self, user_id: &str, online: bool) {
        if online {
            self.users.insert(user_id.to_owned());
        } else {
            self.users.remove(user_id);
        }
    }

    pub fn is_online(&self, user_id: &str) -> bool {
        self.users.contains(user_id)
    }
}

/// The users typing now, in the order they started, with when each was
/// last heard typing (ms since the epoch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Typists {
    who: Vec<(String, f64)>,
}

impl Typists {
    /// `user_id` is typing (heard at `now_ms`).
    pub fn typing(&mut self, user_id: &str, now_ms: f64) {
        match self.who.iter_mut().find(|(user, _)| user == user_id) {
            Some((_, at)) => *at = now_ms,
            None => self.who.push((user_id.to_owned(), now_ms)),
        }
    }

    /// `user_id` stopped typing (their message arrived, they went
    /// offline). Returns whether they were shown.
    pub fn stopped(&mut self, user_id: &str) -> bool {
        let before = self.who.len();
        self.who.retain(|(user, _)| user != user_id);
        self.who.len() != before
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.who.iter().any(|(user, _)| user == user_id)
    }

    /// Drops who has not been heard typing for [`TYPING_SHOWN_MS`].
    /// Returns whether anyone was dropped.
    pub fn expire(&mut self, now_ms: f64) -> bool {
        let before = self.who.len();
        self.who.retain(|(_, at)| now_ms - *at < TYPING_SHOWN_MS);
        self.who.len() != before
    }

    /// The line under the conversation, if anyone is typing.
    pub fn line(&self) -> Option<String> {
        match self.who.as_slice() {
            [] => None,
            [(one, _)] => Some(format!("{one} is typing…")),
            [(first, _), (second, _)] => Some(format!("{first} and {second} are typing…")),
            _ => Some("Several people are typing…".to_owned()),
        }
    }
}

/// Whether a page tells the room its user is typing now: the draft holds
/// something and the last notice went out at least [`TYPING_EVERY_MS`] ago
/// (`last_sent_ms` is `None` before the first).
pub fn typing_notice_due(draft: &str, last_sent_ms: Option<f64>, now_ms: f64) -> bool {
    !draft.trim().is_empty() && last_sent_ms.is_none_or(|at| now_ms - at >= TYPING_EVERY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_welcome_sets_who_is_online_and_presence_frames_follow() {
        let mut online = Online::default();
        assert!(!online.is_online("ana"), "nobody is known online before the welcome");
        online.replace(vec!["ana".into(), "bob".into()]);
        assert!(online.is_online("ana") && online.is_online("bob"));
        online.set("bob", false);
        online.set("carl", true);
        online.set("carl", true);
        assert!(!online.is_online("bob"));
        assert!(online.is_online("carl"));
        online.replace(vec!["dan".into()]);
        assert!(!online.is_online("ana"), "a later welcome replaces everything");
        assert!(online.is_online("dan"));
    }

    #[test]
    fn the_typing_line_names_one_or_two_people_and_counts_more() {
        let mut typists = Typists::default();
        assert_eq!(typists.line(), None);
        typists.typing("ana", 0.0);
        assert_eq!(typists.line().as_deref(), Some("ana is typing…"));
        typists.typing("bob", 10.0);
        typists.typing("ana", 20.0);
        assert_eq!(typists.line().as_deref(), Some("ana and bob are typing…"), "in the order they started");
        typists.typing("carl", 30.0);
        assert_eq!(typists.line().as_deref(), Some("Several people are typing…"));
        assert!(typists.stopped("ana"));
        assert!(!typists.stopped("ana"));
        assert_eq!(typists.line().as_deref(), Some("bob and carl are typing…"));
    }

    #[test]
    fn a_typist_not_heard_from_for_a_while_is_dropped() {
        let mut typists = Typists::default();
        typists.typing("ana", 0.0);
        typists.typing("bob", 3000.0);
        assert!(!typists.expire(TYPING_SHOWN_MS - 1.0));
        assert!(typists.expire(TYPING_SHOWN_MS));
        assert!(!typists.contains("ana"));
        assert_eq!(typists.line().as_deref(), Some("bob is typing…"));
        typists.typing("bob", 6000.0);
        assert!(!typists.expire(6000.0 + TYPING_SHOWN_MS - 1.0), "a new notice keeps bob shown");
    }

    #[test]
    fn typing_notices_go_out_at_most_every_two_seconds_and_only_for_a_draft() {
        assert!(typing_notice_due("h", None, 0.0));
        assert!(!typing_notice_due("  ", None, 0.0), "a blank draft is not typing");
        assert!(!typing_notice_due("hi", Some(1000.0), 2999.0));
        assert!(typing_notice_due("hi", Some(1000.0), 1000.0 + TYPING_EVERY_MS));
    }
}
