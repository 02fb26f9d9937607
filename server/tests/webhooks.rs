//! Webhooks against a real receiver started by each test: every kind of
//! event arrives, signed so that the README's recipe accepts it and
//! refuses a forgery; a receiver that is down for a while gets every event
//! once it is back, in order; a full queue drops its oldest; two nodes send
//! each event once; events still waiting when a node stops are delivered
//! once it (or another node) runs again.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::protocol::moderation::Request;
use app::protocol::ClientFrame;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{spawn_app_with, spawn_nodes, Client, TestApp};
use hmac::{Hmac, Mac};
use serde_json::Value;
use server::config::Secret;
use sha2::Sha256;

const SECRET: &str = "webhook-test-secret-0123456789abcdefgh";

/// A webhook receiver: keeps what it is sent, or answers 503 while down.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts it; returns its URL.
    async fn start(&self) -> String {
        async fn take(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            if receiver.down.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            receiver.got.lock().unwrap().push((headers, body));
            StatusCode::NO_CONTENT
        }
        let app = axum::Router::new().route("/hook", axum::routing::post(take)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The events received so far, each checked with the README's recipe.
    fn events(&self) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.iter()
            .map(|(headers, body)| {
                let signature = headers.get("x-chat-signature").unwrap().to_str().unwrap();
                assert!(verify(SECRET, signature, body, now()), "signature checks out: {signature}");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    /// Waits until `count` events have come (or fails after 20 s).
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..400 {
            let events = self.events();
            if events.len() >= count {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} events came, {count} expected: {:#?}", self.events().len(), self.events());
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The README's check: `t=<secs>,v1=<hex>` where hex is HMAC-SHA256 of
/// "<t>." + body; refused if `t` is more than 5 minutes off.
fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now - t).abs() > 300 || v1.len() % 2 != 0 {
        return false;
    }
    let Ok(expected) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn hooked(url: &str, tune: impl FnOnce(&mut server::config::Config)) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |c| {
        c.webhook_urls = vec![url];
        c.webhook_secret = Some(Secret(SECRET.into()));
        c.moderators = vec!["mod".into()];
        tune(c);
    })
    .await
}

async fn act(client: &mut Client, request: Request) {
    client.send(&ClientFrame::Act { request_id: "r".into(), request }).await;
    loop {
        match client.next().await {
            app::protocol::ServerFrame::Done { .. } => return,
            app::protocol::ServerFrame::Error { message, request_id: Some(_), .. } => panic!("{message}"),
            _ => {}
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_kind_of_event_arrives_signed_with_its_room_seq_and_time() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let app = hooked(&url, |_| {}).await;
    let mut moderator = app.join("mod", "r").await;
    let mut ana = app.join("ana", "r").await;
    let seq = ana.send_and_ack("a1", "hello").await;
    let events = receiver.wait_for(3).await;
    assert_eq!(kinds(&events), ["member.joined", "member.joined", "message.created"]);
    let created = &events[2];
    assert_eq!((created["room"].as_str(), created["seq"].as_i64()), (Some("r"), Some(seq)));
    assert_eq!(created["data"]["body"], "hello");
    assert!(created["id"].as_str().unwrap().starts_with("evt_"));
    assert!(created["at_ms"].as_i64().unwrap() > 1_700_000_000_000);

    act(&mut moderator, Request::Report { seq, reason: "test".into() }).await;
    act(&mut moderator, Request::Remove { seq }).await;
    act(&mut moderator, Request::Mute { user_id: "ana".into(), minutes: Some(5), reason: String::new() })
        .await;
    act(&mut moderator, Request::Ban { user_id: "ana".into(), minutes: None, reason: "cheat".into() }).await;
    let events = receiver.wait_for(8).await;
    assert_eq!(
        kinds(&events)[3..],
        ["message.reported", "message.deleted", "member.muted", "member.banned", "member.left"]
    );
    assert_eq!(events[4]["seq"].as_i64(), Some(seq), "the removed message's seq");
    assert_eq!(events[6]["data"]["user_id"], "ana");
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "every event has its own id");

    // A forgery, or a replay from long ago, fails the recipe.
    let (headers, body) = receiver.got.lock().unwrap()[0].clone();
    let signature = headers.get("x-chat-signature").unwrap().to_str().unwrap().to_owned();
    assert!(!verify(SECRET, &signature, b"{\"type\":\"message.created\"}", now()));
    assert!(!verify("another-secret-0123456789abcdefghijkl", &signature, &body, now()));
    assert!(!verify(SECRET, &signature, &body, now() + 3600));
}

/// A node whose receiver went down after ana joined, then `count`
/// messages ana sent (acknowledged); their seqs.
async fn sent_while_down(
    count: usize,
    tune: impl FnOnce(&mut server::config::Config),
) -> (Receiver, TestApp, Client, Vec<i64>) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let app = hooked(&url, tune).await;
    let mut ana = app.join("ana", "r").await;
    receiver.wait_for(1).await;
    receiver.down.store(true, Ordering::SeqCst);
    let mut seqs = Vec::new();
    for i in 0..count {
        seqs.push(ana.send_and_ack(&format!("m{i}"), "while the receiver is down").await);
    }
    (receiver, app, ana, seqs)
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_in_order_once_it_is_back() {
    let (receiver, app, _ana, seqs) = sent_while_down(5, |_| {}).await;
    // The chat does not wait for it: the sends were acknowledged at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    receiver.down.store(false, Ordering::SeqCst);
    let events = receiver.wait_for(6).await;
    let mut seen = std::collections::HashSet::new();
    let delivered: Vec<i64> = events[1..]
        .iter()
        .filter(|e| seen.insert(e["id"].as_str().unwrap().to_owned()))
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(delivered, seqs, "every event, once after dedupe, in order");
    let metrics = app.get(&format!("{}/metrics", app.base)).await.1;
    let retried = metrics.lines().find(|l| l.starts_with("chat_webhook_retries_total")).unwrap();
    assert!(!retried.ends_with(" 0"), "{retried}");
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_events_and_counts_them() {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let app = hooked(&url, |c| c.webhook_queue = 3).await;
    let mut ana = app.join("ana", "r").await; // member.joined: taken, and retried
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut seqs = Vec::new();
    for i in 0..6 {
        seqs.push(ana.send_and_ack(&format!("m{i}"), "x").await);
    }
    receiver.down.store(false, Ordering::SeqCst);
    let events = receiver.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = if receiver.events().len() > events.len() { receiver.events() } else { events };
    assert_eq!(kinds(&events), ["member.joined", "message.created", "message.created", "message.created"]);
    let kept: Vec<i64> = events[1..].iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(kept, seqs[3..], "the newest three waited; the oldest made way");
    let metrics = app.get(&format!("{}/metrics", app.base)).await.1;
    assert!(metrics.lines().any(|l| l == "chat_webhook_dropped_total 3"), "three dropped, counted");
}

#[tokio::test]
async fn two_nodes_send_each_event_once() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let nodes = spawn_nodes(2, |c| {
        c.webhook_urls = vec![url.clone()];
        c.webhook_secret = Some(Secret(SECRET.into()));
    })
    .await;
    let mut ana = nodes[0].join("ana", "r").await;
    let mut bob = nodes[1].join("bob", "r").await;
    let a = ana.send_and_ack("a1", "from node one").await;
    let b = bob.send_and_ack("b1", "from node two").await;
    let events = receiver.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if receiver.events().len() > events.len() { receiver.events() } else { events };
    assert_eq!(events.len(), 4, "{events:#?}");
    let mut created: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "message.created")
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    created.sort();
    assert_eq!(created, [a.min(b), a.max(b)]);
}

/// The seqs of the `message.created` events among `events`, each once.
fn created_seqs(events: &[Value]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter(|e| e["type"] == "message.created" && seen.insert(e["id"].as_str().unwrap().to_owned()))
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_node_stopped_gracefully_delivers_what_it_had_pending_before_it_exits() {
    let (receiver, mut app, _ana, seqs) = sent_while_down(3, |_| {}).await;
    // The receiver is back while the node is stopping.
    let back = receiver.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        back.down.store(false, Ordering::SeqCst);
    });
    app.stop().await;
    // The node has exited: what it was to tell has come.
    assert_eq!(created_seqs(&receiver.events()), seqs);
}

#[tokio::test]
async fn a_node_stopped_while_its_receiver_is_down_gives_up_at_the_end_of_the_grace_period() {
    let (receiver, mut app, _ana, _) = sent_while_down(1, |c| c.shutdown_grace_secs = 1).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3), "stopped in {:?}", started.elapsed());
    // Nothing is sent once the node has given up.
    receiver.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(created_seqs(&receiver.events()), Vec::<i64>::new());
}

#[tokio::test]
async fn events_still_waiting_when_a_node_stops_are_delivered_when_it_starts_again() {
    let (receiver, mut app, _ana, seqs) = sent_while_down(3, |c| c.shutdown_grace_secs = 1).await;
    app.stop().await;
    receiver.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(created_seqs(&receiver.events()), Vec::<i64>::new(), "no node is running");
    // The same database: what waited there goes out, in order, once each.
    app.restart().await;
    let events = receiver.wait_for(1 + seqs.len()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if receiver.events().len() > events.len() { receiver.events() } else { events };
    assert_eq!(kinds(&events), ["member.joined", "message.created", "message.created", "message.created"]);
    assert_eq!(created_seqs(&events), seqs);
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
}

#[tokio::test]
async fn when_the_node_delivering_stops_another_one_delivers_what_waits() {
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let mut nodes = spawn_nodes(2, |c| {
        c.webhook_urls = vec![url.clone()];
        c.webhook_secret = Some(Secret(SECRET.into()));
        c.shutdown_grace_secs = 1;
    })
    .await;
    // The first node started takes the URL's lease; both save events.
    let mut ana = nodes[0].join("ana", "r").await;
    let mut bob = nodes[1].join("bob", "r").await;
    let a = ana.send_and_ack("a1", "from node one").await;
    let b = bob.send_and_ack("b1", "from node two").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[0].stop().await;
    receiver.down.store(false, Ordering::SeqCst);
    let events = receiver.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if receiver.events().len() > events.len() { receiver.events() } else { events };
    let mut created = created_seqs(&events);
    created.sort();
    assert_eq!(created, [a.min(b), a.max(b)], "{events:#?}");
    assert_eq!(kinds(&events).iter().filter(|k| **k == "member.joined").count(), 2);
}
