//! Correctness bookkeeping on the receiving side: for each sender a client
//! hears, which of its messages arrived, twice, or out of order; and, on
//! our server, whether the room's `seq` runs without gaps.
//!
//! Everything is judged from what arrives, so the same rules hold for all
//! three servers. Losses are settled at the end, against how many messages
//! each sender sent: a message still missing then was lost.
use std::collections::BTreeSet;

/// Most gap entries remembered per sender; a larger hole is a disaster that
/// the loss count reports anyway, and late arrivals beyond it count as
/// duplicates rather than growing memory without bound.
const MAX_MISSING: usize = 100_000;

/// What one receiver saw of one sender (messages numbered from 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderTrack {
    /// The number the next in-order message should carry, minus one.
    highest: u64,
    /// Numbers skipped so far that may still arrive late.
    missing: BTreeSet<u64>,
    pub distinct: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl SenderTrack {
    pub fn see(&mut self, n: u64) {
        if n == self.highest + 1 {
            self.highest = n;
            self.distinct += 1;
        } else if n > self.highest {
            let room = MAX_MISSING.saturating_sub(self.missing.len()) as u64;
            self.missing.extend((self.highest + 1..n).take(room as usize));
            self.highest = n;
            self.distinct += 1;
        } else if self.missing.remove(&n) {
            self.out_of_order += 1;
            self.distinct += 1;
        } else {
            self.duplicated += 1;
        }
    }

    /// Messages of a sender that sent `sent` which never arrived here.
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.distinct)
    }
}

/// A room's `seq` as one connection sees it: it must grow by exactly one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqTrack {
    last: i64,
    /// Seqs skipped over (never filled, as seqs only grow).
    pub gaps: u64,
    /// Seqs that did not move forward (repeated or late).
    pub repeats: u64,
}

impl SeqTrack {
    /// Starts after `last` (the room's newest seq when the stream opened).
    pub fn after(last: i64) -> Self {
        SeqTrack { last, ..SeqTrack::default() }
    }

    pub fn see(&mut self, seq: i64) {
        if seq <= self.last {
            self.repeats += 1;
            return;
        }
        self.gaps += (seq - self.last - 1) as u64;
        self.last = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_in_order_are_all_distinct() {
        let mut t = SenderTrack::default();
        (1..=5).for_each(|n| t.see(n));
        assert_eq!((t.distinct, t.duplicated, t.out_of_order, t.lost(5)), (5, 0, 0, 0));
    }

    #[test]
    fn a_late_message_is_out_of_order_not_lost() {
        let mut t = SenderTrack::default();
        for n in [1, 3, 4, 2, 5] {
            t.see(n);
        }
        assert_eq!((t.distinct, t.duplicated, t.out_of_order, t.lost(5)), (5, 0, 1, 0));
    }

    #[test]
    fn a_repeat_is_a_duplicate() {
        let mut t = SenderTrack::default();
        for n in [1, 2, 2, 3, 1] {
            t.see(n);
        }
        assert_eq!((t.distinct, t.duplicated, t.out_of_order), (3, 2, 0));
    }

    #[test]
    fn what_never_arrives_is_lost() {
        let mut t = SenderTrack::default();
        for n in [1, 4] {
            t.see(n);
        }
        assert_eq!(t.lost(6), 4);
    }

    #[test]
    fn seqs_must_grow_by_one() {
        let mut s = SeqTrack::after(10);
        for seq in [11, 12, 15, 15, 14, 16] {
            s.see(seq);
        }
        assert_eq!((s.gaps, s.repeats, s.last), (2, 2, 16));
    }
}
