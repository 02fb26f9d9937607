//! Blocking as players meet it: a player blocks another from a room's
//! menu (the stream) or a form posted without JavaScript, in every room at
//! once; only the blocker's own pages hear of it, their welcome and the
//! server-rendered page carry the list, the blocked player's lines leave
//! the blocker's page and come back on unblocking; nobody blocks
//! themselves or the game. Across nodes, a block made on one reaches the
//! blocker's pages on the other.
mod common;

use std::time::Duration;

use app::protocol::moderation::Request;
use app::protocol::{ClientFrame, ServerFrame};
use common::{list_items, spawn_app, spawn_nodes, Client, TestApp};

const QUIET: Duration = Duration::from_millis(300);

/// Asks for `request` over the stream; the answer (`Done` or the error
/// naming it), and the frames that came before it.
async fn act(client: &mut Client, request_id: &str, request: Request) -> (ServerFrame, Vec<ServerFrame>) {
    client.send(&ClientFrame::Act { request_id: request_id.into(), request }).await;
    let mut before = Vec::new();
    loop {
        let frame = client.next().await;
        match &frame {
            ServerFrame::Done { request_id: id } | ServerFrame::Error { request_id: Some(id), .. }
                if id == request_id =>
            {
                return (frame, before)
            }
            _ => before.push(frame),
        }
    }
}

/// The frame that came among `before`, or else the next one.
async fn heard(client: &mut Client, mut before: Vec<ServerFrame>) -> ServerFrame {
    if before.is_empty() {
        client.next().await
    } else {
        before.remove(0)
    }
}

/// What `user` sees of the room's conversation and members on its page.
async fn page(app: &TestApp, user: &str, room: &str) -> (Vec<String>, Vec<String>) {
    let (status, html) = app.open_room(user, room).await;
    assert_eq!(status, 200);
    (list_items(&html, "messages"), list_items(&html, "member-list"))
}

fn blocked(user: &str, target: &str) -> ServerFrame {
    ServerFrame::Blocked { user_id: user.into(), target: target.into() }
}

#[tokio::test]
async fn a_player_blocks_another_everywhere_and_only_their_own_pages_hear_of_it() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r1").await;
    let mut ana_elsewhere = app.join("ana", "r2").await;
    let mut bob = app.join("bob", "r1").await;
    let mut cy = app.join("cy", "r1").await;
    bob.send_and_ack("b1", "hello from bob").await;
    cy.send_and_ack("c1", "hello from cy").await;
    // Every page's copies (and the joins before them).
    for client in [&mut ana, &mut bob, &mut cy] {
        client.next_message().await;
        client.next_message().await;
    }

    let (answer, before) = act(&mut ana, "r1", Request::Block { user_id: " bob ".into() }).await;
    assert_eq!(answer, ServerFrame::Done { request_id: "r1".into() });
    assert_eq!(heard(&mut ana, before).await, blocked("ana", "bob"), "the page that asked");
    assert_eq!(ana_elsewhere.next().await, blocked("ana", "bob"), "the page in another room");
    bob.expect_silence(QUIET).await;
    cy.expect_silence(QUIET).await;

    // The page rendered by the server leaves bob's lines out, and says so
    // in the member list; bob's and cy's pages are as they were.
    let (lines, members) = page(&app, "ana", "r1").await;
    assert_eq!(lines, ["cy: hello from cy"]);
    let bobs = members.iter().find(|m| m.starts_with("bob")).expect("bob is listed");
    assert!(bobs.contains("blocked") && bobs.contains("Unblock bob"), "{bobs}");
    assert_eq!(page(&app, "cy", "r1").await.0, ["bob: hello from bob", "cy: hello from cy"]);
    assert!(!page(&app, "bob", "r1").await.1.iter().any(|m| m.contains("blocked")));

    // A fresh page's welcome names whom its user blocked.
    let (_, welcome) = app.hello("ana", "r2", 0).await;
    match welcome {
        ServerFrame::Welcome { blocked, .. } => assert_eq!(blocked, ["bob"]),
        other => panic!("expected a welcome, got {other:?}"),
    }
    let (_, welcome) = app.hello("cy", "r1", 0).await;
    assert!(matches!(welcome, ServerFrame::Welcome { ref blocked, .. } if blocked.is_empty()), "{welcome:?}");

    // Refusals, each a sentence, nothing changed.
    for (request, says) in [
        (Request::Block { user_id: "bob".into() }, "bob is blocked already."),
        (Request::Block { user_id: "ana".into() }, "You cannot do that to yourself."),
        (Request::Block { user_id: "Game".into() }, "That is the game itself."),
        (Request::Unblock { user_id: "cy".into() }, "cy is not blocked."),
    ] {
        let (answer, before) = act(&mut ana, "again", request.clone()).await;
        assert!(before.is_empty(), "{request:?}: {before:?}");
        match answer {
            ServerFrame::Error { message, .. } => assert_eq!(message, says, "{request:?}"),
            other => panic!("{request:?}: expected a refusal, got {other:?}"),
        }
    }
    ana.expect_silence(QUIET).await;

    // Blocked and unblocked through the form a page without JavaScript posts.
    let form = [("channel_id", "r1"), ("user_id", "ana"), ("member", "cy"), ("blocked", "true")];
    assert!(app.post_plain_form("block_user", &form).await.status().is_redirection());
    assert_eq!(ana.next().await, blocked("ana", "cy"));
    assert_eq!(page(&app, "ana", "r1").await.0, Vec::<String>::new());
    let form = [("channel_id", "r1"), ("user_id", "ana"), ("member", "bob"), ("blocked", "false")];
    assert!(app.post_plain_form("block_user", &form).await.status().is_redirection());
    assert_eq!(ana.next().await, ServerFrame::Unblocked { user_id: "ana".into(), target: "bob".into() });
    assert_eq!(page(&app, "ana", "r1").await.0, ["bob: hello from bob"]);
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_block_made_on_one_node_reaches_the_blockers_pages_on_the_other() {
    let nodes = spawn_nodes(2, |_| {}).await;
    let mut ana = nodes[0].join("ana", "shared").await;
    let mut bob = nodes[1].join("bob", "shared").await;
    let mut ana_there = nodes[1].join("ana", "shared").await;
    let (answer, _) = act(&mut ana_there, "b", Request::Block { user_id: "bob".into() }).await;
    assert!(matches!(answer, ServerFrame::Done { .. }), "{answer:?}");
    // ana's page on the first node: bob's arrival, then the block.
    assert_eq!(ana.next().await, ServerFrame::MemberJoined { user_id: "bob".into() });
    assert_eq!(ana.next().await, blocked("ana", "bob"));
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_players_block_changes_share_one_budget_across_their_rooms() {
    let app = common::spawn_app_with(|c| {
        c.messages_per_sec = 1;
        c.message_burst = 3;
    })
    .await;
    let mut in_r1 = app.join("ana", "r1").await;
    let mut in_r2 = app.join("ana", "r2").await;
    for target in ["b1", "b2", "b3"] {
        let (answer, _) = act(&mut in_r1, target, Request::Block { user_id: target.into() }).await;
        assert!(matches!(answer, ServerFrame::Done { .. }), "{target}: {answer:?}");
    }
    // From the other room, whose own budget is whole: each change goes to
    // every room, so the player's budget for them is one.
    let (answer, _) = act(&mut in_r2, "b4", Request::Block { user_id: "b4".into() }).await;
    match answer {
        ServerFrame::Error { message, .. } => assert!(message.contains("too fast"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A message there is still fine: its room's budget is its own.
    in_r2.send_and_ack("m1", "hi").await;
}
