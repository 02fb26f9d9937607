//! Who is online in which room, as plain bookkeeping: the hub owns one
//! book and does the I/O (telling pages and other nodes), so the rules are
//! tested here without sockets or clocks.
//!
//! A user is online in a room while some page of theirs has it open on
//! some node. Each node counts its own pages exactly and believes other
//! nodes' word: a node says "online" when its first page of a user opens,
//! "offline" when its last one closes, and repeats "online" every beat for
//! the users it still has; one that stops (it crashed, or lost Redis) is
//! forgotten after a few beats. Several pages of one user, on one node or
//! several, count once: only a flip of the whole is news for the pages.
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// One user's presence in one room.
#[derive(Debug, Default)]
struct UserPresence {
    /// Pages open on this node.
    local: usize,
    /// Other nodes that say the user is online here, and when each said so last.
    remote: HashMap<String, Instant>,
}

impl UserPresence {
    fn online(&self) -> bool {
        self.local > 0 || !self.remote.is_empty()
    }
}

/// What a page opening or closing on this node means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The first page of the user opened here, or the last one closed:
    /// other nodes must be told.
    pub announce: bool,
    /// The user's presence as a whole flipped: this node's pages of the
    /// room must be told.
    pub flipped: bool,
}

/// Presence of every room this node knows about: room → user → where.
/// A room's users are kept sorted: every page that opens the room is sent
/// who is online, in that order (thousands of names in a big room). Only
/// users online are kept (see `tidy`).
#[derive(Debug, Default)]
pub struct PresenceBook {
    rooms: HashMap<String, BTreeMap<String, UserPresence>>,
}

impl PresenceBook {
    /// A page of `user` opened `room` on this node.
    pub fn connect(&mut self, room: &str, user: &str) -> Change {
        let entry = self.rooms.entry(room.to_owned()).or_default().entry(user.to_owned()).or_default();
        let was_online = entry.online();
        entry.local += 1;
        Change { announce: entry.local == 1, flipped: !was_online }
    }

    /// A page of `user` in `room` on this node closed.
    pub fn disconnect(&mut self, room: &str, user: &str) -> Change {
        let known = self.rooms.get_mut(room).and_then(|users| users.get_mut(user));
        let Some(entry) = known.filter(|entry| entry.local > 0) else { return Change::default() };
        entry.local -= 1;
        let change = Change { announce: entry.local == 0, flipped: !entry.online() };
        self.tidy(room, user);
        change
    }

    /// Another node says `user` is (or is no longer) online in `room`.
    /// Returns whether the user's presence as a whole flipped.
    pub fn remote(&mut self, room: &str, user: &str, node: &str, online: bool, now: Instant) -> bool {
        if online {
            let entry = self.rooms.entry(room.to_owned()).or_default().entry(user.to_owned()).or_default();
            let was_online = entry.online();
            entry.remote.insert(node.to_owned(), now);
            return !was_online;
        }
        // Only users online are kept: this one was.
        let Some(entry) = self.rooms.get_mut(room).and_then(|users| users.get_mut(user)) else {
            return false;
        };
        entry.remote.remove(node);
        let flipped = !entry.online();
        self.tidy(room, user);
        flipped
    }

    /// Forgets what other nodes said and did not repeat since
    /// `seen_before`; returns the (room, user) pairs that went offline.
    pub fn expire(&mut self, seen_before: Instant) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        self.rooms.retain(|room, users| {
            let offline = forget_remote(users, |seen| seen < seen_before);
            gone.extend(offline.into_iter().map(|user| (room.clone(), user)));
            !users.is_empty()
        });
        gone.sort();
        gone
    }

    /// Forgets what other nodes said about `room` (this node no longer hears
    /// it, so it could not follow); returns the users that went offline.
    pub fn forget_remote(&mut self, room: &str) -> Vec<String> {
        let Some(users) = self.rooms.get_mut(room) else { return Vec::new() };
        let gone = forget_remote(users, |_| true);
        if users.is_empty() {
            self.rooms.remove(room);
        }
        gone
    }

    /// The users online in `room` (on any node), sorted.
    pub fn online(&self, room: &str) -> Vec<String> {
        self.rooms
            .get(room)
            .map(|users| users.iter().filter(|(_, p)| p.online()).map(|(u, _)| u.clone()).collect())
            .unwrap_or_default()
    }

    /// The users with a page open on this node, in `room` or (`None`) in
    /// every room, sorted: what a beat repeats to the other nodes.
    pub fn local(&self, room: Option<&str>) -> Vec<(String, String)> {
        let rooms: Vec<_> = match room {
            Some(room) => self.rooms.get_key_value(room).into_iter().collect(),
            None => self.rooms.iter().collect(),
        };
        let mut pairs: Vec<(String, String)> = rooms
            .into_iter()
            .flat_map(|(room, users)| {
                users.iter().filter(|(_, p)| p.local > 0).map(move |(user, _)| (room.clone(), user.clone()))
            })
            .collect();
        pairs.sort();
        pairs
    }

    /// Drops a user nobody has online any more, and a room left empty, so
    /// the book does not grow with every room ever visited.
    fn tidy(&mut self, room: &str, user: &str) {
        let Some(users) = self.rooms.get_mut(room) else { return };
        if users.get(user).is_some_and(|p| !p.online()) {
            users.remove(user);
        }
        if users.is_empty() {
            self.rooms.remove(room);
        }
    }
}

/// Forgets what other nodes said about a room's users where `stale` says
/// so (of when they said it last); drops the users who went offline and
/// returns them, sorted.
fn forget_remote(users: &mut BTreeMap<String, UserPresence>, stale: impl Fn(Instant) -> bool) -> Vec<String> {
    let mut gone = Vec::new();
    users.retain(|user, entry| {
        entry.remote.retain(|_, seen| !stale(*seen));
        if !entry.online() {
            gone.push(user.clone());
        }
        entry.online()
    });
    gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ANNOUNCED_FLIP: Change = Change { announce: true, flipped: true };
    const NOTHING: Change = Change { announce: false, flipped: false };

    #[test]
    fn several_pages_of_one_user_count_once() {
        let mut book = PresenceBook::default();
        assert_eq!(book.connect("r", "ana"), ANNOUNCED_FLIP);
        assert_eq!(book.connect("r", "ana"), NOTHING);
        assert_eq!(book.online("r"), ["ana"]);
        assert_eq!(book.disconnect("r", "ana"), NOTHING, "one page still open");
        assert_eq!(book.online("r"), ["ana"]);
        assert_eq!(book.disconnect("r", "ana"), ANNOUNCED_FLIP);
        assert!(book.online("r").is_empty());
        assert_eq!(book.rooms.len(), 0, "nothing is kept for a room nobody is in");
    }

    #[test]
    fn presence_is_per_room() {
        let mut book = PresenceBook::default();
        book.connect("r1", "ana");
        book.connect("r2", "bob");
        assert_eq!(book.online("r1"), ["ana"]);
        assert_eq!(book.online("r2"), ["bob"]);
        assert_eq!(book.connect("r2", "ana"), ANNOUNCED_FLIP, "first page of ana in r2");
        assert_eq!(
            book.local(None),
            [("r1".into(), "ana".into()), ("r2".into(), "ana".into()), ("r2".into(), "bob".into())]
        );
        assert_eq!(book.local(Some("r2")), [("r2".into(), "ana".into()), ("r2".into(), "bob".into())]);
    }

    #[test]
    fn closing_a_page_that_was_never_counted_changes_nothing() {
        let mut book = PresenceBook::default();
        assert_eq!(book.disconnect("r", "ana"), NOTHING);
        book.remote("r", "ana", "n2", true, Instant::now());
        assert_eq!(book.disconnect("r", "ana"), NOTHING);
        assert_eq!(book.online("r"), ["ana"]);
    }

    #[test]
    fn other_nodes_are_attributed_separately() {
        let now = Instant::now();
        let mut book = PresenceBook::default();
        assert!(book.remote("r", "ana", "n2", true, now), "online on n2: a flip");
        assert!(!book.remote("r", "ana", "n3", true, now), "also on n3: no news");
        assert!(!book.remote("r", "ana", "n2", true, now), "a repeated beat is no news");
        assert!(!book.remote("r", "ana", "n2", false, now), "still on n3");
        assert!(book.remote("r", "ana", "n3", false, now), "gone from every node");
        assert!(!book.remote("r", "ana", "n3", false, now), "a repeated offline is no news");
        assert_eq!(book.rooms.len(), 0);
    }

    #[test]
    fn local_and_remote_pages_count_as_one_user() {
        let now = Instant::now();
        let mut book = PresenceBook::default();
        book.remote("r", "ana", "n2", true, now);
        assert_eq!(
            book.connect("r", "ana"),
            Change { announce: true, flipped: false },
            "others must hear of this node's page, the pages here already see ana"
        );
        assert!(!book.remote("r", "ana", "n2", false, now));
        assert_eq!(book.disconnect("r", "ana"), ANNOUNCED_FLIP);
        assert!(book.online("r").is_empty());
    }

    #[test]
    fn nodes_that_stop_repeating_themselves_expire() {
        let start = Instant::now();
        let later = start + Duration::from_secs(20);
        let mut book = PresenceBook::default();
        book.remote("r", "ana", "n2", true, start);
        book.remote("r", "bob", "n2", true, start);
        book.remote("r", "bob", "n3", true, later);
        book.remote("r", "carl", "n2", true, start);
        book.connect("r", "carl");
        let gone = book.expire(start + Duration::from_secs(10));
        assert_eq!(gone, [("r".to_owned(), "ana".to_owned())], "bob is still on n3, carl is here");
        assert_eq!(book.online("r"), ["bob", "carl"]);
        // Nothing of this node's own pages ever expires.
        let gone = book.expire(later + Duration::from_secs(60));
        assert_eq!(gone, [("r".to_owned(), "bob".to_owned())]);
        assert_eq!(book.online("r"), ["carl"]);
    }

    #[test]
    fn a_room_no_longer_heard_forgets_other_nodes() {
        let now = Instant::now();
        let mut book = PresenceBook::default();
        book.remote("r", "ana", "n2", true, now);
        book.remote("r", "bob", "n2", true, now);
        book.connect("r", "bob");
        book.remote("other", "carl", "n2", true, now);
        assert_eq!(book.forget_remote("r"), ["ana"]);
        assert_eq!(book.online("r"), ["bob"]);
        assert_eq!(book.online("other"), ["carl"]);
        assert!(book.forget_remote("nowhere").is_empty());
    }
}
