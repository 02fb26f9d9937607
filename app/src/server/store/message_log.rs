//! The message log: an append-only file beside a SQLite database, where the
//! message writer puts each group of messages in one write before
//! publishing it. SQLite is filled from what the log holds behind, many
//! groups per transaction (see `inline_sqlite`), and the log starts again
//! empty once they are in. There are two such files (`FILE-messages` and
//! `FILE-messages-2`): one takes groups while the other's messages are
//! being put into SQLite.
//!
//! Why: a SQLite commit writes every page the group touched (each room's
//! pages in two indexes, the room's row, the table's last page) into its
//! own log, a few KiB per message in small rooms, and that was a third of
//! the server's CPU in rooms of 10. A record here is the message itself
//! (some 100 bytes), and one SQLite transaction every half second
//! carries hundreds or thousands of them.
//!
//! Durability is that of the commits it stands in for (SQLite with
//! `synchronous = NORMAL`): a write is in the operating system's hands
//! when `append` returns, so a crash of the server loses nothing (the next
//! start stores what the log holds first); the disk gets it with the
//! next sync, so a power cut may lose the last moments, as SQLite's own
//! log would.
//!
//! One process at a time: the file is locked while open (a second server
//! on the same database file finds it locked and stores through the pool).
//!
//! Format: records one after another, each `length: u32 | check: u64 |
//! payload` (little endian), the check an FNV-1a hash of the payload;
//! payload `room_id: i64 | seq: i64 | at_ms: i64 | user id, client id,
//! body`, each string `length: u32 | UTF-8`. A record cut short or failing
//! its check ends the log: it was being written when the machine stopped,
//! and nobody was told it was stored.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::protocol::ChatMessage;

/// A message as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub room_id: i64,
    pub message: ChatMessage,
}

/// The open, locked log file.
pub struct MessageLog {
    file: File,
    /// Bytes of whole records in the file.
    len: u64,
}

/// Bytes before a record's payload: its length and its check.
const HEADER: usize = 4 + 8;

impl MessageLog {
    /// Opens (creating) and locks the log, and reads the records it holds:
    /// messages appended and not yet known to be in the database.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Logged>)> {
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        lock(&file)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, whole) = decode_all(&bytes);
        if whole < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                cut = bytes.len() - whole,
                "the message log ends in a record cut short; it was never acknowledged and is dropped"
            );
            file.set_len(whole as u64)?;
        }
        Ok((MessageLog { file, len: whole as u64 }, records))
    }

    /// Appends encoded records (see [`encode`]) in one write: all of them
    /// or, on an error, none (what a failed write left is cut off).
    pub fn append(&mut self, records: &[u8]) -> io::Result<()> {
        match self.file.write_all(records) {
            Ok(()) => {
                self.len += records.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    tracing::error!(%cut, "cutting a failed write off the message log failed");
                }
                Err(e)
            }
        }
    }

    /// Empties the log: everything it held is in the database.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        Ok(())
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.len
    }
}

/// Takes the log's lock, or fails at once if another process holds it.
fn lock(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function borrows, open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            let locked = e.kind() == io::ErrorKind::WouldBlock;
            return Err(if locked {
                io::Error::new(io::ErrorKind::WouldBlock, "the message log is in use by another server")
            } else {
                e
            });
        }
    }
    Ok(())
}

/// Appends the record of one message to `out`.
pub fn encode(out: &mut Vec<u8>, room_id: i64, message: &ChatMessage) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&room_id.to_le_bytes());
    out.extend_from_slice(&message.seq.to_le_bytes());
    out.extend_from_slice(&message.at_ms.to_le_bytes());
    for text in [&message.user_id, &message.client_msg_id, &message.body] {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    let payload_len = out.len() - start - HEADER;
    let check = fnv1a(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&check.to_le_bytes());
}

/// The whole records at the start of `bytes`, and how many bytes they
/// take: decoding stops at the first record cut short or failing its check.
pub fn decode_all(bytes: &[u8]) -> (Vec<Logged>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((record, len)) = decode(&bytes[at..]) {
        records.push(record);
        at += len;
    }
    (records, at)
}

fn decode(bytes: &[u8]) -> Option<(Logged, usize)> {
    let payload_len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let check = u64::from_le_bytes(bytes.get(4..HEADER)?.try_into().ok()?);
    let payload = bytes.get(HEADER..HEADER.checked_add(payload_len)?)?;
    if fnv1a(payload) != check {
        return None;
    }
    let mut reader = Fields(payload);
    let room_id = reader.i64()?;
    let seq = reader.i64()?;
    let at_ms = reader.i64()?;
    let user_id = reader.text()?;
    let client_msg_id = reader.text()?;
    let body = reader.text()?;
    if !reader.0.is_empty() {
        return None;
    }
    let message = ChatMessage { seq, user_id, body, client_msg_id, at_ms };
    Some((Logged { room_id, message }, HEADER + payload_len))
}

/// Reads a payload's fields in order.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// FNV-1a, 64 bits: enough to tell a whole record from a torn one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: i64, body: &str) -> ChatMessage {
        ChatMessage {
            seq,
            user_id: "zoë".into(),
            body: body.into(),
            client_msg_id: format!("c{seq}"),
            at_ms: 1_764_000_000_000 + seq,
        }
    }

    fn records(messages: &[(i64, ChatMessage)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (room_id, m) in messages {
            encode(&mut out, *room_id, m);
        }
        out
    }

    #[test]
    fn records_decode_to_what_was_encoded() {
        let messages = [(1, message(1, "hello")), (7, message(2, "")), (1, message(3, "ünïcødé ✓"))];
        let bytes = records(&messages);
        let (decoded, len) = decode_all(&bytes);
        assert_eq!(len, bytes.len());
        let expected: Vec<Logged> =
            messages.iter().map(|(room_id, m)| Logged { room_id: *room_id, message: m.clone() }).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn a_record_cut_short_or_damaged_ends_the_log() {
        let whole = records(&[(1, message(1, "one")), (1, message(2, "two"))]);
        let first_len = records(&[(1, message(1, "one"))]).len();
        for cut in [whole.len() - 1, first_len + 3, first_len + HEADER + 2] {
            let (decoded, len) = decode_all(&whole[..cut]);
            assert_eq!(decoded.len(), 1, "cut at {cut}");
            assert_eq!(len, first_len);
        }
        let mut damaged = whole.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(decode_all(&damaged).0.len(), 1, "a flipped bit fails the check");
        assert_eq!(decode_all(&[]).0, []);
    }

    #[test]
    fn a_log_keeps_its_records_across_opens_drops_a_torn_tail_and_is_locked_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db-messages");
        let (mut log, held) = MessageLog::open(&path).unwrap();
        assert!(held.is_empty());
        log.append(&records(&[(3, message(1, "a")), (3, message(2, "b"))])).unwrap();
        assert!(MessageLog::open(&path).is_err(), "a second opener finds it locked");
        drop(log);

        // A write cut short by a crash of the machine.
        let torn = records(&[(3, message(3, "c"))]);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&torn[..torn.len() / 2]).unwrap();
        let (mut log, held) = MessageLog::open(&path).unwrap();
        assert_eq!(held.iter().map(|l| l.message.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), log.len(), "the torn record is cut off");

        log.append(&records(&[(3, message(3, "c"))])).unwrap();
        log.clear().unwrap();
        log.append(&records(&[(4, message(1, "d"))])).unwrap();
        drop(log);
        let (_log, held) = MessageLog::open(&path).unwrap();
        assert_eq!(
            held,
            [Logged { room_id: 4, message: message(1, "d") }],
            "appends after clearing start over"
        );
    }
}
