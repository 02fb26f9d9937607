//! The verdict of a drill, computed from what the clients recorded and
//! nothing else: it is a pure function so that it can be tested on hand-made
//! histories (a gap, a duplicate, a reorder, a clean run) and trusted when a
//! real run says "lost 0".
//!
//! Definitions, per client (the seqs of the `Message` frames it received,
//! in arrival order, across all its connections):
//! - duplicated: a seq the client had already received;
//! - out of order: a seq received for the first time although a higher one
//!   came before it (a gap filled late);
//! - lost: a message acknowledged in the room (its client id and seq) that
//!   the client never received.
//!
//! Per room, the acknowledgements of all its clients must give each client
//! id exactly one seq, no seq to two ids, and the seqs must be 1..=N.
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What one client recorded.
#[derive(Clone, Debug, Default)]
pub struct ClientLog {
    pub name: String,
    /// Every `Message` frame received, as (seq, client_msg_id), in order.
    pub received: Vec<(i64, String)>,
    /// Every `Ack` received, as (client_msg_id, seq); re-acks included.
    pub acks: Vec<(String, i64)>,
    /// Whether the client got all its acks and saw the whole room before
    /// the deadline.
    pub finished: bool,
}

/// What the clients of one room recorded.
#[derive(Clone, Debug, Default)]
pub struct RoomLog {
    pub name: String,
    pub clients: Vec<ClientLog>,
}

/// One pass/fail line of the verdict (one per client, one per room).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub problems: Vec<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Distinct client ids acknowledged, over all rooms.
    pub acknowledged: usize,
    /// `Message` frames received, over all clients (duplicates included).
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub out_of_order: usize,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }

    /// No message lost, duplicated or reordered, and every check passed.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && self.failed() == 0
    }
}

pub fn verify(rooms: &[RoomLog]) -> Verdict {
    let mut verdict = Verdict::default();
    for room in rooms {
        let acked = acked_seqs(room);
        verdict.acknowledged += acked.len();
        verdict.checks.push(check_room(room, &acked));
        for client in &room.clients {
            let (check, counts) = check_client(&room.name, client, &acked);
            verdict.delivered += client.received.len();
            verdict.lost += counts.lost;
            verdict.duplicated += counts.duplicated;
            verdict.out_of_order += counts.out_of_order;
            verdict.checks.push(check);
        }
    }
    verdict
}

/// Every client id acknowledged in the room, with the seqs it was given
/// (more than one is a bug).
fn acked_seqs(room: &RoomLog) -> BTreeMap<&str, BTreeSet<i64>> {
    let mut acked: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for (id, seq) in room.clients.iter().flat_map(|c| &c.acks) {
        acked.entry(id.as_str()).or_default().insert(*seq);
    }
    acked
}

fn check_room(room: &RoomLog, acked: &BTreeMap<&str, BTreeSet<i64>>) -> Check {
    let mut problems = Vec::new();
    let mut owners: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (id, seqs) in acked {
        if seqs.len() > 1 {
            problems.push(format!("client id {id} was acknowledged with several seqs: {}", ranges(seqs)));
        }
        for seq in seqs {
            owners.entry(*seq).or_default().push(id);
        }
    }
    for (seq, ids) in &owners {
        if ids.len() > 1 {
            problems.push(format!("seq {seq} was acknowledged to several client ids: {}", ids.join(", ")));
        }
    }
    let n = acked.len() as i64;
    let missing: Vec<i64> = (1..=n).filter(|s| !owners.contains_key(s)).collect();
    if !missing.is_empty() {
        // A message stored but whose ack never came back (its sender ran out
        // of time) is delivered without being acknowledged: say which.
        let delivered: BTreeSet<i64> =
            room.clients.iter().flat_map(|c| &c.received).map(|(s, _)| *s).collect();
        let (stored, unknown): (Vec<i64>, Vec<i64>) = missing.iter().partition(|s| delivered.contains(s));
        let mut gap = format!("acknowledged seqs have gaps (missing {})", ranges(&missing));
        if !stored.is_empty() {
            gap += &format!("; delivered but never acknowledged: {}", ranges(&stored));
        }
        if !unknown.is_empty() {
            gap += &format!("; never seen by any client: {}", ranges(&unknown));
        }
        problems.push(gap);
    }
    let beyond: Vec<i64> = owners.keys().copied().filter(|s| *s < 1 || *s > n).collect();
    if !beyond.is_empty() {
        problems.push(format!("acknowledged seqs outside 1..={n}: {}", ranges(&beyond)));
    }
    Check { name: format!("room {}", room.name), problems }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    lost: usize,
    duplicated: usize,
    out_of_order: usize,
}

fn check_client(room: &str, client: &ClientLog, acked: &BTreeMap<&str, BTreeSet<i64>>) -> (Check, Counts) {
    let mut counts = Counts::default();
    let mut problems = Vec::new();
    let (duplicates, late) = order_faults(&client.received);
    counts.duplicated = duplicates.len();
    counts.out_of_order = late.len();
    if !duplicates.is_empty() {
        problems.push(format!("received twice: seq {}", ranges(&duplicates)));
    }
    if !late.is_empty() {
        problems.push(format!("received out of order: seq {}", ranges(&late)));
    }

    let seen: HashSet<(i64, &str)> = client.received.iter().map(|(s, id)| (*s, id.as_str())).collect();
    let seen_seqs: BTreeSet<i64> = client.received.iter().map(|(s, _)| *s).collect();
    let mut lost = Vec::new();
    for (id, seqs) in acked {
        for seq in seqs {
            if !seen.contains(&(*seq, *id)) {
                lost.push(*seq);
                if seen_seqs.contains(seq) {
                    problems.push(format!("seq {seq} arrived with another client id than {id}"));
                }
            }
        }
    }
    counts.lost = lost.len();
    if !lost.is_empty() {
        problems.push(format!("never received acknowledged seq {}", ranges(&lost)));
    }

    let acked_seqs: BTreeSet<i64> = acked.values().flatten().copied().collect();
    let unacked: Vec<i64> = seen_seqs.difference(&acked_seqs).copied().collect();
    if !unacked.is_empty() {
        problems.push(format!("received seqs nobody had acknowledged: {}", ranges(&unacked)));
    }
    let order: Vec<i64> = client.received.iter().map(|(s, _)| *s).collect();
    let expected: Vec<i64> = (1..=acked.len() as i64).collect();
    if problems.is_empty() && order != expected {
        problems.push(format!("received seqs are not exactly 1..={}", acked.len()));
    }
    if !client.finished {
        problems.push("did not finish before the deadline".to_owned());
    }
    (Check { name: format!("client {} in room {room}", client.name), problems }, counts)
}

/// The duplicated seqs and the seqs that came after a higher one (each in
/// arrival order).
fn order_faults(received: &[(i64, String)]) -> (Vec<i64>, Vec<i64>) {
    let mut seen = HashSet::new();
    let mut highest = i64::MIN;
    let (mut duplicates, mut late) = (Vec::new(), Vec::new());
    for (seq, _) in received {
        if !seen.insert(*seq) {
            duplicates.push(*seq);
        } else if *seq < highest {
            late.push(*seq);
        }
        highest = highest.max(*seq);
    }
    (duplicates, late)
}

/// "1-3, 7, 9-10" for a list of seqs (sorted first); long lists are cut.
pub fn ranges<'a>(seqs: impl IntoIterator<Item = &'a i64>) -> String {
    let mut sorted: Vec<i64> = seqs.into_iter().copied().collect();
    sorted.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] <= end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    const MAX_PARTS: usize = 20;
    if parts.len() > MAX_PARTS {
        let more = parts.len() - MAX_PARTS;
        parts.truncate(MAX_PARTS);
        parts.push(format!("… ({more} more ranges)"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room of two clients, "a" and "b", where "a" sent the odd seqs and
    /// "b" the even ones, up to `n`; each received `received_by_a` / `_b`.
    fn room(n: i64, received_by_a: &[i64], received_by_b: &[i64]) -> RoomLog {
        let id = |seq: i64| if seq % 2 == 1 { format!("a-{seq}") } else { format!("b-{seq}") };
        let client = |name: &str, parity: i64, received: &[i64]| ClientLog {
            name: name.to_owned(),
            received: received.iter().map(|s| (*s, id(*s))).collect(),
            acks: (1..=n).filter(|s| s % 2 == parity).map(|s| (id(s), s)).collect(),
            finished: true,
        };
        RoomLog {
            name: "r".to_owned(),
            clients: vec![client("a", 1, received_by_a), client("b", 0, received_by_b)],
        }
    }

    #[test]
    fn a_clean_run_passes_every_check() {
        let verdict = verify(&[room(4, &[1, 2, 3, 4], &[1, 2, 3, 4])]);
        assert_eq!((verdict.lost, verdict.duplicated, verdict.out_of_order), (0, 0, 0));
        assert_eq!((verdict.acknowledged, verdict.delivered), (4, 8));
        assert_eq!((verdict.passed(), verdict.failed()), (3, 0));
        assert!(verdict.clean());
    }

    #[test]
    fn a_gap_is_a_lost_message() {
        let verdict = verify(&[room(4, &[1, 2, 4], &[1, 2, 3, 4])]);
        assert_eq!((verdict.lost, verdict.duplicated, verdict.out_of_order), (1, 0, 0));
        assert_eq!(verdict.failed(), 1);
        let failed = verdict.checks.iter().find(|c| !c.passed()).unwrap();
        assert_eq!(failed.name, "client a in room r");
        assert_eq!(failed.problems, vec!["never received acknowledged seq 3".to_owned()]);
        assert!(!verdict.clean());
    }

    #[test]
    fn a_seq_received_twice_is_a_duplicate() {
        let verdict = verify(&[room(3, &[1, 2, 3], &[1, 2, 2, 3, 1])]);
        assert_eq!((verdict.lost, verdict.duplicated, verdict.out_of_order), (0, 2, 0));
        assert_eq!(verdict.failed(), 1);
    }

    #[test]
    fn a_gap_filled_late_is_out_of_order() {
        let verdict = verify(&[room(4, &[1, 3, 2, 4], &[2, 1, 3, 4])]);
        assert_eq!((verdict.lost, verdict.duplicated, verdict.out_of_order), (0, 0, 2));
        assert_eq!((verdict.passed(), verdict.failed()), (1, 2));
    }

    #[test]
    fn acknowledgements_must_number_the_room_without_gaps_or_conflicts() {
        let mut gap = room(3, &[1, 2, 3], &[1, 2, 3]);
        gap.clients[0].acks[1].1 = 4; // "a-3" acked as 4: seq 3 is missing
        let verdict = verify(&[gap]);
        let room_check = &verdict.checks[0];
        assert!(room_check.problems.iter().any(|p| p.contains("missing 3")), "{room_check:?}");

        let mut conflict = room(2, &[1, 2], &[1, 2]);
        conflict.clients[0].acks.push(("a-1".to_owned(), 2));
        let verdict = verify(&[conflict]);
        let problems = &verdict.checks[0].problems;
        assert!(
            problems.iter().any(|p| p.contains("a-1 was acknowledged with several seqs")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("seq 2 was acknowledged to several")), "{problems:?}");
    }

    #[test]
    fn a_message_nobody_acknowledged_or_an_unfinished_client_fails_its_check() {
        let mut extra = room(2, &[1, 2, 3], &[1, 2]);
        extra.clients[1].finished = false;
        let verdict = verify(&[extra]);
        assert_eq!((verdict.lost, verdict.duplicated, verdict.out_of_order), (0, 0, 0));
        assert_eq!(verdict.failed(), 2);
        assert!(!verdict.clean());
    }

    #[test]
    fn ranges_are_compact() {
        assert_eq!(ranges(&[7, 1, 2, 3, 9, 10]), "1-3, 7, 9-10");
        assert_eq!(ranges(&[]), "");
    }
}
