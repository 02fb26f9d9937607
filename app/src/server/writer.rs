//! The message writer: one task per node that stores every message the
//! node accepts, many per transaction (group commit), then publishes them.
//!
//! Why: a transaction has a fixed cost that one row or a hundred share
//! (on SQLite the commit: taking the write lock, appending the log; on
//! PostgreSQL the round trips and the flush), so while one group is being
//! stored the next one gathers in the queue. A lone message goes out at once; under load each commit
//! carries everything that arrived during the previous one.
//!
//! Under load (the previous group was stored moments ago) the writer also
//! waits a little for more before storing (`group_wait`, 2 ms by default,
//! like PostgreSQL's `commit_delay`), counted from when it took the
//! previous group: a group is taken at most every `group_wait`, and at
//! once when storing and publishing the previous one took longer (at high
//! load, where the writer also writes the messages to the pages' sockets,
//! see `mailbox`, a wait on top of that was only latency): each group costs a commit, and the
//! messages of one group reach a page together, in one write, where
//! separate groups mean a write each. At a few thousand messages a second
//! this stores and delivers them for about two thirds of the CPU, for a
//! millisecond or two more between send and delivery (2 ms rather than 1:
//! 4.1–4.5 → 3.7–3.8 µs per delivery in rooms of 100 at 1,000 messages a
//! second in interleaved runs, for about a millisecond more at the
//! median). A quiet room's message is never held back.
//!
//! On a SQLite file a group is stored by appending it to the message log,
//! and the database is filled from the log behind (see
//! `store::inline_sqlite`): whoever reads messages from the database first
//! asks the writer to settle ([`Writer::settle`]), so that it has every
//! message published so far.
//!
//! Guarantees kept from storing one message at a time:
//! - a message is published only after it is stored, and a room's
//!   messages are published in `seq` order (one task stores and publishes,
//!   in order);
//! - a retry (same room, user and client id) is stored once: a group in
//!   which anything was stored before changes nothing and its messages are
//!   stored one by one, the retries returning their stored copy (which is
//!   published again, see `Rooms::send`);
//! - a failed group fails only its own senders, with the store's error.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};

use super::bus::Bus;
use super::hub::RoomEvent;
use super::metrics as m;
use super::store::{MessageStore, NewMessage};
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

/// What the writer is asked to do.
enum Job {
    Store(Pending),
    /// Put every message stored so far into the database, then answer.
    Settle(oneshot::Sender<Result<(), DbErr>>),
}

/// The handle of the writer task; cloned by everything that sends.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    /// Whether the database may lack a published message (they are in the
    /// message log). Set by the writer before it publishes such a message,
    /// cleared once the database has them all; true until the writer has
    /// opened the store (which fills the database from the log).
    unsettled: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer task. It ends when the last handle is dropped,
    /// after storing what was queued.
    pub fn start(db: DatabaseConnection, bus: Arc<dyn Bus>, group_wait: Duration) -> Self {
        let (queue, inbox) = mpsc::channel(QUEUE);
        let unsettled = Arc::new(AtomicBool::new(true));
        tokio::spawn(run(db, bus, inbox, group_wait, unsettled.clone()));
        Writer { queue, unsettled }
    }

    /// Queues a message. The returned receiver resolves once it is stored
    /// and published (or failed); waits only while the queue is full.
    pub async fn submit(&self, channel_id: Arc<str>, message: NewMessage) -> oneshot::Receiver<Stored> {
        let (reply, stored) = oneshot::channel();
        let pending = Pending { message, channel_id, reply };
        if let Err(mpsc::error::SendError(Job::Store(pending))) = self.queue.send(Job::Store(pending)).await {
            let _ = pending.reply.send(Err(stopped()));
        }
        stored
    }

    /// Returns once the database has every message published before the
    /// call: what a reader of messages calls first. At once when it has
    /// them already (the usual case, and always off SQLite files).
    ///
    /// A reader that subscribes to a room and then settles misses nothing:
    /// a message published before the subscription was marked unsettled
    /// before it was published, and the hub orders the publish before the
    /// subscription.
    pub async fn settle(&self) -> Result<(), DbErr> {
        if !self.unsettled.load(Ordering::Acquire) {
            return Ok(());
        }
        let (reply, settled) = oneshot::channel();
        self.queue.send(Job::Settle(reply)).await.map_err(|_| stopped())?;
        settled.await.map_err(|_| stopped())?
    }
}

fn stopped() -> DbErr {
    DbErr::Custom("the message writer has stopped".to_owned())
}

/// The writer's store, the flag readers look at, and the writer's
/// metrics (looked up once: a lookup by name and label hashes them, a
/// cost per group for nothing).
struct Store {
    store: MessageStore,
    unsettled: Arc<AtomicBool>,
    metrics: WriterMetrics,
}

struct WriterMetrics {
    fill: metrics::Histogram,
    insert: metrics::Histogram,
    checkpoint_wait: metrics::Histogram,
    stored: metrics::Counter,
}

impl WriterMetrics {
    fn new() -> Self {
        WriterMetrics {
            fill: metrics::histogram!(m::DB_SECONDS, "op" => "fill"),
            insert: metrics::histogram!(m::DB_SECONDS, "op" => "insert_messages"),
            checkpoint_wait: metrics::histogram!(m::DB_SECONDS, "op" => "checkpoint_wait"),
            stored: metrics::counter!(m::MESSAGES_STORED),
        }
    }
}

impl Store {
    /// After storing, before publishing: readers must settle while the
    /// message log holds messages the database lacks.
    fn mark(&self) {
        if self.store.has_logged() {
            self.unsettled.store(true, Ordering::Release);
        }
    }

    fn filled(&self) {
        self.unsettled.store(self.store.has_logged(), Ordering::Release);
    }

    /// Takes the next step of filling the database from the message log,
    /// if one is due; with more steps to go, lets the runtime's other
    /// tasks (connections) run before the next.
    async fn fill_if_due(&mut self) {
        if self.store.fill_due_in() != Some(Duration::ZERO) {
            return;
        }
        let started = Instant::now();
        match self.store.fill_if_due() {
            Ok(committed) => {
                self.metrics.fill.record(started.elapsed());
                if committed {
                    self.filled();
                }
            }
            Err(err) => {
                tracing::error!(%err, "filling the database from the message log failed; trying again")
            }
        }
        if self.store.fill_due_in() == Some(Duration::ZERO) {
            tokio::task::yield_now().await;
        }
    }

    /// Starts or moves on a checkpoint (see `store::inline_sqlite`),
    /// counting the time the writer waited for it, if it did.
    async fn checkpoint_if_due(&mut self) {
        let started = Instant::now();
        if self.store.checkpoint_if_due().await {
            self.metrics.checkpoint_wait.record(started.elapsed());
        }
    }

    /// Fills the database from the message log now.
    async fn settle(&mut self) -> Result<(), DbErr> {
        let started = Instant::now();
        self.store.fill().await?;
        self.metrics.fill.record(started.elapsed());
        self.filled();
        Ok(())
    }
}

async fn run(
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    mut inbox: mpsc::Receiver<Job>,
    group_wait: Duration,
    unsettled: Arc<AtomicBool>,
) {
    let mut store = Store { store: MessageStore::open(db).await, unsettled, metrics: WriterMetrics::new() };
    store.filled();
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    let mut last_stored = None;
    // When the previous group was taken from the queue.
    let mut last_taken = None;
    loop {
        let received = match store.store.fill_due_in() {
            None => inbox.recv_many(&mut jobs, MAX_GROUP).await,
            // `recv_many` is cancel safe: a timeout loses nothing.
            Some(due_in) => match tokio::time::timeout(due_in, inbox.recv_many(&mut jobs, MAX_GROUP)).await {
                Ok(received) => received,
                Err(_) => {
                    // A checkpoint's last copy, which the fills wait for,
                    // may be done.
                    store.checkpoint_if_due().await;
                    store.fill_if_due().await;
                    continue;
                }
            },
        };
        if received == 0 {
            break;
        }
        if is_busy(last_stored.map(|at: Instant| at.elapsed()), group_wait) {
            let deadline = last_taken.map_or_else(Instant::now, |taken: Instant| taken + group_wait);
            gather(&mut inbox, &mut jobs, deadline.into()).await;
        }
        last_taken = Some(Instant::now());
        let (group, settles) = sort_jobs(std::mem::take(&mut jobs));
        if !group.is_empty() {
            store_group(&mut store, bus.as_ref(), group).await;
            last_stored = Some(Instant::now());
        }
        if settles.is_empty() {
            store.fill_if_due().await;
        } else {
            let settled = store.settle().await.map_err(|err| err.to_string());
            for reply in settles {
                let _ = reply.send(settled.clone().map_err(DbErr::Custom));
            }
        }
        // After publishing: should the checkpoint have to wait, it delays
        // what queues behind it, never what was just stored.
        store.checkpoint_if_due().await;
        jobs.reserve(MAX_GROUP);
    }
    // Every handle is gone: the database gets what the log holds now
    // (were this skipped, the next start would store it).
    if let Err(err) = store.settle().await {
        tracing::error!(%err, "filling the database from the message log at the end failed");
    }
}

/// Messages to store, in order, and the settles asked for.
fn sort_jobs(jobs: Vec<Job>) -> (Vec<Pending>, Vec<oneshot::Sender<Result<(), DbErr>>>) {
    let mut group = Vec::with_capacity(jobs.len());
    let mut settles = Vec::new();
    for job in jobs {
        match job {
            Job::Store(pending) => group.push(pending),
            Job::Settle(reply) => settles.push(reply),
        }
    }
    (group, settles)
}

/// Whether messages are coming in quickly enough to wait for more: the
/// previous group was stored less than two waits ago.
fn is_busy(since_last_group: Option<Duration>, group_wait: Duration) -> bool {
    !group_wait.is_zero() && since_last_group.is_some_and(|since| since < group_wait * 2)
}

/// Adds to the group what is queued and what arrives until `deadline`
/// (until the group is full). A deadline gone by takes what is queued.
async fn gather(inbox: &mut mpsc::Receiver<Job>, group: &mut Vec<Job>, deadline: tokio::time::Instant) {
    while group.len() < MAX_GROUP {
        let room = MAX_GROUP - group.len();
        // `recv_many` is cancel safe: a timeout loses nothing.
        match tokio::time::timeout_at(deadline, inbox.recv_many(group, room)).await {
            Ok(received) if received > 0 => {}
            _ => break,
        }
    }
}

/// Groups this small are checked for repeats by comparing each message
/// with the ones before it: cheaper than hashing them all.
const SMALL_GROUP: usize = 16;

/// Splits a group into messages new to it and repeats of one earlier in
/// the same group (a page that resent before its first copy was stored).
fn split_repeats(group: Vec<Pending>) -> (Vec<Pending>, Vec<Pending>) {
    // The keys borrow the group's strings: nothing is copied.
    fn key(p: &Pending) -> (i64, &str, &str) {
        (p.message.room_id, p.message.user_id.as_str(), p.message.client_msg_id.as_str())
    }
    let firsts: Vec<bool> = if group.len() <= SMALL_GROUP {
        (0..group.len()).map(|i| !group[..i].iter().any(|earlier| key(earlier) == key(&group[i]))).collect()
    } else {
        let mut seen = HashSet::with_capacity(group.len());
        group.iter().map(|p| seen.insert(key(p))).collect()
    };
    if firsts.iter().all(|&first| first) {
        return (group, Vec::new());
    }
    let mut firsts = firsts.into_iter();
    group.into_iter().partition(|_| firsts.next() == Some(true))
}

/// Who waits for a message of a group: its room's channel and its sender.
struct Waiter {
    channel_id: Arc<str>,
    reply: oneshot::Sender<Stored>,
}

/// Takes a group apart into its messages, to store them without a copy,
/// and who waits for each.
fn unzip(group: Vec<Pending>) -> (Vec<NewMessage>, Vec<Waiter>) {
    group
        .into_iter()
        .map(|Pending { message, channel_id, reply }| (message, Waiter { channel_id, reply }))
        .unzip()
}

async fn store_group(store: &mut Store, bus: &dyn Bus, group: Vec<Pending>) {
    let (firsts, repeats) = split_repeats(group);
    let (messages, waiters) = unzip(firsts);
    let started = Instant::now();
    let outcome = store.store.insert_messages(&messages).await;
    store.metrics.insert.record(started.elapsed());
    match outcome {
        Ok(Some(stored)) => {
            store.metrics.stored.increment(stored.len() as u64);
            store.mark();
            publish_by_room(bus, &waiters, &stored).await;
            for (waiter, message) in waiters.into_iter().zip(stored) {
                let _ = waiter.reply.send(Ok(message));
            }
        }
        Ok(None) => {
            // Something in the group was stored before: one by one.
            for (message, Waiter { channel_id, reply }) in messages.into_iter().zip(waiters) {
                store_one(store, bus, Pending { message, channel_id, reply }).await;
            }
        }
        Err(err) => {
            tracing::error!(%err, messages = messages.len(), "storing a group of messages failed");
            let text = err.to_string();
            for waiter in waiters {
                let _ = waiter.reply.send(Err(DbErr::Custom(text.clone())));
            }
        }
    }
    for pending in repeats {
        store_one(store, bus, pending).await;
    }
}

/// Stores one message on its own; a retry gets (and re-publishes) the
/// stored copy.
async fn store_one(store: &mut Store, bus: &dyn Bus, pending: Pending) {
    let outcome = store.store.insert_one(&pending.message).await;
    let reply = outcome.map(|inserted| {
        if inserted.is_new {
            store.metrics.stored.increment(1);
        }
        inserted.message
    });
    if let Ok(message) = &reply {
        store.mark();
        publish(bus, &pending.channel_id, message).await;
    }
    let _ = pending.reply.send(reply);
}

/// Publishes a group's messages, a room's together (in order): a page
/// gets them in one write.
async fn publish_by_room(bus: &dyn Bus, waiters: &[Waiter], messages: &[ChatMessage]) {
    for (channel_id, events) in by_room(waiters.iter().map(|w| &w.channel_id).zip(messages)) {
        // The messages are committed: a failed publish is recovered by the
        // readers' catch-up from the store, not by failing the sends.
        if let Err(err) = bus.publish_all(channel_id, events).await {
            tracing::warn!(channel_id, %err, "publish failed after commit");
        }
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

async fn publish(bus: &dyn Bus, channel_id: &str, message: &ChatMessage) {
    // The message is committed: a failed publish is recovered by the
    // readers' catch-up from the store, not by failing the send.
    if let Err(err) = bus.publish(channel_id, RoomEvent::new(ServerFrame::Message(message.clone()))).await {
        tracing::warn!(channel_id, %err, "publish failed after commit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::bus::LocalBus;
    use crate::server::hub::Hub;
    use crate::server::store;
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
        let writer = Writer::start(db.clone(), Arc::new(LocalBus::new(hub.clone())), group_wait);
        (db, hub, writer, a, b)
    }

    fn new(room_id: i64, id: &str) -> NewMessage {
        NewMessage { room_id, user_id: "ana".into(), client_msg_id: id.into(), body: format!("body of {id}") }
    }

    #[test]
    fn a_groups_messages_are_published_by_room_in_order() {
        let message = |seq: i64| ChatMessage {
            seq,
            user_id: "ana".into(),
            body: "hi".into(),
            client_msg_id: format!("c{seq}"),
            at_ms: 0,
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
        let unsettled = writer.unsettled.clone();
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
        writer.settle().await.unwrap();
        assert!(!unsettled.load(Ordering::Acquire), "settled: the database has them all");
        let stored = store::messages_after(&db, b, 0, 1000).await.unwrap();
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
        let stored = store::messages_after(&db, a, 0, 10).await.unwrap();
        assert_eq!(stored.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[tokio::test]
    async fn a_message_for_a_missing_room_fails_its_group_and_changes_nothing() {
        let (db, _hub, writer, a, _) = setup().await;
        let good = writer.submit("a".into(), new(a, "ok")).await;
        let bad = writer.submit("nowhere".into(), new(9999, "lost")).await;
        let (good, bad) = (good.await.unwrap(), bad.await.unwrap());
        assert!(bad.is_err());
        // Whether the good one shared the failed group or not, nothing
        // half-written remains and the room's seqs stay consecutive.
        let stored = store::messages_after(&db, a, 0, 10).await.unwrap();
        match good {
            Ok(message) => assert_eq!(stored, [message]),
            Err(_) => assert!(stored.is_empty()),
        }
        let next = writer.submit("a".into(), new(a, "next")).await.await.unwrap().unwrap();
        assert_eq!(next.seq, stored.len() as i64 + 1);
    }

    fn pending(room_id: i64, user: &str, id: &str) -> Pending {
        Pending {
            message: NewMessage {
                room_id,
                user_id: user.into(),
                client_msg_id: id.into(),
                body: String::new(),
            },
            channel_id: "a".into(),
            reply: oneshot::channel().0,
        }
    }

    fn keys(ps: &[Pending]) -> Vec<(i64, String, String)> {
        ps.iter()
            .map(|p| (p.message.room_id, p.message.user_id.clone(), p.message.client_msg_id.clone()))
            .collect()
    }

    fn key(room: i64, user: &str, id: &str) -> (i64, String, String) {
        (room, user.to_owned(), id.to_owned())
    }

    #[test]
    fn a_group_splits_into_first_copies_in_order_and_repeats() {
        let group = vec![
            pending(1, "ana", "x"),
            pending(1, "ana", "y"),
            pending(1, "ana", "x"),
            pending(2, "ana", "x"),
            pending(1, "bob", "x"),
            pending(1, "ana", "y"),
        ];
        let (firsts, repeats) = split_repeats(group);
        assert_eq!(
            keys(&firsts),
            [key(1, "ana", "x"), key(1, "ana", "y"), key(2, "ana", "x"), key(1, "bob", "x")]
        );
        assert_eq!(keys(&repeats), [key(1, "ana", "x"), key(1, "ana", "y")]);
    }

    #[test]
    fn a_large_group_splits_the_same_way() {
        let mut group: Vec<Pending> =
            (0..SMALL_GROUP * 2).map(|i| pending(1, "ana", &format!("m{i}"))).collect();
        group.insert(5, pending(1, "ana", "m30"));
        group.push(pending(1, "ana", "m0"));
        let (firsts, repeats) = split_repeats(group);
        let expected: Vec<_> = (0..5)
            .chain([30])
            .chain((5..SMALL_GROUP * 2).filter(|&i| i != 30))
            .map(|i| key(1, "ana", &format!("m{i}")))
            .collect();
        assert_eq!(keys(&firsts), expected);
        assert_eq!(keys(&repeats), [key(1, "ana", "m30"), key(1, "ana", "m0")]);
    }

    #[test]
    fn a_group_without_repeats_is_kept_whole() {
        let (firsts, repeats) = split_repeats(vec![pending(1, "ana", "x"), pending(2, "ana", "x")]);
        assert_eq!(keys(&firsts), [key(1, "ana", "x"), key(2, "ana", "x")]);
        assert!(repeats.is_empty());
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
        assert_eq!(store::messages_after(&db, a, 0, 10).await.unwrap().len(), 3);
    }
}
