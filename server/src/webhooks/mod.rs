//! Webhooks: what happens in rooms, POSTed to the game's backend (the
//! URLs of `WEBHOOK_URLS`) as it happens, so that it need not poll.
//!
//! Every request carries one event as JSON:
//!
//! ```json
//! {"id": "evt_…", "type": "message.created", "room": "game_1", "seq": 12,
//!  "at_ms": 1796000000000, "data": {…}}
//! ```
//!
//! and is signed: `X-Chat-Signature: t=<unix seconds>,v1=<hex>`, where
//! `<hex>` is HMAC-SHA256 with `WEBHOOK_SECRET` over `"<t>." + body`. A
//! receiver recomputes it over the raw body, compares in constant time,
//! refuses a `t` more than five minutes from its clock (a replay), and
//! keeps the ids it has seen for a while (a retry of a delivered event
//! comes with the same id). The README has the recipe.
//!
//! Delivery is at least once, in order, and survives restarts: each event
//! is saved in the database's outbox (`webhook_outbox`, see `outbox`), one
//! row per URL, within milliseconds of the commit it tells of (by a task of
//! the node that committed it, in groups, so a cluster saves it once), and
//! deleted once its receiver took it. For each URL one node at a time delivers (it holds
//! the URL's lease, renewed as it goes; a node that stops gives it up, one
//! that dies loses it after `LEASE`), oldest first, one request in flight:
//! no answer within `TIMEOUT`, a 5xx, a 408 or a 429 is retried with
//! exponential backoff and jitter, the same event again before any later
//! one. Any other 4xx says the receiver will never take that event: it is
//! dropped (counted, logged) rather than hold back the rest. The chat never
//! waits for a receiver: events are handed to the saving task without
//! blocking, and a URL with more than `WEBHOOK_QUEUE` events waiting (a
//! receiver down for long) loses its oldest (not those of the batch being
//! sent, at most `BATCH`), counted in `chat_webhook_dropped_total` and
//! logged. Events of one room committed
//! on different nodes may be saved in another order than their commits: a
//! receiver that needs a room's exact order sorts message events by `seq`.
//!
//! A node that is stopped (SIGTERM) saves what it holds, then delivers
//! what waits for the URLs it leases, up to the newest event saved by then
//! (other nodes go on saving), within its shutdown grace period; what is
//! left waits in the database for the next node to take the lease. A node
//! that crashes loses only the events not saved yet: the last
//! milliseconds' while the database keeps up (while it is down, up to
//! `WEBHOOK_QUEUE` wait in memory).
mod outbox;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::events::{Event, EventSink};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest a stopping node spends on its last statements (delivered rows
/// deleted, leases given up) once the grace period is over.
const LAST_STATEMENTS: Duration = Duration::from_secs(2);
/// Longest wait for a receiver's answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-chat-signature";

pub const DELIVERED: &str = "chat_webhook_delivered_total";
pub const RETRIED: &str = "chat_webhook_retries_total";
pub const DROPPED: &str = "chat_webhook_dropped_total";
pub const RECEIVER_SECONDS: &str = "chat_webhook_receiver_seconds";

/// Describes the webhook metrics (help text for the exposition format).
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(DELIVERED, "Webhook events a receiver took (answered 2xx)");
    describe_counter!(RETRIED, "Webhook deliveries that failed and will be tried again");
    describe_counter!(
        DROPPED,
        "Webhook events dropped: a receiver's outbox was full, or it refused them for good"
    );
    describe_histogram!(RECEIVER_SECONDS, Unit::Seconds, "Time webhook receivers took to answer");
}

/// Warns of events waiting in the outbox for URLs this node does not
/// deliver to (taken out of `WEBHOOK_URLS`, or all of them when it is
/// unset): a node with the URL in its list delivers them, otherwise they
/// wait for good. The log names the receiver's host only (a URL may carry
/// a token).
pub fn warn_of_events_left_behind(db: DatabaseConnection, delivered: Vec<String>) {
    tokio::spawn(async move {
        match outbox::waiting_elsewhere(&db, &delivered).await {
            Ok(left) => {
                for (url, events) in left {
                    let receiver =
                        reqwest::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned));
                    tracing::warn!(
                        receiver = receiver.as_deref().unwrap_or("?"),
                        events,
                        "webhook events wait for a URL that is not in WEBHOOK_URLS: a node with it in its \
                         list delivers them, otherwise they stay (see README, Webhooks)"
                    );
                }
            }
            Err(err) => tracing::warn!(%err, "could not look for webhook events left behind"),
        }
    });
}

/// An event as sent: the engine's event and its id.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub id: String,
    #[serde(flatten)]
    pub event: Event,
}

/// `t=<at>,v1=<hex HMAC-SHA256(secret, "<at>." + body)>`.
pub fn signature(secret: &[u8], at: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={at},v1={hex}")
}

/// The node's webhooks: a task saving events to the outbox, and one
/// delivering each URL's.
pub struct Webhooks {
    shared: Arc<Shared>,
    /// Cancelled when the node has stopped serving: the saving task saves
    /// what it holds, then ends.
    closing: CancellationToken,
    /// Cancelled when the time for delivering what waits is up: the tasks
    /// end at once.
    abort: CancellationToken,
    tasks: TaskTracker,
}

struct Shared {
    db: DatabaseConnection,
    /// This node, as leases name it.
    holder: String,
    routes: Vec<Route>,
    /// Events emitted and not saved yet, oldest first.
    unsaved: Mutex<VecDeque<Delivery>>,
    unsaved_ready: Notify,
    /// Cancelled once the saving task has saved its last events (shutdown).
    saved_all: CancellationToken,
    /// Events each URL may have waiting.
    most: usize,
    /// When a drop was last logged (one line per few seconds, not per event).
    last_drop_log: Mutex<Option<Instant>>,
}

/// One URL's side of it.
struct Route {
    url: String,
    /// Told when events for it were saved.
    saved: Notify,
    /// The first and last ids of the batch being sent, spared by
    /// trimming: its rows are being sent, or were delivered and wait to be
    /// deleted.
    in_hand: Mutex<Option<(i64, i64)>>,
    /// Rows delivered and not deleted yet (deleted together, every
    /// `DONE_EVERY` at the latest), and since when the oldest waits.
    delivered: Mutex<(Vec<i64>, Option<Instant>)>,
}

impl Route {
    /// Notes a delivered row; deletes the ones noted once the oldest has
    /// waited `DONE_EVERY`.
    async fn delivered(&self, db: &DatabaseConnection, id: i64) {
        let due = {
            let mut delivered = self.delivered.lock();
            delivered.0.push(id);
            delivered.1.get_or_insert_with(Instant::now).elapsed() >= DONE_EVERY
        };
        if due {
            self.forget_delivered(db).await;
        }
    }

    /// Deletes the delivered rows from the outbox (a failure is logged:
    /// they will be sent again, with their ids).
    async fn forget_delivered(&self, db: &DatabaseConnection) {
        let ids = std::mem::take(&mut *self.delivered.lock()).0;
        if let Err(err) = outbox::done(db, &ids).await {
            tracing::warn!(%err, "delivered webhook events stay in the outbox: they will be sent again");
        }
    }
}

/// What the webhooks need.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    pub secret: Vec<u8>,
    /// Events each URL may have waiting.
    pub queue: usize,
}

/// How long a lease holds without being renewed (a dead node's URLs wait
/// this long for another node).
const LEASE: Duration = Duration::from_secs(20);
/// How often the holder renews it: with a request in flight (`TIMEOUT`)
/// it is still renewed 5 s before it runs out.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a node looks for events saved by other nodes, or for a lease
/// come free.
const POLL: Duration = Duration::from_millis(500);
/// Events read from the outbox at once.
const BATCH: u64 = 64;
/// How long delivered events may wait to be deleted together (they are
/// also deleted before a retry waits, and when a node stops).
const DONE_EVERY: Duration = Duration::from_millis(200);
/// The wait after the database failed, before trying again.
const DB_RETRY: Duration = Duration::from_secs(1);

impl Webhooks {
    /// Starts the saving task and a delivering task per URL (until
    /// [`Webhooks::finish`]).
    pub fn start(settings: WebhookSettings, db: DatabaseConnection) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("embedded-chat-webhooks")
            .build()
            .expect("an HTTP client with default TLS settings builds");
        let secret: Arc<[u8]> = settings.secret.into();
        let routes = settings
            .urls
            .iter()
            .map(|url| Route {
                url: url.clone(),
                saved: Notify::new(),
                in_hand: Mutex::new(None),
                delivered: Mutex::new((Vec::new(), None)),
            })
            .collect();
        let shared = Arc::new(Shared {
            // One of its own per process: two processes on one file (a
            // restart that overlaps) never both believe they hold a lease.
            holder: uuid::Uuid::new_v4().simple().to_string(),
            db,
            routes,
            unsaved: Mutex::new(VecDeque::new()),
            unsaved_ready: Notify::new(),
            saved_all: CancellationToken::new(),
            most: settings.queue.max(1),
            last_drop_log: Mutex::new(None),
        });
        let (closing, abort, tasks) =
            (CancellationToken::new(), CancellationToken::new(), TaskTracker::new());
        let until_aborted = |work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            let abort = abort.clone();
            async move {
                tokio::select! {
                    () = work => {}
                    () = abort.cancelled() => {}
                }
            }
        };
        tasks.spawn(until_aborted(Box::pin(save(shared.clone(), closing.clone()))));
        for index in 0..shared.routes.len() {
            let sender = Sender { client: client.clone(), secret: secret.clone() };
            tasks.spawn(until_aborted(Box::pin(deliver(shared.clone(), index, sender))));
        }
        tasks.close();
        Arc::new(Webhooks { shared, closing, abort, tasks })
    }

    /// Saves what the node holds and delivers what waits (called once the
    /// node has stopped serving), until `deadline` at most; what is left
    /// then waits in the database for the next node that takes the lease.
    pub async fn finish(&self, deadline: tokio::time::Instant) {
        self.closing.cancel();
        if tokio::time::timeout_at(deadline, self.tasks.wait()).await.is_err() {
            self.abort.cancel();
            self.tasks.wait().await;
            let Shared { db, holder, routes, unsaved, .. } = self.shared.as_ref();
            let lost = unsaved.lock().len();
            // Bounded: with the database gone, each statement would wait
            // for the pool's timeout, well past the grace period.
            let tidy_up = async {
                let mut waiting = 0;
                for route in routes {
                    route.forget_delivered(db).await;
                    waiting += outbox::waiting(db, &route.url).await.unwrap_or(0);
                    let _ = outbox::release(db, &route.url, holder).await;
                }
                waiting
            };
            let waiting = tokio::time::timeout(LAST_STATEMENTS, tidy_up).await.ok();
            tracing::warn!(
                waiting = waiting
                    .map_or_else(|| "unknown (the database did not answer)".to_owned(), |n| n.to_string()),
                lost,
                "webhook events still waiting at the end of the shutdown grace period: \
                 kept for the next node (those not saved yet are lost)"
            );
        }
    }
}

impl EventSink for Webhooks {
    fn emit(&self, event: Event) {
        let delivery = Delivery { id: format!("evt_{}", uuid::Uuid::new_v4().simple()), event };
        let shared = &self.shared;
        let mut unsaved = shared.unsaved.lock();
        // The database is far behind (or down): the oldest make way.
        let dropped = (unsaved.len() >= shared.most).then(|| unsaved.pop_front()).flatten();
        unsaved.push_back(delivery);
        drop(unsaved);
        shared.unsaved_ready.notify_one();
        if dropped.is_some() {
            shared.dropped(1, "the database is behind: webhook events not saved yet are dropped");
        }
    }
}

impl Shared {
    /// Counts dropped events; logs one line per few seconds.
    fn dropped(&self, count: u64, why: &'static str) {
        metrics::counter!(DROPPED).increment(count);
        let mut last = self.last_drop_log.lock();
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
            *last = Some(Instant::now());
            tracing::warn!(count, "{why}");
        }
    }

    /// Saves what was emitted, for every URL, and trims what waits beyond
    /// `most`; false when the database failed (the events are kept).
    async fn save_unsaved(&self) -> bool {
        let events: Vec<Delivery> = self.unsaved.lock().drain(..).collect();
        if events.is_empty() {
            return true;
        }
        let bodies: Vec<String> =
            events.iter().map(|e| serde_json::to_string(e).expect("events serialize")).collect();
        let rows: Vec<(&str, &str)> = bodies
            .iter()
            .flat_map(|body| self.routes.iter().map(move |route| (route.url.as_str(), body.as_str())))
            .collect();
        if let Err(err) = outbox::save(&self.db, &rows).await {
            tracing::warn!(%err, events = events.len(), "saving webhook events failed; trying again");
            let mut unsaved = self.unsaved.lock();
            for event in events.into_iter().rev() {
                unsaved.push_front(event);
            }
            let over = unsaved.len().saturating_sub(self.most);
            unsaved.drain(..over);
            drop(unsaved);
            if over > 0 {
                self.dropped(over as u64, "the database is behind: webhook events not saved yet are dropped");
            }
            return false;
        }
        for route in &self.routes {
            let in_hand = *route.in_hand.lock();
            match outbox::trim(&self.db, &route.url, self.most as u64, in_hand).await {
                Ok(0) => {}
                Ok(trimmed) => {
                    self.dropped(trimmed, "a webhook receiver is behind: its oldest events are dropped")
                }
                Err(err) => tracing::warn!(%err, "trimming the webhook outbox failed"),
            }
            route.saved.notify_one();
        }
        true
    }
}

/// Saves emitted events as they come; once `closing`, saves the last ones
/// and ends.
async fn save(shared: Arc<Shared>, closing: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            () = shared.unsaved_ready.notified() => false,
            () = closing.cancelled() => true,
        };
        while !shared.save_unsaved().await {
            tokio::time::sleep(DB_RETRY).await;
        }
        if stopping {
            shared.saved_all.cancel();
            return;
        }
    }
}

/// Delivers the events saved for one URL while this node holds its lease,
/// oldest first, each until the receiver takes it. On shutdown, once this
/// node's events are saved, delivers what waits up to the newest event
/// saved then (other nodes go on saving), gives the lease up and ends.
async fn deliver(shared: Arc<Shared>, index: usize, sender: Sender) {
    let route = &shared.routes[index];
    let db = &shared.db;
    let mut lease = Lease::default();
    // On shutdown: the newest row to deliver before ending.
    let mut last: Option<i64> = None;
    loop {
        if shared.saved_all.is_cancelled() && last.is_none() {
            match outbox::newest(db, &route.url).await {
                Ok(newest) => last = Some(newest.unwrap_or(0)),
                Err(_) => {
                    tokio::time::sleep(DB_RETRY).await;
                    continue;
                }
            }
        }
        let held = lease.hold(&shared, &route.url).await;
        let next = if held {
            outbox::oldest(db, &route.url, last, BATCH).await.inspect_err(|err| {
                tracing::warn!(%err, "reading the webhook outbox failed");
            })
        } else {
            Ok(Vec::new())
        };
        match next {
            Ok(batch) if !batch.is_empty() => {
                *route.in_hand.lock() =
                    batch.first().zip(batch.last()).map(|(first, last)| (first.0, last.0));
                for (id, body) in batch {
                    if !sender.send(&shared, &mut lease, route, id, &body).await {
                        break;
                    }
                    route.delivered(db, id).await;
                }
                route.forget_delivered(db).await;
                *route.in_hand.lock() = None;
            }
            Ok(_) if last.is_some() => {
                let _ = outbox::release(db, &route.url, &shared.holder).await;
                return;
            }
            // Another node delivers: look again now and then.
            Ok(_) if !held => {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = shared.saved_all.cancelled() => {}
                }
            }
            // Waits for this node's next events, or for other nodes'.
            Ok(_) => {
                tokio::select! {
                    () = route.saved.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = shared.saved_all.cancelled() => {}
                }
            }
            Err(_) => tokio::time::sleep(DB_RETRY).await,
        }
    }
}

/// When this node last took or renewed a URL's lease.
#[derive(Default)]
struct Lease(Option<Instant>);

impl Lease {
    /// Whether this node holds the lease; renews it every `RENEW_EVERY`
    /// (so it does not run out while this node thinks it holds it: the
    /// time counted from is taken before asking the database).
    async fn hold(&mut self, shared: &Shared, url: &str) -> bool {
        if self.0.is_some_and(|at| at.elapsed() < RENEW_EVERY) {
            return true;
        }
        let asked = Instant::now();
        let held = async {
            // The database's clock, not this node's: clocks that disagree
            // would let two nodes hold the lease at once.
            let now = outbox::now_ms(&shared.db).await?;
            outbox::lease(&shared.db, url, &shared.holder, now, now + LEASE.as_millis() as i64).await
        }
        .await
        .inspect_err(|err| tracing::warn!(%err, "taking the webhook lease failed"))
        .unwrap_or(false);
        self.0 = held.then_some(asked);
        held
    }
}

/// How events are sent.
struct Sender {
    client: reqwest::Client,
    secret: Arc<[u8]>,
}

impl Sender {
    /// Sends one event until the receiver takes it or refuses it for good
    /// (true: done with it), with backoff between attempts; false when the
    /// lease went to another node meanwhile (it sends the event).
    async fn send(&self, shared: &Shared, lease: &mut Lease, route: &Route, id: i64, body: &str) -> bool {
        let Sender { client, secret } = self;
        let url = route.url.as_str();
        for attempt in 0u32.. {
            if !lease.hold(shared, url).await {
                return false;
            }
            let started = Instant::now();
            let at = chrono::Utc::now().timestamp();
            let sent = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature(secret, at, body.as_bytes()))
                .body(body.to_owned())
                .send()
                .await;
            metrics::histogram!(RECEIVER_SECONDS).record(started.elapsed());
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    metrics::counter!(DELIVERED).increment(1);
                    return true;
                }
                Ok(answer) if refused_for_good(answer.status()) => {
                    // The receiver will never take this one: sending it
                    // again would hold back everything after it.
                    metrics::counter!(DROPPED).increment(1);
                    let status = answer.status();
                    tracing::warn!(%url, %status, row = id, "a webhook receiver refused an event: dropped");
                    return true;
                }
                Ok(answer) => tracing::debug!(%url, status = %answer.status(), row = id, "webhook refused"),
                Err(err) => tracing::debug!(%url, %err, row = id, "webhook not delivered"),
            }
            metrics::counter!(RETRIED).increment(1);
            // What was delivered before it is not left to be sent again.
            route.forget_delivered(&shared.db).await;
            let wait = Duration::from_millis(
                app::backoff::delay_ms(attempt, crate::admission::random_unit()).into(),
            );
            // The lease is renewed while waiting, so a long wait after a
            // slow answer does not hand the URL to another node, which
            // would start its backoff over.
            let resume = Instant::now() + wait;
            loop {
                if !lease.hold(shared, url).await {
                    return false;
                }
                let left = resume.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(RENEW_EVERY)).await;
            }
        }
        unreachable!("the attempts go on until one ends the call")
    }
}

/// Whether an answer says the receiver will never take the event (a 4xx
/// other than a timeout or "too many requests"), rather than "not now".
fn refused_for_good(status: reqwest::StatusCode) -> bool {
    status.is_client_error()
        && status != reqwest::StatusCode::REQUEST_TIMEOUT
        && status != reqwest::StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::events::EventKind;

    fn delivery(id: &str) -> Delivery {
        let event = Event::new(EventKind::MemberJoined, "r", None, serde_json::json!({ "user_id": id }));
        Delivery { id: id.to_owned(), event }
    }

    #[test]
    fn a_signature_is_the_hmac_of_the_time_and_the_body_in_hex() {
        // Checked against `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret`.
        assert_eq!(
            signature(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn only_a_lasting_refusal_stops_the_retries() {
        use reqwest::StatusCode;
        for status in [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND, StatusCode::PAYLOAD_TOO_LARGE] {
            assert!(refused_for_good(status), "{status}");
        }
        for status in [
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::BAD_GATEWAY,
        ] {
            assert!(!refused_for_good(status), "{status}");
        }
    }

    #[test]
    fn an_event_is_sent_as_flat_json_with_its_id() {
        let json = serde_json::to_value(delivery("evt_1")).unwrap();
        assert_eq!(json["id"], "evt_1");
        assert_eq!(json["type"], "member.joined");
        assert_eq!(json["room"], "r");
        assert!(json["at_ms"].as_i64().unwrap() > 0);
    }
}
