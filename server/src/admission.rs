//! Admission of the work a player's first second costs: room pages and
//! server-function calls. At most `in_flight` are worked on at once; up to
//! `queue` more wait their turn (each at most `max_wait`); the rest are
//! answered at once, for the price of a few bytes: a page that opens the
//! room again by itself a few seconds later (jittered, so a crowd does not
//! come back as one), or, for a server function, a 503 with `Retry-After`.
//!
//! Why: a node given more joins than it can serve used to start them all.
//! Every request then took longer than its timeout, memory grew with the
//! crowd (10,078 of 15,000 players in after 240 s, 425 MB), and the players
//! saw an error page. Bounded, the node serves at its full rate, and every
//! player gets either the room or a short wait.
//!
//! Not admitted here: the bundle (files sent as they are), the operations
//! endpoints (a probe must answer when the node is busiest) and the room
//! stream. A browser cannot read the status of a refused websocket
//! handshake, so a 503 with `Retry-After` would be a blind failure to the
//! page; a connection waiting for its welcome costs about 4 KiB, its reads
//! wait their turn in the store's connection pool, and pages coming back
//! after a restart are spread by their jittered backoff (a quarter to half
//! a second, then doubling). Measured: 15,000 players loading the page and
//! opening the stream at once all get in (bench/README.md).
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Requests answered at once because the node was full.
pub const SHED: &str = "chat_requests_shed_total";
/// Time admitted requests waited for their turn.
pub const QUEUED_SECONDS: &str = "chat_request_queued_seconds";

/// How much work is admitted; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub in_flight: usize,
    pub queue: usize,
    pub max_wait: Duration,
}

/// The node's admission: its slots and its waiting line.
pub struct Admission {
    slots: Semaphore,
    waiting: AtomicUsize,
    limits: Limits,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            slots: Semaphore::new(limits.in_flight.max(1)),
            waiting: AtomicUsize::new(0),
            limits,
        })
    }

    /// A slot: at once if one is free, else after waiting in line if the
    /// line has room and a slot frees up within `max_wait`; `None` when
    /// the request is to be turned away.
    pub async fn admit(&self) -> Option<SemaphorePermit<'_>> {
        if let Ok(slot) = self.slots.try_acquire() {
            return Some(slot);
        }
        let _in_line = InLine::join(&self.waiting, self.limits.queue)?;
        tokio::time::timeout(self.limits.max_wait, self.slots.acquire()).await.ok()?.ok()
    }
}

/// A place in the waiting line, given back when dropped (also when the
/// request is abandoned while waiting).
struct InLine<'a>(&'a AtomicUsize);

impl<'a> InLine<'a> {
    fn join(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        let taken =
            waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1));
        taken.ok().map(|_| InLine(waiting))
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The middleware: admits or turns away each request it is given.
pub async fn admit(State(admission): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    if !is_admitted_work(request.uri().path()) {
        return next.run(request).await;
    }
    let arrived = Instant::now();
    let Some(_slot) = admission.admit().await else {
        metrics::counter!(SHED).increment(1);
        return turned_away(&request, retry_after_secs(random_unit()));
    };
    metrics::histogram!(QUEUED_SECONDS).record(arrived.elapsed().as_secs_f64());
    next.run(request).await
}

/// Pages and server functions; not the bundle (`/pkg`) nor the stream.
fn is_admitted_work(path: &str) -> bool {
    !path.starts_with("/pkg/") && path != "/api/stream"
}

/// Seconds a turned-away player waits before trying again: 1 to 4, spread
/// by `unit` in [0, 1) so that a crowd comes back spread over 3 seconds.
fn retry_after_secs(unit: f64) -> u64 {
    1 + (unit.clamp(0.0, 0.999) * 4.0) as u64
}

/// A number in [0, 1) that differs from call to call (no RNG crate needed
/// for spreading retries: each `RandomState` is freshly keyed).
pub(crate) fn random_unit() -> f64 {
    (RandomState::new().hash_one(Instant::now()) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a turned-away request gets: a browser asking for a page gets a
/// page that tries again by itself; anything else a 503 with
/// `Retry-After` and a sentence, as the server function's own error when
/// the page's script called it (so the page shows the sentence, not "the
/// request was malformed"), as text to a form posted without it. All say
/// when, and are never cached.
fn turned_away(request: &Request, retry_secs: u64) -> Response {
    let accepts_html =
        request.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let text = format!("The chat is very busy right now. Please try again in {retry_secs} s.");
    let mut response = if accepts_html && request.method() == Method::GET {
        let page = waiting_page(retry_secs);
        (StatusCode::SERVICE_UNAVAILABLE, [(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
    } else if accepts_html {
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(app::api::ApiError::Failed(text))).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_secs));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page a player sees for the seconds before the room opens, in the
/// app's colours, light or dark; the browser's refresh opens the same
/// address again. No script: it works in any browser and costs nothing.
fn waiting_page(retry_secs: u64) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{retry_secs}\">\
         <title>Joining… · Embedded Chat</title><style>\
         body{{margin:0;min-height:100vh;display:grid;place-items:center;padding:1rem;\
         font:16px/1.45 system-ui,sans-serif;background:#f6f7f9;color:#1d2330;text-align:center}}\
         @media (prefers-color-scheme:dark){{body{{background:#14171d;color:#e6e9ef}}}}\
         </style></head>\
         <body><p role=\"status\">Lots of players are joining right now. \
         The room opens in a moment…</p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(in_flight: usize, queue: usize, max_wait_ms: u64) -> Limits {
        Limits { in_flight, queue, max_wait: Duration::from_millis(max_wait_ms) }
    }

    #[tokio::test]
    async fn free_slots_admit_at_once_and_a_full_line_turns_away() {
        let admission = Admission::new(limits(2, 1, 10_000));
        let first = admission.admit().await.expect("a free slot");
        let _second = admission.admit().await.expect("a free slot");
        // The third waits in line (the only place there is) ...
        let third = admission.admit();
        tokio::pin!(third);
        assert!(futures_poll(&mut third).await.is_none(), "waits for a slot");
        assert_eq!(admission.waiting.load(Ordering::Acquire), 1);
        // ... so a fourth is turned away at once.
        assert!(admission.admit().await.is_none());
        // A slot frees up: the one in line gets it and leaves the line.
        drop(first);
        assert!(third.await.is_some());
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn waiting_ends_at_the_deadline_and_an_abandoned_wait_frees_its_place() {
        let admission = Admission::new(limits(1, 5, 20));
        let _busy = admission.admit().await.expect("a free slot");
        let started = Instant::now();
        assert!(admission.admit().await.is_none(), "no slot within max_wait");
        assert!(started.elapsed() >= Duration::from_millis(20));
        {
            let abandoned = admission.admit();
            tokio::pin!(abandoned);
            assert!(futures_poll(&mut abandoned).await.is_none());
            assert_eq!(admission.waiting.load(Ordering::Acquire), 1);
        }
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0, "the dropped request left the line");
    }

    /// Polls a future once.
    async fn futures_poll<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[test]
    fn retries_spread_over_one_to_four_seconds() {
        assert_eq!(retry_after_secs(0.0), 1);
        assert_eq!(retry_after_secs(0.26), 2);
        assert_eq!(retry_after_secs(0.99), 4);
        assert_eq!(retry_after_secs(7.0), 4);
        let spread: std::collections::BTreeSet<u64> =
            (0..200).map(|_| retry_after_secs(random_unit())).collect();
        assert_eq!(spread.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn the_bundle_and_the_stream_are_not_admitted_here() {
        assert!(is_admitted_work("/chat_room"));
        assert!(is_admitted_work("/api/join_room"));
        assert!(is_admitted_work("/"));
        assert!(!is_admitted_work("/pkg/embedded-chat.0123456789abcdef.wasm"));
        assert!(!is_admitted_work("/api/stream"));
    }

    #[tokio::test]
    async fn a_turned_away_page_retries_by_itself_and_anything_else_gets_a_503() {
        let page =
            Request::builder().uri("/chat_room").header(ACCEPT, "text/html,*/*").body(Default::default());
        let response = turned_away(&page.unwrap(), 3);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        assert!(waiting_page(3).contains("<meta http-equiv=\"refresh\" content=\"3\">"));
        // The page's script calling a server function gets that function's
        // error, with the sentence the page shows.
        let call =
            Request::builder().method(Method::POST).uri("/api/join_room").header(ACCEPT, "application/json");
        let response = turned_away(&call.body(Default::default()).unwrap(), 2);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let error: app::api::ApiError = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.to_string(), "The chat is very busy right now. Please try again in 2 s.");
        // A form posted without it gets the sentence as text.
        let form =
            Request::builder().method(Method::POST).uri("/api/join_room").header(ACCEPT, "text/html,*/*");
        let response = turned_away(&form.body(Default::default()).unwrap(), 2);
        assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
    }
}
