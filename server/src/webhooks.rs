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
//! Delivery is at least once, in order: each URL has a queue on each node
//! and one request in flight at a time; no answer within `TIMEOUT`, a 5xx,
//! a 408 or a 429 is retried with exponential backoff and jitter, the same
//! event again before any later one. Any other 4xx says the receiver will
//! never take that event: it is dropped (counted, logged) rather than hold
//! back the rest. The chat never waits for a
//! receiver: events are queued without blocking, and a queue that is full
//! (a receiver down for long) drops its oldest pending event, counted in
//! `chat_webhook_dropped_total` and logged. Each event is queued by the node
//! that committed it (see `engine::events`), so a cluster sends it once.
//! Events of one room committed on different nodes travel in different
//! queues: a receiver that needs a room's exact order sorts message events
//! by `seq`. Pending events live in memory. A node that is stopped
//! (SIGTERM) delivers them before it exits: once its connections have
//! closed (their last messages stored and queued here), each queue is
//! emptied, retries included, within what is left of the shutdown grace
//! period; what is still pending then is logged as lost. A node that
//! crashes or is killed loses what it had not delivered.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::events::{Event, EventSink};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    describe_counter!(DROPPED, "Webhook events dropped because a receiver's queue was full");
    describe_histogram!(RECEIVER_SECONDS, Unit::Seconds, "Time webhook receivers took to answer");
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

/// A queue of events waiting for one receiver, bounded: when full, the
/// oldest waiting event makes way (and is counted).
#[derive(Default)]
pub struct Pending {
    events: Mutex<VecDeque<Delivery>>,
    ready: Notify,
}

impl Pending {
    /// Queues an event; `Some(dropped)` when the oldest one made way.
    pub fn push(&self, delivery: Delivery, most: usize) -> Option<Delivery> {
        let mut events = self.events.lock();
        let dropped = (events.len() >= most).then(|| events.pop_front()).flatten();
        events.push_back(delivery);
        drop(events);
        self.ready.notify_one();
        dropped
    }

    /// The next event to deliver, waiting for one.
    async fn next(&self) -> Delivery {
        loop {
            if let Some(delivery) = self.events.lock().pop_front() {
                return delivery;
            }
            self.ready.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.events.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The node's webhooks: a queue and a delivering task per URL.
pub struct Webhooks {
    queues: Vec<Arc<Pending>>,
    most: usize,
    /// When a drop was last logged (one line per few seconds, not per event).
    last_drop_log: Mutex<Option<Instant>>,
    /// Cancelled when the node has stopped serving: each task delivers
    /// what its queue holds, then ends.
    closing: CancellationToken,
    /// Cancelled when the time for that is up: the tasks end at once.
    abort: CancellationToken,
    tasks: TaskTracker,
}

/// What the webhooks need.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    pub secret: Vec<u8>,
    /// Events each URL's queue holds at most.
    pub queue: usize,
}

impl Webhooks {
    /// Starts a delivering task per URL (until [`Webhooks::finish`]).
    pub fn start(settings: WebhookSettings) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("embedded-chat-webhooks")
            .build()
            .expect("an HTTP client with default TLS settings builds");
        let secret: Arc<[u8]> = settings.secret.into();
        let (closing, abort, tasks) =
            (CancellationToken::new(), CancellationToken::new(), TaskTracker::new());
        let queues = settings
            .urls
            .iter()
            .map(|url| {
                let queue = Arc::new(Pending::default());
                let sender = Sender { client: client.clone(), url: url.clone(), secret: secret.clone() };
                let delivering = deliver(sender, queue.clone(), closing.clone());
                let abort = abort.clone();
                tasks.spawn(async move {
                    tokio::select! {
                        () = delivering => {}
                        () = abort.cancelled() => {}
                    }
                });
                queue
            })
            .collect();
        tasks.close();
        let most = settings.queue.max(1);
        Arc::new(Webhooks { queues, most, last_drop_log: Mutex::new(None), closing, abort, tasks })
    }

    /// Delivers what the queues hold (called once the node has stopped
    /// serving), waiting until `deadline` at most; what is left then is
    /// dropped and logged.
    pub async fn finish(&self, deadline: tokio::time::Instant) {
        self.closing.cancel();
        if tokio::time::timeout_at(deadline, self.tasks.wait()).await.is_err() {
            let lost: usize = self.queues.iter().map(|queue| queue.len()).sum();
            tracing::warn!(
                lost,
                "webhook events still pending at the end of the shutdown grace period: lost"
            );
            self.abort.cancel();
        }
    }
}

impl EventSink for Webhooks {
    fn emit(&self, event: Event) {
        let delivery = Delivery { id: format!("evt_{}", uuid::Uuid::new_v4().simple()), event };
        for queue in &self.queues {
            if let Some(dropped) = queue.push(delivery.clone(), self.most) {
                metrics::counter!(DROPPED).increment(1);
                let mut last = self.last_drop_log.lock();
                if last.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                    *last = Some(Instant::now());
                    tracing::warn!(
                        dropped = %dropped.id,
                        waiting = queue.len(),
                        "a webhook receiver is behind: its oldest pending events are dropped"
                    );
                }
            }
        }
    }
}

/// Where a queue's events go.
struct Sender {
    client: reqwest::Client,
    url: String,
    secret: Arc<[u8]>,
}

/// Delivers a queue's events, one at a time, each until the receiver takes
/// it; once `closing`, ends when the queue is empty.
async fn deliver(sender: Sender, queue: Arc<Pending>, closing: CancellationToken) {
    loop {
        let delivery = tokio::select! {
            biased;
            delivery = queue.next() => delivery,
            _ = closing.cancelled() => return,
        };
        sender.send(&delivery).await;
    }
}

impl Sender {
    /// Sends one event until the receiver takes it (or refuses it for
    /// good), with backoff between attempts.
    async fn send(&self, delivery: &Delivery) {
        let Sender { client, url, secret } = self;
        let body = serde_json::to_vec(delivery).expect("events serialize");
        for attempt in 0u32.. {
            let started = Instant::now();
            let at = chrono::Utc::now().timestamp();
            let sent = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature(secret, at, &body))
                .body(body.clone())
                .send()
                .await;
            metrics::histogram!(RECEIVER_SECONDS).record(started.elapsed());
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    metrics::counter!(DELIVERED).increment(1);
                    break;
                }
                Ok(answer) if refused_for_good(answer.status()) => {
                    // The receiver will never take this one: sending it
                    // again would hold back everything after it.
                    metrics::counter!(DROPPED).increment(1);
                    let status = answer.status();
                    tracing::warn!(%url, %status, id = %delivery.id, "a webhook receiver refused an event: dropped");
                    break;
                }
                Ok(answer) => {
                    tracing::debug!(%url, status = %answer.status(), id = %delivery.id, "webhook refused")
                }
                Err(err) => tracing::debug!(%url, %err, id = %delivery.id, "webhook not delivered"),
            }
            metrics::counter!(RETRIED).increment(1);
            let wait = Duration::from_millis(
                app::backoff::delay_ms(attempt, crate::admission::random_unit()).into(),
            );
            tokio::time::sleep(wait).await;
        }
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
    fn a_full_queue_drops_its_oldest_event_and_keeps_the_order_of_the_rest() {
        let queue = Pending::default();
        for id in ["a", "b", "c"] {
            assert!(queue.push(delivery(id), 3).is_none());
        }
        let dropped = queue.push(delivery("d"), 3).expect("full: the oldest makes way");
        assert_eq!(dropped.id, "a");
        let order: Vec<String> = queue.events.lock().iter().map(|d| d.id.clone()).collect();
        assert_eq!(order, ["b", "c", "d"]);
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
