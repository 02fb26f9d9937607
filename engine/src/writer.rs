//! The message writer: one task per node that stores every message the
//! node accepts, many per transaction (group commit), then publishes them.
//!
//! Why: a transaction has a fixed cost that one row or a hundred share (on
//! SQLite the commit, on PostgreSQL the round trips and the flush), so
//! while one group is stored (see `store::sqlite_writer` for a SQLite
//! file) the next one gathers in the queue. A lone message goes out at
//! once. Under load the writer also waits for more up to `group_wait` (like
//! PostgreSQL's `commit_delay`) after it took the previous group (so not at
//! all if storing that one took longer): fewer commits, and fewer writes to
//! pages (a group's messages reach a page in one write), for a millisecond
//! or two more between send and delivery (measured in `bench/README.md`).
//!
//! Guarantees kept from storing one message at a time:
//! - a message is published and acknowledged only after its group's
//!   transaction is committed (whoever reads the database sees every
//!   message published so far), and a room's messages are published in
//!   `seq` order (one task stores and publishes, in order);
//! - a retry (same room, user and client id) is stored once: a group in
//!   which anything was stored before is stored message by message, the
//!   retries returning their stored copy (published again, see
//!   `Rooms::accept`);
//! - a message that cannot be stored fails only its own sender, with the
//!   store's error.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};

use super::bus::Bus;
use super::events::{Event, EventKind, Events};
use super::hub::RoomEvent;
use super::metrics as m;
use super::store::{Inserted, MessageStore, NewMessage};
use crate::protocol::{ChatMessage, ServerFrame};

/// Most messages stored in one transaction.
const MAX_GROUP: usize = 256;
/// Messages waiting for the writer before senders wait to hand theirs over.
const QUEUE: usize = 4096;

/// What a sender gets back: the stored message, or why it was not stored.
pub type Stored = Result<ChatMessage, DbErr>;

struct Pending {
    message: NewMessage,
    channel_id: Arc<str>,
    reply: oneshot::Sender<Stored>,
}

/// The handle of the writer task; cloned by everything that sends.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Pending>,
}

impl Writer {
    /// Starts the writer task. It ends when the last handle is dropped,
    /// after storing what was queued.
    pub fn start(db: DatabaseConnection, bus: Arc<dyn Bus>, group_wait: Duration, events: Events) -> Self {
        let (queue, inbox) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, bus, inbox, group_wait, events));
        Writer { queue }
    }

    /// Queues a message. The returned receiver resolves once it is stored
    /// and published (or failed; a stopped writer drops it unanswered);
    /// waits only while the queue is full.
    pub async fn submit(&self, channel_id: Arc<str>, message: NewMessage) -> oneshot::Receiver<Stored> {
        let (reply, stored) = oneshot::channel();
        let _ = self.queue.send(Pending { message, channel_id, reply }).await;
        stored
    }
}

/// The writer's metrics, looked up once (a lookup by name and label hashes
/// them, a cost per group for nothing).
struct WriterMetrics {
    insert: metrics::Histogram,
    stored: metrics::Counter,
}

impl WriterMetrics {
    fn new() -> Self {
        WriterMetrics {
            insert: metrics::histogram!(m::DB_SECONDS, "op" => "insert_messages"),
            stored: metrics::counter!(m::MESSAGES_STORED),
        }
    }
}

async fn run(
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    mut inbox: mpsc::Receiver<Pending>,
    group_wait: Duration,
    events: Events,
) {
    let store = MessageStore::open(db).await;
    let metrics = WriterMetrics::new();
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut last_stored = None;
    // When the previous group was taken from the queue.
    let mut last_taken = None;
    while inbox.recv_many(&mut group, MAX_GROUP).await > 0 {
        if is_busy(last_stored.map(|at: Instant| at.elapsed()), group_wait) {
            let deadline = last_taken.map_or_else(Instant::now, |taken: Instant| taken + group_wait);
            gather(&mut inbox, &mut group, deadline.into()).await;
        }
        last_taken = Some(Instant::now());
        store_group(&store, &metrics, bus.as_ref(), &events, std::mem::take(&mut group)).await;
        last_stored = Some(Instant::now());
        group.reserve(MAX_GROUP);
    }
}

/// Whether messages are coming in quickly enough to wait for more: the
/// previous group was stored less than two waits ago.
fn is_busy(since_last_group: Option<Duration>, group_wait: Duration) -> bool {
    !group_wait.is_zero() && since_last_group.is_some_and(|since| since < group_wait * 2)
}

/// Adds to the group what is queued and what arrives until `deadline`
/// (until the group is full). A deadline gone by takes what is queued.
async fn gather(
    inbox: &mut mpsc::Receiver<Pending>,
    group: &mut Vec<Pending>,
    deadline: tokio::time::Instant,
) {
    while group.len() < MAX_GROUP {
        let room = MAX_GROUP - group.len();
        // `recv_many` is cancel safe: a timeout loses nothing.
        match tokio::time::timeout_at(deadline, inbox.recv_many(group, room)).await {
            Ok(received) if received > 0 => {}
            _ => break,
        }
    }
}

/// Stores a group, publishes what it stored (a retry's stored copy too),
/// then answers each sender.
async fn store_group(
    store: &MessageStore,
    metrics: &WriterMetrics,
    bus: &dyn Bus,
    events: &Events,
    group: Vec<Pending>,
) {
    let (messages, waiters): (Vec<NewMessage>, Vec<_>) = group
        .into_iter()
        .map(|Pending { message, channel_id, reply }| (message, (channel_id, reply)))
        .unzip();
    let started = Instant::now();
    let outcomes = store.store(messages).await;
    metrics.insert.record(started.elapsed());
    let new = outcomes.iter().filter(|o| matches!(o, Ok(Inserted { is_new: true, .. }))).count();
    metrics.stored.increment(new as u64);
    let stored = waiters.iter().zip(&outcomes).filter_map(|((channel_id, _), outcome)| {
        outcome.as_ref().ok().map(|inserted| (channel_id, &inserted.message))
    });
    for (channel_id, events) in by_room(stored) {
        // The messages are committed: a failed publish is recovered by the
        // readers' catch-up from the store, not by failing the sends.
        if let Err(err) = bus.publish_all(channel_id, events).await {
            tracing::warn!(channel_id, %err, "publish failed after commit");
        }
    }
    for ((channel_id, _), outcome) in waiters.iter().zip(&outcomes) {
        if let Ok(Inserted { message, is_new: true }) = outcome {
            events.emit(|| {
                let data = serde_json::to_value(message).expect("messages serialize");
                Event::new(EventKind::MessageCreated, channel_id, Some(message.seq), data)
            });
        }
    }
    for ((_, reply), outcome) in waiters.into_iter().zip(outcomes) {
        let _ = reply.send(outcome.map(|inserted| inserted.message));
    }
}

/// A group's messages as room events, by room: rooms in the order of
/// their first message, each room's in the group's order.
fn by_room<'a>(
    messages: impl Iterator<Item = (&'a Arc<str>, &'a ChatMessage)>,
) -> Vec<(&'a str, Vec<Arc<RoomEvent>>)> {
    let mut rooms: Vec<(&str, Vec<Arc<RoomEvent>>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (channel_id, message) in messages {
        let event = RoomEvent::new(ServerFrame::Message(message.clone()));
        let at = *index.entry(channel_id).or_insert_with(|| {
            rooms.push((channel_id, Vec::new()));
            rooms.len() - 1
        });
        rooms[at].1.push(event);
    }
    rooms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::LocalBus;
    use crate::hub::Hub;
    use crate::store;
    use migration::MigratorTrait;

    async fn setup() -> (DatabaseConnection, Hub, Writer, i64, i64) {
        setup_waiting(Duration::ZERO).await
    }

    async fn setup_waiting(group_wait: Duration) -> (DatabaseConnection, Hub, Writer, i64, i64) {
        setup_at("sqlite::memory:", group_wait).await
    }

    async fn setup_at(url: &str, group_wait: Duration) -> (DatabaseConnection, Hub, Writer, i64, i64) {
        let pool = store::PoolSettings { max_connections: 2, timeout: Duration::from_secs(5) };
        let db = store::connect(url, pool).await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let a = store::ensure_room(&db, "a").await.unwrap().id;
        let b = store::ensure_room(&db, "b").await.unwrap().id;
        store::ensure_user(&db, "ana").await.unwrap();
        let hub = Hub::new(1024);
        let writer =
            Writer::start(db.clone(), Arc::new(LocalBus::new(hub.clone())), group_wait, Events::default());
        (db, hub, writer, a, b)
    }

    fn new(room_id: i64, id: &str) -> NewMessage {
        NewMessage {
            room_id,
            user_id: "ana".into(),
            client_msg_id: id.into(),
            body: format!("body of {id}"),
            system: false,
        }
    }

    #[test]
    fn a_groups_messages_are_published_by_room_in_order() {
        let message = |seq: i64| ChatMessage {
            seq,
            user_id: "ana".into(),
            body: "hi".into(),
            client_msg_id: format!("c{seq}"),
            at_ms: 0,
            ..Default::default()
        };
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let group =
            [(&b, message(1)), (&a, message(1)), (&b, message(2)), (&a, message(2)), (&b, message(3))];
        let rooms = by_room(group.iter().map(|(room, m)| (*room, m)));
        let seqs: Vec<(&str, Vec<Option<i64>>)> = rooms
            .iter()
            .map(|(room, events)| (*room, events.iter().map(|e| e.frame.seq()).collect()))
            .collect();
        assert_eq!(seqs, [("b", vec![Some(1), Some(2), Some(3)]), ("a", vec![Some(1), Some(2)])]);
    }

    #[tokio::test]
    async fn many_senders_get_consecutive_seqs_per_room_published_in_order() {
        many_senders_in_order(setup().await).await;
    }

    #[tokio::test]
    async fn on_a_sqlite_file_many_senders_get_consecutive_seqs_per_room_published_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
        many_senders_in_order(setup_at(&url, Duration::ZERO).await).await;
    }

    async fn many_senders_in_order((db, hub, writer, a, b): (DatabaseConnection, Hub, Writer, i64, i64)) {
        let mut listener = hub.subscribe("a");
        let mut waiting = Vec::new();
        for i in 0..300 {
            let (room, channel) = if i % 3 == 0 { (b, "b") } else { (a, "a") };
            waiting.push(writer.submit(channel.into(), new(room, &format!("m{i}"))).await);
        }
        let mut seqs_a = Vec::new();
        for stored in waiting {
            let message = stored.await.unwrap().unwrap();
            if message.body.starts_with("body of")
                && message.client_msg_id[1..].parse::<i32>().unwrap() % 3 != 0
            {
                seqs_a.push(message.seq);
            }
        }
        assert_eq!(seqs_a, (1..=200).collect::<Vec<_>>());
        let published: Vec<i64> =
            (0..200).map(|_| listener.try_recv().unwrap().unwrap().frame.seq().unwrap()).collect();
        assert_eq!(published, (1..=200).collect::<Vec<_>>(), "room a's messages, published in seq order");
        assert!(listener.try_recv().is_none());
        let stored = store::messages(&db, b, store::Side::After, 0, 1000).await.unwrap();
        assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_retry_in_or_after_a_group_is_stored_once_and_gets_the_stored_copy() {
        let (db, _hub, writer, a, _) = setup().await;
        let first = writer.submit("a".into(), new(a, "x")).await.await.unwrap().unwrap();
        // A group holding a retry of a stored message, a fresh one, and the
        // fresh one twice.
        let retry = writer.submit("a".into(), new(a, "x")).await;
        let fresh = writer.submit("a".into(), new(a, "y")).await;
        let again = writer.submit("a".into(), new(a, "y")).await;
        let retry = retry.await.unwrap().unwrap();
        let fresh = fresh.await.unwrap().unwrap();
        let again = again.await.unwrap().unwrap();
        assert_eq!(retry, first);
        assert_eq!(fresh.seq, 2);
        assert_eq!(again, fresh);
        let stored = store::messages(&db, a, store::Side::After, 0, 10).await.unwrap();
        assert_eq!(stored.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[tokio::test]
    async fn a_message_for_a_missing_room_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
        for url in ["sqlite::memory:", file.as_str()] {
            let (db, _hub, writer, a, _) = setup_at(url, Duration::from_millis(50)).await;
            // Sent together, so that they share a group.
            let good = writer.submit("a".into(), new(a, "ok")).await;
            let bad = writer.submit("nowhere".into(), new(9999, "lost")).await;
            let after = writer.submit("a".into(), new(a, "after")).await;
            let (good, bad, after) = (good.await.unwrap(), bad.await.unwrap(), after.await.unwrap());
            assert!(bad.is_err(), "{url}");
            let (good, after) = (good.unwrap(), after.unwrap());
            assert_eq!((good.seq, after.seq), (1, 2), "{url}: the room's seqs stay consecutive");
            assert_eq!(
                store::messages(&db, a, store::Side::After, 0, 10).await.unwrap(),
                [good, after],
                "{url}"
            );
        }
    }

    #[test]
    fn the_writer_waits_for_more_only_right_after_a_group() {
        let wait = Duration::from_millis(1);
        assert!(!is_busy(None, wait), "the first message after start goes at once");
        assert!(is_busy(Some(Duration::from_micros(300)), wait));
        assert!(!is_busy(Some(Duration::from_millis(5)), wait), "a quiet room's message goes at once");
        assert!(!is_busy(Some(Duration::ZERO), Duration::ZERO), "a wait of zero never waits");
    }

    #[tokio::test]
    async fn under_load_messages_arriving_within_the_wait_share_a_group() {
        let (db, _hub, writer, a, _) = setup_waiting(Duration::from_millis(400)).await;
        // A lone message is not held back (well under the wait).
        let started = Instant::now();
        writer.submit("a".into(), new(a, "first")).await.await.unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_millis(300), "took {:?}", started.elapsed());
        // Right after a group: the next one waits for company.
        let mut second = writer.submit("a".into(), new(a, "second")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(second.try_recv().is_err(), "the second waits for more");
        let third = writer.submit("a".into(), new(a, "third")).await;
        let (second, third) = (second.await.unwrap().unwrap(), third.await.unwrap().unwrap());
        assert_eq!((second.seq, third.seq), (2, 3));
        assert_eq!(second.at_ms, third.at_ms, "stored in one group");
        assert_eq!(store::messages(&db, a, store::Side::After, 0, 10).await.unwrap().len(), 3);
    }
}
