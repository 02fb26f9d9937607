//! Which messages each room holds, as hashes of their (user, client id)
//! keys kept in memory: a new message whose key no room set holds is known
//! new without asking the database.
//!
//! Every message the writer stores is checked for a retry (same room, user
//! and client id as one stored before). Asking SQLite is an indexed read
//! per message, each in a read transaction of its own (file locks, the
//! write-ahead log's index): about 8% of the server's CPU in rooms of 10,
//! for an answer that is "no" for all but a retry. So a room's keys are
//! read once, when the writer first stores into it since the server
//! started (one walk along the (room, user, client id) index), and each
//! key stored after is added. A key the room's set lacks is surely new; a
//! key it holds is a retry, or a collision of hashes: the caller then asks
//! as before (the log's messages, then the database).
//!
//! Bounded: a room holding more messages than [`KeyLimits::read_at_most`]
//! when first seen is not read (that would hold the writer too long), and
//! the sets together hold at most [`KeyLimits::keep_at_most`] keys. A room
//! left out, or whose set would pass that, is asked about message by
//! message, as before, until the server restarts.
//!
//! Right only while the writer is the file's only writer of messages (as
//! the rooms' last seqs kept beside these are: see `inline_sqlite`).
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// How much is read and kept.
#[derive(Clone, Copy, Debug)]
pub struct KeyLimits {
    /// A room with more messages than this when first seen is not read.
    pub read_at_most: usize,
    /// Keys kept in all rooms' sets together.
    pub keep_at_most: usize,
}

impl Default for KeyLimits {
    /// Reading 20,000 keys holds the writer about 10 ms, once per room and
    /// start; a million keys take some 16–32 MiB.
    fn default() -> Self {
        KeyLimits { read_at_most: 20_000, keep_at_most: 1_000_000 }
    }
}

/// The hash of a message's key. Deterministic (SipHash with fixed keys): a
/// sender crafting collisions only makes its own checks ask the database.
pub fn key(room_id: i64, user_id: &str, client_msg_id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one((room_id, user_id, client_msg_id))
}

/// The rooms' sets of keys.
#[derive(Debug, Default)]
pub struct SentKeys {
    limits: KeyLimits,
    /// Rooms seen since opening: their keys, or `None` when left out.
    rooms: HashMap<i64, Option<HashSet<u64>>>,
    /// Keys in all sets.
    kept: usize,
}

impl SentKeys {
    pub fn new(limits: KeyLimits) -> Self {
        SentKeys { limits, rooms: HashMap::new(), kept: 0 }
    }

    /// Whether the room was seen (read, or left out) since opening.
    #[cfg(test)]
    pub fn has_seen(&self, room_id: i64) -> bool {
        self.rooms.contains_key(&room_id)
    }

    /// Whether a room first seen holding `messages` is to be read.
    pub fn wants(&self, messages: usize) -> bool {
        messages <= self.limits.read_at_most && self.kept + messages <= self.limits.keep_at_most
    }

    /// A room first seen: its keys as read, or `None` to leave it out.
    pub fn see(&mut self, room_id: i64, keys: Option<HashSet<u64>>) {
        self.kept += keys.as_ref().map_or(0, HashSet::len);
        if let Some(Some(old)) = self.rooms.insert(room_id, keys) {
            self.kept -= old.len();
        }
    }

    /// True when the room's messages surely hold no such key; false when
    /// they might (the caller asks the log and the database).
    pub fn surely_new(&self, room_id: i64, key: u64) -> bool {
        matches!(self.rooms.get(&room_id), Some(Some(keys)) if !keys.contains(&key))
    }

    /// A message stored into a room: its key joins the room's set. Past the
    /// limit of keys kept, the room's set is dropped and the room left out.
    pub fn add(&mut self, room_id: i64, key: u64) {
        let Some(Some(keys)) = self.rooms.get_mut(&room_id) else { return };
        if !keys.insert(key) {
            return;
        }
        self.kept += 1;
        if self.kept > self.limits.keep_at_most {
            self.kept -= keys.len();
            self.rooms.insert(room_id, None);
        }
    }

    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ids: &[&str]) -> HashSet<u64> {
        ids.iter().map(|id| key(1, "ana", id)).collect()
    }

    #[test]
    fn a_key_is_surely_new_only_in_a_room_read_whose_set_lacks_it() {
        let mut sent = SentKeys::new(KeyLimits::default());
        assert!(!sent.surely_new(1, key(1, "ana", "a")), "a room not seen: ask");
        sent.see(1, Some(keys(&["a", "b"])));
        assert!(sent.has_seen(1));
        assert!(!sent.surely_new(1, key(1, "ana", "a")), "held: a retry, or a collision");
        assert!(sent.surely_new(1, key(1, "ana", "c")));
        sent.add(1, key(1, "ana", "c"));
        assert!(!sent.surely_new(1, key(1, "ana", "c")));
        assert_eq!(sent.kept(), 3);

        sent.see(2, None);
        assert!(sent.has_seen(2));
        assert!(!sent.surely_new(2, key(2, "ana", "z")), "a room left out: ask");
        sent.add(2, key(2, "ana", "z"));
        assert_eq!(sent.kept(), 3);
    }

    #[test]
    fn keys_differ_by_room_user_and_id_and_where_the_strings_split() {
        let base = key(1, "ana", "a");
        assert_ne!(base, key(2, "ana", "a"));
        assert_ne!(base, key(1, "bob", "a"));
        assert_ne!(base, key(1, "ana", "b"));
        assert_ne!(key(1, "ab", "c"), key(1, "a", "bc"));
        assert_eq!(base, key(1, "ana", "a"), "the same in every run and process");
    }

    #[test]
    fn rooms_too_big_to_read_or_keep_are_left_out() {
        let mut sent = SentKeys::new(KeyLimits { read_at_most: 3, keep_at_most: 4 });
        assert!(sent.wants(3));
        assert!(!sent.wants(4), "more than a room may hold when read");
        sent.see(1, Some(keys(&["a", "b", "c"])));
        assert!(!sent.wants(2), "more than may be kept in all");
        assert!(sent.wants(1));

        sent.add(1, key(1, "ana", "d"));
        assert!(sent.surely_new(1, key(1, "ana", "e")), "four kept: at the limit");
        sent.add(1, key(1, "ana", "d"));
        assert_eq!(sent.kept(), 4, "a key added twice counts once");
        sent.add(1, key(1, "ana", "e"));
        assert!(!sent.surely_new(1, key(1, "ana", "f")), "past the limit the room is left out");
        assert_eq!(sent.kept(), 0);
        assert!(sent.wants(3), "its keys are free for other rooms");

        sent.see(2, Some(keys(&["x"])));
        sent.see(2, Some(keys(&["x", "y"])));
        assert_eq!(sent.kept(), 2, "a room read again replaces its set");
    }
}
