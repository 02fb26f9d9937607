//! What the load generator puts in a message body: who sent it, its number
//! in that sender's sequence and when it left, padded to about the size of
//! a chat line. Every server relays bodies untouched, so a receiver can
//! measure send→receive latency and check loss, duplication and order per
//! sender without asking the server anything.
use std::sync::OnceLock;
use std::time::Instant;

/// Bytes in every body the benchmark sends (a typical chat line).
pub const BODY_LEN: usize = 100;

/// A sender, its message number (1, 2, 3, …) and the send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub n: u64,
    pub sent_us: u64,
}

/// Microseconds since the first call in this process. Senders and receivers
/// live in the same process, so one monotonic clock serves both.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// `sender|n|sent_us|` followed by padding up to [`BODY_LEN`] bytes. Plain
/// ASCII without quotes or backslashes, so no protocol needs to escape it.
pub fn encode(stamp: Stamp) -> String {
    let mut body = format!("{}|{}|{}|", stamp.sender, stamp.n, stamp.sent_us);
    let pad = BODY_LEN.saturating_sub(body.len());
    body.extend(std::iter::repeat_n('x', pad));
    body
}

/// The stamp of a body made by [`encode`], or `None` for anything else.
pub fn decode(body: &str) -> Option<Stamp> {
    let mut fields = body.splitn(4, '|');
    let sender = fields.next()?.parse().ok()?;
    let n = fields.next()?.parse().ok()?;
    let sent_us = fields.next()?.parse().ok()?;
    fields.next()?;
    Some(Stamp { sender, n, sent_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_round_trips_and_has_the_chat_line_size() {
        let stamp = Stamp { sender: 4321, n: 77, sent_us: 123_456_789 };
        let body = encode(stamp);
        assert_eq!(body.len(), BODY_LEN);
        assert_eq!(decode(&body), Some(stamp));
    }

    #[test]
    fn foreign_bodies_are_not_mistaken_for_stamps() {
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("1|2|3"), None);
        assert_eq!(decode("a|2|3|x"), None);
    }
}
