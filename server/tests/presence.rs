//! Presence and the typing indicator over the room stream, against the real
//! server: who is online (several pages of one user count once, on one node
//! or two), what the welcome says, how another node's users come and go,
//! and typing notices relayed to the others, throttled and never stored.
//!
//! Like the rest of the suite these run on SQLite and the in-process bus,
//! and again on PostgreSQL and Redis (`CHAT_TEST_BACKEND=postgres`); the
//! tests with two nodes always use PostgreSQL and Redis.
mod common;

use std::time::Duration;

use app::protocol::{ClientFrame, ServerFrame};
use common::{is_ephemeral, spawn_app, spawn_nodes, Client, Endpoint, Event, REDIS, WAIT};
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits to be sure something does not arrive.
const QUIET: Duration = Duration::from_millis(400);

fn presence(user: &str, online: bool) -> ServerFrame {
    ServerFrame::Presence { user_id: user.into(), online }
}

fn typing(user: &str) -> ServerFrame {
    ServerFrame::Typing { user_id: user.into() }
}

/// The next presence or typing frame (stored events and member changes
/// skipped); panics after `within`.
async fn next_ephemeral_within(client: &mut Client, within: Duration) -> ServerFrame {
    tokio::time::timeout(within, async {
        loop {
            let frame = client.next_any().await;
            if is_ephemeral(&frame) {
                return frame;
            }
        }
    })
    .await
    .expect("a presence or typing frame within the wait")
}

async fn next_ephemeral(client: &mut Client) -> ServerFrame {
    next_ephemeral_within(client, WAIT).await
}

/// Asserts no presence or typing frame arrives for a while (other frames
/// may).
async fn expect_no_ephemeral(client: &mut Client, wait: Duration) {
    let until = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout_at(until, futures::StreamExt::next(&mut client.ws)).await
    {
        if let Message::Text(text) = message {
            let frame: ServerFrame = serde_json::from_str(text.as_str()).expect("valid server frame");
            assert!(!is_ephemeral(&frame), "expected no presence or typing, got {frame:?}");
        }
    }
}

/// Opens the room page (joining) and the stream; returns the stream and
/// who the welcome says is online.
async fn open(endpoint: &Endpoint, user: &str, room: &str) -> (Client, Vec<String>) {
    assert_eq!(endpoint.open_room(user, room).await.0, 200);
    match endpoint.hello(user, room, 0).await {
        (client, ServerFrame::Welcome { online, .. }) => (client, online),
        (_, other) => panic!("expected a welcome, got {other:?}"),
    }
}

async fn close(mut client: Client) {
    client.ws.close(None).await.expect("close the stream");
    // Wait for the server's answer, so the connection is gone on its side.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut client.ws)).await {}
}

#[tokio::test]
async fn two_pages_of_one_user_count_as_one_presence() {
    let app = spawn_app().await;
    let (mut carl, _) = open(&app, "carl", "lobby").await;

    let (first, _) = open(&app, "ana", "lobby").await;
    assert_eq!(next_ephemeral(&mut carl).await, presence("ana", true));
    let (second, _) = open(&app, "ana", "lobby").await;
    expect_no_ephemeral(&mut carl, QUIET).await;

    close(first).await;
    expect_no_ephemeral(&mut carl, QUIET).await;
    close(second).await;
    assert_eq!(next_ephemeral(&mut carl).await, presence("ana", false));
}

#[tokio::test]
async fn the_welcome_lists_who_is_online_the_page_itself_included() {
    let app = spawn_app().await;
    let (mut ana, online) = open(&app, "ana", "lobby").await;
    assert_eq!(online, ["ana"]);
    let (bob, online) = open(&app, "bob", "lobby").await;
    assert_eq!(online, ["ana", "bob"]);
    assert_eq!(next_ephemeral(&mut ana).await, presence("bob", true));

    // A member without an open page is not online; one in another room
    // does not count here.
    assert_eq!(app.open_room("dan", "lobby").await.0, 200);
    let (_elsewhere, _) = open(&app, "eve", "other").await;
    close(bob).await;
    assert_eq!(next_ephemeral(&mut ana).await, presence("bob", false));
    let (_carl, online) = open(&app, "carl", "lobby").await;
    assert_eq!(online, ["ana", "carl"]);
}

#[tokio::test]
async fn typing_reaches_the_other_pages_only_and_is_not_stored() {
    let app = spawn_app().await;
    let (mut ana, _) = open(&app, "ana", "lobby").await;
    let (mut ana_again, _) = open(&app, "ana", "lobby").await;
    let (mut bob, _) = open(&app, "bob", "lobby").await;
    let (mut carl, _) = open(&app, "carl", "elsewhere").await;
    assert_eq!(next_ephemeral(&mut ana).await, presence("bob", true));
    assert_eq!(next_ephemeral(&mut ana_again).await, presence("bob", true));

    ana.send(&ClientFrame::Typing).await;
    assert_eq!(next_ephemeral(&mut bob).await, typing("ana"));
    expect_no_ephemeral(&mut ana, QUIET).await;
    expect_no_ephemeral(&mut ana_again, QUIET).await;
    expect_no_ephemeral(&mut carl, Duration::from_millis(50)).await;
    // Typing is not answered and stores nothing: the stream goes on, the
    // room still has no message.
    ana.send(&ClientFrame::Ping).await;
    assert_eq!(ana.next().await, ServerFrame::Pong);
    let (_, html) = app.open_room("bob", "lobby").await;
    assert!(html.contains("No messages yet"));
    let seq = bob.send_and_ack("b1", "hi").await;
    assert_eq!(seq, 1, "typing took no seq");
}

#[tokio::test]
async fn a_page_typing_faster_than_once_a_second_is_relayed_once_a_second() {
    let app = spawn_app().await;
    let (mut ana, _) = open(&app, "ana", "lobby").await;
    let (mut bob, _) = open(&app, "bob", "lobby").await;
    assert_eq!(next_ephemeral(&mut ana).await, presence("bob", true));

    for _ in 0..5 {
        ana.send(&ClientFrame::Typing).await;
    }
    assert_eq!(next_ephemeral(&mut bob).await, typing("ana"));
    expect_no_ephemeral(&mut bob, Duration::from_millis(700)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    ana.send(&ClientFrame::Typing).await;
    assert_eq!(next_ephemeral(&mut bob).await, typing("ana"), "a second later, typing goes through again");
}

#[tokio::test]
async fn a_user_who_leaves_the_room_goes_offline() {
    let app = spawn_app().await;
    let (mut carl, _) = open(&app, "carl", "lobby").await;
    let (mut ana, _) = open(&app, "ana", "lobby").await;
    assert_eq!(next_ephemeral(&mut carl).await, presence("ana", true));
    let left = app.post_fn("leave_room", &[("channel_id", "lobby"), ("user_id", "ana")]).await;
    assert!(left.status().is_success() || left.status().is_redirection(), "{}", left.status());
    // Ana's page is closed by the server (no longer a member) ...
    loop {
        if let Event::Closed(code) = ana.next_event().await {
            assert_eq!(code, Some(4403));
            break;
        }
    }
    // ... and the others see her leave, then go offline.
    assert_eq!(carl.next().await, ServerFrame::MemberLeft { user_id: "ana".into() });
    assert_eq!(next_ephemeral(&mut carl).await, presence("ana", false));
}

#[tokio::test]
async fn a_page_on_one_node_sees_who_is_online_on_the_other() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // Node B listens to the room first; Ana then comes online on node A.
    let (mut bob, online) = open(b, "bob", "arena").await;
    assert_eq!(online, ["bob"]);
    let (mut ana, online) = open(a, "ana", "arena").await;
    assert_eq!(next_ephemeral(&mut bob).await, presence("ana", true));
    // Node A learns Bob's presence when it starts listening: in the welcome
    // if the other node answered in time, else right after it.
    if online != ["ana", "bob"] {
        assert_eq!(online, ["ana"]);
        assert_eq!(next_ephemeral(&mut ana).await, presence("bob", true));
    }

    // Typing crosses nodes too.
    ana.send(&ClientFrame::Typing).await;
    assert_eq!(next_ephemeral(&mut bob).await, typing("ana"));

    // A second page of Ana, on node B: still one presence.
    let (ana_on_b, online) = open(b, "ana", "arena").await;
    assert_eq!(online, ["ana", "bob"]);
    expect_no_ephemeral(&mut bob, QUIET).await;
    close(ana).await;
    expect_no_ephemeral(&mut bob, QUIET).await;
    close(ana_on_b).await;
    assert_eq!(next_ephemeral(&mut bob).await, presence("ana", false));
}

#[tokio::test]
async fn a_node_that_starts_listening_learns_who_is_already_online_elsewhere() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (_ana, _) = open(a, "ana", "arena").await;
    let (_dan, _) = open(a, "dan", "arena").await;
    // Node B has nobody in the room and does not listen to it. Bob's page
    // makes it listen and ask; the answer does not wait for a beat (ten
    // seconds here).
    let (mut bob, online) = open(b, "bob", "arena").await;
    let mut known: Vec<String> = online;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while known.len() < 3 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_ephemeral_within(&mut bob, left).await {
            ServerFrame::Presence { user_id, online: true } => known.push(user_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    known.sort();
    assert_eq!(known, ["ana", "bob", "dan"]);
}

#[tokio::test]
async fn a_node_that_goes_silent_has_its_users_expire() {
    let nodes = spawn_nodes(1, |config| config.presence_beat_secs = 1).await;
    let node = &nodes[0];
    let (mut bob, _) = open(node, "bob", "arena").await;

    // A node that says "ghost is online" once and is never heard of again
    // (it crashed, or lost Redis).
    let redis = redis::Client::open(REDIS).unwrap();
    let mut publisher = redis.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("{}:room:arena", node.config.redis_prefix);
    let payload = format!("gone-node\n{}", serde_json::to_string(&presence("ghost", true)).unwrap());
    let _: i64 = redis::cmd("PUBLISH").arg(&channel).arg(&payload).query_async(&mut publisher).await.unwrap();
    assert_eq!(next_ephemeral(&mut bob).await, presence("ghost", true));

    // Three beats (a second each) later, ghost is forgotten; Bob, on the
    // live node, is not.
    let started = std::time::Instant::now();
    assert_eq!(next_ephemeral_within(&mut bob, Duration::from_secs(8)).await, presence("ghost", false));
    assert!(started.elapsed() >= Duration::from_secs(2), "not before the beats were missed");
    let (_, online) = open(node, "carl", "arena").await;
    assert_eq!(online, ["bob", "carl"]);
}
