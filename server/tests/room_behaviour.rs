//! The original app's behaviour, over HTTP and the room stream, against the
//! real server: join (1), second join (2), send (3), add user (4), leave
//! (5), and the error cases around them.
mod common;

use std::time::Duration;

use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use common::{list_items, spawn_app, Event};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn opening_a_room_creates_it_and_renders_members_and_full_history() {
    let app = spawn_app().await;
    let (status, html) = app.open_room("john", "game_1").await;
    assert_eq!(status, 200);
    assert_eq!(list_items(&html, "member-list"), ["john"]);
    assert!(html.contains("No messages yet"));
    assert!(html.contains("application/wasm"), "a room page loads the browser code");

    let mut john = app.connect("john", "game_1", 0).await.0;
    john.send_and_ack("c1", "hello").await;
    john.send_and_ack("c2", "anyone here?").await;

    let (_, html) = app.open_room("john", "game_1").await;
    assert_eq!(list_items(&html, "messages"), ["john: hello", "john: anyone here?"]);
}

#[tokio::test]
async fn opening_the_same_room_twice_does_not_duplicate_the_member() {
    let app = spawn_app().await;
    app.open_room("john", "game_1").await;
    let (_, html) = app.open_room("john", "game_1").await;
    assert_eq!(list_items(&html, "member-list"), ["john"]);
    let (_, members) = app.connect("john", "game_1", 0).await;
    assert_eq!(members, ["john"]);
}

#[tokio::test]
async fn a_second_user_joining_is_announced_live_to_the_first() {
    let app = spawn_app().await;
    let mut john = app.join("john", "game_1").await;

    let (_, html) = app.open_room("ana", "game_1").await;
    assert_eq!(list_items(&html, "member-list"), ["john", "ana"]);
    assert_eq!(john.next().await, ServerFrame::MemberJoined { user_id: "ana".into() });

    // Ana opening the page again announces nothing.
    app.open_room("ana", "game_1").await;
    john.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_message_is_delivered_once_to_every_page_of_its_room_and_no_other() {
    let app = spawn_app().await;
    let mut john = app.join("john", "game_1").await;
    let mut ana = app.join("ana", "game_1").await;
    let mut bob = app.join("bob", "game_2").await;
    assert_eq!(john.next().await, ServerFrame::MemberJoined { user_id: "ana".into() });

    ana.say("a1", "gg").await;
    let mut ana_frames = vec![ana.next().await, ana.next().await];
    ana_frames.sort_by_key(|f| matches!(f, ServerFrame::Ack { .. }));
    let ServerFrame::Message(stored) = &ana_frames[0] else { panic!("{ana_frames:?}") };
    assert_eq!((stored.seq, stored.user_id.as_str(), stored.body.as_str()), (1, "ana", "gg"));
    assert_eq!(ana_frames[1], ServerFrame::Ack { client_msg_id: "a1".into(), seq: 1 });

    assert_eq!(john.next_message().await, *stored);
    john.expect_silence(Duration::from_millis(300)).await;
    bob.expect_silence(Duration::from_millis(300)).await;

    let (_, html) = app.open_room("john", "game_1").await;
    assert_eq!(list_items(&html, "messages"), ["ana: gg"]);
    let (_, html) = app.open_room("bob", "game_2").await;
    assert!(list_items(&html, "messages").is_empty());
}

#[tokio::test]
async fn an_empty_message_is_refused_and_nothing_is_stored_or_delivered() {
    let app = spawn_app().await;
    let mut john = app.join("john", "game_1").await;
    let mut ana = app.join("ana", "game_1").await;
    john.next().await; // ana joined

    ana.say("e1", "   ").await;
    match ana.next().await {
        ServerFrame::Error { code, message, client_msg_id, .. } => {
            assert_eq!(code, ErrorCode::InvalidInput);
            assert_eq!(message, "Please enter a message.");
            assert_eq!(client_msg_id.as_deref(), Some("e1"));
        }
        other => panic!("expected an error, got {other:?}"),
    }
    john.expect_silence(Duration::from_millis(300)).await;
    // The next message still gets seq 1: nothing was used up.
    assert_eq!(ana.send_and_ack("e2", "real").await, 1);
}

#[tokio::test]
async fn a_message_over_the_length_limit_is_refused() {
    let app = spawn_app().await;
    let mut john = app.join("john", "game_1").await;
    john.say("long", &"x".repeat(2001)).await;
    assert!(matches!(john.next().await, ServerFrame::Error { code: ErrorCode::InvalidInput, .. }));
    let (_, html) = app.open_room("john", "game_1").await;
    assert!(list_items(&html, "messages").is_empty());
}

#[tokio::test]
async fn adding_a_user_updates_the_list_in_every_open_page() {
    let app = spawn_app().await;
    let mut pages =
        vec![app.join("u1", "room").await, app.join("u2", "room").await, app.join("u3", "room").await];
    // Drain the join announcements.
    pages[0].next().await;
    pages[0].next().await;
    pages[1].next().await;

    let response =
        app.post_fn("add_user", &[("channel_id", "room"), ("user_id", "u1"), ("new_user", "newbie")]).await;
    assert_eq!(response.status(), 200);
    for page in &mut pages {
        assert_eq!(page.next().await, ServerFrame::MemberJoined { user_id: "newbie".into() });
    }
    let (_, html) = app.open_room("u2", "room").await;
    assert_eq!(list_items(&html, "member-list"), ["u1", "u2", "u3", "newbie"]);

    // Adding someone already there changes nothing and announces nothing.
    let response =
        app.post_fn("add_user", &[("channel_id", "room"), ("user_id", "u1"), ("new_user", "newbie")]).await;
    assert_eq!(response.status(), 200);
    pages[2].expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn adding_an_empty_name_is_refused_with_a_clear_message_and_changes_nothing() {
    let app = spawn_app().await;
    let mut john = app.join("john", "game_1").await;
    for blank in ["", "   "] {
        let response = app
            .post_fn("add_user", &[("channel_id", "game_1"), ("user_id", "john"), ("new_user", blank)])
            .await;
        assert_eq!(response.status(), 400);
        let body = response.text().await.unwrap();
        assert!(body.contains("Please enter a user name."), "{body}");
    }
    john.expect_silence(Duration::from_millis(300)).await;
    let (_, html) = app.open_room("john", "game_1").await;
    assert_eq!(list_items(&html, "member-list"), ["john"]);
}

#[tokio::test]
async fn a_malformed_server_function_call_answers_400() {
    let app = spawn_app().await;
    let response = app.post_fn("add_user", &[("channel_id", "game_1")]).await;
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("malformed"), "{body}");
}

#[tokio::test]
async fn only_members_can_add_users() {
    let app = spawn_app().await;
    app.open_room("john", "game_1").await;
    let response =
        app.post_fn("add_user", &[("channel_id", "game_1"), ("user_id", "mallory"), ("new_user", "x")]).await;
    assert_eq!(response.status(), 403);
    let (_, html) = app.open_room("john", "game_1").await;
    assert_eq!(list_items(&html, "member-list"), ["john"]);
}

#[tokio::test]
async fn leaving_removes_the_member_closes_the_leavers_stream_and_updates_the_others() {
    let app = spawn_app().await;
    let mut u1 = app.join("u1", "room").await;
    let mut u2 = app.join("u2", "room").await;
    let mut u3 = app.join("u3", "room").await;
    u1.next().await;
    u1.next().await;
    u2.next().await;

    let response = app.post_fn("leave_room", &[("channel_id", "room"), ("user_id", "u1")]).await;
    assert!(response.status().is_success() || response.status().is_redirection());

    assert_eq!(u1.next().await, ServerFrame::MemberLeft { user_id: "u1".into() });
    assert_eq!(u1.next_event().await, Event::Closed(Some(4403)));
    for other in [&mut u2, &mut u3] {
        assert_eq!(other.next().await, ServerFrame::MemberLeft { user_id: "u1".into() });
    }
    let (_, html) = app.open_room("u2", "room").await;
    assert_eq!(list_items(&html, "member-list"), ["u2", "u3"]);
}

#[tokio::test]
async fn leaving_from_a_plain_form_redirects_home() {
    let app = spawn_app().await;
    app.open_room("john", "game_1").await;
    let response = app.post_plain_form("leave_room", &[("channel_id", "game_1"), ("user_id", "john")]).await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn a_message_posted_from_a_plain_form_is_stored_and_delivered() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "game_1").await;
    app.open_room("john", "game_1").await;
    ana.next().await; // john joined
    let form =
        [("channel_id", "game_1"), ("user_id", "john"), ("client_msg_id", "f1"), ("body", "no script here")];
    let response = app.post_plain_form("send_message", &form).await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/chat_room?user_id=john&channel_id=game_1");
    let message = ana.next_message().await;
    assert_eq!((message.user_id.as_str(), message.body.as_str()), ("john", "no script here"));
}

#[tokio::test]
async fn missing_parameters_show_a_friendly_page() {
    let app = spawn_app().await;
    for query in ["", "?user_id=john", "?channel_id=game_1", "?user_id=&channel_id=game_1"] {
        let (status, html) = app.get(&format!("{}/chat_room{query}", app.base)).await;
        assert_eq!(status, 200, "{query}");
        assert!(html.contains("Which room?"), "{query}");
    }
}

#[tokio::test]
async fn an_invalid_id_in_the_url_shows_the_reason() {
    let app = spawn_app().await;
    let long = "x".repeat(65);
    let (status, html) = app.open_room(&long, "game_1").await;
    assert_eq!(status, 400);
    assert!(html.contains("The user name is too long (at most 64 characters)."), "{html}");
}

#[tokio::test]
async fn the_home_page_offers_a_form_to_enter_a_room() {
    let app = spawn_app().await;
    let (status, html) = app.get(&format!("{}/", app.base)).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"action="/chat_room""#));
    assert!(html.contains(r#"name="user_id""#) && html.contains(r#"name="channel_id""#));
    assert!(!html.contains("application/wasm"), "the home page is plain HTML: no browser code to load");
    let (status, _) = app.get(&format!("{}/no/such/page", app.base)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_stream_must_start_with_hello() {
    let app = spawn_app().await;
    let mut client = app.raw_stream().await;
    client.say("x", "hi").await;
    assert!(matches!(client.next().await, ServerFrame::Error { code: ErrorCode::BadFrame, .. }));
    assert_eq!(client.next_event().await, Event::Closed(Some(4400)));

    let mut client = app.raw_stream().await;
    client.send_raw(Message::text("{not json")).await;
    assert!(matches!(client.next().await, ServerFrame::Error { code: ErrorCode::BadFrame, .. }));
}

#[tokio::test]
async fn someone_who_is_not_a_member_cannot_open_the_stream() {
    let app = spawn_app().await;
    app.open_room("john", "game_1").await;
    let mut client = app.raw_stream().await;
    client
        .send(&ClientFrame::Hello {
            channel_id: "game_1".into(),
            user_id: "eve".into(),
            after_seq: 0,
            token: None,
        })
        .await;
    assert!(matches!(client.next().await, ServerFrame::Error { code: ErrorCode::NotMember, .. }));
    assert_eq!(client.next_event().await, Event::Closed(Some(4403)));
}

#[tokio::test]
async fn garbage_frames_get_an_error_and_the_connection_stays_up() {
    let app = spawn_app().await;
    let mut john = app.join("john", "game_1").await;
    john.send_raw(Message::text("{\"type\":\"nuke\"}")).await;
    assert!(matches!(john.next().await, ServerFrame::Error { code: ErrorCode::BadFrame, .. }));
    john.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert!(matches!(john.next().await, ServerFrame::Error { code: ErrorCode::BadFrame, .. }));
    assert_eq!(john.send_and_ack("ok", "still here").await, 1);
}

#[tokio::test]
async fn a_plain_form_with_an_empty_name_goes_back_to_the_room_showing_the_error() {
    let app = spawn_app().await;
    app.open_room("john", "game_1").await;
    let room_url = format!("{}{}", app.base, app::pages::chat_room::room_href("game_1", "john"));
    let response = app
        .http
        .post(format!("{}/api/add_user", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .header("referer", &room_url)
        .body("channel_id=game_1&user_id=john&new_user=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let back = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&room_url), "{back}");

    let (status, html) = app.get(&back).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<p role="alert" class="error">Please enter a user name.</p>"#), "{html}");
    assert_eq!(list_items(&html, "member-list"), ["john"]);
}
